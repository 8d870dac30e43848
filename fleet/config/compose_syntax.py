"""Parsers for Compose's short syntaxes (ports, volumes, environment...), to normalized values.

Each parser accepts what the Compose specification accepts and raises ValueError, in
words a user understands, for what Compose would reject.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping
from typing import Any

PROTOCOLS = ("tcp", "udp", "sctp")


def _port_number(text: str, what: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise ValueError(f"bad {what} {text!r}: must be a number from 1 to 65535")
    return int(text)


def port_range(text: str, what: str) -> list[int]:
    if "-" in text:
        first, _, last = text.partition("-")
        low, high = _port_number(first, what), _port_number(last, what)
        if high < low:
            raise ValueError(f"bad {what} range {text!r}: the end is below the start")
        return list(range(low, high + 1))
    return [_port_number(text, what)]


_SHORT_PORT = re.compile(
    r"^(?:(?:(?P<ip>\[[0-9a-fA-F:.]+\]|[0-9.]+):)?(?P<host>[0-9-]*):)?(?P<container>[0-9-]+)"
    r"(?:/(?P<proto>[a-z]+))?$"
)


def parse_short_port(value: object) -> list[dict[str, Any]]:
    """`[[ip:]host:]container[/proto]`, ranges allowed, to long-syntax mappings."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError(f"a port must be a string like '8080:80' or a mapping, got {value!r}")
    text = str(value)
    match = _SHORT_PORT.match(text)
    if not match:
        raise ValueError(
            f"bad port {text!r}: expected [[IP:]HOST_PORT:]CONTAINER_PORT[/PROTOCOL], "
            "e.g. '8080:80'"
        )
    protocol = match.group("proto") or "tcp"
    if protocol not in PROTOCOLS:
        raise ValueError(f"bad port {text!r}: protocol must be one of {', '.join(PROTOCOLS)}")
    container_ports = port_range(match.group("container"), "container port")
    host_ip = (match.group("ip") or "").strip("[]")
    host_text = match.group("host") or ""
    host_ports: list[int | None] = (
        list(port_range(host_text, "host port")) if host_text else [None] * len(container_ports)
    )
    if len(host_ports) != len(container_ports):
        raise ValueError(f"bad port {text!r}: host and container ranges differ in length")
    return [
        {"target": c, "published": h, "host_ip": host_ip, "protocol": protocol}
        for c, h in zip(container_ports, host_ports, strict=True)
    ]


def parse_short_volume(value: str) -> dict[str, Any]:
    """`[SOURCE:]TARGET[:MODE]` to a long-syntax mapping."""
    parts = value.split(":")
    if len(parts) > 3 or not all(parts):
        raise ValueError(f"bad volume {value!r}: expected [SOURCE:]TARGET[:MODE]")
    mode = parts[2] if len(parts) == 3 else ""
    if len(parts) == 1:
        return {"type": "volume", "target": parts[0]}
    source, target = parts[0], parts[1]
    options = set(mode.split(",")) if mode else set()
    unknown = options - {"ro", "rw", "z", "Z", "nocopy", "shared", "slave", "private",
                         "rshared", "rslave", "rprivate", "cached", "delegated", "consistent"}
    if unknown:
        raise ValueError(f"bad volume {value!r}: unknown mode {', '.join(sorted(unknown))}")
    is_path = source.startswith(("/", ".", "~"))
    mount: dict[str, Any] = {
        "type": "bind" if is_path else "volume",
        "source": source,
        "target": target,
        "read_only": "ro" in options,
    }
    propagation = options & {"shared", "slave", "private", "rshared", "rslave", "rprivate"}
    if propagation:
        mount["bind"] = {"propagation": propagation.pop()}
    if "nocopy" in options:
        mount["volume"] = {"nocopy": True}
    return mount


def scalar_to_str(value: object, what: str) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | str):
        return str(value)
    raise ValueError(f"{what} must be a string, number or boolean, got {type(value).__name__}")


def key_value_map(value: object, what: str, *, separator: str = "=") -> dict[str, str | None]:
    """A Compose "map or list" field (`{K: V}` or `["K=V"]`) to a mapping."""
    if isinstance(value, Mapping):
        return {
            str(k): None if v is None else scalar_to_str(v, f"value of {what} {k!r}")
            for k, v in value.items()
        }
    if isinstance(value, list):
        result: dict[str, str | None] = {}
        for item in value:
            if not isinstance(item, str):
                raise ValueError(f"{what} list items must be 'KEY{separator}VALUE' strings")
            key, found, val = item.partition(separator)
            if not key:
                raise ValueError(f"bad {what} entry {item!r}: empty name")
            if key in result:
                raise ValueError(f"{what} {key!r} is given twice")
            result[key] = val if found else None
        return result
    raise ValueError(f"{what} must be a mapping or a list of 'KEY{separator}VALUE' strings")


def command_argv(value: object, what: str) -> list[str]:
    """A string is split like a shell would (Compose's rule); a list is taken as is."""
    if isinstance(value, str):
        try:
            return shlex.split(value)
        except ValueError as exc:
            raise ValueError(f"bad {what} {value!r}: {exc}") from None
    if isinstance(value, list) and all(isinstance(v, str | int | float) for v in value):
        return [str(v) for v in value]
    raise ValueError(f"{what} must be a string or a list of strings")


def string_list(value: object, what: str) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    raise ValueError(f"{what} must be a string or a list of strings")


def parse_env_file(text: str, path: str) -> dict[str, str]:
    """KEY=VALUE lines as Compose reads them; `#` comments and blank lines ignored."""
    result: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[len("export "):].lstrip()
        key, found, value = line.partition("=")
        if not found or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.-]*", key.strip()):
            raise ValueError(f"{path}:{number}: expected KEY=VALUE")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        result[key.strip()] = value
    return result
