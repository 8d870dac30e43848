"""Images delivered from the controller over SSH, without a registry (issue 12, first step):
only the layers a host lacks move, the host checks them, and a failed upload leaves nothing.

Real sshd and dockerd on lab hosts; the images exist only as docker-archive files on the
controller (never pushed to the lab registry).
"""

from __future__ import annotations

import asyncio
import json
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml
from e2e_helpers import docker, fleet, fleet_json, write_playbook

from fleet.config.inventory import Host, load_inventory
from fleet.core.layers import first_missing_layer
from fleet.docker.client import DockerClient
from fleet.engine.delivery import VerifiedLayers, deliver_image, host_layer_chains
from fleet.errors import DockerError, DockerNotFoundError
from fleet.images.archive import ArchiveError, read_archive, verify_layers
from fleet.images.upload import upload_stream
from fleet.lab import Lab, lab_exec
from fleet.lab.daemons import docker_socket
from fleet.lab.hosts import host_dir
from fleet.lab.images import (
    SEED_REGISTRY,
    ImageSpec,
    app_layer,
    base_layer,
    file_layer,
    registry_layer,
    sha256_digest,
    write_docker_archive,
)
from fleet.lab.state import LabHost
from fleet.transport.ssh import HostConnection

pytestmark = pytest.mark.lab
T = TypeVar("T")
SPEC = ImageSpec("ctl/web", "v1", "web")
TAG_V1, TAG_V2 = "fleet-e2e-delivery/web:v1", "fleet-e2e-delivery/web:v2"


@pytest.fixture(scope="module", autouse=True)
def clean_images(lab: Lab) -> Iterator[None]:
    """Every image this module made, tagged or not, goes from every host at the end (they
    all carry the title label of SPEC's or the tests' repositories)."""
    yield
    for host in lab.hosts:
        found = docker(lab, host.name, "images", "-aq", "--no-trunc", "--filter",
                       "label=org.opencontainers.image.title")
        for image in dict.fromkeys(found.split()):
            title = lab_exec(lab, host.name, [  # gone already, with a child removed before
                "docker", "image", "inspect", "-f",
                '{{index .Config.Labels "org.opencontainers.image.title"}}', image]).stdout
            if title.strip() in ("ctl/web", "fleet-e2e-delivery/web"):
                lab_exec(lab, host.name, ["docker", "rmi", "-f", image])


def forget(lab: Lab, hosts: list[str], *image_ids: str) -> None:
    """The images gone from these hosts, whatever held them before (a crashed earlier run):
    what moves is then what a host without them needs."""
    for host in hosts:
        for image_id in image_ids:
            lab_exec(lab, host, ["docker", "rmi", "-f", image_id])


@pytest.fixture(scope="module")
def target(lab: Lab) -> Host:
    return list(load_inventory([str(lab.inventory_path)]).hosts)[-1]


def lacking(target: Host, archive: Path) -> int:
    """How many of the archive's layers the host lacks now (what a delivery must send)."""
    image = read_archive(archive)

    async def count(client: DockerClient) -> int:
        try:
            await client.inspect_image(image.image_id)
            return 0
        except DockerNotFoundError:
            first = first_missing_layer(image.diff_ids, await host_layer_chains(client))
            return len(set(image.diff_ids[first:]))
    return on_host(target, count)


def on_host(target: Host, use: Callable[[DockerClient], Awaitable[T]]) -> T:
    async def main() -> T:
        async with await HostConnection.open(target) as host:
            client = DockerClient.over_ssh(host, timeout=60)
            try:
                return await use(client)
            finally:
                await client.aclose()
    return asyncio.run(main())


