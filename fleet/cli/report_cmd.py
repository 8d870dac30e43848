"""`fleet report --html FILE`: one self-contained page of the fleet (no external assets)."""

from __future__ import annotations

import datetime
import os
import sys
from importlib import resources
from pathlib import Path

import click

from fleet.cli.common import json_option, print_json, project_options
from fleet.cli.session import EXIT_ERROR, EXIT_OK, load_state, run_async, run_options, session
from fleet.cli.terminal import echo, one_line
from fleet.core.report import Report, build_report
from fleet.engine.run import RunOptions


def render_html(report: Report) -> str:
    """The page, every value from hosts and inventories HTML-escaped (autoescape)."""
    import jinja2
    template = resources.files("fleet.cli").joinpath("templates/report.html.j2").read_text()
    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    hosts = sum(len(rows) for regions in report.groups.values() for rows in regions.values())
    return env.from_string(template).render(report=report, hosts=hosts)


@click.command()
@project_options
@run_options
@json_option
@click.option("--html", "html_path", metavar="FILE", type=click.Path(dir_okay=False),
              help="Write the page here.")
def report(inventories: tuple[str, ...], limit: str | None, playbooks: tuple[str, ...],
           forks: int, connect_timeout: float, as_json: bool, html_path: str | None) -> None:
    """A page of the fleet: clouds, regions, hosts x services with drift highlighted, images
    and revisions, and the last rollouts from the hosts' journals. Exit 1 if a host could
    not be read (the page still shows it, as unreachable)."""
    if html_path is None and not as_json:
        raise click.UsageError("give --html FILE (or --json)")
    state = load_state(inventories, playbooks, limit, as_json)
    options = RunOptions(forks=forks, connect_timeout=connect_timeout)

    async def go() -> Report:
        async with session(state, options, "reading", as_json,
                           with_journals=True) as (run, observation):
            findings = run.diff(observation)
            now = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
            return build_report(state, observation.snapshots, observation.unreachable,
                                findings, run.journals, now.replace("+00:00", "Z"))

    made = run_async(go())
    if html_path is not None:
        target = Path(html_path)
        temporary = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        temporary.write_text(render_html(made), encoding="utf-8")
        os.replace(temporary, target)
    if as_json:
        print_json(made.as_json())
    else:
        echo(f"wrote {html_path}: {made.counts['ok']} in sync, {made.counts['drift']} "
             f"drifted, {made.counts['unreachable']} unreachable")
        for cloud in made.groups.values():
            for rows in cloud.values():
                for row in rows:
                    if row.error:
                        echo(one_line(f"{row.host}: unreachable: {row.error}"), err=True)
    sys.exit(EXIT_ERROR if made.counts["unreachable"] else EXIT_OK)
