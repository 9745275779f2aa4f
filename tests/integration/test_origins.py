"""Whose job is it: after an import, another site's jobs are its history, not this site's queue.

Two sites on one host through the CLI: the enclave records jobs (queued, dead, succeeded) and
sends them to hq in a bundle; hq has jobs of its own. ``jobs list`` and ``status`` show hq's own
jobs unless ``--origin`` or ``--all-origins`` says otherwise; ``cancel`` and ``replay`` of the
enclave's jobs are refused before anything is written; the engine runs only hq's jobs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from conftest import Orchd

from tests.builders import one_run


@dataclass(frozen=True)
class Sites:
    hq: Orchd
    enclave: Orchd
    hq_queued: str
    hq_dead: str
    enclave_queued: str
    enclave_dead: str
    enclave_done: str

    @property
    def hq_jobs(self) -> list[str]:
        return sorted([self.hq_queued, self.hq_dead])

    @property
    def enclave_jobs(self) -> list[str]:
        return sorted([self.enclave_queued, self.enclave_dead, self.enclave_done])


@pytest.fixture
def sites(tmp_path: Path) -> Sites:
    hq, enclave = Orchd(tmp_path / "hq"), Orchd(tmp_path / "enclave")
    for site, name in ((hq, "hq"), (enclave, "enclave")):
        site.ok("init", "--site-id", name)
        site.ok("keys", "export-public", str(tmp_path / f"{name}.pub"))
    hq.ok("keys", "trust", "enclave", str(tmp_path / "enclave.pub"), "--reason", "key ceremony")
    enclave.ok("keys", "trust", "hq", str(tmp_path / "hq.pub"), "--reason", "key ceremony")
    enclave_queued = enclave.submit("feed-refresh", "--source", "nvd")
    enclave_dead = enclave.submit("feed-refresh", "--source", "ghsa")
    enclave.append(one_run(enclave_dead, "failed"))
    enclave_done = enclave.submit("vex-ingest")
    enclave.append(one_run(enclave_done, "succeeded"))
    hq_queued = hq.submit("rescan")
    hq_dead = hq.submit("feed-refresh", "--source", "osv")
    hq.append(one_run(hq_dead, "failed"))
    bundle = tmp_path / "enclave.orchkit"
    enclave.ok("bundle", "export", "--out", str(bundle), "--peer", "hq")
    hq.ok("bundle", "import", str(bundle))
    return Sites(hq, enclave, hq_queued, hq_dead, enclave_queued, enclave_dead, enclave_done)


def status(site: Orchd, *args: str) -> dict[str, Any]:
    found = json.loads(site.ok("status", "--json", *args).stdout)
    assert isinstance(found, dict)
    return found


def ids_of(rows: object) -> list[str]:
    assert isinstance(rows, list)
    return [row["job_id"] for row in rows]


# --- jobs list and status -----------------------------------------------------------------------


def test_list_shows_this_sites_jobs_unless_told_otherwise(sites: Sites) -> None:
    own = sites.hq.jobs()

    assert ids_of(own) == sites.hq_jobs
    assert {job["origin"] for job in own} == {"hq"}
    assert ids_of(sites.hq.jobs("--origin", "enclave")) == sites.enclave_jobs
    assert ids_of(sites.hq.jobs("--all-origins")) == sorted(sites.hq_jobs + sites.enclave_jobs)
    assert ids_of(sites.hq.jobs("--origin", "enclave", "--state", "dead")) == [sites.enclave_dead]
    assert sites.hq.jobs("--origin", "branch") == []  # no job of that origin is held here


def test_the_list_table_names_each_jobs_origin(sites: Sites) -> None:
    header, *rows = sites.hq.ok("jobs", "list", "--all-origins").stdout.splitlines()

    assert header.split()[:3] == ["ID", "ORIGIN", "TYPE"]
    origins = {row.split()[0]: row.split()[1] for row in rows}
    expected = dict.fromkeys(sites.hq_jobs, "hq") | dict.fromkeys(sites.enclave_jobs, "enclave")
    assert origins == {job[-8:]: origin for job, origin in expected.items()}  # short forms
    default = sites.hq.ok("jobs", "list").stdout.splitlines()[1:]
    assert [row.split()[:2] for row in default] == [[job[-8:], "hq"] for job in sites.hq_jobs]


def test_status_counts_and_lists_this_sites_jobs_unless_told_otherwise(sites: Sites) -> None:
    own, theirs, every = (
        status(sites.hq),
        status(sites.hq, "--origin", "enclave"),
        status(sites.hq, "--all-origins"),
    )

    assert (own["site_id"], own["origin"], theirs["origin"], every["origin"]) == (
        "hq",
        "hq",
        "enclave",
        None,
    )
    counted = [{k: v for k, v in s["states"].items() if v} for s in (own, theirs, every)]
    assert counted == [
        {"queued": 1, "dead": 1},
        {"queued": 1, "dead": 1, "succeeded": 1},
        {"queued": 2, "dead": 2, "succeeded": 1},
    ]
    assert ids_of(own["dead"]) == [sites.hq_dead]
    assert ids_of(theirs["dead"]) == [sites.enclave_dead]
    assert sorted(ids_of(every["dead"])) == sorted([sites.hq_dead, sites.enclave_dead])
    assert ids_of(own["failures"]) == [sites.hq_dead]  # runs name their job
    assert ids_of(theirs["failures"]) == [sites.enclave_dead]
    assert own["freshness"] == []  # the enclave's vex-ingest is not this site's data
    assert [f["job_type"] for f in theirs["freshness"]] == ["vex-ingest"]
    assert own["peers"] == every["peers"] != []  # peers are this site's, whatever the filter


def test_status_text_says_whose_jobs_it_counts(sites: Sites) -> None:
    assert "jobs of origin hq: cancelled 0  dead 1  queued 1" in sites.hq.ok("status").stdout
    every = sites.hq.ok("status", "--all-origins").stdout
    assert "jobs of every origin: cancelled 0  dead 2  queued 2" in every
    theirs = sites.hq.ok("status", "--origin", "enclave").stdout
    assert "jobs of origin enclave: cancelled 0  dead 1  queued 1" in theirs


@pytest.mark.parametrize("command", [("jobs", "list"), ("status",)])
def test_origin_and_all_origins_together_are_a_usage_error(
    sites: Sites, command: tuple[str, ...]
) -> None:
    result = sites.hq.fails(2, *command, "--origin", "enclave", "--all-origins")
    assert "give --origin or --all-origins, not both" in result.stderr


@pytest.mark.parametrize("command", [("jobs", "list"), ("status",)])
def test_a_malformed_origin_is_refused(sites: Sites, command: tuple[str, ...]) -> None:
    result = sites.hq.fails(11, *command, "--origin", "Enclave!")
    assert "invalid site id 'Enclave!'" in result.stderr


# --- cancel and replay --------------------------------------------------------------------------


def test_cancel_of_another_sites_job_is_refused_and_writes_nothing(sites: Sites) -> None:
    before = sites.hq.event_count()

    refused = sites.hq.fails(45, "jobs", "cancel", sites.enclave_queued, "--reason", "not ours")

    assert (
        f"orchd: error: job {sites.enclave_queued} belongs to site 'enclave': only its own site "
        "may cancel it"
    ) in refused.stderr
    assert "hint: ask 'enclave'" in refused.stderr and "--site enclave" in refused.stderr
    assert sites.hq.event_count() == before
    [job] = sites.hq.jobs("--origin", "enclave", "--state", "queued")
    assert job["job_id"] == sites.enclave_queued
    sites.hq.ok("jobs", "cancel", sites.hq_queued[:10], "--reason", "ours to cancel")


def test_cancel_by_prefix_of_another_sites_job_is_refused(sites: Sites) -> None:
    before = sites.hq.event_count()
    sites.hq.fails(45, "jobs", "cancel", sites.enclave_queued[:12], "--reason", "not ours")
    assert sites.hq.event_count() == before


@pytest.mark.parametrize("mine_too", [False, True])
def test_replay_of_another_sites_job_is_refused_and_writes_nothing(
    sites: Sites, mine_too: bool
) -> None:
    before = sites.hq.event_count()
    chosen = [sites.hq_dead] if mine_too else []

    refused = sites.hq.fails(45, "replay", *chosen, sites.enclave_dead, "--reason", "again")

    assert (
        f"job {sites.enclave_dead} belongs to site 'enclave': only its own site may replay it"
    ) in refused.stderr
    assert sites.hq.event_count() == before  # not even this site's own job of the batch


def test_replay_by_type_takes_only_this_sites_jobs(sites: Sites) -> None:
    result = sites.hq.ok(
        "replay",
        "--type",
        "feed-refresh",
        "--since",
        "2020-01-01T00:00Z",
        "--reason",
        "mirror back",
        "--json",
    )

    [row] = json.loads(result.stdout)
    assert row["job"] == sites.hq_dead and row["replay"] is not None
    assert ids_of(sites.hq.jobs("--origin", "enclave")) == sites.enclave_jobs  # none added


# --- the engine ---------------------------------------------------------------------------------


def test_work_runs_only_this_sites_jobs(sites: Sites) -> None:
    done = json.loads(sites.hq.ok("work", "--until-idle", "--json").stdout)

    assert done["started"] == 1
    assert [j["state"] for j in sites.hq.jobs("--state", "succeeded")] == ["succeeded"]
    [still] = sites.hq.jobs("--origin", "enclave", "--state", "queued")
    assert still["job_id"] == sites.enclave_queued and still["attempts"] == 0
