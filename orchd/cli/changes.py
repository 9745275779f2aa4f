"""The options every audited change takes, and how a change that changed nothing says so (entry
layer).

Every operator change (jobs cancel, replay, sources pause|resume, quota set|reset, backfill, keys
trust|revoke|rotate) needs --reason and takes --ticket, which the site's policy requires for some
(``tickets.required_for``; the ops layer enforces it, so the daemon and this process agree).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

REASON_HELP = "Why (1-256 printable characters on one line); kept in the audit log."
TICKET_HELP = (
    "The change ticket (1-128 characters, no spaces), e.g. SEC-1234; required where the "
    "policy's tickets.required_for says (by default: quota and backfill)."
)

F = TypeVar("F", bound=Callable[..., Any])


def audited(command: F) -> F:
    """Add --reason (required) and --ticket to a command."""
    command = click.option("--ticket", help=TICKET_HELP)(command)
    return click.option("--reason", required=True, help=REASON_HELP)(command)


def unchanged(what: str) -> None:
    """Say that a change was in effect already: nothing was recorded (the command exits 0)."""
    click.echo(f"{what}: nothing changed", err=True)
