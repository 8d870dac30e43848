"""Jinja2's sandbox, bounded: the rendering of one template string (fleet.config.templating
loads this module, and Jinja2, only for a project that has templates).

Templates come from files fleet does not trust, so rendering is bounded: Jinja's sandbox
keeps them from Python's internals, and on top of it every value's rendering has a budget
of steps (loop iterations, calls, operators) and of characters made, no string or list
built on the way may exceed MAX_VALUE, numbers may not grow past MAX_INT_BITS, and the
result is at most MAX_RENDERED_CHARS. Checks come before the work where the work would be
large (`'x' * 10**9`, `9 ** 99999999`, `s|indent(10**6)`), after it where it is bounded.

secret() renders to a token that is replaced by the value only when a container is made,
so a template may place it whole, never transform it: `secret('P')|upper` would deploy
a mangled token. That is refused when the template is compiled (secret() used anywhere
but as output, in a concatenation, a conditional branch or a variable) and again after
rendering (every token made must come out whole).
"""

from __future__ import annotations

import contextvars
import functools
import itertools
import re
import string
from collections.abc import Callable, Iterable, Iterator, Mapping
from functools import lru_cache
from typing import Any, cast

import jinja2
from jinja2 import nodes
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment

from fleet.config.secrets import token

MAX_TEMPLATE_CHARS = 100_000  # the source of one template
MAX_RENDERED_CHARS = 1_000_000  # the result of rendering one value
MAX_VALUE = 1_000_000  # any string or list made while rendering (characters + items)
MAX_MADE = 4_000_000  # all strings and lists made while rendering one value, together
MAX_STEPS = 200_000  # loop iterations, calls, filters and operators for one value
MAX_INT_BITS = 4096  # integers made by arithmetic (about 1,233 decimal digits)

_SECRET_TRANSFORMED = "secret() output cannot be transformed: use it as a whole value"
_INTACT_TOKEN = re.compile(re.escape(token("NAME")).replace("NAME", r"[A-Za-z_][A-Za-z0-9_.-]*"))
_TOKEN_MARKS = re.compile("[" + re.escape(token("x")[0] + token("x")[-1]) + "]")


class TemplateLimit(Exception):
    """A template went over one of the bounds above."""


class SecretMisuse(ValueError):
    pass


# --- budget -----------------------------------------------------------------------------


class _Budget:
    def __init__(self) -> None:
        self.steps = 0
        self.made = 0
        self.secrets = 0

    def step(self) -> None:
        self.steps += 1
        if self.steps > MAX_STEPS:
            raise TemplateLimit(f"more than {MAX_STEPS:,} steps (loop iterations, calls, "
                                "filters and operators)")

    def make(self, value: Any) -> Any:
        """Charge a value just made to the budget; refuse it if it is too large."""
        size = _weight(value, MAX_VALUE)
        if size > MAX_VALUE:
            raise TemplateLimit(f"a value of more than {MAX_VALUE:,} characters or items")
        self.made += size
        if self.made > MAX_MADE:
            raise TemplateLimit(f"more than {MAX_MADE:,} characters and items made in all")
        return value


_BUDGET: contextvars.ContextVar[_Budget] = contextvars.ContextVar("fleet_template_budget")


def _budget() -> _Budget:
    try:
        return _BUDGET.get()
    except LookupError:  # outside render_value (constant folding at compile time)
        return _Budget()


def _weight(value: Any, limit: int, indent: int = 0) -> int:
    """Characters and items in `value`, counting into nested lists and mappings, each item
    also charged `indent` per level (for pretty-printers); stops counting past `limit`."""
    if isinstance(value, str | bytes | bytearray):
        return len(value)
    if not isinstance(value, _CONTAINERS):
        return 1
    total = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack and total <= limit:
        item, depth = stack.pop()
        children: Iterable[Any] = item
        if isinstance(item, Mapping):
            children = itertools.chain(item.keys(), item.values())
        total += len(item)
        for child in children:
            if isinstance(child, str):
                total += len(child) + indent * depth
            elif isinstance(child, _CONTAINERS):
                stack.append((child, depth + 1))
            else:
                total += 1 + indent * depth
    return total


_CONTAINERS = (Mapping, list, tuple, set, frozenset)


def _check_size(size: int, what: str) -> None:
    if size > MAX_VALUE:
        raise TemplateLimit(f"{what} would make more than {MAX_VALUE:,} characters or items")


