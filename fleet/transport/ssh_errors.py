"""asyncssh / OS exceptions, in words an operator understands.

This is the one place where connection failures become fleet errors; the rest of fleet sees
only ConnectError (and its HostKeyError) carrying the host name.
"""

from __future__ import annotations

import errno
import socket

import asyncssh

_ERRNO_WORDS = {
    errno.ECONNREFUSED: "connection refused (is sshd listening on that port?)",
    errno.EHOSTUNREACH: "host unreachable (no route to it)",
    errno.ENETUNREACH: "network unreachable",
    errno.ETIMEDOUT: "connection timed out",
    errno.ECONNRESET: "connection reset by the server",
}


def describe_connect_failure(exc: BaseException, *, endpoint: str, user: str | None,
                             timeout: float) -> str:
    """One line saying why connecting to `endpoint` (address:port) failed."""
    who = f" as {user}" if user else ""
    if isinstance(exc, TimeoutError):
        return f"timed out after {timeout:g}s connecting to {endpoint}"
    if isinstance(exc, asyncssh.PermissionDenied):
        return (f"authentication failed{who} at {endpoint}: no offered key was accepted "
                "(check ssh_key, the ssh-agent and the host's authorized_keys)")
    if isinstance(exc, asyncssh.HostKeyNotVerifiable):
        return f"host key not verifiable at {endpoint}: {exc.reason}"
    if isinstance(exc, asyncssh.ConnectionLost):
        return f"connection to {endpoint} lost during the SSH handshake: {exc.reason}"
    if isinstance(exc, asyncssh.DisconnectError):
        return f"SSH server at {endpoint} disconnected: {exc.reason}"
    if isinstance(exc, asyncssh.KeyImportError):
        return f"cannot load the SSH key: {exc}"
    if isinstance(exc, socket.gaierror):
        return f"cannot resolve {endpoint}: {exc.strerror}"
    if isinstance(exc, ConnectionRefusedError):
        return f"{_ERRNO_WORDS[errno.ECONNREFUSED]} at {endpoint}"
    if isinstance(exc, OSError):
        words = _ERRNO_WORDS.get(exc.errno or 0) or exc.strerror or str(exc)
        if exc.filename:
            return f"{words}: {exc.filename}"
        return f"{words} at {endpoint}"
    return f"cannot connect to {endpoint}: {exc}"


# What connect() may raise for reasons outside fleet's control; anything else is a bug.
CONNECT_FAILURES: tuple[type[BaseException], ...] = (
    asyncssh.Error,
    asyncssh.KeyImportError,
    OSError,
    TimeoutError,
    ValueError,  # asyncssh: malformed key file or option value from ~/.ssh/config
)
