"""Ansible inventories read as Ansible 2.14 reads them: one test per difference there was
(ranges in YAML and with a step, vars files, precedence, group priority, --list JSON,
!unsafe, `~`), each checked against what `ansible-inventory --list` printed for it."""

from __future__ import annotations

import json
from pathlib import Path

from config_support import playbook, write

from fleet.config.inventory import Inventory, load_inventory, load_inventory_with_problems
from fleet.config.problems import errors_in, format_key_path
from fleet.config.project import ProjectFiles, read_project
from fleet.core.desired import desired_state


def names(inventory: Inventory) -> list[str]:
    return [h.name for h in inventory.hosts]


def errors_of(path: Path) -> list[tuple[int, str, str]]:
    _, found = load_inventory_with_problems([str(path)])
    return [(p.line, format_key_path(p.path), p.message) for p in errors_in(found)]


# --- ranges ---------------------------------------------------------------------------


def test_yaml_host_keys_are_ranges_with_steps_letters_and_ports(tmp_path: Path) -> None:
    path = write(tmp_path, "inv.yml", """\
        all:
          children:
            web:
              hosts:
                "web[01:10:3]": {tier: front}
                "db-[a:c].example":
                "api-[a:e:2]:2200":
        """)
    inventory = load_inventory([str(path)])
    assert names(inventory) == ["web01", "web04", "web07", "web10", "db-a.example",
                                "db-b.example", "db-c.example", "api-a", "api-c", "api-e"]
    assert inventory.host("web07").vars == {"tier": "front"}
    assert {inventory.host(h).port for h in ("api-a", "api-c", "api-e")} == {2200}
    assert inventory.groups["web"] == frozenset(names(inventory))


def test_yaml_ranges_keep_the_limits(tmp_path: Path) -> None:
    path = write(tmp_path, "inv.yml", """\
        all:
          hosts:
            ok1:
            "h[0:99999999:2]":
            "x[5:1]":
        """)
    assert errors_of(path) == [
        (4, "all.hosts.h[0:99999999:2]", "host range [0:99999999:2] expands to 50,000,000 "
                                         "hosts, more than the limit of 10,000"),
        (5, "all.hosts.x[5:1]", "host range [5:1] must have begin <= end")]


def test_stride_ranges_in_ini_respect_the_limit(tmp_path: Path) -> None:
    path = write(tmp_path, "hosts", "[web]\nw[1:10:2]\nbig[0:30000:2]\n")
    assert errors_of(path) == [(3, "web.big[0:30000:2]", "host range [0:30000:2] expands to "
                                "15,001 hosts, more than the limit of 10,000")]
    assert names(load_inventory([str(write(tmp_path, "ok", "[web]\nw[1:10:2]\n"))])) == [
        "w1", "w3", "w5", "w7", "w9"]


# --- group_vars/ and host_vars/ -------------------------------------------------------


def test_var_directories_read_every_file_ansible_reads(tmp_path: Path) -> None:
    write(tmp_path, "group_vars/web/vars", "a: extensionless\norder: vars\n")
    write(tmp_path, "group_vars/web/10-main.yml", "b: main\norder: main\n")
    write(tmp_path, "group_vars/web/sub/more", "c: in a subfolder\norder: sub\n")
    write(tmp_path, "group_vars/web/20.json", '{"d": "json"}\n')
    for ignored in ("notes.txt", ".hidden.yml", "old.yml~", "conf.d/x.yml"):
        write(tmp_path, f"group_vars/web/{ignored}", "ignored: true\n")
    write(tmp_path, "group_vars/web.yml", "ignored: true\n")  # the folder comes first
    write(tmp_path, "host_vars/web1/x", "e: host folder\n")
    path = write(tmp_path, "hosts", "[web]\nweb1\n")
    assert load_inventory([str(path)]).host("web1").vars == {
        "a": "extensionless", "b": "main", "c": "in a subfolder", "d": "json",
        "order": "vars", "e": "host folder"}  # sorted: 10-main.yml, 20.json, sub/, vars


