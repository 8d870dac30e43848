"""fleet's interpolation against Debian's docker-compose (1.29.2), file by file.

Every file of tests/corpus/compose/interpolation/ is a compose file whose header says how
to run it: `# env: {JSON}` is the whole environment (nothing else of this process's leaks
in), `# dotenv: NAME` is copied beside it as `.env`, `# files: A B` are copied beside it
(env_file), and `# docker-compose-1.29:` says what to expect of it:

- `same`: `docker-compose config` and fleet agree on every interpolated value (image,
  command, entrypoint, working_dir, user, hostname, environment with env_file under it,
  labels, ports), on which variables are warned of as unset, and on failing (with the same
  `:?` message) or not.
- `error` and `differs`: docker-compose 1.29 implements an older reading than the current
  Compose specification (no `:+`/`+`, no nesting, a `$` before a non-name refused,
  single-quoted env file values interpolated, `${A:-{{ x }}}` cut at the first `}`). The
  test checks that 1.29 does refuse (`error`) or differs (`differs`), so the note stays
  true, and that fleet gives what the spec says (`# spec: {JSON}` of the `web` service's
  environment): fleet follows the spec.

`docker-compose config` reads files only: it never contacts a daemon or a registry (the
environment points DOCKER_HOST at a socket that does not exist, to be sure). All cases run
concurrently, in a few seconds.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from fleet.config.compose_syntax import DotenvError, key_value_map, parse_short_port, read_dotenv
from fleet.config.interpolation import interpolate_doc
from fleet.config.project import ProjectFiles, project_variables
from fleet.config.source import load_yaml

CORPUS = Path(__file__).resolve().parents[1] / "corpus" / "compose" / "interpolation"
DOCKER_COMPOSE = shutil.which("docker-compose")
HEADER = re.compile(r"^# (env|dotenv|files|docker-compose-1\.29|spec): (.*)$")
COMPOSE_UNSET = re.compile(r"The (\S+) variable is not set\. Defaulting to a blank string")
FLEET_UNSET = re.compile(r"^variable (\S+) is not set")
STRING_FIELDS = ("image", "command", "entrypoint", "working_dir", "user", "hostname")


def _isolated(env: Mapping[str, str], home: Path) -> dict[str, str]:
    return {"PATH": "/usr/bin:/bin", "HOME": str(home), "LANG": "C.UTF-8",
            "DOCKER_HOST": "unix:///nonexistent/docker.sock", **env}


def _compose_version() -> str | None:
    if DOCKER_COMPOSE is None:
        return None
    try:
        out = subprocess.run([DOCKER_COMPOSE, "version", "--short"], capture_output=True,
                             text=True, timeout=30, env=_isolated({}, Path("/nonexistent")))
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None


VERSION = _compose_version()
pytestmark = pytest.mark.skipif(
    VERSION is None or not VERSION.startswith("1.29"),
    reason="needs Debian's docker-compose 1.29 (apt-get install docker-compose; "
           "scripts/bootstrap.sh installs it)" + (f", found {VERSION}" if VERSION else ""))


@dataclass
class Case:
    path: Path
    env: dict[str, str] = field(default_factory=dict)
    dotenv: str | None = None
    files: list[str] = field(default_factory=list)
    mode: str = "same"
    spec: dict[str, str] = field(default_factory=dict)


def _case(path: Path) -> Case:
    case = Case(path)
    for line in path.read_text().splitlines():
        match = HEADER.match(line)
        if not match:
            continue
        key, value = match.groups()
        if key == "env":
            case.env = json.loads(value)
        elif key == "dotenv":
            case.dotenv = value.strip()
        elif key == "files":
            case.files = value.split()
        elif key == "spec":
            case.spec = json.loads(value)
        else:
            case.mode = value.split(":")[0].strip()
    assert case.mode in ("same", "error", "differs"), path
    return case


CASES = [_case(p) for p in sorted(CORPUS.glob("*.yaml"))]


def _project(case: Case, root: Path) -> Path:
    project = root / case.path.stem
    project.mkdir()
    shutil.copy(case.path, project / "compose.yaml")
    if case.dotenv:
        shutil.copy(CORPUS / case.dotenv, project / ".env")
    for name in case.files:
        shutil.copy(CORPUS / name, project / name)
    return project


@dataclass
class Outcome:
    services: dict[str, dict[str, Any]] | None  # None: it failed
    unset: set[str]
    errors: list[str]


def _unescape(value: Any) -> Any:
    """`config` prints a file Compose could read again: a literal `$` as `$$`."""
    if isinstance(value, str):
        return value.replace("$$", "$")
    if isinstance(value, dict):
        return {k: _unescape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_unescape(v) for v in value]
    return value


def _compared(service: Mapping[str, Any], ports: list[tuple[Any, ...]],
              environment: Mapping[str, Any], labels: Mapping[str, Any]) -> dict[str, Any]:
    shown = {key: service[key] for key in STRING_FIELDS if key in service}
    shown["environment"] = {k: str(v) for k, v in environment.items()}
    shown["labels"] = {k: str(v) for k, v in labels.items()}
    shown["ports"] = sorted(ports, key=str)
    return shown


def _run_compose(case: Case, project: Path) -> Outcome:
    assert DOCKER_COMPOSE is not None
    run = subprocess.run(
        [DOCKER_COMPOSE, "-f", str(project / "compose.yaml"), "--project-directory",
         str(project), "config"], capture_output=True, text=True, timeout=120, cwd=project,
        env=_isolated(case.env, project), stdin=subprocess.DEVNULL)
    unset = set(COMPOSE_UNSET.findall(run.stderr))
    if run.returncode != 0:
        return Outcome(None, unset, [run.stderr.strip()])
    services: dict[str, dict[str, Any]] = {}
    for name, service in _unescape(yaml.safe_load(run.stdout)["services"]).items():
        ports = [(p["target"], p.get("published"), p.get("host_ip", ""))
                 for item in service.get("ports", [])  # 1.29 prints one with an IP short
                 for p in (parse_short_port(item) if isinstance(item, str) else [item])]
        services[name] = _compared(service, ports, service.get("environment", {}),
                                   service.get("labels", {}))
    return Outcome(services, unset, [])


def _run_fleet(case: Case, project: Path) -> Outcome:
    """fleet's loader: the project's variables (.env under the environment), the file's
    values interpolated, env files read by the same dotenv rules."""
    compose = project / "compose.yaml"
    variables, problems = project_variables(ProjectFiles([str(compose)]), case.env)
    doc = interpolate_doc(load_yaml(compose), variables)
    problems += doc.problems
    errors = [p.message for p in problems if p.severity == "error"]
    services: dict[str, dict[str, Any]] = {}
    for name, service in (doc.data or {}).get("services", {}).items():
        environment: dict[str, Any] = {}
        for env_file in service.get("env_file", []):
            try:
                values, found = read_dotenv((project / env_file).read_text(),
                                            str(project / env_file), variables)
            except DotenvError as exc:
                errors.append(exc.reason)
                continue
            environment.update(values)
            problems += found
        environment.update(key_value_map(service.get("environment", {}), "environment"))
        ports = [(p["target"], p["published"], p["host_ip"])
                 for text in service.get("ports", []) for p in parse_short_port(text)]
        services[name] = _compared(service, ports, environment,
                                   key_value_map(service.get("labels", {}), "labels"))
    unset = {m.group(1) for p in problems if p.severity == "warning"
             if (m := FLEET_UNSET.match(p.message))}
    return Outcome(None if errors else services, unset, errors)


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Outcome, Outcome]]:
    root = tmp_path_factory.mktemp("compose")
    projects = {case.path.name: (case, _project(case, root)) for case in CASES}
    with ThreadPoolExecutor(max_workers=8) as pool:  # each run is a ~1 s Python start-up
        composed = dict(zip(projects, pool.map(lambda item: _run_compose(*item),
                                               projects.values()), strict=True))
    return {name: (composed[name], _run_fleet(case, project))
            for name, (case, project) in projects.items()}


def test_the_corpus_covers_every_form() -> None:
    text = "\n".join(case.path.read_text() for case in CASES)
    for form in ("$SET", "${SET}", ":-", "-d}", ":?", "?fine}", ":+", "+alt}", "$$",
                 "${UNSET:-${", "<<:"):
        assert form in text, form
    assert {case.mode for case in CASES} == {"same", "error", "differs"}


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.path.name)
def test_fleet_interpolates_as_compose_does(case: Case,
                                            outcomes: dict[str, tuple[Outcome, Outcome]]
                                            ) -> None:
    composed, fleet = outcomes[case.path.name]
    if case.mode == "same":
        assert fleet.unset == composed.unset
        if composed.services is None:
            assert fleet.errors, f"docker-compose failed, fleet did not: {composed.errors}"
            mandatory = re.search(r"Missing mandatory value for .*: (.+)$", composed.errors[0])
            if mandatory:
                assert any(e.endswith(": " + mandatory.group(1)) for e in fleet.errors), (
                    composed.errors, fleet.errors)
            else:
                assert "Invalid interpolation format" in composed.errors[0]
                assert all("invalid interpolation" in e for e in fleet.errors)
            return
        assert fleet.errors == []
        assert fleet.services == composed.services
        return
    assert fleet.errors == [] and fleet.services is not None
    assert fleet.services["web"]["environment"] == case.spec
    if case.mode == "error":
        assert composed.services is None
        assert "Invalid interpolation format" in composed.errors[0], composed.errors
    else:
        assert composed.services is not None
        differing = {k for k, v in case.spec.items()
                     if composed.services["web"]["environment"].get(k) != v}
        assert differing == set(case.spec), "1.29 agrees with the spec here: say 'same'"
