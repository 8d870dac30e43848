"""HTTP/1.1 over byte streams fleet opens itself (SSH channels, a local socket).

h11 does the protocol (framing, chunked bodies, keep-alive rules); this module does what is
fleet's: a bounded pool of streams kept alive for reuse, and errors in one family
(TransportError). Deadlines and body bounds are the callers' (asyncio.timeout around a call,
and reading a response's chunks within a limit), so nothing here waits without a bound the
caller set. A general HTTP client would cost a request's worth of CPU per request in layers
fleet does not use (URL models, cookies, proxies, auth flows, redirects); requests here are
always to one daemon or one probe target, built by fleet.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable
from typing import Protocol, overload

import h11

READ_SIZE = 64 * 1024
MAX_HEAD = 64 * 1024  # a response's status line and headers: h11 refuses a longer one


class TransportError(Exception):
    """The exchange failed below HTTP's answer: a stream that would not open, broke, or
    carried something that is not HTTP/1.1."""


class ConnectError(TransportError):
    """No stream to the peer (a refused channel, a dead connection)."""


class ReadError(TransportError):
    pass


class WriteError(TransportError):
    pass


class ProtocolError(TransportError):
    """The peer's bytes are not a well-formed HTTP/1.1 response."""


class Stream(Protocol):
    """A connected byte stream; errors are TransportErrors."""

    async def read(self, max_bytes: int) -> bytes:
        """Up to max_bytes, b"" at the end of the stream."""

    async def write(self, data: bytes) -> None: ...

    def close(self) -> None: ...

    def is_stale(self) -> bool:
        """Whether an idle stream's peer has hung up (it must not be reused)."""


Opener = Callable[[], Awaitable[Stream]]


class Headers:
    """Response headers, looked up without regard to case (the first of repeated names)."""

    def __init__(self, raw: Iterable[tuple[bytes, bytes]]) -> None:
        self.raw = list(raw)
        self._first: dict[str, str] = {}
        for name, value in self.raw:
            self._first.setdefault(name.decode("latin-1").lower(), value.decode("latin-1"))

    @overload
    def get(self, name: str) -> str | None: ...

    @overload
    def get(self, name: str, default: str) -> str: ...

    def get(self, name: str, default: str | None = None) -> str | None:
        return self._first.get(name.lower(), default)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._first


class Request:
    __slots__ = ("body", "headers", "method", "target")

    def __init__(self, method: str, target: str, *,
                 headers: Iterable[tuple[str, str]] = (),
                 body: bytes | AsyncIterable[bytes] = b"") -> None:
        self.method = method
        self.target = target  # path and query, already percent-encoded
        self.headers = tuple(headers)
        self.body = body  # an iterable is sent as it comes (chunked), under the SSH window


class Response:
    """A response whose body is read as it arrives; always closed by the caller (aclose),
    which gives its stream back to the pool or, if the body was not read to its end, closes
    it so that nothing more of it is ever received."""

    def __init__(self, status: int, reason: str, headers: Headers,
                 body: AsyncIterator[bytes], close: Callable[[], Awaitable[None]]) -> None:
        self.status = status
        self.reason = reason
        self.headers = headers
        self._body = body
        self._close: Callable[[], Awaitable[None]] | None = close

    def aiter_bytes(self) -> AsyncIterator[bytes]:
        return self._body

    async def aread(self, limit: int) -> bytes:
        """The whole body; ProtocolError beyond `limit` bytes."""
        body = bytearray()
        async for chunk in self._body:
            body += chunk
            if len(body) > limit:
                raise ProtocolError(f"a body of more than {limit} bytes")
        return bytes(body)

    async def aclose(self) -> None:
        close, self._close = self._close, None
        if close is not None:
            await close()


class Transport(Protocol):
    """What sends requests: a HTTPPool, or a test's fake."""

    async def send(self, request: Request) -> Response: ...

    async def aclose(self) -> None: ...


