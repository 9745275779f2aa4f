"""Canonical JSON: the one byte form of every hashed or signed object (core layer).

Rules (see docs/ARCHITECTURE.md, "Canonical JSON"): objects with string keys sorted by code point,
arrays, strings and integers only (no floats, booleans or null; an absent value is an absent key),
integers within +-(2**53 - 1), no insignificant whitespace, UTF-8 without escapes beyond those JSON
requires. ``decode`` accepts only bytes that ``encode`` would have produced.

The codec here is the standard library's ``json`` and is the reference. The adapters layer makes
every orchd process use a faster one (orjson) through ``accelerate``; its bytes are the same for
every value the rules allow (tests hold the two to that), and whatever it refuses or parses
differently is decided, and its fault named, by the reference.
"""

from __future__ import annotations

import json
from collections.abc import Callable
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
        for key, item in value.items():  # type: ignore[attr-defined]
            if type(key) is not str:
                return False
            item_kind = type(item)
            if item_kind is int:  # the commonest values checked here, without a call
                if not -MAX_INT <= item <= MAX_INT:
                    return False
            elif item_kind is not str and not _fine(item):
                return False
        return True
    if kind is list or kind is tuple:
        for item in value:  # type: ignore[attr-defined]  # noqa: SIM110 (no generator: faster)
            if type(item) is not str and not _fine(item):
                return False
        return True
    return False


def _check(value: object, path: str) -> None:
    """Raise NotCanonical naming where ``value`` breaks the rules (fast when it does not)."""
    try:
        if not _fine(value):
            _explain(value, path)
    except RecursionError:
        raise NotCanonical(detail="nested too deeply") from None


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
    if _fast_dump is not None:
        try:
            return _fast_dump(value)
        except TypeError:  # a lone surrogate, or deeper than orjson goes: the reference decides
            pass
    return _reference_dump(value)


def _reference_dump(value: object) -> bytes:
    try:
        return _ENCODER.encode(value).encode("utf-8")
    except UnicodeEncodeError as exc:
        raise NotCanonical(detail=f"string is not valid Unicode ({exc.reason})") from None
    except RecursionError:
        raise NotCanonical(detail="nested too deeply") from None


_fast_dump: Callable[[object], bytes] | None = None  # set by ``accelerate``
_fast_load: Callable[[bytes], Any] | None = None


def accelerate(load: Callable[[bytes], Any], sorted_dump: Callable[[object], bytes]) -> None:
    """Parse with ``load`` and dump with ``sorted_dump`` (compact, keys sorted, UTF-8 unescaped),
    which must give ``_reference_dump``'s bytes for every value ``check`` allows and raise
    TypeError for a lone surrogate; ``load`` may raise ValueError for bytes it refuses."""
    global _fast_dump, _fast_load
    _fast_dump, _fast_load = sorted_dump, load


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


def decode(data: bytes) -> Any:
    """Parse canonical bytes; anything ``encode`` would not produce byte for byte is refused.

    Bytes that come back byte for byte from a plain parse are canonical: a repeated key cannot
    (the parse keeps one of its values), so the slower parse that looks for one runs only to say
    what is wrong with bytes that failed.
    """
    if _fast_load is not None:
        try:
            value = _fast_load(data)
        except ValueError:
            pass  # the reference below says what is wrong
        else:
            if _same(value, data, dump):
                return value
    try:
        text = data.decode("utf-8")
        value = _DECODER.decode(text)
    except UnicodeDecodeError:
        raise NotCanonical(detail="not UTF-8") from None
    except (ValueError, RecursionError) as exc:  # ValueError: also an integer of 4,300 digits
        raise NotCanonical(detail=f"not JSON ({exc})") from None
    if _same(value, data, _reference_dump):
        return value
    _STRICT.decode(text)  # names a repeated key
    encode(value)  # names a value outside the rules
    raise NotCanonical(detail="valid JSON, but not in canonical form")


def _same(value: object, data: bytes, dumped: Callable[[object], bytes]) -> bool:
    """Whether ``value`` is within the rules and ``dumped`` gives ``data`` back for it."""
    try:
        return _fine(value) and dumped(value) == data
    except RecursionError:
        raise NotCanonical(detail="nested too deeply") from None
