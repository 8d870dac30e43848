"""The `fleet status` table: services x hosts, grouped by cloud and region."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from rich.table import Table

from fleet.cli.terminal import cell
from fleet.core.desired import DesiredState
from fleet.engine.run import Observation


def uptime(started_at: str, now: datetime | None = None) -> str:
    if not started_at or started_at.startswith("0001-"):
        return "-"
    stamp = started_at.rstrip("Z")
    head = stamp.partition(".")[0]  # Docker gives nanoseconds; whole seconds will do
    try:
        started = datetime.fromisoformat(head).replace(tzinfo=UTC)
    except ValueError:
        return "-"
    seconds = int(((now or datetime.now(UTC)) - started).total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{max(seconds, 0)}s"


def status_table(state: DesiredState, observation: Observation
                 ) -> tuple[Table, list[dict[str, Any]]]:
    table = Table(title=f"project {state.project}")
    for column in ("host", "container", "state", "image", "health", "uptime", "rev"):
        table.add_column(column, no_wrap=True)
    rows: list[dict[str, Any]] = []
    hosts = sorted(state.targeted_hosts, key=lambda h: (h.labels.get("cloud", ""),
                                                        h.labels.get("region", ""), h.name))
    section = None
    for host in hosts:
        where = f"{host.labels.get('cloud', '-')} / {host.labels.get('region', '-')}"
        if where != section:
            table.add_row(cell(where, "bold"), end_section=False)
            section = where
        if host.name in observation.unreachable:
            table.add_row(cell(host.name), "-", cell("unreachable", "red"))
            continue
        snapshot = observation.snapshots.get(host.name)
        ours = sorted(snapshot.of_project(state.project) if snapshot else [],
                      key=lambda c: (c.service or "", c.replica or 0))
        if not ours:
            table.add_row(cell(host.name), "-", "no containers")
        for c in ours:
            digest = c.image_digest.removeprefix("sha256:")[:12]
            image = c.image_ref.rsplit("/", 1)[-1] + (f"@{digest}" if digest else "")
            up = uptime(c.started_at) if c.running else "-"
            rows.append({"host": host.name, "cloud": host.labels.get("cloud"),
                         "region": host.labels.get("region"), "container": c.name,
                         "service": c.service, "replica": c.replica, "state": c.state,
                         "image": c.image_ref, "digest": c.image_digest or None,
                         "health": c.health, "uptime": up, "revision": c.revision})
            color = "green" if c.running and c.health != "unhealthy" else "red"
            table.add_row(cell(f"  {host.name}"), cell(c.name), cell(c.state, color), cell(image),
                          cell(c.health or "-"), up, str(c.revision))
    return table, rows


def routes_table(state: DesiredState, observation: Observation
                 ) -> tuple[Table, list[dict[str, Any]]]:
    """What each host's proxy routes where (fleet.core.proxy), its upstreams by name."""
    table = Table(title="proxy routes")
    for column in ("host", "route", "listen", "to"):
        table.add_column(column, no_wrap=True)
    rows: list[dict[str, Any]] = []
    for host in state.targeted_hosts:
        snapshot = observation.snapshots.get(host.name)
        if host.name not in state.proxies or snapshot is None:
            continue
        if snapshot.proxy is None:
            why = snapshot.proxy_error or "not running"
            rows.append({"host": host.name, "error": why})
            table.add_row(cell(host.name), "-", "-", cell(why, "red"))
            continue
        names = {c.id[:12]: c.name for c in snapshot.of_project(state.project)}
        for route in snapshot.proxy.routes.values():
            to = [names.get(dial.split(":")[0], dial) for dial in route.upstreams]
            rows.append({"host": host.name, "route": route.id, "listen": list(route.listen),
                         "upstreams": list(route.upstreams), "containers": to})
            table.add_row(cell(host.name), cell(route.id), cell(",".join(route.listen)),
                          cell(", ".join(to) or "(no container)",
                               "green" if to else "red"))
    return table, rows
