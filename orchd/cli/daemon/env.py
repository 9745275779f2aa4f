"""The daemon's places (its socket, spool, inbox, transfers) and the environment its built-in
``bundle-export`` job type is given (entry layer)."""

from __future__ import annotations

import os
import time
from dataclasses import replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

from orchd.adapters import config, control, policy_files, spool
from orchd.core.policy import Policy

from ..context import Site

SPOOL_DIR = "spool"
INBOX_DIR = "inbox"
TRANSFER_DIR = "transfers"  # files coming in and going out through the control socket


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


def inbox_dir(site: Site, settings: config.Settings) -> Path:
    """The bundle inbox: config ``inbox``, else ``STATE_DIR/inbox``."""
    return Path(settings.inbox) if settings.inbox else site.config.state_dir / INBOX_DIR


def drop_request(state_dir: Path, request: dict[str, Any], name: str | None) -> Path:
    """For ``jobs submit --spool``: write the request as a spool producer must."""
    chosen = name or f"{int(time.time() * 1000)}.{os.getpid()}.json"
    return spool.drop(state_dir / SPOOL_DIR, chosen, request)
