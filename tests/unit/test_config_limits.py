"""Hostile configuration input: every case ends quickly, in bounded memory, with a clear
problem at its place, never a traceback.

Inputs too big to keep in tests/corpus/invalid/ are generated here; the small ones are
corpus files (lim_*, inv_lim_*). Time bounds are generous: they catch hangs, not speed.
"""

from __future__ import annotations

import fnmatch
import re
import time
import tracemalloc
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import pytest

from fleet.config import source
from fleet.config.ansible import (
    MAX_FILE_HOSTS,
    MAX_RANGE_HOSTS,
    expand_host_range,
    split_host_port,
)
from fleet.config.inventory import Host, load_inventory_with_problems
from fleet.config.inventory_model import address_problem, parse_jump
from fleet.config.patterns import PatternError, glob_matches, select_hosts
from fleet.config.problems import Problem
from fleet.config.secrets import SecretStore, token
from fleet.config.source import (
    MAX_ALIAS_CHARS,
    MAX_ALIAS_NODES,
    MAX_DEPTH,
    MAX_FILE_BYTES,
    load_yaml,
    parse_yaml,
)
from fleet.config.templating import TemplateError, base_context, render_value
from fleet.transport.ssh import jump_host
from tests.unit.config_support import playbook, problems, write

T = TypeVar("T")
SECONDS = 20.0  # a bound against hangs (seconds, not a figure): generous for loaded CI machines


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


# --- Ansible inventories ----------------------------------------------------------------


def inventory_problems(tmp_path: Path, name: str, text: str | bytes) -> list[Problem]:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return timed(lambda: load_inventory_with_problems([str(path)])[1])


@pytest.mark.parametrize(("pattern", "words"), [
    ("h[0:99999999]", "host range [0:99999999] expands to 100,000,000 hosts, more than the limit"),
    ("h[0:999]-[0:999]", "expands to 1,000,000 hosts, more than the limit of 10,000"),
    ("h[aa:zz]", "host range [aa:zz] must be of numbers ([1:9], [01:10]) or of single letters"),
    ("h[5:1]", "host range [5:1] must have begin <= end"),
    ("h[c:a]", "host range [c:a] must have begin <= end"),
    ("h[1]", "must be begin:end or begin:end:step"),
    ("h[1:]", "must specify an end value"),
    ("h[01:100]", "equal-length begin and end formats"),
    ("h[1:9:0]", "the step must be a whole number from 1"),
    ("h[1:2:3:4]", "must be begin:end or begin:end:step"),
    ("h[1:" + "9" * 5000 + "]", "must be of numbers"),
])
def test_bad_host_ranges_are_errors_at_their_line(tmp_path: Path, pattern: str,
                                                  words: str) -> None:
    with bounded(megabytes=16):
        found = inventory_problems(tmp_path, "hosts.ini", f"[web]\n{pattern} x=1\n")
    problem = one_error(found, words)
    assert (problem.line, problem.path) == (2, ("web", pattern))


@pytest.mark.parametrize(("pattern", "names"), [
    ("web[01:03]", ["web01", "web02", "web03"]),
    ("web[:2]", ["web0", "web1", "web2"]),
    ("web[1:10:4]", ["web1", "web5", "web9"]),
    ("db-[a:c]", ["db-a", "db-b", "db-c"]),
    ("x[y:B]", ["xy", "xz", "xA", "xB"]),
    ("x[a:e:2]", ["xa", "xc", "xe"]),
    ("m[1:2]-[x:y]", ["m1-x", "m1-y", "m2-x", "m2-y"]),
    ("10.0.0.[1:2]", ["10.0.0.1", "10.0.0.2"]),
])
def test_host_ranges_expand_as_ansible_does(pattern: str, names: list[str]) -> None:
    assert expand_host_range(pattern) == names


def test_range_at_the_limit_expands(tmp_path: Path) -> None:
    found = inventory_problems(tmp_path, "hosts.ini", f"[web]\nh[1:{MAX_RANGE_HOSTS}]\n")
    assert errors(found) == []


