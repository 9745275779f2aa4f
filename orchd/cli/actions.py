"""One path for every command that touches the ledger: through the daemon when it runs, in-process
under the site lock when it does not (entry layer).

A command turns its arguments into a JSON body and calls ``perform``. ``perform`` asks the daemon
(``POST /v1/actions/NAME`` on the control socket, which checks the caller's scope and runs the
action on its loop thread with the caller as actor); without a daemon it opens the site itself and
runs the same action as the local user. Either way the command gets the same JSON back and renders
it, so output and exit codes do not depend on whether a daemon runs.

The body comes from a client the daemon does not trust: actions read it only through ``text``,
``flag``, ``number`` and ``texts``, which refuse anything of the wrong shape. Identity fields in it
mean nothing; the actor comes from the socket's peer credentials or the local user.

Part of the composition root: the bundle actions reach the bundle files (``adapters.bundles``)
through the functions at the end, which bind them to the request's site, actor and settings.
"""

from __future__ import annotations

import functools
import importlib
import json
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias

from orchd.adapters import bundles
from orchd.adapters.control import ACTIONS_PATH
from orchd.core.events import Actor
from orchd.core.policy import Policy
from orchd.core.ports import Sign
from orchd.core.progress import OnProgress, quiet
from orchd.errors import BadInput

from .context import Config, Site, interruptible, open_site

if TYPE_CHECKING:
    from orchd.adapters import config
    from orchd.adapters.keys import SiteKey
    from orchd.core.bundle_trust import Head


@dataclass(frozen=True, slots=True, kw_only=True)
class Request:
    """What an action gets: the open site, who asks, the policy in force, the checked body."""

    site: Site
    actor: Actor
    policy: Callable[[], Policy]
    settings: config.Settings
    body: dict[str, Any]
    upload: Path | None = None  # a file the caller handed over (bundle import), never a body path
    download: Path | None = None  # where to write a file for the caller (bundle export)
    degraded: bool | None = None  # the daemon's storage state; None: no daemon (in-process)
    file_ok: bool | None = None  # the daemon's last whole-file check; None: none (or no daemon)
    longest_tick_ms: int | None = None  # the daemon loop's longest tick; None: no daemon
    longest_record_delay_ms: int | None = None  # the engine's longest wait for the writer
    workers: list[dict[str, Any]] | None = None  # remote workers the daemon heard; None: none
    progress: OnProgress = quiet  # how far a long action is (core/progress.py); it may stop it
    # the daemon's progress items after a position (daemon/operations.py); None: no daemon
    operations_after: Callable[[int], list[dict[str, Any]]] | None = None


LONG_LANE = "long"  # the lane of actions that take as long as the ledger is big (no time limit)
WRITE_LANE = "write"  # the lane of a long write (an import), holding the ledger's writer
WROTE_NOTHING = "nothing was changed (a change is recorded in one transaction, rolled back)"
READ_ONLY = "it only reads: nothing was changed"


@dataclass(frozen=True, slots=True)
class Action:
    name: str
    scope: str
    writes: bool  # takes the site lock in-process; the daemon reloads its limits afterwards
    run: Callable[[Request], Any]
    interrupted: str  # what Ctrl-C in the middle leaves done and not done (the line it prints)
    lane: str  # where the daemon runs it: "" its loop, else a lane beside it (daemon/lanes.py)


ACTIONS: dict[str, Action] = {}


def action(
    name: str, scope: str, *, writes: bool, interrupted: str = "", lane: str | None = None
) -> Callable[[Callable[[Request], Any]], Any]:
    """Register an action under ``name``, needing ``scope``; ``interrupted`` says what Ctrl-C
    leaves done (by default: a write is one transaction, rolled back; a read changes nothing);
    ``lane``: where the daemon runs it (by default a read beside the loop, a write on it)."""

    def register(run: Callable[[Request], Any]) -> Callable[[Request], Any]:
        said = interrupted or (WROTE_NOTHING if writes else READ_ONLY)
        where = ("" if writes else "read") if lane is None else lane
        ACTIONS[name] = Action(
            name=name, scope=scope, writes=writes, run=run, interrupted=said, lane=where
        )
        return run

    return register


def perform(
    config: Config,
    name: str,
    body: dict[str, Any],
    *,
    upload: Path | None = None,
    download: Path | None = None,
    progress: OnProgress = quiet,
) -> Any:
    """Run action ``name`` through the daemon if one answers, else here; its JSON result.

    ``upload``: a file the action reads (sent to the daemon); ``download``: where the action's
    file is written (which must not exist); ``progress``: told how far a long action is (from
    the daemon's progress stream while it runs the action).
    """
    chosen = ACTIONS.get(name)  # registered by the command's module, which is running
    patient = chosen is not None and chosen.lane == LONG_LANE
    settle = None
    if progress is not quiet:
        from .progress_view import follow

        settle = follow(config.stream("progress", 0), os.getpid(), progress)
    answer = config.daemon(
        "POST", ACTIONS_PATH + name, body, upload=upload, download=download, patient=patient
    )
    if answer is not None:
        if settle is not None:
            settle()
        return answer
    if chosen is None:  # registered by another command's module, not imported yet
        importlib.import_module("orchd.cli").load_all()
        chosen = ACTIONS[name]
    with (
        interruptible(f"{name}: {chosen.interrupted}"),
        open_site(config, write=chosen.writes) as site,
    ):
        policy = functools.cache(config.policy)
        request = Request(
            site=site,
            actor=site.actor(chosen.scope),
            policy=policy,
            settings=config.settings(),
            body=body,
            upload=upload,
            download=download,
            progress=progress,
        )
        return plain(chosen.run(request))


