"""Before and after issue 20: orchd's throughput in each benchmark at two versions, in pairs.

    python tools/bench/pairs.py [--before REF] [--after REF] [--rounds R] [--only NAME,...]
                                [sizes, see --help] [--write docs/BENCHMARKS.md]

BEFORE is a commit (99786a9, the last before issue 20's reshaping, unless told); AFTER is a ref,
or else the working tree (a copy of its orchd/ and tools/bench/ taken at the start, so edits made
meanwhile stay out). A ref is checked out by ``git worktree add --detach`` in a temporary folder,
removed at the end. Each version is measured with its own orchd and its own bench scripts: every
measurement is a fresh ``python -P`` process whose ``sys.path`` starts with that tree's
tools/bench and the tree (``PYTHONPATH`` names the tree too, for the processes the benchmarks
start), and which stops if ``orchd`` or the bench module was imported from anywhere else.

A unit is one benchmark at one setting (append: a batch size; lifecycle and subprocess: a
concurrency; bundles: a size, giving export and import). Its rounds alternate before, after,
before, after, ...; only orchd's own rate is measured (no baseline). Each configuration is judged
by the ratio of the medians, after / before (higher is better); one under the threshold has its
unit run once more, a full set of rounds, and both runs are reported.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

SECTION = "pairs"
BEFORE = "99786a9"
THRESHOLD = 0.95
BENCHES = ("append", "lifecycle", "subprocess", "bundles")
MODULES = {
    "append": "append",
    "lifecycle": "lifecycle",
    "subprocess": "subprocess_jobs",
    "bundles": "bundles",
}
UNITS = {"append": "events/s", "lifecycle": "jobs/s", "subprocess": "jobs/s", "bundles": "events/s"}
REPO = Path(__file__).resolve().parents[2]


# --- in the child: one round of one unit, with one version's code -------------------------------


@contextlib.contextmanager
def scratch() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_DIR")) as tmp:
        yield Path(tmp)


def measure_append(bench: ModuleType, p: dict[str, int]) -> dict[str, float]:
    drafts = bench.make_drafts(p["events"])
    with scratch() as folder:
        elapsed, _ = bench.run_orchd(folder, drafts, p["batch"])
    return {f"batches of {p['batch']}": p["events"] / elapsed}


def measure_engine(bench: ModuleType, p: dict[str, int]) -> dict[str, float]:
    """lifecycle.py's and subprocess_jobs.py's ``run_orchd``: submit and run every job."""
    with scratch() as folder:
        elapsed = bench.run_orchd(folder, p["jobs"], p["concurrency"], p["submit_batch"])
    return {f"concurrency {p['concurrency']}": p["jobs"] / elapsed}


def measure_bundles(bench: ModuleType, p: dict[str, int]) -> dict[str, float]:
    """bundles.py's round without its baselines: export, then import, each in its child."""
    with scratch() as folder:
        source = bench.build_source(folder / "hq", p["events"], p["batch"])
        work = folder / "work"
        ledger, bundle = bench.copy_source(source, work), work / "hq.orchkit"
        spec = {"ledger": str(ledger), "key": str(source.key), "out": str(bundle)}
        done = {"export": bench.in_child("export", spec)}
        enclave = bench.fresh_enclave(work / "enclave", source.public_key)
        done["import"] = bench.in_child("import", {"ledger": str(enclave), "bundle": str(bundle)})
    return {
        f"{what}, {p['events']:,} events": r["events"] / r["seconds"] for what, r in done.items()
    }


MEASURES: dict[str, Callable[[ModuleType, dict[str, int]], dict[str, float]]] = {
    "append": measure_append,
    "lifecycle": measure_engine,
    "subprocess": measure_engine,
    "bundles": measure_bundles,
}


def child_main(tree_text: str, unit_text: str) -> int:
    tree, unit = Path(tree_text).resolve(), json.loads(unit_text)
    sys.path[:0] = [str(tree / "tools" / "bench"), str(tree)]
    import orchd

    from_tree(orchd, tree)
    bench = from_tree(importlib.import_module(MODULES[unit["bench"]]), tree)
    print(json.dumps(MEASURES[unit["bench"]](bench, unit["params"])))
    return 0


