"""The desired state per host: every container fleet should run, fully rendered and hashed.

A project as read (fleet.config.loaded.ProjectInput) -> DesiredState is pure: the same input
always gives the same containers and hashes. Nothing here reads a file, the environment or
a host; env_file contents come through the input's reader.
"""

from __future__ import annotations

import hashlib
import json
import posixpath
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from pydantic import ValidationError

from fleet.config.compose_fields import Dependency
from fleet.config.compose_syntax import parse_short_port
from fleet.config.inventory import Host, Inventory
from fleet.config.loaded import EnvFileReader, ProjectInput
from fleet.config.patterns import PatternError, select_hosts
from fleet.config.playbook import Hook, LoadedPlaybook, PlaybookSet
from fleet.config.problems import ConfigError, KeyPath, Problem, errors_in
from fleet.config.references import parse_image_reference
from fleet.config.secrets import SecretStore, digest_secrets, redact, secret_names, token
from fleet.config.service import (
    HOST_INDEPENDENT_KEYS,
    ArchiveSource,
    ProxySettings,
    Service,
    ServiceNetwork,
    UpdatePolicy,
)
from fleet.config.shards import in_shard
from fleet.config.templating import TemplateError, base_context, contains_template, render_value
from fleet.config.validation import lookup, problems_from
from fleet.core.dependencies import dependency_problems, job_services, project_waits
from fleet.core.files import Delivered
from fleet.core.host_resources import (
    DEFAULT_NETWORK,
    NetworkSpec,
    VolumeSpec,
    project_networks,
    project_volumes,
    same_names,
)
from fleet.core.proxy import (
    PORTS_SERVICE,
    PROXY_NETWORK,
    PROXY_SERVICE,
    PROXY_SERVICES,
    HostProxy,
    Route,
    data_mount,
    holder_service,
    proxy_service,
    route_clashes,
)
from fleet.core.refs import (
    ServiceRefs,
    link_aliases,
    reference_problems,
    resolve_shared,
    shared_services,
)
from fleet.core.seeds import SeedPolicy
from fleet.core.service_files import ServiceFiles, attach_files, file_context
from fleet.core.service_resources import attach_resources

SPEC_HASH_VERSION = "1"


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def container_name(project: str, service: str, replica: int) -> str:
    return f"{project}-{service}-{replica}"


@dataclass(frozen=True)
class DesiredContainer:
    host: str
    project: str
    service: str
    replica: int
    options: Mapping[str, Any]  # normalized Compose fields; secrets as tokens
    spec_hash: str
    # A one-shot job (a dependent waits for it with service_completed_successfully): it is
    # ready, and in sync, once exited with code 0. Not part of the spec: what waits for a
    # service does not change its containers.
    job: bool = False
    # "registry", or "controller": its image is delivered by fleet and pinned by image ID
    # (the service's image_source; not part of the spec, as `image` names the image).
    image_source: str = "registry"

    @property
    def name(self) -> str:
        """`PROJECT-SERVICE-REPLICA`, or the service's `container_name` (one replica)."""
        given = self.options.get("container_name")
        if isinstance(given, str) and given:
            return given
        return container_name(self.project, self.service, self.replica)

    def redacted_options(self) -> Any:
        return redact(dict(self.options))


@dataclass(frozen=True)
class BuildSpec:
    """Compose's `build`, its context made absolute (from the playbook's directory)."""

    context: str
    dockerfile: str | None = None
    args: tuple[tuple[str, str], ...] = ()
    target: str | None = None


@dataclass(frozen=True)
class ImageOrigin:
    """Where a service's image comes from (its `image_source`, or the playbook's)."""

    kind: str = "registry"  # registry | controller (its daemon) | archive (a file) | build
    archive: str = ""  # the archive's path: a relative one is from the playbook's directory
    build: BuildSpec | None = None  # kind build: what the controller's daemon builds

    @property
    def delivered(self) -> bool:
        """fleet sends the image to the hosts itself (no registry is asked)."""
        return self.kind != "registry"


@dataclass(frozen=True)
class ServicePlacement:
    name: str
    hosts: tuple[str, ...]
    replicas: int
    update: UpdatePolicy
    # `fleet rollback`'s policy (Compose's deploy.rollback_config); None: `update`
    rollback: UpdatePolicy | None = None
    pull_policy: str = "always"  # always | missing | never
    # What it refers to: depends_on, links, shared volumes and namespaces (fleet.core.refs;
    # what they mean for starts and rollouts: fleet.core.dependencies).
    refs: ServiceRefs = field(default_factory=ServiceRefs)
    definition: str = ""  # definition_hash: with the image, names the service's release
    image_source: ImageOrigin = ImageOrigin()


