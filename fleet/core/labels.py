"""The labels fleet puts on every container it creates: its ownership and identity (pure)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fleet.config.secrets import SecretStore
    from fleet.core.desired import DesiredContainer

FLEET_PREFIX = "fleet."
PROJECT = "fleet.project"  # also on the networks and volumes fleet creates
SERVICE = "fleet.service"
REPLICA = "fleet.replica"
SPEC_HASH = "fleet.spec-hash"
SPEC = "fleet.spec"  # the normalized spec as JSON, secrets as keyed digests (for field diffs)
IMAGE = "fleet.image"  # the image reference as configured (tag kept for display)
IMAGE_DIGEST = "fleet.image-digest"  # what the tag resolved to when the container was made
# "controller" on a container made from an image fleet delivered (its digest is the image
# ID); absent on one made from a registry's image.
IMAGE_SOURCE = "fleet.image-source"
FROM_CONTROLLER = "controller"
REVISION = "fleet.revision"
COMPOSE_PROJECT = "com.docker.compose.project"  # what `docker compose` marks its own with


def fleet_labels(container: DesiredContainer, secrets: SecretStore, image_digest: str | None,
                 revision: int) -> dict[str, str]:
    """The labels of a container made from `container` (its identity, spec and image)."""
    from fleet.config.secrets import digest_secrets
    from fleet.core.desired import canonical_json

    source = {IMAGE_SOURCE: FROM_CONTROLLER} if container.image_source == FROM_CONTROLLER else {}
    return {
        PROJECT: container.project,
        SERVICE: container.service,
        REPLICA: str(container.replica),
        SPEC_HASH: container.spec_hash,
        SPEC: canonical_json(digest_secrets(dict(container.options), secrets)),
        IMAGE: str(container.options["image"]),
        IMAGE_DIGEST: image_digest or "",
        REVISION: str(revision),
        **source,
    }