class _Exchange:
    """One stream and its HTTP/1.1 state, one request at a time."""

    def __init__(self, stream: Stream) -> None:
        self.stream = stream
        self._http = h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_HEAD)

    async def start(self, request: Request, host: str) -> h11.Response:
        headers = [("Host", host), *request.headers]
        body = request.body
        if not isinstance(body, bytes):
            headers.append(("Transfer-Encoding", "chunked"))
        elif body or request.method in ("POST", "PUT", "PATCH"):
            headers.append(("Content-Length", str(len(body))))
        refused: WriteError | None = None
        try:
            await self._send(h11.Request(method=request.method, target=request.target,
                                         headers=headers))
            if isinstance(body, bytes):
                if body:
                    await self._send(h11.Data(data=body))
            else:
                async for chunk in body:
                    if chunk:
                        await self._send(h11.Data(data=chunk))
            await self._send(h11.EndOfMessage())
        except WriteError as exc:
            # A peer may answer and hang up before taking the whole request (an error
            # answer, or a relay that failed and says why): its answer tells more.
            refused = exc
        try:
            while True:
                event = await self._next_event()
                if isinstance(event, h11.Response):
                    return event
                if not isinstance(event, h11.InformationalResponse):
                    raise ProtocolError(f"the answer began with {type(event).__name__}")
        except ProtocolError:
            if refused is not None:
                raise refused from None
            raise

    async def _send(self, event: h11.Event) -> None:
        try:
            data = self._http.send(event)
        except h11.LocalProtocolError as exc:
            raise ProtocolError(f"cannot send the request: {exc}") from None
        if data:
            await self.stream.write(data)

    async def body(self) -> AsyncIterator[bytes]:
        while True:
            event = await self._next_event()
            if isinstance(event, h11.Data):
                yield bytes(event.data)
            elif isinstance(event, h11.EndOfMessage):
                return
            else:
                raise ProtocolError(f"{type(event).__name__} inside a body")

    async def _next_event(self) -> h11.Event | type[h11.PAUSED]:
        while True:
            try:
                event = self._http.next_event()
            except h11.RemoteProtocolError as exc:
                raise ProtocolError(str(exc) or "not an HTTP/1.1 answer") from None
            if event is not h11.NEED_DATA:
                return event  # type: ignore[return-value]  # (NEED_DATA is ruled out)
            data = await self.stream.read(READ_SIZE)
            try:
                self._http.receive_data(data)
            except h11.RemoteProtocolError as exc:
                raise ProtocolError(str(exc)) from None

    def reusable(self) -> bool:
        """Whether the exchange is complete, so the stream can carry another. A body the
        caller did not read may have arrived whole already (an empty one always has)."""
        try:
            while self._http.their_state is h11.SEND_BODY:
                event = self._http.next_event()
                if event is h11.NEED_DATA or not isinstance(event, h11.Data | h11.EndOfMessage):
                    break
        except h11.RemoteProtocolError:
            return False
        return self._http.our_state is h11.DONE and self._http.their_state is h11.DONE

    def recycle(self) -> None:
        self._http.start_next_cycle()


class HTTPPool:
    """At most `max_connections` requests in flight, each on its own stream from `opener`;
    streams whose exchange completed are kept for reuse up to `keepalive_expiry` seconds."""

    def __init__(self, opener: Opener, *, max_connections: int = 8,
                 keepalive_expiry: float = 60.0, host: str = "docker") -> None:
        self._opener = opener
        self._slots = asyncio.Semaphore(max(1, max_connections))
        self._keepalive_expiry = keepalive_expiry
        self._host = host
        self._idle: list[tuple[float, _Exchange]] = []
        self._closed = False

    async def send(self, request: Request) -> Response:
        await self._slots.acquire()
        exchange: _Exchange | None = None
        try:
            if self._closed:
                raise ConnectError("the connection pool is closed")
            exchange = self._reuse() or _Exchange(await self._opener())
            head = await exchange.start(request, self._host)
        except BaseException:
            if exchange is not None:
                exchange.stream.close()
            self._slots.release()
            raise
        return Response(head.status_code, head.reason.decode("latin-1"), Headers(head.headers),
                        exchange.body(), lambda: self._finish(exchange))

    def _reuse(self) -> _Exchange | None:
        now = time.monotonic()
        while self._idle:
            since, exchange = self._idle.pop()
            if now - since < self._keepalive_expiry and not exchange.stream.is_stale():
                return exchange
            exchange.stream.close()
        return None

    async def _finish(self, exchange: _Exchange) -> None:
        try:
            if exchange.reusable() and not self._closed:
                exchange.recycle()
                self._idle.append((time.monotonic(), exchange))
            else:
                exchange.stream.close()
        finally:
            self._slots.release()

    async def aclose(self) -> None:
        self._closed = True
        idle, self._idle = self._idle, []
        for _, exchange in idle:
            exchange.stream.close()


class AsyncioStream:
    """A local socket (TCP or unix) as a Stream: the lab's registry and simulator."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer

    async def read(self, max_bytes: int) -> bytes:
        try:
            return await self._reader.read(max_bytes)
        except OSError as exc:
            raise ReadError(str(exc) or type(exc).__name__) from exc

    async def write(self, data: bytes) -> None:
        try:
            self._writer.write(data)
            await self._writer.drain()
        except OSError as exc:
            raise WriteError(str(exc) or type(exc).__name__) from exc

    def close(self) -> None:
        self._writer.close()

    def is_stale(self) -> bool:
        return self._reader.at_eof() or self._writer.is_closing()


def tcp_opener(host: str, port: int) -> Opener:
    async def open_tcp() -> Stream:
        try:
            return AsyncioStream(*await asyncio.open_connection(host, port))
        except OSError as exc:
            raise ConnectError(f"{host}:{port}: {exc.strerror or exc}") from exc
    return open_tcp


def unix_opener(path: str) -> Opener:
    async def open_unix() -> Stream:
        try:
            return AsyncioStream(*await asyncio.open_unix_connection(path))
        except OSError as exc:
            raise ConnectError(f"{path}: {exc.strerror or exc}") from exc
    return open_unix
