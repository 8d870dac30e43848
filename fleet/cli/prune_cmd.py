"""`fleet prune`: images fleet pulled that nothing needs any more, and stopped leftovers."""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import click

from fleet.cli.common import json_option, print_json, project_options
from fleet.cli.session import (
    EXIT_CHANGES,
    EXIT_ERROR,
    EXIT_OK,
    confirm,
    load_state,
    lock_wait_option,
    require_confirmation_possible,
    run_async,
    run_options,
    session,
    unreachable_json,
)
from fleet.cli.terminal import echo, one_line
from fleet.core.prune import DEFAULT_KEEP, HostPrune
from fleet.engine.run import RunOptions


def _host_json(prune: HostPrune, removed: list[str], failed: list[str]) -> dict[str, Any]:
    return {"host": prune.host,
            "images": [{"reference": i.reference, "image_id": i.image_id,
                        "service": i.service, "revision": i.revision} for i in prune.images],
            "containers": [{"name": c.name, "id": c.id, "state": c.state}
                           for c in prune.containers],
            "kept": list(prune.kept), "removed": removed, "failed": failed}


def _preview(prunes: list[HostPrune], keep: int) -> None:
    for prune in prunes:
        for what in [c.what() for c in prune.containers] + [i.what() for i in prune.images]:
            echo(one_line(f"{prune.host}: {what}"))
    images = sum(len(p.images) for p in prunes)
    containers = sum(len(p.containers) for p in prunes)
    hosts = sum(1 for p in prunes if not p.empty)
    if not hosts:
        echo(f"Nothing to prune (the images of the last {keep} revisions of each service "
             "are kept).")
        return
    echo(f"Prune: {images} image reference(s), {containers} container(s) on {hosts} host(s) "
         f"(the images of the last {keep} revisions of each service are kept).")


@click.command()
@project_options
@run_options
@json_option
@click.option("--keep", type=click.IntRange(1, 1000), default=DEFAULT_KEEP, show_default=True,
              help="Keep the images of this many most recent revisions of each service "
                   "(what rollback returns to).")
@click.option("--dry-run", is_flag=True, help="Show what would be removed; change nothing.")
@click.option("--yes", "-y", is_flag=True, help="Remove without asking for confirmation.")
@lock_wait_option
def prune(inventories: tuple[str, ...], limit: str | None, playbooks: tuple[str, ...],
          forks: int, connect_timeout: float, as_json: bool, keep: int, dry_run: bool,
          yes: bool, lock_wait: float | None) -> None:
    """Remove the images fleet pulled for the project that no container uses and no recent
    revision needs, and the project's stopped containers the playbook no longer has.
    Only names the hosts' journals recorded for the project are candidates.

    Exit 0 done (or nothing to prune), 1 a host failed or was unreachable; with --dry-run,
    0 nothing to prune, 2 something would be removed."""
    from fleet.engine.prune import PruneResult, carry_out, read_prune
    state = load_state(inventories, playbooks, limit, as_json)
    if not dry_run:
        require_confirmation_possible(yes)
    options = RunOptions(forks=forks, connect_timeout=connect_timeout)

    async def go() -> tuple[list[HostPrune], PruneResult, dict[str, str]]:
        result = PruneResult()
        async with session(state, options, "observing", as_json, with_journals=True,
                           lock=None if dry_run else "prune", lock_wait=lock_wait,
                           with_files=False) as (run, observation):
            unreachable = dict(observation.unreachable)
            hosts = sorted(observation.snapshots)
            found = await asyncio.gather(*(read_prune(run, observation, h, keep)
                                           for h in hosts), return_exceptions=True)
            prunes: list[HostPrune] = []
            for host, item in zip(hosts, found, strict=True):
                if isinstance(item, HostPrune):
                    prunes.append(item)
                elif isinstance(item, Exception):
                    unreachable[host] = one_line(str(item))
                else:
                    raise item
            if not as_json:
                _preview(prunes, keep)
            if dry_run or all(p.empty for p in prunes):
                return prunes, result, unreachable
            await confirm(yes)
            await asyncio.gather(*(carry_out(run, p, result) for p in prunes if not p.empty))
            return prunes, result, unreachable

    prunes, result, unreachable = run_async(go())
    failed = any(result.failed.values()) or bool(unreachable)
    if as_json:
        print_json({"project": state.project, "keep": keep, "dry_run": dry_run,
                    "hosts": [_host_json(p, result.removed.get(p.host, []),
                                         result.failed.get(p.host, [])) for p in prunes],
                    "unreachable": unreachable_json(unreachable)})
    else:
        for host, errors in sorted(result.failed.items()):
            for error in errors:
                echo(one_line(f"{host}: could not remove {error}"), err=True)
        for host, error in sorted(unreachable.items()):
            echo(one_line(f"{host}: unreachable: {error}"), err=True)
        if not dry_run and any(result.removed.values()):
            echo(f"Pruned: {sum(len(r) for r in result.removed.values())} item(s).")
    if failed:
        sys.exit(EXIT_ERROR)
    if dry_run:
        sys.exit(EXIT_CHANGES if any(not p.empty for p in prunes) else EXIT_OK)
    sys.exit(EXIT_OK)
