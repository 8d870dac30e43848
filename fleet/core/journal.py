"""The journal's entries and their codec (pure): one JSON object per line, one line per
change fleet made to a container on a host. Readers skip lines they cannot parse, so a
controller killed mid-write costs at most the line it was writing. The file itself is
fleet.hoststate.journal's.

The file lives on the host, so it is untrusted: each line is parsed within bounds
(fleet.core.untrusted) and validated into a typed entry; any line that is not one (torn,
garbage, too long, too deep, Infinity, wrong types) is skipped and counted, never fatal.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Annotated, Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from fleet.core import labels as fleet_label
from fleet.core.lease import iso, utc_now
from fleet.core.observed import MAX_SPEC_DEPTH, label_number, recorded_spec, usable_spec
from fleet.core.untrusted import MiB, describe_invalid, item_estimate, parse_json

IN_PLACE = "updated in place"  # entries of `docker update`: same revision, new limits

# "started" is written before a host's change begins: if the controller dies mid-change, the
# journal still shows what it was doing (and the revision number it had taken).
EntryOutcome = Literal["started", "ok", "failed", "rolled-back", "removed"]
OUTCOMES: tuple[str, ...] = get_args(EntryOutcome)

MAX_LINE = 1 * MiB  # an entry is a few KiB (its spec); a longer line is skipped unread
MAX_ITEMS = 2_000_000  # JSON values decoded per journal read (~80 MB at worst)
MAX_NUMBER = 999_999_999  # replicas and revisions (as label_number reads them)

_Short = Annotated[str, Field(max_length=4096)]
_Count = Annotated[int, Field(ge=0, le=MAX_NUMBER)]


class _EntryModel(BaseModel):
    """What a line must hold to be an entry (strict JSON types, as to_json writes them)."""

    model_config = ConfigDict(strict=True, extra="ignore", defer_build=True)

    command: _Short
    service: _Short
    replica: _Count
    revision: _Count
    image: _Short
    digest: _Short
    spec: dict[str, Any]
    spec_hash: _Short
    outcome: EntryOutcome
    detail: Annotated[str, Field(max_length=64 * 1024)] = ""
    time: _Short
    operator: _Short
    release: _Short = ""
    replaces: _Short = ""
    image_source: Literal["", "controller"] = ""


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
    # The fleet-wide release this revision belongs to (fleet.core.releases), and for a
    # `fleet rollback` the release it left: what lets an interrupted rollback be re-run.
    release: str = ""
    replaces: str = ""
    # "controller": the image was delivered by fleet and `digest` is its image ID (the
    # container's fleet.image-source label); "" for an image from a registry.
    image_source: str = ""

    @classmethod
    def from_labels(cls, labels: Mapping[str, str], *, command: str, outcome: EntryOutcome,
                    detail: str = "", operator: str = "") -> JournalEntry:
        """The entry for a container created with these labels (labels.fleet_labels)."""
        replica = label_number(labels[fleet_label.REPLICA])
        revision = label_number(labels[fleet_label.REVISION])
        spec = recorded_spec(labels[fleet_label.SPEC])
        if replica is None or revision is None or spec is None:
            raise ValueError("the labels hold no usable replica, revision or spec")
        return cls(command=command, service=labels[fleet_label.SERVICE],
                   replica=replica, revision=revision,
                   image=labels[fleet_label.IMAGE],
                   digest=labels.get(fleet_label.IMAGE_DIGEST, ""),
                   spec=spec,
                   spec_hash=labels[fleet_label.SPEC_HASH], outcome=outcome, detail=detail,
                   operator=operator,
                   image_source="controller" if labels.get(fleet_label.IMAGE_SOURCE) ==
                   fleet_label.FROM_CONTROLLER else "")

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["spec"] = dict(self.spec)
        if not self.image_source:  # journals of registry images read as they always did
            del data["image_source"]
        return data

    @classmethod
    def from_json(cls, raw: Any) -> JournalEntry:
        """Raises ValueError if `raw` is not an entry."""
        try:
            model = _EntryModel.model_validate(raw)
        except ValidationError as exc:
            raise ValueError(f"not a journal entry: {describe_invalid(exc)}") from None
        spec = usable_spec(model.spec)
        if spec is None:
            raise ValueError("not a journal entry: its spec has fields of the wrong type")
        return cls(command=model.command, service=model.service, replica=model.replica,
                   revision=model.revision, image=model.image, digest=model.digest,
                   spec=spec, spec_hash=model.spec_hash, outcome=model.outcome,
                   detail=model.detail, time=model.time, operator=model.operator,
                   release=model.release, replaces=model.replaces,
                   image_source=model.image_source)


@dataclass(frozen=True)
class JournalRead:
    """What a journal held: its entries in file order, and the lines that were not entries
    (line number counted from the start of what was read, and why)."""

    entries: list[JournalEntry]
    skipped: list[tuple[int, str]] = field(default_factory=list)
    older_dropped: bool = False  # MAX_ITEMS was reached: only the newest entries were read

    def warnings(self, path: str) -> list[str]:
        notes = [f"{path} line {line}: skipped ({why})" for line, why in self.skipped[:5]]
        if len(self.skipped) > 5:
            notes.append(f"{path}: {len(self.skipped) - 5} more unreadable lines skipped")
        if self.older_dropped:
            notes.append(f"{path}: more than {MAX_ITEMS:,} JSON values; only its newest "
                         f"entries were read")
        return notes


def encode_entries(entries: Sequence[JournalEntry]) -> bytes:
    """JSON lines, keys sorted: one line per entry, each ending in a newline."""
    return b"".join((json.dumps(e.to_json(), sort_keys=True, separators=(",", ":"))
                     + "\n").encode() for e in entries)


def read_entries(data: bytes) -> JournalRead:
    """Every entry in `data`, newest first until MAX_ITEMS is used up, returned in file
    order. Lines that are not entries are skipped (torn, garbage, too long or too deep)."""
    lines = data.split(b"\n")
    entries: list[JournalEntry] = []
    skipped: list[tuple[int, str]] = []
    budget = MAX_ITEMS
    for number in range(len(lines), 0, -1):
        line = lines[number - 1]
        if not line.strip():
            continue
        if len(line) > MAX_LINE:
            skipped.append((number, f"longer than {MAX_LINE // MiB} MiB"))
            continue
        cost = item_estimate(line)
        if cost > budget:
            return JournalRead(entries[::-1], skipped[::-1], older_dropped=True)
        budget -= cost
        try:
            raw = parse_json(line, max_bytes=MAX_LINE, max_depth=MAX_SPEC_DEPTH + 1,
                             max_items=MAX_ITEMS)
            entries.append(JournalEntry.from_json(raw))
        except ValueError as exc:  # UntrustedJSONError included
            skipped.append((number, str(exc)))
    return JournalRead(entries[::-1], skipped[::-1])


def decode_journal(data: bytes) -> tuple[list[JournalEntry], int]:
    """The entries in file order, and how many lines were skipped as unreadable (torn)."""
    read = read_entries(data)
    return read.entries, len(read.skipped)


def settled(entries: Sequence[JournalEntry]) -> list[JournalEntry]:
    """The entries as history shows them: a "started" entry only while nothing later
    concluded that change (then the controller stopped before it could say how it went)."""
    concluded = set()
    kept: list[JournalEntry] = []
    for entry in reversed(entries):
        key = (entry.service, entry.replica, entry.revision)
        if entry.outcome == "started":
            if key in concluded:
                continue
        else:
            concluded.add(key)
        kept.append(entry)
    return kept[::-1]
