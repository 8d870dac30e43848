"""Which of an image's layers a host lacks (pure): Docker keys the layers it holds by chain ID.

A layer on its own is named by its diff ID (the sha256 of its uncompressed tar), but dockerd
stores and finds a layer by its chain ID: the digest of the layer together with every layer
below it. `docker load` skips a layer whose chain ID the host has, without reading its file
(moby's tarexport), and otherwise requires the file. So the layers to send are those from the
first one whose chain the host lacks to the top: a chain can only exist on top of its own
prefix, so once one is missing, every layer above it is missing too.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence

DIGEST = re.compile(r"sha256:[0-9a-f]{64}")


def chain_ids(diff_ids: Sequence[str]) -> list[str]:
    """The chain ID of every prefix of `diff_ids` (bottom layer first), as dockerd makes them:
    the first layer's is its diff ID, each next one sha256("<chain below> <diff ID>")."""
    chains: list[str] = []
    for diff_id in diff_ids:
        if not DIGEST.fullmatch(diff_id):
            raise ValueError(f"not a sha256 layer digest: {diff_id[:80]!r}")
        if not chains:
            chains.append(diff_id)
        else:
            joined = f"{chains[-1]} {diff_id}".encode()
            chains.append("sha256:" + hashlib.sha256(joined).hexdigest())
    return chains


def host_chains(images_layers: Iterable[Sequence[str]]) -> frozenset[str]:
    """Every chain ID the host's images are made of, given each image's RootFS layers (as
    `GET /images/{id}/json` lists them). An image whose layers are not digests adds none."""
    present: set[str] = set()
    for layers in images_layers:
        try:
            present.update(chain_ids(layers))
        except ValueError:
            continue
    return frozenset(present)


def first_missing_layer(diff_ids: Sequence[str], present: frozenset[str]) -> int:
    """The index of the lowest layer whose chain the host lacks; len(diff_ids) when it has
    them all (nothing to send)."""
    for index, chain in enumerate(chain_ids(diff_ids)):
        if chain not in present:
            return index
    return len(diff_ids)
