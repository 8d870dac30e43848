"""The service model: Compose's container fields plus fleet's placement and rollout keys.

One pydantic model both validates a service and normalizes it (short syntaxes become
long ones, durations become seconds, sizes bytes), and is the source of `fleet schema`.
"""

from __future__ import annotations

import ipaddress
import re
import urllib.parse
from collections.abc import Callable
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    ValidationInfo,
    field_validator,
    model_serializer,
    model_validator,
)

from fleet.config import compose_fields as fields
from fleet.config import compose_syntax as syntax
from fleet.config.compose_deploy import Deploy, fold
from fleet.config.references import parse_image_reference
from fleet.config.units import (
    INT64_MAX,
    NS_PER_SECOND,
    format_bytes,
    parse_byte_size,
    parse_duration,
)
from fleet.config.validation import ItemErrors, KeyProblem

NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]*$"
RESERVED_LABEL_PREFIX = "fleet."


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)


def without_extensions(value: Any) -> Any:
    """A mapping without its `x-*` keys: Compose allows extensions anywhere, and ignores them."""
    if isinstance(value, dict):
        return {k: v for k, v in value.items() if not (isinstance(k, str) and k.startswith("x-"))}
    return value


class Extensible(Strict):
    """A Compose mapping that may carry `x-*` extension keys (ignored, as Compose does)."""

    @model_validator(mode="before")
    @classmethod
    def _extensions(cls, value: Any) -> Any:
        return without_extensions(value)


def _before(func: Callable[[Any], Any], input_schema: Any) -> BeforeValidator:
    return BeforeValidator(func, json_schema_input_type=input_schema)


def _whole_number(value: Any) -> Any:
    if isinstance(value, bool):  # a bool is an int to Python and to pydantic; not to Docker
        raise ValueError(f"expected a whole number, got {value!r}")
    return value


Duration = Annotated[float, _before(parse_duration, str | float)]
ByteSize = Annotated[int, _before(parse_byte_size, str | int)]
_NO_BOOL = BeforeValidator(_whole_number)
Int = Annotated[int, _NO_BOOL]
PortNumber = Annotated[int, Field(ge=1, le=65535), _NO_BOOL]
StrMap = dict[str, str]
MapOrList = dict[str, str | int | float | bool | None] | list[str]


def _named_map(what: str) -> Callable[[Any], dict[str, str]]:
    def parse(value: Any) -> dict[str, str]:
        pairs = syntax.key_value_map(value, what)
        return dict(sorted((k, v or "") for k, v in pairs.items()))

    return parse


def check_ip(value: str, what: str) -> str:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        raise ValueError(f"bad {what} {value!r}: expected an IPv4 or IPv6 address, "
                         "e.g. 127.0.0.1 or ::1") from None
    return value


