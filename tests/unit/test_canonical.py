"""Canonical JSON: one byte form per value, and decode refuses every other form.

Every test runs twice: with orjson, as every orchd process runs (``orchd.adapters`` registers
it), and with the standard library's reference codec alone.
"""

from __future__ import annotations

import json

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st
from sealed import PROPERTY

from orchd.core import canonical
from orchd.errors import NotCanonical

MAX_INT = 2**53 - 1
SAFE_INTS = st.integers(min_value=-MAX_INT, max_value=MAX_INT)
UNSAFE_INTS = st.integers(min_value=MAX_INT + 1) | st.integers(max_value=-MAX_INT - 1)
# st.text() never draws lone surrogates, so every drawn string is valid Unicode.
VALUES = st.recursive(
    st.text() | SAFE_INTS,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(), inner, max_size=5),
    max_leaves=20,
)
OBJECTS = st.dictionaries(st.text(max_size=6), VALUES, min_size=2, max_size=4)


@pytest.fixture(scope="module", autouse=True, params=["orjson", "reference"])
def codec(request):
    import orchd.adapters  # noqa: F401  (registers orjson)

    saved = canonical._fast_load, canonical._fast_dump
    assert saved[0] is orjson.loads
    if request.param == "reference":
        canonical._fast_load = canonical._fast_dump = None
    yield request.param
    canonical._fast_load, canonical._fast_dump = saved


def loose(value: object, **options: object) -> bytes:
    """JSON bytes of ``value`` as a non-canonical writer could produce them."""
    return json.dumps(value, ensure_ascii=False, **options).encode("utf-8")


# --- round trip and byte stability ------------------------------------------------------------


@PROPERTY
@given(VALUES)
def test_decode_of_encode_gives_the_value_back(value):
    assert canonical.decode(canonical.encode(value)) == value


@PROPERTY
@given(VALUES)
def test_orjson_gives_the_reference_bytes(value):
    assert orjson.dumps(value, option=orjson.OPT_SORT_KEYS) == canonical._reference_dump(value)


@PROPERTY
@given(VALUES)
def test_encoding_is_stable_through_a_round_trip(value):
    data = canonical.encode(value)
    assert canonical.encode(canonical.decode(data)) == data


@PROPERTY
@given(OBJECTS)
def test_key_insertion_order_does_not_change_the_bytes(value):
    backwards = dict(reversed(list(value.items())))
    assert canonical.encode(backwards) == canonical.encode(value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({"b": 1, "a": [2, "x"], "B": {}}, b'{"B":{},"a":[2,"x"],"b":1}'),
        ({"\u00e9": 1, "z": 2, "\U0001f600": 3}, b'{"z":2,"\xc3\xa9":1,"\xf0\x9f\x98\x80":3}'),
        ("Z\u00fcrich \u2603", b'"Z\xc3\xbcrich \xe2\x98\x83"'),
        ('quote " backslash \\ newline \n', b'"quote \\" backslash \\\\ newline \\n"'),
        ("\x01\x1f\x7f", b'"\\u0001\\u001f\x7f"'),
        ((1, -2, MAX_INT, -MAX_INT), b"[1,-2,9007199254740991,-9007199254740991]"),
        ([], b"[]"),
        ({}, b"{}"),
        ("", b'""'),
        (0, b"0"),
    ],
)
def test_known_encodings(value, expected):
    assert canonical.encode(value) == expected