def _check_count(value: Any, what: str) -> None:
    """A width, count or length argument: at most MAX_VALUE."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_VALUE:
        raise TemplateLimit(f"{what} with {value:,}: numbers given as widths or counts are "
                            f"limited to {MAX_VALUE:,}")


# --- formatting -------------------------------------------------------------------------

_PERCENT_SPEC = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(\*|\d*)(?:\.(\*|\d*))?")


def _check_percent(fmt: str, args: Any) -> None:
    """`'%5s' % x` and `|format`: widths bounded, result estimated before it is made."""
    fields = 0
    for match in _PERCENT_SPEC.finditer(fmt):
        fields += 1
        for number in match.groups():
            if number == "*":
                raise TemplateLimit("'*' widths in % formatting are not supported")
            if number and (len(number) > 7 or int(number) > MAX_VALUE):
                raise TemplateLimit(f"% format width {number} is over {MAX_VALUE:,}")
    _check_size(len(fmt) + fields * _weight(args, MAX_VALUE + 1), "% formatting")


def _check_str_format(fmt: str, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> None:
    """`'{:>10}'.format(x)`: the same for str.format (nested `{:{w}}` specs refused)."""
    fields = 0
    for _, field, spec, _ in string.Formatter().parse(fmt):
        if field is None:
            continue
        fields += 1
        if spec and "{" in spec:
            raise TemplateLimit("nested replacement fields in a format spec are not supported")
        for number in re.findall(r"\d+", spec or ""):
            if len(number) > 7 or int(number) > MAX_VALUE:
                raise TemplateLimit(f"format width {number} is over {MAX_VALUE:,}")
    largest = max((_weight(v, MAX_VALUE + 1) for v in (*args, *kwargs.values())), default=0)
    _check_size(len(fmt) + fields * largest, "str.format()")


# --- filters ----------------------------------------------------------------------------


def _text(value: Any) -> str:
    return value if isinstance(value, str) else str(value)


def _replace_size(s: str, old: str, new: str, count: Any = None) -> int:
    found = s.count(old) if old else len(s) + 1
    if isinstance(count, int) and count >= 0:
        found = min(found, count)
    return len(s) + found * len(new)


def _before_indent(value: Any, width: Any = 4, *args: Any, **kwargs: Any) -> None:
    text = _text(value)
    per_line = width if isinstance(width, int) else len(_text(width))
    _check_size(len(text) + (text.count("\n") + 1) * per_line, "indent")


def _before_wordwrap(value: Any, width: int = 79, break_long_words: bool = True,
                     wrapstring: str | None = None, *args: Any, **kwargs: Any) -> None:
    text = _text(value)
    wrap = len(kwargs.get("wrapstring", wrapstring) or "\n")
    lines = len(text) // max(int(kwargs.get("width", width)), 1) + text.count("\n") + 1
    _check_size(len(text) + lines * wrap, "wordwrap")


def _before_replace(value: Any, old: Any, new: Any, count: Any = None) -> None:
    _check_size(_replace_size(_text(value), _text(old), _text(new), count), "replace")


def _before_join(value: Any, d: Any = "", attribute: Any = None) -> None:
    items = list(value) if not isinstance(value, list | tuple) else value
    _check_size(_weight(items, MAX_VALUE + 1) + len(items) * len(_text(d)), "join")


def _before_center(value: Any, width: Any = 80) -> None:
    _check_size(max(len(_text(value)), width if isinstance(width, int) else 0), "center")


def _before_format(value: Any, *args: Any, **kwargs: Any) -> None:
    _check_percent(_text(value), kwargs or args)


def _before_tojson(value: Any, indent: Any = None) -> None:
    step = indent if isinstance(indent, int) else len(_text(indent)) if indent else 0
    _check_size(2 * _weight(value, MAX_VALUE + 1, indent=step + 1), "tojson")


def _before_pprint(value: Any) -> None:
    _check_size(2 * _weight(value, MAX_VALUE + 1, indent=2), "pprint")


_BEFORE: dict[str, Callable[..., None]] = {
    "indent": _before_indent, "wordwrap": _before_wordwrap, "replace": _before_replace,
    "join": _before_join, "center": _before_center, "format": _before_format,
    "tojson": _before_tojson, "pprint": _before_pprint,
}
_REMOVED_FILTERS = ("urlize",)  # output grows with its arguments per URL; no use in config


def _bounded_filter(name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    pass_arg = getattr(func, "jinja_pass_arg", None)
    skip = 0 if pass_arg is None else 1  # context, eval context or environment first
    before = _BEFORE.get(name)

    @functools.wraps(func)
    def bounded(*args: Any, **kwargs: Any) -> Any:
        budget = _budget()
        budget.step()
        for extra in (*args[skip + 1:], *kwargs.values()):
            _check_count(extra, f"|{name}")
        if before is not None:
            if name == "join" and len(args) > skip and not isinstance(args[skip], list | tuple):
                args = (*args[:skip], list(args[skip]), *args[skip + 1:])
            before(*args[skip:], **kwargs)
        return budget.make(func(*args, **kwargs))

    return bounded


# --- the environment --------------------------------------------------------------------

_STR_METHODS = frozenset({
    "capitalize", "casefold", "center", "count", "encode", "decode", "endswith", "find",
    "format", "format_map", "index", "isalnum", "isalpha", "isascii", "isdecimal", "isdigit",
    "isidentifier", "islower", "isnumeric", "isprintable", "isspace", "istitle", "isupper",
    "join", "ljust", "lower", "lstrip", "partition", "removeprefix", "removesuffix",
    "replace", "rfind", "rindex", "rjust", "rpartition", "rsplit", "rstrip", "split",
    "splitlines", "startswith", "strip", "swapcase", "title", "upper", "zfill", "hex",
})  # not expandtabs, translate, maketrans: their output grows with their arguments
_BUILTIN_TYPES = (str, bytes, int, float, list, tuple, dict, range, set, frozenset)


def _check_method(method: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> None:
    owner = getattr(method, "__self__", None)
    if not isinstance(owner, _BUILTIN_TYPES):
        return
    name = getattr(method, "__name__", "?")
    for value in (*args, *kwargs.values()):
        _check_count(value, f"{type(owner).__name__}.{name}()")
    if not isinstance(owner, str | bytes):
        return
    if name not in _STR_METHODS:
        raise TemplateLimit(f"{type(owner).__name__}.{name}() is not available in templates")
    if name == "replace" and len(args) >= 2:
        old, new = (_text(a) if isinstance(owner, str) else a for a in args[:2])
        size = _replace_size(owner, old, new, args[2] if len(args) > 2 else None)  # type: ignore[arg-type]
        _check_size(size, "replace()")
    elif name == "join" and args:
        items = args[0]
        _check_size(_weight(items, MAX_VALUE + 1) + len(items) * len(owner)
                    if isinstance(items, list | tuple) else 0, "join()")


class _BoundedEnvironment(ImmutableSandboxedEnvironment):
    """The sandbox, with every operator that can make large values checked first."""

    intercepted_binops = frozenset({"+", "*", "**", "%", "//", "/", "-"})

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        budget = _budget()
        budget.step()
        ints = (isinstance(left, int) and isinstance(right, int))
        if operator == "**" and ints and right > 0 and abs(left) > 1:
            if (abs(left).bit_length() - 1) * right > MAX_INT_BITS:  # a lower bound
                raise TemplateLimit(f"{left} ** {right} is larger than {MAX_INT_BITS} bits")
        elif operator == "*" and ints:
            if left.bit_length() + right.bit_length() > MAX_INT_BITS:
                raise TemplateLimit(f"a product larger than {MAX_INT_BITS} bits")
        elif operator == "*":
            sequence, times = (left, right) if isinstance(right, int) else (right, left)
            if isinstance(times, int) and isinstance(sequence, str | bytes | list | tuple):
                _check_size(_weight(sequence, MAX_VALUE + 1) * max(times, 0), "'*'")
        elif operator == "+" and isinstance(left, str | bytes | list | tuple):
            _check_size(len(left) + len(right), "'+'")  # what is in them: checked once made
        elif operator == "%" and isinstance(left, str):
            _check_percent(left, right)
        return budget.make(super().call_binop(context, operator, left, right))

    def call(__self, __context: Context, __obj: Any,  # the names Jinja gives them
             *args: Any, **kwargs: Any) -> Any:
        budget = _budget()
        budget.step()
        _check_method(__obj, args, kwargs)
        return budget.make(super().call(__context, __obj, *args, **kwargs))

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        wrapped = super().wrap_str_format(value)
        if wrapped is None:
            return None
        fmt: str = value.__self__
        is_map = value.__name__ == "format_map"

        def checked(*args: Any, **kwargs: Any) -> str:
            if is_map and len(args) == 1 and isinstance(args[0], Mapping):
                _check_str_format(fmt, (), args[0])
            else:
                _check_str_format(fmt, args, kwargs)
            return wrapped(*args, **kwargs)

        return checked


def _loop_steps(iterable: Iterable[Any]) -> Iterator[Any]:
    budget = _budget()
    for item in iterable:
        budget.step()
        yield item


def _concat(*parts: Any) -> str:
    """`a ~ b ~ c`, with the total checked before the string is made."""
    texts = []
    size = 0
    for part in parts:
        text = _text(part)
        size += len(text)
        _check_size(size, "'~'")
        texts.append(text)
    return _budget().make("".join(texts))  # type: ignore[no-any-return]


def _emit(value: Any) -> str:
    """Every piece of output, also inside {% set %} blocks, macros and filter blocks."""
    return _budget().make(_text(value))  # type: ignore[no-any-return]


_ENVIRONMENT = _BoundedEnvironment(
    undefined=jinja2.StrictUndefined, autoescape=False, keep_trailing_newline=True
)
_JINJA_SUM = _ENVIRONMENT.filters["sum"]


@jinja2.pass_environment
def _sum(environment: jinja2.Environment, iterable: Iterable[Any], attribute: Any = None,
         start: Any = 0) -> Any:
    """Jinja's `sum`, but lists are joined in linear time (sum() is quadratic on them)."""
    if not isinstance(start, list | tuple):
        return _JINJA_SUM(environment, iterable, attribute, start)
    if attribute is not None:
        iterable = map(jinja2.filters.make_attrgetter(environment, attribute), iterable)
    result = list(start)
    for item in iterable:
        result.extend(item)
        _check_size(len(result), "sum")
    return type(start)(result)


