"""SSH, and nothing else: one asyncssh connection per host (host-key policy, jump hosts,
bounded handshakes), and HTTP/1.1 over its channels
(fleet.transport.http, on h11)."""

from fleet.transport.ssh import ConnectionPool, HostConnection

__all__ = ["ConnectionPool", "HostConnection"]