def test_only_the_layers_a_host_lacks_move(lab: Lab, target: Host, tmp_path: Path) -> None:
    extra = file_layer({"www/extra.txt": b"only in v2\n" * 100})
    v1, v2 = tmp_path / "v1.tar", tmp_path / "v2.tar"
    id1 = write_docker_archive(v1, SPEC, TAG_V1, [base_layer(), app_layer(SPEC)])
    id2 = write_docker_archive(v2, SPEC, TAG_V2, [base_layer(), app_layer(SPEC), extra])
    forget(lab, [target.name], id2, id1)
    # A fresh host lacks both of v1's layers; one where an earlier run left them, fewer.
    expected = lacking(target, v1)
    verified = VerifiedLayers()

    async def scenario(client: DockerClient) -> list[Any]:
        first = await deliver_image(client, read_archive(v1), tags=(TAG_V1,), verified=verified)
        second = await deliver_image(client, read_archive(v2), tags=(TAG_V2,),
                                     verified=verified)
        again = await deliver_image(client, read_archive(v2), verified=verified)
        tagged = await client.inspect_image(TAG_V2)
        return [first, second, again, tagged]

    first, second, again, tagged = on_host(target, scenario)
    assert (first.image_id, second.image_id, tagged["Id"]) == (id1, id2, id2)
    base_bytes = len(base_layer())
    # v1: both layers (busybox is ~1-2 MiB); v2 on top of it: only the new layer.
    assert first.layers_sent == expected
    assert first.bytes_sent > base_bytes or expected < 2
    assert second.layers_sent == 1 and second.bytes_sent < len(extra) + 8 * 1024
    assert again.layers_sent == 0 and again.bytes_sent == 0  # present: nothing moves
    assert tagged["RootFS"]["Layers"][-1] == sha256_digest(extra)


def test_a_corrupt_archive_is_refused_before_any_byte_is_sent(target: Host,
                                                              tmp_path: Path) -> None:
    good = file_layer({"www/corrupt.txt": b"a" * 4096})
    path = tmp_path / "bad.tar"
    image_id = write_docker_archive(path, SPEC, "fleet-e2e-delivery/web:bad",
                                    [base_layer(), app_layer(SPEC), good])
    data = path.read_bytes()
    path.write_bytes(data.replace(b"a" * 4096, b"b" * 4096))  # same size, other bytes
    image = read_archive(path)
    with pytest.raises(ArchiveError, match=r"layer 3 .* is corrupt"):
        verify_layers(image)

    async def scenario(client: DockerClient) -> None:
        with pytest.raises(ArchiveError, match="corrupt"):
            await deliver_image(client, image)
        with pytest.raises(DockerNotFoundError):
            await client.inspect_image(image_id)

    on_host(target, scenario)


def test_an_upload_cut_midway_leaves_no_image_and_the_host_usable(target: Host,
                                                                  tmp_path: Path) -> None:
    layer = file_layer({"www/big.bin": bytes(range(256)) * 8192})  # 2 MiB
    path = tmp_path / "cut.tar"
    image_id = write_docker_archive(path, SPEC, "fleet-e2e-delivery/web:cut",
                                    [base_layer(), app_layer(SPEC), layer])
    image = read_archive(path)

    async def cut_after(limit: int) -> AsyncIterator[bytes]:
        sent = 0
        async for chunk in upload_stream(image, 0):
            yield chunk
            sent += len(chunk)
            if sent > limit:
                raise ArchiveError(path, "the controller's disk went away")

    async def scenario(client: DockerClient) -> None:
        with pytest.raises((ArchiveError, DockerError)):
            await client.load_image(cut_after(len(base_layer()) + 100_000))
        with pytest.raises(DockerNotFoundError):
            await client.inspect_image(image_id)
        assert await client.list_images() is not None  # the connection still serves

    on_host(target, scenario)


# -- through the CLI: image_source in a playbook ----------------------------------------------

PROJECT = "e2edeliver"
PORT = "18093"
QUICK = {"batch": "100%", "monitor": "0s"}  # the rollout policy is not what is tested here


def web_service(tag: str, archive: str) -> dict[str, Any]:
    return {"image": f"fleet-e2e-delivery/web:{tag}", "image_source": {"archive": archive},
            "ports": [f"{PORT}:8080"], "hosts": "cloud=aws",
            "environment": {"HOST_NAME": "{{ host.name }}"}, "update": QUICK}


@pytest.fixture()
def project_dir(lab: Lab, tmp_path: Path) -> Iterator[Path]:
    yield tmp_path
    empty = write_playbook(tmp_path / "empty.yml", PROJECT, lab.inventory_path, {})
    fleet("apply", "--yes", str(empty))


