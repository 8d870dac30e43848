"""Registry credentials reach a host's daemon only when a command is about to pull and the
registry refuses an anonymous answer (finding 6 of the hostile-input issue)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from fleet.config.secrets import SecretStore
from fleet.docker.registry_auth import RegistryAuth
from fleet.engine.observe import resolve_digests
from fleet.errors import DockerError

IMAGE = "registry.example.com/shop/web:1.4"
DIGEST = "sha256:" + "b" * 64


class Daemon:
    """A host's daemon that records the credentials it was sent."""

    def __init__(self, needs_credentials: bool) -> None:
        self.needs_credentials = needs_credentials
        self.sent: list[Mapping[str, str] | None] = []

    async def distribution_inspect(self, reference: str, *,
                                   auth: Mapping[str, str] | None = None) -> str:
        self.sent.append(auth)
        if self.needs_credentials and not auth:
            raise DockerError("h1", "unauthorized: authentication required", 401)
        return DIGEST


def resolve(daemon: Daemon, about_to_pull: bool) -> dict[str, str | None]:
    store = SecretStore("shop", environ={})
    auth = RegistryAuth({"registry.example.com": {"username": "u", "password": "p"}}, store)
    clients: dict[str, Any] = {"h1": daemon}
    digests, _ = asyncio.run(resolve_digests({"h1": [IMAGE]}, clients,
                                             auth if about_to_pull else None))
    return digests


def test_an_open_registry_never_gets_credentials() -> None:
    for about_to_pull in (False, True):
        daemon = Daemon(needs_credentials=False)
        assert resolve(daemon, about_to_pull) == {IMAGE: DIGEST}
        assert daemon.sent == [None]


def test_a_read_only_command_sends_none_even_when_refused() -> None:
    daemon = Daemon(needs_credentials=True)
    assert resolve(daemon, about_to_pull=False) == {IMAGE: None}
    assert daemon.sent == [None]


def test_a_command_about_to_pull_sends_them_only_after_a_refusal() -> None:
    daemon = Daemon(needs_credentials=True)
    assert resolve(daemon, about_to_pull=True) == {IMAGE: DIGEST}
    assert daemon.sent == [None, {"username": "u", "password": "p",
                                  "serveraddress": "registry.example.com"}]