def test_total_hosts_of_a_file_are_capped(tmp_path: Path) -> None:
    lines = [f"g{i}-[1:9999]" for i in range(30)]
    found = inventory_problems(tmp_path, "hosts.ini", "[web]\n" + "\n".join(lines) + "\n")
    problem = one_error(found, f"more than {MAX_FILE_HOSTS:,} hosts in one inventory file")
    assert problem.line == 3


def test_ipv6_hosts_with_brackets_are_not_ranges(tmp_path: Path) -> None:
    assert split_host_port("[2001:db8::1]:2222") == ("2001:db8::1", 2222)
    assert expand_host_range("[2001:db8::1]:2222") == ["[2001:db8::1]:2222"]
    assert split_host_port("web1:²²") == ("web1:²²", None)  # not ASCII digits: not a port


def test_non_utf8_ini_is_a_clean_error(tmp_path: Path) -> None:
    found = inventory_problems(tmp_path, "hosts.ini", b"[web]\nweb1 ansible_user=jos\xe9\n")
    problem = one_error(found, "cannot read: not UTF-8 text (byte 0xe9)")
    assert (problem.line, problem.column) == (2, 22)


def test_nul_in_ini_is_a_clean_error(tmp_path: Path) -> None:
    found = inventory_problems(tmp_path, "hosts.ini", "[web]\nweb1\x00 ansible_host=10.0.0.1\n")
    problem = one_error(found, "control character U+0000")
    assert (problem.line, problem.column) == (2, 5)


@pytest.mark.parametrize(("text", "where", "words"), [
    ('{"all": {"hosts": ["a", "b"],}\n', (1, 30), "invalid JSON: Expecting property name"),
    ('{"web": {"hosts": ["a"]}\n', (2, 1), "invalid JSON: Expecting ',' delimiter"),
    ("{'web': {}}", (1, 2), "invalid JSON: Expecting property name enclosed in double quotes"),
    ('{"web": [1, 2] // c\n}', (1, 16), "invalid JSON"),
])
def test_malformed_json_inventory_names_line_and_column(
        tmp_path: Path, text: str, where: tuple[int, int], words: str) -> None:
    problem = one_error(inventory_problems(tmp_path, "inv.json", text), words)
    assert (problem.line, problem.column) == where


@pytest.mark.parametrize(("text", "words"), [
    ('{"_meta": [1]}', "'_meta' must be a mapping"),
    ('{"_meta": {"hostvars": []}}', "'_meta.hostvars' must be a mapping"),
    ('{"_meta": {"hostvars": {"a": 3}}}', "host 'a' must be a mapping"),
    ('{"_meta": {}, "web": {"hosts": "abc"}}', "'hosts' must be a list"),
    ('{"web": {"hosts": [{"a": 1}]}}', "a host must be named by a string"),
    ('{"_meta": {}, "web": {"children": {"a": 1}}}', "'children' must be a list"),
    ('{"_meta": {}, "web": {"vars": [1]}}', "'vars' must be a mapping"),
    ('{"_meta": {}, "web": 3}', "group 'web' must be a mapping"),
    # without _meta or lists, a JSON file is a YAML inventory written in JSON, as for Ansible
    ('{"web": {"hosts": 5}}', "'hosts' of an Ansible group must be a mapping"),
    ('{"web": {"children": {"a": 1}}}', "group 'a' must be a mapping"),
    ('{"web": {"hosts": ["a"]}, "deep": ' + "[" * 3000 + "]" * 3000 + "}", "nested more than"),
])
def test_json_inventory_of_the_wrong_shape_is_reported(tmp_path: Path, text: str,
                                                       words: str) -> None:
    one_error(inventory_problems(tmp_path, "inv.json", text), words)


