"""Image references, parsed by the grammar of Docker's distribution/reference package."""

from __future__ import annotations

import re
from dataclasses import dataclass

_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*"
_DOMAIN_PART = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = rf"(?:{_DOMAIN_PART}(?:\.{_DOMAIN_PART})*|\[[0-9a-fA-F:]+\])(?::[0-9]+)?"
_TAG = r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"
_REFERENCE = re.compile(
    rf"^(?:(?P<domain>{_DOMAIN})/)?(?P<path>{_COMPONENT}(?:/{_COMPONENT})*)"
    rf"(?::(?P<tag>{_TAG}))?(?:@(?P<digest>{_DIGEST}))?$"
)

DEFAULT_REGISTRY = "docker.io"


@dataclass(frozen=True)
class ImageRef:
    registry: str
    repository: str
    tag: str | None
    digest: str | None

    @property
    def name(self) -> str:
        """registry/repository, as the Docker daemon names it."""
        return f"{self.registry}/{self.repository}"

    def __str__(self) -> str:
        text = self.name
        if self.tag:
            text += f":{self.tag}"
        if self.digest:
            text += f"@{self.digest}"
        return text


def parse_image_reference(text: str) -> ImageRef:
    """Parse `[registry/]repo[:tag][@digest]`; raises ValueError with the reason."""
    match = _REFERENCE.match(text)
    if not match:
        hint = " (repository names must be lowercase)" if text.lower() != text else ""
        raise ValueError(f"bad image reference {text!r}{hint}")
    domain, path = match.group("domain"), match.group("path")
    # The first component is a registry only if it looks like one (Docker's rule).
    if domain and not ("." in domain or ":" in domain or domain == "localhost"
                       or domain.startswith("[")):
        path = f"{domain}/{path}"
        domain = None
    registry = domain or DEFAULT_REGISTRY
    if registry == DEFAULT_REGISTRY and "/" not in path:
        path = f"library/{path}"
    tag = match.group("tag")
    digest = match.group("digest")
    if digest:
        algorithm, _, hexits = digest.partition(":")
        size = {"sha256": 64, "sha384": 96, "sha512": 128}.get(algorithm)
        if size is not None and (len(hexits) != size or hexits != hexits.lower()):
            raise ValueError(f"bad image reference {text!r}: a {algorithm} digest is {size} "
                             "lowercase hex digits")
    if tag is None and digest is None:
        tag = "latest"
    return ImageRef(registry, path, tag, digest)


def pinned_image(reference: str, digest: str | None, *, by_id: bool = False) -> str:
    """`name@digest` when the tag was resolved, so every host runs the same bytes; `by_id`:
    the digest is the image ID of an image fleet delivered (it has no registry digest), and
    the container is made from that ID itself."""
    if not digest:
        return reference
    if by_id:
        return digest
    return f"{parse_image_reference(reference).name}@{digest}"
