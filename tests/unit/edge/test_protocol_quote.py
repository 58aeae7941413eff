"""The fast JSON string quoting of ``changes`` frames writes exactly what json.dumps writes."""

from __future__ import annotations

import json

from accord.edge.protocol import _dumps, _quote
from hypothesis import given
from hypothesis import strategies as st


@given(st.text())
def test_quote_matches_json_dumps_for_any_text(text: str) -> None:
    assert _quote(text) == _dumps(text)
    assert json.loads(_quote(text)) == text


def test_quote_escapes_what_json_must_escape() -> None:
    for text in ['a"b', "a\\b", "line\nbreak", "\x00", "\x1f", "tab\t"]:
        assert _quote(text) == json.dumps(text, ensure_ascii=False)
    assert _quote("todo-1 ünïcødé €") == '"todo-1 ünïcødé €"'


def test_quote_leaves_unprintable_text_to_dumps() -> None:
    # Not printable, yet written as they are: the slower path, the same text.
    for text in ["\u2028", "\x7f", "\ud800", "a\u00adb"]:
        assert _quote(text) == _dumps(text)
