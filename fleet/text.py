"""Text from hosts and files made safe to print (pure).

A host, an inventory or a playbook can put any character in a name, an error or a label.
Printed raw, a newline forges an output line and an ESC sequence drives the operator's
terminal, so every control character is shown escaped instead.
"""

from __future__ import annotations

import re

# C0 and C1 controls, DEL, and the Unicode marks that reorder or hide text (bidi overrides
# and isolates, zero-width characters, line and paragraph separators).
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]")
_CONTROL_BUT_NEWLINE = re.compile(
    "[\x00-\x09\x0b-\x1f\x7f-\x9f\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    if char in _NAMED:
        return _NAMED[char]
    return f"\\x{ord(char):02x}" if ord(char) < 0x100 else f"\\u{ord(char):04x}"


def one_line(text: object) -> str:
    """`text` as a single printable line: every control character escaped."""
    return _CONTROL.sub(_escape, str(text))


def printable(text: object) -> str:
    """`text` with its own line breaks kept and every other control character escaped."""
    return _CONTROL_BUT_NEWLINE.sub(_escape, str(text))
