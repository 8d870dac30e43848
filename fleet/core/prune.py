"""What `fleet prune` removes from a host (pure): images fleet pulled for the project that no
container uses and no kept revision needs, and the project's stopped leftovers.

Only references the host's journal recorded for the project are candidates, so an image
fleet never pulled for this project is never named. An image stays while any container on
the host (of any project, or none) was made from it, or while one of the last `keep`
revisions of a service (or a container's current revision) refers to it: those are what
`fleet rollback` returns to. Removing a reference removes that name only; Docker deletes the
image once no name or container holds it.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass

from fleet.core import labels
from fleet.core.answers import ImageSummary
from fleet.core.journal import JournalEntry
from fleet.core.observed import ObservedContainer

DEFAULT_KEEP = 3  # the running revision and the two before it
LEFTOVER_STATES = frozenset({"created", "exited", "dead"})


@dataclass(frozen=True)
class LocalImage:
    id: str
    references: tuple[str, ...]  # its RepoTags and RepoDigests, as Docker lists them


@dataclass(frozen=True)
class ImageRemoval:
    reference: str
    image_id: str
    service: str
    revision: int

    def what(self) -> str:
        return (f"remove image {self.reference} ({self.image_id[:19]}, revision "
                f"{self.revision} of {self.service})")


@dataclass(frozen=True)
class ContainerRemoval:
    name: str
    id: str
    state: str

    def what(self) -> str:
        return f"remove container {self.name} ({self.state}, not in the playbook)"


@dataclass(frozen=True)
class HostPrune:
    host: str
    images: tuple[ImageRemoval, ...] = ()
    containers: tuple[ContainerRemoval, ...] = ()
    kept: tuple[str, ...] = ()  # references kept for the revisions rollback may need

    @property
    def empty(self) -> bool:
        return not self.images and not self.containers


def local_images(answer: Iterable[ImageSummary]) -> list[LocalImage]:
    return [LocalImage(i.Id, tuple([*(i.RepoTags or []), *(i.RepoDigests or [])]))
            for i in answer if i.Id]


def repository(reference: str) -> str:
    """`registry:5000/repo:tag@digest` -> `registry:5000/repo`."""
    name = reference.partition("@")[0]
    colon = name.rfind(":")
    return name[:colon] if colon > name.rfind("/") else name


def entry_references(entry: JournalEntry) -> set[str]:
    """The names an entry's image has on a host: as configured, and by its digest."""
    refs = {entry.image}
    if entry.digest and not entry.image_source:  # a delivered image's digest is its ID
        refs.add(f"{repository(entry.image)}@{entry.digest}")
    return refs


def _kept_revisions(entries: Sequence[JournalEntry], containers: Sequence[ObservedContainer],
                    keep: int) -> set[tuple[str, int]]:
    by_service: dict[str, set[int]] = {}
    for entry in entries:
        by_service.setdefault(entry.service, set()).add(entry.revision)
    kept = {(service, revision) for service, revisions in by_service.items()
            for revision in sorted(revisions, reverse=True)[:keep]}
    for container in containers:  # whatever runs now, however old
        revision = container.labels.get(labels.REVISION, "")
        if container.service and revision.isdigit():
            kept.add((container.service, int(revision)))
    return kept


def prune_host(host: str, project: str, entries: Sequence[JournalEntry],
               images: Sequence[LocalImage], containers: Sequence[ObservedContainer],
               image_of: Mapping[str, str], desired_names: Collection[str],
               keep: int = DEFAULT_KEEP, left_alone: Collection[str] = ()) -> HostPrune:
    """`containers`: every container on the host; `image_of`: container id -> the image it
    was made from; `left_alone`: services whose containers stay as they are (inactive
    profiles). The leftovers go first, so their images can go in the same run."""
    ours = [c for c in containers if c.project == project]
    leftovers = tuple(
        ContainerRemoval(c.name, c.id, c.state) for c in sorted(ours, key=lambda c: c.name)
        if c.state in LEFTOVER_STATES and c.name not in desired_names
        and c.service not in left_alone)
    gone = {c.id for c in leftovers}
    used_image_ids = {image for cid, image in image_of.items() if cid not in gone}
    ours = [c for c in ours if c.id not in gone]
    kept_revisions = _kept_revisions(entries, ours, keep)
    by_reference = {ref: image for image in images for ref in image.references}
    kept_refs = {ref for e in entries if (e.service, e.revision) in kept_revisions
                 for ref in entry_references(e)}
    kept_refs |= {c.labels.get(labels.IMAGE, "") for c in ours} | {c.config_image for c in ours}
    kept_ids = used_image_ids | {by_reference[r].id for r in kept_refs if r in by_reference}

    removals: dict[str, ImageRemoval] = {}
    for entry in sorted(entries, key=lambda e: (e.service, e.revision)):
        if (entry.service, entry.revision) in kept_revisions:
            continue
        for ref in sorted(entry_references(entry)):
            image = by_reference.get(ref)
            if image is not None and image.id not in kept_ids and ref not in removals:
                removals[ref] = ImageRemoval(ref, image.id, entry.service, entry.revision)

    return HostPrune(host, tuple(removals.values()), leftovers,
                     tuple(sorted(r for r in kept_refs if r in by_reference)))
