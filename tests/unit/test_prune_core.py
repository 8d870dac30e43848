"""What `fleet prune` chooses (pure): old revisions' images not in use, never a foreign one."""

from __future__ import annotations

from fleet.core.journal import JournalEntry
from fleet.core.observed import ObservedContainer
from fleet.core.prune import LocalImage, prune_host, repository

REPO = "198.18.7.1:5000/demo/app"


def digest(n: int) -> str:
    return "sha256:" + str(n) * 64


def entry(revision: int, tag: str = "") -> JournalEntry:
    return JournalEntry(command="apply", service="app", replica=1, revision=revision,
                        image=f"{REPO}:{tag or f'r{revision}'}", digest=digest(revision),
                        spec={}, spec_hash="h", outcome="succeeded")


def image(n: int, *tags: str) -> LocalImage:
    return LocalImage(f"sha256:{'i' * 3}{n}", (*tags, f"{REPO}@{digest(n)}"))


def ours(cid: str, revision: int, state: str = "running", name: str = "shop-app-1",
         service: str = "app") -> ObservedContainer:
    return ObservedContainer(cid, name, state, {
        "fleet.project": "shop", "fleet.service": service, "fleet.replica": "1",
        "fleet.revision": str(revision), "fleet.image": f"{REPO}:r{revision}"})


def test_old_revisions_go_the_last_ones_and_those_in_use_stay() -> None:
    entries = [entry(n) for n in (1, 2, 3, 4)]
    images = [image(n) for n in (1, 2, 3, 4)] + [LocalImage("sha256:foreign", ("nginx:1",))]
    foreign = ObservedContainer("f" * 64, "someone", "exited", {})
    result = prune_host("h1", "shop", entries, images, [ours("c4", 4), foreign],
                        {"c4": images[3].id, "f" * 64: images[0].id}, {"shop-app-1"}, keep=2)
    assert [(r.reference, r.revision) for r in result.images] == [(f"{REPO}@{digest(2)}", 2)]
    assert not result.containers


def test_a_running_old_revision_and_what_its_tag_names_now_are_kept() -> None:
    entries = [entry(1, "latest"), entry(2, "latest"), entry(3), entry(4)]
    # `latest` now names revision 2's image; revision 1 is still what runs; 3 is old.
    images = [image(1), image(2, f"{REPO}:latest"), image(3), image(4)]
    result = prune_host("h1", "shop", entries, images, [ours("c1", 1)], {"c1": images[0].id},
                        {"shop-app-1"}, keep=1)
    assert [r.reference for r in result.images] == [f"{REPO}@{digest(3)}"]


def test_stopped_leftovers_go_and_their_images_with_them() -> None:
    entries = [entry(1), entry(2)]
    images = [image(1), image(2)]
    left = ours("c1", 1, state="exited", name="shop-old-1", service="old")
    result = prune_host("h1", "shop", entries, images, [ours("c2", 2), left],
                        {"c2": images[1].id, "c1": images[0].id}, {"shop-app-1"}, keep=1)
    assert [c.name for c in result.containers] == ["shop-old-1"]
    assert [r.revision for r in result.images] == [1]
    inactive = prune_host("h1", "shop", entries, images, [ours("c2", 2), left],
                          {"c2": images[1].id, "c1": images[0].id}, {"shop-app-1"}, keep=1,
                          left_alone={"old"})
    assert not inactive.containers


def test_a_repository_keeps_its_registry_port() -> None:
    assert repository(f"{REPO}:v1") == REPO
    assert repository(f"{REPO}@{digest(1)}") == REPO
    assert repository("busybox") == "busybox"
