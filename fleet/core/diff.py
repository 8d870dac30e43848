"""Diff: desired containers against a host's observed snapshot, per service and replica.

Pure and deterministic. Kinds (a contract of `fleet check --json`):
in_sync, missing, stopped, unhealthy, config_changed, image_changed, file_missing, extra,
orphan, conflict, routes_changed.
Only containers labelled with the project are ever ours; anything else in the way is a
conflict, never a target.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

from fleet.config.secrets import SecretStore, digest_secrets, reveal
from fleet.core.desired import DesiredContainer
from fleet.core.files import Delivered, delivered_names
from fleet.core.observed import HostSnapshot, ObservedContainer
from fleet.core.proxy import PORTS_SERVICE
from fleet.core.resource_drift import HostResources
from fleet.core.resources import UPDATABLE_FIELDS, update_body


class Kind(StrEnum):
    IN_SYNC = "in_sync"
    MISSING = "missing"
    STOPPED = "stopped"
    UNHEALTHY = "unhealthy"
    CONFIG_CHANGED = "config_changed"
    IMAGE_CHANGED = "image_changed"
    # A file next to the compose file that a container mounts is gone from the host (its
    # container still holds it): delivered again, nothing else changes.
    FILE_MISSING = "file_missing"
    EXTRA = "extra"
    ORPHAN = "orphan"
    CONFLICT = "conflict"
    # The host's proxy routes other requests, or to other containers, than the playbook and
    # the running containers say (fleet.core.proxy_plan): its routes are loaded again.
    ROUTES_CHANGED = "routes_changed"


@dataclass(frozen=True)
class FieldChange:
    field: str
    observed: str
    desired: str

    def __str__(self) -> str:
        return f"{self.field}: {self.observed} -> {self.desired}"


@dataclass(frozen=True)
class Finding:
    host: str
    service: str
    replica: int | None
    kind: Kind
    detail: str = ""
    changes: tuple[FieldChange, ...] = ()
    desired: DesiredContainer | None = None
    observed: ObservedContainer | None = None

    def as_json(self) -> dict[str, Any]:
        return {"host": self.host, "service": self.service, "replica": self.replica,
                "kind": str(self.kind), "detail": self.detail}


@dataclass(frozen=True)
class DiffContext:
    project: str
    services: frozenset[str]  # every service of the playbook (others are orphans)
    secrets: SecretStore
    digests: Mapping[str, str | None] = field(default_factory=dict)  # image ref -> digest
    resources: HostResources | None = None  # the project's networks and volumes
    files: Mapping[str, Delivered] = field(default_factory=dict)  # the host's, by name
    # Services whose profiles are not active: their containers are neither desired nor extra.
    inactive: frozenset[str] = frozenset()


_SECRET_DIGEST = re.compile(r"<secret:([^:>]+):[0-9a-f]+>")


def _show(value: Any) -> str:
    text = value if isinstance(value, str) else repr(value)
    return _SECRET_DIGEST.sub(lambda m: f"<redacted:{m[1]}>", text)


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict) and value:
        out: dict[str, Any] = {}
        for key in value:
            out.update(_flatten(value[key], f"{prefix}.{key}" if prefix else str(key)))
        return out
    return {prefix: value}


def field_changes(observed: Mapping[str, Any], desired: Mapping[str, Any]) -> list[FieldChange]:
    """Leaf-level differences between two specs (both with secrets as digests)."""
    old, new = _flatten(dict(observed)), _flatten(dict(desired))
    changes = []
    for key in sorted(set(old) | set(new)):
        if old.get(key) != new.get(key):
            before, after = _show(old.get(key)), _show(new.get(key))
            if before == after:
                after += " (new value)"
            changes.append(FieldChange(key, before, after))
    return changes


def _top_field(change: FieldChange) -> str:
    return change.field.split(".", 1)[0]


def _live_changes(desired: DesiredContainer, container: ObservedContainer,
                  secrets: SecretStore) -> list[FieldChange]:
    """What was changed on the host behind fleet's back (labels can't tell)."""
    changes: list[FieldChange] = []
    env = reveal(dict(desired.options["environment"]), secrets)
    shown = digest_secrets(dict(desired.options["environment"]), secrets)
    recorded = (container.spec or {}).get("environment") or {}
    for key in sorted(env):
        if container.env.get(key) != env[key]:
            observed = container.env.get(key)
            # Show what runs only when it is known not to be a secret: neither now nor in the
            # spec the container was made from (an unlabelled one could hold anything).
            hidden = ("<secret:" in str(shown[key]) or key not in recorded
                      or "<secret:" in str(recorded[key]))
            changes.append(FieldChange(
                f"environment.{key}",
                "(unset)" if observed is None else ("<redacted>" if hidden else observed),
                _show(shown[key])))
    wanted = update_body(desired.options)
    for key, value in wanted.items():
        if container.resources and container.resources.get(key) != value:
            # Docker can raise or lower a limit in place but not remove one: that recreates.
            removed = not value and key != "RestartPolicy"
            changes.append(FieldChange(f"{'limits' if removed else 'resources'}.{key}",
                                       _show(container.resources.get(key)), _show(value)))
    return changes


def _compare(desired: DesiredContainer, container: ObservedContainer,
             ctx: DiffContext) -> Finding:
    def finding(kind: Kind, detail: str = "", changes: Sequence[FieldChange] = ()) -> Finding:
        return Finding(desired.host, desired.service, desired.replica, kind, detail,
                       tuple(changes), desired, container)

    image = str(desired.options["image"])
    digest = ctx.digests.get(image)
    # The proxy's port holder runs only a wait: whatever image it was made from does that,
    # and replacing it would drop every connection to the host's ports. A new proxy image
    # replaces Caddy (start-first), never the holder.
    image_matters = desired.service != PORTS_SERVICE
    if image_matters and container.image_ref != image:
        return finding(Kind.IMAGE_CHANGED, f"image {container.image_ref or '?'} -> {image}")
    if image_matters and digest and container.image_digest and \
            container.image_digest != digest:
        return finding(Kind.IMAGE_CHANGED, f"{image} now resolves to {digest[:19]} "
                              f"(running {container.image_digest[:19]})")
    expected_image = container.pin
    if image_matters and container.config_image and container.config_image != expected_image:
        return finding(Kind.IMAGE_CHANGED,
                       f"container runs {container.config_image}, not {expected_image}")
    changes: list[FieldChange] = []
    if container.spec_hash != desired.spec_hash:
        recorded = container.spec
        if recorded is None:
            changes.append(FieldChange("spec", "(unknown: no fleet.spec label)", "(desired)"))
        else:
            wanted = digest_secrets(dict(desired.options), ctx.secrets)
            changes = [c for c in field_changes(recorded, wanted) if _top_field(c) != "image"]
            # Fields already changed in place (docker update) are checked live below.
            changes = [c for c in changes if _top_field(c) not in UPDATABLE_FIELDS]
    live = _live_changes(desired, container, ctx.secrets)
    changes += [c for c in live if c.field not in {x.field for x in changes}]
    if changes:
        detail = "; ".join(str(c) for c in changes[:4]) + (
            f"; and {len(changes) - 4} more" if len(changes) > 4 else "")
        return finding(Kind.CONFIG_CHANGED, detail, changes)
    if desired.job:
        # A one-shot job runs to exit code 0 and stays exited: that is its desired state.
        if (container.state == "exited" and container.exit_code == 0) or container.running:
            return finding(Kind.IN_SYNC)
        if container.state == "exited":
            return finding(Kind.STOPPED, f"job exited with code {container.exit_code}")
        return finding(Kind.STOPPED, f"job container is {container.state}")
    if not container.running:
        return finding(Kind.STOPPED, f"container is {container.state}")
    if container.health == "unhealthy":
        return finding(Kind.UNHEALTHY, "healthcheck reports unhealthy")
    return finding(Kind.IN_SYNC)


def _without_its_resources(finding: Finding, snapshot: HostSnapshot,
                           ctx: DiffContext) -> Finding:
    """A container whose network or volume is gone from the host (a network removed while
    the container was stopped) can't start again: it is made anew once fleet has created
    what it needs."""
    if ctx.resources is None or finding.desired is None or finding.kind in (
            Kind.IMAGE_CHANGED, Kind.MISSING):
        return finding
    absent = ctx.resources.missing(finding.desired.options, snapshot)
    if not absent:
        return finding
    changes = (*finding.changes, *(FieldChange(what, "(not on the host)", "(fleet creates it)")
                                   for what in absent))
    detail = "; ".join(filter(None, [finding.detail if finding.kind == Kind.CONFIG_CHANGED
                                     else "", *(f"{what} is not on the host"
                                                for what in absent)]))
    return replace(finding, kind=Kind.CONFIG_CHANGED, detail=detail, changes=changes)


def _without_its_files(finding: Finding, snapshot: HostSnapshot, ctx: DiffContext) -> Finding:
    """A container in sync whose delivered file is gone from the host: drift (it could not
    start again), healed by delivering the file again."""
    if finding.kind != Kind.IN_SYNC or finding.desired is None or snapshot.files is None:
        return finding
    absent = sorted(delivered_names(finding.desired.options) - snapshot.files.names)
    if not absent:
        return finding
    shown = [ctx.files[name].what if name in ctx.files else f"fleet-file:{name[:12]}…"
             for name in absent]
    return replace(finding, kind=Kind.FILE_MISSING,
                   detail=f"not on the host: {', '.join(sorted(shown))}")


def only_updatable(finding: Finding) -> bool:
    """True when every change can be applied in place (resource limits, restart policy)."""
    return bool(finding.changes) and all(
        c.field.startswith("resources.") for c in finding.changes)


def _blocking(desired: DesiredContainer, foreign: Sequence[ObservedContainer]
              ) -> list[ObservedContainer]:
    ports = {(p["published"], p["protocol"]) for p in desired.options["ports"] if p["published"]}
    return [c for c in foreign if c.name == desired.name or (
        c.running and any((p.host_port, p.protocol) in ports for p in c.published))]


def _pick(candidates: list[ObservedContainer], desired: DesiredContainer) -> ObservedContainer:
    """Among duplicates (a crashed run), keep the running one with the desired spec."""
    def score(c: ObservedContainer) -> tuple[bool, bool, bool, str]:
        return (c.spec_hash == desired.spec_hash, c.running, c.name == desired.name, c.id)
    return max(candidates, key=score)


def diff_host(desired: Sequence[DesiredContainer], snapshot: HostSnapshot,
              ctx: DiffContext) -> list[Finding]:
    ours = [c for c in snapshot.of_project(ctx.project) if c.service not in ctx.inactive]
    foreign = snapshot.foreign(ctx.project)
    by_slot: dict[tuple[str | None, int | None], list[ObservedContainer]] = {}
    for container in ours:
        by_slot.setdefault((container.service, container.replica), []).append(container)
    findings: list[Finding] = []
    kept: set[str] = set()
    for want in desired:
        candidates = by_slot.get((want.service, want.replica), [])
        blocking = tuple(_blocking(want, foreign))
        if blocking:
            names = ", ".join(c.name for c in blocking)
            findings.append(Finding(snapshot.host, want.service, want.replica, Kind.CONFLICT,
                                    f"container(s) not managed by project '{ctx.project}' hold "
                                    f"its name or host port: {names}", desired=want,
                                    observed=candidates[0] if candidates else None))
            kept.update(c.id for c in candidates)
            continue
        in_the_way = ctx.resources.blocking(want.options, snapshot) if ctx.resources else []
        if in_the_way:
            findings.append(Finding(snapshot.host, want.service, want.replica, Kind.CONFLICT,
                                    "; ".join(in_the_way), desired=want,
                                    observed=candidates[0] if candidates else None))
            kept.update(c.id for c in candidates)
            continue
        if not candidates:
            findings.append(Finding(snapshot.host, want.service, want.replica, Kind.MISSING,
                                    "no container", desired=want))
            continue
        chosen = _pick(candidates, want)
        kept.add(chosen.id)
        findings.append(_without_its_files(
            _without_its_resources(_compare(want, chosen, ctx), snapshot, ctx), snapshot, ctx))
    desired_slots = {(d.service, d.replica) for d in desired}
    for container in sorted(ours, key=lambda c: (c.service or "", c.replica or 0, c.name)):
        if container.id in kept:
            continue
        service = container.service or "?"
        if service not in ctx.services:
            kind, detail = Kind.ORPHAN, f"service '{service}' is no longer in the playbook"
        elif (container.service, container.replica) in desired_slots:
            kind, detail = Kind.EXTRA, f"duplicate container {container.name}"
        else:
            kind, detail = Kind.EXTRA, f"replica {container.replica} is not desired on this host"
        findings.append(Finding(snapshot.host, service, container.replica, kind, detail,
                                observed=container))
    return findings