class PortMapping(Strict):
    target: PortNumber = Field(description="Port inside the container.")
    published: PortNumber | None = Field(
        default=None, description="Host port; empty for an ephemeral one."
    )
    host_ip: str = ""
    protocol: Literal["tcp", "udp", "sctp"] = "tcp"
    mode: Literal["host", "ingress"] = Field(
        default="host", description="Either way, published on each host it runs on (there "
                                    "is no routing mesh without Swarm).")
    name: str | None = Field(default=None, description="A name documenting the port.")
    app_protocol: str | None = Field(default=None, pattern=r"^[a-zA-Z0-9][a-zA-Z0-9_.+-]*$",
                                     description="The application protocol (http, grpc...).")

    @model_serializer(mode="wrap")
    def _dump(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        for later in ("name", "app_protocol"):  # left out unset: older specs stay as they were
            if data.get(later) is None:
                data.pop(later, None)
        return data

    @field_validator("host_ip")
    @classmethod
    def _host_ip(cls, value: str) -> str:
        return check_ip(value, "host IP") if value else value


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


class BindOptions(Extensible):
    propagation: (
        Literal["shared", "slave", "private", "rshared", "rslave", "rprivate"] | None
    ) = None
    create_host_path: bool = True
    selinux: Literal["z", "Z"] | None = Field(
        default=None, description="Relabel the source for SELinux: z shared, Z private.")
    recursive: Literal["enabled", "disabled", "writable", "readonly"] | None = None


def _octal_mode(value: Any) -> Any:
    """Compose reads a tmpfs mode given as text as octal digits ("1777")."""
    if isinstance(value, str):
        try:
            return int(value, 8)
        except ValueError:
            raise ValueError(f"bad mode {value!r}: expected octal digits, e.g. '1777'") from None
    return value


class VolumeOptions(Extensible):
    nocopy: bool = False
    subpath: str | None = Field(default=None, description="A path inside the volume to mount "
                                "(Docker Engine API 1.45 or newer).")
    labels: Annotated[StrMap, _before(_named_map("volume label"), MapOrList)] = {}

    @field_validator("subpath")
    @classmethod
    def _subpath(cls, value: str | None) -> str | None:
        if value is not None and (not value or value.startswith("/")
                                  or ".." in value.split("/") or "\0" in value):
            raise ValueError(f"bad subpath {value!r}: a relative path inside the volume, "
                             "without '..'")
        return value


class TmpfsOptions(Extensible):
    size: ByteSize | None = None
    mode: Annotated[int, Field(ge=0, le=0o7777), _NO_BOOL, _before(_octal_mode, int | str)
                    ] | None = None


# Compose's rule for the keys of top-level `volumes:` (a named volume's source).
VOLUME_KEY = re.compile(r"^[a-zA-Z0-9._-]+$")
_REFUSED_MOUNT_TYPES = {
    "image": "needs Docker Engine API 1.47, and fleet speaks 1.41",
    "npipe": "named pipes exist on Windows hosts only",
    "cluster": "cluster volumes are Docker Swarm's",
}


class Mount(Extensible):
    type: Literal["bind", "volume", "tmpfs"]
    source: str | None = None
    target: str
    read_only: bool = False
    # Accepted as Compose accepts it, and not sent: Docker on Linux ignores it.
    consistency: str | None = Field(default=None, exclude=True,
                                    description="Accepted and ignored (Docker on Linux does).")
    bind: BindOptions | None = None
    volume: VolumeOptions | None = None
    tmpfs: TmpfsOptions | None = None

    @model_validator(mode="before")
    @classmethod
    def _refused(cls, value: Any) -> Any:
        kind = value.get("type") if isinstance(value, dict) else None
        if isinstance(kind, str) and kind in _REFUSED_MOUNT_TYPES:
            raise ValueError(f"volume type '{kind}' is not supported: "
                             f"{_REFUSED_MOUNT_TYPES[kind]}")
        return value

    @model_validator(mode="after")
    def _check(self) -> Mount:
        if not self.target.startswith("/"):
            raise ValueError(f"volume target {self.target!r} must be an absolute path")
        for block in ("bind", "volume", "tmpfs"):
            if getattr(self, block) is not None and self.type != block:
                raise ValueError(f"'{block}' options apply to {block} mounts, not to a "
                                 f"{self.type} mount")
        if self.type == "bind":
            self._check_bind()
        if self.type == "volume" and self.source and not VOLUME_KEY.match(self.source):
            raise ValueError(
                f"bad volume name {self.source!r}: use letters, digits, '_', '.' and '-' "
                "(a host path must be absolute)"
            )
        if self.type == "tmpfs" and self.source:
            raise ValueError("a tmpfs mount takes no source")
        return self

    def _check_bind(self) -> None:
        if not self.source:
            raise ValueError("a bind mount needs a source")
        if self.source.startswith("~"):
            raise ValueError(
                f"bind source {self.source!r}: '~' is the home directory of the machine "
                "running Compose, and fleet reads files only inside the project: write a path "
                "relative to the compose file (delivered to the hosts) or an absolute path "
                "on the hosts")
        if "\0" in self.source:
            raise ValueError("a bind source cannot hold a NUL character")
        # A relative source is a file or directory next to the compose file (delivered to
        # the hosts) or a data directory of the project on them: fleet.core.service_files.
        bind = self.bind or BindOptions()
        # A source that may be created needs the Engine's Binds; Binds can't say more than
        # mode, propagation and SELinux label. The Mounts API can, but never creates a source.
        if bind.selinux and not bind.create_host_path:
            raise ValueError("bind.selinux needs create_host_path: true: the Engine relabels "
                             "only through its Binds, which create a missing source")
        if bind.recursive not in (None, "enabled") and bind.create_host_path:
            raise ValueError(f"bind.recursive: {bind.recursive} needs create_host_path: false: "
                             "the Engine's Binds, which create a missing source, mount "
                             "recursively")
        if bind.recursive in ("writable", "readonly") and not self.read_only:
            raise ValueError(f"bind.recursive: {bind.recursive} applies to a read_only mount")


def _volume_item(item: Any) -> list[Mount]:
    return [Mount.model_validate(syntax.parse_short_volume(item) if isinstance(item, str)
                                 else item)]


def _volumes(value: Any) -> list[Any]:
    if not isinstance(value, list):
        raise ValueError("volumes must be a list")
    return _each_item(value, _volume_item, Mount)


def _refuse_start_interval(value: Any) -> Any:
    raise ValueError("healthcheck 'start_interval' is not supported: it needs Docker Engine "
                     "API 1.44 and fleet speaks 1.41")


# Docker's HealthConfig: a duration is 0 (the default) or at least 1ms (MinimumDuration).
HEALTHCHECK_MIN_NS = 1_000_000


def _healthcheck_duration(value: float | None) -> float | None:
    # Checked as the body will send it: whole nanoseconds (fleet.docker.bodies).
    if value and int(value * NS_PER_SECOND) < HEALTHCHECK_MIN_NS:
        raise ValueError("must be 0 or at least 1ms (Docker's minimum), got "
                         f"{value * NS_PER_SECOND:g}ns")
    return value


HealthDuration = Annotated[Duration, AfterValidator(_healthcheck_duration)]


class Healthcheck(Strict):
    test: list[str] | None = Field(default=None, description='["CMD", ...], ["CMD-SHELL", "..."]')
    interval: HealthDuration | None = None
    timeout: HealthDuration | None = None
    retries: Annotated[int, Field(ge=0, le=INT64_MAX), _NO_BOOL] | None = None
    start_period: HealthDuration | None = None
    disable: bool = False
    start_interval: Annotated[Any, _before(_refuse_start_interval, str)] = Field(
        default=None, exclude=True)

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


# The names Docker's ulimit parser knows (go-units' ulimitNameMapping; 'as' it leaves out).
ULIMIT_NAMES = frozenset({"core", "cpu", "data", "fsize", "locks", "memlock", "msgqueue", "nice",
                          "nofile", "nproc", "rss", "rtprio", "rttime", "sigpending", "stack"})
UlimitValue = Annotated[int, Field(ge=-1, le=INT64_MAX, description="-1 for unlimited."),
                      _NO_BOOL]


class Ulimit(Strict):
    soft: UlimitValue
    hard: UlimitValue

    @model_validator(mode="after")
    def _order(self) -> Ulimit:
        if self.hard != -1 and (self.soft == -1 or self.soft > self.hard):
            shown = "unlimited (-1)" if self.soft == -1 else str(self.soft)
            raise ValueError(f"soft limit {shown} is above the hard limit {self.hard}")
        return self


def _ulimits(value: Any) -> Any:
    if not isinstance(value, dict):
        raise ValueError("ulimits must be a mapping")
    errors: list[tuple[int | str, Exception]] = []
    for name, limit in value.items():
        if name not in ULIMIT_NAMES:
            errors.append((name, KeyProblem(f"unknown ulimit '{name}': Docker knows "
                                            f"{', '.join(sorted(ULIMIT_NAMES))}")))
        elif isinstance(limit, bool) or not isinstance(limit, int | dict):
            errors.append((name, ValueError(f"ulimit '{name}' must be a whole number or "
                                            f"{{soft: N, hard: N}}, got {limit!r}")))
    if errors:
        raise ItemErrors(errors)
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
    retries = value.partition(":")[2]
    if retries and int(retries) > INT64_MAX:
        raise ValueError(f"bad restart policy {value!r}: at most {INT64_MAX} retries")
    return value


def _environment_entry(name: str, value: str | None) -> Exception | None:
    """What Docker or a process cannot take: `NAME=VALUE` strings, NUL-terminated."""
    if not name:
        return KeyProblem("empty environment variable name")
    if "=" in name:
        return KeyProblem(f"environment variable name {name!r} contains '=' (Docker would split "
                          "it there); write NAME: VALUE")
    if any(c in name for c in "\0\n\r"):
        return KeyProblem(f"environment variable name {name!r} contains a NUL or a line break")
    if value is not None and "\0" in value:
        return ValueError(f"the value of environment variable {name!r} contains a NUL "
                          "character, which no process environment can carry")
    return None


def _environment(value: Any) -> dict[str, str | None]:
    """Compose's map-or-list `environment`, each entry checked where it is written."""
    entries: list[tuple[int | str, str, str | None]] = []
    errors: list[tuple[int | str, Exception]] = []
    if isinstance(value, dict):
        for key, raw in value.items():
            try:
                text = None if raw is None else syntax.scalar_to_str(raw, f"environment {key!r}")
            except ValueError as exc:
                errors.append((key, exc))
                continue
            entries.append((key, str(key), text))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            if not isinstance(item, str):
                errors.append((index, ValueError("environment list items must be 'NAME=VALUE' "
                                                 "strings")))
                continue
            name, found, text = item.partition("=")
            entries.append((index, name, text if found else None))
    else:
        raise ValueError("environment must be a mapping or a list of 'NAME=VALUE' strings")
    result: dict[str, str | None] = {}
    for where, name, text in entries:
        problem = _environment_entry(name, text)
        if problem is None and name in result:
            problem = ValueError(f"environment variable {name!r} is given twice")
        if problem is not None:
            errors.append((where, problem))
            continue
        result[name] = text
    if errors:
        raise ItemErrors(errors)
    return result


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


_ALIAS = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,252}$")
_MAC = re.compile(r"^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$")


