"""Hostile input, pure half: bounded JSON, typed Docker answers, labels, journal and lease
codecs. Every bad input is a ValueError (or None for a label), never another exception."""

from __future__ import annotations

import json
from typing import Any

import docker_fixtures
import pytest
from docker_fixtures import body

from fleet.config.references import pinned_image
from fleet.core import labels
from fleet.core.answers import (
    CONTAINER_LIST,
    IMAGE_LIST,
    NETWORK_LIST,
    AnswerShapeError,
    ContainerInspect,
    CreatedAnswer,
    DistributionAnswer,
    PullEvent,
    VersionAnswer,
    VolumeList,
    VolumeSummary,
    validated,
)
from fleet.core.journal import MAX_LINE, JournalEntry, decode_journal, encode_entries, read_entries
from fleet.core.lease import LockInfo
from fleet.core.observed import (
    ObservedContainer,
    container_from_inspect,
    container_from_list,
    containers_from_list,
    images_from_list,
    label_number,
    networks_from_list,
    recorded_spec,
    volumes_from_list,
)
from fleet.core.untrusted import UntrustedJSONError, parse_json

DEEP = b"[" * 100_000 + b"]" * 100_000


@pytest.mark.parametrize(("data", "problem"), [
    (b"[Infinity]", "not JSON"),
    (b'{"a": NaN}', "not JSON"),
    (b"[-Infinity]", "not JSON"),
    (b"[1e400]", "too large for a float"),
    (b"1e400", "too large for a float"),
    (DEEP, "nested deeper than 64 levels"),
    (b"[" * 65 + b"]" * 65, "nested deeper than 64 levels"),
    (b'{"a": 1', "not JSON"),
    (b"\xff\xfe", "not JSON"),
    (b'"\\ud800"', "not JSON"),
    (b"9" * 5000, "not JSON"),
    (b"[1] [2]", "not JSON"),
    (b"", "not JSON"),
])
def test_untrusted_json_is_refused_with_a_reason(data: bytes, problem: str) -> None:
    with pytest.raises(UntrustedJSONError, match=problem):
        parse_json(data, max_bytes=len(data) + 1)


def test_json_bounds_on_size_and_items() -> None:
    assert parse_json(b"[" * 64 + b"]" * 64, max_bytes=1000) is not None
    with pytest.raises(UntrustedJSONError, match="more than 1 KiB"):
        parse_json(b" " * 1025 + b"1", max_bytes=1024)
    many = b"[" + b"0," * 1000 + b"0]"
    with pytest.raises(UntrustedJSONError, match="more than 100 JSON values"):
        parse_json(many, max_bytes=len(many), max_items=100)


# -- Docker answers ---------------------------------------------------------------------------


def summary(**changes: Any) -> dict[str, Any]:
    item: dict[str, Any] = {"Id": "c1", "Names": ["/web-1"], "State": "running",
                            "Labels": {labels.PROJECT: "shop"}, "Ports": []}
    item.update(changes)
    return item


@pytest.mark.parametrize(("answer", "problem"), [
    ({"Id": "c1"}, "expected a list, got an object"),
    ([summary(Labels=["a"])], "[0].Labels: expected an object, got a list"),
    ([summary(Labels={"a": 5})], "[0].Labels.a: expected a string, got an integer"),
    ([summary(Labels={"a": None})], "expected a string, got null"),
    ([summary(Names="web")], "[0].Names: expected a list"),
    ([summary(Id=None)], "[0].Id: expected a string"),
    ([{"Names": []}], "[0].Id: missing"),
    (["c1"], "[0]: expected an object, got a string"),
    ([summary(Ports=[{"PublicPort": 10**30}])], "[0].Ports[0].PublicPort: out of range"),
    ([summary(Ports=[{"PublicPort": 80.0}])], "expected an integer, got a number"),
])
def test_container_list_of_the_wrong_shape_says_where(answer: Any, problem: str) -> None:
    with pytest.raises(AnswerShapeError) as caught:
        containers_from_list(answer)
    assert problem in str(caught.value)


def test_real_answers_still_parse() -> None:
    containers = containers_from_list(body("list_project"))
    assert containers and all(c.id for c in containers)
    inspected = container_from_inspect(body("inspect_running_healthy"))
    assert inspected.running and inspected.spec is not None
    assert images_from_list(body("images_list"))


@pytest.mark.parametrize("change", [
    {"State": "running"},
    {"State": {"Status": 5}},
    {"State": {"Health": "healthy"}},
    {"Config": {"Env": "A=1"}},
    {"Config": {"Labels": {"a": 1}}},
    {"HostConfig": {"PortBindings": {"80/tcp": [{"HostPort": "99999999999"}]}}},
    {"HostConfig": {"Memory": 2**70}},
    {"HostConfig": {"RestartPolicy": "always"}},
    {"RestartCount": "3"},
])
def test_inspect_of_the_wrong_shape_is_refused(change: dict[str, Any]) -> None:
    with pytest.raises(AnswerShapeError):
        container_from_inspect({"Id": "c1", **change})


