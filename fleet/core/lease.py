"""The lease behind a project's lock on a host: its value, codec and expiry (pure, apart
from reading the clock). Who "we" are, and whether a holder still lives, is
fleet.hoststate.lease's.

Expiry compares the holder's clock (expires_at) with the reader's: controllers are assumed to
keep time within a small fraction of the TTL, as NTP does.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

DEFAULT_TTL = 600.0  # seconds; the holder renews every TTL/3


def utc_now() -> datetime:
    return datetime.now(UTC)


def iso(moment: datetime, timespec: str = "seconds") -> str:
    return moment.astimezone(UTC).isoformat(timespec=timespec).replace("+00:00", "Z")


def parse_iso(text: str) -> datetime:
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@dataclass(frozen=True)
class LockInfo:
    owner: str  # operator: user@controller-hostname
    controller_host: str
    pid: int
    command: str  # apply, rollback, ...
    acquired_at: datetime
    expires_at: datetime
    run_id: str  # unique per run: tells our lease from one of the same operator's other runs

    def expired(self, now: datetime) -> bool:
        return now >= self.expires_at

    def owned_by(self, run_id: str) -> bool:
        return self.run_id == run_id

    def renewed(self, now: datetime, ttl: float) -> LockInfo:
        return replace(self, expires_at=now + timedelta(seconds=ttl))

    def describe(self) -> str:
        return (f"{self.owner} ({self.command}, pid {self.pid} on {self.controller_host}) "
                f"since {iso(self.acquired_at)}, until {iso(self.expires_at)}")

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        # Full precision: a lease read back must equal the one written (ownership checks).
        data["acquired_at"] = iso(self.acquired_at, "microseconds")
        data["expires_at"] = iso(self.expires_at, "microseconds")
        return data

    def encode(self) -> bytes:
        return (json.dumps(self.to_json(), sort_keys=True) + "\n").encode()

    @classmethod
    def decode(cls, data: bytes) -> LockInfo:
        """Raises ValueError when the file is not a lease (empty, torn, foreign)."""
        try:
            raw = json.loads(data)
            return cls(owner=str(raw["owner"]), controller_host=str(raw["controller_host"]),
                       pid=int(raw["pid"]), command=str(raw["command"]),
                       acquired_at=parse_iso(raw["acquired_at"]),
                       expires_at=parse_iso(raw["expires_at"]), run_id=str(raw["run_id"]))
        except (KeyError, TypeError, AttributeError, json.JSONDecodeError) as exc:
            raise ValueError(f"not a lease: {exc}") from exc


def unreadable_lease_is_stale(modified: datetime | None, now: datetime, ttl: float) -> bool:
    """A lock file that is not a lease: a holder is writing it right now, or died mid-write.

    Only its age tells which; one older than a TTL is taken to be the remains of a crash.
    """
    return modified is not None and now - modified >= timedelta(seconds=ttl)
