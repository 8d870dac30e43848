"""Reading the files next to the compose file on the controller (fleet.config.local_files):
a file, a directory, nothing (a data directory); symlinks followed only inside the project;
special files refused before they are opened; every read bounded."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from fleet.config import local_files
from fleet.config.local_files import LocalFileError, LocalFiles


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "app"
    (root / "site" / "css").mkdir(parents=True)
    (root / "site" / "empty" / "deeper").mkdir(parents=True)
    (root / "nginx.conf").write_bytes(b"listen 80;\n")
    (root / "site" / "index.html").write_bytes(b"<h1>hi</h1>")
    (root / "site" / "css" / "a.css").write_bytes(b"")
    (root / "site" / "run.sh").write_bytes(b"#!/bin/sh\n")
    (root / "site" / "run.sh").chmod(0o700)
    (tmp_path / "outside.txt").write_text("not the project's")
    return root


def test_a_file_is_read_with_its_executable_bit_only(project: Path) -> None:
    (project / "nginx.conf").chmod(0o600)  # the umask of a checkout does not count
    found = LocalFiles(project).read(project, "./nginx.conf")
    assert found.is_file and found.files is not None
    assert found.files[""].data == b"listen 80;\n" and found.files[""].mode == 0o444
    assert found.shown == "./nginx.conf"


def test_a_directory_is_read_as_a_tree_with_its_empty_directories(project: Path) -> None:
    found = LocalFiles(project).read(project, "site")
    assert found.exists and not found.is_file and found.files is not None
    assert {path: (f.data, oct(f.mode)) for path, f in found.files.items()} == {
        "index.html": (b"<h1>hi</h1>", "0o444"), "css/a.css": (b"", "0o444"),
        "run.sh": (b"#!/bin/sh\n", "0o555")}
    assert found.directories == ("empty/deeper",)


def test_a_path_that_does_not_exist_is_a_data_directory_of_the_project(project: Path) -> None:
    files = LocalFiles(project)
    found = files.read(project, "./data/../data/mysql")
    assert not found.exists and found.relative == "data/mysql"
    sub = project / "sub"
    sub.mkdir()
    assert files.read(sub, "../data/mysql").relative == "data/mysql"  # the same directory
    with pytest.raises(LocalFileError, match="this one is not inside it"):
        files.read(project, "../elsewhere")
    with pytest.raises(LocalFileError, match="can't name a directory on the hosts"):
        files.read(project, "./a,b")


def test_symlinks_are_followed_inside_the_project_only(project: Path) -> None:
    (project / "current.conf").symlink_to("nginx.conf")
    (project / "site" / "shared.conf").symlink_to("../nginx.conf")
    (project / "leak").symlink_to(project.parent / "outside.txt")
    files = LocalFiles(project)
    assert files.read(project, "current.conf").files[""].data == b"listen 80;\n"  # type: ignore[index]
    tree = files.read(project, "site").files
    assert tree is not None and tree["shared.conf"].data == b"listen 80;\n"
    with pytest.raises(LocalFileError, match="outside the project"):
        files.read(project, "leak")
    (project / "site" / "leak").symlink_to(project.parent / "outside.txt")
    with pytest.raises(LocalFileError, match=r"site/leak links to .*outside the project"):
        LocalFiles(project).read(project, "site")


def test_a_symlink_cycle_and_a_dangling_link_are_refused(project: Path) -> None:
    (project / "site" / "loop").symlink_to("..")
    with pytest.raises(LocalFileError, match="links back to a directory that holds it"):
        LocalFiles(project).read(project, "site")
    (project / "gone").symlink_to("nowhere")
    with pytest.raises(LocalFileError, match="cannot resolve it"):
        LocalFiles(project).read(project, "gone")


def test_an_included_or_extended_files_directory_counts_as_the_project(tmp_path: Path,
                                                                         project: Path) -> None:
    lib = tmp_path / "lib"
    lib.mkdir()
    (lib / "base.conf").write_text("base")
    files = LocalFiles(project)
    with pytest.raises(LocalFileError, match="outside the project"):
        files.read(project, "../lib/base.conf")
    # Written in lib/base.yml (an extends base), rebased onto the extending file.
    found = files.read(project, "../lib/base.conf", lib / "base.yml")
    assert found.files is not None and found.files[""].data == b"base"
    assert LocalFiles(project).read(lib, "base.conf").exists  # an included file's own


def test_special_files_are_refused_before_they_are_opened(project: Path) -> None:
    os.mkfifo(project / "pipe")  # opening it would block until a writer came
    with pytest.raises(LocalFileError, match="neither a regular file nor a directory"):
        LocalFiles(project).read(project, "pipe")
    os.mkfifo(project / "site" / "pipe")
    with pytest.raises(LocalFileError, match="site/pipe is neither"):
        LocalFiles(project).read(project, "site")


def test_names_that_are_not_utf8_are_refused(project: Path) -> None:
    os.mkdir(os.fsencode(project / "site") + b"/bad-\xff")
    with pytest.raises(LocalFileError, match="not UTF-8"):
        LocalFiles(project).read(project, "site")


def test_a_file_over_the_limit_is_refused(project: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(local_files, "MAX_FILE_BYTES", 8)
    with pytest.raises(LocalFileError, match="11 bytes, more than"):
        LocalFiles(project).read(project, "nginx.conf")


def test_a_tree_over_its_entries_is_refused(project: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(local_files, "MAX_TREE_ENTRIES", 3)
    with pytest.raises(LocalFileError, match="more than 3 files and directories"):
        LocalFiles(project).read(project, "site")


def test_what_a_project_delivers_is_bounded_together(project: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(local_files, "MAX_PROJECT_BYTES", 15)
    files = LocalFiles(project)
    files.read(project, "nginx.conf")
    files.read(project, "./nginx.conf")  # the same file counts once
    assert files.total == 11
    with pytest.raises(LocalFileError, match="come to more than"):
        files.read(project, "site")


def test_an_unreadable_file_says_why_and_never_what_it_holds(
        project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def refused(*args: object, **kwargs: object) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(local_files, "open", refused, raising=False)  # as if not root
    with pytest.raises(LocalFileError) as caught:
        LocalFiles(project).read(project, "./nginx.conf")
    assert str(caught.value) == "cannot read ./nginx.conf: Permission denied"


def test_absolute_and_home_paths_are_not_relative(project: Path) -> None:
    for path in ("/etc/passwd", "~/x"):
        with pytest.raises(LocalFileError, match="is not a relative path"):
            LocalFiles(project).read(project, path)
