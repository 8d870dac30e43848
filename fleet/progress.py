"""Progress of long work: a live view on a terminal, plain lines otherwise."""

from __future__ import annotations

import sys
from types import TracebackType

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from fleet.commands.common import console


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
        self._task: TaskID | None = None
        self._finished: set[str] = set()

    def __enter__(self) -> HostProgress:
        if self.live:
            self._progress = Progress(
                TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                TimeElapsedColumn(), TextColumn("{task.fields[status]}"),
                console=console(stderr=True), transient=True)
            self._progress.__enter__()
            self._task = self._progress.add_task(self.title, total=self.total, status="")
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._progress is not None:
            self._progress.__exit__(exc_type, exc, tb)

    def update(self, host: str, message: str) -> None:
        if self._progress is not None and self._task is not None:
            self._progress.update(self._task, status=f"{host}: {message}"[:60])
        elif not self.quiet and self.plain_lines:
            print(f"{host}: {message}", file=sys.stderr, flush=True)

    def host_done(self, host: str) -> None:
        if host in self._finished:
            return
        self._finished.add(host)
        if self._progress is not None and self._task is not None:
            self._progress.advance(self._task)
