"""Canonical JSON: the one byte form of every hashed or signed object (core layer).

Rules (see docs/ARCHITECTURE.md, "Canonical JSON"): objects with string keys sorted by code point,
arrays, strings and integers only (no floats, booleans or null; an absent value is an absent key),
integers within +-(2**53 - 1), no insignificant whitespace, UTF-8 without escapes beyond those JSON
requires. ``decode`` accepts only bytes that ``encode`` would have produced.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any

from orchd.errors import NotCanonical

MAX_INT = 2**53 - 1
_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)
Json = dict[str, Any] | list[Any] | str | int


def _fine(value: object) -> bool:
    """The fast answer: only exact str, int (in range), dict with str keys, list and tuple."""
    kind = type(value)
    if kind is str:
        return True
    if kind is int:
        return -MAX_INT <= value <= MAX_INT  # type: ignore[operator]
    if kind is dict:
        return all(
            type(k) is str and (type(v) is str or _fine(v))
            for k, v in value.items()  # type: ignore[attr-defined]
        )
    if kind is list or kind is tuple:
        return all(type(v) is str or _fine(v) for v in value)  # type: ignore[attr-defined]
    return False


def _check(value: object, path: str) -> None:
    """Raise NotCanonical naming where ``value`` breaks the rules (fast when it does not)."""
    if not _fine(value):
        _explain(value, path)


def _explain(value: object, path: str) -> None:
    if isinstance(value, str):
        return
    if isinstance(value, bool) or not isinstance(value, int | dict | list | tuple):
        raise NotCanonical(detail=f"{path}: {type(value).__name__} is not allowed")
    if isinstance(value, int):
        if not -MAX_INT <= value <= MAX_INT:
            raise NotCanonical(detail=f"{path}: integer {value} is outside +-(2**53 - 1)")
    elif isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise NotCanonical(detail=f"{path}: key {key!r} is not a string")
            if not isinstance(item, str):
                _explain(item, f"{path}.{key}")
    else:
        for index, item in enumerate(value):
            _explain(item, f"{path}[{index}]")


def check(value: object) -> None:
    """Raise NotCanonical unless ``value`` holds only what canonical JSON allows."""
    _check(value, "$")


def dump(value: object) -> bytes:
    """The canonical bytes of an already checked value (see ``encode``)."""
    text = _ENCODER.encode(value)
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise NotCanonical(detail=f"string is not valid Unicode ({exc.reason})") from None


def encode(value: object) -> bytes:
    """The canonical bytes of ``value``; raises NotCanonical for values outside the rules."""
    _check(value, "$")
    return dump(value)


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        raise NotCanonical(detail="an object repeats a key")
    return result


def _no_float(text: str) -> Any:
    raise NotCanonical(detail=f"number {text} is not an integer")


_DECODER = json.JSONDecoder(parse_float=_no_float, parse_constant=_no_float)
_STRICT = json.JSONDecoder(
    object_pairs_hook=_no_duplicates, parse_float=_no_float, parse_constant=_no_float
)


# Text that is canonical if its objects' keys are sorted and unique: strings without escapes,
# the punctuation, integers of at most 15 digits (within the range) and nothing else (no space,
# no true, false or null). With no escapes, every '":' ends a key.
_PLAIN = re.compile(rb'(?:"[^"\\]*+"|[{}\[\]:,]|(?:0|-?[1-9][0-9]{0,14})(?![0-9]))*+')


def _sorted_keys(value: object) -> int:
    """How many keys the objects in ``value`` hold; -1 if one's keys are out of order."""
    items: Iterable[object]
    if type(value) is dict:
        keys = list(value)
        if keys != sorted(keys):
            return -1
        count, items = len(keys), value.values()
    elif type(value) is list:
        count, items = 0, value
    else:
        return 0
    for item in items:
        if type(item) is dict or type(item) is list:
            inner = _sorted_keys(item)
            if inner < 0:
                return -1
            count += inner
    return count


def decode(data: bytes) -> Any:
    """Parse canonical bytes; anything ``encode`` would not produce byte for byte is refused.

    Text without escapes is checked where it stands: ``_PLAIN`` holds its tokens to canonical
    form, and its objects' keys are sorted and as many as the '":' in it (a repeated key would
    make the text count more keys than the parsed value holds). Other text is encoded again and
    compared. A repeated key cannot come back byte for byte (the parse keeps one of its values),
    so the slower parse that looks for one runs only to say what is wrong with bytes that failed.
    """
    try:
        text = data.decode("utf-8")
        value = _DECODER.decode(text)
    except UnicodeDecodeError:
        raise NotCanonical(detail="not UTF-8") from None
    except (json.JSONDecodeError, RecursionError) as exc:
        raise NotCanonical(detail=f"not JSON ({exc})") from None
    if _PLAIN.fullmatch(data) is not None and _sorted_keys(value) == data.count(b'":'):
        return value
    if _fine(value) and dump(value) == data:
        return value
    _STRICT.decode(text)  # names a repeated key
    encode(value)  # names a value outside the rules
    raise NotCanonical(detail="valid JSON, but not in canonical form")
