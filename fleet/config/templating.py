"""Jinja2 rendering of every string value, per host, with undefined names as errors.

What every project needs is here; the bounded sandbox that renders a template is in
fleet.config.jinja_sandbox, imported (with Jinja2) only when a value is a template: a
project without templates never loads Jinja2.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from fleet.config.interpolation import Piece
from fleet.config.problems import KeyPath
from fleet.config.secrets import SecretStore, token


class TemplateError(ValueError):
    def __init__(self, path: KeyPath, message: str) -> None:
        super().__init__(message)
        self.path = path


class _NoEnv(LookupError):
    pass


def is_template(value: str) -> bool:
    return "{{" in value or "{%" in value or "{#" in value


_JINJA_OPENERS = "{%#"  # with a `{` before them: the start of an expression, block or comment
_LITERAL_BRACE = "{{ '{' }}"


def keep_variables_literal(pieces: Sequence[Piece]) -> str:
    """Interpolated pieces joined so that what variables gave stays text: the `{` of a
    Jinja2 delimiter (`{{`, `{%`, `{#`) made with a variable's value is written as an
    expression that renders `{`. A password with `{%` in it is then deployed as it is, not
    rendered (or refused) as a template; the file's own templates are left alone."""
    if not any(p.from_variable and any(c in p.text for c in _JINJA_OPENERS) for p in pieces):
        return "".join(p.text for p in pieces)
    text = "".join(p.text for p in pieces)
    substituted = [p.from_variable for p in pieces for _ in p.text]
    out = []
    for index, char in enumerate(text):
        if (char == "{" and index + 1 < len(text) and text[index + 1] in _JINJA_OPENERS
                and (substituted[index] or substituted[index + 1])):
            out.append(_LITERAL_BRACE)
        else:
            out.append(char)
    return "".join(out)


def contains_template(value: Any) -> bool:
    if isinstance(value, str):
        return is_template(value)
    if isinstance(value, dict):
        return any(contains_template(v) for v in value.values())
    if isinstance(value, list):
        return any(contains_template(v) for v in value)
    return False


def render_value(value: Any, context: Mapping[str, Any], path: KeyPath = ()) -> Any:
    """Render every string in `value` (keys are left as they are)."""
    if isinstance(value, str):
        if not is_template(value):
            return value
        from fleet.config import jinja_sandbox  # Jinja2 loads with the first template

        try:  # env() reads the controller's environment unless the context says otherwise
            return jinja_sandbox.render_string(value, {"env": _CONTROLLER_ENV, **context})
        except jinja_sandbox.RenderFailure as exc:
            raise TemplateError(path, str(exc)) from None
    if isinstance(value, dict):
        return {k: render_value(v, context, (*path, k)) for k, v in value.items()}
    if isinstance(value, list):
        return [render_value(v, context, (*path, i)) for i, v in enumerate(value)]
    return value


def env_function(environ: Mapping[str, str]) -> Callable[..., str]:
    def env(name: str, default: str | None = None) -> str:
        if name in environ:
            return environ[name]
        if default is not None:
            return default
        raise _NoEnv(f"environment variable '{name}' is not set on the controller")

    return env


_CONTROLLER_ENV = env_function(os.environ)


def base_context(
    project: str, secrets: SecretStore, environ: Mapping[str, str] | None = None
) -> dict[str, Any]:
    def secret(name: str) -> str:
        secrets.value(name)  # fail now, at validation, if it is not set
        from fleet.config.jinja_sandbox import count_secret  # called only while rendering

        count_secret()  # every token made must come out whole
        return token(name)

    context: dict[str, Any] = {"project": project, "secret": secret}
    if environ is not None:
        context["env"] = env_function(environ)
    return context
