"""Options shared by commands, and output helpers."""

from __future__ import annotations

import json
import math
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import click

from fleet.cli.vault import ansible_vault_decrypter
from fleet.config.problems import Problem
from fleet.config.project import ProjectFiles
from fleet.config.secret_commands import SecretCommand
from fleet.config.shards import Shard, parse_shard
from fleet.errors import FleetError

if TYPE_CHECKING:
    from rich.console import Console

F = TypeVar("F", bound=Callable[..., Any])

MAX_FORKS = 1000
MAX_CONNECT_TIMEOUT = 3600.0


class Seconds(click.ParamType):  # type: ignore[type-arg]  # generic only from click 8.2
    """A finite number of seconds above 0 and at most `maximum`: nan, inf, 0 and negative
    values are refused (a timeout of nan or inf would never, or at once, time out)."""

    name = "seconds"

    def __init__(self, maximum: float) -> None:
        self.maximum = maximum

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> float:
        try:
            number = float(value) if not isinstance(value, bool) else math.nan
        except (TypeError, ValueError):
            number = math.nan
        if not (math.isfinite(number) and 0 < number <= self.maximum):
            self.fail(f"{value!r} is not a number of seconds above 0 and at most "
                      f"{self.maximum:g}", param, ctx)
        return number


CONNECT_TIMEOUT = Seconds(MAX_CONNECT_TIMEOUT)
FORKS = click.IntRange(1, MAX_FORKS)


_ENV_FILE = "fleet.env_file"
PROFILES = "fleet.profiles"


