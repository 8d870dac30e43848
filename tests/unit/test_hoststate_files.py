"""Delivered files over SFTP against a real asyncssh server on loopback: written whole under
their digest names, with their modes, once; partial writes never listed."""

from __future__ import annotations

import asyncio
import os
import stat
from pathlib import Path

import asyncssh
import pytest
from test_hoststate_sftp import host, run

from fleet.core.files import Delivered, FileContent, host_source, tree_problem
from fleet.errors import HostStateError
from fleet.hoststate.files import FileStore
from fleet.transport import HostConnection

CONFIG = Delivered({"": FileContent(b"listen 80;\n")}, "./nginx.conf")
SECRET = Delivered({"": FileContent(b"hunter2", mode=0o400)}, "secret 'db'")
TREE = Delivered({"index.html": FileContent(b"<h1>hi</h1>"),
                  "css/site.css": FileContent(b"body{}"),
                  "css/print/a.css": FileContent(b"")}, "./html")


def test_files_and_trees_are_delivered_once_under_their_names(tmp_path: Path) -> None:
    async def body(connection: HostConnection) -> None:
        store = FileStore(connection, "shop", "~/.fleet")
        before = await store.look()
        assert before.names == frozenset()
        assert await store.deliver([CONFIG, SECRET, TREE], before.names) == (
            CONFIG.size + SECRET.size + TREE.size)
        after = await store.look()
        assert after.names == {CONFIG.name, SECRET.name, TREE.name}
        assert await store.deliver([CONFIG, SECRET, TREE], after.names) == 0

    run(tmp_path, body)
    files = tmp_path / "home" / ".fleet" / "shop" / "files"
    assert (files / CONFIG.name).read_bytes() == b"listen 80;\n"
    assert stat.S_IMODE((files / CONFIG.name).stat().st_mode) == 0o444
    assert stat.S_IMODE((files / SECRET.name).stat().st_mode) == 0o400
    assert (files / TREE.name / "css" / "print" / "a.css").read_bytes() == b""
    assert (files / TREE.name / "index.html").read_bytes() == b"<h1>hi</h1>"
    assert not [p for p in files.iterdir() if p.name.startswith(".")]


def test_a_partial_write_is_not_listed(tmp_path: Path) -> None:
    files = tmp_path / "home" / ".fleet" / "shop" / "files"
    files.mkdir(parents=True)
    (files / f".partial-{CONFIG.name[:16]}-dead").write_bytes(b"listen")

    async def body(connection: HostConnection) -> None:
        store = FileStore(connection, "shop", "~/.fleet")
        assert (await store.look()).names == frozenset()

    run(tmp_path, body)


def test_names_change_with_content_mode_and_shape() -> None:
    assert CONFIG.name != Delivered({"": FileContent(b"listen 81;\n")}, "x").name
    assert CONFIG.name != Delivered({"": FileContent(b"listen 80;\n", mode=0o400)}, "x").name
    assert CONFIG.name == Delivered({"": FileContent(b"listen 80;\n")}, "elsewhere").name
    tree = Delivered({"nginx.conf": FileContent(b"listen 80;\n")}, "./conf")
    assert tree.name != CONFIG.name and tree.is_tree and not CONFIG.is_tree


def test_host_source_places_a_reference_under_the_files_root() -> None:
    root = "/root/.fleet/shop/files"
    assert host_source(CONFIG.source, root) == f"{root}/{CONFIG.name}"
    assert host_source("/srv/data", root) == "/srv/data"
    for bad in ("fleet-file:", "fleet-file:../x", "fleet-file:a/b", "fleet-file:.hidden"):
        with pytest.raises(ValueError):
            host_source(bad, root)


@pytest.mark.parametrize("path", ["/etc/x", "a/../b", "a//b", "./a", ""])
def test_tree_paths_must_be_plain(path: str) -> None:
    assert tree_problem(path)
    assert tree_problem("a/b.conf") is None


class LyingRealpath(asyncssh.SFTPServer):
    """A host whose SFTP server names the files directory with a path Binds would misread."""

    def realpath(self, path: bytes) -> bytes:
        return b"/srv/x:/etc:rw"


def test_a_files_directory_the_host_names_oddly_is_refused(tmp_path: Path) -> None:
    async def body() -> None:
        async with host(tmp_path / "home", server_class=LyingRealpath) as connection:
            with pytest.raises(HostStateError, match="not a plain absolute path"):
                await FileStore(connection, "shop", "~/.fleet").look()

    asyncio.run(body())


def test_a_tree_keeps_its_empty_directories_and_a_secret_its_owner(tmp_path: Path) -> None:
    tree = Delivered({"a/b.txt": FileContent(b"b")}, "./t", ("a/empty", "c/d"))
    secret = Delivered({"": FileContent(b"s", mode=0o400, uid=os.getuid(), gid=os.getgid(),
                                        secret="compose_secret.s", fingerprint="f" * 16)},
                       "secret 's'")

    async def body(connection: HostConnection) -> None:
        store = FileStore(connection, "shop", "~/.fleet")
        assert await store.deliver([tree, secret, tree], frozenset()) == 2

    run(tmp_path, body)
    files = tmp_path / "home" / ".fleet" / "shop" / "files"
    assert (files / tree.name / "a" / "empty").is_dir()
    assert (files / tree.name / "c" / "d").is_dir()
    assert (files / secret.name).read_bytes() == b"s"
    assert stat.S_IMODE((files / secret.name).stat().st_mode) == 0o400
