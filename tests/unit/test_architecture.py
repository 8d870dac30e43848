"""The layout's promises that an import contract can't check: the core opens no file and
reads no environment; every package says what it is for."""

from __future__ import annotations

import ast
from pathlib import Path

FLEET = Path(__file__).resolve().parents[2] / "fleet"
IO_CALLS = {"open", "read_text", "read_bytes", "write_text", "write_bytes", "getenv",
            "system", "popen"}


def test_the_core_does_no_file_or_environment_io() -> None:
    found = []
    for path in sorted((FLEET / "core").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            name = (node.func.id if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                    else node.attr if isinstance(node, ast.Attribute) else None)
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) \
                    and node.value.id == "os":
                name = "open"  # any os.* use (environ, path, ...) is I/O here
            if name in IO_CALLS:
                found.append(f"{path.name}:{node.lineno}: {name}")
    assert found == []


def test_every_package_says_what_it_is_for() -> None:
    for init in sorted(FLEET.glob("*/__init__.py")):
        assert ast.get_docstring(ast.parse(init.read_text())), init
