"""A service's files next to the compose file, made delivered units (pure): relative bind
sources, and the `configs` and `secrets` granted to it (fleet.core.files).

- A relative bind source names a file (delivered as a file), a directory (delivered as a
  tree) or nothing on the controller: then Compose's data directory, a directory of the
  project on each host (`fleet-data:`), created by Docker when missing and never emptied.
- A config is mounted read-only at its target (default `/<name>`), mode 0444 unless the grant
  says otherwise; a secret at `/run/secrets/<name>` (or its target), mode 0400, owned by the
  grant's uid/gid, else by the service's numeric `user:`, else by root.
- A secret's value is kept like fleet's other secrets: in the secret store under a hidden
  name, so that only the hosts whose containers the playbook gives it to may receive it
  (DesiredState.declared_secrets); its unit holds no bytes and is named from its keyed digest.

The files are read through ProjectInput.local_files (fleet.config.local_files): the core
reads none itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from fleet.config.loaded import FileReader
from fleet.config.local_files import LocalFileError, LocalSource
from fleet.config.playbook import FileSource, LoadedPlaybook, PlaybookSet, SecretSource
from fleet.config.problems import KeyPath
from fleet.config.secrets import SecretMissing, SecretStore
from fleet.config.service import Mount, Service
from fleet.core.files import (
    Delivered,
    FileContent,
    data_source,
    is_on_host_files,
)

CONFIG_MODE = 0o444
SECRET_MODE = 0o400
SECRET_NAME = "compose_secret.{name}"  # a secret's value in the secret store


@dataclass
class FileContext:
    """What making a service's units needs, for every host."""

    read: FileReader
    variables: Mapping[str, str]  # the project's environment (`environment:` sources)
    secrets: SecretStore  # the project's store (its hidden values may grow)
    hidden: dict[str, str]  # the store's hidden values: a secret's value is added here
    configs: dict[str, tuple[LoadedPlaybook, FileSource]] = field(default_factory=dict)
    secret_sources: dict[str, tuple[LoadedPlaybook, SecretSource]] = field(
        default_factory=dict)


@dataclass
class ServiceFiles:
    """A service's units on one host, the secrets they carry, and what was wrong."""

    units: list[Delivered] = field(default_factory=list)
    secrets: set[str] = field(default_factory=set)
    problems: list[tuple[KeyPath, str]] = field(default_factory=list)


def file_context(playbooks: PlaybookSet, read: FileReader, variables: Mapping[str, str],
                 secrets: SecretStore, hidden: dict[str, str]) -> FileContext:
    ctx = FileContext(read, variables, secrets, hidden)
    for pb in playbooks.playbooks:  # an included file's entries join the project's
        for name, config in pb.header.configs.items():
            ctx.configs.setdefault(name, (pb, config))
        for name, secret in pb.header.secrets.items():
            ctx.secret_sources.setdefault(name, (pb, secret))
    return ctx


def attach_files(options: dict[str, Any], service: Service, pb: LoadedPlaybook, name: str,
                 ctx: FileContext) -> ServiceFiles:
    """Relative bind sources of `options` (a service's container options on one host) made
    units, and its configs and secrets mounted; what each mount needs is returned."""
    found = ServiceFiles()
    volumes = [dict(v) for v in options["volumes"]]
    for index, volume in enumerate(volumes):
        where: KeyPath = ("volumes", index)
        source = volume.get("source")
        if volume["type"] != "bind" or not isinstance(source, str) or source.startswith("/"):
            continue
        if is_on_host_files(source):
            found.problems.append((where, f"bind source {source!r}: 'fleet-file:' and "
                                          "'fleet-data:' are fleet's own; write a path"))
            continue
        written_in = pb.doc.origin(("services", name, *where))[0]
        try:
            local = ctx.read(pb, source, written_in)
        except LocalFileError as exc:
            found.problems.append((where, f"bind source {exc}"))
            continue
        if not local.exists:
            if not (volume.get("bind") or {}).get("create_host_path", True):
                found.problems.append((where, f"bind source {source} does not exist, and "
                                              "create_host_path is false"))
                continue
            volume["source"] = data_source(local.relative)
            continue
        unit = _unit(local)
        found.units.append(unit)
        volume["source"] = unit.source
    taken = {v["target"] for v in volumes}
    for kind in ("configs", "secrets"):
        for index, grant in enumerate(getattr(service, kind)):
            where = (kind, index)
            if grant["target"] in taken:
                found.problems.append((where, f"{grant['target']} is also the target of "
                                              "another mount of this service"))
                continue
            made = (_config(grant, ctx) if kind == "configs"
                    else _secret(grant, service, ctx, found))
            if isinstance(made, str):
                found.problems.append((where, made))
                continue
            taken.add(grant["target"])
            found.units.append(made)
            volumes.append(_mount(made, grant["target"]))
    options["volumes"] = volumes
    return found