def _aliases(value: Any) -> list[str]:
    aliases = syntax.string_list(value, "aliases")
    for alias in aliases:
        if not _ALIAS.match(alias):
            raise ValueError(f"bad alias {alias!r}: a host name (letters, digits, '_', '.', '-')")
    return list(dict.fromkeys(aliases))


class ServiceNetwork(Extensible):
    """A service's settings on one network (Compose's `networks: {NAME: {...}}`)."""

    aliases: Annotated[list[str], _before(_aliases, list[str])] = Field(
        default=[], description="More names for the service on this network (its own name "
                                "is always one).")
    ipv4_address: str | None = None
    ipv6_address: str | None = None
    link_local_ips: Annotated[list[str], _str_list("link_local_ips")] = []
    mac_address: str | None = Field(default=None, description="Docker Engine API 1.44 or newer.")
    driver_opts: Annotated[StrMap, _before(_named_map("driver option"), StrMap)] = {}
    priority: Int = Field(default=0, description="Networks are joined highest first.")
    gw_priority: Int = Field(default=0, description="Docker Engine API 1.48 or newer.")

    @model_validator(mode="before")
    @classmethod
    def _refused(cls, value: Any) -> Any:
        if isinstance(value, dict) and "interface_name" in value:
            raise ValueError("interface_name is not supported: Docker Engine API 1.41, which "
                             "fleet speaks, cannot name a container's interface")
        return value

    @field_validator("ipv4_address", "ipv6_address")
    @classmethod
    def _address(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return value
        version = 4 if info.field_name == "ipv4_address" else 6
        try:
            address = ipaddress.ip_address(value)
        except ValueError:
            address = None
        if address is None or address.version != version:
            raise ValueError(f"bad {info.field_name} {value!r}: expected an IPv{version} "
                             "address")
        return str(address)

    @field_validator("link_local_ips")
    @classmethod
    def _link_local(cls, value: list[str]) -> list[str]:
        return [check_ip(ip, "link-local IP") for ip in value]

    @field_validator("mac_address")
    @classmethod
    def _mac(cls, value: str | None) -> str | None:
        if value is not None and not _MAC.match(value):
            raise ValueError(f"bad mac_address {value!r}: expected six hex pairs, e.g. "
                             "02:42:ac:11:00:02")
        return value.lower() if value else value


def _networks(value: Any) -> Any:
    """The list form (names) or the mapping form (name -> settings or null), as a mapping."""
    if isinstance(value, list):
        names = syntax.string_list(value, "networks")
        if len(set(names)) != len(names):
            raise ValueError("networks: a network is listed twice")
        value = dict.fromkeys(names)
    if not isinstance(value, dict):
        raise ValueError("networks must be a list of names or a mapping of names to settings")
    return {name: {} if options is None else options
            for name, options in sorted(value.items(), key=lambda item: str(item[0]))}


# Docker's rule for network names (and so for `network_mode: NAME`).
NETWORK_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")
_CONTAINER_NAME = re.compile(r"^/?[a-zA-Z0-9][a-zA-Z0-9_.-]*$")


def _network_mode(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    kind, sep, target = value.partition(":")
    if (sep and kind == "container" and _CONTAINER_NAME.match(target)) or (
            not sep and NETWORK_NAME.match(value)):
        return value
    raise ValueError(f"bad network_mode {value!r}: use none, host, bridge, container:NAME or a "
                     "network's name (Compose's service:NAME is not supported)")


def _image(value: Any) -> Any:
    if isinstance(value, str):
        parse_image_reference(value)
    return value




def _group_add(value: Any) -> Any:
    if isinstance(value, list):
        return [str(v) if isinstance(v, int) and not isinstance(v, bool) else v for v in value]
    return value


class NormalisedDevice(Strict):
    """A device request as specs record it (fleet.config.compose_fields.DeviceRequest)."""

    driver: str
    count: int
    device_ids: list[str]
    capabilities: list[str]
    options: StrMap


_Microseconds = Annotated[int, _before(fields.microseconds("a CPU period", minimum=1000),
                                       int | str)]

# Fields added after specs were first recorded: a dump leaves them out while they are at
# their default, so the spec (and hash) of a container made before they existed is unchanged.
LATER_FIELDS = frozenset({
    "container_name", "expose", "platform", "security_opt", "stdin_open", "tty",
    "volumes_from", "runtime", "link_aliases", "device_requests", "domainname", "dns_opt",
    "dns_search", "group_add", "cgroup", "cgroup_parent", "cpu_shares", "cpu_period",
    "cpu_quota", "cpu_rt_runtime", "cpu_rt_period", "cpuset", "device_cgroup_rules", "ipc",
    "pid", "uts", "userns_mode", "oom_kill_disable", "oom_score_adj", "mem_swappiness",
    "storage_opt", "blkio_config",
})
# Set by fleet from other services (links) or other keys (gpus, deploy), never written.
DERIVED_FIELDS = frozenset({"link_aliases", "device_requests"})


class ContainerOptions(Strict):
    """The Compose fields fleet supports, with their Compose meanings."""

    image: Annotated[str, _before(_image, str)] = Field(
        description="A tag or an @sha256 digest, e.g. registry.example.com/shop/web:1.4.2"
    )
    command: Annotated[list[str] | None, _argv("command")] = None
    entrypoint: Annotated[list[str] | None, _argv("entrypoint")] = None
    environment: Annotated[dict[str, str | None], _before(_environment, MapOrList)] = {}
    env_file: Annotated[list[str], _before(fields.parse_env_files,
                                           str | list[str | dict[str, Any]])] = []
    ports: Annotated[list[PortMapping], _before(_ports, list[str | int | dict[str, Any]])] = []
    volumes: Annotated[list[Mount], _before(_volumes, list[str | dict[str, Any]])] = []
    labels: Annotated[StrMap, _before(_named_map("label"), MapOrList)] = {}
    restart: Annotated[str, _before(_restart, str)] = "no"
    healthcheck: Healthcheck | None = None
    user: str | None = None
    working_dir: str | None = None
    hostname: str | None = None
    networks: Annotated[dict[str, ServiceNetwork],
                        _before(_networks, list[str] | dict[str, ServiceNetwork | None])] = {}
    network_mode: Annotated[str, _before(_network_mode, str)] | None = None
    cap_add: list[str] = []
    cap_drop: list[str] = []
    privileged: bool = False
    read_only: bool = False
    tmpfs: Annotated[StrMap, _before(_tmpfs, str | list[str])] = {}
    ulimits: Annotated[dict[str, Ulimit], _before(_ulimits, dict[str, int | dict[str, Any]])] = {}
    sysctls: Annotated[StrMap, _before(_named_map("sysctl"), MapOrList)] = {}
    logging: Logging | None = None
    cpus: Annotated[float | None, _before(fields.parse_cpus, float | str)] = None
    mem_limit: ByteSize | None = None
    mem_reservation: ByteSize | None = None
    pids_limit: Annotated[int, Field(ge=-1, le=INT64_MAX, description="-1 or 0 for unlimited."),
                          _NO_BOOL] | None = None
    stop_signal: str | None = Field(default=None, pattern=r"^(SIG[A-Z0-9+-]+|\d+)$")
    stop_grace_period: Duration | None = None
    extra_hosts: Annotated[list[str], _before(_extra_hosts, list[str] | dict[str, str])] = []
    dns: Annotated[list[str], _str_list("dns")] = []
    devices: list[str] = []
    init: bool | None = None
    shm_size: ByteSize | None = None
    # -- LATER_FIELDS -----------------------------------------------------------------------
    container_name: str | None = Field(
        default=None, pattern=fields.CONTAINER_NAME.pattern,
        description="The container's name on the host (only with one replica per host).")
    expose: Annotated[list[str], _before(fields.parse_expose, list[str | int])] = []
    platform: Annotated[str, _before(fields.parse_platform, str)] | None = None
    security_opt: Annotated[list[str], _before(fields.parse_security_opt, list[str])] = []
    stdin_open: bool = False
    tty: bool = False
    volumes_from: Annotated[list[str], _before(fields.parse_volumes_from, list[str])] = Field(
        default=[], description="SERVICE[:ro|rw] (its replica 1 on the same host) or "
                                "container:NAME[:ro|rw]")
    runtime: str | None = Field(default=None, pattern=fields.RUNTIME_NAME.pattern)
    link_aliases: list[str] = []
    device_requests: list[NormalisedDevice] = []
    domainname: str | None = None
    dns_opt: Annotated[list[str], _str_list("dns_opt")] = []
    dns_search: Annotated[list[str], _str_list("dns_search")] = []
    group_add: Annotated[list[str], _before(_group_add, list[str | int])] = []
    cgroup: Literal["host", "private"] | None = None
    cgroup_parent: str | None = None
    cpu_shares: Annotated[int, Field(ge=0, le=INT64_MAX), _NO_BOOL] | None = None
    cpu_period: _Microseconds | None = None
    cpu_quota: Annotated[int, _before(fields.microseconds("cpu_quota", minimum=1000,
                                                          allow_unlimited=True),
                                      int | str)] | None = None
    cpu_rt_runtime: Annotated[int, _before(fields.microseconds("cpu_rt_runtime", minimum=0),
                                           int | str)] | None = None
    cpu_rt_period: Annotated[int, _before(fields.microseconds("cpu_rt_period", minimum=1),
                                          int | str)] | None = None
    cpuset: str | None = Field(default=None, pattern=r"^[0-9]+(-[0-9]+)?(,[0-9]+(-[0-9]+)?)*$")
    device_cgroup_rules: Annotated[list[str], _before(fields.parse_device_cgroup_rules,
                                                      list[str])] = []
    ipc: Annotated[str, _before(fields.namespace_mode(
        ("host", "private", "shareable", "none", "container:NAME", "service:NAME"), "ipc"),
        str)] | None = None
    pid: Annotated[str, _before(fields.namespace_mode(
        ("host", "container:NAME", "service:NAME"), "pid"), str)] | None = None
    uts: Literal["host"] | None = None
    userns_mode: Literal["host"] | None = None
    oom_kill_disable: bool | None = None
    oom_score_adj: Annotated[int, Field(ge=-1000, le=1000), _NO_BOOL] | None = None
    mem_swappiness: Annotated[int, Field(ge=0, le=100), _NO_BOOL] | None = None
    storage_opt: Annotated[StrMap, _before(_named_map("storage option"), MapOrList)] = {}
    blkio_config: fields.BlkioConfig | None = None

    @model_serializer(mode="wrap")
    def _dump(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        for name in LATER_FIELDS:
            if name in data and data[name] == _LATER_DEFAULTS[name]:
                del data[name]
        return data

    @field_validator("labels")
    @classmethod
    def _labels(cls, value: dict[str, str]) -> dict[str, str]:
        for key in value:
            if key.startswith(RESERVED_LABEL_PREFIX):
                raise ValueError(f"label {key!r}: the prefix 'fleet.' is reserved for fleet")
        return value

    @field_validator("mem_limit", "mem_reservation")
    @classmethod
    def _memory(cls, value: int | None, info: ValidationInfo) -> int | None:
        if not fields.check_memory(value, limit=info.field_name == "mem_limit"):
            return value  # 0: no limit
        limit = info.data.get("mem_limit")
        if info.field_name == "mem_reservation" and limit and value and value > limit:
            raise ValueError(f"mem_reservation {format_bytes(value)} is above mem_limit "
                             f"{format_bytes(limit)}: Docker refuses that")
        return value

    @model_validator(mode="after")
    def _cross_checks(self) -> ContainerOptions:
        if self.network_mode and self.networks:
            raise ValueError("'network_mode' and 'networks' cannot both be set")
        if self.network_mode == "host" and self.ports:
            raise ValueError("'ports' cannot be published with network_mode: host")
        if self.cpus and (self.cpu_period or self.cpu_quota):
            raise ItemErrors([("cpu_period" if self.cpu_period else "cpu_quota", ValueError(
                "'cpus' and 'cpu_period'/'cpu_quota' cannot both be set: Docker refuses "
                "NanoCpus with a CFS period or quota"))])
        if self.uts == "host" and (self.hostname or self.domainname):
            raise ItemErrors([("uts", ValueError(
                "uts: host shares the host's hostname and domain name: 'hostname' and "
                "'domainname' can't be set with it (Docker refuses it when the container "
                "starts)"))])
        return self


_LATER_DEFAULTS = {name: ContainerOptions.model_fields[name].get_default(
    call_default_factory=True) for name in LATER_FIELDS}


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
    status: Annotated[int, Field(ge=100, le=599), _NO_BOOL] = 200
    tcp: PortNumber | None = None

    @field_validator("http")
    @classmethod
    def _http(cls, value: str | None) -> str | None:
        if value is None:
            return value
        try:
            parts = urllib.parse.urlsplit(value)
            port = parts.port  # ValueError when out of range or not a number
        except ValueError:
            parts, port = None, 0
        if parts is None or port == 0:
            raise ValueError(f"bad probe URL {value!r}: bad host or port (1 to 65535)")
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"bad probe URL {value!r}: expected http://HOST[:PORT]/PATH "
                             "(fetched from the host itself; https is not supported)")
        return value

    @model_validator(mode="after")
    def _one(self) -> Probe:
        if (self.http is None) == (self.tcp is None):
            raise ValueError("a probe needs exactly one of 'http' or 'tcp'")
        return self


def _build_section(value: Any) -> Any:
    """Compose's `build`: a context path, or a mapping of the keys below (`x-*` dropped)."""
    if isinstance(value, str):
        return {"context": value}
    if isinstance(value, dict):
        value = {k: v for k, v in value.items() if not str(k).startswith("x-")}
        args = value.get("args")
        if isinstance(args, list):  # ["KEY=VALUE", "KEY"]: Compose's list form
            value["args"] = dict(str(a).partition("=")[::2] for a in args)
    return value


class BuildSection(Strict):
    """Compose's `build`, run by the controller's Docker daemon (image_source: controller)."""

    context: Annotated[str, Field(min_length=1, max_length=4096)] = Field(
        default=".", description="The build context, relative to the compose file.")
    dockerfile: Annotated[str, Field(min_length=1, max_length=4096)] | None = None
    args: dict[Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")], str] = {}
    target: Annotated[str, Field(min_length=1, max_length=256)] | None = None


class ArchiveSource(Strict):
    """`image_source: {archive: PATH}`: a docker-archive file (what `docker save` writes)."""

    archive: Annotated[str, Field(min_length=1, max_length=4096)] = Field(
        description="The archive's path, relative to the playbook's directory.")


def _image_source(value: Any) -> Any:
    if value in ("registry", "controller") or value is None:
        return value
    if isinstance(value, dict) and set(value) == {"archive"}:
        return value
    shown = repr(value)[:80]
    raise ValueError(f"image_source must be registry, controller or {{archive: PATH}}; "
                     f"got {shown}")


ImageSource = Annotated[Literal["registry", "controller"] | ArchiveSource,
                        _before(_image_source, str | dict[str, str])]
IMAGE_SOURCE_HELP = (
    "Where the image comes from: `registry` (the default: each host's daemon pulls it), "
    "`controller` (the controller's Docker daemon has it: fleet sends each host only the "
    "layers it lacks, over SSH), or `{archive: PATH}` (a docker-archive file on the "
    "controller, sent the same way).")


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


_PROXY_HOSTNAME = re.compile(r"^(\*\.)?([a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?\.)*"
                             r"[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?$")
_PROXY_PATH = re.compile(r"^/[A-Za-z0-9._~!$&'()+,;=:@%/-]*$")


def _proxy_hostname(value: str) -> str:
    if len(value) > 253 or not _PROXY_HOSTNAME.match(value):
        raise ValueError(f"bad host name {value!r}: RFC 1123 labels of letters, digits and "
                         "'-', optionally after '*.'")
    return value.lower()


def _proxy_path(value: str) -> str:
    if len(value) > 1024 or not _PROXY_PATH.match(value):
        raise ValueError(f"bad path prefix {value!r}: it starts with '/' and holds no spaces, "
                         "'*' or '?'")
    return value.rstrip("/") or "/"


_GRANT_NAME = r"^[a-zA-Z0-9._-]+$"


class ProxyTLS(Strict):
    """`proxy.tls`: the certificate the proxy serves the service's host names with."""

    certificate: str = Field(pattern=_GRANT_NAME, max_length=256, description=(
        "A top-level `secrets:` entry (a file or an environment variable) holding the PEM "
        "certificate chain."))
    key: str = Field(pattern=_GRANT_NAME, max_length=256, description=(
        "A top-level `secrets:` entry holding its PEM private key."))


class ServiceProxy(Strict):
    """`proxy:`: the service is served through the host's proxy (fleet.core.proxy), which
    owns the host ports; its containers publish none and are swapped without a gap."""

    ports: Annotated[list[PortNumber], Field(min_length=1, max_length=16)] = Field(
        default=[80], description="The host ports the proxy serves the service on.")
    container_port: PortNumber = Field(description="The port the containers listen on.")
    hostnames: Annotated[list[Annotated[str, AfterValidator(_proxy_hostname)]],
                         Field(max_length=100)] = Field(
        default=[], description="Requests for these host names only (default: any).")
    paths: Annotated[list[Annotated[str, AfterValidator(_proxy_path)]],
                     Field(max_length=100)] = Field(
        default=[], description="Requests under these path prefixes only (default: any).")
    drain: Duration = Field(default=5.0, ge=0, le=3600, description=(
        "How long a replaced container keeps serving the requests it has, once the proxy "
        "sends it no new ones, before it is stopped."))
    tls: ProxyTLS | None = Field(default=None, description=(
        "Serve HTTPS on `ports` with this certificate (by SNI, among the others on the "
        "port)."))


class ProxySettings(Strict):
    """The playbook's `proxy:`: how the per-host proxy itself runs."""

    image: str = Field(default="caddy:2.6", min_length=1, max_length=1024, description=(
        "The proxy's image (templates allowed): Caddy 2.6 or newer, with `sh`."))
    migrate_connections: bool = Field(default=True, description=(
        "Set net.ipv4.tcp_migrate_req=1 in the proxy's network namespace, so connections "
        "queued on an old proxy's listener when it stops go to the new one instead of being "
        "reset (Linux 5.14 and newer; false on older kernels)."))


class Service(ContainerOptions):
    """A service: container options plus placement, replica count and rollout policy."""

    hosts: str = Field(default="all", description="Placement: a host pattern.")
    replicas: Int = Field(default=1, ge=0, le=1000, description="Containers per host.")
    update: UpdatePolicy | None = None
    rollback: UpdatePolicy | None = Field(
        default=None, description="The policy `fleet rollback` rolls out with (default: "
                                  "update); Compose's deploy.rollback_config sets it.")
    # Compose's keys that are not container options:
    depends_on: Annotated[dict[str, fields.Dependency], _before(
        fields.parse_depends_on, list[str] | dict[str, Any])] = Field(
        default={}, description="Services this one starts and rolls out after, on each "
                                "host where both run, once they meet the condition.")
    links: Annotated[list[str], _before(fields.parse_links, list[str])] = Field(
        default=[], description="SERVICE[:ALIAS]: the alias resolves to SERVICE on the "
                                "networks they share.")
    pull_policy: Annotated[Literal["always", "missing", "never"],
                           _before(fields.parse_pull_policy, str)] = "always"
    deploy: Deploy | None = None
    scale: Annotated[int, Field(ge=0, le=1000), _NO_BOOL] | None = None
    gpus: Annotated[list[dict[str, Any]], _before(
        fields.parse_gpus, str | list[dict[str, Any]])] = []
    attach: bool = Field(default=True, description="No effect: fleet never attaches to a "
                                                   "container's output.")
    configs: Annotated[list[dict[str, Any]], fields.grants("configs")] = []
    secrets: Annotated[list[dict[str, Any]], fields.grants("secrets")] = []
    proxy: ServiceProxy | None = Field(default=None, description=(
        "Served through the host's proxy: swaps move traffic before the old container "
        "stops."))
    image_source: ImageSource | None = Field(default=None, description=IMAGE_SOURCE_HELP)
    build: Annotated[BuildSection, _before(_build_section, str | dict[str, Any])] | None = \
        Field(default=None, description="Built by the controller's Docker daemon and delivered "
                                        "as `image_source: controller` is (with that source, or "
                                        "when the service names no image).")
    annotations: fields.Refused = fields.refused_field("annotations")
    cpu_count: fields.Refused = fields.refused_field("cpu_count")
    cpu_percent: fields.Refused = fields.refused_field("cpu_percent")
    credential_spec: fields.Refused = fields.refused_field("credential_spec")
    isolation: fields.Refused = fields.refused_field("isolation")
    external_links: fields.Refused = fields.refused_field("external_links")
    label_file: fields.Refused = fields.refused_field("label_file")
    mac_address: fields.Refused = fields.refused_field("mac_address")
    memswap_limit: fields.Refused = fields.refused_field("memswap_limit")
    models: fields.Refused = fields.refused_field("models")
    post_start: fields.Refused = fields.refused_field("post_start")
    pre_start: fields.Refused = fields.refused_field("pre_start")
    pre_stop: fields.Refused = fields.refused_field("pre_stop")
    provider: fields.Refused = fields.refused_field("provider")
    use_api_socket: fields.Refused = fields.refused_field("use_api_socket")
    pull_refresh_after: fields.Refused = fields.refused_field("pull_refresh_after")

    @model_validator(mode="after")
    def _compose_keys(self) -> Service:
        """Fold `deploy`, `scale` and `gpus` into fleet's fields; check what needs them all."""
        errors: list[tuple[int | str, Exception]] = [
            (name, KeyProblem(f"unknown key '{name}'")) for name in sorted(
                DERIVED_FIELDS & self.model_fields_set)]
        given = {"device_requests": self.gpus, **{
            name: getattr(self, name) for name in (
                "cpus", "mem_limit", "pids_limit", "mem_reservation", "restart", "replicas")}}
        updates, conflicts = fold(self.deploy, self.scale, given, set(self.model_fields_set),
                                  self.update, self.rollback)
        if conflicts is not None:
            errors += conflicts.items
        replicas = updates.get("replicas", self.replicas)
        if self.proxy is not None:
            errors += self._proxy_problems()
        if self.container_name and replicas > 1:
            errors.append(("container_name", ValueError(
                f"container_name gives every container the same name, so it allows one "
                f"replica per host; this service has {replicas}")))
        if errors:
            raise ItemErrors(errors)
        updates["device_requests"] = [NormalisedDevice.model_validate(d) for d in
                                      updates.get("device_requests", self.gpus)]
        for policy in ("update", "rollback"):
            if policy in updates:
                updates[policy] = UpdatePolicy.model_validate(updates[policy])
        done = self.model_copy(update={**updates, "deploy": None, "scale": None, "gpus": []})
        return done._checked_cpus()

    def _proxy_problems(self) -> list[tuple[int | str, Exception]]:
        """What a proxied service can't also have: the proxy owns the host ports, and
        reaches the containers on its own network."""
        if self.ports:
            return [("ports", ValueError(
                "a service with 'proxy' publishes no host port: the proxy serves it on "
                "proxy.ports; remove 'ports'"))]
        if self.network_mode:
            return [("network_mode", ValueError(
                "a service with 'proxy' joins the proxy's network: it cannot have a "
                "network_mode"))]
        return []

    def _checked_cpus(self) -> Service:
        if self.cpus and (self.cpu_period or self.cpu_quota):
            raise ItemErrors([("cpu_period" if self.cpu_period else "cpu_quota", ValueError(
                "'cpus' (or deploy.resources.limits.cpus) and 'cpu_period'/'cpu_quota' "
                "cannot both be set: Docker refuses NanoCpus with a CFS period or quota"))])
        limit, reservation = self.mem_limit, self.mem_reservation
        if limit and reservation and reservation > limit:
            raise ValueError(f"the memory reservation {format_bytes(reservation)} is above the "
                             f"limit {format_bytes(limit)}: Docker refuses that")
        return self

    def container_options(self) -> dict[str, Any]:
        """The fields a container depends on (placement and rollout excluded)."""
        return self.model_dump(mode="json", exclude=set(PLACEMENT_FIELDS))


# What a service has that is not part of its containers' spec.
PLACEMENT_FIELDS = frozenset({
    "hosts", "replicas", "update", "rollback", "env_file", "depends_on", "links", "pull_policy",
    "deploy", "scale", "gpus", "attach", "configs", "secrets", "proxy", "image_source", "build",
    *fields.REFUSED_FIELDS})

# Keys rendered once per playbook rather than per host: placement and rollout policy
# must be the same for every host of a service.
HOST_INDEPENDENT_KEYS = frozenset({"hosts", "update", "rollback", "depends_on", "links",
                                   "pull_policy", "image_source", "build"})
