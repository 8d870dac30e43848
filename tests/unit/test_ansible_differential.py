"""fleet reads every inventory under tests/fixtures/ansible/ as `ansible-inventory --list` does.

For each inventory, Ansible's reading (hosts, each group's members, each host's merged
vars: what `--list` prints in `_meta.hostvars`) is compared with fleet's (its hosts,
`Inventory.groups`, and `Host.vars` plus the connection settings taken out of them). Then
the JSON Ansible printed is fed back to fleet, and must read the same; and the JSON of
`--list --export` (group vars apart, priorities kept) is read by both, Ansible through
its script plugin (for the inventories where that grouping matters). Every
ansible-inventory runs side by side, once per input.

Needs ansible-core (`ansible-inventory`, Debian package ansible-core): skipped without it.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from fleet.config.ansible import CONNECTION_VARS, LABELS_VAR
from fleet.config.inventory import Inventory, load_inventory_with_problems
from fleet.config.problems import errors_in

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "ansible"
ANSIBLE_INVENTORY = shutil.which("ansible-inventory")
INVENTORIES = {  # name -> the inventory file in its folder
    "ini_ranges": "hosts",
    "yaml_tree": "inventory.yml",
    "priority": "hosts.yml",
    "precedence": "hosts.ini",
    "ungrouped": "hosts.yml",
    "kube": "inventory.ini",
    "split": ".",  # the directory itself
}
SCRIPTED = {"list_json": "inventory.json"}  # JSON that Ansible reads through a script
EXPORTED = ("yaml_tree", "priority", "precedence")  # where --export's grouping matters

pytestmark = pytest.mark.skipif(
    ANSIBLE_INVENTORY is None,
    reason="ansible-inventory is not installed (Debian: apt-get install ansible-core)")

View = tuple[set[str], dict[str, set[str]], dict[str, dict[str, Any]]]


def _script(tmp: Path, name: str, listing: Path) -> Path:
    """An inventory script printing `listing` (how Ansible reads --list JSON)."""
    script = tmp / f"{name}.py"
    script.write_text(f"#!{sys.executable}\nimport sys\n"
                      f"sys.stdout.write(open({str(listing)!r}).read())\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script


def _run_all(tmp: Path, runs: Mapping[str, list[str]]) -> dict[str, dict[str, Any]]:
    """ansible-inventory for each argument list, side by side, isolated from any
    ansible.cfg, and failing (not warning) when an inventory cannot be read."""
    config = tmp / "ansible.cfg"
    config.write_text("")
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp), "ANSIBLE_CONFIG": str(config),
           "ANSIBLE_HOME": str(tmp / ".ansible"), "ANSIBLE_LOCAL_TEMP": str(tmp / "tmp"),
           "ANSIBLE_INVENTORY_UNPARSED_FAILED": "True", "ANSIBLE_NOCOLOR": "1",
           "ANSIBLE_INVENTORY_ANY_UNPARSED_IS_FAILED": "True", "LC_ALL": "C.UTF-8"}
    assert ANSIBLE_INVENTORY is not None
    started = {name: subprocess.Popen([ANSIBLE_INVENTORY, *args], cwd=tmp, env=env,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE)
               for name, args in runs.items()}
    results: dict[str, dict[str, Any]] = {}
    for name, process in started.items():
        out, err = process.communicate(timeout=120)
        assert process.returncode == 0, f"ansible-inventory {runs[name]}: {err.decode()}"
        results[name] = json.loads(out)
    return results


@pytest.fixture(scope="module")
def ansible_lists(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """What ansible-inventory prints for every fixture (and, as `NAME/export`, with
    `--export`), then for every exported JSON read back through a script."""
    tmp = tmp_path_factory.mktemp("ansible")
    runs: dict[str, list[str]] = {}
    for name, file in INVENTORIES.items():
        runs[name] = ["-i", str(FIXTURES / name / file), "--list"]
        if name in EXPORTED:
            runs[f"{name}/export"] = [*runs[name], "--export"]
    for name, file in SCRIPTED.items():
        runs[name] = ["-i", str(_script(tmp, name, FIXTURES / name / file)), "--list"]
    results = _run_all(tmp, runs)
    back: dict[str, list[str]] = {}
    for name in EXPORTED:
        exported = tmp / f"{name}.export.json"
        exported.write_text(json.dumps(results[f"{name}/export"]))
        back[f"{name}/export/read"] = ["-i", str(_script(tmp, f"{name}-export", exported)),
                                       "--list"]
    return results | _run_all(tmp, back)


def _plain(value: Any) -> Any:
    """A value as JSON has it, Ansible's `{"__ansible_unsafe": ...}` as the string."""
    if isinstance(value, dict):
        if set(value) == {"__ansible_unsafe"}:
            return value["__ansible_unsafe"]
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def ansible_view(listing: dict[str, Any]) -> View:
    groups = {name: body for name, body in listing.items() if name != "_meta"}
    named = set(groups) | {c for body in groups.values() for c in body.get("children", [])}

    def members(name: str) -> set[str]:
        body = groups.get(name, {})
        found = set(body.get("hosts", []))
        for child in body.get("children", []):
            found |= members(child)
        return found

    hosts = members("all") | {h for body in groups.values() for h in body.get("hosts", [])}
    hostvars = listing["_meta"]["hostvars"]
    return (hosts, {g: members(g) for g in named - {"all", "ungrouped"}},
            {h: _plain(hostvars.get(h, {})) for h in hosts})


