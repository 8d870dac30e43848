"""`fleet watch`: check again and again, tell drift as it comes and goes, optionally heal."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime
import json
import os
import signal
import sys
import time
from pathlib import Path

import click

from fleet.cli.common import project_options
from fleet.cli.session import (
    EXIT_OK,
    converge,
    duration_value,
    load_state,
    plan_changes,
    run_options,
    session,
)
from fleet.cli.terminal import echo, one_line
from fleet.core.desired import DesiredState
from fleet.core.policy import HostOutcome
from fleet.core.watch import Event, WatchState, drifts, textfile
from fleet.engine.run import RunOptions
from fleet.errors import HostError, LockHeld


def _positive(ctx: click.Context, param: click.Parameter, value: str) -> float:
    seconds = duration_value(ctx, param, value)
    if seconds is None or seconds < 1:
        raise click.BadParameter("must be a duration of at least 1s, e.g. 30s")
    return seconds


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds").replace(
        "+00:00", "Z")


class Watcher:
    def __init__(self, state: DesiredState, options: RunOptions, as_json: bool, heal: bool,
                 textfile_path: str | None) -> None:
        self.state, self.options, self.as_json = state, options, as_json
        self.heal, self.textfile_path = heal, textfile_path
        self.watch = WatchState()
        self.stop = asyncio.Event()

    def tell(self, event: Event) -> None:
        if self.as_json:
            print(json.dumps({"time": _now(), **event.as_json()}), flush=True)
        else:
            echo(one_line(f"{_now()} {event.line()}"))

    def on_signals(self) -> None:
        """SIGTERM or Ctrl-C: end after the round (and heal) in flight."""
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, self.stop.set)

    def _subset(self, hosts: list[str]) -> DesiredState:
        wanted = set(hosts)
        return dataclasses.replace(
            self.state, targeted_hosts=[h for h in self.state.targeted_hosts if h.name in wanted])

    async def round(self) -> None:
        due = self.watch.due(h.name for h in self.state.targeted_hosts)
        seen, unreachable = {}, {}
        if due:
            async with session(self._subset(due), self.options, "checking",
                               True) as (run, observation):
                seen = drifts(run.diff(observation))
                unreachable = dict(observation.unreachable)
        for event in self.watch.advance(seen, unreachable):
            self.tell(event)
        if self.heal and not self.stop.is_set():
            drifted = sorted(h for h, found in seen.items() if found)
            if drifted:
                await self._heal(drifted)
        self._write_textfile()

    async def _heal(self, hosts: list[str]) -> None:
        """Converge the drifted hosts as `apply` would: lock, plan, each service's policy."""
        try:
            async with session(self._subset(hosts), self.options, "observing", True,
                               for_changes=True, lock="watch") as (run, observation):
                plan = await plan_changes(run, observation)
                result = await converge(run, plan, True, "watch") if plan.has_changes else None
        except LockHeld as exc:
            for host in hosts:
                self.tell(Event("heal_failed", host, detail=f"not healed: {exc}"))
            return
        except HostError as exc:
            for host in hosts:
                self.tell(Event("heal_failed", host, detail=str(exc)))
            return
        finally:
            self.on_signals()  # the rollout had its own Ctrl-C handling meanwhile
        failed = {} if result is None else {
            r.host: f"{r.service}: {r.outcome}: {r.detail}" for r in result.reports
            if r.outcome not in (HostOutcome.CHANGED, HostOutcome.UNTOUCHED)}
        for host in hosts:
            if host in plan.unreachable:
                self.tell(Event("heal_failed", host, detail=plan.unreachable[host]))
            elif host in failed:
                self.tell(Event("heal_failed", host, detail=failed[host]))
            else:
                self.tell(Event("healed", host))

    def _write_textfile(self) -> None:
        if not self.textfile_path:
            return
        services = {h.name: sorted({c.service for c in self.state.containers.get(h.name, [])})
                    for h in self.state.targeted_hosts}
        target = Path(self.textfile_path)
        temporary = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        temporary.write_text(textfile(self.state.project, self.watch, services, time.time()))
        os.replace(temporary, target)  # the collector never reads half a file

    async def run(self, interval: float, rounds: int | None) -> None:
        self.on_signals()
        while not self.stop.is_set():
            await self.round()
            if rounds is not None and self.watch.rounds >= rounds:
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop.wait(), interval)


@click.command()
@project_options
@run_options
@click.option("--interval", default="60s", show_default=True, metavar="DURATION",
              callback=_positive, help="Time between two rounds of checks.")
@click.option("--heal", is_flag=True,
              help="Converge drifted hosts (lock, plan, each service's rollout policy).")
@click.option("--textfile", "textfile_path", metavar="PATH", type=click.Path(dir_okay=False),
              help="Write Prometheus gauges here after every round (node exporter's textfile "
                   "collector).")
@click.option("--rounds", type=click.IntRange(1), metavar="N",
              help="Stop after N rounds (default: until SIGTERM or Ctrl-C).")
@click.option("--json", "as_json", is_flag=True, help="One JSON event per line.")
def watch(inventories: tuple[str, ...], limit: str | None, playbooks: tuple[str, ...],
          forks: int, connect_timeout: float, interval: float, heal: bool,
          textfile_path: str | None, rounds: int | None, as_json: bool) -> None:
    """Check the targeted hosts every --interval and tell drift as it appears and resolves
    (and hosts that stop or start answering: those are looked at again with backoff).
    Ends on SIGTERM or Ctrl-C after the round in flight, exit 0."""
    state = load_state(inventories, playbooks, limit, as_json)
    options = RunOptions(forks=forks, connect_timeout=connect_timeout)
    watcher = Watcher(state, options, as_json, heal, textfile_path)
    if not as_json:
        echo(f"watching {len(state.targeted_hosts)} host(s) of '{state.project}' every "
             f"{interval:g}s" + (", healing drift" if heal else ""), err=True)
    asyncio.run(watcher.run(interval, rounds))
    sys.exit(EXIT_OK)
