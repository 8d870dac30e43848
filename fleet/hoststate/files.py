"""Delivered files on a host (fleet.core.files): listed, and written where missing, over SFTP
on the host's connection.

A file or tree is written under a temporary name and renamed into place once whole, so a
container never mounts a partial one and a controller killed mid-write leaves only a
temporary name (never listed; the next delivery writes under a new one). What is there is
never rewritten: its name is its content's digest.
"""

from __future__ import annotations

import posixpath
import secrets
from collections.abc import Sequence

import asyncssh

from fleet.core.files import FILES_DIR, Delivered, FileContent, FilesOnHost
from fleet.errors import HostStateError
from fleet.hoststate.paths import ProjectPaths
from fleet.hoststate.sftp import SESSION_DEADLINE, Sftp, ensure_dir, sftp_session
from fleet.transport.ssh import HostConnection

MAX_LISTED = 100_000  # names read from a host's files directory
MAX_ROOT = 4096  # characters of the directory's absolute path, as the host answers it
TEMPORARY = ".partial-"
TREE_DIR_MODE = 0o755
# A delivery may take longer than a state file: its deadline grows with what it writes, at
# the slowest rate fleet waits for (a host slower than that is taken for a stalled one).
MIN_BYTES_PER_SECOND = 1024 * 1024
SECONDS_PER_FILE = 0.05

__all__ = ["FileStore", "FilesOnHost", "checked_bind_source", "delivery_deadline"]


def delivery_deadline(item: Delivered) -> float:
    return (SESSION_DEADLINE + item.size / MIN_BYTES_PER_SECOND
            + len(item.files) * SECONDS_PER_FILE)


class FileStore:
    def __init__(self, connection: HostConnection, project: str, state_dir: str) -> None:
        self.connection = connection
        self.directory = posixpath.join(ProjectPaths(state_dir, project).directory, FILES_DIR)

    async def look(self) -> FilesOnHost:
        """The absolute files directory and what it holds (created if missing)."""
        async with sftp_session(self.connection, f"cannot list {self.directory}") as sftp:
            await ensure_dir(sftp, self.directory)
            root = checked_bind_source(self.connection.name, await sftp.realpath(self.directory),
                                          "the project's files directory")
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
        """Write each item not present (secrets already revealed: fleet.core.files.revealed);
        the bytes written. Each item has its own session and deadline."""
        written = 0
        done: set[str] = set()
        for item in items:
            if item.name in present or item.name in done:
                continue
            done.add(item.name)
            final = posixpath.join(self.directory, item.name)
            async with sftp_session(self.connection, f"cannot deliver {item.what} to {final}",
                                    delivery_deadline(item)) as sftp:
                await ensure_dir(sftp, self.directory)
                if await _write(sftp, self.directory, item):
                    written += item.size
        return written


def checked_bind_source(host: str, root: object, what: str) -> str:
    """The host's answer for a directory fleet mounts into containers (in Binds,
    `SOURCE:TARGET:MODES`), which must be a plain absolute path."""
    text = root if isinstance(root, str) else ""
    if not text.startswith("/") or len(text) > MAX_ROOT or any(c in text for c in ":,") or \
            not text.isprintable():
        raise HostStateError(host, f"the host gave {text[:100]!r} as the absolute path of "
                                   f"{what}: not a plain absolute path (fleet needs one "
                                   "without ':' or ',' to mount it)")
    return text


async def _write(sftp: Sftp, directory: str, item: Delivered) -> bool:
    """Write `item` whole under a temporary name, then rename it into place; False when it
    was there already (another controller delivered it first)."""
    final = posixpath.join(directory, item.name)
    if await sftp.exists(final):
        return False
    partial = posixpath.join(directory, f"{TEMPORARY}{item.name[:16]}-{secrets.token_hex(4)}")
    if item.is_tree:
        await _write_tree(sftp, partial, item)
    else:
        await _write_file(sftp, partial, item.files[""])
    try:
        await sftp.rename(partial, final)  # SFTP's rename never replaces
    except asyncssh.SFTPError:
        if await sftp.exists(final):
            return False
        raise
    return True


async def _write_file(sftp: Sftp, path: str, content: FileContent) -> None:
    async with sftp.open(path, "wb", asyncssh.SFTPAttrs(permissions=0o600)) as file:
        await file.write(content.data)
    attrs = asyncssh.SFTPAttrs(permissions=content.mode)
    if content.uid is not None or content.gid is not None:
        current = await sftp.stat(path)
        uid = content.uid if content.uid is not None else current.uid
        gid = content.gid if content.gid is not None else current.gid
        if (uid, gid) != (current.uid, current.gid):  # only root may give a file away
            attrs.uid, attrs.gid = uid, gid
    try:
        await sftp.setstat(path, attrs)
    except asyncssh.SFTPPermissionDenied as exc:
        raise asyncssh.SFTPPermissionDenied(
            f"{exc.reason}: owner {attrs.uid}:{attrs.gid} can be given only by root; connect "
            "as root, or set the grant's uid and gid to the SSH user's") from exc


async def _write_tree(sftp: Sftp, root: str, item: Delivered) -> None:
    await sftp.mkdir(root, asyncssh.SFTPAttrs(permissions=TREE_DIR_MODE))
    made = {root}

    async def directories(parent: str) -> None:
        for ancestor in _ancestors(root, parent):
            if ancestor not in made:
                await sftp.mkdir(ancestor, asyncssh.SFTPAttrs(permissions=TREE_DIR_MODE))
                made.add(ancestor)

    for relative in sorted(item.files):
        path = posixpath.join(root, relative)
        await directories(posixpath.dirname(path))
        await _write_file(sftp, path, item.files[relative])
    for relative in sorted(item.directories):
        await directories(posixpath.join(root, relative))


def _ancestors(root: str, directory: str) -> list[str]:
    """The directories from below `root` down to `directory`, outermost first."""
    chain: list[str] = []
    while directory != root and directory.startswith(root + "/"):
        chain.append(directory)
        directory = posixpath.dirname(directory)
    return chain[::-1]
