"""A Compose file read as a playbook: project name, x-fleet, include, extends, profiles, and
problems named where they were written (in whichever file)."""

from __future__ import annotations

from pathlib import Path

import pytest
from config_support import INVENTORY, load, problems, write

from fleet.config.compose_file import active_profiles, normalise_project_name
from fleet.config.problems import ConfigError, format_key_path
from fleet.config.secrets import reveal
from fleet.config.service import Service


def errors(directory: Path, path: Path, **kwargs: object) -> list[tuple[str, int, int, str, str]]:
    found = [p for p in problems(directory, path, **kwargs) if p.severity == "error"]
    return [(Path(p.file).name, p.line, p.column, format_key_path(p.path), p.message)
            for p in found]


def warnings(directory: Path, path: Path, **kwargs: object) -> list[str]:
    return [p.message for p in problems(directory, path, **kwargs) if p.severity == "warning"]


# -- the project name -------------------------------------------------------------------------

@pytest.mark.parametrize(("directory", "expected"), [
    ("myapp", "myapp"), ("My App", "myapp"), ("_my.app-2", "myapp-2"), ("--x_y", "x_y"),
    ("Ünïcode", "ncode"), ("..", ""),
])
def test_directory_names_are_normalised_as_compose_does(directory: str, expected: str) -> None:
    assert normalise_project_name(directory) == expected


def test_project_is_name_or_the_directory(tmp_path: Path) -> None:
    named = write(tmp_path / "Some Dir", "compose.yaml", "name: shop\nservices:\n  web: "
                                                         "{image: nginx}\n")
    assert load(tmp_path, named).project == "shop"
    unnamed = write(tmp_path / "Some Dir", "compose.yaml", "services:\n  web: {image: nginx}\n")
    assert load(tmp_path, unnamed).project == "somedir"
    fleet = write(tmp_path, "pb.yml", "project: shop\nservices:\n  web: {image: nginx}\n")
    assert load(tmp_path, fleet).project == "shop"


def test_a_directory_name_with_nothing_to_keep_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path / "__", "compose.yaml", "services:\n  web: {image: nginx}\n")
    found = errors(tmp_path, path)
    assert found[0][4].startswith("no project name: the directory name '__'")


def test_compose_project_name_is_used_only_when_the_file_names_none(tmp_path: Path) -> None:
    unnamed = write(tmp_path / "dir", "compose.yaml", "services:\n  web: {image: nginx}\n")
    assert load(tmp_path, unnamed, environ={"COMPOSE_PROJECT_NAME": "fromenv"}).project \
        == "fromenv"
    named = write(tmp_path / "dir", "compose.yaml", "name: shop\nservices:\n  web: "
                                                    "{image: nginx}\n")
    state = load(tmp_path, named, environ={"COMPOSE_PROJECT_NAME": "other"})
    assert state.project == "shop"
    assert [p.message for p in state.problems] == [
        "COMPOSE_PROJECT_NAME='other' is ignored: the file names its project 'shop'"]


def test_a_second_file_without_a_name_joins_the_first_files_project(tmp_path: Path) -> None:
    one = write(tmp_path / "a", "compose.yaml", "name: shop\nservices:\n  web: {image: nginx}\n")
    two = write(tmp_path / "b", "compose.yaml", "services:\n  api: {image: nginx}\n")
    state = load(tmp_path, one, two)
    assert state.project == "shop" and set(state.services) == {"web", "api"}


# -- x-fleet ----------------------------------------------------------------------------------

def test_x_fleet_holds_fleets_keys_at_the_top_and_in_services(tmp_path: Path) -> None:
    write(tmp_path, "inv.yml", INVENTORY)
    write(tmp_path, "s.env", "TOKEN=t0k3n\n")
    path = write(tmp_path, "compose.yaml", """\
        name: shop
        x-fleet:
          inventory: inv.yml
          secrets_file: s.env
          vars: {level: 3}
          update: {batch: 2}
        services:
          web:
            image: nginx
            environment: {T: "{{ secret('TOKEN') }}", L: "{{ vars.level }}"}
            x-fleet: {hosts: web, replicas: 2, update: {order: stop-first}}
          db:
            image: postgres
        """)
    state = load(tmp_path, path, inventory=None)
    assert state.services["web"].hosts == ("web1", "web2")
    assert state.services["web"].replicas == 2
    assert state.services["web"].update.order == "stop-first"
    assert state.services["db"].update.batch == 2
    assert state.containers["web1"][1].options["environment"]["L"] == "3"


