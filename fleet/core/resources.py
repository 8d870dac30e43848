"""Resource limits and restart policy: the one mapping between Compose's fields and the
Docker Engine's (pure). Used to create containers, to update them in place, to read what a
running container has, and to return to what it had."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

NS = 1_000_000_000

# Fields Docker can change on a running container (POST /containers/{id}/update).
UPDATABLE_FIELDS = frozenset({"cpus", "mem_limit", "mem_reservation", "pids_limit", "restart"})


def restart_policy(restart: str) -> dict[str, Any]:
    name, _, retries = restart.partition(":")
    return {"Name": name, "MaximumRetryCount": int(retries) if retries else 0}


def update_body(options: Mapping[str, Any]) -> dict[str, Any]:
    """Compose -> Engine: the body of POST /containers/{id}/update (also part of create's
    HostConfig).

    0 means "no limit" at create, but "unchanged" at update: a limit is raised or lowered in
    place, never removed (the diff plans a recreate for that). Swap is set with memory, at
    Docker's own default (twice the memory), so that memory can be raised in place."""
    memory = options.get("mem_limit") or 0
    return {
        "NanoCpus": int(options["cpus"] * NS) if options.get("cpus") else 0,
        "Memory": memory,
        "MemorySwap": 2 * memory if memory else 0,
        "MemoryReservation": options.get("mem_reservation") or 0,
        "PidsLimit": options.get("pids_limit") or 0,
        "RestartPolicy": restart_policy(options.get("restart") or "no"),
    }


def resources_from_host_config(host_config: Mapping[str, Any]) -> dict[str, Any]:
    """Engine, as inspected -> the same keys as update_body, normalized across versions."""
    restart = host_config.get("RestartPolicy") or {}
    return {
        "NanoCpus": host_config.get("NanoCpus") or 0,
        "Memory": host_config.get("Memory") or 0,
        "MemorySwap": (host_config.get("MemorySwap") or 0) if host_config.get("Memory") else 0,
        "MemoryReservation": host_config.get("MemoryReservation") or 0,
        "PidsLimit": host_config.get("PidsLimit") or 0,
        # Docker reports no policy as "" (before 25) or "no" (since).
        "RestartPolicy": {"Name": restart.get("Name") or "no",
                          "MaximumRetryCount": restart.get("MaximumRetryCount", 0)},
    }


def options_from_resources(resources: Mapping[str, Any]) -> dict[str, Any]:
    """Engine -> Compose: the options that give a container these limits and restart policy."""
    restart = resources.get("RestartPolicy") or {}
    name = restart.get("Name") or "no"
    retries = restart.get("MaximumRetryCount") or 0
    return {"cpus": (resources.get("NanoCpus") or 0) / NS or None,
            "mem_limit": resources.get("Memory") or None,
            "mem_reservation": resources.get("MemoryReservation") or None,
            "pids_limit": resources.get("PidsLimit") or None,
            "restart": f"{name}:{retries}" if name == "on-failure" and retries else name}