_ENVIRONMENT.filters["sum"] = _sum
for _name in _REMOVED_FILTERS:
    _ENVIRONMENT.filters.pop(_name, None)
_ENVIRONMENT.filters.update({name: _bounded_filter(name, func)
                             for name, func in _ENVIRONMENT.filters.items()})
_ENVIRONMENT.filters.update({"fleet_loop": _loop_steps, "fleet_concat": _concat,
                             "fleet_emit": _emit})
_ENVIRONMENT.globals.pop("lipsum", None)  # lipsum(n=...) writes as much as it is asked


# --- compiling --------------------------------------------------------------------------


def _calls_secret(node: nodes.Node, secret_names: set[str]) -> bool:
    if isinstance(node, nodes.Call):
        return isinstance(node.node, nodes.Name) and node.node.name == "secret"
    return isinstance(node, nodes.Name) and node.ctx == "load" and node.name in secret_names


def _check_secret_use(tree: nodes.Template) -> None:
    """secret() only where its token passes through whole: output, `~`/`+` concatenation,
    a branch of `x if c else y`, `{% set v = secret(...) %}` (v is then followed too)."""
    secret_names: set[str] = set()

    def carries(node: nodes.Node) -> bool:
        if _calls_secret(node, secret_names):
            return True
        if isinstance(node, nodes.Concat):
            return any(carries(n) for n in node.nodes)
        if isinstance(node, nodes.Add):
            return carries(node.left) or carries(node.right)
        if isinstance(node, nodes.CondExpr):
            return carries(node.expr1) or (node.expr2 is not None and carries(node.expr2))
        return False

    def passes_through(parent: nodes.Node, field: str) -> bool:
        return (isinstance(parent, nodes.Output | nodes.Concat | nodes.Add)
                or (isinstance(parent, nodes.CondExpr) and field in ("expr1", "expr2"))
                or (isinstance(parent, nodes.Assign) and field == "node")
                or (isinstance(parent, nodes.With) and field == "values"))

    def visit(node: nodes.Node) -> None:
        if isinstance(node, nodes.Assign) and isinstance(node.target, nodes.Name) \
                and carries(node.node):
            secret_names.add(node.target.name)
        if isinstance(node, nodes.With):
            for target, value in zip(node.targets, node.values, strict=False):
                if isinstance(target, nodes.Name) and carries(value):
                    secret_names.add(target.name)
        for field, value in node.iter_fields():
            children = value if isinstance(value, list) else [value]
            for child in children:
                if not isinstance(child, nodes.Node):
                    continue
                if carries(child) and not passes_through(node, field):
                    raise SecretMisuse(_SECRET_TRANSFORMED)
                visit(child)

    visit(tree)


