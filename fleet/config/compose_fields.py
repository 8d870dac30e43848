"""Compose's service fields beyond the container basics, parsed and normalised (pure).

Each parser accepts what the Compose specification accepts, normalises it to one form (so the
spec hash does not depend on how it was written) and raises ValueError, in words a user
understands, for what Compose or dockerd would refuse. The fields fleet refuses are listed in
REFUSED_FIELDS with the reason the message gives.
"""

from __future__ import annotations

import math
import re
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from fleet.config import compose_syntax as syntax
from fleet.config.units import INT64_MAX, format_bytes, parse_byte_size, parse_duration
from fleet.config.validation import ItemErrors, KeyProblem


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)


# Compose's own name rules (compose-spec schema and compose-go).
COMPOSE_NAME = re.compile(r"^[a-zA-Z0-9._-]+$")  # service names as other services refer to them
CONTAINER_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]+$")  # `container_name`
_HOSTNAME_ALIAS = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")  # a link alias (a DNS name)
PROTOCOLS = ("tcp", "udp", "sctp")


def _each(value: list[Any], parse: Any) -> list[Any]:
    """Every item parsed, errors collected per item (each points at its own line)."""
    result: list[Any] = []
    errors: list[tuple[int | str, Exception]] = []
    for index, item in enumerate(value):
        try:
            result.extend(parse(item))
        except ValueError as exc:
            errors.append((index, exc))
    if errors:
        raise ItemErrors(errors)
    return result


def _list(value: Any, what: str) -> list[Any]:
    if not isinstance(value, list):
        raise ValueError(f"{what} must be a list")
    return value


# -- cpus and memory (also read by deploy.resources) -----------------------------------------

MIN_CPUS = 0.01  # Docker's smallest CPU quota ("Range of CPUs is from 0.01 to ...")
MAX_CPUS = 8192  # Linux's largest NR_CPUS: no host has more
_CPUS_TEXT = re.compile(r"^\s*(\d+(\.\d*)?|\.\d+)\s*$")


