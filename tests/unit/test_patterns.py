"""Host patterns: union, &, !, globs, label terms, ~regex, groups; properties with hypothesis."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fleet.config.patterns import PatternError, select_hosts


@dataclass(frozen=True)
class H:
    name: str
    labels: dict[str, str] = field(default_factory=dict)


HOSTS = [
    H("aws-web1", {"cloud": "aws", "region": "us-east-1"}),
    H("aws-web2", {"cloud": "aws", "region": "eu-west-1"}),
    H("gcp-web1", {"cloud": "gcp", "region": "europe-west1"}),
    H("hz-db1", {"cloud": "hetzner", "region": "eu-central"}),
]
GROUPS = {"web": frozenset({"aws-web1", "aws-web2", "gcp-web1"}), "db": frozenset({"hz-db1"}),
          "canary": frozenset({"gcp-web1"})}


def sel(pattern: str) -> list[str]:
    return select_hosts(pattern, HOSTS, GROUPS).hosts


@pytest.mark.parametrize(("pattern", "expected"), [
    ("all", ["aws-web1", "aws-web2", "gcp-web1", "hz-db1"]),
    ("*", ["aws-web1", "aws-web2", "gcp-web1", "hz-db1"]),
    ("db,web", ["aws-web1", "aws-web2", "gcp-web1", "hz-db1"]),
    ("web,&cloud=aws", ["aws-web1", "aws-web2"]),
    ("web,!canary", ["aws-web1", "aws-web2"]),
    ("!canary,web", ["aws-web1", "aws-web2"]),
    ("!web", ["hz-db1"]),
    ("&cloud=aws", ["aws-web1", "aws-web2"]),
    ("aws-*", ["aws-web1", "aws-web2"]),
    ("*-web?", ["aws-web1", "aws-web2", "gcp-web1"]),
    ("region=eu-*", ["aws-web2", "hz-db1"]),
    ("region=eu*", ["aws-web2", "gcp-web1", "hz-db1"]),
    ("~web\\d$", ["aws-web1", "aws-web2", "gcp-web1"]),
    ("~^hz", ["hz-db1"]),
    (" web , !cloud=gcp ", ["aws-web1", "aws-web2"]),
    ("nothing", []),
    ("zone=*", []),
])
def test_patterns(pattern: str, expected: list[str]) -> None:
    assert sel(pattern) == expected


def test_empty_terms_are_reported() -> None:
    assert select_hosts("web,nothing,!ghost", HOSTS, GROUPS).empty_terms == ["nothing", "ghost"]


@pytest.mark.parametrize(("pattern", "words"), [
    ("", "empty host pattern"), ("web,,db", "empty term"), ("web,!", "'&' or '!' without a term"),
    ("~[", "bad regular expression"),
])
def test_bad_patterns(pattern: str, words: str) -> None:
    with pytest.raises(PatternError, match=words.replace("(", r"\(")):
        sel(pattern)


# -- properties --------------------------------------------------------------------------------

NAMES = ["a1", "a2", "b1", "b2", "c1", "web", "db"]
hosts_strategy = st.lists(
    st.builds(H, st.sampled_from(NAMES), st.fixed_dictionaries(
        {}, optional={"cloud": st.sampled_from(["aws", "gcp"]), "tier": st.sampled_from(["x"])})),
    unique_by=lambda h: h.name, max_size=7)
atom = st.one_of(st.sampled_from(["all", "a*", "*1", "b?", "web", "g1", "g2", "cloud=aws",
                                  "cloud=*", "tier=x", "~^[ab]", "~2$", "nope"]))


def groups_for(hosts: list[H]) -> dict[str, frozenset[str]]:
    names = [h.name for h in hosts]
    return {"g1": frozenset(names[::2]), "g2": frozenset(names[1::3])}


@settings(max_examples=150, deadline=None)
@given(hosts_strategy, atom, atom)
def test_union_is_commutative(hosts: list[H], a: str, b: str) -> None:
    groups = groups_for(hosts)
    assert select_hosts(f"{a},{b}", hosts, groups).hosts == select_hosts(
        f"{b},{a}", hosts, groups).hosts


@settings(max_examples=150, deadline=None)
@given(hosts_strategy, atom)
def test_idempotent_and_self_exclusion(hosts: list[H], a: str) -> None:
    groups = groups_for(hosts)
    alone = select_hosts(a, hosts, groups).hosts
    assert select_hosts(f"{a},&{a}", hosts, groups).hosts == alone
    assert select_hosts(f"{a},{a}", hosts, groups).hosts == alone
    assert select_hosts(f"{a},!{a}", hosts, groups).hosts == []


@settings(max_examples=150, deadline=None)
@given(hosts_strategy, st.lists(atom, min_size=1, max_size=3), atom)
def test_exclusion_and_intersection_give_subsets_in_inventory_order(
    hosts: list[H], adds: list[str], other: str
) -> None:
    groups = groups_for(hosts)
    base = select_hosts(",".join(adds), hosts, groups).hosts
    for op in "!&":
        narrowed = select_hosts(",".join([*adds, op + other]), hosts, groups).hosts
        assert set(narrowed) <= set(base)
    order = [h.name for h in hosts]
    assert base == [n for n in order if n in set(base)]
    # intersection commutes too, and exclusion removes exactly the other term's hosts
    a, b = adds[0], other
    assert select_hosts(f"{a},&{b}", hosts, groups).hosts == select_hosts(
        f"{b},&{a}", hosts, groups).hosts
    excluded = set(select_hosts(other, hosts, groups).hosts)
    assert set(select_hosts(",".join([*adds, "!" + other]), hosts, groups).hosts) == (
        set(base) - excluded)
