"""The remote workers' protocol and lease rule (core/remote.py): every message a side writes is
read back as written; anything else is refused, naming the sender and the key, before it acts."""

from __future__ import annotations

from typing import Any

import pytest

from orchd.core import canonical, remote
from orchd.errors import BadMessage, ClaimRefused, UnknownProtocol

RUN, JOB = "01KB0000000000000000000001", "01KB0000000000000000000002"
TOKEN, OTHER_TOKEN = "0123456789abcdef" * 2, "f" * 32

GOOD: dict[str, dict[str, Any]] = {
    "offer": {
        "site": "hq",
        "run_id": RUN,
        "job_id": JOB,
        "job_type": "feed_refresh",
        "attempt": 1,
        "argv": ["/bin/true", "--x"],
        "env": {"ORCHD_RUN_ID": RUN},
        "workdir": "/srv",
        "timeout_ms": 60_000,
    },
    "claim": {
        "site": "hq",
        "worker": "w-1",
        "run_id": RUN,
        "version": "0.1.0",
        "concurrency": 2,
        "log": "/var/log/orchd-worker/run.log",
    },
    "granted": {"run_id": RUN, "token": TOKEN, "lease_ms": 2000},
    "refused": {"run_id": RUN, "reason": "the run ended"},
    "beat": {"site": "hq", "worker": "w-1", "run_id": RUN, "token": TOKEN},
    "renewed": {"run_id": RUN, "lease_ms": 2000},
    "stop": {"run_id": RUN, "reason": "cancelled"},
    "result": {
        "site": "hq",
        "worker": "w-1",
        "run_id": RUN,
        "token": TOKEN,
        "outcome": "failed",
        "exit_code": -9,
        "output_tail": "boom\n",
        "log_path": "/var/log/orchd-worker/x.log",
    },
}


def raw(of: str, **changes: Any) -> bytes:
    """A message of kind ``of`` as GOOD has it, with ``changes`` (None: the key left out)."""
    value = {"v": remote.PROTOCOL, "kind": of, **GOOD[of], **changes}
    return canonical.dump({k: v for k, v in value.items() if v is not None})


@pytest.mark.parametrize("kind", sorted(GOOD))
def test_every_message_is_read_back_as_written(kind: str) -> None:
    data = remote.encode(kind, **GOOD[kind])
    message = remote.decode(data, kind, sender="w-1")
    assert message.kind == kind and dict(message.fields) == GOOD[kind]
    assert message["run_id"] == RUN


def test_a_reply_is_read_as_whichever_of_its_kinds_it_is() -> None:
    kinds = ("renewed", "stop", "refused")
    assert remote.decode(raw("stop"), kinds, sender="d").kind == "stop"
    with pytest.raises(BadMessage, match="a 'granted' where a renewed or stop or refused was due"):
        remote.decode(raw("granted"), kinds, sender="d")


def test_optional_keys_may_be_left_out() -> None:
    offer = remote.decode(
        remote.encode("offer", **{**GOOD["offer"], "workdir": None}), "offer", sender="d"
    )
    assert "workdir" not in offer.fields
    result = remote.decode(raw("result", exit_code=None), "result", sender="w-1")
    assert "exit_code" not in result.fields
    for then in (remote.HAND_BACK, remote.DROP):
        assert remote.decode(raw("refused", then=then), "refused", sender="d")["then"] == then


@pytest.mark.parametrize(
    ("kind", "data", "words"),
    [
        ("beat", b"x" * (remote.MAX_MESSAGE + 1), "over 262144"),
        ("beat", b'{"kind": "claim"}', "not canonical JSON"),
        ("beat", b"[1]", "not a JSON object"),
        ("beat", raw("beat", kind="result"), "a 'result' where a beat was due"),
        ("beat", raw("beat", token=None), "beat: missing token"),
        ("beat", raw("beat", extra="x"), "beat: unknown key extra"),
        ("beat", raw("beat", token="ABC"), "beat.token: not a valid token"),
        ("beat", raw("beat", run_id="nope"), "beat.run_id: not a valid id"),
        ("beat", raw("beat", worker="W 1"), "beat.worker: invalid worker 'W 1'"),
        ("offer", raw("offer", job_type="Bad"), "offer.job_type: invalid job type"),
        ("offer", raw("offer", attempt=0), "offer.attempt: not a valid positive integer"),
        ("offer", raw("offer", argv=[]), "offer.argv: not a valid list of strings"),
        ("offer", raw("offer", argv=["/bin/x", 1]), "offer.argv: not a valid list of strings"),
        ("offer", raw("offer", env={"A": 1}), "offer.env: not a valid map of strings"),
        ("result", raw("result", output_tail="x" * (remote.MAX_TAIL + 1)), "result.output_tail"),
        ("result", raw("result", exit_code="0"), "result.exit_code: not a valid integer"),
        ("result", raw("result", outcome="exploded"), "result.outcome 'exploded'"),
        ("refused", raw("refused", then="end"), "refused.then: not a valid then"),
    ],
)
def test_a_bad_message_is_refused_naming_its_sender_and_what_is_wrong(
    kind: str, data: bytes, words: str
) -> None:
    with pytest.raises(BadMessage) as caught:
        remote.decode(data, kind, sender="w-1")
    assert "bad message from w-1" in caught.value.message and words in caught.value.message


