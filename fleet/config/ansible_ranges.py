"""Ansible's host patterns: `host:port` and `[begin:end(:step)]` ranges, bounded.

Expanded as Ansible 2.14's inventory plugins expand them (numeric ranges zero-padded to the
width of `begin`, from 0 when `begin` is left out, single-letter ranges in `a-z` then `A-Z`
order, a step, several ranges in one name); what Ansible would expand to nothing (`[5:1]`)
or read oddly (`[aa:zz]`) is an error, and no pattern expands to more than MAX_RANGE_HOSTS.
"""

from __future__ import annotations

import ipaddress
import itertools
import re
import string

MAX_RANGE_HOSTS = 10_000  # hosts one pattern like web[1:100] may expand to


_BRACKETED = re.compile(r"\[([0-9A-Fa-f:.]+)\](?::([0-9]{1,5}))?")


def _is_ipv6(text: str) -> bool:
    try:
        ipaddress.IPv6Address(text)
    except ValueError:
        return False
    return True


def split_host_port(name: str) -> tuple[str, int | None]:
    """`web1:2222` -> ('web1', 2222), `[2001:db8::1]:2222` -> ('2001:db8::1', 2222): Ansible's
    host:port notation (a bare IPv6 address is left alone)."""
    bracketed = _BRACKETED.fullmatch(name)
    if bracketed and _is_ipv6(bracketed[1]):
        return bracketed[1], int(bracketed[2]) if bracketed[2] else None
    head, sep, tail = name.rpartition(":")
    if sep and head and ":" not in head and re.fullmatch(r"[0-9]{1,5}", tail):
        return head, int(tail)
    return name, None


class HostRangeError(ValueError):
    pass


_RANGE = re.compile(r"\[([^\[\]]*)\]")


def _range_values(spec: str) -> list[str]:
    """The values of one `[begin:end]` or `[begin:end:step]`, as Ansible expands them, but
    an empty range (`[5:1]`) and a multi-letter one (`[aa:zz]`) are errors."""
    bounds = spec.split(":")
    if len(bounds) not in (2, 3):
        raise HostRangeError(f"host range [{spec}] must be begin:end or begin:end:step")
    begin, end = bounds[0] or "0", bounds[1]
    step_text = bounds[2] if len(bounds) == 3 else "1"
    if not end:
        raise HostRangeError(f"host range [{spec}] must specify an end value")
    if not re.fullmatch(r"[0-9]{1,9}", step_text) or int(step_text) == 0:
        raise HostRangeError(f"host range [{spec}]: the step must be a whole number from 1")
    step = int(step_text)
    letters = string.ascii_letters  # Ansible's order: a-z, then A-Z
    if len(begin) == 1 and len(end) == 1 and begin in letters and end in letters:
        first, last = letters.index(begin), letters.index(end)
        if first > last:
            raise HostRangeError(f"host range [{spec}] must have begin <= end")
        return list(letters[first:last + 1:step])
    if not (re.fullmatch(r"[0-9]{1,18}", begin) and re.fullmatch(r"[0-9]{1,18}", end)):
        raise HostRangeError(f"host range [{spec}] must be of numbers ([1:9], [01:10]) or of "
                             "single letters ([a:f])")
    width = 0
    if begin.startswith("0") and len(begin) > 1:
        if len(begin) != len(end):
            raise HostRangeError(f"host range [{spec}] must specify equal-length begin and "
                                 "end formats")
        width = len(begin)
    numbers = range(int(begin), int(end) + 1, step)
    if not numbers:
        raise HostRangeError(f"host range [{spec}] must have begin <= end")
    if len(numbers) > MAX_RANGE_HOSTS:
        raise HostRangeError(f"host range [{spec}] expands to {len(numbers):,} hosts, more "
                             f"than the limit of {MAX_RANGE_HOSTS:,}")
    return [str(n).zfill(width) for n in numbers]


def expand_host_range(name: str) -> list[str]:
    """`web[01:03]` -> web01, web02, web03: Ansible's numeric ranges (zero-padded, with a
    step, from 0 when begin is left out) and single-letter ranges, several in one name.
    Raises HostRangeError for a range Ansible rejects, an empty one, or one too large."""
    if _BRACKETED.fullmatch(name) and _is_ipv6(name[1:].partition("]")[0]):
        return [name]  # [2001:db8::1]:2222
    parts = _RANGE.split(name)  # text, range, text, range, ..., text
    if len(parts) == 1:
        return [name]
    choices = [[p] if i % 2 == 0 else _range_values(p) for i, p in enumerate(parts)]
    total = 1
    for options in choices:
        total *= len(options)
    if total > MAX_RANGE_HOSTS:
        raise HostRangeError(f"host pattern {name!r} expands to {total:,} hosts, more than the "
                             f"limit of {MAX_RANGE_HOSTS:,}")
    return ["".join(combination) for combination in itertools.product(*choices)]