@pytest.mark.parametrize("name", ["../../x", "..", "a/b", "a\\\\b", "x..y", "web\\u0000"])
def test_names_that_would_leave_the_vars_folders_are_refused(tmp_path: Path,
                                                              name: str) -> None:
    outside = tmp_path / "x.yml"
    outside.write_text("stolen: true\n")
    inventory = tmp_path / "inv" / "sub"
    (inventory / "host_vars").mkdir(parents=True)
    (inventory / "group_vars").mkdir(parents=True)
    text = f'{{"web": {{"hosts": ["{name}"]}}, "_meta": {{"hostvars": {{}}}}}}'
    path = inventory / "inv.json"
    path.write_text(text)
    inventory_, found = load_inventory_with_problems([str(path)])
    one_error(found, "cannot be used")
    assert all("stolen" not in h.vars for h in inventory_.hosts)
    group = f'{{"{name}": {{"hosts": ["web1"]}}}}'
    path.write_text(group)
    one_error(load_inventory_with_problems([str(path)])[1], "group name")


def test_ini_host_named_like_a_path_is_refused(tmp_path: Path) -> None:
    (tmp_path / "sub" / "host_vars").mkdir(parents=True)
    (tmp_path / "sub" / "x.yml").write_text("stolen: true\n")
    found = inventory_problems(tmp_path, "sub/hosts.ini", "[web]\n../x ansible_host=10.0.0.1\n")
    problem = one_error(found, "host name '../x' cannot be used")
    assert (problem.line, problem.path) == (2, ("hosts", "../x"))


def test_vars_files_linking_outside_the_inventory_are_not_read(tmp_path: Path) -> None:
    secret = tmp_path / "outside" / "creds.yml"
    secret.parent.mkdir()
    secret.write_text("password: hunter2\n")
    inventory = tmp_path / "inv"
    (inventory / "host_vars").mkdir(parents=True)
    (inventory / "host_vars" / "web1.yml").symlink_to(secret)
    (inventory / "group_vars" / "all").mkdir(parents=True)
    (inventory / "group_vars" / "all" / "x.yml").symlink_to(secret)
    (inventory / "hosts.ini").write_text("web1 ansible_host=10.0.0.1\n")
    loaded, found = load_inventory_with_problems([str(inventory / "hosts.ini")])
    assert len([p for p in found if "must be inside the inventory's folder" in p.message]) == 2
    assert "password" not in loaded.host("web1").vars


def test_vars_folders_linking_outside_or_too_large_are_not_walked(tmp_path: Path) -> None:
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "creds").write_text("password: hunter2\n")
    inventory = tmp_path / "inv"
    (inventory / "group_vars" / "web").mkdir(parents=True)
    (inventory / "group_vars" / "web" / "linked").symlink_to(tmp_path / "outside")
    (inventory / "group_vars" / "db").symlink_to(tmp_path / "outside")
    loop = inventory / "host_vars" / "web1"
    loop.mkdir(parents=True)
    (loop / "again").symlink_to(loop)  # a folder that contains itself
    (inventory / "hosts.ini").write_text("[web]\nweb1 ansible_host=10.0.0.1\n[db]\nweb1\n")
    loaded, found = timed(lambda: load_inventory_with_problems([str(inventory / "hosts.ini")]))
    assert sorted(p.message.split(",")[0] for p in found) == [
        "not read: group_vars files must be inside the inventory's folder " + str(inventory),
        "not read: group_vars files must be inside the inventory's folder " + str(inventory),
        "not read: more than 1000 files or 16 levels of folders"]
    assert "password" not in loaded.host("web1").vars


def test_ports_in_ansible_inventories_are_ascii_numbers(tmp_path: Path) -> None:
    found = inventory_problems(tmp_path, "hosts.ini", "[web]\na ansible_port=２２\n"
                               "b ansible_port=" + "9" * 5000 + "\nc ansible_port=True\n")
    assert len([p for p in errors(found) if "must be a port number" in p.message]) == 3


