"""Health probes and gates.

Probes run against a real asyncssh server on loopback that forwards direct-tcpip channels (as
sshd does) to small real servers on loopback ports, so a probe goes all the way:
fleet.transport.http (h11) -> SSH channel -> the "host's" 127.0.0.1:PORT. The gates use a
fake Docker client that replays a sequence of inspect results. IP literals only: nothing is
resolved.
"""

from __future__ import annotations

import asyncio
import contextlib
import http
import socket
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncssh
import pytest

from fleet.config.service import Probe
from fleet.engine.health import health_gate, run_probe, wait_ready

LOOPBACK = "127.0.0.1"
Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


# -- an SSH "host" and servers on its loopback ---------------------------------------------------


class ForwardingServer(asyncssh.SSHServer):
    """Forwards direct-tcpip channels like sshd with AllowTcpForwarding yes (or refuses them
    like AllowTcpForwarding no), and records where they were asked to go."""

    def __init__(self, forwarding: bool | str, requested: list[tuple[str, int]]) -> None:
        self._forwarding = forwarding
        self._requested = requested

    def connection_requested(self, dest_host: str, dest_port: int, orig_host: str,
                             orig_port: int) -> Any:
        self._requested.append((dest_host, dest_port))
        if self._forwarding == "hang":  # the channel open is never answered
            return asyncio.Event().wait()
        if not self._forwarding:
            raise asyncssh.ChannelOpenError(asyncssh.OPEN_ADMINISTRATIVELY_PROHIBITED,
                                            "port forwarding is disabled")
        return True


@dataclass
class Host:
    ssh: asyncssh.SSHClientConnection
    requested: list[tuple[str, int]]  # (host, port) of every direct-tcpip channel asked for


@contextlib.asynccontextmanager
async def ssh_host(forwarding: bool | str = True,
                   commands_path: str | None = None) -> AsyncIterator[Host]:
    """An SSH server on loopback; with `commands_path`, exec channels run their command with
    this machine's `sh` and that PATH (the host's tools, for probes it makes itself)."""
    host_key = asyncssh.generate_private_key("ssh-ed25519")
    client_key = asyncssh.generate_private_key("ssh-ed25519")
    requested: list[tuple[str, int]] = []

    async def run_locally(process: asyncssh.SSHServerProcess[bytes]) -> None:
        local = await asyncio.create_subprocess_exec(
            "/bin/sh", "-c", process.command or "", env={"PATH": commands_path or ""},
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE)
        await process.redirect(stdin=local.stdin, stdout=local.stdout, stderr=local.stderr)
        process.exit(await local.wait())
        await process.wait_closed()

    server = await asyncssh.create_server(
        lambda: ForwardingServer(forwarding, requested), LOOPBACK, 0,
        process_factory=run_locally if commands_path is not None else None,
        encoding=None, server_host_keys=[host_key],
        authorized_client_keys=asyncssh.import_authorized_keys(
            client_key.export_public_key().decode()),
        allow_pty=False)
    port = server.sockets[0].getsockname()[1]
    ssh = await asyncssh.connect(LOOPBACK, port, username="fleet", client_keys=[client_key],
                                 known_hosts=None)
    try:
        yield Host(ssh, requested)
    finally:
        ssh.close()
        await ssh.wait_closed()
        server.close()
        await server.wait_closed()


