"""The inbox part and the requests part (entry layer): bundles an operator renamed into the
inbox's ``new/`` imported as ``bundle import`` does, and the requests for this site that imports
brought answered (``orchd.ops.requests``)."""

from __future__ import annotations

import os
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path

from orchd import crash
from orchd.adapters import bundles, config, spool
from orchd.adapters.ledger import SqliteLedger
from orchd.adapters.system import actor_for_uid
from orchd.core import drafts
from orchd.core.events import Actor
from orchd.core.policy import Policy
from orchd.core.ports import Clock, Entropy, JobLog, Sign
from orchd.core.progress import OnProgress
from orchd.errors import OrchdError, StorageError
from orchd.ops import bundles as bundle_ops
from orchd.ops import requests

from .common import Audit, Health, Log


class Inbox:
    """``tick`` imports each bundle into ``imported/`` or, refused, into ``quarantine/`` with the
    reason and a ``bundle.quarantined`` event; True when it imported one. ``track()`` gives each
    import its progress callback (the daemon's board, which feeds systemd's watchdog meanwhile).
    """

    def __init__(
        self,
        folder: Path,
        ledger: SqliteLedger,
        clock: Clock,
        settings: config.Settings,
        audit: Audit,
        log: Log,
        track: Callable[[], AbstractContextManager[OnProgress]],
        sign: Sign,
    ) -> None:
        self.folder, self.ledger, self.clock, self.settings = folder, ledger, clock, settings
        self.audit, self.log, self.track, self.sign = audit, log, track, sign

    def tick(self, now_ms: int) -> bool:
        imported = False
        for name in spool.pending(self.folder):
            claimed = spool.claim_file(self.folder, name, self.settings.bundle_max_bytes)
            if claimed is None:
                continue
            problem, error = claimed.problem, "BadFile"
            if problem is None:
                uid = os.getuid() if claimed.uid is None else claimed.uid
                try:
                    self._import(name, actor_for_uid(uid, bundle_ops.SCOPE))
                except StorageError:
                    raise  # the disk, not the bundle: it stays in cur/ for the next try
                except OrchdError as exc:
                    problem = f"{exc.message} (exit code {exc.exit_code})"
                    error = type(exc).__name__
                else:
                    imported = True
                    continue
            self._quarantine(name, problem, error)
        return imported

    def _import(self, name: str, actor: Actor) -> None:
        with self.track() as progress:
            report = bundles.import_bundle(
                self.ledger,
                self.folder / "cur" / name,
                actor,
                now_ms=self.clock.now_ms(),
                skew_ms=self.settings.clock_skew_s * 1000,
                max_bytes=self.settings.bundle_max_bytes,
                progress=progress,
                sign=self.sign,
            )
        crash.point("inbox.imported")
        spool.file_away(self.folder, name, "imported")
        self.log(
            "info",
            "bundle imported from the inbox",
            file=name,
            bundle=report.manifest.bundle_id,
            events=report.applied,
            already=report.already,
        )

    def _quarantine(self, name: str, problem: str, error: str) -> None:
        event = self.audit(drafts.bundle_quarantined, file=name, problem=problem, error=error)
        moved = spool.file_away(self.folder, name, "quarantine", problem)
        self.log(
            "warning", "bundle quarantined", file=name, moved_to=moved, reason=problem, event=event
        )


class Requests:
    """``tick`` answers the pending requests for this site once ``due`` (set when an import
    brought some); True when an answer recorded a job."""

    def __init__(
        self,
        ledger: JobLog,
        clock: Clock,
        entropy: Entropy,
        actor: Actor,
        policy: Callable[[], Policy],
        health: Health,
        log: Log,
    ) -> None:
        self.ledger, self.clock, self.entropy, self.actor = ledger, clock, entropy, actor
        self.policy, self.health, self.log = policy, health, log
        self.due = True

    def tick(self, now_ms: int) -> bool:
        if not self.due:
            return False
        self.due = False
        try:
            answers = requests.answer_pending(
                self.ledger, self.clock, self.entropy, self.actor, self.policy()
            )
        except OrchdError as exc:
            self.health.last_error = exc.message
            self.log("error", "requests could not be answered", error=exc.message)
            return False
        for a in answers:
            self.log(
                "info",
                "request answered",
                request=a.request.request_id,
                requester=a.request.origin,
                outcome=a.outcome,
                job=a.job_id,
                reason=a.reason,
            )
        return any(a.job_id for a in answers)
