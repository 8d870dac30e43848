"""Reading a service's logs on one host: each replica's stream, cut into lines, passed to a
sink; followed, across the replacement of its containers (a rollout's new ones are picked up
as they appear)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass

from fleet.core.logs import LineSplitter, LogLine, log_line
from fleet.docker.client import DockerClient
from fleet.engine.replicas import Replica, service_replicas
from fleet.errors import DockerNotFoundError, HostError

LineSink = Callable[[LogLine], None]
NoteSink = Callable[[str, str], None]  # (host, what happened): told on stderr

FOLLOW_POLL = 1.0  # seconds between looks for new containers while following
MAX_BACKOFF = 30.0  # longest wait between looks at a host that stopped answering


@dataclass(frozen=True)
class LogRequest:
    project: str
    service: str
    since: float | None  # seconds since the epoch
    tail: int | None  # lines per replica, from its end; None: all


async def _tty(docker: DockerClient, container: str) -> bool:
    config = (await docker.inspect_container(container)).get("Config") or {}
    return bool(config.get("Tty"))


async def read_replica(docker: DockerClient, replica: Replica, request: LogRequest,
                       sink: LineSink, *, follow: bool, since: float | None = None,
                       tail: int | None = None) -> None:
    """One container's lines (from `since`, the last `tail`), to `sink` as they come."""
    splitters = {"stdout": LineSplitter(), "stderr": LineSplitter()}

    def emit(stream: str, raw: str) -> None:
        sink(log_line(raw, host=replica.host, service=replica.service,
                      replica=replica.replica, stream=stream))

    tty = await _tty(docker, replica.id)
    async with docker.log_stream(replica.id, tty=tty, follow=follow, since=since,
                                 tail=tail) as chunks:
        async for chunk in chunks:
            stream = "stderr" if chunk.stream == "stderr" else "stdout"
            for raw in splitters[stream].feed(chunk.data):
                emit(stream, raw)
    for stream, splitter in splitters.items():
        for raw in splitter.flush():
            emit(stream, raw)


async def read_host(host: str, docker: DockerClient, request: LogRequest,
                    sink: LineSink) -> int:
    """Every replica's lines as they stand now; returns how many replicas were read.
    A container removed while being read is skipped: it has no logs anymore."""
    replicas = await service_replicas(host, docker, request.project, request.service)

    async def one(replica: Replica) -> None:
        with contextlib.suppress(DockerNotFoundError):
            await read_replica(docker, replica, request, sink, follow=False,
                               since=request.since, tail=request.tail)

    await asyncio.gather(*(one(r) for r in replicas))
    return len(replicas)


async def follow_host(host: str, docker: DockerClient, request: LogRequest, sink: LineSink,
                      note: NoteSink) -> None:
    """Follow every replica until cancelled: the ones there now from `request`'s tail and
    since, and every container that appears later (a rollout's) from its first line. A host
    that stops answering is told once and looked at again, less and less often, until it
    answers."""
    streams: dict[str, asyncio.Task[None]] = {}
    seen: set[str] = set()
    first, backoff, failing = True, FOLLOW_POLL, False

    async def stream(replica: Replica, since: float | None, tail: int | None) -> None:
        try:
            await read_replica(docker, replica, request, sink, follow=True, since=since,
                               tail=tail)
        except DockerNotFoundError:
            pass
        except HostError as exc:
            note(host, f"{replica.label} ({replica.name}): {exc.reason}")
            return
        note(host, f"{replica.label} ({replica.name}) stopped")

    try:
        while True:
            try:
                replicas = await service_replicas(host, docker, request.project,
                                                  request.service)
            except HostError as exc:
                if not failing:
                    note(host, f"cannot list the containers: {exc.reason}; trying again")
                failing = True
                backoff = min(backoff * 2, MAX_BACKOFF)
            else:
                if failing:
                    note(host, "answering again")
                failing, backoff = False, FOLLOW_POLL
                for replica in replicas:
                    if replica.id in seen:
                        continue
                    seen.add(replica.id)
                    if first:
                        since, tail = request.since, request.tail
                    else:
                        since, tail = None, None
                        note(host, f"{replica.label} ({replica.name}) appeared: following it")
                    streams[replica.id] = asyncio.create_task(stream(replica, since, tail))
                first = False
            await asyncio.sleep(backoff)
    finally:
        for task in streams.values():
            task.cancel()
        await asyncio.gather(*streams.values(), return_exceptions=True)
