"""Pure wire-format helpers of the Docker Engine API client."""

from __future__ import annotations

import base64
import json
import struct

import pytest

from fleet.docker.wire import (
    demultiplex_stream,
    encode_registry_auth,
    error_message,
    label_filters,
    maximum_version_from_error,
    minimum_version_from_error,
    negotiate_api_version,
    pull_progress_error,
    raw_stream,
    split_image_reference,
    version_from_refusal,
)


def frame(stream_id: int, payload: bytes) -> bytes:
    return struct.pack(">BxxxL", stream_id, len(payload)) + payload


def test_registry_auth_is_urlsafe_base64_json() -> None:
    auth = {"username": "ci", "password": "p?>>~~", "serveraddress": "registry.local:5000"}
    header = encode_registry_auth(auth)
    assert "+" not in header and "/" not in header
    assert json.loads(base64.urlsafe_b64decode(header)) == auth


def test_registry_auth_identity_token() -> None:
    header = encode_registry_auth({"identitytoken": "tok"})
    assert json.loads(base64.urlsafe_b64decode(header)) == {"identitytoken": "tok"}


@pytest.mark.parametrize(
    ("server", "expected"),
    [
        ({"ApiVersion": "1.41", "MinAPIVersion": "1.12"}, "1.41"),  # Docker 20.10
        ({"ApiVersion": "1.47", "MinAPIVersion": "1.24"}, "1.41"),  # newer: capped
        ({"ApiVersion": "1.40"}, "1.40"),  # older daemon: its own version
        ({"ApiVersion": "1.52", "MinAPIVersion": "1.44"}, "1.44"),  # refuses anything older
    ],
)
def test_api_version_negotiation(server: dict[str, str], expected: str) -> None:
    assert negotiate_api_version(server) == expected


@pytest.mark.parametrize(
    ("reference", "expected"),
    [
        ("nginx", ("nginx", "latest")),
        ("nginx:1.27", ("nginx", "1.27")),
        ("198.18.0.1:5000/demo/web", ("198.18.0.1:5000/demo/web", "latest")),
        ("198.18.0.1:5000/demo/web:v2", ("198.18.0.1:5000/demo/web", "v2")),
        ("demo/web@sha256:abc", ("demo/web", "sha256:abc")),
        ("reg:5000/demo/web:v1@sha256:abc", ("reg:5000/demo/web:v1", "sha256:abc")),
    ],
)
def test_split_image_reference(reference: str, expected: tuple[str, str]) -> None:
    assert split_image_reference(reference) == expected


def test_label_filters_mapping_and_presence() -> None:
    value = label_filters({"fleet.project": "demo", "fleet.service": None})
    assert json.loads(value) == {"label": ["fleet.project=demo", "fleet.service"]}


def test_label_filters_list() -> None:
    assert json.loads(label_filters(["b=2", "a"])) == {"label": ["a", "b=2"]}


def test_demultiplex_splits_streams_in_order() -> None:
    data = frame(1, b"hello\n") + frame(2, b"oops\n") + frame(1, b"bye\n")
    output = demultiplex_stream(data)
    assert output.stdout == "hello\nbye\n"
    assert output.stderr == "oops\n"
    assert output.text == "hello\noops\nbye\n"
    assert [chunk.stream for chunk in output.chunks] == ["stdout", "stderr", "stdout"]


def test_demultiplex_keeps_truncated_tail_and_handles_empty() -> None:
    data = frame(1, b"complete\n") + frame(2, b"cut short")[:-3]
    assert demultiplex_stream(data).stderr == "cut sh"
    assert demultiplex_stream(b"").chunks == ()


def test_demultiplex_large_frame() -> None:
    payload = b"x" * 70_000
    assert demultiplex_stream(frame(1, payload)).stdout == payload.decode()


def test_raw_stream_is_stdout() -> None:
    assert raw_stream(b"tty output").stdout == "tty output"
    assert raw_stream(b"").chunks == ()


def test_error_message_prefers_daemon_words() -> None:
    assert error_message(b'{"message":"No such container: x"}', 404, "Not Found") == (
        "No such container: x")
    assert error_message(b"plain text\n", 500, "Internal Server Error") == "plain text"
    assert error_message(b"", 502, "Bad Gateway") == "HTTP 502 Bad Gateway"


def test_pull_progress_error() -> None:
    assert pull_progress_error({"status": "Downloading"}) is None
    assert pull_progress_error({"error": "manifest unknown"}) == "manifest unknown"
    assert pull_progress_error(
        {"errorDetail": {"message": "denied"}, "error": "denied!"}) == "denied"


def test_minimum_version_from_refusal() -> None:
    refusal = ("client version 1.41 is too old. Minimum supported API version is 1.44, "
               "please upgrade your client to a newer version")
    assert minimum_version_from_error(refusal) == "1.44"
    assert minimum_version_from_error("client version 1.41 is too new. Maximum ...") is None


def test_maximum_version_from_refusal() -> None:
    assert maximum_version_from_error(
        "client version 1.41 is too new. Maximum supported API version is 1.40") == "1.40"
    assert maximum_version_from_error(  # dockerd before 17.04
        "client is newer than server (client API version: 1.41, server API version: 1.24)"
    ) == "1.24"
    assert maximum_version_from_error("client version 1.41 is too old. Minimum ...") is None


def test_version_from_refusal_either_way() -> None:
    assert version_from_refusal("client version 1.41 is too old. Minimum supported API "
                                "version is 1.44, please upgrade") == "1.44"
    assert version_from_refusal("client version 1.41 is too new. Maximum supported API "
                                "version is 1.40") == "1.40"
    assert version_from_refusal("No such container: x") is None
