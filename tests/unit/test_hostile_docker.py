"""Hostile Docker daemons, client half (httpx.MockTransport): every answer is read within a
bound and checked, and whatever is wrong becomes HostAnswerError (a DockerError) naming the
host and the call."""

from __future__ import annotations

import asyncio
import gzip
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from http_fake import MockTransport

from fleet.docker.client import MAX_LIST_ANSWER, MAX_LOGS, DockerClient
from fleet.errors import DockerError, HostAnswerError

Handler = Callable[[httpx.Request], httpx.Response]


def run(handler: Handler, scenario: Callable[[DockerClient], Any]) -> Any:
    async def main() -> Any:
        client = DockerClient("web-1", MockTransport(handler), timeout=5,
                              api_version="1.41")
        try:
            return await scenario(client)
        finally:
            await client.aclose()
    return asyncio.run(main())


def answering(status: int = 200, **response: Any) -> Handler:
    return lambda request: httpx.Response(status, **response)


class Endless:
    """A body of `size` bytes made on demand, counting what was taken from it."""

    def __init__(self, size: int, chunk: bytes = b'{"Id":"x"},') -> None:
        self.size = size
        self.chunk = chunk * (65536 // len(chunk))
        self.sent = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield b"["
        while self.sent < self.size:
            self.sent += len(self.chunk)
            yield self.chunk


def test_huge_answer_is_abandoned_at_the_bound() -> None:
    body = Endless(300 * 1024 * 1024)
    with pytest.raises(HostAnswerError) as caught:
        run(answering(content=body), lambda c: c.list_containers())
    assert str(caught.value) == ("web-1: Docker answered GET /containers/json with an unusable "
                                 "answer: more than 8 MiB (stopped reading)")
    assert body.sent <= MAX_LIST_ANSWER + 65536


def test_declared_length_over_the_bound_is_refused_unread() -> None:
    body = Endless(300 * 1024 * 1024)
    headers = {"Content-Length": str(300 * 1024 * 1024)}
    with pytest.raises(HostAnswerError, match="more than 2 MiB"):
        run(answering(content=body, headers=headers), lambda c: c.inspect_container("c1"))
    assert body.sent == 0


@pytest.mark.parametrize(("content", "problem"), [
    (b"[" * 100_000 + b"]" * 100_000, "nested deeper than 64 levels"),
    (b'[{"Id": "c1", "Labels": {"a": Infinity}}]', "not JSON"),
    (b'{"Id": "c1"}', "expected a list, got an object"),
    (b'[{"Id": "c1", "Labels": {"fleet.replica": 1}}]', "expected a string, got an integer"),
    (b"<html>nope</html>", "not JSON"),
])
def test_bad_container_lists(content: bytes, problem: str) -> None:
    with pytest.raises(HostAnswerError) as caught:
        run(answering(content=content), lambda c: c.list_containers())
    message = str(caught.value)
    assert message.startswith("web-1: Docker answered GET /containers/json with an unusable")
    assert problem in message


def test_compressed_answer_is_refused_before_it_is_inflated() -> None:
    bomb = gzip.compress(b"[" + b"0," * 50_000_000 + b"0]")
    with pytest.raises(HostAnswerError, match="gzip-encoded body"):
        run(answering(content=bomb, headers={"Content-Encoding": "gzip"}),
            lambda c: c.list_images())


def test_we_ask_for_identity_encoding() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=[])

    run(handler, lambda c: c.list_networks())
    assert seen[0].headers["Accept-Encoding"] == "identity"


def test_huge_error_body_is_cut_and_deep_one_is_text() -> None:
    with pytest.raises(DockerError) as caught:
        run(answering(500, content=Endless(100 * 1024 * 1024, b"x")),
            lambda c: c.start_container("c1"))
    assert len(str(caught.value)) < 2100 and "(cut)" in str(caught.value)
    with pytest.raises(DockerError) as deep:
        run(answering(500, content=b"[" * 60_000), lambda c: c.start_container("c1"))
    assert type(deep.value) is DockerError and deep.value.status == 500


