from __future__ import annotations

from fleet.config.secrets import SecretStore, token
from fleet.core.journal import JournalEntry
from fleet.core.revisions import choose_revision, desired_from_entry


def entry(revision: int, outcome: str = "ok", replica: int = 1, image: str = "r/web:v1"
          ) -> JournalEntry:
    return JournalEntry(command="apply", service="web", replica=replica, revision=revision,
                        image=image, digest="sha256:" + "a" * 64,
                        spec={"image": image, "environment": {"T": "<secret:T:abcdef>"}},
                        spec_hash="h", outcome=outcome)  # type: ignore[arg-type]


def test_last_success_before_current() -> None:
    entries = [entry(1), entry(2, "failed"), entry(3), entry(4)]
    assert choose_revision(entries, "web", 1, current=4).entry == entries[2]
    assert choose_revision(entries, "web", 1, current=3).entry == entries[0]


def test_rolled_back_revisions_are_not_returned_to() -> None:
    entries = [entry(1), entry(2), entry(2, "rolled-back"), entry(3)]
    assert choose_revision(entries, "web", 1, current=3).entry == entries[0]


def test_to_a_given_revision_and_missing_ones() -> None:
    entries = [entry(1), entry(2)]
    assert choose_revision(entries, "web", 1, current=2, to=1).entry == entries[0]
    missing = choose_revision(entries, "web", 1, current=2, to=7)
    assert missing.entry is None and "revision 7" in missing.reason
    assert choose_revision(entries, "web", 1, current=1).entry is None
    assert choose_revision(entries, "web", 2, current=2).entry is None


def test_recorded_spec_becomes_desired_with_secret_tokens() -> None:
    store = SecretStore("p", environ={"T": "v"})
    desired = desired_from_entry(entry(1), "h1", "p", store)
    assert desired.options["environment"] == {"T": token("T")}
    assert desired.name == "p-web-1"


def test_in_place_updates_neither_disown_nor_hide_a_revision() -> None:
    update_failed = JournalEntry(command="apply", service="web", replica=1, revision=2,
                                 image="r/web:v2", digest="", spec={"image": "r/web:v2"},
                                 spec_hash="h", outcome="failed",
                                 detail="updated in place: Memory")
    newer_limits = JournalEntry(command="apply", service="web", replica=1, revision=2,
                                image="r/web:v2", digest="", spec={"image": "r/web:v2",
                                                                   "mem_limit": 5},
                                spec_hash="h2", outcome="ok", detail="updated in place")
    entries = [entry(1), entry(2), newer_limits, update_failed, entry(3)]
    assert choose_revision(entries, "web", 1, current=3).entry == newer_limits


def test_the_secret_digest_is_keyed_when_a_key_is_set() -> None:
    plain = SecretStore("p", environ={"T": "v"}).digest("T")
    keyed = SecretStore("p", environ={"T": "v", "FLEET_SECRET_KEY": "k1"}).digest("T")
    from_file = SecretStore("p", {"FLEET_SECRET_KEY": "k1"}, environ={"T": "v"}).digest("T")
    assert plain != keyed == from_file
