"""The transport against the real lab: sshd + dockerd per host, a local registry."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

import asyncssh
import pytest
from e2e_helpers import write_playbook

from fleet.config.inventory import Host, load_inventory
from fleet.docker.client import DockerClient
from fleet.errors import ConnectError, DockerError, DockerNotFoundError, HostKeyError
from fleet.lab.state import read_state
from fleet.transport import ConnectionPool, HostConnection

pytestmark = pytest.mark.lab

T = TypeVar("T")


def run(coroutine: Awaitable[T]) -> T:
    async def main() -> T:
        return await coroutine
    return asyncio.run(main())


@pytest.fixture(scope="module")
def targets(lab: Any) -> list[Host]:
    inventory = load_inventory([str(lab.inventory_path)])
    return list(inventory.hosts)


def with_host(target: Host, use: Callable[[DockerClient], Awaitable[T]]) -> T:
    async def main() -> T:
        async with await HostConnection.open(target) as host:
            return await use(DockerClient.over_ssh(host))
    return asyncio.run(main())


def known_hosts_with_wrong_key(target: Host, path: Path) -> None:
    """A known_hosts whose entry for `target` holds some other key."""
    key = asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode().split()
    pattern = target.address if target.port == 22 else f"[{target.address}]:{target.port}"
    path.write_text(f"{pattern} {key[0]} {key[1]}\n")


def test_connects_to_every_host_with_strict_checking(targets: list[Host]) -> None:
    assert all(target.host_key_checking == "strict" for target in targets)

    async def main() -> None:
        async with ConnectionPool(targets) as pool:
            assert pool.failed == {}
            hosts = list(pool.connected.values())
            clients = [DockerClient.over_ssh(host) for host in hosts]
            versions = await asyncio.gather(*(docker.version() for docker in clients))
            assert all(version["ApiVersion"] for version in versions)
            assert {await docker.api_version() for docker in clients} == {"1.41"}

    run(main())


def test_wrong_known_hosts_entry_is_refused(targets: list[Host], tmp_path: Path) -> None:
    known_hosts = tmp_path / "known_hosts"
    known_hosts_with_wrong_key(targets[0], known_hosts)
    target = replace(targets[0], known_hosts=str(known_hosts))
    with pytest.raises(HostKeyError, match="HOST KEY CHANGED") as caught:
        run(HostConnection.open(target))
    assert caught.value.host == target.name
    assert str(known_hosts) in str(caught.value)


def test_strict_refuses_a_host_missing_from_known_hosts(targets: list[Host],
                                                        tmp_path: Path) -> None:
    target = replace(targets[0], known_hosts=str(tmp_path / "empty_known_hosts"))
    with pytest.raises(HostKeyError, match="unknown host key"):
        run(HostConnection.open(target))


def test_accept_new_records_unknown_and_refuses_changed(targets: list[Host],
                                                        tmp_path: Path) -> None:
    recorded = tmp_path / "known_hosts"
    accept_new = replace(targets[0], known_hosts=str(recorded), host_key_checking="accept-new")
    assert with_host(accept_new, DockerClient.api_version) == "1.41"
    entry = recorded.read_text().split()
    lab_entries = Path(targets[0].known_hosts).read_text().split("\n")
    assert any(line.split()[1:3] == entry[1:3] for line in lab_entries if line.strip())
    # the recorded key now passes strict checking; a changed one is refused even in accept-new
    strict = replace(accept_new, host_key_checking="strict")
    assert with_host(strict, DockerClient.api_version) == "1.41"
    known_hosts_with_wrong_key(targets[0], recorded)
    with pytest.raises(HostKeyError, match="HOST KEY CHANGED"):
        run(HostConnection.open(accept_new))


@pytest.mark.parametrize("checking", ["strict", "accept-new"])
def test_a_key_revoked_for_another_port_is_refused_on_port_22(targets: list[Host],
                                                              tmp_path: Path,
                                                              checking: str) -> None:
    target = targets[0]
    lab_line = next(line for line in Path(target.known_hosts or "").read_text().splitlines()
                    if line.split()[0] == target.address)
    known_hosts = tmp_path / "known_hosts"
    revoked = f"@revoked [{target.address}]:2222 {' '.join(lab_line.split()[1:3])}\n"
    known_hosts.write_text(revoked)
    refused = replace(target, known_hosts=str(known_hosts), host_key_checking=checking)
    with pytest.raises(HostKeyError, match="REVOKED host key"):
        run(HostConnection.open(refused))
    assert known_hosts.read_text() == revoked


def test_pull_with_progress_and_resolve_digest(lab: Any, targets: list[Host]) -> None:
    reference = f"{lab.registry}/demo/web:v1"
    events: list[dict[str, Any]] = []

    async def use(docker: DockerClient) -> tuple[str | None, str, dict[str, Any]]:
        resolved = await docker.distribution_inspect(reference)
        pulled = await docker.pull_image(reference, progress=events.append)
        images = await docker.list_images()
        return pulled, resolved, next(i for i in images if reference in (i.get("RepoTags") or []))

    pulled, resolved, image = with_host(targets[0], use)
    assert events and all("status" in event for event in events)
    assert resolved.startswith("sha256:")
    assert pulled in (None, resolved)
    assert f"{lab.registry}/demo/web@{resolved}" in image["RepoDigests"]


def test_pull_of_missing_tag_is_docker_error(lab: Any, targets: list[Host]) -> None:
    with pytest.raises(DockerError) as caught:
        with_host(targets[0], lambda d: d.pull_image(f"{lab.registry}/demo/web:nope"))
    assert caught.value.host == targets[0].name


def test_container_lifecycle(lab: Any, targets: list[Host]) -> None:
    reference = f"{lab.registry}/demo/web:v1"
    name = f"fleet-transport-e2e-{uuid.uuid4().hex[:8]}"
    body = {"Image": reference, "Labels": {"fleet.test": "transport"},
            "HostConfig": {"NetworkMode": "none"}}

    async def use(docker: DockerClient) -> None:
        await docker.pull_image(reference)
        created = await docker.create_container(name, body)
        try:
            await docker.start_container(name)
            await docker.start_container(name)  # already running: still fine
            state = (await docker.inspect_container(created["Id"]))["State"]
            assert state["Running"] is True
            listed = await docker.list_containers(labels={"fleet.test": "transport"})
            assert name in [c["Names"][0].lstrip("/") for c in listed]
            await docker.update_container(name, {"RestartPolicy": {"Name": "unless-stopped"}})
            await docker.rename_container(name, f"{name}-renamed")
            await docker.rename_container(f"{name}-renamed", name)
            await docker.stop_container(name, timeout=1)
            assert (await docker.inspect_container(name))["State"]["Running"] is False
            logs = await docker.container_logs(name, tail=50)
            assert logs.stdout == "web v1: listening on 8080\n" and logs.stderr == ""
            await docker.remove_container(name)
            with pytest.raises(DockerNotFoundError):
                await docker.inspect_container(name)
        finally:
            with contextlib.suppress(DockerNotFoundError):
                await docker.remove_container(name, force=True)

    with_host(targets[0], use)


def test_logs_of_a_running_container(lab: Any, targets: list[Host]) -> None:
    reference = f"{lab.registry}/demo/web:v1"
    name = f"fleet-transport-e2e-{uuid.uuid4().hex[:8]}"
    body = {"Image": reference, "Cmd": ["sh", "-c", "echo to-out; echo to-err >&2; sleep 30"],
            "Entrypoint": [], "HostConfig": {"NetworkMode": "none"}}

    async def use(docker: DockerClient) -> None:
        await docker.pull_image(reference)
        await docker.create_container(name, body)
        try:
            await docker.start_container(name)
            for _ in range(50):
                logs = await docker.container_logs(name, tail=10)
                if logs.stderr:
                    break
                await asyncio.sleep(0.1)
            assert (logs.stdout, logs.stderr) == ("to-out\n", "to-err\n")
            await docker.stop_container(name, timeout=1)
        finally:
            await docker.remove_container(name, force=True)

    with_host(targets[0], use)


def unused_address(targets: list[Host]) -> str:
    """An address in the lab's subnet that no host uses (nothing answers there)."""
    taken = {target.address for target in targets}
    network = ipaddress.ip_network(f"{targets[0].address}/24", strict=False)
    address = next(str(a) for a in reversed(list(network.hosts())) if str(a) not in taken)
    assert ipaddress.ip_address(address) in ipaddress.ip_network("198.18.0.0/15") or (
        ipaddress.ip_address(address).is_loopback)
    return address


