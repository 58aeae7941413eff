"""accord.common.jsontext: the same text as the standard library's compact JSON, faster."""

from __future__ import annotations

import json
from typing import Any

import pytest
from accord.common import jsontext
from hypothesis import given, settings
from hypothesis import strategies as st


def stdlib(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


# Floats print differently (orjson "1e-7", json "1e-07"); both parse to the same value,
# so text equality is checked without floats and value equality with them.
scalars = st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.text(max_size=20)
documents = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=300)
@given(documents)
def test_dumps_writes_what_the_standard_library_writes(value: Any) -> None:
    assert jsontext.dumps(value) == stdlib(value)
    assert jsontext.loads(jsontext.dumps(value)) == value


@settings(max_examples=200)
@given(st.floats(allow_nan=False, allow_infinity=False))
def test_floats_come_back_as_the_same_number(number: float) -> None:
    assert jsontext.loads(jsontext.dumps({"x": number})) == {"x": number}


@pytest.mark.parametrize(
    "value",
    [2**64, -(2**63) - 1, {1: "int key"}, "lone \ud800 surrogate", [2**100, {"a": 2**65}]],
)
def test_what_orjson_refuses_is_written_by_the_standard_library(value: Any) -> None:
    assert jsontext.dumps(value) == stdlib(value)


def test_big_integers_parse_as_integers() -> None:
    assert jsontext.loads("18446744073709551616") == 2**64


@pytest.mark.parametrize("text", ["NaN", "[Infinity]", '{"x": -Infinity}', "1e999", "[-1e400]"])
def test_loads_refuses_what_is_not_finite(text: str) -> None:
    with pytest.raises(ValueError):
        jsontext.loads(text)


@pytest.mark.parametrize(
    "text",
    ['"\\ud800"', '{"\\udc00": 1}', '[{"a": ["x\\udbff"]}]', b'{"a": "\\ud800 "}'],
)
def test_loads_refuses_lone_surrogate_escapes(text: str | bytes) -> None:
    with pytest.raises(ValueError, match="surrogate"):
        jsontext.loads(text)


def test_loads_takes_surrogate_pairs_and_other_escapes() -> None:
    assert jsontext.loads('["\\ud83d\\ude00", "\\u00e9\\u0000"]') == ["\U0001f600", "\u00e9\x00"]


@pytest.mark.parametrize("text", ["{", "", "[1,]", "'single'"])
def test_loads_refuses_invalid_text(text: str) -> None:
    with pytest.raises(ValueError):
        jsontext.loads(text)


def _same(a: Any, b: Any) -> bool:
    """Equal, and of the same types all the way down (1 and 1.0 and True differ here)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


# Text as clients write it: any spacing, floats in every form, integers of any size.
numbers = (
    st.integers(-(2**80), 2**80).map(str)
    | st.floats(allow_nan=False, allow_infinity=False).map(repr)
    | st.sampled_from(["-0", "-0.0", "1e-400", "1E+2", "0.1e1", "123456789012345678.5"])
)
texts = st.recursive(
    st.sampled_from(["null", "true", "false", '"x"', '"\\u00e9\\n"']) | numbers,
    lambda inner: (
        st.lists(inner, max_size=4).map(lambda items: "[ " + " ,".join(items) + "]")
        | st.lists(st.tuples(st.text(max_size=6), inner), max_size=4).map(
            lambda pairs: "{" + ",".join(f"{json.dumps(k)} :{v}" for k, v in pairs) + "}"
        )
    ),
    max_leaves=20,
)


@settings(max_examples=400)
@given(texts, st.booleans())
def test_loads_gives_what_the_standard_library_gives(text: str, as_bytes: bool) -> None:
    # orjson parses most text; the value, and every type in it, is the standard library's.
    assert _same(jsontext.loads(text.encode() if as_bytes else text), json.loads(text))


@pytest.mark.parametrize("text", ["\ufeff{}", b"\xef\xbb\xbf[1]", '{"a": 1}'.encode("utf-16")])
def test_loads_reads_a_byte_order_mark_and_utf16_as_the_standard_library_does(
    text: str | bytes,
) -> None:
    try:
        expected: Any = json.loads(text)
    except ValueError as error:
        with pytest.raises(type(error)):
            jsontext.loads(text)
    else:
        assert jsontext.loads(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "18446744073709551616",
        "[1,-18446744073709551616]",
        '{"a":\n 99999999999999999999}',
        "[\t12345678901234567890]",
        '{"a":"1234567890123456789012","b":\r12345678901234567890}',
        '["\u00e9",-99999999999999999999]',
    ],
)
def test_integers_beyond_64_bits_stay_integers_wherever_they_stand(text: str) -> None:
    assert _same(jsontext.loads(text), json.loads(text))
    assert _same(jsontext.loads(text.encode()), json.loads(text))


def test_a_long_digit_run_inside_a_string_parses_fast_and_alike() -> None:
    text = '{"id":"12345678901234567890123","n":[1,22]}'
    assert not jsontext._long_number(text) and not jsontext._long_number(text.encode())
    assert _same(jsontext.loads(text), json.loads(text))


def test_a_lone_surrogate_in_str_text_is_checked_without_error() -> None:
    # Not UTF-8 encodable: the digit check still runs on it (and finds nothing).
    assert not jsontext._long_number('"\ud800"')
    assert jsontext._long_number("[\ud800, 12345678901234567890]")
