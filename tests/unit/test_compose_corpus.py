"""The compose corpus: every file under tests/corpus/compose/fields/ is rendered and compared
exactly with the JSON beside it (tests/corpus/compose/README.md says what it holds)."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import pytest

from fleet.config.problems import format_key_path
from fleet.config.project import ProjectFiles, read_project
from fleet.core.desired import DesiredState, ServicePlacement, desired_state
from fleet.docker.bodies import create_body, endpoint_config

CORPUS = Path(__file__).resolve().parents[1] / "corpus" / "compose"
FIELDS = CORPUS / "fields"
FILES = CORPUS / "files"  # a directory per case: the files beside its compose.yaml
FILES_ROOT = "/home/fleet/.fleet/{project}/files"  # a host's delivered files, for the bodies
REGENERATE = os.environ.get("FLEET_REGEN_CORPUS") == "1"
PROFILES = re.compile(r"^# profiles: (.+)$", re.MULTILINE)


def _cases() -> list[Path]:
    found = sorted(FIELDS.glob("*.yml")) + sorted(FIELDS.glob("*/compose.yaml"))
    return [p for p in found if p.parent.name != "shared"] + sorted(FILES.glob("*/compose.yaml"))


def _units(state: DesiredState) -> dict[str, Any]:
    """Per host, the files delivered there: what, and each file's permissions and digest (a
    secret's name in the secret store instead: its digest is keyed)."""
    return {host: [{"name": name, "summary": unit.summary(),
                    "directories": list(unit.directories),
                    "files": {path: {"mode": f"{c.mode:04o}", "uid": c.uid, "gid": c.gid,
                                     **({"secret": c.secret} if c.secret else
                                        {"sha256": c.digest, "size": len(c.data)})}
                              for path, c in sorted(unit.files.items())}}
                   for name, unit in units.items()]
            for host, units in sorted(state.files.items())}


def _placement(placement: ServicePlacement) -> dict[str, Any]:
    return {
        "hosts": list(placement.hosts),
        "replicas": placement.replicas,
        "update": placement.update.model_dump(mode="json", exclude_defaults=True),
        "rollback": (placement.rollback.model_dump(mode="json", exclude_defaults=True)
                     if placement.rollback is not None else None),
        "pull_policy": placement.pull_policy,
        "depends_on": {name: dep.model_dump() for name, dep in
                       placement.refs.depends_on.items()},
        "links": list(placement.refs.links),
        "shares": [list(share) for share in placement.refs.shares],
        **({"image_source": {"kind": placement.image_source.kind,
                             "archive": placement.image_source.archive}}
           if placement.image_source.delivered else {}),
    }


def rendered(path: Path) -> dict[str, Any]:
    found = PROFILES.search(path.read_text())
    profiles = found.group(1).split(",") if found else []
    files = ProjectFiles([str(path)], [str(CORPUS / "inventory.yml")], profiles=profiles)
    state: DesiredState = desired_state(read_project(files, environ={}))
    hosts: dict[str, Any] = {}
    for host, containers in state.containers.items():
        secrets = state.secrets_for(host)
        hosts[host] = {}
        for container in containers:
            body = create_body(container, secrets, None, 1,
                               FILES_ROOT.format(project=state.project))
            body["Labels"] = {k: v for k, v in body["Labels"].items()
                              if not k.startswith("fleet.")}
            hosts[host][container.name] = {"spec": container.redacted_options(),
                                           "create": body,
                                           "endpoints": {
                                               network: endpoint_config(container, network)
                                               for network in container.options["networks"]}}
    return {
        **({"files": _units(state)} if state.files else {}),
        "project": state.project,
        "services": {name: _placement(p) for name, p in sorted(state.services.items())},
        "inactive": sorted(state.inactive_services),
        "hosts": hosts,
        "warnings": [f"{Path(p.file).resolve().relative_to(CORPUS)}:{p.line}:{p.column} "
                     f"{format_key_path(p.path)}: {p.message}" for p in sorted(state.problems)],
    }


@pytest.mark.parametrize("path", _cases(), ids=lambda p: str(p.relative_to(CORPUS)))
def test_compose_file_renders_exactly(path: Path) -> None:
    expected_path = path.with_suffix(".json")
    got = rendered(path)
    if REGENERATE:
        expected_path.write_text(json.dumps(got, indent=2, sort_keys=True) + "\n")
    expected = json.loads(expected_path.read_text())
    assert got == expected