def test_bodies_fleet_does_not_read_are_cut_not_refused() -> None:
    body = Endless(100 * 1024 * 1024)
    run(answering(content=body), lambda c: c.start_container("c1"))
    assert body.sent < 1024 * 1024


def test_logs_are_cut() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/logs"):
            return httpx.Response(200, content=Endless(50 * 1024 * 1024, b"log line\n"))
        return httpx.Response(200, json={"Id": "c1", "Config": {"Tty": True}})

    output = run(handler, lambda c: c.container_logs("c1"))
    assert 0 < len(output.text) <= MAX_LOGS


def pull(content: Any) -> Any:
    return run(answering(content=content), lambda c: c.pull_image("web:1"))


def test_pull_progress_line_over_the_bound_fails_the_pull() -> None:
    with pytest.raises(HostAnswerError, match="a line longer than 64 KiB"):
        pull(Endless(10 * 1024 * 1024, b"x"))


@pytest.mark.parametrize("line", [b"[" * 10_000, b'{"status": Infinity}', b"garbage"])
def test_unreadable_progress_line_fails_the_pull(line: bytes) -> None:
    with pytest.raises(HostAnswerError, match="unreadable progress line"):
        pull(b'{"status":"Pulling"}\n' + line + b"\n")


def test_progress_line_of_the_wrong_shape_fails_the_pull() -> None:
    with pytest.raises(HostAnswerError, match="status: expected a string"):
        pull(b'{"status": ["Pulling"]}\n')


def test_good_pull_still_reports_its_digest() -> None:
    digest = "sha256:" + "a" * 64
    lines = [{"status": "Pulling"}, {"status": f"Digest: {digest}"}, "not an event"]
    assert pull(b"\n".join(json.dumps(x).encode() for x in lines)) == digest


@pytest.mark.parametrize("header", [b"garbage", b"1." + b"9" * 5000, "١.٤١".encode(),
                                    b"1.41; x"])
def test_bad_api_version_header_is_the_hosts_error(header: bytes) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, text="OK", headers={"API-Version": header})

    async def first_call(client: DockerClient) -> None:
        client._api_version = None  # learnt from the first answer
        await client.list_networks()

    async def asked_first(client: DockerClient) -> None:
        client._api_version = None  # negotiated with GET /_ping
        await client.api_version()

    for scenario in (first_call, asked_first):
        with pytest.raises(HostAnswerError, match="API-Version header"):
            run(handler, scenario)


@pytest.mark.parametrize("minimum", ["1." + "9" * 5000, "١.٤٤"])
def test_absurd_minimum_version_is_not_adopted(minimum: str) -> None:
    refusal = f"client version 1.41 is too old. Minimum supported API version is {minimum}"
    with pytest.raises(DockerError) as caught:
        run(answering(400, json={"message": refusal}), lambda c: c.list_networks())
    assert caught.value.status == 400


@pytest.mark.parametrize("maximum", ["1." + "9" * 5000, "١.٤٠", "../../1.40"])
def test_absurd_maximum_version_is_not_adopted(maximum: str) -> None:
    refusals = [f"client version 1.41 is too new. Maximum supported API version is {maximum}",
                f"client is newer than server (client API version: 1.41, server API version: "
                f"{maximum})"]
    for refusal in refusals:
        with pytest.raises(DockerError) as caught:
            run(answering(400, json={"message": refusal}), lambda c: c.list_networks())
        assert caught.value.status == 400


@pytest.mark.parametrize("digest", ["sha256:d1", "sha256:../../etc", 5, ["sha256:" + "a" * 64]])
def test_bad_digest_from_the_registry_is_refused(digest: Any) -> None:
    with pytest.raises(HostAnswerError, match=r"Descriptor\.digest"):
        run(answering(json={"Descriptor": {"digest": digest}}),
            lambda c: c.distribution_inspect("web:1"))


def test_inspect_of_the_wrong_shape_is_refused_for_every_caller() -> None:
    with pytest.raises(HostAnswerError, match=r"State.Health: expected an object"):
        run(answering(json={"Id": "c1", "State": {"Health": "healthy"}}),
            lambda c: c.inspect_container("c1"))
