"""The labels fleet puts on every container it creates: its ownership and identity."""

from __future__ import annotations

PROJECT = "fleet.project"
SERVICE = "fleet.service"
REPLICA = "fleet.replica"
SPEC_HASH = "fleet.spec-hash"
SPEC = "fleet.spec"  # the normalized spec as JSON, secrets as keyed digests (for field diffs)
IMAGE = "fleet.image"  # the image reference as configured (tag kept for display)
IMAGE_DIGEST = "fleet.image-digest"  # what the tag resolved to when the container was made
REVISION = "fleet.revision"
