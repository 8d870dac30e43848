"""Files that reach the hosts from beside the playbook (pure): bind sources given as relative
paths, Compose `configs:` and `secrets:`.

Each is stored on the host content-addressed, under `<state_dir>/<project>/files/`, by the
SHA-256 of what it holds and the mode, owner and group it must have: a file once written is
never changed, so a container keeps reading the revision it started with while the next one
rolls out, and a changed file is a changed mount source, hence a changed spec (drift, rolled
like any change). In a container's spec the source is `fleet-file:<name>`; the Engine body
gets the host's absolute path (fleet.docker.bodies), known once connected.
"""

from __future__ import annotations

import hashlib
import posixpath
from collections.abc import Mapping
from dataclasses import dataclass

SOURCE_PREFIX = "fleet-file:"
FILES_DIR = "files"
MAX_FILE_BYTES = 64 * 1024 * 1024  # one file delivered to hosts
MAX_TREE_ENTRIES = 10_000  # files in one delivered directory
MAX_PROJECT_BYTES = 256 * 1024 * 1024  # everything a project delivers


@dataclass(frozen=True)
class FileContent:
    """One regular file's bytes and the permissions it gets on the host."""

    data: bytes
    mode: int = 0o444
    uid: int | None = None
    gid: int | None = None

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


@dataclass(frozen=True)
class Delivered:
    """A file, or a directory tree of files (relative path -> content), as one unit."""

    files: Mapping[str, FileContent]  # "" -> the content, for a single file
    what: str  # where it comes from, for messages ("./nginx.conf", "config 'site'")

    @property
    def is_tree(self) -> bool:
        return set(self.files) != {""}

    @property
    def name(self) -> str:
        """The name on the host: a digest of every path, content and permission in it."""
        h = hashlib.sha256(b"tree\0" if self.is_tree else b"file\0")
        for path in sorted(self.files):
            content = self.files[path]
            h.update(f"{path}\0{content.digest}\0{content.mode:o}\0{content.uid}\0"
                     f"{content.gid}\0".encode())
        return h.hexdigest()

    @property
    def size(self) -> int:
        return sum(len(c.data) for c in self.files.values())

    @property
    def source(self) -> str:
        """The mount source in a container's spec."""
        return SOURCE_PREFIX + self.name


def is_delivered(source: str | None) -> bool:
    return bool(source) and str(source).startswith(SOURCE_PREFIX)


def host_source(source: str, files_root: str) -> str:
    """A spec's mount source as the host's Docker daemon must see it."""
    if not is_delivered(source):
        return source
    name = source[len(SOURCE_PREFIX):]
    if not name or "/" in name or name.startswith("."):
        raise ValueError(f"bad delivered file reference {source!r}")
    return posixpath.join(files_root, name)


def tree_problem(relative: str) -> str | None:
    """Why a path inside a delivered directory can't be delivered, or None."""
    parts = relative.split("/")
    if relative.startswith("/") or any(p in ("", ".", "..") for p in parts):
        return f"path {relative!r} is not a plain relative path"
    return None
