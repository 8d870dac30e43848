"""Turning pydantic's validation errors into Problems a user understands.

Pydantic reports a `loc` that mixes data keys with its own union-branch tags; we walk
it against the data to find the real key path, then its line and column in the file.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from functools import cache
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from fleet.config.problems import KeyPath, Problem
from fleet.config.source import SourceDoc

M = TypeVar("M", bound=BaseModel)


class ItemErrors(ValueError):
    """Raised by a list- or mapping-level validator: errors that belong to its items.

    Each entry is the item's index (or key) in the data and either a message, a KeyProblem,
    or the item's own ValidationError (reported against `model`), so problems point at the
    item, not at the whole list or mapping.
    """

    def __init__(self, items: Sequence[tuple[int | str, Exception]],
                 model: type[BaseModel] | None = None) -> None:
        super().__init__("; ".join(str(exc) for _, exc in items))
        self.items = list(items)
        self.model = model


class KeyProblem(ValueError):
    """An item error about a mapping's key itself: reported at the key, not at its value."""

_KIND = {
    "int": "a whole number", "float": "a number", "bool": "true or false",
    "string": "a string", "dict": "a mapping", "list": "a list", "model": "a mapping",
}


_ABSENT = object()


def child_of(node: Any, part: str | int) -> Any:
    """node[part] if the data has it, else _ABSENT."""
    if isinstance(node, Mapping) and part in node:
        return node[part]
    if isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
        return node[part]
    return _ABSENT


def lookup(data: Any, path: Sequence[str | int]) -> Any:
    """The deepest value along `path` that exists in `data`."""
    for part in path:
        child = child_of(data, part)
        if child is _ABSENT:
            break
        data = child
    return data


def _data_path(data: Any, loc: tuple[int | str, ...]) -> tuple[KeyPath, str | int | None]:
    """The part of `loc` that exists in `data`, and the first element that does not."""
    path: list[str | int] = []
    node = data
    for part in loc:
        child = child_of(node, part)
        if child is not _ABSENT:
            path.append(part)
            node = child
        elif isinstance(part, str) and ("[" in part or part in _UNION_TAGS):
            continue  # a union-branch or validator tag, not a key
        else:
            return tuple(path), part
    return tuple(path), None


_UNION_TAGS = {"str", "int", "float", "bool", "list", "dict", "none", "nullable"}


def _resolve(schema: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = root["$defs"][schema["$ref"].rsplit("/", 1)[-1]]
    return schema


def _object_schemas(schema: dict[str, Any], root: dict[str, Any]) -> list[dict[str, Any]]:
    schema = _resolve(schema, root)
    options = schema.get("anyOf") or schema.get("oneOf")
    if options:
        return [s for option in options for s in _object_schemas(option, root)]
    return [schema]


def allowed_keys(model: type[BaseModel], path: KeyPath) -> list[str]:
    """Keys the schema allows at `path` (for "did you mean")."""
    root = _json_schema(model)
    candidates = [root]
    for part in path:
        nxt: list[dict[str, Any]] = []
        for schema in candidates:
            for option in _object_schemas(schema, root):
                if isinstance(part, int) and "items" in option:
                    nxt.append(option["items"])
                elif isinstance(part, str):
                    if part in option.get("properties", {}):
                        nxt.append(option["properties"][part])
                    elif isinstance(option.get("additionalProperties"), dict):
                        nxt.append(option["additionalProperties"])
        candidates = nxt
    keys: set[str] = set()
    for schema in candidates:
        for option in _object_schemas(schema, root):
            keys.update(option.get("properties", {}))
    return sorted(keys)


@cache
def _json_schema(model: type[BaseModel]) -> dict[str, Any]:
    return model.model_json_schema()


def _message(error: ErrorDetails, model: type[BaseModel], path: KeyPath, missing: object) -> str:
    kind, value = error["type"], error.get("input")
    if kind == "extra_forbidden":
        key = str(path[-1])
        suggestion = difflib.get_close_matches(key, allowed_keys(model, path[:-1]), n=1)
        hint = f" (did you mean '{suggestion[0]}'?)" if suggestion else ""
        return f"unknown key '{key}'{hint}"
    if kind == "missing":
        return f"missing required key '{missing}'"
    if kind == "value_error":
        return str(error["msg"]).removeprefix("Value error, ")
    if kind == "literal_error":
        expected = str(error.get("ctx", {}).get("expected", "")).replace("'", "")
        return f"must be one of {expected}; got {value!r}"
    if kind == "string_pattern_mismatch":
        return f"{value!r} is not allowed here (must match {error['ctx']['pattern']})"
    for prefix, words in _KIND.items():
        if kind.startswith(prefix) and kind.endswith(("_type", "_parsing", "_attributes_type")):
            return f"expected {words}, got {_describe(value)}"
    msg = str(error["msg"])
    return f"{msg[0].lower()}{msg[1:]}, got {_describe(value)}"


def _describe(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "nothing (null)"
    return repr(value)


def problems_from(
    exc: ValidationError, model: type[BaseModel], data: Any, doc: SourceDoc, base: KeyPath = ()
) -> list[Problem]:
    problems: list[Problem] = []
    seen_paths: set[KeyPath] = set()
    for error in exc.errors():
        if error["type"] == "none_required":
            continue
        path, missing = _data_path(data, error["loc"])
        cause = error.get("ctx", {}).get("error") if error["type"] == "value_error" else None
        if isinstance(cause, ItemErrors):
            problems.extend(_item_problems(cause, lookup(data, path), doc, (*base, *path)))
            continue
        if error["type"] == "missing" and missing is None and path:
            path, missing = path[:-1], path[-1]
        if path in seen_paths and error["type"] != "extra_forbidden":
            continue  # one message per key is enough (union branches repeat themselves)
        seen_paths.add(path)
        message = _message(error, model, path, missing)
        full = (*base, *path)
        shown = (*full, missing) if error["type"] == "missing" and missing is not None else full
        problem = doc.problem(full, message, at_key=error["type"] == "extra_forbidden")
        problems.append(Problem(problem.file, problem.line, problem.column,
                                doc.origin(shown)[1], message))
    return problems


def _item_problems(errors: ItemErrors, items: Any, doc: SourceDoc, base: KeyPath) -> list[Problem]:
    problems: list[Problem] = []
    for index, exc in errors.items:
        item = child_of(items, index)
        if isinstance(exc, ValidationError) and errors.model is not None:
            problems.extend(problems_from(exc, errors.model, item, doc, (*base, index)))
        elif isinstance(exc, ItemErrors):  # errors of the item's own items
            problems.extend(_item_problems(exc, item, doc, (*base, index)))
        else:
            problems.append(doc.problem((*base, index), str(exc),
                                        at_key=isinstance(exc, KeyProblem)))
    return problems


def validate_model(
    model: type[M], data: Any, doc: SourceDoc, base: KeyPath = ()
) -> tuple[M | None, list[Problem]]:
    try:
        return model.model_validate(data), []
    except ValidationError as exc:
        return None, problems_from(exc, model, data, doc, base)
