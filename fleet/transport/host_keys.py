"""Host key verification: strict, or accept-new with atomic recording in known_hosts.

asyncssh trusts the keys it finds in the known_hosts data we pass it, and asks the client
object (`validate_host_public_key`) about any other key. That is where the policy lives:
an unknown key is refused (strict) or accepted and recorded (accept-new); a key for a host
that already has a different one recorded is always refused.
"""

from __future__ import annotations

import fcntl
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import asyncssh

from fleet.config.inventory_model import HostKeyChecking
from fleet.errors import HostKeyError

DEFAULT_SSH_PORT = 22

_known_hosts_cache: dict[Path, tuple[tuple[int, int], asyncssh.SSHKnownHosts]] = {}


def default_known_hosts_path() -> Path:
    return Path("~/.ssh/known_hosts").expanduser()


def known_hosts_pattern(host: str, port: int) -> str:
    """How OpenSSH writes a host in known_hosts: `host`, or `[host]:port` off port 22."""
    return host if port == DEFAULT_SSH_PORT else f"[{host}]:{port}"


def load_known_hosts(path: Path) -> asyncssh.SSHKnownHosts:
    """Parsed known_hosts, re-read only when the file changed; a missing file is empty.

    Parsed once for all connections of a run rather than once per host.
    Raises OSError or ValueError when the file is unreadable or malformed.
    """
    try:
        stat = path.stat()
    except FileNotFoundError:
        return asyncssh.import_known_hosts("")
    stamp = (stat.st_mtime_ns, stat.st_size)
    cached = _known_hosts_cache.get(path)
    if cached and cached[0] == stamp:
        return cached[1]
    parsed = asyncssh.import_known_hosts(path.read_text())
    _known_hosts_cache[path] = (stamp, parsed)
    return parsed


def _has_recorded_keys(known_hosts: asyncssh.SSHKnownHosts, host: str, addr: str,
                       port: int) -> bool:
    host_keys, ca_keys, *_ = known_hosts.match(host, addr, _port_or_none(port))
    return bool(host_keys or ca_keys)


def _port_or_none(port: int) -> int | None:
    return None if port == DEFAULT_SSH_PORT else port


def _fingerprint(key: asyncssh.SSHKey) -> str:
    return f"{key.get_algorithm()} {key.get_fingerprint('sha256')}"


@dataclass
class _Offered:
    host: str
    port: int
    key: asyncssh.SSHKey


class HostKeyVerifier(asyncssh.SSHClient):
    """asyncssh client object deciding on keys not already trusted by known_hosts."""

    def __init__(self, known_hosts: asyncssh.SSHKnownHosts, known_hosts_path: Path,
                 checking: HostKeyChecking) -> None:
        self._known_hosts = known_hosts
        self._known_hosts_path = known_hosts_path
        self._checking = checking
        self.refused: Literal["unknown", "changed"] | None = None
        self.offered: _Offered | None = None
        self.accepted_new_key = False

    def validate_host_public_key(self, host: str, addr: str, port: int,
                                 key: asyncssh.SSHKey) -> bool:
        self.offered = _Offered(host, port, key)
        if _has_recorded_keys(self._known_hosts, host, addr, port):
            self.refused = "changed"
            return False
        if self._checking == "accept-new":
            self.accepted_new_key = True
            return True
        self.refused = "unknown"
        return False

    def refusal_error(self, host_name: str, detail: str) -> HostKeyError:
        """The operator-facing error once asyncssh refused the key."""
        path = self._known_hosts_path
        if self.offered is None or self.refused is None:
            return HostKeyError(host_name, f"host key not accepted ({detail}); known_hosts: {path}")
        pattern = known_hosts_pattern(self.offered.host, self.offered.port)
        offered = _fingerprint(self.offered.key)
        if self.refused == "changed":
            return HostKeyError(
                host_name,
                f"HOST KEY CHANGED for {pattern}: the server offered {offered}, but {path} "
                "records a different key. This can be a man-in-the-middle attack, or the host "
                "was reinstalled. If the change is expected, remove the old entry "
                f"(ssh-keygen -R '{pattern}' -f {path}) and connect again.",
            )
        return HostKeyError(
            host_name,
            f"unknown host key for {pattern} ({offered}): it is not in {path}. Verify it and "
            f"add it to that file (ssh-keyscan), or set host_key_checking: accept-new.",
        )

    def record_accepted_key(self, host_name: str) -> None:
        """Append the key accepted under accept-new (blocking: run it in a thread)."""
        if not self.accepted_new_key or self.offered is None:
            return
        try:
            outcome = record_host_key(self._known_hosts_path, self.offered.host,
                                      self.offered.port, self.offered.key)
        except OSError as exc:
            raise HostKeyError(
                host_name, f"cannot record the new host key in {self._known_hosts_path}: {exc}"
            ) from exc
        if outcome == "conflict":
            raise HostKeyError(
                host_name,
                f"another key for {known_hosts_pattern(self.offered.host, self.offered.port)} "
                f"was recorded in {self._known_hosts_path} while connecting; refusing "
                f"{_fingerprint(self.offered.key)}",
            )


def record_host_key(path: Path, host: str, port: int,
                    key: asyncssh.SSHKey) -> Literal["recorded", "present", "conflict"]:
    """Append `host key` to known_hosts atomically, unless it is already there.

    A lock file beside known_hosts serialises writers (threads and processes: flock locks
    belong to each open file); the new content goes to a temporary file that replaces the
    original, so a reader never sees half a line.
    """
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    key_text = " ".join(key.export_public_key("openssh").decode().split()[:2])
    entry = f"{known_hosts_pattern(host, port)} {key_text}\n"
    with open(path.with_name(path.name + ".lock"), "a") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)
        try:
            current = path.read_text()
            mode = path.stat().st_mode & 0o777
        except FileNotFoundError:
            current, mode = "", 0o644
        recorded = asyncssh.import_known_hosts(current)
        host_keys, ca_keys, *_ = recorded.match(host, host, _port_or_none(port))
        if key in host_keys:
            return "present"
        if host_keys or ca_keys:
            return "conflict"
        if current and not current.endswith("\n"):
            current += "\n"
        descriptor, temp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        try:
            with os.fdopen(descriptor, "w") as temp_file:
                temp_file.write(current + entry)
                temp_file.flush()
                os.fsync(temp_file.fileno())
            os.chmod(temp_name, mode)
            os.replace(temp_name, path)
        except BaseException:
            Path(temp_name).unlink(missing_ok=True)
            raise
    return "recorded"
