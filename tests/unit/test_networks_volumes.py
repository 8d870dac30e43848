"""Networks and volumes: Compose's rules for the default network, per-network settings and the
top-level keys, the names on the hosts, and the exact Engine bodies fleet sends for them."""

from __future__ import annotations

from pathlib import Path

import pytest
from config_support import load, only_error, playbook

from fleet.config.compose_syntax import parse_short_volume
from fleet.config.problems import format_key_path
from fleet.core.desired import DesiredContainer, DesiredState
from fleet.core.host_resources import container_api_needs, network_order
from fleet.docker.bodies import create_body, endpoint_config, network_body, volume_body


def state(tmp_path: Path, services: str, top: str = "") -> DesiredState:
    return load(tmp_path, playbook(tmp_path, services, header=f"project: shop\n{top}"))


def container(found: DesiredState, service: str) -> DesiredContainer:
    return next(c for c in found.containers["web1"] if c.service == service)


def error_at(tmp_path: Path, services: str, top: str = "") -> tuple[str, str]:
    problem = only_error(tmp_path, playbook(tmp_path, services,
                                            header=f"project: shop\n{top}"))
    return format_key_path(problem.path), problem.message


# -- the default network ----------------------------------------------------------------------

def test_services_without_networks_join_project_default_as_compose_does(tmp_path: Path) -> None:
    found = state(tmp_path, """
        db: {image: mariadb}
        wordpress: {image: wordpress, environment: {WORDPRESS_DB_HOST: db}}
        agent: {image: agent, network_mode: host}
        isolated: {image: app, network_mode: none}
        worker: {image: worker, networks: [back]}
        both: {image: app, networks: [back, default]}
        """, "networks: {back: {}}\n")
    joined = {c.service: list(c.options["networks"]) for c in found.containers["web1"]}
    assert joined == {"agent": [], "both": ["shop_back", "shop_default"], "db": ["shop_default"],
                      "isolated": [], "worker": ["shop_back"], "wordpress": ["shop_default"]}
    assert found.networks["shop_default"].key == "default"
    # Reachable by service name: the alias on every network it joins.
    db = container(found, "db")
    assert create_body(db, found.secrets, None, 1)["NetworkingConfig"] == {
        "EndpointsConfig": {"shop_default": {"Aliases": ["db"]}}}


def test_the_default_network_can_be_customised_at_the_top_level(tmp_path: Path) -> None:
    found = state(tmp_path, "web: {image: nginx}\n",
                  "networks:\n  default: {name: edge-net, driver_opts: {mtu: 1400}}\n")
    assert list(container(found, "web").options["networks"]) == ["edge-net"]
    assert network_body(found.networks["edge-net"], "shop") == {
        "Name": "edge-net", "Driver": "bridge", "CheckDuplicate": True,
        "Labels": {"fleet.project": "shop"}, "Options": {"mtu": "1400"}}


def test_an_external_default_network_is_used_as_it_is(tmp_path: Path) -> None:
    found = state(tmp_path, "web: {image: nginx}\n",
                  "networks:\n  default: {external: true, name: traefik}\n")
    assert list(container(found, "web").options["networks"]) == ["traefik"]
    assert found.networks["traefik"].external


# -- per-network settings ------------------------------------------------------------------------

