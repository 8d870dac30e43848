"""Releases: what the playbook said for a service, as one identity across the fleet (pure).

Revision numbers are per host, so "the revision before the current one" cannot name one
target for a whole fleet: a rollback interrupted halfway would, when run again, send the
hosts it had already returned forward again. A release names the same deployment on every
host: a hash of the service's definition in the playbook (before per-host rendering) and the
image it ran (fleet.core.desired.definition_hash). Each journal entry records its release,
and a rollback records the release it left, so `fleet rollback` chooses one target for the
fleet: the newest release deployed before the newest one running, skipping releases that
failed or were rolled back.

Journals are host-written: a forged one can change which recorded release is chosen, never
what a host is sent beyond what its own journal recorded (fleet.core.revisions), and the
plan names the release before anything changes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from fleet.core.journal import IN_PLACE, JournalEntry

AUTOMATIC_ROLLBACK = "automatic rollback"  # the detail of entries an apply's undo wrote


def release_key(definition: str, image: str, digest: str) -> str:
    """A release: one definition running one image (a moved tag is a new release)."""
    return hashlib.sha256(f"{definition}\0{image}\0{digest}".encode()).hexdigest()[:16]


def reused_release(entries: Sequence[JournalEntry], service: str, replica: int,
                   spec_hash: str, digest: str) -> str | None:
    """The release of a container the host already ran with this exact spec and image: a
    container made again (healed, or restored by an undo) stays in the release it was."""
    for entry in reversed(entries):
        if (entry.service == service and entry.replica == replica and entry.outcome == "ok"
                and entry.spec_hash == spec_hash and entry.digest == digest and entry.release):
            return entry.release
    return None


def recorded_release(entries: Sequence[JournalEntry], entry: JournalEntry, playbook: str | None
                     ) -> str:
    """The release an apply records for `entry`, given the host's journal `entries` and the
    playbook's release for it (`playbook`; None when the service has no definition). What an
    undo restores stays in the release it was; anything else is the playbook's release, so
    every host names one deployment alike whatever each ran before (reusing a release by
    container spec would split one deployment in two when only the definition's update
    settings changed, and a rollback would then choose a "release" half the fleet never ran)."""
    reused = reused_release(entries, entry.service, entry.replica, entry.spec_hash, entry.digest)
    if entry.outcome == "ok" and entry.detail == AUTOMATIC_ROLLBACK:
        return reused or playbook or ""
    return playbook or reused or ""


@dataclass(frozen=True)
class ReleaseChoice:
    leaving: str  # the newest release running: the one rolled back
    target: str  # the release returned to
    target_images: tuple[str, ...]  # what the target ran, as the journals recorded it


def _deployed_times(journals: Mapping[str, Sequence[JournalEntry]], service: str
                    ) -> tuple[dict[str, str], set[str]]:
    """When each release was last deployed (by an apply, not restored by a rollback), and
    the releases disowned anywhere in the fleet (failed, or left by a rollback)."""
    deployed: dict[str, str] = {}
    disowned: set[str] = set()
    for entries in journals.values():
        for entry in entries:
            if entry.service != service:
                continue
            if entry.outcome in ("failed", "rolled-back") and not entry.detail.startswith(
                    IN_PLACE):
                disowned.add(entry.release)
            if entry.outcome != "ok":
                continue
            if entry.command == "rollback":
                disowned.add(entry.replaces)
            elif entry.release and entry.detail != AUTOMATIC_ROLLBACK:
                deployed[entry.release] = max(deployed.get(entry.release, ""), entry.time)
    disowned.discard("")
    return deployed, disowned


def running_release(entries: Sequence[JournalEntry], service: str, replica: int,
                    revision: int) -> str:
    """The release of the revision a host runs ("" if its journal doesn't say)."""
    for entry in reversed(entries):
        if (entry.service == service and entry.replica == replica
                and entry.revision == revision and entry.outcome == "ok"):
            return entry.release
    return ""


def choose_release(journals: Mapping[str, Sequence[JournalEntry]],
                   running: Mapping[str, Mapping[int, int | None]], service: str
                   ) -> ReleaseChoice | None:
    """The fleet-wide target of a rollback of `service`, or None when the journals record
    no releases to choose between (written before releases existed: then each host goes
    back one revision, as before). `running`: host -> replica -> the revision it runs."""
    deployed, disowned = _deployed_times(journals, service)
    current = {running_release(journals.get(host, ()), service, replica, revision)
               for host, replicas in running.items()
               for replica, revision in replicas.items() if revision is not None}
    current = {r for r in current if r in deployed}
    if not current:
        return None
    leaving = max(current, key=lambda r: (deployed[r], r))
    older = [r for r, when in deployed.items()
             if when < deployed[leaving] and r not in disowned and r != leaving]
    if not older:
        return None
    target = max(older, key=lambda r: (deployed[r], r))
    images = sorted({f"{e.image}@{e.digest}" if e.digest else e.image
                     for entries in journals.values() for e in entries
                     if e.service == service and e.release == target and e.outcome == "ok"})
    return ReleaseChoice(leaving, target, tuple(images))
