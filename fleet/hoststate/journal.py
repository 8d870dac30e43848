"""The journal on a host: an append-only file, `<state_dir>/<project>/journal.jsonl`, of
every change fleet made there (entries and codec: fleet.core.journal).

The host decides what the file holds, so reading it is bounded: only its newest
MAX_JOURNAL_READ bytes are read, and lines that are not entries are skipped with a warning.
"""

from __future__ import annotations

from collections.abc import Sequence

from fleet.core.journal import JournalEntry, encode_entries, read_entries
from fleet.core.untrusted import MiB, size_text
from fleet.hoststate.paths import DEFAULT_STATE_DIR, ProjectPaths
from fleet.hoststate.sftp import append, ensure_dir, read_tail, sftp_session
from fleet.transport.ssh import HostConnection

MAX_JOURNAL_READ = 8 * MiB  # thousands of entries; older ones matter less (and stay on disk)


class Journal:
    """A project's journal on one host."""

    def __init__(self, connection: HostConnection, project: str,
                 state_dir: str = DEFAULT_STATE_DIR) -> None:
        self.connection = connection
        self.paths = ProjectPaths(state_dir, project)
        self.skipped = 0  # unreadable lines seen by the last read()
        self.warnings: list[str] = []  # what the last read() skipped, for the operator

    async def append(self, entries: Sequence[JournalEntry]) -> None:
        """Append the entries as one write. Raises HostStateError."""
        if not entries:
            return
        async with sftp_session(self.connection,
                                f"cannot append to {self.paths.journal}") as sftp:
            await ensure_dir(sftp, self.paths.directory)
            await append(sftp, self.paths.journal, encode_entries(entries))

    async def read(self) -> list[JournalEntry]:
        """Every readable entry, oldest first ([] if there is no journal yet).

        Raises HostStateError.
        """
        async with sftp_session(self.connection, f"cannot read {self.paths.journal}") as sftp:
            found = await read_tail(sftp, self.paths.journal, MAX_JOURNAL_READ)
        data, unread = found or (b"", 0)
        read = read_entries(data)
        self.skipped = len(read.skipped)
        self.warnings = read.warnings(self.paths.journal)
        if unread:
            self.warnings.insert(0, f"{self.paths.journal} is larger than "
                                    f"{size_text(MAX_JOURNAL_READ)}: only its newest entries "
                                    f"were read ({unread:,} older bytes were not)")
        return read.entries
