"""Choosing the revision to return to, from a host's journal (pure).

`fleet rollback` returns each replica to the last revision that succeeded before the one
running now (or to `--to REVISION`). The journal holds each revision's spec with secrets as
digests; it becomes a desired container again with secrets as tokens, valued from the
controller's current secrets when the container is made.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from fleet.config.secrets import SecretStore, tokens_from_digests
from fleet.core.desired import DesiredContainer, spec_hash
from fleet.core.journal import IN_PLACE, JournalEntry


@dataclass(frozen=True)
class Target:
    replica: int
    entry: JournalEntry | None
    reason: str = ""  # why there is none


def choose_revision(entries: Sequence[JournalEntry], service: str, replica: int,
                    current: int | None, to: int | None = None) -> Target:
    ours = [e for e in entries if e.service == service and e.replica == replica]
    # A revision that later failed or was rolled back is not one to return to; an in-place
    # update of its limits that failed does not disown the revision itself.
    disowned = {e.revision for e in ours if e.outcome in ("failed", "rolled-back")
                and not e.detail.startswith(IN_PLACE)}
    mine = [e for e in ours if e.outcome == "ok" and e.spec and e.revision not in disowned]
    if to is not None:
        found = [e for e in mine if e.revision == to]
        if not found:
            return Target(replica, None, f"no successful revision {to} of {service} replica "
                                         f"{replica} in the host's journal")
        return Target(replica, found[-1])
    earlier = [e for e in mine if current is None or e.revision < current]
    if not earlier:
        return Target(replica, None, f"no successful revision of {service} replica {replica} "
                                     f"before revision {current} in the host's journal")
    target = max(e.revision for e in earlier)
    # The newest entry of that revision: an in-place update records its latest limits.
    return Target(replica, [e for e in earlier if e.revision == target][-1])


def desired_from_entry(entry: JournalEntry, host: str, project: str,
                       secrets: SecretStore) -> DesiredContainer:
    options = tokens_from_digests(dict(entry.spec))
    return DesiredContainer(host, project, entry.service, entry.replica, options,
                            spec_hash(options, secrets))