def test_images_and_networks_are_typed() -> None:
    assert images_from_list([{"RepoTags": ["a:1"], "RepoDigests": None}]) == {"a:1"}
    assert list(networks_from_list([{"Name": "n"}])) == ["n"]
    for bad in ({}, [{"RepoTags": "a:1"}], [{"RepoTags": [1]}]):
        with pytest.raises(AnswerShapeError):
            images_from_list(bad)
    with pytest.raises(AnswerShapeError):
        networks_from_list([{"Name": ["n"]}])


@pytest.mark.parametrize("bad", [
    [{"Name": "n", "IPAM": {"Config": "172.20.0.0/16"}}],
    [{"Name": "n", "IPAM": {"Config": [{"Subnet": 17}]}}],
    [{"Name": "n", "Internal": "yes"}],
    [{"Name": "n", "Options": {"mtu": 1500}}],
    [{"Name": "n", "IPAM": {"Config": [{}] * 257}}],
])
def test_networks_of_the_wrong_shape_are_refused(bad: Any) -> None:
    with pytest.raises(AnswerShapeError):
        networks_from_list(bad)


@pytest.mark.parametrize("bad", [
    [], {"Volumes": {"Name": "v"}}, {"Volumes": [{"Driver": "local"}]},
    {"Volumes": [{"Name": "v", "Labels": ["fleet.project=shop"]}]},
    {"Volumes": [{"Name": "v" * (2 * 1024 * 1024)}]},
])
def test_volumes_of_the_wrong_shape_are_refused(bad: Any) -> None:
    with pytest.raises(AnswerShapeError):
        volumes_from_list(bad)


def test_volumes_are_typed() -> None:
    assert volumes_from_list({"Volumes": None, "Warnings": None}) == {}
    found = volumes_from_list({"Volumes": [{"Name": "v", "Options": None}]})["v"]
    assert (found.driver, dict(found.options), dict(found.labels)) == ("", {}, {})


def test_list_item_of_the_wrong_shape() -> None:
    with pytest.raises(AnswerShapeError, match="Labels"):
        container_from_list(summary(Labels="x"))


# -- labels -----------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["", "x", "-1", "1.5", "²", "٣", "9" * 5000, "1" * 10])
def test_label_numbers_are_small_ascii_numbers(text: str) -> None:
    assert label_number(text) is None


def test_label_number() -> None:
    assert label_number("7") == 7 and label_number("999999999") == 999_999_999


@pytest.mark.parametrize("text", [
    "[" * 100_000, "{" * 10, "[]", '"spec"', "Infinity", '{"a": NaN}', '{"a": 1e999}',
    "{" + '"a":{' * 40 + "}" * 41, json.dumps({"environment": ["A=1"]}),
    json.dumps({"environment": {"A": {"nested": 1}}}), json.dumps({"x": "y" * 300_000}),
])
def test_bad_spec_label_means_no_recorded_spec(text: str) -> None:
    assert recorded_spec(text) is None
    container = ObservedContainer("c1", "web-1", "running", {labels.SPEC: text})
    assert container.spec is None


def test_bad_identity_labels_read_as_absent() -> None:
    container = ObservedContainer("c1", "web-1", "running",
                                  {labels.REPLICA: "9" * 5000, labels.REVISION: "²"})
    assert container.replica is None and container.revision == 0


# -- journal and lease codecs ----------------------------------------------------------------


def entry(revision: int = 1) -> JournalEntry:
    return JournalEntry(command="apply", service="web", replica=1, revision=revision,
                        image="web:1", digest="", spec={"image": "web:1"}, spec_hash="h",
                        outcome="ok", time="2026-05-01T12:00:00Z", operator="a@c")


def line(**changes: Any) -> bytes:
    return json.dumps({**entry().to_json(), **changes}).encode()


@pytest.mark.parametrize("bad", [
    b'{"revision": Infinity}',
    line().replace(b'"revision": 1', b'"revision": Infinity'),
    line().replace(b'"revision": 1', b'"revision": 1e400'),
    line(revision=10**30), line(revision="3"), line(replica=-1), line(spec=[1]),
    line(spec={"environment": "A=1"}), line(outcome=None), line(detail=5),
    b"[" * 200_000, b'{"spec": ' + b"{" * 5000,
    line(spec={"a": json.loads("[" * 40 + "]" * 40)}),
    b"\x00\x01garbage", line()[:-7],
])
def test_garbage_journal_lines_are_skipped(bad: bytes) -> None:
    data = encode_entries([entry(1)]) + bad + b"\n" + encode_entries([entry(2)])
    entries, skipped = decode_journal(data)
    assert [e.revision for e in entries] == [1, 2] and skipped == 1


def test_truncated_last_line_and_warnings() -> None:
    data = encode_entries([entry(1), entry(2)])[:-20]
    read = read_entries(data)
    assert [e.revision for e in read.entries] == [1]
    assert read.skipped[0][0] == 2
    assert read.warnings("j.jsonl")[0].startswith("j.jsonl line 2: skipped (not JSON")


