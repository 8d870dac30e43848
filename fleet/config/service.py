"""The service model: Compose's container fields plus fleet's placement and rollout keys.

One pydantic model both validates a service and normalizes it (short syntaxes become
long ones, durations become seconds, sizes bytes), and is the source of `fleet schema`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from fleet.config import compose_syntax as syntax
from fleet.config.references import parse_image_reference
from fleet.config.units import parse_byte_size, parse_duration
from fleet.config.validation import ItemErrors

NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]*$"
RESERVED_LABEL_PREFIX = "fleet."


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _before(func: Callable[[Any], Any], input_schema: Any) -> BeforeValidator:
    return BeforeValidator(func, json_schema_input_type=input_schema)


Duration = Annotated[float, _before(parse_duration, str | float)]
ByteSize = Annotated[int, _before(parse_byte_size, str | int)]
StrMap = dict[str, str]
MapOrList = dict[str, str | int | float | bool | None] | list[str]


def _named_map(what: str) -> Callable[[Any], dict[str, str]]:
    def parse(value: Any) -> dict[str, str]:
        pairs = syntax.key_value_map(value, what)
        return dict(sorted((k, v or "") for k, v in pairs.items()))

    return parse


class PortMapping(Strict):
    target: int = Field(ge=1, le=65535, description="Port inside the container.")
    published: int | None = Field(
        default=None, ge=1, le=65535, description="Host port; empty for an ephemeral one."
    )
    host_ip: str = ""
    protocol: Literal["tcp", "udp", "sctp"] = "tcp"
    mode: Literal["host", "ingress"] = "host"


def _port_item(item: Any) -> list[PortMapping]:
    if isinstance(item, dict):
        published = item.get("published")
        if isinstance(published, str) and "-" in published:
            raise ValueError("a published port range needs the short syntax")
        return [PortMapping.model_validate(item)]
    return [PortMapping(**mapping) for mapping in syntax.parse_short_port(item)]


def _ports(value: Any) -> list[Any]:
    if not isinstance(value, list):
        raise ValueError("ports must be a list")
    return _each_item(value, _port_item, PortMapping)


def _each_item(
    value: list[Any], parse: Callable[[Any], list[Any]], model: type[BaseModel]
) -> list[Any]:
    """Parse every item, collecting errors per item (so each points at its own line)."""
    result: list[Any] = []
    errors: list[tuple[int, Exception]] = []
    for index, item in enumerate(value):
        try:
            result.extend(parse(item))
        except ValueError as exc:  # pydantic's ValidationError included
            errors.append((index, exc))
    if errors:
        raise ItemErrors(errors, model)
    return result


class BindOptions(Strict):
    propagation: (
        Literal["shared", "slave", "private", "rshared", "rslave", "rprivate"] | None
    ) = None
    create_host_path: bool = True


class VolumeOptions(Strict):
    nocopy: bool = False


class TmpfsOptions(Strict):
    size: ByteSize | None = None
    mode: int | None = None


_VOLUME_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")


class Mount(Strict):
    type: Literal["bind", "volume", "tmpfs"]
    source: str | None = None
    target: str
    read_only: bool = False
    bind: BindOptions | None = None
    volume: VolumeOptions | None = None
    tmpfs: TmpfsOptions | None = None

    @model_validator(mode="after")
    def _check(self) -> Mount:
        if not self.target.startswith("/"):
            raise ValueError(f"volume target {self.target!r} must be an absolute path")
        if self.type == "bind":
            if not self.source:
                raise ValueError("a bind mount needs a source")
            if not self.source.startswith("/"):
                raise ValueError(
                    f"bind source {self.source!r} must be an absolute path on the host "
                    "(there is no project directory on a remote host)"
                )
        if self.type == "volume" and self.source and not _VOLUME_NAME.match(self.source):
            raise ValueError(
                f"bad volume name {self.source!r}: use letters, digits, '_', '.' and '-' "
                "(a host path must be absolute)"
            )
        if self.type == "tmpfs" and self.source:
            raise ValueError("a tmpfs mount takes no source")
        return self


def _volume_item(item: Any) -> list[Mount]:
    return [Mount.model_validate(syntax.parse_short_volume(item) if isinstance(item, str)
                                 else item)]


def _volumes(value: Any) -> list[Any]:
    if not isinstance(value, list):
        raise ValueError("volumes must be a list")
    return _each_item(value, _volume_item, Mount)


class Healthcheck(Strict):
    test: list[str] | None = Field(default=None, description='["CMD", ...], ["CMD-SHELL", "..."]')
    interval: Duration | None = None
    timeout: Duration | None = None
    retries: int | None = Field(default=None, ge=0)
    start_period: Duration | None = None
    disable: bool = False

    @field_validator("test", mode="before")
    @classmethod
    def _test(cls, value: Any) -> Any:
        if isinstance(value, str):
            return ["CMD-SHELL", value]
        if isinstance(value, list) and value and value[0] not in ("NONE", "CMD", "CMD-SHELL"):
            raise ValueError("healthcheck test must start with NONE, CMD or CMD-SHELL")
        return value

    @model_validator(mode="after")
    def _check(self) -> Healthcheck:
        if self.disable and self.test and self.test != ["NONE"]:
            raise ValueError("healthcheck: 'disable: true' cannot be combined with 'test'")
        return self


class Ulimit(Strict):
    soft: int
    hard: int


def _ulimits(value: Any) -> Any:
    if not isinstance(value, dict):
        raise ValueError("ulimits must be a mapping")
    return {k: {"soft": v, "hard": v} if isinstance(v, int) else v for k, v in value.items()}


class Logging(Strict):
    driver: str | None = None
    options: Annotated[StrMap, _before(_named_map("logging option"), StrMap)] = {}


_RESTART = re.compile(r"^(no|always|unless-stopped|on-failure(:\d+)?)$")


def _restart(value: Any) -> Any:
    if value is False:  # YAML reads an unquoted `no` as false
        return "no"
    if not isinstance(value, str) or not _RESTART.match(value):
        raise ValueError(
            f"bad restart policy {value!r}: use no, always, unless-stopped or on-failure[:N]"
        )
    return value


def _argv(what: str) -> BeforeValidator:
    return _before(lambda v: syntax.command_argv(v, what), str | list[str])


def _str_list(what: str) -> BeforeValidator:
    return _before(lambda v: syntax.string_list(v, what), str | list[str])


def _extra_hosts(value: Any) -> list[str]:
    if isinstance(value, dict):
        return [f"{k}:{v}" for k, v in value.items()]
    items = syntax.string_list(value, "extra_hosts")
    result = []
    for item in items:
        name, sep, address = item.replace("=", ":", 1).partition(":")
        if not sep or not name or not address:
            raise ValueError(f"bad extra_hosts entry {item!r}: expected HOST:IP")
        result.append(f"{name}:{address}")
    return result


def _tmpfs(value: Any) -> dict[str, str]:
    result = {}
    for item in syntax.string_list(value, "tmpfs"):
        path, _, options = item.partition(":")
        if not path.startswith("/"):
            raise ValueError(f"tmpfs path {path!r} must be absolute")
        result[path] = options
    return result


def _image(value: Any) -> Any:
    if isinstance(value, str):
        parse_image_reference(value)
    return value


def _networks(value: Any) -> Any:
    if not isinstance(value, dict):
        return value
    for name, options in value.items():
        if options not in (None, {}):
            raise ValueError(
                f"network {name!r}: per-network options (aliases, ipv4_address...) are not "
                "supported; list the network names only"
            )
    return sorted(value)


def _cpus(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError(f"cpus must be a number, got {value!r}")
    try:
        number = float(value) if isinstance(value, str | int | float) else value
    except ValueError:
        raise ValueError(f"cpus must be a number like 0.5 or 2, got {value!r}") from None
    if isinstance(number, float) and number <= 0:
        raise ValueError("cpus must be greater than 0")
    return number


class ContainerOptions(Strict):
    """The Compose fields fleet supports, with their Compose meanings."""

    image: Annotated[str, _before(_image, str)] = Field(
        description="A tag or an @sha256 digest, e.g. registry.example.com/shop/web:1.4.2"
    )
    command: Annotated[list[str] | None, _argv("command")] = None
    entrypoint: Annotated[list[str] | None, _argv("entrypoint")] = None
    environment: Annotated[dict[str, str | None], _before(
        lambda v: syntax.key_value_map(v, "environment"), MapOrList)] = {}
    env_file: Annotated[list[str], _str_list("env_file")] = []
    ports: Annotated[list[PortMapping], _before(_ports, list[str | int | dict[str, Any]])] = []
    volumes: Annotated[list[Mount], _before(_volumes, list[str | dict[str, Any]])] = []
    labels: Annotated[StrMap, _before(_named_map("label"), MapOrList)] = {}
    restart: Annotated[str, _before(_restart, str)] = "no"
    healthcheck: Healthcheck | None = None
    user: str | None = None
    working_dir: str | None = None
    hostname: str | None = None
    networks: Annotated[list[str], _before(_networks, list[str] | dict[str, None])] = []
    network_mode: str | None = None
    cap_add: list[str] = []
    cap_drop: list[str] = []
    privileged: bool = False
    read_only: bool = False
    tmpfs: Annotated[StrMap, _before(_tmpfs, str | list[str])] = {}
    ulimits: Annotated[dict[str, Ulimit], _before(_ulimits, dict[str, int | dict[str, int]])] = {}
    sysctls: Annotated[StrMap, _before(_named_map("sysctl"), MapOrList)] = {}
    logging: Logging | None = None
    cpus: Annotated[float | None, _before(_cpus, float | str)] = None
    mem_limit: ByteSize | None = None
    mem_reservation: ByteSize | None = None
    pids_limit: int | None = None
    stop_signal: str | None = Field(default=None, pattern=r"^(SIG[A-Z0-9+-]+|\d+)$")
    stop_grace_period: Duration | None = None
    extra_hosts: Annotated[list[str], _before(_extra_hosts, list[str] | dict[str, str])] = []
    dns: Annotated[list[str], _str_list("dns")] = []
    devices: list[str] = []
    init: bool | None = None
    shm_size: ByteSize | None = None

    @field_validator("labels")
    @classmethod
    def _labels(cls, value: dict[str, str]) -> dict[str, str]:
        for key in value:
            if key.startswith(RESERVED_LABEL_PREFIX):
                raise ValueError(f"label {key!r}: the prefix 'fleet.' is reserved for fleet")
        return value

    @model_validator(mode="after")
    def _cross_checks(self) -> ContainerOptions:
        if self.network_mode and self.networks:
            raise ValueError("'network_mode' and 'networks' cannot both be set")
        if self.network_mode == "host" and self.ports:
            raise ValueError("'ports' cannot be published with network_mode: host")
        return self


def _quantity(value: Any) -> int | str:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if isinstance(value, str):
        text = value.strip()
        if text.isdigit():
            return int(text)
        if text.endswith("%") and text[:-1].isdigit() and int(text[:-1]) <= 100:
            return text
    raise ValueError(f"expected a count (e.g. 2) or a percentage (e.g. '25%'), got {value!r}")


Quantity = Annotated[int | str, _before(_quantity, int | str)]


class Probe(Strict):
    http: str | None = Field(default=None, description="URL fetched from the host itself.")
    status: int = 200
    tcp: int | None = Field(default=None, ge=1, le=65535)

    @model_validator(mode="after")
    def _one(self) -> Probe:
        if (self.http is None) == (self.tcp is None):
            raise ValueError("a probe needs exactly one of 'http' or 'tcp'")
        return self


class UpdatePolicy(Strict):
    """How changes roll out across hosts (a service's `update:` or the playbook's default)."""

    waves: str | list[str] | None = Field(
        default=None, description="A label key (one wave per value) or a list of host patterns."
    )
    batch: Quantity = 1
    canary: Quantity = 0
    canary_wait: Duration = 0.0
    delay: Duration = 0.0
    monitor: Duration = 5.0
    timeout: Duration = 120.0
    max_failures: Quantity = 0
    on_failure: Literal["rollback", "pause", "continue"] = "rollback"
    order: Literal["start-first", "stop-first", "auto"] = "auto"
    probe: Probe | None = None


class Service(ContainerOptions):
    """A service: container options plus placement, replica count and rollout policy."""

    hosts: str = Field(default="all", description="Placement: a host pattern.")
    replicas: int = Field(default=1, ge=0, le=1000)
    update: UpdatePolicy | None = None

    def container_options(self) -> dict[str, Any]:
        """The fields a container depends on (placement and rollout excluded)."""
        return self.model_dump(mode="json", exclude={"hosts", "replicas", "update", "env_file"})


# Keys rendered once per playbook rather than per host: placement and rollout policy
# must be the same for every host of a service.
HOST_INDEPENDENT_KEYS = frozenset({"hosts", "update"})
