"""Head statements: an origin's signed word for its own chain (core layer, format 2).

``bundles/FORMAT.md`` 3.3 is the normative text. A head statement is a DSSE envelope of type
``application/vnd.orchd.head+json`` whose payload is exactly ``{"hash", "hlc", "origin", "seq"}``
of an event of ``origin``, signed by the origin's key; because each event's hash covers the one
before, it vouches for every event of that chain up to ``seq``, whoever carried them. Only the
origin makes one, of its own chain (an exporter, for its own range); a relay passes on, byte for
byte, the newest one it accepted.

An importer checks each format 2 range's statement in this order, each refusal raised before the
next check runs (as ``bundle_trust`` does, over bytes, with an injected signature check):
1. its form (size, envelope, payload; exit 54) and that ``origin`` is the range's (54);
2. that a signature by a key trusted for the origin verifies: 54 when a signature names such a
   key and none verifies, 72 when none names one; a range of an origin for which this site trusts
   no key at all is refused (72) unless the operator vouched for it (``vouched``, the relay's
   word only);
3. that it does not contradict what this site holds for (origin, seq): else a fork (57), which
   ``forked`` hears of first when the statement is signed (a record is the caller's);
4. that it is the range's: ``seq`` = ``to_seq`` and ``hash`` = ``last_hash`` (54);
5. (while the events stream, ``bundle.read_events``) that ``hlc`` is the last event's (54).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any

from orchd.core import canonical, dsse, hlc
from orchd.core.manifest_members import MAX_STATEMENT, Range
from orchd.core.names import check_name
from orchd.core.trust import KeyView, check_signer
from orchd.errors import ChainFork, OrchdError, SignatureInvalid, UntrustedKey

HEAD_TYPE = "application/vnd.orchd.head+json"
HEAD_KEYS = frozenset({"hash", "hlc", "origin", "seq"})
_HEX64 = re.compile(r"[0-9a-f]{64}")

Verify = Callable[[bytes, bytes, bytes], bool]
"""``verify(public_key, message, signature)``: whether an Ed25519 signature holds."""


@dataclass(frozen=True, slots=True, kw_only=True)
class HeadStatement:
    """A head statement: what it says, and its envelope's bytes as made or received."""

    origin: str
    seq: int
    hash: str
    hlc: str
    envelope: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class Checked:
    """A range's head statement that passed steps 1, 2 and 4: ``signer`` is the key that
    verified it, or None when the operator took the range on the relay's word."""

    statement: HeadStatement
    signer: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class Fork:
    """Two hashes for one (origin, seq): the one held here and the one the origin signed."""

    origin: str
    seq: int
    held_hash: str
    signed_hash: str


def head_payload(origin: str, seq: int, digest: str, stamp: str) -> bytes:
    """The exact bytes a head statement signs (keys in code point order: canonical JSON)."""
    return canonical.dump({"hash": digest, "hlc": stamp, "origin": origin, "seq": seq})


def make_head(
    origin: str, seq: int, digest: str, stamp: str, *, key_id: str, sign: Callable[[bytes], bytes]
) -> HeadStatement:
    """The head statement of ``origin``'s own event ``seq``, signed with its key."""
    payload = head_payload(origin, seq, digest, stamp)
    envelope = dsse.Envelope(
        payload_type=HEAD_TYPE,
        payload=payload,
        signatures=(dsse.Signature(key_id=key_id, sig=sign(dsse.pae(HEAD_TYPE, payload))),),
    )
    return HeadStatement(origin=origin, seq=seq, hash=digest, hlc=stamp, envelope=envelope.encode())


def _bad(detail: str) -> SignatureInvalid:
    return SignatureInvalid(detail=f"head statement: {detail}")


