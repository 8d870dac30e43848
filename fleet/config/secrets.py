"""Secrets: looked up by name, carried through rendering as opaque tokens.

`secret('NAME')` renders to a token, never to the value. The token is swapped for the
real value only when a container is created (`reveal`), for a keyed digest when a spec
is hashed (`digest_secrets`), and for a redaction mark wherever fleet shows a spec.

A token carries a random nonce drawn once per process, so text that merely looks like
one (in a playbook, an inventory, or anything a host recorded) is inert: only secret()
makes tokens. Tokens never leave the process: what is stored or shown is a digest or a
redaction mark.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets as random_source
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from fleet.config.compose_syntax import parse_env_file
from fleet.config.secret_commands import SecretCommandFailed, SecretCommands
from fleet.config.source import located, parse_yaml, read_source
from fleet.errors import FleetError

_NONCE = random_source.token_hex(8)
_TOKEN = re.compile(rf"⟦secret:{_NONCE}:([A-Za-z_][A-Za-z0-9_.-]*)⟧")
REDACTED = "<redacted:{name}>"
HASH_KEY_NAME = "FLEET_SECRET_KEY"


def token(name: str) -> str:
    return f"⟦secret:{_NONCE}:{name}⟧"


class SecretMissing(FleetError, LookupError):
    """A secret the spec needs is not set (a FleetError: one clear line, not a traceback)."""


@dataclass
class SecretStore:
    """Secret values from the commands a playbook declares (`secret_commands:`), else the
    controller's environment, over those of a secrets file."""

    project: str
    file_values: Mapping[str, str] = field(default_factory=dict)
    source: str | None = None
    environ: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    # The names this store may reveal (None: any). A host's store is limited to what the
    # playbook declares for it, so nothing a host wrote can make fleet send another value.
    allowed: frozenset[str] | None = None
    # Values fleet keeps as secrets though no secret() names them (env_file contents, a bare
    # `KEY` taken from the environment), by the names the desired state gave them.
    hidden: Mapping[str, str] = field(default_factory=dict)
    # Values decrypted from the inventory's Ansible Vault values (`vault.VAR.HASH` names).
    vaulted: Mapping[str, str] = field(default_factory=dict)
    # `secret_commands:`, each run once (the copies `only` makes share what they gave).
    commands: SecretCommands = field(default_factory=SecretCommands)

    def only(self, names: Collection[str]) -> SecretStore:
        """This store, revealing only those of `names` it already may (it never widens)."""
        kept = frozenset(names) if self.allowed is None else self.allowed & frozenset(names)
        return replace(self, allowed=kept)

    def with_hidden(self, values: Mapping[str, str]) -> SecretStore:
        """This store, also holding `values` (the mapping itself: it may still grow)."""
        return replace(self, hidden=values)

    def value(self, name: str) -> str:
        if self.allowed is not None and name not in self.allowed:
            raise SecretMissing(f"secret '{name}' is not one the playbook gives this host")
        if name in self.hidden:
            return self.hidden[name]
        if name in self.vaulted:
            return self.vaulted[name]
        if name in self.commands:  # declared for this name: the environment doesn't shadow it
            try:
                return self.commands.value(name)
            except SecretCommandFailed as exc:
                raise SecretMissing(f"secret '{name}' (secret_commands.{name}): {exc}") from None
        if name in self.environ:
            return self.environ[name]
        if name in self.file_values:
            return self.file_values[name]
        where = f"the controller's environment or {self.source}" if self.source else (
            "the controller's environment (no secrets_file is set)")
        raise SecretMissing(f"secret '{name}' is not set in {where}")

    def data(self, name: str) -> bytes:
        """A secret's value as bytes: a secret file's bytes are kept as text by
        surrogate escapes (fleet.core.service_files), so they come back exactly."""
        return self.value(name).encode("utf-8", "surrogateescape")

    def _hash_key(self) -> str:
        if HASH_KEY_NAME in self.commands:
            return self.commands.value(HASH_KEY_NAME)
        return self.environ.get(HASH_KEY_NAME) or self.file_values.get(HASH_KEY_NAME) or ""

    @property
    def keyed(self) -> bool:
        """Whether digests are keyed by FLEET_SECRET_KEY (else a reader can test guesses)."""
        return bool(self._hash_key())

    def digest(self, name: str) -> str:
        """A keyed digest of a secret's value, for hashes, labels and journals.

        Keyed by FLEET_SECRET_KEY (from the environment or the secrets file) when set: then
        what hosts store can't be brute-forced back to a weak secret by whoever reads it.
        Every controller of a project must use the same key, or hashes differ."""
        salt = self._hash_key()
        key = hashlib.sha256(f"fleet.secret\0{self.project}\0{name}\0{salt}".encode()).digest()
        return hmac.new(key, self.data(name), hashlib.sha256).hexdigest()[:16]


def load_secrets_file(path: Path) -> dict[str, str]:
    """A secrets file's values, read and parsed within the config files' limits. Raises
    ValueError; no message quotes the file's text (it would be a secret)."""
    text, problem = read_source(path)
    if text is None:
        raise ValueError(located(problem))
    if path.suffix not in (".yml", ".yaml", ".json"):
        return parse_env_file(text, str(path))
    doc = parse_yaml(text, str(path))
    errors = [p for p in doc.problems if p.severity == "error"]
    if errors:
        first = errors[0]
        raise ValueError(f"{path}:{first.line}:{first.column}: invalid YAML or over a limit "
                         "(the reason is not shown: it could quote a secret)")
    data = doc.data if doc.data is not None else {}
    if not isinstance(data, dict) or not all(
            isinstance(v, str | int | float | bool) for v in data.values()):
        raise ValueError(f"{path}: a secrets file must be a mapping of names to plain values")
    return {str(k): str(v) for k, v in data.items()}


def _names(pattern: re.Pattern[str], value: Any) -> set[str]:
    found: set[str] = set()

    def collect(text: str) -> str:
        found.update(pattern.findall(text))
        return text

    _map_strings(value, collect)
    return found


def secret_names(value: Any) -> set[str]:
    """The secrets a rendered value (secrets as tokens) refers to."""
    return _names(_TOKEN, value)


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


def recorded_secret_names(value: Any) -> set[str]:
    """The secrets a recorded spec (secrets as digests) refers to."""
    return _names(_DIGESTED, value)


def tokens_from_digests(value: Any) -> Any:
    """A recorded spec (secrets as digests) back to a renderable one (secrets as tokens):
    the values come from the controller's current secrets when the container is made."""
    return _map_strings(value, lambda s: _DIGESTED.sub(lambda m: token(m[1]), s))


def digest_secrets(value: Any, store: SecretStore) -> Any:
    return _map_strings(
        value, lambda s: _TOKEN.sub(lambda m: f"<secret:{m[1]}:{store.digest(m[1])}>", s)
    )
