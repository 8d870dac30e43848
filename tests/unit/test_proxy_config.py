"""`proxy:` in playbooks: where the proxy runs, what it serves, and what is refused where."""

from __future__ import annotations

from pathlib import Path

from config_support import load, only_error, playbook, write

from fleet.core.proxy import PORTS_SERVICE, PROXY_SERVICE

PROXIED = """\
web:
  image: shop/web:1
  hosts: web
  proxy: {ports: [80, 443], container_port: 8080, drain: 3s}
db:
  image: shop/db:1
  hosts: db
"""


def test_a_proxied_service_brings_the_proxy_to_its_hosts_only(tmp_path: Path) -> None:
    state = load(tmp_path, playbook(tmp_path, PROXIED,
                                    header="project: shop\nproxy: {image: lab/caddy:2.6}\n"))
    assert sorted(state.proxies) == ["web1", "web2"]
    names = {c.name: c for c in state.containers["web1"]}
    assert set(names) == {"shop-web-1", "shop-fleet-proxy-1", "shop-fleet-proxy-ports-1"}
    holder = names["shop-fleet-proxy-ports-1"].options
    assert [p["published"] for p in holder["ports"]] == [80, 443]
    assert names["shop-fleet-proxy-1"].options["network_mode"] == \
        "container:shop-fleet-proxy-ports-1"
    assert names["shop-fleet-proxy-1"].options["image"] == "lab/caddy:2.6"
    assert set(names["shop-web-1"].options["networks"]) == {"shop_default", "shop_fleet-proxy"}
    assert names["shop-web-1"].options["ports"] == []
    assert state.services["web"].refs.depends_on.keys() == {PROXY_SERVICE}
    assert state.services[PROXY_SERVICE].refs.depends_on.keys() == {PORTS_SERVICE}
    assert [c.service for c in state.containers["db1"]] == ["db"]
    assert state.proxies["web1"].grace == 3.0


def test_a_proxied_service_publishes_no_port(tmp_path: Path) -> None:
    problem = only_error(tmp_path, playbook(tmp_path, """\
        web:
          image: shop/web:1
          ports: ["80:8080"]
          proxy: {container_port: 8080}
        """))
    assert problem.path[:3] == ("services", "web", "ports")
    assert "publishes no host port" in problem.message


def test_the_proxy_names_are_reserved(tmp_path: Path) -> None:
    problem = only_error(tmp_path, playbook(tmp_path, """\
        fleet-proxy: {image: shop/web:1}
        web: {image: shop/web:1, proxy: {container_port: 8080}}
        """))
    assert problem.path == ("services", "fleet-proxy")


def test_two_services_on_one_port_need_host_names_or_paths(tmp_path: Path) -> None:
    problem = only_error(tmp_path, playbook(tmp_path, """\
        web: {image: shop/web:1, proxy: {container_port: 8080}}
        blog: {image: shop/blog:1, proxy: {container_port: 8080}}
        """))
    assert "same host names and paths" in problem.message


def test_a_bad_proxy_image_is_an_error_at_its_key(tmp_path: Path) -> None:
    problem = only_error(tmp_path, playbook(tmp_path, """\
        web: {image: shop/web:1, proxy: {container_port: 8080}}
        """, header="project: shop\nproxy: {image: 'Bad Image'}\n"))
    assert problem.path == ("proxy", "image")


def test_a_certificate_comes_from_a_secret_given_to_the_proxy_only(tmp_path: Path) -> None:
    write(tmp_path, "cert.pem", "CERT\n")
    write(tmp_path, "key.pem", "KEY\n")
    state = load(tmp_path, playbook(tmp_path, """\
        web:
          image: shop/web:1
          hosts: web1
          proxy: {ports: [443], container_port: 8080,
                  tls: {certificate: shop_cert, key: shop_key}}
        """, header="project: shop\nsecrets:\n  shop_cert: {file: cert.pem}\n"
                    "  shop_key: {file: key.pem}\n"))
    [proxy] = [c for c in state.containers["web1"] if c.service == PROXY_SERVICE]
    targets = [v["target"] for v in proxy.options["volumes"]]
    assert targets == ["/run/secrets/shop_cert", "/run/secrets/shop_key", "/fleet-proxy"]
    assert len(state.files["web1"]) == 2


def test_a_certificate_names_a_declared_secret(tmp_path: Path) -> None:
    problem = only_error(tmp_path, playbook(tmp_path, """\
        web:
          image: shop/web:1
          proxy: {container_port: 8080, tls: {certificate: nope, key: nope}}
        """))
    assert problem.path == ("services", "web", "proxy", "tls")


def test_queued_connections_move_to_a_new_proxy_unless_turned_off(tmp_path: Path) -> None:
    def holder(header: str) -> dict[str, object]:
        state = load(tmp_path, playbook(tmp_path, PROXIED, header=header))
        return next(c.options for c in state.containers["web1"] if c.service == PORTS_SERVICE)

    assert holder("project: shop\n")["sysctls"] == {"net.ipv4.tcp_migrate_req": "1"}
    assert not holder("project: shop\nproxy: {migrate_connections: false}\n").get("sysctls")