# --- Addresses, users, ports ------------------------------------------------------------

GOOD_ADDRESSES = ["10.0.0.1", "198.18.0.7", "2001:db8::1", "::1", "web1", "web-1.example.com",
                  "example.com.", "a" * 63 + ".example.com", "xn--bcher-kva.example",
                  "1host.example"]
BAD_ADDRESSES = ["$(reboot)", "`id`", "${HOST}", "%h", "a b", "-oProxyCommand=x", "web;id",
                 "web|id", "web&", "-web", "web-", "web_1", "a" * 64 + ".example.com",
                 ".".join(["abcdefghi"] * 26), "1.2.3.999", "010.0.0.1", "1.2.3",
                 "fe80::1%eth0", "[::1]", "web..example", "", "web\n", "wéb.example",
                 "web/1", "web:22"]


@pytest.mark.parametrize("address", GOOD_ADDRESSES)
def test_ip_literals_and_host_names_are_addresses(address: str) -> None:
    assert address_problem(address) is None


@pytest.mark.parametrize("address", BAD_ADDRESSES)
def test_anything_else_is_not_an_address(address: str) -> None:
    assert address_problem(address) is not None


@pytest.mark.parametrize("address", ["$(reboot)", "%h", "-x", "a b"])
def test_native_addresses_are_checked_at_their_key(tmp_path: Path, address: str) -> None:
    found = inventory_problems(tmp_path, "inv.yml",
                               f'hosts:\n  web1:\n    address: "{address}"\n')
    problem = one_error(found, "is not an IP address or a host name")
    assert (problem.line, problem.column, problem.path) == (3, 14, ("hosts", "web1", "address"))


@pytest.mark.parametrize(("jump", "words"), [
    ("bastion:abc", "a port must be a number from 1 to 65535, got 'abc'"),
    ("bastion:0", "got '0'"),
    ("bastion:70000", "got '70000'"),
    ("bastion:", "got ''"),
    ("ops@[2001:db8::1]:99999", "got '99999'"),
    ("[2001:db8::1]x", "write an IPv6 address as [address]:port"),
    ("[bastion]:22", "only IPv6 addresses go in brackets"),
    ("ops@$(id)", "is not an IP address or a host name"),
    ("%h:22", "is not an IP address or a host name"),
    ("-oProxyCommand=x@bastion", "is not a user name"),
])
def test_bad_jump_hosts_are_validation_errors(tmp_path: Path, jump: str, words: str) -> None:
    found = inventory_problems(tmp_path, "inv.yml",
                               f'hosts:\n  web1: {{address: 10.0.0.1, jump: "{jump}"}}\n')
    problem = one_error(found, words)
    assert (problem.line, problem.path) == (2, ("hosts", "web1", "jump"))
    defaults = inventory_problems(tmp_path, "inv.yml", f'defaults: {{jump: "{jump}"}}\n'
                                  "hosts: {web1: {address: 10.0.0.1}}\n")
    assert one_error(defaults, words).path == ("defaults", "jump")


@pytest.mark.parametrize("jump", ["bastion", "ops@bastion", "ops@bastion:2222", "10.0.0.9:22",
                                  "[2001:db8::1]:2200", "[2001:db8::1]", "2001:db8::1",
                                  "ops@198.18.0.1", "me@corp@bastion.example.com:2022"])
def test_good_jump_hosts_parse_as_the_transport_reads_them(jump: str) -> None:
    user, address, port = parse_jump(jump)
    bastion = jump_host(Host(name="web1", address="10.0.0.1", user="default", jump=jump))
    assert bastion is not None
    assert (user or "default", address, port) == (bastion.user, bastion.address, bastion.port)


@pytest.mark.parametrize(("port", "ok"), [(22, True), ("2222", True), (65535, True), (0, False),
                                          (65536, False), (True, False), (22.0, False),
                                          ("22.0", False), ("0x16", False), ("２２", False),
                                          (-1, False), ("9" * 5000, False)])
