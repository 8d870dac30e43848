"""The per-host proxy (pure): what it serves, the containers it runs in, its Caddy config,
and what a host's live config says.

Why Caddy: its whole config is JSON and its admin API changes it atomically (each change is a
graceful reload: requests in flight finish on the config they started on), it reads TLS
certificates from files and gets them by ACME itself, and on Linux its listeners set
SO_REUSEPORT, so a second Caddy can listen on the same ports while the first one drains:
the proxy's own image changes without a gap.

On a host, the proxy is two containers of the project:
- `fleet-proxy-ports` (the holder) owns the host ports and the network namespace, on the
  project's `fleet-proxy` network. It runs nothing but a wait, so it never needs replacing
  unless the ports change.
- `fleet-proxy` (Caddy) runs in the holder's network namespace. Replaced start-first, like any
  container without host ports: the new Caddy listens beside the old one, is given the
  routes, and the old one stops gracefully.
Proxied containers publish no port; they join `fleet-proxy` and the proxy dials them by their
short container id (Docker's DNS resolves it on the network), so a rename changes nothing.
Each Caddy's admin API is a unix socket in the project's data directory on the host,
`binds/proxy/r<REVISION>/admin.sock`, reached over the host's SSH connection.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from fleet.core.untrusted import describe_invalid, parse_json

PROXY_SERVICE = "fleet-proxy"  # the Caddy container(s)
PORTS_SERVICE = "fleet-proxy-ports"  # the holder of the host ports
PROXY_SERVICES = frozenset({PROXY_SERVICE, PORTS_SERVICE})
PROXY_NETWORK = "fleet-proxy"  # the project's network the proxy and proxied containers share
PROXY_DATA = "proxy"  # the project's data directory (fleet.core.files) the proxy writes
PROXY_ROOT = "/fleet-proxy"  # ...as the proxy's containers see it
REVISION_ENV = "FLEET_PROXY_REVISION"  # set at create: names the container's own directory
MAX_CONFIG_BYTES = 4 * 1024 * 1024  # a live config read from a host
MIGRATE_SYSCTL = "net.ipv4.tcp_migrate_req"
STOP_MARGIN = 5.0  # seconds past the longest drain the old Caddy gets to finish

# The holder: a wait that ends on SIGTERM (sleep as PID 1 would ignore it).
HOLDER_SCRIPT = "trap 'exit 0' TERM INT; while :; do sleep 3600 & wait $!; done"
# Caddy, its admin API on a socket of its own (an old and a new Caddy run side by side while
# the proxy is replaced: a shared socket would be unlinked by the old one's exit) and its
# config saved beside it, so a restart (`--resume`) serves the routes it had.
PROXY_SCRIPT = (
    'set -e; dir="' + PROXY_ROOT + '/r${' + REVISION_ENV + ':-0}"; mkdir -p "$dir"; '
    'printf \'{"admin":{"listen":"unix/%s/admin.sock"}}\' "$dir" > "$dir/initial.json"; '
    'export XDG_CONFIG_HOME="$dir/config" XDG_DATA_HOME="' + PROXY_ROOT + '/data"; '
    'exec caddy run --resume --config "$dir/initial.json"')


@dataclass(frozen=True)
class Route:
    """A service served on one host port of the proxy."""

    service: str
    port: int  # the host port the proxy listens on
    container_port: int
    hostnames: tuple[str, ...] = ()
    paths: tuple[str, ...] = ()
    drain: float = 5.0
    tls: tuple[str, str] | None = None  # (certificate, key): top-level secrets' names

    @property
    def id(self) -> str:
        """Its `@id` in Caddy's config: what the admin API addresses it by."""
        return f"fleet-{self.service}-{self.port}"

    def summary(self) -> str:
        names = ",".join(self.hostnames) or "*"
        paths = ",".join(self.paths) or "/"
        return f":{self.port} {names}{paths if paths != '/' else ''} -> :{self.container_port}"


@dataclass(frozen=True)
class HostProxy:
    """A host's proxy as the playbook wants it."""

    image: str
    routes: tuple[Route, ...]
    migrate_connections: bool = True  # net.ipv4.tcp_migrate_req in its namespace

    @property
    def ports(self) -> tuple[int, ...]:
        return tuple(sorted({r.port for r in self.routes}))

    @property
    def services(self) -> frozenset[str]:
        return frozenset(r.service for r in self.routes)

    @property
    def grace(self) -> float:
        return max((r.drain for r in self.routes), default=0.0)

    def routes_of(self, service: str) -> tuple[Route, ...]:
        return tuple(r for r in self.routes if r.service == service)

    @property
    def tls_ports(self) -> frozenset[int]:
        return frozenset(r.port for r in self.routes if r.tls)

    @property
    def secrets(self) -> tuple[str, ...]:
        """The secrets its certificates come from: mounted at /run/secrets/NAME."""
        return tuple(sorted({name for r in self.routes if r.tls for name in r.tls}))


