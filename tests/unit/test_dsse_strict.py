"""Base64 in a bundle is read strictly (FORMAT.md 3.1): one text per byte string, so a text
whose padding leaves non-zero bits (``QR==``, read by lenient decoders as ``A``) is refused
wherever the format decodes base64: the envelope's payload and signatures, and the rotation
statement (``dsse.decode_base64``)."""

from __future__ import annotations

import base64
import binascii

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orchd.core import canonical, dsse
from orchd.errors import SignatureInvalid

ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"


def with_padding_bits(text: str, bits: int) -> str:
    """``text`` with ``bits`` (not 0) in the bits its padding leaves unused: lenient decoders
    still read the same bytes."""
    pad = len(text) - len(text.rstrip("="))
    unused = {1: 2, 2: 4}[pad]
    assert 0 < bits < 1 << unused
    at = len(text) - pad - 1
    changed = text[:at] + ALPHABET[ALPHABET.index(text[at]) | bits] + text[at + 1 :]
    assert base64.b64decode(changed, validate=True) == base64.b64decode(text)  # lenient: same
    return changed


@given(st.binary(max_size=200))
def test_canonical_base64_round_trips(data: bytes) -> None:
    assert dsse.decode_base64(base64.b64encode(data).decode(), "x") == data


@given(st.binary(min_size=1, max_size=200).filter(lambda d: len(d) % 3), st.data())
def test_any_non_zero_padding_bits_are_refused(data: bytes, draw: st.DataObject) -> None:
    text = base64.b64encode(data).decode()
    unused = 2 if text.endswith("=") and not text.endswith("==") else 4
    bad = with_padding_bits(text, draw.draw(st.integers(1, (1 << unused) - 1)))
    with pytest.raises(SignatureInvalid, match="x is not canonical base64: the bits its padding"):
        dsse.decode_base64(bad, "x")


@pytest.mark.parametrize(
    ("text", "data"),
    [("", b""), ("QQ==", b"A"), ("QUI=", b"AB"), ("QUJD", b"ABC"), ("+/+/", b"\xfb\xff\xbf")],
)
def test_the_canonical_texts_are_read(text: str, data: bytes) -> None:
    assert dsse.decode_base64(text, "x") == data


@pytest.mark.parametrize(
    ("text", "said"),
    [
        pytest.param("QR==", "not canonical", id="QR=="),
        pytest.param("QUN=", "not canonical", id="QUN="),
        pytest.param("QQ", "not standard", id="unpadded"),
        pytest.param("QQ=", "not standard", id="short-padding"),
        pytest.param("QQ===", "not standard", id="long-padding"),
        pytest.param("Q===", "not standard", id="three-pads"),
        pytest.param("QQ==QQ==", "not standard", id="padding-inside"),
        pytest.param("-_8=", "not standard", id="url-safe-alphabet"),
        pytest.param("QUJD\n", "not standard", id="newline"),
        pytest.param(" QUJD", "not standard", id="space"),
        pytest.param("QUJ\u0394", "not standard", id="not-ascii"),
        pytest.param(b"QUJD", "not standard", id="bytes"),
        pytest.param(5, "not standard", id="number"),
        pytest.param(None, "not standard", id="null"),
    ],
)
def test_other_texts_are_refused(text: object, said: str) -> None:
    with pytest.raises(SignatureInvalid, match=f"x is {said} base64"):
        dsse.decode_base64(text, "x")


def test_python_alone_would_take_padding_bits() -> None:
    """Why the check exists: the standard library reads ``QR==`` as ``A``, silently."""
    assert base64.b64decode("QR==", validate=True) == b"A"
    with pytest.raises(binascii.Error):
        base64.b64decode("QQ", validate=True)


def envelope(**changes: object) -> bytes:
    value = {
        "payload": base64.b64encode(b'{"a":1}').decode(),  # 7 bytes: padded
        "payloadType": dsse.MANIFEST_TYPE,
        "signatures": [{"keyid": "0" * 64, "sig": base64.b64encode(bytes(64)).decode()}],
    }
    value.update(changes)
    return canonical.dump(value)


def test_an_envelope_of_canonical_base64_is_read() -> None:
    read = dsse.decode(envelope(), payload_type=dsse.MANIFEST_TYPE)
    assert read.payload == b'{"a":1}' and read.signatures[0].sig == bytes(64)


def test_an_envelope_whose_payload_has_padding_bits_is_refused() -> None:
    payload = with_padding_bits(base64.b64encode(b'{"a":1}').decode(), 1)
    with pytest.raises(SignatureInvalid, match="the payload is not canonical base64"):
        dsse.decode(envelope(payload=payload), payload_type=dsse.MANIFEST_TYPE)


def test_an_envelope_whose_signature_has_padding_bits_is_refused() -> None:
    sig = with_padding_bits(base64.b64encode(bytes(64)).decode(), 0b1000)
    signatures = [{"keyid": "0" * 64, "sig": sig}]
    with pytest.raises(SignatureInvalid, match="a signature is not canonical base64"):
        dsse.decode(envelope(signatures=signatures), payload_type=dsse.MANIFEST_TYPE)


@given(st.integers(1, 4), st.sampled_from(["", "=", "=="]), st.data())
def test_a_padded_text_of_the_alphabet_is_read_or_refused_only_for_its_padding_bits(
    groups: int, pad: str, draw: st.DataObject
) -> None:
    """The pattern and the length checked first leave the decoder nothing to refuse itself."""
    size = 4 * groups - len(pad)
    text = draw.draw(st.text(alphabet=ALPHABET, min_size=size, max_size=size)) + pad
    try:
        data = dsse.decode_base64(text, "x")
    except SignatureInvalid as exc:
        assert "x is not canonical base64" in exc.message
    else:
        assert base64.b64encode(data).decode() == text


def test_a_key_id_is_the_sha256_of_a_32_byte_public_key() -> None:
    assert dsse.key_id(bytes(32)) == (
        "66687aadf862bd776c8fc18b8e9f8e20089714856ee233b3902a591d0d5f2925"
    )
    with pytest.raises(SignatureInvalid, match="an Ed25519 public key has 32 bytes, not 31"):
        dsse.key_id(bytes(31))


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (envelope(extra="x"), "the envelope must hold payload, payloadType and signatures"),
        (canonical.dump(["payload"]), "the envelope must hold payload, payloadType and signatures"),
        (envelope(signatures=["sig"]), "each signature must hold exactly keyid and sig"),
        (
            envelope(signatures=[{"keyid": "0" * 64, "sig": "", "by": "me"}]),
            "each signature must hold exactly keyid and sig",
        ),
        (
            envelope(signatures=[{"keyid": "A" * 64, "sig": ""}]),
            "a keyid must be 64 lower-case hex digits",
        ),
        (envelope(signatures=[{"keyid": 7, "sig": ""}]), "a keyid must be 64 lower-case hex"),
    ],
)
def test_an_envelope_not_of_its_shape_is_refused_naming_what_is_wrong(
    data: bytes, message: str
) -> None:
    with pytest.raises(SignatureInvalid, match=message):
        dsse.decode(data, payload_type=dsse.MANIFEST_TYPE)