def test_aliases_addresses_and_driver_options_reach_the_endpoint(tmp_path: Path) -> None:
    found = state(tmp_path, """
        api:
          image: api
          networks:
            back:
              aliases: [api, backend, backend]
              ipv4_address: 10.30.0.5
              ipv6_address: "fd00:30:0::5"
              link_local_ips: [169.254.1.1]
              driver_opts: {com.example.x: 1}
              mac_address: "02:42:AC:11:00:02"
              gw_priority: 1
            front: {priority: 100}
        """, "networks:\n  front: {}\n  back:\n    enable_ipv6: true\n    ipam: {config: "
             "[{subnet: 10.30.0.0/16}, {subnet: 'fd00:30::/64'}]}\n")
    api = container(found, "api")
    assert network_order(api.options["networks"]) == ["shop_front", "shop_back"]
    assert endpoint_config(api, "shop_back") == {
        "Aliases": ["api", "backend"],  # the service's own name once, first
        "IPAMConfig": {"IPv4Address": "10.30.0.5", "IPv6Address": "fd00:30::5",
                       "LinkLocalIPs": ["169.254.1.1"]},
        "DriverOpts": {"com.example.x": "1"},
        "MacAddress": "02:42:ac:11:00:02", "GwPriority": 1}
    assert endpoint_config(api, "shop_front") == {"Aliases": ["api"]}
    body = create_body(api, found.secrets, None, 1)
    assert body["HostConfig"]["NetworkMode"] == "shop_front"
    assert list(body["NetworkingConfig"]["EndpointsConfig"]) == ["shop_front"]
    # What the Engine takes only from some API version on (the diff blocks older hosts).
    assert container_api_needs(api.options) == [
        ((1, 44), "networks.shop_back.mac_address"), ((1, 48), "networks.shop_back.gw_priority")]


@pytest.mark.parametrize(("networks", "key", "words"), [
    ("[back, back]", "services.web.networks", "a network is listed twice"),
    ("{back: {ipv4_address: fd00::1}}", "services.web.networks.back.ipv4_address",
     "expected an IPv4 address"),
    ("{back: {ipv6_address: 10.0.0.1}}", "services.web.networks.back.ipv6_address",
     "expected an IPv6 address"),
    ("{back: {link_local_ips: [nope]}}", "services.web.networks.back.link_local_ips",
     "bad link-local IP 'nope'"),
    ("{back: {mac_address: 02-42}}", "services.web.networks.back.mac_address",
     "expected six hex pairs"),
    ("{back: {priority: high}}", "services.web.networks.back.priority", "whole number"),
    ("{back: {alias: [x]}}", "services.web.networks.back.alias",
     "unknown key 'alias' (did you mean 'aliases'?)"),
    ("[nowhere]", "services.web.networks[0]", "network 'nowhere' is not declared"),
    ("{1: {}, back: {}}", "services.web.networks.1", "network '1' is not declared"),
])
def test_bad_network_settings_point_at_their_key(tmp_path: Path, networks: str, key: str,
                                                 words: str) -> None:
    found_key, message = error_at(tmp_path, f"web:\n  image: nginx\n  networks: {networks}\n",
                                  "networks: {back: {}}\n")
    assert found_key == key and words in message


def test_a_fixed_address_cannot_be_the_gateway(tmp_path: Path) -> None:
    key, message = error_at(tmp_path, "web:\n  image: nginx\n  networks:\n"
                                      "    back: {ipv4_address: 10.0.0.254}\n",
                            "networks:\n  back: {ipam: {config: [{subnet: 10.0.0.0/24, "
                            "gateway: 10.0.0.254}]}}\n")
    assert key == "services.web.networks.back.ipv4_address"
    assert message.startswith("ipv4_address 10.0.0.254 is network 'back''s gateway")


def test_one_fixed_mac_address_for_several_replicas_is_refused(tmp_path: Path) -> None:
    key, message = error_at(tmp_path, "web:\n  image: nginx\n  replicas: 3\n  networks:\n"
                                      "    back: {mac_address: '02:42:ac:11:00:02'}\n",
                            "networks: {back: {}}\n")
    assert key == "services.web.networks.back.mac_address"
    assert "3 replicas on one host cannot all have mac_address" in message


def test_extension_keys_are_ignored_inside_networks_and_volumes(tmp_path: Path) -> None:
    found = state(tmp_path, "web:\n  image: nginx\n  networks: {back: {x-note: 1}}\n"
                            "  volumes: [{type: volume, source: data, target: /d, x-a: 1}]\n",
                  "networks: {back: {x-owner: team}}\nvolumes: {data: {x-backup: daily}}\n")
    assert list(container(found, "web").options["networks"]) == ["shop_back"]


# -- top-level networks ---------------------------------------------------------------------------

