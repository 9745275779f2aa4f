"""Sites exchanging bundles over a hostile courier, on the real ledger and bundle code.

Each round one thing happens at random (seeded; the seed is printed): a site records a job or a
quota override, exports a bundle for a peer (incremental after the peer's receipt, sometimes
``full``, sometimes for any site), or the courier delivers one bundle in flight to its site. The
courier loses bundles, delivers some twice, and delivers them in any order. Checked every round:
every site's copy of every origin is a prefix of that origin's own chain (nothing lost, nothing
duplicated, no fork); an import that is refused leaves the ledger exactly as it was. Checked at
the end, after a full exchange: every ledger verifies, every site holds every origin's events
byte for byte, and every site has the same quota overrides.

ORCHD_SIM_SEED replays a run; ORCHD_SIM_LONG=1 adds a run of 2,000 rounds.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from orchd.adapters import bundles, keys
from orchd.adapters.ledger import SqliteLedger
from orchd.adapters.system import OsEntropy, SystemClock
from orchd.core import bundle as bundle_core
from orchd.core import drafts, ids
from orchd.core.events import Actor
from orchd.core.policy import Policy, Source
from orchd.errors import BundleStale, ChainGap, OrchdError
from orchd.ops import keys as key_ops
from orchd.ops import quota as quota_ops
from orchd.ops import site as site_ops
from tests.builders import submitted

ADMIN = Actor(uid=0, user="root", scopes=("orch:admin", "orch:bundle", "orch:quota"))
POLICY = Policy(sources={"nvd": Source(name="nvd")})  # what the overrides name
REFUSALS_EXPECTED = (ChainGap, BundleStale)  # a courier's losses and repeats, nothing else


@dataclass
class Node:
    name: str
    ledger: SqliteLedger
    key: keys.SiteKey
    made: int = 0


@dataclass
class World:
    root: Path
    rng: random.Random
    nodes: dict[str, Node]
    clock: SystemClock = field(default_factory=SystemClock)
    entropy: OsEntropy = field(default_factory=OsEntropy)
    flight: list[tuple[str, Path]] = field(default_factory=list)  # (recipient site, bundle)
    exports: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)

    def note(self, outcome: str) -> None:
        self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1


def make_world(root: Path, names: list[str], seed: int) -> World:
    clock, entropy = SystemClock(), OsEntropy()
    nodes = {}
    for name in names:
        key = keys.generate()
        first = site_ops.initialized(name, ADMIN, "sim")
        ledger = SqliteLedger.create(
            root / f"{name}.db",
            name,
            clock,
            entropy,
            first,
            also=[drafts.key_created(ADMIN, public_key=key.public_key)],
        )
        nodes[name] = Node(name, ledger, key)
    for node in nodes.values():
        for peer in nodes.values():
            if peer is not node:
                public = peer.key.public_key
                key_ops.trust(
                    node.ledger,
                    clock,
                    entropy,
                    ADMIN,
                    site=peer.name,
                    public_key=public,
                    expires=None,
                    policy=POLICY,
                    reason="sim",
                )
    return World(root, random.Random(seed), nodes)


def submit(world: World, node: Node) -> None:
    node.made += 1
    key = f"{node.name}-{node.made}"
    node.ledger.append([submitted(_ulid(world), key=key, actor=ADMIN)])


def _ulid(world: World) -> str:
    return ids.new_id(world.clock.now_ms(), world.entropy.token(ids.ENTROPY_BYTES))


def override(world: World, node: Node) -> None:
    target_site = world.rng.choice([*world.nodes, quota_ops.EVERY_SITE])
    burst = world.rng.randint(1, 50)
    quota_ops.change(
        node.ledger,
        world.clock,
        world.entropy,
        ADMIN,
        target="source:nvd",
        site=target_site,
        values={"burst": burst},
        policy=POLICY,
        reason="sim",
        ticket="SIM-1",
    )


def export(world: World, node: Node) -> None:
    peers = [n for n in world.nodes if n != node.name]
    recipient = world.rng.choice([*peers, bundle_core.ANY_SITE])
    receipt = node.ledger.receipts().get(recipient)
    since = None
    if receipt is not None and world.rng.random() < 0.8:
        since = {o: (m[0], m[1]) for o, m in json.loads(receipt.watermarks).items()}
    world.exports += 1
    out = world.root / f"b{world.exports}.orchkit"
    try:
        bundles.export(
            node.ledger,
            node.key,
            ADMIN,
            out,
            recipient=recipient,
            now_ms=world.clock.now_ms(),
            since=since,
        )
    except OrchdError as exc:  # nothing new for that peer
        assert "nothing to send" in exc.message, exc.message
        world.note("nothing to send")
        return
    targets = peers if recipient == bundle_core.ANY_SITE else [recipient]
    for target in targets:
        fate = world.rng.random()
        if fate < 0.15:
            world.note("lost")
            continue
        copies = 2 if fate > 0.9 else 1
        for _ in range(copies):
            world.flight.insert(world.rng.randint(0, len(world.flight)), (target, out))


def deliver(world: World) -> None:
    target, path = world.flight.pop(world.rng.randrange(len(world.flight)))
    node = world.nodes[target]
    before = _state(node.ledger)
    try:
        report = bundles.import_bundle(node.ledger, path, ADMIN, now_ms=world.clock.now_ms())
    except REFUSALS_EXPECTED as exc:
        world.note(type(exc).__name__)
        assert _state(node.ledger) == before, f"a refused import changed {target}"
        return
    world.note("already" if report.already else "imported")


def _state(ledger: SqliteLedger) -> tuple[object, ...]:
    return (ledger.heads(), ledger.overrides(), len(ledger.bundle_records()))


def check_prefixes(world: World) -> None:
    """Every copy of an origin is a prefix of the origin's own chain."""
    for node in world.nodes.values():
        for origin, (seq, digest) in node.ledger.heads().items():
            owner = world.nodes[origin].ledger
            assert owner.hashes([(origin, seq)]) == {(origin, seq): digest}, (node.name, origin)


