"""`fleet lab` commands: a thin layer over fleet.lab."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from fleet.cli.terminal import echo
from fleet.lab.lifecycle import Progress as ProgressCallback
from fleet.lab.lifecycle import lab_down, lab_status, lab_up, load_lab
from fleet.lab.simulator.engine import Latencies
from fleet.lab.spec import (
    DEFAULT_CLOUDS,
    DEFAULT_DIR,
    DEFAULT_HOSTS,
    DEFAULT_SUBNET,
    MAX_REAL_HOSTS,
    MAX_SIMULATED_HOSTS,
)

dir_option = click.option(
    "--dir",
    "lab_dir",
    type=click.Path(path_type=Path),
    default=DEFAULT_DIR,
    show_default=True,
    help="Lab directory (keys, state, inventory, Docker data).",
)


@click.group()
def lab() -> None:
    """Bring up a local lab fleet (network namespaces with sshd and dockerd)."""


@contextmanager
def _progress(total: int) -> Iterator[ProgressCallback]:
    """A live bar on a terminal; one plain line per event otherwise (logs, CI)."""
    if not sys.stderr.isatty():

        def plain(subject: str, message: str, finished: bool) -> None:
            echo(f"{subject}: {message}", err=True)

        yield plain
        return
    console = Console(stderr=True)
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, transient=False) as bar:
        task = bar.add_task("lab", total=total)

        def live(subject: str, message: str, finished: bool) -> None:
            bar.update(task, advance=1 if finished else 0, description=f"{subject}: {message}")

        yield live
        bar.update(task, description="lab ready")


@lab.command()
@click.option("--hosts", type=click.IntRange(1, MAX_SIMULATED_HOSTS), default=DEFAULT_HOSTS,
              show_default=True, help=f"At most {MAX_REAL_HOSTS} real, {MAX_SIMULATED_HOSTS} "
              "simulated.")
@click.option(
    "--clouds",
    default=",".join(DEFAULT_CLOUDS),
    show_default=True,
    help="Comma-separated clouds, assigned to hosts in turn.",
)
@click.option(
    "--subnet",
    default=DEFAULT_SUBNET,
    show_default=True,
    help="IPv4 subnet inside 198.18.0.0/15; .1 is the bridge and the registry.",
)
@click.option("--simulated", is_flag=True,
              help="Hosts with a real sshd whose Docker is an Engine API simulator (one "
              "process for all; see README, Simulated hosts).")
@click.option("--sim-pull-seconds", type=click.FloatRange(0, 600), default=Latencies.pull,
              show_default=True, help="Simulated: how long pulling a missing image takes.")
@click.option("--sim-health-seconds", type=click.FloatRange(0, 600), default=Latencies.health,
              show_default=True, help="Simulated: how long a health check stays `starting`.")
@dir_option
def up(hosts: int, clouds: str, subnet: str, simulated: bool, sim_pull_seconds: float,
       sim_health_seconds: float, lab_dir: Path) -> None:
    """Bring the lab up (idempotent: reuses what runs, repairs the rest)."""
    cloud_names = tuple(name.strip() for name in clouds.split(",") if name.strip())
    latencies = Latencies(pull=sim_pull_seconds, health=sim_health_seconds)
    with _progress(hosts + 3 if simulated else hosts + 2) as progress:
        result = lab_up(lab_dir, hosts=hosts, clouds=cloud_names, subnet=subnet,
                        progress=progress, simulated=simulated, latencies=latencies)
    kind = "simulated hosts" if result.simulated else "hosts"
    echo(f"lab up: {len(result.hosts)} {kind}, registry {result.registry}", err=True)
    echo(str(result.inventory_path))


@lab.command()
@dir_option
@click.option("--purge", is_flag=True, help="Also delete the lab dir (keys, registry data).")
def down(lab_dir: Path, purge: bool) -> None:
    """Stop and remove everything the lab created."""
    with _progress(0) as progress:
        found = lab_down(lab_dir, purge=purge, progress=progress)
    echo("lab down" if found else f"no lab was running at {lab_dir}", err=True)


@lab.command()
@dir_option
def status(lab_dir: Path) -> None:
    """Show each host and whether its sshd and dockerd answer (exit 1 if any does not)."""
    report = lab_status(lab_dir)
    table = Table("host", "address", "cloud", "region", "zone", "sshd", "dockerd")
    for entry in report.hosts:
        labels = entry.host.labels
        table.add_row(
            entry.host.name,
            entry.host.address,
            labels.get("cloud", ""),
            labels.get("region", ""),
            labels.get("zone", ""),
            _answer(entry.sshd),
            _answer(entry.dockerd),
        )
    console = Console(width=None if sys.stdout.isatty() else 200)  # no truncation in pipes
    console.print(table)
    console.print(f"registry {report.lab.registry}: {_answer(report.registry)}")
    console.print(f"inventory: {report.lab.inventory_path}")
    healthy = report.registry and all(e.sshd and e.dockerd for e in report.hosts)
    if not healthy:
        sys.exit(1)


def _answer(ok: bool) -> str:
    return "[green]up[/green]" if ok else "[red]down[/red]"


@lab.command(context_settings={"ignore_unknown_options": True})
@click.argument("host")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
@dir_option
def ssh(host: str, command: tuple[str, ...], lab_dir: Path) -> None:
    """Open a shell (or run COMMAND) on a lab host over SSH."""
    current = load_lab(lab_dir)
    address = current.host(host).address
    argv = [
        "ssh",
        "-i",
        str(current.ssh_key),
        "-o",
        "IdentitiesOnly=yes",
        "-o",
        f"UserKnownHostsFile={current.known_hosts}",
        "-o",
        "StrictHostKeyChecking=yes",
        "-o",
        "GlobalKnownHostsFile=/dev/null",
        f"root@{address}",
        *command,
    ]
    os.execvp("ssh", argv)
