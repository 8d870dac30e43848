"""Interpolation in a project: the playbook's values from the environment and .env (or
--env-file), before validation and templating; env_file and .env read by Compose's rules."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from config_support import INVENTORY, load, only_error, playbook, problems, write

from fleet.cli import cli
from fleet.cli.main import COMMANDS
from fleet.config.compose_syntax import DotenvError, read_dotenv
from fleet.config.problems import ConfigError


def web(state: object, host: str = "web1") -> dict[str, object]:
    return dict(state.containers[host][0].options)  # type: ignore[attr-defined]


def test_values_are_interpolated_before_validation(tmp_path: Path) -> None:
    pb = playbook(tmp_path, """\
        web:
          image: ${IMAGE:-nginx}:${TAG}
          replicas: ${REPLICAS}
          ports: ["${PORT}:80"]
          command: ["sh", "-c", "echo $$HOME"]
          read_only: ${RO:-false}
        """, header="project: ${PROJECT:-shop}\n")
    state = load(tmp_path, pb, environ={"TAG": "1.27", "REPLICAS": "1", "PORT": "8080",
                                        "RO": "true"})
    options = web(state)
    assert options["image"] == "nginx:1.27" and options["read_only"] is True
    assert options["command"] == ["sh", "-c", "echo $HOME"]
    assert options["ports"][0]["published"] == 8080  # type: ignore[index]
    assert state.project == "shop" and state.problems == []


def test_a_literal_in_a_typed_field_no_longer_gives_a_misleading_error(tmp_path: Path) -> None:
    pb = playbook(tmp_path, "web: {image: '${IMAGE:?set IMAGE to the image to run}'}\n")
    found = only_error(tmp_path, pb)
    assert (found.file, found.line, found.column) == (str(pb), 3, 16)
    assert found.path == ("services", "web", "image")
    assert found.message == "required variable IMAGE is missing a value: set IMAGE to the " \
                            "image to run"


def test_an_unset_variable_is_a_warning_at_its_line(tmp_path: Path) -> None:
    pb = playbook(tmp_path, "web:\n  image: nginx\n  environment:\n    A: x${UNSET}y\n")
    state = load(tmp_path, pb)
    assert [str(p) for p in state.problems] == [
        f"{pb}:6:10: services.web.environment.A: warning: variable UNSET is not set: an empty "
        "string is used, as Compose does (${UNSET:-default} gives a default, $$ writes a "
        "literal $)"]
    assert web(state)["environment"] == {"A": "xy"}


def test_every_problem_at_once(tmp_path: Path) -> None:
    pb = playbook(tmp_path, """\
        web: {image: "${A:?a}", command: "${B:?b}", user: "${"}
        """)
    found = sorted((p.line, p.path[-1], p.message.split(":")[0]) for p in problems(tmp_path, pb))
    assert found == [(3, "command", "required variable B is missing a value"),
                     (3, "image", "required variable A is missing a value"),
                     (3, "user", "invalid interpolation '${'")]


def test_keys_are_not_interpolated(tmp_path: Path) -> None:
    pb = playbook(tmp_path, "web:\n  image: nginx\n  labels: {'$K': v, 'x': '$K'}\n")
    assert web(load(tmp_path, pb, environ={"K": "k"}))["labels"] == {"$K": "v", "x": "k"}


def test_templating_comes_after_and_substituted_values_stay_literal(tmp_path: Path) -> None:
    pb = playbook(tmp_path, """\
        web:
          image: nginx
          environment:
            WHERE: "{{ host.name }}-${SUFFIX}"
            PASSWORD: "${PASSWORD}"
            DEFAULTED: "${UNSET:-{{ host.labels.region }}}"
        """)
    state = load(tmp_path, pb, environ={"SUFFIX": "a", "PASSWORD": "p{%w{{d}}#"})
    assert web(state)["environment"] == {"WHERE": "web1-a", "PASSWORD": "p{%w{{d}}#",
                                         "DEFAULTED": "us-east-1"}


def test_secret_and_env_file_hiding_still_work_and_interpolated_values_are_plain(
        tmp_path: Path) -> None:
    write(tmp_path, "app.env", "FROM_FILE=${FILE_PART}-x # a comment\n")
    pb = playbook(tmp_path, """\
        web:
          image: nginx
          env_file: [app.env]
          environment: ["TOKEN={{ secret('TOKEN') }}", "PLAIN=${PLAIN}", BARE]
        """)
    state = load(tmp_path, pb, environ={"TOKEN": "t0k", "PLAIN": "in-clear", "BARE": "b",
                                        "FILE_PART": "f"})
    shown = state.containers["web1"][0].redacted_options()["environment"]
    assert shown["PLAIN"] == "in-clear"  # a literal of the file, as Compose has it
    assert shown["TOKEN"] == "<redacted:TOKEN>"
    assert shown["BARE"] == "<redacted:env.BARE>"
    assert shown["FROM_FILE"].startswith("<redacted:env_file.")
    store = state.secrets_for("web1")
    assert store.value(shown["FROM_FILE"][len("<redacted:"):-1]) == "f-x"


# --- .env and --env-file --------------------------------------------------------------------


def test_dot_env_beside_the_first_playbook_and_the_environment_wins(tmp_path: Path) -> None:
    write(tmp_path, ".env", """\
        # the project's variables
        export TAG=1.25
        REGION="eu west"
        BASE=base
        DERIVED=${BASE}-${FROM_SHELL:-none}
        PORT=8080 # inline comment
        LITERAL='${BASE}'
        """)
    pb = playbook(tmp_path, """\
        web:
          image: nginx:${TAG}
          environment: [REGION=$REGION, DERIVED=$DERIVED, PORT=$PORT, LITERAL=$LITERAL]
        """)
    state = load(tmp_path, pb, environ={"TAG": "1.27", "FROM_SHELL": "shell"})
    options = web(state)
    assert options["image"] == "nginx:1.27"
    assert options["environment"] == {"REGION": "eu west", "DERIVED": "base-shell",
                                      "PORT": "8080", "LITERAL": "${BASE}"}


def test_a_bare_environment_key_takes_the_dot_env_value_as_compose_does(tmp_path: Path) -> None:
    write(tmp_path, ".env", "FROM_DOTENV=d\n")
    pb = playbook(tmp_path, "web: {image: nginx, environment: [FROM_DOTENV]}\n")
    state = load(tmp_path, pb)
    shown = state.containers["web1"][0].redacted_options()["environment"]
    assert shown == {"FROM_DOTENV": "<redacted:env.FROM_DOTENV>"}
    assert state.secrets_for("web1").value("env.FROM_DOTENV") == "d"


def test_dot_env_problems_name_its_file_and_line(tmp_path: Path) -> None:
    dotenv = write(tmp_path, ".env", "A=1\nB=${NOPE}\nC=${NEEDED:?hunter2}\n")
    pb = playbook(tmp_path, "web: {image: nginx}\n")
    found = problems(tmp_path, pb)
    assert [str(p) for p in found] == [
        f"{dotenv}:3:1: the value of C: required variable NEEDED is missing a value"]
    write(tmp_path, ".env", "A=1\nB=${NOPE}\n")
    found = problems(tmp_path, pb)
    assert [(p.file, p.line, p.severity) for p in found] == [(str(dotenv), 2, "warning")]
    assert "variable NOPE is not set" in found[0].message


def test_env_file_option_chooses_another_file(tmp_path: Path) -> None:
    write(tmp_path, ".env", "TAG=from-dotenv\n")
    other = write(tmp_path, "conf/prod.env", "TAG=from-prod\n")
    pb = playbook(tmp_path, "web: {image: 'nginx:${TAG}'}\n")
    inventory = write(tmp_path, "inventory.yml", INVENTORY)
    runner = CliRunner()
    result = runner.invoke(cli, ["render", "--json", "--env-file", str(other), "-i",
                                 str(inventory), str(pb)], env={"TAG": None})
    assert result.exit_code == 0, result.output
    assert '"image": "nginx:from-prod"' in result.stdout
    result = runner.invoke(cli, ["render", "--json", "-i", str(inventory), str(pb)],
                           env={"TAG": None})
    assert '"image": "nginx:from-dotenv"' in result.stdout
    result = runner.invoke(cli, ["validate", "--env-file", str(tmp_path / "missing.env"),
                                 "-i", str(inventory), str(pb)], env={"TAG": None})
    assert result.exit_code == 1 and f"{tmp_path / 'missing.env'}: file not found" in \
        result.stderr


def test_validate_prints_the_warnings_and_exits_0(tmp_path: Path) -> None:
    pb = playbook(tmp_path, "web: {image: 'nginx:1${MINOR}'}\n")
    inventory = write(tmp_path, "inventory.yml", INVENTORY)
    result = CliRunner().invoke(cli, ["validate", "-i", str(inventory), str(pb)],
                                env={"MINOR": None})
    assert result.exit_code == 0
    assert f"{pb}:3:16: services.web.image: warning: variable MINOR is not set" in result.stderr
    assert "valid: project 'shop'" in result.stdout


@pytest.mark.parametrize("command", ["validate", "render", "plan", "apply", "check", "status",
                                     "rollback", "history"])
def test_every_command_with_playbooks_takes_env_file(command: str) -> None:
    assert COMMANDS[command]
    result = CliRunner().invoke(cli, [command, "--help"])
    assert "--env-file PATH" in result.stdout


def test_a_directory_named_dot_env_is_not_read(tmp_path: Path) -> None:
    (tmp_path / ".env").mkdir()
    pb = playbook(tmp_path, "web: {image: nginx}\n")
    assert problems(tmp_path, pb) == []


# --- env files: one reader for .env and env_file (Compose's "environment file" syntax) -------


@pytest.mark.parametrize(("text", "values"), [
    ("A=$X", {"A": "x"}),
    ("A=${X}y # comment", {"A": "xy"}),
    ('A="${X} \\$X $$X"', {"A": "x $X $X"}),
    ("A='${X}'", {"A": "${X}"}),
    ("A=1\nB=${A}2", {"A": "1", "B": "12"}),
    ("X=file\nB=$X", {"X": "file", "B": "x"}),  # the variables come before the file's own
    ("X", {"X": "x"}),  # a name alone takes its value from the variables
    ("NOT_SET_ANYWHERE", {}),
    ("\ufeffA=bom", {"A": "bom"}),
    ("A=${UNSET:-d}", {"A": "d"}),
])
def test_dotenv_interpolation(text: str, values: dict[str, str]) -> None:
    assert read_dotenv(text + "\n", "f.env", {"X": "x"}) == (values, [])


def test_dotenv_warns_and_errs_without_quoting_values() -> None:
    values, warnings = read_dotenv("A=hunter2${MISSING}\n", "f.env", {})
    assert values == {"A": "hunter2"}
    assert [(w.line, w.severity) for w in warnings] == [(1, "warning")]
    with pytest.raises(DotenvError) as caught:
        read_dotenv("\nA=hunter2${\n", "f.env", {})
    assert str(caught.value) == "f.env:2: the value of A: invalid interpolation: '${' is " \
                                "never closed by '}'"


def test_a_secrets_file_is_never_interpolated(tmp_path: Path) -> None:
    write(tmp_path, "s.env", "TOKEN=pa$$w${ord}\n")
    pb = playbook(tmp_path, "web:\n  image: nginx\n  environment: {T: \"{{ secret('TOKEN') }}\"}\n",
                  header="project: shop\nsecrets_file: s.env\n")
    state = load(tmp_path, pb)
    assert state.secrets_for("web1").value("TOKEN") == "pa$$w${ord}"


def test_env_file_warnings_reach_the_project(tmp_path: Path) -> None:
    env_file = write(tmp_path, "app.env", "A=1\nB=${NOT_SET}\n")
    pb = playbook(tmp_path, "web: {image: nginx, env_file: [app.env]}\n")
    state = load(tmp_path, pb)
    assert [(p.file, p.line, p.severity) for p in state.problems] == [
        (str(env_file), 2, "warning")]


def test_env_file_errors_stop_the_service(tmp_path: Path) -> None:
    write(tmp_path, "app.env", "A=${NEEDED:?hunter2}\n")
    pb = playbook(tmp_path, "web: {image: nginx, env_file: [app.env]}\n")
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, pb)
    assert "cannot read env_file" in str(caught.value)
    assert "required variable NEEDED is missing a value" in str(caught.value)
    assert "hunter2" not in str(caught.value)


def test_dotenv_interpolation_is_bounded_for_the_whole_file() -> None:
    doubling = [f"V{i}=${{V{i - 1}}}${{V{i - 1}}}" for i in range(1, 10)]  # V9: 512,000
    lines = ["V0=" + "x" * 1000, *doubling, *(f"W{j}=$V9" for j in range(40))]
    with pytest.raises(DotenvError) as caught:
        read_dotenv("\n".join(lines), "f.env", {})
    assert caught.value.line == 40  # V1..V9 made 1,022,000; W0..W28 another 14,848,000
    assert caught.value.reason == ("the value of W29: the file's interpolated values would "
                                   "exceed 16,000,000 characters together")