def full_exchange(world: World) -> dict[str, dict[str, tuple[int, str]]]:
    """Every site sends everything to every other, twice over; what each held when it last
    exported (each import records an event, so no final state is ever the same everywhere)."""
    sent: dict[str, dict[str, tuple[int, str]]] = {}
    for _ in range(2):
        for node in world.nodes.values():
            world.exports += 1
            out = world.root / f"full{world.exports}.orchkit"
            sent[node.name] = node.ledger.heads()
            bundles.export(
                node.ledger,
                node.key,
                ADMIN,
                out,
                recipient=bundle_core.ANY_SITE,
                now_ms=world.clock.now_ms(),
            )
            for peer in world.nodes.values():
                if peer is not node:
                    with contextlib.suppress(BundleStale):  # it holds all of it already
                        bundles.import_bundle(peer.ledger, out, ADMIN, now_ms=world.clock.now_ms())
    return sent


def simulate(root: Path, names: list[str], rounds: int, seed: int) -> World:
    world = make_world(root, names, seed)
    try:
        for _ in range(rounds):
            node = world.nodes[world.rng.choice(names)]
            roll = world.rng.random()
            if roll < 0.3:
                submit(world, node)
            elif roll < 0.4:
                override(world, node)
            elif roll < 0.65 or not world.flight:
                export(world, node)
            else:
                deliver(world)
            check_prefixes(world)
        sent = full_exchange(world)
        for node in world.nodes.values():
            assert node.ledger.verify().events > 0
            held = node.ledger.heads()
            for heads in sent.values():
                for origin, (seq, _) in heads.items():
                    if origin != node.name:  # a site's own chain is never taken from a peer
                        assert held[origin][0] >= seq, f"{node.name} lacks {origin} up to {seq}"
        check_prefixes(world)  # so every copy is byte for byte the origin's own events
        first = world.nodes[names[0]].ledger.overrides()
        for node in world.nodes.values():
            assert node.ledger.overrides() == first, f"{node.name}'s quota overrides differ"
        return world
    finally:
        for node in world.nodes.values():
            node.ledger.close()


def _seed() -> int:
    seed = int(os.environ.get("ORCHD_SIM_SEED", "20261127"))
    print(f"simulation seed {seed} (set ORCHD_SIM_SEED to replay)")
    return seed


@pytest.mark.parametrize("names", [["hq", "enclave"], ["hq", "enclave", "branch"]])
def test_sites_exchanging_bundles_lose_and_duplicate_nothing(tmp_path: Path, names) -> None:
    world = simulate(tmp_path, names, rounds=200, seed=_seed())

    print(world.outcomes)
    assert world.outcomes.get("imported", 0) > 10  # the run did exchange things
    assert world.outcomes.get("lost", 0) > 0 and world.outcomes.get("already", 0) > 0


@pytest.mark.slow
@pytest.mark.skipif(
    os.environ.get("ORCHD_SIM_LONG") != "1", reason="a long run: ORCHD_SIM_LONG=1 (about a minute)"
)
def test_a_long_run_of_three_sites(tmp_path: Path) -> None:
    simulate(tmp_path, ["hq", "enclave", "branch"], rounds=2000, seed=_seed())
