"""What every draft constructor shares: the idempotency key's form, optional fields (core layer)."""

from __future__ import annotations

from typing import Any


def keyed(prefix: str, *parts: object) -> str:
    """An idempotency key: the prefix (the type, as a rule) and what makes the event one of its
    kind, joined by ``:``."""
    return ":".join((prefix, *map(str, parts)))


def present(**fields: Any) -> dict[str, Any]:
    """The fields not None: optional payload fields are left out, as the projection expects."""
    return {name: value for name, value in fields.items() if value is not None}
