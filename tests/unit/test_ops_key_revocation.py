"""Revoking a key over the memory ledger (``bundles/FORMAT.md`` 3.2): the keys trusted only
through its rotation statements fall with it, transitively, in the same transaction, unless the
operator keeps them (and the revocation says so); a key also trusted by hand stays."""

from __future__ import annotations

import hashlib

import pytest

from orchd.core import drafts, dsse, sync
from orchd.core.events import Actor, Draft, Event
from orchd.core.policy import Policy
from orchd.errors import AmbiguousId, IdTooShort, StateConflict
from orchd.ops import keys as key_ops
from orchd.ops import lookup
from orchd.ops import site as site_ops
from tests.fakes import CountingEntropy, FakeClock
from tests.memory_ledger import MemoryLedger

ACTOR = Actor(uid=0, user="root", scopes=("orch:admin",))
POLICY = Policy()
OWN, K1, K2, K3 = (hashlib.sha256(f"key {n}".encode()).digest() for n in range(4))
ID1, ID2, ID3 = (dsse.key_id(k) for k in (K1, K2, K3))


def followed(old: bytes, new: bytes) -> list[Draft]:
    """The ``key.trusted`` an import records when it follows a rotation from ``old`` to ``new``."""
    statement = {
        "site": "lab",
        "old_key_id": dsse.key_id(old),
        "new_key_id": dsse.key_id(new),
        "public_key": new.hex(),
    }
    return [sync.trusted_record(statement, ACTOR)]


@pytest.fixture
def ledger() -> MemoryLedger:
    """Site ``hq`` trusts lab's K1 by hand, and K2 and K3 through lab's rotations K1->K2->K3."""
    first = site_ops.initialized("hq", ACTOR, "0.0-test")
    also = [drafts.key_created(ACTOR, public_key=OWN)]
    made = MemoryLedger.create("hq", FakeClock(), CountingEntropy(), first, also)
    trust(made, K1)
    made.append(followed(K1, K2))
    made.append(followed(K2, K3))
    return made


def trust(ledger: MemoryLedger, key: bytes) -> key_ops.KeyChange:
    return key_ops.trust(
        ledger,
        FakeClock(),
        CountingEntropy(),
        ACTOR,
        site="lab",
        public_key=key,
        expires=None,
        policy=POLICY,
        reason="key ceremony",
    )


def revoke(ledger: MemoryLedger, key_id: str, *, keep: bool = False) -> key_ops.KeyChange:
    return key_ops.revoke(
        ledger,
        FakeClock(),
        CountingEntropy(),
        ACTOR,
        key_id=key_id,
        policy=POLICY,
        reason="laptop stolen",
        ticket="SEC-1",
        keep_successors=keep,
    )


def revocations(ledger: MemoryLedger) -> list[Event]:
    return ledger.events_of_type("key.revoked")


def revoked(ledger: MemoryLedger) -> set[str]:
    return {k.key_id for k in ledger.trust_keys() if k.revoked_at is not None}


def test_the_trust_a_rotation_gives_names_the_key_that_vouched() -> None:
    (record,) = followed(K1, K2)
    assert record.payload["vouched_by"] == ID1


def test_revoking_a_key_revokes_its_successors_in_the_same_transaction(
    ledger: MemoryLedger,
) -> None:
    done = revoke(ledger, ID1)
    assert done.changed and not done.kept
    assert [(s.key.key_id, s.vouched_by) for s in done.successors] == [(ID2, ID1), (ID3, ID2)]
    assert all(s.key.revoked_at is not None for s in done.successors)
    assert revoked(ledger) == {ID1, ID2, ID3}
    first, second, third = revocations(ledger)
    assert (first.payload, first.reason, first.ticket) == (
        {"key_id": ID1},
        "laptop stolen",
        "SEC-1",
    )
    assert second.payload == {"key_id": ID2} and second.ticket == "SEC-1"
    assert second.reason == (
        f"revoked with key {ID1[:16]}: trusted only through a rotation statement key "
        f"{ID1[:16]} signed"
    )
    assert third.reason is not None and f"statement key {ID2[:16]} signed" in third.reason
    assert len({e.seq for e in (first, second, third)}) == 3


def test_revoking_a_successor_revokes_only_the_keys_after_it(ledger: MemoryLedger) -> None:
    done = revoke(ledger, ID2)
    assert [s.key.key_id for s in done.successors] == [ID3]
    assert revoked(ledger) == {ID2, ID3}


def test_keeping_the_successors_is_recorded_on_the_revocation(ledger: MemoryLedger) -> None:
    done = revoke(ledger, ID1, keep=True)
    assert done.kept and [s.key.key_id for s in done.successors] == [ID2, ID3]
    assert all(s.key.revoked_at is None for s in done.successors)
    (event,) = revocations(ledger)
    assert event.payload == {"key_id": ID1, "successors": "kept"}
    assert revoked(ledger) == {ID1}
    # a kept key is trusted through a revoked key's statement only: revoking another key of
    # the chain later revokes what it vouched for, not what was kept
    assert [s.key.key_id for s in revoke(ledger, ID2).successors] == [ID3]


def test_a_key_also_trusted_by_hand_stays_and_so_do_its_successors(ledger: MemoryLedger) -> None:
    by_hand = trust(ledger, K2)
    assert by_hand.changed and by_hand.key.revoked_at is None
    assert len([e for e in ledger.events_of_type("key.trusted") if e.payload["key_id"] == ID2]) == 2
    assert not trust(ledger, K2).changed  # trusted by hand already: nothing more to record
    done = revoke(ledger, ID1)
    assert done.successors == ()
    assert revoked(ledger) == {ID1}


def test_a_revoked_key_is_not_revoked_again_nor_are_its_successors(ledger: MemoryLedger) -> None:
    revoke(ledger, ID1, keep=True)
    again = revoke(ledger, ID1)
    assert (again.changed, again.successors) == (False, ())
    assert revoked(ledger) == {ID1}


def test_a_key_trusted_by_hand_for_another_site_is_still_refused(ledger: MemoryLedger) -> None:
    with pytest.raises(StateConflict, match="is trusted already for lab"):
        key_ops.trust(
            ledger,
            FakeClock(),
            CountingEntropy(),
            ACTOR,
            site="dmz",
            public_key=K2,
            expires=None,
            policy=POLICY,
            reason="key ceremony",
        )


def test_a_key_id_is_named_by_its_first_characters_and_an_ambiguous_one_lists_them() -> None:
    held = ["ab12" + "0" * 60, "ab12" + "f" * 60, "cd34" + "0" * 60]
    assert lookup.resolve_key(held, "CD340000") == held[2]
    assert lookup.resolve_key(held, held[1]) == held[1]
    assert lookup.resolve_key(held, "ef567890") is None
    assert lookup.resolve_key(held, "not hex!") is None
    assert lookup.resolve_key(held, "ab120000") == held[0]
    with pytest.raises(AmbiguousId) as two:
        lookup.resolve_key([*held, "ab120000" + "1" * 56], "AB120000")
    assert two.value.message == "'AB120000' matches 2 keys"
    assert f"  {held[0]}" in (two.value.hint_text or "")
    with pytest.raises(IdTooShort, match="at least 8 characters"):
        lookup.resolve_key(held, "ab12")
