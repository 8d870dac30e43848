"""File operations on a host over SFTP on its existing SSH connection.

Each operation opens its own short SFTP session: a session is an SSH channel, and sshd allows
few (MaxSessions, 10 by default) while Docker calls use up to 8. SFTP errors become
HostStateError with the host and path.
"""

from __future__ import annotations

import asyncio
import contextlib
import posixpath
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import cast

import asyncssh

from fleet.errors import HostStateError
from fleet.transport.ssh import HostConnection

DIR_MODE = 0o700
FILE_MODE = 0o600
WRITE_CHUNK = 16 * 1024  # below every server's maximum write: one SFTP request per chunk
# One state-file operation (a journal read is at most 8 MiB) may take this long: a host that
# drip-feeds its answers cannot hold a run longer (its connection is closed: see sftp_session).
SESSION_DEADLINE = 60.0
CLOSE_WAIT = 2.0

Sftp = asyncssh.SFTPClient


def _reason(exc: BaseException, host: str) -> str:
    if isinstance(exc, asyncssh.ChannelOpenError) and \
            exc.code == asyncssh.OPEN_REQUEST_SESSION_FAILED:
        # The session opened but its "subsystem sftp" request was refused: no Subsystem line.
        return (f"sshd on {host} offers no SFTP subsystem, which fleet needs for the project's "
                "journal and lock and the files it delivers (hardened sshd_config files often "
                "drop it); add `Subsystem sftp internal-sftp` to its sshd_config and reload sshd "
                "(`fleet check` and `fleet status` work without it, unless the project "
                "delivers files next to its compose file)")
    if isinstance(exc, asyncssh.SFTPError):
        return exc.reason or type(exc).__name__
    return str(exc) or type(exc).__name__


@contextlib.asynccontextmanager
async def sftp_session(connection: HostConnection, what: str,
                       deadline: float | None = None) -> AsyncIterator[Sftp]:
    """An SFTP session; any failure inside is reported as HostStateError("{what}: reason"),
    and so is taking longer than `deadline` (default SESSION_DEADLINE)."""
    expired = False
    deadline = SESSION_DEADLINE if deadline is None else deadline
    try:
        sftp = await asyncio.wait_for(connection.ssh.start_sftp_client(), SESSION_DEADLINE)

        def expire() -> None:
            # The host's whole connection goes: that fails every request still waiting. A
            # cancellation would not (the file's own close would wait for the silent host),
            # nor would closing the session, which waits for the host to agree.
            nonlocal expired
            expired = True
            connection.ssh.abort()

        timer = asyncio.get_running_loop().call_later(deadline, expire)
        try:
            yield sftp
        finally:
            timer.cancel()
            sftp.exit()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(sftp.wait_closed(), CLOSE_WAIT)
    except HostStateError:
        raise
    except (TimeoutError, asyncssh.Error, OSError) as exc:
        reason = (f"no answer within {deadline:g}s"
                  if expired or isinstance(exc, TimeoutError) else _reason(exc, connection.name))
        raise HostStateError(connection.name, f"{what}: {reason}") from exc


async def ensure_dir(sftp: Sftp, path: str) -> None:
    """mkdir -p with mode 0700 (journals name images and operators: not for other users)."""
    attrs = asyncssh.SFTPAttrs(permissions=DIR_MODE)
    partial = ""
    for part in [p for p in path.split("/") if p not in ("", ".")]:
        partial = posixpath.join(partial or ("/" if path.startswith("/") else ""), part)
        try:
            await sftp.mkdir(partial, attrs)
        except asyncssh.SFTPError:
            if not await sftp.isdir(partial):  # exists (a racing controller made it) or fails
                raise


async def read_file(sftp: Sftp, path: str, limit: int) -> bytes | None:
    """The file, but never more than `limit` + 1 bytes of it (so a caller can tell a file
    larger than `limit`: the host decides how big it is); None if there is none."""
    try:
        async with sftp.open(path, "rb") as file:
            data: bytes = await file.read(limit + 1)
            return data[:limit + 1]
    except asyncssh.SFTPNoSuchFile:
        return None


async def read_tail(sftp: Sftp, path: str, limit: int) -> tuple[bytes, int] | None:
    """The file's last `limit` bytes at most, from the first whole line on, and how many
    bytes before them were not read; None if there is no file."""
    try:
        async with sftp.open(path, "rb") as file:
            size = (await file.stat()).size or 0
            start = max(0, size - limit)
            data = cast(bytes, await file.read(limit, start))[:limit]
    except asyncssh.SFTPNoSuchFile:
        return None
    if start:  # the first line read is only the end of one
        newline = data.find(b"\n")
        start += newline + 1 if newline >= 0 else len(data)
        data = data[newline + 1:] if newline >= 0 else b""
    return data, start


async def modified_at(sftp: Sftp, path: str) -> datetime | None:
    try:
        attrs = await sftp.stat(path)
    except asyncssh.SFTPNoSuchFile:
        return None
    return datetime.fromtimestamp(attrs.mtime, UTC) if attrs.mtime is not None else None


async def create_exclusive(sftp: Sftp, path: str, data: bytes) -> bool:
    """Create `path` with `data` unless it exists (O_CREAT|O_EXCL); False if it existed."""
    try:
        file = await sftp.open(path, "xb", asyncssh.SFTPAttrs(permissions=FILE_MODE))
    except (asyncssh.SFTPFileAlreadyExists, asyncssh.SFTPFailure) as exc:
        # SFTP v3 servers (OpenSSH) answer EEXIST with a generic failure: look.
        if isinstance(exc, asyncssh.SFTPFileAlreadyExists) or await sftp.exists(path):
            return False
        raise
    async with file:
        await file.write(data)  # one request: readers see the lease whole or (briefly) empty
    return True


async def replace_file(sftp: Sftp, path: str, data: bytes, temporary: str) -> None:
    """Atomically replace `path` (write beside it, then POSIX rename over it)."""
    async with sftp.open(temporary, "wb", asyncssh.SFTPAttrs(permissions=FILE_MODE)) as file:
        await file.write(data)
    await sftp.posix_rename(temporary, path)


async def rename_new(sftp: Sftp, old: str, new: str) -> bool:
    """SFTP's plain rename, which never overwrites; False if `old` was gone."""
    try:
        await sftp.rename(old, new)
    except asyncssh.SFTPNoSuchFile:
        return False
    return True


async def remove(sftp: Sftp, path: str) -> bool:
    try:
        await sftp.remove(path)
    except asyncssh.SFTPNoSuchFile:
        return False
    return True


async def append(sftp: Sftp, path: str, data: bytes) -> None:
    """Append `data`, which must end in a newline, as one write per chunk, in order.

    If the file ends in a torn line (a writer killed mid-write), a newline goes first so the
    torn line stays one unreadable line instead of swallowing our first entry.
    """
    async with sftp.open(path, "a+b", asyncssh.SFTPAttrs(permissions=FILE_MODE)) as file:
        size = (await file.stat()).size or 0
        last = cast(bytes, await file.read(1, size - 1)) if size else b"\n"
        if last != b"\n":
            data = b"\n" + data
        # Chunks are awaited one by one: with O_APPEND the server ignores offsets, so
        # parallel requests could land out of order.
        for start in range(0, len(data), WRITE_CHUNK):
            await file.write(data[start:start + WRITE_CHUNK])
