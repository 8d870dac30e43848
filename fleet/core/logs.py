"""Containers' log lines from many hosts, made one stream (pure).

Docker prefixes each line with its RFC 3339 time when asked (`timestamps=true`): the lines of
every targeted replica are ordered by that time, which is the host's clock (hosts kept in sync
by NTP order within milliseconds; a skewed host's lines sort by its own clock). A line's
text is the host's: the caller prints it escaped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from fleet.config.units import parse_duration

MAX_LINE = 16 * 1024  # characters of one log line kept (json-file splits lines at 16 KiB)

# 2026-12-04T13:05:33.123456789Z or with an offset; fractions have up to 9 digits and
# Docker trims their trailing zeros, so the text does not sort as it reads.
_STAMP = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:\d{2}) ")


@dataclass(frozen=True, order=True)
class LogLine:
    """One line of one replica's output; sorts by time, then where it came from."""

    time_ns: int  # nanoseconds since the epoch; 0 if the line carried no time
    host: str
    service: str
    replica: int
    stream: str  # stdout or stderr
    text: str

    @property
    def time(self) -> str:
        """The time as RFC 3339 UTC with nanoseconds ("" if unknown)."""
        if not self.time_ns:
            return ""
        seconds, nanos = divmod(self.time_ns, 1_000_000_000)
        stamp = datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S")
        return f"{stamp}.{nanos:09d}Z"

    def as_json(self) -> dict[str, object]:
        return {"time": self.time, "host": self.host, "service": self.service,
                "replica": self.replica, "stream": self.stream, "text": self.text}


def split_timestamp(line: str) -> tuple[int, str]:
    """(nanoseconds since the epoch, the rest) of a line Docker prefixed with its time;
    (0, line) when it is not prefixed (a host's answer is not trusted to be)."""
    match = _STAMP.match(line)
    if match is None:
        return 0, line
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    try:
        moment = datetime(int(year), int(month), int(day), int(hour), int(minute),
                          int(second), tzinfo=UTC)
    except ValueError:
        return 0, line
    if zone != "Z":
        sign = 1 if zone[0] == "+" else -1
        moment -= sign * timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6]))
    nanos = int((fraction or "0").ljust(9, "0"))
    return int(moment.timestamp()) * 1_000_000_000 + nanos, line[match.end():]


def log_line(raw: str, *, host: str, service: str, replica: int, stream: str) -> LogLine:
    time_ns, text = split_timestamp(raw)
    if len(text) > MAX_LINE:
        text = text[:MAX_LINE] + " ... (cut)"
    return LogLine(time_ns, host, service, replica, stream, text)


def merged(lines: list[LogLine]) -> list[LogLine]:
    """Every replica's lines in one time order (a replica's own order kept on equal times)."""
    return sorted(lines, key=lambda line: line.time_ns)


def since_seconds(value: str, now: datetime) -> float:
    """Docker's `since` (seconds since the epoch) for a duration ago ("10m") or a time
    (ISO 8601: "2026-12-04T10:00:00Z", "2026-12-04 10:00"; without a zone, UTC).

    ValueError names what is wrong."""
    text = value.strip()
    if text and text[0].isdigit() and not re.match(r"\d{4}-", text):
        seconds = parse_duration(text)
        if seconds <= 0:
            raise ValueError(f"{value!r}: a duration must be above 0")
        return (now - timedelta(seconds=seconds)).timestamp()
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{value!r} is neither a duration (10m, 2h) nor a time "
                         "(2026-12-04T10:00:00Z)") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


class LineSplitter:
    """A stream's bytes, as they arrive in chunks, cut into lines; a line longer than
    `limit` bytes is cut there, so a host that never sends a newline costs at most `limit`."""

    def __init__(self, limit: int = MAX_LINE * 4) -> None:
        self._limit = limit
        self._pending = bytearray()

    def feed(self, data: bytes) -> list[str]:
        self._pending += data
        lines: list[str] = []
        while True:
            end = self._pending.find(b"\n")
            if end < 0:
                if len(self._pending) > self._limit:
                    lines.append(self._take(self._limit))
                    continue
                return lines
            lines.append(self._take(end, skip=1))

    def flush(self) -> list[str]:
        """What is left at the end of the stream (a last line without its newline)."""
        return [self._take(len(self._pending))] if self._pending else []

    def _take(self, size: int, skip: int = 0) -> str:
        text = bytes(self._pending[:size]).decode("utf-8", "replace").removesuffix("\r")
        del self._pending[:size + skip]
        return text


class ReorderWindow:
    """Lines from many live streams put in time order: each line is held for `window`
    seconds after it arrived, then let out with every held line older than it, so lines
    of different hosts arriving up to `window` apart still come out in time order. The
    clock is the caller's (seconds, monotonic)."""

    def __init__(self, window: float) -> None:
        self.window = window
        self._held: list[tuple[int, int, float, LogLine]] = []  # (time, arrival order, ...)
        self._count = 0

    def add(self, line: LogLine, now: float) -> None:
        self._count += 1
        self._held.append((line.time_ns, self._count, now, line))

    def due(self, now: float) -> list[LogLine]:
        """The lines to print now, in time order."""
        ripe = [entry for entry in self._held if now - entry[2] >= self.window]
        if not ripe:
            return []
        newest = max(entry[0] for entry in ripe)
        out = sorted((e for e in self._held if e[0] <= newest), key=lambda e: (e[0], e[1]))
        released = {id(e) for e in out}
        self._held = [e for e in self._held if id(e) not in released]
        return [e[3] for e in out]

    def drain(self) -> list[LogLine]:
        out = sorted(self._held, key=lambda e: (e[0], e[1]))
        self._held = []
        return [e[3] for e in out]

    def __len__(self) -> int:
        return len(self._held)
