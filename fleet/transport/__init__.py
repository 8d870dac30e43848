"""SSH, and nothing else: one asyncssh connection per host (host-key policy, jump hosts,
bounded handshakes), and httpx transports over its channels."""

from fleet.transport.ssh import ConnectionPool, HostConnection

__all__ = ["ConnectionPool", "HostConnection"]
