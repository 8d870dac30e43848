"""Connection failures become one operator-readable line."""

from __future__ import annotations

import errno
import socket

import asyncssh
import pytest

from fleet.transport.ssh_errors import describe_connect_failure


def describe(exc: BaseException) -> str:
    return describe_connect_failure(exc, endpoint="198.18.1.11:22", user="deploy", timeout=5)


@pytest.mark.parametrize(
    ("exc", "words"),
    [
        (TimeoutError(), "timed out after 5s connecting to 198.18.1.11:22"),
        (ConnectionRefusedError(errno.ECONNREFUSED, "refused"), "connection refused"),
        (OSError(errno.EHOSTUNREACH, "No route to host"), "host unreachable"),
        (OSError(errno.ENETUNREACH, "Network is unreachable"), "network unreachable"),
        (asyncssh.PermissionDenied("no"), "authentication failed as deploy"),
        (asyncssh.ConnectionLost("reset"), "lost during the SSH handshake"),
        (asyncssh.ProtocolError("bad banner"), "disconnected: bad banner"),
        (socket.gaierror(socket.EAI_NONAME, "Name or service not known"), "cannot resolve"),
        (FileNotFoundError(errno.ENOENT, "No such file", "/keys/id"), "/keys/id"),
        (asyncssh.KeyImportError("Invalid PEM"), "cannot load the SSH key"),
    ],
)
def test_describe_connect_failure(exc: BaseException, words: str) -> None:
    message = describe(exc)
    assert words in message
    assert "Traceback" not in message