def from_tree(module: ModuleType, tree: Path) -> ModuleType:
    """``module``, which must have been imported from ``tree``."""
    origin = Path(module.__file__ or "").resolve()
    if not origin.is_relative_to(tree):
        raise SystemExit(f"{module.__name__} was imported from {origin}, not from {tree}")
    return module


# --- in the parent: the two trees, the rounds, the section --------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Version:
    name: str  # before, after
    tree: Path
    described: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Unit:
    bench: str
    params: dict[str, int]


@dataclass(slots=True, kw_only=True)
class Pair:
    """One configuration's rates over one set of rounds, by version."""

    bench: str
    config: str
    rates: dict[str, list[float]] = field(default_factory=lambda: {"before": [], "after": []})

    @property
    def ratio(self) -> float:
        return statistics.median(self.rates["after"]) / statistics.median(self.rates["before"])


def git(*args: str) -> str:
    done = subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"git {' '.join(args)} failed: {done.stderr.strip()}")
    return done.stdout.strip()


def describe(ref: str) -> str:
    return git("log", "-1", "--format=commit %h (%s)", ref)


@contextlib.contextmanager
def versions(before: str, after: str | None, folder: Path) -> Iterator[list[Version]]:
    """BEFORE and AFTER checked out under ``folder``; the worktrees are removed on the way out."""
    added: list[Path] = []
    try:
        made = []
        for name, ref in (("before", before), ("after", after)):
            tree = folder / name
            if ref is None:
                made.append(snapshot(tree))
                continue
            git("worktree", "add", "--detach", "--quiet", str(tree), ref)
            added.append(tree)
            made.append(Version(name=name, tree=tree, described=describe(ref)))
        yield made
    finally:
        for tree in added:
            git("worktree", "remove", "--force", str(tree))


def snapshot(tree: Path) -> Version:
    """The working tree's orchd/ and tools/bench/, copied now."""
    ignore = shutil.ignore_patterns("__pycache__")
    for part in ("orchd", "tools/bench"):
        shutil.copytree(REPO / part, tree / part, ignore=ignore)
    changed = git("status", "--porcelain", "--", "orchd", "tools/bench")
    described = f"the working tree at {describe('HEAD')}"
    if changed:
        described += ", with uncommitted changes in orchd/ or tools/bench/"
    return Version(name="after", tree=tree, described=described)


def in_child(script: Path, version: Version, unit: Unit) -> dict[str, float]:
    argv = [sys.executable, "-P", str(script), "_child", str(version.tree)]
    argv.append(json.dumps({"bench": unit.bench, "params": unit.params}))
    env = {**os.environ, "PYTHONPATH": str(version.tree)}
    done = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=version.tree)
    if done.returncode != 0:
        raise SystemExit(f"{unit} with {version.name} failed:\n{done.stderr}")
    rates: dict[str, float] = json.loads(done.stdout.splitlines()[-1])
    return rates


def run_unit(
    script: Path, pair: tuple[Version, ...], unit: Unit, rounds: int, run: str
) -> list[Pair]:
    """``rounds`` rounds of the unit, alternating the versions; one ``Pair`` per configuration."""
    pairs: dict[str, Pair] = {}
    for round_ in range(rounds):
        for version in pair:
            for config, rate in in_child(script, version, unit).items():
                pairs.setdefault(config, Pair(bench=unit.bench, config=config))
                pairs[config].rates[version.name].append(rate)
        shown = "; ".join(
            f"{p.config}: before {p.rates['before'][-1]:,.0f}, after {p.rates['after'][-1]:,.0f}"
            for p in pairs.values()
        )
        print(f"{unit.bench}, {run} run, round {round_ + 1}: {shown}", file=sys.stderr)
    return list(pairs.values())


Result = tuple[Pair, Pair | None]  # the first run, and the rerun if the first was under


