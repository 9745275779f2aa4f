"""Metric families render as Prometheus text 0.0.4: catalog order, HELP and TYPE once, escaped
label values, histograms as buckets, sum and count."""

from __future__ import annotations

import pytest

from orchd.core import metrics
from orchd.core.metrics import CATALOG, Families


def test_families_render_in_catalog_order_with_help_and_type_once() -> None:
    families = Families()
    families.add("orchd_runs_active", 2)
    families.add("orchd_info", 1, site="hq", version="1.0")
    families.add("orchd_runs_active", 3)

    assert metrics.render(families) == (
        f"# HELP orchd_info {CATALOG['orchd_info'][1]}\n"
        "# TYPE orchd_info gauge\n"
        'orchd_info{site="hq",version="1.0"} 1\n'
        f"# HELP orchd_runs_active {CATALOG['orchd_runs_active'][1]}\n"
        "# TYPE orchd_runs_active gauge\n"
        "orchd_runs_active 2\n"
        "orchd_runs_active 3\n"
    )


def test_a_declared_family_without_samples_has_only_its_help_and_type() -> None:
    families = Families()
    families.declare("orchd_storage_degraded")

    assert metrics.render(families).splitlines() == [
        f"# HELP orchd_storage_degraded {CATALOG['orchd_storage_degraded'][1]}",
        "# TYPE orchd_storage_degraded gauge",
    ]


def test_label_values_are_escaped_and_none_is_empty() -> None:
    families = Families()
    families.add("orchd_jobs", 4, job_type='a"b', source=None, state="back\\slash\nnext")

    assert metrics.render(families).splitlines()[-1] == (
        'orchd_jobs{job_type="a\\"b",source="",state="back\\\\slash\\nnext"} 4'
    )


@pytest.mark.parametrize(
    ("value", "text"), [(7, "7"), (7.0, "7"), (0.25, "0.25"), (1e20, "100000000000000000000")]
)
def test_whole_values_are_written_as_integers_and_others_as_floats(value: float, text: str) -> None:
    families = Families()
    families.add("orchd_ledger_head_seq", value, origin="hq")

    assert (
        metrics.render(families).splitlines()[-1] == f'orchd_ledger_head_seq{{origin="hq"}} {text}'
    )


def test_a_histogram_has_cumulative_buckets_an_inf_bucket_a_sum_and_a_count() -> None:
    families = Families()
    families.histogram(
        "orchd_run_duration_seconds", (0, 1, 1, 2, 2, 3, 3, 3), 4000.5, 4, job_type="scan"
    )

    samples = metrics.render(families).splitlines()[2:]
    buckets = [
        f'orchd_run_duration_seconds_bucket{{job_type="scan",le="{le}"}}'
        for le in [*metrics.DURATION_BOUNDS, "+Inf"]
    ]
    assert samples == [
        *(f"{name} {n}" for name, n in zip(buckets, (0, 1, 1, 2, 2, 3, 3, 3, 4), strict=True)),
        'orchd_run_duration_seconds_sum{job_type="scan"} 4000.5',
        'orchd_run_duration_seconds_count{job_type="scan"} 4',
    ]


def test_a_histogram_needs_a_count_for_every_bound() -> None:
    with pytest.raises(ValueError, match="zip"):
        Families().histogram("orchd_run_duration_seconds", (1, 2), 0, 2, job_type="scan")


def test_a_metric_outside_the_catalog_is_refused() -> None:
    with pytest.raises(KeyError, match="orchd_made_up is not in the metric catalog"):
        Families().add("orchd_made_up", 1)


def test_samples_as_json_name_each_with_its_suffix_type_labels_and_value() -> None:
    found = Families()
    found.add("orchd_runs_active", 2)
    found.histogram("orchd_run_duration_seconds", [0] * 8, 1.5, 1, job_type="rescan")
    found.add("orchd_info", 1, site="hq", version="1.0")  # the catalog's order, not the adding's
    samples = metrics.samples(found)
    assert samples[0] == {
        "name": "orchd_info",
        "type": "gauge",
        "labels": {"site": "hq", "version": "1.0"},
        "value": 1,
    }
    assert samples[1] == {"name": "orchd_runs_active", "type": "gauge", "labels": {}, "value": 2}
    buckets = [s for s in samples if s["name"] == "orchd_run_duration_seconds_bucket"]
    assert len(buckets) == 9 and buckets[-1]["labels"] == {"job_type": "rescan", "le": "+Inf"}
    assert samples[-2:] == [
        {
            "name": "orchd_run_duration_seconds_sum",
            "type": "histogram",
            "labels": {"job_type": "rescan"},
            "value": 1.5,
        },
        {
            "name": "orchd_run_duration_seconds_count",
            "type": "histogram",
            "labels": {"job_type": "rescan"},
            "value": 1,
        },
    ]
