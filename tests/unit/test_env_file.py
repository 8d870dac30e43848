"""env_file (and KEY=VALUE secrets files) read by Compose's rules (docs: "Syntax for
environment files in Docker Compose")."""

from __future__ import annotations

import pytest

from fleet.config.compose_syntax import parse_env_file

COMPOSE_EXAMPLES = [
    ("VAR=VAL", "VAL"),
    ('VAR="VAL"', "VAL"),
    ("VAR='VAL'", "VAL"),
    ("VAR=VAL # comment", "VAL"),
    ("VAR=VAL# not a comment", "VAL# not a comment"),
    ('VAR="VAL # not a comment"', "VAL # not a comment"),
    ('VAR="VAL" # comment', "VAL"),
    ("VAR='VAL'# comment", "VAL"),
    ("VAR='$OTHER'", "$OTHER"),
    ("VAR='${OTHER}'", "${OTHER}"),
    ("VAR='Let\\'s go!'", "Let's go!"),
    ('VAR="{\\"hello\\": \\"json\\"}"', '{"hello": "json"}'),
    ('VAR="some\\tvalue"', "some\tvalue"),
    ("VAR='some\\tvalue'", "some\\tvalue"),
    ("VAR=some\\tvalue", "some\\tvalue"),
    ('VAR="a\\\\b"', "a\\b"),
    ('VAR="\\0101"', "A"),
    ("VAR=  padded  ", "padded"),
    ("export VAR=x", "x"),
    ("VAR=", ""),
    ("VAR=tab\t#stays", "tab\t#stays"),  # only a space starts an inline comment
]


@pytest.mark.parametrize(("line", "value"), COMPOSE_EXAMPLES, ids=[c[0] for c in COMPOSE_EXAMPLES])
def test_values_as_compose_reads_them(line: str, value: str) -> None:
    assert parse_env_file(f"# a comment\n\n{line}\n", "f.env") == {"VAR": value}


def test_a_quoted_value_may_span_lines() -> None:
    text = 'A="first\nsecond" # done\nB=2\n'
    assert parse_env_file(text, "f.env") == {"A": "first\nsecond", "B": "2"}


@pytest.mark.parametrize(("text", "words"), [
    ("hunter2", "f.env:1: expected NAME=VALUE"),
    ("1A=hunter2", "f.env:1: expected NAME=VALUE"),
    ('\nA="hunter2\nB=2', "f.env:2: the quoted value is never closed"),
    ('A="hunter2" B=y', "f.env:1: unexpected text after the closing quote"),
    ('A="hunter2\\0000"', "f.env:1: the value of A contains a NUL character"),
    ("A=hunter2\0y", "f.env:1: the value of A contains a NUL character"),
])
def test_bad_lines_name_the_line_and_never_the_value(text: str, words: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_env_file(text, "f.env")
    assert words in str(caught.value) and "hunter2" not in str(caught.value)
