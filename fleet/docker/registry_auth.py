"""Registry credentials: from the playbook's `registries:` (secrets), else the controller's
Docker config and credential helpers (read with the Docker SDK, which already knows them).

Credentials travel only in the X-Registry-Auth header of a pull; never to a host's disk.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from typing import Any

from fleet.config.references import parse_image_reference
from fleet.config.secrets import SecretStore, reveal


@cache
def _docker_config() -> Any:
    # The SDK (and requests, urllib3 under it) is imported only when a pull needs
    # credentials: a check or plan never pays for it.
    import docker.auth
    import docker.errors
    try:
        return docker.auth.load_config()
    except (OSError, ValueError, docker.errors.DockerException):
        return {}


class RegistryAuth:
    def __init__(self, configured: Mapping[str, Mapping[str, str]], secrets: SecretStore) -> None:
        self._configured = configured
        self._secrets = secrets

    def for_image(self, image: str) -> dict[str, str] | None:
        registry = parse_image_reference(image).registry
        if registry in self._configured:
            entry = reveal(dict(self._configured[registry]), self._secrets)
            return {"username": entry["username"], "password": entry["password"],
                    "serveraddress": registry}
        import docker.auth
        import docker.errors
        try:
            found = docker.auth.resolve_authconfig(_docker_config(), registry)
        except (OSError, docker.errors.DockerException):
            return None
        if not found:
            return None
        auth = {k.lower(): str(v) for k, v in dict(found).items() if v}
        auth.setdefault("serveraddress", registry)
        return auth