def test_the_first_vars_file_that_exists_is_the_one_read(tmp_path: Path) -> None:
    write(tmp_path, "group_vars/web", "from: extensionless\n")
    write(tmp_path, "group_vars/web.yml", "from: yml\n")
    write(tmp_path, "host_vars/web1.yaml", "host: yaml\n")
    write(tmp_path, "host_vars/web1.json", '{"host": "json"}\n')
    path = write(tmp_path, "hosts", "[web]\nweb1\n")
    assert load_inventory([str(path)]).host("web1").vars == {"from": "extensionless",
                                                             "host": "yaml"}


# --- precedence -----------------------------------------------------------------------


def test_variable_precedence_is_ansibles(tmp_path: Path) -> None:
    write(tmp_path, "group_vars/all.yml", "x: file-all\n")
    write(tmp_path, "group_vars/parent.yml", "y: file-parent\n")
    write(tmp_path, "group_vars/child.yml", "y: file-child\n")
    write(tmp_path, "host_vars/h1.yml", "z: file-host\n")
    path = write(tmp_path, "hosts.ini", """\
        [all:vars]
        x=inline-all
        [parent:children]
        child
        [parent:vars]
        y=inline-parent
        [child]
        h1 z=inline-host
        h2
        [child:vars]
        x=inline-child
        y=inline-child
        """)
    inventory = load_inventory([str(path)])
    # group_vars/ files come after every inventory group var, children after parents.
    assert inventory.host("h1").vars == {"x": "file-all", "y": "file-child", "z": "file-host"}
    assert inventory.host("h2").vars == {"x": "file-all", "y": "file-child"}
    assert inventory.host("h1").groups == ("parent", "child")


def test_groups_at_one_depth_merge_by_priority_then_name(tmp_path: Path) -> None:
    write(tmp_path, "group_vars/beta.yml", "shade: beta\n")
    write(tmp_path, "group_vars/delta.yml", "shade: delta\nansible_group_priority: 0\n")
    path = write(tmp_path, "hosts.yml", """\
        all:
          children:
            alpha: {hosts: {p1: }, vars: {color: alpha, ansible_group_priority: 10}}
            beta: {hosts: {p1: , p2: }, vars: {color: beta}}
            delta: {hosts: {p2: }, vars: {color: delta}}
        """)
    inventory = load_inventory([str(path)])
    p1, p2 = inventory.host("p1"), inventory.host("p2")
    assert p1.vars == {"color": "alpha", "shade": "beta"}  # alpha's 10 is above beta's 1
    assert p1.groups == ("beta", "alpha")
    # In a group_vars/ file the priority is a variable like any, and orders nothing.
    assert p2.vars == {"color": "delta", "shade": "delta", "ansible_group_priority": 0}


def test_ini_group_priority_and_a_bad_one(tmp_path: Path) -> None:
    path = write(tmp_path, "hosts", "[b]\nh\n[b:vars]\nansible_group_priority=9\nv=b\n"
                                    "[c]\nh\n[c:vars]\nv=c\n")
    assert load_inventory([str(path)]).host("h").vars == {"v": "b"}
    bad = write(tmp_path, "bad", "[b]\nh\n[b:vars]\nansible_group_priority=high\n")
    assert errors_of(bad) == [(1, "groups.b", "group 'b': ansible_group_priority must be a "
                                              "whole number, got 'high'")]


def test_hosts_in_no_group_get_ungrouped_vars(tmp_path: Path) -> None:
    write(tmp_path, "group_vars/ungrouped.yml", "u_file: yes\n")
    path = write(tmp_path, "hosts", "loner\n[team]\nmember\n[ungrouped:vars]\nu=inline\n")
    inventory = load_inventory([str(path)])
    assert inventory.host("loner").vars == {"u": "inline", "u_file": True}
    assert inventory.host("member").vars == {}
    assert "ungrouped" not in inventory.groups


