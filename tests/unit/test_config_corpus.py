"""The corpus: every file under tests/corpus/invalid/ states its expected problem and location.

A file's leading comment lines `# expect: LINE:COLUMN KEY.PATH: message substring` (or
`; expect:` in INI files) are what loading it must report: a problem at exactly that line,
column and key path whose message contains the text. Files named `inv_*` are inventories
(checked with a trivial playbook); the others are playbooks checked against
tests/corpus/inventory.yml. Files under tests/corpus/valid/ must load without any problem.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from fleet.config.problems import ConfigError, Problem, format_key_path
from fleet.config.project import ProjectFiles, read_project
from fleet.core.desired import desired_state

CORPUS = Path(__file__).resolve().parents[1] / "corpus"
INVENTORY = CORPUS / "inventory.yml"
EXPECT = re.compile(r"^[#;] expect: (\d+):(\d+) (\S*): (.+)$")


def _load(path: Path, tmp_path: Path) -> list[Problem]:
    if path.name.startswith("inv_"):
        playbook = tmp_path / "pb.yml"
        playbook.write_text("project: corpus\nservices: {}\n")
        files = ProjectFiles([str(playbook)], [str(path)])
    else:
        files = ProjectFiles([str(path)], [str(INVENTORY)])
    try:
        return desired_state(read_project(files, environ={})).problems
    except ConfigError as exc:
        return list(exc.problems)


def _cases(kind: str) -> list[Path]:
    return sorted(p for p in (CORPUS / kind).iterdir() if p.suffix in (".yml", ".ini"))


def test_corpus_is_large_enough() -> None:
    assert len(_cases("invalid")) >= 25 and len(_cases("valid")) >= 3


@pytest.mark.parametrize("path", _cases("invalid"), ids=lambda p: p.name)
def test_invalid_file_reports_its_location(path: Path, tmp_path: Path) -> None:
    text = path.read_bytes().decode("utf-8", "replace")  # some cases are not UTF-8 on purpose
    expectations = [m.groups() for m in map(EXPECT.match, text.splitlines()) if m]
    assert expectations, f"{path.name} has no '# expect:' line"
    found = _load(path, tmp_path)
    shown = "\n".join(f"{p.line}:{p.column} {format_key_path(p.path)}: {p.message}" for p in found)
    for line, column, key, words in expectations:
        assert any(
            (p.file, p.line, p.column, format_key_path(p.path)) == (str(path), int(line),
                                                                    int(column), key)
            and words in p.message and p.severity == "error"
            for p in found
        ), f"expected {line}:{column} {key}: {words}\ngot:\n{shown}"


@pytest.mark.parametrize("path", _cases("valid"), ids=lambda p: p.name)
def test_valid_file_has_no_problem(path: Path, tmp_path: Path) -> None:
    assert _load(path, tmp_path) == []
