"""Render determinism and the spec hash: same input -> same output; what changes it, what not."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from config_support import load, playbook, write
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fleet.cli.config_cmds import render_json

BASE = {
    "image": "nginx:1.25", "command": ["run", "--fast"], "environment": {"A": "1", "B": "2"},
    "ports": ["8080:80"], "labels": {"team": "x"}, "restart": "always",
    "healthcheck": {"test": ["CMD", "true"], "interval": "2s"}, "mem_limit": "256m",
}


def render(tmp_path: Path, service: dict[str, object], *, style: str = "block",
           extra: str = "") -> dict[str, object]:
    import yaml

    text = yaml.safe_dump({"web": service}, default_flow_style=(style == "flow"),
                          sort_keys=(style == "sorted"))
    pb = playbook(tmp_path, text + extra, header="project: shop\nnetworks: {n: {}}\n")
    return render_json(load(tmp_path, pb))


def hashes(data: dict[str, object]) -> list[str]:
    return [c["spec_hash"] for h in data["hosts"] for c in h["containers"]]  # type: ignore


def test_same_input_same_output(tmp_path: Path) -> None:
    first = json.dumps(render(tmp_path, BASE), sort_keys=True)
    assert json.dumps(render(tmp_path, BASE), sort_keys=True) == first


def test_key_order_and_formatting_do_not_change_the_hash(tmp_path: Path) -> None:
    reordered = dict(reversed(list(BASE.items())))
    reordered["environment"] = ["B=2", "A=1"]  # list form of the same map
    reordered["command"] = "run --fast"  # string form of the same argv
    reordered["healthcheck"] = {"interval": 2, "test": ["CMD", "true"]}
    reordered["mem_limit"] = 268435456
    expected = hashes(render(tmp_path, BASE))
    for style in ("block", "flow", "sorted"):
        assert hashes(render(tmp_path, reordered, style=style)) == expected


def test_placement_replicas_and_update_do_not_change_the_hash(tmp_path: Path) -> None:
    expected = set(hashes(render(tmp_path, BASE)))
    varied = {**BASE, "hosts": "web1,web2", "replicas": 1, "update": {"batch": 2}}
    assert set(hashes(render(tmp_path, varied))) == expected


CHANGES = [
    ("image", "nginx:1.26"), ("command", ["run"]), ("environment", {"A": "1"}),
    ("ports", ["8081:80"]), ("labels", {"team": "y"}), ("restart", "no"),
    ("healthcheck", {"test": ["CMD", "true"], "interval": "3s"}), ("mem_limit", "257m"),
    ("user", "1000"), ("working_dir", "/srv"), ("hostname", "h"), ("networks", ["n"]),
    ("cap_add", ["NET_ADMIN"]), ("cap_drop", ["ALL"]), ("privileged", True), ("read_only", True),
    ("tmpfs", ["/run"]), ("ulimits", {"nofile": 10}), ("sysctls", {"a.b": "1"}),
    ("logging", {"driver": "json-file"}), ("cpus", 0.5), ("mem_reservation", "64m"),
    ("pids_limit", 10), ("stop_signal", "SIGINT"), ("stop_grace_period", "30s"),
    ("extra_hosts", ["a:10.0.0.1"]), ("dns", ["1.1.1.1"]), ("devices", ["/dev/fuse"]),
    ("init", True), ("shm_size", "1g"), ("entrypoint", ["sh"]),
    ("volumes", ["/srv:/srv"]),
]


@pytest.mark.parametrize(("key", "value"), CHANGES, ids=[k for k, _ in CHANGES])
def test_any_container_field_changes_the_hash(tmp_path: Path, key: str, value: object) -> None:
    before = set(hashes(render(tmp_path, BASE)))
    after = set(hashes(render(tmp_path, {**BASE, key: value})))
    assert before.isdisjoint(after)


def test_hash_differs_per_host_only_when_the_spec_does(tmp_path: Path) -> None:
    data = render(tmp_path, {**BASE, "environment": {"R": "{{ host.labels.region }}"}})
    by_host = {h["host"]: h["containers"][0]["spec_hash"] for h in data["hosts"]}  # type: ignore
    assert by_host["web2"] == by_host["db1"] != by_host["web1"]  # eu-west-1, eu-west-1, us-east-1


def test_render_never_contains_a_secret(tmp_path: Path) -> None:
    write(tmp_path, "s.env", "TOKEN=very-secret-token\n")
    service = {**BASE, "environment": {"T": "{{ secret('TOKEN') }}"}}
    import yaml

    pb = playbook(tmp_path, yaml.safe_dump({"web": service}),
                  header="project: shop\nsecrets_file: s.env\n")
    state = load(tmp_path, pb)
    text = json.dumps(render_json(state))
    assert "very-secret-token" not in text and "<redacted:TOKEN>" in text


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(env=st.dictionaries(st.from_regex(r"[A-Z][A-Z0-9_]{0,5}", fullmatch=True),
                           st.text("abc xyz=:/", max_size=8), max_size=5),
       order=st.randoms())
def test_environment_order_never_changes_the_hash(tmp_path: Path, env: dict[str, str],
                                                  order: object) -> None:
    items = list(env.items())
    order.shuffle(items)  # type: ignore[attr-defined]
    one = hashes(render(tmp_path, {**BASE, "environment": env}))
    two = hashes(render(tmp_path, {**BASE, "environment": dict(items)}, style="flow"))
    assert one == two
