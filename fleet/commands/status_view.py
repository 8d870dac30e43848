"""The `fleet status` table: services x hosts, grouped by cloud and region."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from rich.table import Table

from fleet.desired import DesiredState
from fleet.runner import Observation


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


def status_table(state: DesiredState, observation: Observation) -> tuple[Table, list[dict[str,
                                                                                           Any]]]:
    table = Table(title=f"project {state.project}", show_lines=False)
    for column in ("cloud/region", "host", "container", "state", "image", "health", "uptime",
                   "rev"):
        table.add_column(column)
    rows: list[dict[str, Any]] = []
    hosts = sorted(state.targeted_hosts, key=lambda h: (h.labels.get("cloud", ""),
                                                        h.labels.get("region", ""), h.name))
    for host in hosts:
        where = f"{host.labels.get('cloud', '-')}/{host.labels.get('region', '-')}"
        if host.name in observation.unreachable:
            table.add_row(where, host.name, "-", "[red]unreachable[/red]", "", "", "", "")
            continue
        snapshot = observation.snapshots.get(host.name)
        ours = sorted(snapshot.of_project(state.project) if snapshot else [],
                      key=lambda c: (c.service or "", c.replica or 0))
        if not ours:
            table.add_row(where, host.name, "-", "no containers", "", "", "", "")
        for c in ours:
            digest = c.image_digest.removeprefix("sha256:")[:12]
            image = c.image_ref.rsplit("/", 1)[-1] + (f" ({digest})" if digest else "")
            row = {"host": host.name, "cloud": host.labels.get("cloud"),
                   "region": host.labels.get("region"), "container": c.name,
                   "service": c.service, "replica": c.replica, "state": c.state,
                   "image": c.image_ref, "digest": c.image_digest or None, "health": c.health,
                   "uptime": uptime(c.started_at) if c.running else "-",
                   "revision": c.revision}
            rows.append(row)
            table.add_row(where, host.name, c.name, c.state, image, c.health or "-",
                          str(row["uptime"]), str(c.revision))
    return table, rows
