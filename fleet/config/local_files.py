"""Files next to the compose file, read on the controller for delivery to the hosts: relative
bind sources and the `file:` of top-level `configs:` and `secrets:` (fleet.core.files makes
them delivered units).

A relative path is resolved against the directory of the compose file that names it, as
Compose resolves it, and must stay inside the project: the project directory (the first
compose file's), the naming file's directory, or the directory of the file it was written in
(an `extends` base). Symlinks are followed, but only to targets inside those directories;
inside a directory, a symlink is delivered as the file or directory it points to (the hosts
get plain files), and a link back to a directory being read is a cycle, refused. Only
regular files and directories are read: a FIFO, socket or device is refused before it is
opened. Every read is bounded (MAX_FILE_BYTES per file, MAX_TREE_ENTRIES per directory,
MAX_PROJECT_BYTES for everything one project delivers), and no message quotes a file.
"""

from __future__ import annotations

import os
import posixpath
import stat
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

MiB = 1024 * 1024
MAX_FILE_BYTES = 64 * MiB  # one file delivered to hosts
MAX_TREE_ENTRIES = 10_000  # files and directories in one delivered directory
MAX_PROJECT_BYTES = 256 * MiB  # everything a project delivers, together
# A delivered file is read-only: 0555 if its owner may execute it on the controller, else
# 0444. Only that bit counts (as in git), so every controller of a checkout makes the same
# file, whatever its umask.
EXECUTABLE_MODE, PLAIN_MODE = 0o555, 0o444


class LocalFileError(ValueError):
    """A relative source that can't be delivered; the message names the path, never the
    content."""


@dataclass(frozen=True)
class LocalFile:
    data: bytes
    mode: int  # EXECUTABLE_MODE or PLAIN_MODE


@dataclass(frozen=True)
class LocalSource:
    """What a relative path names on the controller: a file (`files == {"": ...}`), a
    directory (relative paths -> files, and its empty sub-directories), or nothing (None)."""

    shown: str  # as written: "./nginx.conf"
    relative: str  # normalised, relative to the project directory: "conf/nginx.conf"
    files: Mapping[str, LocalFile] | None
    directories: tuple[str, ...] = ()

    @property
    def exists(self) -> bool:
        return self.files is not None

    @property
    def is_file(self) -> bool:
        return self.files is not None and set(self.files) == {""}


def _inside(path: Path, roots: Sequence[Path]) -> bool:
    return any(path == root or root in path.parents for root in roots)


def _shown_roots(roots: Sequence[Path]) -> str:
    return " or ".join(str(r) for r in dict.fromkeys(roots))


