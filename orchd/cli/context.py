"""What every command needs: the configuration and an open site (entry layer).

``with_site`` is to orchd what borg's ``with_repository`` is to borg: the decorator that opens the
ledger (taking the site lock when the command writes) and closes it afterwards.
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, TypeVar

import click

from orchd.adapters import config, control, identity
from orchd.adapters.sitelock import SiteLock
from orchd.adapters.system import OsEntropy, SystemClock, site_clock
from orchd.adapters.system import local_actor as local_actor  # re-exported: the operator
from orchd.core.events import Actor
from orchd.core.policy import Policy
from orchd.core.ports import SlotCounter, SlotLister

if TYPE_CHECKING:
    from orchd.adapters.ledger import SqliteLedger

from orchd.errors import Interrupted, RemoteRefused, StateConflict, StorageError

P = ParamSpec("P")
R = TypeVar("R")

LEDGER_FILE = "ledger.db"
LOCK_FILE = "orchd.lock"
LOG_DIR = "logs/runs"  # each run's output, RUN_ID.log (and .log.1 once rotated)


@dataclass(frozen=True, slots=True, kw_only=True)
class Config:
    state_dir: Path
    policy_dir: Path
    config_path: Path = config.DEFAULT_PATH
    config_explicit: bool = False  # named by --config or ORCHD_CONFIG: it must exist
    socket_path: Path | None = None  # --socket or ORCHD_SOCKET

    def expected_site(self) -> identity.Identity | None:
        """The state dir's ``site.json`` (None: no site there, or one made before it existed).
        A state dir this user cannot read is refused: orchd never guesses which site is meant."""
        return identity.read(self.state_dir)

    def find_daemon(self) -> tuple[Path, identity.Identity] | None:
        """The socket of this site's daemon and the identity every request to it carries; None
        when this site has no identity file or no socket is there (it may be left by a daemon
        that died: a connection then says so)."""
        expect = self.expected_site()
        if expect is None:
            return None
        found = control.find_socket(self.socket_path, self.state_dir, expect.socket)
        return None if found is None else (found, expect)

    def daemon_state(self) -> dict[str, Any]:
        """Whether a daemon serves this site and at which socket, for ``status`` and ``doctor``:
        ``serving``, ``socket`` (the one found, or None) and ``detail``, one line for a person."""
        target = self.find_daemon()
        if target is None:
            detail = "no daemon socket for this site: commands run in-process"
            return {"serving": False, "socket": None, "detail": detail}
        found, expect = target
        served = control.probe(found)
        if served is None:
            detail = f"no daemon answers at {found} (left by one that stopped): commands run here"
        elif (served.site_id, served.instance) != (expect.site_id, expect.instance):
            detail = f"the daemon at {found} serves site {served.site_id!r}, not this one"
        else:
            return {
                "serving": True,
                "socket": str(found),
                "detail": f"a daemon serves this site at {found}",
            }
        return {"serving": False, "socket": str(found), "detail": detail}

    def stream_path(self) -> Path | None:
        found = self.find_daemon()
        return None if found is None else found[0]

    def daemon(
        self,
        method: str,
        url: str,
        body: dict[str, Any],
        *,
        upload: Path | None = None,
        download: Path | None = None,
        patient: bool = False,
    ) -> Any | None:
        """Ask the running daemon (the reply's JSON), or None when no daemon answers, so the
        command runs in-process under the site lock instead. ``upload``: a bundle file sent
        as the body (opened as an import would); ``download``: where a file reply goes;
        ``patient``: no time limit (a long action)."""
        target = self.find_daemon()
        if target is None:
            return None
        found, expect = target
        try:
            with contextlib.ExitStack() as stack:
                source = None if upload is None else stack.enter_context(_open_bundle(upload))
                status, payload = control.request(
                    found,
                    method,
                    url,
                    body,
                    upload=source,
                    download=download,
                    expect=expect,
                    patient=patient,
                )
        except (ConnectionRefusedError, FileNotFoundError):
            return None  # a socket left by a daemon that is gone
        except OSError as exc:
            raise StorageError(path=found, detail=exc.strerror or str(exc)) from exc
        _check(status, payload)
        return payload

    def stream(self, action: str, after: int) -> Iterator[Any] | None:
        """The daemon's NDJSON stream of ``action`` from position ``after`` (items as they come,
        until the daemon stops), or None when no daemon answers."""
        target = self.find_daemon()
        if target is None:
            return None
        found, expect = target
        try:
            status, items = control.stream(
                found, f"{control.STREAM_PATH}{action}?after={after}", expect
            )
        except (ConnectionRefusedError, FileNotFoundError):
            return None
        except OSError as exc:
            raise StorageError(path=found, detail=exc.strerror or str(exc)) from exc
        if status != 200:
            _check(status, next(items, None))
        return items

    def settings(self) -> config.Settings:
        """The daemon configuration: defaults < file < ORCHD_* environment (flags come later)."""
        return config.load(self.config_path, os.environ, explicit=self.config_explicit)

    def policy(self) -> Policy:
        """The policy dir's *.yaml (but authz.yaml), checked and merged."""
        from orchd.adapters import policy_files  # YAML and cron: only where a policy is read

        return policy_files.load(self.policy_dir)

    def authz(self) -> control.Authz:
        """The grants of the policy dir's authz.yaml (none: the daemon's own user only)."""
        return control.load_authz(self.policy_dir)

    def ask_status(self, found: Path, expect: identity.Identity | None) -> tuple[int, Any]:
        """The ``status`` action asked of the daemon at ``found`` (``expect``: the site meant):
        the HTTP status and the reply (``doctor`` times it and reads a refusal itself)."""
        return control.request(found, "POST", control.ACTIONS_PATH + "status", {}, expect=expect)

    @property
    def ledger_path(self) -> Path:
        return self.state_dir / LEDGER_FILE

    @property
    def lock_path(self) -> Path:
        return self.state_dir / LOCK_FILE

    @property
    def key_path(self) -> Path:
        from orchd.adapters.keys import KEY_DIR, SITE_KEY  # the crypto: only where a key is

        return self.state_dir / KEY_DIR / SITE_KEY