def compare(
    script: Path, pair: tuple[Version, ...], units: list[Unit], args: argparse.Namespace
) -> list[Result]:
    results: list[Result] = []
    for unit in units:
        first = run_unit(script, pair, unit, args.rounds, "first")
        under = {p.config for p in first if p.ratio < args.threshold}
        again = run_unit(script, pair, unit, args.rounds, "second") if under else []
        reruns = {p.config: p for p in again if p.config in under}
        results += [(p, reruns.get(p.config)) for p in first]
    return results


def plan(args: argparse.Namespace) -> list[Unit]:
    engine = {"submit_batch": args.submit_batch}
    settings: dict[str, list[dict[str, int]]] = {
        "append": [{"events": args.append_events, "batch": b} for b in args.append_batch],
        "lifecycle": [
            {"jobs": args.lifecycle_jobs, "concurrency": c, **engine}
            for c in args.lifecycle_concurrency
        ],
        "subprocess": [
            {"jobs": args.subprocess_jobs, "concurrency": c, **engine}
            for c in args.subprocess_concurrency
        ],
        "bundles": [{"events": n, "batch": args.bundle_batch} for n in args.bundle_events],
    }
    return [Unit(bench=bench, params=p) for bench in args.only for p in settings[bench]]


def command(args: argparse.Namespace, parser: argparse.ArgumentParser) -> str:
    """The command line that gave ``args``, naming the options not left at their defaults."""
    words = ["python tools/bench/pairs.py"]
    for action in parser._actions:
        value = getattr(args, action.dest, None)
        named = action.option_strings and action.dest not in ("help", "write")
        if named and value != action.default:
            shown = ",".join(map(str, value)) if isinstance(value, list) else value
            words.append(f"{action.option_strings[0]} {shown}")
    return " ".join(words)


def row(pair: Pair, run: str, cells: Callable[[list[float]], str]) -> str:
    before, after = cells(pair.rates["before"]), cells(pair.rates["after"])
    return (
        f"| {pair.bench} | {pair.config} | {UNITS[pair.bench]} | {run} | {before} | {after} "
        f"| {pair.ratio:.2f} |"
    )


