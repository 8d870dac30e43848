"""A fake daemon for DockerClient: a handler written with httpx's Request and Response
(convenient to build and to assert on), served through fleet's own Transport protocol.

Only the tests use httpx; fleet speaks HTTP through fleet.transport.http (h11).
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Awaitable, Callable

import httpx

from fleet.transport import http

Handler = Callable[[httpx.Request], httpx.Response | Awaitable[httpx.Response]]


class MockTransport:
    """Every request goes to `handler`; its httpx errors become fleet's transport errors."""

    def __init__(self, handler: Handler) -> None:
        self._handler = handler
        self.closed = False

    async def send(self, request: http.Request) -> http.Response:
        as_httpx = httpx.Request(request.method, "http://docker" + request.target,
                                 headers=list(request.headers), content=request.body)
        try:
            answer = self._handler(as_httpx)
            response = await answer if inspect.isawaitable(answer) else answer
        except httpx.ConnectError as exc:
            raise http.ConnectError(str(exc)) from exc
        except httpx.TransportError as exc:
            raise http.ReadError(str(exc)) from exc
        headers = http.Headers(response.headers.raw)
        return http.Response(response.status_code, response.reason_phrase, headers,
                             _body(response), _nothing)

    async def aclose(self) -> None:
        self.closed = True


async def _body(response: httpx.Response) -> AsyncIterator[bytes]:
    stream = response.stream
    if isinstance(stream, httpx.AsyncByteStream):
        async for chunk in stream:
            yield chunk
    else:
        assert isinstance(stream, httpx.SyncByteStream)
        for chunk in stream:
            yield chunk


async def _nothing() -> None:
    return None
