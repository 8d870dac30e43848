"""The one way fleet's commands print lines: every control character escaped.

Messages carry text from hosts and files (names, errors, labels); `echo` keeps a message's
own line breaks and escapes everything else (fleet.text). A value interpolated into a line
that must stay one line goes through `one_line` first.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from fleet.text import one_line, printable

if TYPE_CHECKING:
    from rich.text import Text

__all__ = ["cell", "echo", "one_line"]


def echo(message: object = "", *, err: bool = False, nl: bool = True) -> None:
    click.echo(printable(message), err=err, nl=nl)


def cell(value: object, style: str = "") -> Text:
    """A table cell from host or file text: one line, never read as rich markup."""
    from rich.text import Text  # rich loads only for the commands that draw tables

    return Text(one_line(value), style=style)