# --- refusals ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        True,
        False,
        None,
        1.0,
        float("nan"),
        MAX_INT + 1,
        -MAX_INT - 1,
        {1: "integer key"},
        {"nested": [{"deep": None}]},
        "lone \ud800 surrogate",
        {"\udc00": "surrogate key"},
        b"bytes",
        {"a", "set"},
    ],
)
def test_encode_refuses_values_outside_the_rules(value):
    with pytest.raises(NotCanonical):
        canonical.encode(value)


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b'{"a": 1}', id="space-after-colon"),
        pytest.param(b'{"a":1, "b":2}', id="space-after-comma"),
        pytest.param(b" 1", id="leading-space"),
        pytest.param(b"1\n", id="trailing-newline"),
        pytest.param(b'{"b":1,"a":2}', id="unsorted-keys"),
        pytest.param(b'{"a":1,"a":1}', id="duplicate-key"),
        pytest.param(b'{"x":[{"a":1,"a":1}],"y":{}}', id="nested-duplicate-key"),
        pytest.param(b'{"a":{"c":1,"b":2}}', id="nested-unsorted-keys"),
        pytest.param(b"1234567890123456789", id="long-integer"),
        pytest.param(b"1.0", id="float"),
        pytest.param(b"1e3", id="exponent"),
        pytest.param(b"-0", id="negative-zero"),
        pytest.param(b"01", id="leading-zero"),
        pytest.param(b"NaN", id="nan"),
        pytest.param(b"Infinity", id="infinity"),
        pytest.param(b"true", id="true"),
        pytest.param(b"false", id="false"),
        pytest.param(b"null", id="null"),
        pytest.param(b'{"a":null}', id="null-member"),
        pytest.param(b"9007199254740992", id="int-above-max"),
        pytest.param(b"-9007199254740992", id="int-below-min"),
        pytest.param(b'"\\ud800"', id="escaped-lone-surrogate"),
        pytest.param(b'{"\\udc00":1}', id="escaped-lone-surrogate-key"),
        pytest.param(b'"\xed\xa0\x80"', id="utf8-encoded-surrogate"),
        pytest.param(b'"\xff"', id="invalid-utf8"),
        pytest.param(b'"\xc3"', id="truncated-utf8"),
        pytest.param(b'"\\u00e9"', id="needless-escape"),
        pytest.param(b'"\\/"', id="escaped-slash"),
        pytest.param(b"\xef\xbb\xbf1", id="byte-order-mark"),
        pytest.param(b"", id="empty"),
        pytest.param(b"[1,]", id="trailing-comma"),
    ],
)
def test_decode_refuses_non_canonical_bytes(data):
    with pytest.raises(NotCanonical):
        canonical.decode(data)


@pytest.mark.parametrize(
    ("data", "named"),
    [
        (b'{"a":1,"a":1}', "repeats a key"),
        (b'{"a":{"b":true}}', "$.a.b: bool is not allowed"),
        (b'{"a":[null]}', "$.a[0]: NoneType is not allowed"),
        (b"[9007199254740992]", "outside +-(2**53 - 1)"),
        (b'{"a":true,"a":1}', "repeats a key"),  # the repeat is named before the value
        (b'{"b":1,"a":2}', "not in canonical form"),
        (b'"\\ud800"', "not valid Unicode"),
    ],
)
def test_decode_names_what_is_wrong(data, named):
    with pytest.raises(NotCanonical) as caught:
        canonical.decode(data)
    assert named in caught.value.message


def test_an_integer_past_pythons_digit_limit_is_refused_never_a_crash(codec):
    """Python's parser refuses an integer of over 4,300 digits with a plain ValueError."""
    with pytest.raises(NotCanonical, match="not JSON"):
        canonical.decode(b'{"n":' + b"1" * 5000 + b"}")


@pytest.mark.parametrize("depth", [10, 300, 600, 2000, 100_000])
def test_deep_nesting_is_parsed_or_refused_never_a_crash(depth):
    data = b"[" * depth + b"]" * depth
    try:
        canonical.decode(data)
    except NotCanonical as exc:
        assert "deep" in exc.message or "recursion" in exc.message


@pytest.mark.parametrize("depth", [10, 300, 600, 2000, 10_000])
def test_deep_nesting_is_encoded_or_refused_never_a_crash(depth):
    value: list[object] = []
    for _ in range(depth):
        value = [value]
    try:
        assert canonical.decode(canonical.encode(value)) == value
    except NotCanonical as exc:
        assert exc.message == "not canonical JSON: nested too deeply"


def test_dumping_a_value_nested_too_deeply_is_refused_not_a_crash():
    value: list[object] = []
    for _ in range(10_000):  # past both orjson's depth and the interpreter's recursion limit
        value = [value]
    with pytest.raises(NotCanonical, match="nested too deeply"):
        canonical.dump(value)


def test_a_depth_orjson_parses_but_the_check_cannot_walk_is_refused(codec):
    """orjson parses 1024 levels; the check of what it parsed recurses once a level, past the
    interpreter's default limit of 1000 (the reference parser alone stops at that limit)."""
    with pytest.raises(NotCanonical) as caught:
        canonical.decode(b"[" * 1020 + b"]" * 1020)
    if codec == "orjson":
        assert caught.value.message == "not canonical JSON: nested too deeply"
    else:
        assert "deep" in caught.value.message or "recursion" in caught.value.message


