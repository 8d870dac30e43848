"""fleet's error tree.

FleetError                      root; the CLI prints its message and exits non-zero
├── ConfigError                 input files are invalid (carries every Problem found)
├── LabError                    the local lab could not be brought up or down
└── HostError                   one host failed (carries the host name)
    ├── ConnectError            SSH connection or authentication failed
    ├── HostKeyError            the host's key is unknown or has changed
    ├── DockerError             the Docker Engine API answered with an error (or not at all)
    │   ├── DockerNotFoundError the container, image or network does not exist (HTTP 404)
    │   └── HostAnswerError     it answered with something fleet will not use (too large,
    │                           not JSON, too deep, of the wrong shape)
    ├── HostStateError          fleet's files on the host (journal, lock) could not be used
    ├── LockHeld                another run holds the project's lock on the host
    └── LockLost                our lock on the host was taken over or removed mid-run
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fleet.core.lease import LockInfo


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
    def __init__(self, host: str, message: str, *, transient: bool = False) -> None:
        super().__init__(host, message)
        self.transient = transient  # worth trying again (a reset, a dropped handshake)


class HostKeyError(ConnectError):
    pass


class DockerError(HostError):
    def __init__(self, host: str, message: str, status: int = 0) -> None:
        super().__init__(host, message)
        self.status = status


class DockerNotFoundError(DockerError):
    """The container, image or network named in the call does not exist (HTTP 404)."""


class HostAnswerError(DockerError):
    """The daemon's answer is unusable: beyond a size bound, not JSON, nested too deep, or
    of the wrong shape ("Docker answered GET /containers/json with ...: expected a list")."""


class HostStateError(HostError):
    """fleet's state files on the host (journal, lock) could not be read or written."""


class LockHeld(HostError):
    """Another run holds the project's lease on this host (`also`: other hosts it holds)."""

    def __init__(self, host: str, info: LockInfo, also: tuple[str, ...] = ()) -> None:
        more = f" (and on {len(also)} more host{'s' if len(also) != 1 else ''})" if also else ""
        super().__init__(host, f"locked by {info.describe()}{more}")
        self.info = info
        self.also = also


class LockLost(HostError):
    """Our lease on this host was removed or taken over while the run still needed it."""
