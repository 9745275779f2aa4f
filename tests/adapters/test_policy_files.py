"""Policy files: the examples load; every mistake names its file, line and key."""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

import pytest

from orchd.adapters import policy_files
from orchd.core.limits import Quota, Rate, from_policy
from orchd.core.policy import Backoff
from orchd.errors import PolicyInvalid, PolicyMissing

EXAMPLES = Path(__file__).resolve().parents[2] / "policies" / "examples"

PARAMS = "    params: {window: 24h}"
GOOD = """\
version: 1
sources:
  nvd: {description: NVD mirror}
job_types:
  feed-refresh:
    argv: [/usr/bin/refresh, "{source}", "{window}"]
    params: {window: 24h}
schedules:
  nvd-hourly: {job_type: feed-refresh, source: nvd, cron: "15 * * * *"}
quotas:
  - {target: "source:nvd", rate: 10/hour}
"""


def write(folder: Path, text: str, name: str = "site.yaml") -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(text))
    return path


def test_the_examples_load_into_a_complete_policy(tmp_path: Path) -> None:
    for example in EXAMPLES.glob("*.yaml"):
        shutil.copy(example, tmp_path)
    policy = policy_files.load(tmp_path)
    assert policy.concurrency == 4
    assert set(policy.sources) == {"nvd", "ghsa", "osv", "vendor-vex", "fleet"}
    refresh = policy.job_types["feed-refresh"]
    assert refresh.backoff == Backoff(base_s=60, cap_s=3600, jitter_pct=20)
    assert refresh.retry_on == frozenset({75, 111})
    assert policy.job_types["feed-index"].after == ("feed-refresh",)
    assert policy.job_types["vex-ingest"].retry_on is None
    assert policy.job_types["rescan"].params == {"scope": None}
    assert policy.schedules["osv-nightly"].timezone == "Europe/Berlin"
    assert policy.quotas[("source", "nvd")].rate == "12/hour"
    limits = from_policy(policy.concurrency, policy.quotas)
    assert limits.concurrency == 4
    assert limits.quotas[("source", "nvd")] == Quota(
        rate=Rate(tokens=12, period_ms=3_600_000), burst=3, concurrency=1
    )
    assert limits.quotas[("job_type", "feed-refresh")].daily == 200


def test_defaults_fill_what_a_file_leaves_out(tmp_path: Path) -> None:
    write(tmp_path, GOOD)
    policy = policy_files.load(tmp_path)
    job_type = policy.job_types["feed-refresh"]
    assert (job_type.timeout_s, job_type.max_attempts, job_type.priority) == (3600, 3, 0)
    schedule = policy.schedules["nvd-hourly"]
    assert (schedule.timezone, schedule.misfire, schedule.catch_up_limit) == ("UTC", "once", 24)