def test_every_top_level_network_key_reaches_the_create_body(tmp_path: Path) -> None:
    found = state(tmp_path, "web: {image: nginx, networks: [v6]}\n", """networks:
  v6:
    driver: bridge
    internal: true
    attachable: true
    enable_ipv6: true
    enable_ipv4: false
    labels: [com.example.team=net]
    ipam:
      config: [{subnet: "fd00:6::/64", gateway: "fd00:6::1"}]
""")
    assert network_body(found.networks["shop_v6"], "shop") == {
        "Name": "shop_v6", "Driver": "bridge", "CheckDuplicate": True,
        "Labels": {"com.example.team": "net", "fleet.project": "shop"},
        "Internal": True, "Attachable": True, "EnableIPv6": True, "EnableIPv4": False,
        "IPAM": {"Driver": "default", "Options": {},
                 "Config": [{"Subnet": "fd00:6::/64", "Gateway": "fd00:6::1"}]}}


@pytest.mark.parametrize(("definition", "key", "words"), [
    ("{external: {name: a}, name: b}", "networks.n",
     "'name' and 'external.name' differ"),
    ("{ipam: {config: [{gateway: 10.0.0.1}]}}", "networks.n.ipam.config[0]",
     "an ipam config entry needs a subnet"),
    ("{ipam: {config: [{subnet: 10.0.0.0/16, ip_range: 10.1.0.0/24}]}}",
     "networks.n.ipam.config[0].ip_range", "ip_range 10.1.0.0/24 is not inside the subnet"),
    ("{ipam: {config: [{subnet: 10.0.0.0/16, aux_addresses: {r: 10.0.0.0}}]}}",
     "networks.n.ipam.config[0].aux_addresses", "the subnet's network or broadcast address"),
    ("{ipam: {config: [{subnet: 10.0.0.0/16}, {subnet: 10.0.5.0/24}]}}", "networks.n.ipam",
     "subnets 10.0.0.0/16 and 10.0.5.0/24 overlap"),
    ("{ipam: {config: [{subnet: 10.0.0.0/16}, {subnet: 10.1.0.0/16}]}}", "networks.n",
     "the bridge driver takes one IPv4 and one IPv6 subnet at most"),
    ("{enable_ipv6: true, ipam: {config: [{subnet: 'fd00::/16'}]}}",
     "networks.n.ipam.config[0].subnet", "an IPv6 subnet's prefix must be from /48 to /126"),
    ("{name: 'bad name'}", "networks.n.name", "bad network name 'bad name'"),
    ("{drivr: x}", "networks.n.drivr", "unknown key 'drivr' (did you mean 'driver'?)"),
])
def test_bad_top_level_networks_point_at_their_key(tmp_path: Path, definition: str, key: str,
                                                   words: str) -> None:
    found_key, message = error_at(tmp_path, "web: {image: nginx, networks: [n]}\n",
                                  f"networks:\n  n: {definition}\n")
    assert found_key == key and words in message


# -- volumes -----------------------------------------------------------------------------------

def test_named_volumes_are_prefixed_with_the_project_unless_named_or_external(
        tmp_path: Path) -> None:
    found = state(tmp_path, "web:\n  image: nginx\n  volumes: [data:/a, logs:/b, media:/c]\n",
                  "volumes:\n  data:\n  logs: {name: app-logs, driver: local, "
                  "driver_opts: {type: none, o: bind, device: /srv/logs}, labels: [k=v]}\n"
                  "  media: {external: {name: nfs-media}}\n")
    sources = [m["source"] for m in container(found, "web").options["volumes"]]
    assert sources == ["shop_data", "app-logs", "nfs-media"]
    assert volume_body(found.volumes["app-logs"], "shop") == {
        "Name": "app-logs", "Driver": "local",
        "DriverOpts": {"device": "/srv/logs", "o": "bind", "type": "none"},
        "Labels": {"k": "v", "fleet.project": "shop"}}
    assert found.volumes["nfs-media"].external


def test_two_projects_on_one_host_never_share_a_volume(tmp_path: Path) -> None:
    first = state(tmp_path, "web:\n  image: nginx\n  volumes: [data:/d]\n", "volumes: {data: {}}\n")
    (tmp_path / "other").mkdir()
    other = load(tmp_path / "other", playbook(tmp_path / "other",
                                               "web:\n  image: nginx\n  volumes: [data:/d]\n",
                                               header="project: blog\nvolumes: {data: {}}\n"))
    assert set(first.volumes) == {"shop_data"} and set(other.volumes) == {"blog_data"}


