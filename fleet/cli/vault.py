"""Decrypting an inventory's Ansible Vault values with the `ansible-vault` command.

Only when a vault password is configured the way Ansible finds one (without it,
`ansible-vault` would prompt, and read our ciphertext as the password): the
ANSIBLE_VAULT_PASSWORD_FILE or ANSIBLE_VAULT_IDENTITY_LIST environment variable, or
`vault_password_file` / `vault_identity_list` in the ansible.cfg Ansible reads. The command
is an argument list (no shell) and the ciphertext goes to its standard input.
"""

from __future__ import annotations

import configparser
import os
import shutil
import stat
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from fleet.config.vault import VaultDecrypt, VaultError
from fleet.text import one_line

COMMAND = ("ansible-vault", "decrypt", "--output", "-", "-")  # stdin to stdout
TIMEOUT = 60.0  # seconds for one value (a password script may be slow, not endless)
SIDE_BY_SIDE = 8  # ansible-vault processes at once (each takes about a second to start)
MAX_ERROR = 300  # characters of its error shown
PASSWORD_ENV = ("ANSIBLE_VAULT_PASSWORD_FILE", "ANSIBLE_VAULT_IDENTITY_LIST")
PASSWORD_KEYS = ("vault_password_file", "vault_identity_list")


def ansible_config_file(environ: Mapping[str, str], cwd: Path) -> Path | None:
    """The ansible.cfg Ansible reads: $ANSIBLE_CONFIG, ./ansible.cfg (unless the directory
    is world-writable), ~/.ansible.cfg, /etc/ansible/ansible.cfg; the first that exists."""
    candidates: list[Path] = []
    if environ.get("ANSIBLE_CONFIG"):
        named = Path(environ["ANSIBLE_CONFIG"]).expanduser()
        candidates.append(named / "ansible.cfg" if named.is_dir() else named)
    try:
        if not cwd.stat().st_mode & stat.S_IWOTH:
            candidates.append(cwd / "ansible.cfg")
    except OSError:
        pass
    candidates += [Path("~/.ansible.cfg").expanduser(), Path("/etc/ansible/ansible.cfg")]
    return next((path for path in candidates if path.is_file()), None)


def password_source(environ: Mapping[str, str], cwd: Path) -> str | None:
    """Where Ansible would take the vault password from, if it would find one."""
    for name in PASSWORD_ENV:
        if environ.get(name):
            return name
    config = ansible_config_file(environ, cwd)
    if config is None:
        return None
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    try:
        parser.read(config, encoding="utf-8")
    except (configparser.Error, OSError, UnicodeDecodeError):
        return None
    for key in PASSWORD_KEYS:
        if parser.get("defaults", key, fallback="").strip():
            return f"{key} in {config}"
    return None


def _failure(stderr: bytes) -> VaultError:
    lines = [ln.strip() for ln in stderr.decode("utf-8", "replace").splitlines() if ln.strip()]
    reason = lines[-1].removeprefix("ERROR! ") if lines else "ansible-vault failed"
    return VaultError(one_line(reason)[:MAX_ERROR])


def _run(batch: Sequence[str], command: Sequence[str], environ: Mapping[str, str]
         ) -> list[str | VaultError]:
    started: list[subprocess.Popen[bytes] | VaultError] = []
    for _ in batch:
        try:
            started.append(subprocess.Popen(  # an argument list: no shell reads anything
                list(command), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                stderr=subprocess.PIPE, env=dict(environ), start_new_session=True))
        except OSError as exc:
            started.append(VaultError(f"cannot run {command[0]}: {exc.strerror or exc}"))
    results: list[str | VaultError] = []
    for ciphertext, process in zip(batch, started, strict=True):
        if isinstance(process, VaultError):
            results.append(process)
            continue
        try:
            out, err = process.communicate(ciphertext.encode(), timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()
            results.append(VaultError(f"{command[0]} took more than {TIMEOUT:g} s"))
            continue
        if process.returncode != 0:
            results.append(_failure(err))
            continue
        try:
            results.append(out.decode("utf-8"))
        except UnicodeDecodeError:
            results.append(VaultError("the decrypted value is not UTF-8 text"))
    return results


def ansible_vault_decrypter(environ: Mapping[str, str] | None = None,
                            cwd: Path | None = None,
                            command: Sequence[str] = COMMAND) -> VaultDecrypt:
    """A decrypter for the inventory: each distinct ciphertext is decrypted once."""
    env = dict(os.environ) if environ is None else dict(environ)
    known: dict[str, str | VaultError] = {}

    def unavailable() -> VaultError | None:
        if shutil.which(command[0], path=env.get("PATH")) is None:
            return VaultError(f"{command[0]} is not installed (Debian: apt-get install "
                              "ansible-core)")
        if password_source(env, cwd or Path.cwd()) is None:
            return VaultError("no vault password: set ANSIBLE_VAULT_PASSWORD_FILE (or "
                              "vault_password_file in ansible.cfg)")
        return None

    def decrypt(ciphertexts: Sequence[str]) -> list[str | VaultError]:
        wanted = [c for c in dict.fromkeys(ciphertexts) if c not in known]
        if wanted:
            refused = unavailable()
            for start in range(0, len(wanted), SIDE_BY_SIDE):
                batch = wanted[start:start + SIDE_BY_SIDE]
                results = [refused] * len(batch) if refused else _run(batch, command, env)
                known.update(zip(batch, results, strict=True))
        return [known[c] for c in ciphertexts]

    return decrypt
