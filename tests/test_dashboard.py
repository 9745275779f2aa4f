"""The Grafana dashboard and the Prometheus alert rules in tools/ (runbook: docs/OPERATIONS.md).

Grafana can import the dashboard; every metric either file names is in ``CATALOG`` and in real
``orchd metrics`` output, and every label it names is on those series (or added by Prometheus on
scrape). Where promtool is installed it checks the rules, parses every panel query and unit-tests
when each alert fires.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from orchd.adapters.ledger import SqliteLedger
from orchd.adapters.system import OsEntropy, SystemClock
from orchd.core import drafts
from orchd.core.metrics import CATALOG, render
from orchd.ops import metrics as metrics_ops
from tests.builders import ACTOR
from tests.integration.conftest import Orchd

ROOT = Path(__file__).parents[1]
DASHBOARD_PATH = ROOT / "tools" / "grafana" / "orchd-dashboard.json"
ALERTS_PATH = ROOT / "tools" / "prometheus" / "orchd-alerts.yml"
OPERATIONS_PATH = ROOT / "docs" / "OPERATIONS.md"
DASHBOARD: dict[str, Any] = json.loads(DASHBOARD_PATH.read_text())
RULES: list[dict[str, Any]] = [
    rule for group in yaml.safe_load(ALERTS_PATH.read_text())["groups"] for rule in group["rules"]
]
REQUIRED_ALERTS = (
    "OrchdQueueDepthHigh",
    "OrchdDeadLetterGrowing",
    "OrchdFailureRateBurning",
    "OrchdLeaseStalled",
    "OrchdThrottledSustained",
    "OrchdPeerBundlesStale",
    "OrchdStorageDegraded",
    "OrchdFeedStale",
)
SCRAPE_LABELS = frozenset({"instance", "job"})  # Prometheus adds them to every scraped series
# exported only while the daemon runs (the file check: once its first check is done)
DAEMON_ONLY = frozenset({"orchd_storage_degraded", "orchd_ledger_file_ok"})
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(PROMTOOL is None, reason="promtool is not on PATH")

# --- a small PromQL identifier extractor --------------------------------------------------------

PROMQL_WORDS = frozenset(
    """
    sum min max avg group stddev stdvar count count_values bottomk topk quantile limitk limit_ratio
    by without on ignoring group_left group_right bool and or unless offset start end inf nan atan2
    abs absent absent_over_time ceil changes clamp clamp_max clamp_min day_of_month day_of_week
    day_of_year days_in_month delta deriv exp floor histogram_avg histogram_count
    histogram_fraction histogram_quantile histogram_stddev histogram_stdvar histogram_sum
    holt_winters double_exponential_smoothing hour idelta increase irate label_join label_replace
    ln log2 log10 minute month predict_linear rate resets round scalar sgn sort sort_desc
    sort_by_label sort_by_label_desc sqrt time timestamp vector year avg_over_time min_over_time
    max_over_time sum_over_time count_over_time quantile_over_time stddev_over_time
    stdvar_over_time last_over_time present_over_time mad_over_time acos acosh asin asinh atan
    atanh cos cosh sin sinh tan tanh deg rad pi
    """.split()  # noqa: SIM905 - a word list reads better than 110 quoted strings
)
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")
_STRING_OR_COMMENT = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`|#[^\n]*')
_MATCHERS = re.compile(r"\{[^}]*\}")
_RANGE = re.compile(r"\[[^\]]*\]")
_LABEL_LIST = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)", re.I)
_IDENTIFIER = re.compile(r"(?<![\w:.$])[a-zA-Z_:][a-zA-Z0-9_:]*")
_MATCHER_LABEL = re.compile(r"([a-zA-Z_]\w*)\s*(?:=~|!~|!=|=)")
_LEGEND_LABEL = re.compile(r"\{\{\s*(\w+)\s*\}\}")
_TEMPLATE_LABEL = re.compile(r"\$labels\.(\w+)")


def _code(expr: str) -> str:
    """The expression without its strings and comments."""
    return _STRING_OR_COMMENT.sub(" ", expr)


def metric_names(expr: str) -> set[str]:
    """The series names EXPR selects: not functions, keywords, labels, strings or durations."""
    text = _LABEL_LIST.sub(" ", _RANGE.sub(" ", _MATCHERS.sub(" ", _code(expr))))
    return {word for word in _IDENTIFIER.findall(text) if word.lower() not in PROMQL_WORDS}


def label_names(expr: str) -> set[str]:
    """The label names EXPR matches on or groups by."""
    text = _code(expr)
    found = {name for group in _MATCHERS.findall(text) for name in _MATCHER_LABEL.findall(group)}
    for names in _LABEL_LIST.findall(text):
        found.update(name.strip() for name in names.split(",") if name.strip())
    return found - {"__name__"}


def family(name: str) -> str | None:
    """The CATALOG family whose series NAME is; None if orchd exports no series of that name."""
    kind = CATALOG.get(name, ("", ""))[0]
    if kind:
        return name if kind != "histogram" else None  # a histogram's series carry a suffix
    for suffix in HISTOGRAM_SUFFIXES:
        base = name.removesuffix(suffix)
        if base != name and CATALOG.get(base, ("", ""))[0] == "histogram":
            return base
    return None


def unknown_metrics(expr: str) -> set[str]:
    return {name for name in metric_names(expr) if family(name) is None}


# --- what the two files ask Prometheus -----------------------------------------------------------


def _queries() -> Iterator[Any]:
    """(expression, labels named beside it: legends, annotations, the variable's label)."""
    for panel in DASHBOARD["panels"]:
        for target in panel["targets"]:
            legend = set(_LEGEND_LABEL.findall(target.get("legendFormat", "")))
            name = f"panel {panel['id']} {target['refId']}"
            yield pytest.param(target["expr"], legend, id=name)
    for variable in DASHBOARD["templating"]["list"]:
        if variable["type"] == "query":
            query = variable["query"]
            text = query["query"] if isinstance(query, dict) else query
            match = re.fullmatch(r"label_values\((.+),\s*(\w+)\)", text.strip())
            assert match is not None, text
            yield pytest.param(match[1], {match[2]}, id=f"variable {variable['name']}")
    for rule in RULES:
        text = " ".join(str(value) for value in rule["annotations"].values())
        yield pytest.param(rule["expr"], set(_TEMPLATE_LABEL.findall(text)), id=rule["alert"])


QUERIES = list(_queries())


# --- (a) the dashboard imports -------------------------------------------------------------------


def test_dashboard_has_the_top_level_fields_grafana_imports() -> None:
    assert isinstance(DASHBOARD["title"], str) and DASHBOARD["title"]
    assert re.fullmatch(r"[a-zA-Z0-9_-]{1,40}", DASHBOARD["uid"])
    for key in ("schemaVersion", "version"):
        assert type(DASHBOARD[key]) is int, key
    assert DASHBOARD["schemaVersion"] >= 36  # the panels' datasource is an object {type, uid}
    assert isinstance(DASHBOARD["panels"], list) and DASHBOARD["panels"]
    assert set(DASHBOARD["time"]) == {"from", "to"}
    assert isinstance(DASHBOARD["refresh"], str) and "orchd" in DASHBOARD["tags"]
    ids = [panel["id"] for panel in DASHBOARD["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"


def test_dashboard_lets_the_operator_choose_the_prometheus_and_the_instance() -> None:
    variables = {variable["name"]: variable for variable in DASHBOARD["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    assert variables["instance"]["type"] == "query"
    assert variables["instance"]["datasource"]["uid"] == "${datasource}"


@pytest.mark.parametrize("panel", DASHBOARD["panels"], ids=lambda panel: f"panel {panel['id']}")
def test_every_panel_has_a_type_a_place_and_queries(panel: dict[str, Any]) -> None:
    assert type(panel["id"]) is int
    assert panel["type"] in {"timeseries", "stat", "table", "bargauge", "gauge"}
    assert panel["title"] and panel["description"]  # written for the operator reading it
    assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
    place = panel["gridPos"]
    assert all(type(place[key]) is int for key in "hwxy"), place
    assert place["h"] > 0 and place["w"] > 0 and place["x"] >= 0 and place["y"] >= 0, place
    assert place["w"] <= 24 and place["x"] + place["w"] <= 24, place
    targets = panel["targets"]
    assert targets, "a panel without a query shows nothing"
    for target in targets:
        assert isinstance(target["expr"], str) and target["expr"].strip()
        assert isinstance(target["refId"], str) and target["refId"]
        assert isinstance(target["legendFormat"], str)
    ref_ids = [target["refId"] for target in targets]
    assert len(ref_ids) == len(set(ref_ids)), "refId must be unique within a panel"


def test_no_two_panels_overlap() -> None:
    cells: dict[tuple[int, int], int] = {}
    for panel in DASHBOARD["panels"]:
        place = panel["gridPos"]
        for x in range(place["x"], place["x"] + place["w"]):
            for y in range(place["y"], place["y"] + place["h"]):
                assert (x, y) not in cells, (panel["id"], cells.get((x, y)))
                cells[x, y] = panel["id"]


# --- (b) metric names ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        ("orchd_queue_depth", {"orchd_queue_depth"}),
        ('sum by (state) (orchd_jobs{instance=~"$instance",state!="x"})', {"orchd_jobs"}),
        ("sum(rate(orchd_runs_total[5m])) without (job_type) / 2e3", {"orchd_runs_total"}),
        ('label_replace(orchd_info, "dst", "fake_metric", "src", "(.*)")', {"orchd_info"}),
        ("orchd_jobs * on (instance) group_left (site) orchd_info", {"orchd_jobs", "orchd_info"}),
        (
            "time() - orchd_feed_last_success_timestamp_seconds > 2 * 86400",
            {"orchd_feed_last_success_timestamp_seconds"},
        ),
        ("delta(orchd_dead_letter_jobs[1h] offset 1d) > bool 0", {"orchd_dead_letter_jobs"}),
        (
            "absent(orchd_info) or vector(0) unless scalar(orchd_runs_active)",
            {
                "orchd_info",
                "orchd_runs_active",
            },
        ),
        (
            "histogram_quantile(0.95, sum by (job_type, le) (rate(x_bucket[$__rate_interval])))",
            {"x_bucket"},
        ),
        ("orchd_queue_depth # orchd_not_a_metric in a comment", {"orchd_queue_depth"}),
        (
            "SUM BY (cause) (orchd_jobs_throttled) AND orchd_jobs_throttled > Inf",
            {"orchd_jobs_throttled"},
        ),
    ],
)
def test_extractor_names_the_series_an_expression_selects(expr: str, names: set[str]) -> None:
    assert metric_names(expr) == names


def test_extractor_finds_a_misspelt_metric() -> None:
    assert unknown_metrics("sum(rate(orchd_runs_total[5m]))") == set()
    assert unknown_metrics("sum by (outcome) (rate(orchd_run_total[5m]))") == {"orchd_run_total"}
    quantile = "histogram_quantile(0.5, sum by (le) (rate(orchd_run_duration_second_bucket[1h])))"
    assert unknown_metrics(quantile) == {"orchd_run_duration_second_bucket"}


def test_histogram_suffixes_belong_to_histograms_only() -> None:
    assert family("orchd_run_duration_seconds_bucket") == "orchd_run_duration_seconds"
    assert family("orchd_run_duration_seconds_count") == "orchd_run_duration_seconds"
    assert family("orchd_run_duration_seconds") is None  # the bare name has no series
    assert family("orchd_queue_depth_count") is None  # a gauge has no _count
    assert family("orchd_queue_depth") == "orchd_queue_depth"


def test_label_names_come_from_matchers_and_groupings() -> None:
    expr = 'sum by (job_type) (rate(m{outcome=~"a|b", instance="x,y=z"}[5m])) * on (peer) n'
    assert label_names(expr) == {"job_type", "outcome", "instance", "peer"}


@pytest.mark.parametrize(("expr", "labels"), QUERIES)
def test_every_query_names_only_catalog_metrics(expr: str, labels: set[str]) -> None:
    assert metric_names(expr), "a query that selects no orchd metric"
    assert unknown_metrics(expr) == set(), f"not in orchd.core.metrics.CATALOG: {expr}"


# --- (c) the alert rules -------------------------------------------------------------------------


def test_alert_rules_hold_every_required_alert_once() -> None:
    names = [rule["alert"] for rule in RULES]
    assert len(names) == len(set(names))
    assert set(REQUIRED_ALERTS) <= set(names)
    runbooks = [rule["annotations"]["runbook"] for rule in RULES]
    assert len(runbooks) == len(set(runbooks)), "each alert has its own runbook section"


@pytest.mark.parametrize("rule", RULES, ids=lambda rule: rule["alert"])
def test_every_alert_has_an_expression_a_severity_and_a_runbook(rule: dict[str, Any]) -> None:
    assert isinstance(rule["expr"], str) and rule["expr"].strip()
    assert re.fullmatch(r"(\d+[smhdwy])+", rule["for"]), rule["for"]
    assert rule["labels"]["severity"] in {"critical", "warning", "info"}
    annotations = rule["annotations"]
    assert annotations["summary"].strip() and annotations["description"].strip()
    assert re.fullmatch(r"docs/OPERATIONS\.md#[a-z0-9]+(-[a-z0-9]+)*", annotations["runbook"])


def _anchors(markdown: str) -> set[str]:
    """GitHub's heading anchors, and explicit ``{#id}`` or ``id="..."`` ones."""
    found = set(re.findall(r'\{#([\w-]+)\}|id="([\w-]+)"', markdown))
    anchors = {name for pair in found for name in pair if name}
    for heading in re.findall(r"^#{1,6}\s+(.+?)\s*$", markdown, re.M):
        text = re.sub(r"\s*\{#[\w-]+\}$", "", heading).lower()
        anchors.add(re.sub(r"[^\w\- ]", "", text).replace(" ", "-"))
    return anchors


def test_every_runbook_points_at_a_section_of_the_operations_guide() -> None:
    anchors = _anchors(OPERATIONS_PATH.read_text())
    runbooks = [rule["annotations"]["runbook"] for rule in RULES]
    assert [url for url in runbooks if url.partition("#")[2] not in anchors] == []


# --- (d) promtool --------------------------------------------------------------------------------


def _promtool(*args: str | Path) -> str:
    assert PROMTOOL is not None
    done = subprocess.run(
        [PROMTOOL, *map(str, args)], capture_output=True, text=True, check=False, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@needs_promtool
def test_promtool_checks_the_alert_rules() -> None:
    assert "SUCCESS" in _promtool("check", "rules", ALERTS_PATH)


@needs_promtool
def test_promtool_parses_every_panel_query(tmp_path: Path) -> None:
    variables = {"$instance": ".*", "$__range": "1d", "$__rate_interval": "5m"}
    rules = []
    for panel in DASHBOARD["panels"]:
        for target in panel["targets"]:
            expr = target["expr"]
            for variable, value in variables.items():
                expr = expr.replace(variable, value)
            assert "$" not in expr, f"a Grafana variable this test does not know: {expr}"
            rules.append({"record": f"panel_{panel['id']}_{target['refId']}", "expr": expr})
    path = tmp_path / "panels.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "panels", "rules": rules}]}))
    assert "SUCCESS" in _promtool("check", "rules", path)


HQ = {"instance": "hq:9187", "job": "orchd"}
DAY_S = 86400


def _series(name: str, values: str, **labels: str) -> dict[str, str]:
    text = ",".join(f'{key}="{value}"' for key, value in {**HQ, **labels}.items())
    return {"series": f"{name}{{{text}}}", "values": values}


def _fires(at: str, alert: str, *labels: dict[str, str]) -> dict[str, Any]:
    expected = [{"exp_labels": {**HQ, **extra}} for extra in labels]
    return {"eval_time": at, "alertname": alert, "exp_alerts": expected}


WARNING, CRITICAL = {"severity": "warning"}, {"severity": "critical"}
ALERT_CASES: list[dict[str, Any]] = [
    {
        "interval": "1m",
        "input_series": [
            _series("orchd_queue_depth", "60x40"),
            _series("orchd_dead_letter_jobs", "0x30 1x60"),
            _series("orchd_leases_stalled", "0 0 1x20"),
            _series("orchd_storage_degraded", "0 0 1x10"),
            _series("orchd_ledger_file_ok", "1 1 0x10"),
            _series("orchd_jobs_throttled", "2x40", cause="rate"),
            _series("orchd_jobs_throttled", "1x40", cause="paused"),
            _series("orchd_runs_total", "0+1x60", job_type="feed-refresh", outcome="succeeded"),
            _series("orchd_runs_total", "0+1x60", job_type="feed-refresh", outcome="timed_out"),
            _series("orchd_runs_total", "0+1x60", job_type="rescan", outcome="succeeded"),
            _series("orchd_runs_total", "5x60", job_type="mirror-sync", outcome="failed"),
            _series("orchd_bundle_refusals_total", "0x5 1x30", reason="SignatureInvalid"),
        ],
        "alert_rule_test": [
            _fires("20m", "OrchdQueueDepthHigh"),  # pending: 30 minutes not reached
            _fires("35m", "OrchdQueueDepthHigh", WARNING),
            _fires("20m", "OrchdDeadLetterGrowing"),
            _fires("40m", "OrchdDeadLetterGrowing", WARNING),
            _fires("4m", "OrchdLeaseStalled"),
            _fires("8m", "OrchdLeaseStalled", CRITICAL),
            _fires("4m", "OrchdStorageDegraded", CRITICAL),
            _fires("3m", "OrchdLedgerFileDamaged", CRITICAL),
            _fires("20m", "OrchdThrottledSustained"),
            _fires("35m", "OrchdThrottledSustained", WARNING),
            # half the feed refreshes time out; rescan never fails; mirror-sync ran no run at all
            _fires("10m", "OrchdFailureRateBurning"),
            _fires("50m", "OrchdFailureRateBurning", {**WARNING, "job_type": "feed-refresh"}),
            _fires("10m", "OrchdBundleRefused", {**WARNING, "reason": "SignatureInvalid"}),
        ],
    },
    {
        "interval": "1m",
        "input_series": [
            _series("orchd_queue_depth", "10x40"),
            _series("orchd_dead_letter_jobs", "3x90"),
            _series("orchd_leases_stalled", "0x20"),
            _series("orchd_storage_degraded", "0x20"),
            _series("orchd_ledger_file_ok", "1x20"),
            _series("orchd_runs_total", "0+1x60", job_type="feed-refresh", outcome="succeeded"),
        ],
        "alert_rule_test": [
            _fires("35m", "OrchdQueueDepthHigh"),
            _fires("80m", "OrchdDeadLetterGrowing"),  # dead jobs, but no new ones
            _fires("15m", "OrchdLeaseStalled"),
            _fires("15m", "OrchdStorageDegraded"),
            _fires("15m", "OrchdLedgerFileDamaged"),
            _fires("50m", "OrchdFailureRateBurning"),
        ],
    },
    {
        "interval": "2m",  # a sample every 5 minutes at least, or the series goes stale
        "input_series": [
            _series("orchd_peer_last_import_timestamp_seconds", "0x2200", peer="enclave"),
            _series("orchd_peer_last_import_timestamp_seconds", f"{2 * DAY_S}x2200", peer="branch"),
            _series(
                "orchd_feed_last_success_timestamp_seconds",
                "0x2200",
                source="nvd",
                job_type="feed-refresh",
            ),
            _series(
                "orchd_feed_last_success_timestamp_seconds",
                f"{2 * DAY_S}x2200",
                source="osv",
                job_type="feed-refresh",
            ),
        ],
        "alert_rule_test": [
            _fires("2d", "OrchdPeerBundlesStale"),  # stale only from now on
            _fires("3d", "OrchdPeerBundlesStale", {**WARNING, "peer": "enclave"}),
            _fires(
                "3d", "OrchdFeedStale", {**WARNING, "source": "nvd", "job_type": "feed-refresh"}
            ),
        ],
    },
]


@needs_promtool
def test_promtool_unit_tests_when_each_alert_fires(tmp_path: Path) -> None:
    groups = yaml.safe_load(ALERTS_PATH.read_text())["groups"]
    for rule in (rule for group in groups for rule in group["rules"]):
        del rule["annotations"]  # promtool would compare their text; expressions are tested here
    rules = tmp_path / "alerts.yml"
    rules.write_text(yaml.safe_dump({"groups": groups}))
    tested = {case["alertname"] for test in ALERT_CASES for case in test["alert_rule_test"]}
    assert tested == {rule["alert"] for rule in RULES}, "every alert has a case"
    cases = tmp_path / "alerts_test.yml"
    unit = {"rule_files": [str(rules)], "evaluation_interval": "1m", "tests": ALERT_CASES}
    cases.write_text(yaml.safe_dump(unit))
    assert "SUCCESS" in _promtool("test", "rules", cases)


# --- (e) real output ------------------------------------------------------------------------------


@dataclass
class Exported:
    """What ``orchd metrics`` text holds: the families declared, the labels of those sampled."""

    declared: set[str] = field(default_factory=set)
    labels: dict[str, set[str]] = field(default_factory=dict)  # of the families with samples

    def read(self, text: str) -> Exported:
        for parsed in text_string_to_metric_families(text):
            name = parsed.name + ("_total" if parsed.type == "counter" else "")  # as in CATALOG
            self.declared.add(name)
            if parsed.samples:
                self.labels[name] = {label for sample in parsed.samples for label in sample.labels}
        return self


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Exported:
    """What hq exports after a run, a paused source and a bundle exchange with enclave."""
    root = tmp_path_factory.mktemp("metrics")
    hq, enclave = Orchd(root / "hq"), Orchd(root / "enclave")
    hq.ok("init", "--site-id", "hq")
    enclave.ok("init", "--site-id", "enclave")
    hq.ok("keys", "export-public", str(root / "hq.pub"))
    enclave.ok("keys", "export-public", str(root / "enclave.pub"))
    enclave.ok(
        "keys", "trust", "hq", str(root / "hq.pub"), "--reason", "peer key exchanged by hand"
    )
    hq.ok(
        "keys",
        "trust",
        "enclave",
        str(root / "enclave.pub"),
        "--reason",
        "peer key exchanged by hand",
    )
    hq.submit("feed-refresh", "--source", "nvd")
    hq.ok("sources", "pause", "ghsa", "--reason", "upstream maintenance")
    hq.submit("feed-refresh", "--source", "ghsa")  # throttled: its source is paused
    hq.ok("work", "--until-idle", "--max-wait", "0")
    hq.ok("bundle", "export", "--peer", "enclave", "--out", str(root / "hq.orchkit"))
    enclave.ok("bundle", "import", str(root / "hq.orchkit"))
    enclave.ok("bundle", "export", "--peer", "hq", "--out", str(root / "enclave.orchkit"))
    hq.ok("bundle", "import", str(root / "enclave.orchkit"))  # with enclave's receipt
    quarantined = drafts.bundle_quarantined(
        ACTOR,
        at="2026-11-27T00:00:00.000Z",
        daemon_pid=4242,
        file="x.orchkit",
        problem="bad",
        error="SignatureInvalid",
    )
    hq.append([quarantined])
    by_cli = Exported().read(hq.ok("metrics").stdout)
    ledger = SqliteLedger.open(hq.ledger_path, SystemClock(), OsEntropy())
    try:  # what the daemon serves: the same families, and its storage state
        text = render(metrics_ops.collect(ledger, SystemClock(), degraded=False, file_ok=True))
        by_daemon = Exported().read(text)
    finally:
        ledger.close()
    assert by_daemon.declared == by_cli.declared | DAEMON_ONLY
    for name in DAEMON_ONLY:
        by_cli.declared.add(name)
        by_cli.labels[name] = by_daemon.labels[name]
    return by_cli


def test_every_metric_the_tools_name_is_in_real_output(exported: Exported) -> None:
    used = {str(family(name)) for query in QUERIES for name in metric_names(query.values[0])}
    assert sorted(used - exported.declared) == []
    assert sorted(used - set(exported.labels)) == [], "the label checks below need samples"


@pytest.mark.parametrize(("expr", "labels"), QUERIES)
def test_every_label_the_tools_name_is_on_real_series(
    exported: Exported, expr: str, labels: set[str]
) -> None:
    present = set(SCRAPE_LABELS)
    for name in metric_names(expr):
        present |= exported.labels.get(str(family(name)), set())
    assert (label_names(expr) | labels) - present == set(), expr
