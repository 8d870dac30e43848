"""Compose field rules: what Compose would reject, fleet rejects, with file:line:column."""

from __future__ import annotations

from pathlib import Path

import pytest
from config_support import load, only_error, playbook, problems

from fleet.config.problems import format_key_path
from fleet.config.units import MAX_DURATION_SECONDS, parse_byte_size, parse_duration


def error(tmp_path: Path, service_body: str) -> tuple[int, int, str, str]:
    """Load `web:` with the given body; the single error as (line, column, key, message)."""
    body = "web:\n" + "".join(f"  {line}\n" for line in service_body.strip("\n").splitlines())
    found = only_error(tmp_path, playbook(tmp_path, body))
    return found.line, found.column, format_key_path(found.path), found.message


def spec(tmp_path: Path, service_body: str) -> dict[str, object]:
    body = "web:\n" + "".join(f"  {line}\n" for line in service_body.strip("\n").splitlines())
    header = "project: shop\nnetworks: {front: {}, back: {}, n: {}}\nvolumes: {cache: {}}\n"
    state = load(tmp_path, playbook(tmp_path, body, header=header))
    return dict(state.containers["web1"][0].options)


# -- ports -------------------------------------------------------------------------------------

@pytest.mark.parametrize(("entry", "expected"), [
    ('"8080:80"', [(80, 8080, "", "tcp")]),
    ("80", [(80, None, "", "tcp")]),
    ('"127.0.0.1:8080:80/udp"', [(80, 8080, "127.0.0.1", "udp")]),
    ('"127.0.0.1::80"', [(80, None, "127.0.0.1", "tcp")]),
    ('"[::1]:8080:80"', [(80, 8080, "::1", "tcp")]),
    ('"8000-8001:80-81"', [(80, 8000, "", "tcp"), (81, 8001, "", "tcp")]),
    ("{target: 80, published: 8080, protocol: udp}", [(80, 8080, "", "udp")]),
    ('{target: 80, published: "8080", host_ip: 0.0.0.0}', [(80, 8080, "0.0.0.0", "tcp")]),
])
def test_ports_short_and_long_syntax(tmp_path: Path, entry: str, expected: list[object]) -> None:
    ports = spec(tmp_path, f"image: nginx\nports: [{entry}]")["ports"]
    assert [(p["target"], p["published"], p["host_ip"], p["protocol"])
            for p in ports] == expected  # type: ignore[attr-defined]


@pytest.mark.parametrize(("entry", "words"), [
    ('"80:70000"', "bad container port '70000'"),
    ('"0:80"', "bad host port '0'"),
    ('"8080:80/icmp"', "protocol must be one of tcp, udp, sctp"),
    ('"a:b"', "bad port 'a:b'"),
    ('"8000-8002:80-81"', "host and container ranges differ in length"),
    ('"8002-8000:80"', "the end is below the start"),
    ("{published: 8080}", "missing required key 'target'"),
    ("{target: 80, publised: 8080}", "unknown key 'publised' (did you mean 'published'?)"),
    ('{target: 80, published: "8000-8001"}', "a published port range needs the short syntax"),
    ("{target: 80, protocol: icmp}", "must be one of tcp, udp or sctp; got 'icmp'"),
    ("true", "a port must be a string like '8080:80' or a mapping"),
])
def test_bad_port_points_at_the_item(tmp_path: Path, entry: str, words: str) -> None:
    body = f"image: nginx\nports:\n  - '9000:90'\n  - {entry}"
    line, column, key, message = error(tmp_path, body)
    assert line == 7 and key.startswith("services.web.ports[1]")
    assert column >= 9
    assert words in message


def test_ports_error_after_a_range_points_at_the_right_item(tmp_path: Path) -> None:
    line, column, key, message = error(
        tmp_path, 'image: nginx\nports: ["8000-8003:80-83", {target: 0}, "9000:90"]')
    assert (line, key) == (5, "services.web.ports[1].target")
    assert column == 41 and "greater than or equal to 1" in message


