"""How long work tells what it is doing: (host, message) callbacks, shown by the CLI."""

from __future__ import annotations

from collections.abc import Callable

Reporter = Callable[[str, str], None]  # (host, message)


def silent(host: str, message: str) -> None:
    """A reporter that shows nothing."""