@dataclass
class DesiredState:
    project: str
    inventory: Inventory
    targeted_hosts: list[Host]
    containers: dict[str, list[DesiredContainer]]  # host name -> containers, sorted
    services: dict[str, ServicePlacement]
    secrets: SecretStore
    problems: list[Problem] = field(default_factory=list)
    registries: dict[str, dict[str, str]] = field(default_factory=dict)  # secrets as tokens
    # The project's networks and volumes by their names on the hosts (external ones too):
    # each is created (or, external, looked for) on the hosts whose containers use it.
    networks: dict[str, NetworkSpec] = field(default_factory=dict)
    volumes: dict[str, VolumeSpec] = field(default_factory=dict)
    # host -> the secrets the playbook gives it: all fleet may ever send that host, whatever
    # the containers become later (a rollback builds them from what hosts recorded).
    declared_secrets: dict[str, frozenset[str]] = field(default_factory=dict)
    # Services whose profiles are not active: their containers are left as they are.
    inactive_services: frozenset[str] = frozenset()
    # host -> the files next to the compose file its containers mount (fleet.core.files),
    # by name: delivered before any container there changes.
    files: dict[str, dict[str, Delivered]] = field(default_factory=dict)
    seeds: SeedPolicy | None = None  # the playbook's `seeds:` (fleet.core.seeds)
    # host -> its proxy, where services are served through one (fleet.core.proxy)
    proxies: dict[str, HostProxy] = field(default_factory=dict)
    # The playbooks' `hooks:` by phase (pre_deploy, post_deploy), their services known.
    hooks: dict[str, tuple[PlacedHook, ...]] = field(default_factory=dict)

    def secrets_for(self, host: str) -> SecretStore:
        """The secret store for one host: only the values the playbook gives it."""
        return self.secrets.only(self.declared_secrets.get(host, frozenset()))

    def waits(self) -> dict[str, dict[str, Dependency]]:
        """Per service, the services it waits for (fleet.core.dependencies)."""
        return project_waits({name: s.refs for name, s in self.services.items()})

    @property
    def jobs(self) -> frozenset[str]:
        """The services that are one-shot jobs (fleet.core.dependencies)."""
        return job_services(self.waits())


