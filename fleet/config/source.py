"""YAML loading that remembers where every key and value came from.

PyYAML's constructed objects lose their positions, so we compose the node tree and
build plain Python values ourselves, recording the mark of each key path. Duplicate
keys, which PyYAML would silently overwrite, are reported.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from fleet.config.problems import KeyPath, Problem


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
        return Problem(
            self.path, loc.line, loc.column, path, message,
            "warning" if severity == "warning" else "error",
        )


def _mark(node: yaml.Node) -> Location:
    return Location(node.start_mark.line + 1, node.start_mark.column + 1)


class _Builder:
    def __init__(self, doc: SourceDoc, loader: yaml.SafeLoader) -> None:
        self.doc = doc
        self.loader = loader

    def build(self, node: yaml.Node, path: KeyPath) -> Any:
        self.doc.value_locations.setdefault(path, _mark(node))
        if isinstance(node, yaml.MappingNode):
            self.loader.flatten_mapping(node)  # resolves `<<:` merge keys
            result: dict[Any, Any] = {}
            for key_node, value_node in node.value:
                key = self.loader.construct_object(key_node, deep=True)
                if not isinstance(key, str | int | float | bool) or key is None:
                    self.doc.problems.append(
                        self.doc.problem(path, "mapping keys must be plain scalars")
                    )
                    continue
                key = str(key) if not isinstance(key, str) else key
                child: KeyPath = (*path, key)
                if key in result:
                    self.doc.key_locations[child] = _mark(key_node)
                    self.doc.problems.append(
                        self.doc.problem(child, f"duplicate key '{key}'", at_key=True)
                    )
                    continue
                self.doc.key_locations[child] = _mark(key_node)
                result[key] = self.build(value_node, child)
            return result
        if isinstance(node, yaml.SequenceNode):
            return [self.build(item, (*path, i)) for i, item in enumerate(node.value)]
        return self.loader.construct_object(node, deep=True)


def parse_yaml(text: str, path: str) -> SourceDoc:
    doc = SourceDoc(path=path, data=None)
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is not None:
            doc.data = _Builder(doc, loader).build(node, ())
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        reason = exc.problem or exc.context or "invalid YAML"
        doc.problems.append(Problem(path, line, column, (), f"invalid YAML: {reason}"))
    except yaml.YAMLError as exc:
        doc.problems.append(Problem(path, 1, 1, (), f"invalid YAML: {exc}"))
    finally:
        loader.dispose()
    return doc


def load_yaml(path: Path | str) -> SourceDoc:
    name = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        return SourceDoc(name, None, problems=[Problem(name, 0, 0, (), "file not found")])
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        return SourceDoc(name, None, problems=[Problem(name, 0, 0, (), f"cannot read: {reason}")])
    return parse_yaml(text, name)
