from __future__ import annotations

import json
from pathlib import Path

import pytest

from fleet.config.project import ProjectFiles, read_project
from fleet.config.secrets import (
    SecretMissing,
    SecretStore,
    digest_secrets,
    reveal,
    secret_names,
    token,
)
from fleet.core.desired import DesiredContainer, compile_desired_state
from fleet.core.journal import JournalEntry
from fleet.core.revisions import choose_revision, desired_from_entry, recorded_container


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
    store = SecretStore("p", environ={"T": "v"}).only({"T"})
    desired = desired_from_entry(entry(1), "h1", "p", store)
    assert not isinstance(desired, str)
    assert desired.options["environment"] == {"T": token("T")}
    assert desired.name == "p-web-1"


def test_a_recorded_spec_cannot_name_a_secret_the_playbook_does_not_give_the_host() -> None:
    # A forged journal asks for the controller's hash key and another variable.
    forged = JournalEntry(command="apply", service="web", replica=1, revision=1,
                          image="r/web:v1", digest="",
                          spec={"image": "r/web:v1",
                                "environment": {"A": "<secret:FLEET_SECRET_KEY:00>",
                                                "B": "<secret:AWS_SECRET:00>",
                                                "T": "<secret:T:00>"}},
                          spec_hash="h", outcome="ok")
    environ = {"T": "v", "FLEET_SECRET_KEY": "k", "AWS_SECRET": "s"}
    for store in (SecretStore("p", environ=environ).only({"T"}), SecretStore("p", environ=environ)):
        made = desired_from_entry(forged, "h1", "p", store)
        assert isinstance(made, str)
        assert "'AWS_SECRET', 'FLEET_SECRET_KEY'" in made and "does not give this host" in made


def test_text_that_looks_like_a_token_is_inert() -> None:
    literal = "⟦secret:FLEET_SECRET_KEY⟧"
    spec = {"image": "r/web:v1", "environment": {"A": literal}}
    made = recorded_container(spec, "h1", "p", "web", 1, SecretStore("p", environ={}).only(()))
    assert not isinstance(made, str)
    assert secret_names(made.options) == set()
    assert reveal(made.options, SecretStore("p", environ={"FLEET_SECRET_KEY": "k"}))[
        "environment"] == {"A": literal}


def test_a_store_limited_to_a_host_reveals_nothing_else() -> None:
    store = SecretStore("p", environ={"T": "v", "U": "w"}).only({"T"})
    assert reveal(token("T"), store) == "v"
    with pytest.raises(SecretMissing, match="not one the playbook gives this host"):
        reveal(token("U"), store)
    assert store.only({"T", "U"}).allowed == {"T"}  # narrowing never widens


@pytest.mark.parametrize("spec, where", [
    ({"image": "r/web:v1", "privileged": "yes please"}, "privileged"),
    ({"image": "r/web:v1", "ports": {"a": 1}}, "ports"),
    ({"environment": {}}, "image"),
    ({"image": "r/web:v1", "bogus": 1}, "bogus"),
    (["not", "a", "mapping"], "not a mapping"),
])
def test_a_recorded_spec_is_validated_like_a_playbook_service(spec: object, where: str) -> None:
    made = recorded_container(spec, "h1", "p", "web", 1, SecretStore("p", environ={}).only(()))
    assert isinstance(made, str) and where in made


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


def _desired_everywhere() -> list[tuple[DesiredContainer, SecretStore]]:
    root = Path(__file__).resolve().parents[2]
    cases = [(["playbooks/shop.yml"], ["inventories/multicloud.yml"]),
             (["playbooks/demo.yml"], ["inventories/lab.yml"])]
    cases += [([str(p)], ["tests/corpus/inventory.yml"])
              for p in sorted((root / "tests/corpus/valid").glob("*.yml"))
              if not p.name.startswith("inv_")]
    found = []
    environ = {"SHOP_DB_PASSWORD": "x", "DB_PASSWORD": "y", "DB_URL": "z", "API_TOKEN": "t"}
    for playbooks, inventories in cases:
        files = ProjectFiles([str(root / p) for p in playbooks],
                             [str(root / i) for i in inventories])
        state = compile_desired_state(read_project(files, environ=environ))
        found += [(c, state.secrets_for(h)) for h, cs in state.containers.items() for c in cs]
    return found


def test_every_spec_fleet_records_is_made_again_exactly() -> None:
    """What a label or journal holds (the digested spec, through JSON) gives back the same
    container and hash: the validation of recorded specs refuses nothing fleet wrote."""
    found = _desired_everywhere()
    assert len(found) > 10
    for container, store in found:
        spec = json.loads(json.dumps(digest_secrets(dict(container.options), store)))
        made = recorded_container(spec, container.host, container.project, container.service,
                                  container.replica, store)
        assert not isinstance(made, str), (container.name, made)
        assert (dict(made.options), made.spec_hash) == (dict(container.options),
                                                        container.spec_hash)
