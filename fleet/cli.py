"""Command-line interface: a thin layer over fleet's public API."""

from __future__ import annotations

import sys
from typing import Any

import click

from fleet import __version__
from fleet.errors import FleetError


class FleetGroup(click.Group):
    """Turns FleetError into one message on stderr and exit 1 (tracebacks only with --debug)."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except FleetError as exc:
            if ctx.obj and ctx.obj.get("debug"):
                raise
            click.echo(f"error: {exc}", err=True)
            sys.exit(1)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(130)


@click.group(cls=FleetGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="fleet")
@click.option("--debug", is_flag=True, help="Show tracebacks on errors.")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """Deploy and converge Docker containers on fleets of hosts over SSH."""
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug


def _register_subcommands() -> None:
    from fleet.commands.config_cmds import render, schema, validate
    from fleet.commands.fleet_cmds import apply, check, plan, status
    from fleet.commands.rollback_cmd import rollback
    from fleet.commands.state_cmds import history, lock
    from fleet.lab.cli import lab

    for command in (validate, render, schema, plan, apply, check, status, rollback, history,
                    lock, lab):
        cli.add_command(command)


_register_subcommands()


def main() -> None:
    cli(prog_name="fleet")
