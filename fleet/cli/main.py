"""Command-line interface: a thin layer over fleet's public API."""

from __future__ import annotations

import importlib
import sys
from typing import Any

import click

from fleet import __version__
from fleet.cli.terminal import echo
from fleet.errors import FleetError

# Commands load on first use: `fleet validate` needs no SSH stack, and start-up time is
# paid on every CI drift check.
COMMANDS = {
    "validate": "fleet.cli.config_cmds:validate",
    "render": "fleet.cli.config_cmds:render",
    "schema": "fleet.cli.config_cmds:schema",
    "plan": "fleet.cli.fleet_cmds:plan",
    "apply": "fleet.cli.fleet_cmds:apply",
    "check": "fleet.cli.fleet_cmds:check",
    "status": "fleet.cli.fleet_cmds:status",
    "rollback": "fleet.cli.rollback_cmd:rollback",
    "history": "fleet.cli.state_cmds:history",
    "lock": "fleet.cli.state_cmds:lock",
    "lab": "fleet.cli.lab_cmds:lab",
    "combine": "fleet.cli.combine_cmd:combine_reports",
    "logs": "fleet.cli.ops_cmds:logs",
    "exec": "fleet.cli.ops_cmds:exec_",
    "prune": "fleet.cli.prune_cmd:prune",
    "watch": "fleet.cli.watch_cmd:watch",
    "report": "fleet.cli.report_cmd:report",
    "init": "fleet.cli.init_cmds:init",
    "completion": "fleet.cli.init_cmds:completion",
}


class FleetGroup(click.Group):
    """Turns FleetError into one message on stderr and exit 1 (tracebacks only with --debug)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return None
        module_name, _, attribute = COMMANDS[cmd_name].partition(":")
        command = getattr(importlib.import_module(module_name), attribute)
        assert isinstance(command, click.Command)
        return command

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except FleetError as exc:
            if ctx.obj and ctx.obj.get("debug"):
                raise
            echo(f"error: {exc}", err=True)
            sys.exit(1)
        except KeyboardInterrupt:
            echo("interrupted", err=True)
            sys.exit(130)


@click.group(cls=FleetGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="fleet")
@click.option("--debug", is_flag=True, help="Show tracebacks on errors.")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """Deploy and converge Docker containers on fleets of hosts over SSH."""
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug


def main() -> None:
    cli(prog_name="fleet")
