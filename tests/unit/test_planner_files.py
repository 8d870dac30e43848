"""Files next to the compose file in the plan, as whole plan texts: what a host lacks is
delivered before any container there changes; a changed file is a changed spec, rolled like
any change; a file gone from a host under a running container is drift (`file_missing`),
healed by delivering it again; the executor writes units through the host's file store,
revealing a secret from that host's store only. Observed states come from the simulated
engine (reconcile_sim)."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from pathlib import Path
from textwrap import dedent

import httpx
import pytest
from http_fake import MockTransport
from reconcile_sim import FILES_ROOT, apply_plan

from fleet.cli.rollback_cmd import files_gone
from fleet.config.project import ProjectFiles, read_project
from fleet.config.secrets import digest_secrets
from fleet.core.desired import DesiredState, desired_state
from fleet.core.diff import DiffContext, Finding, Kind, diff_host
from fleet.core.files import Delivered, FilesOnHost, delivered_names
from fleet.core.observed import HostSnapshot
from fleet.core.plan import HostPlan, plan_host
from fleet.core.policy import unprepared_reason
from fleet.core.resource_drift import HostResources
from fleet.core.revisions import recorded_container
from fleet.docker.bodies import create_body
from fleet.docker.client import DockerClient
from fleet.docker.registry_auth import RegistryAuth
from fleet.engine.executor import Executor

HOST = "h1"
IMAGE = "198.18.6.1:5000/demo/web:v1"
DIGEST = "sha256:" + "7" * 64
PINNED = "198.18.6.1:5000/demo/web@sha256:777777777777"
READY = "running, and healthy if it has a healthcheck"
SECRET = "pw-planner-files-7"

COMPOSE = f"""
services:
  web:
    image: {IMAGE}
    volumes: ["./nginx.conf:/etc/nginx/nginx.conf:ro"]
    configs: [site]
    secrets: [db]
configs:
  site: {{content: "hello\\n"}}
secrets:
  db: {{file: ./db.txt}}