def parse_cpus(value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValueError(f"cpus must be a number like 0.5 or 2, got {value!r}")
    if isinstance(value, str) and not _CPUS_TEXT.match(value):
        raise ValueError(f"cpus must be a number like 0.5 or 2, got {value!r}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"cpus must be a finite number like 0.5 or 2, got {value!r}")
    if isinstance(value, int) and value > MAX_CPUS:  # before float(): a huge int overflows it
        raise ValueError(f"cpus must be at most {MAX_CPUS}, got {value}")
    number = float(value)
    if number <= 0:
        raise ValueError("cpus must be greater than 0")
    if number < MIN_CPUS:
        raise ValueError(f"cpus must be at least {MIN_CPUS} (Docker's smallest CPU quota), "
                         f"got {value!r}")
    if number > MAX_CPUS:
        raise ValueError(f"cpus must be at most {MAX_CPUS} (Linux's largest CPU count), "
                         f"got {value!r}")
    return number


# dockerd's smallest memory limit and reservation (linuxMinMemory: 6 MiB).
MIN_MEMORY = 6 * 1024**2


def check_memory(value: int | None, *, limit: bool) -> int | None:
    """A memory limit or reservation dockerd accepts (0: none)."""
    if not value:
        return value
    if value < MIN_MEMORY:
        raise ValueError(f"must be at least 6m ({MIN_MEMORY} bytes, dockerd's minimum) or 0 "
                         f"for no limit, got {format_bytes(value)}")
    if limit and 2 * value > INT64_MAX:
        raise ValueError("must be at most 4 EiB: fleet sets the swap limit to twice the "
                         "memory limit, and Docker takes it as an int64")
    return value


# -- expose -----------------------------------------------------------------------------------

_EXPOSE = re.compile(r"^(?P<ports>[0-9]+(?:-[0-9]+)?)(?:/(?P<proto>[a-z]+))?$")


def _expose_item(item: Any) -> list[tuple[int, str]]:
    if isinstance(item, bool) or not isinstance(item, int | str):
        raise ValueError(f"an exposed port is a number or 'PORT[/PROTOCOL]', got {item!r}")
    match = _EXPOSE.match(str(item))
    if not match:
        raise ValueError(f"bad exposed port {str(item)!r}: expected PORT[-PORT][/PROTOCOL], "
                         "e.g. '3000' or '8080-8085/tcp' (only container ports: no host port)")
    protocol = match.group("proto") or "tcp"
    if protocol not in PROTOCOLS:
        raise ValueError(f"bad exposed port {str(item)!r}: protocol must be one of "
                         f"{', '.join(PROTOCOLS)}")
    return [(port, protocol) for port in syntax.port_range(match.group("ports"), "port")]


def parse_expose(value: Any) -> list[str]:
    """`expose` -> sorted, unique `PORT/PROTOCOL` entries, ranges expanded."""
    ports = _each(_list(value, "expose"), _expose_item)
    return [f"{port}/{protocol}" for port, protocol in sorted(set(ports))]


# -- links ------------------------------------------------------------------------------------


def _link_item(item: Any) -> list[str]:
    if not isinstance(item, str):
        raise ValueError(f"a link is 'SERVICE' or 'SERVICE:ALIAS', got {item!r}")
    service, _, alias = item.partition(":")
    alias = alias or service
    if not COMPOSE_NAME.match(service) or not _HOSTNAME_ALIAS.match(alias) or ":" in alias:
        raise ValueError(f"bad link {item!r}: expected SERVICE or SERVICE:ALIAS")
    return [f"{service}:{alias}"]


def parse_links(value: Any) -> list[str]:
    """`links` -> sorted, unique `SERVICE:ALIAS` entries (the alias defaults to the service)."""
    return sorted(set(_each(_list(value, "links"), _link_item)))


# -- depends_on -------------------------------------------------------------------------------


class Dependency(_Strict):
    """One entry of `depends_on` (its long syntax; the short one means the defaults)."""

    condition: Literal["service_started", "service_healthy",
                       "service_completed_successfully"] = "service_started"
    restart: bool = False
    required: bool = True


def parse_depends_on(value: Any) -> Any:
    """The short syntax (a list of names) becomes the long one (a mapping)."""
    if isinstance(value, list):
        result: dict[str, Any] = {}
        errors: list[tuple[int | str, Exception]] = []
        for index, item in enumerate(value):
            if not isinstance(item, str) or not COMPOSE_NAME.match(item):
                errors.append((index, ValueError(f"bad service name {item!r} in depends_on")))
            elif item in result:
                errors.append((index, ValueError(f"service '{item}' is listed twice")))
            else:
                result[item] = {}
        if errors:
            raise ItemErrors(errors)
        return dict(sorted(result.items()))
    if isinstance(value, dict):
        bad: list[tuple[int | str, Exception]] = [
            (name, KeyProblem(f"bad service name {name!r} in depends_on"))
            for name in value if not COMPOSE_NAME.match(name)]
        if bad:
            raise ItemErrors(bad)
        return {name: {} if entry is None else entry for name, entry in sorted(value.items())}
    raise ValueError("depends_on must be a list of service names or a mapping of them")


# -- volumes_from, ipc, pid -------------------------------------------------------------------

_ACCESS = ("rw", "ro")


def _volumes_from_item(item: Any) -> list[str]:
    """`NAME[:MODE]` (a service) or `container:NAME[:MODE]` -> `service|container:NAME:MODE`."""
    if not isinstance(item, str):
        raise ValueError(f"a volumes_from entry is a string, got {item!r}")
    parts = item.split(":")
    kind = "service"
    if parts[0] == "container" and len(parts) > 1:
        kind, parts = "container", parts[1:]
    name, mode = parts[0], parts[1] if len(parts) > 1 else "rw"
    pattern = COMPOSE_NAME if kind == "service" else CONTAINER_NAME
    if len(parts) > 2 or not pattern.match(name) or mode not in _ACCESS:
        raise ValueError(f"bad volumes_from entry {item!r}: expected SERVICE[:ro|rw] or "
                         "container:NAME[:ro|rw]")
    return [f"{kind}:{name}:{mode}"]


def parse_volumes_from(value: Any) -> list[str]:
    result = _each(_list(value, "volumes_from"), _volumes_from_item)
    duplicates = sorted({entry for entry in result if result.count(entry) > 1})
    if duplicates:
        raise ValueError(f"volumes_from lists {duplicates[0].rsplit(':', 1)[0]} twice")
    return result


def namespace_mode(allowed: tuple[str, ...], what: str) -> Any:
    """`ipc`/`pid`/`uts`/`userns_mode`/`cgroup`: one of `allowed`, `container:NAME` or
    `service:NAME` (resolved per host to that service's container, see fleet.core.refs)."""
    joined = ", ".join(allowed)

    def parse(value: Any) -> Any:
        if not isinstance(value, str):
            return value
        kind, sep, name = value.partition(":")
        if value in allowed or (sep and kind == "container" and CONTAINER_NAME.match(name)) or (
                sep and kind == "service" and COMPOSE_NAME.match(name) and "service" in joined):
            return value
        raise ValueError(f"bad {what} {value!r}: use {joined}")

    return parse


# -- platform, pull_policy, runtime, security_opt ---------------------------------------------

_PLATFORM = re.compile(r"^[a-z0-9_.-]+(?:/[a-z0-9_.-]+(?:/[a-z0-9_.-]+)?)?$")


def parse_platform(value: Any) -> Any:
    if isinstance(value, str) and not _PLATFORM.match(value):
        raise ValueError(f"bad platform {value!r}: expected OS[/ARCH[/VARIANT]] in lowercase, "
                         "e.g. linux/amd64 or linux/arm64/v8")
    return value


_TIMED_PULL = re.compile(r"^(daily|weekly|refresh|every_([0-9]+[wdhms])+)$")


def parse_pull_policy(value: Any) -> Any:
    """always | missing | never (if_not_present is missing); the others are refused."""
    if not isinstance(value, str):
        return value
    if value in ("always", "missing", "never"):
        return value
    if value == "if_not_present":
        return "missing"
    if value == "build":
        raise ValueError("pull_policy 'build' is not supported yet: fleet deploys images, and "
                         "building on the controller comes with its image source; build and "
                         "push the image and name it in 'image'")
    if _TIMED_PULL.match(value):
        raise ValueError(f"pull_policy '{value}' is not supported: fleet keeps no record of when "
                         "a host last pulled; use always (fleet's default: every run resolves "
                         "the tag and pulls only what changed), missing or never")
    raise ValueError(f"bad pull_policy {value!r}: use always, missing (or if_not_present) or "
                     "never")


RUNTIME_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")

# What dockerd reads in HostConfig.SecurityOpt (daemon/oci_linux.go, parseSecurityOpt).
_SECURITY_KEYS = ("label", "apparmor", "seccomp", "no-new-privileges", "systempaths",
                  "writable-cgroups")


def _security_opt_item(item: Any) -> list[str]:
    if not isinstance(item, str):
        raise ValueError(f"a security_opt entry is a string, got {item!r}")
    if item == "no-new-privileges":
        return [item]
    key, sep, value = item.partition("=")
    if not sep:
        key, sep, value = item.partition(":")  # the older KEY:VALUE form dockerd still reads
    if not sep or key not in _SECURITY_KEYS or not value:
        raise ValueError(f"bad security_opt {item!r}: expected KEY=VALUE with KEY one of "
                         f"{', '.join(_SECURITY_KEYS)}")
    if key == "seccomp" and value not in ("unconfined", "builtin") and not value.startswith("{"):
        raise ValueError(f"security_opt {item!r}: a seccomp profile file is read by the client "
                         "(here: the controller) and sent inline; fleet does not read it yet: "
                         "use seccomp=unconfined, seccomp=builtin or the profile's JSON")
    return [item]


def parse_security_opt(value: Any) -> list[str]:
    return _each(_list(value, "security_opt"), _security_opt_item)


# -- device requests (gpus, deploy.resources.reservations.devices) ----------------------------


class DeviceRequest(_Strict):
    """A device the container is given (Docker's DeviceRequest): `gpus:` items and
    `deploy.resources.reservations.devices` items."""

    capabilities: list[str] = Field(min_length=1)
    driver: str = ""
    count: int | Literal["all"] | None = None
    device_ids: list[str] = []
    options: dict[str, str] = {}

    @field_validator("capabilities", "device_ids", mode="before")
    @classmethod
    def _strings(cls, value: Any) -> Any:
        return syntax.string_list(value, "capabilities and device_ids")

    @field_validator("options", mode="before")
    @classmethod
    def _options(cls, value: Any) -> Any:
        return {k: v or "" for k, v in syntax.key_value_map(value, "device option").items()}

    @field_validator("count", mode="before")
    @classmethod
    def _count(cls, value: Any) -> Any:
        if isinstance(value, bool) or (isinstance(value, int) and value < 1):
            raise ValueError(f"count must be 'all' or at least 1, got {value!r}")
        if isinstance(value, str) and value != "all":
            return int(value) if value.isdigit() and int(value) > 0 else value
        return value

    @model_validator(mode="after")
    def _exclusive(self) -> DeviceRequest:
        if self.count is not None and self.device_ids:
            raise ValueError("count and device_ids can't both be given (Compose's rule)")
        return self

    def normalised(self) -> dict[str, Any]:
        count = -1 if self.count in (None, "all") and not self.device_ids else self.count or 0
        return {"driver": self.driver, "count": count, "device_ids": self.device_ids,
                "capabilities": sorted(set(self.capabilities)),
                "options": dict(sorted(self.options.items()))}


def _gpu_item(item: Any) -> list[dict[str, Any]]:
    if not isinstance(item, dict):
        raise ValueError(f"a gpus entry is a mapping, got {item!r}")
    given = {"capabilities": ["gpu"], **item}
    return [DeviceRequest.model_validate(given).normalised()]


def parse_gpus(value: Any) -> list[dict[str, Any]]:
    """`gpus: all` or a list of requests -> normalised device requests."""
    if value == "all":
        return [DeviceRequest(capabilities=["gpu"]).normalised()]
    items = _list(value, "gpus")
    errors: list[tuple[int | str, Exception]] = []
    result: list[dict[str, Any]] = []
    for index, item in enumerate(items):
        try:
            result.extend(_gpu_item(item))
        except ValueError as exc:
            errors.append((index, exc))
    if errors:
        raise ItemErrors(errors, DeviceRequest)
    return result


# -- blkio_config -----------------------------------------------------------------------------

BLKIO_WEIGHT = (10, 1000)


def _weight(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError(f"expected a weight from 10 to 1000, got {value!r}")
    number = int(value) if isinstance(value, str) and value.isdigit() else value
    if isinstance(number, int) and not BLKIO_WEIGHT[0] <= number <= BLKIO_WEIGHT[1]:
        raise ValueError(f"a blkio weight is from 10 to 1000, got {value!r}")
    return number


class BlkioWeight(_Strict):
    path: str
    weight: int

    @field_validator("weight", mode="before")
    @classmethod
    def _weight(cls, value: Any) -> Any:
        return _weight(value)


def _iops(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError(f"expected a whole number of operations per second, got {value!r}")
    return int(value) if isinstance(value, str) and value.isdigit() else value


class BlkioRate(_Strict):
    path: str
    rate: Annotated[int, Field(ge=0), BeforeValidator(parse_byte_size,
                                                      json_schema_input_type=int | str)]


class BlkioIops(_Strict):
    path: str
    rate: Annotated[int, Field(ge=0), BeforeValidator(_iops, json_schema_input_type=int | str)]


class BlkioConfig(_Strict):
    weight: int | None = None
    weight_device: list[BlkioWeight] = []
    device_read_bps: list[BlkioRate] = []
    device_write_bps: list[BlkioRate] = []
    device_read_iops: list[BlkioIops] = []
    device_write_iops: list[BlkioIops] = []

    @field_validator("weight", mode="before")
    @classmethod
    def _weight(cls, value: Any) -> Any:
        return _weight(value)

    @model_validator(mode="after")
    def _absolute(self) -> BlkioConfig:
        for group in (self.weight_device, self.device_read_bps, self.device_write_bps,
                      self.device_read_iops, self.device_write_iops):
            for entry in group:
                if not entry.path.startswith("/"):
                    raise ValueError(f"blkio device {entry.path!r} must be an absolute path")
        return self


# -- microseconds (cpu_period, cpu_quota, cpu_rt_*) -------------------------------------------


def microseconds(what: str, *, minimum: int, allow_unlimited: bool = False) -> Any:
    """A whole number of microseconds, or a duration ('10ms'), as Compose reads them."""
    def parse(value: Any) -> Any:
        if isinstance(value, bool):
            raise ValueError(f"{what} must be microseconds or a duration, got {value!r}")
        if isinstance(value, int):
            number = value
        elif isinstance(value, str) and re.fullmatch(r"-?[0-9]+", value.strip()):
            number = int(value)
        else:
            number = round(parse_duration(value) * 1_000_000)
        if allow_unlimited and number == -1:
            return number
        if number < minimum or number > 10**12:
            raise ValueError(f"{what} must be from {minimum}µs to 10^12µs"
                             f"{' (or -1 for none)' if allow_unlimited else ''}, got {value!r}")
        return number

    return parse


# -- device_cgroup_rules ----------------------------------------------------------------------

_CGROUP_RULE = re.compile(r"^[abc] (?:[0-9]+|\*):(?:[0-9]+|\*) [rwm]{1,3}$")


def parse_device_cgroup_rules(value: Any) -> list[str]:
    def one(item: Any) -> list[str]:
        if not isinstance(item, str) or not _CGROUP_RULE.match(item):
            raise ValueError(f"bad device cgroup rule {item!r}: expected TYPE MAJOR:MINOR "
                             "ACCESS, e.g. 'c 1:3 mr' or 'a *:* rwm'")
        return [item]

    return _each(_list(value, "device_cgroup_rules"), one)


# -- env_file's long syntax -------------------------------------------------------------------


def parse_env_files(value: Any) -> list[str]:
    """`env_file`: a path, or a list of paths and `{path, required, format}` entries. A file
    that is not required is marked `?PATH` (read if it exists, see fleet.core.desired)."""
    items = [value] if isinstance(value, str) else _list(value, "env_file")

    def one(item: Any) -> list[str]:
        if isinstance(item, str):
            return [item]
        if not isinstance(item, dict):
            raise ValueError(f"an env_file entry is a path or {{path, required}}, got {item!r}")
        unknown = sorted(set(item) - {"path", "required", "format"})
        if unknown:
            raise ValueError(f"unknown key '{unknown[0]}' in env_file (path, required, format)")
        path, required = item.get("path"), item.get("required", True)
        if not isinstance(path, str) or not path:
            raise ValueError("an env_file entry needs a 'path'")
        if not isinstance(required, bool):
            raise ValueError(f"env_file required must be true or false, got {required!r}")
        if "format" in item:
            raise ValueError(f"env_file format {item['format']!r} is not supported: fleet reads "
                             "env files in Compose's default format only")
        return [path if required else f"?{path}"]

    return _each(items, one)


# -- configs and secrets (service side) -------------------------------------------------------

# Where Compose mounts a grant by default: a config at /<source>, a secret in /run/secrets.
SECRETS_DIR = "/run/secrets"


class FileGrant(_Strict):
    """A service's long-syntax `configs`/`secrets` entry."""

    source: str = Field(pattern=r"^[a-zA-Z0-9._-]+$")
    target: str | None = None
    uid: str | None = None
    gid: str | None = None
    mode: int | None = Field(default=None, ge=0, le=0o7777)

    @field_validator("uid", "gid", mode="before")
    @classmethod
    def _id(cls, value: Any) -> Any:
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        if isinstance(value, str) and not (value.isdigit() and value.isascii()
                                           and int(value) < 2**32):
            raise ValueError(f"expected a numeric id, got {value!r}")
        return value

    @field_validator("mode", mode="before")
    @classmethod
    def _mode(cls, value: Any) -> Any:
        if isinstance(value, str):  # "0440" or "0o440": octal, as Compose reads a string
            text = value.removeprefix("0o")
            if not re.fullmatch(r"[0-7]{1,4}", text):
                raise ValueError(f"bad mode {value!r}: expected octal, e.g. 0440")
            return int(text, 8)
        if isinstance(value, bool):
            raise ValueError(f"bad mode {value!r}: expected octal, e.g. 0440")
        return value

    @field_validator("target")
    @classmethod
    def _target(cls, value: str | None) -> str | None:
        if value is None:
            return value
        parts = value.strip("/").split("/")
        if not value.strip("/") or any(p in ("", ".", "..") for p in parts) or any(
                c in value for c in "\0:,") or not value.isprintable():
            raise ValueError(f"bad target {value!r}: a path without '.', '..', ':' or ','")
        return value

    def mounted_at(self, what: str) -> str:
        """Compose's target: a secret's relative target is in /run/secrets, a config's at the
        root; by default the source's name."""
        target = self.target or self.source
        if target.startswith("/"):
            return target
        return f"{SECRETS_DIR}/{target}" if what == "secrets" else f"/{target}"


def parse_grants(what: str) -> Any:
    """`configs`/`secrets` of a service: names or long-syntax mappings -> mappings with
    their target resolved; a target given twice is an error (one mount point, one file)."""
    def parse(value: Any) -> list[dict[str, Any]]:
        def one(item: Any) -> list[dict[str, Any]]:
            if isinstance(item, str):
                item = {"source": item}
            if not isinstance(item, dict):
                raise ValueError(f"a {what} entry is a name or a mapping with 'source'")
            grant = FileGrant.model_validate(item)
            return [{**grant.model_dump(exclude_none=True), "target": grant.mounted_at(what)}]

        items = _list(value, what)
        errors: list[tuple[int | str, Exception]] = []
        result: list[dict[str, Any]] = []
        targets: set[str] = set()
        for index, item in enumerate(items):
            try:
                found = one(item)
            except ValueError as exc:
                errors.append((index, exc))
                continue
            if found[0]["target"] in targets:
                errors.append((index, ValueError(f"{found[0]['target']} is the target of "
                                                 f"another {what} entry")))
                continue
            targets.add(found[0]["target"])
            result.extend(found)
        if errors:
            raise ItemErrors(errors, FileGrant)
        return result

    return parse


# -- refused fields ---------------------------------------------------------------------------

WINDOWS_ONLY = "it applies to Windows containers only, and fleet deploys Linux containers"

REFUSED_FIELDS: dict[str, str] = {
    "annotations": "HostConfig.Annotations needs Docker Engine API 1.43 and fleet speaks 1.41",
    "cpu_count": WINDOWS_ONLY,
    "cpu_percent": WINDOWS_ONLY,
    "credential_spec": WINDOWS_ONLY,
    "isolation": WINDOWS_ONLY,
    "external_links": "it links to containers outside the project, which fleet cannot know "
                      "run on every host; join them on an external network instead",
    "label_file": "fleet does not read label files; write the labels in 'labels'",
    "mac_address": "one fixed MAC address would be given to every replica on every host",
    "memswap_limit": "fleet sets the swap limit to twice mem_limit (Docker's default), so "
                     "that memory can be changed in place",
    "models": "Docker Model Runner models are set up by Compose on the machine running it",
    "post_start": "lifecycle hooks are not supported yet",
    "pre_start": "lifecycle hooks (init containers) are not supported yet",
    "pre_stop": "lifecycle hooks are not supported yet",
    "provider": "a provider service is run by a Compose plugin on the machine running Compose",
    "use_api_socket": "it would give the container the host's Docker socket and the "
                      "operator's registry credentials",
    "pull_refresh_after": "fleet keeps no record of when a host last pulled",
}


def _refuse(value: Any, info: ValidationInfo) -> Any:
    name = str(info.field_name)
    raise ValueError(f"'{name}' is not supported: {REFUSED_FIELDS[name]}")


# A refused service field: any value is an error naming the field and why.
Refused = Annotated[Any, BeforeValidator(_refuse)]


def refused_field(name: str) -> Any:
    """The field's default (unset, left out of every dump) and its description."""
    return Field(default=None, exclude=True,
                 description=f"Not supported: {REFUSED_FIELDS[name]}.")


def _not_yet(value: Any, info: ValidationInfo) -> Any:
    raise ValueError(f"'{info.field_name}' is not yet supported (reserved for a later version "
                     "of fleet)")


# A key reserved for fleet's later versions (proxy).
NotYet = Annotated[Any, BeforeValidator(_not_yet)]


def grants(what: str) -> BeforeValidator:
    """Service `configs`/`secrets` (fleet.core.desired mounts what they name)."""
    return BeforeValidator(parse_grants(what),
                           json_schema_input_type=list[str | dict[str, Any]])
