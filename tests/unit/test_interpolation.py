"""Compose's interpolation (fleet.config.interpolation): every form, errors, warnings, limits."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fleet.config.interpolation import (
    MAX_INTERPOLATED_CHARS,
    MAX_INTERPOLATED_TOTAL,
    MAX_NESTING,
    InterpolationError,
    Piece,
    interpolate,
    interpolate_data,
    interpolate_pieces,
)
from fleet.config.templating import keep_variables_literal, render_value

VARIABLES = {"SET": "value", "EMPTY": "", "OTHER": "other", "lower_case": "lc"}

FORMS = [
    ("$SET", "value"),
    ("${SET}", "value"),
    ("a${SET}b", "avalueb"),
    ("$SET-x", "value-x"),  # an unbraced name stops at the first character not in a name
    ("$SET$OTHER", "valueother"),
    ("$lower_case", "lc"),  # names in either case, as Compose reads them
    ("$$", "$"),
    ("$$SET", "$SET"),
    ("$$$SET", "$value"),
    ("$${SET}", "${SET}"),
    ("${SET:-d}", "value"), ("${EMPTY:-d}", "d"), ("${UNSET:-d}", "d"),
    ("${SET-d}", "value"), ("${EMPTY-d}", ""), ("${UNSET-d}", "d"),
    ("${SET:?e}", "value"), ("${EMPTY?e}", ""),
    ("${SET:+alt}", "alt"), ("${EMPTY:+alt}", ""), ("${UNSET:+alt}", ""),
    ("${SET+alt}", "alt"), ("${EMPTY+alt}", "alt"), ("${UNSET+alt}", ""),
    ("${UNSET:-}", ""),
    ("${UNSET:-a b:c-d}", "a b:c-d"),
    ("${UNSET:-${OTHER}}", "other"),
    ("${UNSET:-${ALSO_UNSET:-deep}}", "deep"),
    ("${UNSET:-x${OTHER}y}", "xothery"),
    ("${SET:+[$OTHER]}", "[other]"),
    ("${UNSET:-$$}", "$"),
    ("${UNSET:-{{ host.name }}}", "{{ host.name }}"),  # braces balance: the template is whole
    ("${SET:-{{ host.name }}}", "value"),
    ("{{ host.name }}", "{{ host.name }}"),  # `$` is the only trigger
    ("{% if x %}y{% endif %}", "{% if x %}y{% endif %}"),
    ("$1 $- $ $@ a$", "$1 $- $ $@ a$"),  # not a name: kept as written (the spec)
    ("100$", "100$"),
    ("", ""),
]


@pytest.mark.parametrize(("text", "result"), FORMS, ids=[t or "empty" for t, _ in FORMS])
def test_each_form(text: str, result: str) -> None:
    assert interpolate(text, VARIABLES) == (result, [])


@pytest.mark.parametrize(("text", "unset"), [
    ("$UNSET", ["UNSET"]),
    ("${UNSET}", ["UNSET"]),
    ("$UNSET and ${UNSET} and $SECOND", ["UNSET", "SECOND"]),  # each name once
    ("${UNSET:-$NESTED}", ["NESTED"]),
    ("${UNSET-x}${UNSET:+y}${UNSET+z}", []),  # an operator says what unset means
    ("${SET:-$NOT_LOOKED_AT}", []),  # a default is expanded only when it is used
])
def test_unset_variables_become_empty_and_are_reported(text: str, unset: list[str]) -> None:
    value, found = interpolate(text, VARIABLES)
    assert found == unset
    assert "UNSET" not in value


@pytest.mark.parametrize(("text", "message"), [
    ("${UNSET:?set it first}", "required variable UNSET is missing a value: set it first"),
    ("${EMPTY:?set it first}", "required variable EMPTY is missing a value: set it first"),
    ("${UNSET?}", "required variable UNSET is missing a value"),
    ("${UNSET:?need $OTHER}", "required variable UNSET is missing a value: need other"),
    ("x ${UNSET:-${ALSO:?inner}}", "required variable ALSO is missing a value: inner"),
])
def test_required_variables(text: str, message: str) -> None:
    with pytest.raises(InterpolationError) as caught:
        interpolate(text, VARIABLES)
    assert str(caught.value) == message
    assert caught.value.plain == message.split(":")[0]  # without the file's text


@pytest.mark.parametrize("text", ["${", "${SET", "${}", "${1X}", "${SET:x}", "${SET }",
                                  "${SET/a/b}", "${ SET}", "${SET:-x", "$${SET}${"])
def test_invalid_forms_are_errors(text: str) -> None:
    with pytest.raises(InterpolationError, match="invalid interpolation"):
        interpolate(text, VARIABLES)


def test_an_unused_branch_is_not_checked() -> None:
    assert interpolate("${SET:-${}}", VARIABLES) == ("value", [])
    assert interpolate("${SET:-${X:?no}}", VARIABLES) == ("value", [])


def test_nesting_is_bounded() -> None:
    deep = "${U:-" * MAX_NESTING + "x" + "}" * MAX_NESTING
    assert interpolate(deep, {}) == ("x", [])
    deeper = "${U:-" * (MAX_NESTING + 1) + "x" + "}" * (MAX_NESTING + 1)
    with pytest.raises(InterpolationError, match=f"nested more than {MAX_NESTING} levels"):
        interpolate(deeper, {})


def test_a_result_is_bounded() -> None:
    big = {"BIG": "x" * 100_000}
    assert len(interpolate("$BIG" * 10, big)[0]) == 1_000_000
    with pytest.raises(InterpolationError, match=f"exceed {MAX_INTERPOLATED_CHARS:,}"):
        interpolate("$BIG" * 11, big)


def test_a_file_is_bounded_as_a_whole() -> None:
    big = {"BIG": "x" * 1_000_000}
    data = {"values": ["$BIG"] * 20}
    result, findings = interpolate_data(data, big)
    assert result is None  # the file stops there, as at a YAML limit
    assert [(f.path, f.severity) for f in findings] == [
        (("values", MAX_INTERPOLATED_TOTAL // 1_000_000), "error")]
    assert f"exceed {MAX_INTERPOLATED_TOTAL:,} characters together" in findings[0].message


def test_values_not_keys_and_only_strings() -> None:
    data = {"$SET": "$SET", "n": 3, "b": True, "none": None, "list": ["$OTHER", 1, {"k": "$$"}]}
    result, findings = interpolate_data(data, VARIABLES)
    assert result == {"$SET": "value", "n": 3, "b": True, "none": None,
                      "list": ["other", 1, {"k": "$"}]}
    assert findings == []


def test_findings_name_the_key_path() -> None:
    data = {"services": {"web": {"image": "nginx:${TAG}", "command": ["${X:?no}"]}}}
    result, findings = interpolate_data(data, {})
    assert [(f.path, f.severity) for f in findings] == [
        (("services", "web", "image"), "warning"),
        (("services", "web", "command", 0), "error")]
    assert result["services"]["web"]["command"] == ["${X:?no}"]  # left as written


def test_pieces_tell_the_file_from_the_variables() -> None:
    pieces, _ = interpolate_pieces("a$SET${UNSET:-b}$$", VARIABLES)
    assert pieces == [Piece("a", False), Piece("value", True), Piece("b", False),
                      Piece("$", False)]


@pytest.mark.parametrize(("text", "value"), [
    ("pw=$P", "a{%b{{c}}#{x"),
    ("${B}{ x }}", "{{ x }}"),  # a value's `{` next to the file's `{`
    ("{${Q}", "{%}"),
    ("$B$B", "{"),
    ("{{ 1 + 1 }}-$P", "a{%b{{c}}#{x"),
])
def test_values_stay_literal_through_templating(text: str, value: str) -> None:
    variables = {"P": "a{%b{{c}}#{x", "B": "{", "Q": "%}"}
    pieces, _ = interpolate_pieces(text, variables)
    plain = "".join(p.text for p in pieces)
    rendered = render_value(keep_variables_literal(pieces), {})
    assert rendered == plain.replace("{{ 1 + 1 }}", "2") and value in rendered


def test_the_files_own_templates_are_left_alone() -> None:
    pieces, _ = interpolate_pieces("{{ host }}-$V", {"V": "x"})
    assert keep_variables_literal(pieces) == "{{ host }}-x"


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_escaped_text_comes_back_as_written(text: str) -> None:
    assert interpolate(text.replace("$", "$$"), VARIABLES) == (text, [])


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="${}:-+?ABx {%#", max_size=40))
def test_any_text_interpolates_or_fails_cleanly(text: str) -> None:
    try:
        value, unset = interpolate(text, {"A": "{%", "B": ""})
    except InterpolationError:
        return
    assert all(name in text for name in unset)
    if "$" not in text:
        assert value == text


_LITERAL = st.text(alphabet="ab }%#'\"\\", max_size=8)  # no `{` or `$`: no template, no variable


@settings(max_examples=300, deadline=None)
@given(_LITERAL, st.text(alphabet="{}%#-ab '\"\\", max_size=20), _LITERAL)
def test_a_variable_never_becomes_a_template(before: str, value: str, after: str) -> None:
    pieces, _ = interpolate_pieces(f"{before}${{V}}{after}", {"V": value})
    assert render_value(keep_variables_literal(pieces), {}) == before + value + after
