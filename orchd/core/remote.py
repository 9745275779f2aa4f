"""Remote runs (core layer): what the daemon and a worker say to each other, and the lease rule.

Every message is one canonical JSON object ``{"v": PROTOCOL, "kind": KIND, ...}`` of at most
``MAX_MESSAGE`` bytes, read by ``decode``, which refuses anything else before it is acted on: a
version it does not speak (``UnknownProtocol``, naming both), another kind, a missing or unknown
key, a value of the wrong kind or out of its bounds (``BadMessage``, naming the key).

The subjects (docs/ARCHITECTURE.md, "Remote workers"): a site's runs are offered on
``orchd.SITE.work.TYPE`` (its work-queue stream); a worker speaks on ``orchd.SITE.claim.WORKER``,
``orchd.SITE.hb.WORKER`` and ``orchd.SITE.results.WORKER`` only, which the NATS server's
permissions enforce, so the subject a message came on names its sender.

The lease rule (``Leases``): a claim is granted only for a run the ledger holds leased, unended
and not yet expired; the grant's token, drawn by the caller, is then the run's, and a heartbeat
or a result counts only with it, from the worker that claimed. Every time is the daemon's
monotonic clock: a lease lapses ``lease_ms`` after the last grant or heartbeat (or after the
daemon could last not hear, NATS unreachable: ``deaf``), and no wall clock of another host is
compared with anything here.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from orchd.core import canonical, ids
from orchd.core.names import check_name
from orchd.errors import BadMessage, ClaimRefused, OrchdError, UnknownProtocol

PROTOCOL = 1
MAX_MESSAGE = 256 * 1024  # an offer's argv and env, a result's output tail (64 KiB) and more
MAX_TAIL = 64 * 1024  # characters of a run's output a result carries
_TOKEN = re.compile(r"[0-9a-f]{32}")
OUTCOMES = ("succeeded", "failed", "timed_out", "interrupted")
# a refused claim's ``then``: another worker may claim the run (the default), or no worker may
HAND_BACK, DROP = "hand back", "drop"

# kind -> {key: its check}; every key is required unless listed in _OPTIONAL
_TEXT, _INT, _COUNT, _ID = "text", "integer", "positive integer", "id"
_TOKEN_KEY, _NAME, _LIST, _MAP = "token", "name", "list of strings", "map of strings"
_THEN = "then"
_WORKER = "worker"
_CHECKS: Mapping[str, Callable[[Any], bool]] = {
    _TEXT: lambda v: isinstance(v, str) and len(v) <= MAX_TAIL,
    _INT: lambda v: isinstance(v, int),
    _COUNT: lambda v: isinstance(v, int) and v > 0,
    _ID: ids.is_id,
    _TOKEN_KEY: lambda v: isinstance(v, str) and _TOKEN.fullmatch(v) is not None,
    _LIST: lambda v: isinstance(v, list) and bool(v) and all(isinstance(i, str) for i in v),
    _MAP: lambda v: isinstance(v, dict) and all(isinstance(i, str) for i in v.values()),
    _THEN: lambda v: v in (HAND_BACK, DROP),
}
_KEYS: Mapping[str, Mapping[str, str]] = {
    "offer": {
        "site": _NAME,
        "run_id": _ID,
        "job_id": _ID,
        "job_type": "job type",
        "attempt": _COUNT,
        "argv": _LIST,
        "env": _MAP,
        "workdir": _TEXT,
        "timeout_ms": _COUNT,
    },
    "claim": {
        "site": _NAME,
        "worker": _WORKER,
        "run_id": _ID,
        "version": _TEXT,
        "concurrency": _COUNT,
        "log": _TEXT,
    },
    "granted": {"run_id": _ID, "token": _TOKEN_KEY, "lease_ms": _COUNT},
    "refused": {"run_id": _ID, "reason": _TEXT, "then": _THEN},
    "beat": {"site": _NAME, "worker": _WORKER, "run_id": _ID, "token": _TOKEN_KEY},
    "renewed": {"run_id": _ID, "lease_ms": _COUNT},
    "stop": {"run_id": _ID, "reason": _TEXT},
    "result": {
        "site": _NAME,
        "worker": _WORKER,
        "run_id": _ID,
        "token": _TOKEN_KEY,
        "outcome": _TEXT,
        "exit_code": _INT,
        "output_tail": _TEXT,
        "log_path": _TEXT,
    },
}
# a refusal of a message too malformed to name its run names none; a refusal of a claim says
# ``then``: DROP when no worker may claim the run (ended, or another's), else HAND_BACK
_OPTIONAL = {"offer": {"workdir"}, "result": {"exit_code"}, "refused": {"run_id", "then"}}


def claim_token(secret: bytes, run_id: str, worker: str) -> str:
    """The token of ``worker``'s claim of ``run_id``: derived from the daemon's secret, so that a
    daemon started again knows the claims it granted before (a surviving worker's heartbeats
    and result still count) and no one without the secret can make one."""
    return hmac.new(secret, f"{run_id}/{worker}".encode(), hashlib.sha256).hexdigest()[:32]


def subject(site: str, what: str, name: str) -> str:
    """``orchd.SITE.WHAT.NAME``: a type's work, or a worker's claims, heartbeats or results."""
    return f"orchd.{site}.{what}.{name}"


@dataclass(frozen=True, slots=True)
class Message:
    """A message of ``kind`` with its fields as ``decode`` checked them (``fields[key]``)."""

    kind: str
    fields: Mapping[str, Any] = field(default_factory=dict)

    def __getitem__(self, key: str) -> Any:
        return self.fields[key]


def encode(kind: str, **fields: Any) -> bytes:
    """The message's bytes (checked as ``decode`` checks them: what one side writes, the other
    reads); a field given as None is left out."""
    value = {"v": PROTOCOL, "kind": kind, **{k: v for k, v in fields.items() if v is not None}}
    data = canonical.dump(value)
    decode(data, kind, sender="this orchd")
    return data


def decode(data: bytes, kind: str | tuple[str, ...], *, sender: str) -> Message:
    """The message of ``kind`` (or of one of several kinds: a reply's) in ``data`` from
    ``sender`` (named in every refusal)."""
    if len(data) > MAX_MESSAGE:
        raise BadMessage(sender=sender, detail=f"{len(data)} bytes, over {MAX_MESSAGE}")
    try:
        value = canonical.decode(data)
    except OrchdError as exc:
        raise BadMessage(sender=sender, detail=f"not canonical JSON ({exc.message})") from None
    if not isinstance(value, dict):
        raise BadMessage(sender=sender, detail="not a JSON object")
    if value.get("v") != PROTOCOL:
        raise UnknownProtocol(sender=sender, version=_shown(value.get("v", "none")), ours=PROTOCOL)
    kinds = (kind,) if isinstance(kind, str) else kind
    if value.get("kind") not in kinds:
        due, given_kind = " or ".join(kinds), _shown(value.get("kind"))
        raise BadMessage(sender=sender, detail=f"a {given_kind} where a {due} was due")
    kind = str(value["kind"])
    keys = _KEYS[kind]
    given = set(value) - {"v", "kind"}
    missing = sorted(set(keys) - given - _OPTIONAL.get(kind, set()))
    if missing or not given <= set(keys):
        unknown = sorted(given - set(keys))
        detail = f"missing {missing[0]}" if missing else f"unknown key {_clipped(unknown[0])}"
        raise BadMessage(sender=sender, detail=f"{kind}: {detail}")
    for key in sorted(given):
        _check(value[key], keys[key], f"{kind}.{key}", sender)
    fields = {key: value[key] for key in sorted(given)}
    if kind == "result" and fields["outcome"] not in OUTCOMES:
        raise BadMessage(sender=sender, detail=f"result.outcome {_shown(fields['outcome'])}")
    return Message(kind, fields)


def _check(value: Any, how: str, where: str, sender: str) -> None:
    ok = _CHECKS.get(how)
    if ok is not None:
        if not ok(value):
            raise BadMessage(sender=sender, detail=f"{where}: not a valid {how}")
        return
    try:
        check_name("site id" if how == _NAME else how, value)
    except OrchdError as exc:
        raise BadMessage(sender=sender, detail=f"{where}: {exc.message[:200]}") from None


def _shown(value: Any) -> str:
    """A value a message gave, as a refusal names it: at most 40 characters of its repr."""
    return _clipped(repr(value))


def _clipped(text: str) -> str:
    return text if len(text) <= 40 else text[:37] + "..."


# --- the lease rule ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Held:
    """A remote run's claim: who holds it, with which token, until when (monotonic ms)."""

    worker: str
    token: str
    until_ms: int


@dataclass(slots=True)
class Leases:
    """The claims on remote runs the daemon granted, by run id, on its monotonic clock; ``stop``
    holds the runs to be stopped (``jobs cancel``), told at their next heartbeat."""

    lease_ms: int
    held: dict[str, Held] = field(default_factory=dict)
    stopping: dict[str, str] = field(default_factory=dict)  # run id -> why

    def grant(self, run_id: str, worker: str, token: str, now_ms: int) -> Held:
        """Give the run to ``worker`` (the caller checked the ledger: leased, unended, not
        expired), its lease counted from now; refused if another worker's claim holds it (a
        second delivery of its offer). The same worker asking again (its first answer was late
        or lost) is granted the same claim again."""
        held = self.held.get(run_id)
        if held is not None and (held.worker, held.token) != (worker, token):
            raise ClaimRefused(worker=worker, detail=f"run {run_id} is claimed already")
        held = self.held[run_id] = Held(worker, token, now_ms + self.lease_ms)
        return held

    def holder(self, run_id: str, worker: str, token: str) -> Held:
        """The claim a heartbeat or result from ``worker`` with ``token`` speaks for; refused
        unless it is that worker's, with that token."""
        held = self.held.get(run_id)
        if held is None or held.worker != worker or held.token != token:
            raise ClaimRefused(
                worker=worker, detail=f"it holds no claim of run {run_id} with that token"
            )
        return held

    def beat(self, run_id: str, worker: str, token: str, now_ms: int) -> bytes:
        """A heartbeat's reply: the lease renewed (its ms left), or stop."""
        held = self.holder(run_id, worker, token)
        if run_id in self.stopping:
            return encode("stop", run_id=run_id, reason=self.stopping[run_id])
        self.held[run_id] = Held(held.worker, held.token, now_ms + self.lease_ms)
        return encode("renewed", run_id=run_id, lease_ms=self.lease_ms)

    def stop(self, run_id: str, why: str) -> None:
        self.stopping[run_id] = why

    def end(self, run_id: str) -> None:
        """The run's result was recorded, or its lease lapsed: its claim is gone."""
        self.held.pop(run_id, None)
        self.stopping.pop(run_id, None)

    def deaf(self, now_ms: int) -> None:
        """The daemon cannot hear its workers now (NATS unreachable): no lease runs out while
        it cannot, each lasting a whole lease from now at least. Later than a worker's own copy
        is the safe side: its supervisor, renewed by nothing meanwhile, fences the run."""
        for run_id, held in self.held.items():
            if held.until_ms < now_ms + self.lease_ms:
                self.held[run_id] = Held(held.worker, held.token, now_ms + self.lease_ms)

    def lapsed(self, now_ms: int) -> list[str]:
        """The runs whose lease ran out unrenewed (still held: the caller ends each)."""
        return sorted(run for run, held in self.held.items() if now_ms >= held.until_ms)
