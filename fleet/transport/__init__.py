"""fleet's transport: SSH connections to hosts and the Docker Engine API over them."""

from fleet.transport.docker_api import DockerClient, ExecResult
from fleet.transport.docker_wire import ContainerOutput, StreamChunk
from fleet.transport.ssh import ConnectionPool, HostConnection, SSHTarget

__all__ = [
    "ConnectionPool",
    "ContainerOutput",
    "DockerClient",
    "ExecResult",
    "HostConnection",
    "SSHTarget",
    "StreamChunk",
]