def test_a_yaml_group_reads_its_keys_in_order(tmp_path: Path) -> None:
    path = write(tmp_path, "inv.yml", """\
        all:
          children:
            web:
              children:
                canary: {hosts: {h: {v: canary}}}
              hosts: {h: {v: web}}
        """)
    assert load_inventory([str(path)]).host("h").vars == {"v": "web"}  # set last


def test_the_ssh_connection_variable_wins_as_in_ansible(tmp_path: Path) -> None:
    path = write(tmp_path, "hosts", "h ansible_ssh_host=198.18.40.2 ansible_host=198.18.40.1 "
                                    "ansible_user=a ansible_ssh_user=b\n")
    host = load_inventory([str(path)]).host("h")
    assert (host.address, host.user) == ("198.18.40.2", "b")


def test_group_labels_apply_and_a_host_replaces_them_whole(tmp_path: Path) -> None:
    path = write(tmp_path, "inv.yml", """\
        all:
          children:
            eu:
              vars: {fleet_labels: {region: eu, cloud: aws}}
              hosts:
                a:
                b: {fleet_labels: {region: eu-west}}
        """)
    inventory = load_inventory([str(path)])
    assert dict(inventory.host("a").labels) == {"region": "eu", "cloud": "aws"}
    assert dict(inventory.host("b").labels) == {"region": "eu-west"}
    assert "fleet_labels" not in inventory.host("a").vars


# --- `~` and paths ---------------------------------------------------------------------


def test_values_are_kept_as_written_as_ansible_inventory_prints_them(tmp_path: Path) -> None:
    path = write(tmp_path, "hosts", "[web]\nw1 ansible_ssh_private_key_file=~/.ssh/k "
                                    "backup_dir=~/backups\nw2 ansible_private_key_file=k/id\n")
    inventory = load_inventory([str(path)])
    w1, w2 = inventory.host("w1"), inventory.host("w2")
    # Ansible's ssh expands `~` when it connects, and reads a relative key from where it
    # runs; so does fleet's transport. Vars are never expanded.
    assert (w1.ssh_key, w1.vars["backup_dir"]) == ("~/.ssh/k", "~/backups")
    assert w2.ssh_key == "k/id"
    assert "~" not in str(tmp_path) and w1.vars == {"backup_dir": "~/backups"}


def test_yaml_tilde_is_null_as_in_ansible(tmp_path: Path) -> None:
    path = write(tmp_path, "inv.yml", "all:\n  hosts:\n    h: {ansible_user: ~, note: ~}\n")
    host = load_inventory([str(path)]).host("h")
    assert (host.user, host.vars) == (None, {"note": None})


# --- the JSON of ansible-inventory --list ----------------------------------------------


def test_list_json_with_groups_named_only_as_children(tmp_path: Path) -> None:
    listing = {
        "_meta": {"hostvars": {"node1": {"ansible_host": "198.18.40.1", "x": 1},
                               "node2": {"ansible_host": "198.18.40.2"},
                               "stray": {"ansible_host": "198.18.40.9"}}},
        "all": {"children": ["ungrouped", "k8s_cluster", "etcd"]},
        "k8s_cluster": {"children": ["kube_control_plane", "kube_node", "calico_rr"]},
        "kube_control_plane": {"hosts": ["node1"]},
        "kube_node": {"hosts": ["node2"]},
        "etcd": ["node1"],  # the short form
    }
    path = write(tmp_path, "inventory.json", json.dumps(listing, indent=4))
    inventory, found = load_inventory_with_problems([str(path)])
    assert [str(p) for p in found] == [
        f"{path}:11:13: _meta.hostvars.stray: warning: host 'stray' is in no group: not read "
        "(Ansible ignores it too)"]
    assert names(inventory) == ["node1", "node2"]
    assert inventory.groups["calico_rr"] == frozenset()
    assert inventory.groups["k8s_cluster"] == {"node1", "node2"}
    assert inventory.groups["etcd"] == {"node1"} and inventory.host("node1").vars == {"x": 1}


