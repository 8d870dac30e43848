"""Ansible Vault values in inventories: decrypted through `ansible-vault` when a password is
configured, kept as secrets (redacted, digested), else a clear error at their place."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest
from config_support import playbook, write

from fleet.cli.vault import ansible_vault_decrypter, password_source
from fleet.config.inventory import load_inventory_with_problems
from fleet.config.problems import ConfigError, errors_in
from fleet.config.project import ProjectFiles, read_project
from fleet.config.secrets import redact, reveal
from fleet.config.vault import VaultError
from fleet.core.desired import DesiredState, desired_state

CIPHER = "$ANSIBLE_VAULT;1.1;AES256\n6162\n"  # the shape; the fake decrypters read it
PLAIN = {CIPHER: "s3cret", "$ANSIBLE_VAULT;1.1;AES256\n6364\n": "deploy"}
INVENTORY = """\
    all:
      hosts:
        h:
          ansible_host: 198.18.40.1
          db_pw: !vault |
              $ANSIBLE_VAULT;1.1;AES256
              6162
    """


def fake(ciphertexts: Sequence[str]) -> list[str | VaultError]:
    return [PLAIN.get(c, VaultError("Decryption failed")) for c in ciphertexts]


def project(tmp_path: Path, inventory: str, environment: str, **files: str) -> DesiredState:
    for name, text in files.items():
        write(tmp_path, name.replace("__", "/"), text)
    write(tmp_path, "inv.yml", inventory)
    pb = playbook(tmp_path, f"web:\n  image: nginx:1\n  environment: {environment}\n")
    return desired_state(read_project(ProjectFiles([str(pb)], [str(tmp_path / "inv.yml")],
                                                   vault=fake), environ={}))


def test_a_vault_value_is_a_secret_of_the_host(tmp_path: Path) -> None:
    state = project(tmp_path, INVENTORY, "{DB_PW: 'pw={{ vars.db_pw }}'}")
    env = state.containers["h"][0].options["environment"]
    name = next(iter(state.inventory.secrets))
    assert name.startswith("vault.db_pw.")
    assert redact(env) == {"DB_PW": f"pw=<redacted:{name}>"}  # what plan and render show
    assert reveal(env, state.secrets_for("h")) == {"DB_PW": "pw=s3cret"}  # what h gets
    assert "s3cret" not in repr(state.containers["h"][0].spec_hash)


def test_a_vault_value_cannot_be_transformed_or_labelled(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        project(tmp_path, INVENTORY, "{DB_PW: '{{ vars.db_pw | upper }}'}")
    assert "secret" in str(caught.value)


def test_without_a_decrypter_a_vault_value_is_an_error_at_its_line(tmp_path: Path) -> None:
    path = write(tmp_path, "inv.yml", INVENTORY)
    _, found = load_inventory_with_problems([str(path)])
    assert [str(p) for p in found] == [
        f"{path}:5:14: all.hosts.h.db_pw: !vault value of 'db_pw' cannot be decrypted: "
        "fleet was given no way to decrypt Ansible Vault values"]


def test_a_failed_decryption_names_file_line_and_variable(tmp_path: Path) -> None:
    write(tmp_path, "group_vars/web.yml", "token: !vault |\n  $ANSIBLE_VAULT;1.1;AES256\n"
                                          "  ffff\n")
    path = write(tmp_path, "hosts", "[web]\nh ansible_host=198.18.40.1\n")
    _, found = load_inventory_with_problems([str(path)], fake)
    assert [str(p) for p in found] == [
        f"{tmp_path}/group_vars/web.yml:1:8: token: !vault value of 'token' cannot be "
        "decrypted: Decryption failed"]


def test_a_vault_encrypted_vars_file_makes_every_string_a_secret(tmp_path: Path) -> None:
    encrypted = "$ANSIBLE_VAULT;1.1;AES256\n6566\n"
    PLAIN[encrypted] = "vault_pw: hunter2\nvault_port: 5432\n"
    write(tmp_path, "group_vars/web/vault", encrypted)
    write(tmp_path, "group_vars/web/vars", "pw: plain\n")
    path = write(tmp_path, "hosts", "[web]\nh ansible_host=198.18.40.1\n")
    inventory, found = load_inventory_with_problems([str(path)], fake)
    assert found == []
    variables = dict(inventory.host("h").vars)
    assert variables["vault_port"] == 5432 and variables["pw"] == "plain"
    assert redact(variables["vault_pw"]).startswith("<redacted:vault.vault_pw.")
    assert list(inventory.secrets.values()) == ["hunter2"]


def test_a_vault_connection_variable_is_used_decrypted(tmp_path: Path) -> None:
    path = write(tmp_path, "inv.yml", INVENTORY.replace("db_pw", "ansible_user").replace(
        "6162", "6364"))
    inventory, found = load_inventory_with_problems([str(path)], fake)
    assert found == [] and inventory.host("h").user == "deploy"


def test_list_json_vault_values_are_decrypted_too(tmp_path: Path) -> None:
    text = ('{"_meta": {"hostvars": {"h": {"pw": {"__ansible_vault": "$ANSIBLE_VAULT;1.1;'
            'AES256\\n6162\\n"}}}}, "web": {"hosts": ["h"]}}')
    inventory, found = load_inventory_with_problems([str(write(tmp_path, "i.json", text))],
                                                    fake)
    assert found == [] and list(inventory.secrets.values()) == ["s3cret"]


# --- the ansible-vault command ---------------------------------------------------------


def test_the_password_is_found_where_ansible_finds_it(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    os.chmod(tmp_path, 0o755)
    clean = {"HOME": str(home)}
    assert password_source({**clean, "ANSIBLE_VAULT_PASSWORD_FILE": "/p"}, tmp_path) == (
        "ANSIBLE_VAULT_PASSWORD_FILE")
    write(tmp_path, "ansible.cfg", "[defaults]\ninventory = hosts\n")
    assert password_source(clean, tmp_path) is None
    write(tmp_path, "ansible.cfg", "[defaults]\nvault_password_file = ~/.vault_pass\n")
    assert password_source(clean, tmp_path) == f"vault_password_file in {tmp_path}/ansible.cfg"
    os.chmod(tmp_path, 0o777)  # Ansible ignores ansible.cfg in a world-writable folder
    try:
        assert password_source(clean, tmp_path) is None
    finally:
        os.chmod(tmp_path, 0o755)


def test_no_password_means_ansible_vault_is_not_run(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    command = _script(tmp_path, f"open({str(marker)!r}, 'w')")
    decrypt = ansible_vault_decrypter({"PATH": str(tmp_path), "HOME": str(tmp_path)}, tmp_path,
                                      (str(command),))
    assert [str(r) for r in decrypt([CIPHER])] == [
        "no vault password: set ANSIBLE_VAULT_PASSWORD_FILE (or vault_password_file in "
        "ansible.cfg)"]
    assert not marker.exists()  # it would have prompted, and read our ciphertext
    missing = ansible_vault_decrypter({"PATH": str(tmp_path)}, tmp_path, ("no-such-vault",))
    assert str(missing([CIPHER])[0]) == ("no-such-vault is not installed (Debian: apt-get "
                                         "install ansible-core)")


def _script(tmp_path: Path, body: str) -> Path:
    script = tmp_path / "fake-vault"
    script.write_text(f"#!{sys.executable}\nimport sys\n{body}\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script


def test_the_command_gets_its_arguments_and_the_ciphertext_on_stdin(tmp_path: Path) -> None:
    command = _script(tmp_path, "data = sys.stdin.read()\n"
                                "if 'bad' in data: sys.exit('ERROR! Decryption failed on -')\n"
                                "print(repr(sys.argv[1:]) + ':' + data[::-1], end='')")
    decrypt = ansible_vault_decrypter({"PATH": str(tmp_path),
                                       "ANSIBLE_VAULT_PASSWORD_FILE": "/p"}, tmp_path,
                                      (str(command), "decrypt", "--output", "-", "-"))
    results = decrypt(["abc; $(id)", "bad", "abc; $(id)"])
    assert results[0] == results[2] == "['decrypt', '--output', '-', '-']:)di($ ;cba"
    assert str(results[1]) == "Decryption failed on -"


ANSIBLE_VAULT = shutil.which("ansible-vault")


@pytest.mark.skipif(ANSIBLE_VAULT is None, reason="ansible-vault is not installed "
                    "(Debian: apt-get install ansible-core)")
def test_real_ansible_vault_values_and_files(tmp_path: Path) -> None:
    assert ANSIBLE_VAULT is not None
    password = write(tmp_path, "pass", "correct horse\n")
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path),
           "ANSIBLE_CONFIG": str(write(tmp_path, "ansible.cfg", "")),
           "ANSIBLE_VAULT_PASSWORD_FILE": str(password)}
    value = subprocess.run([ANSIBLE_VAULT, "encrypt_string", "--name", "db_pw", "p@ss w0rd"],
                           env=env, capture_output=True, text=True, check=True).stdout
    vault_file = write(tmp_path, "inv/group_vars/web/vault", "vault_token: t0ken\n")
    subprocess.run([ANSIBLE_VAULT, "encrypt", str(vault_file)], env=env, capture_output=True,
                   check=True)
    write(tmp_path, "inv/host_vars/h.yml", value)
    path = write(tmp_path, "inv/hosts", "[web]\nh ansible_host=198.18.40.1\n")
    inventory, found = load_inventory_with_problems(
        [str(path)], ansible_vault_decrypter(env, tmp_path))
    assert found == []
    assert sorted(inventory.secrets.values()) == ["p@ss w0rd", "t0ken"]
    wrong = {**env, "ANSIBLE_VAULT_PASSWORD_FILE": str(write(tmp_path, "wrong", "nope\n"))}
    _, found = load_inventory_with_problems([str(path)], ansible_vault_decrypter(wrong, tmp_path))
    assert [p.message for p in errors_in(found)] == [
        "vault-encrypted file cannot be decrypted: Decryption failed (no vault secrets were "
        "found that could decrypt) on - for -",
        "!vault value of 'db_pw' cannot be decrypted: Decryption failed (no vault secrets "
        "were found that could decrypt) on - for -"]
