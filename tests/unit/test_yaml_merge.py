"""YAML merge keys (`<<:`) as YAML defines them: own keys override merged ones, in a list
the earlier mapping overrides the later, and nothing merged is taken for a duplicate."""

from __future__ import annotations

import pytest

from fleet.config.source import parse_yaml

DEFAULTS = """\
x-defaults: &defaults
  image: busybox
  restart: always
x-more: &more
  restart: "no"
  user: nobody
"""


def loaded(text: str) -> tuple[object, list[tuple[int, str]]]:
    doc = parse_yaml(text, "m.yml")
    return doc.data, [(p.line, p.message) for p in doc.problems]


def test_an_own_key_overrides_the_merged_one_after_or_before_the_merge_key() -> None:
    data, problems = loaded(DEFAULTS + "a:\n  <<: *defaults\n  restart: on-failure\n"
                            "b:\n  restart: on-failure\n  <<: *defaults\n")
    assert problems == []
    assert data["a"] == data["b"] == {"image": "busybox", "restart": "on-failure"}  # type: ignore[index]


def test_in_a_list_the_earlier_mapping_wins() -> None:
    data, problems = loaded(DEFAULTS + "a: {<<: [*more, *defaults]}\nb: {<<: [*defaults, *more]}\n")
    assert problems == []
    assert data["a"] == {"restart": "no", "user": "nobody", "image": "busybox"}  # type: ignore[index]
    assert data["b"] == {"image": "busybox", "restart": "always", "user": "nobody"}  # type: ignore[index]


def test_an_anchor_defined_inside_a_merge_is_the_same_wherever_its_alias_is() -> None:
    # PyYAML's flatten_mapping rewrote the inline anchor's node, so `b: *svc` saw 'restart'
    # twice (a false duplicate) and the merged value won over the own one.
    text = DEFAULTS + ("services:\n  a:\n    <<: &svc\n      <<: *defaults\n      restart: 'no'\n"
                       "    image: x\n  b: *svc\n  c:\n    <<: [*svc, *more]\n")
    data, problems = loaded(text)
    assert problems == []
    services = data["services"]  # type: ignore[index]
    assert services["a"] == {"restart": "no", "image": "x"}
    assert services["b"] == {"image": "busybox", "restart": "no"}
    assert services["c"] == {"image": "busybox", "restart": "no", "user": "nobody"}


def test_merges_chain_through_anchors() -> None:
    text = "base: &base {a: 1, b: 1}\nmid: &mid {<<: *base, b: 2, c: 2}\ntop: {<<: *mid, c: 3}\n"
    data, problems = loaded(text)
    assert problems == []
    assert data["top"] == {"a": 1, "b": 2, "c": 3}  # type: ignore[index]
    assert data["mid"] == {"a": 1, "b": 2, "c": 2}  # type: ignore[index]


def test_an_own_key_twice_is_still_a_duplicate() -> None:
    _, problems = loaded(DEFAULTS + "a:\n  <<: *defaults\n  user: x\n  user: y\n")
    assert problems == [(10, "duplicate key 'user'")]


def test_two_merge_keys_are_a_duplicate_as_in_compose() -> None:
    _, problems = loaded(DEFAULTS + "a:\n  <<: *defaults\n  <<: *more\n")
    assert problems == [(9, "duplicate key '<<': merge several mappings with one list, "
                            "<<: [*a, *b]")]


@pytest.mark.parametrize("value", ["1", "[1, 2]", "[*defaults, x]", "null"])
def test_a_merge_of_something_not_a_mapping_is_an_error(value: str) -> None:
    _, problems = loaded(DEFAULTS + f"a:\n  <<: {value}\n  image: y\n")
    assert problems == [(8, "a merge key '<<' takes a mapping or a list of mappings "
                            "(aliases such as *defaults)")]


def test_locations_point_at_the_own_value_or_at_the_merged_one() -> None:
    doc = parse_yaml(DEFAULTS + "a:\n  <<: *defaults\n  restart: x\n", "m.yml")
    assert doc.value_locations[("a", "restart")].line == 9
    assert doc.value_locations[("a", "image")].line == 2


def test_a_refused_tag_in_a_merged_mapping_is_reported() -> None:
    _, problems = loaded("a:\n  <<: !!set {x: null}\n")
    assert [line for line, _ in problems] == [2]
    assert "YAML tag !!set is not allowed" in problems[0][1]


def test_a_quoted_double_angle_key_is_an_ordinary_key() -> None:
    data, problems = loaded("a: {'<<': 1, b: <<}\n")
    assert problems == [] and data == {"a": {"<<": 1, "b": "<<"}}