def test_ports_are_whole_numbers_from_1_to_65535(tmp_path: Path, port: object,
                                                 ok: bool) -> None:
    shown = f'"{port}"' if isinstance(port, str) else str(port).lower()
    found = errors(inventory_problems(tmp_path, "inv.yml",
                                      f"hosts:\n  web1: {{address: 10.0.0.1, port: {shown}}}\n"))
    assert (found == []) == ok, found


def test_ansible_addresses_users_and_names_are_checked(tmp_path: Path) -> None:
    found = inventory_problems(tmp_path, "hosts.ini", "[web]\n"
                               "a ansible_host='%h;id'\n"
                               "b ansible_host=10.0.0.2 ansible_user='-oProxyCommand=x'\n"
                               "web_3\n"
                               "web4 ansible_host=10.0.0.4\n")
    assert one_error(found, "'%h;id' is not an IP address").line == 2
    assert one_error(found, "'-oProxyCommand=x' is not a user name").line == 3
    problem = one_error(found, "host 'web_3' has no address and its name is not one")
    assert problem.line == 4 and problem.message.endswith("set ansible_host")
    assert not [p for p in found if "web4" in p.message]


def test_ansible_json_addresses_are_checked(tmp_path: Path) -> None:
    text = '{"_meta": {"hostvars": {"a": {"ansible_host": "$(id)"}}}, "web": {"hosts": ["a"]}}'
    one_error(inventory_problems(tmp_path, "inv.json", text), "'$(id)' is not an IP address")


def test_group_level_ansible_host_is_checked(tmp_path: Path) -> None:
    found = inventory_problems(tmp_path, "hosts.ini", "[web]\nweb1\n[web:vars]\n"
                               "ansible_host='`id`'\n")
    one_error(found, "'`id`' is not an IP address")


# --- Templates --------------------------------------------------------------------------

SECRETS = SecretStore("shop", {"P": "hunter2"}, environ={})


def render(template: str, **names: object) -> str:
    context = {**base_context("shop", SECRETS, {"HOME": "/root"}), **names}
    return str(render_value(template, context, ("environment", "X")))


def render_error(template: str, **names: object) -> str:
    with pytest.raises(TemplateError) as info:
        timed(lambda: render(template, **names))
    assert info.value.path == ("environment", "X")
    return str(info.value)


