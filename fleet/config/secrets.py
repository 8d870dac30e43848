"""Secrets: looked up by name, carried through rendering as opaque tokens.

`secret('NAME')` renders to a token, never to the value. The token is swapped for the
real value only when a container is created (`reveal`), for a keyed digest when a spec
is hashed (`digest_secrets`), and for a redaction mark wherever fleet shows a spec.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from fleet.config.compose_syntax import parse_env_file
from fleet.errors import FleetError

_TOKEN = re.compile(r"⟦secret:([A-Za-z_][A-Za-z0-9_.-]*)⟧")
REDACTED = "<redacted:{name}>"
HASH_KEY_NAME = "FLEET_SECRET_KEY"


def token(name: str) -> str:
    return f"⟦secret:{name}⟧"


class SecretMissing(FleetError, LookupError):
    """A secret the spec needs is not set (a FleetError: one clear line, not a traceback)."""


@dataclass
class SecretStore:
    """Secret values from the controller's environment, over those of a secrets file."""

    project: str
    file_values: Mapping[str, str] = field(default_factory=dict)
    source: str | None = None
    environ: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))

    def value(self, name: str) -> str:
        if name in self.environ:
            return self.environ[name]
        if name in self.file_values:
            return self.file_values[name]
        where = f"the controller's environment or {self.source}" if self.source else (
            "the controller's environment (no secrets_file is set)")
        raise SecretMissing(f"secret '{name}' is not set in {where}")

    def digest(self, name: str) -> str:
        """A keyed digest of a secret's value, for hashes, labels and journals.

        Keyed by FLEET_SECRET_KEY (from the environment or the secrets file) when set: then
        what hosts store can't be brute-forced back to a weak secret by whoever reads it.
        Every controller of a project must use the same key, or hashes differ."""
        salt = self.environ.get(HASH_KEY_NAME) or self.file_values.get(HASH_KEY_NAME) or ""
        key = hashlib.sha256(f"fleet.secret\0{self.project}\0{name}\0{salt}".encode()).digest()
        return hmac.new(key, self.value(name).encode(), hashlib.sha256).hexdigest()[:16]


def load_secrets_file(path: Path) -> dict[str, str]:
    text = path.read_text(encoding="utf-8")
    if path.suffix in (".yml", ".yaml", ".json"):
        try:
            data = yaml.safe_load(text) or {}
        except yaml.YAMLError as exc:  # its message would quote the file's text: a secret
            mark = getattr(exc, "problem_mark", None)
            where = f":{mark.line + 1}" if mark else ""
            raise ValueError(f"{path}{where}: invalid YAML") from None
        if not isinstance(data, dict):
            raise ValueError(f"{path}: a secrets file must be a mapping of names to values")
        return {str(k): str(v) for k, v in data.items()}
    return parse_env_file(text, str(path))


def secret_names(value: Any) -> set[str]:
    found: set[str] = set()

    def collect(text: str) -> str:
        found.update(_TOKEN.findall(text))
        return text

    _map_strings(value, collect)
    return found


def _map_strings(value: Any, func: Callable[[str], str]) -> Any:
    if isinstance(value, str):
        return func(value)
    if isinstance(value, dict):
        return {k: _map_strings(v, func) for k, v in value.items()}
    if isinstance(value, list):
        return [_map_strings(v, func) for v in value]
    return value


def redact(value: Any) -> Any:
    return _map_strings(value, lambda s: _TOKEN.sub(lambda m: REDACTED.format(name=m[1]), s))


def reveal(value: Any, store: SecretStore) -> Any:
    return _map_strings(value, lambda s: _TOKEN.sub(lambda m: store.value(m[1]), s))


_DIGESTED = re.compile(r"<secret:([A-Za-z_][A-Za-z0-9_.-]*):[0-9a-f]+>")


def tokens_from_digests(value: Any) -> Any:
    """A recorded spec (secrets as digests) back to a renderable one (secrets as tokens):
    the values come from the controller's current secrets when the container is made."""
    return _map_strings(value, lambda s: _DIGESTED.sub(lambda m: token(m[1]), s))


def digest_secrets(value: Any, store: SecretStore) -> Any:
    return _map_strings(
        value, lambda s: _TOKEN.sub(lambda m: f"<secret:{m[1]}:{store.digest(m[1])}>", s)
    )
