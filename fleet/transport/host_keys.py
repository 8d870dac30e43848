"""Host key verification: strict, or accept-new with atomic recording in known_hosts.

asyncssh trusts the keys our known_hosts lookup (`KnownHosts.match`) returns, refuses the
revoked ones, and asks the client object (`validate_host_public_key`) about any other key.
That is where the policy lives: an unknown key is refused (strict) or accepted and recorded
(accept-new); a key for a host that already has a different one recorded is always refused;
a key marked `@revoked` for the host is refused in every mode, whichever form of the host's
name the @revoked line uses (`addr`, `[addr]:port`, a pattern) and on whichever port.
"""

from __future__ import annotations

import fcntl
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import asyncssh

from fleet.config.inventory_model import HostKeyChecking
from fleet.errors import HostKeyError

DEFAULT_SSH_PORT = 22

# (trusted host keys, trusted CA keys, revoked keys): what asyncssh takes from a lookup
KeyMatch = tuple[list[asyncssh.SSHKey], list[asyncssh.SSHKey], list[asyncssh.SSHKey]]

_known_hosts_cache: dict[Path, tuple[tuple[int, int], KnownHosts]] = {}


def default_known_hosts_path() -> Path:
    return Path("~/.ssh/known_hosts").expanduser()


def known_hosts_pattern(host: str, port: int) -> str:
    """How OpenSSH writes a host in known_hosts: `host`, or `[host]:port` off port 22."""
    return host if port == DEFAULT_SSH_PORT else f"[{host}]:{port}"


def _port_or_none(port: int | None) -> int | None:
    return None if port in (None, DEFAULT_SSH_PORT) else port


def _unique(keys: list[asyncssh.SSHKey]) -> list[asyncssh.SSHKey]:
    found: list[asyncssh.SSHKey] = []
    for key in keys:
        if key not in found:
            found.append(key)
    return found


_PORT_FORM = re.compile(r"(!?)\[(.+)\]:[0-9]+")


def _any_port(patterns: str) -> str:
    """A known_hosts host field with `[host]:port` patterns widened to `host` (any port).
    Hashed entries cannot be widened: they are looked up under both forms instead."""
    return ",".join(_PORT_FORM.sub(r"\1\2", pattern) for pattern in patterns.split(","))


@dataclass(frozen=True)
class KnownHosts:
    """A known_hosts file, parsed as asyncssh reads it and once more for its @revoked lines.

    asyncssh's own lookup of a host on port P reads the `[addr]:P` entries, or, when none of
    them trusts a key, the `addr` entries instead: the revocations of the other form are lost
    (a key revoked as `[addr]:P` looks unknown, and accept-new would take it). The @revoked
    lines are therefore also kept apart, unmarked and widened to every port, and matched in
    both forms: a key revoked for a host is refused on all of its ports.
    """

    entries: asyncssh.SSHKnownHosts
    revocations: asyncssh.SSHKnownHosts

    @classmethod
    def parse(cls, text: str) -> KnownHosts:
        """Raises ValueError when the text is not known_hosts."""
        revoked = []
        for line in text.splitlines():
            parts = line.split(None, 2)
            if len(parts) == 3 and parts[0] == "@revoked":
                revoked.append(f"{_any_port(parts[1])} {parts[2]}")
        return cls(asyncssh.import_known_hosts(text),
                   asyncssh.import_known_hosts("\n".join(revoked)))

    def revoked_keys(self, host: str, addr: str, port: int | None) -> list[asyncssh.SSHKey]:
        """Every key revoked for the host, as `addr`, as `[addr]:port` or by a pattern."""
        found: list[asyncssh.SSHKey] = []
        for lookup_port in (None, _port_or_none(port)):
            found += self.revocations.match(host, addr, lookup_port)[0]
        return _unique(found)

    def match(self, host: str, addr: str, port: int | None) -> KeyMatch:
        """The keys to trust and to refuse for a host (None or 22: the default port).

        A revoked key is never among the trusted ones, even where another entry lists it.
        """
        host_keys, ca_keys, revoked, *_ = self.entries.match(host, addr, _port_or_none(port))
        revoked = _unique([*revoked, *self.revoked_keys(host, addr, port)])
        return ([key for key in host_keys if key not in revoked],
                [key for key in ca_keys if key not in revoked], revoked)


