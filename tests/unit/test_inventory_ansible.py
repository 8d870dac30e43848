"""Ansible inventories as they are: YAML, INI, `ansible-inventory --list` JSON, var dirs."""

from __future__ import annotations

import json
from pathlib import Path

from config_support import write

from fleet.config.inventory import load_inventory, load_inventory_with_problems
from fleet.config.problems import format_key_path

EXAMPLES = Path(__file__).resolve().parents[2] / "inventories"


def test_example_ini() -> None:
    inventory = load_inventory([str(EXAMPLES / "ansible-hosts.ini")])
    assert [h.name for h in inventory.hosts] == ["bastion", "web01", "web02", "web03", "db01"]
    db = inventory.host("db01")
    assert (db.address, db.port) == ("203.0.113.50", 2222)
    assert dict(db.labels) == {"cloud": "aws", "region": "us-east-1"}
    assert inventory.host("web02").user == "deploy"
    assert inventory.host("web02").vars["http_port"] == 8080
    assert inventory.groups["prod"] == {"web01", "web02", "web03", "db01"}
    assert inventory.host("bastion").address == "203.0.113.1"


def test_yaml_inventory_with_children_and_vars(tmp_path: Path) -> None:
    path = write(tmp_path, "hosts.yml", """\
        all:
          vars: {ansible_user: ops, level: all}
          hosts:
            jump: {ansible_host: 192.0.2.1}
          children:
            web:
              vars: {level: web, ansible_ssh_private_key_file: keys/web}
              hosts:
                web1: {ansible_host: 10.0.0.1, ansible_port: 2222, level: host}
                "web2:2200": {ansible_host: 10.0.0.2}
            prod:
              children:
                web:
              vars: {level: prod}
        """)
    inventory = load_inventory([str(path)])
    web1, web2 = inventory.host("web1"), inventory.host("web2")
    assert (web1.address, web1.port, web1.user) == ("10.0.0.1", 2222, "ops")
    assert web1.ssh_key == "keys/web"  # as Ansible: read from where fleet runs, when connecting
    assert web1.vars["level"] == "host" and web2.vars["level"] == "web"  # web is prod's child
    assert (web2.address, web2.port) == ("10.0.0.2", 2200)
    assert inventory.host("jump").vars["level"] == "all"
    assert inventory.groups["prod"] == {"web1", "web2"}
    assert "ansible_host" not in web1.vars


def test_ini_inventory(tmp_path: Path) -> None:
    path = write(tmp_path, "hosts", """\
        # plain host lines first
        solo
        other:2201

        [db]
        db[a:b].example.com ansible_user=pg

        [db:vars]
        ansible_port=5022
        note="quoted value"

        [all:vars]
        ansible_user=admin
        """)
    inventory = load_inventory([str(path)])
    assert [h.name for h in inventory.hosts] == ["solo", "other", "dba.example.com",
                                                 "dbb.example.com"]
    assert inventory.host("other").port == 2201 and inventory.host("solo").user == "admin"
    dba = inventory.host("dba.example.com")
    assert (dba.user, dba.port, dba.vars["note"]) == ("pg", 5022, "quoted value")


def test_group_and_host_var_dirs(tmp_path: Path) -> None:
    write(tmp_path, "group_vars/all.yml", "ansible_user: deploy\nlevel: all\n")
    write(tmp_path, "group_vars/web/main.yml", "level: web\n")
    write(tmp_path, "host_vars/web1.yml", "level: host\nansible_host: 10.9.9.9\n")
    path = write(tmp_path, "inventory.ini", "[web]\nweb1\nweb2 level=inline\n")
    inventory = load_inventory([str(path)])
    web1, web2 = inventory.host("web1"), inventory.host("web2")
    assert web1.vars["level"] == "host" and web1.address == "10.9.9.9" and web1.user == "deploy"
    assert web2.vars["level"] == "inline"


def test_ansible_inventory_list_json(tmp_path: Path) -> None:
    listing = {
        "_meta": {"hostvars": {
            "web1": {"ansible_host": "10.0.0.1", "ansible_user": "ubuntu",
                     "fleet_labels": {"cloud": "aws"}, "tier": "front"},
            "db1": {"ansible_host": "10.0.0.2"},
        }},
        "all": {"children": ["ungrouped", "web", "aws_ec2"]},
        "web": {"hosts": ["web1"], "vars": {"team": "a"}},
        "aws_ec2": {"hosts": ["web1", "db1"]},
        "ungrouped": {"hosts": []},
    }
    path = write(tmp_path, "inventory.json", json.dumps(listing, indent=4))
    inventory = load_inventory([str(path)])
    web1 = inventory.host("web1")
    assert (web1.address, web1.user, dict(web1.labels)) == ("10.0.0.1", "ubuntu", {"cloud": "aws"})
    assert web1.vars == {"tier": "front", "team": "a"}
    assert inventory.groups["aws_ec2"] == {"web1", "db1"}
    assert "ungrouped" not in inventory.groups and "all" not in inventory.groups


def problems_of(tmp_path: Path, name: str, text: str) -> list[tuple[int, str, str]]:
    path = write(tmp_path, name, text)
    _, found = load_inventory_with_problems([str(path)])
    return [(p.line, format_key_path(p.path), p.message) for p in found]


def test_bad_ansible_yaml_is_reported_not_raised(tmp_path: Path) -> None:
    assert problems_of(tmp_path, "a.yml", "all:\n  hosts: [a, b]\n") == [
        (2, "all.hosts", "'hosts' of an Ansible group must be a mapping, e.g. hosts: {name: ...}")]
    assert problems_of(tmp_path, "b.yml", "all:\n  hosts:\n    a: {ansible_port: abc}\n") == [
        (3, "hosts.a", "host 'a': ansible_port must be a port number from 1 to 65535, got 'abc'")]
    assert problems_of(tmp_path, "c.yml", "all:\n  hosts:\n    a: just-a-string\n") == [
        (3, "all.hosts.a", "host 'a' must map to its variables (or nothing)")]
    assert problems_of(tmp_path, "d.yml", "all:\n  hostz: {}\n") == [
        (2, "all.hostz", "unknown key 'hostz' in Ansible group (hosts, children, vars)")]


def test_bad_ini_lines(tmp_path: Path) -> None:
    found = problems_of(tmp_path, "inv.ini", "[web]\nweb1 novalue\n[web:oops]\n[web:vars]\n"
                                             "nonsense\nweb2 ansible_port=99999\n")
    assert (2, "web.web1", "expected NAME=VALUE, got 'novalue'") in found
    assert (3, "web:oops", "unknown section kind ':oops'") in found
    assert (5, "web", "expected NAME=VALUE in a :vars section") in found


def test_ini_problems_point_at_their_line(tmp_path: Path) -> None:
    found = problems_of(tmp_path, "inv.ini", "[web]\na ansible_host=10.0.0.1\n"
                                             "b ansible_host=10.0.0.1\n")
    assert found == [(3, "hosts.b.address", "duplicate address 10.0.0.1:22 (also host 'a')")]
