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
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from fleet.core.untrusted import KiB, UntrustedJSONError, describe_invalid, parse_json

DEFAULT_TTL = 600.0  # seconds; the holder renews every TTL/3
MAX_LEASE_FILE = 64 * KiB  # a lease is ~300 bytes; the file is on the host, so untrusted
MAX_PID = 2**31 - 1


def utc_now() -> datetime:
    return datetime.now(UTC)


def iso(moment: datetime, timespec: str = "seconds") -> str:
    return moment.astimezone(UTC).isoformat(timespec=timespec).replace("+00:00", "Z")


def parse_iso(text: str) -> datetime:
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


_Short = Annotated[str, Field(max_length=1024)]


class _LeaseModel(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore", defer_build=True)

    owner: _Short
    controller_host: _Short
    pid: Annotated[int, Field(ge=0, le=MAX_PID)]
    command: _Short
    acquired_at: Annotated[str, Field(max_length=64)]
    expires_at: Annotated[str, Field(max_length=64)]
    run_id: _Short


def _utc_moment(text: str) -> datetime:
    """An ISO 8601 time as UTC; ValueError also for one that falls outside datetime's range
    once moved to UTC (year 1 with +05:00, year 9999 with -05:00)."""
    try:
        return parse_iso(text).astimezone(UTC)
    except ValueError:
        raise ValueError(f"not an ISO 8601 time: {text[:64]!r}") from None
    except OverflowError:
        raise ValueError(f"a time out of range: {text[:64]!r}") from None


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
        """Raises ValueError when the file is not a lease (empty, torn, foreign, too large,
        or holding values out of range)."""
        try:
            raw = parse_json(data, max_bytes=MAX_LEASE_FILE, max_depth=4)
            model = _LeaseModel.model_validate(raw)
        except UntrustedJSONError as exc:
            raise ValueError(str(exc)) from None
        except ValidationError as exc:
            raise ValueError(describe_invalid(exc)) from None
        acquired, expires = _utc_moment(model.acquired_at), _utc_moment(model.expires_at)
        return cls(owner=model.owner, controller_host=model.controller_host, pid=model.pid,
                   command=model.command, acquired_at=acquired, expires_at=expires,
                   run_id=model.run_id)


def unreadable_lease_is_stale(modified: datetime | None, now: datetime, ttl: float) -> bool:
    """A lock file that is not a lease: a holder is writing it right now, or died mid-write.

    Only its age tells which; one older than a TTL is taken to be the remains of a crash.
    """
    return modified is not None and now - modified >= timedelta(seconds=ttl)