# Each mistake: the file text, the line the error must name, the key, and words of the problem.
MISTAKES = {
    "unknown top-level key": (GOOD + "colour: blue\n", 12, "colour", "unknown key"),
    "unknown job type key": (
        GOOD.replace(PARAMS, PARAMS + "\n    retries: 3"),
        8, "job_types.feed-refresh.retries", "unknown key"),
    "missing version": (GOOD.replace("version: 1\n", ""), 1, "", "version is required"),
    "version 2": (GOOD.replace("version: 1", "version: 2"), 1, "version", "out of range"),
    "timeout as text": (
        GOOD.replace(PARAMS, PARAMS + "\n    timeout_s: ten"),
        8, "job_types.feed-refresh.timeout_s", "expected an integer"),
    "a yes that YAML reads as true": (
        GOOD.replace("{description: NVD mirror}", "{description: yes}"),
        3, "sources.nvd.description", "quote it"),
    "six cron fields": (GOOD.replace('"15 * * * *"', '"0 15 * * * *"'), 9,
                        "schedules.nvd-hourly.cron", "5 fields"),
    "unknown time zone": (
        GOOD.replace('cron: "15 * * * *"}', 'cron: "15 * * * *", timezone: Mars/Base}'),
        9, "schedules.nvd-hourly.timezone", "unknown time zone"),
    "schedule of an unknown job type": (
        GOOD.replace("{job_type: feed-refresh,", "{job_type: feed-refersh,"),
        9, "schedules.nvd-hourly.job_type", "unknown job type"),
    "unknown placeholder": (GOOD.replace('"{window}"', '"{windw}"'), 6,
                            "job_types.feed-refresh.argv", "{windw}"),
    "relative argv[0]": (GOOD.replace("/usr/bin/refresh", "refresh"), 6,
                         "job_types.feed-refresh.argv", "absolute path"),
    "format spec in argv": (GOOD.replace('"{window}"', '"{window!r}"'), 6,
                            "job_types.feed-refresh.argv", "placeholders"),
    "dependency on an unknown type": (
        GOOD.replace(PARAMS, PARAMS + "\n    after: [nope]"),
        8, "job_types.feed-refresh.after", "unknown job type"),
    "quota of an unknown source": (GOOD.replace('"source:nvd"', '"source:nvdd"'), 11,
                                   "quotas[0].target", "unknown source"),
    "quota without limits": (GOOD.replace(", rate: 10/hour}", "}"), 11, "quotas[0]",
                             "at least one"),
    "bad rate": (GOOD.replace("10/hour", "10/fortnight"), 11, "quotas[0].rate", "invalid rate"),
    "burst without rate": (GOOD.replace("rate: 10/hour", "concurrency: 1, burst: 2"), 11,
                           "quotas[0].burst", "burst needs a rate"),
    "key given twice": (GOOD.replace("version: 1\n", "version: 1\nversion: 1\n"), 2, "version",
                        "given twice"),
    "bad misfire": (
        GOOD.replace('cron: "15 * * * *"}', 'cron: "15 * * * *", misfire: sometimes}'),
        9, "schedules.nvd-hourly.misfire", "skip, once, all"),
    "required param missing": (GOOD.replace("{window: 24h}", "{window: ~}"), 9,
                               "schedules.nvd-hourly", "params lacks 'window'"),
    "env var of orchd": (
        GOOD.replace(PARAMS, PARAMS + "\n    env: {ORCHD_X: y}"),
        8, "job_types.feed-refresh.env.ORCHD_X", "ORCHD_"),
    "remote as yes": (GOOD.replace(PARAMS, PARAMS + "\n    remote: yes"), 8,
                      "job_types.feed-refresh.remote", "expected true or false"),
    "a worker of a local type": (GOOD + "workers: {w-1: [feed-refresh]}\n", 12, "workers.w-1[0]",
                                 "not remote: add remote: true"),
    "a worker of an unknown type": (GOOD + "workers: {w-1: [scan]}\n", 12, "workers.w-1[0]",
                                    "no job type scan"),
    "a worker named daemon": (
        GOOD.replace(PARAMS, PARAMS + "\n    remote: true") + "workers: {daemon: [feed-refresh]}\n",
        13, "workers.daemon[0]", "the daemon's own NATS name"),
    "not valid YAML": ("version: 1\nsources: [unclosed\n", 3, "", "not valid YAML"),
    "an alias": ("version: 1\nsources:\n  a: &x {}\n  b: *x\n", 4, "sources.b", "aliases"),
}  # fmt: skip


@pytest.mark.parametrize(("text", "line", "key", "words"), MISTAKES.values(), ids=MISTAKES)
def test_a_mistake_names_file_line_and_key(
    tmp_path: Path, text: str, line: int, key: str, words: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(PolicyInvalid) as caught:
        policy_files.load(tmp_path)
    error = caught.value
    assert (error.fields["file"], error.fields["line"], error.fields["key"]) == (
        str(path),
        line,
        key,
    ), error.message
    assert words in error.fields["problem"], error.message
    assert error.message.startswith(f"policy {path}:{line}: {key}: ")


def test_remote_job_types_and_the_workers_that_may_claim_them(tmp_path: Path) -> None:
    write(tmp_path, GOOD.replace(PARAMS, PARAMS + "\n    remote: true"))
    write(tmp_path, "version: 1\nworkers: {w-1: [feed-refresh], w-2: []}\n", "workers.yaml")
    policy = policy_files.load(tmp_path)
    assert policy.job_types["feed-refresh"].remote
    assert not policy.job_types["bundle-export"].remote
    assert policy.workers == {"w-1": frozenset({"feed-refresh"}), "w-2": frozenset()}
    write(tmp_path, "version: 1\nworkers: {w-1: [feed-refresh]}\n", "x.yaml")
    with pytest.raises(PolicyInvalid, match="worker w-1 is already listed at"):
        policy_files.load(tmp_path)


def test_a_dependency_cycle_is_refused(tmp_path: Path) -> None:
    write(
        tmp_path,
        """\
        version: 1
        job_types:
          a: {argv: [/bin/a], after: [c]}
          b: {argv: [/bin/b], after: [a]}
          c: {argv: [/bin/c], after: [b]}
        """,
    )
    with pytest.raises(PolicyInvalid, match="dependency cycle: a -> c -> b -> a"):
        policy_files.load(tmp_path)


def test_a_name_defined_in_two_files_names_both(tmp_path: Path) -> None:
    write(tmp_path, GOOD, "a.yaml")
    second = write(tmp_path, "version: 1\nsources:\n  nvd: {}\n", "b.yaml")
    with pytest.raises(PolicyInvalid) as caught:
        policy_files.load(tmp_path)
    assert caught.value.fields["file"] == str(second)
    assert f"already defined at {tmp_path / 'a.yaml'}:3" in caught.value.message


def test_a_missing_directory_and_an_oversized_file_are_refused(tmp_path: Path) -> None:
    with pytest.raises(PolicyMissing, match="no policy directory"):
        policy_files.load(tmp_path / "absent")
    write(tmp_path, "version: 1\n" + "# padding\n" * 120_000)
    with pytest.raises(PolicyInvalid, match="larger than"):
        policy_files.load(tmp_path)
