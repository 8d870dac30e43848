"""SSH connections to fleet hosts: one asyncssh connection per host, reused for a whole run.

    target = Host(name="web-1", address="198.18.1.11", user="root", ...)  # the inventory's
    async with ConnectionPool([target], forks=50) as pool:
        for name, error in pool.failed.items(): ...
        connection = pool.connected["web-1"]   # .ssh: the asyncssh connection

Raises (always with the host name): ConnectError, HostKeyError.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import random
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import asyncssh

from fleet.config.inventory import Host
from fleet.config.inventory_model import parse_jump
from fleet.errors import ConnectError, HostError
from fleet.transport.host_keys import (
    HostKeyVerifier,
    default_known_hosts_path,
    load_known_hosts,
)
from fleet.transport.ssh_errors import CONNECT_FAILURES, describe_connect_failure, transient

DEFAULT_FORKS = 50
# SSH handshakes in flight at once, whatever --forks is: key exchange costs the controller CPU,
# and a shared jump host's sshd starts refusing unauthenticated connections beyond MaxStartups
# (10:30:100 by default: dropped at random from 10, all from 100); what it drops is retried.
DEFAULT_HANDSHAKES = 30
CONNECT_ATTEMPTS = 3  # a transient failure (reset, dropped before the banner) is tried again
RETRY_BACKOFF = 0.5  # seconds: the first retry waits up to this (full jitter), then doubling
RETRY_BACKOFF_CAP = 4.0
DEFAULT_KEEPALIVE_INTERVAL = 15.0
DEFAULT_CONNECT_TIMEOUT = 10.0
CLOSE_TIMEOUT = 5.0


def endpoint(host: Host) -> str:
    return f"{host.address}:{host.port}"


def known_hosts_path(host: Host) -> Path:
    return Path(host.known_hosts).expanduser() if host.known_hosts else default_known_hosts_path()


def jump_host(host: Host) -> Host | None:
    """The bastion as a host of its own: same key, known_hosts and checking."""
    if not host.jump:
        return None
    user, address, port = parse_jump(host.jump)  # validated with the inventory
    return Host(name=f"{host.name} (jump host {host.jump})", address=address, port=port,
                user=user or host.user, ssh_key=host.ssh_key, known_hosts=host.known_hosts,
                host_key_checking=host.host_key_checking)


# AES-GCM first: as strong as ChaCha20-Poly1305, and in asyncssh one OpenSSL call per packet
# where ChaCha20-Poly1305 makes several from Python (an image upload of 100 MiB cost about
# half the CPU). OpenSSH's own order otherwise; a server without GCM gets ChaCha20.
ENCRYPTION_ALGS = ("aes128-gcm@openssh.com", "aes256-gcm@openssh.com",
                   "chacha20-poly1305@openssh.com", "aes256-ctr", "aes192-ctr", "aes128-ctr")


@functools.lru_cache(maxsize=16)
def _load_client_key(path: str) -> asyncssh.SSHKey:
    """Private keys are parsed once per run, not once per host."""
    return asyncssh.read_private_key(Path(path).expanduser())


async def _connect(target: Host, *, connect_timeout: float, keepalive_interval: float,
                   tunnel: asyncssh.SSHClientConnection | None) -> asyncssh.SSHClientConnection:
    """Open and authenticate one SSH connection, verifying the host key."""
    try:
        known_hosts = load_known_hosts(known_hosts_path(target))
    except (OSError, ValueError) as exc:
        raise ConnectError(
            target.name, f"cannot read known_hosts file {known_hosts_path(target)}: {exc}"
        ) from exc
    verifier = HostKeyVerifier(known_hosts, known_hosts_path(target), target.host_key_checking)
    options: dict[str, Any] = {
        "port": target.port,
        "known_hosts": verifier.match,
        "client_factory": lambda: verifier,
        "connect_timeout": connect_timeout,
        "keepalive_interval": keepalive_interval,
        "keepalive_count_max": 3,
        "encryption_algs": ENCRYPTION_ALGS,
        # config=() (the default) reads ~/.ssh/config when it exists and is fine without it.
    }
    if target.user:
        options["username"] = target.user
    if tunnel is not None:
        options["tunnel"] = tunnel
    try:
        if target.ssh_key:
            options["client_keys"] = [_load_client_key(target.ssh_key)]
        connection = await asyncssh.connect(target.address, **options)
    except asyncssh.HostKeyNotVerifiable as exc:
        raise verifier.refusal_error(target.name, exc.reason) from exc
    except CONNECT_FAILURES as exc:
        message = describe_connect_failure(exc, endpoint=endpoint(target), user=target.user,
                                           timeout=connect_timeout)
        raise ConnectError(target.name, message, transient=transient(exc)) from exc
    try:
        await asyncio.to_thread(verifier.record_accepted_key, target.name)
    except HostError:
        connection.close()
        raise
    return connection


def retry_delay(attempt: int, rng: random.Random | None = None) -> float:
    """Full-jitter exponential backoff before try number `attempt` + 1: hosts that failed
    together (a bastion's MaxStartups) do not all come back at the same instant."""
    cap = min(RETRY_BACKOFF_CAP, RETRY_BACKOFF * 2 ** (attempt - 1))
    return (rng or random).uniform(0, cap)


async def _connect_retrying(target: Host, *, handshakes: asyncio.Semaphore,
                            connect_timeout: float, attempts: int = CONNECT_ATTEMPTS,
                            **options: Any) -> asyncssh.SSHClientConnection:
    """_connect, holding a handshake slot only while shaking hands, and trying a transient
    failure again after a jittered pause. The whole of it, retries included, stays within
    `connect_timeout` (time waiting for a slot aside): a dead host costs one timeout."""
    deadline = asyncio.get_running_loop().time() + connect_timeout
    for attempt in range(1, attempts + 1):
        async with handshakes:
            remaining = (connect_timeout if attempt == 1
                         else max(deadline - asyncio.get_running_loop().time(), 0.001))
            try:
                return await _connect(target, connect_timeout=remaining, **options)
            except ConnectError as exc:
                pause = retry_delay(attempt)
                left = deadline - asyncio.get_running_loop().time() - pause
                if not exc.transient or attempt == attempts or left <= 0:
                    if attempt > 1:
                        raise ConnectError(target.name, f"{exc.reason} (after {attempt} tries)",
                                           transient=exc.transient) from exc
                    raise
        await asyncio.sleep(pause)
    raise AssertionError("unreachable")  # the loop returns or raises


class HostConnection:
    """One authenticated SSH connection to a host."""

    def __init__(self, target: Host, ssh: asyncssh.SSHClientConnection) -> None:
        self.target = target
        self.ssh = ssh

    @property
    def name(self) -> str:
        return self.target.name

    @classmethod
    async def open(cls, target: Host, *, connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
                   keepalive_interval: float = DEFAULT_KEEPALIVE_INTERVAL,
                   tunnel: asyncssh.SSHClientConnection | None = None,
                   handshakes: asyncio.Semaphore | None = None) -> HostConnection:
        """Connect to `target` (through `tunnel` when given: an open jump-host connection),
        trying transient failures again.

        Raises ConnectError, or HostKeyError when the host key is unknown (strict) or changed.
        """
        ssh = await _connect_retrying(target, handshakes=handshakes or asyncio.Semaphore(1),
                                      connect_timeout=connect_timeout,
                                      keepalive_interval=keepalive_interval, tunnel=tunnel)
        return cls(target, ssh)

    async def close(self) -> None:
        self.ssh.close()
        with contextlib.suppress(TimeoutError):  # a dead peer must not hold up the run
            await asyncio.wait_for(self.ssh.wait_closed(), CLOSE_TIMEOUT)

    async def __aenter__(self) -> HostConnection:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.close()


ResultCallback = Callable[[str, "HostConnection | HostError"], None]


class ConnectionPool:
    """Connections to many hosts, opened concurrently: at most `forks` hosts connecting, and
    of those at most `handshakes` shaking hands, at once.

    One unreachable host never fails the others: each host ends up either in `connected`
    or in `failed`. Jump hosts are connected once and shared by the hosts behind them.
    Every connection is closed on exit.
    """

    def __init__(self, targets: Sequence[Host], *, forks: int = DEFAULT_FORKS,
                 connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
                 keepalive_interval: float = DEFAULT_KEEPALIVE_INTERVAL,
                 handshakes: int = DEFAULT_HANDSHAKES,
                 on_result: ResultCallback | None = None) -> None:
        names = [target.name for target in targets]
        if len(set(names)) != len(names):
            raise ValueError("host names in a ConnectionPool must be unique")
        self.targets = list(targets)
        self.connected: dict[str, HostConnection] = {}
        self.failed: dict[str, HostError] = {}
        self._forks = asyncio.Semaphore(max(1, forks))
        self._handshakes = asyncio.Semaphore(max(1, handshakes))
        self._connect_timeout = connect_timeout
        self._keepalive_interval = keepalive_interval
        self._on_result = on_result
        self._jumps: dict[tuple[str | None, str, int], asyncio.Task[asyncssh.SSHClientConnection]]
        self._jumps = {}

    async def open(self) -> None:
        await asyncio.gather(*(self._open_one(target) for target in self.targets))

    async def _open_one(self, target: Host) -> None:
        result: HostConnection | HostError
        try:
            async with self._forks:
                tunnel = await self._jump_connection(target)
                result = await HostConnection.open(
                    target, connect_timeout=self._connect_timeout,
                    keepalive_interval=self._keepalive_interval, tunnel=tunnel,
                    handshakes=self._handshakes)
        except HostError as exc:
            result = exc
        if isinstance(result, HostConnection):
            self.connected[target.name] = result
        else:
            self.failed[target.name] = result
        if self._on_result is not None:
            self._on_result(target.name, result)

    async def _jump_connection(self, target: Host) -> asyncssh.SSHClientConnection | None:
        jump = jump_host(target)
        if jump is None:
            return None
        key = (jump.user, jump.address, jump.port)
        if key not in self._jumps:
            self._jumps[key] = asyncio.ensure_future(
                _connect_retrying(jump, handshakes=self._handshakes,
                                  connect_timeout=self._connect_timeout,
                                  keepalive_interval=self._keepalive_interval, tunnel=None))
        try:
            # shield: one host's cancellation must not cancel the bastion the others share
            return await asyncio.shield(self._jumps[key])
        except HostError as exc:
            raise ConnectError(target.name, f"via jump host {target.jump}: {exc.reason}") from exc

    async def close(self) -> None:
        await asyncio.gather(*(connection.close() for connection in self.connected.values()),
                             return_exceptions=True)
        for task in self._jumps.values():
            if task.done() and not task.cancelled() and task.exception() is None:
                task.result().close()
            elif not task.done():
                task.cancel()
        self.connected.clear()

    async def __aenter__(self) -> ConnectionPool:
        try:
            await self.open()
        except BaseException:
            await self.close()
            raise
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.close()
