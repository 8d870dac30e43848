"""Real Docker Engine API answers recorded by tests/fixtures/record_docker.py.

    from docker_fixtures import body, load

    inspect = body("inspect_running_healthy")   # the daemon's JSON, as it answered
    record = load("error_404_inspect")          # {"request", "status", "headers", "body", ...}

See tests/fixtures/README.md for what each fixture shows. Imports nothing from fleet.
"""

from __future__ import annotations

import base64
import copy
import json
from functools import cache
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "docker"


@cache
def _read(name: str) -> dict[str, Any]:
    path = FIXTURES / f"{name.removesuffix('.json')}.json"
    record: dict[str, Any] = json.loads(path.read_text())
    return record


def names() -> list[str]:
    """Every fixture's name (without .json)."""
    return sorted(path.stem for path in FIXTURES.glob("*.json"))


def load(name: str) -> dict[str, Any]:
    """The whole record of fixture `name` (a fresh copy: tests may change it)."""
    return copy.deepcopy(_read(name))


def body(name: str) -> Any:
    """The answer's body: parsed JSON, text (a pull's JSON-lines stream, "" for none), or
    bytes for a binary body (kept as body_base64, e.g. the multiplexed logs stream)."""
    record = load(name)
    if "body_base64" in record:
        return base64.b64decode(record["body_base64"])
    return record["body"]


def stream(name: str) -> list[Any]:
    """The JSON documents of a JSON-lines body (a pull's progress stream), in order."""
    text = body(name)
    if not isinstance(text, str):
        raise TypeError(f"fixture {name} has no text body")
    return [json.loads(line) for line in text.splitlines() if line.strip()]
