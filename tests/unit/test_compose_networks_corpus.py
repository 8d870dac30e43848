"""The networks and volumes corpus: each compose file under tests/corpus/compose/networks/
is rendered for one host and compared exactly with its `.expected.json`: per service, the
normalized spec (what the `fleet.spec` label records) and the Engine API calls that make the
container (the create body, then one connect per further network); per network and volume,
the create body fleet sends (or "external").

Only what networks and volumes make is compared (the spec's `networks`, `network_mode` and
`volumes`; the body's NetworkMode, Binds, Mounts and NetworkingConfig): the other fields have
corpora of their own. To write the expected files anew after a deliberate change, run with
FLEET_UPDATE_CORPUS=1 and review the diff.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from fleet.config.project import ProjectFiles, read_project
from fleet.core.desired import DesiredState, desired_state
from fleet.core.host_resources import named_volumes, network_order
from fleet.docker.bodies import create_body, endpoint_config, network_body, volume_body

CORPUS = Path(__file__).resolve().parents[1] / "corpus"
CASES = sorted((CORPUS / "compose" / "networks").glob("*.yml"))
HOST = "web1"
SPEC_FIELDS = ("network_mode", "networks", "volumes")
HOST_CONFIG_FIELDS = ("NetworkMode", "Binds", "Mounts")


def _load(path: Path) -> DesiredState:
    files = ProjectFiles([str(path)], [str(CORPUS / "inventory.yml")])
    return desired_state(read_project(files, environ={}))


def rendered(path: Path) -> dict[str, Any]:
    state = _load(path)
    services: dict[str, Any] = {}
    used_networks: set[str] = set()
    used_volumes: set[str] = set()
    for container in state.containers[HOST]:
        if container.replica != 1:
            continue
        body = create_body(container, state.secrets, None, 1)
        create = {"HostConfig": {k: v for k, v in body["HostConfig"].items()
                                 if k in HOST_CONFIG_FIELDS},
                  "NetworkingConfig": body.get("NetworkingConfig")}
        spec = container.redacted_options()
        order = network_order(container.options["networks"])
        used_networks.update(order)
        used_volumes.update(named_volumes(container.options))
        services[container.service] = {
            "spec": {k: v for k, v in spec.items() if k in SPEC_FIELDS},
            "create": create,
            "connect": {name: endpoint_config(container, name) for name in order[1:]},
        }
    return {
        "services": services,
        "networks": {name: "external" if spec.external else network_body(spec, state.project)
                     for name, spec in sorted(state.networks.items()) if name in used_networks},
        "volumes": {name: "external" if spec.external else volume_body(spec, state.project)
                    for name, spec in sorted(state.volumes.items()) if name in used_volumes},
    }


def test_the_corpus_covers_every_form() -> None:
    assert len(CASES) >= 5


@pytest.mark.parametrize("path", CASES, ids=lambda p: p.stem)
def test_compose_file_renders_exactly_as_expected(path: Path) -> None:
    expected_path = path.with_suffix(".expected.json")
    found = rendered(path)
    if os.environ.get("FLEET_UPDATE_CORPUS"):
        expected_path.write_text(json.dumps(found, indent=2, sort_keys=True) + "\n")
    expected = json.loads(expected_path.read_text())
    assert json.loads(json.dumps(found)) == expected
