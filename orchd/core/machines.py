"""The job and run state machines: one transitions table each (core layer).

Rules:
- A machine is a mapping ``state -> states it may move to``; nothing else decides legality.
- A job is born ``queued`` or ``waiting``; a run is born ``leased``.
- Terminal states map to the empty set: they absorb. Re-running a finished job (a replay) makes a
  new job; it never moves a terminal one.
- ``advance`` is the only way to change a state and raises InvalidTransition otherwise.

Job states: ``queued`` may run as soon as limits allow; ``waiting`` waits on ``after:``
dependencies; ``throttled`` is held by a quota or rate limit until a recorded time (it may move to
``throttled`` again when what holds it changes); ``running``
has a run leased or running; ``retry_wait`` sleeps out a backoff after a failed run; terminal:
``succeeded``, ``dead`` (attempts exhausted or failure not retryable: the dead-letter state),
``cancelled`` (by an operator or because an upstream failed).

Run states: ``leased`` (a worker holds the lease, the process is not started yet), ``running``;
terminal: ``succeeded``, ``failed``, ``timed_out``, ``interrupted`` (lease lost, daemon died,
cancelled or stopped).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from orchd.errors import InvalidTransition


@dataclass(frozen=True, slots=True, kw_only=True)
class Machine:
    name: str
    initial: frozenset[str]
    transitions: Mapping[str, frozenset[str]]

    @property
    def states(self) -> frozenset[str]:
        return frozenset(self.transitions)

    @property
    def terminal(self) -> frozenset[str]:
        return frozenset(s for s, targets in self.transitions.items() if not targets)

    def allows(self, from_state: str, to_state: str) -> bool:
        return to_state in self.transitions.get(from_state, frozenset())

    def advance(self, subject: str, from_state: str, to_state: str) -> str:
        """Return ``to_state`` if the table allows the move, else raise InvalidTransition."""
        if not self.allows(from_state, to_state):
            raise InvalidTransition(
                machine=self.name, subject=subject, from_state=from_state, to_state=to_state
            )
        return to_state

    def begin(self, subject: str, state: str) -> str:
        if state not in self.initial:
            raise InvalidTransition(
                machine=self.name, subject=subject, from_state="(new)", to_state=state
            )
        return state


def _table(rows: dict[str, set[str]]) -> Mapping[str, frozenset[str]]:
    return MappingProxyType({state: frozenset(targets) for state, targets in rows.items()})


JOB = Machine(
    name="job",
    initial=frozenset({"queued", "waiting"}),
    transitions=_table(
        {
            "queued": {"waiting", "throttled", "running", "cancelled"},
            "waiting": {"queued", "cancelled"},
            "throttled": {"throttled", "queued", "running", "cancelled"},
            "running": {"succeeded", "retry_wait", "dead", "cancelled"},
            "retry_wait": {"queued", "running", "cancelled"},
            "succeeded": set(),
            "dead": set(),
            "cancelled": set(),
        }
    ),
)

RUN = Machine(
    name="run",
    initial=frozenset({"leased"}),
    transitions=_table(
        {
            "leased": {"running", "failed", "interrupted"},
            "running": {"succeeded", "failed", "timed_out", "interrupted"},
            "succeeded": set(),
            "failed": set(),
            "timed_out": set(),
            "interrupted": set(),
        }
    ),
)


def diagram(machine: Machine, label: str) -> str:
    """The machine as the text diagram docs/ARCHITECTURE.md shows (``tools/gen_docs.py`` writes
    it there and a test keeps the two equal): its initial states, each move in table order, then
    the terminal states."""
    movers = [s for s, targets in machine.transitions.items() if targets]
    width = max(len(s) for s in movers)
    lead, pad = f"{label}:".ljust(6), " " * 6
    lines = [f"{lead}(new) → {' | '.join(sorted(machine.initial))}"]
    for state in movers:
        targets = sorted(machine.transitions[state], key=list(machine.transitions).index)
        lines.append(f"{pad}{state.ljust(width)} → {' | '.join(targets)}")
    terminal = [s for s in machine.transitions if s in machine.terminal]
    lines.append(f"{pad}terminal: {', '.join(terminal)}")
    return "\n".join(lines)
