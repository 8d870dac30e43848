"""Recording each change in the host's journal (the on-host history `fleet history` reads
and `fleet rollback` returns along)."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Sequence

from fleet.config.secrets import SecretStore
from fleet.core import labels
from fleet.core.journal import IN_PLACE, EntryOutcome, JournalEntry
from fleet.core.plan import Action, ActionKind
from fleet.core.releases import recorded_release, release_key, reused_release
from fleet.core.reporting import Reporter
from fleet.engine.run import Run
from fleet.errors import HostError
from fleet.hoststate.journal import Journal
from fleet.hoststate.lease import current_operator


def journal_entry(action: Action, secrets: SecretStore, command: str, outcome: EntryOutcome,
                  detail: str, operator: str = "") -> JournalEntry | None:
    """The entry for one action, or None for actions that change no revision (pure)."""
    if action.kind in (ActionKind.CREATE, ActionKind.RECREATE) and action.desired:
        made = labels.fleet_labels(action.desired, secrets, action.digest, action.revision)
        return JournalEntry.from_labels(made, command=command, outcome=outcome, detail=detail,
                                        operator=operator)
    if action.kind == ActionKind.UPDATE and action.desired and action.observed:
        made = labels.fleet_labels(action.desired, secrets,
                                   action.observed.image_digest or None,
                                   action.observed.revision)
        return JournalEntry.from_labels(made, command=command, outcome=outcome,
                                        detail=f"{IN_PLACE}: {detail}" if detail else IN_PLACE,
                                        operator=operator)
    if action.kind == ActionKind.REMOVE and action.observed is not None:
        if labels.SPEC not in action.observed.labels:
            return None
        try:
            return JournalEntry.from_labels(action.observed.labels, command=command,
                                            outcome="removed" if outcome == "ok" else outcome,
                                            detail=detail, operator=operator)
        except (KeyError, ValueError):
            return None
    return None


class JournalBook:
    """Entries gathered during a rollout, appended to each host's journal batch by batch.

    For a rollback, `target` is the release it returns to and `leaving` the one it returns
    from (recorded with each of its entries, so a re-run knows those hosts are done)."""

    def __init__(self, run: Run, command: str, report: Reporter, *, target: str = "",
                 leaving: str = "") -> None:
        self.run = run
        self.command = command
        self.report = report
        self.target = target
        self.leaving = leaving
        self.operator = current_operator()
        self.pending: dict[str, list[JournalEntry]] = {}

    def _entry(self, host: str, action: Action, outcome: EntryOutcome, detail: str
               ) -> JournalEntry | None:
        entry = journal_entry(action, self.run.state.secrets_for(host), self.command, outcome,
                              detail, self.operator)
        if entry is None or entry.outcome == "removed":
            return entry
        known = [*self.run.journals.get(host, ()), *self.pending.get(host, ())]
        if self.command == "rollback":
            release = self.target or reused_release(known, entry.service, entry.replica,
                                                    entry.spec_hash, entry.digest)
            return dataclasses.replace(entry, release=release or "", replaces=self.leaving)
        placement = self.run.state.services.get(entry.service)
        playbook = (release_key(placement.definition, entry.image, entry.digest)
                    if placement is not None and placement.definition else None)
        return dataclasses.replace(entry, release=recorded_release(known, entry, playbook))

    def note(self, host: str, action: Action, outcome: EntryOutcome, detail: str) -> None:
        entry = self._entry(host, action, outcome, detail)
        if entry is not None:
            self.pending.setdefault(host, []).append(entry)

    async def start(self, host: str, actions: Sequence[Action]) -> str | None:
        """Record, before it begins, the change `actions` make on `host`; or why it can't be
        recorded (then the change must not begin: it would leave no trace)."""
        entries = [e for a in actions if (e := self._entry(host, a, "started", "")) is not None]
        if not entries:
            return None
        journal = Journal(self.run.pool.connected[host], self.run.state.project,
                          self.run.hosts[host].state_dir)
        try:
            await journal.append(entries)
        except HostError as exc:
            return f"cannot record the change in the host's journal, so it was not begun: " \
                   f"{exc.reason}"
        return None

    async def flush(self) -> None:
        pending, self.pending = self.pending, {}

        async def one(host: str, entries: list[JournalEntry]) -> None:
            journal = Journal(self.run.pool.connected[host], self.run.state.project,
                              self.run.hosts[host].state_dir)
            try:
                await journal.append(entries)
            except HostError as exc:
                self.report(host, f"warning: could not record the change in the journal: "
                                  f"{exc.reason}")

        await asyncio.gather(*(one(h, e) for h, e in pending.items()))
