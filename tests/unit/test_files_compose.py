"""Files next to the compose file in the desired state (fleet.core.service_files): relative
bind sources become delivered units (a file, a tree) or data directories; configs and
secrets are mounted read-only with Compose's targets and fleet's modes; a secret's value is
never in a spec, and its unit's name is a keyed digest."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from config_support import load, only_error, write

from fleet.config.secrets import SecretMissing, digest_secrets
from fleet.core.desired import DesiredContainer, DesiredState
from fleet.core.files import delivered_names, revealed

SECRET = "hunter2-files-test"


def compose(directory: Path, text: str) -> Path:
    return write(directory, "compose.yaml", "name: shop\n" + text)


def container(state: DesiredState, service: str, host: str = "web1") -> DesiredContainer:
    return next(c for c in state.containers[host] if c.service == service)


def mounts(state: DesiredState, service: str, host: str = "web1") -> list[tuple[str, str, bool]]:
    return [(v["source"], v["target"], v["read_only"])
            for v in container(state, service, host).options["volumes"]]


def unit_of(state: DesiredState, source: str, host: str = "web1") -> object:
    return state.files[host][source.removeprefix("fleet-file:")]


BINDS = """\
services:
  web:
    image: nginx
    hosts: web
    volumes:
      - ./nginx.conf:/etc/nginx/nginx.conf:ro
      - ./html:/usr/share/nginx/html
      - ./data:/var/lib/data
      - {type: bind, source: "conf/{{ host.name }}.conf", target: /etc/app.conf}
"""


def files_for_binds(tmp_path: Path) -> Path:
    write(tmp_path, "nginx.conf", "listen 80;\n")
    write(tmp_path, "html/index.html", "<h1>hi</h1>")
    write(tmp_path, "conf/web1.conf", "one")
    write(tmp_path, "conf/web2.conf", "two")
    return compose(tmp_path, BINDS)


def test_relative_binds_are_delivered_files_trees_and_data_directories(tmp_path: Path) -> None:
    state = load(tmp_path, files_for_binds(tmp_path))
    (conf, _, ro), (html, _, rw), (data, _, _), (per_host, _, _) = mounts(state, "web")
    assert ro and not rw
    assert data == "fleet-data:data"
    assert {u.summary() for u in state.files["web1"].values()} == {
        "./nginx.conf (11 B)", "./html (1 file, 11 B)", "conf/web1.conf (3 B)"}
    other = mounts(state, "web", "web2")[3][0]  # templated per host: another file
    assert other != per_host and unit_of(state, other, "web2").what == "conf/web2.conf"  # type: ignore[attr-defined]
    assert "db1" not in state.files  # the service is not placed there
    assert conf.startswith("fleet-file:") and html.startswith("fleet-file:")


def test_a_changed_file_is_a_changed_spec(tmp_path: Path) -> None:
    path = files_for_binds(tmp_path)
    first = load(tmp_path, path)
    before = container(first, "web")
    (tmp_path / "nginx.conf").write_text("listen 81;\n")
    second = load(tmp_path, path)
    after = container(second, "web")
    assert after.spec_hash != before.spec_hash
    # The playbook's text is the same, the release is not (what `fleet rollback` returns to).
    assert second.services["web"].definition != first.services["web"].definition
    assert after.options["volumes"][0]["source"] != before.options["volumes"][0]["source"]
    (tmp_path / "nginx.conf").chmod(0o755)  # executable: delivered 0555, another file
    assert container(load(tmp_path, path), "web").spec_hash != after.spec_hash
    (tmp_path / "html" / "new.css").write_text("")
    assert container(load(tmp_path, path), "web").options["volumes"][1] != \
        after.options["volumes"][1]


GRANTS = """\
configs:
  site: {file: ./site.conf}
  motd: {content: "hello ${WHO}\\n"}
  flags: {environment: FLAGS}
  unused: {file: ./nowhere.conf}
secrets:
  db: {file: ./db.txt}
  token: {environment: TOKEN}
services:
  app:
    image: busybox
    hosts: web1
    user: "1000:1001"
    configs:
      - site
      - {source: motd, target: /etc/motd, mode: 0440}
      - {source: flags, target: etc/flags}
    secrets:
      - db
      - {source: token, target: api, uid: "0", mode: "0440"}
  worker:
    image: busybox
    hosts: web2
    user: worker
    secrets: [db]
