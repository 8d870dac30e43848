"""Recording each change in the host's journal (the on-host history `fleet history` reads
and `fleet rollback` returns along)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from fleet import labels
from fleet.engine_spec import fleet_labels
from fleet.errors import HostError
from fleet.hoststate.journal import Journal, JournalEntry, Outcome
from fleet.plan import Action, ActionKind
from fleet.runner import Run

IN_PLACE = "updated in place"  # entries of `docker update`: same revision, new limits


def journal_entry(run: Run, action: Action, command: str, outcome: Outcome,
                  detail: str) -> JournalEntry | None:
    """The entry for one action, or None for actions that change no revision."""
    secrets = run.state.secrets
    if action.kind in (ActionKind.CREATE, ActionKind.RECREATE) and action.desired:
        made = fleet_labels(action.desired, secrets, action.digest, action.revision)
        return JournalEntry.from_labels(made, command=command, outcome=outcome, detail=detail)
    if action.kind == ActionKind.UPDATE and action.desired and action.observed:
        made = fleet_labels(action.desired, secrets, action.observed.image_digest or None,
                            action.observed.revision)
        return JournalEntry.from_labels(made, command=command, outcome=outcome,
                                        detail=f"{IN_PLACE}: {detail}" if detail else IN_PLACE)
    if action.kind == ActionKind.REMOVE and action.observed is not None:
        if labels.SPEC not in action.observed.labels:
            return None
        try:
            return JournalEntry.from_labels(action.observed.labels, command=command,
                                            outcome="removed" if outcome == "ok" else outcome,
                                            detail=detail)
        except (KeyError, ValueError):
            return None
    return None


class JournalBook:
    """Entries gathered during a rollout, appended to each host's journal batch by batch."""

    def __init__(self, run: Run, command: str, report: Callable[[str, str], None]) -> None:
        self.run = run
        self.command = command
        self.report = report
        self.pending: dict[str, list[JournalEntry]] = {}

    def note(self, host: str, action: Action, outcome: Outcome, detail: str) -> None:
        entry = journal_entry(self.run, action, self.command, outcome, detail)
        if entry is not None:
            self.pending.setdefault(host, []).append(entry)

    async def flush(self) -> None:
        pending, self.pending = self.pending, {}
        hosts = {h.name: h for h in self.run.state.targeted_hosts}

        async def one(host: str, entries: list[JournalEntry]) -> None:
            journal = Journal(self.run.pool.connected[host], self.run.state.project,
                              hosts[host].state_dir)
            try:
                await journal.append(entries)
            except HostError as exc:
                self.report(host, f"warning: could not record the change in the journal: "
                                  f"{exc.reason}")

        await asyncio.gather(*(one(h, e) for h, e in pending.items()))
