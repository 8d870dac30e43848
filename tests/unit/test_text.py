"""Text from hosts and files is printed with every control character escaped."""

from __future__ import annotations

import io

from rich.console import Console
from rich.table import Table

from fleet.cli.terminal import cell
from fleet.core.plan import Action, ActionKind
from fleet.text import one_line, printable

HOSTILE = "web\n" "fake-host: in sync\x1b]0;owned\x07\x1b[2J\u202egnp.exe\r\x00\x9b"


def test_one_line_escapes_every_control_character() -> None:
    shown = one_line(HOSTILE)
    assert "\n" not in shown and "\x1b" not in shown and "\r" not in shown
    assert shown == ("web\\nfake-host: in sync\\x1b]0;owned\\x07\\x1b[2J\\u202egnp.exe"
                     "\\r\\x00\\x9b")


def test_printable_keeps_only_line_breaks() -> None:
    assert printable("a\nb\x1b[31m\t") == "a\nb\\x1b[31m\\t"
    assert printable("plain text, ünïcode ✓") == "plain text, ünïcode ✓"


def test_a_table_cell_is_one_line_and_never_markup() -> None:
    table = Table()
    table.add_column("name")
    table.add_row(cell("[red]x[/red]\n[bold]forged"))
    out = io.StringIO()
    Console(file=out, width=120, color_system=None).print(table)
    assert "[red]x[/red]\\n[bold]forged" in out.getvalue()


def test_a_plan_line_cannot_be_forged_by_a_container_name() -> None:
    action = Action("h1", ActionKind.REMOVE, "shop-web-9\nh2:\n  nothing", "not in playbook")
    assert "\n" not in action.heading()
