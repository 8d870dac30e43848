"""docker-archive files on the controller (fleet.images): their index read within bounds,
layers checked against their diff IDs, and the upload of only the missing layers."""

from __future__ import annotations

import asyncio
import gzip
import io
import json
import tarfile
from pathlib import Path

import pytest

from fleet.core.layers import chain_ids
from fleet.images.archive import ArchiveError, read_archive, verify_layers
from fleet.images.upload import upload_size, upload_stream
from fleet.lab.images import ImageSpec, file_layer, sha256_digest, write_docker_archive

SPEC = ImageSpec("ctl/app", "v1", "web")
BASE = file_layer({"etc/os-release": b"base\n"})
APP = file_layer({"srv/app": b"v1\n"})
V2 = file_layer({"srv/app": b"v2\n"})


def archive(tmp_path: Path, *layers: bytes, tag: str = "ctl/app:v1") -> Path:
    path = tmp_path / f"{tag.replace('/', '_')}.tar"
    write_docker_archive(path, SPEC, tag, list(layers))
    return path


def _read(tar: tarfile.TarFile, member: tarfile.TarInfo | str) -> bytes:
    handle = tar.extractfile(member)
    assert handle is not None
    return handle.read()


def rewrite(path: Path, change: dict[str, bytes | None]) -> None:
    """The archive with some members replaced (bytes) or dropped (None)."""
    with tarfile.open(path) as tar:
        members = [(m, _read(tar, m)) for m in tar.getmembers()]
    with tarfile.open(path, "w") as tar:
        for member, data in members:
            data = change.get(member.name, data)  # type: ignore[assignment]
            if member.name in change and change[member.name] is None:
                continue
            member.size = len(data)
            tar.addfile(member, io.BytesIO(data))


def test_an_archive_is_read_with_its_image_id_and_layers(tmp_path: Path) -> None:
    image = read_archive(archive(tmp_path, BASE, APP))
    assert image.diff_ids == [sha256_digest(BASE), sha256_digest(APP)]
    assert image.image_id == sha256_digest(image.config)
    assert image.repo_tags == ("ctl/app:v1",)
    verify_layers(image)


def test_a_layer_whose_bytes_differ_from_its_diff_id_is_refused(tmp_path: Path) -> None:
    path = archive(tmp_path, BASE, APP)
    rewrite(path, {f"{sha256_digest(APP)[7:]}/layer.tar": V2})
    image = read_archive(path)  # the index is fine: the bytes are checked before sending
    with pytest.raises(ArchiveError, match=r"layer 2 .* is corrupt: its content hashes to"):
        verify_layers(image)
    with pytest.raises(ArchiveError, match="layer 2"):
        verify_layers(image, 1)


def test_a_gzip_compressed_layer_is_checked_uncompressed(tmp_path: Path) -> None:
    path = archive(tmp_path, BASE, APP)
    rewrite(path, {f"{sha256_digest(APP)[7:]}/layer.tar": gzip.compress(APP)})
    verify_layers(read_archive(path))


@pytest.mark.parametrize(("change", "message"), [
    ({"manifest.json": None}, "no manifest.json"),
    ({"manifest.json": b"{not json"}, "manifest.json is not JSON"),
    ({"manifest.json": b"{}"}, "not a list of images"),
    ({"manifest.json": b'[{"Config": "nope.json", "Layers": []}]'}, "config 'nope.json'"),
])
def test_a_damaged_index_is_an_error_naming_the_file(tmp_path: Path,
                                                     change: dict[str, bytes | None],
                                                     message: str) -> None:
    path = archive(tmp_path, BASE, APP)
    rewrite(path, change)
    with pytest.raises(ArchiveError, match=message) as caught:
        read_archive(path)
    assert str(path) in str(caught.value)


def test_a_missing_layer_file_or_a_mismatched_list_is_refused(tmp_path: Path) -> None:
    path = archive(tmp_path, BASE, APP)
    rewrite(path, {f"{sha256_digest(APP)[7:]}/layer.tar": None})
    with pytest.raises(ArchiveError, match="is not in the archive"):
        read_archive(path)
    path = archive(tmp_path, BASE, APP, tag="ctl/app:v9")
    with tarfile.open(path) as tar:
        index = json.loads(_read(tar, "manifest.json"))
    index[0]["Layers"] = index[0]["Layers"][:1]
    rewrite(path, {"manifest.json": json.dumps(index).encode()})
    with pytest.raises(ArchiveError, match="do not match"):
        read_archive(path)


