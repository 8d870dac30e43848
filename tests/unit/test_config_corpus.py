"""The corpus: every file under tests/corpus/invalid/ states its expected problem and location.

A file's leading comment lines `# expect: LINE:COLUMN KEY.PATH: message substring` (or
`; expect:` in INI files) are what loading it must report: a problem at exactly that line,
column and key path whose message contains the text. Files named `inv_*` are inventories
(checked with a trivial playbook); `sec_*` are secrets files and `envf_*` env files (each
named by a trivial playbook: the problem is at that playbook's key, and LINE, when not 0, is
the line of the bad file that the message names); the others are playbooks checked against
tests/corpus/inventory.yml. Files under tests/corpus/valid/ must load without any problem.

Every case must load without a traceback, within a timeout and a bounded memory peak.
"""

from __future__ import annotations

import re
import resource
from pathlib import Path

import pytest

from fleet.config.problems import ConfigError, Problem, format_key_path
from fleet.config.project import ProjectFiles, read_project
from fleet.core.desired import desired_state

CORPUS = Path(__file__).resolve().parents[1] / "corpus"
INVENTORY = CORPUS / "inventory.yml"
EXPECT = re.compile(r"^[#;] expect: (\d+):(\d+) (\S*): (.+)$")


# The test process's peak RSS may never pass this: a case that blew up memory (an alias
# bomb costs gigabytes unbounded) would. Cheap to read, unlike tracing every allocation.
PEAK_RSS_KIB = 1024 * 1024
REFERENCED = {"sec_": "secrets_file: {path}\nservices: {{}}\n",
              "envf_": "services:\n  web: {{image: busybox, env_file: ['{path}']}}\n"}


def _load(path: Path, tmp_path: Path) -> list[Problem]:
    playbook = tmp_path / "pb.yml"
    referenced = next((k for k in REFERENCED if path.name.startswith(k)), None)
    if path.name.startswith("inv_"):
        playbook.write_text("project: corpus\nservices: {}\n")
        files = ProjectFiles([str(playbook)], [str(path)])
    elif referenced:
        playbook.write_text("project: corpus\n" + REFERENCED[referenced].format(path=path))
        files = ProjectFiles([str(playbook)], [str(INVENTORY)])
    else:
        files = ProjectFiles([str(path)], [str(INVENTORY)])
    try:
        return desired_state(read_project(files, environ={})).problems
    except ConfigError as exc:
        return list(exc.problems)


def _cases(kind: str) -> list[Path]:
    return sorted(p for p in (CORPUS / kind).iterdir()
                  if p.suffix in (".yml", ".ini", ".json")
                  or (p.suffix == ".env" and p.name.startswith(tuple(REFERENCED))))


def test_corpus_is_large_enough() -> None:
    assert len(_cases("invalid")) >= 150 and len(_cases("valid")) >= 3


def _matches(problem: Problem, path: Path, line: str, column: str, key: str,
             words: str) -> bool:
    if problem.severity != "error" or words not in problem.message:
        return False
    if path.name.startswith(tuple(REFERENCED)):
        return format_key_path(problem.path) == key and (
            line == "0" or f"{path}:{line}" in problem.message
            or f"(line {line}," in problem.message)
    return (problem.file, problem.line, problem.column, format_key_path(problem.path)) == (
        str(path), int(line), int(column), key)


@pytest.mark.timeout(30)
@pytest.mark.parametrize("path", _cases("invalid"), ids=lambda p: p.name)
def test_invalid_file_reports_its_location(path: Path, tmp_path: Path) -> None:
    text = path.read_bytes().decode("utf-8", "replace")  # some cases are not UTF-8 on purpose
    expectations = [m.groups() for m in map(EXPECT.match, text.splitlines()) if m]
    assert expectations, f"{path.name} has no '# expect:' line"
    found = _load(path, tmp_path)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    assert peak < PEAK_RSS_KIB, f"after {path.name} the peak RSS is {peak:,} KiB"
    shown = "\n".join(f"{p.line}:{p.column} {format_key_path(p.path)}: {p.message}" for p in found)
    if path.name.startswith("sec_"):  # the secrets cases' values all start so
        assert not [p for p in found if "hunter" in p.message], shown
    for line, column, key, words in expectations:
        assert any(_matches(p, path, line, column, key, words) for p in found), (
            f"expected {line}:{column} {key}: {words}\ngot:\n{shown}")


@pytest.mark.parametrize("path", _cases("valid"), ids=lambda p: p.name)
def test_valid_file_has_no_problem(path: Path, tmp_path: Path) -> None:
    assert _load(path, tmp_path) == []
