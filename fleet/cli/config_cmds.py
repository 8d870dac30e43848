"""`fleet validate`, `fleet render` and `fleet schema`."""

from __future__ import annotations

import json
from typing import Any

import click
import yaml

from fleet.cli.common import (
    json_option,
    print_json,
    project_files,
    project_options,
    report_warnings,
)
from fleet.cli.terminal import echo, one_line
from fleet.config.inventory_model import InventoryFile
from fleet.config.playbook import PlaybookFile
from fleet.config.problems import ConfigError
from fleet.config.project import read_project
from fleet.core.desired import DesiredState, desired_state


@click.command()
@project_options
@json_option
def validate(inventories: tuple[str, ...], limit: str | None, playbooks: tuple[str, ...],
             as_json: bool) -> None:
    """Validate the inventory and playbooks completely; report every problem.

    Exit 0 when valid (warnings allowed), 1 when invalid.
    """
    try:
        state = desired_state(read_project(project_files(inventories, playbooks, limit)))
    except ConfigError as exc:
        if as_json:
            print_json({"valid": False, "problems": [p.as_json() for p in exc.problems]})
        else:
            echo(str(exc), err=True)
        raise SystemExit(1) from None
    if as_json:
        print_json({"valid": True, "problems": [p.as_json() for p in state.problems]})
        return
    report_warnings(state.problems)
    count = sum(len(c) for c in state.containers.values())
    echo(f"valid: project '{state.project}', {len(state.services)} services, "
               f"{len(state.targeted_hosts)} hosts, {count} containers")


def render_json(state: DesiredState) -> dict[str, object]:
    return {
        "project": state.project,
        "hosts": [
            {
                "host": host.name,
                "address": host.address,
                "labels": dict(host.labels),
                "containers": [
                    {"name": c.name, "service": c.service, "replica": c.replica,
                     "spec_hash": c.spec_hash, "spec": c.redacted_options()}
                    for c in state.containers[host.name]
                ],
                # The files next to the compose file the host gets (never a secret's value)
                "files": [{"name": name, "what": unit.what, "summary": unit.summary()}
                          for name, unit in state.files.get(host.name, {}).items()],
            }
            for host in state.targeted_hosts
        ],
        "warnings": [p.as_json() for p in state.problems if p.severity == "warning"],
    }


@click.command()
@project_options
@json_option
def render(inventories: tuple[str, ...], limit: str | None, playbooks: tuple[str, ...],
           as_json: bool) -> None:
    """Print, per host, the fully rendered containers and their spec hashes (secrets redacted)."""
    state = desired_state(read_project(project_files(inventories, playbooks, limit)))
    data = render_json(state)
    if as_json:
        print_json(data)
        return
    report_warnings(state.problems)
    for host in data["hosts"]:  # type: ignore[attr-defined]
        echo(one_line(f"# {host['host']} ({host['address']})"))
        if not host["containers"]:
            echo("#   (no containers)")
        for container in host["containers"]:
            echo(one_line(f"{container['name']}:  # spec-hash {container['spec_hash'][:12]}"))
            text = yaml.safe_dump(_compact(container["spec"]), sort_keys=True,
                                  default_flow_style=False, allow_unicode=True)
            echo("".join(f"  {line}\n" for line in text.splitlines()), nl=False)
        for unit in host["files"]:
            echo(one_line(f"# delivers fleet-file:{unit['name'][:12]}…: {unit['summary']}"))
        echo("")


# A service's settings on each of its networks that are zero unless configured.
_NETWORK_ZEROS = {"priority": 0, "gw_priority": 0}


def _compact(value: object) -> object:
    """Leave out unset and empty fields so the text shows what was configured."""
    if isinstance(value, dict):
        compact = {k: _compact(v) for k, v in value.items()
                   if not (v is None or v is False or v == [] or v == {})}
        networks = compact.get("networks")
        if isinstance(networks, dict):
            compact["networks"] = {
                name: {k: v for k, v in settings.items() if _NETWORK_ZEROS.get(k, ...) != v}
                if isinstance(settings, dict) else settings
                for name, settings in networks.items()}
        return compact
    if isinstance(value, list):
        return [_compact(v) for v in value]
    return value


@click.command()
@click.argument("kind", type=click.Choice(["inventory", "playbook"]))
def schema(kind: str) -> None:
    """Print the JSON Schema of an inventory or playbook file (for editor completion)."""
    model = InventoryFile if kind == "inventory" else PlaybookFile
    document = model.model_json_schema(mode="validation")
    if kind == "playbook":
        document = compose_schema(document)
    document["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    document["title"] = f"fleet {kind}"
    echo(json.dumps(document, indent=2))


# What a Compose file may have that fleet resolves at load (fleet.config.compose_file), so
# its models never see it.
_COMPOSE_TOP = {"name": {"type": "string", "description": "Compose's project name."},
                "version": {"description": "Obsolete; ignored with a warning."},
                "include": {"type": "array", "description": "Compose files of the project."},
                "x-fleet": {"type": "object", "description": "fleet's own top-level keys."}}
_COMPOSE_SERVICE = {
    "extends": {"description": "A service to extend: NAME or {service, file}."},
    "profiles": {"type": "array", "items": {"type": "string"}},
    "build": {"description": "Ignored beside an image; alone, not supported yet."},
    "develop": {"description": "For docker compose watch; ignored."},
    "x-fleet": {"type": "object", "description": "fleet's own service keys."}}


def compose_schema(document: dict[str, Any]) -> dict[str, Any]:
    """The playbook schema as a Compose file is written: its project name optional (Compose's
    `name:` or the directory), `x-*` extensions allowed, and what the loader resolves."""
    document["properties"].update(_COMPOSE_TOP)
    document["required"] = [r for r in document.get("required", []) if r != "project"]
    for definition in [document, *document.get("$defs", {}).values()]:
        if definition.get("additionalProperties") is False:
            definition["patternProperties"] = {"^x-": {}}
    service = document["$defs"]["Service"]
    service["properties"].update(_COMPOSE_SERVICE)
    service["required"] = []  # `build` alone is refused by fleet validate, with why
    return document