def test_corpus_covers_every_supported_field() -> None:
    """Each field fleet takes from Compose appears in some corpus file."""
    from fleet.config.service import Service

    text = "\n".join(p.read_text() for p in [*FIELDS.rglob("*.y*ml"), *FILES.rglob("*.y*ml")])
    fleet_only = {"hosts", "replicas", "update", "rollback", "link_aliases",
                  "device_requests", "proxy", "image_source"}
    refused = {name for name, info in Service.model_fields.items()
               if info.description and info.description.startswith("Not supported")}
    missing = [name for name in Service.model_fields
               if name not in fleet_only | refused
               and not re.search(rf"^\s*(- )?{name}:", text, re.MULTILINE)]
    # The fields the first playbooks had are covered by tests/unit/test_render.py and
    # test_config_service.py; the Compose ones added since are here.
    older = {"command", "entrypoint", "environment", "env_file", "ports", "volumes", "labels",
             "restart", "healthcheck", "user", "working_dir", "hostname", "networks",
             "network_mode", "cap_add", "cap_drop", "privileged", "read_only", "tmpfs",
             "ulimits", "sysctls", "logging", "cpus", "mem_limit", "mem_reservation",
             "pids_limit", "stop_signal", "stop_grace_period", "extra_hosts", "dns", "devices",
             "init", "shm_size"}
    assert [m for m in missing if m not in older] == []


# The service reference of the Compose specification (05-services.md, compose-spec 170098b).
SPEC_FIELDS = [
    "annotations", "attach", "build", "blkio_config", "cpu_count", "cpu_percent", "cpu_shares",
    "cpu_period", "cpu_quota", "cpu_rt_runtime", "cpu_rt_period", "cpus", "cpuset", "cap_add",
    "cap_drop", "cgroup", "cgroup_parent", "command", "configs", "container_name",
    "credential_spec", "depends_on", "deploy", "develop", "device_cgroup_rules", "devices", "dns",
    "dns_opt", "dns_search", "domainname", "entrypoint", "env_file", "environment", "expose",
    "extends", "external_links", "extra_hosts", "gpus", "group_add", "healthcheck", "hostname",
    "image", "init", "ipc", "isolation", "labels", "label_file", "links", "logging",
    "mac_address", "mem_limit", "mem_reservation", "mem_swappiness", "memswap_limit", "models",
    "network_mode", "networks", "oom_kill_disable", "oom_score_adj", "pid", "pids_limit",
    "platform", "ports", "post_start", "pre_start", "pre_stop", "privileged", "profiles",
    "provider", "pull_policy", "read_only", "restart", "runtime", "scale", "secrets",
    "security_opt", "shm_size", "stdin_open", "stop_grace_period", "stop_signal", "storage_opt",
    "sysctls", "tmpfs", "tty", "ulimits", "use_api_socket", "user", "userns_mode", "uts",
    "volumes", "volumes_from", "working_dir"
]
LOAD_TIME = {"build", "develop", "extends", "profiles"}  # fleet.config.compose_file


def test_every_field_of_the_service_reference_is_handled_and_documented() -> None:
    from fleet.config.service import Service

    unhandled = [f for f in SPEC_FIELDS if f not in Service.model_fields and f not in LOAD_TIME]
    assert unhandled == []
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    table = [line for line in readme.splitlines() if line.startswith("| `")]
    listed = {name for line in table for name in re.findall(r"`([a-z_]+)`", line.split("|")[1])}
    assert [f for f in SPEC_FIELDS if f not in listed] == []


@pytest.mark.parametrize("path", _cases(), ids=lambda p: str(p.relative_to(CORPUS)))
def test_a_recorded_spec_makes_the_same_container_again(path: Path) -> None:
    """What a host records (the fleet.spec label, the journal) is read back by a rollback into
    the same container: every Compose field round-trips with its hash."""
    from fleet.config.secrets import digest_secrets
    from fleet.core.revisions import recorded_container

    found = PROFILES.search(path.read_text())
    files = ProjectFiles([str(path)], [str(CORPUS / "inventory.yml")],
                         profiles=found.group(1).split(",") if found else [])
    state = desired_state(read_project(files, environ={}))
    for host, containers in state.containers.items():
        secrets = state.secrets_for(host)
        for container in containers:
            recorded = json.loads(json.dumps(digest_secrets(dict(container.options), secrets)))
            again = recorded_container(recorded, host, state.project, container.service,
                                       container.replica, secrets)
            assert not isinstance(again, str), again
            assert dict(again.options) == dict(container.options)
            assert again.spec_hash == container.spec_hash and again.name == container.name
