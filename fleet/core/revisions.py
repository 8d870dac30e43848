"""Choosing the revision to return to, from a host's journal (pure).

`fleet rollback` returns each replica to the last revision that succeeded before the one
running now (or to `--to REVISION`). The journal holds each revision's spec with secrets as
digests; it becomes a desired container again with secrets as tokens, valued from the
controller's current secrets when the container is made.

What a host recorded is untrusted: it is validated like a playbook's service, and a secret
it names must be one the current playbook gives that host, or nothing is made from it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from pydantic import ValidationError

from fleet.config.secrets import SecretStore, recorded_secret_names, tokens_from_digests
from fleet.config.service import ContainerOptions
from fleet.core.desired import DesiredContainer, spec_hash
from fleet.core.files import host_source, is_on_host_files, mount_sources
from fleet.core.journal import IN_PLACE, JournalEntry


@dataclass(frozen=True)
class Target:
    replica: int
    entry: JournalEntry | None
    reason: str = ""  # why there is none


def _returnable(entries: Sequence[JournalEntry], service: str, replica: int
                ) -> list[JournalEntry]:
    """The entries of revisions a replica may return to, in journal order."""
    ours = [e for e in entries if e.service == service and e.replica == replica]
    # A revision that later failed or was rolled back is not one to return to; an in-place
    # update of its limits that failed does not disown the revision itself.
    disowned = {e.revision for e in ours if e.outcome in ("failed", "rolled-back")
                and not e.detail.startswith(IN_PLACE)}
    return [e for e in ours if e.outcome == "ok" and e.spec and e.revision not in disowned]


def revision_of_release(entries: Sequence[JournalEntry], service: str, replica: int,
                        release: str) -> Target:
    """The newest revision of `release` a replica ran (fleet.core.releases)."""
    found = [e for e in _returnable(entries, service, replica) if e.release == release]
    if not found:
        return Target(replica, None, f"no successful revision of {service} replica {replica} "
                                     f"from release {release} in the host's journal")
    return Target(replica, found[-1])


def choose_revision(entries: Sequence[JournalEntry], service: str, replica: int,
                    current: int | None, to: int | None = None) -> Target:
    mine = _returnable(entries, service, replica)
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


def recorded_container(spec: Any, host: str, project: str, service: str, replica: int,
                       secrets: SecretStore) -> DesiredContainer | str:
    """The desired container a recorded spec describes, or why none can be made from it.

    `secrets` is the host's store (DesiredState.secrets_for): a spec naming any other secret
    is refused, so a forged journal or label cannot make fleet send it a controller value."""
    if not isinstance(spec, Mapping):
        return "its recorded spec is not a mapping"
    foreign = sorted(recorded_secret_names(spec) - (secrets.allowed or frozenset()))
    if foreign:
        return (f"its recorded spec uses secret {', '.join(map(repr, foreign))}, which the "
                "playbook does not give this host")
    given = {k: v for k, v in spec.items() if v not in (None, {}, [])}
    given.pop("env_file", None)
    if isinstance(given.get("tmpfs"), Mapping):  # recorded as path -> options
        given["tmpfs"] = [f"{path}:{opts}" if opts else path
                          for path, opts in given["tmpfs"].items()]
    try:
        checked = ContainerOptions.model_validate(given)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "spec"
        return f"its recorded spec is invalid at {where}: {first['msg']}"
    options = tokens_from_digests(checked.model_dump(mode="json", exclude={"env_file"}))
    unplaced = _unplaced_source(options)
    if unplaced:
        return f"its recorded spec mounts {unplaced!r}, which is not a path on the host"
    return DesiredContainer(host, project, service, replica, options,
                            spec_hash(options, secrets))


def _unplaced_source(options: Mapping[str, Any]) -> str | None:
    """A bind source a recorded spec can't have: a relative path (playbooks' relative
    sources are recorded as delivered files or data directories) or a malformed reference."""
    for source in mount_sources(options):
        if source.startswith("/"):
            continue
        try:
            host_source(source, "/files")
        except ValueError:
            return source
        if not is_on_host_files(source):
            return source
    return None


def desired_from_entry(entry: JournalEntry, host: str, project: str,
                       secrets: SecretStore) -> DesiredContainer | str:
    """The container a journal entry's revision ran, or why it can't be made again."""
    made = recorded_container(entry.spec, host, project, entry.service, entry.replica, secrets)
    if isinstance(made, str):
        return f"revision {entry.revision} of {entry.service} replica {entry.replica}: {made}"
    if entry.image_source == "controller":  # pinned by its image ID, as it was made
        return replace(made, image_source="controller")
    return made