"""


def grants(tmp_path: Path, **environ: str) -> DesiredState:
    write(tmp_path, "site.conf", "port=80\n")
    write(tmp_path, "db.txt", SECRET)
    return load(tmp_path, compose(tmp_path, GRANTS),
                environ={"WHO": "world", "FLAGS": "a,b", "TOKEN": "tok-" + SECRET, **environ})


def test_configs_and_secrets_are_mounted_read_only_where_compose_mounts_them(
        tmp_path: Path) -> None:
    state = grants(tmp_path)
    assert [(target, ro) for _, target, ro in mounts(state, "app")] == [
        ("/site", True), ("/etc/motd", True), ("/etc/flags", True), ("/run/secrets/db", True),
        ("/run/secrets/api", True)]
    units = [unit_of(state, source) for source, _, _ in mounts(state, "app")]
    contents = [u.files[""] for u in units]  # type: ignore[attr-defined]
    assert [(c.data, oct(c.mode), c.uid, c.gid) for c in contents[:3]] == [
        (b"port=80\n", "0o444", None, None), (b"hello world\n", "0o440", None, None),
        (b"a,b", "0o444", None, None)]
    # A secret: 0400 owned by the service's numeric user, or as the grant says.
    assert [(c.data, oct(c.mode), c.uid, c.gid, c.secret) for c in contents[3:]] == [
        (b"", "0o400", 1000, 1001, "compose_secret.db"),
        (b"", "0o440", 0, 1001, "compose_secret.token")]
    worker = unit_of(state, mounts(state, "worker", "web2")[0][0], "web2")
    assert (worker.files[""].uid, worker.files[""].gid) == (0, 0)  # type: ignore[attr-defined]


def test_a_secrets_value_is_in_no_spec_and_its_name_is_a_keyed_digest(tmp_path: Path) -> None:
    state = grants(tmp_path)
    app = container(state, "app")
    shown = json.dumps([app.options, app.redacted_options(),
                        digest_secrets(dict(app.options), state.secrets),
                        [u.summary() for u in state.files["web1"].values()]])
    assert SECRET not in shown
    db = mounts(state, "app")[3][0].removeprefix("fleet-file:")
    plain = hashlib.sha256(SECRET.encode()).hexdigest()
    assert plain not in db and db != hashlib.sha256(
        f"file\0\0{plain}\0400\x001000\x001001\0".encode()).hexdigest()
    keyed = grants(tmp_path / "keyed", FLEET_SECRET_KEY="k" * 32)
    assert mounts(keyed, "app")[3][0] != mounts(state, "app")[3][0]
    assert container(keyed, "app").spec_hash != app.spec_hash


def test_only_the_hosts_the_playbook_gives_a_secret_can_have_it(tmp_path: Path) -> None:
    state = grants(tmp_path)
    assert state.declared_secrets["web1"] == {"compose_secret.db", "compose_secret.token"}
    assert state.declared_secrets["web2"] == {"compose_secret.db"}
    assert state.declared_secrets["db1"] == frozenset()
    token = unit_of(state, mounts(state, "app")[4][0])
    assert revealed(token, state.secrets_for("web1").data).files[""].data == (  # type: ignore[arg-type]
        b"tok-" + SECRET.encode())
    with pytest.raises(SecretMissing, match="not one the playbook gives this host"):
        revealed(token, state.secrets_for("web2").data)  # type: ignore[arg-type]


def test_a_secret_file_keeps_its_exact_bytes(tmp_path: Path) -> None:
    raw = b"\x00\xff\xfe binary\r\n"
    (tmp_path / "key.bin").write_bytes(raw)
    state = load(tmp_path, compose(tmp_path, """\
        secrets:
          key: {file: key.bin}
        services:
          app: {image: busybox, hosts: web1, secrets: [key]}
        """.replace("        ", "")))
    unit = unit_of(state, mounts(state, "app")[0][0])
    assert revealed(unit, state.secrets_for("web1").data).files[""].data == raw  # type: ignore[arg-type]


def test_an_included_files_relative_paths_are_its_own(tmp_path: Path) -> None:
    write(tmp_path, "sub/redis.conf", "maxmemory 1mb")
    write(tmp_path, "sub/compose.yaml", "services:\n  cache:\n    image: redis\n"
                                         "    hosts: web1\n    volumes:\n"
                                         "      - ./redis.conf:/etc/redis.conf\n"
                                         "      - ../data/cache:/data\n")
    state = load(tmp_path, compose(tmp_path, "include: [sub/compose.yaml]\nservices: {}\n"))
    (conf, _, _), (data, _, _) = mounts(state, "cache")
    assert unit_of(state, conf).files[""].data == b"maxmemory 1mb"  # type: ignore[attr-defined]
    assert data == "fleet-data:data/cache"


def test_a_missing_config_file_is_an_error_only_when_granted(tmp_path: Path) -> None:
    state = grants(tmp_path)  # `unused` names a file that does not exist
    assert not [p for p in state.problems if p.severity == "error"]
    (tmp_path / "site.conf").unlink()
    path = compose(tmp_path, GRANTS)
    (tmp_path / "site.conf").unlink(missing_ok=True)
    found = only_error(tmp_path, path, environ={"FLAGS": "", "TOKEN": "t", "WHO": ""})
    assert found.message.startswith("config 'site': file ./site.conf not found")
    assert (found.line, ".".join(map(str, found.path))) == (16, "services.app.configs.0")


def test_delivered_names_are_what_a_spec_mounts(tmp_path: Path) -> None:
    state = load(tmp_path, files_for_binds(tmp_path))
    assert delivered_names(container(state, "web").options) == set(state.files["web1"])