def test_problems_under_x_fleet_name_the_key_as_written(tmp_path: Path) -> None:
    path = write(tmp_path, "compose.yaml", """\
        name: shop
        services:
          web:
            image: nginx
            x-fleet:
              replicas: many
        """)
    assert errors(tmp_path, path) == [
        ("compose.yaml", 6, 17, "services.web.x-fleet.replicas",
         "expected a whole number, got 'many'")]


def test_extension_keys_are_dropped_where_the_spec_allows_them(tmp_path: Path) -> None:
    path = write(tmp_path, "compose.yaml", """\
        name: shop
        x-anchors: {a: 1}
        services:
          web:
            image: nginx
            x-mine: 1
            ports: [{target: 80, x-note: doc}]
            deploy: {x-note: doc, resources: {limits: {cpus: "1", x-y: 2}}}
        """)
    state = load(tmp_path, path)
    assert state.containers["web1"][0].options["cpus"] == 1.0


# -- include ----------------------------------------------------------------------------------

def test_a_problem_in_an_included_file_is_told_in_that_file(tmp_path: Path) -> None:
    write(tmp_path / "sub", "inc.yml", "services:\n  api:\n    image: nginx\n    cpus: lots\n")
    path = write(tmp_path, "compose.yaml", "name: shop\ninclude: [sub/inc.yml]\n"
                                           "services:\n  web: {image: nginx}\n")
    assert errors(tmp_path, path) == [
        ("inc.yml", 4, 11, "services.api.cpus", "cpus must be a number like 0.5 or 2, got 'lots'")]


def test_an_included_files_paths_are_its_own(tmp_path: Path) -> None:
    write(tmp_path / "sub", "api.env", "FROM=sub\n")
    write(tmp_path / "sub", "inc.yml", "services:\n  api:\n    image: nginx\n"
                                       "    env_file: api.env\n")
    path = write(tmp_path, "compose.yaml", "name: shop\ninclude: [{path: sub/inc.yml}]\n"
                                           "services:\n  web: {image: nginx}\n")
    state = load(tmp_path, path)
    api = next(c for c in state.containers["web1"] if c.service == "api")
    assert reveal(api.options["environment"], state.secrets) == {"FROM": "sub"}


def test_include_cycles_and_duplicate_services_are_errors(tmp_path: Path) -> None:
    write(tmp_path, "b.yml", "include: [compose.yaml]\nservices:\n  b: {image: nginx}\n")
    path = write(tmp_path, "compose.yaml", "name: shop\ninclude: [b.yml]\n"
                                           "services:\n  b: {image: nginx}\n")
    found = errors(tmp_path, path)
    assert ("b.yml", 1, 11, "include[0]", "include cycle: compose.yaml -> b.yml -> "
            "compose.yaml") in found
    assert [f for f in found if f[4].startswith("service 'b' is defined twice")]


def test_includes_nest_only_so_deep(tmp_path: Path) -> None:
    for n in range(12):
        write(tmp_path, f"f{n}.yml", f"include: [f{n + 1}.yml]\nservices:\n  s{n}: "
                                     "{image: nginx}\n")
    write(tmp_path, "f12.yml", "services:\n  last: {image: nginx}\n")
    path = write(tmp_path, "compose.yaml", "name: shop\ninclude: [f0.yml]\nservices: {}\n")
    found = errors(tmp_path, path)
    assert any("more than 10 levels deep" in f[4] for f in found)


# -- extends ----------------------------------------------------------------------------------

def test_a_problem_inherited_through_extends_is_told_where_it_was_written(tmp_path: Path
                                                                         ) -> None:
    write(tmp_path / "lib", "base.yml", "services:\n  base:\n    image: nginx\n"
                                        "    restart: sometimes\n")
    path = write(tmp_path, "compose.yaml", """\
        name: shop
        services:
          web:
            extends: {file: lib/base.yml, service: base}
            cpus: lots
        """)
    assert sorted(errors(tmp_path, path)) == [
        ("base.yml", 4, 14, "services.base.restart",
         "bad restart policy 'sometimes': use no, always, unless-stopped or on-failure[:N]"),
        ("compose.yaml", 5, 11, "services.web.cpus",
         "cpus must be a number like 0.5 or 2, got 'lots'"),
    ]


