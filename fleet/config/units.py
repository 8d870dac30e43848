"""Durations and byte sizes written the way Compose writes them, within Docker's limits."""

from __future__ import annotations

import math
import re
from fractions import Fraction

INT64_MAX = 2**63 - 1  # Docker's Engine API takes sizes, durations and limits as int64
NS_PER_SECOND = 10**9
# Go's time.Duration is int64 nanoseconds: Compose and Docker reject anything longer.
MAX_DURATION_SECONDS = INT64_MAX / NS_PER_SECOND

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_DURATION_NS = {"ns": 1, "us": 1_000, "µs": 1_000, "ms": 1_000_000, "s": 10**9,
                "m": 60 * 10**9, "h": 3600 * 10**9}
_DURATION_HINT = "e.g. '10s', '1m30s', '500ms'"


def parse_duration(value: object) -> float:
    """Seconds in a Compose/Go duration ("1m30s", "250ms", "2s"); a bare number is seconds."""
    if isinstance(value, bool):
        raise ValueError(f"expected a duration like '10s' or '1m30s', got {value!r}")
    if isinstance(value, int | float):
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"a duration must be a finite number, got {value}: {_DURATION_HINT}")
        if value < 0:
            raise ValueError(f"a duration cannot be negative, got {value}")
        return _within_limit(value)
    if not isinstance(value, str):
        raise ValueError(f"expected a duration like '10s' or '1m30s', got {value!r}")
    text = value.strip()
    if text == "0":  # Go's one unitless duration
        return 0.0
    pos, total_ns, exact_ns = 0, 0.0, Fraction(0)
    for match in _DURATION_PART.finditer(text):
        if match.start() != pos:
            break
        # The float sum is the value (spec hashes depend on it); the exact one is checked.
        total_ns += float(match.group(1)) * _DURATION_NS[match.group(2)]
        exact_ns += Fraction(match.group(1)) * _DURATION_NS[match.group(2)]
        pos = match.end()
    if not text or pos != len(text):
        raise ValueError(
            f"bad duration {value!r}: use a number with a unit (ns, us, ms, s, m, h), "
            f"{_DURATION_HINT}"
        )
    _within_limit(exact_ns / NS_PER_SECOND)
    return total_ns / NS_PER_SECOND


def _within_limit(seconds: int | float | Fraction) -> float:
    if seconds > MAX_DURATION_SECONDS:
        raise ValueError("duration too long: at most 2562047h (Go's and Docker's limit, "
                         "int64 nanoseconds)")
    return float(seconds)


_SIZE = re.compile(r"^(\d+(?:\.\d+)?)\s*([bkmgtp]?)i?b?$", re.IGNORECASE)
_SIZE_FACTOR = {"": 1, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4,
                "p": 1024**5}
_SIZE_HINT = "use a number with a unit b, k, m, g, t or p, e.g. '512m'"


def parse_byte_size(value: object) -> int:
    """Bytes in a Compose size ("512m", "1g", "2048k", "1.5GiB", 1024), as go-units reads it."""
    if isinstance(value, bool):
        raise ValueError(f"expected a size like '512m' or '1g', got {value!r}")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"a size cannot be negative, got {value}")
        return _size_within_limit(value)
    if isinstance(value, str):
        match = _SIZE.match(value.strip())
        if match:
            exact = Fraction(match.group(1)) * _SIZE_FACTOR[match.group(2).lower()]
            if exact and int(exact) == 0:
                raise ValueError(f"size {value!r} rounds to 0 bytes, which Docker reads as "
                                 "'no limit'; write 0 for no limit, or at least 1b")
            return _size_within_limit(int(exact))
    raise ValueError(f"bad size {value!r}: {_SIZE_HINT}")


def _size_within_limit(size: int) -> int:
    if size > INT64_MAX:
        raise ValueError(f"size too large: at most {INT64_MAX} bytes (8 EiB, Docker's int64)")
    return size


def format_bytes(size: int) -> str:
    """`6m`, `512k`, `100b`: the largest unit that divides the size (Compose's notation)."""
    for unit in ("p", "t", "g", "m", "k"):
        if size and size % _SIZE_FACTOR[unit] == 0:
            return f"{size // _SIZE_FACTOR[unit]}{unit}"
    return f"{size}b"
