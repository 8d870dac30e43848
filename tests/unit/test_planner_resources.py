"""Networks and volumes in the plan, case by case, as whole plan texts: what a host lacks is
created before the containers that need it; what stands in the way (a network or volume
fleet did not make for the project, one with other settings, a missing external one, an
Engine too old) blocks those containers and says why. Observed states come from the
simulated engine (reconcile_sim) and from real dockerd answers (tests/fixtures/docker)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from textwrap import dedent
from typing import Any

from docker_fixtures import body, load
from reconcile_sim import apply_plan

from fleet.config.project import ProjectFiles, read_project
from fleet.core import labels
from fleet.core.desired import DesiredState, desired_state
from fleet.core.diff import DiffContext, Finding, Kind, diff_host
from fleet.core.observed import (
    HostSnapshot,
    ObservedNetwork,
    ObservedVolume,
    networks_from_list,
    volumes_from_list,
)
from fleet.core.plan import HostPlan, plan_host
from fleet.core.resource_drift import HostResources, network_differences, volume_differences
from fleet.docker.bodies import network_body, volume_body

HOST = "h1"
IMAGE = "198.18.6.1:5000/demo/web:v1"
DIGEST = "sha256:" + "7" * 64
PINNED = "198.18.6.1:5000/demo/web@sha256:777777777777"
READY = "running, and healthy if it has a healthcheck"


def expect(text: str) -> str:
    return dedent(text).strip("\n")


def state_of(tmp_path: Path, text: str) -> DesiredState:
    (tmp_path / "inv.yml").write_text(f"hosts:\n  {HOST}: {{address: 198.18.9.1}}\n")
    (tmp_path / "pb.yml").write_text("project: shop\ninventory: inv.yml\n" + dedent(text))
    return desired_state(read_project(ProjectFiles([str(tmp_path / "pb.yml")]), environ={}))


def findings_of(state: DesiredState, observed: HostSnapshot) -> list[Finding]:
    context = DiffContext(state.project, frozenset(state.services), state.secrets,
                          {IMAGE: DIGEST},
                          HostResources(state.project, state.networks, state.volumes))
    return diff_host(state.containers[HOST], observed, context)


def plan_of(state: DesiredState, observed: HostSnapshot) -> HostPlan:
    return plan_host(findings_of(state, observed), observed, state.project, {IMAGE: DIGEST},
                     networks=state.networks, volumes=state.volumes)


def empty_host(**more: Any) -> HostSnapshot:
    return HostSnapshot(HOST, (), networks={}, volumes={}, api_version="1.41", **more)


def converged(state: DesiredState) -> HostSnapshot:
    """The host after the whole plan ran on an empty one (the simulated engine)."""
    observed = empty_host()
    done = apply_plan(observed, plan_of(state, observed), state.secrets)
    pinned = f"198.18.6.1:5000/demo/web@{DIGEST}"
    return dataclasses.replace(done, api_version="1.41", images=frozenset({pinned}))


COMPOSE = """
services:
  db:
    image: 198.18.6.1:5000/demo/web:v1
    volumes: ["data:/var/lib/data"]
  web:
    image: 198.18.6.1:5000/demo/web:v1
    environment: {DB_HOST: db}
volumes:
  data: {}
"""


def test_a_compose_file_without_networks_gets_the_default_network_and_its_volume(
        tmp_path: Path) -> None:
    state = state_of(tmp_path, COMPOSE)
    assert plan_of(state, empty_host()).text() == expect(f"""
        h1:
          network shop_default: driver bridge
          volume shop_data: driver local
          pull {PINNED}: needed by shop-db-1
          create shop-db-1: missing
            1. create shop-db-1 from {PINNED}, revision 1: the new container [undo: remove shop-db-1]
            2. start shop-db-1: start the new container
            3. wait-ready shop-db-1 (up to 120s): {READY} [commit]
          create shop-web-1: missing
            1. create shop-web-1 from {PINNED}, revision 1: the new container [undo: remove shop-web-1]
            2. start shop-web-1: start the new container
            3. wait-ready shop-web-1 (up to 120s): {READY} [commit]
        """)  # noqa: E501
    network, volume = (a.steps[0] for a in plan_of(state, empty_host()).actions[:2])
    assert (network.what(), network.tolerate) == (
        "network-create shop_default (driver bridge)", frozenset({409}))
    assert (volume.what(), volume.tolerate) == (
        "volume-create shop_data (driver local)", frozenset())


def test_once_converged_nothing_is_planned_and_check_finds_no_drift(tmp_path: Path) -> None:
    state = state_of(tmp_path, COMPOSE)
    done = converged(state)
    assert {f.kind for f in findings_of(state, done)} == {Kind.IN_SYNC}
    assert plan_of(state, done).text() == ""


def test_a_network_removed_behind_fleets_back_is_made_again_and_its_containers_too(
        tmp_path: Path) -> None:
    # Docker refuses to remove a network a running container is on: the containers were
    # stopped, and would not start again without it.
    state = state_of(tmp_path, COMPOSE)
    done = converged(state)
    stopped = tuple(dataclasses.replace(c, state="exited") for c in done.containers)
    gone = dataclasses.replace(done, containers=stopped, networks={})
    findings = findings_of(state, gone)
    assert [(f.kind, f.detail) for f in findings] == [
        (Kind.CONFIG_CHANGED, "network shop_default is not on the host")] * 2
    text = plan_of(state, gone).text()
    assert text.splitlines()[:3] == [
        "h1:",
        "  network shop_default: driver bridge",
        "  recreate shop-db-1 (start-first): config_changed: network shop_default is not on "
        "the host"]


def test_a_network_with_other_settings_blocks_its_containers(tmp_path: Path) -> None:
    declared = COMPOSE + """
