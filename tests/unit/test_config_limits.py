"""Hostile configuration input: every case ends quickly, in bounded memory, with a clear
problem at its place, never a traceback.

Inputs too big to keep in tests/corpus/invalid/ are generated here; the small ones are
corpus files (lim_*, inv_lim_*). Time bounds are generous: they catch hangs, not speed.
"""

from __future__ import annotations

import time
import tracemalloc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

import pytest

from fleet.config import source
from fleet.config.problems import Problem
from fleet.config.source import MAX_ALIAS_NODES, MAX_DEPTH, MAX_FILE_BYTES, load_yaml, parse_yaml
from tests.unit.config_support import playbook, problems, write

T = TypeVar("T")
SECONDS = 5.0


@contextmanager
def bounded(seconds: float = SECONDS, megabytes: float = 64) -> Iterator[None]:
    """The block must end within `seconds` and allocate at most `megabytes` at its peak."""
    tracemalloc.start()
    start = time.monotonic()
    try:
        yield
    finally:
        elapsed = time.monotonic() - start
        peak = tracemalloc.get_traced_memory()[1] / 1024 / 1024
        tracemalloc.stop()
    assert elapsed < seconds, f"took {elapsed:.1f} s"
    assert peak < megabytes, f"allocated {peak:.0f} MiB"


def timed(func: Callable[[], T], seconds: float = SECONDS) -> T:
    start = time.monotonic()
    result = func()
    assert time.monotonic() - start < seconds, f"took {time.monotonic() - start:.1f} s"
    return result


def errors(found: list[Problem]) -> list[Problem]:
    return [p for p in found if p.severity == "error"]


def one_error(found: list[Problem], words: str) -> Problem:
    matching = [p for p in errors(found) if words in p.message]
    assert matching, "\n".join(map(str, found))
    return matching[0]


# --- YAML -------------------------------------------------------------------------------


def billion_laughs(levels: int = 9) -> str:
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for level in range(1, levels):
        refs = ",".join([f"*a{level - 1}"] * 9)
        lines.append(f"a{level}: &a{level} [{refs}]")
    return "\n".join(lines) + "\n"


def test_alias_bomb_ends_quickly_in_small_memory() -> None:
    text = billion_laughs()
    assert len(text) < 600  # 9**9 values from a few hundred bytes
    with bounded(megabytes=16):
        doc = parse_yaml(text, "bomb.yml")
    found = one_error(doc.problems, f"aliases expand to more than {MAX_ALIAS_NODES:,} values")
    assert (found.line, found.column) == (6, 10)  # the alias that crosses the limit
    assert doc.data is None


def test_alias_bomb_through_merge_keys() -> None:
    lines = ["m0: &m0 {a: 1, b: 2, c: 3, d: 4, e: 5, f: 6, g: 7, h: 8, i: 9, j: 10}"]
    lines += [f"m{i}: &m{i} [{', '.join([f'*m{i - 1}'] * 10)}]" for i in range(1, 8)]
    with bounded(megabytes=16):
        doc = parse_yaml("\n".join(lines), "merge.yml")
    one_error(doc.problems, "aliases expand to more than")


def test_aliases_within_limits_still_load() -> None:
    doc = parse_yaml("base: &b {image: nginx, ports: [80]}\nweb: *b\napi: {<<: *b}\n", "ok.yml")
    assert doc.problems == []
    assert doc.data["web"] == doc.data["api"] == {"image": "nginx", "ports": [80]}


@pytest.mark.parametrize("text", ["a: &a [*a]\n", "a: &a {b: *a}\n", "a: &a {<<: *a}\n",
                                  "a: &a [1, [2, *a]]\n"])
def test_recursive_alias_is_a_clean_error(text: str) -> None:
    doc = timed(lambda: parse_yaml(text, "rec.yml"))
    one_error(doc.problems, "is inside the value it refers to (a recursive alias)")


@pytest.mark.parametrize("style", ["flow", "block", "mapping"])
def test_deep_nesting_is_a_depth_error_not_recursion(style: str) -> None:
    depth = 5000
    if style == "flow":
        text = "x: " + "[" * depth + "]" * depth + "\n"
    elif style == "block":
        text = "".join("  " * i + "-\n" for i in range(depth))
    else:
        text = "".join("  " * i + f"k{i}:\n" for i in range(depth))
    doc = timed(lambda: parse_yaml(text, "deep.yml"))
    one_error(doc.problems, f"nested more than {MAX_DEPTH} levels deep")


def test_depth_through_aliases_counts() -> None:
    nested = "[" * 40 + "]" * 40
    text = f"a: &a {nested}\nb: &b [[[[[[[[[[[[[[[[[[[[[[[[[*a]]]]]]]]]]]]]]]]]]]]]]]]]\n"
    one_error(parse_yaml(text, "d.yml").problems, "nested more than")
    assert parse_yaml(f"a: &a {nested}\nb: [*a]\n", "ok.yml").problems == []


@pytest.mark.parametrize("char", ["\x00", "\x07", "\x1b", "\x7f", "\ufffe"])
def test_control_characters_are_refused_at_their_place(char: str) -> None:
    doc = parse_yaml(f"project: shop\nservices:\n  web: {{image: ngi{char}nx}}\n", "c.yml")
    found = one_error(doc.problems, f"control character U+{ord(char):04X} is not allowed")
    assert (found.line, found.column) == (3, 19)


