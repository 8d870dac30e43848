"""Ansible Vault values in inventories: `!vault` scalars and vault-encrypted vars files.

The config layer runs no process, so decrypting is a function given from outside (the CLI
gives one that runs `ansible-vault`). A decrypted value is a secret: it enters the host's
vars as a secret token (see fleet.config.secrets), so it is redacted wherever fleet shows a
spec and stored only as a keyed digest, like the values of `secret()`.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from fleet.config.problems import KeyPath, Problem, format_key_path
from fleet.config.secrets import token
from fleet.config.source import SourceDoc, Vaulted

VAULT_HEADER = "$ANSIBLE_VAULT;"
_UNSAFE_KEY, _VAULT_KEY = "__ansible_unsafe", "__ansible_vault"  # Ansible's JSON encoding


class VaultError(Exception):
    """Why a vault value could not be decrypted (the message is shown after its place)."""


# Ciphertexts -> for each, its plaintext or why not; one call per file, so a decrypter can
# run its work side by side.
VaultDecrypt = Callable[[Sequence[str]], Sequence["str | VaultError"]]


def no_decrypter(ciphertexts: Sequence[str]) -> list[str | VaultError]:
    return [VaultError("fleet was given no way to decrypt Ansible Vault values")
            for _ in ciphertexts]


@dataclass
class VaultSecrets:
    """The decrypted values of one inventory, by the secret names their tokens carry."""

    decrypt: VaultDecrypt = no_decrypter
    values: dict[str, str] = field(default_factory=dict)

    def name_for(self, path: KeyPath, ciphertext: str) -> str:
        """`vault.VAR.HASH`: the variable it was found under and a digest of the ciphertext
        (not the value), so a name is the same on every controller and in every run."""
        var = re.sub(r"[^A-Za-z0-9_.-]", "_", _variable(path))[:64] or "value"
        return f"vault.{var}.{hashlib.sha256(ciphertext.encode()).hexdigest()[:8]}"

    def keep(self, path: KeyPath, ciphertext: str, plaintext: str) -> str:
        name = self.name_for(path, ciphertext)
        self.values[name] = plaintext
        return token(name)

    def reveal_in(self, doc: SourceDoc) -> None:
        """Replace every `!vault` value in `doc.data` by its secret token, or by None and a
        problem naming the file, line and variable."""
        found: list[tuple[KeyPath, Vaulted]] = []
        _find_vaulted(doc.data, (), found)
        if not found:
            return
        results = self.decrypt([v.ciphertext for _, v in found])
        for (path, vaulted), result in zip(found, results, strict=True):
            if isinstance(result, str):
                value: str | None = self.keep(path, vaulted.ciphertext, result)
            else:
                value = None
                doc.problems.append(doc.problem(path, f"!vault value of '{_variable(path)}' "
                                                f"cannot be decrypted: {result}"))
            _replace(doc, path, value)

    def vault_file(self, text: str, path: str) -> tuple[str | None, Problem | None]:
        """The plaintext of a vault-encrypted vars file, or the problem that stops it."""
        result = self.decrypt([text])[0]
        if isinstance(result, str):
            return result, None
        return None, Problem(path, 1, 1, (), f"vault-encrypted file cannot be decrypted: "
                                             f"{result}")

    def all_secret(self, value: Any, path: KeyPath, ciphertext: str) -> Any:
        """A decrypted vars file's values: every string a secret (the whole file was)."""
        if isinstance(value, str):
            return self.keep(path, f"{ciphertext}\0{format_key_path(path)}", value)
        if isinstance(value, dict):
            return {k: self.all_secret(v, (*path, k), ciphertext) for k, v in value.items()}
        if isinstance(value, list):
            return [self.all_secret(v, (*path, i), ciphertext) for i, v in enumerate(value)]
        return value


def _variable(path: KeyPath) -> str:
    """The variable a value is under: the last name of its key path."""
    return next((p for p in reversed(path) if isinstance(p, str)), "value")


def _find_vaulted(value: Any, path: KeyPath, found: list[tuple[KeyPath, Vaulted]]) -> None:
    if isinstance(value, Vaulted):
        found.append((path, value))
    elif isinstance(value, dict):
        for key, item in value.items():
            _find_vaulted(item, (*path, key), found)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _find_vaulted(item, (*path, index), found)


def _replace(doc: SourceDoc, path: KeyPath, value: Any) -> None:
    if not path:
        doc.data = value
        return
    parent = doc.data
    for part in path[:-1]:
        parent = parent[part]
    parent[path[-1]] = value


def decode_ansible_json(value: Any) -> Any:
    """Ansible's JSON for tagged values (what `ansible-inventory --list` prints):
    `{"__ansible_unsafe": "..."}` is that string, `{"__ansible_vault": "..."}` a `!vault`."""
    if isinstance(value, dict):
        if len(value) == 1 and isinstance(value.get(_UNSAFE_KEY), str):
            return value[_UNSAFE_KEY]
        if len(value) == 1 and isinstance(value.get(_VAULT_KEY), str):
            return Vaulted(value[_VAULT_KEY])
        return {k: decode_ansible_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [decode_ansible_json(v) for v in value]
    return value


def is_vault_file(text: str) -> bool:
    return text.lstrip().startswith(VAULT_HEADER)
