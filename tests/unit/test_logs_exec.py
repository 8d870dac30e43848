"""fleet logs and fleet exec without hosts: timestamps, line cutting, merging, frame decoding,
the client's exec and log calls against a fake daemon, and the command line's parsing."""

from __future__ import annotations

import asyncio
import json
import struct
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from click.testing import CliRunner
from http_fake import MockTransport

from fleet.cli.main import cli
from fleet.core.logs import (
    MAX_LINE,
    LineSplitter,
    LogLine,
    ReorderWindow,
    log_line,
    merged,
    since_seconds,
    split_timestamp,
)
from fleet.docker.client import DockerClient
from fleet.docker.wire import FrameDecoder
from fleet.errors import DockerError


def frame(stream: int, data: bytes) -> bytes:
    return struct.pack(">BxxxL", stream, len(data)) + data


# -- timestamps and lines -------------------------------------------------------------------


def test_docker_timestamps_sort_by_their_value_not_their_text() -> None:
    # Docker trims trailing zeros: ".1234Z" is earlier than ".12345Z" though it sorts later.
    early, _ = split_timestamp("2026-12-04T10:00:00.1234Z a")
    late, _ = split_timestamp("2026-12-04T10:00:00.12345Z b")
    assert early < late
    assert split_timestamp("2026-12-04T10:00:00Z hi") == (
        int(datetime(2026, 12, 4, 10, tzinfo=UTC).timestamp()) * 10**9, "hi")


def test_an_offset_is_converted_to_utc() -> None:
    utc, _ = split_timestamp("2026-12-04T10:00:00Z x")
    offset, _ = split_timestamp("2026-12-04T12:00:00+02:00 x")
    assert utc == offset


@pytest.mark.parametrize("raw", ["no stamp here", "2026-13-45T99:00:00Z bad date",
                                 "", "2026-12-04T10:00:00Zglued"])
def test_a_line_without_a_valid_stamp_is_kept_whole_with_no_time(raw: str) -> None:
    assert split_timestamp(raw) == (0, raw)


def test_a_long_line_is_cut() -> None:
    line = log_line("2026-12-04T10:00:00Z " + "x" * (MAX_LINE + 10), host="h", service="web",
                    replica=1, stream="stdout")
    assert line.text.endswith("(cut)") and len(line.text) < MAX_LINE + 20


def test_lines_of_many_replicas_merge_in_time_order_keeping_equal_times_in_order() -> None:
    a1 = LogLine(2, "a", "web", 1, "stdout", "a1")
    a2 = LogLine(2, "a", "web", 1, "stdout", "a2")
    b = LogLine(1, "b", "web", 1, "stdout", "b")
    assert [x.text for x in merged([a1, a2, b])] == ["b", "a1", "a2"]
    assert a1.time == "1970-01-01T00:00:00.000000002Z"


def test_since_takes_a_duration_ago_or_a_time() -> None:
    now = datetime(2026, 12, 4, 10, tzinfo=UTC)
    assert since_seconds("10m", now) == now.timestamp() - 600
    assert since_seconds("2026-12-04T09:00:00Z", now) == now.timestamp() - 3600
    assert since_seconds("2026-12-04 09:00", now) == now.timestamp() - 3600
    for bad in ("yesterday", "0s", "10 parsecs"):
        with pytest.raises(ValueError):
            since_seconds(bad, now)


def test_lines_are_split_across_chunks_and_a_line_without_end_is_bounded() -> None:
    splitter = LineSplitter(limit=8)
    assert splitter.feed(b"ab") == []
    assert splitter.feed(b"c\r\nde\nf") == ["abc", "de"]
    assert splitter.flush() == ["f"]
    assert splitter.feed(b"x" * 20) == ["x" * 8, "x" * 8]
    assert splitter.flush() == ["xxxx"]


def test_reorder_window_lets_a_slower_hosts_older_line_go_first() -> None:
    window = ReorderWindow(0.5)
    window.add(LogLine(20, "fast", "web", 1, "stdout", "late"), now=0.0)
    assert window.due(0.2) == []
    window.add(LogLine(10, "slow", "web", 1, "stdout", "early"), now=0.3)
    assert [x.text for x in window.due(0.5)] == ["early", "late"]
    assert len(window) == 0
    window.add(LogLine(30, "a", "web", 1, "stdout", "last"), now=1.0)
    assert [x.text for x in window.drain()] == ["last"]


