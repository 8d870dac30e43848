"""Registry credentials: the playbook's (from secrets), else the controller's Docker config."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from fleet.config.secrets import SecretStore, token
from fleet.docker import registry_auth
from fleet.docker.registry_auth import RegistryAuth


def test_playbook_credentials_reveal_secrets_only_for_the_pull() -> None:
    store = SecretStore("shop", environ={"REG_TOKEN": "hunter2"})
    auth = RegistryAuth({"registry.example.com": {"username": "ci",
                                                  "password": token("REG_TOKEN")}}, store)
    assert auth.for_image("registry.example.com/shop/web:1") == {
        "username": "ci", "password": "hunter2", "serveraddress": "registry.example.com"}


def test_controller_docker_config_is_used_otherwise(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    encoded = base64.b64encode(b"robot:s3cret").decode()
    (tmp_path / "config.json").write_text(json.dumps(
        {"auths": {"registry.example.org": {"auth": encoded}}}))
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    registry_auth._docker_config.cache_clear()
    try:
        auth = RegistryAuth({}, SecretStore("shop", environ={}))
        found = auth.for_image("registry.example.org/team/app:2")
        assert found is not None
        assert found["username"] == "robot" and found["password"] == "s3cret"
        assert auth.for_image("other.example.net/app:1") is None
    finally:
        registry_auth._docker_config.cache_clear()
