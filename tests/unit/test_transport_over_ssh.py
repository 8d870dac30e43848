"""SSH plumbing against a real asyncssh server on loopback (no Docker, no network).

The server accepts direct-streamlocal channels to a unix socket served by a tiny stdlib HTTP
server standing in for dockerd; it also forwards TCP, so it can act as a jump host.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socketserver
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import asyncssh
import pytest

from fleet.config.inventory import Host
from fleet.docker.client import DockerClient
from fleet.errors import ConnectError, DockerError, HostKeyError
from fleet.transport import ConnectionPool, HostConnection


@dataclass
class FakeDockerd:
    """Counts concurrent HTTP connections (one per SSH channel)."""

    socket_path: Path
    open_connections: int = 0
    max_open_connections: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def serve(self) -> socketserver.ThreadingUnixStreamServer:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as dockerd

            def setup(self) -> None:
                super().setup()
                with fake.lock:
                    fake.open_connections += 1
                    fake.max_open_connections = max(fake.max_open_connections,
                                                    fake.open_connections)

            def finish(self) -> None:
                super().finish()
                with fake.lock:
                    fake.open_connections -= 1

            def do_GET(self) -> None:
                if self.path == "/_ping":
                    self.reply(b"OK", "text/plain", {"API-Version": "1.41"})
                elif self.path == "/version":
                    self.reply(json.dumps({"ApiVersion": "1.41"}).encode())
                elif self.path.startswith("/v1.41/containers/json"):
                    time.sleep(0.05)  # long enough for concurrent calls to overlap
                    self.reply(b"[]")
                else:
                    self.send_error(404)

            def reply(self, body: bytes, content_type: str = "application/json",
                      headers: dict[str, str] | None = None) -> None:
                self.send_response(200)
                self.send_header("Content-Type", content_type)
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        class Server(socketserver.ThreadingUnixStreamServer):
            # dockerd listens with the kernel's full backlog; the default 5 would refuse a
            # client's first requests, which all leave at once (no negotiation before them).
            request_queue_size = 128

        server = Server(str(self.socket_path), Handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
        return server


class ForwardingServer(asyncssh.SSHServer):
    def unix_connection_requested(self, dest_path: str) -> bool:
        return True

    def connection_requested(self, dest_host: str, dest_port: int, orig_host: str,
                             orig_port: int) -> bool:
        return True


@dataclass
class Lab:
    tmp: Path
    client_key: Path
    known_hosts: Path
    docker_socket: Path
    fake: FakeDockerd
    host_keys: dict[int, asyncssh.SSHKey] = field(default_factory=dict)

    def target(self, port: int, **changes: Any) -> Host:
        base = Host(name=f"host-{port}", address="127.0.0.1", port=port, user="fleet",
                    ssh_key=str(self.client_key), known_hosts=str(self.known_hosts),
                    docker_socket=str(self.docker_socket))
        return replace(base, **changes)

    def trust(self, port: int, key: asyncssh.SSHKey | None = None) -> None:
        key_text = (key or self.host_keys[port]).export_public_key().decode().split()
        with self.known_hosts.open("a") as known:
            known.write(f"[127.0.0.1]:{port} {key_text[0]} {key_text[1]}\n")

    @contextlib.asynccontextmanager
    async def sshd(self) -> AsyncIterator[int]:
        host_key = asyncssh.generate_private_key("ssh-ed25519")
        authorized = asyncssh.import_authorized_keys(
            self.client_key.with_suffix(".pub").read_text())
        server = await asyncssh.create_server(
            ForwardingServer, "127.0.0.1", 0, server_host_keys=[host_key],
            authorized_client_keys=authorized, allow_pty=False)
        port = server.sockets[0].getsockname()[1]
        self.host_keys[port] = host_key
        try:
            yield port
        finally:
            server.close()
            await server.wait_closed()


@pytest.fixture
def lab(tmp_path: Path) -> Any:
    key = asyncssh.generate_private_key("ssh-ed25519")
    client_key = tmp_path / "id_ed25519"
    key.write_private_key(client_key)
    key.write_public_key(client_key.with_suffix(".pub"))
    fake = FakeDockerd(tmp_path / "docker.sock")
    server = fake.serve()
    yield Lab(tmp_path, client_key, tmp_path / "known_hosts", fake.socket_path, fake)
    server.shutdown()
    server.server_close()


def test_strict_known_key_connects_and_speaks_http(lab: Lab) -> None:
    async def main() -> None:
        async with lab.sshd() as port:
            lab.trust(port)
            async with await HostConnection.open(lab.target(port)) as host:
                assert await DockerClient.over_ssh(host).api_version() == "1.41"
                assert await DockerClient.over_ssh(host).list_containers() == []

    asyncio.run(main())


def test_strict_unknown_key_is_refused_with_advice(lab: Lab) -> None:
    async def main() -> None:
        async with lab.sshd() as port:
            with pytest.raises(HostKeyError) as caught:
                await HostConnection.open(lab.target(port))
            message = str(caught.value)
            assert f"host-{port}: unknown host key for [127.0.0.1]:{port}" in message
            assert str(lab.known_hosts) in message
            assert "accept-new" in message

    asyncio.run(main())
    assert not lab.known_hosts.exists()  # strict never writes


@pytest.mark.parametrize("checking", ["strict", "accept-new"])
def test_changed_key_is_refused(lab: Lab, checking: str) -> None:
    async def main() -> None:
        async with lab.sshd() as port:
            lab.trust(port, asyncssh.generate_private_key("ssh-ed25519"))
            with pytest.raises(HostKeyError, match="HOST KEY CHANGED") as caught:
                await HostConnection.open(lab.target(port, host_key_checking=checking))
            assert "ssh-keygen -R" in str(caught.value)

    asyncio.run(main())


def test_accept_new_records_once_under_concurrency(lab: Lab) -> None:
    async def main() -> None:
        async with lab.sshd() as port:
            target = lab.target(port, host_key_checking="accept-new")
            hosts = await asyncio.gather(*(HostConnection.open(target) for _ in range(8)))
            await asyncio.gather(*(host.close() for host in hosts))
            # the recorded key is now trusted under strict checking too
            async with await HostConnection.open(lab.target(port)) as host:
                assert await DockerClient.over_ssh(host).api_version() == "1.41"

    asyncio.run(main())
    lines = lab.known_hosts.read_text().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("[127.0.0.1]:")


def test_accept_new_appends_to_existing_file(lab: Lab) -> None:
    lab.known_hosts.write_text("# managed by hand\nother.example ssh-ed25519 AAAA")

    async def main() -> None:
        async with lab.sshd() as port:
            target = lab.target(port, host_key_checking="accept-new")
            async with await HostConnection.open(target):
                pass

    asyncio.run(main())
    lines = lab.known_hosts.read_text().splitlines()
    assert lines[:2] == ["# managed by hand", "other.example ssh-ed25519 AAAA"]
    assert len(lines) == 3


def test_wrong_client_key_is_auth_failure(lab: Lab) -> None:
    other = lab.tmp / "other_key"
    asyncssh.generate_private_key("ssh-ed25519").write_private_key(other)

    async def main() -> None:
        async with lab.sshd() as port:
            lab.trust(port)
            with pytest.raises(ConnectError, match="authentication failed as fleet"):
                await HostConnection.open(lab.target(port, ssh_key=str(other)))

    asyncio.run(main())


def test_silent_server_times_out(lab: Lab) -> None:
    async def main() -> None:
        silent = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
        port = silent.sockets[0].getsockname()[1]
        started = time.monotonic()
        with pytest.raises(ConnectError, match=r"timed out after 0\.5s"):
            await HostConnection.open(lab.target(port), connect_timeout=0.5)
        assert time.monotonic() - started < 2
        silent.close()

    asyncio.run(main())


def test_pool_isolates_failures_and_bounds_channels(lab: Lab) -> None:
    async def main() -> None:
        async with lab.sshd() as port:
            lab.trust(port)
            good = lab.target(port)
            refused = lab.target(1, name="refused")  # nothing listens on port 1
            async with ConnectionPool([good, refused], forks=2) as pool:
                assert set(pool.connected) == {good.name}
                assert isinstance(pool.failed["refused"], ConnectError)
                assert "connection refused" in str(pool.failed["refused"])
                docker = DockerClient.over_ssh(pool.connected[good.name])
                answers = await asyncio.gather(*(docker.list_containers() for _ in range(30)))
                assert answers == [[]] * 30
            assert not pool.connected

    asyncio.run(main())
    assert 1 < lab.fake.max_open_connections <= 8


def test_missing_docker_socket_is_docker_error(lab: Lab) -> None:
    async def main() -> None:
        async with lab.sshd() as port:
            lab.trust(port)
            target = lab.target(port, docker_socket=str(lab.tmp / "nope.sock"))
            async with await HostConnection.open(target) as host:
                with pytest.raises(DockerError, match="cannot talk to the Docker daemon"):
                    await DockerClient.over_ssh(host).api_version()

    asyncio.run(main())


def test_jump_host_is_verified_and_shared(lab: Lab) -> None:
    async def main() -> None:
        async with lab.sshd() as bastion, lab.sshd() as inner:
            lab.trust(inner)
            jump = f"fleet@127.0.0.1:{bastion}"
            targets = [lab.target(inner, name=f"inner-{i}", jump=jump) for i in range(3)]
            async with ConnectionPool(targets) as pool:  # bastion key unknown: refused
                assert not pool.connected
                assert all("via jump host" in str(error) for error in pool.failed.values())
                assert "unknown host key" in str(pool.failed["inner-0"])
            lab.trust(bastion)
            async with ConnectionPool(targets) as pool:
                assert set(pool.connected) == {"inner-0", "inner-1", "inner-2"}
                assert len(pool._jumps) == 1
                docker = DockerClient.over_ssh(pool.connected["inner-2"])
                assert await docker.api_version() == "1.41"

    asyncio.run(main())


def test_ssh_config_is_honoured_and_optional(lab: Lab, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)

    async def main() -> None:
        async with lab.sshd() as port:
            lab.trust(port)
            keyless = lab.target(port, ssh_key=None)
            with pytest.raises(ConnectError, match="authentication failed"):
                await HostConnection.open(keyless)  # no ~/.ssh/config: no key, no crash
            (home / ".ssh" / "config").write_text(
                f"Host 127.0.0.1\n  IdentityFile {lab.client_key}\n")
            async with await HostConnection.open(keyless) as host:
                assert await DockerClient.over_ssh(host).api_version() == "1.41"

    asyncio.run(main())


# -- @revoked keys: refused in every mode, whichever form of the host the line names ---------


def _key_text(key: asyncssh.SSHKey) -> str:
    return " ".join(key.export_public_key().decode().split()[:2])


@pytest.mark.parametrize("checking", ["strict", "accept-new"])
@pytest.mark.parametrize("pattern", ["[127.0.0.1]:{port}", "127.0.0.1", "*", "127.0.0.?",
                                     "[127.0.0.*]:{port}"])
def test_revoked_key_is_refused_off_port_22(lab: Lab, checking: str, pattern: str) -> None:
    async def main() -> None:
        async with lab.sshd() as port:
            revoked = f"@revoked {pattern.format(port=port)} {_key_text(lab.host_keys[port])}\n"
            lab.known_hosts.write_text(revoked)
            with pytest.raises(HostKeyError, match="REVOKED host key") as caught:
                await HostConnection.open(lab.target(port, host_key_checking=checking))
            message = str(caught.value)
            assert f"[127.0.0.1]:{port}" in message
            assert lab.host_keys[port].get_fingerprint("sha256") in message
            assert "whatever host_key_checking says" in message
            assert lab.known_hosts.read_text() == revoked  # accept-new recorded nothing

    asyncio.run(main())


@pytest.mark.parametrize("trusted, revoked", [("[127.0.0.1]:{port}", "127.0.0.1"),
                                              ("127.0.0.1", "[127.0.0.1]:{port}")])
def test_revocation_wins_over_a_trusting_entry_of_the_other_form(
        lab: Lab, trusted: str, revoked: str) -> None:
    async def main() -> None:
        async with lab.sshd() as port:
            key = _key_text(lab.host_keys[port])
            lab.known_hosts.write_text(f"{trusted.format(port=port)} {key}\n"
                                       f"@revoked {revoked.format(port=port)} {key}\n")
            for checking in ("strict", "accept-new"):
                with pytest.raises(HostKeyError, match="REVOKED host key"):
                    await HostConnection.open(lab.target(port, host_key_checking=checking))

    asyncio.run(main())


def test_a_key_revoked_for_another_host_does_not_block(lab: Lab) -> None:
    async def main() -> None:
        async with lab.sshd() as port:
            lab.known_hosts.write_text(
                f"@revoked 198.18.99.1 {_key_text(lab.host_keys[port])}\n")
            target = lab.target(port, host_key_checking="accept-new")
            async with await HostConnection.open(target):
                pass

    asyncio.run(main())
    assert len(lab.known_hosts.read_text().splitlines()) == 2  # the new key was recorded


def _hashed(host: str) -> str:
    """`salt|hash` of a hashed known_hosts entry (ssh-keygen -H)."""
    import base64
    import hashlib
    import hmac
    salt = b"0123456789abcdefghij"
    digest = hmac.new(salt, host.encode(), hashlib.sha1).digest()
    return f"{base64.b64encode(salt).decode()}|{base64.b64encode(digest).decode()}"


def test_known_hosts_lookup_merges_revocations_of_both_forms() -> None:
    from fleet.transport.host_keys import KnownHosts

    one, two = (asyncssh.generate_private_key("ssh-ed25519").convert_to_public()
                for _ in range(2))
    parsed = KnownHosts.parse(f"@revoked [10.0.0.1]:2222 {_key_text(one)}\n"
                              f"@revoked 10.0.0.1 {_key_text(two)}\n"
                              f"10.0.0.1 {_key_text(one)}\n")
    trusted, _, revoked = parsed.match("10.0.0.1", "10.0.0.1", 2222)
    assert trusted == [] and set(revoked) == {one, two}
    trusted, _, revoked = parsed.match("10.0.0.1", "10.0.0.1", None)  # port 22
    assert trusted == [] and set(revoked) == {one, two}  # revoked on one port: on all
    hashed = KnownHosts.parse(f"@revoked |1|{_hashed('[10.0.0.1]:2222')} {_key_text(two)}\n")
    assert hashed.match("10.0.0.1", "10.0.0.1", 2222)[2] == [two]
    assert hashed.match("10.0.0.1", "10.0.0.1", 2223)[2] == []  # a hash hides the port
    assert parsed.match("10.0.0.2", "10.0.0.2", 2222) == ([], [], [])
    assert parsed.match("10.0.0.1", "10.0.0.1", 22) == parsed.match("10.0.0.1", "10.0.0.1",
                                                                      None)


def test_record_host_key_never_records_a_revoked_key(tmp_path: Path) -> None:
    from fleet.transport.host_keys import record_host_key

    key = asyncssh.generate_private_key("ssh-ed25519").convert_to_public()
    path = tmp_path / "known_hosts"
    path.write_text(f"@revoked * {_key_text(key)}\n")
    assert record_host_key(path, "10.0.0.1", 2222, key) == "revoked"
    assert path.read_text() == f"@revoked * {_key_text(key)}\n"