def _check(status: int, payload: Any) -> None:
    if status != 200:
        error = payload if isinstance(payload, dict) else {}
        raise RemoteRefused(
            error=str(error.get("error", f"HTTP {status}")),
            code=int(error.get("code", 70)),
            hint=str(error.get("hint") or ""),
            kind=str(error.get("kind", "")),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Site:
    config: Config
    ledger: SqliteLedger
    clock: SystemClock
    entropy: OsEntropy
    list_slots: SlotLister = field(default_factory=lambda: _slots)  # a schedule's slots (backfill)
    first_slots: SlotLister = field(default_factory=lambda: _first_slots)  # the next (schedules)
    count_slots: SlotCounter = field(default_factory=lambda: _count_slots)  # how many due

    def actor(self, *scopes: str) -> Actor:
        return local_actor(*scopes)


@contextmanager
def open_site(config: Config, *, write: bool, repair: bool = False) -> Iterator[Site]:
    """The site's ledger, opened after its checks; ``write`` holds the site lock throughout.

    ``repair`` (for ``ledger rebuild``) opens a ledger whose projections are damaged.
    """
    from orchd.adapters.ledger import SqliteLedger  # SQLite: not for a client of the daemon
    from orchd.adapters.ledger.store import check_file

    check_file(config.ledger_path)  # no site: say so before creating a lock file anywhere
    with ExitStack() as stack:
        if write:
            stack.enter_context(SiteLock(config.lock_path))
        clock, entropy = site_clock(config.state_dir), OsEntropy()
        ledger = SqliteLedger.open(config.ledger_path, clock, entropy, check_heads=not repair)
        stack.callback(ledger.close)
        if write:
            ensure_identity(config.state_dir, ledger.site_id)
        yield Site(config=config, ledger=ledger, clock=clock, entropy=entropy)


def ensure_identity(state_dir: Path, site_id: str) -> identity.Identity:
    """This site's identity file, written for a site made before it existed; one that names
    another site than the ledger is refused (a state dir put together from two sites)."""
    found = identity.read(state_dir)
    if found is None:
        found = identity.new(site_id)
        identity.write(state_dir, found)
    if found.site_id != site_id:
        raise StateConflict(
            detail=f"{identity.path_of(state_dir)} names site "
            f"{found.site_id!r} but the ledger is site {site_id!r}"
        )
    return found


def config_of(ctx: click.Context) -> Config:
    """The ``Config`` the ``orchd`` group made for this command."""
    found = ctx.find_object(Config)
    if found is None:
        raise click.UsageError("orchd commands run under the orchd group")
    return found


def with_site(
    *, write: bool, repair: bool = False
) -> Callable[[Callable[Concatenate[Site, P], R]], Callable[P, R]]:
    """Run the command with an open ``Site``; ``write`` takes the site lock first."""

    def decorate(command: Callable[Concatenate[Site, P], R]) -> Callable[P, R]:
        @functools.wraps(command)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            config = click.get_current_context().find_object(Config)
            if config is None:
                raise click.UsageError("orchd commands run under the orchd group")
            with open_site(config, write=write, repair=repair) as site:
                return command(site, *args, **kwargs)

        return wrapper

    return decorate


@contextmanager
def interruptible(done: str) -> Iterator[None]:
    """Ctrl-C (SIGINT) inside: ``Interrupted`` saying ``done`` (what was and was not done), so
    the command exits 130 with that one line and no traceback."""
    try:
        yield
    except KeyboardInterrupt:
        raise Interrupted(detail=done) from None


def program_problems(policy: Policy) -> list[str]:
    """The job types whose program is missing or not executable here, one line each."""
    from orchd.adapters import policy_programs

    return [str(p) for p in policy_programs.program_problems(policy, os.environ)]


def _slots(*args: Any, **kwargs: Any) -> Any:
    """``slots.slots``, its module (APScheduler's cron) imported at the first call."""
    from orchd.adapters import slots

    return slots.slots(*args, **kwargs)


def _first_slots(*args: Any, **kwargs: Any) -> Any:
    """``slots.first_slots``, imported as ``_slots`` is."""
    from orchd.adapters import slots

    return slots.first_slots(*args, **kwargs)


def _count_slots(expression: str, timezone: str, after_ms: int, until_ms: int) -> int:
    """``slots.count_slots``, imported as ``_slots`` is."""
    from orchd.adapters import slots

    return slots.count_slots(expression, timezone, after_ms, until_ms)


def ledger_peek() -> Any:
    """The ledger's read-only queries for shell completion (no lock, no check, nothing made)."""
    from orchd.adapters.ledger import peek

    return peek


def _open_bundle(path: Path) -> Any:
    """``archive_reader.open_bundle``, imported where a bundle is sent."""
    from orchd.adapters.archive_reader import open_bundle

    return open_bundle(path)
