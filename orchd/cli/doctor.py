"""``orchd doctor``: check what a site needs to run, and say how to fix each problem (entry layer).

Every check reads; none writes (the ledger is opened as every reader opens it, with its checks).
A finding is ``ok``, ``warn`` (works now, will not for long) or ``fail`` (broken now); any
``fail`` makes the command exit with ``SiteUnhealthy``.
"""

from __future__ import annotations

import os
import shutil
import stat
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from pathlib import Path

import click

from orchd.core import timefmt
from orchd.core.ports import TrustQueries
from orchd.errors import OrchdError, SiteUnhealthy

from . import cli
from .context import Config, Site, open_site, program_problems
from .output import emit_json
from .policy import PROGRAM_FIX
from .sitefiles import check_ledger_file, key_files

MIN_FREE_BYTES = 1 << 30  # below this, a full export or a large import may not fit
MIN_FREE_SHARE = 0.05
KEY_EXPIRY_WARN_S = 14 * 86_400


@dataclass(frozen=True, slots=True)
class Finding:
    check: str
    level: str  # "ok", "warn" or "fail"
    detail: str
    fix: str = ""


Check = Callable[[Config], Iterator[Finding]]


@cli.command()
@click.option("--full", is_flag=True, help="Verify every event's chain, not only the newest.")
@click.option("--json", "as_json", is_flag=True, help="Print the findings as JSON.")
@click.pass_obj
def doctor(config: Config, full: bool, as_json: bool) -> None:
    """Check the state dir and key permissions, the ledger, the trust store, the policy (with
    authz.yaml), the job programs, free disk, the clock and the daemon's socket; print each
    finding with its fix. Exits non-zero when anything fails."""
    checks: list[Check] = [
        _state_dir,
        _key,
        lambda c: _ledger(c, full),
        _policy,
        _programs,
        _disk,
        _socket,
    ]
    findings = [finding for check in checks for finding in check(config)]
    if as_json:
        emit_json([asdict(f) for f in findings])
    else:
        for f in findings:
            click.echo(f"{f.level:<4}  {f.check:<9} {f.detail}")
            if f.fix and f.level != "ok":
                click.echo(f"{'':<15} fix: {f.fix}")
    failed = [f.check for f in findings if f.level == "fail"]
    if failed:
        raise SiteUnhealthy(count=len(failed), checks=", ".join(dict.fromkeys(failed)))


def _state_dir(config: Config) -> Iterator[Finding]:
    path = config.state_dir
    try:
        info = path.stat()
    except FileNotFoundError:
        yield Finding(
            "state",
            "fail",
            f"{path} does not exist",
            f"orchd --state-dir {path} init --site-id SITE (or point ORCHD_STATE_DIR at the site)",
        )
        return
    mode = stat.S_IMODE(info.st_mode)
    if mode & 0o002:
        yield Finding(
            "state",
            "fail",
            f"{path} is writable by every user (mode {mode:o})",
            f"chmod o-w {path}",
        )
    elif info.st_uid != os.geteuid() and os.geteuid() != 0:
        yield Finding(
            "state",
            "warn",
            f"{path} belongs to uid {info.st_uid}, not to you",
            "run orchd as the site's user (the service user orchd)",
        )
    else:
        yield Finding("state", "ok", f"{path} (mode {mode:o}, uid {info.st_uid})")


def _key(config: Config) -> Iterator[Finding]:
    path = config.key_path
    try:
        key = key_files(config).current()
    except OrchdError as exc:
        yield Finding("key", "fail", exc.message, exc.hint or "")
        return
    yield Finding("key", "ok", f"{path}: signing key {key.key_id} (mode 600)")


def _ledger(config: Config, full: bool) -> Iterator[Finding]:
    with ExitStack() as stack:
        try:
            site = stack.enter_context(open_site(config, write=False))
        except OrchdError as exc:
            yield Finding("ledger", "fail", exc.message, exc.hint or "")
            return
        try:
            if full:
                report = site.ledger.verify()
                yield Finding("ledger", "ok", f"{report.events} events verified, every chain whole")
            else:
                check_ledger_file(config)
                yield Finding(
                    "ledger",
                    "ok",
                    "every page checked (quick_check), newest events and heads verified",
                )
            yield from _trust(site.ledger, _held_key(config), site.clock.now_ms())
            yield from _clock(site, site.clock.now_ms(), config)
        except OrchdError as exc:
            yield Finding("ledger", "fail", exc.message, exc.hint or "")


def _held_key(config: Config) -> str | None:
    """The key id of the site's key file (None: the key check says why it is not there)."""
    try:
        return key_files(config).current().key_id
    except OrchdError:
        return None


