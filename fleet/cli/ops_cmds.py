"""`fleet logs` and `fleet exec`: reading and running in a service's containers across hosts."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import zlib
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import click

from fleet.cli.common import json_option, print_json, project_options
from fleet.cli.per_host import PerHost, on_every_host, on_every_host_async
from fleet.cli.session import duration_value, load_state, run_options
from fleet.cli.terminal import echo, one_line
from fleet.config.inventory import Host
from fleet.config.patterns import PatternError
from fleet.core.desired import DesiredState
from fleet.core.logs import LogLine, ReorderWindow, merged, since_seconds
from fleet.docker.client import DockerClient
from fleet.engine.container_exec import ExecRequest, ExecResult, run_on_host
from fleet.engine.logs import LogRequest, follow_host, read_host
from fleet.errors import FleetError
from fleet.transport.ssh import HostConnection

EXIT_OK, EXIT_ERROR = 0, 1
MAX_LINES = 200_000  # lines `fleet logs` holds to sort; beyond, it says so and stops
REORDER_WINDOW = 0.5  # seconds a followed line waits for older lines from slower hosts
_COLOURS = ("cyan", "green", "yellow", "magenta", "blue", "red")


def service_hosts(state: DesiredState, service: str, host_pattern: str | None) -> list[Host]:
    """The targeted hosts the playbook places `service` on (and that match `--host`)."""
    if service not in state.services:
        known = ", ".join(sorted(state.services)) or "none"
        raise FleetError(f"no service {service!r} in the playbook (its services: {known})")
    hosts = [h for h in state.targeted_hosts
             if any(c.service == service for c in state.containers.get(h.name, []))]
    if host_pattern is not None:
        try:
            chosen = {h.name for h in state.inventory.select(host_pattern)}
        except PatternError as exc:
            raise click.BadParameter(str(exc), param_hint="'--host'") from None
        hosts = [h for h in hosts if h.name in chosen]
    if not hosts:
        where = f" matching {host_pattern!r}" if host_pattern else ""
        raise FleetError(f"no targeted host{where} runs {service}")
    return hosts


def host_option(func: Any) -> Any:
    return click.option("--host", "host_pattern", metavar="PATTERN",
                        help="Only hosts matching this pattern (as --limit).")(func)


class _Prefixer:
    """`host service/replica | ` before each line; coloured by host on a terminal."""

    def __init__(self, hosts: Sequence[Host], stream: Any) -> None:
        self.width = max((len(h.name) for h in hosts), default=0)
        self.colour = stream.isatty() and "NO_COLOR" not in os.environ

    def __call__(self, host: str, label: str) -> str:
        text = one_line(f"{host:<{self.width}} {label}")
        if self.colour:
            text = click.style(text, fg=_COLOURS[zlib.crc32(host.encode()) % len(_COLOURS)])
        return f"{text} | "


# -- logs -----------------------------------------------------------------------------------


class _Tail(click.ParamType):  # type: ignore[type-arg]  # generic only from click 8.2
    name = "N|all"

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> int | None:
        if value is None or value == "all":
            return None
        if isinstance(value, int):
            return value
        if isinstance(value, str) and value.isdigit() and len(value) <= 9:
            return int(value)
        self.fail(f"{value!r} is not a number of lines or 'all'", param, ctx)


@click.command()
@click.argument("service")
@project_options
@run_options
@json_option
@host_option
@click.option("--since", metavar="DURATION|TIME",
              help="Only lines since then: a duration ago (10m, 2h) or a time "
                   "(2026-12-04T10:00:00Z).")
@click.option("--tail", type=_Tail(), default="100", show_default=True,
              help="Lines from the end of each replica's log, or 'all'.")
@click.option("--follow", "-f", is_flag=True,
              help="Keep printing new lines, across containers replaced by a rollout, "
                   "until Ctrl-C or SIGTERM.")
def logs(service: str, inventories: tuple[str, ...], limit: str | None,
         playbooks: tuple[str, ...], forks: int, connect_timeout: float, as_json: bool,
         host_pattern: str | None, since: str | None, tail: int | None, follow: bool) -> None:
    """SERVICE's logs from every targeted host, merged in time order, each line after its
    host and replica. Exit 1 if a host could not be read."""
    state = load_state(inventories, playbooks, limit, as_json)
    hosts = service_hosts(state, service, host_pattern)
    try:
        since_at = since_seconds(since, datetime.now(UTC)) if since is not None else None
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="'--since'") from None
    request = LogRequest(state.project, service, since_at, tail)
    if follow:
        failed = asyncio.run(_follow(hosts, request, forks, connect_timeout, as_json))
        sys.exit(EXIT_ERROR if failed else EXIT_OK)
    lines: list[LogLine] = []
    cut = False

    def keep(line: LogLine) -> None:
        nonlocal cut
        if len(lines) < MAX_LINES:
            lines.append(line)
        else:
            cut = True

    async def read(host: Host, connection: HostConnection) -> int:
        return await read_host(host.name, DockerClient.over_ssh(connection), request, keep)

    outcome = on_every_host(hosts, forks, connect_timeout, True, read)
    ordered = merged(lines)
    if as_json:
        print_json({"project": state.project, "service": service,
                    "lines": [line.as_json() for line in ordered], "cut": cut,
                    "unreachable": outcome.failed_json()})
    else:
        prefix = _Prefixer(hosts, sys.stdout)
        out = sys.stdout
        for line in ordered:
            out.write(prefix(line.host, f"{line.service}/{line.replica}")
                      + one_line(line.text) + "\n")
        out.flush()
        for host, count in outcome.results.items():
            if not count:
                echo(one_line(f"{host}: no container of {service}"), err=True)
        if cut:
            echo(f"warning: more than {MAX_LINES} lines: the rest are left out; narrow with "
                 "--tail, --since or --host", err=True)
    _report(outcome)
    sys.exit(EXIT_ERROR if outcome.failed else EXIT_OK)


def _report(outcome: PerHost[Any]) -> None:
    for host, error in sorted(outcome.failed.items()):
        echo(one_line(f"{host}: unreachable: {error}"), err=True)


async def _follow(hosts: Sequence[Host], request: LogRequest, forks: int,
                  connect_timeout: float, as_json: bool) -> bool:
    """Follow until SIGINT or SIGTERM; whether a host could not be followed."""
    loop = asyncio.get_running_loop()
    window = ReorderWindow(REORDER_WINDOW)
    prefix = _Prefixer(hosts, sys.stdout)
    stop = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)

    def show(line: LogLine) -> None:
        if as_json:
            sys.stdout.write(json.dumps(line.as_json()) + "\n")
        else:
            sys.stdout.write(prefix(line.host, f"{line.service}/{line.replica}")
                             + one_line(line.text) + "\n")

    def note(host: str, message: str) -> None:
        echo(one_line(f"{host}: {message}"), err=True)

    def sink(line: LogLine) -> None:
        window.add(line, loop.time())

    async def work(host: Host, connection: HostConnection) -> None:
        await follow_host(host.name, DockerClient.over_ssh(connection), request, sink, note)

    outcome: PerHost[None] = PerHost()
    reported: set[str] = set()
    following = asyncio.create_task(on_every_host_async(
        hosts, forks, connect_timeout, True, work, host_timeout=0, outcome=outcome))
    try:
        while not stop.is_set() and not following.done():
            for line in window.due(loop.time()):
                show(line)
            for host in sorted(set(outcome.failed) - reported):
                reported.add(host)
                note(host, f"unreachable: {outcome.failed[host]}")
            sys.stdout.flush()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.1)
    finally:
        following.cancel()
        await asyncio.gather(following, return_exceptions=True)
        for line in window.drain():
            show(line)
        sys.stdout.flush()
    for host in sorted(set(outcome.failed) - reported):
        note(host, f"unreachable: {outcome.failed[host]}")
    return bool(outcome.failed)


# -- exec -----------------------------------------------------------------------------------


_ARGV = "fleet.exec_argv"


class _AfterDashes(click.Command):
    """A command whose own arguments end at `--`; what follows is the argv to run, kept
    apart (click would otherwise give it to the PLAYBOOK... arguments)."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if "--" in args:
            at = args.index("--")
            ctx.meta[_ARGV] = tuple(args[at + 1:])
            args = args[:at]
        else:
            ctx.meta[_ARGV] = ()
        return super().parse_args(ctx, args)