def plain(result: Any) -> Any:
    """The result exactly as a caller of the socket sees it (tuples become lists, and so on)."""
    return json.loads(json.dumps(result))


def perform_into(
    config: Config, name: str, body: dict[str, Any], out: Path, progress: OnProgress = quiet
) -> Any:
    """``perform`` with the action's file put at ``out`` (which must not exist) only once it is
    whole: written into a staging directory beside it, then published."""
    from orchd.adapters import archive_writer  # only a download needs it

    with archive_writer.staging_beside(out) as staging:
        written = staging / "bundle"
        result = perform(config, name, body, download=written, progress=progress)
        archive_writer.publish(written, out)
    return result


# --- reading a body -------------------------------------------------------------------------------


def text(body: dict[str, Any], name: str, *, required: bool = False) -> str | None:
    value = body.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str):
        raise BadInput(detail=f"{name!r} must be a string")
    return value


def flag(body: dict[str, Any], name: str) -> bool:
    value = body.get(name, False)
    if not isinstance(value, bool):
        raise BadInput(detail=f"{name!r} must be true or false")
    return value


def number(body: dict[str, Any], name: str) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool):
        raise BadInput(detail=f"{name!r} must be an integer")
    return value


def texts(body: dict[str, Any], name: str) -> list[str]:
    value = body.get(name, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise BadInput(detail=f"{name!r} must be a list of strings")
    return value


def params(body: dict[str, Any]) -> dict[str, str]:
    value = body.get("params", {})
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise BadInput(detail="'params' must be an object of name: string")
    return value


# --- the bundle files behind the bundle actions ---------------------------------------------------

BundleReport: TypeAlias = "bundles.Report"  # what an import did (or a dry run or verify would)


def inspect_bundle(path: Path) -> tuple[Head, list[str]]:
    """A bundle file's signed head (form checked, trust not), and the members it lacks."""
    return bundles.inspect(path)


def export_bundle(
    call: Request,
    out: Path,
    key: SiteKey,
    *,
    recipient: str,
    expires_in_ms: int,
    since: Mapping[str, tuple[int, str]] | None,
    version: int,
) -> bundles.Exported:
    """Write the bundle for ``recipient`` to ``out``, signed with ``key``; records the export."""
    site = call.site
    return bundles.export(
        site.ledger,
        key,
        call.actor,
        out,
        recipient=recipient,
        now_ms=site.clock.now_ms(),
        expires_in_ms=expires_in_ms,
        since=since,
        progress=call.progress,
        version=version,
    )


def verify_bundle(
    call: Request, path: Path, vouched_by_relay: Sequence[str] = ()
) -> bundles.Report:
    """Check the bundle at ``path`` as an import would; writes nothing."""
    site = call.site
    return bundles.verify(
        site.ledger,
        path,
        now_ms=site.clock.now_ms(),
        skew_ms=call.settings.clock_skew_s * 1000,
        max_bytes=call.settings.bundle_max_bytes,
        progress=call.progress,
        vouched_by_relay=vouched_by_relay,
    )


def relay_only(call: Request) -> dict[str, tuple[int, str]]:
    """origin -> (seq, bundle): what this site holds of an origin on a relay's word alone."""
    site = call.site
    return bundles.relay_only(site.ledger, site.clock.now_ms())


def import_bundle(
    call: Request,
    path: Path,
    *,
    dry_run: bool,
    allow_expired: bool,
    reason: str | None,
    ticket: str | None,
    vouched_by_relay: Sequence[str] = (),
) -> bundles.Report:
    """Import the bundle at ``path``, all or nothing (``dry_run``: write nothing)."""
    site = call.site
    return bundles.import_bundle(
        site.ledger,
        path,
        call.actor,
        now_ms=site.clock.now_ms(),
        skew_ms=call.settings.clock_skew_s * 1000,
        dry_run=dry_run,
        allow_expired=allow_expired,
        reason=reason,
        ticket=ticket,
        max_bytes=call.settings.bundle_max_bytes,
        progress=call.progress,
        vouched_by_relay=vouched_by_relay,
        sign=checkpoint_signer(site),
    )


def checkpoint_signer(site: Site) -> Sign:
    """What signs the site's checkpoints after a join, with its key, read only when it is first
    needed: an import that joins no origin from a checkpoint never reads the key file."""

    def sign(payload_type: str, payload: bytes) -> bytes:
        from orchd.ops import keys as key_ops  # the crypto, only when a checkpoint is signed

        from .sitefiles import key_files

        key = key_ops.site_key(site.ledger, key_files(site.config))
        return key_ops.checkpoint_signer(key)(payload_type, payload)

    return sign