def route_clashes(routes: Sequence[Route]) -> list[tuple[str, str]]:
    """(service, why) for each route that takes the same requests as another's."""
    seen: dict[tuple[int, tuple[str, ...], tuple[str, ...]], str] = {}
    found = []
    secure = {r.port for r in routes if r.tls}
    for route in routes:
        if route.port in secure and not route.tls:
            found.append((route.service, f"port {route.port} serves HTTPS for another "
                                         "service: give this one 'tls' too, or another port"))
        key = (route.port, tuple(sorted(route.hostnames)), tuple(sorted(route.paths)))
        other = seen.setdefault(key, route.service)
        if other != route.service:
            found.append((route.service, f"service '{other}' is served on port {route.port} "
                                         "for the same host names and paths: give one of "
                                         "them 'hostnames' or 'paths'"))
    return found


def upstream(container_id: str, port: int) -> str:
    """How the proxy dials a container: its short id, which Docker's DNS resolves."""
    return f"{container_id[:12]}:{port}"


def admin_socket(data_root: str, revision: int) -> str:
    """The admin socket of revision `revision` of the proxy, on the host (`data_root`: the
    project's data directory there)."""
    return f"{data_root}/{PROXY_DATA}/r{revision}/admin.sock"


def admin_listen(revision: int) -> str:
    return f"unix/{PROXY_ROOT}/r{revision}/admin.sock"


def holder_service(proxy: HostProxy) -> dict[str, Any]:
    """The holder as a Compose service (validated and rendered like the playbook's)."""
    service: dict[str, Any] = {
        "image": proxy.image, "entrypoint": ["sh", "-c", HOLDER_SCRIPT],
        "ports": [f"{port}:{port}" for port in proxy.ports],
        "networks": [PROXY_NETWORK], "restart": "unless-stopped",
        "stop_grace_period": "2s", "labels": {}}
    if proxy.migrate_connections:
        # The namespace is the holder's, and Caddy shares it: when an old Caddy closes its
        # listeners, the connections in their queues go to the new one's (SO_REUSEPORT).
        service["sysctls"] = {MIGRATE_SYSCTL: "1"}
    return service


def proxy_service(proxy: HostProxy, holder_name: str) -> dict[str, Any]:
    """Caddy as a Compose service, in the holder's network namespace (its directory on the
    host is mounted by fleet: `data_mount`)."""
    service: dict[str, Any] = {
        "image": proxy.image, "entrypoint": ["sh", "-c", PROXY_SCRIPT],
        "network_mode": f"container:{holder_name}", "restart": "unless-stopped",
        "stop_grace_period": f"{int(proxy.grace + STOP_MARGIN)}s"}
    if proxy.secrets:
        service["secrets"] = list(proxy.secrets)
    return service


def data_mount() -> dict[str, Any]:
    """The proxy's directory on the host (fleet.core.files' data directory), as a mount."""
    return {"type": "bind", "source": f"fleet-data:{PROXY_DATA}", "target": PROXY_ROOT,
            "read_only": False, "bind": None, "volume": None, "tmpfs": None}


# -- the config Caddy is given ---------------------------------------------------------------


def _matcher(route: Route) -> list[dict[str, Any]]:
    match: dict[str, Any] = {}
    if route.hostnames:
        match["host"] = list(route.hostnames)
    if route.paths and route.paths != ("/",):
        match["path"] = [p for prefix in route.paths for p in (prefix, f"{prefix}/*")]
    return [match] if match else []


def route_config(route: Route, upstreams: Sequence[str]) -> dict[str, Any]:
    config: dict[str, Any] = {
        "@id": route.id,
        "handle": [{"handler": "reverse_proxy",
                    "upstreams": [{"dial": dial} for dial in upstreams]}],
        "terminal": True}
    if _matcher(route):
        config["match"] = _matcher(route)
    return config


def _specificity(route: Route) -> tuple[int, int, str]:
    """Routes with host names first, then longer paths: Caddy takes the first that matches."""
    longest = max((len(p) for p in route.paths), default=0)
    return (0 if route.hostnames else 1, -longest, route.id)