def _trust(ledger: TrustQueries, held: str | None, now_ms: int) -> Iterator[Finding]:
    active = [k for k in ledger.trust_keys() if k.revoked_at is None]
    own = [k for k in active if k.role == "own"]
    if not own or (held is not None and own[0].key_id != held):
        yield Finding(
            "trust",
            "fail",
            "the site's key file is not its own key in the trust store",
            "restore keys/site.key from the site's backup, or rotate: orchd keys rotate "
            "--reason ... (peers must then trust the new key)",
        )
    peers = [k for k in active if k.role == "peer"]
    for k in peers:
        if k.expires_at is None:
            continue
        left_s = (timefmt.parse_canonical(k.expires_at) - now_ms) // 1000
        if left_s <= 0:
            yield Finding(
                "trust",
                "warn",
                f"{k.site}'s key {k.key_id} expired at {k.expires_at}",
                f"get {k.site}'s current public key and orchd keys trust {k.site} FILE "
                "--expires ...",
            )
        elif left_s < KEY_EXPIRY_WARN_S:
            yield Finding(
                "trust",
                "warn",
                f"{k.site}'s key {k.key_id} expires at {k.expires_at}",
                f"renew it: orchd keys trust {k.site} FILE --expires ...",
            )
    sites = sorted({k.site for k in peers})
    yield Finding("trust", "ok", f"own key active; trusted peers: {', '.join(sites) or 'none'}")


def _clock(site: Site, now_ms: int, config: Config) -> Iterator[Finding]:
    newest = site.ledger.tail(None, 1)
    if not newest:
        return
    last = newest[0][1].occurred_at
    behind_s = (timefmt.parse_canonical(last) - now_ms) // 1000
    skew_s = config.settings().clock_skew_s
    if behind_s > skew_s:
        yield Finding(
            "clock",
            "fail",
            f"the clock reads {timefmt.format_ms(now_ms)}, {behind_s} s before the "
            f"ledger's newest event ({last})",
            "set the system clock (timedatectl, or chrony from the site's time source); "
            "orchd records events in order regardless, but schedules and leases run "
            "by this clock",
        )
    else:
        yield Finding("clock", "ok", f"{timefmt.format_ms(now_ms)}; newest event {last}")


def _policy(config: Config) -> Iterator[Finding]:
    try:
        policy = config.policy()
        authz = config.authz()
    except OrchdError as exc:
        yield Finding("policy", "fail", exc.message, exc.hint or "")
        return
    grants = f"{len(authz.grants)} grants in authz.yaml" if authz.from_file else "no authz.yaml"
    yield Finding(
        "policy",
        "ok",
        f"{config.policy_dir}: {len(policy.job_types)} job types, "
        f"{len(policy.schedules)} schedules, {grants}",
    )


def _programs(config: Config) -> Iterator[Finding]:
    try:
        policy = config.policy()
    except OrchdError:
        return  # the policy check says why
    problems = program_problems(policy)
    for problem in problems:
        yield Finding("program", "warn", problem, PROGRAM_FIX)
    if not problems:
        yield Finding("program", "ok", "every job type's program is here and executable")


def _disk(config: Config) -> Iterator[Finding]:
    try:
        usage = shutil.disk_usage(config.state_dir)
    except OSError as exc:
        yield Finding("disk", "fail", f"{config.state_dir}: {exc.strerror}", "")
        return
    free = f"{usage.free >> 20} MiB free of {usage.total >> 20} MiB"
    if usage.free < MIN_FREE_BYTES:
        yield Finding(
            "disk",
            "fail",
            f"{config.state_dir}: {free}",
            "free space on that file system; orchd refuses writes when it is full "
            "and resumes by itself once there is room",
        )
    elif usage.free < usage.total * MIN_FREE_SHARE:
        yield Finding(
            "disk", "warn", f"{config.state_dir}: {free}", "free space before it runs out"
        )
    else:
        yield Finding("disk", "ok", f"{config.state_dir}: {free}")


def _socket(config: Config) -> Iterator[Finding]:
    """Whether a daemon serves this site, at which socket, and whether this user may use it."""
    state = config.daemon_state()
    if not state["serving"]:
        level = "ok" if state["socket"] is None else "warn"
        yield Finding(
            "socket",
            level,
            state["detail"],
            "systemctl status orchd; if a daemon of another site holds the socket, "
            "give one of them another (--socket, config socket:)",
        )
        return
    found = Path(state["socket"])
    expect = config.expected_site()
    started = time.monotonic()
    try:
        status, payload = config.ask_status(found, expect)
    except (OSError, OrchdError) as exc:
        yield Finding(
            "socket",
            "warn",
            f"{found}: the daemon did not answer ({exc})",
            "systemctl status orchd, then systemctl restart orchd",
        )
        return
    took_ms = int((time.monotonic() - started) * 1000)
    if status == 200:
        yield Finding("socket", "ok", f"{state['detail']}; it answered in {took_ms} ms")
    else:
        error = payload.get("error", status) if isinstance(payload, dict) else status
        yield Finding(
            "socket",
            "warn",
            f"{found}: the daemon refused: {error}",
            "ask for a grant in authz.yaml (scope orch:read)",
        )
