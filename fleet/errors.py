"""fleet's error tree.

FleetError                      root; the CLI prints its message and exits non-zero
├── ConfigError                 input files are invalid (carries every Problem found)
├── LabError                    the local lab could not be brought up or down
└── HostError                   one host failed (carries the host name)
    ├── ConnectError            SSH connection or authentication failed
    ├── HostKeyError            the host's key is unknown or has changed
    └── DockerError             the Docker Engine API answered with an error (or not at all)
        └── DockerNotFoundError the container, image or exec does not exist (HTTP 404)
"""

from __future__ import annotations


class FleetError(Exception):
    """Root of every error fleet reports to the user."""


class LabError(FleetError):
    """The lab fleet could not be set up, inspected or torn down."""


class HostError(FleetError):
    def __init__(self, host: str, message: str) -> None:
        super().__init__(f"{host}: {message}")
        self.host = host
        self.reason = message


class ConnectError(HostError):
    pass


class HostKeyError(ConnectError):
    pass


class DockerError(HostError):
    def __init__(self, host: str, message: str, status: int = 0) -> None:
        super().__init__(host, message)
        self.status = status


class DockerNotFoundError(DockerError):
    """The container, image or exec instance named in the call does not exist (HTTP 404)."""
