"""`fleet prune` end to end: old revisions' images go, the last N stay (rollback needs
them), an image a foreign container uses stays, the project's stopped leftovers go, and
nothing fleet did not pull for the project is touched."""

from __future__ import annotations

import subprocess
from pathlib import Path

from e2e_helpers import docker, fleet, fleet_json, write_playbook

from fleet.lab import Lab, lab_exec
from fleet.lab.images import ImageSpec, seed_image

PROJECT = "e2eprune"
TAGS = ("p1", "p2", "p3", "p4")


def playbook(lab: Lab, path: Path, tag: str) -> Path:
    services = {"app": {"image": f"{lab.registry}/demo/worker:{tag}", "hosts": lab.hosts[0].name}}
    return write_playbook(path, PROJECT, lab.inventory_path, services,
                          update={"monitor": "0s"})


def has_image(lab: Lab, host: str, reference: str) -> bool:
    found = lab_exec(lab, host, ["docker", "image", "inspect", reference], check=False)
    return isinstance(found, subprocess.CompletedProcess) and found.returncode == 0


def test_prune_keeps_what_rollback_and_others_need(lab: Lab, tmp_path: Path) -> None:
    host = lab.hosts[0].name
    worker = f"{lab.registry}/demo/worker"
    for tag in TAGS:
        seed_image(lab.registry, ImageSpec("demo/worker", tag, "worker"))
    try:
        for tag in TAGS:  # four revisions of app
            fleet("apply", "--yes", str(playbook(lab, tmp_path / f"{tag}.yml", tag)), check_rc=0)
        current = tmp_path / "p4.yml"
        # Not fleet's: a foreign container made from the oldest revision's image, and an
        # image pulled by hand. Fleet's leftover: a stopped container of a removed service.
        docker(lab, host, "create", "--name", "e2eprune-foreign", f"{worker}:p1")
        docker(lab, host, "pull", f"{lab.registry}/demo/web:v1")
        docker(lab, host, "create", "--name", f"{PROJECT}-old-1", "--label",
               f"fleet.project={PROJECT}", "--label", "fleet.service=old", "--label",
               "fleet.replica=1", f"{worker}:p4")

        # fleet pulls by digest: each revision is on the host as worker@<digest>.
        history = fleet_json("history", str(current), "--service", "app", check_rc=0)
        [entries] = [h["entries"] for h in history["hosts"] if h["host"] == host]
        by_tag = {e["image"].rsplit(":", 1)[1]: f"{worker}@{e['digest']}" for e in entries}
        assert set(by_tag) == set(TAGS)

        preview = fleet_json("prune", str(current), "--keep", "2", "--dry-run", check_rc=2)
        [mine] = [h for h in preview["hosts"] if h["host"] == host]
        assert [(i["reference"], i["revision"]) for i in mine["images"]] == [(by_tag["p2"], 2)]
        assert [c["name"] for c in mine["containers"]] == [f"{PROJECT}-old-1"]
        assert all(not h["images"] and not h["containers"]
                   for h in preview["hosts"] if h["host"] != host)
        assert has_image(lab, host, by_tag["p2"])  # a dry run changes nothing

        text = fleet("prune", str(current), "--keep", "2", "--yes", check_rc=0).stdout
        assert f"{host}: remove image {by_tag['p2']}" in text
        assert not has_image(lab, host, by_tag["p2"])
        for kept in ("p1", "p3", "p4"):  # p1: the foreign container's; p3, p4: the last two
            assert has_image(lab, host, by_tag[kept]), kept
        assert has_image(lab, host, f"{lab.registry}/demo/web:v1")
        names = docker(lab, host, "ps", "-a", "--format", "{{.Names}}").split()
        assert "e2eprune-foreign" in names and f"{PROJECT}-old-1" not in names
        fleet("check", str(current), check_rc=0)
        fleet("prune", str(current), "--keep", "2", "--dry-run", check_rc=0)  # nothing left
    finally:
        lab_exec(lab, host, ["docker", "rm", "-f", "e2eprune-foreign", f"{PROJECT}-old-1"],
                 check=False)
        empty = write_playbook(tmp_path / "empty.yml", PROJECT, lab.inventory_path, {})
        fleet("apply", "--yes", str(empty))
