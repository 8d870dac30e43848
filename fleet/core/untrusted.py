"""JSON from hosts, parsed within bounds (pure): what a Docker daemon answers, labels read
off containers, and fleet's own journal and lock files, all of which a host can forge.

`parse_json` refuses, as UntrustedJSONError (a ValueError), anything that is not plain JSON
of bounded size, depth and item count: Infinity and NaN (and numbers that overflow to them),
lone surrogates, nesting deeper than `max_depth`, more than `max_items` values. The result is
then safe to walk recursively, hash, print and validate into a typed model.
"""

from __future__ import annotations

import math
from typing import Any

import pydantic_core
from pydantic import ValidationError

MiB = 1024 * 1024
KiB = 1024
MAX_DEPTH = 64  # Docker's answers nest about 6 deep; jiter itself stops at 200
MAX_ITEMS = 2_000_000  # bounds what a small body can cost in memory (~40 bytes per item)


class UntrustedJSONError(ValueError):
    """The text is not JSON fleet will read (malformed, or beyond a bound)."""


def size_text(limit: int) -> str:
    if limit >= MiB and limit % MiB == 0:
        return f"{limit // MiB} MiB"
    if limit >= KiB and limit % KiB == 0:
        return f"{limit // KiB} KiB"
    return f"{limit} bytes"


def item_estimate(data: bytes) -> int:
    """An upper bound on the keys and values in a JSON text (separators inside strings count
    too), computed at C speed before anything is built."""
    return (data.count(b",") + data.count(b":") + data.count(b"[") + data.count(b"{")) + 1


def _check_tree(value: Any, max_depth: int) -> None:
    """Nesting within `max_depth`, and every float finite (jiter turns 1e400 into inf)."""
    level = [value]
    depth = 0
    while level:
        depth += 1
        if depth > max_depth:
            raise UntrustedJSONError(f"nested deeper than {max_depth} levels")
        deeper: list[Any] = []
        for node in level:
            children = node.values() if type(node) is dict else node
            for child in children:
                kind = type(child)
                if kind is dict or kind is list:
                    deeper.append(child)
                elif kind is float and not math.isfinite(child):
                    raise UntrustedJSONError("a number too large for a float")
        level = deeper
    # `level` held only containers: scalars at the top need no walk.


def parse_json(data: bytes | str, *, max_bytes: int, max_depth: int = MAX_DEPTH,
               max_items: int = MAX_ITEMS) -> Any:
    """The JSON value of `data`, or UntrustedJSONError saying which bound it broke."""
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
    if len(raw) > max_bytes:
        raise UntrustedJSONError(f"more than {size_text(max_bytes)}")
    if item_estimate(raw) > max_items:
        raise UntrustedJSONError(f"more than {max_items:,} JSON values")
    try:
        value = pydantic_core.from_json(raw, allow_inf_nan=False, cache_strings="keys")
    except ValueError as exc:
        text = str(exc)
        if "recursion limit" in text:
            raise UntrustedJSONError(f"nested deeper than {max_depth} levels") from None
        raise UntrustedJSONError(f"not JSON ({text})") from None
    if type(value) is dict or type(value) is list:
        _check_tree(value, max_depth)
    elif type(value) is float and not math.isfinite(value):
        raise UntrustedJSONError("a number too large for a float")
    return value


_JSON_TYPES = {dict: "an object", list: "a list", str: "a string", int: "an integer",
               float: "a number", bool: "true or false", type(None): "null"}
_EXPECTED = {
    "list_type": "expected a list", "dict_type": "expected an object",
    "model_type": "expected an object", "model_attributes_type": "expected an object",
    "string_type": "expected a string", "int_type": "expected an integer",
    "bool_type": "expected true or false", "missing": "missing",
    "string_too_long": "too long", "string_pattern_mismatch": "not of the expected form",
    "literal_error": "not one of the expected values",
}


def json_type(value: Any) -> str:
    return _JSON_TYPES.get(type(value), type(value).__name__)


def _location(loc: tuple[int | str, ...]) -> str:
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        elif part.isidentifier():
            text += f".{part}" if text else part
        else:
            text += f"[{part!r}]"
    return text


def describe_invalid(exc: ValidationError, limit: int = 3) -> str:
    """A pydantic ValidationError as "where: what (got what)" for the first few errors."""
    parts = []
    errors = exc.errors(include_url=False)
    for error in errors[:limit]:
        expected = _EXPECTED.get(error["type"])
        if error["type"] in ("less_than_equal", "greater_than_equal"):
            expected = f"out of range ({error['msg'].lower()})"
        what = expected or error["msg"]
        got = "" if error["type"] == "missing" else f", got {json_type(error['input'])}"
        where = _location(tuple(error["loc"]))
        parts.append(f"{where}: {what}{got}" if where else f"{what}{got}")
    more = f" (and {len(errors) - limit} more)" if len(errors) > limit else ""
    return "; ".join(parts) + more
