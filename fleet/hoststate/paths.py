"""Where a project's state lives on a host (pure)."""

from __future__ import annotations

import posixpath
from dataclasses import dataclass

from fleet.config.inventory import DEFAULT_STATE_DIR

JOURNAL_FILE = "journal.jsonl"
LOCK_FILE = "lock.json"


@dataclass(frozen=True)
class ProjectPaths:
    """`<state_dir>/<project>/{journal.jsonl,lock.json}`, as SFTP paths.

    A relative state_dir is relative to the SSH user's home: that is where the SFTP server
    starts. "~/" is stripped because SFTP servers do not expand it.
    """

    state_dir: str
    project: str

    @property
    def directory(self) -> str:
        root = self.state_dir
        if root == "~":
            root = "."
        elif root.startswith("~/"):
            root = root[2:] or "."
        return posixpath.normpath(posixpath.join(root, self.project))

    @property
    def journal(self) -> str:
        return posixpath.join(self.directory, JOURNAL_FILE)

    @property
    def lock(self) -> str:
        return posixpath.join(self.directory, LOCK_FILE)

    def aside(self, suffix: str) -> str:
        """A name beside the lock for a file being replaced (unique per run)."""
        return f"{self.lock}.{suffix}"


__all__ = ["DEFAULT_STATE_DIR", "ProjectPaths"]
