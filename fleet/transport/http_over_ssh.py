"""HTTP over SSH channels: httpx on top of httpcore, whose "sockets" are SSH channels.

Each HTTP connection httpcore opens is a direct-streamlocal channel to the daemon's unix
socket on the host (`open_unix_connection`), multiplexed on the host's one SSH connection:
no local socket files, no docker CLI needed on the host. Where sshd refuses that channel
(hardened hosts: AllowStreamLocalForwarding no, AllowTcpForwarding no, DisableForwarding
yes), the connection is an exec channel running `docker system dial-stdio` instead, a fixed
command whose stdin and stdout the host's docker CLI relays to its daemon.
httpcore's pool bounds the channels (sshd's MaxSessions defaults to 10, and dial-stdio
channels are sessions) and keeps idle ones alive for reuse; h11 does the HTTP parsing.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Iterable, Iterator
from typing import Any, TypeVar

import asyncssh
import httpcore
import httpx

from fleet.config.inventory import DEFAULT_DOCKER_SOCKET
from fleet.transport.ssh_errors import socket_refused

MAX_CHANNELS = 8
KEEPALIVE_EXPIRY = 60.0
# The whole remote command: a constant, so nothing of the inventory reaches the host's shell.
DIAL_STDIO = "docker system dial-stdio"
DIAL_STDIO_ROUTE = "fleet_docker_dial_stdio"  # extra info on the SSH connection: its refusal
EXIT_WAIT = 2.0  # for dial-stdio's exit status once its output ended
STDERR_QUOTED = 300  # characters of dial-stdio's error output quoted in an error
_T = TypeVar("_T")


async def _within(awaitable: Awaitable[_T], timeout: float | None,
                  timeout_error: type[Exception]) -> _T:
    try:
        return await asyncio.wait_for(awaitable, timeout)
    except TimeoutError as exc:
        raise timeout_error(f"no answer within {timeout:g}s") from exc


class SSHChannelStream(httpcore.AsyncNetworkStream):
    """One SSH channel, seen by httpcore as a connected socket."""

    def __init__(self, reader: asyncssh.SSHReader[bytes],
                 writer: asyncssh.SSHWriter[bytes]) -> None:
        self._reader = reader
        self._writer = writer

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        try:
            return await _within(self._reader.read(max_bytes), timeout, httpcore.ReadTimeout)
        except (asyncssh.Error, OSError) as exc:
            raise httpcore.ReadError(str(exc)) from exc

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        if not buffer:
            return
        try:
            self._writer.write(buffer)
            await _within(self._writer.drain(), timeout, httpcore.WriteTimeout)
        except (asyncssh.Error, OSError) as exc:
            raise httpcore.WriteError(str(exc)) from exc

    async def aclose(self) -> None:
        # Closing sends the channel close; the SSH connection itself stays up.
        self._writer.close()

    def get_extra_info(self, info: str) -> Any:
        if info == "is_readable":
            # Asked of idle pooled connections: EOF means the daemon hung up, so don't reuse.
            return self._reader.at_eof() or self._writer.is_closing()
        return None


class DialStdioStream(SSHChannelStream):
    """The stdin and stdout of `docker system dial-stdio` on the host, as a socket to dockerd.

    When its output ends, a failed relay (no docker CLI, no daemon, no permission) is an
    error quoting its exit status and error output, not a silent end of the connection.
    """

    def __init__(self, process: asyncssh.SSHClientProcess[bytes], failure: str) -> None:
        super().__init__(process.stdout, process.stdin)
        self._process = process
        self._failure = failure  # what went before: the refused channel to the socket

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        data = await super().read(max_bytes, timeout)
        if not data:
            why = await self._why_ended()
            if why:
                raise httpcore.ReadError(f"{self._failure}, and {why}")
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


async def _open_stream(opening: Awaitable[tuple[asyncssh.SSHReader[bytes],
                                               asyncssh.SSHWriter[bytes]]],
                       timeout: float | None, refused: str) -> SSHChannelStream:
    """A new channel on the SSH connection as an httpcore stream, errors in httpcore's terms."""
    try:
        reader, writer = await _within(opening, timeout, httpcore.ConnectTimeout)
    except asyncssh.ChannelOpenError as exc:
        raise httpcore.ConnectError(f"{refused}: {exc.reason}") from exc
    except (asyncssh.Error, OSError) as exc:
        raise httpcore.ConnectError(f"SSH connection failed: {exc}") from exc
    return SSHChannelStream(reader, writer)


