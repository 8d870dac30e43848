"""Saved plans (pure): `fleet plan --out FILE` records the plan, a digest of the desired state
it was made for, and a fingerprint of what each host was observed to run; `fleet apply FILE`
applies it only if all three still hold, so what runs is exactly what was approved.

A fingerprint covers what the plan depends on and a change on the host would move: the
containers (the project's and foreign ones: ids, names, states, fleet's labels, published
ports), the networks and volumes, and the revisions the host's journal holds. Health and
times are left out: they move on their own, and a plan that depends on them differs, which
the plan's own digest catches.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from fleet.core import labels
from fleet.core.desired import DesiredState
from fleet.core.observed import HostSnapshot
from fleet.core.untrusted import UntrustedJSONError, describe_invalid, parse_json

FORMAT = "fleet-saved-plan/1"
MAX_BYTES = 64 * 1024 * 1024  # a plan of thousands of hosts fits many times over


class SavedPlanError(ValueError):
    """The file is not a saved plan fleet can apply."""


def _digest(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      default=str)
    return "sha256:" + hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()


def host_fingerprint(snapshot: HostSnapshot) -> str:
    containers = sorted(
        (c.id, c.name, c.state, c.config_image, sorted(
            (k, v) for k, v in c.labels.items() if k.startswith(labels.FLEET_PREFIX)),
         sorted(str(p) for p in c.published))
        for c in snapshot.containers)
    return _digest({
        "containers": containers,
        "networks": None if snapshot.networks is None else sorted(snapshot.networks),
        "volumes": None if snapshot.volumes is None else sorted(snapshot.volumes),
        "revisions": sorted(snapshot.last_revisions.items()),
    })


def desired_digest(state: DesiredState) -> str:
    """What the playbooks, inventory and secrets (by their keyed digests, through the spec
    hashes) make of the targeted hosts, and how each service rolls out."""
    return _digest({
        "project": state.project,
        "hosts": [(h.name, h.address, h.port,
                   [(c.name, c.spec_hash) for c in state.containers.get(h.name, [])],
                   sorted(state.files.get(h.name, {})))
                  for h in state.targeted_hosts],
        "services": sorted((name, repr(s.update), repr(s.rollback))
                           for name, s in state.services.items()),
        "inactive": sorted(state.inactive_services),
    })


def plan_digest(host_plan_json: Mapping[str, Any]) -> str:
    """One host's part of `plan --json` (actions and findings) as a digest."""
    return _digest(host_plan_json)


class Invocation(BaseModel):
    """How the plan was made: `apply FILE` loads the same project the same way."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    playbooks: list[str] = Field(min_length=1, max_length=1000)
    inventories: list[str] = Field(default=[], max_length=1000)
    limit: str | None = None
    shard: str | None = None
    shard_by: str | None = None
    env_file: str | None = None
    profiles: list[str] = Field(default=[], max_length=1000)
    prune: bool = True


class SavedHost(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    host: str
    fingerprint: str
    plan: str  # plan_digest of its part of the plan


class SavedPlan(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    format: str
    created: str
    project: str
    invocation: Invocation
    desired: str
    hosts: list[SavedHost]
    plan: dict[str, Any]  # `plan --json`, for people and scripts to read (not trusted back)


def is_saved_plan(data: bytes) -> bool:
    """Whether a file given as a playbook is a saved plan instead (JSON with our format)."""
    head = data[:256].lstrip()
    return head.startswith(b"{") and FORMAT.encode() in data[:4096]


def read_saved_plan(data: bytes) -> SavedPlan:
    try:
        value = parse_json(data, max_bytes=MAX_BYTES)
        saved = SavedPlan.model_validate(value)
    except UntrustedJSONError as exc:
        raise SavedPlanError(f"not a saved plan: {exc}") from None
    except ValidationError as exc:
        raise SavedPlanError(f"not a saved plan: {describe_invalid(exc)}") from None
    if saved.format != FORMAT:
        raise SavedPlanError(f"a saved plan of format {saved.format!r}; this fleet reads "
                             f"{FORMAT!r}")
    return saved


def moved_hosts(saved: SavedPlan, fingerprints: Mapping[str, str]) -> list[str]:
    """The hosts whose observed state differs from the saved plan's (or that are gone)."""
    return sorted(h.host for h in saved.hosts if fingerprints.get(h.host) != h.fingerprint)


def replanned_hosts(saved: SavedPlan, plans: Mapping[str, str]) -> list[str]:
    """The hosts whose plan now is not the saved one, and hosts planned now but not then."""
    then = {h.host: h.plan for h in saved.hosts}
    return sorted({h for h, p in then.items() if plans.get(h) != p} | (set(plans) - set(then)))
