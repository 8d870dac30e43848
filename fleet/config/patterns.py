"""Host patterns, one syntax everywhere (placement `hosts:` and `--limit`).

Following Ansible's conventions: terms separated by commas; a plain term adds hosts,
`&term` keeps only hosts also in term, `!term` removes hosts. A term is `all`/`*`, a
label test `key=glob`, a group name, `~regex` on host names, or a glob on host names.
Plain terms are unioned first, then intersections, then exclusions apply, so the order
of terms does not matter; with no plain term, the base is all hosts.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

Op = Literal["add", "and", "not"]


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


def parse_pattern(pattern: str) -> list[Term]:
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
        if text.startswith("~"):
            try:
                re.compile(text[1:])
            except re.error as exc:
                raise PatternError(f"bad regular expression in {text!r}: {exc}") from None
        terms.append(Term(op, text))
    return terms


def _match_term(
    text: str, hosts: Sequence[Matchable], groups: Mapping[str, frozenset[str]]
) -> set[str]:
    if text in ("all", "*"):
        return {h.name for h in hosts}
    if text.startswith("~"):
        regex = re.compile(text[1:])
        return {h.name for h in hosts if regex.search(h.name)}
    if "=" in text:
        key, _, value_glob = text.partition("=")
        return {
            h.name
            for h in hosts
            if key.strip() in h.labels and fnmatch.fnmatchcase(h.labels[key.strip()], value_glob)
        }
    if text in groups:
        return set(groups[text])
    return {h.name for h in hosts if fnmatch.fnmatchcase(h.name, text)}


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
