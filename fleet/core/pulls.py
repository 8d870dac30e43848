"""Compose's `pull_policy`, mapped onto fleet's pinning (pure).

fleet resolves every tag to a digest once per run and creates containers from `name@digest`,
pulling only what a host lacks: that is `always` (and fleet's default), since a tag that moved
is seen and pulled. `missing` uses the image a host already has under the tag (no registry is
asked for that host, so a moved tag is not seen there), except for `latest`, which Compose
always pulls; `never` never asks a registry or pulls: a host without the image is blocked.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Protocol

from fleet.config.references import parse_image_reference

ALWAYS, MISSING, NEVER = "always", "missing", "never"


def _normalised(reference: str) -> str | None:
    try:
        return str(parse_image_reference(reference))
    except ValueError:
        return None


class ImageIndex:
    """The images a host has (RepoTags and RepoDigests), by their normalised references:
    Docker lists Docker Hub's `docker.io/library/nginx:1` as `nginx:1`."""

    def __init__(self, present: Iterable[str]) -> None:
        self.present = frozenset(present)
        self.normalised = frozenset(n for n in map(_normalised, self.present) if n)

    def has(self, reference: str) -> bool:
        return reference in self.present or _normalised(reference) in self.normalised


def uses_local_image(policy: str, image: str, index: ImageIndex) -> bool:
    """True when no registry is asked for `image` on this host: `never`, or `missing` with
    the image there (a `latest` tag is pulled anyway, as Compose does)."""
    if policy == NEVER:
        return True
    if policy != MISSING or "@" in image:
        return False
    ref = parse_image_reference(image)
    return ref.tag != "latest" and index.has(image)


class _Container(Protocol):
    @property
    def service(self) -> str: ...

    @property
    def options(self) -> Mapping[str, object]: ...


def images_to_resolve(containers: Sequence[_Container], present: Iterable[str],
                      policies: Mapping[str, str]) -> tuple[set[str], dict[str, str | None]]:
    """For one host: the images whose tags the run resolves through a registry, and the pins
    of those it uses as the host has them (None: created from the tag, never pulled)."""
    index = ImageIndex(present)
    resolve: set[str] = set()
    local: dict[str, str | None] = {}
    for container in containers:
        image = str(container.options["image"])
        if uses_local_image(policies.get(container.service, ALWAYS), image, index):
            local[image] = None
        else:
            resolve.add(image)
    for image in resolve:  # an image another service pulls is resolved for both
        local.pop(image, None)
    return resolve, local