# -- the multiplexed stream as it arrives ---------------------------------------------------


def test_frames_are_decoded_across_chunk_boundaries() -> None:
    data = frame(1, b"out\n") + frame(2, b"err\n")
    decoder = FrameDecoder()
    chunks = [c for byte in data for c in decoder.feed(bytes([byte]))]
    assert [(c.stream, c.data) for c in chunks] == [("stdout", b"out\n"), ("stderr", b"err\n")]


def test_a_frame_claiming_too_much_is_cut_and_its_excess_skipped() -> None:
    decoder = FrameDecoder(max_frame=4)
    first = decoder.feed(frame(1, b"abcdefgh")[:10])  # the head and 2 bytes of 8
    assert first == []
    rest = decoder.feed(frame(1, b"abcdefgh")[10:] + frame(2, b"ok"))
    assert [(c.stream, c.data) for c in rest] == [("stdout", b"abcd"), ("stderr", b"ok")]


# -- the client's calls ---------------------------------------------------------------------


def _client(handler: Any) -> DockerClient:
    return DockerClient("web-1", MockTransport(handler), api_version="1.41")


def test_exec_sends_the_argv_as_it_is_and_reads_output_and_exit_code() -> None:
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.path.endswith("/exec") and request.method == "POST":
            return httpx.Response(201, json={"Id": "e1"})
        if request.url.path.endswith("/start"):
            return httpx.Response(200, content=frame(1, b"hi\n") + frame(2, b"oops\n"),
                                  headers={"Content-Type": "application/vnd.docker.raw-stream"})
        return httpx.Response(200, json={"ExitCode": 3, "Running": False})

    async def scenario() -> Any:
        client = _client(handle)
        exec_id = await client.create_exec("c1", ["sh", "-c", "echo $X; exit 3"],
                                           env=["X=1"], user="nobody")
        output, cut = await client.start_exec(exec_id, timeout=5)
        return exec_id, output, cut, await client.inspect_exec(exec_id)

    exec_id, output, cut, ended = asyncio.run(scenario())
    body = json.loads(seen[0].content)
    assert body["Cmd"] == ["sh", "-c", "echo $X; exit 3"] and body["User"] == "nobody"
    assert body["Env"] == ["X=1"] and body["Tty"] is False and exec_id == "e1"
    assert (output.stdout, output.stderr, cut) == ("hi\n", "oops\n", False)
    assert ended["ExitCode"] == 3


def test_exec_output_beyond_the_bound_is_cut() -> None:
    def handle(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=frame(1, b"x" * 100))

    output, cut = asyncio.run(_client(handle).start_exec("e1", timeout=5, limit=50))
    assert cut and len(output.stdout) <= 50


def test_an_exec_inspect_of_the_wrong_shape_is_that_hosts_error() -> None:
    def handle(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"ExitCode": "zero"})

    with pytest.raises(DockerError, match="web-1"):
        asyncio.run(_client(handle).inspect_exec("e1"))


def test_log_stream_asks_for_timestamps_and_decodes_frames() -> None:
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, content=frame(1, b"2026-12-04T10:00:00Z hello\n"))

    async def scenario() -> list[bytes]:
        async with _client(handle).log_stream("c1", tty=False, follow=True, since=12.5,
                                              tail=5) as chunks:
            return [c.data async for c in chunks]

    assert asyncio.run(scenario()) == [b"2026-12-04T10:00:00Z hello\n"]
    params = dict(seen[0].url.params)
    assert params["timestamps"] == "true" and params["follow"] == "true"
    assert params["tail"] == "5" and params["since"] == "12.500000"


# -- the command line -----------------------------------------------------------------------


def test_exec_needs_a_command_after_dashes() -> None:
    result = CliRunner().invoke(cli, ["exec", "web", "playbook.yml"])
    assert result.exit_code == 2 and "after --" in result.output


def test_exec_refuses_a_bad_env_entry_before_reading_anything() -> None:
    result = CliRunner().invoke(cli, ["exec", "web", "p.yml", "-e", "NOEQUALS", "--", "true"])
    assert result.exit_code == 2 and "NAME=VALUE" in result.output


def test_logs_refuses_a_bad_tail() -> None:
    result = CliRunner().invoke(cli, ["logs", "web", "p.yml", "--tail", "many"])
    assert result.exit_code == 2 and "'all'" in result.output