def fleet_view(inventory: Inventory) -> View:
    """fleet's reading in Ansible's terms: the connection settings put back as the
    variables they came from (the later one Ansible reads, where two are set)."""
    variables: dict[str, dict[str, Any]] = {}
    for host in inventory.hosts:
        merged = _plain(json.loads(json.dumps(dict(host.vars))))
        variables[host.name] = merged
    return ({h.name for h in inventory.hosts},
            {g: set(m) for g, m in inventory.groups.items()}, variables)


def _connection_of(hostvars: Mapping[str, Any]) -> dict[str, Any]:
    """What Ansible would connect with: of ansible_X and ansible_ssh_X, the ssh one."""
    found: dict[str, Any] = {}
    for key, field in CONNECTION_VARS.items():  # in Ansible's order: the later wins
        if hostvars.get(key) is not None:
            found[field] = hostvars[key]
    return found


def assert_reads_alike(listing: dict[str, Any], inventory: Inventory) -> None:
    hosts, groups, variables = ansible_view(listing)
    fleet_hosts, fleet_groups, fleet_vars = fleet_view(inventory)
    assert fleet_hosts == hosts
    assert fleet_groups == groups
    for host in inventory.hosts:
        expected = variables[host.name]
        assert fleet_vars[host.name] == {k: v for k, v in expected.items()
                                         if k not in CONNECTION_VARS and k != LABELS_VAR}, host
        connection = _connection_of(expected)
        assert host.address == connection.get("address", host.name), host.name
        assert host.port == int(connection.get("port", 22)), host.name
        assert host.user == connection.get("user"), host.name
        assert host.ssh_key == connection.get("ssh_key"), host.name  # as written


def fleet_reads(path: Path) -> Inventory:
    inventory, problems = load_inventory_with_problems([str(path)])
    assert errors_in(problems) == [], "\n".join(map(str, problems))
    return inventory


@pytest.mark.parametrize("name", list(INVENTORIES))
def test_fleet_reads_the_inventory_as_ansible_does(name: str,
                                                   ansible_lists: dict[str, Any]) -> None:
    assert_reads_alike(ansible_lists[name], fleet_reads(FIXTURES / name / INVENTORIES[name]))


@pytest.mark.parametrize("name", list(INVENTORIES))
def test_the_json_of_list_reads_as_the_inventory(name: str, ansible_lists: dict[str, Any],
                                                 tmp_path: Path) -> None:
    listing = tmp_path / "list.json"
    listing.write_text(json.dumps(ansible_lists[name], indent=4))
    assert_reads_alike(ansible_lists[name], fleet_reads(listing))


@pytest.mark.parametrize("name", EXPORTED)
def test_the_json_of_list_export_reads_as_ansible_reads_it(
        name: str, ansible_lists: dict[str, Any], tmp_path: Path) -> None:
    exported = tmp_path / "export.json"
    exported.write_text(json.dumps(ansible_lists[f"{name}/export"], indent=4))
    assert_reads_alike(ansible_lists[f"{name}/export/read"], fleet_reads(exported))


@pytest.mark.parametrize("name", list(SCRIPTED))
def test_hand_written_list_json_reads_as_the_script_plugin_reads_it(
        name: str, ansible_lists: dict[str, Any]) -> None:
    assert_reads_alike(ansible_lists[name], fleet_reads(FIXTURES / name / SCRIPTED[name]))
