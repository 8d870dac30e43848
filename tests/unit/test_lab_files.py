"""Files the lab writes: inventory, known_hosts, daemon configs, state, demo images."""

from __future__ import annotations

import io
import json
import sys
import tarfile
from pathlib import Path

import pytest
import yaml

from fleet.errors import LabError
from fleet.lab.daemons import render_daemon_json, render_registry_config, render_sshd_config
from fleet.lab.images import DEMO_IMAGES, ImageSpec, app_layer, build_image
from fleet.lab.inventory import render_inventory, render_known_hosts
from fleet.lab.state import HostState, LabHost, LabState, ProcessRecord, state_from_dict
from fleet.lab.system import BUSYBOX, is_static_elf

LAB = Path("/var/lib/fleet-lab")


def test_inventory_in_fleets_format() -> None:
    hosts = [
        LabHost(
            "aws-use1-1",
            "198.18.0.10",
            {"cloud": "aws", "region": "us-east-1", "zone": "us-east-1a"},
            "ns",
        )
    ]
    text = render_inventory(hosts, LAB / "id_ed25519", LAB / "known_hosts", "198.18.0.1:5000")
    assert "    labels: {cloud: aws, region: us-east-1, zone: us-east-1a}\n" in text
    assert yaml.safe_load(text) == {
        "defaults": {
            "user": "root",
            "port": 22,
            "ssh_key": "/var/lib/fleet-lab/id_ed25519",
            "known_hosts": "/var/lib/fleet-lab/known_hosts",
            "host_key_checking": "strict",
        },
        "hosts": {
            "aws-use1-1": {
                "address": "198.18.0.10",
                "labels": {"cloud": "aws", "region": "us-east-1", "zone": "us-east-1a"},
            }
        },
        "vars": {"registry": "198.18.0.1:5000"},
    }


def test_known_hosts_lines_drop_the_key_comment() -> None:
    text = render_known_hosts([("198.18.0.10", "ssh-ed25519 AAAAC3Nz root@aws-use1-1")])
    assert text == "198.18.0.10 ssh-ed25519 AAAAC3Nz\n"


def test_sshd_allows_only_key_logins_and_docker_socket_forwarding() -> None:
    host = HostState("aws-use1-1", "198.18.0.10", {}, "ns", "veth", "/lab/ns/aws-use1-1")
    lines = render_sshd_config(host, Path("/lab/hosts/aws-use1-1"), Path("/lab/keys")).splitlines()
    for line in (
        "ListenAddress 198.18.0.10",
        "PermitRootLogin prohibit-password",
        "PasswordAuthentication no",
        "UsePAM no",
        "AllowStreamLocalForwarding yes",
        "AuthorizedKeysFile /lab/keys",
        "HostKey /lab/hosts/aws-use1-1/ssh_host_ed25519_key",
    ):
        assert line in lines


def test_dockerd_listens_at_the_standard_socket_and_trusts_the_lab_registry() -> None:
    config = json.loads(render_daemon_json("198.18.0.1:5000"))
    assert config["hosts"] == ["unix:///var/run/docker.sock"]
    assert config["insecure-registries"] == ["198.18.0.1:5000"]


def test_registry_listens_on_the_bridge_only() -> None:
    config = yaml.safe_load(render_registry_config("198.18.0.1:5000", Path("/lab/registry/data")))
    assert config["http"]["addr"] == "198.18.0.1:5000"
    assert config["storage"]["filesystem"]["rootdirectory"] == "/lab/registry/data"


def test_state_round_trips() -> None:
    state = LabState(
        dir="/lab",
        lab_id="abc123",
        subnet="198.18.0.0/24",
        bridge="flbabc123",
        bridge_address="198.18.0.1",
        registry="198.18.0.1:5000",
        clouds=["aws"],
        registry_process=ProcessRecord(10, 20),
        hosts=[
            HostState(
                "a",
                "198.18.0.10",
                {"cloud": "aws"},
                "ns",
                "v",
                "/lab/ns/a",
                sshd=ProcessRecord(1, 2),
                dockerd=None,
            )
        ],
    )
    from dataclasses import asdict

    assert state_from_dict({"format": 1, **asdict(state)}) == state


def _files(layer: bytes) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(layer)) as archive:
        return {
            member.name: archive.extractfile(member).read()  # type: ignore[union-attr]
            for member in archive.getmembers()
            if member.isfile()
        }


def test_web_images_serve_their_version_and_v3_has_no_health() -> None:
    v1 = _files(app_layer(ImageSpec("demo/web", "v1", "web")))
    assert v1["www/index.html"] == b"v1"
    assert v1["www/health"] == b"ok\n"
    assert b"trap" in v1["entrypoint.sh"]  # stops promptly on SIGTERM
    v3 = _files(app_layer(ImageSpec("demo/web", "v3", "web", healthy=False)))
    assert "www/health" not in v3
    worker = _files(app_layer(ImageSpec("demo/worker", "v1", "worker")))
    assert "www/index.html" not in worker
    assert b"trap" in worker["entrypoint.sh"]


needs_busybox = pytest.mark.skipif(not BUSYBOX.exists(), reason="needs busybox-static")


@needs_busybox
def test_images_are_reproducible_and_distinct() -> None:
    first = [build_image(spec) for spec in DEMO_IMAGES]
    second = [build_image(spec) for spec in DEMO_IMAGES]
    assert [i.config.digest for i in first] == [i.config.digest for i in second]
    assert len({i.config.digest for i in first}) == len(DEMO_IMAGES)
    manifest = json.loads(first[0].manifest())
    assert manifest["config"]["digest"] == first[0].config.digest
    assert [layer["digest"] for layer in manifest["layers"]] == [
        blob.digest for blob in first[0].layers
    ]
    config = json.loads(first[0].config.data)
    assert config["config"]["ExposedPorts"] == {"8080/tcp": {}}


@needs_busybox
def test_busybox_static_is_recognised() -> None:
    assert is_static_elf(BUSYBOX)
    assert not is_static_elf(Path(sys.executable).resolve())


def test_sshd_options_replace_drop_and_add_settings() -> None:
    host = HostState("aws-use1-1", "198.18.0.10", {}, "ns", "veth", "/lab/ns/aws-use1-1")
    options = {"allowtcpforwarding": "no", "Subsystem": None, "DisableForwarding": "yes"}
    lines = render_sshd_config(host, Path("/lab/hosts/aws-use1-1"), Path("/lab/keys"),
                               options).splitlines()
    assert "allowtcpforwarding no" in lines and "AllowTcpForwarding yes" not in lines
    assert not [line for line in lines if line.startswith("Subsystem")]
    assert lines[-1] == "DisableForwarding yes"
    assert "AllowStreamLocalForwarding yes" in lines
    with pytest.raises(LabError, match="invalid sshd option"):
        render_sshd_config(host, Path("/h"), Path("/k"), {"Banner": "x\nSubsystem evil /x"})
