"""Delivered files on a host (fleet.core.files): listed, and written where missing, over SFTP
on the host's connection.

A file or tree is written under a temporary name and renamed into place once whole, so a
container never mounts a partial one and a controller killed mid-write leaves only a
temporary name (cleaned by the next delivery). What is there is never rewritten: its name is
its content's digest.
"""

from __future__ import annotations

import posixpath
import secrets
from collections.abc import Sequence
from dataclasses import dataclass

import asyncssh

from fleet.core.files import FILES_DIR, Delivered, FileContent
from fleet.errors import HostStateError
from fleet.hoststate.paths import ProjectPaths
from fleet.hoststate.sftp import Sftp, ensure_dir, sftp_session
from fleet.transport.ssh import HostConnection

MAX_LISTED = 100_000  # names read from a host's files directory
TEMPORARY = ".partial-"
TREE_DIR_MODE = 0o755


@dataclass(frozen=True)
class FilesOnHost:
    root: str  # the absolute path of the files directory, as the host's dockerd sees it
    names: frozenset[str]  # delivered names present (temporaries excluded)


class FileStore:
    def __init__(self, connection: HostConnection, project: str, state_dir: str) -> None:
        self.connection = connection
        self.directory = posixpath.join(ProjectPaths(state_dir, project).directory, FILES_DIR)

    async def look(self) -> FilesOnHost:
        """The absolute files directory and what it holds (created if missing)."""
        async with sftp_session(self.connection, f"cannot list {self.directory}") as sftp:
            await ensure_dir(sftp, self.directory)
            root = await sftp.realpath(self.directory)
            names: set[str] = set()
            async for entry in sftp.scandir(self.directory):
                name = str(entry.filename)
                if len(names) >= MAX_LISTED:
                    raise HostStateError(self.connection.name,
                                         f"{self.directory} holds more than {MAX_LISTED:,} "
                                         "entries")
                if name not in (".", "..") and not name.startswith("."):
                    names.add(name)
            return FilesOnHost(str(root), frozenset(names))

    async def deliver(self, items: Sequence[Delivered], present: frozenset[str]) -> int:
        """Write each item not present; the bytes written."""
        missing = {d.name: d for d in items if d.name not in present}
        if not missing:
            return 0
        written = 0
        async with sftp_session(self.connection, f"cannot write to {self.directory}") as sftp:
            await ensure_dir(sftp, self.directory)
            for name, item in missing.items():
                final = posixpath.join(self.directory, name)
                partial = posixpath.join(self.directory,
                                         f"{TEMPORARY}{name[:16]}-{secrets.token_hex(4)}")
                try:
                    if item.is_tree:
                        await _write_tree(sftp, partial, item)
                    else:
                        await _write_file(sftp, partial, item.files[""])
                    await sftp.rename(partial, final)
                except asyncssh.SFTPError as exc:
                    if await sftp.exists(final):  # another controller delivered it first
                        continue
                    raise HostStateError(self.connection.name,
                                         f"cannot deliver {item.what} to {final}: "
                                         f"{exc.reason}") from exc
                written += item.size
        return written


async def _write_file(sftp: Sftp, path: str, content: FileContent) -> None:
    async with sftp.open(path, "wb", asyncssh.SFTPAttrs(permissions=0o600)) as file:
        await file.write(content.data)
    attrs = asyncssh.SFTPAttrs(permissions=content.mode)
    if content.uid is not None or content.gid is not None:
        current = await sftp.stat(path)
        attrs.uid = content.uid if content.uid is not None else current.uid
        attrs.gid = content.gid if content.gid is not None else current.gid
    await sftp.setstat(path, attrs)


async def _write_tree(sftp: Sftp, root: str, item: Delivered) -> None:
    await sftp.mkdir(root, asyncssh.SFTPAttrs(permissions=TREE_DIR_MODE))
    made = {root}
    for relative in sorted(item.files):
        path = posixpath.join(root, relative)
        parent = posixpath.dirname(path)
        for ancestor in _ancestors(root, parent):
            if ancestor not in made:
                await sftp.mkdir(ancestor, asyncssh.SFTPAttrs(permissions=TREE_DIR_MODE))
                made.add(ancestor)
        await _write_file(sftp, path, item.files[relative])


def _ancestors(root: str, directory: str) -> list[str]:
    """The directories from below `root` down to `directory`, outermost first."""
    chain: list[str] = []
    while directory != root and directory.startswith(root + "/"):
        chain.append(directory)
        directory = posixpath.dirname(directory)
    return chain[::-1]