@pytest.mark.parametrize(("template", "words"), [
    ("{{ 9 ** 99999999 }}", "9 ** 99999999 is larger than 4096 bits"),
    ("{{ 2 ** 5000 }}", "2 ** 5000 is larger than 4096 bits"),
    ("{{ (2 ** 3000) * (2 ** 3000) }}", "a product larger than 4096 bits"),
    ("{{ 'x' * 10 ** 10 }}", "'*' would make more than 1,000,000"),
    ("{{ [1] * 10 ** 9 }}", "'*' would make more than 1,000,000"),
    ("{{ ['x' * 1000000] * 1000 }}", "'*' would make more than 1,000,000"),
    ("{{ 'x'|center(2000000000) }}", "|center with 2,000,000,000"),
    ("{{ ('\\n' * 100000)|indent(1000) }}", "indent would make more than"),
    ("{{ ('\\n' * 100000)|indent('x' * 1000) }}", "indent would make more than"),
    ("{{ ('a' * 100000)|replace('a', 'b' * 1000) }}", "replace would make more than"),
    ("{{ ('a' * 100000).replace('a', 'b' * 1000) }}", "replace() would make more than"),
    ("{{ ('x' * 1000)|wordwrap(1, wrapstring='y' * 10000) }}", "wordwrap would make more than"),
    ("{{ (['x' * 1000] * 900)|join('y' * 10000) }}", "join would make more than"),
    ("{{ range(1000)|list|tojson(indent=1000000) }}", "tojson would make more than"),
    ("{{ '%0999999999d' % 1 }}", "% format width 999999999"),
    ("{{ '%*d' % (999999999, 1) }}", "'*' widths in % formatting are not supported"),
    ("{{ '%0999999999d'|format(1) }}", "% format width 999999999"),
    ("{{ '{:>999999999}'.format(1) }}", "format width 999999999"),
    ("{{ '{:{w}}'.format(1, w=999999999) }}", "nested replacement fields"),
    ("{{ ('{0}' * 300000).format('x' * 1000) }}", "str.format() would make more than"),
    ("{{ 'x'.zfill(10 ** 9) }}", "str.zfill() with 1,000,000,000"),
    ("{{ (5).to_bytes(10 ** 9, 'big') }}", "int.to_bytes() with 1,000,000,000"),
    ("{{ '\\t'.expandtabs(100) }}", "str.expandtabs() is not available"),
    ("{{ 'a'.translate({97: 'b'}) }}", "str.translate() is not available"),
    ("{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
     "more than 200,000 steps"),
    ("{% macro f(n) %}{% if n %}{{ f(n - 1) }}{{ f(n - 1) }}{% endif %}{% endmacro %}{{ f(40) }}",
     "more than 200,000 steps"),
    ("{% macro d(s, n) %}{% if n %}{{ d(s ~ s, n - 1) }}{% else %}{{ s }}{% endif %}"
     "{% endmacro %}{{ d('a', 60) }}", "'~' would make more than 1,000,000"),
    ("{% set ns = namespace(s='x') %}{% for i in range(60) %}{% set ns.s = ns.s + ns.s %}"
     "{% endfor %}{{ ns.s }}", "'+' would make more than"),
    ("{% set ns = namespace(l=[]) %}{% for i in range(100000) %}{% set ns.l = ns.l + [i] %}"
     "{% endfor %}", "characters and items made in all"),
    ("{% set x %}{% for i in range(100000) %}{{ 'y' * 1000 }}{% endfor %}{% endset %}{{ x }}",
     "characters and items made in all"),
    ("{% for i in range(1100) %}{{ 'y' * 1000 }}{% endfor %}", "a result of more than 1,000,000"),
    ("{% for x in [1] recursive %}{{ loop([1]) }}{% endfor %}", "recursive loops are not"),
    ("{{ " + "(" * 5000 + "1" + ")" * 5000 + " }}", "nested too deeply"),
    ("{{ 1 }}" * 40000, "a template of more than 100,000 characters"),
])
def test_hostile_templates_end_with_a_clear_limit(template: str, words: str) -> None:
    message = render_error(template)
    assert words in message, message


def test_removed_globals_and_filters() -> None:
    assert "'lipsum' is undefined" in render_error("{{ lipsum(1000000) }}")
    assert "No filter named 'urlize'" in render_error("{{ 'x'|urlize }}")


def test_sum_of_lists_is_linear() -> None:
    assert timed(lambda: render("{{ range(100000)|batch(1)|sum(start=[])|length }}")) == "100000"


@pytest.mark.parametrize(("template", "result"), [
    ("{% for i in range(3) %}{{ i }}{% if not loop.last %},{% endif %}{% else %}-"
     "{% endfor %}", "0,1,2"),
    ("{% for i in range(100000) %}{% endfor %}done", "done"),
    ("{{ 2 ** 64 }} {{ 10 ** 1000 > 1 }} {{ 7 // 2 }} {{ 'ab' * 3 }}",
     "18446744073709551616 True 3 ababab"),
    ("{{ '%05d-%s' % (42, 'x') }} {{ '{:>4}|{}'.format(1, 'y') }} {{ '%s'|format(1) }}",
     "00042-x    1|y 1"),
    ("{{ 'a,b'.split(',')|join('+') }} {{ 'x'|indent(2, true) }} {{ 'Ab'|lower }}",
     "a+b   x ab"),
    ("{% filter upper %}a{{ 1 }}{% endfilter %}{% macro m() %}<{{ caller() }}>{% endmacro %}"
     "{% call m() %}in{% endcall %}", "A1<in>"),
    ("{{ xs|map('string')|join('-') }} {{ xs|sum }} {{ xs|tojson }} {{ [[1], [2]]|sum(start=[]) }}",
     "1-2-3 6 [1, 2, 3] [1, 2]"),
    ("{{ env('HOME') }}/{{ project }}", "/root/shop"),
    ("{{ 'x' * 1000000 }}", "x" * 1_000_000),
])
def test_ordinary_templates_still_render(template: str, result: str) -> None:
    assert timed(lambda: render(template, xs=[1, 2, 3])) == result