def read_payload(
    data: bytes,
    payload_type: str,
    keys: frozenset[str],
    bad: Callable[[str], SignatureInvalid],
) -> dict[str, Any]:
    """A statement's payload read strictly (form only, no trust), for every kind of statement:
    at most MAX_STATEMENT bytes, a canonical envelope of ``payload_type``, a canonical JSON
    object of exactly ``keys``; ``bad`` makes each refusal."""
    if len(data) > MAX_STATEMENT:
        raise bad(f"larger than {MAX_STATEMENT} bytes")
    payload = dsse.decode(data, payload_type=payload_type).payload
    try:
        value = canonical.decode(payload)
    except OrchdError as exc:
        raise bad(f"its payload is not canonical JSON ({exc.message})") from None
    if not isinstance(value, dict) or set(value) != keys:
        raise bad("its payload must hold exactly " + ", ".join(sorted(keys)))
    return value


def parse_head(data: bytes) -> HeadStatement:
    """A head statement's envelope read strictly (form only, no trust): at most MAX_STATEMENT
    bytes, a canonical envelope of HEAD_TYPE, a payload of exactly the four keys."""
    value = read_payload(data, HEAD_TYPE, HEAD_KEYS, _bad)
    seq, digest, stamp, origin = value["seq"], value["hash"], value["hlc"], value["origin"]
    if type(seq) is not int or not 1 <= seq <= canonical.MAX_INT:
        raise _bad(f"seq must be an integer from 1 to {canonical.MAX_INT}")
    if not isinstance(digest, str) or not _HEX64.fullmatch(digest):
        raise _bad("hash must be 64 lower-case hex digits")
    try:
        hlc.check(stamp)
        check_name("site id", origin)
    except OrchdError as exc:
        raise _bad(exc.message) from None
    return HeadStatement(origin=origin, seq=seq, hash=digest, hlc=stamp, envelope=data)


def by_site(trusted: Mapping[str, KeyView]) -> dict[str, dict[str, KeyView]]:
    """``trusted`` grouped by the site each key is trusted for: read once, so that checking
    many origins' statements costs one pass over the keys, not one per origin."""
    grouped: dict[str, dict[str, KeyView]] = {}
    for key_id, row in trusted.items():
        grouped.setdefault(row.site, {})[key_id] = row
    return grouped


def usable_keys(trusted: Mapping[str, KeyView], origin: str, now: str) -> dict[str, KeyView]:
    """The keys of ``trusted`` that verify what ``origin`` signs at ``now``."""
    usable = {}
    for key_id, row in trusted.items():
        if row.site != origin:
            continue  # the commonest case with many origins: no refusal made to be dropped
        try:
            usable[key_id] = check_signer(row, key_id, origin, now)
        except UntrustedKey:
            continue
    return usable


def signer(statement: HeadStatement, keys: Mapping[str, KeyView], verify: Verify) -> str:
    """The first key of ``keys`` (trusted for the statement's origin) whose signature on it
    verifies; 54 when a signature names one of them but none verifies, 72 when none does."""
    return _signer(statement.envelope, HEAD_TYPE, statement.origin, keys, verify)


def _signer(
    data: bytes, payload_type: str, origin: str, keys: Mapping[str, KeyView], verify: Verify
) -> str:
    envelope = dsse.decode(data, payload_type=payload_type)
    what = "head" if payload_type == HEAD_TYPE else "checkpoint"
    message = dsse.pae(payload_type, envelope.payload)
    named = [s for s in envelope.signatures if s.key_id in keys]
    for signature in named:
        if verify(bytes.fromhex(keys[signature.key_id].public_key), message, signature.sig):
            return signature.key_id
    if named:
        raise SignatureInvalid(
            detail=f"{what} statement: its signature by key {named[0].key_id} does not verify"
        )
    raise UntrustedKey(
        key_id=envelope.signatures[0].key_id,
        site=origin,
        detail=f"no signature on the {what} statement of {origin} is by a key this site "
        "trusts for it",
    )


def signer_of(
    data: bytes,
    payload_type: str,
    origin: str,
    trusted: Mapping[str, KeyView],
    verify: Verify,
    now: str,
) -> str:
    """The key of ``trusted`` usable for ``origin`` at ``now`` that signed the statement
    envelope ``data`` of ``payload_type`` (54 or 72 as ``signer``)."""
    return _signer(data, payload_type, origin, usable_keys(trusted, origin, now), verify)


