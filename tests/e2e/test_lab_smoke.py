"""The lab behaves like a fleet of real servers: SSH with strict host keys, Docker at the
standard socket, images from the lab registry, published ports reachable from here."""

from __future__ import annotations

import asyncio
import http.client
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import asyncssh
import pytest

from fleet.lab import Lab, LabHost, lab_exec, lab_status

pytestmark = pytest.mark.lab
T = TypeVar("T")


async def docker_api(
    conn: asyncssh.SSHClientConnection, method: str, path: str, body: Any = None
) -> tuple[int, bytes]:
    """One Docker Engine API call through a direct-streamlocal channel to the host's socket."""
    reader, writer = await conn.open_unix_connection("/var/run/docker.sock")
    payload = json.dumps(body).encode() if body is not None else b""
    head = f"{method} {path} HTTP/1.0\r\nHost: docker\r\nContent-Length: {len(payload)}\r\n"
    if body is not None:
        head += "Content-Type: application/json\r\n"
    writer.write(head.encode() + b"\r\n" + payload)
    response = await reader.read()  # HTTP/1.0: the daemon closes the stream after the body
    writer.close()
    status_line, _, rest = response.partition(b"\r\n")
    return int(status_line.split()[1]), rest.partition(b"\r\n\r\n")[2]


def connect(lab: Lab, host: LabHost) -> Any:
    return asyncssh.connect(
        host.address,
        username="root",
        client_keys=[str(lab.ssh_key)],
        known_hosts=str(lab.known_hosts),
        connect_timeout=10,
    )


def on_every_host(
    lab: Lab, work: Callable[[asyncssh.SSHClientConnection, LabHost], Awaitable[T]]
) -> list[T]:
    async def one(host: LabHost) -> T:
        async with connect(lab, host) as conn:
            return await work(conn, host)

    async def main() -> list[T]:
        return list(await asyncio.gather(*(one(host) for host in lab.hosts)))

    return asyncio.run(main())


def http_get(address: str, path: str, port: int = 8080, deadline: float = 10) -> tuple[int, str]:
    """GET from the controller (http.client: no proxy), retrying while the server starts."""
    give_up = time.monotonic() + deadline
    while True:
        connection = http.client.HTTPConnection(address, port, timeout=3)
        try:
            connection.request("GET", path)
            response = connection.getresponse()
            return response.status, response.read().decode()
        except OSError:
            if time.monotonic() > give_up:
                raise
            time.sleep(0.2)
        finally:
            connection.close()


async def run_web(conn: asyncssh.SSHClientConnection, image: str, name: str) -> None:
    status, body = await docker_api(
        conn,
        "POST",
        f"/images/create?fromImage={image.rsplit(':', 1)[0]}&tag={image.rsplit(':', 1)[1]}",
    )
    assert status == 200, body
    assert b'"error"' not in body, body
    await docker_api(conn, "DELETE", f"/containers/{name}?force=true")
    spec = {
        "Image": image,
        "ExposedPorts": {"8080/tcp": {}},
        "HostConfig": {"PortBindings": {"8080/tcp": [{"HostPort": "8080"}]}},
    }
    status, body = await docker_api(conn, "POST", f"/containers/create?name={name}", spec)
    assert status == 201, body
    status, body = await docker_api(conn, "POST", f"/containers/{name}/start")
    assert status == 204, body


def test_status_reports_every_daemon_up(lab: Lab) -> None:
    status = lab_status(lab.dir)
    assert status.registry
    assert [(s.host.name, s.sshd, s.dockerd) for s in status.hosts] == [
        (host.name, True, True) for host in lab.hosts
    ]


def test_every_host_is_its_own_server(lab: Lab) -> None:
    async def identify(conn: asyncssh.SSHClientConnection, host: LabHost) -> tuple[str, str]:
        session = await conn.run("echo $FLEET_LAB_HOST", check=True)
        status, body = await docker_api(conn, "GET", "/info")
        assert status == 200
        return str(session.stdout).strip(), json.loads(body)["ID"]

    found = on_every_host(lab, identify)
    assert [name for name, _ in found] == [host.name for host in lab.hosts]
    assert len({engine_id for _, engine_id in found}) == len(lab.hosts)  # one dockerd each


