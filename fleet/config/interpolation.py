"""Compose's variable interpolation (`$VAR`, `${VAR:-default}`, `$$`...) in a file's values.

The Compose specification's rules: `$NAME` and `${NAME}` with NAME a letter or `_`, then
letters, digits or `_` (either case); `${NAME:-word}` / `${NAME-word}` a default when NAME
is unset or empty / unset; `${NAME:?word}` / `${NAME?word}` an error when it is; `${NAME:+word}`
/ `${NAME+word}` the word when NAME is set and non-empty / set, else its value (empty);
`$$` a literal `$`. A word may hold further interpolations (`${A:-${B:-x}}`), expanded only
when it is used. A `$` followed by anything else is kept as it is; a `${` that is not one of
these forms is an error, as in Compose. An unset variable without a default becomes an empty
string, and is reported so the caller can warn. Only values are interpolated, never keys.

A braced expression ends at the `}` that balances its `{`: `${A:-{{ x }}}` has the default
`{{ x }}` (a Jinja2 template stays whole). Compose's reference implementation counts braces
too, with a quirk for `{{` that this does not copy.

Pure: the variables are given as a mapping, nothing here reads the environment or a file.
Bounded: a result's size and the nesting of `${...}` in defaults are limited.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from fleet.config.problems import KeyPath
from fleet.config.source import SourceDoc

MAX_INTERPOLATED_CHARS = 1_000_000  # one value after interpolation
MAX_INTERPOLATED_TOTAL = 16_000_000  # all interpolated values of one file, together
MAX_NESTING = 16  # `${A:-${B:-...}}`: interpolations inside a default, error or alternative

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_BRACES = re.compile("[{}]")
_OPERATORS = (":-", ":?", ":+", "-", "?", "+")  # two-character ones first


class InterpolationError(ValueError):
    """A required variable is missing (`${VAR:?message}`), an expression is not one
    Compose accepts, or a limit was crossed. `plain` says it without quoting the text (for
    env files, whose values may be secrets)."""

    def __init__(self, message: str, plain: str | None = None, *, whole_file: bool = False
                 ) -> None:
        super().__init__(message)
        self.plain = plain or message
        self.whole_file = whole_file  # the file's total crossed: nothing more is read of it


@dataclass(frozen=True)
class Piece:
    """Part of an interpolated value: text of the file, or a variable's value."""

    text: str
    from_variable: bool


# How pieces are joined into the value at a key path (the default: plainly). A caller that
# renders some values as templates later passes one that keeps variables' values literal.
Joiner = Callable[[KeyPath, Sequence[Piece]], str]


def _plain(path: KeyPath, pieces: Sequence[Piece]) -> str:
    return "".join(piece.text for piece in pieces)


def _closing_brace(text: str, start: int) -> int:
    """The index of the `}` that closes the `{` just before `start`, or -1."""
    depth = 1
    for brace in _BRACES.finditer(text, start):
        depth += 1 if brace.group() == "{" else -1
        if depth == 0:
            return brace.start()
    return -1


