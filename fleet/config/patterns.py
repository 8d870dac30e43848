"""Host patterns, one syntax everywhere (placement `hosts:` and `--limit`).

Following Ansible's conventions: terms separated by commas; a plain term adds hosts,
`&term` keeps only hosts also in term, `!term` removes hosts. A term is `all`/`*`, a
label test `key=glob`, a group name, `~regex` on host names, or a glob on host names.
Plain terms are unioned first, then intersections, then exclusions apply, so the order
of terms does not matter; with no plain term, the base is all hosts.

Patterns come from the command line and from inventories, so matching must not be a way
to hang fleet: regular expressions and globs both run on RE2, whose matching time is
linear in the name (no backtracking: `~^(a+)+$` is as quick as `~^a+$`). RE2 has no
backreferences or lookaround; such a regex is refused with a clear error.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal, Protocol

import re2

Op = Literal["add", "and", "not"]
MAX_PATTERN_CHARS = 10_000  # a whole pattern: --limit web1,web2,... may be long
MAX_TERM_CHARS = 1_000  # one regex or glob

_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False  # RE2 would print its own line on stderr for each bad regex


class PatternError(ValueError):
    pass


@dataclass(frozen=True)
class Term:
    op: Op
    text: str


class Matchable(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def labels(self) -> Mapping[str, str]: ...


@lru_cache(maxsize=1024)
def _regex(text: str) -> Any:
    try:
        return re2.compile(text, options=_RE2_OPTIONS)
    except re2.error as exc:
        reason = exc.args[0].decode(errors="replace") if exc.args and isinstance(
            exc.args[0], bytes) else str(exc)
        raise PatternError(f"bad regular expression {text!r}: {reason} (fleet matches with "
                           "RE2: no backreferences or lookaround)") from None


def _class(body: str) -> str:
    """A glob's `[...]` (without the brackets) as an RE2 character class."""
    negate = body.startswith("!")
    body = body[1:] if negate else body
    parts: list[str] = []
    index = 0
    while index < len(body):
        if index + 2 < len(body) and body[index + 1] == "-":
            low, high = body[index], body[index + 2]
            if low <= high:  # an empty range matches nothing, as fnmatch has it
                parts.append(f"{re.escape(low)}-{re.escape(high)}")
            index += 3
        else:
            parts.append(re.escape(body[index]))
            index += 1
    if not parts:
        return "." if negate else r"[^\x00-\x{10FFFF}]"
    return f"[{'^' if negate else ''}{''.join(parts)}]"


def glob_to_regex(glob: str) -> str:
    """fnmatch's syntax (`*`, `?`, `[seq]`, `[!seq]`) as an RE2 expression for fullmatch;
    runs of `*` are one `*`."""
    out: list[str] = []
    index = 0
    while index < len(glob):
        char = glob[index]
        index += 1
        if char == "*":
            while index < len(glob) and glob[index] == "*":
                index += 1
            out.append(".*")
        elif char == "?":
            out.append(".")
        elif char == "[":
            end = index + 1 if index < len(glob) and glob[index] == "!" else index
            end = glob.find("]", end + 1 if end < len(glob) and glob[end] == "]" else end)
            if end < 0:
                out.append(re.escape(char))
            else:
                out.append(_class(glob[index:end]))
                index = end + 1
        else:
            out.append(re.escape(char))
    return "(?s)" + "".join(out)


@lru_cache(maxsize=1024)
def _glob(glob: str) -> Any:
    return _regex(glob_to_regex(glob))


def glob_matches(name: str, glob: str) -> bool:
    return _glob(glob).fullmatch(name) is not None


def parse_pattern(pattern: str) -> list[Term]:
    if len(pattern) > MAX_PATTERN_CHARS:
        raise PatternError(f"host pattern longer than {MAX_PATTERN_CHARS:,} characters")
    terms: list[Term] = []
    for raw in pattern.split(","):
        text = raw.strip()
        if not text:
            if pattern.strip():
                raise PatternError(f"bad host pattern {pattern!r}: empty term")
            raise PatternError("empty host pattern")
        op: Op = "add"
        if text[0] in "&!":
            op = "and" if text[0] == "&" else "not"
            text = text[1:].strip()
            if not text:
                raise PatternError(f"bad host pattern {pattern!r}: '&' or '!' without a term")
        if len(text) > MAX_TERM_CHARS:
            raise PatternError(f"host pattern term longer than {MAX_TERM_CHARS:,} characters: "
                               f"{text[:40]!r}...")
        if text.startswith("~"):
            _regex(text[1:])
        elif "=" in text:
            _glob(text.partition("=")[2])
        else:
            _glob(text)
        terms.append(Term(op, text))
    return terms


def _match_term(
    text: str, hosts: Sequence[Matchable], groups: Mapping[str, frozenset[str]]
) -> set[str]:
    if text in ("all", "*"):
        return {h.name for h in hosts}
    if text.startswith("~"):
        regex = _regex(text[1:])
        return {h.name for h in hosts if regex.search(h.name)}
    if "=" in text:
        key, _, value_glob = text.partition("=")
        return {
            h.name
            for h in hosts
            if key.strip() in h.labels and glob_matches(h.labels[key.strip()], value_glob)
        }
    if text in groups:
        return set(groups[text])
    return {h.name for h in hosts if glob_matches(h.name, text)}


@dataclass(frozen=True)
class PatternResult:
    hosts: list[str]  # in inventory order
    empty_terms: list[str]  # terms that matched no host at all (worth a warning)


def select_hosts(
    pattern: str | Sequence[Term],
    hosts: Sequence[Matchable],
    groups: Mapping[str, frozenset[str]] | None = None,
) -> PatternResult:
    terms = parse_pattern(pattern) if isinstance(pattern, str) else list(pattern)
    groups = groups or {}
    matched = {t: _match_term(t.text, hosts, groups) for t in terms}
    adds = [t for t in terms if t.op == "add"]
    selected: set[str] = set().union(*(matched[t] for t in adds)) if adds else {
        h.name for h in hosts
    }
    for term in terms:
        if term.op == "and":
            selected &= matched[term]
    for term in terms:
        if term.op == "not":
            selected -= matched[term]
    empty = [t.text for t in terms if not matched[t]]
    return PatternResult([h.name for h in hosts if h.name in selected], empty)
