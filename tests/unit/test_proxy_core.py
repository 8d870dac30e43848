"""The per-host proxy's pure parts: its config, what a live config says, the swap's steps."""

from __future__ import annotations

import json

import pytest

from fleet.core.diff import Finding, Kind
from fleet.core.observed import HostSnapshot, ObservedContainer
from fleet.core.plan import ActionKind, HostPlan, Order, Step, StepKind
from fleet.core.proxy import (
    HostProxy,
    ProxyAnswerError,
    Route,
    caddy_config,
    live_proxy,
    route_clashes,
    route_problems,
    swapped,
)
from fleet.core.proxy_plan import expected_upstreams, route_findings, routed_plan, with_routes

WEB = Route("web", 80, 8080, drain=3.0)
API = Route("api", 80, 9000, hostnames=("api.example.com",), paths=("/v1",))
PROXY = HostProxy("caddy:2.6", (API, WEB))
OLD = "a" * 64
NEW_ID = "b" * 64


def container(cid: str, service: str, *, state: str = "running", health: str | None = None,
              revision: int = 1) -> ObservedContainer:
    return ObservedContainer(cid, f"shop-{service}-1", state, {
        "fleet.project": "shop", "fleet.service": service, "fleet.replica": "1",
        "fleet.revision": str(revision)}, health=health)


def test_the_config_routes_specific_requests_first_and_answers_the_rest_not_found() -> None:
    config = caddy_config(PROXY, {WEB.id: ["aaaaaaaaaaaa:8080"]}, 3)
    assert config["admin"] == {"listen": "unix//fleet-proxy/r3/admin.sock"}
    server = config["apps"]["http"]["servers"]["port80"]
    assert server["listen"] == [":80"]
    ids = [r.get("@id") for r in server["routes"]]
    assert ids == ["fleet-api-80", "fleet-web-80", None]
    assert server["routes"][0]["match"] == [{"host": ["api.example.com"],
                                             "path": ["/v1", "/v1/*"]}]
    assert server["routes"][1]["handle"][0]["upstreams"] == [{"dial": "aaaaaaaaaaaa:8080"}]
    assert server["routes"][2]["handle"][0]["status_code"] == 404
    assert config["apps"]["http"]["grace_period"] == "5s"


def test_a_live_config_is_read_back_and_compared() -> None:
    config = caddy_config(PROXY, {WEB.id: ["aaaaaaaaaaaa:8080"], API.id: []}, 1)
    live = live_proxy(json.dumps(config).encode(), 1)
    assert set(live.routes) == {WEB.id, API.id}
    assert route_problems(PROXY, live, {WEB.id: ["aaaaaaaaaaaa:8080"], API.id: []}) == []
    wrong = route_problems(PROXY, live, {WEB.id: ["bbbbbbbbbbbb:8080"], API.id: []})
    assert wrong == ["route fleet-web-80 sends requests to aaaaaaaaaaaa:8080, not to "
                     "bbbbbbbbbbbb:8080"]
    fewer = HostProxy("caddy:2.6", (WEB,))
    assert route_problems(fewer, live, {WEB.id: ["aaaaaaaaaaaa:8080"]}) == [
        "route fleet-api-80 is not in the playbook"]


@pytest.mark.parametrize("answer", [b"[1,2", b'{"apps": {"http": {"servers": []}}}',
                                    b"[" * 100 + b"]" * 100, b" " * (5 * 1024 * 1024)])
def test_a_hostile_config_is_an_error_of_that_host(answer: bytes) -> None:
    with pytest.raises(ProxyAnswerError):
        live_proxy(answer, 1)


def test_an_upstream_swap_is_one_change() -> None:
    assert swapped(["aaaaaaaaaaaa:8080", "cccccccccccc:8080"], OLD, "bbbbbbbbbbbb:8080") == [
        "cccccccccccc:8080", "bbbbbbbbbbbb:8080"]
    assert swapped(["aaaaaaaaaaaa:8080"], OLD, None) == []
    assert swapped([], None, "bbbbbbbbbbbb:8080") == ["bbbbbbbbbbbb:8080"]


def test_two_services_taking_the_same_requests_clash() -> None:
    assert route_clashes([WEB, Route("blog", 80, 80)]) != []
    assert route_clashes([WEB, API]) == []


