"""JSON text as the services read and write it: compact, UTF-8, finite numbers.

``dumps`` writes with orjson and falls back to the standard library for what
orjson refuses (integers beyond 64 bits, non-string keys, lone surrogates), so
every value the standard library can write is written, only faster. ``loads``
parses with orjson too, and hands the text to the standard library where orjson
refuses it or could differ from it: an error (so the message and the exception
are the ones below), a byte order mark, and an integer of 19 digits or more
(orjson turns integers beyond 64 bits into floats). It rejects what is not
finite JSON: the constants ``NaN`` and ``Infinity``, numbers too large for a
double (``1e999``), which would otherwise come back as ``inf`` and could not be
written again, and strings with a lone surrogate escape (``"\\ud800"``), which
are not Unicode.
"""

from __future__ import annotations

import json
import math
from typing import Any

import orjson


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _finite(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise ValueError(f"number {text[:20]} is too large")
    return value


def _check_unicode(value: Any) -> None:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, str):
            try:
                item.encode()
            except UnicodeEncodeError:
                raise ValueError(
                    "a lone surrogate escape (\\ud800-\\udfff outside a pair) is not Unicode"
                ) from None


# One decoder for every call: ``json.loads`` with hooks builds a new one each time.
_decode = json.JSONDecoder(parse_constant=_reject_constant, parse_float=_finite).decode


# An integer of 19 digits or more may be one orjson would turn into a float (beyond 64
# bits). A number starts the text or follows "[", ",", ":" or white space (and a minus);
# 19 digits inside a string (an id, a timestamp in nanoseconds) rarely do, and when they
# do they cost only the slower parse. The check maps each byte to its class (digit "0",
# one of those that may precede a number "b", any other "x") with one ``translate`` and
# looks for "b" and 19 digits: a few hundred nanoseconds for a frame, where a regular
# expression scanning for digit runs took a few microseconds.
_BEFORE_NUMBER = b"[,: \t\n\r-"
_CLASSES = bytes(
    ord("0") if 0x30 <= i <= 0x39 else ord("b") if i in _BEFORE_NUMBER else ord("x")
    for i in range(256)
)
_DIGIT_RUN = b"0" * 19
_AFTER_PRECEDER = b"b" + _DIGIT_RUN


def _long_number(text: str | bytes) -> bool:
    """Whether the text may hold an integer of 19 digits or more (a cheap over-estimate)."""
    data = text if isinstance(text, bytes) else text.encode("utf-8", "surrogatepass")
    classes = data.translate(_CLASSES)
    return _AFTER_PRECEDER in classes or classes.startswith(_DIGIT_RUN)


def loads(text: str | bytes) -> Any:
    """Parse JSON text; raises ``ValueError`` (or ``RecursionError``) for invalid input."""
    if not _long_number(text):
        try:
            # orjson refuses NaN, infinite numbers, lone surrogates and a BOM itself.
            return orjson.loads(text)
        except orjson.JSONDecodeError:
            pass  # the standard library's error (or its UTF-16/32 and BOM handling) below
    return _loads_standard(text)


def _loads_standard(text: str | bytes) -> Any:
    if isinstance(text, str) and not text.startswith("\ufeff"):
        value = _decode(text)
    else:  # bytes (UTF-8, -16 or -32) and the BOM error: as the standard library does them
        value = json.loads(text, parse_constant=_reject_constant, parse_float=_finite)
    # Only an escape can make a lone surrogate (UTF-8 text cannot hold one), and such a
    # string could be neither stored (PostgreSQL) nor written as UTF-8 again.
    if ("\\u" in text) if isinstance(text, str) else (b"\\u" in text):
        _check_unicode(value)
    return value


def dumps(value: Any) -> str:
    """Compact JSON text, keys in insertion order, non-ASCII kept as is.

    Values are expected to come from ``loads`` (or be built of ints and
    strings), so they hold no NaN or infinity: orjson would write those as
    ``null``.
    """
    try:
        return orjson.dumps(value).decode()
    except TypeError:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
