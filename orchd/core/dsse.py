"""DSSE envelopes: the signed wrapper of a bundle's manifest (core layer).

Dead Simple Signing Envelope, v1 (https://github.com/secure-systems-lab/dsse):
``PAE(type, body) = "DSSEv1" SP LEN(type) SP type SP LEN(body) SP body`` with ``LEN`` the byte
length in ASCII decimal and ``SP`` one space. A signature signs ``PAE(payloadType, payload)``, never
the payload alone, so a signature can not be moved to another type of payload.

The envelope is JSON ``{"payload": b64, "payloadType": str, "signatures": [{"keyid": str, "sig":
b64}]}``; orchd writes it as canonical JSON and reads it strictly, its base64 too (padded, the
unused bits zero: ``decode_base64``). A key id is the lower-case hex sha256 of the raw 32-byte
Ed25519 public key.
"""

from __future__ import annotations

import base64
import hashlib
import re
from dataclasses import dataclass

from orchd.core import canonical
from orchd.errors import NotCanonical, OrchdError, SignatureInvalid

MANIFEST_TYPE = "application/vnd.orchd.manifest+json"
ROTATION_TYPE = "application/vnd.orchd.key-rotation+json"
CHECKPOINT_TYPE = "application/vnd.orchd.checkpoint+json"
MAX_SIGNATURES = 4
_KEY_ID = re.compile(r"[0-9a-f]{64}")
_B64 = re.compile(r"[A-Za-z0-9+/]*={0,2}")


def pae(payload_type: str, body: bytes) -> bytes:
    """The pre-authentication encoding that is signed."""
    kind = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(kind), kind, len(body), body)


def key_id(public_key: bytes) -> str:
    if len(public_key) != 32:
        raise SignatureInvalid(detail=f"an Ed25519 public key has 32 bytes, not {len(public_key)}")
    return hashlib.sha256(public_key).hexdigest()


@dataclass(frozen=True, slots=True, kw_only=True)
class Signature:
    key_id: str
    sig: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class Envelope:
    payload_type: str
    payload: bytes
    signatures: tuple[Signature, ...]

    def encode(self) -> bytes:
        return canonical.dump(
            {
                "payload": _b64(self.payload),
                "payloadType": self.payload_type,
                "signatures": [{"keyid": s.key_id, "sig": _b64(s.sig)} for s in self.signatures],
            }
        )


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def decode_base64(text: object, what: str) -> bytes:
    """``text`` as strict base64 (RFC 4648, section 4): the standard alphabet, padded to a
    multiple of 4 with ``=``, and the bits the padding leaves unused all zero, so that one value
    has exactly one text (``QQ==`` is ``A``; ``QR==`` is refused)."""
    if not isinstance(text, str) or len(text) % 4 or not _B64.fullmatch(text):
        raise SignatureInvalid(detail=f"{what} is not standard base64")
    data = base64.b64decode(text, validate=True)  # the checks above leave it nothing to refuse
    if _b64(data) != text:
        raise SignatureInvalid(
            detail=f"{what} is not canonical base64: the bits its padding leaves must be zero"
        )
    return data


def decode(data: bytes, *, payload_type: str) -> Envelope:
    """Read an envelope strictly: canonical JSON, exactly these keys, the expected type."""
    try:
        value = canonical.decode(data)
    except (NotCanonical, OrchdError) as exc:
        raise SignatureInvalid(
            detail=f"the envelope is not canonical JSON ({exc.message})"
        ) from None
    if not isinstance(value, dict) or set(value) != {"payload", "payloadType", "signatures"}:
        raise SignatureInvalid(detail="the envelope must hold payload, payloadType and signatures")
    if value["payloadType"] != payload_type:
        raise SignatureInvalid(
            detail=f"payloadType is {value['payloadType']!r}, not {payload_type}"
        )
    signatures = value["signatures"]
    if not isinstance(signatures, list) or not 1 <= len(signatures) <= MAX_SIGNATURES:
        raise SignatureInvalid(detail=f"the envelope must carry 1 to {MAX_SIGNATURES} signatures")
    parsed = []
    for entry in signatures:
        if not isinstance(entry, dict) or set(entry) != {"keyid", "sig"}:
            raise SignatureInvalid(detail="each signature must hold exactly keyid and sig")
        if not isinstance(entry["keyid"], str) or not _KEY_ID.fullmatch(entry["keyid"]):
            raise SignatureInvalid(detail="a keyid must be 64 lower-case hex digits")
        sig = decode_base64(entry["sig"], "a signature")
        if len(sig) != 64:
            raise SignatureInvalid(detail=f"an Ed25519 signature has 64 bytes, not {len(sig)}")
        parsed.append(Signature(key_id=entry["keyid"], sig=sig))
    return Envelope(
        payload_type=payload_type,
        payload=decode_base64(value["payload"], "the payload"),
        signatures=tuple(parsed),
    )
