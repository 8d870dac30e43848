"""Health gates, the I/O half: poll a host's containers and run probes from the host itself.
What counts as ready, failed or restarted is judged in fleet.core.health.

A changed container must come up, then stay running and healthy (and pass its probe) for
`monitor` seconds. A failure says why.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from typing import Any, Protocol
from urllib.parse import urlsplit

import asyncssh

from fleet.config.service import Probe
from fleet.core import health
from fleet.core.health import ConditionWatch, ExitWatch, MonitorWatch, ReadyWatch, Verdict
from fleet.docker.client import DockerClient
from fleet.errors import DockerError, DockerNotFoundError
from fleet.transport.host_probe import (
    HostProbeUnavailable,
    http_status_from_host,
    tcp_open_from_host,
)
from fleet.transport.http import Request, TransportError
from fleet.transport.http_over_ssh import direct_tcp_pool
from fleet.transport.ssh_errors import forwarding_refused, probe_impossible

POLL_SECONDS = 0.5
SETTLE_SECONDS = health.SETTLE_SECONDS
LOG_LINES = 5

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]


async def explain(docker: DockerClient, container_id: str,
                  state: Mapping[str, Any] | None = None) -> str:
    """The container's state, last health check and last log lines, as one sentence."""
    if state is None:
        try:
            state = (await docker.inspect_container(container_id)).get("State") or {}
        except DockerError as exc:
            return f"cannot inspect the container: {exc.reason}"
    try:
        lines = (await docker.container_logs(container_id, tail=LOG_LINES)).text.splitlines()
    except DockerError:
        lines = []
    return health.describe(state, [line for line in lines if line.strip()])


async def _settle(docker: DockerClient, container_id: str, verdict: Verdict,
                  data: Mapping[str, Any]) -> str | None:
    if verdict.passed:
        return None
    why = await explain(docker, container_id, data.get("State") or {})
    return f"{verdict.failure}: {why}" if verdict.failure else why


class _Watch(Protocol):
    def observe(self, now: float, data: Mapping[str, Any]) -> Verdict: ...


async def _poll(docker: DockerClient, container_id: str, watch: _Watch, clock: Clock,
                sleep: Sleep) -> str | None:
    while True:
        data = await docker.inspect_container(container_id)
        verdict = watch.observe(clock(), data)
        if verdict.done:
            return await _settle(docker, container_id, verdict, data)
        await sleep(POLL_SECONDS)


async def wait_ready(docker: DockerClient, container_id: str, timeout: float, *,
                     settle: float | None = None, clock: Clock = time.monotonic,
                     sleep: Sleep = asyncio.sleep) -> str | None:
    """None once running (and healthy, if it has a healthcheck); else why not. Without a
    healthcheck, running for `settle` seconds without a restart counts as ready."""
    return await _poll(docker, container_id, ReadyWatch(
        clock(), timeout, SETTLE_SECONDS if settle is None else settle), clock, sleep)


async def wait_exit(docker: DockerClient, container_id: str, timeout: float, *,
                    clock: Clock = time.monotonic, sleep: Sleep = asyncio.sleep) -> str | None:
    """None once a one-shot job exited with code 0; else why not."""
    return await _poll(docker, container_id, ExitWatch(clock(), timeout), clock, sleep)


async def wait_condition(docker: DockerClient, names: Sequence[str], condition: str,
                         timeout: float, *, job: bool = False, clock: Clock = time.monotonic,
                         sleep: Sleep = asyncio.sleep) -> str | None:
    """None once every one of a dependency's containers meets a dependent's condition
    (fleet.core.health.condition_met), within `timeout`; else why not, naming the
    container."""
    watch = ConditionWatch(clock(), timeout, condition, job)
    for name in names:
        while True:
            try:
                data = await docker.inspect_container(name)
            except DockerNotFoundError:
                return f"{name} does not exist on this host"
            verdict = watch.observe(clock(), data)
            if verdict.done:
                why = await _settle(docker, name, verdict, data)
                if why is not None:
                    return f"{name} {why}"
                break
            await sleep(POLL_SECONDS)
    return None


def _why(exc: BaseException, timeout: float) -> str:
    if isinstance(exc, TimeoutError) and not str(exc):
        return f"no answer within {timeout:g}s"
    return str(exc) or type(exc).__name__


PROBE_BODY_SHOWN = 120  # bytes of a failed probe's answer quoted in its reason
BY_HOST = "run by the host: its sshd refuses TCP forwarding"