class DockerSocketBackend(httpcore.AsyncNetworkBackend):
    """Every connect opens a channel to the Docker daemon at `socket_path` on the far side of
    `ssh`: a direct-streamlocal channel to the socket, or, once sshd refused one, an exec
    channel running `docker system dial-stdio` for the rest of that SSH connection.

    sshd answers a refused streamlocal channel with the same "open failed" as a missing
    socket, so any refusal leads to dial-stdio, whose own error then tells which it was.
    dial-stdio reaches the docker CLI's default daemon: used for the default socket only.
    """

    def __init__(self, ssh: asyncssh.SSHClientConnection, socket_path: str) -> None:
        self._ssh = ssh
        self._socket_path = socket_path

    async def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                          local_address: str | None = None,
                          socket_options: Iterable[Any] | None = None) -> SSHChannelStream:
        return await self._open_channel(timeout)

    async def connect_unix_socket(self, path: str, timeout: float | None = None,
                                  socket_options: Iterable[Any] | None = None
                                  ) -> SSHChannelStream:
        return await self._open_channel(timeout)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

    async def _open_channel(self, timeout: float | None) -> SSHChannelStream:
        # The refusal that made this connection take dial-stdio, remembered on it.
        refusal: str | None = self._ssh.get_extra_info(DIAL_STDIO_ROUTE)
        if refusal is None:
            try:
                reader, writer = await _within(
                    self._ssh.open_unix_connection(self._socket_path), timeout,
                    httpcore.ConnectTimeout)
                return SSHChannelStream(reader, writer)
            except asyncssh.ChannelOpenError as exc:
                refusal = exc.reason or "refused"
            except (asyncssh.Error, OSError) as exc:
                raise httpcore.ConnectError(f"SSH connection failed: {exc}") from exc
            if self._socket_path != DEFAULT_DOCKER_SOCKET:
                raise httpcore.ConnectError(
                    f"{socket_refused(self._socket_path, refusal)}; `{DIAL_STDIO}`, the way "
                    f"round a refusal, reaches only the default {DEFAULT_DOCKER_SOCKET}")
        stream = await self._dial_stdio(timeout, socket_refused(self._socket_path, refusal))
        self._ssh.set_extra_info(**{DIAL_STDIO_ROUTE: refusal})
        return stream

    async def _dial_stdio(self, timeout: float | None, refused: str) -> DialStdioStream:
        try:
            process = await _within(self._ssh.create_process(DIAL_STDIO, encoding=None),
                                    timeout, httpcore.ConnectTimeout)
        except asyncssh.ChannelOpenError as exc:
            raise httpcore.ConnectError(
                f"{refused}, and sshd would not run `{DIAL_STDIO}` either ({exc.reason}; "
                "MaxSessions reached?)") from exc
        except (asyncssh.Error, OSError) as exc:
            raise httpcore.ConnectError(f"SSH connection failed: {exc}") from exc
        return DialStdioStream(process, refused)