def loaded(result: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    return {row["host"]: row["images_loaded"] for row in result["hosts"]}


def test_apply_delivers_from_an_archive_and_check_follows_it(lab: Lab,
                                                             project_dir: Path) -> None:
    aws = [h for h in lab.hosts if h.labels.get("cloud") == "aws"]
    assert aws
    spec_v1, spec_v2 = ImageSpec("fleet-e2e-delivery/web", "v1", "web"), \
        ImageSpec("fleet-e2e-delivery/web", "v2", "web")
    id1 = write_docker_archive(project_dir / "web-v1.tar", spec_v1, "fleet-e2e-delivery/web:v1",
                               [base_layer(), app_layer(spec_v1)])
    forget(lab, [h.name for h in aws], id1)
    targets = {t.name: t for t in load_inventory([str(lab.inventory_path)]).hosts}
    expected = {h.name: lacking(targets[h.name], project_dir / "web-v1.tar") for h in aws}
    playbook = write_playbook(project_dir / "deliver.yml", PROJECT, lab.inventory_path,
                              {"web": web_service("v1", "web-v1.tar")})
    plan = fleet("plan", str(playbook), check_rc=2).stdout
    assert "load fleet-e2e-delivery/web:v1" in plan and "from the controller" in plan

    first = fleet_json("apply", "--yes", str(playbook), check_rc=0)
    assert first["converged"] is True
    for host in aws:
        # A host that already held v1 (an earlier run's, listed) gets no load at all.
        sent_layers = [d["layers_sent"] for d in loaded(first)[host.name]
                       if d["image_id"] == id1]
        assert sum(sent_layers) == expected[host.name]
        inspect = json.loads(docker(lab, host.name, "inspect", f"{PROJECT}-web-1"))[0]
        assert inspect["Image"] == id1
        with urllib.request.urlopen(f"http://{host.address}:{PORT}/", timeout=5) as answer:
            assert answer.read().strip() == b"v1"
    fleet("check", str(playbook), check_rc=0)
    assert fleet_json("apply", "--yes", str(playbook), check_rc=0)["hosts"] == []

    # v2 adds one small layer on top of v1's: only that layer moves.
    extra = file_layer({"www/v2.txt": b"v2\n"})
    layers_v2 = [base_layer(), app_layer(spec_v2), extra]
    id2 = write_docker_archive(project_dir / "web-v2.tar", spec_v2, "fleet-e2e-delivery/web:v2",
                               layers_v2)
    forget(lab, [h.name for h in aws], id2)
    expected = {h.name: lacking(targets[h.name], project_dir / "web-v2.tar") for h in aws}
    playbook = write_playbook(project_dir / "deliver.yml", PROJECT, lab.inventory_path,
                              {"web": web_service("v2", "web-v2.tar")})
    check = fleet_json("check", str(playbook), check_rc=2)
    assert {f["kind"] for f in check["findings"]} == {"image_changed"}
    second = fleet_json("apply", "--yes", str(playbook), check_rc=0)
    for host in aws:
        # v2's app layer differs from v1's (it carries the tag), so two layers move; the
        # 2 MiB busybox base does not.
        sent = [d for d in loaded(second)[host.name] if d["image_id"] == id2]
        assert sum(d["layers_sent"] for d in sent) == expected[host.name] <= 2
        assert sum(d["bytes_sent"] for d in sent) < 64 * 1024
    fleet("check", str(playbook), check_rc=0)

    # Back to v1, which the hosts still hold: made again from its image ID, nothing sent.
    back = fleet_json("rollback", "--yes", "--service", "web", str(playbook), check_rc=0)
    assert all(row["images_loaded"] == [] for row in back["hosts"])
    for host in aws:
        inspect = json.loads(docker(lab, host.name, "inspect", f"{PROJECT}-web-1"))[0]
        assert inspect["Image"] == id1
        assert inspect["Config"]["Labels"]["fleet.image-source"] == "controller"


def test_an_unreadable_archive_stops_before_any_host(lab: Lab, project_dir: Path) -> None:
    playbook = write_playbook(project_dir / "missing.yml", PROJECT, lab.inventory_path,
                              {"web": web_service("v1", "absent.tar")})
    for command in (("plan",), ("check",), ("apply", "--yes")):
        result = fleet(*command, str(playbook), check_rc=1)
        assert "absent.tar" in result.stderr + result.stdout
    for host in lab.hosts:
        assert f"{PROJECT}-web" not in docker(lab, host.name, "ps", "-a", "--format",
                                              "{{.Names}}")


def controller_daemon(lab: Lab, project_dir: Path, monkeypatch: pytest.MonkeyPatch) -> LabHost:
    """The last lab host's dockerd stands in for the controller's Docker daemon (through
    DOCKER_HOST), holding the base image fleet-e2e-delivery/web:v1 to build on."""
    builder = lab.hosts[-1]
    monkeypatch.setenv("DOCKER_HOST", f"unix://{docker_socket(host_dir(lab.dir, builder.name))}")
    monkeypatch.setenv("XDG_CACHE_HOME", str(project_dir / "cache"))
    base = ImageSpec("fleet-e2e-delivery/web", "v1", "web")
    write_docker_archive(project_dir / "base.tar", base, "fleet-e2e-delivery/web:v1",
                         [base_layer(), app_layer(base)])
    docker(lab, builder.name, "load", "-i", str(project_dir / "base.tar"))
    return builder


def builder_of(lab: Lab, builder: LabHost, project_dir: Path, tag: str) -> Callable[[str], str]:
    """build(text): `tag` built on the controller's daemon from fleet-e2e-delivery/web:v1
    with /www/hello.txt holding `text`; the image ID."""
    context = project_dir / "context"
    context.mkdir()
    (context / "Dockerfile").write_text("FROM fleet-e2e-delivery/web:v1\n"
                                        "COPY hello.txt /www/hello.txt\n")

    def build(text: str) -> str:
        (context / "hello.txt").write_text(text)
        docker(lab, builder.name, "build", "-q", "-t", tag, str(context))
        return docker(lab, builder.name, "image", "inspect", "-f", "{{.Id}}", tag).strip()
    return build


def test_apply_delivers_what_the_controllers_daemon_built(
        lab: Lab, project_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`image_source: controller`: the image exists only in the controller's Docker daemon
    (here a lab host's dockerd stands in for it, through DOCKER_HOST), built there."""
    builder, target = controller_daemon(lab, project_dir, monkeypatch), lab.hosts[0]
    build = builder_of(lab, builder, project_dir, "fleet-e2e-delivery/built:v1")

    built = build("built on the controller\n")
    service = {"image": "fleet-e2e-delivery/built:v1", "image_source": "controller",
               "ports": [f"{PORT}:8080"], "hosts": target.name, "update": QUICK}
    playbook = write_playbook(project_dir / "built.yml", PROJECT, lab.inventory_path,
                              {"web": service})
    first = fleet_json("apply", "--yes", str(playbook), check_rc=0)
    [sent] = loaded(first)[target.name]
    # The base and app layers may be there from the tests above: at least the top one moves.
    assert sent["image_id"] == built and sent["layers_total"] == 3 and sent["layers_sent"] >= 1
    with urllib.request.urlopen(f"http://{target.address}:{PORT}/hello.txt",
                                timeout=5) as answer:
        assert answer.read() == b"built on the controller\n"
    fleet("check", str(playbook), check_rc=0)

    rebuilt = build("built again\n")  # the same tag, a new top layer
    check = fleet_json("check", str(playbook), check_rc=2)
    assert [f["kind"] for f in check["findings"]] == ["image_changed"]
    second = fleet_json("apply", "--yes", str(playbook), check_rc=0)
    [sent] = loaded(second)[target.name]
    assert sent["image_id"] == rebuilt and sent["layers_sent"] == 1
    assert sent["bytes_sent"] < 16 * 1024
    fleet("check", str(playbook), check_rc=0)

    # Back to the first build, which the host no longer holds and the controller's daemon
    # has no tag for: sent again from fleet's cache, by the image ID the journal recorded.
    docker(lab, target.name, "rmi", built)
    back = fleet_json("rollback", "--yes", "--service", "web", str(playbook), check_rc=0)
    [sent] = loaded(back)[target.name]
    assert sent["image_id"] == built and sent["layers_sent"] == 1
    inspect = json.loads(docker(lab, target.name, "inspect", f"{PROJECT}-web-1"))[0]
    assert inspect["Image"] == built
    with urllib.request.urlopen(f"http://{target.address}:{PORT}/hello.txt",
                                timeout=5) as answer:
        assert answer.read() == b"built on the controller\n"
    docker(lab, builder.name, "rmi", "-f", "fleet-e2e-delivery/built:v1",
           "fleet-e2e-delivery/web:v1")


def test_an_image_the_controllers_daemon_lacks_is_an_error(
        lab: Lab, project_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    socket = docker_socket(host_dir(lab.dir, lab.hosts[-1].name))
    monkeypatch.setenv("DOCKER_HOST", f"unix://{socket}")
    service = {"image": "fleet-e2e-delivery/never-built:v1", "image_source": "controller"}
    playbook = write_playbook(project_dir / "absent.yml", PROJECT, lab.inventory_path,
                              {"web": service})
    result = fleet("apply", "--yes", str(playbook), check_rc=1)
    assert "the controller's Docker daemon has no such image" in result.stderr


def test_a_compose_build_runs_on_the_controller_and_a_failed_one_touches_no_host(
        lab: Lab, project_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    builder, target = controller_daemon(lab, project_dir, monkeypatch), lab.hosts[0]
    app = project_dir / "app"
    app.mkdir()
    (app / "Dockerfile").write_text("FROM fleet-e2e-delivery/web:v1\nARG GREETING\n"
                                    "RUN echo \"$GREETING\" > /www/hello.txt\n")
    compose = project_dir / "compose.yaml"

    def write_compose(greeting: str) -> None:
        compose.write_text(yaml.safe_dump({
            "name": PROJECT, "x-fleet": {"inventory": str(lab.inventory_path)},
            "services": {"web": {"build": {"context": "./app", "args": {"GREETING": greeting}},
                                 "ports": [f"{PORT}:8080"],
                                 "x-fleet": {"hosts": target.name, "update": QUICK}}}}))

    write_compose("built by compose")
    plan = fleet("plan", str(compose), check_rc=2).stdout
    assert f"load {PROJECT}-web" in plan
    result = fleet_json("apply", "--yes", str(compose), check_rc=0)
    built = docker(lab, builder.name, "image", "inspect", "-f", "{{.Id}}",
                   f"{PROJECT}-web").strip()
    assert loaded(result)[target.name][0]["image_id"] == built
    with urllib.request.urlopen(f"http://{target.address}:{PORT}/hello.txt",
                                timeout=5) as answer:
        assert answer.read() == b"built by compose\n"

    (app / "Dockerfile").write_text("FROM fleet-e2e-delivery/web:v1\nRUN exit 3\n")
    failed = fleet("apply", "--yes", str(compose), check_rc=1)
    assert "the build failed on the controller" in failed.stderr
    monkeypatch.delenv("DOCKER_HOST")  # the docker CLI below asks the target's own daemon
    inspect = json.loads(docker(lab, target.name, "inspect", f"{PROJECT}-web-1"))[0]
    assert inspect["Image"] == built and inspect["State"]["Running"]  # untouched
    docker(lab, builder.name, "rmi", "-f", f"{PROJECT}-web", "fleet-e2e-delivery/web:v1")
    (app / "Dockerfile").write_text("FROM fleet-e2e-delivery/web:v1\n")


SEED_PORT = 18443


def regions_inventory(lab: Lab, path: Path, hosts: list[LabHost]) -> dict[str, list[str]]:
    """The lab's inventory with `hosts` grouped in two regions (first half, second half):
    region -> its hosts by name (the seed is the first)."""
    doc = yaml.safe_load(lab.inventory_path.read_text())
    half = (len(hosts) + 1) // 2
    regions: dict[str, list[str]] = {}
    doc["hosts"] = {}
    for index, host in enumerate(hosts):
        region = "r1" if index < half else "r2"
        regions.setdefault(region, []).append(host.name)
        doc["hosts"][host.name] = {"address": host.address,
                                   "labels": {"cloud": "lab", "region": region}}
    path.write_text(yaml.safe_dump(doc))
    return {region: sorted(names) for region, names in regions.items()}


def test_a_region_seed_carries_each_image_over_the_controller_link_once(
        lab: Lab, project_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    builder = controller_daemon(lab, project_dir, monkeypatch)
    hosts = [h for h in lab.hosts if h.name != builder.name]
    if len(hosts) < 3:
        pytest.skip("needs a lab of 4 hosts or more (two regions, one of two hosts)")
    write_docker_archive(project_dir / "registry.tar", SEED_REGISTRY, "lab/registry:2.8",
                         [base_layer(), registry_layer()])
    docker(lab, builder.name, "load", "-i", str(project_dir / "registry.tar"))
    regions = regions_inventory(lab, project_dir / "regions.yml", hosts)
    build = builder_of(lab, builder, project_dir, "fleet-e2e-delivery/seeded:v1")

    service = {"image": "fleet-e2e-delivery/seeded:v1", "image_source": "controller",
               "ports": [f"{PORT}:8080"], "hosts": "all", "update": QUICK}
    playbook = write_playbook(project_dir / "seeded.yml", PROJECT, project_dir / "regions.yml",
                              {"web": service},
                              seeds={"image": "lab/registry:2.8", "port": SEED_PORT})

    def deliveries(result: dict[str, Any], image_id: str) -> dict[str, dict[str, Any]]:
        found = {host: [d for d in sent if d["image_id"] == image_id]
                 for host, sent in loaded(result).items()}
        return {host: sent[0] for host, sent in found.items() if sent}

    def no_seed_left() -> None:
        for host in hosts:
            names = docker(lab, host.name, "ps", "-a", "--format", "{{.Names}}").split()
            assert "fleet-seed-registry" not in names
            certs = host_dir(lab.dir, host.name) / "etc-docker" / "certs.d"
            assert not any(certs.glob("*")) if certs.exists() else True

    built = build(f"seeded {project_dir.name}\n")  # new to every host
    forget(lab, [h.name for h in hosts], built)
    planned = fleet_json("plan", str(playbook), check_rc=2)["seeds"]
    assert {(s["seed"], tuple(s["hosts"])) for s in planned} == {
        (members[0], tuple(members[1:])) for members in regions.values() if len(members) > 1}
    first = fleet_json("apply", "--yes", str(playbook), check_rc=0)
    sent = deliveries(first, built)
    for members in regions.values():
        seed, *peers = members
        assert "from_seed" not in sent[seed] and sent[seed]["bytes_sent"] > 0
        for peer in peers:  # over the controller's link: nothing; from the seed: the image
            assert sent[peer]["from_seed"] == seed and sent[peer]["bytes_sent"] == 0
    for host in hosts:
        inspect = json.loads(docker(lab, host.name, "inspect", f"{PROJECT}-web-1"))[0]
        assert inspect["Image"] == built
        with urllib.request.urlopen(f"http://{host.address}:{PORT}/hello.txt",
                                    timeout=5) as answer:
            assert answer.read() == f"seeded {project_dir.name}\n".encode()
    no_seed_left()
    fleet("check", str(playbook), check_rc=0)

    # A seed whose registry cannot start (its port taken): its region is sent the image
    # from the controller, as without seeds, and converges all the same.
    seed_r1 = regions["r1"][0]
    docker(lab, seed_r1, "run", "-d", "--name", "e2e-seed-blocker", "-p",
           f"{SEED_PORT}:8080", built)
    try:
        rebuilt = build(f"seeded again {project_dir.name}\n")
        second = fleet_json("apply", "--yes", str(playbook), check_rc=0)
    finally:
        docker(lab, seed_r1, "rm", "-f", "e2e-seed-blocker")
    sent = deliveries(second, rebuilt)
    for peer in regions["r1"]:
        assert "from_seed" not in sent[peer] and 0 < sent[peer]["bytes_sent"] < 16 * 1024
    seed_r2, *peers_r2 = regions["r2"]
    assert all(sent[peer]["from_seed"] == seed_r2 for peer in peers_r2)
    for host in hosts:
        inspect = json.loads(docker(lab, host.name, "inspect", f"{PROJECT}-web-1"))[0]
        assert inspect["Image"] == rebuilt
    no_seed_left()
    fleet("check", str(playbook), check_rc=0)
    docker(lab, builder.name, "rmi", "-f", "fleet-e2e-delivery/seeded:v1", "lab/registry:2.8")
