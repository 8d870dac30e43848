"""`fleet report`'s page (pure): cells by cloud and region, drift by kind, rollouts grouped,
and everything a host wrote escaped."""

from __future__ import annotations

from pathlib import Path

from config_support import load, playbook

from fleet.cli.report_cmd import render_html
from fleet.core.diff import Finding, Kind
from fleet.core.journal import JournalEntry
from fleet.core.observed import HostSnapshot, ObservedContainer
from fleet.core.report import build_report

SERVICES = "web: {image: shop/web:1, hosts: web}\ndb: {image: shop/db:1, hosts: db}\n"


def web(state: str = "running") -> ObservedContainer:
    return ObservedContainer("a" * 64, "shop-web-1", state, {
        "fleet.project": "shop", "fleet.service": "web", "fleet.replica": "1",
        "fleet.revision": "2", "fleet.image": "shop/web:1"})


def entry(host_time: str, outcome: str = "ok", release: str = "r1") -> JournalEntry:
    return JournalEntry(command="apply", service="web", replica=1, revision=2,
                        image="shop/web:1", digest="", spec={}, spec_hash="h",
                        outcome=outcome, time=host_time, release=release)  # type: ignore[arg-type]


def test_the_page_groups_hosts_shows_drift_and_escapes_what_hosts_wrote(tmp_path: Path
                                                                       ) -> None:
    state = load(tmp_path, playbook(tmp_path, SERVICES))
    stopped = Finding("web1", "web", 1, Kind.STOPPED, "exited (137) <script>alert(1)</script>")
    report = build_report(
        state, {"web1": HostSnapshot("web1", (web("exited"),)),
                "web2": HostSnapshot("web2", (web(),))},
        {"db1": "timed out"}, {"web1": [stopped], "web2": []},
        {"web1": [entry("2026-12-04T10:00:00Z")],
         "web2": [entry("2026-12-04T10:00:05Z", "failed")]}, "2026-12-04T11:00:00Z")
    assert list(report.groups) == ["aws", "gcp"]
    assert list(report.groups["aws"]) == ["eu-west-1", "us-east-1"]
    assert report.counts == {"ok": 1, "drift": 1, "unreachable": 2}
    [rollout] = report.rollouts
    assert (rollout.hosts, dict(rollout.outcomes), rollout.ok) == (2, {"ok": 1, "failed": 1},
                                                                   False)
    page = render_html(report)
    assert "<script>alert" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert 'data-host="web1"' in page and 'data-status="drift"' in page
    assert "http://" not in page and "https://" not in page  # self-contained
    assert report.as_json()["hosts"][0]["services"]["web"]["status"] in {"ok", "drift"}
