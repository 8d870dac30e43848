"""One rollback target for the whole fleet (fleet.core.releases): a rollback interrupted
halfway can be run again, and hosts it already returned stay where they are."""

from __future__ import annotations

from fleet.core.journal import JournalEntry
from fleet.core.releases import (
    AUTOMATIC_ROLLBACK,
    choose_release,
    recorded_release,
    release_key,
    reused_release,
)
from fleet.core.revisions import revision_of_release

HOSTS = ("198.18.1.2", "198.18.1.3", "198.18.1.4")


def entry(revision: int, release: str, when: int, *, command: str = "apply",
          outcome: str = "ok", replaces: str = "", detail: str = "") -> JournalEntry:
    image = f"r/web:{release}"
    return JournalEntry(command=command, service="web", replica=1, revision=revision,
                        image=image, digest="", spec={"image": image},
                        spec_hash=f"hash-{release}", outcome=outcome,  # type: ignore[arg-type]
                        detail=detail, time=f"2026-12-01T00:00:{when:02d}Z",
                        release=release, replaces=replaces)


def deployed(*releases: str) -> list[JournalEntry]:
    """A host's journal after applying these releases one after another."""
    return [entry(n, r, n) for n, r in enumerate(releases, start=1)]


def test_a_rollback_targets_the_release_before_the_newest_running() -> None:
    journals = {h: deployed("v1", "v2") for h in HOSTS}
    choice = choose_release(journals, {h: {1: 2} for h in HOSTS}, "web")
    assert choice is not None
    assert (choice.leaving, choice.target, choice.target_images) == ("v2", "v1", ("r/web:v1",))


def test_an_interrupted_rollback_run_again_keeps_the_same_target() -> None:
    journals = {h: deployed("v1", "v2") for h in HOSTS}
    # The first host was returned (revision 3, release v1) before the run was cut short.
    journals[HOSTS[0]].append(entry(3, "v1", 10, command="rollback", replaces="v2"))
    running = {HOSTS[0]: {1: 3}, HOSTS[1]: {1: 2}, HOSTS[2]: {1: 2}}
    choice = choose_release(journals, running, "web")
    assert choice is not None and (choice.leaving, choice.target) == ("v2", "v1")
    # On the host already returned, the target is the revision it runs: nothing to do.
    done = revision_of_release(journals[HOSTS[0]], "web", 1, "v1").entry
    assert done is not None and done.revision == 3


def test_a_finished_rollback_run_again_goes_one_release_further() -> None:
    journals = {h: [*deployed("v1", "v2", "v3"),
                    entry(4, "v2", 10, command="rollback", replaces="v3")] for h in HOSTS}
    choice = choose_release(journals, {h: {1: 4} for h in HOSTS}, "web")
    assert choice is not None and (choice.leaving, choice.target) == ("v2", "v1")


def test_a_release_left_by_a_rollback_is_not_returned_to() -> None:
    journals = {h: [*deployed("v1", "v2", "v3"),
                    entry(4, "v2", 10, command="rollback", replaces="v3"),
                    entry(5, "v4", 11)] for h in HOSTS}
    choice = choose_release(journals, {h: {1: 5} for h in HOSTS}, "web")
    assert choice is not None and choice.target == "v2"


def test_a_failed_release_anywhere_is_skipped() -> None:
    journals = {h: deployed("v1", "v2", "v3") for h in HOSTS}
    journals[HOSTS[1]][1] = entry(2, "v2", 2, outcome="failed")
    choice = choose_release(journals, {h: {1: 3} for h in HOSTS}, "web")
    assert choice is not None and choice.target == "v1"


def test_reapplying_an_older_release_makes_it_the_newest() -> None:
    journals = {h: [*deployed("v1", "v2"), entry(3, "v1", 12)] for h in HOSTS}
    choice = choose_release(journals, {h: {1: 3} for h in HOSTS}, "web")
    assert choice is not None and (choice.leaving, choice.target) == ("v1", "v2")


def test_undo_entries_of_an_apply_do_not_redeploy_a_release() -> None:
    journals = {h: [*deployed("v1", "v2"), entry(3, "v3", 3, outcome="rolled-back"),
                    entry(4, "v2", 20, detail="automatic rollback")] for h in HOSTS}
    choice = choose_release(journals, {h: {1: 4} for h in HOSTS}, "web")
    assert choice is not None and (choice.leaving, choice.target) == ("v2", "v1")


def test_journals_without_releases_fall_back_to_revisions() -> None:
    journals = {h: deployed("", "") for h in HOSTS}
    assert choose_release(journals, {h: {1: 2} for h in HOSTS}, "web") is None
    only_one = {h: deployed("v1") for h in HOSTS}
    assert choose_release(only_one, {h: {1: 1} for h in HOSTS}, "web") is None


def test_a_container_made_again_keeps_its_release() -> None:
    entries = deployed("v1", "v2")
    assert reused_release(entries, "web", 1, "hash-v1", "") == "v1"
    assert reused_release(entries, "web", 1, "hash-v9", "") is None
    assert reused_release(entries, "web", 2, "hash-v1", "") is None


def test_release_keys_differ_by_definition_image_and_digest() -> None:
    base = release_key("d", "r/web:v1", "sha256:1")
    assert base != release_key("e", "r/web:v1", "sha256:1")
    assert base != release_key("d", "r/web:v2", "sha256:1")
    assert base != release_key("d", "r/web:v1", "sha256:2")
    assert len(base) == 16


def test_an_apply_records_the_playbooks_release_on_every_host_alike() -> None:
    # One host ran this container spec before under another definition (only the update
    # settings differed); the other never did. Both record the playbook's release, else one
    # deployment would be two releases and a rollback would target the one half never ran.
    ran_before, fresh = deployed("v1", "v2"), deployed("v1")
    made = entry(3, "v2", 3)
    assert recorded_release(ran_before, made, "v2-batch-50") == "v2-batch-50"
    assert recorded_release(fresh, made, "v2-batch-50") == "v2-batch-50"
    assert recorded_release(ran_before, made, None) == "v2"  # no definition: as it was


def test_what_an_undo_restores_stays_in_the_release_it_was() -> None:
    restored = entry(3, "v1", 3, detail=AUTOMATIC_ROLLBACK)
    assert recorded_release(deployed("v1", "v2"), restored, "v2") == "v1"
    undone = entry(3, "v2", 3, outcome="rolled-back", detail=AUTOMATIC_ROLLBACK)
    assert recorded_release(deployed("v1", "v2"), undone, "v2-new") == "v2-new"
