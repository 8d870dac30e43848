"""fleet.transport.http against small servers on a unix socket: keep-alive reuse, bodies read
to their end or not, framing, the pool's bound, and peers that are not HTTP at all."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from fleet.transport.http import (
    ConnectError,
    HTTPPool,
    ProtocolError,
    ReadError,
    Request,
    TransportError,
    WriteError,
    unix_opener,
)

Answer = Callable[[bytes], bytes]  # request head -> raw response bytes


def serve(tmp_path: Path, answer: Answer,
          scenario: Callable[[HTTPPool, list[int]], Awaitable[None]],
          max_connections: int = 8, close_after: bool = False) -> list[int]:
    """Run `scenario` against a server answering each request with `answer`; returns how
    many requests each accepted connection carried."""
    carried: list[int] = []
    path = str(tmp_path / "http.sock")

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        index = len(carried)
        carried.append(0)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                carried[index] += 1
                length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                               if line.lower().startswith(b"content-length:")), 0)
                await reader.readexactly(length)
                writer.write(answer(head))
                await writer.drain()
                if close_after:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def main() -> None:
        server = await asyncio.start_unix_server(handle, path=path)
        pool = HTTPPool(unix_opener(path), max_connections=max_connections)
        try:
            await scenario(pool, carried)
        finally:
            await pool.aclose()
            server.close()

    asyncio.run(main())
    return carried


def ok(body: bytes = b"{}") -> Answer:
    return lambda head: (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                         b"Content-Length: %d\r\n\r\n%s" % (len(body), body))


async def get(pool: HTTPPool, target: str = "/x", limit: int = 1 << 20) -> tuple[int, bytes]:
    response = await pool.send(Request("GET", target))
    try:
        return response.status, await response.aread(limit)
    finally:
        await response.aclose()


def test_a_stream_whose_answer_was_read_whole_carries_the_next_request(tmp_path: Path) -> None:
    async def scenario(pool: HTTPPool, carried: list[int]) -> None:
        for _ in range(3):
            assert await get(pool) == (200, b"{}")

    assert serve(tmp_path, ok(), scenario) == [3]


def test_an_empty_body_left_unread_does_not_cost_the_stream(tmp_path: Path) -> None:
    async def scenario(pool: HTTPPool, carried: list[int]) -> None:
        for _ in range(2):
            response = await pool.send(Request("POST", "/containers/x/start"))
            assert response.status == 204
            await response.aclose()

    answer: Answer = lambda head: b"HTTP/1.1 204 No Content\r\n\r\n"  # noqa: E731
    assert serve(tmp_path, answer, scenario) == [2]


def test_a_body_abandoned_midway_closes_its_stream(tmp_path: Path) -> None:
    async def scenario(pool: HTTPPool, carried: list[int]) -> None:
        response = await pool.send(Request("GET", "/big"))
        async for _ in response.aiter_bytes():
            break
        await response.aclose()
        assert await get(pool, limit=1 << 21) == (200, b"y" * 1_000_000)

    assert serve(tmp_path, ok(b"y" * 1_000_000), scenario) == [1, 1]


def test_chunked_bodies_and_headers_of_any_case(tmp_path: Path) -> None:
    def chunked(head: bytes) -> bytes:
        return (b"HTTP/1.1 200 OK\r\napi-version: 1.43\r\nTransfer-Encoding: chunked\r\n\r\n"
                b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n")

    async def scenario(pool: HTTPPool, carried: list[int]) -> None:
        response = await pool.send(Request("GET", "/logs"))
        assert response.headers.get("API-Version") == "1.43"
        assert "Api-Version" in response.headers and response.headers.get("nope") is None
        assert await response.aread(100) == b"abcde"
        await response.aclose()
        assert await get(pool, "/again") == (200, b"abcde")

    assert serve(tmp_path, chunked, scenario) == [2]


def test_a_body_beyond_its_limit_is_refused(tmp_path: Path) -> None:
    async def scenario(pool: HTTPPool, carried: list[int]) -> None:
        with pytest.raises(ProtocolError, match="more than 10 bytes"):
            await get(pool, limit=10)

    serve(tmp_path, ok(b"z" * 100), scenario)


def test_the_pool_holds_at_most_its_bound_in_flight(tmp_path: Path) -> None:
    async def scenario(pool: HTTPPool, carried: list[int]) -> None:
        held = [await pool.send(Request("GET", f"/{n}")) for n in range(2)]
        third = asyncio.ensure_future(pool.send(Request("GET", "/3")))
        await asyncio.sleep(0.05)
        assert not third.done()  # waits for a slot
        await held[0].aread(100)
        await held[0].aclose()
        response = await asyncio.wait_for(third, 5)
        await response.aclose()
        await held[1].aclose()

    carried = serve(tmp_path, ok(), scenario, max_connections=2)
    assert len(carried) == 2  # the third request went on the first, freed stream


@pytest.mark.parametrize("garbage", [b"SSH-2.0-OpenSSH_9.2\r\n\r\n", b"HTTP/1.1 999999 x\r\n\r\n",
                                     b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab"])
def test_what_is_not_http_is_a_transport_error(tmp_path: Path, garbage: bytes) -> None:
    async def scenario(pool: HTTPPool, carried: list[int]) -> None:
        with pytest.raises(TransportError):
            response = await pool.send(Request("GET", "/x"))
            try:
                await response.aread(100)
            finally:
                await response.aclose()
        await asyncio.wait_for(pool._slots.acquire(), 1)  # its slot came back

    # The server hangs up after answering: a short body shows only at the end of the stream.
    serve(tmp_path, lambda head: garbage, scenario, close_after=True)


def test_a_peer_that_hangs_up_before_answering(tmp_path: Path) -> None:
    path = str(tmp_path / "hangup.sock")

    async def main() -> None:
        async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.close()

        server = await asyncio.start_unix_server(hang_up, path=path)
        pool = HTTPPool(unix_opener(path))
        with pytest.raises((ProtocolError, ReadError, WriteError)):
            await pool.send(Request("GET", "/x"))
        await pool.aclose()
        server.close()

    asyncio.run(main())


def test_no_socket_is_a_connect_error(tmp_path: Path) -> None:
    async def main() -> None:
        pool = HTTPPool(unix_opener(str(tmp_path / "absent.sock")))
        with pytest.raises(ConnectError, match=r"absent\.sock"):
            await pool.send(Request("GET", "/x"))

    asyncio.run(main())


def test_a_streamed_body_goes_chunked(tmp_path: Path) -> None:
    path = str(tmp_path / "upload.sock")
    received: list[bytes] = []

    async def main() -> None:
        async def take(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            head = await reader.readuntil(b"\r\n\r\n")
            assert b"transfer-encoding: chunked" in head.lower()
            received.append(await reader.readuntil(b"0\r\n\r\n"))
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            await writer.drain()
            writer.close()

        async def parts() -> AsyncIterator[bytes]:
            for part in (b"abc", b"", b"defg"):
                yield part

        server = await asyncio.start_unix_server(take, path=path)
        pool = HTTPPool(unix_opener(path))
        response = await pool.send(Request("POST", "/images/load", body=parts()))
        assert (response.status, await response.aread(10)) == (200, b"ok")
        await response.aclose()
        await pool.aclose()
        server.close()

    asyncio.run(main())
    assert received == [b"3\r\nabc\r\n4\r\ndefg\r\n0\r\n\r\n"]
