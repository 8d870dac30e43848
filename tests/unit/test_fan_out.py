"""Connecting to many hosts: handshakes bounded apart from --forks, transient failures tried
again with jittered backoff, answers (refusals, bad keys) never retried."""

from __future__ import annotations

import asyncio
import errno
import random
from typing import Any

import asyncssh
import pytest

from fleet.config.inventory import Host
from fleet.errors import ConnectError
from fleet.transport import ssh
from fleet.transport.ssh_errors import transient

real_retry_delay = ssh.retry_delay  # the fixture below makes retries instant


def hosts(count: int) -> list[Host]:
    return [Host(name=f"h{n}", address=f"198.18.9.{n + 2}") for n in range(count)]


class FakeConnection:
    def close(self) -> None:
        pass

    async def wait_closed(self) -> None:
        pass


@pytest.fixture(autouse=True)
def no_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ssh, "retry_delay", lambda attempt, rng=None: 0.0)


def test_handshakes_are_bounded_apart_from_forks(monkeypatch: pytest.MonkeyPatch) -> None:
    shaking = peak = 0

    async def connect(target: Host, **options: Any) -> FakeConnection:
        nonlocal shaking, peak
        shaking += 1
        peak = max(peak, shaking)
        await asyncio.sleep(0.01)
        shaking -= 1
        return FakeConnection()

    monkeypatch.setattr(ssh, "_connect", connect)

    async def main() -> int:
        async with ssh.ConnectionPool(hosts(40), forks=40, handshakes=5) as pool:
            return len(pool.connected)

    assert asyncio.run(main()) == 40
    assert peak == 5


def failing(results: dict[str, list[BaseException]], calls: dict[str, int]) -> Any:
    async def connect(target: Host, **options: Any) -> FakeConnection:
        calls[target.name] = calls.get(target.name, 0) + 1
        pending = results.get(target.name, [])
        if pending:
            cause = pending.pop(0)
            if isinstance(cause, TimeoutError):  # as asyncssh: after the whole timeout
                await asyncio.sleep(options["connect_timeout"])
            raise ConnectError(target.name, str(cause), transient=transient(cause)) from cause
        return FakeConnection()
    return connect


def run_pool(targets: list[Host]) -> ssh.ConnectionPool:
    async def main() -> ssh.ConnectionPool:
        pool = ssh.ConnectionPool(targets, connect_timeout=0.2)
        await pool.open()
        await pool.close()
        return pool
    return asyncio.run(main())


def test_transient_failures_are_tried_again(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: dict[str, int] = {}
    results: dict[str, list[BaseException]] = {
        "h0": [ConnectionResetError(errno.ECONNRESET, "reset")],
        "h1": [asyncssh.ConnectionLost("dropped before the banner")] * 2,
        "h2": [asyncssh.ConnectionLost("dropped")] * 3,
    }
    monkeypatch.setattr(ssh, "_connect", failing(results, calls))
    pool = run_pool(hosts(4))
    assert calls == {"h0": 2, "h1": 3, "h2": 3, "h3": 1}
    assert set(pool.failed) == {"h2"}
    assert pool.failed["h2"].reason.endswith("(after 3 tries)")


def test_answers_are_not_retried_and_retries_stay_within_the_timeout(
        monkeypatch: pytest.MonkeyPatch) -> None:
    calls: dict[str, int] = {}
    results: dict[str, list[BaseException]] = {
        "h0": [ConnectionRefusedError(errno.ECONNREFUSED, "refused")],
        "h1": [asyncssh.PermissionDenied("no key accepted")],
        "h2": [TimeoutError(), TimeoutError(), TimeoutError()],  # its budget runs out
        "h3": [OSError(errno.EHOSTUNREACH, "no route")],
    }
    monkeypatch.setattr(ssh, "_connect", failing(results, calls))
    pool = run_pool(hosts(4))
    assert calls == {"h0": 1, "h1": 1, "h2": 1, "h3": 1}
    assert set(pool.failed) == {"h0", "h1", "h2", "h3"}


def test_backoff_is_jittered_and_capped() -> None:
    rng = random.Random(7)
    delays = [real_retry_delay(attempt, rng) for attempt in (1, 2, 3, 9) for _ in range(50)]
    assert all(0 <= d <= ssh.RETRY_BACKOFF_CAP for d in delays)
    assert len({round(d, 6) for d in delays}) > 100  # not one instant for every host
    assert max(delays[:50]) <= ssh.RETRY_BACKOFF


@pytest.mark.parametrize(("exc", "expected"), [
    (TimeoutError(), True),
    (asyncssh.ConnectionLost("lost"), True),
    (ConnectionResetError(errno.ECONNRESET, "reset"), True),
    (asyncssh.DisconnectError(asyncssh.DISC_TOO_MANY_CONNECTIONS, "too many"), True),
    (ConnectionRefusedError(errno.ECONNREFUSED, "refused"), False),
    (asyncssh.PermissionDenied("denied"), False),
    (asyncssh.HostKeyNotVerifiable("bad key"), False),
    (OSError(errno.ENETUNREACH, "unreachable"), False),
    (ValueError("bad option"), False),
])
def test_what_is_transient(exc: BaseException, expected: bool) -> None:
    assert transient(exc) is expected
