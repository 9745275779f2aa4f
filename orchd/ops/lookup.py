"""Ids as operators type them: the whole id, its short form or its first characters (ops layer).

``core/ids.py`` says what the short form is and why it is unique in practice. An id is looked
up by one seek of an index whichever way it is typed; several matches are an error that lists
them (as git does), and fewer than ``ids.MIN_PREFIX`` characters one that says the minimum.
"""

from __future__ import annotations

from collections.abc import Callable

from orchd.core import ids
from orchd.core.names import check_name
from orchd.core.policy import Policy
from orchd.core.ports import JobQueries
from orchd.core.vocabulary import VOCABULARY
from orchd.errors import AmbiguousId, IdTooShort, UnknownName

CANDIDATES = 10  # the most an ambiguous id lists
KEY_MIN_PREFIX, KEY_SHOWN = 8, 16  # a key id: the fewest first characters taken, as shown
WHAT = {"jobs": "job", "runs": "run", "requests": "request"}


def resolve(ledger: JobQueries, table: str, text: str) -> str | None:
    """The one id of ``table`` that ``text`` names, or None when none does."""
    value = ids.typed(text.strip())
    if not ids.could_be(value):
        return None
    if len(value) < ids.MIN_PREFIX:
        form = f"its short form (its last {ids.SHORT} characters, as tables show it)"
        raise IdTooShort(what=WHAT[table], value=text, minimum=ids.MIN_PREFIX, form=form)
    found = ledger.ids_matching(table, value, CANDIDATES + 1)
    if len(found) > 1:
        count = f"more than {CANDIDATES}" if len(found) > CANDIDATES else str(len(found))
        listed = "\n".join(_described(ledger, table, found[:CANDIDATES]))
        raise AmbiguousId(prefix=text, count=count, what=WHAT[table], candidates=listed)
    return found[0] if found else None


def resolve_key(held: list[str], text: str) -> str | None:
    """The one key id of ``held`` (sha256 hex) that ``text`` names: the whole id, or its first
    characters (``orchd keys list`` shows 16); None when none does."""
    value = text.strip().lower()
    if not value or set(value) - set("0123456789abcdef"):
        return None
    if len(value) < KEY_MIN_PREFIX:
        form = f"the first {KEY_SHOWN} characters `orchd keys list` shows"
        raise IdTooShort(what="key", value=text, minimum=KEY_MIN_PREFIX, form=form)
    found = sorted(key_id for key_id in held if key_id.startswith(value))
    if len(found) > 1:
        listed = "\n".join(f"  {key_id}" for key_id in found[:CANDIDATES])
        raise AmbiguousId(prefix=text, count=str(len(found)), what="key", candidates=listed)
    return found[0] if found else None


def check_filters(
    ledger: JobQueries,
    policy: Callable[[], Policy],
    *,
    job_type: str | None = None,
    source: str | None = None,
) -> None:
    """A list's job type or source filter names one the policy defines or a job held here has
    (a typo lists the names, rather than an empty table); the policy is read only for a name
    no job held has."""
    types, sources = ledger.held_names()
    for what, value, held in (("job type", job_type, types), ("source", source, sources)):
        if value is None or check_name(what, value) in held:
            continue
        defined = policy().job_types if what == "job type" else policy().sources
        if value not in defined:
            known = ", ".join(sorted(held | set(defined))) or "(none)"
            why = f"the policy defines no such {what} and no job held here has one"
            raise UnknownName(what=what, value=value, why=why, known=known)


def check_event_type(event_type: str | None) -> None:
    """An event type filter names a type of the vocabulary (FORMAT.md's event list)."""
    if event_type is not None and event_type not in VOCABULARY:
        known = ", ".join(sorted(VOCABULARY))
        why = "orchd records no event of that type"
        raise UnknownName(what="event type", value=event_type, why=why, known=known)


def _described(ledger: JobQueries, table: str, found: list[str]) -> list[str]:
    """One line per candidate: its short form, its id and, for a job, its type and state."""
    jobs = ledger.jobs_by_id(found) if table == "jobs" else {}
    lines = []
    for each in found:
        job = jobs.get(each)
        what = f"  {job.job_type} {job.state}" if job is not None else ""
        lines.append(f"  {ids.short(each)}  {each}{what}")
    return lines
