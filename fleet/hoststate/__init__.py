"""fleet's state on each host: an append-only journal of changes and a lease lock per project.

There is no central state: both live as files in `<state_dir>/<project>/` on the host, written
over SFTP on the run's SSH connection (no shell command is ever run).

    async with fleet_lock(run.pool.connected, project, "apply", state_dirs=dirs) as lock:
        ...
        lock.check()                      # raises LockLost if a host's lease was taken over
        await Journal(connection, project, state_dir).append([entry])

Raises (with the host name): LockHeld, LockLost, HostStateError.
"""

from fleet.hoststate.journal import Journal
from fleet.hoststate.lease import current_operator, new_lease
from fleet.hoststate.lock import HostLock
from fleet.hoststate.multi import FleetLock, fleet_lock, state_dirs
from fleet.hoststate.paths import DEFAULT_STATE_DIR, ProjectPaths

__all__ = [
    "DEFAULT_STATE_DIR",
    "FleetLock",
    "HostLock",
    "Journal",
    "ProjectPaths",
    "current_operator",
    "fleet_lock",
    "new_lease",
    "state_dirs",
]
