"""`--shard K/N`: a stable partition of the targeted hosts, so that N controllers (a CI
matrix, GNU parallel, a Kubernetes Job) can each take one part of a fleet side by side.

By name, a host's shard comes from a digest of its name: the same on every run and every
machine (never Python's salted hash()), and adding or removing a host moves no other host.
By label (`--shard-by region`), hosts with the same value stay together: the distinct values
present among the targeted hosts, sorted, are dealt to the shards in turn (value i goes to
shard i mod N, so shards get a similar count of values), and hosts without the label are
one group of their own, dealt as the value "" (first). A new value can move the values
sorted after it to another shard; a new host with an existing value moves nothing.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass

from fleet.config.inventory import Host

_SHARD = re.compile(r"([0-9]{1,6})/([0-9]{1,6})")


@dataclass(frozen=True)
class Shard:
    index: int  # 1-based, as written: --shard 1/3 is the first of three
    count: int
    by: str | None = None  # a label name: its values stay in one shard

    def __str__(self) -> str:
        return f"{self.index}/{self.count}" + (f" by {self.by}" if self.by else "")


def parse_shard(text: str, by: str | None = None) -> Shard:
    """`K/N` with 1 <= K <= N; ValueError saying what is wrong."""
    match = _SHARD.fullmatch(text.strip())
    if not match:
        raise ValueError(f"'{text}' is not K/N (e.g. 1/3: the first of three shards)")
    index, count = int(match[1]), int(match[2])
    if count < 1 or not 1 <= index <= count:
        raise ValueError(f"'{text}': K must be from 1 to N, and N at least 1")
    if by is not None and not by.strip():
        raise ValueError("the label to shard by is empty")
    return Shard(index, count, by)


def _digest(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")


def shard_of_name(name: str, count: int) -> int:
    """The 1-based shard of a host by its name."""
    return _digest(name) % count + 1


def in_shard(hosts: Sequence[Host], shard: Shard) -> tuple[Host, ...]:
    """The hosts of `hosts` that belong to `shard`, in their order."""
    if shard.by is None:
        return tuple(h for h in hosts if shard_of_name(h.name, shard.count) == shard.index)
    key = shard.by

    def value(host: Host) -> str:
        return host.labels.get(key, "")

    values = sorted({value(h) for h in hosts})
    position = {v: i % shard.count + 1 for i, v in enumerate(values)}
    return tuple(h for h in hosts if position[value(h)] == shard.index)