@dataclass
class LocalFiles:
    """Reads relative sources of one project, each once, counting what they hold together."""

    project_dir: Path
    _cache: dict[tuple[Path, str, Path | None], LocalSource | LocalFileError] = field(
        default_factory=dict)
    _counted: dict[Path, int] = field(default_factory=dict)  # resolved file -> bytes

    def __post_init__(self) -> None:
        self.project_dir = Path(os.path.normpath(os.path.abspath(self.project_dir)))

    @property
    def total(self) -> int:
        return sum(self._counted.values())

    def read(self, base: Path, relative: str, written_in: Path | None = None) -> LocalSource:
        """`relative` (as written, relative to `base`, the naming compose file's directory);
        `written_in`: the file it was written in, when not the naming one. Raises
        LocalFileError."""
        key = (base, relative, written_in)
        if key not in self._cache:
            try:
                self._cache[key] = self._read(base, relative, written_in)
            except LocalFileError as exc:
                self._cache[key] = exc
        found = self._cache[key]
        if isinstance(found, LocalFileError):
            raise found
        return found

    def _roots(self, base: Path, written_in: Path | None) -> list[Path]:
        roots = [self.project_dir, base]
        if written_in is not None:
            roots.append(written_in.parent)
        return [Path(os.path.realpath(r)) for r in roots]

    def _read(self, base: Path, relative: str, written_in: Path | None) -> LocalSource:
        if os.path.isabs(relative) or relative.startswith("~"):
            raise LocalFileError(f"{relative!r} is not a relative path")
        roots = self._roots(base, written_in)
        lexical = Path(os.path.normpath(base / relative))
        path = base / relative
        if not os.path.lexists(path):
            return LocalSource(relative, self._data_dir(lexical, relative), None)
        try:
            real = path.resolve(strict=True)
        except (OSError, RuntimeError) as exc:  # a dangling link, a loop of links
            raise LocalFileError(f"{relative}: cannot resolve it ({_reason(exc)})") from None
        if not _inside(real, roots):
            raise LocalFileError(f"{relative} resolves to {real}, outside the project "
                                 f"({_shown_roots(roots)}): fleet reads only files inside it")
        shown_relative = _relative_to(lexical, self.project_dir) or lexical.name
        info = _stat(real, relative)
        if stat.S_ISREG(info.st_mode):
            return LocalSource(relative, shown_relative,
                               {"": self._file(real, info, relative)})
        if stat.S_ISDIR(info.st_mode):
            files: dict[str, LocalFile] = {}
            empty: list[str] = []
            self._tree(real, "", relative, roots, (real,), files, empty, [0])
            return LocalSource(relative, shown_relative, files, tuple(sorted(empty)))
        raise LocalFileError(f"{relative} is neither a regular file nor a directory")

    def _data_dir(self, lexical: Path, relative: str) -> str:
        """Compose's data directory (`./data:/var/lib/mysql`): named by its path relative to
        the project directory, which it must not leave."""
        inside = _relative_to(lexical, self.project_dir)
        if inside is None or inside == ".":
            raise LocalFileError(
                f"{relative} does not exist, so each host gets a directory of the project in "
                f"its place, named after its path in the project directory "
                f"{self.project_dir}; this one is not inside it")
        if not inside.isprintable() or any(c in inside for c in ":,"):
            # Docker's Binds are `SOURCE:TARGET:MODES`: a ':' or ',' would split the source
            raise LocalFileError(f"{relative} does not exist, and its path can't name a "
                                 "directory on the hosts (a ':', ',' or control character)")
        return inside

    def _file(self, real: Path, info: os.stat_result, shown: str) -> LocalFile:
        if info.st_size > MAX_FILE_BYTES:
            raise LocalFileError(f"{shown} is {info.st_size:,} bytes, more than the "
                                 f"{MAX_FILE_BYTES // MiB} MiB a delivered file may be")
        try:
            with open(real, "rb") as handle:
                data = handle.read(MAX_FILE_BYTES + 1)
        except OSError as exc:
            raise LocalFileError(f"cannot read {shown}: {_reason(exc)}") from None
        if len(data) > MAX_FILE_BYTES:
            raise LocalFileError(f"{shown} is more than the {MAX_FILE_BYTES // MiB} MiB a "
                                 "delivered file may be")
        if real not in self._counted:
            self._counted[real] = len(data)
            if self.total > MAX_PROJECT_BYTES:
                raise LocalFileError(f"with {shown}, the files the project delivers come to "
                                     f"more than {MAX_PROJECT_BYTES // MiB} MiB")
        return LocalFile(data, EXECUTABLE_MODE if info.st_mode & stat.S_IXUSR else PLAIN_MODE)

    def _tree(self, directory: Path, prefix: str, shown: str, roots: Sequence[Path],
              chain: tuple[Path, ...], files: dict[str, LocalFile], empty: list[str],
              count: list[int]) -> None:
        try:
            entries = sorted(os.scandir(directory), key=lambda e: e.name)
        except OSError as exc:
            raise LocalFileError(f"cannot list {shown}/{prefix}: {_reason(exc)}") from None
        if not entries and prefix:
            empty.append(prefix.rstrip("/"))
        for entry in entries:
            name = f"{prefix}{entry.name}"
            where = f"{shown.rstrip('/')}/{name}"
            count[0] += 1
            if count[0] > MAX_TREE_ENTRIES:
                raise LocalFileError(f"{shown} holds more than {MAX_TREE_ENTRIES:,} files and "
                                     "directories, the most a delivered directory may")
            if not _plain_name(entry.name):
                raise LocalFileError(f"{where!r}: the name is not UTF-8 or holds a control "
                                     "character, which the hosts' paths can't carry")
            real = Path(entry.path)
            if entry.is_symlink():
                try:
                    real = real.resolve(strict=True)
                except (OSError, RuntimeError) as exc:
                    raise LocalFileError(f"{where}: cannot resolve the link "
                                         f"({_reason(exc)})") from None
                if not _inside(real, roots):
                    raise LocalFileError(f"{where} links to {real}, outside the project "
                                         f"({_shown_roots(roots)}): fleet reads only files "
                                         "inside it")
            info = _stat(real, where)
            if stat.S_ISDIR(info.st_mode):
                if real in chain:
                    raise LocalFileError(f"{where} links back to a directory that holds it "
                                         "(a cycle)")
                self._tree(real, f"{name}/", shown, roots, (*chain, real), files, empty,
                           count)
            elif stat.S_ISREG(info.st_mode):
                files[name] = self._file(real, info, where)
            else:
                raise LocalFileError(f"{where} is neither a regular file nor a directory")


def _plain_name(name: str) -> bool:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:  # os.scandir's surrogate escapes: not UTF-8 on disk
        return False
    return name.isprintable()


def _stat(path: Path, shown: str) -> os.stat_result:
    try:
        return os.stat(path)
    except OSError as exc:
        raise LocalFileError(f"cannot read {shown}: {_reason(exc)}") from None


def _relative_to(path: Path, root: Path) -> str | None:
    """`path` relative to `root` as a POSIX path, or None when it is not under it."""
    try:
        inside = path.relative_to(root)
    except ValueError:
        return None
    return posixpath.join(*inside.parts) if inside.parts else "."


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return type(exc).__name__