class SSHDirectTCPBackend(httpcore.AsyncNetworkBackend):
    """Every connect opens a direct-tcpip channel: the TCP connection starts on the host itself
    (health probes of `http://127.0.0.1:PORT/...` reach the host's own loopback)."""

    def __init__(self, ssh: asyncssh.SSHClientConnection) -> None:
        self._ssh = ssh

    async def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                          local_address: str | None = None,
                          socket_options: Iterable[Any] | None = None) -> SSHChannelStream:
        return await _open_stream(self._ssh.open_connection(host, port), timeout,
                                  f"{host}:{port} refused on the host")

    async def connect_unix_socket(self, path: str, timeout: float | None = None,
                                  socket_options: Iterable[Any] | None = None
                                  ) -> SSHChannelStream:
        raise httpcore.UnsupportedProtocol("direct-tcpip channels carry TCP only")

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


_HTTPCORE_TO_HTTPX: tuple[tuple[type[Exception], type[httpx.TransportError]], ...] = (
    # most specific first
    (httpcore.PoolTimeout, httpx.PoolTimeout),
    (httpcore.ConnectTimeout, httpx.ConnectTimeout),
    (httpcore.ReadTimeout, httpx.ReadTimeout),
    (httpcore.WriteTimeout, httpx.WriteTimeout),
    (httpcore.TimeoutException, httpx.TimeoutException),
    (httpcore.ConnectError, httpx.ConnectError),
    (httpcore.ReadError, httpx.ReadError),
    (httpcore.WriteError, httpx.WriteError),
    (httpcore.NetworkError, httpx.NetworkError),
    (httpcore.RemoteProtocolError, httpx.RemoteProtocolError),
    (httpcore.LocalProtocolError, httpx.LocalProtocolError),
    (httpcore.ProtocolError, httpx.ProtocolError),
    (httpcore.UnsupportedProtocol, httpx.UnsupportedProtocol),
)


@contextlib.contextmanager
def _httpx_errors() -> Iterator[None]:
    """httpcore's exceptions as httpx's, so callers handle one family (as httpx itself does)."""
    try:
        yield
    except Exception as exc:
        for core_type, httpx_type in _HTTPCORE_TO_HTTPX:
            if isinstance(exc, core_type):
                raise httpx_type(str(exc)) from exc
        raise


class _ResponseStream(httpx.AsyncByteStream):
    def __init__(self, core_stream: AsyncIterable[bytes]) -> None:
        self._core_stream = core_stream

    async def __aiter__(self) -> AsyncIterator[bytes]:
        with _httpx_errors():
            async for part in self._core_stream:
                yield part

    async def aclose(self) -> None:
        close = getattr(self._core_stream, "aclose", None)
        if close is not None:
            with _httpx_errors():
                await close()


class SSHChannelTransport(httpx.AsyncBaseTransport):
    """httpx transport sending every request over a pooled SSH channel to a unix socket."""

    def __init__(self, ssh: asyncssh.SSHClientConnection, socket_path: str, *,
                 max_channels: int = MAX_CHANNELS,
                 keepalive_expiry: float = KEEPALIVE_EXPIRY,
                 backend: httpcore.AsyncNetworkBackend | None = None) -> None:
        self._pool = httpcore.AsyncConnectionPool(
            network_backend=backend or DockerSocketBackend(ssh, socket_path),
            max_connections=max_channels,
            max_keepalive_connections=max_channels,
            keepalive_expiry=keepalive_expiry,
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        assert isinstance(request.stream, httpx.AsyncByteStream)
        core_request = httpcore.Request(
            method=request.method,
            url=httpcore.URL(scheme=request.url.raw_scheme, host=request.url.raw_host,
                             port=request.url.port, target=request.url.raw_path),
            headers=request.headers.raw,
            content=request.stream,
            extensions=request.extensions,
        )
        with _httpx_errors():
            core_response = await self._pool.handle_async_request(core_request)
        assert isinstance(core_response.stream, AsyncIterable)
        return httpx.Response(
            status_code=core_response.status,
            headers=core_response.headers,
            stream=_ResponseStream(core_response.stream),
            extensions=core_response.extensions,
        )

    async def aclose(self) -> None:
        await self._pool.aclose()
