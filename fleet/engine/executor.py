"""The executor: the only writes. It performs a plan's steps, one Docker Engine API call each,
and decides nothing: the order, the names, the undo of a failed replacement and the point from
which a new revision stands all come with the steps (fleet.core.plan).

Per host, actions run in plan order; hosts run in parallel (bounded by the caller).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from fleet.config.secrets import SecretStore
from fleet.core import labels
from fleet.core.answers import AnswerShapeError
from fleet.core.files import revealed
from fleet.core.observed import containers_from_list, volume_from_answer
from fleet.core.plan import Action, Step, StepKind
from fleet.core.proxy import swapped, upstream
from fleet.core.reporting import Reporter, silent
from fleet.core.resources import update_body
from fleet.docker.bodies import create_body, endpoint_config, network_body, volume_body
from fleet.docker.client import DockerClient
from fleet.docker.registry_auth import RegistryAuth
from fleet.engine.controller_images import ControllerImages
from fleet.engine.delivery import Delivery, deliver_image
from fleet.engine.health import wait_exit, wait_ready
from fleet.engine.proxy_admin import ProxyAdmin, running_proxies
from fleet.engine.seeding import Seeding
from fleet.errors import DockerError, FleetError
from fleet.hoststate.files import FileStore
from fleet.images.archive import ArchiveImage

LOAD_PROGRESS_STEP = 8 * 1024 * 1024  # a line per 8 MiB an image load sends
Gate = Callable[[str], Awaitable[str | None]]


def amount(count: int) -> str:
    """Bytes as a person reads them in progress lines."""
    if count < 1024 * 1024:
        return f"{count / 1024:.1f} KiB"
    return f"{count / 1024 / 1024:.1f} MiB"


def host_tags(reference: str) -> tuple[str, ...]:
    """The tag a loaded image gets on the host: the reference as configured (a bare name is
    its `:latest`, as Docker reads it); a digest reference names no tag."""
    if "@" in reference:
        return ()
    if ":" not in reference.rsplit("/", 1)[-1]:
        return (f"{reference}:latest",)
    return (reference,)


async def send_image(docker: DockerClient, images: ControllerImages, archive: ArchiveImage,
                     tags: tuple[str, ...], report: Reporter, what: str) -> Delivery:
    """The image sent from the controller to the host, what it lacks of it (one upload at a
    time per host and image: a second sender then sends only the names); progress every
    8 MiB and a summary, with the rate."""
    host = docker.host
    shown = [0]  # the last 8 MiB step reported
    started = time.monotonic()

    def rate(sent: int) -> str:
        seconds = time.monotonic() - started
        return f"{amount(int(sent / seconds))}/s" if seconds > 0 else "-"

    def progress(sent: int, total: int) -> None:
        step_reached = sent // LOAD_PROGRESS_STEP
        if step_reached > shown[0]:
            shown[0] = step_reached
            report(host, f"{what}: {amount(sent)} of {amount(total)}, {rate(sent)}")

    async with images.sending(host, archive.image_id):
        delivery = await deliver_image(docker, archive, tags=tags, verified=images.verified,
                                       progress=progress)
    images.delivered(host, delivery)
    if not delivery.bytes_sent and not tags:
        return delivery  # a seed that had it already: nothing to tell
    report(host, f"{what}: {delivery.layers_sent} of {delivery.layers_total} layers sent, "
                 f"{amount(delivery.bytes_sent)}"
                 + (f", {rate(delivery.bytes_sent)}" if delivery.bytes_sent else ""))
    return delivery


class StepFailed(FleetError):
    """A step that answered but did not succeed (a container that never became ready)."""


@dataclass
class ExecutionResult:
    host: str
    done: list[Action] = field(default_factory=list)
    created: dict[str, str] = field(default_factory=dict)  # name -> id of containers made
    error: str | None = None
    failed: Action | None = None  # the action that failed, if one did
    previous_kept: bool = False  # ...and it replaced a container that still runs

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass
class Executor:
    docker: DockerClient
    secrets: SecretStore
    auth: RegistryAuth
    project: str
    report: Reporter = silent
    files: FileStore | None = None  # the host's delivered files (deliver steps)
    files_root: str | None = None  # their directory, absolute, as the host's dockerd sees it
    images: ControllerImages | None = None  # the run's images from the controller (load)
    seeding: Seeding | None = None  # the run's region seeds, if it uses any
    proxy: ProxyAdmin | None = None  # the host's proxies (route, proxy-load steps)
    # The health gate of the action's service (gate steps): why the container failed it
    gate: Gate | None = None

    async def run(self, host: str, actions: Sequence[Action]) -> ExecutionResult:
        result = ExecutionResult(host)
        for action in actions:
            self.report(host, action.heading())
            failure = await self._execute(action, result)
            if failure is not None:
                result.error = f"{action.kind} {action.target}: {failure}"
                result.failed = action
                return result
            result.done.append(action)
        return result

    async def _execute(self, action: Action, result: ExecutionResult) -> str | None:
        """Perform the action's steps; on a failure, its pending undos, newest first.
        Returns why it failed, or None."""
        pending: list[Step] = []
        for step in action.steps:
            try:
                await self.perform(step, result.created)
            except (FleetError, OSError) as exc:
                reason = str(exc)
                kept = await self._undo(pending, result.created)
                result.previous_kept = action.observed is not None and kept
                return reason
            if step.commit:
                pending.clear()
            pending.extend(step.undo)
        return None

    async def _undo(self, steps: list[Step], created: dict[str, str]) -> bool:
        """Every undo step is tried; True if all of them worked."""
        worked = True
        for step in reversed(steps):
            try:
                await self.perform(step, created)
            except (FleetError, OSError):
                worked = False
        return worked

    async def perform(self, step: Step, created: dict[str, str]) -> None:
        """One API call. A container this action created is addressed by the id its create
        returned, never by its name (another container may hold the name meanwhile)."""
        target = created.get(step.target, step.target)
        try:
            await self._call(step, target, created)
        except DockerError as exc:
            if exc.status not in step.tolerate:
                raise

    async def _call(self, step: Step, target: str, created: dict[str, str]) -> None:
        docker = self.docker
        match step.kind:
            case StepKind.PULL:
                await docker.pull_image(step.image, auth=self.auth.for_image(step.image),
                                        platform=step.platform)
            case StepKind.LOAD:
                await self._load(step)
            case StepKind.NETWORK_CREATE:
                assert step.network_spec is not None
                await docker.create_network(network_body(step.network_spec, self.project))
            case StepKind.VOLUME_CREATE:
                assert step.volume_spec is not None
                await self._create_volume(step)
            case StepKind.DELIVER:
                assert step.delivered is not None
                if self.files is None:
                    raise StepFailed(f"cannot deliver {step.delivered.what}: no file store "
                                     "for this host")
                # Only now, and from this host's store, does a secret's value appear.
                await self.files.deliver([revealed(step.delivered, self.secrets.data)],
                                         frozenset())
            case StepKind.CREATE:
                assert step.container is not None
                try:
                    body = create_body(step.container, self.secrets, step.digest,
                                       step.revision, self.files_root)
                except ValueError as exc:  # a delivered file, and no files directory known
                    raise StepFailed(f"create {step.target}: {exc}") from None
                body["Image"] = step.image
                made = await docker.create_container(
                    step.target, body, platform=str(step.container.options.get("platform") or ""))
                container_id = made.get("Id") if isinstance(made, dict) else None
                if not isinstance(container_id, str) or not container_id:
                    raise DockerError(docker.host, f"create {step.target}: the daemon's "
                                                   "answer has no container id")
                created[step.target] = container_id
            case StepKind.CONNECT:
                assert step.container is not None
                await docker.connect_network(step.network, target,
                                             endpoint_config(step.container, step.network))
            case StepKind.START:
                await docker.start_container(target)
            case StepKind.WAIT_READY | StepKind.WAIT_EXIT:
                wait = wait_ready if step.kind == StepKind.WAIT_READY else wait_exit
                failure = await wait(docker, target, step.timeout or 0.0)
                if failure:
                    raise StepFailed(failure)
            case StepKind.STOP:
                await docker.stop_container(target, timeout=int(step.timeout or 0))
            case StepKind.RENAME:
                await docker.rename_container(target, step.name)
                if step.target in created:
                    created[step.name] = created.pop(step.target)
            case StepKind.REMOVE:
                await docker.remove_container(target, force=True)
                created.pop(step.target, None)
            case StepKind.UPDATE:
                assert step.container is not None
                await docker.update_container(target, update_body(step.container.options))
            case StepKind.GATE:
                failure = await self.gate(target) if self.gate is not None else None
                if failure:
                    raise StepFailed(failure)
            case StepKind.ROUTE:
                await self._route(step, target if step.target else "")
            case StepKind.DRAIN:
                await asyncio.sleep(step.timeout or 0.0)
            case StepKind.PROXY_LOAD:
                if self.proxy is None:
                    raise StepFailed("the host's proxy can't be reached: its directory on "
                                     "the host is not known")
                await self.proxy.load(step.revision, json.loads(step.config))

    async def _route(self, step: Step, container_id: str) -> None:
        """The service's routes on every proxy that runs on the host (two, while the proxy
        itself is replaced): `container_id` in, `step.replaces` out, one change each."""
        if self.proxy is None:
            raise StepFailed("the host's proxy can't be reached: its directory on the host "
                             "is not known")
        try:
            listed = containers_from_list(await self.docker.list_containers(all=True))
        except AnswerShapeError as exc:
            raise StepFailed(f"Docker's list of containers is unusable: {exc}") from None
        proxies = running_proxies(listed, self.project)
        if not proxies:
            raise StepFailed("the host's proxy is not running (fleet-proxy)")
        for proxy in proxies:
            for route in step.routes:
                dials = await self.proxy.upstreams(proxy.revision, route.id)
                new = swapped(dials, step.replaces or None,
                              upstream(container_id, route.container_port)
                              if container_id else None)
                if new != dials:
                    await self.proxy.set_upstreams(proxy.revision, route.id, new)

    async def _load(self, step: Step) -> None:
        """Send the image from the controller: only the layers the host lacks; or, where a
        seed serves the host's group, have the host pull it from the seed."""
        if self.images is None or step.digest is None:
            raise StepFailed(f"cannot load {step.image}: it was not read on the controller")
        host = self.docker.host
        archive = await self.images.archive(step.digest)
        tags = host_tags(step.image)
        seed = self.seeding.seed_for(host, step.digest) if self.seeding else None
        if self.seeding is not None and seed is not None:
            try:
                delivery = await self.seeding.deliver(host, archive, tags)
            except (FleetError, OSError) as exc:
                self.report(host, f"load {step.image}: through seed {seed}: {exc}; sending "
                                  "it from the controller")
            else:
                self.images.delivered(host, delivery)
                self.report(host, f"load {step.image}: pulled from seed {seed}")
                return
        await send_image(self.docker, self.images, archive, tags, self.report,
                         f"load {step.image}")

    async def _create_volume(self, step: Step) -> None:
        """Create the volume; the Engine answers a name already taken with the volume that
        has it, which must then be this project's (made meanwhile by another run)."""
        assert step.volume_spec is not None
        # The client checked the answer's shape: reading it can't fail.
        volume = volume_from_answer(
            await self.docker.create_volume(volume_body(step.volume_spec, self.project)))
        owner = volume.labels.get(labels.PROJECT)
        if volume.name != step.target or owner != self.project:
            raise DockerError(self.docker.host, f"volume {step.target} exists on the host and "
                                                f"is not project {self.project}'s; fleet "
                                                "won't use it as its own")
