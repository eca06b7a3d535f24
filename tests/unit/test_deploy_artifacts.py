"""The operator-facing files of docs/deploy/ agree with the code and with docs/operations.md.

- prometheus-alerts.yaml: every rule is a complete alert (expression, ``for``, severity, summary, description,
  runbook link), and every runbook link lands on a heading of docs/operations.md;
- grafana-dashboard.json: importable (the datasource and job/instance variables), every panel queries;
- both name only metrics that ``Metrics`` exposes, in the names a multiprocess scrape has;
- kubernetes.yaml parses, and its metrics wiring (port, settings, volume, annotations, PodMonitor, Service)
  agrees with itself;
- with promtool on PATH: the rules and every dashboard query parse as PromQL, and a few alerts fire (or stay
  silent) on made-up series as their runbook says. Skipped without it (Debian: the ``prometheus`` package).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections import Counter
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml
from prometheus_client import generate_latest
from prometheus_client.metrics import MetricWrapperBase

from usermgmt.adapters.metrics import Metrics

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "docs" / "deploy"
RULES = DEPLOY / "prometheus-alerts.yaml"
DASHBOARD = DEPLOY / "grafana-dashboard.json"
MANIFEST = DEPLOY / "kubernetes.yaml"
OPERATIONS = ROOT / "docs" / "operations.md"

METRIC_NAME = re.compile(r"\busermgmt_[a-z0-9_]+")
RUNBOOK = re.compile(r"docs/operations\.md#([\w-]+)$")
SEVERITIES = {"critical", "warning", "info"}
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(PROMTOOL is None, reason="promtool is not installed (Debian: prometheus)")


# --- helpers -------------------------------------------------------------------------------------------------------


def exposed_names() -> set[str]:
    """Every sample name a scrape of a fresh ``Metrics`` shows once each labelled family has one child.

    ``_created`` samples are left out: the metrics port serves the workers' multiprocess files, which have none.
    """
    metrics = Metrics()
    families = [v for v in vars(metrics).values() if isinstance(v, MetricWrapperBase)] + list(metrics.kpis.values())
    for family in families:
        labels = family._labelnames
        if labels:
            family.labels(*["x"] * len(labels))
    lines = generate_latest(metrics.registry).decode().splitlines()
    names = {re.split(r"[{ ]", line, maxsplit=1)[0] for line in lines if line and not line.startswith("#")}
    return {name for name in names if not name.endswith("_created")}


def alert_rules() -> list[dict[str, Any]]:
    document = yaml.safe_load(RULES.read_text())
    return [rule for group in document["groups"] for rule in group["rules"]]


def github_anchors(markdown: str) -> set[str]:
    """The anchors GitHub gives the headings of ``markdown``: lower case, punctuation dropped, spaces to hyphens,
    ``-1``, ``-2``... on repeats. Lines inside code fences are not headings."""
    anchors: set[str] = set()
    seen: Counter[str] = Counter()
    fenced = False
    for line in markdown.splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
            continue
        heading = re.match(r"#{1,6}\s+(.+?)\s*#*\s*$", line)
        if fenced or heading is None:
            continue
        slug = re.sub(r"[^\w\- ]", "", heading.group(1).strip().lower()).replace(" ", "-")
        anchors.add(f"{slug}-{seen[slug]}" if seen[slug] else slug)
        seen[slug] += 1
    return anchors


def dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())  # type: ignore[no-any-return]


def panels(board: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, those inside collapsed rows included."""
    for panel in board["panels"]:
        yield panel
        yield from panel.get("panels", [])


def dashboard_queries(board: dict[str, Any]) -> list[str]:
    """Every PromQL expression of the dashboard, its template variables' queries included."""
    queries = [target["expr"] for panel in panels(board) for target in panel.get("targets", [])]
    for variable in board["templating"]["list"]:
        if variable["type"] == "query":
            query = variable["query"]
            queries.append(query["query"] if isinstance(query, dict) else query)
    return queries


def as_promql(query: str) -> str:
    """A dashboard query with Grafana's variables replaced by values promtool accepts."""
    label_values = re.fullmatch(r"label_values\((.+), *\w+\)", query)
    if label_values:
        query = label_values.group(1)
    for variable, value in (("$__rate_interval", "5m"), ("$__interval", "1m"), ("$__range", "1h")):
        query = query.replace(variable, value)
    return re.sub(r"\$\w+", ".+", query)


def manifest() -> list[dict[str, Any]]:
    return [document for document in yaml.safe_load_all(MANIFEST.read_text()) if document is not None]


def document(kind: str) -> dict[str, Any]:
    (found,) = (d for d in manifest() if d["kind"] == kind)
    return found


# --- the alert rules -----------------------------------------------------------------------------------------------


