"""The control API's part (entry layer): the calls the socket's server threads hand over, each
routed to its action (``cli/actions.py``), the caller's scope checked first (a denial is
audited, on the loop). A write runs on the loop's thread; a read, and an export, on a lane
beside it (``lanes.py``) with a ledger connection of its own, so it never holds the loop."""

from __future__ import annotations

import functools
import queue
from collections.abc import Callable
from typing import Any

from orchd.adapters import config, control
from orchd.adapters.system import actor_for_uid
from orchd.core import drafts
from orchd.core.policy import Policy
from orchd.core.progress import OnProgress
from orchd.errors import Interrupted, OrchdError

from .. import actions
from ..context import Site
from .common import Audit, Health, Log
from .lanes import Lanes
from .operations import Operations

STOPPING = {"error": "the daemon is stopping: try again once it is back", "code": 90}


class Calls:
    """``enqueue`` (on a server thread) hands a call over and wakes the loop; ``tick`` answers
    the waiting ones. After any that wrote, ``reload`` (the engine's) runs once; ``feed`` (the
    watchdog's) runs between calls, since a rush of callers is the loop at work."""

    def __init__(
        self,
        site: Site,
        settings: config.Settings,
        policy: Callable[[], Policy],
        *,
        health: Health,
        audit: Audit,
        log: Log,
        wake: Callable[[], None],
        feed: Callable[[], None],
        reload: Callable[[], None],
        lanes: Lanes | None = None,
        operations: Operations | None = None,
    ) -> None:
        self.site, self.settings, self.policy, self.health = site, settings, policy, health
        self.audit, self.log, self.wake, self.feed, self.reload = audit, log, wake, feed, reload
        self.lanes = lanes
        self.operations = Operations() if operations is None else operations
        self.waiting: queue.Queue[control.Call] = queue.Queue()
        self.reload_due = False

    def enqueue(self, call: control.Call) -> bool:  # on a server thread
        """Hand ``call`` to its lane or to the loop; True when it may take as long as the
        ledger is big (the long lane: its caller waits without a time limit)."""
        chosen, lanes = _chosen(call), self.lanes
        # a denial is recorded, and so goes to the loop
        if lanes is not None and chosen is not None and chosen.lane and chosen.scope in call.scopes:
            if not lanes.submit(chosen.lane, lambda: self._beside(call, chosen, lanes)):
                call.answer.set_result((503, STOPPING))
            return chosen.lane == actions.LONG_LANE
        self.waiting.put(call)
        self.wake()
        return False

    def _beside(self, call: control.Call, chosen: actions.Action, lanes: Lanes) -> None:
        """``chosen`` answered for ``call`` on a lane's thread."""
        status, payload, _ = self._answer(
            call, lambda: (200, self._run(call, chosen, lanes.site(), feed=False), False)
        )
        call.answer.set_result((status, payload))

    def tick(self, now_ms: int) -> bool:
        """True if a call recorded new jobs (none does today: the engine reloads instead)."""
        added = self.reload_due = False
        while True:
            try:
                call = self.waiting.get_nowait()
            except queue.Empty:
                if self.reload_due:
                    self.reload()  # the calls may have changed jobs, quotas or pauses
                return added
            self.feed()
            status, payload, new = self._answer(call, functools.partial(self.route, call))
            call.answer.set_result((status, payload))
            added |= new

    def _answer(
        self, call: control.Call, answer: Callable[[], tuple[int, Any, bool]]
    ) -> tuple[int, Any, bool]:
        try:
            return answer()
        except Interrupted as exc:
            self.log(
                "info",
                "api call cancelled by its client",
                path=call.path,
                uid=call.peer.uid,
                error=exc.message,
            )
            return 409, control.error_payload(exc), False
        except OrchdError as exc:
            self.log(
                "info",
                "api call refused",
                path=call.path,
                uid=call.peer.uid,
                code=exc.exit_code,
                error=exc.message,
            )
            return (400 if exc.exit_code < 30 else 409), control.error_payload(exc), False
        except Exception as exc:  # a bug must not take the daemon down; the caller is told
            self.log("error", "api call failed", error=repr(exc))
            return 500, {"error": f"internal error: {exc!r}", "code": 99}, False

    def route(self, call: control.Call) -> tuple[int, Any, bool]:
        """The status, payload and "new jobs" of one call (on the loop)."""
        chosen = _chosen(call)
        if chosen is None:
            return 404, {"error": f"no {call.method} {call.path}", "code": 10}, False
        if chosen.scope not in call.scopes:
            return self._denied(call, chosen.scope)
        result = self._run(call, chosen, self.site, feed=True)
        self.reload_due |= chosen.writes
        return 200, result, False

    def _run(self, call: control.Call, chosen: actions.Action, site: Site, *, feed: bool) -> Any:
        """``chosen`` run for ``call`` on ``site``, its result as the caller sees it; its
        progress (a big operation's) on the board, the watchdog fed from it on the loop
        (``feed``: a lane's feeds nothing, the loop goes on), and a call whose client hung up
        (Ctrl-C) stopped at its next report, rolling back."""
        with self.operations.tracked(
            pid=call.peer.pid,
            uid=call.peer.uid,
            log=self.log,
            feed=self.feed if feed else lambda: None,
            cancelled=lambda: _hung_up(call),
        ) as progress:
            return self._with_progress(call, chosen, site, progress)

    def _with_progress(
        self, call: control.Call, chosen: actions.Action, site: Site, progress: OnProgress
    ) -> Any:
        request = actions.Request(
            site=site,
            actor=actor_for_uid(call.peer.uid, chosen.scope),
            policy=self.policy,
            settings=self.settings,
            body=call.body,
            upload=call.upload,
            download=call.download,
            degraded=self.health.degraded,
            file_ok=self.health.file_ok,
            longest_tick_ms=self.health.longest_tick_ms,
            longest_record_delay_ms=self.health.longest_record_delay_ms,
            workers=self.health.workers() if self.health.workers else None,
            progress=progress,
            operations_after=self.operations.after,
        )
        result = actions.plain(chosen.run(request))
        level = "info" if chosen.writes else "debug"
        self.log(level, "api call", action=chosen.name, uid=call.peer.uid)
        return result

    def _denied(self, call: control.Call, scope: str) -> tuple[int, Any, bool]:
        peer = call.peer
        event = self.audit(
            drafts.api_denied,
            uid=peer.uid,
            gid=peer.gid,
            pid=peer.pid,
            request=f"{call.method} {call.path}",
            scope=scope,
        )
        self.log(
            "warning", "api call denied", uid=peer.uid, scope=scope, path=call.path, event=event
        )
        refusal = {
            "error": f"uid {peer.uid} lacks the scope {scope}",
            "code": 71,
            "hint": "ask an administrator for a grant in authz.yaml",
        }
        return 403, refusal, False


def _hung_up(call: control.Call) -> str | None:
    """Why ``call`` is to stop, if its client went away."""
    if call.cancelled.is_set():
        return "its client went away before it finished: nothing was changed"
    return None


def _chosen(call: control.Call) -> actions.Action | None:
    """The action ``call`` names (POST /v1/actions/NAME), or None."""
    if call.method != "POST" or not call.path.startswith(control.ACTIONS_PATH):
        return None
    return actions.ACTIONS.get(call.path.removeprefix(control.ACTIONS_PATH))