def test_ports_must_be_a_list(tmp_path: Path) -> None:
    assert error(tmp_path, "image: nginx\nports: '80:80'")[2:] == (
        "services.web.ports", "ports must be a list")


def test_every_bad_item_is_reported(tmp_path: Path) -> None:
    pb = playbook(tmp_path, "web:\n  image: nginx\n  ports: ['0:1', '2:3', 'x']\n")
    found = [format_key_path(p.path) for p in problems(tmp_path, pb)]
    assert found == ["services.web.ports[0]", "services.web.ports[2]"]


# -- volumes -----------------------------------------------------------------------------------

def test_volumes_short_and_long(tmp_path: Path) -> None:
    volumes = spec(tmp_path, "image: nginx\nvolumes:\n  - /srv/data:/data:ro\n  - cache:/cache\n"
                             "  - /tmp\n  - {type: tmpfs, target: /run}\n"
                             "  - {type: bind, source: /etc/x, target: /x, read_only: true}"
                    )["volumes"]
    assert [(v["type"], v["source"], v["target"], v["read_only"])  # type: ignore[attr-defined]
            for v in volumes] == [  # type: ignore[attr-defined]
        ("bind", "/srv/data", "/data", True), ("volume", "shop_cache", "/cache", False),
        ("volume", None, "/tmp", False), ("tmpfs", None, "/run", False),
        ("bind", "/etc/x", "/x", True)]


@pytest.mark.parametrize(("entry", "words"), [
    ("./../../../../../../../data:/data", "this one is not inside it"),
    ("~/data:/data", "bind source '~/data': '~' is the home directory of the machine"),
    ("/a:relative", "volume target 'relative' must be an absolute path"),
    ("/a:/b:xx", "unknown mode xx"),
    ("a:b:c:d", "expected [SOURCE:]TARGET[:MODE]"),
    ("data dir:/data", "bad volume name 'data dir'"),
    ("{type: bind, target: /x}", "a bind mount needs a source"),
    ("{type: nfs, target: /x}", "must be one of bind, volume or tmpfs; got 'nfs'"),
    ("{type: tmpfs, source: /a, target: /x}", "a tmpfs mount takes no source"),
    ("{type: bind, source: /a, target: /x, readonly: true}",
     "unknown key 'readonly' (did you mean 'read_only'?)"),
])
def test_bad_volume_points_at_the_item(tmp_path: Path, entry: str, words: str) -> None:
    line, _, key, message = error(tmp_path, f"image: nginx\nvolumes:\n  - /ok:/ok\n  - {entry}")
    assert line == 7 and key.startswith("services.web.volumes[1]")
    assert words in message


# -- restart, healthcheck, durations, sizes ----------------------------------------------------

@pytest.mark.parametrize(("value", "expected"), [
    ("no", "no"), ('"no"', "no"), ("always", "always"), ("unless-stopped", "unless-stopped"),
    ("on-failure", "on-failure"), ('"on-failure:3"', "on-failure:3"),
])
def test_restart_policies(tmp_path: Path, value: str, expected: str) -> None:
    assert spec(tmp_path, f"image: nginx\nrestart: {value}")["restart"] == expected


@pytest.mark.parametrize("value", ["sometimes", "yes", "on-failure:x", "3"])
def test_bad_restart_policy(tmp_path: Path, value: str) -> None:
    line, column, key, message = error(tmp_path, f"image: nginx\nrestart: {value}")
    assert (line, column, key) == (5, 14, "services.web.restart")
    assert "bad restart policy" in message and "unless-stopped" in message