@pytest.mark.parametrize("template", [
    "{{ secret('P')|upper }}", "{{ secret('P')|b64encode }}", "{{ secret('P')[0] }}",
    "{{ secret('P')|reverse }}", "{{ secret('P').lower() }}", "{{ secret('P')|length }}",
    "{{ (secret('P') ~ 'x')|upper }}", "{{ [secret('P')]|join }}", "{{ secret('P') * 2 }}",
    "{% if secret('P') %}x{% endif %}", "{{ 'x' if secret('P') else 'y' }}",
    "{% set t = secret('P') %}{{ t|replace('s', 'S') }}",
    "{% set t = secret('P') %}{% set u = t ~ '' %}{{ u[1:] }}",
    "{% set t %}{{ secret('P') }}{% endset %}{{ t|upper }}",
    "{% set t %}{{ secret('P') }}{% endset %}{{ t[2:-2] }}",
    "{% macro m(v) %}{{ v }}{% endmacro %}{{ m(secret('P'))|upper }}",
    "{% set f = secret %}{{ f('P')|upper }}",
    "{% set f = secret %}{{ f('P')[2:-2] }}",
    "{% with t = secret('P') %}{{ t.upper() }}{% endwith %}",
])
def test_transforming_a_secret_is_a_validation_error(template: str) -> None:
    message = render_error(template)
    assert "secret() output cannot be transformed: use it as a whole value" in message or \
        "No filter named" in message, message


# The token's key is made per process, so the expected text is built in the test
# (parameter ids must be the same in every pytest-xdist worker): T stands for the token.
@pytest.mark.parametrize(("template", "result"), [
    ("{{ secret('P') }}", "T"),
    ("{{ secret('P') ~ 'x' }}", "Tx"),
    ("db://u:{{ secret('P') }}@h/{{ project }}", "db://u:T@h/shop"),
    ("{{ secret('P') + '!' }}", "T!"),
    ("{{ secret('P') if flag else 'none' }}", "T"),
    ("{% set t = secret('P') %}{{ t }}{{ t }}", "TT"),
    ("{% for i in range(2) %}{{ secret('P') }}{% endfor %}", "TT"),
    ("{% with t = secret('P') %}{{ t }}{% endwith %}", "T"),
])
def test_secrets_used_whole_still_render(template: str, result: str) -> None:
    assert render(template, flag=True) == result.replace("T", token("P"))


def test_template_limits_are_problems_at_their_key(tmp_path: Path) -> None:
    pb = playbook(tmp_path, """\
        web:
          image: nginx
          environment:
            BIG: "{{ 9 ** 99999999 }}"
        api:
          image: nginx
          environment: {TOKEN: "{{ secret('P')|upper }}"}
        """)
    with bounded(megabytes=64):
        found = problems(tmp_path, pb, environ={"P": "x"})
    big = one_error(found, "9 ** 99999999 is larger than 4096 bits")
    assert (big.line, big.path) == (6, ("services", "web", "environment", "BIG"))
    secret = one_error(found, "secret() output cannot be transformed")
    assert (secret.line, secret.path) == (9, ("services", "api", "environment", "TOKEN"))


