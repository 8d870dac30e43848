"""Health, judged from what a host reports (pure): is a container ready, has it failed, has
it restarted, and why is it not healthy. The polling and the probes are in
fleet.engine.health; the clock is passed in, so every judgement here is testable at once."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

SETTLE_SECONDS = 1.0


def readiness(state: Mapping[str, Any]) -> tuple[bool, bool]:
    """(ready, failed) for a container's State."""
    health = (state.get("Health") or {}).get("Status")
    ready = state.get("Status") == "running" and health in (None, "none", "healthy")
    failed = state.get("Status") in ("exited", "dead") or health == "unhealthy"
    return ready, failed


def run_identity(data: Mapping[str, Any]) -> tuple[Any, Any]:
    """Changes whenever the container restarts (a crash loop under a restart policy can
    look "running" at every poll)."""
    return (data.get("State") or {}).get("StartedAt"), data.get("RestartCount")


def describe(state: Mapping[str, Any], log_lines: Sequence[str] = ()) -> str:
    """Why a container is not healthy: its state, the last health check's output, and its
    last log lines (the first things an operator would look at)."""
    reason = f"container {state.get('Status')}"
    if state.get("Status") == "exited":
        reason += f" with code {state.get('ExitCode')}"
    health = state.get("Health") or {}
    if isinstance(health, dict) and health.get("Status"):
        reason += f", health {health['Status']}"
        log = health.get("Log") or []
        if log and isinstance(log[-1], dict):
            last = log[-1]
            output = str(last.get("Output", "")).strip().replace("\n", " ")[:200]
            reason += f" (last check exit {last.get('ExitCode')}: {output})"
    tail = list(log_lines)[-5:]
    if tail:
        reason += "; last log lines: " + " | ".join(tail)
    return reason


@dataclass(frozen=True)
class Verdict:
    done: bool  # judged: passed, or failed
    passed: bool = False
    failure: str = ""  # a prefix saying why (the container's state and logs follow)


PENDING = Verdict(False)
PASSED = Verdict(True, passed=True)


def failed(why: str = "") -> Verdict:
    return Verdict(True, failure=why)


@dataclass
class ReadyWatch:
    """Until a container is ready: running and healthy if it has a healthcheck; without
    one, running for SETTLE_SECONDS without a restart (a process that dies right after
    starting must not pass)."""

    started: float  # the clock when the wait began
    timeout: float
    settle: float = SETTLE_SECONDS
    _settled_since: float | None = None
    _identity: tuple[Any, Any] | None = None

    def observe(self, now: float, data: Mapping[str, Any]) -> Verdict:
        state = data.get("State") or {}
        ready, broken = readiness(state)
        if ready and state.get("Health"):
            return PASSED
        if ready:
            if self._identity is not None and run_identity(data) != self._identity:
                return failed("restarted while starting")
            self._identity = run_identity(data)
            self._settled_since = self._settled_since if self._settled_since is not None \
                else now
            if now - self._settled_since >= self.settle:
                return PASSED
        if broken:
            return failed()
        if now - self.started > self.timeout:
            return failed(f"not ready after {self.timeout:g}s")
        return PENDING


@dataclass
class MonitorWatch:
    """After ready: every container must stay ready, without a restart, for `monitor`
    seconds."""

    until: float
    identities: dict[str, tuple[Any, Any]] = field(default_factory=dict)

    def observe(self, container: str, data: Mapping[str, Any]) -> Verdict:
        state = data.get("State") or {}
        if not readiness(state)[0]:
            return failed("did not stay healthy")
        if run_identity(data) != self.identities.get(container, run_identity(data)):
            return failed("restarted during monitoring")
        return PENDING

    def over(self, now: float) -> bool:
        return now >= self.until
