"""Metric families and their Prometheus text exposition, format 0.0.4 (pure).

``CATALOG`` names every metric orchd exports, with its type and help; the dashboard and alert
rules in ``tools/`` may name only these (a test checks). ``render`` writes families in catalog
order: ``# HELP`` and ``# TYPE`` once each, then the samples, label values escaped as the format
requires (backslash, double quote, newline).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

# run durations, seconds: a feed refresh takes seconds to minutes, a full rescan hours
DURATION_BOUNDS: tuple[int, ...] = (1, 5, 15, 60, 300, 900, 3600, 14400)

CATALOG: dict[str, tuple[str, str]] = {
    "orchd_info": ("gauge", "Always 1; the site and orchd version as labels."),
    "orchd_jobs": ("gauge", "This site's jobs by type, source and state."),
    "orchd_queue_depth": ("gauge", "Jobs waiting to run: queued, waiting, throttled, retry_wait."),
    "orchd_jobs_throttled": ("gauge", "Throttled jobs by the limit that holds them."),
    "orchd_dead_letter_jobs": ("gauge", "Jobs in the dead-letter state (dead)."),
    "orchd_runs_active": ("gauge", "Runs leased or running."),
    "orchd_leases_stalled": ("gauge", "Open runs whose lease expired without a heartbeat."),
    "orchd_runs_total": ("counter", "Finished runs by job type and outcome."),
    "orchd_retries_total": ("counter", "Finished runs that were a retry (attempt 2 or later)."),
    "orchd_run_duration_seconds": ("histogram", "Run durations, start to end, by job type."),
    "orchd_spool_rejections_total": ("counter", "Spool requests rejected."),
    "orchd_bundle_exports_total": ("counter", "Bundles exported."),
    "orchd_bundle_imports_total": ("counter", "Bundles imported."),
    "orchd_bundle_forks_total": (
        "counter",
        "Forks recorded: an origin signed two histories (bundle.forked; an alarm).",
    ),
    "orchd_bundle_refusals_total": (
        "counter",
        "Bundles from the inbox refused (quarantined), by the error that refused them.",
    ),
    "orchd_peer_last_import_timestamp_seconds": (
        "gauge",
        "When the newest bundle from each peer was imported (Unix time).",
    ),
    "orchd_peer_last_export_timestamp_seconds": (
        "gauge",
        "When the newest bundle for each peer was exported (Unix time).",
    ),
    "orchd_peer_last_receipt_timestamp_seconds": (
        "gauge",
        "When each peer's newest receipt for this site's bundles was made (Unix time).",
    ),
    "orchd_feed_last_success_timestamp_seconds": (
        "gauge",
        "When the newest job of each source and job type succeeded (Unix time).",
    ),
    "orchd_ledger_head_seq": ("gauge", "The newest event held of each origin."),
    "orchd_storage_degraded": (
        "gauge",
        "1 while the daemon cannot write its ledger (full disk, I/O errors), else 0.",
    ),
    "orchd_loop_longest_tick_seconds": (
        "gauge",
        "The daemon loop's longest stretch of work between two waits since it started.",
    ),
    "orchd_engine_longest_record_delay_seconds": (
        "gauge",
        "The longest an engine record (a run's end, start or lease) waited to be committed since "
        "the daemon started, as while an import held the ledger's writer.",
    ),
    "orchd_ledger_file_ok": (
        "gauge",
        "0 when the daemon's last whole-file check (quick_check) found a damaged page, else 1.",
    ),
}

Labels = tuple[tuple[str, str], ...]


class RunTally(NamedTuple):
    """This site's finished runs of one job type and outcome."""

    job_type: str
    outcome: str
    runs: int
    retries: int  # of them, attempt 2 or later
    timed: int  # of them, with a start and an end time (the histogram's count)
    seconds: float  # their durations summed
    buckets: tuple[int, ...]  # how many lasted at most each of DURATION_BOUNDS


@dataclass(frozen=True, slots=True)
class Sample:
    labels: Labels
    value: float
    suffix: str = ""  # "_bucket", "_sum", "_count" of a histogram


@dataclass(slots=True)
class Families:
    """Samples gathered by metric name; ``render`` writes them."""

    samples: dict[str, list[Sample]] = field(default_factory=dict)

    def add(self, name: str, value: float, **labels: str | None) -> None:
        if name not in CATALOG:
            raise KeyError(f"{name} is not in the metric catalog")
        self.samples.setdefault(name, []).append(Sample(_labels(labels), value))

    def declare(self, name: str) -> None:
        """Export ``name`` even with no samples (its HELP and TYPE lines)."""
        self.samples.setdefault(name, [])

    def histogram(
        self, name: str, buckets: Sequence[int], total: float, count: int, **labels: str | None
    ) -> None:
        """``buckets``: cumulative counts at each of ``DURATION_BOUNDS``."""
        base = _labels(labels)
        found = self.samples.setdefault(name, [])
        for bound, seen in zip(DURATION_BOUNDS, buckets, strict=True):
            found.append(Sample((*base, ("le", str(bound))), seen, "_bucket"))
        found.append(Sample((*base, ("le", "+Inf")), count, "_bucket"))
        found.append(Sample(base, total, "_sum"))
        found.append(Sample(base, count, "_count"))


def render(families: Families) -> str:
    lines = []
    for name, (kind, text) in CATALOG.items():
        if name not in families.samples:
            continue
        lines += [f"# HELP {name} {text}", f"# TYPE {name} {kind}"]
        for sample in families.samples[name]:
            lines.append(f"{name}{sample.suffix}{_format_labels(sample.labels)} {_value(sample)}")
    return "\n".join(lines) + "\n"


def samples(families: Families) -> list[dict[str, object]]:
    """Every sample as JSON: name (with a histogram's suffix), type, labels, value."""
    return [
        {
            "name": name + sample.suffix,
            "type": kind,
            "labels": dict(sample.labels),
            "value": sample.value,
        }
        for name, (kind, _text) in CATALOG.items()
        for sample in families.samples.get(name, ())
    ]


def _labels(labels: Mapping[str, str | None]) -> Labels:
    return tuple((key, "" if value is None else value) for key, value in labels.items())


def _format_labels(labels: Iterable[tuple[str, str]]) -> str:
    text = ",".join(f'{key}="{_escape(value)}"' for key, value in labels)
    return "{" + text + "}" if text else ""


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _value(sample: Sample) -> str:
    value = sample.value
    if isinstance(value, int) or (math.isfinite(value) and value == int(value)):
        return str(int(value))
    return repr(value)
