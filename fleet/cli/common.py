"""Options shared by commands, and output helpers."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import click
from rich.console import Console

from fleet.config.problems import Problem
from fleet.config.project import ProjectFiles

F = TypeVar("F", bound=Callable[..., Any])


def project_options(func: F) -> F:
    """`-i INVENTORY`, `--limit PATTERN` and one or more PLAYBOOK arguments."""
    func = click.argument("playbooks", nargs=-1, required=True, metavar="PLAYBOOK...",
                          type=click.Path(dir_okay=False))(func)
    func = click.option("--limit", "-l", metavar="PATTERN",
                        help="Only hosts matching this pattern (e.g. 'web,&cloud=aws').")(func)
    func = click.option("-i", "--inventory", "inventories", multiple=True, metavar="INVENTORY",
                        help="Inventory file (native, Ansible YAML/INI or JSON); repeatable. "
                             "Default: the playbook's 'inventory:'.")(func)
    return func


def json_option(func: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="Print JSON.")(func)


def project_files(inventories: Sequence[str], playbooks: Sequence[str],
                  limit: str | None) -> ProjectFiles:
    return ProjectFiles(playbooks=list(playbooks), inventories=list(inventories), limit=limit)


def console(stderr: bool = False) -> Console:
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