def test_overlong_line_is_skipped_unread() -> None:
    data = b'{"x": "' + b"a" * MAX_LINE + b'"}\n' + encode_entries([entry(2)])
    read = read_entries(data)
    assert [e.revision for e in read.entries] == [2]
    assert "longer than 1 MiB" in read.skipped[0][1]


def test_journal_item_budget_keeps_the_newest_entries() -> None:
    bulky = json.dumps({**entry().to_json(), "spec": {"a": [0] * 300_000}}).encode()
    data = b"\n".join([bulky] * 8) + b"\n" + encode_entries([entry(9)])
    read = read_entries(data)
    assert read.older_dropped and read.entries[-1].revision == 9
    assert len(read.entries) < 8


def test_entry_from_bad_labels_is_a_value_error() -> None:
    made = {labels.SERVICE: "web", labels.REPLICA: "²", labels.REVISION: "1",
            labels.IMAGE: "x", labels.SPEC: "[" * 10_000, labels.SPEC_HASH: "h"}
    with pytest.raises(ValueError):
        JournalEntry.from_labels(made, command="apply", outcome="removed")


LEASE = {"owner": "a@c", "controller_host": "c", "pid": 1, "command": "apply",
         "acquired_at": "2026-05-01T12:00:00Z", "expires_at": "2026-05-01T12:10:00Z",
         "run_id": "r"}


@pytest.mark.parametrize("data", [
    json.dumps(LEASE).replace('"pid": 1', '"pid": Infinity').encode(),
    json.dumps(LEASE).replace('"pid": 1', '"pid": NaN').encode(),
    json.dumps(LEASE).replace('"pid": 1', '"pid": 1e400').encode(),
    json.dumps({**LEASE, "pid": 10**40}).encode(),
    json.dumps({**LEASE, "pid": 1.5}).encode(),
    json.dumps({**LEASE, "owner": ["a"]}).encode(),
    json.dumps({**LEASE, "expires_at": "9999-12-31T23:59:59-05:00"}).encode(),
    json.dumps({**LEASE, "acquired_at": "0001-01-01T00:00:00+05:00"}).encode(),
    json.dumps({**LEASE, "expires_at": 5}).encode(),
    json.dumps({**LEASE, "expires_at": "soon"}).encode(),
    b"[" * 100_000, b"{" * 10, b"\xff" * 10, b" " * 70_000,
    json.dumps(LEASE).encode()[:-5],
])
def test_damaged_lease_is_a_value_error(data: bytes) -> None:
    with pytest.raises(ValueError):
        LockInfo.decode(data)


def test_good_lease_still_decodes() -> None:
    info = LockInfo.decode(json.dumps(LEASE).encode())
    assert info.pid == 1 and info.expires_at.tzinfo is not None


# -- the models accept what real daemons answer (the recorded fixtures) ---------------------

FIXTURE_MODELS = {
    "create_container": CreatedAnswer, "network_create": CreatedAnswer,
    "distribution_web_v1": DistributionAnswer, "images_list": IMAGE_LIST,
    "list_all": CONTAINER_LIST, "list_project": CONTAINER_LIST,
    "networks_list": NETWORK_LIST, "version": VersionAnswer,
    "network_create_ipam": CreatedAnswer, "networks_list_ipam": NETWORK_LIST,
    "volume_create": VolumeSummary, "volume_create_name_taken": VolumeSummary,
    "volumes_list": VolumeList,
    **{name: ContainerInspect for name in docker_fixtures.names()
       if name.startswith("inspect_")},
}


@pytest.mark.parametrize("name", sorted(FIXTURE_MODELS))
def test_recorded_answers_fit_their_models(name: str) -> None:
    raw = json.dumps(body(name)).encode()
    validated(FIXTURE_MODELS[name], parse_json(raw, max_bytes=len(raw)))


@pytest.mark.parametrize("name", ["pull_success", "pull_up_to_date", "pull_failing_stream"])
def test_recorded_pull_streams_fit_their_model(name: str) -> None:
    for event in docker_fixtures.stream(name):
        validated(PullEvent, event)


@pytest.mark.parametrize(("image", "digest"), [
    ("::", "sha256:" + "a" * 64), ("", "sha256:" + "a" * 64), ("a b", ""),
    ("x" * 5000, "sha256:" + "a" * 64), ("web:1", "sha256:../../x"), ("web:1", "5"),
])
def test_image_labels_are_pinned_only_when_both_are_valid(image: str, digest: str) -> None:
    container = ObservedContainer("c1", "web-1", "running",
                                  {labels.IMAGE: image, labels.IMAGE_DIGEST: digest})
    assert container.image_digest == ""
    assert pinned_image(container.image_ref, container.image_digest or None) in ("", image)


def test_good_image_labels_are_kept() -> None:
    digest = "sha256:" + "a" * 64
    container = ObservedContainer("c1", "web-1", "running",
                                  {labels.IMAGE: "reg:5000/web:1", labels.IMAGE_DIGEST: digest})
    assert (container.image_ref, container.image_digest) == ("reg:5000/web:1", digest)
