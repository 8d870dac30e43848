"""HTTP over SSH channels: fleet.transport.http's pool, whose streams are SSH channels.

Each stream the pool opens is a direct-streamlocal channel to the daemon's unix socket on the
host (`open_unix_connection`), multiplexed on the host's one SSH connection: no local socket
files, no docker CLI needed on the host. Where sshd refuses that channel (hardened hosts:
AllowStreamLocalForwarding no, AllowTcpForwarding no, DisableForwarding yes), the stream is an
exec channel running `docker system dial-stdio` instead, a fixed command whose stdin and
stdout the host's docker CLI relays to its daemon.
The pool bounds the channels (sshd's MaxSessions defaults to 10, and dial-stdio channels are
sessions) and keeps idle ones alive for reuse.
"""

from __future__ import annotations

import asyncio
import contextlib

import asyncssh

from fleet.config.inventory import DEFAULT_DOCKER_SOCKET
from fleet.transport.http import ConnectError, HTTPPool, ReadError, Stream, WriteError
from fleet.transport.ssh_errors import socket_refused

MAX_CHANNELS = 8
KEEPALIVE_EXPIRY = 60.0
# The whole remote command: a constant, so nothing of the inventory reaches the host's shell.
DIAL_STDIO = "docker system dial-stdio"
DIAL_STDIO_ROUTE = "fleet_docker_dial_stdio"  # extra info on the SSH connection: its refusal
EXIT_WAIT = 2.0  # for dial-stdio's exit status once its output ended
STDERR_QUOTED = 300  # characters of dial-stdio's error output quoted in an error


class SSHChannelStream:
    """One SSH channel as a Stream (fleet.transport.http)."""

    def __init__(self, reader: asyncssh.SSHReader[bytes],
                 writer: asyncssh.SSHWriter[bytes]) -> None:
        self._reader = reader
        self._writer = writer

    async def read(self, max_bytes: int) -> bytes:
        try:
            return await self._reader.read(max_bytes)
        except (asyncssh.Error, OSError) as exc:
            raise ReadError(str(exc) or type(exc).__name__) from exc

    async def write(self, data: bytes) -> None:
        if not data:
            return
        try:
            self._writer.write(data)
            await self._writer.drain()
        except (asyncssh.Error, OSError) as exc:
            raise WriteError(str(exc) or type(exc).__name__) from exc

    def close(self) -> None:
        # Closing sends the channel close; the SSH connection itself stays up.
        self._writer.close()

    def is_stale(self) -> bool:
        # EOF on an idle channel means the daemon hung up: don't reuse it.
        return self._reader.at_eof() or self._writer.is_closing()


class DialStdioStream(SSHChannelStream):
    """The stdin and stdout of `docker system dial-stdio` on the host, as a socket to dockerd.

    When its output ends, a failed relay (no docker CLI, no daemon, no permission) is an
    error quoting its exit status and error output, not a silent end of the connection.
    """

    def __init__(self, process: asyncssh.SSHClientProcess[bytes], failure: str) -> None:
        super().__init__(process.stdout, process.stdin)
        self._process = process
        self._failure = failure  # what went before: the refused channel to the socket

    async def read(self, max_bytes: int) -> bytes:
        data = await super().read(max_bytes)
        if not data:
            why = await self._why_ended()
            if why:
                raise ReadError(f"{self._failure}, and {why}")
        return data

    async def _why_ended(self) -> str | None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._process.wait_closed(), EXIT_WAIT)
        status = self._process.exit_status
        if status in (None, 0):
            return None
        with contextlib.suppress(TimeoutError, asyncssh.Error, OSError):
            errors = await asyncio.wait_for(self._process.stderr.read(4 * STDERR_QUOTED),
                                            EXIT_WAIT)
            said = " ".join(errors.decode(errors="replace").split())[:STDERR_QUOTED]
            if said:
                return f"`{DIAL_STDIO}` exited {status}: {said}"
        return f"`{DIAL_STDIO}` exited {status}"


class DockerSocketOpener:
    """Opens a channel to the Docker daemon at `socket_path` on the far side of `ssh`: a
    direct-streamlocal channel to the socket, or, once sshd refused one, an exec channel
    running `docker system dial-stdio` for the rest of that SSH connection.

    sshd answers a refused streamlocal channel with the same "open failed" as a missing
    socket, so any refusal leads to dial-stdio, whose own error then tells which it was.
    dial-stdio reaches the docker CLI's default daemon: used for the default socket only.
    """

    def __init__(self, ssh: asyncssh.SSHClientConnection, socket_path: str) -> None:
        self._ssh = ssh
        self._socket_path = socket_path

    async def __call__(self) -> Stream:
        # The refusal that made this connection take dial-stdio, remembered on it.
        refusal: str | None = self._ssh.get_extra_info(DIAL_STDIO_ROUTE)
        if refusal is None:
            try:
                reader, writer = await self._ssh.open_unix_connection(self._socket_path)
                return SSHChannelStream(reader, writer)
            except asyncssh.ChannelOpenError as exc:
                refusal = exc.reason or "refused"
            except (asyncssh.Error, OSError) as exc:
                raise ConnectError(f"SSH connection failed: {exc}") from exc
            if self._socket_path != DEFAULT_DOCKER_SOCKET:
                raise ConnectError(
                    f"{socket_refused(self._socket_path, refusal)}; `{DIAL_STDIO}`, the way "
                    f"round a refusal, reaches only the default {DEFAULT_DOCKER_SOCKET}")
        stream = await self._dial_stdio(socket_refused(self._socket_path, refusal))
        self._ssh.set_extra_info(**{DIAL_STDIO_ROUTE: refusal})
        return stream

    async def _dial_stdio(self, refused: str) -> DialStdioStream:
        try:
            process = await self._ssh.create_process(DIAL_STDIO, encoding=None)
        except asyncssh.ChannelOpenError as exc:
            raise ConnectError(
                f"{refused}, and sshd would not run `{DIAL_STDIO}` either ({exc.reason}; "
                "MaxSessions reached?)") from exc
        except (asyncssh.Error, OSError) as exc:
            raise ConnectError(f"SSH connection failed: {exc}") from exc
        return DialStdioStream(process, refused)


def docker_socket_pool(ssh: asyncssh.SSHClientConnection, socket_path: str, *,
                       max_channels: int = MAX_CHANNELS,
                       keepalive_expiry: float = KEEPALIVE_EXPIRY) -> HTTPPool:
    """Requests to the host's Docker daemon, over at most `max_channels` pooled channels."""
    return HTTPPool(DockerSocketOpener(ssh, socket_path), max_connections=max_channels,
                          keepalive_expiry=keepalive_expiry, host="docker")


def direct_tcp_pool(ssh: asyncssh.SSHClientConnection, host: str, port: int) -> HTTPPool:
    """Requests over direct-tcpip channels: the TCP connection starts on the host itself
    (health probes of `http://127.0.0.1:PORT/...` reach the host's own loopback)."""
    async def open_tcp() -> Stream:
        try:
            reader, writer = await ssh.open_connection(host, port)
        except asyncssh.ChannelOpenError as exc:
            raise ConnectError(f"{host}:{port} refused on the host: {exc.reason}") from exc
        except (asyncssh.Error, OSError) as exc:
            raise ConnectError(f"SSH connection failed: {exc}") from exc
        return SSHChannelStream(reader, writer)
    name = f"[{host}]" if ":" in host else host
    authority = name if port == 80 else f"{name}:{port}"
    return HTTPPool(open_tcp, max_connections=1, host=authority)