def _unit(local: LocalSource) -> Delivered:
    assert local.files is not None
    contents = {path: FileContent(f.data, f.mode) for path, f in local.files.items()}
    return Delivered(contents, local.shown, local.directories)


def _mount(unit: Delivered, target: str) -> dict[str, Any]:
    """A read-only bind of the unit, shaped as a volume of the spec is."""
    return Mount.model_validate({"type": "bind", "source": unit.source, "target": target,
                                 "read_only": True}).model_dump(mode="json")


def _ids(grant: Mapping[str, Any], user: str | None) -> tuple[int, int]:
    """A secret's owner: the grant's uid/gid, else the service's numeric `user:`, else 0."""
    name, _, group = (user or "").partition(":")
    uid = int(grant["uid"]) if "uid" in grant else int(name) if name.isdigit() else 0
    gid = int(grant["gid"]) if "gid" in grant else int(group) if group.isdigit() else 0
    return uid, gid


def _content(kind: str, key: str, pb: LoadedPlaybook, source: FileSource, ctx: FileContext
             ) -> bytes | str:
    """The bytes a config or secret holds, or why there are none."""
    what = f"{kind[:-1]} '{key}'"
    if source.content is not None:
        return source.content.encode()
    if source.environment is not None:
        if kind == "secrets" and source.environment in ctx.secrets.commands:
            try:
                return ctx.secrets.value(source.environment).encode("utf-8", "surrogateescape")
            except SecretMissing as exc:
                return f"{what}: {exc}"
        value = ctx.variables.get(source.environment)
        if value is None and kind == "secrets":
            value = ctx.secrets.file_values.get(source.environment)
        if value is None:
            return (f"{what}: environment variable {source.environment} is not set on the "
                    "controller")
        return value.encode("utf-8", "surrogateescape")
    assert source.file is not None
    if source.file.startswith("/"):
        return f"{what}: file {source.file} must be a path relative to the compose file"
    try:
        local = ctx.read(pb, source.file, pb.doc.origin((kind, key, "file"))[0])
    except LocalFileError as exc:
        return f"{what}: {exc}"
    if not local.exists:
        return f"{what}: file {source.file} not found"
    if not local.is_file:
        return f"{what}: {source.file} is a directory, not a file"
    assert local.files is not None
    return local.files[""].data


def _config(grant: Mapping[str, Any], ctx: FileContext) -> Delivered | str:
    key = grant["source"]
    if key not in ctx.configs:
        return f"config '{key}' is not declared in the top-level 'configs:'"
    pb, source = ctx.configs[key]
    data = _content("configs", key, pb, source, ctx)
    if isinstance(data, str):
        return data
    uid = int(grant["uid"]) if "uid" in grant else None
    gid = int(grant["gid"]) if "gid" in grant else None
    content = FileContent(data, grant.get("mode", CONFIG_MODE), uid, gid)
    return Delivered({"": content}, f"config '{key}'")


def _secret(grant: Mapping[str, Any], service: Service, ctx: FileContext,
            found: ServiceFiles) -> Delivered | str:
    key = grant["source"]
    if key not in ctx.secret_sources:
        return f"secret '{key}' is not declared in the top-level 'secrets:'"
    pb, source = ctx.secret_sources[key]
    data = _content("secrets", key, pb, source, ctx)
    if isinstance(data, str):
        return data
    stored = SECRET_NAME.format(name=key)
    ctx.hidden[stored] = data.decode("utf-8", "surrogateescape")  # one value per name
    found.secrets.add(stored)
    uid, gid = _ids(grant, service.user)
    content = FileContent(b"", grant.get("mode", SECRET_MODE), uid, gid, secret=stored,
                          fingerprint=ctx.secrets.digest(stored))
    return Delivered({"": content}, f"secret '{key}'")
