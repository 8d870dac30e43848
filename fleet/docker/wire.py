"""Pure pieces of the Docker Engine API wire format (no I/O, unit-tested as values)."""

from __future__ import annotations

import base64
import json
import re
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from fleet.core.untrusted import UntrustedJSONError, parse_json

# The newest API version fleet speaks. Newer daemons still serve it, so request and response
# shapes stay the same across a mixed fleet (Docker 20.10 = 1.41).
MAX_API_VERSION = "1.41"

StreamName = Literal["stdin", "stdout", "stderr"]
_STREAM_NAMES: dict[int, StreamName] = {0: "stdin", 1: "stdout", 2: "stderr"}
_FRAME_HEADER = struct.Struct(">BxxxL")


def parse_api_version(text: str) -> tuple[int, int]:
    major, _, minor = text.partition(".")
    return int(major), int(minor or 0)


def negotiate_api_version(server_version: Mapping[str, Any]) -> str:
    """The API version to use with a daemon, from its GET /version answer (or /_ping headers).

    min(daemon's ApiVersion, MAX_API_VERSION), but never below the daemon's MinAPIVersion
    when known (recent daemons refuse old versions outright).
    """
    server = parse_api_version(str(server_version.get("ApiVersion", MAX_API_VERSION)))
    chosen = min(server, parse_api_version(MAX_API_VERSION))
    minimum_text = server_version.get("MinAPIVersion")
    if minimum_text:
        chosen = max(chosen, parse_api_version(str(minimum_text)))
    return f"{chosen[0]}.{chosen[1]}"


_TOO_OLD = re.compile(r"client version \S+ is too old\. Minimum supported API version is "
                      r"([0-9]{1,3}\.[0-9]{1,3})\b")


def minimum_version_from_error(message: str) -> str | None:
    """The minimum API version a daemon demands, from its refusal of an older one."""
    match = _TOO_OLD.search(message)
    return match.group(1) if match else None


# dockerd since 17.04, and before it (API 1.24 and older) in other words.
_TOO_NEW = (re.compile(r"client version \S+ is too new\. Maximum supported API version is "
                       r"([0-9]{1,3}\.[0-9]{1,3})\b"),
            re.compile(r"client is newer than server \(client API version: \S+, server API "
                       r"version: ([0-9]{1,3}\.[0-9]{1,3})\)"))


def maximum_version_from_error(message: str) -> str | None:
    """The newest API version a daemon speaks, from its refusal of a newer one."""
    for pattern in _TOO_NEW:
        match = pattern.search(message)
        if match:
            return match.group(1)
    return None


def version_from_refusal(message: str) -> str | None:
    """The API version to resend with after a daemon refused ours (too old or too new)."""
    return minimum_version_from_error(message) or maximum_version_from_error(message)


def encode_registry_auth(auth: Mapping[str, str]) -> str:
    """X-Registry-Auth header value: URL-safe base64 of the JSON credentials.

    `auth` holds username/password/serveraddress, or identitytoken, as the Engine API expects.
    """
    payload = json.dumps(dict(auth), separators=(",", ":"), sort_keys=True).encode()
    return base64.urlsafe_b64encode(payload).decode("ascii")


def split_image_reference(reference: str) -> tuple[str, str]:
    """Split `name[:tag][@digest]` into (name, tag-or-digest) for POST /images/create.

    An empty tag makes the daemon pull every tag of the repository, so "latest" is explicit.
    The colon of a registry port (`registry:5000/app`) is not a tag separator.
    """
    if "@" in reference:
        name, _, digest = reference.partition("@")
        return name, digest
    last_slash = reference.rfind("/")
    colon = reference.rfind(":")
    if colon > last_slash:
        return reference[:colon], reference[colon + 1 :]
    return reference, "latest"


def label_filters(labels: Mapping[str, str | None] | Sequence[str]) -> str:
    """The `filters` query value selecting containers by labels.

    A mapping value of None matches the label's presence whatever its value.
    """
    if isinstance(labels, Mapping):
        terms = [key if value is None else f"{key}={value}" for key, value in labels.items()]
    else:
        terms = list(labels)
    return json.dumps({"label": sorted(terms)}, separators=(",", ":"))