def test_the_value_outside_the_rules_is_named_past_the_allowed_ones_before_it():
    allowed = ["text", 7, {"k": "v", "list": [1, "two"]}, [[3]]]
    with pytest.raises(NotCanonical) as caught:
        canonical.encode([*allowed, {"x": 1.5}])
    assert caught.value.message == "not canonical JSON: $[4].x: float is not allowed"


@pytest.mark.parametrize("data", [b"9007199254740991", b"-9007199254740991"])
def test_decode_accepts_the_largest_safe_integers(data):
    assert canonical.decode(data) == int(data)


@PROPERTY
@given(VALUES, st.sampled_from([b" ", b"\n", b"\t", b"\r"]), st.booleans())
def test_decode_refuses_surrounding_whitespace(value, space, before):
    data = canonical.encode(value)
    with pytest.raises(NotCanonical):
        canonical.decode(space + data if before else data + space)


@PROPERTY
@given(OBJECTS)
def test_decode_refuses_loose_separators(value):
    with pytest.raises(NotCanonical):
        canonical.decode(loose(value, sort_keys=True))  # json's default ", " and ": "


@PROPERTY
@given(OBJECTS)
def test_decode_refuses_keys_out_of_order(value):
    backwards = dict(sorted(value.items(), reverse=True))
    with pytest.raises(NotCanonical):
        canonical.decode(loose(backwards, separators=(",", ":")))


@PROPERTY
@given(st.text(), VALUES, VALUES)
def test_decode_refuses_a_repeated_key(key, first, second):
    member = canonical.encode(key) + b":"
    data = b"{" + member + canonical.encode(first) + b"," + member + canonical.encode(second) + b"}"
    with pytest.raises(NotCanonical):
        canonical.decode(data)


@PROPERTY
@given(UNSAFE_INTS)
def test_integers_beyond_the_safe_range_are_refused_both_ways(number):
    with pytest.raises(NotCanonical):
        canonical.encode(number)
    with pytest.raises(NotCanonical):
        canonical.decode(str(number).encode())


@PROPERTY
@given(st.floats(allow_nan=False, allow_infinity=False))
def test_decode_refuses_every_float(number):
    with pytest.raises(NotCanonical):
        canonical.decode(repr(number).encode())


@PROPERTY
@given(st.text(), st.integers(min_value=0xD800, max_value=0xDFFF), st.text())
def test_lone_surrogates_are_refused_both_ways(head, surrogate, tail):
    text = head + chr(surrogate) + tail
    with pytest.raises(NotCanonical):
        canonical.encode(text)
    with pytest.raises(NotCanonical):
        canonical.decode(json.dumps(text).encode("ascii"))  # "\udXXX" escapes


def canonical_by_the_rule(data: bytes) -> bool:
    """The rule itself: bytes are canonical when encoding what a plain parse gives returns them."""

    def no_float(text: str) -> None:
        raise ValueError(text)

    try:
        value = json.loads(data.decode("utf-8"), parse_float=no_float, parse_constant=no_float)
        return canonical.encode(value) == data
    except (ValueError, NotCanonical):  # UnicodeDecodeError and JSONDecodeError included
        return False


EDITS = st.sampled_from(
    [
        b" ",
        b"-",
        b"0",
        b"7",
        b'"',
        b",",
        b":",
        b"\\",
        b"\\n",
        b"{",
        b"}",
        b"[",
        b"]",
        b"true",
        b"null",
        b".5",
        b"e3",
        b'"a":1,',
        b'"z":[],',
        b'{"b":1,"a":2}',
        b"\\u0041",
        b"\xc3\xa9",
    ]
)


@PROPERTY
@given(VALUES, st.data())
def test_decode_accepts_exactly_what_the_rule_accepts(value, draw):
    """Edited canonical bytes: decode agrees with the rule, whichever of its paths answers."""
    data = canonical.encode(value)
    at = draw.draw(st.integers(min_value=0, max_value=len(data)))
    cut = draw.draw(st.integers(min_value=0, max_value=3))
    edited = data[:at] + draw.draw(EDITS) + data[at + cut :]
    if canonical_by_the_rule(edited):
        assert canonical.decode(edited) == json.loads(edited)
    else:
        with pytest.raises(NotCanonical):
            canonical.decode(edited)
