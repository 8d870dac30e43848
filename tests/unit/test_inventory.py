"""Native inventories: defaults, groups, children, match, variables, duplicates."""

from __future__ import annotations

from pathlib import Path

from config_support import write

from fleet.config.inventory import load_inventory, load_inventory_with_problems
from fleet.config.problems import format_key_path

EXAMPLES = Path(__file__).resolve().parents[2] / "inventories"


def inventory_problems(tmp_path: Path, text: str) -> list[tuple[int, int, str, str, str]]:
    path = write(tmp_path, "inv.yml", text)
    _, found = load_inventory_with_problems([str(path)])
    return [(p.line, p.column, format_key_path(p.path), p.severity, p.message) for p in found]


def test_example_multicloud() -> None:
    inventory = load_inventory([str(EXAMPLES / "multicloud.yml")])
    web1 = inventory.host("aws-use1-web1")
    assert (web1.address, web1.user, web1.port, web1.jump) == (
        "203.0.113.10", "deploy", 22, "bastion.example.com")
    assert web1.ssh_key and web1.ssh_key.endswith("/.ssh/id_ed25519")
    assert web1.vars == {"domain": "example.com", "registry": "registry.example.com",
                         "tier": "prod", "weight": 3}
    assert inventory.groups["eu"] == {"gcp-euw1-web1", "hetzner-fsn1-web1",
                                      "hetzner-fsn1-worker1"}  # "eu*" matches europe-west1
    assert "aws-use1-web1" in inventory.groups["prod"]


def test_defaults_and_overrides(tmp_path: Path) -> None:
    path = write(tmp_path, "inv.yml", """\
        defaults: {user: deploy, port: 2200, ssh_key: keys/id, labels: {cloud: aws}}
        hosts:
          a:
          b: {address: b.example.com, user: root, port: 22, labels: {cloud: gcp, extra: x}}
        """)
    inventory = load_inventory([str(path)])
    a, b = inventory.hosts
    assert (a.address, a.user, a.port) == ("a", "deploy", 2200)
    assert a.ssh_key == str(tmp_path / "keys/id")
    assert a.host_key_checking == "strict" and a.docker_socket == "/var/run/docker.sock"
    assert (b.address, b.user, b.port) == ("b.example.com", "root", 22)
    assert dict(b.labels) == {"cloud": "gcp", "extra": "x"}


def test_variable_precedence(tmp_path: Path) -> None:
    path = write(tmp_path, "inv.yml", """\
        hosts:
          h: {vars: {v: host}}
          g: {}
        groups:
          zz_parent: {children: [aa_child], vars: {v: parent, p: 1}}
          aa_child: {hosts: [h, g], vars: {v: child}}
          other: {hosts: [g], vars: {v: other}}
        vars: {v: inventory, i: 1}
        """)
    inventory = load_inventory([str(path)])
    assert inventory.host("h").vars == {"v": "host", "p": 1, "i": 1}
    # parents before children even when a parent sorts after; same depth: by name
    assert inventory.host("g").vars["v"] == "child"
    assert inventory.host("g").groups == ("other", "zz_parent", "aa_child")


def test_match_groups_and_children(tmp_path: Path) -> None:
    path = write(tmp_path, "inv.yml", """\
        hosts:
          a: {labels: {region: eu-west}}
          b: {labels: {region: us-east}}
        groups:
          eu: {match: "region=eu-*"}
          all_regions: {children: [eu, us]}
          us: {hosts: [b]}
        """)
    inventory = load_inventory([str(path)])
    assert inventory.groups["eu"] == {"a"} and inventory.groups["all_regions"] == {"a", "b"}


def test_duplicate_host_names_across_files(tmp_path: Path) -> None:
    one = write(tmp_path, "one.yml", "hosts:\n  a: {address: 10.0.0.1}\n")
    two = write(tmp_path, "two.yml", "hosts:\n  b: {address: 10.0.0.2}\n  a: {address: 10.0.0.3}\n")
    _, found = load_inventory_with_problems([str(one), str(two)])
    [problem] = found
    assert (problem.file, problem.line, problem.column) == (str(two), 3, 3)
    assert problem.message == f"duplicate host name 'a' (also in {one})"


def test_duplicate_host_name_in_one_file(tmp_path: Path) -> None:
    assert inventory_problems(tmp_path, "hosts:\n  a: {}\n  a: {}\n") == [
        (3, 3, "hosts.a", "error", "duplicate key 'a'")]


def test_duplicate_addresses(tmp_path: Path) -> None:
    found = inventory_problems(tmp_path, "hosts:\n  a: {address: 10.0.0.1}\n"
                                         "  b: {address: 10.0.0.1}\n  c: {address: 10.0.0.1, "
                                         "port: 2222}\n  d: {address: a}\n")
    assert found == [
        (3, 16, "hosts.b.address", "error", "duplicate address 10.0.0.1:22 (also host 'a')")]


def test_inventory_errors(tmp_path: Path) -> None:
    found = inventory_problems(tmp_path, """\
        defaults: {host_key_checking: off, prot: 22}
        hosts:
          a: {port: 70000, labels: {n: 1}}
        groups:
          g: {hosts: [a, ghost], children: [nope], match: "web,,x"}
          loop1: {children: [loop2]}
          loop2: {children: [loop1]}
        """)
    assert (1, 31, "defaults.host_key_checking", "error",
            "must be one of strict or accept-new; got False") in found
    assert (1, 36, "defaults.prot", "error", "unknown key 'prot' (did you mean 'port'?)") in found
    assert (3, 13, "hosts.a.port", "error",
            "a port must be a number from 1 to 65535, got 70000") in found
    assert (3, 32, "hosts.a.labels.n", "error", "expected a string, got 1") in found
    assert len(found) == 4  # the model is invalid: groups are not resolved
    found = inventory_problems(tmp_path, """\
        hosts: {a: {}}
        groups:
          g: {hosts: [a, ghost], children: [nope], match: "web,,x"}
          loop1: {children: [loop2]}
          loop2: {children: [loop1]}
          empty: {match: "cloud=none"}
        """)
    assert (3, 18, "groups.g.hosts[1]", "error", "unknown host 'ghost'") in found
    assert (3, 37, "groups.g.children[0]", "error", "unknown group 'nope'") in found
    assert (3, 51, "groups.g.match", "error", "bad host pattern 'web,,x': empty term") in found
    assert (4, 21, "groups.loop1.children", "error",
            "groups contain each other: loop1 -> loop2 -> loop1") in found
    assert (6, 18, "groups.empty.match", "warning", "pattern 'cloud=none' matches no host") in found


def test_misspelt_native_key_is_not_read_as_ansible(tmp_path: Path) -> None:
    assert inventory_problems(tmp_path, "hosts: {a: {}}\ngrups: {}\n") == [
        (2, 1, "grups", "error", "unknown key 'grups' (did you mean 'groups'?)")]


def test_empty_and_non_mapping_inventories(tmp_path: Path) -> None:
    assert inventory_problems(tmp_path, "# nothing\n") == [
        (1, 1, "", "warning", "inventory is empty")]
    assert inventory_problems(tmp_path, "- a\n- b\n") == [
        (1, 1, "", "error", "an inventory must be a mapping")]