def _env_entry(ctx: click.Context, param: click.Parameter,
               values: tuple[str, ...]) -> tuple[str, ...]:
    for value in values:
        name, equals, _ = value.partition("=")
        if not equals or not name or "\0" in value:
            raise click.BadParameter(f"{one_line(value)!r}: expected NAME=VALUE")
    return values


@click.command(cls=_AfterDashes)
@click.argument("service")
@project_options
@run_options
@json_option
@host_option
@click.option("--user", "-u", default="", metavar="USER[:GROUP]",
              help="Run as this user in the container.")
@click.option("--workdir", "-w", default="", metavar="DIR",
              help="Run in this directory of the container.")
@click.option("--env", "-e", "env", multiple=True, metavar="NAME=VALUE", callback=_env_entry,
              help="Set this variable for the command; repeatable.")
@click.option("--timeout", default="60s", show_default=True, metavar="DURATION",
              callback=duration_value, help="Longest the command may run in each replica.")
def exec_(service: str, inventories: tuple[str, ...], limit: str | None,
          playbooks: tuple[str, ...], forks: int, connect_timeout: float, as_json: bool,
          host_pattern: str | None, user: str, workdir: str, env: tuple[str, ...],
          timeout: float | None) -> None:
    """Run `-- CMD...` in every running replica of SERVICE on the targeted hosts, through the
    Engine API's exec (the command as given: no shell). Prints each replica's output after
    its host and replica. Exit 1 if the command failed anywhere or a host could not be
    reached; nothing is run until every host's replicas are found."""
    argv: tuple[str, ...] = click.get_current_context().meta.get(_ARGV, ())
    if not argv:
        raise click.UsageError("give the command after --, e.g. fleet exec web "
                               "playbook.yml -- cat /etc/hostname")
    if not timeout or timeout <= 0:
        raise click.BadParameter("must be a positive duration", param_hint="'--timeout'")
    state = load_state(inventories, playbooks, limit, as_json)
    hosts = service_hosts(state, service, host_pattern)
    request = ExecRequest(state.project, service, argv, user=user, workdir=workdir,
                          env=env, timeout=timeout)

    async def run(host: Host, connection: HostConnection) -> list[ExecResult]:
        return await run_on_host(host.name, DockerClient.over_ssh(connection), request)

    outcome = asyncio.run(on_every_host_async(hosts, forks, connect_timeout, True, run,
                                              host_timeout=timeout + 30.0))
    results = [r for per_host in outcome.results.values() for r in per_host]
    if as_json:
        print_json({"project": state.project, "service": service, "command": list(argv),
                    "results": [r.as_json() for r in results],
                    "unreachable": outcome.failed_json()})
    else:
        _print_exec(hosts, results)
        _report(outcome)
    failed = [r for r in results if not r.ok]
    sys.exit(EXIT_ERROR if failed or outcome.failed else EXIT_OK)


def _print_exec(hosts: Sequence[Host], results: Sequence[ExecResult]) -> None:
    prefix = _Prefixer(hosts, sys.stdout)
    for result in results:
        head = prefix(result.replica.host, result.replica.label)
        for stream, text in ((sys.stdout, result.stdout), (sys.stderr, result.stderr)):
            for line in text.splitlines():
                stream.write(head + one_line(line) + "\n")
        sys.stdout.flush()
        where = one_line(f"{result.replica.host} {result.replica.label}")
        if result.cut:
            echo(f"{where}: output cut at 1 MiB", err=True)
        if result.error:
            echo(f"{where}: {one_line(result.error)}", err=True)
        elif result.exit_code != 0:
            echo(f"{where}: exit {result.exit_code}", err=True)