def caddy_config(proxy: HostProxy, upstreams: Mapping[str, Sequence[str]],
                 revision: int) -> dict[str, Any]:
    """The whole config of revision `revision` of the proxy: one server per host port, each
    route to the given upstreams (by route id)."""
    servers: dict[str, Any] = {}
    for port in proxy.ports:
        routes = sorted((r for r in proxy.routes if r.port == port), key=_specificity)
        servers[f"port{port}"] = {
            "listen": [f":{port}"],
            # fleet's certificates only (ACME would be Caddy's automatic HTTPS: README)
            "automatic_https": {"disable": True},
            **({"tls_connection_policies": [{}]} if port in proxy.tls_ports else {}),
            # What no route takes is not found (Caddy's own answer would be an empty 200).
            "routes": [*(route_config(r, upstreams.get(r.id, ())) for r in routes),
                       {"handle": [{"handler": "static_response", "status_code": 404,
                                    "body": "not found\n"}]}]}
    apps: dict[str, Any] = {"http": {"grace_period": f"{proxy.grace:g}s", "servers": servers}}
    pairs = sorted({r.tls for r in proxy.routes if r.tls})
    if pairs:
        apps["tls"] = {"certificates": {"load_files": [
            {"certificate": f"/run/secrets/{cert}", "key": f"/run/secrets/{key}"}
            for cert, key in pairs]}}
    return {"admin": {"listen": admin_listen(revision)}, "apps": apps}


# -- what a host's proxy says ----------------------------------------------------------------


class _Loose(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class _Upstream(_Loose):
    dial: str = Field(default="", max_length=300)


class _Handler(_Loose):
    handler: str = Field(default="", max_length=100)
    upstreams: list[_Upstream] = Field(default=[], max_length=1000)


class _Route(_Loose):
    id: str = Field(default="", alias="@id", max_length=300)
    handle: list[_Handler] = Field(default=[], max_length=100)
    match: list[dict[str, Any]] = Field(default=[], max_length=100)


class _Server(_Loose):
    listen: list[str] = Field(default=[], max_length=100)
    routes: list[_Route] = Field(default=[], max_length=1000)


class _Http(_Loose):
    servers: dict[str, _Server] = Field(default={}, max_length=1000)


class _Apps(_Loose):
    http: _Http = _Http()


class _Config(_Loose):
    apps: _Apps = _Apps()


@dataclass(frozen=True)
class LiveRoute:
    id: str
    listen: tuple[str, ...]
    match: str  # canonical JSON of its matchers
    upstreams: tuple[str, ...]


@dataclass(frozen=True)
class LiveProxy:
    """A running proxy's routes as its admin API gave them (fleet's routes: `fleet-*`)."""

    revision: int
    routes: Mapping[str, LiveRoute]

    def summary(self) -> list[str]:
        return [f"{r.id}: {','.join(r.listen)} -> {', '.join(r.upstreams) or '(none)'}"
                for r in self.routes.values()]


class ProxyAnswerError(ValueError):
    """A proxy's config that can't be used (too big, too deep, of the wrong shape)."""


def live_proxy(data: bytes, revision: int) -> LiveProxy:
    """A host's answer to GET /config/, bounded and validated as untrusted input."""
    try:
        value = parse_json(data, max_bytes=MAX_CONFIG_BYTES)
    except ValueError as exc:
        raise ProxyAnswerError(f"its config is not usable JSON: {exc}") from None
    if value is None:
        return LiveProxy(revision, {})
    try:
        config = _Config.model_validate(value)
    except ValidationError as exc:
        raise ProxyAnswerError(f"its config has the wrong shape: {describe_invalid(exc)}") \
            from None
    routes: dict[str, LiveRoute] = {}
    for server in config.apps.http.servers.values():
        for route in server.routes:
            if not route.id.startswith("fleet-"):
                continue
            dials = tuple(u.dial for h in route.handle if h.handler == "reverse_proxy"
                          for u in h.upstreams)
            routes[route.id] = LiveRoute(route.id, tuple(server.listen),
                                         _canonical(route.match), dials)
    return LiveProxy(revision, routes)


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def route_problems(proxy: HostProxy, live: LiveProxy,
                   expected: Mapping[str, Sequence[str]]) -> list[str]:
    """How a live proxy differs from the routes it should have (empty: in sync)."""
    problems: list[str] = []
    for route in proxy.routes:
        found = live.routes.get(route.id)
        if found is None:
            problems.append(f"route {route.summary()} ({route.service}) is missing")
            continue
        if found.listen != (f":{route.port}",) or found.match != _canonical(_matcher(route)):
            problems.append(f"route {route.id} matches other requests than the playbook's")
        want = tuple(expected.get(route.id, ()))
        if sorted(found.upstreams) != sorted(want):
            problems.append(f"route {route.id} sends requests to "
                            f"{', '.join(found.upstreams) or 'no container'}, not to "
                            f"{', '.join(want) or 'no container'}")
    for route_id in live.routes:
        if route_id not in {r.id for r in proxy.routes}:
            problems.append(f"route {route_id} is not in the playbook")
    return problems


def swapped(upstreams: Sequence[str], remove: str | None, add: str | None) -> list[str]:
    """The upstream list with the container `remove` (a short or long id) out and the
    dial `add` in: one atomic change on the proxy."""
    kept = [u for u in upstreams if not (remove and u.split(":")[0] == remove[:12])]
    if add and add not in kept:
        kept.append(add)
    return kept