def test_unreachable_host_fails_alone_within_timeout(targets: list[Host]) -> None:
    ghost = replace(targets[0], name="ghost", address=unused_address(targets), port=22)

    async def main() -> None:
        started = time.monotonic()
        async with ConnectionPool([*targets, ghost], connect_timeout=3) as pool:
            elapsed = time.monotonic() - started
            assert set(pool.connected) == {target.name for target in targets}
            assert isinstance(pool.failed["ghost"], ConnectError)
            assert not isinstance(pool.failed["ghost"], HostKeyError)
            assert elapsed < 3 + 2
            survivor = DockerClient.over_ssh(pool.connected[targets[-1].name])
            assert await survivor.api_version() == "1.41"

    run(main())


def test_thirty_concurrent_calls_share_one_connection(targets: list[Host]) -> None:
    async def main() -> None:
        async with await HostConnection.open(targets[0]) as host:
            docker = DockerClient.over_ssh(host)
            calls: list[Awaitable[Any]] = []
            for index in range(30):
                calls.append(docker.list_containers() if index % 3 else docker.list_networks())
            results = await asyncio.gather(*calls)
            assert len(results) == 30
            assert all(isinstance(result, list | dict) for result in results)

    run(main())


def test_a_host_whose_docker_hangs_is_cut_off_at_the_host_timeout(lab: Any,
                                                                  tmp_path: Path) -> None:
    """dockerd frozen (SIGSTOP): SSH still answers and the socket still accepts, but no
    Engine API answer comes. `--host-timeout` bounds that host; the others are checked."""
    hosts = lab.hosts[:2]
    playbook = write_playbook(tmp_path / "hang.yml", "e2ehang", lab.inventory_path, {
        "web": {"image": f"{lab.registry}/demo/web:v1",
                "hosts": ",".join(h.name for h in hosts)}})
    state = read_state(lab.dir)
    netns = next(h.netns for h in state.hosts if h.name == hosts[0].name)
    pids = [int(pid) for pid in subprocess.run(["ip", "netns", "pids", netns], check=True,
                                               capture_output=True, text=True).stdout.split()
            if Path(f"/proc/{pid}/comm").read_text().strip() == "dockerd"]
    assert pids
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)
    try:
        started = time.monotonic()
        done = subprocess.run([sys.executable, "-m", "fleet", "check", "--json",
                               "--host-timeout", "3s", str(playbook)],
                              capture_output=True, text=True, timeout=60, check=False)
        elapsed = time.monotonic() - started
    finally:
        for pid in pids:
            os.kill(pid, signal.SIGCONT)
    assert elapsed < 3 + 10, elapsed  # the timeout, imports and the other host's check
    report = json.loads(done.stdout)
    assert {u["host"]: u["error"] for u in report["unreachable"]} == {
        hosts[0].name: "its state could not be read within 3s (--host-timeout)"}
    assert {f["host"] for f in report["findings"]} == {hosts[1].name}


