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


def transient(exc: BaseException) -> bool:
    """Whether a failed connect is worth trying again: the server reset or dropped it during
    the handshake (sshd's MaxStartups refusals look so) or it timed out. Refusals, unknown
    routes, authentication and host-key failures are answers, not accidents."""
    if isinstance(exc, TimeoutError | asyncssh.ConnectionLost | ConnectionResetError
                  | BrokenPipeError | ConnectionAbortedError):
        return True
    if isinstance(exc, asyncssh.DisconnectError):
        return exc.code in (asyncssh.DISC_CONNECTION_LOST, asyncssh.DISC_TOO_MANY_CONNECTIONS)
    return isinstance(exc, OSError) and exc.errno in (errno.ECONNRESET, errno.ETIMEDOUT)


# What connect() may raise for reasons outside fleet's control; anything else is a bug.
CONNECT_FAILURES: tuple[type[BaseException], ...] = (
    asyncssh.Error,
    asyncssh.KeyImportError,
    OSError,
    TimeoutError,
    ValueError,  # asyncssh: malformed key file or option value from ~/.ssh/config
)


# sshd_config settings that refuse forwarding channels. OpenSSH answers a refused
# direct-tcpip channel with "administratively prohibited", but a refused direct-streamlocal
# one (AllowTcpForwarding no refuses those too) with the same "open failed" as a missing socket.
SOCKET_FORWARDING_SETTINGS = ("AllowStreamLocalForwarding no, AllowTcpForwarding no or "
                              "DisableForwarding yes")
TCP_FORWARDING_SETTINGS = "AllowTcpForwarding no or DisableForwarding yes"


def forwarding_refused(exc: BaseException) -> bool:
    """Whether `exc`, or an error that led to it, is sshd refusing a forwarding channel."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, asyncssh.ChannelOpenError) and \
                seen.code == asyncssh.OPEN_ADMINISTRATIVELY_PROHIBITED:
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def socket_refused(socket_path: str, refusal: str) -> str:
    """Why sshd may not have opened a channel to the Docker socket (it does not say)."""
    return (f"sshd did not open a channel to {socket_path} ({refusal}: dockerd is not running "
            f"there, or sshd_config refuses forwarding with {SOCKET_FORWARDING_SETTINGS})")


def probe_impossible(what: str) -> str:
    return (f"probe {what} cannot run on this host: sshd refuses TCP forwarding there "
            f"({TCP_FORWARDING_SETTINGS} in sshd_config), and fleet runs probes from the "
            "host's own loopback through a direct-tcpip channel; allow it for fleet's user "
            "(`AllowTcpForwarding local`, e.g. in a Match block) or remove update.probe")
