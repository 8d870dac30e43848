"""Durations and byte sizes written the way Compose writes them."""

from __future__ import annotations

import re

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_DURATION_NS = {"ns": 1, "us": 1_000, "µs": 1_000, "ms": 1_000_000, "s": 10**9,
                "m": 60 * 10**9, "h": 3600 * 10**9}


def parse_duration(value: object) -> float:
    """Seconds in a Compose/Go duration ("1m30s", "250ms", "2s"); a bare number is seconds."""
    if isinstance(value, bool):
        raise ValueError(f"expected a duration like '10s' or '1m30s', got {value!r}")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError(f"a duration cannot be negative, got {value}")
        return float(value)
    if not isinstance(value, str):
        raise ValueError(f"expected a duration like '10s' or '1m30s', got {value!r}")
    text = value.strip()
    pos, total_ns = 0, 0.0
    for match in _DURATION_PART.finditer(text):
        if match.start() != pos:
            break
        total_ns += float(match.group(1)) * _DURATION_NS[match.group(2)]
        pos = match.end()
    if not text or pos != len(text):
        raise ValueError(
            f"bad duration {value!r}: use a number with a unit (ns, us, ms, s, m, h), "
            "e.g. '10s', '1m30s', '500ms'"
        )
    return total_ns / 10**9


_SIZE = re.compile(r"^(\d+(?:\.\d+)?)\s*([bkmgt]?)b?$", re.IGNORECASE)
_SIZE_FACTOR = {"": 1, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}


def parse_byte_size(value: object) -> int:
    """Bytes in a Compose size ("512m", "1g", "2048k", 1024)."""
    if isinstance(value, bool):
        raise ValueError(f"expected a size like '512m' or '1g', got {value!r}")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"a size cannot be negative, got {value}")
        return value
    if isinstance(value, str):
        match = _SIZE.match(value.strip())
        if match:
            return int(float(match.group(1)) * _SIZE_FACTOR[match.group(2).lower()])
    raise ValueError(f"bad size {value!r}: use a number with a unit b, k, m or g, e.g. '512m'")
