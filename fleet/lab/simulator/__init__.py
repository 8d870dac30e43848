"""An Engine API simulator: the Docker daemons of a lab's simulated hosts, in one process.

A simulated lab host is a real network namespace with a real sshd; only its Docker daemon is
simulated. fleet reaches it exactly as a real one (SSH, then the socket at
/var/run/docker.sock), so connection handling, SFTP state, locks and journals are all real.

What is simulated (fleet.lab.simulator.engine): containers (create, start, stop, kill, restart,
rename, update, remove, inspect, list with label filters, logs), health checks and exits driven
by the clock and by knobs in the container's environment, images pulled by resolving the
reference against the lab registry (real manifest digests and image IDs, nothing downloaded),
distribution inspect, networks (create, list, connect), volumes (create, list), /_ping,
/version, /info, API version negotiation, and published-port conflicts.

What is not: no process runs, so nothing listens on a published port (probes run by the host
fail), commands and entrypoints never execute, health checks are not run (see the knobs),
bind mounts and volumes hold no data, no exec, no events, no build, no resource limits
enforced, and a simulator restart forgets every container (as a host whose disk was wiped).
"""