def _filter(node: nodes.Expr, name: str, args: list[nodes.Expr] | None = None) -> nodes.Filter:
    return nodes.Filter(node, name, args or [], [], None, None, lineno=node.lineno)


def _bound_tree(node: nodes.Node) -> None:
    """Route loops, concatenations and output through the budget (see the filters)."""
    for field, value in node.iter_fields():
        children = value if isinstance(value, list) else [value]
        for child in children:
            if isinstance(child, nodes.Node):
                _bound_tree(child)
        if isinstance(value, list):
            setattr(node, field, [_bounded(c, node, field) for c in value])
        elif isinstance(value, nodes.Node):
            setattr(node, field, _bounded(value, node, field))
    if isinstance(node, nodes.For):
        if node.recursive:
            raise TemplateLimit("recursive loops are not supported")
        node.iter = _filter(cast(nodes.Expr, node.iter), "fleet_loop")


def _bounded(child: Any, parent: nodes.Node, field: str) -> Any:
    if isinstance(child, nodes.Concat):
        return _filter(child.nodes[0], "fleet_concat", child.nodes[1:])
    if isinstance(parent, nodes.Output) and field == "nodes":
        return _filter(child, "fleet_emit")
    return child


@lru_cache(maxsize=4096)
def _compile(source: str) -> jinja2.Template:
    if len(source) > MAX_TEMPLATE_CHARS:
        raise TemplateLimit(f"a template of more than {MAX_TEMPLATE_CHARS:,} characters")
    tree = _ENVIRONMENT.parse(source)
    _check_secret_use(tree)
    _bound_tree(tree)
    tree.set_environment(_ENVIRONMENT)
    return _ENVIRONMENT.from_string(tree)


