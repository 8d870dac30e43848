"""Health, judged from what a host reports (pure): is a container ready, has it failed, has
it restarted, and why is it not healthy. The polling and the probes are in
fleet.engine.health; the clock is passed in, so every judgement here is testable at once."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from fleet.core.dependencies import COMPLETED, HEALTHY, STARTED

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


NOT_DONE = "did not complete successfully"  # the container's state and logs follow


def _completed(state: Mapping[str, Any]) -> Verdict:
    """A one-shot job's run: exited with code 0 passes, another exit code or a dead
    container fails; anything else is still to come."""
    if state.get("Status") == "exited":
        return PASSED if state.get("ExitCode") == 0 else failed(NOT_DONE)
    return failed(NOT_DONE) if state.get("Status") == "dead" else PENDING


@dataclass
class ExitWatch:
    """Until a one-shot job is done: exited with code 0 within the timeout."""

    started: float
    timeout: float

    def observe(self, now: float, data: Mapping[str, Any]) -> Verdict:
        verdict = _completed(data.get("State") or {})
        if not verdict.done and now - self.started > self.timeout:
            return failed(f"still running after {self.timeout:g}s")
        return verdict


def condition_met(condition: str, state: Mapping[str, Any], *, job: bool = False) -> Verdict:
    """Whether a dependency's container meets a dependent's condition now: service_started
    running (for a job, also exited with code 0: it ran), service_healthy healthy,
    service_completed_successfully exited with code 0. A state that can't turn into the
    condition by waiting fails at once (exited, dead, unhealthy, no healthcheck)."""
    status = state.get("Status")
    health = (state.get("Health") or {}).get("Status")
    if condition == COMPLETED or (job and condition == STARTED and status == "exited"):
        return _completed(state)
    if status in ("exited", "dead"):
        return failed("is not running")
    if condition == HEALTHY:
        if health == "healthy":
            return PASSED
        if health == "unhealthy":
            return failed("is not healthy")
        if status == "running" and health in (None, "none"):
            return failed("has no healthcheck, so it can never be healthy")
        return PENDING
    return PASSED if status == "running" else PENDING


@dataclass
class ConditionWatch:
    """Until a dependency's containers on a host meet a condition, within the dependency's
    update timeout."""

    started: float
    timeout: float
    condition: str
    job: bool = False

    def observe(self, now: float, data: Mapping[str, Any]) -> Verdict:
        verdict = condition_met(self.condition, data.get("State") or {}, job=self.job)
        if verdict.done:
            return verdict
        if now - self.started > self.timeout:
            word = {STARTED: "running", HEALTHY: "healthy",
                    COMPLETED: "done"}.get(self.condition, self.condition)
            return failed(f"is not {word} after {self.timeout:g}s")
        return PENDING
