"""`fleet exec` on one host: a command run in each running replica of a service through the
Engine API's exec (the argv as given: no shell is built), its output and exit code kept."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

from fleet.docker.client import DockerClient
from fleet.engine.replicas import Replica, service_replicas
from fleet.errors import HostError


@dataclass(frozen=True)
class ExecRequest:
    project: str
    service: str
    argv: tuple[str, ...]
    user: str = ""
    workdir: str = ""
    env: tuple[str, ...] = ()
    timeout: float = 60.0


@dataclass(frozen=True)
class ExecResult:
    replica: Replica
    exit_code: int | None  # None: it did not end (or could not start)
    stdout: str = ""
    stderr: str = ""
    cut: bool = False  # the output went beyond what fleet keeps
    error: str = ""

    @property
    def ok(self) -> bool:
        return not self.error and self.exit_code == 0

    def as_json(self) -> dict[str, object]:
        return {"host": self.replica.host, "service": self.replica.service,
                "replica": self.replica.replica, "container": self.replica.name,
                "exit_code": self.exit_code, "stdout": self.stdout, "stderr": self.stderr,
                "output_cut": self.cut, "error": self.error or None}


async def run_in_replica(docker: DockerClient, replica: Replica,
                         request: ExecRequest) -> ExecResult:
    if not replica.running:
        return ExecResult(replica, None, error=f"not running ({replica.state or 'unknown'})")
    try:
        exec_id = await docker.create_exec(replica.id, request.argv, user=request.user,
                                           workdir=request.workdir, env=request.env)
        output, cut = await docker.start_exec(exec_id, timeout=request.timeout)
        ended = await docker.inspect_exec(exec_id)
    except HostError as exc:
        return ExecResult(replica, None, error=exc.reason)
    code = ended.get("ExitCode")
    still = bool(ended.get("Running"))
    return ExecResult(replica, None if still else code, output.stdout, output.stderr, cut,
                      "still running when its output ended" if still else "")


async def run_on_host(host: str, docker: DockerClient, request: ExecRequest,
                      replica_numbers: Sequence[int] = ()) -> list[ExecResult]:
    """The command in every running replica on the host (or only those numbered), side by
    side. HostError if the host has no replica of the service at all."""
    replicas = await service_replicas(host, docker, request.project, request.service)
    if replica_numbers:
        replicas = [r for r in replicas if r.replica in replica_numbers]
    # A start-first swap can leave an old container beside the new one: the running one of
    # each replica is the one that serves.
    by_number: dict[int, Replica] = {}
    for replica in replicas:
        if replica.running or replica.replica not in by_number:
            by_number[replica.replica] = replica
    if not by_number:
        raise HostError(host, f"no container of {request.service} here")
    return list(await asyncio.gather(*(run_in_replica(docker, r, request)
                                       for r in sorted(by_number.values(),
                                                       key=lambda r: r.replica))))