@contextlib.asynccontextmanager
async def listening(handler: Handler) -> AsyncIterator[int]:
    """A TCP server on a free loopback port, each connection given to `handler`."""
    writers: set[asyncio.StreamWriter] = set()
    handlers: set[asyncio.Task[Any]] = set()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.add(writer)
        handlers.add(asyncio.current_task())  # type: ignore[arg-type]
        try:
            await handler(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(serve, LOOPBACK, 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        for writer in writers:
            writer.close()
        await server.wait_closed()
        if handlers:  # closed connections end them (a hung one sees EOF)
            await asyncio.wait(handlers, timeout=2)


@dataclass
class Responder:
    """An HTTP/1.1 server answering every request with `status` and `body`."""

    status: int = 200
    body: bytes = b"ok"
    requests: list[str] = field(default_factory=list)  # request lines received

    async def __call__(self, reader: asyncio.StreamReader,
                       writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        self.requests.append(head.split(b"\r\n", 1)[0].decode())
        phrase = http.HTTPStatus(self.status).phrase
        writer.write(f"HTTP/1.1 {self.status} {phrase}\r\nContent-Type: text/plain\r\n"
                     f"Content-Length: {len(self.body)}\r\nConnection: close\r\n\r\n".encode()
                     + self.body)
        await writer.drain()


async def hang(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Accepts, reads the request, never answers (until the client hangs up)."""
    await reader.read()


async def accept_and_close(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    pass


def closed_port() -> int:
    """A loopback port nothing listens on (just freed by the kernel)."""
    with socket.socket() as probe:
        probe.bind((LOOPBACK, 0))
        port: int = probe.getsockname()[1]
    return port


# -- run_probe: http -----------------------------------------------------------------------------


def test_http_probe_passes_on_the_expected_status() -> None:
    responder = Responder(status=200, body=b"ok")

    async def main() -> None:
        async with listening(responder) as port, ssh_host() as host:
            probe = Probe(http=f"http://{LOOPBACK}:{port}/health", status=200)
            assert await run_probe(host.ssh, probe, timeout=2) is None
            assert host.requested == [(LOOPBACK, port)]  # from the host's own loopback

    asyncio.run(main())
    assert responder.requests == ["GET /health HTTP/1.1"]


def test_http_probe_passes_on_a_non_200_status_it_expects() -> None:
    async def main() -> None:
        async with listening(Responder(status=204, body=b"")) as port, ssh_host() as host:
            probe = Probe(http=f"http://{LOOPBACK}:{port}/ready", status=204)
            assert await run_probe(host.ssh, probe, timeout=2) is None

    asyncio.run(main())


def test_http_probe_on_another_status_says_what_it_got() -> None:
    async def main() -> None:
        async with listening(Responder(status=503, body=b"down\n")) as port, \
                ssh_host() as host:
            url = f"http://{LOOPBACK}:{port}/health"
            failure = await run_probe(host.ssh, Probe(http=url, status=200), timeout=2)
            assert failure == f"probe {url} answered 503, expected 200: down"

    asyncio.run(main())


def test_http_probe_quotes_only_the_start_of_a_long_body() -> None:
    body = b"x" * 120 + b"TRUNCATED" + b"y" * 1000

    async def main() -> None:
        async with listening(Responder(status=500, body=body)) as port, ssh_host() as host:
            url = f"http://{LOOPBACK}:{port}/health"
            failure = await run_probe(host.ssh, Probe(http=url), timeout=2)
            assert failure == f"probe {url} answered 500, expected 200: " + "x" * 120

    asyncio.run(main())


async def endless(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Answers 500 with a body that never ends (an app gone wrong, or a hostile one)."""
    await reader.readuntil(b"\r\n\r\n")
    writer.write(b"HTTP/1.1 500 Internal Server Error\r\nTransfer-Encoding: chunked\r\n\r\n")
    try:
        while True:
            writer.write(b"10000\r\n" + b"z" * 0x10000 + b"\r\n")
            await writer.drain()
    except (ConnectionError, OSError):
        pass


def test_http_probe_reads_only_the_start_of_an_endless_body() -> None:
    async def main() -> None:
        async with listening(endless) as port, ssh_host() as host:
            url = f"http://{LOOPBACK}:{port}/health"
            failure = await run_probe(host.ssh, Probe(http=url), timeout=5)
            assert failure == f"probe {url} answered 500, expected 200: " + "z" * 120

    asyncio.run(main())


def test_http_probe_on_a_closed_port_fails_with_a_message() -> None:
    port = closed_port()

    async def main() -> None:
        async with ssh_host() as host:
            url = f"http://{LOOPBACK}:{port}/health"
            failure = await run_probe(host.ssh, Probe(http=url), timeout=2)
            assert failure is not None
            prefix = f"probe {url} failed: {LOOPBACK}:{port} refused on the host: "
            assert failure.startswith(prefix), failure
            assert failure[len(prefix):].strip()  # the host's reason (ECONNREFUSED's text)

    asyncio.run(main())


def test_http_probe_that_never_answers_fails_within_the_timeout() -> None:
    async def main() -> None:
        async with listening(hang) as port, ssh_host() as host:
            url = f"http://{LOOPBACK}:{port}/health"
            started = time.monotonic()
            failure = await run_probe(host.ssh, Probe(http=url), timeout=0.5)
            assert time.monotonic() - started < 5
            assert failure == f"probe {url} failed: no answer within 0.5s"

    asyncio.run(main())


def test_http_probe_whose_channel_never_opens_fails_within_the_timeout() -> None:
    async def main() -> None:
        async with ssh_host(forwarding="hang") as host:
            url = f"http://{LOOPBACK}:8080/health"
            started = time.monotonic()
            failure = await run_probe(host.ssh, Probe(http=url), timeout=0.5)
            assert time.monotonic() - started < 5
            assert failure == f"probe {url} failed: no answer within 0.5s"

    asyncio.run(main())


# -- run_probe: tcp ------------------------------------------------------------------------------


def test_tcp_probe_passes_on_a_listening_port() -> None:
    async def main() -> None:
        async with listening(accept_and_close) as port, ssh_host() as host:
            assert await run_probe(host.ssh, Probe(tcp=port), timeout=2) is None
            assert host.requested == [(LOOPBACK, port)]

    asyncio.run(main())


def test_tcp_probe_on_a_closed_port_fails_with_a_message() -> None:
    port = closed_port()

    async def main() -> None:
        async with ssh_host() as host:
            failure = await run_probe(host.ssh, Probe(tcp=port), timeout=2)
            assert failure is not None
            prefix = f"probe tcp:{port} failed: "
            assert failure.startswith(prefix), failure
            assert failure[len(prefix):].strip()

    asyncio.run(main())


def test_tcp_probe_whose_channel_never_opens_says_it_timed_out() -> None:
    async def main() -> None:
        async with ssh_host(forwarding="hang") as host:
            started = time.monotonic()
            failure = await run_probe(host.ssh, Probe(tcp=8080), timeout=0.5)
            assert time.monotonic() - started < 5
            assert failure is not None
            assert failure.startswith("probe tcp:8080 failed: ")
            assert failure == "probe tcp:8080 failed: no answer within 0.5s"

    asyncio.run(main())


# -- run_probe: the host refuses forwarding ------------------------------------------------------


IMPOSSIBLE = ("cannot run on this host: sshd refuses TCP forwarding there (AllowTcpForwarding "
              "no or DisableForwarding yes in sshd_config), and fleet runs probes from the "
              "host's own loopback through a direct-tcpip channel; allow it for fleet's user "
              "(`AllowTcpForwarding local`, e.g. in a Match block) or remove update.probe")


def test_http_probe_when_the_host_refuses_forwarding_names_the_setting() -> None:
    async def main() -> None:
        async with listening(Responder()) as port, ssh_host(forwarding=False) as host:
            url = f"http://{LOOPBACK}:{port}/health"
            failure = await run_probe(host.ssh, Probe(http=url), timeout=2)
            assert failure is not None and failure.startswith(f"probe {url} {IMPOSSIBLE}; "
                                                              "the host could not run it")

    asyncio.run(main())


def test_tcp_probe_when_the_host_refuses_forwarding_names_the_setting() -> None:
    async def main() -> None:
        async with listening(accept_and_close) as port, ssh_host(forwarding=False) as host:
            failure = await run_probe(host.ssh, Probe(tcp=port), timeout=2)
            assert failure is not None and failure.startswith(f"probe tcp:{port} {IMPOSSIBLE}")

    asyncio.run(main())


# -- wait_ready and health_gate with a fake Docker -----------------------------------------------


STARTED = "2024-05-01T10:00:00.123456789Z"
RESTARTED = "2024-05-01T10:00:03.987654321Z"


def inspect(status: str = "running", *, health: str | None = None, started: str = STARTED,
            restarts: int = 0, exit_code: int = 0, check_output: str = "") -> dict[str, Any]:
    """A container inspect result, trimmed to what dockerd always sends about State."""
    state: dict[str, Any] = {
        "Status": status, "Running": status == "running", "Paused": False,
        "Restarting": status == "restarting", "OOMKilled": False, "Dead": False, "Pid": 4242,
        "ExitCode": exit_code, "Error": "", "StartedAt": started,
        "FinishedAt": "0001-01-01T00:00:00Z" if status == "running" else RESTARTED,
    }
    if health is not None:
        log = [{"Start": STARTED, "End": STARTED, "ExitCode": 0 if health != "unhealthy" else 1,
                "Output": check_output}] if check_output else []
        state["Health"] = {"Status": health, "FailingStreak": 3 if health == "unhealthy" else 0,
                           "Log": log}
    return {"Id": "c0ffee" * 10 + "abcd", "Name": "/web-1", "RestartCount": restarts,
            "State": state}


@dataclass
class Logs:
    text: str


class FakeDocker:
    """inspect_container replays `states` (the last one repeats)."""

    def __init__(self, states: Sequence[dict[str, Any]], logs: str = "") -> None:
        self.states = list(states)
        self.logs = logs
        self.inspected = 0

    async def inspect_container(self, container_id: str) -> dict[str, Any]:
        state = self.states[min(self.inspected, len(self.states) - 1)]
        self.inspected += 1
        return state

    async def container_logs(self, container_id: str, tail: int | None = 100) -> Logs:
        return Logs(self.logs)


@pytest.fixture(autouse=True)
def fast_polls(monkeypatch: pytest.MonkeyPatch) -> None:
    health = sys.modules[wait_ready.__module__]
    monkeypatch.setattr(health, "POLL_SECONDS", 0.01)
    monkeypatch.setattr(health, "SETTLE_SECONDS", 0.05)


def ready(docker: Any, timeout: float = 5) -> str | None:
    return asyncio.run(wait_ready(docker, "web-1", timeout))


async def gate(docker: Any, ssh: Any = None, *, probe: Probe | None = None,
               monitor: float = 0) -> str | None:
    return await health_gate(docker, ssh, ["web-1"], probe=probe, monitor=monitor, timeout=5)


def test_starting_then_healthy_is_ready() -> None:
    docker = FakeDocker([inspect(health="starting"), inspect(health="starting"),
                         inspect(health="healthy")])
    assert ready(docker) is None
    assert docker.inspected == 3


def test_unhealthy_fails_with_the_health_check_output() -> None:
    docker = FakeDocker([inspect(health="starting"),
                         inspect(health="unhealthy",
                                 check_output="curl: (7) Failed to connect to 127.0.0.1 port "
                                              "8080\nafter 0 ms\n")],
                        logs="booting\nlistening on :9090\n")
    failure = ready(docker)
    assert failure is not None
    assert failure.startswith("container running, health unhealthy")
    assert "(last check exit 1: curl: (7) Failed to connect to 127.0.0.1 port 8080 after 0 ms)" \
        in failure
    assert failure.endswith("; last log lines: booting | listening on :9090")


def test_running_without_healthcheck_settles_and_is_ready() -> None:
    docker = FakeDocker([inspect()])
    started = time.monotonic()
    assert ready(docker) is None
    assert time.monotonic() - started >= 0.05  # SETTLE_SECONDS, patched
    assert docker.inspected >= 2


def test_restart_while_settling_fails() -> None:
    docker = FakeDocker([inspect(), inspect(started=RESTARTED, restarts=1)],
                        logs="panic: cannot open /data\n")
    assert ready(docker) == ("restarted while starting: container running; "
                             "last log lines: panic: cannot open /data")


def test_exit_fails_with_the_exit_code() -> None:
    docker = FakeDocker([inspect(), inspect("exited", exit_code=3)], logs="fatal: bad config\n")
    assert ready(docker) == "container exited with code 3; last log lines: fatal: bad config"


def test_never_ready_fails_after_the_timeout() -> None:
    docker = FakeDocker([inspect(health="starting")])
    assert ready(docker, timeout=0.1) == "not ready after 0.1s: container running, health starting"


def test_gate_passes_when_the_container_stays_up_for_monitor() -> None:
    docker = FakeDocker([inspect(health="healthy")])

    async def main() -> None:
        started = time.monotonic()
        assert await gate(docker, monitor=0.1) is None
        assert time.monotonic() - started >= 0.1

    asyncio.run(main())
    assert docker.inspected > 3  # ready, identity, then polled while monitoring


class FakeClock:
    """Time that passes only when the code under test sleeps."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds


@pytest.mark.parametrize(("monitor", "expected"), [(0.0, 1.0), (0.4, 1.0), (2.0, 2.0)])
def test_the_gate_settles_only_what_monitoring_does_not_cover(
        monkeypatch: pytest.MonkeyPatch, monitor: float, expected: float) -> None:
    # Without a healthcheck a container is ready once up for SETTLE_SECONDS; the monitor
    # watches for restarts as well, so a gate is settle + monitor only where monitor is
    # shorter than the settle (else every batch of a rollout would wait a second more).
    monkeypatch.setattr(sys.modules[wait_ready.__module__], "SETTLE_SECONDS", 1.0)
    clock = FakeClock()
    docker = FakeDocker([inspect()])
    assert asyncio.run(health_gate(docker, None, ["web-1"], probe=None,  # type: ignore[arg-type]
                                   monitor=monitor, timeout=5, clock=clock,
                                   sleep=clock.sleep)) is None
    assert clock.now == pytest.approx(expected, abs=0.51)  # to within one poll
    assert clock.now >= max(monitor, 1.0)


def test_a_container_settled_by_its_wait_ready_step_is_not_settled_again(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys.modules[wait_ready.__module__], "SETTLE_SECONDS", 1.0)
    clock = FakeClock()
    docker = FakeDocker([inspect()])
    assert asyncio.run(health_gate(docker, None, ["web-1"], probe=None,  # type: ignore[arg-type]
                                   monitor=0, timeout=5, settled={"web-1"}, clock=clock,
                                   sleep=clock.sleep)) is None
    assert clock.now == 0.0


def test_gate_fails_on_a_restart_during_monitoring() -> None:
    docker = FakeDocker([inspect(health="healthy"),  # wait_ready
                         inspect(health="healthy"),  # the identity to hold
                         inspect(health="healthy"),  # first monitoring poll
                         inspect(health="healthy", started=RESTARTED, restarts=1)],
                        logs="Killed\n")

    async def main() -> None:
        started = time.monotonic()
        assert await gate(docker, monitor=30) == (
            "restarted during monitoring: container running, health healthy; "
            "last log lines: Killed")
        assert time.monotonic() - started < 5  # at once, not after `monitor`

    asyncio.run(main())


def test_gate_fails_when_a_container_stops_during_monitoring() -> None:
    docker = FakeDocker([inspect(health="healthy")] * 3
                        + [inspect("exited", health="healthy", exit_code=137)])

    async def main() -> None:
        failure = await gate(docker, monitor=30)
        assert failure is not None
        assert failure.startswith("did not stay healthy: container exited with code 137")

    asyncio.run(main())


def test_gate_runs_the_probe_from_the_host() -> None:
    responder = Responder(status=200)

    async def main() -> None:
        async with listening(responder) as port, ssh_host() as host:
            probe = Probe(http=f"http://{LOOPBACK}:{port}/health")
            assert await gate(FakeDocker([inspect(health="healthy")]), host.ssh,
                              probe=probe) is None

    asyncio.run(main())
    assert responder.requests == ["GET /health HTTP/1.1"]


def test_gate_fails_with_the_probe_failure() -> None:
    async def main() -> None:
        async with listening(Responder(status=503, body=b"down")) as port, \
                ssh_host() as host:
            url = f"http://{LOOPBACK}:{port}/health"
            failure = await gate(FakeDocker([inspect(health="healthy")]), host.ssh,
                                 probe=Probe(http=url))
            assert failure == f"probe {url} answered 503, expected 200: down"

    asyncio.run(main())


def test_a_refused_probe_fails_the_gate_at_once() -> None:
    async def main() -> None:
        async with ssh_host(forwarding=False) as host:
            started = time.monotonic()
            failure = await gate(FakeDocker([inspect()]), host.ssh, probe=Probe(tcp=8080),
                                 monitor=30)
            assert failure is not None and failure.startswith(f"probe tcp:8080 {IMPOSSIBLE}")
            assert time.monotonic() - started < 5

    asyncio.run(main())


# -- probes the host makes itself, where sshd refuses forwarding ----------------------------

TOOLS = "/usr/bin:/bin"


def test_a_host_refusing_forwarding_fetches_the_probe_itself() -> None:
    async def main() -> None:
        async with listening(Responder(status=200)) as up, \
                listening(Responder(status=503, body=b"down")) as down, \
                ssh_host(forwarding=False, commands_path=TOOLS) as host:
            assert await run_probe(host.ssh, Probe(http=f"http://{LOOPBACK}:{up}/h"),
                                   timeout=3) is None
            url = f"http://{LOOPBACK}:{down}/h"
            failure = await run_probe(host.ssh, Probe(http=url), timeout=3)
            assert failure == (f"probe {url} answered 503, expected 200 (run by the host: "
                               "its sshd refuses TCP forwarding)")
            closed = f"http://{LOOPBACK}:{closed_port()}/h"
            failure = await run_probe(host.ssh, Probe(http=closed), timeout=3)
            assert failure is not None and failure.startswith(f"probe {closed} failed (run by")

    asyncio.run(main())


def test_a_host_refusing_forwarding_checks_a_tcp_port_itself() -> None:
    async def main() -> None:
        async with listening(accept_and_close) as port, \
                ssh_host(forwarding=False, commands_path=TOOLS) as host:
            assert await run_probe(host.ssh, Probe(tcp=port), timeout=3) is None
            failure = await run_probe(host.ssh, Probe(tcp=closed_port()), timeout=3)
            assert failure is not None and "(run by the host" in failure

    asyncio.run(main())


def test_a_host_without_the_tools_fails_the_probe_naming_the_setting() -> None:
    async def main() -> None:
        async with ssh_host(forwarding=False, commands_path="/nonexistent") as host:
            url = f"http://{LOOPBACK}:{closed_port()}/h"
            failure = await run_probe(host.ssh, Probe(http=url), timeout=3)
            assert failure == (f"probe {url} {IMPOSSIBLE}; the host could not run it either: "
                               "neither curl nor wget is installed")

    asyncio.run(main())