@pytest.mark.parametrize("version", [2, 0, None, "1"])
def test_an_unknown_protocol_version_is_refused_naming_both(version: object) -> None:
    data = raw("claim", v=version)
    with pytest.raises(UnknownProtocol) as caught:
        remote.decode(data, "claim", sender="w-1")
    shown = "'none'" if version is None else repr(version)
    assert caught.value.message == f"w-1 speaks worker protocol {shown}; this orchd speaks 1"


def test_what_a_refusal_shows_of_a_given_value_is_clipped() -> None:
    huge = "9" * 100_000
    for data, error in (
        (raw("claim", v=huge), UnknownProtocol),
        (raw("claim", kind=huge), BadMessage),
        (raw("claim", **{"k" * 5000: 1}), BadMessage),
    ):
        with pytest.raises(error) as caught:
            remote.decode(data, "claim", sender="w-1")
        assert len(caught.value.message) < 300 and "..." in caught.value.message


def test_what_this_side_writes_is_checked_before_it_leaves() -> None:
    with pytest.raises(BadMessage, match="this orchd"):
        remote.encode("granted", run_id=RUN, token="short", lease_ms=2000)


def test_subjects_name_the_site_and_the_type_or_worker() -> None:
    assert remote.subject("hq", "claim", "w-1") == "orchd.hq.claim.w-1"
    assert remote.subject("hq", "work", "feed_refresh") == "orchd.hq.work.feed_refresh"


# --- the lease rule ----------------------------------------------------------------------------


def test_a_claim_is_granted_once_and_renewed_only_by_its_worker_with_its_token() -> None:
    leases = remote.Leases(lease_ms=2000)
    held = leases.grant(RUN, "w-1", TOKEN, now_ms=1000)
    assert held == remote.Held("w-1", TOKEN, 3000)
    with pytest.raises(ClaimRefused, match="claimed already"):
        leases.grant(RUN, "w-2", OTHER_TOKEN, now_ms=1100)
    again = leases.grant(RUN, "w-1", TOKEN, now_ms=1000)  # its first answer was lost
    assert again == held
    for worker, token in (("w-2", TOKEN), ("w-1", OTHER_TOKEN)):
        with pytest.raises(ClaimRefused, match=f"refused {worker}: it holds no claim"):
            leases.beat(RUN, worker, token, now_ms=1500)
    reply = remote.decode(leases.beat(RUN, "w-1", TOKEN, now_ms=2500), "renewed", sender="d")
    assert reply["lease_ms"] == 2000 and leases.held[RUN].until_ms == 4500
    with pytest.raises(ClaimRefused):
        leases.holder("01KB0000000000000000000009", "w-1", TOKEN)


def test_a_lease_lapses_on_the_daemons_clock_unless_renewed() -> None:
    leases = remote.Leases(lease_ms=2000)
    leases.grant(RUN, "w-1", TOKEN, now_ms=0)
    leases.grant(JOB, "w-2", OTHER_TOKEN, now_ms=500)
    assert leases.lapsed(1999) == []
    leases.beat(RUN, "w-1", TOKEN, now_ms=1999)
    assert leases.lapsed(2500) == [JOB]  # its last word was at 500
    leases.end(JOB)
    assert leases.lapsed(4000) == [RUN] and JOB not in leases.held


def test_a_stop_is_told_at_the_next_heartbeat_and_forgotten_with_the_run() -> None:
    leases = remote.Leases(lease_ms=2000)
    leases.grant(RUN, "w-1", TOKEN, now_ms=0)
    leases.stop(RUN, "cancelled by alice")
    reply = remote.decode(leases.beat(RUN, "w-1", TOKEN, now_ms=100), "stop", sender="d")
    assert reply["reason"] == "cancelled by alice"
    assert leases.held[RUN].until_ms == 2000  # a stop renews nothing
    leases.end(RUN)
    assert leases.held == {} and leases.stopping == {}


def test_a_claims_token_is_the_daemons_secrets_alone_and_the_same_after_a_restart() -> None:
    token = remote.claim_token(b"s" * 32, RUN, "w-1")
    assert token == remote.claim_token(b"s" * 32, RUN, "w-1")  # derived again after a restart
    assert remote.encode("granted", run_id=RUN, token=token, lease_ms=2000)  # a valid token
    others = {
        remote.claim_token(b"t" * 32, RUN, "w-1"),
        remote.claim_token(b"s" * 32, RUN, "w-2"),
        remote.claim_token(b"s" * 32, JOB, "w-1"),
    }
    assert token not in others and len(others) == 3


def test_while_the_daemon_cannot_hear_no_lease_runs_out() -> None:
    leases = remote.Leases(lease_ms=1000)
    leases.grant("r1", "w-1", "a" * 32, 0)
    leases.grant("r2", "w-1", "b" * 32, 5000)  # granted later: it lasts longer already
    leases.deaf(4500)  # NATS unreachable since before r1's lease ran out
    assert leases.lapsed(5400) == []
    assert leases.held["r2"].until_ms == 6000  # untouched: longer than a lease from then
    assert leases.lapsed(5500) == ["r1"]  # a whole lease after the daemon could last not hear
