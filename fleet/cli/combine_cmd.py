"""`fleet combine REPORT...`: the --json reports of shards as one (fleet.core.combine)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from fleet.cli.common import print_json
from fleet.cli.terminal import echo
from fleet.core.combine import CombineError, combine
from fleet.core.untrusted import UntrustedJSONError, parse_json

MAX_REPORT_BYTES = 256 * 1024 * 1024  # a 10,000-host apply report is far below
MAX_REPORT_ITEMS = 50_000_000


@click.command(name="combine")
@click.argument("reports", nargs=-1, required=True, metavar="REPORT...",
                type=click.Path(dir_okay=False))
def combine_reports(reports: tuple[str, ...]) -> None:
    """Merge the --json reports of one command run on several shards (--shard K/N) into
    one, and exit as that command would have for the whole fleet."""
    loaded = []
    for path in reports:
        try:
            data = parse_json(Path(path).read_bytes(), max_bytes=MAX_REPORT_BYTES,
                              max_items=MAX_REPORT_ITEMS)
        except (OSError, UntrustedJSONError) as exc:
            echo(f"error: {path}: {exc}", err=True)
            sys.exit(1)
        if not isinstance(data, dict):
            echo(f"error: {path}: not a fleet --json report (a JSON object)", err=True)
            sys.exit(1)
        loaded.append(data)
    try:
        merged, code = combine(loaded)
    except CombineError as exc:
        echo(f"error: {exc}", err=True)
        sys.exit(1)
    print_json(merged)
    sys.exit(code)
