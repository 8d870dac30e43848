"""Chain IDs and the layers a host lacks (fleet.core.layers)."""

from __future__ import annotations

import hashlib

import pytest

from fleet.core.layers import chain_ids, first_missing_layer, host_chains


def digest(n: int) -> str:
    return "sha256:" + hashlib.sha256(str(n).encode()).hexdigest()


def test_chain_ids_are_dockers() -> None:
    # Docker's own example (image-spec config.md): chain(A|B) = sha256("<A> <B>").
    a, b = digest(1), digest(2)
    expected = "sha256:" + hashlib.sha256(f"{a} {b}".encode()).hexdigest()
    assert chain_ids([a, b]) == [a, expected]
    assert chain_ids([]) == []


def test_a_host_lacks_everything_above_its_first_missing_chain() -> None:
    base, app_v1, app_v2 = digest(1), digest(2), digest(3)
    present = host_chains([[base, app_v1]])
    assert first_missing_layer([base, app_v1], present) == 2  # nothing to send
    assert first_missing_layer([base, app_v2], present) == 1  # only the new top layer
    assert first_missing_layer([app_v2, base], present) == 0  # same layers, other order


def test_a_layer_present_under_another_base_is_still_missing() -> None:
    base, other, app = digest(1), digest(9), digest(2)
    present = host_chains([[other, app]])
    assert first_missing_layer([base, app], present) == 0


def test_host_images_with_unusable_layers_add_nothing() -> None:
    assert host_chains([["not-a-digest"], []]) == frozenset()
    with pytest.raises(ValueError, match="not a sha256 layer digest"):
        chain_ids(["sha256:XYZ"])
