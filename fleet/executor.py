"""The executor: the only writes. One dispatch on the action kind; no decisions of its own.

Per host, actions run in plan order; hosts run in parallel (bounded by the caller).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field

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
    def __init__(self, action: Action, reason: str) -> None:
        super().__init__(f"{action.host}: {action.kind} {action.target}: {reason}")
        self.action = action
        self.reason = reason


@dataclass
class HostOutcome:
    host: str
    done: list[Action] = field(default_factory=list)
    error: str | None = None
    failed: Action | None = None  # the action that failed, if one did

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
        options = action.desired.options if action.desired else {}
        grace = options.get("stop_grace_period")
        return int(grace) if grace is not None else DEFAULT_STOP_TIMEOUT

    async def _create_and_start(self, action: Action, name: str) -> str:
        assert action.desired is not None
        body = create_body(action.desired, self.secrets, action.digest, action.revision)
        body["Image"] = action.image
        created = await self.docker.create_container(name, body)
        container_id = str(created["Id"])
        for network in action.desired.options["networks"][1:]:
            await self.docker.connect_network(network, container_id,
                                              endpoint_config(action.desired))
        await self.docker.start_container(container_id)
        await self.wait_ready(action, container_id)
        return container_id

    async def wait_ready(self, action: Action, container_id: str) -> None:
        """Running, and healthy if it has a healthcheck; else fail with why (health, logs)."""
        failure = await wait_ready(self.docker, container_id, self.ready_timeout)
        if failure:
            raise ActionFailed(action, failure)

    async def _create(self, action: Action) -> None:
        try:
            await self._create_and_start(action, action.target)
        except ActionFailed:
            await self._discard(action.target)
            raise

    async def _discard(self, name: str) -> None:
        with contextlib.suppress(DockerError):
            await self.docker.remove_container(name, force=True)

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
            await self._discard(temp)  # a leftover of an interrupted run
            try:
                new_id = await self._create_and_start(action, temp)
            except (ActionFailed, DockerError):
                await self._discard(temp)
                raise
            await self.docker.stop_container(old.id, timeout=self._stop_timeout(action))
            await self.docker.remove_container(old.id, force=True)
            await self.docker.rename_container(new_id, action.target)
            return
        # stop-first: move the old one aside so it can come back if the new one fails.
        aside = f"{action.target}--r{old.revision}-old"
        await self.docker.rename_container(old.id, aside)
        await self.docker.stop_container(old.id, timeout=self._stop_timeout(action))
        try:
            await self._create_and_start(action, action.target)
        except (ActionFailed, DockerError):
            await self._discard(action.target)
            await self.docker.rename_container(old.id, action.target)
            await self.docker.start_container(old.id)
            raise
        await self.docker.remove_container(old.id, force=True)