"""


def expect(text: str) -> str:
    return dedent(text).strip("\n")


def state_of(tmp_path: Path, text: str = COMPOSE, conf: str = "listen 80;\n") -> DesiredState:
    (tmp_path / "inv.yml").write_text(f"hosts:\n  {HOST}: {{address: 198.18.9.1}}\n")
    (tmp_path / "nginx.conf").write_text(conf)
    (tmp_path / "db.txt").write_text(SECRET)
    (tmp_path / "pb.yml").write_text("project: shop\ninventory: inv.yml\n" + dedent(text))
    return desired_state(read_project(ProjectFiles([str(tmp_path / "pb.yml")]), environ={}))


def findings_of(state: DesiredState, observed: HostSnapshot) -> list[Finding]:
    context = DiffContext(state.project, frozenset(state.services), state.secrets_for(HOST),
                          {IMAGE: DIGEST},
                          HostResources(state.project, state.networks, state.volumes),
                          state.files.get(HOST, {}))
    return diff_host(state.containers[HOST], observed, context)


def plan_of(state: DesiredState, observed: HostSnapshot) -> HostPlan:
    return plan_host(findings_of(state, observed), observed, state.project, {IMAGE: DIGEST},
                     networks=state.networks, volumes=state.volumes,
                     files=state.files.get(HOST, {}))


def empty_host() -> HostSnapshot:
    return HostSnapshot(HOST, (), networks={}, volumes={}, api_version="1.41",
                        files=FilesOnHost(FILES_ROOT, frozenset()))


def converged(state: DesiredState) -> HostSnapshot:
    observed = empty_host()
    done = apply_plan(observed, plan_of(state, observed), state.secrets_for(HOST))
    return dataclasses.replace(done, api_version="1.41",
                               images=frozenset({f"198.18.6.1:5000/demo/web@{DIGEST}"}))


def test_what_a_host_lacks_is_delivered_before_its_containers_change(tmp_path: Path) -> None:
    state = state_of(tmp_path)
    text = plan_of(state, empty_host()).text()
    assert text == expect(f"""
        h1:
          network shop_default: driver bridge
          deliver ./nginx.conf (11 B): needed by shop-web-1
          deliver config 'site' (6 B): needed by shop-web-1
          deliver secret 'db' (mode 0400, uid 0): needed by shop-web-1
          pull {PINNED}: needed by shop-web-1
          create shop-web-1: missing
            1. create shop-web-1 from {PINNED}, revision 1: the new container [undo: remove shop-web-1]
            2. start shop-web-1: start the new container
            3. wait-ready shop-web-1 (up to 120s): {READY} [commit]
        """)  # noqa: E501
    assert SECRET not in text
    delivered = [a for a in plan_of(state, empty_host()).actions if a.kind == "deliver"]
    assert [a.target for a in delivered] == list(state.files[HOST])  # its name, a digest
    assert [s.kind for a in delivered for s in a.steps] == ["deliver"] * 3


def test_once_delivered_nothing_is_planned_and_check_finds_no_drift(tmp_path: Path) -> None:
    state = state_of(tmp_path)
    done = converged(state)
    assert done.files is not None and done.files.names == set(state.files[HOST])
    assert {f.kind for f in findings_of(state, done)} == {Kind.IN_SYNC}
    assert plan_of(state, done).text() == ""


def test_a_changed_file_is_delivered_and_rolls_like_any_change(tmp_path: Path) -> None:
    done = converged(state_of(tmp_path))
    state = state_of(tmp_path, conf="listen 81;\n")
    findings = findings_of(state, done)
    assert [f.kind for f in findings] == [Kind.CONFIG_CHANGED]
    assert [c.field for c in findings[0].changes] == ["volumes"]
    lines = plan_of(state, done).text().splitlines()
    assert lines[:3] == [
        "h1:",
        "  deliver ./nginx.conf (11 B): needed by shop-web-1",
        f"  recreate shop-web-1 (start-first): config_changed: volumes: {_volumes(done)} -> "
        f"{_volumes(state)}"]


def _volumes(where: HostSnapshot | DesiredState) -> str:
    """The volumes as the diff shows them (the spec's list, secrets as digests)."""
    if isinstance(where, HostSnapshot):
        spec = where.containers[0].spec
        assert spec is not None
        return repr(spec["volumes"])
    options = where.containers[HOST][0].options
    return repr(json.loads(json.dumps(digest_secrets(dict(options),
                                                     where.secrets_for(HOST))))["volumes"])


def test_a_file_gone_from_the_host_is_drift_and_only_delivered_again(tmp_path: Path) -> None:
    state = state_of(tmp_path)
    done = converged(state)
    assert done.files is not None
    conf = next(n for n, u in state.files[HOST].items() if u.what == "./nginx.conf")
    gone = dataclasses.replace(done, files=FilesOnHost(done.files.root,
                                                       done.files.names - {conf}))
    findings = findings_of(state, gone)
    assert [(f.kind, f.detail) for f in findings] == [
        (Kind.FILE_MISSING, "not on the host: ./nginx.conf")]
    assert findings[0].as_json()["kind"] == "file_missing"
    assert plan_of(state, gone).text() == expect("""
        h1:
          deliver ./nginx.conf (11 B): needed by shop-web-1
        """)
    healed = apply_plan(gone, plan_of(state, gone), state.secrets_for(HOST))
    assert {f.kind for f in findings_of(state, healed)} == {Kind.IN_SYNC}


def test_a_mounted_file_neither_on_the_host_nor_in_the_playbook_blocks(tmp_path: Path) -> None:
    state = state_of(tmp_path)
    plan = plan_host(findings_of(state, empty_host()), empty_host(), state.project,
                     {IMAGE: DIGEST}, networks=state.networks, files={})
    name = sorted(delivered_names(state.containers[HOST][0].options))[0]
    assert plan.text() == expect(f"""
        h1:
          blocked shop-web-1: it mounts a delivered file that is no longer on this host, and the playbook does not have it (fleet-file:{name[:12]}…)
        """)  # noqa: E501


def test_a_failed_delivery_blocks_the_changes_that_need_it(tmp_path: Path) -> None:
    state = state_of(tmp_path)
    plan = plan_of(state, empty_host())
    deliver = next(a for a in plan.actions if a.kind == "deliver")
    create = [a for a in plan.actions if a.kind == "create"]
    assert unprepared_reason(create, {deliver.target: "cannot deliver: disk full"}) == (
        "cannot deliver: disk full")
    assert unprepared_reason(create, {"other": "x"}) == ""


def test_bodies_mount_delivered_files_from_the_hosts_files_directory(tmp_path: Path) -> None:
    state = state_of(tmp_path, COMPOSE.replace('ro"]', 'ro", "./data:/d"]'))
    web = state.containers[HOST][0]
    with pytest.raises(ValueError, match="files directory is not known"):
        create_body(web, state.secrets_for(HOST), None, 1)
    host_config = create_body(web, state.secrets_for(HOST), None, 1, FILES_ROOT)["HostConfig"]
    names = [v["source"].removeprefix("fleet-file:") for v in web.options["volumes"]]
    # Files through Mounts (which never create a missing source); the data directory through
    # Binds, which do: Docker makes it the first time.
    assert host_config["Binds"] == ["/home/fleet/.fleet/shop/binds/data:/d:rw"]
    assert [(m["Source"], m["Target"], m["ReadOnly"]) for m in host_config["Mounts"]] == [
        (f"{FILES_ROOT}/{names[0]}", "/etc/nginx/nginx.conf", True),
        (f"{FILES_ROOT}/{names[2]}", "/site", True),
        (f"{FILES_ROOT}/{names[3]}", "/run/secrets/db", True)]
    assert SECRET not in json.dumps(host_config)


class FakeStore:
    """A host's file store: what it was asked to write."""

    def __init__(self) -> None:
        self.written: list[Delivered] = []

    async def deliver(self, items: list[Delivered], present: frozenset[str]) -> int:
        self.written += items
        return sum(i.size for i in items)


def _deliver(state: DesiredState, host_store: str) -> tuple[FakeStore, str | None]:
    plan = plan_of(state, empty_host())
    actions = [a for a in plan.actions if a.kind == "deliver"]
    store = FakeStore()
    secrets = state.secrets_for(host_store)

    async def go() -> str | None:
        docker = DockerClient(HOST, MockTransport(lambda r: httpx.Response(500)),
                              api_version="1.41")
        try:
            executor = Executor(docker, secrets, RegistryAuth({}, secrets), "shop",
                                files=store, files_root=FILES_ROOT)  # type: ignore[arg-type]
            return (await executor.run(HOST, actions)).error
        finally:
            await docker.aclose()

    return store, asyncio.run(go())


def test_the_executor_delivers_with_the_secret_revealed_from_the_hosts_store(
        tmp_path: Path) -> None:
    state = state_of(tmp_path)
    store, error = _deliver(state, HOST)
    assert error is None
    assert [(u.what, u.files[""].data) for u in store.written] == [
        ("./nginx.conf", b"listen 80;\n"), ("config 'site'", b"hello\n"),
        ("secret 'db'", SECRET.encode())]
    assert [u.name for u in store.written] == list(state.files[HOST])  # names unchanged


def test_a_host_the_playbook_does_not_give_the_secret_gets_nothing(tmp_path: Path) -> None:
    state = state_of(tmp_path)
    other = dataclasses.replace(state, declared_secrets={HOST: frozenset()})
    store, error = _deliver(other, HOST)
    assert error is not None and "not one the playbook gives this host" in error
    assert [u.what for u in store.written] == ["./nginx.conf", "config 'site'"]


def test_a_recorded_spec_cannot_mount_a_relative_path(tmp_path: Path) -> None:
    state = state_of(tmp_path)
    web = state.containers[HOST][0]
    recorded = json.loads(json.dumps(digest_secrets(dict(web.options), state.secrets)))
    again = recorded_container(recorded, HOST, "shop", "web", 1, state.secrets_for(HOST))
    assert not isinstance(again, str) and again.spec_hash == web.spec_hash
    for bad in ("../../etc/shadow", "fleet-file:../x", "fleet-data:/abs"):
        forged = {**recorded, "volumes": [{**recorded["volumes"][0], "source": bad}]}
        assert recorded_container(forged, HOST, "shop", "web", 1,
                                  state.secrets_for(HOST)) == (
            f"its recorded spec mounts {bad!r}, which is not a path on the host")


def test_a_rollback_to_a_revision_whose_file_is_gone_says_so(tmp_path: Path) -> None:
    before = state_of(tmp_path)
    done = converged(before)
    after = state_of(tmp_path, conf="listen 81;\n")  # the playbook no longer has the old one
    assert done.files is not None
    assert files_gone(before, {HOST: done}, "web") == []  # still on the host
    emptied = dataclasses.replace(done, files=FilesOnHost(done.files.root, frozenset()))
    rolled = dataclasses.replace(after, containers=before.containers)
    gone = files_gone(rolled, {HOST: emptied}, "web")
    assert len(gone) == 1 and gone[0].startswith(
        "h1: shop-web-1's earlier revision mounts a file delivered then (fleet-file:")
    assert gone[0].endswith("that is no longer on the host; apply the playbook of that "
                            "revision instead")
