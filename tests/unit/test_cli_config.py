"""`fleet validate`, `fleet render` and `fleet schema` through the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml
from click.testing import CliRunner
from config_support import playbook, write

from fleet.cli import cli

ROOT = Path(__file__).resolve().parents[2]
SHOP = str(ROOT / "playbooks" / "shop.yml")


def run(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args), env=env)
    return result.exit_code, result.stdout, result.stderr


def test_validate_example_exit_0() -> None:
    code, out, _err = run("validate", SHOP)
    assert code == 0 and "valid: project 'shop', 3 services, 5 hosts, 6 containers" in out


def test_validate_invalid_exit_1_without_traceback(tmp_path: Path) -> None:
    pb = playbook(tmp_path, "web:\n  image: Nginx\n  portz: []\n")
    inv = write(tmp_path, "inv.yml", "hosts: {a: {}}\n")
    code, out, err = run("validate", "-i", str(inv), str(pb))
    assert code == 1 and out == ""
    assert f"{pb}:4:12: services.web.image: bad image reference 'Nginx'" in err
    assert f"{pb}:5:5: services.web.portz: unknown key 'portz' (did you mean 'ports'?)" in err
    assert "2 errors; nothing was changed on any host." in err and "Traceback" not in err


def test_validate_warning_only_exits_0(tmp_path: Path) -> None:
    pb = playbook(tmp_path, "web:\n  image: nginx\n  hosts: ghost\n")
    inv = write(tmp_path, "inv.yml", "hosts: {a: {}}\n")
    code, _out, err = run("validate", "-i", str(inv), str(pb))
    assert code == 0 and "warning: 'ghost' matches no host" in err


def test_validate_json(tmp_path: Path) -> None:
    pb = playbook(tmp_path, "web:\n  image: nginx\n  restart: sometimes\n")
    inv = write(tmp_path, "inv.yml", "hosts: {a: {}}\n")
    code, out, _ = run("validate", "--json", "-i", str(inv), str(pb))
    assert code == 1
    data = json.loads(out)
    assert data["valid"] is False
    assert data["problems"] == [{
        "file": str(pb), "line": 5, "column": 14, "key": "services.web.restart",
        "severity": "error", "message": "bad restart policy 'sometimes': use no, always, "
                                        "unless-stopped or on-failure[:N]"}]
    code, out, _ = run("validate", "--json", SHOP)
    assert code == 0 and json.loads(out) == {"valid": True, "problems": []}


def test_missing_files(tmp_path: Path) -> None:
    code, _, err = run("validate", str(tmp_path / "nope.yml"))
    assert code == 1 and "nope.yml: file not found" in err and "Traceback" not in err
    pb = playbook(tmp_path, "web:\n  image: nginx\n")
    code, _, err = run("render", "-i", str(tmp_path / "no-inv.yml"), str(pb))
    assert code == 1 and err.startswith("error: ") and "no-inv.yml: file not found" in err


def test_render_json_shape_and_no_secrets() -> None:
    code, out, _ = run("render", SHOP, "--json", "--limit", "web,&cloud=aws")
    assert code == 0
    data = json.loads(out)
    assert data["project"] == "shop" and data["warnings"] == []
    assert [h["host"] for h in data["hosts"]] == ["aws-use1-web1", "aws-use1-web2"]
    container = data["hosts"][0]["containers"][0]
    assert set(container) == {"name", "service", "replica", "spec_hash", "spec"}
    assert container["name"] == "shop-web-1" and len(container["spec_hash"]) == 64
    assert container["spec"]["environment"]["DB_URL"] == "<redacted:DB_URL>"
    assert "example@db.example.com" not in out


def test_render_text_is_deterministic_and_redacted() -> None:
    first = run("render", SHOP)
    assert first[0] == 0 and first == run("render", SHOP)
    assert "spec-hash" in first[1] and "<redacted:DB_URL>" in first[1]
    assert "example@db.example.com" not in first[1] + first[2]


def test_render_shows_zero_values(tmp_path: Path) -> None:
    pb = playbook(tmp_path,
                  "web:\n  image: nginx\n  healthcheck: {test: [CMD, 'true'], retries: 0}\n")
    inv = write(tmp_path, "inv.yml", "hosts: {a: {}}\n")
    code, out, _ = run("render", "-i", str(inv), str(pb))
    assert code == 0 and "retries: 0" in out


@pytest.mark.parametrize(("kind", "examples"), [
    ("inventory", ["inventories/multicloud.yml", "tests/corpus/valid/inv_native.yml"]),
    ("playbook", ["playbooks/shop.yml", "tests/corpus/valid/minimal.yml",
                  *(f"tests/corpus/compose/fields/{name}.yml" for name in (
                      "basics", "deploy", "engine", "extends", "include", "ports", "profiles",
                      "references", "notes"))]),
])
def test_schema_is_valid_json_schema_and_examples_validate(kind: str, examples: list[str]) -> None:
    code, out, _ = run("schema", kind)
    assert code == 0
    schema = json.loads(out)
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["title"] == f"fleet {kind}" and schema["additionalProperties"] is False
    validator = jsonschema.Draft202012Validator(schema)
    for name in examples:
        data = yaml.safe_load((ROOT / name).read_text())
        assert list(validator.iter_errors(data)) == [], name
    bad = {"project": "x", "servicez": {}} if kind == "playbook" else {"hostz": {}}
    assert list(validator.iter_errors(bad))


def test_schema_rejects_unknown_kind() -> None:
    code, _, err = run("schema", "nonsense")
    assert code == 2 and "Traceback" not in err


def test_validate_a_compose_file_with_profiles(tmp_path: Path) -> None:
    write(tmp_path, "inv.yml", "hosts: {a: {address: 198.18.41.7}}\n")
    path = write(tmp_path / "My App", "compose.yaml", """\
        version: "3"
        x-fleet: {inventory: ../inv.yml}
        services:
          web: {image: nginx}
          debug: {image: busybox, profiles: [debug]}
        """)
    code, out, err = run("validate", str(path))
    assert code == 0 and "valid: project 'myapp', 1 services, 1 hosts, 1 containers" in out
    assert "version: warning: the top-level 'version' is obsolete" in err
    code, out, _ = run("validate", "--profile", "debug", str(path))
    assert code == 0 and "2 services" in out
    code, out, _ = run("validate", str(path), env={"COMPOSE_PROFILES": "debug"})
    assert code == 0 and "2 services" in out