def load_known_hosts(path: Path) -> KnownHosts:
    """Parsed known_hosts, re-read only when the file changed; a missing file is empty.

    Parsed once for all connections of a run rather than once per host.
    Raises OSError or ValueError when the file is unreadable or malformed.
    """
    try:
        stat = path.stat()
    except FileNotFoundError:
        return KnownHosts.parse("")
    stamp = (stat.st_mtime_ns, stat.st_size)
    cached = _known_hosts_cache.get(path)
    if cached and cached[0] == stamp:
        return cached[1]
    parsed = KnownHosts.parse(path.read_text())
    _known_hosts_cache[path] = (stamp, parsed)
    return parsed


def _fingerprint(key: asyncssh.SSHKey) -> str:
    return f"{key.get_algorithm()} {key.get_fingerprint('sha256')}"


@dataclass
class _Offered:
    host: str
    port: int
    key: asyncssh.SSHKey


class HostKeyVerifier(asyncssh.SSHClient):
    """asyncssh client object deciding on keys not already trusted by known_hosts.

    Give asyncssh `match` as its known_hosts: it trusts and refuses what that returns and asks
    `validate_host_public_key` about the rest.
    """

    def __init__(self, known_hosts: KnownHosts, known_hosts_path: Path,
                 checking: HostKeyChecking) -> None:
        self._known_hosts = known_hosts
        self._known_hosts_path = known_hosts_path
        self._checking = checking
        self.refused: Literal["unknown", "changed", "revoked"] | None = None
        self.offered: _Offered | None = None
        self.accepted_new_key = False
        self._looked_up: tuple[str, int] | None = None  # (host, port) asyncssh asked about
        self._revoked: list[asyncssh.SSHKey] = []  # keys revoked for that host

    def match(self, host: str, addr: str, port: int | None) -> KeyMatch:
        """The known_hosts lookup asyncssh makes once per connection."""
        result = self._known_hosts.match(host, addr, port)
        self._looked_up = (host, port or DEFAULT_SSH_PORT)
        self._revoked = result[2]
        return result

    def validate_host_public_key(self, host: str, addr: str, port: int,
                                 key: asyncssh.SSHKey) -> bool:
        self.offered = _Offered(host, port, key)
        host_keys, ca_keys, revoked = self._known_hosts.match(host, addr, port)
        if key in revoked:  # asyncssh refuses these before asking; never accept one here
            self.refused = "revoked"
            return False
        if host_keys or ca_keys:
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
        if self.refused == "revoked" or (self.refused is None and self._revoked
                                         and "revoked" in detail.lower()):
            return self._revoked_error(host_name)
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

    def _revoked_error(self, host_name: str) -> HostKeyError:
        if self.offered is not None:
            host, port = self.offered.host, self.offered.port
            keys = _fingerprint(self.offered.key)
        else:  # refused by asyncssh itself, which does not say which key was offered
            host, port = self._looked_up or ("?", DEFAULT_SSH_PORT)
            keys = ", ".join(_fingerprint(key) for key in self._revoked)
        return HostKeyError(
            host_name,
            f"REVOKED host key for {known_hosts_pattern(host, port)}: the server offered a key "
            f"that {self._known_hosts_path} marks @revoked ({keys}). A revoked key is refused "
            "whatever host_key_checking says and on every port; the host needs a new key "
            "(record it in that file once verified).",
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
        if outcome == "revoked":  # revoked by another writer while connecting
            self.refused = "revoked"
            raise self._revoked_error(host_name)
        if outcome == "conflict":
            raise HostKeyError(
                host_name,
                f"another key for {known_hosts_pattern(self.offered.host, self.offered.port)} "
                f"was recorded in {self._known_hosts_path} while connecting; refusing "
                f"{_fingerprint(self.offered.key)}",
            )


def record_host_key(path: Path, host: str, port: int, key: asyncssh.SSHKey
                    ) -> Literal["recorded", "present", "conflict", "revoked"]:
    """Append `host key` to known_hosts atomically, unless it is already there (or revoked).

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
        host_keys, ca_keys, revoked = KnownHosts.parse(current).match(host, host, port)
        if key in revoked:
            return "revoked"
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
