"""The schedules part (entry layer): the jobs of due schedule slots (``orchd.ops.scheduling``),
then the timer armed at the next slot. Due slots come from the ledger and the clock, never from
the timer: a wake-up only makes the part look (``due``), as the periodic check does every
``rescan_ms``, a policy reload and a clock jump."""

from __future__ import annotations

from collections.abc import Callable

from orchd.adapters import slots
from orchd.core.events import Actor
from orchd.core.policy import Policy
from orchd.core.ports import Clock, Entropy, JobLog
from orchd.errors import OrchdError
from orchd.ops import scheduling

from .common import Health, Log


class Schedules:
    """``tick`` fires the due slots when ``due`` (or every ``rescan_ms``); True when it created
    jobs. ``arm`` is given the next wake-up (ms since the epoch), or None."""

    def __init__(
        self,
        ledger: JobLog,
        clock: Clock,
        entropy: Entropy,
        actor: Actor,
        policy: Callable[[], Policy],
        *,
        rescan_ms: int,
        arm: Callable[[int | None], None],
        health: Health,
        log: Log,
    ) -> None:
        self.ledger, self.clock, self.entropy, self.actor = ledger, clock, entropy, actor
        self.policy, self.rescan_ms, self.arm = policy, rescan_ms, arm
        self.health, self.log = health, log
        self.due = True
        self.next_rescan = 0

    def tick(self, now_ms: int) -> bool:
        if now_ms >= self.next_rescan:
            self.next_rescan = now_ms + self.rescan_ms
            self.due = True
        if not self.due:
            return False
        self.due = False
        return self._fire()

    def timer_fired(self) -> None:  # on the timer's thread: the loop looks at its next tick
        self.due = True

    def _fire(self) -> bool:
        policy = self.policy()
        try:
            created = scheduling.fire(
                self.ledger,
                self.clock,
                self.entropy,
                self.actor,
                policy,
                slots.first_slots,
                slots.count_slots,
                grace_ms=self.rescan_ms * 2,
            )
        except OrchdError as exc:
            self.health.last_error = exc.message
            self.log("error", "schedules could not fire", error=exc.message)
            return False
        if created:
            self.log("info", "schedule slots due", jobs=created)
        self.arm(scheduling.next_wake_ms(policy, slots.first_slots, self.clock.now_ms()))
        return created > 0
