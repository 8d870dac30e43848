"""`hooks:` in playbooks: where each may run, what is refused at its key, when one is due."""

from __future__ import annotations

from pathlib import Path

from config_support import load, only_error, playbook

from fleet.core.plan import Action, ActionKind, HostPlan, Plan
from fleet.engine.hooks import due_hooks

SERVICES = """\
web: {image: shop/web:1, hosts: web}
db: {image: shop/db:1, hosts: db}
"""


def header(hooks: str) -> str:
    return f"project: shop\nhooks:\n{hooks}"


def test_a_hook_may_run_on_its_service_hosts_its_pattern_keeps(tmp_path: Path) -> None:
    state = load(tmp_path, playbook(tmp_path, SERVICES, header=header(
        "  pre_deploy:\n"
        "    - {name: migrate, service: web, command: [./manage, migrate], timeout: 2m}\n"
        "  post_deploy:\n"
        "    - {name: warm, service: web, command: [warm], host: 'region=eu-*'}\n")))
    [migrate] = state.hooks["pre_deploy"]
    assert migrate.hosts == ("web1", "web2") and migrate.hook.timeout == 120.0
    [warm] = state.hooks["post_deploy"]
    assert warm.hosts == ("web2",)


def test_a_hook_of_no_service_is_an_error_at_its_key(tmp_path: Path) -> None:
    problem = only_error(tmp_path, playbook(tmp_path, SERVICES, header=header(
        "  pre_deploy:\n    - {name: migrate, service: api, command: [migrate]}\n")))
    assert problem.path == ("hooks", "pre_deploy", 0, "service")
    assert "no service 'api'" in problem.message


def test_a_hook_command_is_an_argv(tmp_path: Path) -> None:
    problem = only_error(tmp_path, playbook(tmp_path, SERVICES, header=header(
        "  pre_deploy:\n    - {name: migrate, service: web, command: []}\n")))
    assert problem.path[:4] == ("hooks", "pre_deploy", 0, "command")


def test_a_hook_is_due_when_the_rollout_changes_its_service(tmp_path: Path) -> None:
    state = load(tmp_path, playbook(tmp_path, SERVICES, header=header(
        "  pre_deploy:\n    - {name: migrate, service: web, command: [migrate]}\n")))
    web = state.containers["web1"][0]
    changing_web = Plan("shop", (HostPlan("web1", (), (
        Action("web1", ActionKind.CREATE, web.name, "missing", desired=web),)),))
    assert [h.hook.name for h in due_hooks(state.hooks["pre_deploy"], changing_web)] == \
        ["migrate"]
    db = state.containers["db1"][0]
    changing_db = Plan("shop", (HostPlan("db1", (), (
        Action("db1", ActionKind.CREATE, db.name, "missing", desired=db),)),))
    assert due_hooks(state.hooks["pre_deploy"], changing_db) == []
