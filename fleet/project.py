"""Loading a project: playbooks + inventory -> a validated DesiredState, or every problem."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from fleet.config.inventory import Inventory, load_inventory_with_problems
from fleet.config.playbook import PlaybookSet, load_playbooks
from fleet.config.problems import ConfigError, Problem, errors_in
from fleet.desired import DesiredState, compile_desired_state


@dataclass
class ProjectFiles:
    playbooks: Sequence[str]
    inventories: Sequence[str] = ()
    limit: str | None = None


def _inventory_paths(files: ProjectFiles, playbooks: PlaybookSet) -> tuple[list[str],
                                                                          list[Problem]]:
    if files.inventories:
        return list(files.inventories), []
    named = {str((pb.base / pb.header.inventory).resolve()): pb for pb in playbooks.playbooks
             if pb.header.inventory}
    if len(named) > 1:
        pb = list(named.values())[1]
        return [], [pb.doc.problem(("inventory",), "the playbooks name different inventories; "
                                   "pass one with -i")]
    if not named:
        where = files.playbooks[0] if files.playbooks else "playbook"
        return [], [Problem(where, 0, 0, (), "no inventory: pass -i INVENTORY or set "
                            "'inventory:' in the playbook")]
    return list(named), []


def load_project(files: ProjectFiles, environ: Mapping[str, str] | None = None) -> DesiredState:
    """Validate everything; raise ConfigError with every problem, or return the state.

    Warnings (patterns that match no host...) are kept in `DesiredState.problems`.
    """
    playbooks, problems = load_playbooks(files.playbooks)
    if not playbooks.playbooks:
        raise ConfigError(problems or [Problem("playbook", 0, 0, (), "no playbook given")])
    paths, found = _inventory_paths(files, playbooks)
    inventory, inventory_problems = (
        load_inventory_with_problems(paths) if paths else (Inventory((), {}), [])
    )
    found += inventory_problems
    if errors_in(found):  # services are checked against hosts: without them, stop here
        raise ConfigError(problems + found)
    problems += found
    state = compile_desired_state(playbooks, inventory, files.limit, environ)
    state.problems = problems + state.problems
    if errors_in(state.problems):
        raise ConfigError(state.problems)
    return state
