"""`fleet history` and `fleet lock status|release`: what fleet keeps on each host."""

from __future__ import annotations

import sys
from typing import Any

import click
from rich.table import Table

from fleet.cli.common import (
    console,
    json_option,
    print_json,
    project_options,
)
from fleet.cli.per_host import on_every_host
from fleet.cli.session import load_state, run_options, warn_hosts
from fleet.cli.terminal import cell, echo, one_line
from fleet.config.inventory import Host
from fleet.core.journal import JournalEntry, settled
from fleet.core.lease import LockInfo, iso, utc_now
from fleet.errors import HostError, LockHeld
from fleet.hoststate import HostLock, Journal, current_operator
from fleet.transport.ssh import HostConnection

EXIT_OK, EXIT_ERROR = 0, 1


def _report_failures(failed: dict[str, str]) -> None:
    for host, error in sorted(failed.items()):
        echo(one_line(f"{host}: {error}"), err=True)


def _short_digest(digest: str) -> str:
    return digest.removeprefix("sha256:")[:12]


def _history_table(entries: list[JournalEntry]) -> Table:
    table = Table(box=None, pad_edge=False, show_header=True, header_style="bold")
    for column in ("time", "operator", "command", "service", "rev", "image", "outcome",
                   "detail"):
        table.add_column(column, overflow="fold")
    for e in entries:
        image = f"{e.image} @{_short_digest(e.digest)}" if e.digest else e.image
        table.add_row(*(cell(v) for v in (e.time, e.operator, e.command,
                                           f"{e.service}/{e.replica}", e.revision, image,
                                           e.outcome, e.detail)))
    return table


@click.command()
@project_options
@run_options
@json_option
@click.option("--service", metavar="NAME", help="Only this service's revisions.")
@click.option("--last", "last", type=click.IntRange(1), metavar="N",
              help="Only the N newest entries per host.")
def history(inventories: tuple[str, ...], limit: str | None, playbooks: tuple[str, ...],
            forks: int, connect_timeout: float, as_json: bool, service: str | None,
            last: int | None) -> None:
    """Revisions per host from each host's journal, newest last. Exit 1 if a host could not
    be read."""
    state = load_state(inventories, playbooks, limit, as_json)

    skipped: dict[str, list[str]] = {}

    async def read(host: Host, connection: HostConnection) -> list[JournalEntry]:
        journal = Journal(connection, state.project, host.state_dir)
        entries = settled(await journal.read())
        if journal.warnings:
            skipped[host.name] = journal.warnings
        entries = [e for e in entries if service is None or e.service == service]
        return entries[-last:] if last else entries

    outcome = on_every_host(state.targeted_hosts, forks, connect_timeout, as_json, read)
    warn_hosts(skipped)
    if as_json:
        print_json({"project": state.project,
                    "hosts": [{"host": h, "entries": [e.to_json() for e in entries],
                               "warnings": skipped.get(h, [])}
                              for h, entries in outcome.results.items()],
                    "unreachable": outcome.failed_json()})
    else:
        out = console()
        for host, entries in outcome.results.items():
            out.print(cell(host, "bold"))
            if entries:
                out.print(_history_table(entries), markup=False)
            else:
                out.print("  (no revisions recorded)", markup=False)
        _report_failures(outcome.failed)
    sys.exit(EXIT_ERROR if outcome.failed else EXIT_OK)


@click.group()
def lock() -> None:
    """The project's lease lock on each host (taken by apply and rollback)."""


def _lease_json(info: LockInfo | None) -> dict[str, Any] | None:
    if info is None:
        return None
    return {**info.to_json(), "expired": info.expired(utc_now())}


def _lease_text(info: LockInfo | None) -> str:
    if info is None:
        return "free"
    stale = " (expired: the next run takes it over)" if info.expired(utc_now()) else ""
    return f"locked by {info.describe()}{stale}"


@lock.command("status")
@project_options
@run_options
@json_option
def lock_status(inventories: tuple[str, ...], limit: str | None, playbooks: tuple[str, ...],
                forks: int, connect_timeout: float, as_json: bool) -> None:
    """Who holds the project's lock on each host. Exit 1 if a host could not be read."""
    state = load_state(inventories, playbooks, limit, as_json)

    async def read(host: Host, connection: HostConnection) -> LockInfo | None:
        return await HostLock(connection, state.project, host.state_dir).read()

    outcome = on_every_host(state.targeted_hosts, forks, connect_timeout, as_json, read)
    if as_json:
        print_json({"project": state.project, "now": iso(utc_now()),
                    "hosts": [{"host": h, "lock": _lease_json(info)}
                              for h, info in outcome.results.items()],
                    "unreachable": outcome.failed_json()})
    else:
        for host, info in outcome.results.items():
            echo(one_line(f"{host}: {_lease_text(info)}"))
        _report_failures(outcome.failed)
    sys.exit(EXIT_ERROR if outcome.failed else EXIT_OK)


@lock.command("release")
@project_options
@run_options
@json_option
@click.option("--force", is_flag=True,
              help="Release whoever holds the lock (a run still going would lose it).")
def lock_release(inventories: tuple[str, ...], limit: str | None, playbooks: tuple[str, ...],
                 forks: int, connect_timeout: float, as_json: bool, force: bool) -> None:
    """Release the project's lock on each host: only this operator's, or any with --force.

    Exit 1 if a lock was left held by someone else or a host could not be reached.
    """
    state = load_state(inventories, playbooks, limit, as_json)
    operator = current_operator()

    async def release(host: Host, connection: HostConnection) -> LockInfo | None:
        try:
            return await HostLock(connection, state.project, host.state_dir).release(
                owner=operator, force=force)
        except LockHeld as exc:
            raise HostError(host.name, f"not released: held by {exc.info.describe()}, "
                                       f"not {operator}; use --force") from exc

    outcome = on_every_host(state.targeted_hosts, forks, connect_timeout, as_json, release)
    if as_json:
        print_json({"project": state.project,
                    "hosts": [{"host": h, "released": _lease_json(info)}
                              for h, info in outcome.results.items()],
                    "failed": outcome.failed_json()})
    else:
        for host, info in outcome.results.items():
            echo(one_line(f"{host}: " + (f"released (was {info.owner}, {info.command})"
                                         if info else "free")))
        _report_failures(outcome.failed)
    sys.exit(EXIT_ERROR if outcome.failed else EXIT_OK)
