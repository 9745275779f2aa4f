"""Readers of single policy values: text, names, rates, time zones, cron, exit codes,
environment names and audited changes (adapters layer).

Each takes a YAML node and where it is (``At``) and returns the value or raises ``PolicyInvalid``
naming the file, line and key; the key tables in ``policy_keys`` use them.
"""

from __future__ import annotations

import re
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml

from orchd.adapters.slots import check_cron
from orchd.adapters.yamlkeys import (
    NULL_TAG,
    STR_TAG,
    At,
    Parse,
    checked,
    choice,
    integer,
    list_of,
    scalar,
)
from orchd.core import policy as model
from orchd.core.limits import parse_rate
from orchd.core.names import check_name, check_text

_ENV_NAME = re.compile(r"[A-Z_][A-Z0-9_]{0,63}")


def text(node: yaml.Node, at: At) -> str:
    value: str = scalar(node, at, STR_TAG, "text")
    return str(checked(at, lambda: check_text("text", value)))


def name(kind: str) -> Parse:
    def parse(node: yaml.Node, at: At) -> str:
        value: str = scalar(node, at, STR_TAG, f"a {kind}")
        return str(checked(at, lambda: check_name(kind, value)))

    return parse


def rate(node: yaml.Node, at: At) -> str:
    value: str = scalar(node, at, STR_TAG, "a rate such as 10/hour")
    checked(at, lambda: parse_rate(value))
    return value


def timezone(node: yaml.Node, at: At) -> str:
    value: str = scalar(node, at, STR_TAG, "an IANA time zone such as Europe/Berlin")
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise at.error(f"unknown time zone {value!r}; expected e.g. UTC or Europe/Berlin") from None
    return value


def cron(node: yaml.Node, at: At) -> str:
    value: str = scalar(node, at, STR_TAG, "a five-field cron expression")
    checked(at, lambda: check_cron(value, "UTC"))
    return value


def optional_text(node: yaml.Node, at: At) -> str | None:
    if isinstance(node, yaml.ScalarNode) and node.tag == NULL_TAG:
        return None
    return scalar(node, at, STR_TAG, "text, or ~ for a required parameter")  # type: ignore[no-any-return]


def exit_codes(node: yaml.Node, at: At) -> frozenset[int] | None:
    if isinstance(node, yaml.ScalarNode) and node.tag == STR_TAG and node.value == "any":
        return None
    return frozenset(list_of(integer(1, 255))(node, at))


def env_name(node: yaml.Node, at: At) -> str:
    value: str = scalar(node, at, STR_TAG, "an environment variable name")
    if not _ENV_NAME.fullmatch(value) or value.startswith("ORCHD_"):
        raise at.error(f"{value!r}: expected A-Z, 0-9 and _, not starting with ORCHD_")
    return value


def job_type_ref(node: yaml.Node, at: At) -> tuple[str, At]:
    """A job type named where it may not be defined yet; checked once every file is read."""
    return name("job type")(node, at), at


def changes(node: yaml.Node, at: At) -> frozenset[str]:
    """A list of audited changes, each named once; quota always among them."""
    listed: tuple[str, ...] = list_of(choice(*model.CHANGES))(node, at)
    if twice := sorted({c for c in listed if listed.count(c) > 1}):
        raise at.error(f"{twice[0]} is listed twice")
    if missing := sorted(model.TICKETS_ALWAYS - set(listed)):
        raise at.error(
            f"{missing[0]} must be listed: a quota change always carries a ticket (its events "
            "need one on every site)"
        )
    return frozenset(listed)