def test_wrong_host_key_is_refused(lab: Lab, tmp_path: Any) -> None:
    host = lab.hosts[0]
    other = asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode()
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(f"{host.address} {' '.join(other.split()[:2])}\n")

    async def main() -> None:
        async with asyncssh.connect(
            host.address,
            username="root",
            client_keys=[str(lab.ssh_key)],
            known_hosts=str(known_hosts),
            connect_timeout=10,
        ):
            pass

    with pytest.raises(asyncssh.HostKeyNotVerifiable):
        asyncio.run(main())


def test_web_v1_from_the_registry_on_every_host(lab: Lab) -> None:
    async def deploy(conn: asyncssh.SSHClientConnection, host: LabHost) -> None:
        await run_web(conn, f"{lab.registry}/demo/web:v1", "smoke-web")

    async def remove(conn: asyncssh.SSHClientConnection, host: LabHost) -> float:
        started = time.monotonic()
        status, _ = await docker_api(conn, "POST", "/containers/smoke-web/stop?t=10")
        stopped = time.monotonic() - started
        await docker_api(conn, "DELETE", "/containers/smoke-web?force=true")
        assert status == 204
        return stopped

    try:
        on_every_host(lab, deploy)
        for host in lab.hosts:
            assert http_get(host.address, "/") == (200, "v1")
            assert http_get(host.address, "/health") == (200, "ok\n")
        inside = lab_exec(
            lab,
            lab.hosts[0].name,
            ["docker", "exec", "smoke-web", "wget", "-qO-", "http://127.0.0.1:8080/health"],
        )
        assert (inside.returncode, inside.stdout) == (0, "ok\n")
    finally:
        stop_times = on_every_host(lab, remove)
    assert max(stop_times) < 5, "SIGTERM must stop the web image promptly"


def test_v3_is_a_broken_release(lab: Lab) -> None:
    host = lab.hosts[-1]

    async def main() -> None:
        async with connect(lab, host) as conn:
            try:
                await run_web(conn, f"{lab.registry}/demo/web:v3", "smoke-v3")
                assert http_get(host.address, "/") == (200, "v3")
                assert http_get(host.address, "/health")[0] == 404
                probe = await conn.run(
                    "docker exec smoke-v3 wget -qO- http://127.0.0.1:8080/health"
                )
                assert probe.exit_status != 0
            finally:
                await docker_api(conn, "DELETE", "/containers/smoke-v3?force=true")

    asyncio.run(main())


def test_worker_runs_without_ports_and_stops_on_sigterm(lab: Lab) -> None:
    host = lab.hosts[0].name
    image = f"{lab.registry}/demo/worker:v1"
    assert lab_exec(lab, host, ["docker", "pull", "-q", image]).returncode == 0
    started = lab_exec(lab, host, ["docker", "run", "-d", "--name", "smoke-worker", image])
    try:
        assert started.returncode == 0, started.stderr
        state = lab_exec(
            lab, host, ["docker", "inspect", "-f", "{{.State.Running}}", "smoke-worker"]
        )
        assert state.stdout.strip() == "true"
        began = time.monotonic()
        assert lab_exec(lab, host, ["docker", "stop", "smoke-worker"]).returncode == 0
        assert time.monotonic() - began < 5
        code = lab_exec(
            lab, host, ["docker", "inspect", "-f", "{{.State.ExitCode}}", "smoke-worker"]
        )
        assert code.stdout.strip() == "0"
    finally:
        lab_exec(lab, host, ["docker", "rm", "-f", "smoke-worker"])


def test_lab_exec_runs_inside_the_host(lab: Lab) -> None:
    host = lab.hosts[1]
    result = lab_exec(lab, host.name, ["ip", "-4", "-o", "addr", "show", "eth0"], check=True)
    assert f"inet {host.address}/" in result.stdout
    assert lab_exec(lab, host.name, ["test", "-S", "/var/run/docker.sock"]).returncode == 0
