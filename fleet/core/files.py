"""Files that reach the hosts from beside the playbook (pure): bind sources given as relative
paths, Compose `configs:` and `secrets:`.

Each is stored on the host content-addressed, under `<state_dir>/<project>/files/`, by the
SHA-256 of what it holds and the mode, owner and group it must have: a file once written is
never changed, so a container keeps reading the revision it started with while the next one
rolls out, and a changed file is a changed mount source, hence a changed spec (drift, rolled
like any change). In a container's spec the source is `fleet-file:<name>`; the Engine body
gets the host's absolute path (fleet.docker.bodies), known once connected.

A secret's unit is named from the keyed digest fleet stores for secrets (SecretStore.digest),
never from a plain hash of its value, and carries no bytes: the value is revealed from the
host's secret store only when it is written there (`revealed`).

A relative source that does not exist on the controller is Compose's data directory
(`./data:/var/lib/mysql`): `fleet-data:<path in the project>`, a directory of the project on
each host (`<state_dir>/<project>/binds/<path>`) that Docker creates when missing and fleet
never empties.

The files are read on the controller, within the limits of fleet.config.local_files.
"""

from __future__ import annotations

import hashlib
import posixpath
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

SOURCE_PREFIX = "fleet-file:"
DATA_PREFIX = "fleet-data:"
FILES_DIR = "files"
DATA_DIR = "binds"


@dataclass(frozen=True)
class FileContent:
    """One regular file's bytes and the permissions it gets on the host."""

    data: bytes
    mode: int = 0o444
    uid: int | None = None
    gid: int | None = None
    # A secret: the name its value has in the secret store (data stays empty until it is
    # written to a host) and its keyed digest, which names it instead of the value's hash.
    secret: str | None = None
    fingerprint: str | None = None

    @property
    def digest(self) -> str:
        if self.fingerprint is not None:
            return self.fingerprint
        return hashlib.sha256(self.data).hexdigest()


@dataclass(frozen=True)
class Delivered:
    """A file, or a directory tree of files (relative path -> content), as one unit."""

    files: Mapping[str, FileContent]  # "" -> the content, for a single file
    what: str  # where it comes from, for messages ("./nginx.conf", "config 'site'")
    directories: tuple[str, ...] = ()  # a tree's empty sub-directories

    @property
    def is_tree(self) -> bool:
        return set(self.files) != {""}

    @property
    def is_secret(self) -> bool:
        return any(c.secret is not None for c in self.files.values())

    @property
    def name(self) -> str:
        """The name on the host: a digest of every path, content and permission in it."""
        h = hashlib.sha256(b"tree\0" if self.is_tree else b"file\0")
        for path in sorted(self.files):
            content = self.files[path]
            h.update(f"{path}\0{content.digest}\0{content.mode:o}\0{content.uid}\0"
                     f"{content.gid}\0".encode())
        for directory in sorted(self.directories):
            h.update(f"{directory}/\0".encode())
        return h.hexdigest()

    @property
    def size(self) -> int:
        return sum(len(c.data) for c in self.files.values())

    @property
    def source(self) -> str:
        """The mount source in a container's spec."""
        return SOURCE_PREFIX + self.name

    def summary(self) -> str:
        """What `fleet plan` says it delivers: never a secret's size or content."""
        if self.is_secret:
            content = self.files[""]
            owner = f", uid {content.uid}" if content.uid is not None else ""
            return f"{self.what} (mode {content.mode:04o}{owner})"
        if self.is_tree:
            count = len(self.files)
            return (f"{self.what} ({count} file{'' if count == 1 else 's'}, "
                    f"{human_size(self.size)})")
        return f"{self.what} ({human_size(self.size)})"


def revealed(unit: Delivered, value: Callable[[str], bytes]) -> Delivered:
    """`unit` with its secrets' bytes (from the host's secret store): its name is unchanged."""
    if not unit.is_secret:
        return unit
    return replace(unit, files={path: replace(c, data=value(c.secret)) if c.secret else c
                                for path, c in unit.files.items()})


@dataclass(frozen=True)
class FilesOnHost:
    root: str  # the absolute path of the files directory, as the host's dockerd sees it
    names: frozenset[str]  # delivered names present (temporaries excluded)


def human_size(size: int) -> str:
    """`512 B`, `1.2 KiB`, `3.4 MiB`: for people reading a plan."""
    value, unit = float(size), "B"
    for bigger in ("KiB", "MiB", "GiB"):
        if value < 1024:
            break
        value, unit = value / 1024, bigger
    return f"{size} B" if unit == "B" else f"{value:.1f} {unit}"


def is_delivered(source: object) -> bool:
    return isinstance(source, str) and source.startswith(SOURCE_PREFIX)


def is_data_dir(source: object) -> bool:
    return isinstance(source, str) and source.startswith(DATA_PREFIX)


def is_on_host_files(source: object) -> bool:
    """A source fleet places under the project's directory on the host (not the user's)."""
    return is_delivered(source) or is_data_dir(source)


def data_source(relative: str) -> str:
    return DATA_PREFIX + relative


def host_source(source: str, files_root: str) -> str:
    """A spec's mount source as the host's Docker daemon must see it."""
    if is_data_dir(source):
        relative = source[len(DATA_PREFIX):]
        if tree_problem(relative):
            raise ValueError(f"bad data directory reference {source!r}")
        return posixpath.join(posixpath.dirname(files_root), DATA_DIR, relative)
    if not is_delivered(source):
        return source
    name = source[len(SOURCE_PREFIX):]
    if not name or "/" in name or name.startswith("."):
        raise ValueError(f"bad delivered file reference {source!r}")
    return posixpath.join(files_root, name)


def mount_sources(options: Mapping[str, Any]) -> list[str]:
    """The bind sources of a spec's volumes (a recorded spec's too: checked for type)."""
    volumes = options.get("volumes")
    return [v["source"] for v in volumes if isinstance(v, Mapping) and v.get("type") == "bind"
            and isinstance(v.get("source"), str)] if isinstance(volumes, list) else []


def delivered_names(options: Mapping[str, Any]) -> set[str]:
    """The delivered units a spec mounts."""
    return {s[len(SOURCE_PREFIX):] for s in mount_sources(options) if is_delivered(s)}


def needs_files(options: Mapping[str, Any]) -> bool:
    """Whether a spec mounts anything of the project's directory on the host."""
    return any(is_on_host_files(s) for s in mount_sources(options))


def missing_units(containers: Iterable[Mapping[str, Any]], present: frozenset[str]
                  ) -> list[str]:
    """The delivered units these specs mount that are not among `present`, sorted."""
    return sorted(set().union(*(delivered_names(o) for o in containers)) - present)


def tree_problem(relative: str) -> str | None:
    """Why a path inside a delivered directory can't be delivered, or None."""
    parts = relative.split("/")
    if relative.startswith("/") or any(p in ("", ".", "..") for p in parts):
        return f"path {relative!r} is not a plain relative path"
    return None
