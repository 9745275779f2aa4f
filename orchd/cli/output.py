"""Rendering results: JSON for scripts, aligned text for people (entry layer)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

import click

from orchd.core import ids
from orchd.core.events import Event
from orchd.core.projection import JobView, RunView

from .times import in_zone, shown_zone

F = TypeVar("F", bound=Callable[..., Any])


def emit_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False))


def json_flag(what: str) -> Callable[[F], F]:
    """``--json``: print ``what`` as JSON (an error becomes one JSON object on stderr)."""
    return click.option("--json", "as_json", is_flag=True, help=f"Print {what} as JSON.")


def job_json(job: JobView) -> dict[str, Any]:
    fields = job._asdict()
    fields["params"] = json.loads(job.params)
    return fields


def run_json(run: RunView) -> dict[str, Any]:
    return run._asdict()


def event_json(event: Event) -> dict[str, Any]:
    value = json.loads(event.body)
    value["hash"] = event.hash
    return dict(value)


def short(value: object) -> object:
    """An id as a table shows it: its short form (``ids.short``); anything else as it is."""
    return ids.short(value) if ids.is_id(value) and isinstance(value, str) else value


def table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> None:
    """Print rows as columns aligned to their widest cell (an instant in the zone asked for)."""
    zone = shown_zone(click.get_current_context(silent=True))  # once a table, not once a cell
    cells = [
        list(headers),
        *([("-" if c is None else str(in_zone(c, zone))) for c in row] for row in rows),
    ]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    for row in cells:
        click.echo(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        )
