"""The shape limits of docs/ARCHITECTURE.md ("Rooms"), kept by the suite so that later work keeps
them: no module of ``orchd/`` over 400 lines (the ledger's under 350), no function over 60 lines,
no mccabe complexity over 12 (ruff's C901), measured on the code as ``ruff format`` leaves it.

``OVER`` lists what is still over a limit, each with its size when the limit came in; it may only
shrink: an entry that now fits fails the test until it is taken out, and anything new over a
limit fails at once."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "orchd"
MODULE_LINES, LEDGER_LINES, FUNCTION_LINES, COMPLEXITY = 400, 350, 60, 12

# what was over a limit when it came in (issue 20), to be split; may only shrink
OVER: dict[str, int] = {}


def modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def name(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def module_sizes() -> dict[str, int]:
    found = {}
    for path in modules():
        lines = len(path.read_text().splitlines())
        limit = LEDGER_LINES if "ledger" in path.parts else MODULE_LINES
        if lines > limit:
            found[name(path)] = lines
    return found


def long_functions() -> dict[str, int]:
    found = {}
    for path in modules():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                if length > FUNCTION_LINES:
                    found[f"{name(path)}::{node.name}"] = length
    return found


def complex_functions() -> dict[str, int]:
    ruff = Path(sys.executable).parent / "ruff"
    done = subprocess.run(
        [
            str(ruff),
            "check",
            "--select",
            "C901",
            "--output-format",
            "json",
            "--config",
            f"lint.mccabe.max-complexity = {COMPLEXITY}",
            "--exit-zero",
            str(PACKAGE),
        ],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    found = {}
    for item in json.loads(done.stdout):
        function = item["message"].split("`")[1]
        score = int(item["message"].rsplit("(", 1)[1].split(" ")[0])
        found[f"{name(Path(item['filename']))}::{function} (complexity)"] = score
    return found


def test_every_module_function_and_branching_stays_within_its_limit() -> None:
    now = {**module_sizes(), **long_functions(), **complex_functions()}

    new = {k: v for k, v in now.items() if k not in OVER}
    fitting = sorted(k for k in OVER if k not in now)

    assert new == {}, f"over a limit (split it): {new}"
    assert fitting == [], f"within its limit now: take it out of OVER: {fitting}"


def test_the_module_map_names_every_module() -> None:
    page = (ROOT / "docs" / "ARCHITECTURE.md").read_text()
    named = {
        line.split("`")[1] for line in page.splitlines() if line.startswith("| `") and "`" in line
    }
    modules_ = {
        p.relative_to(PACKAGE).as_posix()
        for p in modules()
        if p.name not in ("__init__.py", "__main__.py")
    }

    missing = sorted(m for m in modules_ if m not in named)
    stale = sorted(n for n in named if n.endswith(".py") and not (PACKAGE / n).is_file())

    assert missing == [], f"add a row to docs/ARCHITECTURE.md's module map for: {missing}"
    assert stale == [], f"the module map names modules that are gone: {stale}"
