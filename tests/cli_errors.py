"""A failed command run with ``--json``, checked and told in words, for the CLI test harnesses.

With ``--json`` every line a command writes on stderr is a JSON object (progress lines, then
the error), and the error's ``code`` is the exit code. ``humane`` checks that, then gives the
result back with the error in the words the command prints without ``--json``
(``orchd: error: ...`` and ``hint: ...``), so one text check holds for both forms; the JSON
object itself is kept (``json_error``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from click.testing import Result

ERROR_KEYS = {"error", "code", "hint", "kind"}
JSON_ERROR = "orchd_json_error"


def humane(result: Result, args: Sequence[object]) -> Result:
    words = [str(arg) for arg in args]
    if result.exit_code in (0, None) or "--json" not in words or result.exit_code == 141:
        return result
    lines = result.stderr.splitlines()
    assert lines, (words, "a failing --json command says why on stderr")
    parsed = [json.loads(line) for line in lines]  # every line is JSON: fails the test if not
    error = parsed[-1]
    assert set(error) == ERROR_KEYS, (words, error)
    assert error["code"] == result.exit_code, (words, error, result.exit_code)
    said = f"orchd: error: {error['error']}\n"
    if error["hint"]:
        said += f"hint: {error['hint']}\n"
    result.stderr_bytes = said.encode()
    result.__dict__[JSON_ERROR] = error  # as the command wrote it
    return result


def json_error(result: Result) -> dict[str, Any]:
    """The error a ``--json`` command wrote, as ``humane`` parsed it."""
    found: dict[str, Any] = result.__dict__[JSON_ERROR]
    return found
