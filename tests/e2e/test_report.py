"""`fleet report --html` end to end, looked at in a real browser: headless Chromium (the
Debian package) in a network namespace of its own, with only a loopback, so the page can
only show what it holds. The screenshot is kept in FLEET_TEST_ARTIFACTS (default
tests/artifacts/)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from e2e_helpers import docker, fleet, write_playbook

from fleet.lab import Lab

PROJECT = "e2ereport"
ARTIFACTS = Path(os.environ.get("FLEET_TEST_ARTIFACTS",
                                Path(__file__).resolve().parents[1] / "artifacts"))


def chromium() -> str:
    found = shutil.which("chromium")
    if found is None:
        pytest.fail("chromium is not installed (scripts/bootstrap.sh installs it)")
    return found


def browse(page: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Chromium, headless, offline: `unshare -n` gives it a network of its own (no route)."""
    argv = ["unshare", "-n", "--", chromium(), "--headless", "--no-sandbox", "--disable-gpu",
            "--no-first-run", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--disable-default-apps", "--disable-extensions",
            f"--user-data-dir={page.parent / 'chromium-profile'}", *args, page.as_uri()]
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, check=True)


def test_the_report_page_shows_the_fleet_and_its_drift(lab: Lab, tmp_path: Path) -> None:
    hosts = [h.name for h in lab.hosts[:3]]
    path = write_playbook(tmp_path / "pb.yml", PROJECT, lab.inventory_path, {
        "app": {"image": f"{lab.registry}/demo/worker:v1", "hosts": ",".join(hosts)}},
        update={"monitor": "0s", "batch": "100%"})
    page = tmp_path / "report.html"
    try:
        fleet("apply", "--yes", str(path), check_rc=0)
        docker(lab, hosts[0], "stop", "-t", "1", f"{PROJECT}-app-1")
        fleet("report", str(path), "--html", str(page), check_rc=0)

        dom = browse(page, "--dump-dom").stdout
        assert f"fleet report: {PROJECT}" in dom
        for host in lab.hosts:  # every targeted host, under its cloud and region
            assert f'data-host="{host.name}"' in dom
            assert f"{host.labels['cloud']} / {host.labels['region']}" in dom
        row = dom.split(f'data-host="{hosts[0]}"', 1)[1].split("</tr>", 1)[0]
        assert 'data-status="drift"' in row and ">stopped<" in row
        for healthy in hosts[1:]:
            row = dom.split(f'data-host="{healthy}"', 1)[1].split("</tr>", 1)[0]
            assert 'data-status="ok"' in row and "running" in row and "rev 1" in row
        assert ">1 drifted<" in dom and ">2 in sync<" in dom
        assert "<strong>apply</strong> app" in dom  # the rollout on the timeline

        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        shot = ARTIFACTS / "report.png"
        browse(page, f"--screenshot={shot}", "--window-size=1400,1000")
        assert shot.stat().st_size > 10_000
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    finally:
        empty = write_playbook(tmp_path / "empty.yml", PROJECT, lab.inventory_path, {})
        fleet("apply", "--yes", str(empty))
