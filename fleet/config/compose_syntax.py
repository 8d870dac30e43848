"""Parsers for Compose's short syntaxes (ports, volumes, environment...), to normalized values.

Each parser accepts what the Compose specification accepts and raises ValueError, in
words a user understands, for what Compose would reject.
"""

from __future__ import annotations

import re
import shlex
from collections import ChainMap
from collections.abc import Mapping
from typing import Any

from fleet.config.interpolation import (
    MAX_INTERPOLATED_TOTAL,
    InterpolationError,
    interpolate_pieces,
    unset_warning,
)
from fleet.config.problems import Problem

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


_PROPAGATION = {"shared", "slave", "private", "rshared", "rslave", "rprivate"}
_CONSISTENCY = {"cached", "delegated", "consistent"}


def parse_short_volume(value: str) -> dict[str, Any]:
    """`[SOURCE:]TARGET[:MODE]` to a long-syntax mapping.

    MODE is a comma-separated list: ro/rw; for a bind, z/Z (SELinux relabel) and a
    propagation; for a named volume, nocopy; cached/delegated/consistent are Compose's
    consistency, accepted and ignored as Docker on Linux ignores them."""
    parts = value.split(":")
    if len(parts) > 3 or not all(parts):
        raise ValueError(f"bad volume {value!r}: expected [SOURCE:]TARGET[:MODE]")
    mode = parts[2] if len(parts) == 3 else ""
    if len(parts) == 1:
        return {"type": "volume", "target": parts[0]}
    source, target = parts[0], parts[1]
    options = set(mode.split(",")) if mode else set()
    unknown = options - {"ro", "rw", "z", "Z", "nocopy"} - _PROPAGATION - _CONSISTENCY
    if unknown:
        raise ValueError(f"bad volume {value!r}: unknown mode {', '.join(sorted(unknown))}")
    if {"ro", "rw"} <= options or {"z", "Z"} <= options:
        raise ValueError(f"bad volume {value!r}: contradictory modes")
    is_path = source.startswith(("/", ".", "~"))
    mount: dict[str, Any] = {
        "type": "bind" if is_path else "volume",
        "source": source,
        "target": target,
        "read_only": "ro" in options,
    }
    bind: dict[str, Any] = {}
    propagation = options & _PROPAGATION
    if len(propagation) > 1:
        raise ValueError(f"bad volume {value!r}: more than one propagation mode")
    if propagation:
        bind["propagation"] = propagation.pop()
    selinux = options & {"z", "Z"}
    if selinux:
        bind["selinux"] = selinux.pop()
    if bind and not is_path:
        raise ValueError(f"bad volume {value!r}: {', '.join(sorted(bind.values()))} apply to "
                         "bind mounts (a host path), not to the named volume "
                         f"'{source}'")
    if bind:
        mount["bind"] = bind
    if "nocopy" in options:
        if is_path:
            raise ValueError(f"bad volume {value!r}: nocopy applies to named volumes, not to "
                             "a bind mount")
        mount["volume"] = {"nocopy": True}
    consistency = options & _CONSISTENCY
    if consistency:
        mount["consistency"] = sorted(consistency)[0]
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


_ENV_FILE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*")
_ENV_ESCAPE = re.compile(r"\\(?:[abcfnrtv$\"\\]|0[0-7]{3})")
_ENV_ESCAPED = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v",
                "$": "$", '"': '"', "\\": "\\"}


def _unescape_double_quoted(text: str, dollar: str = "$") -> str:
    """Compose's escapes in a double-quoted value: \\n \\t \\" \\\\ ..., and \\0NNN octal;
    `\\$` becomes `dollar` (`$$` where the value is interpolated next: a literal `$`)."""
    def one(match: re.Match[str]) -> str:
        code = match.group(0)[1:]
        if len(code) == 4:  # \\0NNN, a byte: above \\0377 Compose keeps it as written
            return chr(int(code[1:], 8)) if int(code[1:], 8) < 256 else match.group(0)
        if code == "$":
            return dollar
        return _ENV_ESCAPED.get(code, match.group(0))  # \\c: kept as written

    return _ENV_ESCAPE.sub(one, text)