class _Expander:
    """Interpolates one value; remembers the variables it found unset (for warnings)."""

    def __init__(self, variables: Mapping[str, str], budget: int) -> None:
        self.variables = variables
        self.budget = min(budget, MAX_INTERPOLATED_CHARS)
        self.size = 0
        self.unset: list[str] = []

    def _emit(self, pieces: list[Piece], text: str, from_variable: bool) -> None:
        if not text:
            return
        self.size += len(text)
        if self.size > self.budget:
            if self.budget < MAX_INTERPOLATED_CHARS:
                raise InterpolationError(
                    f"the file's interpolated values would exceed {MAX_INTERPOLATED_TOTAL:,} "
                    "characters together", whole_file=True)
            raise InterpolationError(f"the interpolated value would exceed "
                                     f"{MAX_INTERPOLATED_CHARS:,} characters")
        pieces.append(Piece(text, from_variable))

    def _value(self, pieces: list[Piece], name: str) -> None:
        value = self.variables.get(name)
        if value is None:
            if name not in self.unset:
                self.unset.append(name)
            return
        self._emit(pieces, value, True)

    def expand(self, text: str, depth: int = 0) -> list[Piece]:
        pieces: list[Piece] = []
        literal_from = index = 0
        while (dollar := text.find("$", index)) >= 0:
            after = text[dollar + 1:dollar + 2]
            if after == "$":  # `$$`: one literal `$`
                self._emit(pieces, text[literal_from:dollar + 1], False)
                literal_from = index = dollar + 2
            elif after == "{":
                close = _closing_brace(text, dollar + 2)
                if close < 0:
                    why = "'${' is never closed by '}'"
                    raise InterpolationError(f"invalid interpolation {_shown(text[dollar:])}: "
                                             f"{why}", f"invalid interpolation: {why}")
                self._emit(pieces, text[literal_from:dollar], False)
                pieces.extend(self._braced(text[dollar + 2:close], depth))
                literal_from = index = close + 1
            elif name := _NAME.match(text, dollar + 1):
                self._emit(pieces, text[literal_from:dollar], False)
                self._value(pieces, name.group())
                literal_from = index = name.end()
            else:  # `$1`, `$-`, a `$` at the end: not an interpolation, kept as written
                index = dollar + 1
        self._emit(pieces, text[literal_from:], False)
        return pieces

    def _braced(self, content: str, depth: int) -> list[Piece]:
        name_match = _NAME.match(content)
        rest = content[name_match.end():] if name_match else content
        operator = next((op for op in _OPERATORS if rest.startswith(op)), "")
        if name_match is None or (not operator and rest):
            why = ("expected ${NAME} or ${NAME:-default} (also -, :?, ?, :+, +), NAME a letter "
                   "or '_', then letters, digits or '_'")
            raise InterpolationError(f"invalid interpolation {_shown('${' + content + '}')}: "
                                     f"{why}", f"invalid interpolation: {why}")
        name = name_match.group()
        pieces: list[Piece] = []
        if not operator:
            self._value(pieces, name)
            return pieces
        if depth >= MAX_NESTING:
            raise InterpolationError(f"interpolations are nested more than {MAX_NESTING} levels "
                                     "deep")
        word = rest[len(operator):]
        value = self.variables.get(name)
        present = value is not None and (value != "" or ":" not in operator)
        if operator in (":-", "-"):
            if present:
                self._emit(pieces, value or "", True)
                return pieces
            return self.expand(word, depth + 1)
        if operator in (":?", "?"):
            if present:
                self._emit(pieces, value or "", True)
                return pieces
            message = "".join(p.text for p in self.expand(word, depth + 1))
            missing = f"required variable {name} is missing a value"
            raise InterpolationError(missing + (f": {message}" if message else ""), missing)
        if present:  # `:+` and `+`: the alternative when set (and not empty, for `:+`)
            return self.expand(word, depth + 1)
        self._emit(pieces, value or "", True)
        return pieces


def _shown(text: str, limit: int = 80) -> str:
    return repr(text if len(text) <= limit else text[:limit] + "...")


def interpolate_pieces(text: str, variables: Mapping[str, str],
                       budget: int = MAX_INTERPOLATED_CHARS) -> tuple[list[Piece], list[str]]:
    """`text` interpolated, as pieces, and the variables it used unset without a default.
    Raises InterpolationError."""
    expander = _Expander(variables, budget)
    return expander.expand(text), expander.unset


def interpolate(text: str, variables: Mapping[str, str]) -> tuple[str, list[str]]:
    """`text` interpolated, and the variables it used unset without a default."""
    pieces, unset = interpolate_pieces(text, variables)
    return "".join(p.text for p in pieces), unset


def unset_warning(name: str) -> str:
    return (f"variable {name} is not set: an empty string is used, as Compose does "
            f"(${{{name}:-default}} gives a default, $$ writes a literal $)")


@dataclass(frozen=True)
class Finding:
    path: KeyPath
    message: str
    severity: str  # "error" or "warning"


def interpolate_data(data: Any, variables: Mapping[str, str], join: Joiner = _plain
                     ) -> tuple[Any, list[Finding]]:
    """Every string value in `data` (lists and mappings, not keys) interpolated, and what
    was found: an error per value that cannot be interpolated (it is left as written), a
    warning per unset variable per value. Past MAX_INTERPOLATED_TOTAL the data is None,
    with that one error (like a YAML limit, it stops the file)."""
    findings: list[Finding] = []
    total = 0

    class _Stop(Exception):
        pass

    def walk(value: Any, path: KeyPath) -> Any:
        nonlocal total
        if isinstance(value, str):
            if "$" not in value:
                return value
            try:
                pieces, unset = interpolate_pieces(value, variables,
                                                   MAX_INTERPOLATED_TOTAL - total)
            except InterpolationError as exc:
                findings.append(Finding(path, str(exc), "error"))
                if exc.whole_file:
                    raise _Stop from None
                return value
            findings.extend(Finding(path, unset_warning(name), "warning") for name in unset)
            result = join(path, pieces)
            total += len(result)
            return result
        if isinstance(value, dict):
            return {key: walk(item, (*path, key)) for key, item in value.items()}
        if isinstance(value, list):
            return [walk(item, (*path, index)) for index, item in enumerate(value)]
        return value

    try:
        return walk(data, ()), findings
    except _Stop:
        return None, findings


def interpolate_doc(doc: SourceDoc, variables: Mapping[str, str], join: Joiner = _plain
                    ) -> SourceDoc:
    """The document with its values interpolated; problems added at their file:line."""
    if doc.data is None:
        return doc
    doc.data, findings = interpolate_data(doc.data, variables, join)
    for finding in findings:
        problem = doc.problem(finding.path, finding.message, severity=finding.severity)
        # A value left as written would fail validation too, with a misleading message.
        doc.problems.append(replace(problem, root_cause=finding.severity == "error"))
    return doc