async def _probe_by_host(ssh: asyncssh.SSHClientConnection, probe: Probe,
                         timeout: float) -> str | None:
    """The probe made by a tool of the host, on an exec channel: None if it passes."""
    what = f"tcp:{probe.tcp}" if probe.tcp is not None else str(probe.http)
    try:
        if probe.tcp is not None:
            why = await tcp_open_from_host(ssh, probe.tcp, timeout)
            return None if why is None else f"probe {what} failed ({BY_HOST}): {why}"
        assert probe.http is not None
        got = await http_status_from_host(ssh, probe.http, timeout)
    except HostProbeUnavailable as exc:
        return f"{probe_impossible(what)}; the host could not run it either: {exc}"
    if isinstance(got, str):
        return f"probe {what} failed ({BY_HOST}): {got}"
    if got != probe.status:
        return f"probe {what} answered {got}, expected {probe.status} ({BY_HOST})"
    return None


async def run_probe(ssh: asyncssh.SSHClientConnection, probe: Probe,
                    timeout: float = 5.0) -> str | None:
    """None if the probe passes from the host itself; else why it failed.

    Where sshd refuses TCP forwarding, the host itself makes the request (curl or wget; nc or
    bash for TCP: fleet.transport.host_probe); a host with none of them fails the probe with
    the sshd setting named.
    """
    if probe.tcp is not None:
        try:
            _, writer = await asyncio.wait_for(ssh.open_connection("127.0.0.1", probe.tcp),
                                               timeout)
            writer.close()
            return None
        except (asyncssh.Error, OSError, TimeoutError) as exc:
            if forwarding_refused(exc):
                return await _probe_by_host(ssh, probe, timeout)
            return f"probe tcp:{probe.tcp} failed: {_why(exc, timeout)}"
    assert probe.http is not None
    url = urlsplit(probe.http)  # checked when the playbook was read: http://HOST[:PORT]/...
    if url.scheme != "http" or not url.hostname:
        return f"probe {probe.http} failed: only http:// probes are supported"
    target = (url.path or "/") + (f"?{url.query}" if url.query else "")
    pool = direct_tcp_pool(ssh, url.hostname, url.port or 80)
    try:
        async with asyncio.timeout(timeout):
            response = await pool.send(Request("GET", target))
            try:
                # The status is the verdict; of the body only its start is shown (a bounded
                # read: the app answering can be as hostile as the host).
                head = b""
                async for chunk in response.aiter_bytes():
                    head += chunk
                    if len(head) >= PROBE_BODY_SHOWN:
                        break
            finally:
                await response.aclose()
    except TimeoutError:
        return f"probe {probe.http} failed: no answer within {timeout:g}s"
    except TransportError as exc:
        if forwarding_refused(exc):
            return await _probe_by_host(ssh, probe, timeout)
        return f"probe {probe.http} failed: {_why(exc, timeout)}"
    finally:
        await pool.aclose()
    if response.status != probe.status:
        shown = head[:PROBE_BODY_SHOWN].decode("utf-8", "replace").strip()
        return (f"probe {probe.http} answered {response.status}, expected {probe.status}: "
                f"{shown}")
    return None


async def health_gate(docker: DockerClient, ssh: asyncssh.SSHClientConnection,
                      container_ids: Sequence[str], *, probe: Probe | None, monitor: float,
                      timeout: float, settled: Collection[str] = (),
                      clock: Clock = time.monotonic,
                      sleep: Sleep = asyncio.sleep) -> str | None:
    """None when every container came up and stayed up for `monitor` seconds. `settled`:
    the containers a wait-ready step of this run has seen settle already."""
    identities = {}
    # The monitor watches for restarts too: settling first would only add its time to
    # every batch. What a wait-ready step settled need not settle again.
    settle = max(0.0, SETTLE_SECONDS - monitor)
    for container_id in container_ids:
        failure = await wait_ready(docker, container_id, timeout,
                                   settle=0.0 if container_id in settled else settle,
                                   clock=clock, sleep=sleep)
        if failure:
            return failure
        identities[container_id] = health.run_identity(
            await docker.inspect_container(container_id))
    watch = MonitorWatch(clock() + monitor, identities)
    while True:
        for container_id in container_ids:
            data = await docker.inspect_container(container_id)
            verdict = watch.observe(container_id, data)
            if verdict.done:
                return await _settle(docker, container_id, verdict, data)
        if probe is not None:
            failure = await run_probe(ssh, probe)
            if failure:
                return failure
        if watch.over(clock()):
            return None
        await sleep(min(POLL_SECONDS, max(0.0, watch.until - clock())))