def test_list_json_tagged_values(tmp_path: Path) -> None:
    listing = {"_meta": {"hostvars": {"h": {
        "ansible_host": "198.18.40.1", "banner": {"__ansible_unsafe": "{{ kept }}"},
        "nested": [{"__ansible_unsafe": "{% raw %}"}], "pw": {"__ansible_vault": "$ANSIBLE"}}}},
        "web": {"hosts": ["h"]}}
    path = write(tmp_path, "inventory.json", json.dumps(listing))
    _, found = load_inventory_with_problems([str(path)])
    assert [format_key_path(p.path) for p in errors_in(found)] == ["_meta.hostvars.h.pw"]
    del listing["_meta"]["hostvars"]["h"]["pw"]  # type: ignore[attr-defined]
    path.write_text(json.dumps(listing))
    assert load_inventory([str(path)]).host("h").vars == {"banner": "{{ kept }}",
                                                          "nested": ["{% raw %}"]}


def test_a_group_of_a_script_without_sections_is_a_host_of_that_name(tmp_path: Path) -> None:
    path = write(tmp_path, "inventory.json", '{"_meta": {"hostvars": {}}, "solo": {"k": "v"}}')
    inventory = load_inventory([str(path)])  # as Ansible's script plugin reads it
    assert names(inventory) == ["solo"] and inventory.host("solo").vars == {"k": "v"}


def test_an_inventory_plugin_config_is_refused_with_what_to_do(tmp_path: Path) -> None:
    path = write(tmp_path, "aws_ec2.yml", "plugin: amazon.aws.aws_ec2\nregions: [eu-west-1]\n")
    assert errors_of(path) == [(1, "plugin", "this configures the inventory plugin "
                                "'amazon.aws.aws_ec2', which fleet cannot run: give fleet what "
                                "`ansible-inventory -i FILE --list` prints (saved as a .json "
                                "file)")]


# --- !unsafe ---------------------------------------------------------------------------


def test_unsafe_values_are_plain_strings(tmp_path: Path) -> None:
    write(tmp_path, "group_vars/web.yml", "from_file: !unsafe '{% raw %}'\n")
    path = write(tmp_path, "inv.yml", """\
        all:
          children:
            web:
              hosts:
                h: {ansible_host: 198.18.40.1, banner: !unsafe '{{ lookup("pipe", "id") }}'}
              vars:
                number: !unsafe 12
                map: !unsafe {a: '{{ x }}', n: 3}
        """)
    assert load_inventory([str(path)]).host("h").vars == {
        "number": "12", "map": {"a": "{{ x }}", "n": 3}, "from_file": "{% raw %}",
        "banner": '{{ lookup("pipe", "id") }}'}


def test_inventory_values_are_never_templated(tmp_path: Path) -> None:
    write(tmp_path, "inv.yml", """\
        all:
          hosts:
            h: {ansible_host: 198.18.40.1, banner: !unsafe "{{ 7 * 7 }}", plain: "{{ 6 * 6 }}"}
        """)
    pb = playbook(tmp_path, """\
        web:
          image: nginx:1
          environment: {BANNER: "{{ vars.banner }}", PLAIN: "{{ vars.plain }}"}
        """)
    state = desired_state(read_project(ProjectFiles([str(pb)], [str(tmp_path / "inv.yml")]),
                                       environ={}))
    env = state.containers["h"][0].options["environment"]
    assert (env["BANNER"], env["PLAIN"]) == ("{{ 7 * 7 }}", "{{ 6 * 6 }}")


