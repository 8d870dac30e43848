"""Playbook rules: templating, secrets, placement, port conflicts, several files, missing files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from config_support import load, only_error, playbook, problems, write

from fleet.config.problems import ConfigError, format_key_path
from fleet.config.secrets import digest_secrets, redact, reveal, token
from fleet.engine.run import registry_auth


def test_templates_render_per_host_with_precedence(tmp_path: Path) -> None:
    inventory = """\
        hosts:
          h1: {address: 10.0.0.1, labels: {region: eu}, vars: {level: host}}
          h2: {address: 10.0.0.2, labels: {region: us}}
        groups:
          parent: {children: [child], vars: {level: parent, only_parent: p}}
          child: {hosts: [h1, h2], vars: {level: child}}
        vars: {level: inventory, only_inventory: i}
        """
    pb = playbook(tmp_path, """\
        web:
          image: nginx
          environment:
            LEVEL: "{{ vars.level }}"
            PB: "{{ vars.only_playbook }}/{{ vars.only_inventory }}/{{ vars.only_parent }}"
            WHO: "{{ project }}-{{ service }}-{{ host.name }}-{{ host.address }}"
            REGION: "{{ host.labels.region }}"
            HOME_DIR: "{{ env('HOME_DIR') }}"
            FALLBACK: "{{ env('NOPE', 'dflt') }}"
        """, header="project: shop\nvars: {level: playbook, only_playbook: pb}\n")
    state = load(tmp_path, pb, inventory=inventory, environ={"HOME_DIR": "/home/x"})
    env1 = state.containers["h1"][0].options["environment"]
    env2 = state.containers["h2"][0].options["environment"]
    assert env1["LEVEL"] == "host" and env2["LEVEL"] == "child"
    assert env1["PB"] == "pb/i/p"
    assert env1["WHO"] == "shop-web-h1-10.0.0.1" and env2["REGION"] == "us"
    assert env1["HOME_DIR"] == "/home/x" and env1["FALLBACK"] == "dflt"


def test_undefined_name_names_service_and_host(tmp_path: Path) -> None:
    pb = playbook(tmp_path, "web:\n  image: nginx\n  environment: {A: '{{ vars.nope }}'}\n",)
    found = only_error(tmp_path, pb)
    assert (found.line, found.column) == (5, 22)
    assert format_key_path(found.path) == "services.web.environment.A"
    assert "undefined name in template" in found.message and "nope" in found.message
    assert "(service web; hosts web1, web2, db1)" in found.message


def test_undefined_only_on_some_hosts(tmp_path: Path) -> None:
    pb = playbook(tmp_path, "web:\n  image: nginx\n  environment: {W: '{{ host.vars.weight }}'}\n")
    assert "(service web; hosts web2, db1)" in only_error(tmp_path, pb).message


def test_template_syntax_error(tmp_path: Path) -> None:
    pb = playbook(tmp_path, "web:\n  image: nginx\n  command: '{{ oops'\n")
    assert "template syntax error" in only_error(tmp_path, pb).message


def test_env_not_set(tmp_path: Path) -> None:
    pb = playbook(tmp_path, "web:\n  image: nginx\n  user: \"{{ env('RUN_AS') }}\"\n")
    found = only_error(tmp_path, pb)
    assert "environment variable 'RUN_AS' is not set on the controller" in found.message


def test_templates_not_allowed_in_placement(tmp_path: Path) -> None:
    pb = playbook(tmp_path, "web:\n  image: nginx\n  hosts: '{{ vars.where }}'\n")
    found = only_error(tmp_path, pb)
    assert format_key_path(found.path) == "services.web.hosts"
    assert "templates are not allowed in 'hosts'" in found.message


def test_rendered_value_is_validated(tmp_path: Path) -> None:
    pb = playbook(tmp_path, "web:\n  image: nginx\n  ports: ['{{ host.vars.weight }}000:80']\n",
                  header="project: shop\n")
    state = load(tmp_path, pb, limit="web1")
    assert state.containers["web1"][0].options["ports"][0]["published"] == 3000
    pb = playbook(tmp_path, "web:\n  image: nginx\n  mem_limit: '{{ vars.domain }}'\n")
    found = only_error(tmp_path, pb)
    assert "bad size 'example.com'" in found.message and "service web" in found.message


def test_templated_replicas_per_host(tmp_path: Path) -> None:
    pb = playbook(tmp_path, "web:\n  image: nginx\n  hosts: web\n"
                            "  replicas: '{{ host.vars.weight | default(1) }}'\n")
    state = load(tmp_path, pb)
    assert [c.replica for c in state.containers["web1"]] == [1, 2, 3]
    assert [c.replica for c in state.containers["web2"]] == [1]


def test_errors_are_not_repeated_per_host(tmp_path: Path) -> None:
    pb = playbook(tmp_path, "web:\n  image: nginx\n  imagee: x\n")
    found = problems(tmp_path, pb)
    assert [p.message for p in found] == ["unknown key 'imagee' (did you mean 'image'?)"]


# -- secrets -----------------------------------------------------------------------------------

def _secret_playbook(tmp_path: Path, value: str = "s3cr3t-value") -> Path:
    write(tmp_path, "pb.secrets.env", f"# comment\nDB_PASSWORD={value}\n")
    return playbook(tmp_path, "web:\n  image: nginx\n  environment:\n"
                              "    DB: \"postgres://u:{{ secret('DB_PASSWORD') }}@db/x\"\n",
                    header="project: shop\nsecrets_file: pb.secrets.env\n")


def test_secret_from_file_is_a_token_and_redacted(tmp_path: Path) -> None:
    state = load(tmp_path, _secret_playbook(tmp_path))
    container = state.containers["web1"][0]
    assert "s3cr3t-value" not in repr(container)
    assert container.redacted_options()["environment"]["DB"] == (
        "postgres://u:<redacted:DB_PASSWORD>@db/x")


def test_secret_from_environment_wins(tmp_path: Path) -> None:
    pb = _secret_playbook(tmp_path)
    a = load(tmp_path, pb).containers["web1"][0].spec_hash
    b = load(tmp_path, pb, environ={"DB_PASSWORD": "other"}).containers["web1"][0].spec_hash
    assert a != b


def test_secret_change_changes_hash_but_value_never_shown(tmp_path: Path) -> None:
    a = load(tmp_path, _secret_playbook(tmp_path, "first-value")).containers["web1"][0]
    b = load(tmp_path, _secret_playbook(tmp_path, "second-value")).containers["web1"][0]
    assert a.spec_hash != b.spec_hash
    for container in (a, b):
        assert "first-value" not in repr(container) and "second-value" not in repr(container)


def test_missing_secret(tmp_path: Path) -> None:
    pb = playbook(tmp_path, "web:\n  image: nginx\n  environment: {X: \"{{ secret('NOPE') }}\"}\n")
    found = only_error(tmp_path, pb)
    assert "secret 'NOPE' is not set in the controller's environment" in found.message


def test_secret_in_labels_is_an_error(tmp_path: Path) -> None:
    pb = playbook(tmp_path, "web:\n  image: nginx\n  labels: {x: \"{{ secret('S') }}\"}\n")
    found = only_error(tmp_path, pb, environ={"S": "hidden-value"})
    assert "secret() cannot be used in labels" in found.message
    assert "hidden-value" not in str(found)


def test_secret_value_never_in_error_messages(tmp_path: Path) -> None:
    pb = playbook(tmp_path, "web:\n  image: \"nginx:{{ secret('S') }}\"\n"
                            "  mem_limit: \"{{ secret('S') }}\"\n")
    found = problems(tmp_path, pb, environ={"S": "hidden-value"})
    assert found and all("hidden-value" not in str(p) for p in found)


def test_bad_secrets_file_does_not_quote_it(tmp_path: Path) -> None:
    write(tmp_path, "s.yml", "PASSWORD: \"hidden-value\n")
    pb = playbook(tmp_path, "web:\n  image: nginx\n",
                  header="project: shop\nsecrets_file: s.yml\n")
    found = only_error(tmp_path, pb)
    assert "cannot read secrets file" in found.message and "hidden-value" not in str(found)


def test_missing_secrets_file(tmp_path: Path) -> None:
    pb = playbook(tmp_path, "web:\n  image: nginx\n",
                  header="project: shop\nsecrets_file: no.env\n")
    found = only_error(tmp_path, pb)
    assert (found.line, format_key_path(found.path)) == (2, "secrets_file")
    assert found.message.endswith("no.env: file not found")


def test_secrets_files_of_several_playbooks(tmp_path: Path) -> None:
    write(tmp_path, "b.env", "B=2\n")
    one = playbook(tmp_path, "a:\n  image: nginx\n", name="one.yml")
    two = playbook(tmp_path, "b:\n  image: nginx\n  environment: {B: \"{{ secret('B') }}\"}\n",
                   header="project: shop\nsecrets_file: b.env\n", name="two.yml")
    assert load(tmp_path, one, two).containers["web1"]


def test_registries_are_rendered_at_load_secrets_as_tokens(tmp_path: Path) -> None:
    header = ("project: shop\nregistries:\n  registry.example.com:\n"
              "    username: \"{{ env('REG_USER') }}\"\n"
              "    password: \"{{ secret('REG_PASS') }}\"\n")
    pb = playbook(tmp_path, "web:\n  image: registry.example.com/shop/web:1\n", header=header)
    state = load(tmp_path, pb, environ={"REG_USER": "ci", "REG_PASS": "hidden-value"})
    assert state.registries == {"registry.example.com": {"username": "ci",
                                                         "password": token("REG_PASS")}}
    assert registry_auth(state).for_image("registry.example.com/shop/web:1") == {
        "username": "ci", "password": "hidden-value", "serveraddress": "registry.example.com"}


def test_every_bad_registry_template_is_a_problem_not_a_plan_traceback(tmp_path: Path) -> None:
    header = ("project: shop\nregistries:\n  registry.example.com:\n"
              "    username: \"{{ vars.user }}\"\n"
              "    password: \"{{ secret('NOPE') }}\"\n"
              "  ghcr.io:\n    username: \"{{ env('EMPTY', '') }}\"\n"
              "    password: \"{{ secret( }}\"\n")
    pb = playbook(tmp_path, "web:\n  image: nginx\n", header=header)
    found = {(p.line, format_key_path(p.path)): p.message for p in problems(tmp_path, pb)}
    assert found == {
        (4, "registries.registry.example.com.username"):
            "undefined name in template: 'vars' is undefined",
        (5, "registries.registry.example.com.password"):
            "secret 'NOPE' is not set in the controller's environment (no secrets_file is set)",
        (7, "registries.ghcr.io.username"): "registry 'ghcr.io': the username is empty",
        (8, "registries.ghcr.io.password"): "template syntax error: unexpected '}', expected ')'",
    }


# -- placement and ports -----------------------------------------------------------------------

def test_pattern_matching_no_host_is_a_warning(tmp_path: Path) -> None:
    pb = playbook(tmp_path, "web:\n  image: nginx\n  hosts: 'web,nothing-*'\n")
    state = load(tmp_path, pb)
    [warning] = state.problems
    assert warning.severity == "warning" and (warning.line, warning.column) == (5, 12)
    assert "'nothing-*' matches no host" in warning.message
    assert set(state.services["web"].hosts) == {"web1", "web2"}


def test_bad_pattern_is_an_error(tmp_path: Path) -> None:
    pb = playbook(tmp_path, "web:\n  image: nginx\n  hosts: 'web,,db'\n")
    assert "empty term" in only_error(tmp_path, pb).message


def test_replicas_with_fixed_host_port(tmp_path: Path) -> None:
    pb = playbook(tmp_path, "web:\n  image: nginx\n  replicas: 2\n  ports: ['80', '8080:80']\n")
    found = only_error(tmp_path, pb)
    assert (found.line, format_key_path(found.path)) == (6, "services.web.ports[1]")
    assert "2 replicas on one host cannot all publish host port 8080" in found.message


def test_replicas_with_ephemeral_ports_are_fine(tmp_path: Path) -> None:
    pb = playbook(tmp_path,
                  "web:\n  image: nginx\n  replicas: 3\n  ports: ['80', '127.0.0.1::81']\n")
    assert len(load(tmp_path, pb).containers["web1"]) == 3


def test_two_services_on_one_host_port(tmp_path: Path) -> None:
    pb = playbook(tmp_path, "a:\n  image: nginx\n  hosts: web\n  ports: ['8080:80']\n"
                            "b:\n  image: nginx\n  ports: ['9000:90', '8080:80']\n")
    found = only_error(tmp_path, pb)
    assert (found.line, format_key_path(found.path)) == (9, "services.b.ports[1]")
    assert found.message == ("host port 8080/tcp is also published by service 'a' on hosts "
                             "web1, web2")


def test_same_port_different_ip_or_protocol_is_fine(tmp_path: Path) -> None:
    pb = playbook(tmp_path, "a:\n  image: nginx\n  ports: ['10.0.0.1:53:53']\n"
                            "b:\n  image: nginx\n  ports: ['10.0.0.2:53:53', '54:53/udp']\n"
                            "c:\n  image: nginx\n  ports: ['54:53']\n")
    load(tmp_path, pb)


def test_one_service_publishing_a_port_twice(tmp_path: Path) -> None:
    pb = playbook(tmp_path, "a:\n  image: nginx\n  ports: ['8080:80', '8080:81']\n")
    assert "published twice by this service" in only_error(tmp_path, pb).message


def test_limit(tmp_path: Path) -> None:
    pb = playbook(tmp_path, "web:\n  image: nginx\n")
    state = load(tmp_path, pb, limit="cloud=aws,!web2")
    assert [h.name for h in state.targeted_hosts] == ["web1"]
    state = load(tmp_path, pb, limit="nothing")
    assert state.targeted_hosts == [] and state.problems[0].severity == "warning"


# -- files -------------------------------------------------------------------------------------

def test_duplicate_service_across_files(tmp_path: Path) -> None:
    one = playbook(tmp_path, "web:\n  image: nginx\n", name="one.yml")
    two = playbook(tmp_path, "api:\n  image: nginx\nweb:\n  image: nginx\n", name="two.yml")
    found = only_error(tmp_path, one, two)
    assert (found.file, found.line, found.column) == (str(two), 5, 3)
    assert f"service 'web' is defined twice (also in {one})" in found.message


def test_different_project_in_two_files(tmp_path: Path) -> None:
    one = playbook(tmp_path, "web:\n  image: nginx\n", name="one.yml")
    two = playbook(tmp_path, "api:\n  image: nginx\n", header="project: other\n", name="two.yml")
    found = only_error(tmp_path, one, two)
    assert (found.file, found.line, found.column) == (str(two), 1, 10)
    assert "project 'other' differs from 'shop'" in found.message


def test_missing_and_unreadable_files(tmp_path: Path) -> None:
    missing = tmp_path / "missing.yml"
    with pytest.raises(ConfigError) as info:
        load(tmp_path, missing)
    assert [str(p) for p in info.value.problems] == [f"{missing}: file not found"]
    folder = tmp_path / "folder.yml"
    folder.mkdir()
    with pytest.raises(ConfigError) as info:
        load(tmp_path, folder)
    assert "cannot read" in str(info.value)
    bad = write(tmp_path, "bad.yml", b"\xff\xfe".decode("latin-1"))
    bad.write_bytes(b"project: \xff\n")
    with pytest.raises(ConfigError) as info:
        load(tmp_path, bad)
    assert "cannot read" in str(info.value)


def test_missing_inventory_named_by_playbook(tmp_path: Path) -> None:
    pb = playbook(tmp_path, "web:\n  image: nginx\n", header="project: shop\ninventory: inv.yml\n")
    found = only_error(tmp_path, pb, inventory=None)
    assert found.file.endswith("inv.yml") and found.message == "file not found"


def test_no_inventory_at_all(tmp_path: Path) -> None:
    pb = playbook(tmp_path, "web:\n  image: nginx\n")
    assert "no inventory: pass -i INVENTORY" in only_error(tmp_path, pb, inventory=None).message


def test_invalid_yaml_location(tmp_path: Path) -> None:
    pb = write(tmp_path, "pb.yml", "project: shop\nservices:\n  web: [\n")
    found = only_error(tmp_path, pb)
    assert found.line == 4 and found.message.startswith("invalid YAML")


def test_duplicate_key_and_other_problems_reported_together(tmp_path: Path) -> None:
    pb = playbook(tmp_path, "web:\n  image: nginx\n  image: redis\n  portz: []\n")
    messages = [p.message for p in problems(tmp_path, pb)]
    assert "duplicate key 'image'" in messages
    assert "unknown key 'portz' (did you mean 'ports'?)" in messages


def test_bad_project_name(tmp_path: Path) -> None:
    pb = write(tmp_path, "pb.yml", "project: Shop\n")
    found = only_error(tmp_path, pb)
    assert (found.line, found.column) == (1, 10) and "'Shop' is not allowed here" in found.message


def test_env_file_merges_under_environment(tmp_path: Path) -> None:
    write(tmp_path, "web.env", "A=from-file\nB=from-file\n")
    pb = playbook(tmp_path, "web:\n  image: nginx\n  env_file: web.env\n  environment: {B: mine}\n")
    state = load(tmp_path, pb)
    env = state.containers["web1"][0].options["environment"]
    assert reveal(env, state.secrets_for("web1")) == {"A": "from-file", "B": "mine"}
    # A value from a file is handled like a secret: redacted when shown, digested when stored.
    assert redact(env)["A"].startswith("<redacted:env_file.") and env["B"] == "mine"
    assert "from-file" not in json.dumps(digest_secrets(env, state.secrets))
    pb = playbook(tmp_path, "web:\n  image: nginx\n  env_file: [nope.env]\n")
    found = only_error(tmp_path, pb)
    assert format_key_path(found.path) == "services.web.env_file"
    assert "cannot read env_file" in found.message


def test_a_bare_key_takes_the_controller_value_as_a_secret(tmp_path: Path) -> None:
    pb = playbook(tmp_path, "web:\n  image: nginx\n  environment: [TOKEN, UNSET]\n")
    state = load(tmp_path, pb, environ={"TOKEN": "from-the-shell"})
    env = state.containers["web1"][0].options["environment"]
    assert list(env) == ["TOKEN"]  # an unset bare key is left out, as Compose does
    assert reveal(env, state.secrets_for("web1")) == {"TOKEN": "from-the-shell"}
    assert redact(env) == {"TOKEN": "<redacted:env.TOKEN>"}


def test_text_shaped_like_a_secret_token_is_only_text(tmp_path: Path) -> None:
    pb = playbook(tmp_path, "web:\n  image: nginx\n  environment: {A: '⟦secret:HOME⟧'}\n")
    state = load(tmp_path, pb, environ={"HOME": "/root"})
    env = state.containers["web1"][0].options["environment"]
    assert reveal(env, state.secrets) == {"A": "⟦secret:HOME⟧"}
    assert state.declared_secrets["web1"] == frozenset()
