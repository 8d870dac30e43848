"""Plans for images fleet delivers from the controller (image_source): a load of what the
host lacks, containers made from the image ID, and drift judged against that ID."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from planner_support import HOST, WEB_V1, project, recorded, snapshot

from fleet.core import labels
from fleet.core.desired import DesiredState
from fleet.core.diff import DiffContext, Kind, diff_host
from fleet.core.plan import ActionKind, HostPlan, StepKind, plan_host
from fleet.core.resource_drift import HostResources

IMAGE_ID = "sha256:" + "ab" * 32
OTHER_ID = "sha256:" + "cd" * 32


def delivered(tmp_path: Path) -> DesiredState:
    state = project(tmp_path, "web")
    state.containers[HOST] = [replace(c, image_source="controller")
                              for c in state.containers[HOST]]
    return state


def plan(state: DesiredState, images: tuple[str, ...] = (), *containers: object,
         image_id: str | None = IMAGE_ID) -> HostPlan:
    observed = snapshot(*containers, networks=("shop_default", "shop_backend"),  # type: ignore[arg-type]
                        images=images)
    pins = {WEB_V1: image_id}
    context = DiffContext(state.project, frozenset(state.services), state.secrets, pins,
                          HostResources(state.project, state.networks, state.volumes))
    return plan_host(diff_host(state.containers[HOST], observed, context), observed,
                     state.project, pins, networks=state.networks, volumes=state.volumes)


def test_a_missing_container_is_made_from_the_image_id_after_a_load(tmp_path: Path) -> None:
    result = plan(delivered(tmp_path))
    kinds = [a.kind for a in result.actions]
    assert kinds == [ActionKind.LOAD, ActionKind.CREATE]
    load, create = result.actions
    assert (load.target, load.digest) == (WEB_V1, IMAGE_ID)
    assert load.steps[0].kind == StepKind.LOAD
    assert "from the controller" in load.heading()
    assert create.steps[0].image == IMAGE_ID  # the ID itself: no registry digest exists
    made = create.steps[0].container
    assert made is not None and labels.fleet_labels(
        made, delivered(tmp_path).secrets, IMAGE_ID, 1)[labels.IMAGE_SOURCE] == "controller"


def test_a_host_that_has_the_image_gets_no_load(tmp_path: Path) -> None:
    result = plan(delivered(tmp_path), (IMAGE_ID,))
    assert [a.kind for a in result.actions] == [ActionKind.CREATE]


def test_an_image_not_read_on_the_controller_blocks_the_service(tmp_path: Path) -> None:
    result = plan(delivered(tmp_path), image_id=None)
    assert result.actions == ()
    assert [f.kind for f in result.blocked] == [Kind.CONFLICT]
    assert "not read on the controller" in result.blocked[0].detail


def test_a_container_of_the_delivered_image_is_in_sync_and_a_new_id_is_drift(
        tmp_path: Path) -> None:
    state = delivered(tmp_path)
    running = recorded("inspect_running_healthy", state, "web",
                       change={"Config.Image": IMAGE_ID})
    ours = labels.fleet_labels(state.containers[HOST][0], state.secrets, IMAGE_ID, 1)
    running = replace(running, labels=ours, config_image=IMAGE_ID)
    assert running.delivered_image and running.pin == IMAGE_ID
    assert plan(state, (IMAGE_ID,), running).actions == ()
    moved = plan(state, (IMAGE_ID,), running, image_id=OTHER_ID)
    assert [f.kind for f in moved.drift] == [Kind.IMAGE_CHANGED]
    assert [a.kind for a in moved.actions] == [ActionKind.LOAD, ActionKind.RECREATE]


def test_a_registry_container_of_the_same_tag_is_drift_once_the_source_moves(
        tmp_path: Path) -> None:
    state = delivered(tmp_path)
    from_registry = recorded("inspect_running_healthy", project(tmp_path, "web"), "web")
    assert not from_registry.delivered_image
    result = plan(state, (IMAGE_ID,), from_registry)
    assert [f.kind for f in result.drift] == [Kind.IMAGE_CHANGED]
