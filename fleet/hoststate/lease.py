"""Who "we" are on this controller, new leases, and whether a lease's holder still lives."""

from __future__ import annotations

import getpass
import os
import socket
import uuid
from datetime import datetime, timedelta

from fleet.core.lease import DEFAULT_TTL, LockInfo, utc_now


def controller_host() -> str:
    return socket.gethostname()


def current_operator() -> str:
    """`user@controller-hostname`, or $FLEET_OPERATOR (e.g. a CI job naming its pipeline)."""
    override = os.environ.get("FLEET_OPERATOR", "").strip()
    if override:
        return override
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (containers)
        user = str(os.getuid())
    return f"{user}@{controller_host()}"


def process_alive(pid: int) -> bool:
    """True for a running process; False for none, or a zombie (a dead, unreaped child)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as stat:
            state = stat.read().rpartition(")")[2].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def holder_is_gone(info: LockInfo) -> bool:
    """Taken on this controller by a process that has since died (a run killed outright):
    its lease need not run out before a re-run may converge."""
    return info.controller_host == controller_host() and not process_alive(info.pid)


def new_lease(command: str, ttl: float = DEFAULT_TTL, *, now: datetime | None = None,
              run_id: str | None = None) -> LockInfo:
    moment = now or utc_now()
    return LockInfo(owner=current_operator(), controller_host=controller_host(), pid=os.getpid(),
                    command=command, acquired_at=moment,
                    expires_at=moment + timedelta(seconds=ttl),
                    run_id=run_id or uuid.uuid4().hex)