def test_only_serving_containers_are_upstreams() -> None:
    found = expected_upstreams(PROXY, [
        container(OLD, "web"), container("c" * 64, "web", health="unhealthy"),
        container("d" * 64, "web", state="exited"), container("e" * 64, "other")], "shop")
    assert found == {WEB.id: ("aaaaaaaaaaaa:8080",), API.id: ()}


def test_a_start_first_swap_gates_routes_then_drains_before_the_old_one_stops() -> None:
    from fleet.core.desired import DesiredContainer

    want = DesiredContainer("h1", "shop", "web", 1, {"networks": {}, "ports": []}, "x")
    from fleet.core.plan import recreate_action
    action = recreate_action("h1", want, container(OLD, "web"), "web:2", None, 2,
                             Order.START_FIRST, "image_changed", 30.0)
    kinds = [s.kind for s in with_routes(action, (WEB,)).steps]
    assert kinds == [StepKind.CREATE, StepKind.START, StepKind.WAIT_READY, StepKind.GATE,
                     StepKind.ROUTE, StepKind.DRAIN, StepKind.STOP, StepKind.REMOVE,
                     StepKind.RENAME]
    steps = with_routes(action, (WEB,)).steps
    route = steps[4]
    assert route.commit and route.replaces == OLD and route.target == "shop-web-1--r2"
    assert not steps[2].commit  # the new one is not the revision until it takes traffic
    assert steps[5].timeout == 3.0

    stop_first = recreate_action("h1", want, container(OLD, "web"), "web:2", None, 2,
                                 Order.STOP_FIRST, "image_changed", 30.0)
    kinds = [s.kind for s in with_routes(stop_first, (WEB,)).steps]
    assert kinds == [StepKind.RENAME, StepKind.ROUTE, StepKind.DRAIN, StepKind.STOP,
                     StepKind.CREATE, StepKind.START, StepKind.WAIT_READY, StepKind.GATE,
                     StepKind.ROUTE, StepKind.REMOVE]
    out = with_routes(stop_first, (WEB,)).steps[1]
    assert out.undo and out.undo[0].target == OLD  # back in if the new one fails


def test_a_proxy_whose_routes_differ_gets_them_loaded_again() -> None:
    proxy = HostProxy("caddy:2.6", (WEB,))
    caddy = container(NEW_ID, "fleet-proxy", revision=4)
    web = container(OLD, "web")
    live = live_proxy(json.dumps(caddy_config(proxy, {WEB.id: []}, 4)).encode(), 4)
    snapshot = HostSnapshot("h1", (caddy, web), proxy=live)
    in_sync = Finding("h1", "fleet-proxy", 1, Kind.IN_SYNC, observed=caddy)
    found = route_findings(proxy, snapshot, "shop", [in_sync])
    assert [f.kind for f in found] == [Kind.ROUTES_CHANGED]
    plan = routed_plan(HostPlan("h1", (in_sync, *found), ()), proxy, snapshot, "shop")
    [action] = plan.actions
    assert action.kind == ActionKind.ROUTES
    [step] = action.steps
    assert step.kind == StepKind.PROXY_LOAD and step.revision == 4
    routes = json.loads(step.config)["apps"]["http"]["servers"]["port80"]["routes"]
    assert routes[0]["handle"][0]["upstreams"] == [{"dial": "aaaaaaaaaaaa:8080"}]


def test_steps_read_as_a_person_would() -> None:
    step = Step(StepKind.ROUTE, "shop-web-1--r2", "x", routes=(WEB,), replaces=OLD)
    assert step.what() == "route :80: shop-web-1--r2 in, aaaaaaaaaaaa out"


def test_a_tls_port_loads_its_certificates_and_refuses_plain_routes() -> None:
    secure = Route("shop", 443, 8080, hostnames=("shop.example.com",),
                   tls=("shop_cert", "shop_key"))
    proxy = HostProxy("caddy:2.6", (secure, WEB))
    config = caddy_config(proxy, {}, 1)
    assert config["apps"]["tls"]["certificates"]["load_files"] == [
        {"certificate": "/run/secrets/shop_cert", "key": "/run/secrets/shop_key"}]
    assert config["apps"]["http"]["servers"]["port443"]["tls_connection_policies"] == [{}]
    assert "tls_connection_policies" not in config["apps"]["http"]["servers"]["port80"]
    assert proxy.secrets == ("shop_cert", "shop_key")
    assert route_clashes([secure, Route("blog", 443, 80, hostnames=("b.example.com",))])
