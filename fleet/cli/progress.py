"""Progress of long work: a live view on a terminal, plain lines otherwise.

The live view is a bar of hosts done/total above a table of what each busy host is doing
(its wave and batch, the action, the health gate, a failure), so a rollout can be followed
host by host. Without a terminal, each message is one plain line on stderr.
"""

from __future__ import annotations

import sys
from types import TracebackType

from rich.console import Group, RenderableType
from rich.live import Live
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from fleet.cli.common import console
from fleet.cli.terminal import cell, one_line

MAX_ROWS = 20  # the busiest hosts; a fleet of hundreds would not fit a screen


class HostProgress:
    """Hosts done/total and what each is doing. Messages go to stderr."""

    def __init__(self, title: str, total: int, *, quiet: bool = False,
                 plain_lines: bool = True) -> None:
        self.plain_lines = plain_lines  # off: only the live view (observing is not news)
        self.title = title
        self.total = total
        self.quiet = quiet
        self.live = sys.stderr.isatty() and not quiet
        self._progress: Progress | None = None
        self._view: Live | None = None
        self._task: TaskID | None = None
        self._finished: set[str] = set()
        self._doing: dict[str, str] = {}

    def __enter__(self) -> HostProgress:
        if self.live:
            self._progress = Progress(
                TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                TimeElapsedColumn())
            self._task = self._progress.add_task(self.title, total=self.total)
            self._view = Live(get_renderable=self._render, console=console(stderr=True),
                              transient=True, refresh_per_second=8)
            self._view.__enter__()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._view is not None:
            self._view.__exit__(exc_type, exc, tb)

    def _render(self) -> RenderableType:
        assert self._progress is not None
        table = Table.grid(padding=(0, 2))
        busy = [(h, m) for h, m in self._doing.items() if h not in self._finished]
        failed = [(h, m) for h, m in self._doing.items() if "fail" in m]
        for host, message in (failed + [b for b in busy if b not in failed])[:MAX_ROWS]:
            style = "red" if "fail" in message else ""
            table.add_row(cell(host), cell(message), style=style)
        return Group(self._progress, table)

    def update(self, host: str, message: str) -> None:
        if self._view is not None:
            self._doing[host] = message
        elif not self.quiet and self.plain_lines:
            print(one_line(f"{host}: {message}"), file=sys.stderr, flush=True)

    def host_done(self, host: str) -> None:
        if host in self._finished:
            return
        self._finished.add(host)
        if self._progress is not None and self._task is not None:
            self._progress.advance(self._task)
