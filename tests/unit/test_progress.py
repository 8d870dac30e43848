"""The live progress view's summary for many hosts (fleet.cli.progress)."""

from __future__ import annotations

from fleet.cli.progress import MAX_ROWS, state_of, summary_lines


def test_messages_map_to_states() -> None:
    assert state_of("web: health gate (2s)") == "health gate"
    assert state_of("web: failed: no answer within 10s") == "failed"
    assert state_of("web: waiting for db (healthy)") == "waiting"
    assert state_of("connected") == "connected"
    assert state_of("web: wave all, replace") == "changing"


def test_a_thousand_hosts_are_a_few_lines() -> None:
    doing = {f"h{i:04}": "web: health gate (2s)" for i in range(1000)}
    doing |= {"h0001": "web: wave all, replace", "h0002": "web: failed: unhealthy"}
    since = {host: float(index) for index, host in enumerate(sorted(doing))}
    finished = {f"h{i:04}" for i in range(500, 1000)} | {"h0002"}
    lines = summary_lines(doing, since, finished, now=1000.0)
    assert lines[0] == "1 failed · 1 changing · 498 health gate · 500 done"
    assert lines[1] == "failed h0002: web: failed: unhealthy"
    assert lines[2:] == [
        "slowest h0000 (1000s): web: health gate (2s)",
        "slowest h0001 (999s): web: wave all, replace",
        "slowest h0003 (997s): web: health gate (2s)",
        "slowest h0004 (996s): web: health gate (2s)",
        "slowest h0005 (995s): web: health gate (2s)"]


def test_failures_beyond_the_row_limit_are_counted() -> None:
    doing = {f"h{i:03}": "web: failed: x" for i in range(MAX_ROWS + 7)}
    lines = summary_lines(doing, {}, set(doing), now=0.0)
    assert lines[0] == f"{MAX_ROWS + 7} failed · 0 done"
    assert lines[-1] == "… and 7 more failed"
