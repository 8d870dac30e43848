"""Progress of long work: a live view on a terminal, plain lines otherwise.

The live view is a bar of hosts done/total (with an ETA) above what the busy hosts are doing
(its wave and batch, the action, the health gate, a failure). Up to MAX_ROWS busy hosts it is
a table, host by host; beyond, a summary: hosts counted by state, the failures, and the
slowest hosts, so 1,000 hosts fit a screen. Without a terminal, each message is one plain
line on stderr (and `--json` stays per host).
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import TYPE_CHECKING

from fleet.cli.common import console
from fleet.cli.terminal import cell, one_line

if TYPE_CHECKING:  # rich loads only for the live view, on a terminal
    from rich.console import RenderableType
    from rich.live import Live
    from rich.progress import Progress, TaskID

MAX_ROWS = 20  # busy hosts shown one by one; more are summarised
SLOWEST = 5  # hosts named in a summary as the slowest
STATES = ("failed", "changing", "health gate", "waiting", "connected")  # summary order


def state_of(message: str) -> str:
    """The state a progress message puts its host in, for the summary."""
    if "fail" in message:
        return "failed"
    if "health gate" in message:
        return "health gate"
    if "waiting" in message:
        return "waiting"
    if message == "connected":
        return "connected"
    return "changing"


def summary_lines(doing: Mapping[str, str], since: Mapping[str, float], finished: set[str],
                  now: float) -> list[str]:
    """Busy hosts as a few lines: counts by state, every failure (up to MAX_ROWS), and the
    hosts busy the longest with what they are doing."""
    busy = {h: m for h, m in doing.items() if h not in finished}
    failed = sorted(h for h, m in doing.items() if state_of(m) == "failed")
    counts = Counter(state_of(m) for h, m in busy.items() if h not in failed)
    counts["failed"] = len(failed)
    head = " · ".join(f"{counts[s]} {s}" for s in STATES if counts[s])
    lines = [f"{head} · {len(finished) - len([h for h in failed if h in finished])} done"]
    lines += [f"failed {h}: {doing[h]}" for h in failed[:MAX_ROWS]]
    if len(failed) > MAX_ROWS:
        lines.append(f"… and {len(failed) - MAX_ROWS} more failed")
    waiting = sorted((h for h in busy if h not in failed), key=lambda h: (since.get(h, now), h))
    lines += [f"slowest {h} ({now - since.get(h, now):.0f}s): {busy[h]}"
              for h in waiting[:SLOWEST]]
    return lines


class HostProgress:
    """Hosts done/total and what each is doing. Messages go to stderr."""

    def __init__(self, title: str, total: int, *, quiet: bool = False,
                 plain_lines: bool = True, clock: Callable[[], float] = time.monotonic
                 ) -> None:
        self.clock = clock
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
        self._since: dict[str, float] = {}  # when a host's first message came

    def __enter__(self) -> HostProgress:
        if self.live:
            from rich.live import Live
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self._progress = Progress(
                TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                TimeElapsedColumn(), TimeRemainingColumn())
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
        from rich.console import Group
        from rich.table import Table

        assert self._progress is not None
        table = Table.grid(padding=(0, 2))
        busy = [(h, m) for h, m in self._doing.items() if h not in self._finished]
        if len(busy) > MAX_ROWS:
            for line in summary_lines(self._doing, self._since, self._finished, self.clock()):
                table.add_row(cell(line), style="red" if line.startswith("failed") else "")
            return Group(self._progress, table)
        failed = [(h, m) for h, m in self._doing.items() if "fail" in m]
        for host, message in (failed + [b for b in busy if b not in failed])[:MAX_ROWS]:
            style = "red" if "fail" in message else ""
            table.add_row(cell(host), cell(message), style=style)
        return Group(self._progress, table)

    def update(self, host: str, message: str) -> None:
        if self._view is not None:
            self._doing[host] = message
            self._since.setdefault(host, self.clock())
        elif not self.quiet and self.plain_lines:
            print(one_line(f"{host}: {message}"), file=sys.stderr, flush=True)

    def host_done(self, host: str) -> None:
        if host in self._finished:
            return
        self._finished.add(host)
        if self._progress is not None and self._task is not None:
            self._progress.advance(self._task)
