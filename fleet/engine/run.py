"""A run against the fleet: connect, observe, resolve, diff, plan; the rollout executes.

configuration -> desired state -> diff -> plan are pure (fleet.core.desired, fleet.core.diff,
fleet.core.plan); this module is the imperative shell around them. A run holds one SSH
connection and one Docker client per host, and the one bound (`forks`) on how many hosts are
worked on at once.
"""

from __future__ import annotations

import asyncio
import posixpath
from dataclasses import dataclass, field, replace

from fleet.core.dependencies import rollout_order
from fleet.core.desired import DesiredState
from fleet.core.diff import DiffContext, Finding, diff_host
from fleet.core.files import DATA_DIR, FilesOnHost, needs_files
from fleet.core.journal import JournalEntry
from fleet.core.observed import HostSnapshot
from fleet.core.plan import HostPlan, Plan, plan_host
from fleet.core.proxy_plan import route_findings, routed_plan
from fleet.core.pulls import images_to_resolve
from fleet.core.reporting import Reporter, silent
from fleet.core.resource_drift import HostResources
from fleet.docker.client import DockerClient
from fleet.docker.registry_auth import RegistryAuth
from fleet.engine.controller_images import ControllerImages, delivered_images
from fleet.engine.observe import observe_host, resolve_digests
from fleet.engine.proxy_admin import ProxyAdmin, running_proxies
from fleet.errors import FleetError, HostError
from fleet.hoststate.files import FileStore
from fleet.hoststate.journal import Journal
from fleet.hoststate.multi import FleetLock
from fleet.transport import ConnectionPool
from fleet.transport.ssh import DEFAULT_FORKS, DEFAULT_HANDSHAKES


@dataclass
class RunOptions:
    forks: int = DEFAULT_FORKS
    connect_timeout: float = 10.0
    handshakes: int = DEFAULT_HANDSHAKES
    prune: bool = True
    host_timeout: float = 60.0  # seconds one host may take to be observed


@dataclass
class Observation:
    snapshots: dict[str, HostSnapshot] = field(default_factory=dict)
    unreachable: dict[str, str] = field(default_factory=dict)
    digests: dict[str, str | None] = field(default_factory=dict)
    digest_failures: dict[str, str] = field(default_factory=dict)
    # host -> pins of its own: a rollback's recorded digests, or None for an image the host
    # uses as it has it (pull_policy missing or never: fleet.core.pulls)
    host_digests: dict[str, dict[str, str | None]] = field(default_factory=dict)
    warnings: dict[str, list[str]] = field(default_factory=dict)  # host -> e.g. skipped lines


def registry_auth(state: DesiredState) -> RegistryAuth:
    """Playbook credentials (rendered with the playbook; secret() stays a token until a pull
    needs it)."""
    return RegistryAuth(state.registries, state.secrets)