def definition_hash(raw_service: Any, playbook_vars: Any) -> str:
    """The service as the playbook wrote it (templates unrendered) and the vars it sees: with
    the image, what names a release across the fleet (fleet.core.releases)."""
    payload = json.dumps({"service": raw_service, "vars": playbook_vars}, sort_keys=True,
                         separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()


def with_files(definition: str, units: set[str]) -> str:
    """A service's definition hash with the files next to the compose file it mounts (their
    names are digests of what they hold): the same text in the playbook with another file is
    another release."""
    if not units:
        return definition
    payload = "\0".join([definition, "files", *sorted(units)])
    return hashlib.sha256(payload.encode()).hexdigest()


def spec_hash(options: Mapping[str, Any], secrets: SecretStore) -> str:
    """SHA-256 of the normalized spec; secrets enter only as keyed digests."""
    payload = canonical_json({"v": SPEC_HASH_VERSION, "spec": digest_secrets(dict(options),
                                                                             secrets)})
    return hashlib.sha256(payload.encode()).hexdigest()


def _host_context(host: Host, playbook_vars: Mapping[str, Any]) -> dict[str, Any]:
    merged = {**playbook_vars, **host.vars}
    return {
        "host": {"name": host.name, "address": host.address, "labels": dict(host.labels),
                 "vars": merged, "groups": list(host.groups)},
        "vars": merged,
    }


def _hidden(hidden: dict[str, str], name: str, value: str) -> str:
    """A token for a value read from a file or the controller's environment: it is handled
    like a secret (redacted when shown, a keyed digest when stored), under a stable name."""
    unique, n = name, 1
    while hidden.get(unique, value) != value:  # the same name with another value elsewhere
        n += 1
        unique = f"{name}.{n}"
    hidden[unique] = value
    return token(unique)


def _finish_environment(service: Service, pb: LoadedPlaybook, env_files: EnvFileReader,
                        environ: Mapping[str, str], hidden: dict[str, str]) -> Service:
    """Merge env_file under environment; a bare `KEY` takes the controller's value (Compose).
    Both kinds of value are kept as secrets: they live in files and shells, not playbooks."""
    merged: dict[str, str] = {}
    for entry in service.env_file:
        name = entry.removeprefix("?")  # `?PATH`: `required: false`, read if it exists
        # Named after the file as the playbook names it: stable across controllers and hosts.
        file_tag = hashlib.sha256(name.encode()).hexdigest()[:8]
        try:
            read = env_files(pb, name)
        except FileNotFoundError:
            if entry.startswith("?"):
                continue
            raise
        for key, from_file in read.items():
            merged[key] = _hidden(hidden, f"env_file.{file_tag}.{key}", from_file)
    for key, value in service.environment.items():
        if value is not None:
            merged[key] = value
        elif key in environ:
            merged[key] = _hidden(hidden, f"env.{key}", environ[key])
    return service.model_copy(update={"environment": dict(sorted(merged.items()))})


class _Collector:
    """Problems found for many hosts, reported once per location with the hosts named."""

    def __init__(self) -> None:
        self.by_key: dict[tuple[str, int, int, KeyPath, str], list[str]] = {}
        self.reported: set[tuple[str, int, int, KeyPath, str]] = set()

    def already_reported(self, problems: list[Problem]) -> None:
        """Problems reported once for the service; not repeated for every host."""
        self.reported.update((p.file, p.line, p.column, p.path, p.message) for p in problems)

    def add(self, problem: Problem, service: str, host: str) -> None:
        if (problem.file, problem.line, problem.column, problem.path,
                problem.message) in self.reported:
            return
        message = f"{problem.message} (service {service}; "
        key = (problem.file, problem.line, problem.column, problem.path, message)
        self.by_key.setdefault(key, []).append(host)

    def problems(self) -> list[Problem]:
        result = []
        for (file, line, column, path, message), hosts in self.by_key.items():
            shown = ", ".join(hosts[:3]) + (f" and {len(hosts) - 3} more" if len(hosts) > 3 else "")
            noun = "host" if len(hosts) == 1 else "hosts"
            result.append(Problem(file, line, column, path, f"{message}{noun} {shown})"))
        return result


def desired_state(source: ProjectInput) -> DesiredState:
    """The desired state, or ConfigError with every problem (the files' and the state's).

    Warnings (patterns that match no host...) are kept in `DesiredState.problems`."""
    state = compile_desired_state(source)
    state.problems = source.problems + state.problems
    if errors_in(state.problems):
        raise ConfigError(state.problems)
    return state


def compile_desired_state(source: ProjectInput) -> DesiredState:
    playbooks, inventory, limit = source.playbooks, source.inventory, source.limit
    environ = source.environ
    hidden: dict[str, str] = {}  # values from env files and the environment, kept as secrets
    secrets = source.secrets.with_hidden(hidden)
    problems: list[Problem] = []
    project = playbooks.project
    targeted = inventory.hosts
    if limit:
        try:
            targeted = tuple(inventory.select(limit))
        except PatternError as exc:
            problems.append(Problem("--limit", 0, 0, (), str(exc)))
        if not targeted:
            problems.append(Problem("--limit", 0, 0, (), f"'{limit}' matches no host",
                                    "warning"))
    if source.shard is not None and targeted:
        targeted = in_shard(targeted, source.shard)
        if not targeted:
            problems.append(Problem("--shard", 0, 0, (), f"shard {source.shard} holds none of "
                                    "the targeted hosts", "warning"))
    targeted_names = {h.name for h in targeted}
    containers: dict[str, list[DesiredContainer]] = {h.name: [] for h in targeted}
    services: dict[str, ServicePlacement] = {}
    context = base_context(project, secrets, environ)
    per_host = _Collector()
    declared_networks = {name: definition for pb in playbooks.playbooks
                         for name, definition in pb.header.networks.items()}
    proxied_anywhere = any("proxy" in pb.raw_service(name) for name, pb in playbooks.services())
    if proxied_anywhere:
        problems.extend(_reserved_proxy_names(playbooks))
        declared_networks.setdefault(PROXY_NETWORK, None)
    networks = project_networks(project, declared_networks)
    volumes = project_volumes(project, {name: definition for pb in playbooks.playbooks
                                        for name, definition in pb.header.volumes.items()})
    problems.extend(_resource_name_clashes(playbooks, networks, volumes))
    placed: list[tuple[str, LoadedPlaybook, ServicePlacement]] = []
    for name, pb in playbooks.services():
        structural: list[Problem] = []
        placement = _check_structure(name, pb.raw_service(name), pb, inventory, structural)
        problems.extend(structural)
        if placement is None:
            continue
        per_host.already_reported(structural)
        services[name] = placement
        placed.append((name, pb, placement))
    refs = {name: placement.refs for name, placement in services.items()}
    known = dict(playbooks.services())
    problems.extend(reference_problems(refs, known, playbooks.inactive))
    aliases = link_aliases(refs)
    # What some dependent waits for to complete runs once (fleet.core.dependencies).
    written = {name: {t: d for t, d in own.depends_on.items() if t in refs}
               for name, own in refs.items()}
    jobs = job_services(written)
    made: dict[str, list[tuple[str, LoadedPlaybook, Service, dict[str, Any],
                               ServiceFiles]]] = {}
    files = file_context(playbooks, source.local_files, source.variables, secrets, hidden)
    proxied: dict[str, _Proxied] = {}  # host -> the routes of its proxied services
    for name, pb, placement in placed:
        raw = pb.raw_service(name)
        base: KeyPath = ("services", name)
        for host in inventory.hosts:
            if host.name not in placement.hosts or host.name not in targeted_names:
                continue
            ctx = {**context, **_host_context(host, pb.header.vars), "service": name}
            try:
                rendered = {k: v if k in HOST_INDEPENDENT_KEYS else render_value(v, ctx, (k,))
                            for k, v in raw.items()}
            except TemplateError as exc:
                per_host.add(pb.doc.problem((*base, *exc.path), str(exc)), name, host.name)
                continue
            try:
                service = Service.model_validate(rendered)
                service = _finish_environment(service, pb, source.env_files,
                                              source.variables, hidden)
            except ValidationError as exc:
                for problem in problems_from(exc, Service, rendered, pb.doc, base):
                    per_host.add(problem, name, host.name)
                continue
            except (OSError, ValueError) as exc:
                per_host.add(pb.doc.problem((*base, "env_file"), f"cannot read env_file: {exc}"),
                             name, host.name)
                continue
            if service.replicas > 1:
                for index, port in _published_ports(rendered.get("ports")):
                    per_host.add(pb.doc.problem(
                        (*base, "ports", index),
                        f"{service.replicas} replicas on one host cannot all publish host port "
                        f"{port}; leave the host port out for an ephemeral one, or use 1 replica"),
                        name, host.name)
            options = service.container_options()
            if service.proxy is not None:
                _join_proxy_network(options)
            found = attach_resources(options, service, raw, networks, volumes, pb.refused)
            if found:
                for path, message in found:
                    per_host.add(pb.doc.problem((*base, *path), message), name, host.name)
                continue
            attached = attach_files(options, service, pb, name, files)
            if attached.problems:
                for path, message in attached.problems:
                    per_host.add(pb.doc.problem((*base, *path), message), name, host.name)
                continue
            if name in aliases:
                options["link_aliases"] = aliases[name]
            if secret_names(options["labels"]):
                per_host.add(pb.doc.problem(
                    (*base, "labels"), "secret() cannot be used in labels: labels are readable "
                    "by anyone who can list containers; pass secrets in 'environment'"),
                    name, host.name)
                continue
            made.setdefault(host.name, []).append((name, pb, service, options, attached))
            if service.proxy is not None and service.replicas:
                proxied.setdefault(host.name, _Proxied(host, pb)).routes.extend(
                    Route(name, port, service.proxy.container_port,
                          tuple(service.proxy.hostnames), tuple(service.proxy.paths),
                          service.proxy.drain,
                          (service.proxy.tls.certificate, service.proxy.tls.key)
                          if service.proxy.tls else None)
                    for port in service.proxy.ports)
    delivered: dict[str, dict[str, Delivered]] = {}
    given_files: dict[str, set[str]] = {}  # host -> the secrets its files carry
    mounted: dict[str, set[str]] = {}  # service -> the delivered files it mounts, anywhere
    for host_name, items in made.items():
        # Replica 1 of each service here: what `service:NAME` (volumes_from, ipc, pid) names.
        first = {name: DesiredContainer(host_name, project, name, 1, options, "").name
                 for name, _, service, options, _ in items if service.replicas}
        for name, pb, service, options, attached in items:
            unresolved = resolve_shared(options, first)
            if unresolved is not None:
                field, target, why = unresolved
                if target in known:  # else reported once, as an unknown service
                    per_host.add(pb.doc.problem(("services", name, field), why), name,
                                 host_name)
                continue
            digest = spec_hash(options, secrets)
            if service.replicas:
                for unit in attached.units:
                    delivered.setdefault(host_name, {}).setdefault(unit.name, unit)
                given_files.setdefault(host_name, set()).update(attached.secrets)
                mounted.setdefault(name, set()).update(u.name for u in attached.units)
            for replica in range(1, service.replicas + 1):
                containers[host_name].append(DesiredContainer(
                    host_name, project, name, replica, options, digest, job=name in jobs,
                    image_source="controller" if services[name].image_source.delivered
                    else "registry"))
        _name_clashes(containers[host_name], known, per_host)
    proxies = _place_proxies(proxied, containers, services, networks, volumes, context,
                             secrets, per_host, playbooks,
                             _ProxyFiles(files, delivered, given_files))
    problems.extend(per_host.problems())
    for name, units in mounted.items():  # a changed file is a new release of its service
        services[name] = replace(services[name], definition=with_files(
            services[name].definition, units))
    for host_containers in containers.values():
        host_containers.sort(key=lambda c: (c.service, c.replica))
    problems.extend(_port_conflicts(containers, playbooks))
    problems.extend(dependency_problems(
        containers, {name: s.hosts for name, s in services.items()}, written, known))
    registries = _render_registries(playbooks, context, problems)
    given = {host: frozenset().union(*(secret_names(c.options) for c in host_containers),
                                     given_files.get(host, set()))
             for host, host_containers in containers.items()}
    return DesiredState(project, inventory, list(targeted), containers, services, secrets,
                        problems, registries, {n.name: n for n in networks.values()},
                        {v.name: v for v in volumes.values()}, given,
                        frozenset(playbooks.inactive - set(services)),
                        {host: dict(sorted(units.items(), key=lambda u: (u[1].what, u[0])))
                         for host, units in delivered.items()},
                        _seed_policy(playbooks, problems), proxies,
                        _hooks(playbooks, services, inventory, problems))


@dataclass(frozen=True)
class PlacedHook:
    hook: Hook
    hosts: tuple[str, ...]  # where it may run (its service's hosts its `host:` keeps), by name


def _hooks(playbooks: PlaybookSet, services: Mapping[str, ServicePlacement],
           inventory: Inventory, problems: list[Problem]) -> dict[str, tuple[PlacedHook, ...]]:
    """Every playbook's hooks, in order, by phase; one naming no service is a problem."""
    found: dict[str, list[PlacedHook]] = {"pre_deploy": [], "post_deploy": []}
    names: set[str] = set()
    for pb in playbooks.playbooks:
        if pb.header.hooks is None:
            continue
        for phase, hooks in (("pre_deploy", pb.header.hooks.pre_deploy),
                             ("post_deploy", pb.header.hooks.post_deploy)):
            for index, hook in enumerate(hooks):
                where = ("hooks", phase, index)
                if hook.service not in services:
                    problems.append(pb.doc.problem((*where, "service"),
                                                   f"hook '{hook.name}': no service "
                                                   f"'{hook.service}' in the playbook"))
                elif hook.name in names:
                    problems.append(pb.doc.problem((*where, "name"), f"two hooks are named "
                                                   f"'{hook.name}'"))
                else:
                    hosts = set(services[hook.service].hosts)
                    if hook.host is not None:
                        try:
                            hosts &= set(select_hosts(hook.host, inventory.hosts,
                                                      inventory.groups).hosts)
                        except PatternError as exc:
                            problems.append(pb.doc.problem((*where, "host"), str(exc)))
                            continue
                    found[phase].append(PlacedHook(hook, tuple(sorted(hosts))))
                names.add(hook.name)
    return {phase: tuple(hooks) for phase, hooks in found.items()}


@dataclass
class _Proxied:
    """A host's proxied services, as found: the routes its proxy serves."""

    host: Host
    playbook: LoadedPlaybook
    routes: list[Route] = field(default_factory=list)


def _proxy_settings(playbooks: PlaybookSet, ctx: Mapping[str, Any],
                    report: Any) -> tuple[str, ProxySettings] | None:
    """The proxy's image for a host (the playbook's `proxy.image` rendered, or Caddy's) and
    the rest of its `proxy:`."""
    for pb in playbooks.playbooks:
        if pb.header.proxy is not None:
            try:
                image = str(render_value(pb.header.proxy.image, ctx, ("proxy", "image")))
                parse_image_reference(image)
            except (TemplateError, ValueError) as exc:
                report(pb.doc.problem(("proxy", "image"), str(exc)))
                return None
            return image, pb.header.proxy
    return ProxySettings().image, ProxySettings()


@dataclass
class _ProxyFiles:
    """What the proxy's certificates need: the project's file context, and the units each
    host is given (and the secrets they carry), filled in."""

    context: Any  # fleet.core.service_files.FileContext
    delivered: dict[str, dict[str, Delivered]]
    given: dict[str, set[str]]

    def attach(self, options: dict[str, Any], service: Service, pb: LoadedPlaybook,
               host: str) -> list[tuple[KeyPath, str]]:
        """The certificates (secret grants) mounted, beside the proxy's own directory."""
        attached = attach_files(options, service, pb, PROXY_SERVICE, self.context)
        for unit in attached.units:
            self.delivered.setdefault(host, {}).setdefault(unit.name, unit)
        self.given.setdefault(host, set()).update(attached.secrets)
        options["volumes"] = [*options["volumes"], data_mount()]
        return attached.problems


def _place_proxies(proxied: Mapping[str, _Proxied],
                   containers: dict[str, list[DesiredContainer]],
                   services: dict[str, ServicePlacement], networks: Mapping[str, NetworkSpec],
                   volumes: Mapping[str, VolumeSpec], context: Mapping[str, Any],
                   secrets: SecretStore, per_host: _Collector,
                   playbooks: PlaybookSet, files: _ProxyFiles) -> dict[str, HostProxy]:
    """Each host's proxy and its two containers (fleet.core.proxy), as services of the
    project: the proxied services roll out after it, on each host."""
    proxies: dict[str, HostProxy] = {}
    project = playbooks.project
    for host_name, found in proxied.items():
        pb = found.playbook

        def report(problem: Problem, host: str = host_name) -> None:
            per_host.add(problem, PROXY_SERVICE, host)

        ctx = {**context, **_host_context(found.host, pb.header.vars)}
        settings = _proxy_settings(playbooks, ctx, report)
        if settings is None:
            continue
        for service, message in route_clashes(found.routes):
            report(pb.doc.problem(("services", service, "proxy"), message))
        proxy = HostProxy(settings[0], tuple(sorted(found.routes, key=lambda r: r.id)),
                          migrate_connections=settings[1].migrate_connections)
        made: list[DesiredContainer] = []
        holder_name = container_name(project, PORTS_SERVICE, 1)
        for name, raw in ((PORTS_SERVICE, holder_service(proxy)),
                          (PROXY_SERVICE, proxy_service(proxy, holder_name))):
            try:
                model = Service.model_validate(raw)
            except ValidationError as exc:
                for problem in problems_from(exc, Service, raw, pb.doc, ("proxy",)):
                    report(problem)
                break
            options = model.container_options()
            if attach_resources(options, model, raw, networks, volumes):
                break  # the proxy's own network is always declared: not reached
            if name == PROXY_SERVICE:
                found_problems = files.attach(options, model, pb, host_name)
                for _, message in found_problems:  # a certificate's secret, unknown...
                    for route in proxy.routes:
                        if route.tls:
                            report(pb.doc.problem(("services", route.service, "proxy", "tls"),
                                                  message))
                            break
                if found_problems:
                    break
            made.append(DesiredContainer(host_name, project, name, 1, options,
                                         spec_hash(options, secrets)))
        else:
            proxies[host_name] = proxy
            containers[host_name].extend(made)
    if not proxies:
        return proxies
    hosts = tuple(h for h in containers if h in proxies)  # in the inventory's order
    policy = UpdatePolicy(batch="100%", monitor=2.0)
    services[PORTS_SERVICE] = ServicePlacement(PORTS_SERVICE, hosts, 1, policy)
    services[PROXY_SERVICE] = ServicePlacement(
        PROXY_SERVICE, hosts, 1, policy,
        refs=ServiceRefs({PORTS_SERVICE: Dependency()}))
    for name in proxied_services(proxies):
        refs = services[name].refs
        services[name] = replace(services[name], refs=replace(
            refs, depends_on={**refs.depends_on, PROXY_SERVICE: Dependency()}))
    return proxies


def proxied_services(proxies: Mapping[str, HostProxy]) -> list[str]:
    return sorted(set().union(*(p.services for p in proxies.values())))


def _join_proxy_network(options: dict[str, Any]) -> None:
    """A proxied service's containers join the proxy's network beside their own (the
    project's default one if they name none, as Compose would)."""
    joined = dict(options.get("networks") or {})
    if not joined:
        joined[DEFAULT_NETWORK] = ServiceNetwork().model_dump(mode="json")
    joined.setdefault(PROXY_NETWORK, ServiceNetwork().model_dump(mode="json"))
    options["networks"] = joined


def _reserved_proxy_names(playbooks: PlaybookSet) -> list[Problem]:
    """The proxy's service and network names, taken by the playbook."""
    problems = []
    for name, pb in playbooks.services():
        if name in PROXY_SERVICES:
            problems.append(pb.doc.problem(("services", name), f"'{name}' is the name of "
                                           "fleet's proxy service: rename this service"))
    for pb in playbooks.playbooks:
        if PROXY_NETWORK in pb.header.networks:
            problems.append(pb.doc.problem(("networks", PROXY_NETWORK), f"'{PROXY_NETWORK}' is "
                                           "the proxy's network: rename this network"))
    return problems


def _seed_policy(playbooks: PlaybookSet, problems: list[Problem]) -> SeedPolicy | None:
    """The `seeds:` of the playbooks that set it, which must agree."""
    found: SeedPolicy | None = None
    for pb in playbooks.playbooks:
        config = pb.header.seeds
        if config is None:
            continue
        policy = SeedPolicy(config.by, dict(config.labels), config.image, config.port)
        if found is not None and policy != found:
            problems.append(pb.doc.problem(("seeds",), "another playbook of the project sets "
                                           "other seeds: set them once"))
        found = found or policy
    return found


def _name_clashes(containers: list[DesiredContainer], docs: Mapping[str, LoadedPlaybook],
                  per_host: _Collector) -> None:
    """Two services' containers that would have one name (a `container_name`) on a host."""
    seen: dict[str, str] = {}
    for container in containers:
        other = seen.setdefault(container.name, container.service)
        if other != container.service:
            per_host.add(docs[container.service].doc.problem(
                ("services", container.service, "container_name"),
                f"container name '{container.name}' is also a container of service "
                f"'{other}'"), container.service, container.host)


def _resource_name_clashes(playbooks: PlaybookSet, networks: Mapping[str, NetworkSpec],
                           volumes: Mapping[str, VolumeSpec]) -> list[Problem]:
    """Two declarations that would be one network (or volume) on a host."""
    problems = []
    for kind, specs in (("networks", networks), ("volumes", volumes)):
        for key, other, name in same_names(specs.values()):
            pb = next((pb for pb in playbooks.playbooks
                       if key in getattr(pb.header, kind)), playbooks.playbooks[0])
            problems.append(pb.doc.problem((kind, key), f"{kind[:-1]} '{key}' and '{other}' "
                                           f"are both named '{name}' on the hosts"))
    return problems


def _render_registries(playbooks: PlaybookSet, context: Mapping[str, Any],
                       problems: list[Problem]) -> dict[str, dict[str, str]]:
    """`registries:` rendered now, as a run would (once, not per host): a bad template or a
    missing secret is a problem of the file, not a traceback when the first image is pulled."""
    registries: dict[str, dict[str, str]] = {}
    for pb in playbooks.playbooks:
        for name, auth in pb.header.registries.items():
            rendered: dict[str, str] = {}
            for key, value in auth.model_dump().items():
                path: KeyPath = ("registries", name, key)
                try:
                    rendered[key] = render_value(value, context, path)
                except TemplateError as exc:
                    problems.append(pb.doc.problem(path, str(exc)))
                    continue
                if not rendered[key]:
                    problems.append(pb.doc.problem(path, f"registry '{name}': the {key} is "
                                                   "empty"))
            registries[name] = rendered
    return registries


def _check_structure(name: str, raw: dict[str, Any], pb: LoadedPlaybook, inventory: Inventory,
                     problems: list[Problem]) -> ServicePlacement | None:
    """Host-independent checks: what does not depend on templates is reported once."""
    base: KeyPath = ("services", name)
    for key in sorted(HOST_INDEPENDENT_KEYS):
        if contains_template(raw.get(key)):
            problems.append(pb.doc.problem(
                (*base, key), f"templates are not allowed in '{key}': placement and rollout "
                "are the same for every host"))
            return None
    try:
        service = Service.model_validate(raw)
    except ValidationError as exc:
        found = [p for p in problems_from(exc, Service, raw, pb.doc, base)
                 if not contains_template(lookup(raw, p.path[len(base):]))]
        problems.extend(found)
        try:  # what placement needs, without the rest (templates are rendered per host)
            service = Service.model_validate(_placement_keys(raw))
        except ValidationError:
            return None
    hosts_pattern = service.hosts
    update = service.update or pb.header.update  # the playbook's `update:` is the default
    refs = ServiceRefs(dict(service.depends_on), tuple(service.links),
                       shared_services(service.model_dump(include={"volumes_from", "ipc",
                                                                   "pid"})))
    try:
        result = select_hosts(str(hosts_pattern), inventory.hosts, inventory.groups)
    except PatternError as exc:
        problems.append(pb.doc.problem((*base, "hosts"), str(exc)))
        return None
    for term in result.empty_terms:
        problems.append(pb.doc.problem((*base, "hosts"), f"'{term}' matches no host",
                                       severity="warning"))
    return ServicePlacement(name, tuple(result.hosts), service.replicas,
                            update or UpdatePolicy(), service.rollback, service.pull_policy, refs,
                            definition_hash(raw, pb.header.vars),
                            _image_origin(service, base, pb, problems))


def _image_origin(service: Service, base: KeyPath, pb: LoadedPlaybook,
                  problems: list[Problem]) -> ImageOrigin:
    """Where the image comes from: `build` runs when the source is the controller (a
    Compose service with no image of its own has that source: fleet.config.compose_file)."""
    source = service.image_source or pb.header.image_source
    here = posixpath.dirname(pb.doc.path)
    if service.build is not None:
        if source == "controller":
            build = service.build
            return ImageOrigin("build", build=BuildSpec(
                posixpath.normpath(posixpath.join(here, build.context)), build.dockerfile,
                tuple(sorted(build.args.items())), build.target))
        problems.append(pb.doc.problem(
            (*base, "build"),
            f"'build' is ignored: fleet deploys the image {service.image!r} from "
            f"{'its registry' if source in (None, 'registry') else 'its archive'} (set "
            "image_source: controller to build it on the controller and deliver it)",
            at_key=True, severity="warning"))
    if source is None or source == "registry":
        return ImageOrigin()
    if source == "controller":
        return ImageOrigin("controller")
    assert isinstance(source, ArchiveSource)
    return ImageOrigin("archive", posixpath.normpath(posixpath.join(here, source.archive)))


_PLACEMENT_KEYS = ("hosts", "replicas", "update", "rollback", "depends_on", "links",
                   "pull_policy", "scale", "volumes_from", "ipc", "pid")
_PLACEMENT_DEPLOY = ("mode", "replicas", "update_config", "rollback_config")


def _placement_keys(raw: Mapping[str, Any]) -> dict[str, Any]:
    """A service's keys that placement, rollout and references depend on, where they are
    not templates (a templated `replicas` is known per host only)."""
    kept: dict[str, Any] = {"image": "scratch"}
    for key in _PLACEMENT_KEYS:
        if key in raw and not contains_template(raw[key]):
            kept[key] = raw[key]
    deploy = raw.get("deploy")
    if isinstance(deploy, dict):
        kept["deploy"] = {k: v for k, v in deploy.items()
                          if k in _PLACEMENT_DEPLOY and not contains_template(v)}
    return kept


def _published_ports(ports: Any) -> list[tuple[int, int]]:
    """(index in the file's list, host port) for each fixed host port a `ports:` list publishes."""
    found: list[tuple[int, int]] = []
    for index, item in enumerate(ports if isinstance(ports, list) else []):
        try:
            if isinstance(item, dict):
                mappings = [item] if item.get("published") not in (None, "") else []
            else:
                mappings = parse_short_port(item)
            found.extend((index, int(m["published"])) for m in mappings if m["published"])
        except (TypeError, ValueError):
            continue
    return found


_WILDCARDS = ("", "0.0.0.0", "::")


def _port_conflicts(containers: Mapping[str, list[DesiredContainer]],
                    playbooks: PlaybookSet) -> list[Problem]:
    """Two services (or one service twice) publishing one host port on one host."""
    docs = {name: pb for name, pb in playbooks.services()}
    clashes: dict[tuple[str, int, str, str], list[str]] = {}
    for host, items in containers.items():
        taken: dict[tuple[int, str], list[tuple[str, str]]] = {}
        for container in items:
            if container.replica != 1:
                continue  # replicas publishing a fixed port are reported per service
            for port in container.options.get("ports", []):
                if not port["published"]:
                    continue
                key = (port["published"], port["protocol"])
                for ip, other in taken.get(key, []):
                    if ip in _WILDCARDS or port["host_ip"] in _WILDCARDS or ip == port["host_ip"]:
                        by = ("is published twice by this service"
                              if other == container.service
                              else f"is also published by service '{other}'")
                        clashes.setdefault((container.service, key[0], key[1], by),
                                           []).append(host)
                        break
                taken.setdefault(key, []).append((port["host_ip"], container.service))
    problems: list[Problem] = []
    for (service, number, protocol, by), hosts in clashes.items():
        pb = docs[service]
        indexes = [i for i, p in _published_ports(pb.raw_service(service).get("ports"))
                   if p == number]
        path: KeyPath = ("services", service, "ports", *indexes[-1:])
        shown = ", ".join(hosts[:3]) + (f" and {len(hosts) - 3} more" if len(hosts) > 3 else "")
        problems.append(pb.doc.problem(
            path, f"host port {number}/{protocol} {by} on "
                  f"{'host' if len(hosts) == 1 else 'hosts'} {shown}"))
    return problems
