"""The journal's entries and their codec (pure): one JSON object per line, one line per
change fleet made to a container on a host. Readers skip lines they cannot parse, so a
controller killed mid-write costs at most the line it was writing. The file itself is
fleet.hoststate.journal's.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, cast, get_args

from fleet.core import labels as fleet_label
from fleet.core.lease import iso, utc_now

IN_PLACE = "updated in place"  # entries of `docker update`: same revision, new limits

EntryOutcome = Literal["ok", "failed", "rolled-back", "removed"]
OUTCOMES: tuple[str, ...] = get_args(EntryOutcome)


@dataclass(frozen=True)
class JournalEntry:
    """One change to one container: what it became, and how it went.

    `spec` is the container's normalized options exactly as in its `fleet.spec` label: secrets
    appear only as keyed digests, so a journal never holds a secret value.
    """

    command: str  # apply, rollback, ...
    service: str
    replica: int
    revision: int
    image: str  # as configured (tag or digest reference)
    digest: str  # what the tag resolved to ("" if unknown)
    spec: Mapping[str, Any]
    spec_hash: str
    outcome: EntryOutcome
    detail: str = ""
    time: str = field(default_factory=lambda: iso(utc_now()))  # UTC, ISO 8601
    operator: str = ""  # who made the change (user@controller): set by the journaling run

    @classmethod
    def from_labels(cls, labels: Mapping[str, str], *, command: str, outcome: EntryOutcome,
                    detail: str = "", operator: str = "") -> JournalEntry:
        """The entry for a container created with these labels (labels.fleet_labels)."""
        return cls(command=command, service=labels[fleet_label.SERVICE],
                   replica=int(labels[fleet_label.REPLICA]),
                   revision=int(labels[fleet_label.REVISION]),
                   image=labels[fleet_label.IMAGE],
                   digest=labels.get(fleet_label.IMAGE_DIGEST, ""),
                   spec=json.loads(labels[fleet_label.SPEC]),
                   spec_hash=labels[fleet_label.SPEC_HASH], outcome=outcome, detail=detail,
                   operator=operator)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["spec"] = dict(self.spec)
        return data

    @classmethod
    def from_json(cls, raw: Any) -> JournalEntry:
        """Raises ValueError if `raw` is not an entry."""
        try:
            outcome = str(raw["outcome"])
            if outcome not in OUTCOMES:
                raise ValueError(f"unknown outcome {outcome!r}")
            spec = raw["spec"]
            if not isinstance(spec, dict):
                raise ValueError("spec is not a mapping")
            return cls(command=str(raw["command"]), service=str(raw["service"]),
                       replica=int(raw["replica"]), revision=int(raw["revision"]),
                       image=str(raw["image"]), digest=str(raw["digest"]), spec=spec,
                       spec_hash=str(raw["spec_hash"]), outcome=cast(EntryOutcome, outcome),
                       detail=str(raw.get("detail", "")), time=str(raw["time"]),
                       operator=str(raw["operator"]))
        except (KeyError, TypeError) as exc:
            raise ValueError(f"not a journal entry: {exc!r}") from exc


def encode_entries(entries: Sequence[JournalEntry]) -> bytes:
    """JSON lines, keys sorted: one line per entry, each ending in a newline."""
    return b"".join((json.dumps(e.to_json(), sort_keys=True, separators=(",", ":"))
                     + "\n").encode() for e in entries)


def decode_journal(data: bytes) -> tuple[list[JournalEntry], int]:
    """The entries in file order, and how many lines were skipped as unreadable (torn)."""
    entries: list[JournalEntry] = []
    skipped = 0
    for line in data.split(b"\n"):
        if not line.strip():
            continue
        try:
            entries.append(JournalEntry.from_json(json.loads(line)))
        except (ValueError, UnicodeDecodeError):
            skipped += 1
    return entries, skipped