def test_non_utf8_file_names_its_place(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yml"
    path.write_bytes("project: shop\nservices:\n  web: {image: café}\n".encode("latin-1"))
    found = one_error(load_yaml(path).problems, "not UTF-8 text (byte 0xe9)")
    assert (found.line, found.column) == (3, 19)


def test_huge_file_is_refused_before_it_is_read(tmp_path: Path) -> None:
    path = tmp_path / "huge.yml"
    with open(path, "wb") as stream:
        stream.write(b"project: shop\nservices:\n")
        stream.write(b"  # padding\n" * (50 * 1024 * 1024 // 12))
    with bounded(megabytes=3 * MAX_FILE_BYTES / 1024 / 1024):
        found = load_yaml(path).problems
    assert [p.message for p in found] == ["file is larger than 2 MiB, the limit for a config file"]
    with bounded(megabytes=3 * MAX_FILE_BYTES / 1024 / 1024):
        found = problems(tmp_path, path)
    one_error(found, "file is larger than 2 MiB")


def test_file_at_the_limit_loads(tmp_path: Path) -> None:
    head = b"project: shop\nservices:\n  web: {image: nginx}\n"
    path = tmp_path / "big.yml"
    path.write_bytes(head + b"#" * (MAX_FILE_BYTES - len(head) - 1) + b"\n")
    assert timed(lambda: load_yaml(path)).problems == []


def test_endless_file_is_refused(tmp_path: Path) -> None:
    with bounded(megabytes=3 * MAX_FILE_BYTES / 1024 / 1024):
        found = load_yaml("/dev/zero").problems
    assert "file is larger than 2 MiB" in found[0].message


@pytest.mark.parametrize(("value", "words"), [
    ("!!python/object/apply:os.system [id]", "YAML tag !!python/object/apply:os.system"),
    ("!!python/name:os.system", "Python object tags are never loaded"),
    ("!custom x", "YAML tag !custom is not allowed"),
    ("!!binary aGk=", "YAML tag !!binary is not allowed"),
    ("!!set {a: null}", "YAML tag !!set is not allowed"),
    ("!!omap [a: 1]", "YAML tag !!omap is not allowed"),
    ("!<tag:example.com,2000:thing> x", "YAML tag tag:example.com,2000:thing"),
])
def test_tags_are_refused_where_they_are(value: str, words: str) -> None:
    doc = parse_yaml(f"project: shop\nservices:\n  web:\n    image: {value}\n", "t.yml")
    found = one_error(doc.problems, words)
    assert (found.line, found.column, found.path) == (4, 12, ("services", "web", "image"))


@pytest.mark.parametrize(("value", "words"), [
    ("2024-13-45", "cannot read '2024-13-45' as !!timestamp"),
    ("!!int many", "cannot read 'many' as !!int"),
    ("!!float x", "cannot read 'x' as !!float"),
    ("!!bool maybe", "cannot read 'maybe' as !!bool"),
    ("!!timestamp later", "cannot read 'later' as !!timestamp"),
])
def test_scalars_that_cannot_be_read_are_problems(value: str, words: str) -> None:
    doc = parse_yaml(f"a:\n  b: {value}\n", "s.yml")
    found = one_error(doc.problems, words)
    assert (found.line, found.path) == (2, ("a", "b"))


def test_merge_keys_override_and_duplicates_are_still_reported() -> None:
    text = "d: &d {port: 22, user: a}\nh: {<<: *d, port: 2}\ni: {port: 2, port: 3}\nj: *d\n"
    doc = parse_yaml(text, "m.yml")
    assert doc.data["h"] == {"port": 2, "user": "a"} and doc.data["j"] == {"port": 22, "user": "a"}
    assert [(p.line, p.message) for p in doc.problems] == [(3, "duplicate key 'port'")]


def test_complex_keys_are_refused() -> None:
    found = one_error(parse_yaml("? [a, b]\n: c\n", "k.yml").problems, "keys must be plain")
    assert (found.line, found.column) == (1, 3)


def test_yaml_limits_reach_playbooks_and_inventories(tmp_path: Path) -> None:
    pb = write(tmp_path, "pb.yml", "project: shop\n" + billion_laughs() + "services: {}\n")
    with bounded(megabytes=16):
        one_error(problems(tmp_path, pb), "aliases expand to more than")
    inventory = "hosts:\n  web1: {address: 10.0.0.1}\n" + billion_laughs()
    good = playbook(tmp_path, "web: {image: nginx}\n", name="good.yml")
    with bounded(megabytes=16):
        one_error(problems(tmp_path, good, inventory=inventory), "aliases expand to more than")


@pytest.mark.parametrize(("text", "words"), [
    (billion_laughs(), "aliases expand to more than"),
    ("a: &a [*a]\n", "recursive alias"),
    ("x: " + "[" * 5000 + "]" * 5000 + "\n", "nested more than"),
    ("project: shop\nservices:\n  web: [\n", "invalid YAML"),
])
def test_limits_hold_without_libyaml(text: str, words: str,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(source, "_FastLoader", None)
    with bounded(megabytes=16):
        one_error(parse_yaml(text, "pure.yml").problems, words)


def test_syntax_errors_keep_pyyaml_wording() -> None:
    found = one_error(parse_yaml("a: b\n c: d\n", "s.yml").problems, "invalid YAML")
    assert found.message == "invalid YAML: mapping values are not allowed here"