networks:
  default:
    ipam: {config: [{subnet: 172.30.0.0/16}]}
"""
    (tmp_path / "before").mkdir()
    made_before = converged(state_of(tmp_path / "before", COMPOSE))
    state = state_of(tmp_path, declared)
    observed = dataclasses.replace(made_before, containers=())
    assert plan_of(state, observed).text() == expect("""
        h1:
          blocked shop-db-1: network shop_default on this host has other settings than declared (ipam.config: ['172.20.0.0/16'] -> ['172.30.0.0/16']); Docker can't change a network, and fleet won't replace one: remove it (`docker network rm`, once its containers are stopped) and apply again, or declare what it has
          blocked shop-web-1: network shop_default on this host has other settings than declared (ipam.config: ['172.20.0.0/16'] -> ['172.30.0.0/16']); Docker can't change a network, and fleet won't replace one: remove it (`docker network rm`, once its containers are stopped) and apply again, or declare what it has
        """)  # noqa: E501
    assert {f.kind for f in findings_of(state, observed)} == {Kind.CONFLICT}


def test_a_network_or_volume_fleet_did_not_make_for_the_project_is_not_used(
        tmp_path: Path) -> None:
    state = state_of(tmp_path, COMPOSE)
    compose_made = ObservedNetwork("shop_default", "bridge",
                                   {labels.COMPOSE_PROJECT: "shop"}, ipam_driver="default")
    other_project = ObservedVolume("shop_data", "local", {labels.PROJECT: "shop2"})
    observed = empty_host()
    observed = dataclasses.replace(observed, networks={"shop_default": compose_made},
                                   volumes={"shop_data": other_project})
    details = {f.service: f.detail for f in findings_of(state, observed)}
    assert details["web"] == (
        "network shop_default on this host is not this project's (docker compose made it "
        "for project 'shop'); fleet won't use it as its own: declare it `external: true` to "
        "use it as it is, or name yours otherwise (`name:`)")
    assert details["db"].endswith(
        "; volume shop_data on this host is not this project's (it belongs to fleet project "
        "'shop2'); fleet won't use it as its own: declare it `external: true` to use it as "
        "it is, or name yours otherwise (`name:`)")
    assert plan_of(state, observed).actions == ()


def test_external_networks_and_volumes_are_never_made_and_must_exist(tmp_path: Path) -> None:
    state = state_of(tmp_path, """
        services:
          web:
            image: 198.18.6.1:5000/demo/web:v1
            networks: [edge]
            volumes: ["media:/media"]
        networks:
          edge: {external: true, name: corp-edge}
        volumes:
          media: {external: true}
        """)
    assert plan_of(state, empty_host()).text() == expect("""
        h1:
          blocked shop-web-1: external network corp-edge does not exist on this host (fleet does not create an external network; create it there, or drop `external`); external volume media does not exist on this host (fleet does not create an external volume; create it there, or drop `external`)
        """)  # noqa: E501
    present = dataclasses.replace(
        empty_host(), networks={"corp-edge": ObservedNetwork("corp-edge", "overlay")},
        volumes={"media": ObservedVolume("media", "nfs")})
    assert [a.heading() for a in plan_of(state, present).actions] == [
        f"pull {PINNED}: needed by shop-web-1", "create shop-web-1: missing"]


def test_a_setting_the_hosts_engine_api_is_too_old_for_blocks_the_container(
        tmp_path: Path) -> None:
    state = state_of(tmp_path, """
        services:
          web:
            image: 198.18.6.1:5000/demo/web:v1
            networks:
              default: {mac_address: "02:42:ac:11:00:02"}
            volumes:
              - {type: volume, source: data, target: /logs, volume: {subpath: logs}}
        volumes:
          data: {}
        """)
    assert plan_of(state, empty_host()).text() == expect("""
        h1:
          blocked shop-web-1: volumes[0].volume.subpath needs Docker Engine API 1.45 or newer; networks.shop_default.mac_address needs Docker Engine API 1.44 or newer, and fleet speaks API 1.41 with this host's dockerd
        """)  # noqa: E501
    newer = dataclasses.replace(empty_host(), api_version="1.45")
    assert "create shop-web-1: missing" in plan_of(state, newer).text()


def test_a_fixed_address_is_replaced_stop_first_and_networks_join_by_priority(
        tmp_path: Path) -> None:
    text = """
        services:
          web:
            image: 198.18.6.1:5000/demo/web:v1
            environment: {V: "1"}
            networks:
              back: {ipv4_address: 172.30.0.10, aliases: [api]}
              front: {priority: 5}
        networks:
          back: {ipam: {config: [{subnet: 172.30.0.0/16}]}}
          front: {}
        """
    done = converged(state_of(tmp_path, text))
    old = done.containers[0].id
    (tmp_path / "v2").mkdir()
    state = state_of(tmp_path / "v2", text.replace('V: "1"', 'V: "2"'))
    assert plan_of(state, done).text() == expect(f"""
        h1:
          recreate shop-web-1 (stop-first): config_changed: environment.V: 1 -> 2
            1. rename shop-web-1 [{old}] -> shop-web-1--r1-old: set aside, so it can come back [undo: rename shop-web-1--r1-old [{old}] -> shop-web-1]
            2. stop shop-web-1--r1-old [{old}] (grace 10s): free its address(es) and name [undo: start shop-web-1--r1-old [{old}]]
            3. create shop-web-1 from {PINNED}, revision 2: the new container [undo: remove shop-web-1]
            4. connect shop-web-1 to shop_back: one network at create; the others now
            5. start shop-web-1: start the new container
            6. wait-ready shop-web-1 (up to 120s): {READY} [commit]
            7. remove shop-web-1--r1-old [{old}]: replaced by the new container
        """)  # noqa: E501


# -- real dockerd answers -------------------------------------------------------------------

def test_a_network_made_with_every_setting_reads_back_as_declared(tmp_path: Path) -> None:
    """tests/fixtures/docker/network_create_ipam.json sent what fleet sends for this
    declaration; networks_list_ipam.json is what dockerd then lists."""
    state = state_of(tmp_path, """
        services:
          web: {image: 198.18.6.1:5000/demo/web:v1, networks: [edge]}
        networks:
          edge:
            internal: true
            enable_ipv6: false
            driver_opts: {com.docker.network.bridge.enable_icc: "true"}
            labels: {com.example.tier: edge}
            ipam:
              driver: default
              config:
                - subnet: 172.28.0.0/16
                  ip_range: 172.28.5.0/24
                  gateway: 172.28.5.254
                  aux_addresses: {host1: 172.28.1.5}
        """)
    spec = state.networks["shop_edge"]
    assert network_body(spec, "shop") == load("network_create_ipam")["request_body"]
    listed = networks_from_list(body("networks_list_ipam"))
    assert network_differences(spec, listed["shop_edge"]) == []
    changed = spec.definition.model_copy(update={"internal": False})
    assert network_differences(dataclasses.replace(spec, definition=changed),
                               listed["shop_edge"]) == ["internal: True -> False"]


def test_volumes_read_back_as_declared(tmp_path: Path) -> None:
    state = state_of(tmp_path, """
        services:
          web:
            image: 198.18.6.1:5000/demo/web:v1
            volumes: ["data:/data", "scratch:/scratch"]
        volumes:
          data: {labels: {com.example.backup: daily}}
          scratch: {driver_opts: {type: tmpfs, device: tmpfs, o: size=1m}}
        """)
    sent = load("volume_create")["request_body"]
    assert volume_body(state.volumes["shop_data"], "shop") == sent
    listed = volumes_from_list(body("volumes_list"))
    assert volume_differences(state.volumes["shop_data"], listed["shop_data"]) == []
    assert volume_differences(state.volumes["shop_scratch"], listed["shop_scratch"]) == []
    assert volume_differences(state.volumes["shop_data"], listed["shop_scratch"]) == [
        "driver_opts: {'device': 'tmpfs', 'o': 'size=1m', 'type': 'tmpfs'} -> {}",
        "labels: {} -> {'com.example.backup': 'daily'}"]