class Run:
    """One command's session with the fleet: a connection per targeted host."""

    def __init__(self, state: DesiredState, options: RunOptions,
                 report: Reporter = silent) -> None:
        self.state = state
        self.options = options
        self.auth = registry_auth(state)
        self.images = ControllerImages(delivered_images(state))
        self.lock: FleetLock | None = None  # set while the run holds the project's lock
        # read by observe(with_journals=True), or by plan_changes for the hosts it changes
        self.journals: dict[str, list[JournalEntry]] = {}
        self.hosts = {h.name: h for h in state.targeted_hosts}
        self.report = report
        self.pool = ConnectionPool(state.targeted_hosts, forks=options.forks,
                                   connect_timeout=options.connect_timeout,
                                   handshakes=options.handshakes, on_result=self._connected)
        self.forks = asyncio.Semaphore(max(1, options.forks))
        self._docker: dict[str, DockerClient] = {}
        self._proxy_admins: dict[str, ProxyAdmin] = {}
        # host -> its delivered files, looked at where containers mount them (observe)
        self.files: dict[str, FilesOnHost] = {}

    def docker(self, host: str) -> DockerClient:
        """The host's Docker Engine API over its connection (one client, reused)."""
        if host not in self._docker:
            self._docker[host] = DockerClient.over_ssh(self.pool.connected[host])
        return self._docker[host]

    def file_store(self, host: str) -> FileStore:
        """The project's delivered files on the host, over its connection (SFTP)."""
        return FileStore(self.pool.connected[host], self.state.project,
                         self.hosts[host].state_dir)

    def proxy_admin(self, host: str) -> ProxyAdmin | None:
        """The admin APIs of the host's proxies, once its files directory was looked at
        (their sockets are in the project's data directory beside it)."""
        root = self.file_root(host)
        if root is None or host not in self.state.proxies:
            return None
        if host not in self._proxy_admins:
            self._proxy_admins[host] = ProxyAdmin(
                host, self.pool.connected[host].ssh,
                posixpath.join(posixpath.dirname(root), DATA_DIR))
        return self._proxy_admins[host]

    async def look_at_proxies(self, observation: Observation) -> None:
        """The live routes of the proxy of every observed host that has one, into its
        snapshot (what can't be read is said there: the routes are then loaded again)."""
        async def one(host: str) -> None:
            snapshot = observation.snapshots[host]
            running = running_proxies(snapshot.containers, self.state.project)
            admin = self.proxy_admin(host)
            if not running or admin is None:
                return
            async with self.forks:
                try:
                    async with asyncio.timeout(self.options.host_timeout):
                        live = await admin.config(running[0].revision)
                except TimeoutError:
                    found = replace(snapshot, proxy_error=self._too_slow("its proxy's routes"))
                except (FleetError, OSError) as exc:
                    found = replace(snapshot, proxy_error=f"cannot read its routes: {exc}")
                else:
                    found = replace(snapshot, proxy=live)
            observation.snapshots[host] = found

        await asyncio.gather(*(one(host) for host in list(observation.snapshots)
                               if host in self.state.proxies))

    def file_root(self, host: str) -> str | None:
        """The host's delivered files directory, once looked at (absolute)."""
        found = self.files.get(host)
        return found.root if found is not None else None

    def needs_files(self, host: str) -> bool:
        """Whether the host's desired containers mount files of the project's directory."""
        return bool(self.state.files.get(host)) or any(
            needs_files(c.options) for c in self.state.containers.get(host, []))

    async def look_at_files(self, observation: Observation) -> None:
        """The delivered files of every observed host whose containers mount some (and that
        were not looked at yet), into its snapshot; a host whose files can't be listed is
        unreachable (SFTP is needed: its containers' mounts can't be checked without)."""
        async def one(host: str) -> None:
            async with self.forks:
                try:
                    async with asyncio.timeout(self.options.host_timeout):
                        self.files[host] = await self.file_store(host).look()
                except TimeoutError:
                    observation.unreachable[host] = self._too_slow("its delivered files")
                    del observation.snapshots[host]
                    return
                except (FleetError, OSError) as exc:
                    observation.unreachable[host] = str(exc)
                    del observation.snapshots[host]
                    return
            observation.snapshots[host] = replace(observation.snapshots[host],
                                                  files=self.files[host])

        await asyncio.gather(*(one(host) for host, snapshot in list(
            observation.snapshots.items()) if snapshot.files is None and self.needs_files(host)))

    def _unreadable(self, exc: Exception, what: str) -> str:
        """Why a host's `what` could not be read, as the host's error."""
        if isinstance(exc, TimeoutError):
            return self._too_slow(what)
        if isinstance(exc, HostError):
            return exc.reason
        if isinstance(exc, (FleetError, OSError)):
            return str(exc)
        # Every answer is checked before use, so this is a bug in fleet; still, only this
        # host goes without a snapshot.
        return (f"fleet could not read {what} ({type(exc).__name__}: {exc}); "
                "please report this as a bug")

    def _too_slow(self, what: str) -> str:
        return (f"{what} could not be read within {self.options.host_timeout:g}s "
                "(--host-timeout)")

    def _connected(self, host: str, result: object) -> None:
        self.report(host, "connected" if not isinstance(result, HostError) else str(result))

    async def __aenter__(self) -> Run:
        await self.pool.__aenter__()
        return self

    async def __aexit__(self, *exc: object) -> None:
        clients, self._docker = list(self._docker.values()), {}
        admins, self._proxy_admins = list(self._proxy_admins.values()), {}
        await asyncio.gather(*(client.aclose() for client in clients),
                             *(admin.aclose() for admin in admins), return_exceptions=True)
        await self.pool.close()

    async def observe(self, *, for_changes: bool = False, with_journals: bool = False,
                      about_to_pull: bool = False, with_files: bool = True) -> Observation:
        """Snapshots of every connected host. `for_changes` adds the images present (to
        skip needless pulls); `with_journals`, the journal of every host (else `plan_changes`
        reads those of the hosts that change). Only a command `about_to_pull` may send
        registry credentials to resolve a tag (see resolve_digests). `with_files`: the
        delivered files of the hosts whose containers mount some, too (SFTP)."""
        result = Observation({}, {h: e.reason for h, e in self.pool.failed.items()})
        delivered = await self.images.resolve()  # before any host: a bad image stops here

        async def one(host: str) -> None:
            async with self.forks:
                try:
                    async with asyncio.timeout(self.options.host_timeout):
                        snapshot = await observe_host(
                            host, self.docker(host), self.state.project,
                            with_images=for_changes, with_volumes=bool(self.state.volumes))
                        if with_journals:
                            snapshot = await self._with_revisions(host, snapshot, result)
                    result.snapshots[host] = snapshot
                except Exception as exc:  # one host's bad data must not end the run
                    result.unreachable[host] = self._unreadable(exc, "its state")

        await asyncio.gather(*(one(host) for host in self.pool.connected))
        if with_files:
            await self.look_at_files(result)
            await self.look_at_proxies(result)
        policies = {name: s.pull_policy for name, s in self.state.services.items()}
        images: dict[str, set[str]] = {}
        for host, snapshot in result.snapshots.items():
            resolve, local = images_to_resolve(self.state.containers[host],
                                               snapshot.images, policies)
            images[host] = {i for i in resolve if i not in delivered}
            local = {i: pin for i, pin in local.items() if i not in delivered}
            if local:
                result.host_digests[host] = local
        clients = {h: self.docker(h) for h in result.snapshots}
        result.digests, result.digest_failures = await resolve_digests(
            images, clients, self.auth if about_to_pull else None)
        result.digests.update(delivered)
        return result

    async def plan_changes(self, observation: Observation) -> Plan:
        """The plan, with the revisions recorded in the journal of each host it changes (so
        a new revision never reuses a number): a host that stays as it is costs no journal
        read. A host whose journal can't be read is unreachable, as in `observe`."""
        plan = self.plan(observation)
        unread = [h.host for h in plan.hosts if h.actions and h.host not in self.journals]
        if not unread:
            return plan

        async def one(host: str) -> None:
            async with self.forks:
                try:
                    async with asyncio.timeout(self.options.host_timeout):
                        snapshot = await self._with_revisions(
                            host, observation.snapshots[host], observation)
                except Exception as exc:  # one host's bad data must not end the run
                    observation.unreachable[host] = self._unreadable(exc, "its journal")
                    del observation.snapshots[host]
                else:
                    observation.snapshots[host] = snapshot

        await asyncio.gather(*(one(host) for host in unread))
        # Planned again as a whole: the revisions read change these hosts' actions, and
        # the order across hosts is the whole plan's (pure work, small beside the reads).
        return self.plan(observation)

    async def _with_revisions(self, host: str, snapshot: HostSnapshot,
                              observation: Observation) -> HostSnapshot:
        revisions, notes = await self._revisions(host)
        if notes:
            observation.warnings[host] = notes
        return replace(snapshot, last_revisions=revisions)

    async def _revisions(self, host: str) -> tuple[dict[str, int], list[str]]:
        """The highest revision per service in the host's journal, and the journal's
        warnings (lines skipped as unreadable)."""
        journal = Journal(self.pool.connected[host], self.state.project,
                          self.hosts[host].state_dir)
        self.journals[host] = await journal.read()
        highest: dict[str, int] = {}
        for entry in self.journals[host]:
            highest[entry.service] = max(highest.get(entry.service, 0), entry.revision)
        return highest, journal.warnings

    def _digests(self, observation: Observation, host: str) -> dict[str, str | None]:
        """Tag -> digest for one host: the run's resolution, unless the host is pinned to
        other digests (a rollback returns each host to the digest it ran) or uses its own
        image (pull_policy)."""
        return {**observation.digests, **observation.host_digests.get(host, {})}

    def diff(self, observation: Observation) -> dict[str, list[Finding]]:
        services = frozenset(self.state.services)
        resources = HostResources(self.state.project, self.state.networks, self.state.volumes)
        found = {host: diff_host(self.state.containers[host], snapshot,
                                 DiffContext(self.state.project, services,
                                             self.state.secrets_for(host),
                                             self._digests(observation, host),
                                             resources, self.state.files.get(host, {}),
                                             self.state.inactive_services))
                 for host, snapshot in observation.snapshots.items()}
        for host, proxy in self.state.proxies.items():
            if host in found:
                found[host] += route_findings(proxy, observation.snapshots[host],
                                              self.state.project, found[host])
        return found

    def _with_proxy(self, host_plan: HostPlan, snapshot: HostSnapshot) -> HostPlan:
        proxy = self.state.proxies.get(host_plan.host)
        if proxy is None:
            return host_plan
        return routed_plan(host_plan, proxy, snapshot, self.state.project)

    def plan(self, observation: Observation) -> Plan:
        policies = {name: s.update for name, s in self.state.services.items()}
        pulls = {name: s.pull_policy for name, s in self.state.services.items()}
        findings = self.diff(observation)
        waits = self.state.waits()
        hosts = tuple(self._with_proxy(
            plan_host(findings[h.name], observation.snapshots[h.name], self.state.project,
                      self._digests(observation, h.name), prune=self.options.prune,
                      policies=policies, networks=self.state.networks,
                      volumes=self.state.volumes, pull_policies=pulls,
                      files=self.state.files.get(h.name, {}), waits=waits),
            observation.snapshots[h.name])
            for h in self.state.targeted_hosts if h.name in observation.snapshots)
        order = rollout_order(list(self.state.services), waits) if any(
            waits.values()) else []
        return Plan(self.state.project, hosts, dict(observation.unreachable), tuple(order))
