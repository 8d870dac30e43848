"""Health gates: a changed container must come up, then stay running and healthy (and pass
its probe, run from the host itself) for `monitor` seconds. A failure says why."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from typing import Any

import asyncssh
import httpx

from fleet.config.service import Probe
from fleet.errors import DockerError
from fleet.transport import DockerClient
from fleet.transport.http_over_ssh import SSHChannelTransport, SSHDirectTCPBackend

POLL_SECONDS = 0.5
SETTLE_SECONDS = 1.0


async def explain(docker: DockerClient, container_id: str,
                  state: Mapping[str, Any] | None = None) -> str:
    """Why a container is not healthy: its state, the last health check's output, and its
    last log lines (the first things an operator would look at)."""
    if state is None:
        try:
            state = (await docker.inspect_container(container_id)).get("State") or {}
        except DockerError as exc:
            return f"cannot inspect the container: {exc.reason}"
    reason = f"container {state.get('Status')}"
    if state.get("Status") == "exited":
        reason += f" with code {state.get('ExitCode')}"
    health = state.get("Health") or {}
    if isinstance(health, dict) and health.get("Status"):
        reason += f", health {health['Status']}"
        log = health.get("Log") or []
        if log:
            last = log[-1]
            output = str(last.get("Output", "")).strip().replace("\n", " ")[:200]
            reason += f" (last check exit {last.get('ExitCode')}: {output})"
    try:
        logs = await docker.container_logs(container_id, tail=5)
        tail = logs.text.strip().splitlines()[-5:]
        if tail:
            reason += "; last log lines: " + " | ".join(tail)
    except DockerError:
        pass
    return reason


def _ready(state: Mapping[str, Any]) -> tuple[bool, bool]:
    """(ready, failed) for a container's State."""
    health = (state.get("Health") or {}).get("Status")
    ready = state.get("Status") == "running" and health in (None, "none", "healthy")
    failed = state.get("Status") in ("exited", "dead") or health == "unhealthy"
    return ready, failed


def _run_identity(data: Mapping[str, Any]) -> tuple[Any, Any]:
    """Changes whenever the container restarts (a crash loop under a restart policy can
    look "running" at every poll)."""
    return (data.get("State") or {}).get("StartedAt"), data.get("RestartCount")


async def wait_ready(docker: DockerClient, container_id: str, timeout: float) -> str | None:
    """None once running (and healthy, if it has a healthcheck); else why not.

    Without a healthcheck, "running" must also hold for SETTLE_SECONDS without a restart:
    a process that dies right after starting must not pass."""
    deadline = time.monotonic() + timeout
    settled_since: float | None = None
    identity: tuple[Any, Any] | None = None
    while True:
        data = await docker.inspect_container(container_id)
        state = data.get("State") or {}
        ready, failed = _ready(state)
        if ready and state.get("Health"):
            return None
        if ready:
            if identity is not None and _run_identity(data) != identity:
                return "restarted while starting: " + await explain(docker, container_id,
                                                                    state)
            identity = _run_identity(data)
            settled_since = settled_since or time.monotonic()
            if time.monotonic() - settled_since >= SETTLE_SECONDS:
                return None
        if failed or time.monotonic() > deadline:
            prefix = "" if failed else f"not ready after {timeout:g}s: "
            return prefix + await explain(docker, container_id, state)
        await asyncio.sleep(POLL_SECONDS)


async def run_probe(ssh: asyncssh.SSHClientConnection, probe: Probe,
                    timeout: float = 5.0) -> str | None:
    """None if the probe passes from the host itself; else why it failed."""
    if probe.tcp is not None:
        try:
            _, writer = await asyncio.wait_for(ssh.open_connection("127.0.0.1", probe.tcp),
                                               timeout)
            writer.close()
            return None
        except (asyncssh.Error, OSError, TimeoutError) as exc:
            return f"probe tcp:{probe.tcp} failed: {exc or type(exc).__name__}"
    assert probe.http is not None
    transport = SSHChannelTransport(ssh, "", max_channels=1, backend=SSHDirectTCPBackend(ssh))
    try:
        async with httpx.AsyncClient(transport=transport, timeout=timeout) as client:
            response = await client.get(probe.http)
    except httpx.HTTPError as exc:
        return f"probe {probe.http} failed: {exc or type(exc).__name__}"
    if response.status_code != probe.status:
        return (f"probe {probe.http} answered {response.status_code}, expected {probe.status}: "
                f"{response.text.strip()[:120]}")
    return None


async def health_gate(docker: DockerClient, ssh: asyncssh.SSHClientConnection,
                      container_ids: Sequence[str], *, probe: Probe | None, monitor: float,
                      timeout: float) -> str | None:
    """None when every container came up and stayed up for `monitor` seconds."""
    identities = {}
    for container_id in container_ids:
        failure = await wait_ready(docker, container_id, timeout)
        if failure:
            return failure
        identities[container_id] = _run_identity(await docker.inspect_container(container_id))
    deadline = time.monotonic() + monitor
    while True:
        for container_id in container_ids:
            data = await docker.inspect_container(container_id)
            state = data.get("State") or {}
            ready, _ = _ready(state)
            if not ready:
                return "did not stay healthy: " + await explain(docker, container_id, state)
            if _run_identity(data) != identities[container_id]:
                return "restarted during monitoring: " + await explain(docker, container_id,
                                                                       state)
        if probe is not None:
            failure = await run_probe(ssh, probe)
            if failure:
                return failure
        if time.monotonic() >= deadline:
            return None
        await asyncio.sleep(min(POLL_SECONDS, max(0.0, deadline - time.monotonic())))