def test_extends_merges_sequences_with_items_where_they_were_written(tmp_path: Path) -> None:
    path = write(tmp_path, "compose.yaml", """\
        name: shop
        services:
          base:
            image: nginx
            ports: ["8080:80"]
          web:
            extends: base
            ports: ["8081:81", "bad"]
        """)
    assert errors(tmp_path, path) == [
        ("compose.yaml", 8, 24, "services.web.ports[1]",
         "bad port 'bad': expected [[IP:]HOST_PORT:]CONTAINER_PORT[/PROTOCOL], e.g. '8080:80'")]


def test_extends_from_another_directory_rebases_relative_paths(tmp_path: Path) -> None:
    write(tmp_path / "lib", "base.env", "B=1\n")
    write(tmp_path / "lib", "base.yml", "services:\n  base:\n    image: nginx\n"
                                        "    env_file: [base.env]\n    volumes: ['./data:/d']\n")
    path = write(tmp_path, "compose.yaml", "name: shop\nservices:\n  web:\n"
                                           "    extends: {file: lib/base.yml, service: base}\n")
    state = load(tmp_path, path)
    # The bind source as the extending file sees it: ./lib/data, a data directory (it does
    # not exist) named by its path in the project.
    web = state.containers["web1"][0]
    assert [v["source"] for v in web.options["volumes"]] == ["fleet-data:lib/data"]
    assert list(web.options["environment"]) == ["B"]


def test_extends_across_files_and_levels(tmp_path: Path) -> None:
    write(tmp_path / "lib", "one.yml", "services:\n  one:\n    image: nginx\n"
                                       "    environment: {A: '1'}\n")
    write(tmp_path / "lib", "two.yml", "services:\n  two:\n    extends: {file: one.yml, service: "
                                       "one}\n    environment: {B: '2'}\n")
    path = write(tmp_path, "compose.yaml", "name: shop\nservices:\n  web:\n"
                                           "    extends: {file: lib/two.yml, service: two}\n"
                                           "    environment: [C=3]\n")
    state = load(tmp_path, path)
    assert state.containers["web1"][0].options["environment"] == {"A": "1", "B": "2", "C": "3"}


def test_extends_depth_is_bounded(tmp_path: Path) -> None:
    chain = "".join(f"  s{n}:\n    extends: s{n + 1}\n" for n in range(12))
    path = write(tmp_path, "compose.yaml", f"name: shop\nservices:\n{chain}  s12: "
                                           "{image: nginx}\n")
    assert any("more than 10 levels deep" in f[4] for f in errors(tmp_path, path))


# -- profiles ---------------------------------------------------------------------------------

def test_profiles_from_flags_else_compose_profiles() -> None:
    assert active_profiles(["a"], {"COMPOSE_PROFILES": "b,c"}) == {"a"}
    assert active_profiles([], {"COMPOSE_PROFILES": "b, c,"}) == {"b", "c"}
    assert active_profiles([], {}) == frozenset()


PROFILED = """\
    name: shop
    services:
      app: {image: nginx}
      debug: {image: busybox, profiles: [debug]}
      tools: {image: busybox, profiles: [tools, ops]}
    """


@pytest.mark.parametrize(("profiles", "environ", "expected"), [
    ([], {}, {"app"}),
    (["debug"], {}, {"app", "debug"}),
    ([], {"COMPOSE_PROFILES": "ops"}, {"app", "tools"}),
    (["*"], {}, {"app", "debug", "tools"}),
])
def test_services_of_inactive_profiles_are_left_out(tmp_path: Path, profiles: list[str],
                                                    environ: dict[str, str],
                                                    expected: set[str]) -> None:
    from config_support import write as write_file

    from fleet.config.project import ProjectFiles, read_project
    from fleet.core.desired import desired_state

    path = write_file(tmp_path, "compose.yaml", PROFILED)
    inventory = write_file(tmp_path, "inventory.yml", INVENTORY)
    state = desired_state(read_project(ProjectFiles([str(path)], [str(inventory)],
                                                    profiles=profiles), environ=environ))
    assert set(state.services) == expected
    assert state.inactive_services == {"app", "debug", "tools"} - expected


def test_a_not_required_dependency_on_a_missing_service_is_a_warning(tmp_path: Path) -> None:
    path = write(tmp_path, "compose.yaml", """\
        name: shop
        services:
          web:
            image: nginx
            depends_on: {cache: {condition: service_started, required: false}}
        """)
    assert warnings(tmp_path, path) == [
        "service 'cache' is not defined in the project; required: false, so it is only noted"]


