"""Jinja2 rendering of every string value, per host, with undefined names as errors."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from functools import lru_cache
from typing import Any

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment

from fleet.config.problems import KeyPath
from fleet.config.secrets import SecretStore, token


class TemplateError(ValueError):
    def __init__(self, path: KeyPath, message: str) -> None:
        super().__init__(message)
        self.path = path


class _NoEnv(LookupError):
    pass


def _env_function(environ: Mapping[str, str]) -> Callable[..., str]:
    def env(name: str, default: str | None = None) -> str:
        if name in environ:
            return environ[name]
        if default is not None:
            return default
        raise _NoEnv(f"environment variable '{name}' is not set on the controller")

    return env


_ENVIRONMENT = ImmutableSandboxedEnvironment(
    undefined=jinja2.StrictUndefined, autoescape=False, keep_trailing_newline=True
)
_ENVIRONMENT.globals["env"] = _env_function(os.environ)


@lru_cache(maxsize=4096)
def _compile(source: str) -> jinja2.Template:
    return _ENVIRONMENT.from_string(source)


def is_template(value: str) -> bool:
    return "{{" in value or "{%" in value or "{#" in value


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
        try:
            return _compile(value).render(context)
        except jinja2.UndefinedError as exc:
            raise TemplateError(path, f"undefined name in template: {exc.message}") from None
        except jinja2.TemplateSyntaxError as exc:
            raise TemplateError(path, f"template syntax error: {exc.message}") from None
        except (_NoEnv, LookupError) as exc:
            raise TemplateError(path, str(exc.args[0]) if exc.args else str(exc)) from None
        except jinja2.TemplateError as exc:
            raise TemplateError(path, f"template error: {exc}") from None
        except Exception as exc:  # an error raised inside the user's expression
            raise TemplateError(path, f"template failed: {type(exc).__name__}: {exc}") from None
    if isinstance(value, dict):
        return {k: render_value(v, context, (*path, k)) for k, v in value.items()}
    if isinstance(value, list):
        return [render_value(v, context, (*path, i)) for i, v in enumerate(value)]
    return value


def base_context(
    project: str, secrets: SecretStore, environ: Mapping[str, str] | None = None
) -> dict[str, Any]:
    def secret(name: str) -> str:
        secrets.value(name)  # fail now, at validation, if it is not set
        return token(name)

    context: dict[str, Any] = {"project": project, "secret": secret}
    if environ is not None:
        context["env"] = _env_function(environ)
    return context
