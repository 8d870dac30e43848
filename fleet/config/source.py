"""YAML loading that remembers where every key and value came from.

PyYAML's constructed objects lose their positions, so we compose the node tree and
build plain Python values ourselves, recording the mark of each key path. Duplicate
keys, which PyYAML would silently overwrite, are reported. `<<:` merge keys are resolved
here too, by YAML's rules (a mapping's own keys override merged ones; in `<<: [*a, *b]`, a
overrides b), without PyYAML's flatten_mapping: it rewrites an anchor's shared node in
place, so an alias read after it saw merged keys as its own and reported them twice.

Input files are hostile until proven otherwise: every file is read with a size bound,
must be UTF-8 without control characters, and its YAML is bounded in nesting depth and
in how far aliases may expand (a few hundred bytes of anchors can otherwise stand for
billions of values). Only plain YAML tags are accepted.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from yaml.composer import Composer
from yaml.constructor import SafeConstructor
from yaml.resolver import Resolver

from fleet.config.problems import KeyPath, Problem

MAX_FILE_BYTES = 2 * 1024 * 1024  # any one config file: playbook, inventory, vars file
MAX_DEPTH = 64  # nesting of lists and mappings, aliases included
MAX_NODES = 1_000_000  # values in one document, aliases expanded
MAX_ALIAS_NODES = 100_000  # values that aliases stand for, all aliases together
MAX_ALIAS_CHARS = 4_000_000  # characters of the strings that aliases stand for, together


@dataclass(frozen=True)
class Location:
    line: int
    column: int


@dataclass
class SourceDoc:
    """A parsed file: its data and the location of every key path in it."""

    path: str
    data: Any
    value_locations: dict[KeyPath, Location] = field(default_factory=dict)
    key_locations: dict[KeyPath, Location] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    # Data moved or copied at load time (Compose's `extends`, `x-fleet:`): a path prefix here
    # -> the file and key path it was written at, so problems name where the user wrote it.
    origins: dict[KeyPath, tuple[str, KeyPath]] = field(default_factory=dict)

    def origin(self, path: KeyPath) -> tuple[str, KeyPath]:
        """The file and key path where the value at `path` was written."""
        for length in range(len(path), -1, -1):
            found = self.origins.get(path[:length])
            if found is not None:
                return found[0], (*found[1], *path[length:])
        return self.path, path

    def locate(self, path: KeyPath, *, at_key: bool = False) -> Location:
        """The closest known location of `path` (walking up to a parent if needed)."""
        table = self.key_locations if at_key else self.value_locations
        probe = path
        while probe:
            if probe in table:
                return table[probe]
            if probe in self.value_locations:
                return self.value_locations[probe]
            if probe in self.key_locations:  # files without values (INI, Ansible hosts)
                return self.key_locations[probe]
            probe = probe[:-1]
        return self.value_locations.get((), Location(1, 1))

    def problem(
        self, path: KeyPath, message: str, *, at_key: bool = False, severity: str = "error"
    ) -> Problem:
        loc = self.locate(path, at_key=at_key)
        file, written = self.origin(path) if self.origins else (self.path, path)
        return Problem(
            file, loc.line, loc.column, written, message,
            "warning" if severity == "warning" else "error",
        )


def _mark(node: yaml.Node) -> Location:
    return Location(node.start_mark.line + 1, node.start_mark.column + 1)


def _position(text: str, offset: int) -> Location:
    line_start = text.rfind("\n", 0, offset) + 1
    return Location(text.count("\n", 0, offset) + 1, offset - line_start + 1)


_NON_PRINTABLE = re.compile(
    "[^\t\n\r\x20-\x7e\x85\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]"
)  # what YAML allows in a stream, applied to every config file


def unprintable_problem(text: str, path: str) -> Problem | None:
    """A NUL byte or other control character, which no config file needs, at its place."""
    found = _NON_PRINTABLE.search(text)
    if found is None:
        return None
    where = _position(text, found.start())
    return Problem(path, where.line, where.column, (),
                   f"control character U+{ord(found.group()):04X} is not allowed in a config file")


def located(problem: Problem | None) -> str:
    """A reading problem as the reason of an error that already names the file."""
    if problem is None:
        return "cannot read"
    where = f" (line {problem.line}, column {problem.column})" if problem.line else ""
    return f"{problem.message}{where}"


def read_source(path: Path | str) -> tuple[str | None, Problem | None]:
    """The UTF-8 text of a config file, read no further than MAX_FILE_BYTES (so a huge
    file or /dev/zero is refused without being read), or the problem that stops it."""
    name = str(path)
    try:
        with open(path, "rb") as stream:
            data = stream.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        return None, Problem(name, 0, 0, (), "file not found")
    except OSError as exc:
        return None, Problem(name, 0, 0, (), f"cannot read: {exc.strerror or exc}")
    if len(data) > MAX_FILE_BYTES:
        return None, Problem(name, 0, 0, (), f"file is larger than {MAX_FILE_BYTES // 1024 // 1024}"
                             " MiB, the limit for a config file")
    try:
        return data.decode("utf-8"), None
    except UnicodeDecodeError as exc:
        good = data[: exc.start].decode("utf-8")
        where = _position(good, len(good))
        return None, Problem(name, where.line, where.column, (),
                             f"cannot read: not UTF-8 text (byte 0x{data[exc.start]:02x})")


class _LimitError(yaml.MarkedYAMLError):
    """A limit of ours, not a syntax error."""

    def __init__(self, problem: str, mark: Any) -> None:
        super().__init__(problem=problem, problem_mark=mark)


class _BoundedComposer(Composer):
    """Composes the node graph while counting what it would expand to.

    An alias is the node of its anchor, shared, so the graph stays as small as the text;
    what grows is the tree it stands for. Each anchored node's expanded size and height
    are recorded when it is complete, so every alias is charged its whole expansion, and
    an alias to a node still being composed (`&a [*a]`) is recognized as recursive."""

    peek_event: Callable[[], yaml.Event]  # the parser's

    def _start_limits(self) -> None:
        self._depth = 0
        self._nodes = 0
        self._alias_nodes = 0
        self._chars = 0
        self._alias_chars = 0
        self._heights: list[int] = []
        self._expanded: dict[str, tuple[int, int, int]] = {}

    def _charge(self, nodes: int, height: int, mark: Any) -> None:
        self._nodes += nodes
        if self._nodes > MAX_NODES:
            raise _LimitError(f"more than {MAX_NODES:,} values in one file", mark)
        if self._depth + height > MAX_DEPTH:
            raise _LimitError(f"lists and mappings are nested more than {MAX_DEPTH} levels "
                              "deep", mark)
        if self._heights:
            self._heights[-1] = max(self._heights[-1], height)

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            node = super().compose_node(parent, index)  # the anchor's node, or an error
            expanded = self._expanded.get(str(event.anchor))
            if expanded is None:
                raise _LimitError(f"alias *{event.anchor} is inside the value it refers to "
                                  "(a recursive alias)", event.start_mark)
            nodes, height, chars = expanded
            self._alias_nodes += nodes
            if self._alias_nodes > MAX_ALIAS_NODES:
                raise _LimitError(f"aliases expand to more than {MAX_ALIAS_NODES:,} values "
                                  "(an alias bomb?)", event.start_mark)
            self._alias_chars += chars
            self._chars += chars
            if self._alias_chars > MAX_ALIAS_CHARS:
                raise _LimitError(f"aliases expand to more than {MAX_ALIAS_CHARS:,} characters"
                                  " of text (an alias bomb?)", event.start_mark)
            self._charge(nodes, height, event.start_mark)
            return node
        before, chars_before = self._nodes, self._chars
        self._charge(1, 1, event.start_mark)
        self._depth += 1
        self._heights.append(0)
        node = super().compose_node(parent, index)
        if isinstance(node, yaml.ScalarNode):
            self._chars += len(node.value)
        height = 1 + self._heights.pop()
        self._depth -= 1
        if self._heights:
            self._heights[-1] = max(self._heights[-1], height)
        anchor = getattr(event, "anchor", None)
        if anchor is not None:
            self._expanded[anchor] = (self._nodes - before, height, self._chars - chars_before)
        return node


class _PureLoader(_BoundedComposer, yaml.SafeLoader):
    def __init__(self, text: str) -> None:
        yaml.SafeLoader.__init__(self, text)
        self._start_limits()


_FastLoader: type[_BoundedComposer] | None
try:  # libyaml's scanner and parser: about four times faster than PyYAML's own
    from yaml._yaml import CParser
except ImportError:  # pragma: no cover - PyYAML built without libyaml
    _FastLoader = None
else:
    class _CLoader(_BoundedComposer, CParser, SafeConstructor, Resolver):
        """libyaml's events, composed by our bounded composer (not libyaml's own)."""

        def __init__(self, text: str) -> None:
            CParser.__init__(self, text)
            Composer.__init__(self)
            SafeConstructor.__init__(self)
            Resolver.__init__(self)
            self._start_limits()

    _FastLoader = _CLoader


_CORE = "tag:yaml.org,2002:"
_PLAIN_TAGS = {_CORE + t for t in ("str", "int", "float", "bool", "null", "timestamp", "map",
                                   "seq")}
_AS_TEXT = {_CORE + "merge", _CORE + "value"}  # `<<` and `=` where they are just values
# Ansible's own tags, read only where Ansible would (inventories and their vars files).
UNSAFE_TAG, VAULT_TAG = "!unsafe", "!vault"


@dataclass(frozen=True)
class Vaulted:
    """A `!vault` value as written: Ansible Vault ciphertext, for the inventory to decrypt."""

    ciphertext: str


def _shown_tag(tag: str) -> str:
    return "!!" + tag[len(_CORE):] if tag.startswith(_CORE) else tag


_MERGE = _CORE + "merge"
Pair = tuple[str, yaml.Node, yaml.Node]  # a mapping's key as read, its key node, its value


class _Builder:
    def __init__(self, doc: SourceDoc, loader: SafeConstructor, ansible_tags: bool) -> None:
        self.doc = doc
        self.loader = loader
        # mapping node -> what it holds, `<<:` merges resolved (each mapping read once, and
        # the node graph left as composed: an anchor is shared by all its aliases)
        self.resolved: dict[int, list[Pair]] = {}
        self.ansible_tags = ansible_tags

    def refuse_tag(self, node: yaml.Node, path: KeyPath) -> bool:
        if node.tag in _PLAIN_TAGS or (node.tag in _AS_TEXT and isinstance(node,
                                                                           yaml.ScalarNode)):
            return False
        # `!unsafe` marks a value Ansible must not template (fleet templates no inventory
        # value, so it is the value as written); `!vault` holds a scalar's ciphertext.
        if self.ansible_tags and (node.tag == UNSAFE_TAG or (
                node.tag == VAULT_TAG and isinstance(node, yaml.ScalarNode))):
            return False
        shown = _shown_tag(node.tag)
        why = ("Python object tags are never loaded" if shown.startswith("!!python/")
               else "a !vault value must be a string of ciphertext" if shown == VAULT_TAG
               and self.ansible_tags
               else "fleet reads plain YAML: strings, numbers, booleans, null, lists, mappings")
        loc = _mark(node)
        self.doc.problems.append(Problem(self.doc.path, loc.line, loc.column, path,
                                         f"YAML tag {shown} is not allowed: {why}"))
        return True

    def scalar(self, node: yaml.ScalarNode, path: KeyPath) -> Any:
        if node.tag in _AS_TEXT or node.tag == UNSAFE_TAG:
            return node.value
        if node.tag == VAULT_TAG:
            return Vaulted(node.value)
        try:
            return self.loader.construct_object(node, deep=True)
        except (ValueError, TypeError, KeyError, AttributeError, OverflowError):
            loc = _mark(node)
            self.doc.problems.append(Problem(
                self.doc.path, loc.line, loc.column, path,
                f"cannot read {node.value!r} as {_shown_tag(node.tag)}"))
            return None

    def _problem_at(self, node: yaml.Node, path: KeyPath, message: str) -> None:
        loc = _mark(node)
        self.doc.problems.append(Problem(self.doc.path, loc.line, loc.column, path, message))

    def _merge_sources(self, key_node: yaml.Node, value: yaml.Node,
                       path: KeyPath) -> list[yaml.MappingNode]:
        """The mappings a `<<:` key merges, in order of precedence (YAML's merge key type:
        a mapping, or a list of mappings where an earlier one overrides a later one)."""
        if isinstance(value, yaml.MappingNode):
            return [] if self.refuse_tag(value, path) else [value]
        if isinstance(value, yaml.SequenceNode) and all(
                isinstance(item, yaml.MappingNode) for item in value.value):
            return [item for item in value.value if not self.refuse_tag(item, path)]
        self._problem_at(key_node, path, "a merge key '<<' takes a mapping or a list of "
                         "mappings (aliases such as *defaults)")
        return []

    def pairs(self, node: yaml.MappingNode, path: KeyPath) -> list[Pair]:
        """The mapping's pairs, each key once: its own keys (a key twice is a mistake,
        reported here), then what `<<:` merges in for the keys it does not have itself.
        Problems are reported the first time a mapping is read, at that place."""
        known = self.resolved.get(id(node))
        if known is not None:
            return known
        own: list[Pair] = []
        sources: list[yaml.MappingNode] = []
        merge_key: yaml.Node | None = None
        seen: set[str] = set()
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE and isinstance(key_node, yaml.ScalarNode):
                if merge_key is not None:
                    self._problem_at(key_node, path, "duplicate key '<<': merge several "
                                     "mappings with one list, <<: [*a, *b]")
                    continue
                merge_key = key_node
                sources = self._merge_sources(key_node, value_node, path)
                continue
            key = self.key(key_node, path)
            if key is None:
                continue
            if key in seen:
                child: KeyPath = (*path, key)
                loc = _mark(key_node)
                self.doc.problems.append(Problem(self.doc.path, loc.line, loc.column, child,
                                                 f"duplicate key '{key}'"))
                continue
            seen.add(key)
            own.append((key, key_node, value_node))
        merged: dict[str, Pair] = {}
        for source in sources:  # each source's own merges are resolved first
            for pair in self.pairs(source, path):
                merged.setdefault(pair[0], pair)
        # In the order a YAML loader gives: merged keys first, own values overriding them.
        mine = {pair[0]: pair for pair in own}
        result = [mine.get(key, pair) for key, pair in merged.items()]
        result += [pair for key, pair in mine.items() if key not in merged]
        self.resolved[id(node)] = result
        return result

    def build(self, node: yaml.Node, path: KeyPath) -> Any:
        self.doc.value_locations.setdefault(path, _mark(node))
        if self.refuse_tag(node, path):
            return None
        if isinstance(node, yaml.MappingNode):
            result: dict[Any, Any] = {}
            for key, key_node, value_node in self.pairs(node, path):
                child: KeyPath = (*path, key)
                self.doc.key_locations[child] = _mark(key_node)
                result[key] = self.build(value_node, child)
            return result
        if isinstance(node, yaml.SequenceNode):
            return [self.build(item, (*path, i)) for i, item in enumerate(node.value)]
        assert isinstance(node, yaml.ScalarNode)
        return self.scalar(node, path)

    def key(self, node: yaml.Node, path: KeyPath) -> str | None:
        if not isinstance(node, yaml.ScalarNode):
            loc = _mark(node)
            self.doc.problems.append(Problem(self.doc.path, loc.line, loc.column, path,
                                             "mapping keys must be plain scalars"))
            return None
        if self.refuse_tag(node, path):
            return None
        key = self.scalar(node, path)
        if key is None or not isinstance(key, str | int | float | bool):
            loc = _mark(node)
            self.doc.problems.append(Problem(self.doc.path, loc.line, loc.column, path,
                                             "mapping keys must be plain scalars"))
            return None
        return key if isinstance(key, str) else str(key)


def _compose(loader_type: type[_BoundedComposer], text: str) -> tuple[SafeConstructor,
                                                                        yaml.Node | None]:
    loader = loader_type(text)  # type: ignore[call-arg]
    try:
        return loader, loader.get_single_node()  # type: ignore[return-value]
    finally:
        loader.dispose()  # type: ignore[attr-defined]


def _yaml_problem(exc: yaml.YAMLError, path: str) -> Problem:
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        reason = exc.problem or exc.context or "invalid YAML"
        if isinstance(exc, _LimitError):
            return Problem(path, line, column, (), reason)
        return Problem(path, line, column, (), f"invalid YAML: {reason}")
    return Problem(path, 1, 1, (), f"invalid YAML: {exc}")


def parse_yaml(text: str, path: str, *, ansible_tags: bool = False) -> SourceDoc:
    """`ansible_tags`: also read Ansible's `!unsafe` (a string as written) and `!vault` (a
    `Vaulted`), as in inventories and their vars files."""
    doc = SourceDoc(path=path, data=None)
    unprintable = unprintable_problem(text, path)
    if unprintable is not None:
        doc.problems.append(unprintable)
        return doc
    try:
        loader, node = _compose(_FastLoader or _PureLoader, text)
    except _LimitError as exc:
        doc.problems.append(_yaml_problem(exc, path))
        return doc
    except yaml.YAMLError as exc:
        problem = _yaml_problem(exc, path)
        if _FastLoader is not None:  # PyYAML's own parser words its errors more clearly
            try:
                _compose(_PureLoader, text)
            except yaml.YAMLError as again:
                problem = _yaml_problem(again, path)
        doc.problems.append(problem)
        return doc
    if node is not None:
        try:
            doc.data = _Builder(doc, loader, ansible_tags).build(node, ())
        except yaml.YAMLError as exc:  # a constructor's own error, should one raise it
            doc.problems.append(_yaml_problem(exc, path))
    return doc


def load_yaml(path: Path | str, *, ansible_tags: bool = False) -> SourceDoc:
    name = str(path)
    text, problem = read_source(path)
    if text is None:
        return SourceDoc(name, None, problems=[problem] if problem else [])
    return parse_yaml(text, name, ansible_tags=ansible_tags)
