"""`fleet watch`'s pure parts: events between rounds, backoff, the Prometheus textfile."""

from __future__ import annotations

import itertools

from fleet.core.watch import MAX_BACKOFF_ROUNDS, Drift, WatchState, textfile

STOPPED = Drift("h1", "web", 1, "stopped", "exited (137)")


def test_drift_is_told_when_it_appears_and_when_it_resolves() -> None:
    watch = WatchState()
    assert watch.advance({"h1": set(), "h2": set()}, {}) == []
    [appeared] = watch.advance({"h1": {STOPPED}, "h2": set()}, {})
    assert (appeared.event, appeared.host, appeared.kind) == ("drift", "h1", "stopped")
    # The same finding with another detail is the same drift: nothing new to tell.
    assert watch.advance({"h1": {Drift("h1", "web", 1, "stopped", "exited (1)")}}, {}) == []
    [resolved] = watch.advance({"h1": set()}, {})
    assert resolved.event == "resolved"
    assert resolved.line() == "resolved h1 web/1 stopped"


def test_an_unreachable_host_backs_off_and_is_told_once() -> None:
    watch = WatchState()
    looked: list[int] = []
    told = []
    for round_ in range(40):
        due = watch.due(["h1", "h2"])
        if "h2" in due:
            looked.append(round_)
        told += watch.advance({"h1": set()}, {"h2": "timed out"} if "h2" in due else {})
    assert [e.event for e in told] == ["unreachable"]
    gaps = [b - a for a, b in itertools.pairwise(looked)]
    assert gaps[:5] == [1, 2, 4, 8, 16] and max(gaps) == MAX_BACKOFF_ROUNDS
    [back] = watch.advance({"h2": set()}, {})
    assert back.event == "reachable" and watch.due(["h2"]) == ["h2"]


def test_the_textfile_has_a_gauge_per_host_and_service() -> None:
    watch = WatchState()
    watch.advance({"h1": {STOPPED}, 'we"ird': set()}, {"h3": "refused"})
    text = textfile("shop", watch, {"h1": ["web", "db"], 'we"ird': ["web"], "h3": ["web"]}, 1.5)
    assert 'fleet_service_in_sync{project="shop",host="h1",service="web"} 0' in text
    assert 'fleet_service_in_sync{project="shop",host="h1",service="db"} 1' in text
    assert 'fleet_service_in_sync{project="shop",host="we\\"ird",service="web"} 1' in text
    assert 'host="h3",service' not in text  # not observed: no claim either way
    assert 'fleet_host_reachable{project="shop",host="h3"} 0' in text
    assert 'fleet_drift_findings{project="shop",host="h1",kind="stopped"} 1' in text
    assert text.endswith('fleet_watch_last_round_timestamp_seconds{project="shop"} 1.500\n')