def test_every_rule_is_a_complete_alert() -> None:
    rules = alert_rules()
    assert len(rules) >= 10
    for rule in rules:
        name = rule.get("alert")
        assert name, f"not an alert (recording rules belong in a file of their own): {rule}"
        assert rule["expr"].strip(), name
        assert re.fullmatch(r"\d+[smh]", str(rule["for"])), name
        assert rule["labels"]["severity"] in SEVERITIES, name
        for key in ("summary", "description", "runbook_url"):
            assert rule["annotations"][key].strip(), (name, key)
    names = [rule["alert"] for rule in rules]
    assert len(names) == len(set(names))


def test_every_runbook_link_lands_on_its_own_heading_of_the_operations_guide() -> None:
    anchors = github_anchors(OPERATIONS.read_text())
    links = {}
    for rule in alert_rules():
        found = RUNBOOK.search(rule["annotations"]["runbook_url"])
        assert found, rule["annotations"]["runbook_url"]
        assert found.group(1) in anchors, f"{rule['alert']}: no heading #{found.group(1)} in docs/operations.md"
        links[rule["alert"]] = found.group(1)
    assert len(set(links.values())) == len(links), "two alerts share a runbook section"


def test_the_required_alerts_exist() -> None:
    names = {rule["alert"] for rule in alert_rules()}
    assert {
        "UsermgmtHighErrorRate",
        "UsermgmtDatabaseUnavailable",
        "UsermgmtMetricsAbsent",
        "UsermgmtLoginFailureSpike",
        "UsermgmtRefreshTokenReuseDetected",
        "UsermgmtPasswordHashQueueSaturated",
        "UsermgmtOutboxBacklogOld",
        "UsermgmtKpiLoginSuccessRatioLow",
        "UsermgmtKpiAuthenticationLatencyHigh",
    } <= names


def test_the_github_anchors_follow_githubs_rules() -> None:
    markdown = "# Operations\n## Alerts: what each means\n```sh\n# not a heading\n```\n### `Usermgmt_X`\n## Metrics\n## Metrics\n"
    assert github_anchors(markdown) == {"operations", "alerts-what-each-means", "usermgmt_x", "metrics", "metrics-1"}


# --- metric names --------------------------------------------------------------------------------------------------


def test_the_exposition_has_the_names_of_a_multiprocess_scrape() -> None:
    names = exposed_names()
    assert {
        "usermgmt_problems_total",
        "usermgmt_http_request_duration_seconds_bucket",
        "usermgmt_http_request_duration_seconds_count",
        "usermgmt_password_hash_queue_depth",
        "usermgmt_kpi_login_success_ratio",
    } <= names
    assert not any(name.endswith("_created") for name in names)


@pytest.mark.parametrize("path", [RULES, DASHBOARD], ids=lambda p: p.name)
def test_every_metric_named_exists(path: Path) -> None:
    named = set(METRIC_NAME.findall(path.read_text()))
    assert named, "no metric named at all: the pattern is wrong"
    assert named - exposed_names() == set()


def test_the_operations_guide_lists_every_metric_family() -> None:
    guide = OPERATIONS.read_text()
    families = {re.sub(r"_(total|bucket|sum|count)$", "", name) for name in exposed_names()}
    assert {family for family in families if f"`{family}" not in guide} == set()


def test_the_dashboard_reads_every_metric_family() -> None:
    named = " ".join(dashboard_queries(dashboard()))
    families = {re.sub(r"_(total|bucket|sum|count)$", "", name) for name in exposed_names()}
    assert {family for family in families if family not in named} == set()


# --- the dashboard -------------------------------------------------------------------------------------------------


