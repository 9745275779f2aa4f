"""The daemon's dispatcher (entry layer): with ``nats_url`` configured, the NATS client beside
the loop (``adapters/nats/dispatch.py``, the ``orchd[workers]`` extra) through which the engine
offers the runs of remote job types; without it, none, and those jobs wait, throttled
(``dispatch_unavailable``). Its password is read from ``nats_password_file`` (refused when
unsafe), or its nkey seed from ``nats_nkey_file``, never from argv or the environment."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from orchd.adapters import config, keys
from orchd.adapters.nats import client_missing
from orchd.core.policy import Policy
from orchd.errors import BadInput, ConfigInvalid

from .common import JsonLog

if TYPE_CHECKING:
    from collections.abc import Callable

    from orchd.adapters.nats.dispatch import Dispatcher
    from orchd.adapters.nats.events import EventFeed

    from ..context import Site


def type_concurrency(policy: Policy) -> dict[str, int]:
    """Each remote job type's most runs at once: its quota's concurrency, else the site's."""
    found = {}
    for name, job_type in policy.job_types.items():
        if job_type.remote:
            quota = policy.quotas.get(("job_type", name))
            cap = quota.concurrency if quota is not None else None
            found[name] = cap or policy.concurrency
    return found


def dispatcher(
    site: Site,
    settings: config.Settings,
    policy: Policy,
    wake: Callable[[], None],
    log: JsonLog,
) -> Dispatcher | None:
    """The started dispatcher of ``site``, or None when no NATS server is configured."""
    if not settings.nats_url:
        if settings.nats_events:
            raise ConfigInvalid(
                where="nats_events", key="true", problem="the event stream needs nats_url"
            )
        return None
    try:
        from orchd.adapters.nats.dispatch import Dispatcher, DispatchSettings
    except ImportError:
        raise client_missing("nats_url", settings.nats_url) from None
    password, nkey_seed = keys.nats_secrets(settings.nats_password_file, settings.nats_nkey_file)
    _checked(settings, nkey_seed)

    def told(fields: dict[str, Any]) -> None:
        said = dict(fields)
        log("warning", str(said.pop("message", "NATS")), **said)

    site_id = site.ledger.site_id
    made = Dispatcher(
        DispatchSettings(
            site=site_id,
            url=settings.nats_url,
            concurrency=type_concurrency(policy),
            lease_ms=settings.remote_lease_s * 1000,
            user=settings.nats_user,
            password=password,
            ca_file=settings.nats_ca_file or None,
            nkey_seed=nkey_seed,
        ),
        wake,
        told,
        _feed(site, told) if settings.nats_events else None,
    )
    made.start()
    return made


def _checked(settings: config.Settings, nkey_seed: str | None) -> None:
    """The CA file and the nkey seed refused now, with the key to fix, not found unusable by
    the NATS thread at its first connection."""
    from orchd.adapters.nats.permissions import nkey_public, tls_options

    try:
        tls_options(settings.nats_ca_file or None)
    except BadInput as exc:
        raise ConfigInvalid(
            where="nats_ca_file", key=settings.nats_ca_file, problem=exc.message
        ) from None
    if nkey_seed is not None:
        try:
            nkey_public(nkey_seed)
        except BadInput as exc:
            raise ConfigInvalid(
                where="nats_nkey_file", key=settings.nats_nkey_file, problem=exc.message
            ) from None


def _feed(site: Site, log: Callable[[dict[str, Any]], None]) -> EventFeed:
    """The event feed, reading through a connection of its own, opened on the NATS thread."""
    from orchd.adapters.nats.events import POSITION_FILE, EventFeed, Position

    named = site.config.expected_site()
    instance = named.instance if named is not None else ""

    def reader() -> Any:
        ledger = site.ledger.another()
        ledger.read_only()
        return ledger

    return EventFeed(
        site.ledger.site_id, reader, Position(site.config.state_dir / POSITION_FILE, instance), log
    )