def render(
    results: list[Result], pair: tuple[Version, ...], args: argparse.Namespace, said: str
) -> str:
    """The section: how it was measured, a row per configuration and run, and the verdict."""
    import report  # the working tree's, beside this script (a child never imports it)

    lines = [
        "## Before and after issue 20 (orchd against itself, interleaved pairs)",
        "",
        f"- machine: {report.machine()}",
        f"- command: {said}",
        f"- before: {pair[0].described}; after: {pair[1].described}; each measured with its own "
        "orchd and its own tools/bench scripts",
        f"- sizes: {sizes(args)}",
        f"- {args.rounds} rounds per configuration, alternating before and after, each a fresh "
        "process; only orchd's rate (no baseline): append `SqliteLedger.append`; lifecycle (no-op "
        "executor) and subprocess: submitting and `Engine.run` until idle; bundles "
        "`bundles.export`, then `bundles.import_bundle` of that bundle, each in its own child",
        f"- ratio: median after / median before; a configuration under {args.threshold:g} is run "
        "once more (all its rounds again) and both runs are shown",
        "",
        "| benchmark | configuration | rate | run | before median | min | max "
        "| after median | min | max | ratio (medians) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for first, rerun in results:
        if rerun is None:
            lines.append(row(first, "only", report.cells))
        else:
            lines += [row(first, "first", report.cells), row(rerun, "rerun", report.cells)]
    return "\n".join([*lines, "", verdict(results, args.threshold, report.verdict)])


def sizes(args: argparse.Namespace) -> str:
    said = {
        "append": f"append {args.append_events} events",
        "lifecycle": f"lifecycle {args.lifecycle_jobs} no-op jobs",
        "subprocess": f"subprocess {args.subprocess_jobs} `/bin/true` jobs",
        "bundles": f"bundles: a ledger set up in batches of {args.bundle_batch}",
    }
    shown = "; ".join(said[bench] for bench in args.only)
    if {"lifecycle", "subprocess"} & set(args.only):
        shown += f"; jobs submitted in batches of {args.submit_batch}"
    return shown


def verdict(results: list[Result], threshold: float, said: Callable[[bool], str]) -> str:
    """Met unless some configuration is under ``threshold`` in its first run and its rerun."""
    under = [f"{p.bench} {p.config}" for p, rerun in results if rerun is not None]
    slower = [f"{p.bench} {p.config}" for p, rerun in results if rerun and rerun.ratio < threshold]
    text = (
        f"Goal (issue 20): no benchmark slower (every ratio >= {threshold:g}, or so in the rerun)"
    )
    text += f": {said(not slower)}. Under {threshold:g} in the first run: "
    text += f"{'; '.join(under) or 'none'}; in both runs: {'; '.join(slower) or 'none'}."
    return text


def probe(version: Version) -> None:
    """Stop unless a plain ``python -P`` with ``PYTHONPATH`` set to the tree imports its orchd,
    as the benchmarks' own child processes do."""
    argv = [sys.executable, "-P", "-c", "import orchd; print(orchd.__file__)"]
    env = {**os.environ, "PYTHONPATH": str(version.tree)}
    done = subprocess.run(argv, capture_output=True, text=True, env=env, cwd="/")
    origin = Path(done.stdout.strip()).resolve()
    if done.returncode != 0 or not origin.is_relative_to(version.tree.resolve()):
        raise SystemExit(f"{version.name}: orchd comes from {origin}, not {version.tree}")


def numbers(text: str) -> list[int]:
    return [int(n) for n in text.split(",")]


def parse() -> tuple[argparse.Namespace, str]:
    """The arguments, and the command line that gives them (the options not at their defaults)."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add = parser.add_argument
    add("--before", default=BEFORE, help=f"the ref measured as before ({BEFORE})")
    add("--after", help="the ref measured as after (the working tree)")
    add("--rounds", type=int, default=5, help="rounds per version and configuration (5)")
    add("--only", type=lambda t: t.split(","), default=list(BENCHES), help=",".join(BENCHES))
    add("--threshold", type=float, default=THRESHOLD, help=f"rerun under this ratio ({THRESHOLD})")
    add("--append-events", type=int, default=20_000, help="events per round (20000)")
    add("--append-batch", type=numbers, default=[100, 1000, 10000], help="(100,1000,10000)")
    add("--lifecycle-jobs", type=int, default=2_000, help="no-op jobs per round (2000)")
    add("--lifecycle-concurrency", type=numbers, default=[2, 32], help="(2,32)")
    add("--subprocess-jobs", type=int, default=2_000, help="/bin/true jobs per round (2000)")
    add("--subprocess-concurrency", type=numbers, default=[2], help="(2)")
    add("--submit-batch", type=int, default=100, help="jobs per submitting append (100)")
    add("--bundle-events", type=numbers, default=[100_000], help="ledger sizes (100000)")
    add("--bundle-batch", type=int, default=10_000, help="set-up append batch size (10000)")
    add("--write", type=Path, help="write the results into this Markdown file")
    args = parser.parse_args()
    if unknown := set(args.only) - set(BENCHES):
        parser.error(f"--only: no benchmark {', '.join(sorted(unknown))}")
    return args, command(args, parser)


def main() -> int:
    if sys.argv[1:2] == ["_child"]:
        return child_main(sys.argv[2], sys.argv[3])
    args, said = parse()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="orchd-pairs-") as tmp:
        script = Path(tmp) / "pairs.py"  # this file as it is now, for every child
        shutil.copyfile(__file__, script)
        with versions(args.before, args.after, Path(tmp)) as made:
            pair = tuple(made)
            for version in pair:
                probe(version)
            results = compare(script, pair, plan(args), args)
    minutes = (time.perf_counter() - started) / 60
    text = render(results, pair, args, f"`{said}` ({minutes:.1f} min in all)")
    import report

    return report.publish(text, args.write, SECTION)


if __name__ == "__main__":
    sys.exit(main())