def _render(source: str, context: Mapping[str, Any]) -> str:
    budget = _Budget()
    reset = _BUDGET.set(budget)
    try:
        template = _compile(source)
        pieces: list[str] = []
        size = 0
        for piece in template.root_render_func(template.new_context(dict(context))):
            size += len(piece)
            if size > MAX_RENDERED_CHARS:
                raise TemplateLimit(f"a result of more than {MAX_RENDERED_CHARS:,} characters")
            pieces.append(piece)
    finally:
        _BUDGET.reset(reset)
    result = "".join(pieces)
    # A token may also come in through a variable (an inventory's Ansible Vault value).
    if budget.secrets or _TOKEN_MARKS.search(result):
        intact = _INTACT_TOKEN.findall(result)
        if len(intact) < budget.secrets or _TOKEN_MARKS.search(_INTACT_TOKEN.sub("", result)):
            raise SecretMisuse(_SECRET_TRANSFORMED)
    return result


class RenderFailure(Exception):
    """A template that could not be rendered, in words for the user."""


def render_string(source: str, context: Mapping[str, Any]) -> str:
    """One template string rendered; every way it can fail is a RenderFailure."""
    try:
        return _render(source, context)
    except TemplateLimit as exc:
        raise RenderFailure(f"template exceeds a limit: {exc}") from None
    except SecretMisuse as exc:
        raise RenderFailure(str(exc)) from None
    except jinja2.UndefinedError as exc:
        raise RenderFailure(f"undefined name in template: {exc.message}") from None
    except jinja2.TemplateSyntaxError as exc:
        raise RenderFailure(f"template syntax error: {exc.message}") from None
    except LookupError as exc:  # env() of an unset variable among them
        raise RenderFailure(str(exc.args[0]) if exc.args else str(exc)) from None
    except jinja2.TemplateError as exc:
        raise RenderFailure(f"template error: {exc}") from None
    except RecursionError:
        raise RenderFailure("template is nested too deeply") from None
    except Exception as exc:  # an error raised inside the user's expression
        raise RenderFailure(f"template failed: {type(exc).__name__}: {exc}") from None


def count_secret() -> None:
    """secret() was called while rendering: its token must come out whole."""
    _budget().secrets += 1
