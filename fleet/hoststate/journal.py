"""The journal on a host: an append-only file, `<state_dir>/<project>/journal.jsonl`, of
every change fleet made there (entries and codec: fleet.core.journal)."""

from __future__ import annotations

from collections.abc import Sequence

from fleet.core.journal import JournalEntry, decode_journal, encode_entries
from fleet.hoststate.paths import DEFAULT_STATE_DIR, ProjectPaths
from fleet.hoststate.sftp import append, ensure_dir, read_file, sftp_session
from fleet.transport.ssh import HostConnection


class Journal:
    """A project's journal on one host."""

    def __init__(self, connection: HostConnection, project: str,
                 state_dir: str = DEFAULT_STATE_DIR) -> None:
        self.connection = connection
        self.paths = ProjectPaths(state_dir, project)
        self.skipped = 0  # unreadable lines seen by the last read()

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
            data = await read_file(sftp, self.paths.journal)
        entries, self.skipped = decode_journal(data or b"")
        return entries