@pytest.mark.parametrize(("body", "expected"), [
    ("test: curl -f http://x", {"test": ["CMD-SHELL", "curl -f http://x"]}),
    ('test: ["CMD", "true"]\ninterval: 1m30s\ntimeout: 500ms\nretries: 0\nstart_period: 10',
     {"test": ["CMD", "true"], "interval": 90.0, "timeout": 0.5, "retries": 0,
      "start_period": 10.0}),
    ("disable: true", {"disable": True}),
    ('test: ["NONE"]', {"test": ["NONE"]}),
])
def test_healthcheck_forms(tmp_path: Path, body: str, expected: dict[str, object]) -> None:
    indented = "".join(f"  {line}\n" for line in body.splitlines())
    check = spec(tmp_path, f"image: nginx\nhealthcheck:\n{indented}")["healthcheck"]
    assert {k: v for k, v in check.items() if k in expected} == expected  # type: ignore[attr-defined]


@pytest.mark.parametrize(("body", "key", "words"), [
    ("  test: [curl, x]", "services.web.healthcheck.test",
     "healthcheck test must start with NONE, CMD or CMD-SHELL"),
    ("  interval: 10 seconds", "services.web.healthcheck.interval", "bad duration '10 seconds'"),
    ("  interval: 5x", "services.web.healthcheck.interval", "use a number with a unit"),
    ("  retries: -1", "services.web.healthcheck.retries", "greater than or equal to 0"),
    ("  test: [CMD, x]\n  disable: true", "services.web.healthcheck",
     "'disable: true' cannot be combined with 'test'"),
    ("  intervall: 5s", "services.web.healthcheck.intervall", "did you mean 'interval'?"),
])
def test_bad_healthcheck(tmp_path: Path, body: str, key: str, words: str) -> None:
    _, _, found_key, message = error(tmp_path, f"image: nginx\nhealthcheck:\n{body}")
    assert found_key == key and words in message


@pytest.mark.parametrize(("field", "value", "words"), [
    ("mem_limit", "lots", "bad size 'lots'"),
    ("mem_limit", "-1", "a size cannot be negative"),
    ("shm_size", "1x", "bad size"),
    ("stop_grace_period", "soon", "bad duration 'soon'"),
    ("cpus", "0", "cpus must be greater than 0"),
    ("cpus", "many", "cpus must be a number"),
    ("cpus", "true", "cpus must be a number"),
    ("stop_signal", "TERM", "is not allowed here"),
    ("privileged", "maybe", "expected true or false"),
    ("user", "[a]", "expected a string, got a list"),
    ("networks", "front", "networks must be a list of names or a mapping"),
    ("tmpfs", "relative", "tmpfs path 'relative' must be absolute"),
    ("extra_hosts", "[nohost]", "expected HOST:IP"),
    ("command", "'echo \"unclosed'", "bad command"),
])
def test_bad_field_values(tmp_path: Path, field: str, value: str, words: str) -> None:
    line, column, key, message = error(tmp_path, f"image: nginx\n{field}: {value}")
    assert (line, key) == (5, f"services.web.{field}")
    assert column == 7 + len(field)
    assert words in message


@pytest.mark.parametrize(("value", "key", "column", "words"), [
    ("[=x]", "environment[0]", 19, "empty environment variable name"),
    ("[A=1, A=2]", "environment[1]", 24, "environment variable 'A' is given twice"),
    ("{A: [1]}", "environment.A", 22, "must be a string, number or boolean"),
    ("{'A=B': x}", "environment.A=B", 19, "name 'A=B' contains '='"),
    ('["A\\0B=x"]', "environment[0]", 19, "contains a NUL or a line break"),
    ("{A: \"x\\0y\"}", "environment.A", 22, "contains a NUL character"),
])
def test_bad_environment_entries(tmp_path: Path, value: str, key: str, column: int,
                                 words: str) -> None:
    """Each bad entry is reported where it is written (the key for a bad name)."""
    line, found_column, found_key, message = error(tmp_path, f"image: nginx\nenvironment: {value}")
    assert (line, found_column, found_key) == (5, column, f"services.web.{key}")
    assert words in message