def relay_only(
    marks: Mapping[str, tuple[int, str]],
    heads: Mapping[str, HeadStatement],
    *,
    trusted: Mapping[str, KeyView],
    verify: Verify,
    now: str,
) -> dict[str, tuple[int, str]]:
    """Of ``marks`` (origin -> (seq, bundle): accepted up to seq on the relay's word alone,
    ``bundle_views.relay_only_marks``), those still vouched by the relay only: lifted once the
    head statement held of the origin (``heads``, the statement store) covers the seq and
    verifies with a key this site trusts for the origin."""
    left = {}
    grouped = by_site(trusted)
    for origin, (seq, bundle_id) in marks.items():
        held = heads.get(origin)
        keys = grouped.get(origin, {})
        if held is None or held.seq < seq or not _verifies(held, keys, verify, now):
            left[origin] = (seq, bundle_id)
    return left


def _verifies(
    statement: HeadStatement, trusted: Mapping[str, KeyView], verify: Verify, now: str
) -> bool:
    try:
        signer(statement, usable_keys(trusted, statement.origin, now), verify)
    except (SignatureInvalid, UntrustedKey):
        return False
    return True


def check_heads(
    ranges: tuple[Range, ...],
    found: Mapping[str, bytes],
    *,
    trusted: Mapping[str, KeyView],
    verify: Verify,
    now: str,
    held: Mapping[tuple[str, int], str],
    vouched: Collection[str] = (),
    forked: Callable[[Fork], None] = lambda fork: None,
) -> dict[str, Checked]:
    """Each range's head statement (``found``: origin -> its member's bytes) checked in the
    order of the module's header; ``held``: this site's hash at each statement's (origin, seq),
    an event's or a statement's; ``vouched``: the origins the operator takes on the relay's word
    (only where this site trusts no key for them). Raises the first refusal."""
    checked = {}
    grouped = by_site(trusted)
    for r in ranges:
        statement = parse_head(found[r.origin])
        if statement.origin != r.origin:
            raise _bad(f"it is {statement.origin}'s, in the range of {r.origin}")
        keys = grouped.get(r.origin, {})
        key = vouching_key(statement.envelope, HEAD_TYPE, r.origin, keys, verify, now, vouched)
        ours = held.get((r.origin, statement.seq))
        if ours is not None and ours != statement.hash:
            if key is not None:
                forked(
                    Fork(
                        origin=r.origin,
                        seq=statement.seq,
                        held_hash=ours,
                        signed_hash=statement.hash,
                    )
                )
            raise ChainFork(
                origin=r.origin,
                detail=f"its head statement gives seq {statement.seq} another hash than this "
                f"site holds ({statement.hash[:16]}, here {ours[:16]})",
            )
        if (statement.seq, statement.hash) != (r.to_seq, r.last_hash):
            raise _bad(
                f"it vouches for {r.origin}/{statement.seq} ({statement.hash[:16]}), not for the "
                f"range's last event {r.to_seq} ({r.last_hash[:16]}): stale, replayed or foreign"
            )
        checked[r.origin] = Checked(statement=statement, signer=key)
    return checked


def vouching_key(
    data: bytes,
    payload_type: str,
    origin: str,
    trusted: Mapping[str, KeyView],
    verify: Verify,
    now: str,
    vouched: Collection[str],
) -> str | None:
    """Step 2 (of a head or a checkpoint statement, ``data`` its envelope): the key trusted for
    the origin that signed it; None when this site trusts no key of the origin and the operator
    vouched for it on the relay's word."""
    keys = usable_keys(trusted, origin, now)
    if keys:
        return _signer(data, payload_type, origin, keys, verify)
    if origin in vouched:
        return None
    raise UntrustedKey(
        key_id="(none)",
        site=origin,
        detail=f"this site trusts no key of {origin}, whose events the bundle relays "
        f"(trust its key: orchd keys trust {origin} FILE; or take them on the relay's "
        f"word alone: --vouched-by-relay {origin} --reason R)",
    )
