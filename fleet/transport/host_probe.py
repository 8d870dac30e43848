"""Probes run by the host itself, for hosts whose sshd refuses TCP forwarding.

fleet probes from the host's own loopback through a direct-tcpip channel. Where sshd refuses
those (`AllowTcpForwarding no`, `DisableForwarding yes`), the same request is made by a tool
of the host (curl or wget; nc or bash for TCP) started on an exec channel. The command is a
constant script: the URL or port and the timeout reach it on stdin, never in the command line.
"""

from __future__ import annotations

import asyncio
import re

import asyncssh

# Read by the user's login shell (`sh -c`), as sshd runs every command.
HTTP_SCRIPT = r"""IFS= read -r url; IFS= read -r seconds
if command -v curl >/dev/null 2>&1; then
  curl -s -o /dev/null -m "$seconds" -w '%{http_code}' "$url"; exit 0
elif command -v wget >/dev/null 2>&1; then
  wget -S -q -O /dev/null -T "$seconds" "$url" 2>&1 |
    sed -n 's/^ *HTTP\/[0-9.]* \([0-9][0-9][0-9]\).*/\1/p' | tail -n 1; exit 0
fi
echo 'neither curl nor wget is installed' >&2; exit 127"""

TCP_SCRIPT = r"""IFS= read -r port; IFS= read -r seconds
if command -v nc >/dev/null 2>&1; then exec nc -z -w "$seconds" 127.0.0.1 "$port"; fi
if command -v bash >/dev/null 2>&1; then
  exec timeout "$seconds" bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$0"' "$port"
fi
echo 'neither nc nor bash is installed' >&2; exit 127"""

MAX_OUTPUT = 4096  # what is read of the script's output: a status code, or a short error
MISSING_TOOL = 127
_STATUS = re.compile(r"(\d{3})\s*$")


class HostProbeUnavailable(Exception):
    """The host can't run the probe either (no exec channel, or none of the tools)."""


async def _bounded(stream: asyncssh.SSHReader[bytes]) -> bytes:
    """What `stream` says until its end, but never more than MAX_OUTPUT bytes."""
    data = b""
    while len(data) < MAX_OUTPUT and (chunk := await stream.read(MAX_OUTPUT - len(data))):
        data += chunk
    return data


async def _run(ssh: asyncssh.SSHClientConnection, script: str, given: str,
               timeout: float) -> tuple[int, str, str]:
    try:
        async with asyncio.timeout(timeout + 5):
            process = await ssh.create_process(script, encoding=None)
            process.stdin.write(given.encode())
            process.stdin.write_eof()
            stdout = await _bounded(process.stdout)
            stderr = await _bounded(process.stderr)
            # The exit status comes before the channel closes (a host that keeps talking
            # is held to the deadline above).
            await process.wait_closed()
    except TimeoutError:
        return -1, "", f"no answer within {timeout:g}s"
    except (asyncssh.Error, OSError) as exc:
        raise HostProbeUnavailable(f"the host refused to run it ({exc})") from exc
    status = process.exit_status if process.exit_status is not None else -1
    if status == MISSING_TOOL:
        raise HostProbeUnavailable(stderr.decode("utf-8", "replace").strip()[:200]
                                   or "the host's shell cannot run it")
    return status, stdout.decode("utf-8", "replace"), stderr.decode("utf-8", "replace")


async def http_status_from_host(ssh: asyncssh.SSHClientConnection, url: str,
                                timeout: float) -> int | str:
    """The HTTP status `url` answers with, fetched by the host; or why there is none.
    Raises HostProbeUnavailable."""
    seconds = max(1, round(timeout))
    _, out, err = await _run(ssh, HTTP_SCRIPT, f"{url}\n{seconds}\n", timeout)
    found = _STATUS.search(out)
    if found is None or found.group(1) == "000":
        return err.strip()[:200] or "no answer"
    return int(found.group(1))


async def tcp_open_from_host(ssh: asyncssh.SSHClientConnection, port: int,
                             timeout: float) -> str | None:
    """None if the host reaches 127.0.0.1:`port`; else why not. Raises HostProbeUnavailable."""
    seconds = max(1, round(timeout))
    status, _, err = await _run(ssh, TCP_SCRIPT, f"{port}\n{seconds}\n", timeout)
    if status == 0:
        return None
    return err.strip()[:200] or "connection refused or timed out"