def test_sizes_durations_and_maps_normalize(tmp_path: Path) -> None:
    options = spec(tmp_path, "image: nginx\nmem_limit: 512m\nshm_size: 1g\nmem_reservation: 64m\n"
                             "stop_grace_period: 1m\ncpus: '1.5'\nenvironment: [A=1, B]\n"
                             "labels: {b: 2, a: true}\nsysctls: [net.core.somaxconn=1024]\n"
                             "command: echo 'hello world'\nulimits: {nofile: 1024}\n"
                             "networks: {front: null, back: {}}\nextra_hosts: {db: 10.0.0.9}")
    assert options["mem_limit"] == 512 * 1024**2 and options["shm_size"] == 1024**3
    assert options["mem_reservation"] == 64 * 1024**2 and options["stop_grace_period"] == 60.0
    assert options["cpus"] == 1.5
    assert options["environment"] == {"A": "1"}  # a bare B takes the (empty) controller env
    assert options["labels"] == {"a": "true", "b": "2"}
    assert options["sysctls"] == {"net.core.somaxconn": "1024"}
    assert options["command"] == ["echo", "hello world"]
    assert options["ulimits"] == {"nofile": {"soft": 1024, "hard": 1024}}
    # Named on hosts as Compose does; null and {} are the same settings.
    assert list(options["networks"]) == ["shop_back", "shop_front"]  # type: ignore[call-overload]
    assert options["networks"]["shop_back"] == options["networks"]["shop_front"]  # type: ignore[index]
    assert options["extra_hosts"] == ["db:10.0.0.9"]


# -- images, labels, cross-field rules ---------------------------------------------------------

@pytest.mark.parametrize("image", [
    "nginx", "nginx:1.25", "registry.example.com:5000/shop/web:1.4.2", "localhost/app",
    "ghcr.io/org/app@sha256:" + "a" * 64, "app:v1@sha256:" + "0" * 64,
])
def test_good_image_references(tmp_path: Path, image: str) -> None:
    assert spec(tmp_path, f"image: '{image}'")["image"] == image


@pytest.mark.parametrize(("image", "words"), [
    ("Nginx", "repository names must be lowercase"),
    ("nginx:", "bad image reference"),
    ("nginx:tag with space", "bad image reference"),
    ("nginx:tägé", "bad image reference"),
    ("nginx@sha256:abc", "bad image reference"),
    ("nginx@sha256:" + "a" * 63, "a sha256 digest is 64 lowercase hex digits"),
    ("nginx@sha256:" + "A" * 64, "a sha256 digest is 64 lowercase hex digits"),
    ("-nginx", "bad image reference"),
])
def test_bad_image_references(tmp_path: Path, image: str, words: str) -> None:
    line, column, key, message = error(tmp_path, f"image: '{image}'")
    assert (line, column, key) == (4, 12, "services.web.image")
    assert words in message


def test_image_is_required(tmp_path: Path) -> None:
    assert error(tmp_path, "restart: always")[2:] == (
        "services.web.image", "missing required key 'image'")


def test_unknown_key_with_did_you_mean(tmp_path: Path) -> None:
    assert error(tmp_path, "image: nginx\nenviroment: {A: 1}") == (
        5, 5, "services.web.enviroment", "unknown key 'enviroment' (did you mean 'environment'?)")


def test_reserved_fleet_labels(tmp_path: Path) -> None:
    line, _column, key, message = error(tmp_path, "image: nginx\nlabels: {fleet.project: x}")
    assert (line, key) == (5, "services.web.labels")
    assert "the prefix 'fleet.' is reserved" in message


def test_network_mode_with_networks(tmp_path: Path) -> None:
    _, _, key, message = error(tmp_path, "image: nginx\nnetwork_mode: host\nnetworks: [front]")
    assert key == "services.web" and "'network_mode' and 'networks' cannot both be set" in message


def test_host_network_cannot_publish_ports(tmp_path: Path) -> None:
    _, _, _, message = error(tmp_path, "image: nginx\nnetwork_mode: host\nports: ['80:80']")
    assert "cannot be published with network_mode: host" in message


