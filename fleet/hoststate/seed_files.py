"""The files a seed registry needs on hosts (fleet.engine.seeding), over SFTP: the registry's
own directory on the seed (its configuration, certificate and key), and on every host whose
daemon talks to it the certs.d directory where dockerd looks for the CA and its client
certificate. Both are written for a run and removed at its end.
"""

from __future__ import annotations

import contextlib
import posixpath
from collections.abc import Mapping

import asyncssh

from fleet.hoststate.files import checked_bind_source
from fleet.hoststate.sftp import ensure_dir, sftp_session
from fleet.transport.ssh import HostConnection

CERTS_D = "/etc/docker/certs.d"  # where dockerd (as root) reads a registry's TLS files
SEED_DIR = "seed"  # under the host's state directory: the registry's own files


def certs_dir(registry_host: str) -> str:
    return posixpath.join(CERTS_D, registry_host)


def seed_dir(state_dir: str, host: str) -> str:
    # By the host's inventory name: hosts that share a home directory keep apart.
    return posixpath.join(state_dir, SEED_DIR, host)


async def write_files(connection: HostConnection, directory: str,
                      files: Mapping[str, bytes], *, mounted: bool = False) -> str:
    """Write `files` (name -> content, mode 0600) into `directory` (made 0700), replacing
    what is there; the directory's absolute path (checked as a bind source if `mounted`)."""
    async with sftp_session(connection, f"cannot write {directory}") as sftp:
        await ensure_dir(sftp, directory)
        for name, data in files.items():
            async with sftp.open(posixpath.join(directory, name), "wb",
                                 asyncssh.SFTPAttrs(permissions=0o600)) as file:
                await file.write(data)
        absolute = str(await sftp.realpath(directory))
        if mounted:
            return checked_bind_source(connection.name, absolute,
                                       "the seed registry's directory")
        return absolute


async def remove_files(connection: HostConnection, directory: str,
                       names: tuple[str, ...]) -> None:
    """Remove the files fleet wrote into `directory`, then the directory if that left it
    empty (nothing else is touched)."""
    async with sftp_session(connection, f"cannot clean up {directory}") as sftp:
        for name in names:
            with contextlib.suppress(asyncssh.SFTPNoSuchFile):
                await sftp.remove(posixpath.join(directory, name))
        with contextlib.suppress(asyncssh.SFTPError):  # not empty (others' files), or gone
            await sftp.rmdir(directory)