def test_the_dashboard_is_importable_with_datasource_and_target_variables() -> None:
    board = dashboard()
    assert board["schemaVersion"] >= 36
    assert board["uid"] and board["title"]
    assert board["id"] is None  # an import creates it
    variables = {variable["name"]: variable for variable in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    for name in ("job", "instance"):
        assert variables[name]["type"] == "query"
        assert variables[name]["datasource"]["uid"] == "${datasource}"


def test_every_panel_has_a_datasource_and_queries() -> None:
    board = dashboard()
    ids = []
    for panel in panels(board):
        ids.append(panel["id"])
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24, panel["title"]
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["expr"].strip() and target["refId"], panel["title"]
            assert target.get("datasource", panel["datasource"]) == panel["datasource"], panel["title"]
        if "usermgmt_kpi_" not in panel["targets"][0]["expr"]:
            assert 'job=~"$job"' in panel["targets"][0]["expr"], panel["title"]
    assert len(ids) == len(set(ids))


def test_every_kpi_gauge_is_a_stat_panel_with_thresholds() -> None:
    stats = {panel["targets"][0]["expr"]: panel for panel in panels(dashboard()) if panel["type"] == "stat"}
    targets = {
        "login_success_ratio": 0.995,
        "authentication_latency_seconds": 0.1,
        "mfa_adoption_ratio": 0.5,
        "retention_7d_ratio": 0.7,
        "password_reset_median_seconds": 120,
        "deletions_within_24h_ratio": 1.0,
    }
    for name in Metrics().kpis:
        (panel,) = (p for expr, p in stats.items() if f"usermgmt_kpi_{name}{{" in expr)
        steps = panel["fieldConfig"]["defaults"]["thresholds"]["steps"]
        if name in targets:
            assert [step["value"] for step in steps] == [None, targets[name]], name


# --- the Kubernetes manifest ---------------------------------------------------------------------------------------


def test_the_manifest_parses_into_the_documented_objects() -> None:
    kinds = [d["kind"] for d in manifest()]
    assert kinds == [
        "ConfigMap",
        "Job",
        "Deployment",
        "Service",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
        "PodMonitor",
    ]
    assert document("PodMonitor")["apiVersion"] == "monitoring.coreos.com/v1"


def test_the_metrics_port_settings_volume_and_annotations_agree() -> None:
    template = document("Deployment")["spec"]["template"]
    (container,) = template["spec"]["containers"]
    env = {variable["name"]: variable.get("value") for variable in container["env"]}
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    annotations = template["metadata"]["annotations"]

    assert str(ports["metrics"]) == env["USERMGMT_METRICS_PORT"] == annotations["prometheus.io/port"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/path"] == "/metrics"
    assert env["USERMGMT_METRICS_HOST"] == "0.0.0.0"  # noqa: S104 - read from the manifest, not bound
    assert "USERMGMT_METRICS_PORT" not in document("ConfigMap")["data"]  # the Job shares the ConfigMap

    # The folder is inside an emptyDir mount, never the mount point: `usermgmt serve` deletes and recreates it.
    folder = PurePosixPath(env["USERMGMT_METRICS_DIR"])
    volumes = {volume["name"]: volume for volume in template["spec"]["volumes"]}
    (mount,) = (m for m in container["volumeMounts"] if folder.is_relative_to(m["mountPath"]))
    assert folder != PurePosixPath(mount["mountPath"])
    assert "emptyDir" in volumes[mount["name"]]
    assert not mount.get("readOnly", False)


def test_the_service_does_not_expose_the_metrics_port() -> None:
    service = document("Service")["spec"]["ports"]
    assert [port["targetPort"] for port in service] == ["http"]


def test_the_pod_monitor_scrapes_the_server_pods_as_the_job_the_rules_expect() -> None:
    pod_monitor = document("PodMonitor")["spec"]
    labels = document("Deployment")["spec"]["template"]["metadata"]["labels"]
    assert pod_monitor["selector"]["matchLabels"].items() <= labels.items()
    assert [(e["port"], e["path"]) for e in pod_monitor["podMetricsEndpoints"]] == [("metrics", "/metrics")]
    job = labels[pod_monitor["jobLabel"]]
    jobs = {m for rule in alert_rules() for m in re.findall(r'\bjob="([^"]+)"', rule["expr"])}
    assert jobs == {job}


# --- promtool ------------------------------------------------------------------------------------------------------


def promtool(*args: str, cwd: Path) -> str:
    assert PROMTOOL is not None
    done = subprocess.run([PROMTOOL, *args], cwd=cwd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@needs_promtool
def test_promtool_accepts_the_rules(tmp_path: Path) -> None:
    promtool("check", "rules", str(RULES), cwd=tmp_path)


@needs_promtool
def test_promtool_accepts_every_dashboard_query(tmp_path: Path) -> None:
    queries = dashboard_queries(dashboard())
    rules = [{"record": f"dashboard:query_{i}", "expr": as_promql(query)} for i, query in enumerate(queries)]
    path = tmp_path / "dashboard-queries.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    promtool("check", "rules", str(path), cwd=tmp_path)


# Made-up series, one scrape a minute, and what the alerts make of them (promtool's rule unit tests).
ALERT_CASES = """
rule_files: [RULES]
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      # 10 requests/s, 5% of them 500 internal_error.
      - series: 'usermgmt_http_request_duration_seconds_count{job="usermgmt", instance="a", route="/api/v1/users/me", method="GET", status="200"}'
        values: '0+570x20'
      - series: 'usermgmt_http_request_duration_seconds_count{job="usermgmt", instance="a", route="/api/v1/users/me", method="GET", status="500"}'
        values: '0+30x20'
      - series: 'up{job="usermgmt", instance="a"}'
        values: '1x20'
    alert_rule_test:
      - eval_time: 4m
        alertname: UsermgmtHighErrorRate
        exp_alerts: []
      - eval_time: 12m
        alertname: UsermgmtHighErrorRate
        exp_alerts:
          - exp_labels: {severity: critical, job: usermgmt}
      - eval_time: 12m
        alertname: UsermgmtMetricsAbsent
        exp_alerts: []

  - interval: 1m
    input_series:
      # Pods out of the Service: no user traffic, only the probes' failing /readyz.
      - series: 'usermgmt_http_request_duration_seconds_count{job="usermgmt", instance="a", route="/readyz", method="GET", status="503"}'
        values: '0+12x20'
      - series: 'up{job="usermgmt", instance="a"}'
        values: '0x20'
      # Another pod, another job: /readyz failed for 15 s (3 probes), then recovered.
      - series: 'usermgmt_http_request_duration_seconds_count{job="blip", instance="b", route="/readyz", method="GET", status="200"}'
        values: '0+12x5 69+12x14'
      - series: 'usermgmt_http_request_duration_seconds_count{job="blip", instance="b", route="/readyz", method="GET", status="503"}'
        values: '0x5 3x15'
    alert_rule_test:
      - eval_time: 10m
        alertname: UsermgmtDatabaseUnavailable
        exp_alerts:
          - exp_labels: {severity: critical, job: usermgmt}
      - eval_time: 10m
        alertname: UsermgmtMetricsTargetDown
        exp_alerts:
          - exp_labels: {severity: warning, job: usermgmt, instance: a}
      - eval_time: 10m
        alertname: UsermgmtMetricsAbsent
        exp_alerts:
          - exp_labels: {severity: critical}

  - interval: 1m
    input_series:
      - series: 'usermgmt_refresh_token_reuse_detections_total{job="usermgmt", instance="a"}'
        values: '0x5 1x30'
      # No sign-in for an hour: the success-ratio gauge reads 0 for want of data, not an outage.
      - series: 'usermgmt_kpi_login_success_ratio{job="usermgmt", instance="a"}'
        values: '0x90'
      - series: 'usermgmt_sign_in_attempts_total{job="usermgmt", instance="a", method="password", outcome="success"}'
        values: '5x90'
      # Authentication at 120 ms on a 2-core pod with bcrypt cost 11.
      - series: 'usermgmt_kpi_authentication_latency_seconds{job="usermgmt", instance="a"}'
        values: '0.12x90'
    alert_rule_test:
      - eval_time: 8m
        alertname: UsermgmtRefreshTokenReuseDetected
        exp_alerts:
          - exp_labels: {severity: warning, job: usermgmt}
      - eval_time: 30m
        alertname: UsermgmtRefreshTokenReuseDetected
        exp_alerts: []
      - eval_time: 90m
        alertname: UsermgmtKpiLoginSuccessRatioLow
        exp_alerts: []
      - eval_time: 40m
        alertname: UsermgmtKpiAuthenticationLatencyHigh
        exp_alerts:
          - exp_labels: {severity: warning, job: usermgmt}

  - interval: 1m
    input_series:
      # Credential stuffing: 2 wrong passwords a second against 1 success, most of the rest rate-limited.
      - series: 'usermgmt_sign_in_attempts_total{job="usermgmt", instance="a", method="password", outcome="invalid_credentials"}'
        values: '0+120x50'
      - series: 'usermgmt_sign_in_attempts_total{job="usermgmt", instance="a", method="password", outcome="success"}'
        values: '0+60x50'
      - series: 'usermgmt_sign_in_attempts_total{job="usermgmt", instance="a", method="password", outcome="rate_limited"}'
        values: '0+600x50'
      - series: 'usermgmt_kpi_login_success_ratio{job="usermgmt", instance="a"}'
        values: '0.9x50'
    alert_rule_test:
      - eval_time: 25m
        alertname: UsermgmtLoginFailureSpike
        exp_alerts:
          - exp_labels: {severity: warning, job: usermgmt}
      - eval_time: 29m
        alertname: UsermgmtKpiLoginSuccessRatioLow
        exp_alerts: []
      - eval_time: 45m
        alertname: UsermgmtKpiLoginSuccessRatioLow
        exp_alerts:
          - exp_labels: {severity: warning, job: usermgmt}
"""


@needs_promtool
def test_the_alerts_fire_as_their_runbooks_say(tmp_path: Path) -> None:
    """When each alert fires and with which labels; the annotations' texts are left out of the comparison."""
    rules = yaml.safe_load(RULES.read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            del rule["annotations"]
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(rules))
    cases = tmp_path / "alert-cases.yaml"
    cases.write_text(ALERT_CASES.replace("[RULES]", "[rules.yaml]"))
    promtool("test", "rules", str(cases), cwd=tmp_path)