def test_service_must_be_a_mapping(tmp_path: Path) -> None:
    found = only_error(tmp_path, playbook(tmp_path, "web: nginx\n"))
    assert (found.line, format_key_path(found.path)) == (3, "services.web")
    assert "must be a mapping with at least 'image'" in found.message


def test_bad_service_name(tmp_path: Path) -> None:
    found = only_error(tmp_path, playbook(tmp_path, "Web_App:\n  image: nginx\n"))
    assert (found.line, found.column) == (3, 3) and "bad service name 'Web_App'" in found.message


def test_negative_replicas(tmp_path: Path) -> None:
    line, _, key, message = error(tmp_path, "image: nginx\nreplicas: -1")
    assert (line, key) == (5, "services.web.replicas") and "greater than or equal to 0" in message


def test_networks_must_be_declared_and_external_ones_keep_their_name(tmp_path: Path) -> None:
    body = "web:\n  image: nginx\n  networks: [back, edge]\n"
    header = "project: shop\nnetworks: {back: {}, edge: {external: true}}\n"
    state = load(tmp_path, playbook(tmp_path, body, header=header))
    assert list(state.containers["web1"][0].options["networks"]) == ["shop_back", "edge"]
    assert {name: (n.key, n.external) for name, n in state.networks.items()} == {
        "shop_back": ("back", False), "edge": ("edge", True),
        "shop_default": ("default", False)}
    undeclared = problems(tmp_path, playbook(tmp_path, "web:\n  image: nginx\n  networks: [x]\n"))
    assert any("network 'x' is not declared" in p.message and p.path[-2:] == ("networks", 0)
               for p in undeclared)


def test_a_key_or_value_from_the_file_cannot_forge_output_lines(tmp_path: Path) -> None:
    pb = playbook(tmp_path, 'web:\n  image: nginx\n  "x\\nfake.yml:1:1: ok\\u001b[2J": 1\n')
    found = only_error(tmp_path, pb)
    shown = str(found)
    assert "\n" not in shown and "\x1b" not in shown
    assert "services.web['x\\nfake.yml:1:1: ok\\x1b[2J']" in shown


@pytest.mark.parametrize(("value", "words"), [
    (float("inf"), "finite"), (float("nan"), "finite"), ("inf", "bad duration"),
    ("nan", "bad duration"), (-1, "negative"), ("-1s", "bad duration"), (True, "expected"),
    (10**30, "too long"), ("2562048h", "too long"), ("1" + "0" * 400 + "s", "too long"),
])
def test_durations_outside_go_and_docker(value: object, words: str) -> None:
    with pytest.raises(ValueError, match=words):
        parse_duration(value)


def test_durations_at_the_edges() -> None:
    assert parse_duration("0") == 0.0 and parse_duration("2562047h") == 2562047 * 3600.0
    assert parse_duration(MAX_DURATION_SECONDS) == MAX_DURATION_SECONDS


@pytest.mark.parametrize(("value", "words"), [
    ("0.1b", "rounds to 0 bytes"), ("0.5", "rounds to 0 bytes"), (2**63, "too large"),
    ("8192p", "too large"), (10**400, "too large"), (-1, "negative"), (False, "expected"),
    (float("inf"), "bad size"), ("nan", "bad size"),
])
def test_sizes_outside_docker_int64(value: object, words: str) -> None:
    with pytest.raises(ValueError, match=words):
        parse_byte_size(value)


def test_sizes_as_go_units_reads_them() -> None:
    assert parse_byte_size("1.5GiB") == 3 * 1024**3 // 2 and parse_byte_size("2p") == 2 * 1024**5
    assert parse_byte_size("0") == 0 and parse_byte_size(2**63 - 1) == 2**63 - 1
    assert parse_byte_size("99999999999999999b") == 99999999999999999  # exact, not a float