def _remember_env_file(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    ctx.meta[_ENV_FILE] = value


def _remember_profiles(ctx: click.Context, param: click.Parameter,
                       value: tuple[str, ...]) -> tuple[str, ...]:
    ctx.meta[PROFILES] = value
    return value


_SHARD, _SHARD_BY = "fleet.shard", "fleet.shard_by"


def _remember(key: str) -> Callable[[click.Context, click.Parameter, Any], Any]:
    def remember(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
        ctx.meta[key] = value
        return value
    return remember


def _shard(ctx: click.Context) -> Shard | None:
    text, by = ctx.meta.get(_SHARD), ctx.meta.get(_SHARD_BY)
    if text is None:
        if by is not None:
            raise click.UsageError("--shard-by needs --shard K/N", ctx)
        return None
    try:
        return parse_shard(text, by)
    except ValueError as exc:
        raise click.BadParameter(str(exc), ctx, param_hint="'--shard'") from None


def project_options(func: F) -> F:
    """`-i INVENTORY`, `--limit PATTERN`, `--env-file PATH`, `--profile NAME` and one or more
    PLAYBOOK arguments (playbooks or compose files). `--env-file` and `--profile` reach
    project_files through the click context, not as parameters of every command."""
    func = click.option("--profile", multiple=True, metavar="NAME", expose_value=False,
                        callback=_remember_profiles,
                        help="Enable the services of this Compose profile; repeatable. "
                             "Default: COMPOSE_PROFILES.")(func)
    func = click.argument("playbooks", nargs=-1, required=True, metavar="PLAYBOOK...",
                          type=click.Path(dir_okay=False))(func)
    func = click.option("--env-file", metavar="PATH", type=click.Path(dir_okay=False),
                        expose_value=False, callback=_remember_env_file,
                        help="Variables for ${VAR} interpolation from this file instead of "
                             "the .env beside the first playbook (the environment wins).")(func)
    func = click.option("--shard-by", metavar="LABEL", expose_value=False,
                        callback=_remember(_SHARD_BY),
                        help="With --shard: hosts with the same value of this label (e.g. "
                             "region) are in the same shard.")(func)
    func = click.option("--shard", metavar="K/N", expose_value=False,
                        callback=_remember(_SHARD),
                        help="Only the K-th of N stable parts of the targeted hosts, for N "
                             "runs side by side (e.g. a CI matrix).")(func)
    func = click.option("--limit", "-l", metavar="PATTERN",
                        help="Only hosts matching this pattern (e.g. 'web,&cloud=aws').")(func)
    func = click.option("-i", "--inventory", "inventories", multiple=True, metavar="INVENTORY",
                        help="Inventory file (native, Ansible YAML/INI or JSON); repeatable. "
                             "Default: the playbook's 'inventory:'.")(func)
    return func


def json_option(func: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="Print JSON.")(func)


def _run_secret_command(command: SecretCommand) -> str:
    from fleet.cli.secret_runner import run_secret_command  # only when a playbook has one

    return run_secret_command(command)


def project_files(inventories: Sequence[str], playbooks: Sequence[str],
                  limit: str | None) -> ProjectFiles:
    ctx = click.get_current_context(silent=True)
    env_file = ctx.meta.get(_ENV_FILE) if ctx is not None else None
    profiles = ctx.meta.get(PROFILES, ()) if ctx is not None else ()
    shard = _shard(ctx) if ctx is not None else None
    return ProjectFiles(playbooks=list(playbooks), inventories=list(inventories), limit=limit,
                        shard=shard, env_file=env_file, profiles=list(profiles),
                        vault=ansible_vault_decrypter(), secret_runner=_run_secret_command)


def targeting_given(inventories: Sequence[str], limit: str | None) -> list[str]:
    """The project options given on the command line besides the playbooks."""
    ctx = click.get_current_context(silent=True)
    meta = ctx.meta if ctx is not None else {}
    given = {"-i": bool(inventories), "--limit": limit is not None,
             "--shard": meta.get(_SHARD) is not None, "--env-file": meta.get(_ENV_FILE)
             is not None, "--profile": bool(meta.get(PROFILES))}
    return [flag for flag, on in given.items() if on]


def invocation_of(inventories: Sequence[str], playbooks: Sequence[str], limit: str | None
                  ) -> dict[str, Any]:
    """The project options as given, files made absolute (a saved plan replays them)."""
    ctx = click.get_current_context(silent=True)
    meta = ctx.meta if ctx is not None else {}
    env_file = meta.get(_ENV_FILE)
    return {"playbooks": [os.path.abspath(p) for p in playbooks],
            "inventories": [os.path.abspath(i) for i in inventories], "limit": limit,
            "shard": meta.get(_SHARD), "shard_by": meta.get(_SHARD_BY),
            "env_file": os.path.abspath(env_file) if env_file else None,
            "profiles": list(meta.get(PROFILES, ()))}


def replayed_project_files(invocation: Mapping[str, Any]) -> ProjectFiles:
    """ProjectFiles from invocation_of's record (validated by the saved plan's model)."""
    shard = invocation["shard"]
    try:
        parsed = parse_shard(shard, invocation["shard_by"]) if shard else None
    except ValueError as exc:
        raise FleetError(f"the saved plan's --shard: {exc}") from None
    return ProjectFiles(playbooks=list(invocation["playbooks"]),
                        inventories=list(invocation["inventories"]),
                        limit=invocation["limit"], shard=parsed,
                        env_file=invocation["env_file"], profiles=list(invocation["profiles"]),
                        vault=ansible_vault_decrypter(), secret_runner=_run_secret_command)


def console(stderr: bool = False) -> Console:
    from rich.console import Console  # loaded by the commands that print through it

    stream = sys.stderr if stderr else sys.stdout
    # Not a terminal (logs, CI): wide enough that tables never wrap.
    width = None if stream.isatty() else 200
    return Console(stderr=stderr, no_color="NO_COLOR" in os.environ, highlight=False,
                   width=width)


def print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=2, sort_keys=False) + "\n")


def report_warnings(problems: Sequence[Problem]) -> None:
    for problem in problems:
        if problem.severity == "warning":
            click.echo(str(problem), err=True)
