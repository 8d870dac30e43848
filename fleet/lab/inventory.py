"""Files the lab hands to its users: inventory.yml, known_hosts, SSH keys."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import asyncssh
import yaml

from fleet.lab.state import LabHost


class _FlowMapping(dict[str, str]):
    """A mapping written on one line, as labels read best: {cloud: aws, region: ...}."""


class _InventoryDumper(yaml.SafeDumper):
    pass


_InventoryDumper.add_representer(
    _FlowMapping,
    lambda dumper, data: dumper.represent_mapping("tag:yaml.org,2002:map", data, flow_style=True),
)


def render_inventory(
    hosts: Iterable[LabHost], ssh_key: Path, known_hosts: Path, registry: str
) -> str:
    """The lab in fleet's inventory format (pure)."""
    document: dict[str, Any] = {
        "defaults": {
            "user": "root",
            "port": 22,
            "ssh_key": str(ssh_key),
            "known_hosts": str(known_hosts),
            "host_key_checking": "strict",
        },
        "hosts": {
            host.name: {"address": host.address, "labels": _FlowMapping(host.labels)}
            for host in hosts
        },
        "vars": {"registry": registry},
    }
    header = "# The lab fleet, written by `fleet lab up`.\n"
    body = yaml.dump(document, Dumper=_InventoryDumper, sort_keys=False, width=100)
    return header + body


def render_known_hosts(entries: Iterable[tuple[str, str]]) -> str:
    """`ADDRESS ssh-ed25519 AAAA...` lines from (address, public key line) pairs (pure)."""
    lines = []
    for address, public_key in entries:
        key_type, key_data = public_key.split()[:2]
        lines.append(f"{address} {key_type} {key_data}")
    return "".join(f"{line}\n" for line in lines)


def ensure_key(path: Path, comment: str) -> str:
    """An ed25519 key pair at `path` (+ .pub), made once and kept; returns the public line."""
    public = path.with_name(path.name + ".pub")
    if not path.exists() or not public.exists():
        key = asyncssh.generate_private_key("ssh-ed25519", comment=comment)
        temporary = path.with_name(path.name + ".tmp")
        temporary.write_bytes(key.export_private_key())
        temporary.chmod(0o600)
        public.write_bytes(key.export_public_key())
        os.replace(temporary, path)
    return public.read_text().strip()


def write_if_changed(path: Path, text: str, mode: int = 0o644) -> None:
    """Leave unchanged files untouched, so a second `up` changes nothing."""
    if path.exists() and path.read_text() == text:
        return
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(text)
    temporary.chmod(mode)
    os.replace(temporary, path)