@pytest.mark.parametrize(("text", "expected"), [
    ("/srv:/srv:ro,Z", {"type": "bind", "source": "/srv", "target": "/srv", "read_only": True,
                        "bind": {"selinux": "Z"}}),
    ("/srv:/srv:z,rprivate", {"type": "bind", "source": "/srv", "target": "/srv",
                              "read_only": False,
                              "bind": {"propagation": "rprivate", "selinux": "z"}}),
    ("data:/d:nocopy,cached", {"type": "volume", "source": "data", "target": "/d",
                               "read_only": False, "volume": {"nocopy": True},
                               "consistency": "cached"}),
])
def test_short_volume_modes_are_kept(text: str, expected: dict[str, object]) -> None:
    assert parse_short_volume(text) == expected


@pytest.mark.parametrize(("text", "words"), [
    ("/a:/b:ro,rw", "contradictory modes"),
    ("/a:/b:z,Z", "contradictory modes"),
    ("/a:/b:shared,slave", "more than one propagation mode"),
    ("/a:/b:nocopy", "nocopy applies to named volumes"),
    ("data:/b:rshared", "apply to bind mounts"),
])
def test_short_volume_modes_that_cannot_apply_are_refused(text: str, words: str) -> None:
    with pytest.raises(ValueError, match=words):
        parse_short_volume(text)


def test_bind_selinux_goes_through_binds_and_recursive_through_mounts(tmp_path: Path) -> None:
    found = state(tmp_path, """
        web:
          image: nginx
          volumes:
            - {type: bind, source: /a, target: /a, bind: {selinux: Z, propagation: shared}}
            - {type: bind, source: /b, target: /b, read_only: true,
               bind: {create_host_path: false, recursive: readonly}}
            - {type: tmpfs, target: /t, tmpfs: {mode: 0o700, size: 1m}}
        """)
    web = container(found, "web")
    host_config = create_body(web, found.secrets, None, 1)["HostConfig"]
    assert host_config["Binds"] == ["/a:/a:rw,shared,Z"]
    assert host_config["Mounts"] == [
        {"Type": "bind", "Source": "/b", "Target": "/b", "ReadOnly": True,
         "BindOptions": {"ReadOnlyForceRecursive": True}},
        {"Type": "tmpfs", "Target": "/t", "ReadOnly": False,
         "TmpfsOptions": {"SizeBytes": 1024**2, "Mode": 0o700}}]
    assert container_api_needs(web.options) == [((1, 44), "volumes[1].bind.recursive")]


@pytest.mark.parametrize(("mount", "words"), [
    ("{type: bind, source: /a, target: /a, bind: {recursive: disabled}}",
     "bind.recursive: disabled needs create_host_path: false"),
    ("{type: bind, source: /a, target: /a, bind: {create_host_path: false, "
     "recursive: writable}}", "applies to a read_only mount"),
    ("{type: volume, source: data, target: /a, tmpfs: {size: 1m}}",
     "'tmpfs' options apply to tmpfs mounts, not to a volume mount"),
    ("{type: tmpfs, target: /a, tmpfs: {mode: '99'}}", "bad mode '99': expected octal digits"),
    ("{type: npipe, source: x, target: /a}", "named pipes exist on Windows hosts only"),
])
def test_mount_options_that_cannot_apply_are_refused(tmp_path: Path, mount: str,
                                                     words: str) -> None:
    key, message = error_at(tmp_path, f"web:\n  image: nginx\n  volumes:\n    - {mount}\n",
                            "volumes: {data: {}}\n")
    assert key.startswith("services.web.volumes[0]") and words in message


def test_a_named_volume_must_be_declared_an_anonymous_one_need_not(tmp_path: Path) -> None:
    key, message = error_at(tmp_path, "web:\n  image: nginx\n  volumes: [/tmp, cache:/c]\n")
    assert key == "services.web.volumes[1]"
    assert message.startswith("volume 'cache' is not declared in the playbook's top-level "
                              "'volumes:' (Compose's rule)")
