"""The executor: the only writes. One dispatch on the action kind; no decisions of its own.

Per host, actions run in plan order; hosts run in parallel (bounded by the caller).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field

from fleet import labels
from fleet.config.secrets import SecretStore
from fleet.engine_spec import create_body, endpoint_config, network_body, update_body
from fleet.errors import DockerError, FleetError
from fleet.plan import Action, ActionKind, HostPlan, Order
from fleet.registry_auth import RegistryAuth
from fleet.rollout.health import wait_ready
from fleet.transport import DockerClient

Reporter = Callable[[str, str], None]  # (host, message)
DEFAULT_STOP_TIMEOUT = 10


class ActionFailed(FleetError):
    def __init__(self, action: Action, reason: str, *, previous_kept: bool = False) -> None:
        super().__init__(f"{action.host}: {action.kind} {action.target}: {reason}")
        self.action = action
        self.reason = reason
        self.previous_kept = previous_kept  # a replacement failed and the old one still runs


@dataclass
class HostOutcome:
    host: str
    done: list[Action] = field(default_factory=list)
    error: str | None = None
    failed: Action | None = None  # the action that failed, if one did
    previous_kept: bool = False  # ...and it was a replacement whose old container still runs

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass
class Executor:
    docker: DockerClient
    secrets: SecretStore
    auth: RegistryAuth
    report: Reporter = field(default=lambda host, message: None)
    ready_timeout: float = 120.0
    project: str = ""

    async def run(self, plan: HostPlan) -> HostOutcome:
        outcome = HostOutcome(plan.host)
        for action in plan.actions:
            self.report(plan.host, action.text())
            try:
                await self.perform(action)
            except (FleetError, OSError) as exc:
                outcome.error = str(exc.reason if isinstance(exc, ActionFailed) else exc)
                outcome.error = f"{action.kind} {action.target}: {outcome.error}"
                outcome.failed = action
                outcome.previous_kept = isinstance(exc, ActionFailed) and exc.previous_kept
                return outcome
            outcome.done.append(action)
        return outcome

    async def perform(self, action: Action) -> None:
        handler = {
            ActionKind.PULL: self._pull,
            ActionKind.CREATE: self._create,
            ActionKind.START: self._start,
            ActionKind.RESTART: self._restart,
            ActionKind.UPDATE: self._update,
            ActionKind.RECREATE: self._recreate,
            ActionKind.RENAME: self._rename,
            ActionKind.REMOVE: self._remove,
            ActionKind.NETWORK: self._network,
        }[action.kind]
        await handler(action)

    async def _network(self, action: Action) -> None:
        try:
            await self.docker.create_network(
                network_body(action.target, action.image, self.project))
        except DockerError as exc:
            if exc.status != 409:  # created meanwhile (another replica's run): fine
                raise

    async def _pull(self, action: Action) -> None:
        await self.docker.pull_image(action.image, auth=self.auth.for_image(action.image))

    def _stop_timeout(self, action: Action) -> int:
        """The grace period of the container being stopped (its own recorded spec)."""
        recorded = action.observed.spec if action.observed is not None else None
        options = recorded or (action.desired.options if action.desired else {})
        grace = options.get("stop_grace_period")
        return int(grace) if grace is not None else DEFAULT_STOP_TIMEOUT

    async def _create_and_start(self, action: Action, name: str) -> str:
        """Create, attach, start and wait until ready; on any failure the container this
        call created (by its id: never another one holding the name) is removed."""
        assert action.desired is not None
        body = create_body(action.desired, self.secrets, action.digest, action.revision)
        body["Image"] = action.image
        created = await self.docker.create_container(name, body)
        container_id = str(created["Id"])
        try:
            for network in action.desired.options["networks"][1:]:
                await self.docker.connect_network(network, container_id,
                                                  endpoint_config(action.desired))
            await self.docker.start_container(container_id)
            await self.wait_ready(action, container_id)
        except (FleetError, OSError):
            await self._discard(container_id)
            raise
        return container_id

    async def wait_ready(self, action: Action, container_id: str) -> None:
        """Running, and healthy if it has a healthcheck; else fail with why (health, logs)."""
        failure = await wait_ready(self.docker, container_id, self.ready_timeout)
        if failure:
            raise ActionFailed(action, failure)

    async def _create(self, action: Action) -> None:
        await self._create_and_start(action, action.target)

    async def _discard(self, container_id: str) -> None:
        with contextlib.suppress(DockerError):
            await self.docker.remove_container(container_id, force=True)

    async def _discard_leftover(self, name: str) -> None:
        """Remove a container of this project left under `name` by an interrupted run."""
        try:
            data = await self.docker.inspect_container(name)
        except DockerError as exc:
            if exc.status == 404:
                return
            raise
        if ((data.get("Config") or {}).get("Labels") or {}).get(labels.PROJECT) == self.project:
            await self._discard(str(data["Id"]))

    async def _start(self, action: Action) -> None:
        assert action.observed is not None
        await self.docker.start_container(action.observed.id)
        await self.wait_ready(action, action.observed.id)

    async def _restart(self, action: Action) -> None:
        assert action.observed is not None
        await self.docker.stop_container(action.observed.id, timeout=self._stop_timeout(action))
        await self._start(action)

    async def _update(self, action: Action) -> None:
        assert action.observed is not None and action.desired is not None
        await self.docker.update_container(action.observed.id, update_body(action.desired.options))

    async def _rename(self, action: Action) -> None:
        assert action.observed is not None and action.desired is not None
        await self.docker.rename_container(action.observed.id, action.desired.name)

    async def _remove(self, action: Action) -> None:
        assert action.observed is not None
        await self.docker.stop_container(action.observed.id, timeout=self._stop_timeout(action))
        await self.docker.remove_container(action.observed.id, force=True)

    async def _recreate(self, action: Action) -> None:
        assert action.observed is not None and action.desired is not None
        old = action.observed
        if action.order == Order.START_FIRST:
            temp = f"{action.target}--r{action.revision}"
            await self._discard_leftover(temp)
            try:
                new_id = await self._create_and_start(action, temp)
            except (FleetError, OSError) as exc:
                raise ActionFailed(action, _reason(exc), previous_kept=True) from exc
            # From here on the new revision runs: a failure leaves it, not the old one.
            await self.docker.stop_container(old.id, timeout=self._stop_timeout(action))
            await self.docker.remove_container(old.id, force=True)
            await self.docker.rename_container(new_id, action.target)
            return
        # stop-first: move the old one aside (it keeps its id), so that it can come back if
        # the new one fails.
        aside = f"{action.target}--r{old.revision}-old"
        try:
            if old.name != aside:
                await self.docker.rename_container(old.id, aside)
            await self.docker.stop_container(old.id, timeout=self._stop_timeout(action))
            await self._create_and_start(action, action.target)
        except (FleetError, OSError) as exc:
            kept = await self._restore(old.id, action.target)
            raise ActionFailed(action, _reason(exc), previous_kept=kept) from exc
        await self.docker.remove_container(old.id, force=True)

    async def _restore(self, container_id: str, name: str) -> bool:
        """Put a set-aside container back under its name and running; True if that worked."""
        try:
            data = await self.docker.inspect_container(container_id)
            if str(data.get("Name", "")).lstrip("/") != name:
                await self.docker.rename_container(container_id, name)
            await self.docker.start_container(container_id)
        except DockerError:
            return False
        return True


def _reason(exc: BaseException) -> str:
    return exc.reason if isinstance(exc, ActionFailed) else str(exc)