@dataclass(frozen=True)
class StreamChunk:
    stream: StreamName
    data: bytes


@dataclass(frozen=True)
class ContainerOutput:
    """Output of a container (logs) or of an exec, split by stream."""

    chunks: tuple[StreamChunk, ...]

    @property
    def stdout(self) -> str:
        return self._text("stdout")

    @property
    def stderr(self) -> str:
        return self._text("stderr")

    @property
    def text(self) -> str:
        """stdout and stderr interleaved in the order the daemon sent them."""
        return b"".join(chunk.data for chunk in self.chunks).decode("utf-8", "replace")

    def _text(self, stream: StreamName) -> str:
        data = b"".join(chunk.data for chunk in self.chunks if chunk.stream == stream)
        return data.decode("utf-8", "replace")


def demultiplex_stream(data: bytes) -> ContainerOutput:
    """Split Docker's multiplexed stream (8-byte header: stream id, 3 zero bytes, length).

    Used for logs and exec output of containers without a TTY. A truncated trailing frame
    is kept as far as it goes rather than dropped.
    """
    chunks: list[StreamChunk] = []
    offset = 0
    while offset + _FRAME_HEADER.size <= len(data):
        stream_id, length = _FRAME_HEADER.unpack_from(data, offset)
        start = offset + _FRAME_HEADER.size
        payload = data[start : start + length]
        chunks.append(StreamChunk(_STREAM_NAMES.get(stream_id, "stdout"), payload))
        offset = start + length
    return ContainerOutput(tuple(chunks))


def raw_stream(data: bytes) -> ContainerOutput:
    """Output of a TTY container: one undivided stream."""
    return ContainerOutput((StreamChunk("stdout", data),) if data else ())


MAX_ERROR_MESSAGE = 2000  # characters of a daemon's error shown to the operator


def error_message(body: bytes, status: int, reason: str) -> str:
    """The daemon's own words from an error response ({"message": ...}), else the status.

    The body is untrusted: parsed within bounds, and the message cut to MAX_ERROR_MESSAGE."""
    try:
        parsed = parse_json(body, max_bytes=len(body), max_depth=8)
    except UntrustedJSONError:
        parsed = None
    if isinstance(parsed, dict) and isinstance(parsed.get("message"), str):
        text = str(parsed["message"])
    else:
        text = body.decode("utf-8", "replace").strip()
    if len(text) > MAX_ERROR_MESSAGE:
        text = text[:MAX_ERROR_MESSAGE] + "... (cut)"
    return text or f"HTTP {status} {reason}".strip()


def pull_progress_error(line: Mapping[str, Any]) -> str | None:
    """The error carried by one JSON line of a pull stream, if any."""
    detail = line.get("errorDetail")
    if isinstance(detail, Mapping) and detail.get("message"):
        return str(detail["message"])
    if line.get("error"):
        return str(line["error"])
    return None


class FrameDecoder:
    """Docker's multiplexed stream decoded as it arrives (logs followed, exec output): frames
    are returned whole; one claiming more than `max_frame` bytes is cut to it, and its excess
    skipped as it arrives, so a hostile length costs nothing but the bytes sent."""

    def __init__(self, max_frame: int = 1024 * 1024) -> None:
        self._max_frame = max_frame
        self._buffer = bytearray()
        self._skip = 0

    def feed(self, data: bytes) -> list[StreamChunk]:
        if self._skip:
            skipped = min(self._skip, len(data))
            self._skip -= skipped
            data = data[skipped:]
        self._buffer += data
        chunks: list[StreamChunk] = []
        while len(self._buffer) >= _FRAME_HEADER.size:
            stream_id, length = _FRAME_HEADER.unpack_from(self._buffer)
            kept = min(length, self._max_frame)
            if len(self._buffer) < _FRAME_HEADER.size + kept:
                break
            start = _FRAME_HEADER.size
            chunks.append(StreamChunk(_STREAM_NAMES.get(stream_id, "stdout"),
                                      bytes(self._buffer[start:start + kept])))
            excess = length - kept
            available = len(self._buffer) - start - kept
            del self._buffer[:start + kept + min(excess, available)]
            self._skip = max(0, excess - available)
            if self._skip:
                break
        return chunks