def test_not_a_tar_and_truncated_archives(tmp_path: Path) -> None:
    junk = tmp_path / "junk.tar"
    junk.write_bytes(b"\x00garbage" * 100)
    with pytest.raises(ArchiveError):
        read_archive(junk)
    path = archive(tmp_path, BASE, APP)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ArchiveError):
        read_archive(path)


def test_an_archive_of_several_images_is_chosen_from_by_tag(tmp_path: Path) -> None:
    one, two = archive(tmp_path, BASE, APP), archive(tmp_path, BASE, V2, tag="ctl/app:v2")
    with tarfile.open(one) as a, tarfile.open(two) as b:
        first = json.loads(_read(a, "manifest.json"))
        second = json.loads(_read(b, "manifest.json"))
        extra = {m.name: _read(b, m) for m in b.getmembers() if m.name != "manifest.json"}
    both = tmp_path / "both.tar"
    with tarfile.open(one) as a, tarfile.open(both, "w") as out:
        for member in a.getmembers():
            if member.name != "manifest.json":
                out.addfile(member, a.extractfile(member))
        for name, data in extra.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            out.addfile(info, io.BytesIO(data))
        index = json.dumps(first + second).encode()
        info = tarfile.TarInfo("manifest.json")
        info.size = len(index)
        out.addfile(info, io.BytesIO(index))
    assert read_archive(both, "ctl/app:v2").diff_ids[-1] == sha256_digest(V2)
    with pytest.raises(ArchiveError, match="holds 2 images; name one by its tag"):
        read_archive(both)


def upload(path: Path, first: int) -> tuple[bytes, int]:
    image = read_archive(path)
    counted: list[int] = []

    async def collect() -> bytes:
        return b"".join([chunk async for chunk in upload_stream(
            image, first, tags=("ctl/app:v2",), sent=counted.append)])

    data = asyncio.run(collect())
    assert sum(counted) == len(data) == upload_size(image, first, ("ctl/app:v2",))
    return data, len(image.layers)


def test_the_upload_carries_only_the_layers_from_the_first_missing(tmp_path: Path) -> None:
    data, _ = upload(archive(tmp_path, BASE, APP, V2), first=2)
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        names = tar.getnames()
        index = json.loads(_read(tar, "manifest.json"))
        layer = tar.extractfile(f"{sha256_digest(V2)[7:]}/layer.tar")
        assert layer is not None and layer.read() == V2
    assert names[0] == "manifest.json" and len(names) == 3  # index, config, the one layer
    assert index[0]["RepoTags"] == ["ctl/app:v2"] and len(index[0]["Layers"]) == 3
    assert len(chain_ids([sha256_digest(x) for x in (BASE, APP, V2)])) == 3
    nothing, _ = upload(archive(tmp_path, BASE, APP, V2), first=3)
    assert len(nothing) <= 5 * 1024  # the index and the config alone


def test_an_earlier_revisions_image_comes_from_the_cache_by_its_id(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A rollback to a delivered image the host no longer holds: the controller sends it
    again from fleet's cache (or its daemon), found by the image ID the journal recorded."""
    from fleet.engine import controller_images
    from fleet.engine.controller_images import ControllerImageError, ControllerImages, cache_dir

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    source = archive(tmp_path, file_layer({"a": b"1"}))
    image_id = read_archive(source).image_id
    cache_dir().mkdir(parents=True)
    (cache_dir() / f"{image_id.removeprefix('sha256:')}.tar").write_bytes(source.read_bytes())
    images = ControllerImages({})  # the playbook names other images now
    assert asyncio.run(images.archive(image_id)).image_id == image_id

    class NoSuchImage:
        class images:  # the SDK's shape: client.images.get
            @staticmethod
            def get(name: str) -> None:
                import docker
                raise docker.errors.ImageNotFound(name)

    monkeypatch.setattr(controller_images, "_daemon", NoSuchImage)
    gone = "sha256:" + "0" * 64
    with pytest.raises(ControllerImageError, match=r"neither fleet's cache .* nor the "
                                                   r"controller's Docker daemon holds it"):
        asyncio.run(ControllerImages({}).archive(gone))
    assert not list(cache_dir().glob("*.partial"))