@pytest.mark.parametrize("template", [
    "{{ ['x' * 1000000] * 1000 }}", "{{ ('x' * 1000000)|list }}",
    "{% set x %}{% for i in range(100000) %}{{ 'y' * 1000 }}{% endfor %}{% endset %}{{ x }}",
    "{{ (['x' * 1000] * 900)|join('y' * 10000) }}",
])
def test_template_limits_hold_memory_down(template: str) -> None:
    with bounded(seconds=20, megabytes=64), pytest.raises(TemplateError):
        render(template)


def test_aliases_of_long_strings_are_bounded_in_characters() -> None:
    text = f'big: &s "{"x" * 500_000}"\nmany: [{", ".join(["*s"] * 20)}]\n'
    with bounded(megabytes=32):
        doc = parse_yaml(text, "chars.yml")
    found = one_error(doc.problems, f"aliases expand to more than {MAX_ALIAS_CHARS:,} characters")
    assert found.line == 2
    assert parse_yaml(f'big: &s "{"x" * 500_000}"\nsome: [*s, *s]\n', "ok.yml").problems == []


# --- Host patterns ----------------------------------------------------------------------


@dataclass(frozen=True)
class Named:
    name: str
    labels: Mapping[str, str] = field(default_factory=dict)


EVIL_NAMES = [Named("a" * 5000 + "!", {"role": "a" * 5000 + "!"}), Named("web1")]


@pytest.mark.parametrize("pattern", [
    "~^(a+)+$", "~(a|a)*b", "~(a*)*b", "~^(a|aa)+$", "~^(.*a){20}$",
    "*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*b", "role=*a*a*a*a*a*a*a*a*a*a*a*a*a*b",
    "a**************************b", "&~^(a+)+$,!~(a|a)*b",
])
def test_patterns_cannot_backtrack(pattern: str) -> None:
    result = timed(lambda: select_hosts(pattern, EVIL_NAMES), seconds=2)
    assert EVIL_NAMES[0].name not in result.hosts


def test_limit_regex_is_linear_end_to_end(tmp_path: Path) -> None:
    inventory = f"hosts:\n  {'a' * 200}x: {{address: 10.0.0.1}}\n  web1: {{address: 10.0.0.2}}\n"
    pb = playbook(tmp_path, "web: {image: nginx}\n")
    found = timed(lambda: problems(tmp_path, pb, inventory=inventory, limit="~^(a+)+$"))
    assert any("matches no host" in p.message for p in found)


@pytest.mark.parametrize(("pattern", "words"), [
    ("~(a)\\1", "invalid escape sequence"),
    ("~(?=a)", "no backreferences or lookaround"),
    ("~a{1001}", "bad regular expression"),
    ("~((((a{100}){100}){100}){100})", "bad regular expression"),
    ("web" * 400, "host pattern term longer than 1,000 characters"),
    (",".join(["web1"] * 3000), "host pattern longer than 10,000 characters"),
])
def test_patterns_that_re2_refuses_are_clear_errors(pattern: str, words: str,
                                                    capfd: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(PatternError, match=re.escape(words)):
        timed(lambda: select_hosts(pattern, EVIL_NAMES))
    assert capfd.readouterr().err == ""  # RE2 logs nothing of its own


@pytest.mark.parametrize("glob", ["*", "web*", "w?b[0-9]", "[!a]*", "[]]x", "[!]]x", "[a-]",
                                  "[z-a]x", "[!z-a]x", "a[", "x\\y", "*.[ch]", "**a**", "[^a]",
                                  "é*", "[\\]", "a.b", "(x)", "$HOME", "a+b"])
def test_globs_match_as_fnmatch_does(glob: str) -> None:
    for name in ["web1", "wab5", "a", "]x", "x", "-", "ax", "zx", "a[", "x\\y", "f.c", "aaa",
                 "^", "b", "éa", "\\", "a.b", "axb", "(x)", "$HOME", "a+b", "aab", "web\n1"]:
        assert glob_matches(name, glob) == fnmatch.fnmatchcase(name, glob), (glob, name)
