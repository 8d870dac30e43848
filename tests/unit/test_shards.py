"""--shard K/N and --shard-by LABEL (fleet.config.shards), and combining the shards' --json
reports (fleet.core.combine, `fleet combine`)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from fleet.cli.main import cli
from fleet.config.inventory import Host
from fleet.config.shards import Shard, in_shard, parse_shard, shard_of_name
from fleet.core.combine import CombineError, combine


def hosts(names: list[str], region: dict[str, str] | None = None) -> list[Host]:
    region = region or {}
    return [Host(name=n, address="198.18.60.1",
                 labels={"region": region[n]} if n in region else {}) for n in names]


names_st = st.lists(st.from_regex(r"[a-z][a-z0-9-]{0,12}", fullmatch=True), unique=True,
                    max_size=60)


@given(names_st, st.integers(min_value=1, max_value=8))
def test_every_host_is_in_exactly_one_shard(names: list[str], count: int) -> None:
    found = [h.name for k in range(1, count + 1) for h in in_shard(hosts(names),
                                                                   Shard(k, count))]
    assert sorted(found) == sorted(names)


@given(names_st, st.from_regex(r"[a-z]{1,10}", fullmatch=True),
       st.integers(min_value=1, max_value=8))
def test_adding_a_host_moves_no_other_host(names: list[str], new: str, count: int) -> None:
    before = {n: shard_of_name(n, count) for n in names}
    after = {n: shard_of_name(n, count) for n in [*names, new]}
    assert all(after[n] == before[n] for n in names)


def test_the_partition_is_the_same_everywhere() -> None:
    # a digest, not Python's per-process hash(): these values are fixed for good
    assert [shard_of_name(f"web-{i}", 3) for i in range(8)] == [2, 2, 2, 3, 1, 3, 1, 3]
    assert shard_of_name("web-1", 1) == 1


def test_by_label_a_region_stays_whole_and_regions_are_dealt_in_turn() -> None:
    region = {"a1": "eu", "a2": "eu", "b1": "us", "c1": "ap", "c2": "ap"}
    fleet = hosts([*region, "bare"], region)
    shards = [[h.name for h in in_shard(fleet, Shard(k, 2, "region"))] for k in (1, 2)]
    # values sorted: "" (no label), ap, eu, us -> shards 1, 2, 1, 2
    assert shards == [["a1", "a2", "bare"], ["b1", "c1", "c2"]]


@pytest.mark.parametrize(("text", "message"), [
    ("0/3", "K must be from 1 to N"), ("4/3", "K must be from 1 to N"),
    ("1/0", "K must be from 1 to N"), ("a/b", "is not K/N"), ("3", "is not K/N"),
])
def test_bad_shards_say_why(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_shard(text)


def test_the_flags_are_usage_errors_when_wrong(tmp_path: Path) -> None:
    (tmp_path / "inv.yml").write_text("hosts:\n  h1: {address: 198.18.60.1}\n")
    (tmp_path / "pb.yml").write_text("project: p\ninventory: inv.yml\nservices:\n"
                                     "  web: {image: nginx:1}\n")
    runner = CliRunner()
    bad = runner.invoke(cli, ["render", "--shard", "4/3", str(tmp_path / "pb.yml")])
    assert bad.exit_code == 2 and "Invalid value for '--shard'" in bad.output
    alone = runner.invoke(cli, ["render", "--shard-by", "region", str(tmp_path / "pb.yml")])
    assert alone.exit_code == 2 and "--shard-by needs --shard K/N" in alone.output
    empty = runner.invoke(cli, ["render", "--json", "--shard", "2/2", str(tmp_path / "pb.yml")])
    shard_of_h1 = shard_of_name("h1", 2)
    rendered = json.loads(empty.stdout)
    assert [h["host"] for h in rendered["hosts"]] == (["h1"] if shard_of_h1 == 2 else [])


def check(hosts_checked: int, findings: list[str], unreachable: list[str]) -> dict[str, object]:
    return {"project": "p", "in_sync": not findings and not unreachable,
            "hosts_checked": hosts_checked,
            "findings": [{"host": h, "service": "web", "kind": "stopped"} for h in findings],
            "unreachable": [{"host": h, "error": "x"} for h in unreachable]}


def test_check_reports_combine_with_the_exit_code_of_the_whole_fleet() -> None:
    merged, code = combine([check(2, ["h3"], []), check(2, [], []), check(1, ["h1"], [])])
    assert code == 2 and merged["in_sync"] is False and merged["hosts_checked"] == 5
    assert [f["host"] for f in merged["findings"]] == ["h1", "h3"]
    assert combine([check(2, [], []), check(3, [], [])]) == (
        {"project": "p", "in_sync": True, "hosts_checked": 5, "findings": [],
         "unreachable": []}, 0)
    assert combine([check(2, [], []), check(1, [], ["h9"])])[1] == 1


def test_apply_and_plan_reports_combine() -> None:
    one = {"converged": True, "project": "p", "hosts": [{"host": "b"}], "stopped": None,
           "interrupted": False, "unreachable": []}
    two = {**one, "converged": False, "hosts": [{"host": "a"}], "stopped": "web failed"}
    merged, code = combine([one, two])
    assert (code, merged["converged"], merged["stopped"]) == (1, False, "web failed")
    assert [h["host"] for h in merged["hosts"]] == ["a", "b"]
    plan = {"project": "p", "changes": False, "hosts_checked": 1, "order": ["web"],
            "hosts": [{"host": "a", "actions": []}], "unreachable": []}
    merged, code = combine([plan, {**plan, "changes": True, "hosts": [{"host": "b"}]}])
    assert (code, merged["changes"], merged["hosts_checked"], merged["order"]) == (
        2, True, 2, ["web"])


def test_mixed_reports_are_refused(tmp_path: Path) -> None:
    plan = {"project": "p", "changes": False, "order": [], "hosts": [], "unreachable": []}
    with pytest.raises(CombineError, match="different commands: check, plan"):
        combine([check(1, [], []), plan])
    with pytest.raises(CombineError, match="different projects"):
        combine([check(1, [], []), {**check(1, [], []), "project": "q"}])
    with pytest.raises(CombineError, match="not the --json report"):
        combine([{"hello": 1}])
    runner = CliRunner()
    (tmp_path / "a.json").write_text(json.dumps(check(1, ["h1"], [])))
    (tmp_path / "b.json").write_text(json.dumps(check(1, [], [])))
    done = runner.invoke(cli, ["combine", str(tmp_path / "a.json"), str(tmp_path / "b.json")])
    assert done.exit_code == 2 and json.loads(done.stdout)["hosts_checked"] == 2
    (tmp_path / "bad.json").write_text("[1, 2]")
    bad = runner.invoke(cli, ["combine", str(tmp_path / "bad.json")])
    assert bad.exit_code == 1 and "not a fleet --json report" in bad.output
    missing = runner.invoke(cli, ["combine", str(tmp_path / "nope.json")])
    assert missing.exit_code == 1 and "nope.json" in missing.output
