"""The protocols moved out of the CLI into ops (issue 20): the key rotation, creating and
restoring a site, restoring a backup; each over in-memory files and the memory ledger, so the
order of the steps and what a crash between them leaves are checked without a disk."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from orchd.core import drafts, dsse
from orchd.core.events import Actor, Draft
from orchd.core.policy import Policy
from orchd.core.ports import VerifyReport
from orchd.core.progress import OnProgress, Progress, quiet
from orchd.errors import BadInput, InvalidName, SiteExists, StateConflict, StorageError
from orchd.ops import backup as backup_ops
from orchd.ops import keys as key_ops
from orchd.ops import site as site_ops
from tests.fakes import CountingEntropy, FakeClock
from tests.memory_ledger import MemoryLedger

ACTOR = Actor(uid=0, user="root", scopes=("orch:admin",))
POLICY = Policy()


@dataclass(frozen=True, slots=True)
class Key:
    public_key: bytes

    @property
    def key_id(self) -> str:
        return dsse.key_id(self.public_key)

    def sign(self, data: bytes) -> bytes:
        return hashlib.sha512(self.public_key + data).digest()


@dataclass
class Files:
    """``KeyFiles`` in memory; ``crash_in_promote`` makes the next promote fail half done."""

    current_key: Key | None = None
    pending_key: Key | None = None
    retired: list[Key] = field(default_factory=list)
    made: int = 0
    crash_in_promote: bool = False
    path: Path = Path("/state/keys/site.key")

    def exists(self) -> bool:
        return self.current_key is not None

    def current(self) -> Key:
        if self.current_key is None:
            raise StorageError(path=self.path, detail="no such file")
        return self.current_key

    def write(self, key: Key) -> None:
        assert self.current_key is None, "write never replaces a key file"
        self.current_key = key

    def remove(self) -> None:
        self.current_key = None

    def generate(self) -> Key:
        self.made += 1
        return Key(hashlib.sha256(f"key {self.made}".encode()).digest())

    def pending(self) -> Key | None:
        return self.pending_key

    def stage(self, key: Key) -> None:
        self.pending_key = key

    def promote(self) -> None:
        if self.crash_in_promote:
            self.crash_in_promote = False
            raise SystemExit("crash")
        assert self.current_key is not None and self.pending_key is not None
        self.retired.append(self.current_key)
        self.current_key, self.pending_key = self.pending_key, None


def vouch(site: str, old: Key, new_public_key: bytes) -> str:
    return f"{site}:{old.key_id}->{dsse.key_id(new_public_key)}"


def a_site(files: Files) -> MemoryLedger:
    key = files.generate()
    files.write(key)
    first = site_ops.initialized("hq", ACTOR, "0.0-test")
    also = [drafts.key_created(ACTOR, public_key=key.public_key)]
    return MemoryLedger.create("hq", FakeClock(), CountingEntropy(), first, also)


def own(ledger: MemoryLedger) -> str | None:
    found = key_ops.own_key(ledger)
    return None if found is None else found.key_id


# --- the key rotation -----------------------------------------------------------------------


def test_a_rotation_records_the_new_key_vouched_for_and_retires_the_old() -> None:
    files = Files()
    ledger = a_site(files)
    before = files.current()
    old, new = key_ops.rotate(ledger, files, vouch, ACTOR, policy=POLICY, reason="yearly")
    assert (old, files.current(), files.retired, files.pending_key) == (before, new, [old], None)
    assert own(ledger) == new.key_id
    (event,) = ledger.events_of_type("key.rotated")
    assert event.payload["statement"] == vouch("hq", old, new.public_key)
    assert event.reason == "yearly"


def test_a_rotation_without_a_reason_writes_no_key_file() -> None:
    files = Files()
    ledger = a_site(files)
    with pytest.raises(InvalidName):
        key_ops.rotate(ledger, files, vouch, ACTOR, policy=POLICY, reason="")
    assert (files.made, files.pending_key, ledger.events_of_type("key.rotated")) == (1, None, [])


def test_a_crash_before_the_new_key_is_in_place_is_finished_by_the_next_use() -> None:
    files = Files(crash_in_promote=True)
    ledger = a_site(files)
    old = files.current()
    with pytest.raises(SystemExit):
        key_ops.rotate(ledger, files, vouch, ACTOR, policy=POLICY, reason="yearly")
    new = files.pending()
    assert new is not None and files.current() == old  # recorded, not yet in place
    assert own(ledger) == new.key_id
    assert key_ops.site_key(ledger, files) == new
    assert (files.retired, files.pending()) == ([old], None)


def test_a_pending_key_the_ledger_never_recorded_is_left_alone() -> None:
    files = Files()
    ledger = a_site(files)
    current = files.current()
    files.stage(files.generate())  # a rotation that crashed before it recorded anything
    assert key_ops.site_key(ledger, files) == current
    assert files.pending_key is not None and files.retired == []


def test_a_key_file_that_is_not_the_sites_own_key_is_refused() -> None:
    files = Files()
    ledger = a_site(files)
    files.current_key = files.generate()
    with pytest.raises(StateConflict, match="is not this site's signing key"):
        key_ops.site_key(ledger, files)


def test_a_checkpoint_is_signed_by_the_key_given() -> None:
    key = Files().generate()
    envelope = dsse.decode(
        key_ops.checkpoint_signer(key)(dsse.CHECKPOINT_TYPE, b"payload"),
        payload_type=dsse.CHECKPOINT_TYPE,
    )
    (signature,) = envelope.signatures
    assert (envelope.payload_type, envelope.payload) == (dsse.CHECKPOINT_TYPE, b"payload")
    assert signature.key_id == key.key_id
    assert signature.sig == key.sign(dsse.pae(dsse.CHECKPOINT_TYPE, b"payload"))


# --- creating and restoring a site ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Rebuilt:
    source: Path
    own_seq: int
    imported: Sequence[object]


@dataclass
class StateDir:
    """``SiteFiles`` in memory, keeping the order of the steps taken."""

    aside: MemoryLedger | None = None
    ledger: MemoryLedger | None = None
    steps: list[str] = field(default_factory=list)
    state_dir: Path = Path("/state")
    progress: OnProgress = quiet  # what rebuild_aside was given

    def make_dir(self) -> None:
        self.steps.append("make_dir")

    @contextmanager
    def lock(self) -> Iterator[None]:
        self.steps.append("lock")
        try:
            yield
        finally:
            self.steps.append("unlock")

    def has_ledger(self) -> bool:
        return self.ledger is not None

    def create_ledger(self, site_id: str, first: Draft, also: Sequence[Draft]) -> None:
        self.steps.append("create_ledger")
        self.ledger = MemoryLedger.create(site_id, FakeClock(), CountingEntropy(), first, also)

    def clear_aside(self) -> None:
        self.steps.append("clear_aside")

    def rebuild_aside(
        self,
        site_id: str,
        sources: Sequence[Path],
        anchor: bytes,
        actor: Actor,
        ticket: str,
        sign: Callable[[str, bytes], bytes],
        progress: OnProgress = quiet,
    ) -> Rebuilt:
        self.steps.append("rebuild_aside")
        self.progress = progress
        self.aside = a_site(Files(made=100))  # the lost site's chain, its lost key its own
        return Rebuilt(source=sources[0], own_seq=2, imported=["a", "b"])

    @contextmanager
    def open_aside(self) -> Iterator[MemoryLedger]:
        assert self.aside is not None
        self.steps.append("open_aside")
        yield self.aside
        self.steps.append("close_aside")

    def place_aside(self) -> None:
        self.steps.append("place_aside")
        self.ledger, self.aside = self.aside, None

    def new_identity(self, site_id: str) -> None:
        self.steps.append(f"new_identity {site_id}")


def test_init_creates_the_ledger_with_the_key_it_made() -> None:
    state, files = StateDir(), Files()
    key = site_ops.create(state, files, "hq", ACTOR, "0.0-test")
    assert state.steps == ["make_dir", "lock", "create_ledger", "new_identity hq", "unlock"]
    assert state.ledger is not None and own(state.ledger) == key.key_id == files.current().key_id


def test_init_reuses_a_key_file_an_init_that_crashed_left() -> None:
    state, files = StateDir(), Files()
    left = files.generate()
    files.write(left)
    assert site_ops.create(state, files, "hq", ACTOR, "0.0-test") == left


def test_init_over_a_site_changes_nothing() -> None:
    state, files = StateDir(ledger=a_site(Files())), Files()
    with pytest.raises(SiteExists):
        site_ops.create(state, files, "hq", ACTOR, "0.0-test")
    assert (state.steps, files.made) == (["make_dir", "lock", "unlock"], 0)


def test_a_restore_replaces_the_lost_key_and_places_the_ledger_last() -> None:
    state, files = StateDir(), Files()
    files.write(Key(b"\x07" * 32))  # a key file of the lost site's
    told: list[Progress] = []
    done, key = site_ops.restore(
        state, files, "hq", [Path("hq.orchkit")], b"", ACTOR, "INC-1", told.append
    )
    assert state.progress == told.append  # how far the rebuild is goes to the caller
    assert state.steps == [
        "make_dir",
        "lock",
        "clear_aside",
        "rebuild_aside",
        "open_aside",
        "close_aside",
        "place_aside",
        "new_identity hq",
        "unlock",
    ]
    assert state.ledger is not None and files.current() == key
    assert own(state.ledger) == key.key_id
    (revoked,) = state.ledger.events_of_type("key.revoked")
    assert revoked.payload["key_id"] != key.key_id
    (restored,) = state.ledger.events_of_type("site.restored")
    assert (restored.ticket, restored.payload) == (
        "INC-1",
        {"from": "hq.orchkit", "own_seq": done.own_seq, "bundles": 2},
    )


def test_a_restore_over_a_site_changes_nothing() -> None:
    state, files = StateDir(ledger=a_site(Files())), Files()
    with pytest.raises(SiteExists):
        site_ops.restore(state, files, "hq", [Path("hq.orchkit")], b"", ACTOR, "INC-1")
    assert (state.steps, files.made) == (["make_dir", "lock", "unlock"], 0)


# --- restoring a backup ---------------------------------------------------------------------


@dataclass
class Ledgers:
    """``LedgerFiles`` in memory: the backup, once copied, is the staged ledger."""

    backup_of: MemoryLedger
    steps: list[str] = field(default_factory=list)
    staged: MemoryLedger | None = None
    copy_fails: bool = False
    staging: Path = Path("/state/ledger.db.restoring-backup")
    clock: FakeClock = field(default_factory=FakeClock)

    def backup(self, out: Path) -> VerifyReport:
        raise NotImplementedError

    def check(self, backup: Path) -> None:
        self.steps.append("check")

    @contextmanager
    def lock(self) -> Iterator[None]:
        self.steps.append("lock")
        try:
            yield
        finally:
            self.steps.append("unlock")

    def clear_staging(self) -> None:
        self.steps.append("clear_staging")
        self.staged = None

    def copy(self, backup: Path) -> None:
        if self.copy_fails:
            raise OSError(28, "No space left on device")
        self.steps.append("copy")
        self.staged = self.backup_of

    @contextmanager
    def open_staging(self) -> Iterator[MemoryLedger]:
        assert self.staged is not None
        yield self.staged

    def set_aside(self) -> Path | None:
        self.steps.append("set_aside")
        return Path("/state/ledger.db.replaced-X")

    def place_staging(self) -> None:
        self.steps.append("place_staging")


def test_a_backup_of_this_site_is_checked_recorded_and_put_in_place() -> None:
    files = Files()
    ledgers = Ledgers(backup_of=a_site(files))
    own_seq, aside = backup_ops.restore(
        ledgers, files, Path("b.db"), ACTOR, ticket="INC-2", reason="disk replaced"
    )
    assert (own_seq, aside) == (2, Path("/state/ledger.db.replaced-X"))
    assert ledgers.steps == [
        "check",
        "lock",
        "clear_staging",
        "copy",
        "set_aside",
        "place_staging",
        "unlock",
    ]
    (restored,) = ledgers.backup_of.events_of_type("site.restored")
    assert restored.payload == {"from": "b.db", "own_seq": 2, "events": 2}


def test_a_backup_of_another_key_is_refused_and_the_ledger_stays() -> None:
    ledgers = Ledgers(backup_of=a_site(Files()))
    other = Files()
    other.write(Key(b"\x09" * 32))
    with pytest.raises(BadInput, match="whose signing key is not"):
        backup_ops.restore(ledgers, other, Path("b.db"), ACTOR, ticket="INC-2", reason="r")
    assert ledgers.steps == ["check", "lock", "clear_staging", "copy", "clear_staging", "unlock"]


def test_a_failed_copy_is_named_as_the_staging_file_and_cleared() -> None:
    files = Files()
    ledgers = Ledgers(backup_of=a_site(files), copy_fails=True)
    with pytest.raises(StorageError, match="restoring-backup"):
        backup_ops.restore(ledgers, files, Path("b.db"), ACTOR, ticket="INC-2", reason="r")
    assert ledgers.steps == ["check", "lock", "clear_staging", "clear_staging", "unlock"]


def test_a_bad_ticket_is_refused_before_the_backup_is_looked_at() -> None:
    files = Files()
    ledgers = Ledgers(backup_of=a_site(files))
    with pytest.raises(InvalidName):
        backup_ops.restore(ledgers, files, Path("b.db"), ACTOR, ticket="no spaces", reason="r")
    assert ledgers.steps == []