# -- the rest ---------------------------------------------------------------------------------

def test_validate_reports_every_problem_at_once(tmp_path: Path) -> None:
    path = write(tmp_path, "compose.yaml", """\
        name: shop
        volumez: {}
        x-fleet: {update: {batch: lots}}
        services:
          web: {image: nginx, cpus: lots}
          db: {image: postgres, restart: sometimes}
        """)
    keys = [f[3] for f in errors(tmp_path, path)]
    assert keys == ["volumez", "x-fleet.update.batch", "services.web.cpus",
                    "services.db.restart"]


def test_older_specs_keep_their_keys_and_so_their_hashes() -> None:
    """A service using none of the fields added for Compose dumps the keys it always had."""
    options = Service.model_validate({"image": "nginx", "ports": [{"target": 80}]}
                                     ).container_options()
    assert sorted(options) == sorted([
        "image", "command", "entrypoint", "environment", "ports", "volumes", "labels",
        "restart", "healthcheck", "user", "working_dir", "hostname", "networks", "network_mode",
        "cap_add", "cap_drop", "privileged", "read_only", "tmpfs", "ulimits", "sysctls",
        "logging", "cpus", "mem_limit", "mem_reservation", "pids_limit", "stop_signal",
        "stop_grace_period", "extra_hosts", "dns", "devices", "init", "shm_size"])
    assert sorted(options["ports"][0]) == ["host_ip", "mode", "protocol", "published", "target"]


def test_container_name_names_the_container(tmp_path: Path) -> None:
    path = write(tmp_path, "compose.yaml", "name: shop\nservices:\n  web:\n    image: nginx\n"
                                           "    container_name: \"web-{{ host.name }}\"\n")
    state = load(tmp_path, path)
    assert [c.name for c in state.containers["web2"]] == ["web-web2"]


def test_a_build_only_service_is_built_on_the_controller(tmp_path: Path) -> None:
    path = write(tmp_path, "compose.yaml", "name: shop\nservices:\n  web:\n    build: .\n"
                                           "    cpus: lots\n")
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, path)
    assert [format_key_path(p.path) for p in caught.value.problems] == ["services.web.cpus"]
    path = write(tmp_path, "compose.yaml", "name: shop\nservices:\n  web:\n    build:\n"
                                           "      context: ./app\n      target: prod\n"
                                           "      args: [VERSION=2, DEBUG]\n")
    state = load(tmp_path, path)
    container = state.containers["web1"][0]
    origin = state.services["web"].image_source
    assert container.options["image"] == "shop-web"  # Compose's name for what it builds
    assert container.image_source == "controller" and origin.kind == "build"
    assert origin.build is not None and origin.build.context == str(tmp_path / "app")
    assert (origin.build.target, origin.build.args) == ("prod", (("DEBUG", ""), ("VERSION", "2")))


def test_build_beside_a_registry_image_is_ignored_with_a_warning(tmp_path: Path) -> None:
    path = write(tmp_path, "compose.yaml", "name: shop\nservices:\n  web:\n"
                                           "    image: registry.example.com/web:1\n"
                                           "    build: .\n")
    state = load(tmp_path, path)
    assert state.services["web"].image_source.kind == "registry"
    [warning] = [p for p in state.problems if p.severity == "warning"]
    assert "image_source: controller to build it" in warning.message


@pytest.mark.timeout(60)
def test_a_large_file_with_many_extends_loads_in_linear_time(tmp_path: Path) -> None:
    import time

    from fleet.config.playbook import load_playbooks

    lines = ["name: big", "services:"]
    for n in range(1000):
        lines += [f"  s{n}:", "    image: busybox:1.36", "    environment: {A: '1', B: '2'}",
                  "    x-fleet: {hosts: all, replicas: 1}", "    x-note: 1"]
    for n in range(300):
        lines += [f"  e{n}:", f"    extends: s{n}", "    environment: {C: '3'}"]
    path = write(tmp_path, "compose.yaml", "\n".join(lines) + "\n")
    started = time.monotonic()
    found, problems_found = load_playbooks([str(path)])
    assert problems_found == [] and len(found.playbooks[0].service_names) == 1300
    assert time.monotonic() - started < 10  # quadratic location copies took minutes
