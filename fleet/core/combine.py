"""`fleet combine`: the `--json` reports of one command run on several shards (`--shard K/N`),
merged into one report of the same shape, with the exit code the command would have given
for the whole fleet. Pure: reports in, report and exit code out.

The command is recognised by its report's keys; reports of different commands or projects
are refused. Per-host lists are concatenated in host order; flags are recomputed (`in_sync`
and `converged` hold only if they hold in every shard; `changes` and `interrupted` if in
any); counts are summed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

EXIT_OK, EXIT_ERROR, EXIT_CHANGES = 0, 1, 2
# The keys that tell which command printed a report (each command's own, fixed by its --json).
SIGNATURES = {
    "check": {"in_sync", "findings", "unreachable"},
    "plan": {"changes", "order", "hosts", "unreachable"},
    "apply": {"converged", "hosts", "unreachable"},
    "status": {"containers", "unreachable"},
}


class CombineError(ValueError):
    pass


def command_of(report: Mapping[str, Any]) -> str:
    for command, keys in SIGNATURES.items():
        if keys <= set(report):
            return command
    raise CombineError("not the --json report of check, plan, apply or status")


def _by_host(items: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    return sorted(items, key=lambda item: str(item.get("host", "")))  # stable within a host


def _all(reports: Sequence[Mapping[str, Any]], key: str) -> list[Any]:
    found: list[Any] = []
    for report in reports:
        value = report.get(key, [])
        if not isinstance(value, list):
            raise CombineError(f"'{key}' is not a list")
        found += value
    return found


def combine(reports: Sequence[Mapping[str, Any]]) -> tuple[dict[str, Any], int]:
    """One report for all shards, and the exit code of the command over all of them."""
    if not reports:
        raise CombineError("no report to combine")
    commands = {command_of(r) for r in reports}
    if len(commands) > 1:
        raise CombineError(f"reports of different commands: {', '.join(sorted(commands))}")
    command = commands.pop()
    projects = {r.get("project") for r in reports}
    if len(projects) > 1:
        raise CombineError("reports of different projects: "
                           + ", ".join(sorted(str(p) for p in projects)))
    unreachable = _by_host(_all(reports, "unreachable"))
    merged: dict[str, Any] = {"project": projects.pop()} if "project" in reports[0] else {}
    if command == "check":
        findings = _by_host(_all(reports, "findings"))
        checked = sum(int(r.get("hosts_checked", 0)) for r in reports)
        in_sync = all(r.get("in_sync") is True for r in reports)
        merged |= {"in_sync": in_sync, "hosts_checked": checked, "findings": findings,
                   "unreachable": unreachable}
        code = EXIT_ERROR if unreachable or not checked else (
            EXIT_CHANGES if findings else EXIT_OK)
    elif command == "plan":
        orders = {tuple(r.get("order", [])) for r in reports}
        changes = any(r.get("changes") is True for r in reports)
        merged |= {"changes": changes,
                   "hosts_checked": sum(int(r.get("hosts_checked", 0)) for r in reports),
                   "order": list(orders.pop()) if len(orders) == 1 else
                   list(dict.fromkeys(s for o in sorted(orders) for s in o)),
                   "hosts": _by_host(_all(reports, "hosts")), "unreachable": unreachable,
                   # each shard's seeds serve its own hosts (a shard by region: its region's)
                   "seeds": [seed for r in reports for seed in r.get("seeds") or []]}
        code = EXIT_ERROR if unreachable else (EXIT_CHANGES if changes else EXIT_OK)
    elif command == "apply":
        stopped = [str(r["stopped"]) for r in reports if r.get("stopped")]
        converged = all(r.get("converged") is True for r in reports)
        merged |= {"converged": converged, "hosts": _by_host(_all(reports, "hosts")),
                   "stopped": "; ".join(stopped) or None,
                   "interrupted": any(r.get("interrupted") is True for r in reports),
                   "unreachable": unreachable}
        code = EXIT_OK if converged else EXIT_ERROR
    else:
        merged |= {"containers": _by_host(_all(reports, "containers")),
                   "unreachable": unreachable}
        code = EXIT_ERROR if unreachable else EXIT_OK
    # Keys of the command's own that the shards agree on (e.g. a rollback's release).
    for key, value in reports[0].items():
        if key not in merged and all(r.get(key) == value for r in reports):
            merged[key] = value
    return merged, code