def _quoted(text: str, quote: str) -> tuple[str, str] | None:
    """The value inside the quotes `text` starts with (an escaped quote loses its backslash,
    other escapes are kept for later) and the text after them; None if never closed."""
    chars: list[str] = []
    escaped = False
    for index in range(1, len(text)):
        char = text[index]
        if escaped:
            escaped = False
            chars.append(char if char == quote else "\\" + char)
        elif char == "\\":
            escaped = True
        elif char == quote:
            return "".join(chars), text[index + 1:]
        else:
            chars.append(char)
    return None


class DotenvError(ValueError):
    """A line of an env file that cannot be read; the message never quotes the file (a
    secrets file, an env_file and a .env hold secrets)."""

    def __init__(self, path: str, line: int, reason: str) -> None:
        super().__init__(f"{path}:{line}: {reason}")
        self.path, self.line, self.reason = path, line, reason


def read_dotenv(text: str, path: str, variables: Mapping[str, str] | None = None
                ) -> tuple[dict[str, str], list[Problem]]:
    """NAME=VALUE lines, read by Compose's rules for environment files (`.env` and
    env_file alike), and the warnings found; raises DotenvError.

    `#` starts a comment line, and in an unquoted value ` #` (space, hash) starts an inline
    comment; a value in single quotes is literal, one in double quotes takes escapes (\\n,
    \\t, \\", \\\\, \\$...); either may span lines and be followed by a comment; `export `
    before a name is allowed. With `variables` (a .env file, an env_file), unquoted and
    double-quoted values are interpolated as Compose does (fleet.config.interpolation), from
    `variables` first, then the values the file set on earlier lines, and a line that is a
    NAME alone takes that NAME's value from them (and is left out when it has none). Without
    (a secrets file), values are taken as written, and a line without `=` is an error."""
    result: dict[str, str] = {}
    warnings: list[Problem] = []
    lookup: Mapping[str, str] | None = (  # the variables, then this file's earlier values
        None if variables is None else ChainMap(dict(variables), result))
    lines = text.removeprefix("\ufeff").splitlines()
    made = 0  # characters interpolated values have made
    index = 0
    while index < len(lines):
        number, line = index + 1, lines[index].lstrip()
        index += 1
        if not line.strip() or line.startswith("#"):
            continue
        line = re.sub(r"^export\s+", "", line)
        key, found, value = line.partition("=")
        key = key.strip()
        if not _ENV_FILE_NAME.fullmatch(key) or (not found and lookup is None):
            raise DotenvError(path, number, "expected NAME=VALUE")
        if not found:  # NAME alone: its value from the environment, as Compose takes it
            assert lookup is not None
            if key in lookup:
                result[key] = lookup[key]
            continue
        value = value.lstrip()
        interpolated = lookup is not None
        if value[:1] in ("'", '"'):
            quote = value[0]
            parsed = _quoted(value, quote)
            while parsed is None and index < len(lines):  # the value goes on on the next line
                value += "\n" + lines[index]
                index += 1
                parsed = _quoted(value, quote)
            if parsed is None:
                raise DotenvError(path, number, "the quoted value is never closed")
            value, after = parsed
            if after.strip() and not after.strip().startswith("#"):
                raise DotenvError(path, number, "unexpected text after the closing quote "
                                  "(a comment needs '#')")
            if quote == '"':
                value = _unescape_double_quoted(value, "$$" if interpolated else "$")
            else:
                interpolated = False  # single quotes: literal
        else:
            value = value.split(" #", 1)[0].rstrip()
        if interpolated and "$" in value:
            assert lookup is not None
            try:  # bounded per value and for the file (a line may double the one before)
                pieces, unset = interpolate_pieces(value, lookup, MAX_INTERPOLATED_TOTAL - made)
                value = "".join(p.text for p in pieces)
                made += len(value)
            except InterpolationError as exc:
                raise DotenvError(path, number, f"the value of {key}: {exc.plain}") from None
            warnings.extend(Problem(path, number, 1, (), unset_warning(name), "warning")
                            for name in unset)
        if "\0" in value:
            raise DotenvError(path, number, f"the value of {key} contains a NUL character, "
                              "which no process environment can carry")
        result[key] = value
    return result, warnings


def parse_env_file(text: str, path: str) -> dict[str, str]:
    """A secrets file's NAME=VALUE lines: Compose's env file rules, values as written."""
    return read_dotenv(text, path)[0]
