"""``orchd run``: the daemon, in the foreground, for systemd ``Type=notify`` (entry layer).

One thread runs everything that touches the ledger: the engine's loop, and before each step the
daemon's ``tick``: signals, spool intake, due schedule slots, the clock check, systemd's status
and watchdog, and the control socket's calls. The other threads only wake that loop or hand it
work: watchdog's inotify observer on ``spool/new``, APScheduler's timer at the next slot, and the
control socket's server threads. The truth is always re-read: the spool is
rescanned every ``--rescan`` seconds (and at start), and due slots are computed from the ledger.

Signals: SIGTERM/SIGINT drain (no new run starts; the running ones get ``--grace`` seconds, then
SIGTERM and SIGKILL; exit 0). SIGHUP reloads the policy: a bad one is refused, logged and
audited, and the old one stays.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import socket
import sys
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType, MappingProxyType
from typing import Any

import click
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.date import DateTrigger
from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer

from orchd import __version__, crash
from orchd.adapters import bundles, config, control, identity, policy_files, slots, spool
from orchd.adapters.notify import Notifier
from orchd.adapters.runner import SubprocessExecutor
from orchd.adapters.system import actor_for_uid
from orchd.core import timefmt
from orchd.core.events import Draft
from orchd.core.policy import Policy
from orchd.errors import ConfigInvalid, Interrupted, OrchdError, StorageError
from orchd.ops import engine, jobs, requests, retention, scheduling

from . import actions, cli
from .context import Site, ensure_identity, with_site
from .work import LOG_DIR

LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40}
SPOOL_DIR = "spool"
INBOX_DIR = "inbox"
DAEMON_CACHE_MIB = 16  # the ledger's page cache in a daemon that stays up (RSS goal 80 MiB)
TRANSFER_DIR = "transfers"  # files coming in and going out through the control socket
CLOCK_JUMP_MS = 60_000
STATUS_EVERY_MS = 10_000


class JsonLog:
    """One JSON object per line on stderr (journald adds time, host and unit)."""

    def __init__(self, level: str) -> None:
        self.level = LEVELS[level]

    def __call__(self, level: str, message: str, **fields: Any) -> None:
        if LEVELS[level] >= self.level:
            record = {"level": level, "msg": message, **fields}
            sys.stderr.write(json.dumps(record, sort_keys=True, default=str) + "\n")
            sys.stderr.flush()


class _Wake(FileSystemEventHandler):
    def __init__(self, executor: SubprocessExecutor) -> None:
        self.executor = executor

    def on_any_event(self, event: FileSystemEvent) -> None:
        self.executor.wake()


PRUNE_EVERY_MS = 86_400_000


class Daemon:
    def __init__(
        self,
        site: Site,
        policy: Policy,
        executor: SubprocessExecutor,
        log: JsonLog,
        *,
        settings: config.Settings,
    ) -> None:
        self.site, self.policy, self.executor, self.log = site, policy, executor, log
        self.settings = settings
        self.grace_ms, self.rescan_ms = settings.drain_grace_s * 1000, settings.rescan_s * 1000
        self.notifier = Notifier(os.environ)
        self.actor = site.actor(engine.SCOPE, jobs.SUBMIT_SCOPE)
        self.engine = engine.Engine(
            site.ledger,
            policy,
            site.clock,
            site.entropy,
            executor,
            self.actor,
            holder=f"{socket.gethostname()}:{os.getpid()}",
            kill_grace_ms=settings.kill_grace_s * 1000,
            heartbeat_ms=settings.heartbeat_s * 1000,
            lease_ms=settings.lease_s * 1000,
        )
        self.spool = site.config.state_dir / SPOOL_DIR
        self.inbox = Path(settings.inbox) if settings.inbox else site.config.state_dir / INBOX_DIR
        self.signals: list[int] = []
        self.drain_started: int | None = None
        self.last_error = ""
        self.next_rescan = self.next_status = self.next_watchdog = 0
        self.schedules_due = self.requests_due = True
        self.reload_due = self.degraded = False
        first_ms = 1000 if os.environ.get("ORCHD_TEST_HOOKS") == "1" else 60_000  # tests wait less
        self.prune_due = self.site.clock.monotonic_ms() + first_ms
        self.clock_seen = (site.clock.now_ms(), site.clock.monotonic_ms())
        self.calls: queue.Queue[control.Call] = queue.Queue()
        self.socket_path = settings_socket(site, settings)
        self.timer = BackgroundScheduler(
            timezone=UTC,
            job_defaults={"misfire_grace_time": None, "coalesce": True, "max_instances": 1},
        )

    # --- the loop's tick --------------------------------------------------------------------

    def tick(self) -> bool:
        """Everything the daemon does before an engine step; True if it recorded new jobs."""
        self._test_stall()
        mono = self.site.clock.monotonic_ms()
        self._signals(mono)
        self._watch_clock(mono)
        added = self._answer_calls()
        if self.drain_started is None:
            if mono >= self.next_rescan:
                self.next_rescan = mono + self.rescan_ms
                self.schedules_due = True
            added |= self._intake()
            added |= self._bundles_in()
            if self.requests_due:
                self.requests_due = False
                added |= self._answer_requests()
            if self.schedules_due:
                self.schedules_due = False
                added |= self._fire()
            if self.policy.retention_days is not None and mono >= self.prune_due:
                self.prune_due = mono + PRUNE_EVERY_MS
                self._prune()
        self._report(mono)
        return added

    def _prune(self) -> None:
        """The policy's retention, once a day (and first a minute after the start)."""
        request = actions.Request(
            site=self.site, actor=actor_for_uid(os.getuid(), retention.SCOPE),
            policy=lambda: self.policy, settings=self.settings, body={"dry_run": False},
        )  # fmt: skip
        try:
            done = actions.ACTIONS["ledger.prune"].run(request)
        except StorageError:
            self.prune_due = 0  # the disk: again once it is back
            raise
        except OrchdError as exc:
            self.log("error", "pruning failed; trying again tomorrow", error=exc.message)
            return
        if done["removed"]:
            self.log("info", "pruned", events=done["removed"], cutoff=done["cutoff"])

    def _test_stall(self) -> None:
        """Test-only: with ORCHD_TEST_HOOKS=1, the loop hangs while STATE_DIR/test-stall exists
        (to show that the systemd watchdog pings stop when the loop does). Off otherwise."""
        if os.environ.get("ORCHD_TEST_HOOKS") != "1":
            return
        stall = self.site.config.state_dir / "test-stall"
        while stall.exists():
            time.sleep(0.05)

    def _signals(self, mono: int) -> None:
        while self.signals:
            signum = self.signals.pop(0)
            if signum == signal.SIGHUP:
                self._reload()
            elif self.drain_started is None:
                self.drain_started = mono
                self.log("info", "draining", grace_s=self.grace_ms // 1000)
                self.notifier.stopping()
                self.engine.drain()
        if self.drain_started is not None and mono - self.drain_started >= self.grace_ms:
            self.engine.stop()

    def _reload(self) -> None:
        try:
            policy = with_daemon_env(
                policy_files.load(self.site.config.policy_dir), self.site, self.settings
            )
        except OrchdError as exc:
            self.last_error = exc.message
            event = self._audit("policy.reload_failed", {"error": exc.message[:4000]})
            self.log("error", "policy reload refused; the old policy stays", error=exc.message,
                     event=event)  # fmt: skip
            return
        self.policy = policy
        self.engine.set_policy(policy)
        self.schedules_due = True
        event = self._audit(
            "policy.reloaded",
            {"job_types": len(policy.job_types), "schedules": len(policy.schedules)},
        )
        self.log("info", "policy reloaded", schedules=len(policy.schedules), event=event)

    def _watch_clock(self, mono: int) -> None:
        wall = self.site.clock.now_ms()
        seen_wall, seen_mono = self.clock_seen
        self.clock_seen = (wall, mono)
        drift = (wall - seen_wall) - (mono - seen_mono)
        if abs(drift) > CLOCK_JUMP_MS:
            event = self._audit(
                "clock.jumped",
                {
                    "from": timefmt.format_ms(seen_wall),
                    "to": timefmt.format_ms(wall),
                    "jump_ms": drift,
                },
            )
            self.log("warning", "wall clock jumped", jump_ms=drift, event=event)
            self.schedules_due = True

    def _progress(self, call: control.Call | None = None) -> None:
        """A long step on the loop (a bundle import) is making progress: keep systemd's
        watchdog fed meanwhile, as the loop would. The step of a ``call`` whose client hung up
        (Ctrl-C) stops here: it raises ``Interrupted`` inside its transaction, which rolls back."""
        if call is not None and call.cancelled.is_set():
            raise Interrupted(detail="its client went away before it finished: nothing was changed")
        self._report(self.site.clock.monotonic_ms())

    def _report(self, mono: int) -> None:
        if mono >= self.next_status:
            self.next_status = mono + STATUS_EVERY_MS
            status = f"queue {self.engine.queued}, running {self.engine.running}"
            if self.last_error:
                status += f", last error: {self.last_error[:200]}"
            self.notifier.status(status)
        watchdog = self.notifier.watchdog_ms
        if watchdog is not None and mono >= self.next_watchdog:
            self.next_watchdog = mono + watchdog // 2
            self.notifier.watchdog()

    def _audit(self, event_type: str, payload: dict[str, object]) -> str:
        """Record an event of the daemon's own; its id for the log ("" if it failed)."""
        now = timefmt.format_ms(self.site.clock.now_ms())
        draft = Draft(
            type=event_type,
            actor=self.actor,
            payload=payload,
            idempotency_key=f"{event_type}:{now}:{os.getpid()}",
        )
        try:
            return self.site.ledger.append([draft])[0].event_id
        except OrchdError as exc:
            self.log("error", "could not record", event_type=event_type, error=exc.message)
            return ""

    # --- the control API (on the loop thread) -----------------------------------------------

    def _answer_calls(self) -> bool:
        """Answer the calls waiting for the loop; the engine reloads once after any that wrote,
        and the watchdog is fed between calls (a rush of callers is the loop at work)."""
        added = self.reload_due = False
        while True:
            try:
                call = self.calls.get_nowait()
            except queue.Empty:
                if self.reload_due:
                    self.engine.load()  # the calls may have changed jobs, quotas or pauses
                return added
            self._report(self.site.clock.monotonic_ms())
            try:
                status, payload, new = self._route(call)
            except Interrupted as exc:
                self.log("info", "api call cancelled by its client", path=call.path,
                         uid=call.peer.uid, error=exc.message)  # fmt: skip
                status, payload, new = 409, control.error_payload(exc), False
            except OrchdError as exc:
                self.log("info", "api call refused", path=call.path, uid=call.peer.uid,
                         code=exc.exit_code, error=exc.message)  # fmt: skip
                status, payload, new = (
                    400 if exc.exit_code < 30 else 409,
                    control.error_payload(exc),
                    False,
                )
            except Exception as exc:  # a bug must not take the daemon down; the caller is told
                self.log("error", "api call failed", error=repr(exc))
                status, payload, new = 500, {"error": f"internal error: {exc!r}", "code": 99}, False
            call.answer.set_result((status, payload))
            added |= new

    def _route(self, call: control.Call) -> tuple[int, Any, bool]:
        name = call.path.removeprefix(control.ACTIONS_PATH)
        chosen = actions.ACTIONS.get(name) if call.path.startswith(control.ACTIONS_PATH) else None
        if chosen is None or call.method != "POST":
            return 404, {"error": f"no {call.method} {call.path}", "code": 10}, False
        if chosen.scope not in call.scopes:
            event = self._audit(
                "api.denied",
                {
                    "uid": call.peer.uid,
                    "gid": call.peer.gid,
                    "pid": call.peer.pid,
                    "request": f"{call.method} {call.path}",
                    "scope": chosen.scope,
                },
            )
            self.log("warning", "api call denied", uid=call.peer.uid, scope=chosen.scope,
                     path=call.path, event=event)  # fmt: skip
            return (
                403,
                {
                    "error": f"uid {call.peer.uid} lacks the scope {chosen.scope}",
                    "code": 71,
                    "hint": "ask an administrator for a grant in authz.yaml",
                },
                False,
            )
        request = actions.Request(
            site=self.site,
            actor=actor_for_uid(call.peer.uid, chosen.scope),
            policy=lambda: self.policy,
            settings=self.settings,
            body=call.body,
            upload=call.upload,
            download=call.download,
            degraded=self.degraded,
            progress=lambda: self._progress(call),
        )
        result = actions.plain(chosen.run(request))
        self.log("info" if chosen.writes else "debug", "api call", action=name, uid=call.peer.uid)
        self.reload_due |= chosen.writes
        return 200, result, False

    def _enqueue(self, call: control.Call) -> None:  # on a server thread
        self.calls.put(call)
        self.executor.wake()

    # --- spool and schedules ----------------------------------------------------------------

    def _intake(self) -> bool:
        added = False
        for name in spool.pending(self.spool):
            claimed = spool.claim(self.spool, name)
            if claimed is None:
                continue
            if claimed.problem is not None:
                self._reject(claimed, claimed.problem)
                continue
            crash.point("spool.claimed")
            try:
                self._submit(claimed)
            except StorageError:
                raise  # the disk, not the request: the file stays in cur/ for the next try
            except OrchdError as exc:
                self._reject(claimed, exc.message)
                continue
            crash.point("spool.recorded")
            spool.done(self.spool, name)
            added = True
        return added

    def _bundles_in(self) -> bool:
        """Import the bundles in the inbox's new/ (and any a crash left in cur/), each into
        imported/ or, refused, into quarantine/ with the reason."""
        imported = False
        for name in spool.pending(self.inbox):
            claimed = spool.claim_file(self.inbox, name, self.settings.bundle_max_bytes)
            if claimed is None:
                continue
            problem, error = claimed.problem, "BadFile"
            if problem is None:
                uid = os.getuid() if claimed.uid is None else claimed.uid
                try:
                    report = bundles.import_bundle(
                        self.site.ledger, self.inbox / "cur" / name,
                        actor_for_uid(uid, bundles.SCOPE), now_ms=self.site.clock.now_ms(),
                        skew_ms=self.settings.clock_skew_s * 1000,
                        max_bytes=self.settings.bundle_max_bytes, progress=self._progress,
                    )  # fmt: skip
                except StorageError:
                    raise  # the disk, not the bundle: it stays in cur/ for the next try
                except OrchdError as exc:
                    problem = f"{exc.message} (exit code {exc.exit_code})"
                    error = type(exc).__name__
                else:
                    crash.point("inbox.imported")
                    spool.file_away(self.inbox, name, "imported")
                    self.log("info", "bundle imported from the inbox", file=name,
                             bundle=report.manifest.bundle_id, events=report.applied,
                             already=report.already)  # fmt: skip
                    imported = True
                    continue
            event = self._audit(
                "bundle.quarantined", {"file": name, "reason": problem[:4000], "error": error}
            )
            moved = spool.file_away(self.inbox, name, "quarantine", problem)
            self.log("warning", "bundle quarantined", file=name, moved_to=moved, reason=problem,
                     event=event)  # fmt: skip
        if imported:
            self.requests_due = True
            self.engine.load()  # imported quota overrides and pauses take effect now
        return imported

    def _answer_requests(self) -> bool:
        """Answer the requests for this site that imports brought (ops/requests.py)."""
        try:
            site = self.site
            answers = requests.answer_pending(site.ledger, site.clock, site.entropy, self.actor,
                                              self.policy)  # fmt: skip
        except OrchdError as exc:
            self.last_error = exc.message
            self.log("error", "requests could not be answered", error=exc.message)
            return False
        for a in answers:
            self.log("info", "request answered", request=a.request.request_id,
                     requester=a.request.origin, outcome=a.outcome, job=a.job_id,
                     reason=a.reason)  # fmt: skip
        return any(a.job_id for a in answers)

    def _submit(self, claimed: spool.Claimed) -> None:
        request = claimed.request or {}
        params = jobs.parse_params([f"{k}={v}" for k, v in request.get("params", {}).items()])
        submit = jobs.SubmitRequest(
            job_type=request["job_type"],
            source=request.get("source"),
            params=params,
            key=request.get("key") or f"spool:{claimed.name}",
            priority=request.get("priority"),
        )
        actor = self.actor if claimed.uid is None else actor_for_uid(claimed.uid, jobs.SUBMIT_SCOPE)
        done = jobs.submit(
            self.site.ledger, self.site.clock, self.site.entropy, actor, self.policy, submit
        )
        self.log(
            "info",
            "spool request recorded",
            file=claimed.name,
            job=done.job.job_id,
            new=done.created,
            event=done.event_id,
        )

    def _reject(self, claimed: spool.Claimed, reason: str) -> None:
        draft = Draft(
            type="spool.rejected",
            actor=self.actor,
            idempotency_key=f"spool.rejected:{claimed.name}:{claimed.identity}",
            payload={"file": claimed.name, "reason": reason[:4000]},
        )
        [event] = self.site.ledger.append([draft])
        moved = spool.reject(self.spool, claimed.name, reason)
        self.log("warning", "spool request rejected", file=claimed.name, moved_to=moved,
                 reason=reason, event=event.event_id)  # fmt: skip

    def _fire(self) -> bool:
        try:
            created = scheduling.fire(
                self.site.ledger,
                self.site.clock,
                self.site.entropy,
                self.actor,
                self.policy,
                slots.first_slots,
                slots.count_slots,
                grace_ms=self.rescan_ms * 2,
            )
        except OrchdError as exc:
            self.last_error = exc.message
            self.log("error", "schedules could not fire", error=exc.message)
            return False
        if created:
            self.log("info", "schedule slots due", jobs=created)
        self._arm_timer()
        return created > 0

    def _arm_timer(self) -> None:
        wake = scheduling.next_wake_ms(self.policy, slots.first_slots, self.site.clock.now_ms())
        self.timer.remove_all_jobs()
        if wake is not None:
            when = datetime.fromtimestamp(wake / 1000, UTC)
            self.timer.add_job(self._timer_fired, DateTrigger(run_date=when, timezone=UTC))

    def _timer_fired(self) -> None:  # on APScheduler's thread: only wake the loop
        self.schedules_due = True
        self.executor.wake()

    # --- running ------------------------------------------------------------------------------

    def serve(self) -> engine.Tally:
        spool.ensure(self.spool)
        spool.ensure(self.inbox, spool.INBOX_SUBDIRS)
        state_dir = self.site.config.state_dir
        named = ensure_identity(state_dir, self.site.ledger.site_id)
        serving = named.with_socket(str(self.socket_path))
        server = control.ControlServer(
            self.socket_path,
            control.load_authz(self.site.config.policy_dir),
            self._enqueue,
            identity=serving,
            transfers=self.site.config.state_dir / TRANSFER_DIR,
            max_upload=self.settings.bundle_max_bytes,
            group=self.settings.socket_group,
        )
        listener = None
        if self.settings.metrics_listen:
            try:
                address = config.listen_address(self.settings.metrics_listen)
                listener = control.MetricsListener(address, server)
            except OSError as exc:
                server.close()
                raise ConfigInvalid(where="metrics_listen", key=self.settings.metrics_listen,
                                    problem=exc.strerror or str(exc)) from None  # fmt: skip
        folder = self.socket_path.parent
        if not folder.stat().st_mode & 0o011:
            self.log("warning", "only the daemon's user can traverse the socket's directory, so "
                     "no operator can reach the socket", directory=str(folder))  # fmt: skip
        handlers = {
            sig: signal.signal(sig, self._on_signal)
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
        }
        observer = Observer()
        # new/ only: producers' renames arrive as IN_MOVED_TO, and claims (link, unlink) make no
        # move events, whose unpaired halves watchdog would hold for 0.5 s
        observer.schedule(_Wake(self.executor), str(self.spool / "new"), recursive=False)
        observer.schedule(_Wake(self.executor), str(self.inbox / "new"), recursive=False)
        observer.start()
        self.timer.start()
        server.start()
        if listener is not None:
            listener.start()
            self.log("info", "serving metrics", address=self.settings.metrics_listen)
        self._audit("daemon.started", {"version": __version__, "pid": os.getpid()})
        identity.write(state_dir, serving)  # clients of this state dir find the socket from now
        self.notifier.ready(f"ready: site {self.site.ledger.site_id} on {self.socket_path}")
        self.log("info", "ready", site=self.site.ledger.site_id, pid=os.getpid(),
                 socket=str(self.socket_path))  # fmt: skip
        try:
            watchdog = self.notifier.watchdog_ms
            sleep_ms = engine.MAX_SLEEP_MS if watchdog is None else min(1000, watchdog // 4)
            return self.engine.run(until_idle=False, tick=self.tick, max_sleep_ms=max(1, sleep_ms),
                                   on_storage=self._storage)  # fmt: skip
        finally:
            if listener is not None:
                listener.close()
            server.close()
            self._unnamed(named)
            self.timer.shutdown(wait=False)
            observer.stop()
            observer.join(timeout=5)
            for sig, handler in handlers.items():
                signal.signal(sig, handler)
            self._audit("daemon.stopped", {"pid": os.getpid()})
            self.log("info", "stopped")

    def _unnamed(self, named: identity.Identity) -> None:
        """At exit: ``site.json`` names no socket any more (unless another instance's file)."""
        state_dir = self.site.config.state_dir
        try:
            if identity.read(state_dir) == named.with_socket(str(self.socket_path)):
                identity.write(state_dir, named)
        except OrchdError as exc:
            self.log("error", "could not take the socket out of site.json", error=exc.message)

    def _storage(self, exc: StorageError | None) -> None:
        """The engine's report on the disk: failing (degraded: writes fail and wait, reads and
        the API go on) or, with None, writable again."""
        if exc is None:
            self.degraded = False
            self.last_error = ""
            self.log("info", "storage writable again: recovered")
            return
        if not self.degraded:
            self.log("error", "storage failing: degraded, retrying every second",
                     error=exc.message)  # fmt: skip
        self.degraded = True
        self.last_error = exc.message
        self._report(self.site.clock.monotonic_ms())

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        self.signals.append(signum)
        self.executor.wake()


@cli.command(name="run")
@click.option(
    "--grace",
    type=click.IntRange(0, 3600),
    help="Seconds a draining daemon lets running jobs finish (config drain_grace_s).",
)
@click.option(
    "--rescan",
    type=click.IntRange(1, 3600),
    help="Seconds between spool rescans and schedule checks (config rescan_s).",
)
@click.option("--log-level", type=click.Choice(list(LEVELS)), help="Config log_level.")
@with_site(write=True)
def run_(site: Site, grace: int | None, rescan: int | None, log_level: str | None) -> None:
    """Run the daemon in the foreground: schedules, spool intake and the engine (systemd
    Type=notify; READY=1 once it serves). Settings: docs/CONFIG.md; flags win."""
    settings = config.override(
        site.config.settings(), drain_grace_s=grace, rescan_s=rescan, log_level=log_level
    )
    policy = with_daemon_env(policy_files.load(site.config.policy_dir), site, settings)
    site.ledger.limit_cache(DAEMON_CACHE_MIB)
    executor = SubprocessExecutor(site.config.state_dir / LOG_DIR)
    daemon = Daemon(site, policy, executor, JsonLog(settings.log_level), settings=settings)
    try:
        daemon.serve()
    finally:
        executor.close()


def with_daemon_env(policy: Policy, site: Site, settings: config.Settings) -> Policy:
    """The policy, its built-in ``bundle-export`` told where this daemon's site and socket are
    (its runs call ``orchd bundle export --outbox``, which goes through the socket)."""
    builtin = policy.job_types.get(policy_files.BUNDLE_EXPORT.name)
    if builtin is None or builtin.argv != policy_files.BUNDLE_EXPORT.argv:
        return policy  # the policy defines its own
    where = {
        "ORCHD_STATE_DIR": str(site.config.state_dir),
        "ORCHD_POLICY_DIR": str(site.config.policy_dir),
        "ORCHD_SOCKET": str(settings_socket(site, settings)),
    }
    if settings.outbox:
        where["ORCHD_OUTBOX"] = settings.outbox
    if site.config.config_explicit:
        where["ORCHD_CONFIG"] = str(site.config.config_path)
    job_types = {**policy.job_types, builtin.name: replace(builtin, env=MappingProxyType(where))}
    return replace(policy, job_types=MappingProxyType(job_types))


def settings_socket(site: Site, settings: config.Settings) -> Path:
    """Where the daemon listens: --socket (or ORCHD_SOCKET), else the configured path, else
    $RUNTIME_DIRECTORY (systemd), else the state dir."""
    if site.config.socket_path is not None:
        return site.config.socket_path
    if settings.socket:
        return Path(settings.socket)
    runtime = os.environ.get("RUNTIME_DIRECTORY", "").split(":")[0]
    return (Path(runtime) if runtime else site.config.state_dir) / control.SOCKET_NAME


def drop_request(state_dir: Path, request: dict[str, Any], name: str | None) -> Path:
    """For ``jobs submit --spool``: write the request as a spool producer must."""
    chosen = name or f"{int(time.time() * 1000)}.{os.getpid()}.json"
    return spool.drop(state_dir / SPOOL_DIR, chosen, request)
