"""Compose's `deploy:` (and `scale:`), mapped onto fleet's fields (pure).

On one Docker Engine per host, `deploy` means: `replicas` (and `scale`) are containers per host
(fleet's `replicas`), `mode: global` is one per host, `resources` are the container's limits
(`cpus`, `mem_limit`, `pids_limit`, `mem_reservation`) and device requests, `restart_policy` is
`restart`, `update_config` is fleet's `update:` policy and `rollback_config` the policy `fleet
rollback` rolls out with. What only Swarm can do is refused, naming the key.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

from fleet.config.compose_fields import DeviceRequest, check_memory, parse_cpus
from fleet.config.problems import KeyPath
from fleet.config.units import INT64_MAX, parse_byte_size, parse_duration
from fleet.config.validation import ItemErrors


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)


def _whole(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError(f"expected a whole number, got {value!r}")
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return value


def _memory(value: Any) -> int:
    return check_memory(parse_byte_size(value), limit=True) or 0


def _reservation(value: Any) -> int:
    return check_memory(parse_byte_size(value), limit=False) or 0


def _duration(value: Any) -> float:
    return parse_duration(value)


Whole = Annotated[int, BeforeValidator(_whole, json_schema_input_type=int | str)]
Cpus = Annotated[float, BeforeValidator(parse_cpus, json_schema_input_type=float | str)]
Duration = Annotated[float, BeforeValidator(_duration, json_schema_input_type=float | str)]


class DeployLimits(_Strict):
    cpus: Cpus | None = None
    memory: Annotated[int, BeforeValidator(_memory, json_schema_input_type=int | str)
                      ] | None = None
    pids: Annotated[Whole, Field(ge=-1, le=INT64_MAX)] | None = None


class DeployReservations(_Strict):
    cpus: Cpus | None = None  # Swarm's: ignored with a warning (fleet.config.compose_file)
    memory: Annotated[int, BeforeValidator(_reservation, json_schema_input_type=int | str)
                      ] | None = None
    devices: list[DeviceRequest] = []
    generic_resources: Any = None

    @field_validator("generic_resources")
    @classmethod
    def _generic(cls, value: Any) -> Any:
        if value is not None:
            raise ValueError("generic_resources are Swarm's; Docker Engine has none")
        return value


class DeployResources(_Strict):
    limits: DeployLimits | None = None
    reservations: DeployReservations | None = None


class RestartPolicy(_Strict):
    condition: Literal["none", "on-failure", "any"] = "any"
    delay: Duration | None = None  # Swarm's: ignored with a warning
    max_attempts: Annotated[Whole, Field(ge=0, le=INT64_MAX)] | None = None
    window: Duration | None = None  # Swarm's: ignored with a warning

    @model_validator(mode="after")
    def _attempts_need_on_failure(self) -> RestartPolicy:
        if self.max_attempts and self.condition != "on-failure":
            raise ValueError("max_attempts needs condition: on-failure (Docker retries only "
                             "an on-failure policy a number of times)")
        return self

    def restart(self) -> str:
        """The `restart` Docker Engine runs it as (Compose's own mapping)."""
        if self.condition == "none":
            return "no"
        if self.condition == "on-failure":
            return f"on-failure:{self.max_attempts}" if self.max_attempts else "on-failure"
        return "always"


class _RolloutConfig(_Strict):
    parallelism: Annotated[Whole, Field(ge=0, le=INT64_MAX)] | None = None
    delay: Duration | None = None
    monitor: Duration | None = None
    max_failure_ratio: Annotated[float, Field(ge=0, le=1)] | None = None
    order: Literal["start-first", "stop-first"] | None = None

    @field_validator("max_failure_ratio", mode="before")
    @classmethod
    def _ratio(cls, value: Any) -> Any:
        if isinstance(value, bool):
            raise ValueError(f"expected a ratio from 0 to 1, got {value!r}")
        return value

    def policy_keys(self, failure_action: str | None) -> dict[str, Any]:
        """The keys of fleet's update policy this sets (README: Compose files)."""
        keys: dict[str, Any] = {}
        if self.parallelism is not None:
            keys["batch"] = self.parallelism or "100%"  # 0: all at once
        if self.delay is not None:
            keys["delay"] = self.delay
        if self.monitor is not None:
            keys["monitor"] = self.monitor
        if self.max_failure_ratio is not None:  # of the hosts, rounded down
            keys["max_failures"] = f"{int(self.max_failure_ratio * 100 + 1e-9)}%"
        if self.order is not None:
            keys["order"] = self.order
        if failure_action is not None:
            keys["on_failure"] = failure_action
        return keys


class UpdateConfig(_RolloutConfig):
    failure_action: Literal["continue", "rollback", "pause"] | None = None


class RollbackConfig(_RolloutConfig):
    failure_action: Literal["continue", "pause"] | None = None


def _swarm_only(what: str, instead: str) -> BeforeValidator:
    def refuse(value: Any) -> Any:
        raise ValueError(f"deploy.{what} is Swarm's and not supported: {instead}")

    return BeforeValidator(refuse)


class Deploy(_Strict):
    """Compose's `deploy:` as fleet maps it onto one Docker Engine per host."""

    mode: Literal["replicated", "global"] = "replicated"
    replicas: Annotated[Whole, Field(ge=0, le=1000)] | None = None
    resources: DeployResources | None = None
    restart_policy: RestartPolicy | None = None
    update_config: UpdateConfig | None = None
    rollback_config: RollbackConfig | None = None
    labels: Any = None  # a Swarm service's labels: ignored with a warning
    endpoint_mode: Annotated[Any, _swarm_only(
        "endpoint_mode", "containers are reached by their networks' DNS")] = None
    placement: Annotated[Any, _swarm_only(
        "placement", "use fleet's 'hosts:' pattern (or x-fleet: {hosts: ...})")] = None

    @field_validator("mode", mode="before")
    @classmethod
    def _mode(cls, value: Any) -> Any:
        if value in ("replicated-job", "global-job"):
            raise ValueError(f"deploy.mode {value!r} (a Swarm job) is not supported")
        return value


def nested_errors(entries: Sequence[tuple[KeyPath, str]]) -> ItemErrors:
    """Errors at key paths below one value, as the nested ItemErrors the reporting reads."""
    heads: dict[str | int, list[tuple[KeyPath, str]]] = {}
    for path, message in entries:
        heads.setdefault(path[0], []).append((path[1:], message))
    items: list[tuple[int | str, Exception]] = []
    for head, rest in heads.items():
        leaves = [message for path, message in rest if not path]
        deeper = [(path, message) for path, message in rest if path]
        items += [(head, ValueError(message)) for message in leaves]
        if deeper:
            items.append((head, nested_errors(deeper)))
    return ItemErrors(items)


class Fold:
    """What `deploy` and `scale` set, and what conflicts with the service's own fields."""

    def __init__(self, given: Mapping[str, Any], explicit: set[str]) -> None:
        self.given = given  # the service's validated values
        self.explicit = explicit  # the fields the file sets
        self.updates: dict[str, Any] = {}
        self.set_by: dict[str, str] = {}  # field -> the key that set it here
        self.errors: list[tuple[KeyPath, str]] = []

    def set(self, field: str, value: Any, path: KeyPath, *, shown: str | None = None) -> None:
        """`field` takes `value`, unless the file sets it to something else."""
        current = self.updates.get(field, self.given.get(field))
        if (field in self.explicit or field in self.updates) and current != value:
            other = self.set_by.get(field, field)
            self.errors.append((path, f"{shown or value!r} differs from '{other}' "
                                      f"({current!r}); give it once"))
            return
        self.updates[field] = value
        self.set_by[field] = ".".join(map(str, path))

    def policy(self, field: str, keys: dict[str, Any], path: KeyPath,
               given: BaseModel | None) -> None:
        """fleet's `update`/`rollback` policy from Compose's config; keys given both ways
        must agree."""
        own = given.model_dump(exclude_unset=True) if given is not None else {}
        for key, value in keys.items():
            if key in own and own[key] != value:
                self.errors.append(((*path, _compose_key(key)),
                                    f"differs from {field}.{key} ({own[key]!r}); give it once"))
        self.updates[field] = {**keys, **own}


_POLICY_KEYS = {"batch": "parallelism", "max_failures": "max_failure_ratio",
                "on_failure": "failure_action"}


def _compose_key(key: str) -> str:
    return _POLICY_KEYS.get(key, key)


def fold(deploy: Deploy | None, scale: int | None, given: Mapping[str, Any],
         explicit: set[str], update: BaseModel | None, rollback: BaseModel | None
         ) -> tuple[dict[str, Any], ItemErrors | None]:
    """The field values `deploy`/`scale` give (fleet's names), or the conflicts found."""
    result = Fold(given, explicit)
    if scale is not None:
        result.set("replicas", scale, ("scale",))
    if deploy is not None:
        _fold_deploy(deploy, result, update, rollback)
    errors = nested_errors(result.errors) if result.errors else None
    return result.updates, errors


def _fold_deploy(deploy: Deploy, result: Fold, update: BaseModel | None,
                 rollback: BaseModel | None) -> None:
    base: KeyPath = ("deploy",)
    if deploy.mode == "global":
        if deploy.replicas is not None:
            result.errors.append(((*base, "replicas"), "mode: global runs one container per "
                                  "host; replicas can't be set with it"))
        result.set("replicas", 1, (*base, "mode"), shown="mode: global (1 per host)")
    elif deploy.replicas is not None:
        result.set("replicas", deploy.replicas, (*base, "replicas"))
    resources = deploy.resources or DeployResources()
    limits = resources.limits or DeployLimits()
    reservations = resources.reservations or DeployReservations()
    where: KeyPath = (*base, "resources")
    for field, value, path in (
            ("cpus", limits.cpus, (*where, "limits", "cpus")),
            ("mem_limit", limits.memory, (*where, "limits", "memory")),
            ("pids_limit", limits.pids, (*where, "limits", "pids")),
            ("mem_reservation", reservations.memory, (*where, "reservations", "memory"))):
        if value is not None:
            result.set(field, value, path)
    if reservations.devices:
        requests = [d.normalised() for d in reservations.devices]
        result.updates["device_requests"] = [*result.given.get("device_requests", []),
                                             *requests]
    if deploy.restart_policy is not None:
        result.set("restart", deploy.restart_policy.restart(), (*base, "restart_policy"))
    if deploy.update_config is not None:
        keys = deploy.update_config.policy_keys(deploy.update_config.failure_action)
        result.policy("update", keys, (*base, "update_config"), update)
    if deploy.rollback_config is not None:
        keys = deploy.rollback_config.policy_keys(deploy.rollback_config.failure_action)
        result.policy("rollback", keys, (*base, "rollback_config"), rollback)