def test_ini_section_headers_as_ansible_reads_them(tmp_path: Path) -> None:
    path = write(tmp_path, "hosts", "[web]   # the web tier\nw1\n[2001:db8::1]:2222\n"
                                    "[bad section]\n")
    inventory, found = load_inventory_with_problems([str(path)])
    assert names(inventory) == ["w1", "2001:db8::1"] and inventory.host("2001:db8::1").port == 2222
    assert [(p.line, p.message) for p in errors_in(found)] == [
        (4, "invalid section '[bad section]': write [name] or [name:vars|children], no spaces")]


# --- several files, directories ---------------------------------------------------------


def test_groups_and_hosts_in_several_ansible_files_are_merged(tmp_path: Path) -> None:
    one = write(tmp_path, "one.ini", "[web]\nw1 ansible_host=198.18.41.1 tier=one\n"
                                     "[web:vars]\ncolor=blue\n")
    two = write(tmp_path, "two.yml", """\
        all:
          children:
            web:
              hosts:
                w2: {ansible_host: 198.18.41.2}
                w1: {tier: two}
              vars: {color: green}
        """)
    inventory = load_inventory([str(one), str(two)])
    assert names(inventory) == ["w1", "w2"]
    assert inventory.groups["web"] == frozenset({"w1", "w2"})
    w1 = inventory.host("w1")
    assert (w1.address, w1.vars) == ("198.18.41.1", {"tier": "two", "color": "green"})


def test_a_native_group_defined_again_is_an_error_naming_both_files(tmp_path: Path) -> None:
    native = write(tmp_path, "hosts.yml", """\
        hosts:
          w1: {address: 198.18.41.1}
        groups:
          web: {hosts: [w1]}
        """)
    other = write(tmp_path, "more.ini", "[web]\nw1\n")
    _, found = load_inventory_with_problems([str(native), str(other)])
    messages = [p.message for p in errors_in(found)]
    assert f"group 'web' is defined twice (also in {native})" in messages
    assert f"duplicate host name 'w1' (also in {native})" in messages


def test_a_directory_is_read_as_ansible_reads_a_directory_source(tmp_path: Path) -> None:
    write(tmp_path / "inv", "b-late", "[web]\nw2 ansible_host=198.18.41.2\n")
    write(tmp_path / "inv", "a-first.yml", "all:\n  hosts:\n    w1: {ansible_host: 198.18.41.1}\n")
    write(tmp_path / "inv", "old.ini", "[web]\nignored ansible_host=198.18.41.9\n")
    write(tmp_path / "inv", "README.md", "# notes\n")
    write(tmp_path / "inv", ".hidden", "[web]\nhidden ansible_host=198.18.41.8\n")
    write(tmp_path / "inv" / "sub", "c", "[db]\nd1 ansible_host=198.18.41.3\n")
    write(tmp_path / "inv" / "group_vars", "web.yml", "color: blue\n")
    write(tmp_path / "inv" / "host_vars", "d1.yml", "role: primary\n")
    inventory = load_inventory([str(tmp_path / "inv")])
    assert names(inventory) == ["w1", "w2", "d1"]
    assert inventory.host("w2").vars == {"color": "blue"}
    assert inventory.host("d1").vars == {"role": "primary"}  # the source's host_vars/


def test_a_directory_with_too_many_files_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "inv"
    folder.mkdir()
    for index in range(1001):
        (folder / f"h{index:04}").write_text("")
    _, found = load_inventory_with_problems([str(folder)])
    assert [p.message for p in errors_in(found)] == [
        "inventory directory holds more than 1000 files and directories"]


def test_a_directory_that_links_to_itself_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "inv"
    write(folder, "hosts", "[web]\nw1 ansible_host=198.18.41.1\n")
    (folder / "loop").symlink_to(folder)
    _, found = load_inventory_with_problems([str(folder)])
    assert [p.message for p in errors_in(found)] == [
        "inventory directory nests more than 16 levels of folders"]