def test_shards_check_the_fleet_in_parts_that_combine_into_the_whole(lab: Any,
                                                                     tmp_path: Path) -> None:
    playbook = write_playbook(tmp_path / "shards.yml", "e2eshard", lab.inventory_path, {
        "web": {"image": f"{lab.registry}/demo/web:v1"}})

    def check(*extra: str) -> tuple[int, str]:
        done = subprocess.run([sys.executable, "-m", "fleet", "check", "--json", *extra,
                               str(playbook)], capture_output=True, text=True, timeout=120,
                              check=False)
        return done.returncode, done.stdout

    whole_code, whole = check()
    parts = []
    for index in (1, 2):
        code, out = check("--shard", f"{index}/2", "--shard-by", "cloud")
        assert code == 2, out
        (tmp_path / f"part{index}.json").write_text(out)
        parts.append({f["host"] for f in json.loads(out)["findings"]})
    assert parts[0] and parts[1] and not parts[0] & parts[1]  # whole clouds, apart
    combined = subprocess.run([sys.executable, "-m", "fleet", "combine",
                               str(tmp_path / "part1.json"), str(tmp_path / "part2.json")],
                              capture_output=True, text=True, timeout=60, check=False)
    assert (combined.returncode, whole_code) == (2, 2)
    merged, expected = json.loads(combined.stdout), json.loads(whole)
    assert merged["hosts_checked"] == expected["hosts_checked"] == len(lab.hosts)
    assert sorted(map(json.dumps, merged["findings"])) == sorted(
        map(json.dumps, expected["findings"]))
