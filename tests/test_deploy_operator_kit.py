"""The operator's kit under deploy/: the systemd units pass `systemd-analyze verify` (with their
binaries pointed at this build) and grant xdpexd capabilities, not root; the alert rules pass
`promtool check rules` and their unit tests (`promtool test rules`); and every metric the Grafana
dashboard and the rules query is one that /metrics really exports, scraped from a control plane
with xdpexd in AF_XDP mode behind it in the veth lab (the XDP and AF_XDP series exist only there)
and the persister's position written."""

from __future__ import annotations

import configparser
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from control_support import cleanup_dir, short_tmpdir
from dataplane_support import lab_up
from fastapi.testclient import TestClient
from xdpex.api import create_app
from xdpex.config import REPO_ROOT, Settings
from xdpex.persister import Persister
from xdpex_traffic.wire import PRICE_BAND, Gateway

DEPLOY = REPO_ROOT / "deploy"
PROMTOOL = "/usr/bin/promtool"
OP = {"Authorization": "Bearer xt_test_operator"}
UNITS = ("xdpexd@.service", "xdpex-control@.service", "xdpex-persister@.service")


def _tool(name: str) -> str:
    path = shutil.which(name) or (name if Path(name).exists() else None)
    if path is None:
        pytest.fail(f"{name} is not installed (provisioning/setup.sh installs it)")
    return path


def _unit(name: str) -> configparser.ConfigParser:
    cp = configparser.ConfigParser(strict=False, interpolation=None)
    cp.optionxform = str  # type: ignore[assignment,method-assign]
    cp.read_string((DEPLOY / "systemd" / name).read_text())
    return cp


def test_systemd_units_verify(tmp_path):
    analyze = _tool("systemd-analyze")
    for name in UNITS:  # the installed paths, pointed at this build for the check
        text = (DEPLOY / "systemd" / name).read_text()
        text = text.replace("/usr/local/bin/xdpexd", str(REPO_ROOT / "build/dataplane/xdpexd"))
        text = text.replace("/opt/xdpex/venv/bin/python", str(REPO_ROOT / ".venv/bin/python"))
        (tmp_path / name).write_text(text)
    for name in UNITS:
        inst = str(tmp_path / name.replace("@.", "@gw1."))
        r = subprocess.run([analyze, "verify", "--man=no", inst], capture_output=True, text=True)
        assert r.returncode == 0 and not r.stderr.strip(), f"{name}: {r.stderr}{r.stdout}"
    # a unit with a mistake is caught (the check is real)
    bad = (tmp_path / "xdpexd@.service").read_text().replace("ExecStart=", "ExecStart=/nope/x ")
    (tmp_path / "broken@.service").write_text(bad.replace("AmbientCapabilities", "AmbientCaps"))
    r = subprocess.run(
        [analyze, "verify", "--man=no", str(tmp_path / "broken@gw1.service")],
        capture_output=True,
        text=True,
    )
    assert r.returncode != 0 or "AmbientCaps" in r.stderr, r.stderr


def test_xdpexd_unit_runs_with_capabilities_not_root():
    svc = _unit("xdpexd@.service")["Service"]
    caps = set(svc["AmbientCapabilities"].split())
    assert caps == {"CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_BPF", "CAP_PERFMON", "CAP_IPC_LOCK"}
    assert set(svc["CapabilityBoundingSet"].split()) == caps
    assert svc["User"] != "root" and svc["NoNewPrivileges"] == "yes"
    assert svc["LimitMEMLOCK"] == "infinity"
    assert svc["CPUAffinity"].strip()
    assert "%i" in svc["EnvironmentFile"] and "%i" in svc["ExecStart"]  # one per instance
    for name in UNITS[1:]:
        s = _unit(name)["Service"]
        assert s["CapabilityBoundingSet"] == "" and s["User"] != "root", name


def test_alert_rules_check_and_unit_tests():
    prom = DEPLOY / "prometheus"
    r = subprocess.run(
        [_tool(PROMTOOL), "check", "rules", str(prom / "xdpex-rules.yml")],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    r = subprocess.run(
        [_tool(PROMTOOL), "test", "rules", "xdpex-rules.test.yml"],
        capture_output=True,
        text=True,
        cwd=prom,
    )
    assert r.returncode == 0 and "SUCCESS" in r.stdout, r.stdout + r.stderr
    # every alert has a unit test
    rules = yaml.safe_load((prom / "xdpex-rules.yml").read_text())
    alerts = {x["alert"] for g in rules["groups"] for x in g["rules"]}
    tested = {
        t["alertname"]
        for case in yaml.safe_load((prom / "xdpex-rules.test.yml").read_text())["tests"]
        for t in case["alert_rule_test"]
    }
    assert alerts <= tested, alerts - tested


# -- PromQL: the metric names of an expression ----------------------------------------------
_FUNCS = {
    "sum", "rate", "irate", "increase", "delta", "deriv", "histogram_quantile", "avg", "max",
    "min", "count", "topk", "bottomk", "abs", "clamp_min", "clamp_max", "by", "without", "on",
    "ignoring", "group_left", "group_right", "and", "or", "unless", "offset", "bool", "time",
    "vector", "scalar", "label_replace", "quantile", "stddev", "avg_over_time",
    "max_over_time", "min_over_time", "sum_over_time", "absent", "changes", "resets",
}  # fmt: skip


def promql_metrics(expr: str) -> set[str]:
    """Metric names an expression selects: identifiers that are not functions, keywords, label
    names (inside {} or the parentheses of by/without/on/ignoring) or durations."""
    e = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # string literals
    e = re.sub(r"\{[^}]*\}", "", e)  # label matchers
    e = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", e)
    e = re.sub(r"\[[^\]]*\]", "", e)  # range durations
    names = set()
    for m in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", e):
        word = m.group(0)
        after = e[m.end() :].lstrip()
        if word in _FUNCS or after.startswith("(") or re.fullmatch(r"\d+[smhdwy]", word):
            continue
        names.add(word)
    return names


def test_promql_metric_extraction():
    assert promql_metrics(
        'histogram_quantile(0.99, sum by (le, api) (rate(x_bucket{api="rest"}[5m])))'
    ) == {"x_bucket"}
    assert promql_metrics("a > 0 and delta(b[2m]) == 0") == {"a", "b"}
    assert promql_metrics("sum by (instance) (increase(c_total[5m])) > 3") == {"c_total"}


def _queries() -> dict[str, str]:
    """Every expression of the dashboard and of the alert rules, by where it comes from."""
    dash = json.loads((DEPLOY / "grafana/xdpex-gateway.json").read_text())
    out = {}
    for p in dash["panels"]:
        for t in p.get("targets", []):
            out[f"panel {p['title']!r} {t['refId']}"] = t["expr"]
    rules = yaml.safe_load((DEPLOY / "prometheus/xdpex-rules.yml").read_text())
    for g in rules["groups"]:
        for r in g["rules"]:
            out[f"alert {r['alert']}"] = r["expr"]
    return out


def test_dashboard_queries_parse(tmp_path):
    """promtool parses every dashboard expression (as recording rules)."""
    rules = {
        "groups": [
            {
                "name": "dashboard",
                "rules": [
                    {"record": f"xdpex:dashboard:{i}", "expr": q}
                    for i, q in enumerate(_queries().values())
                ],
            }
        ]
    }
    f = tmp_path / "dash.yml"
    f.write_text(yaml.safe_dump(rules))
    r = subprocess.run([_tool(PROMTOOL), "check", "rules", str(f)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_dashboard_and_alerts_query_only_exported_metrics():
    queries = _queries()
    assert len(queries) >= 20
    with lab_up("xok") as lab, Gateway(lab, "afxdp", nsessions=1) as gw:
        d = short_tmpdir("kit")
        s = Settings(
            state_dir=d / "state",
            database_url=f"sqlite:///{d / 'x.db'}",
            grpc_port=0,
            control_socket=gw.ctl_path,
            order_socket=gw.workdir / "entry.sock",
            journal_dir=gw.workdir / "journal",
            xdp_pin_dir=gw.pin_dir,
            operator_token="xt_test_operator",
        )
        try:
            with TestClient(create_app(s), raise_server_exceptions=False) as tc:
                body = {"symbol_id": 1, "side": "buy", "qty": 5, "price": PRICE_BAND[0]}
                r = tc.post("/api/v1/orders", json=body, headers=OP)
                assert r.status_code == 201, r.text
                cp = tc.app.state.cp  # type: ignore[attr-defined]
                p = Persister(cp.engine, s.journal_dir, batch=1000)
                p.drain()  # the persister's position: its lag series exist
                p.close()
                text = tc.get("/metrics").text
        finally:
            cleanup_dir(d)
    exported = {
        line.split("{", 1)[0].split(" ", 1)[0]
        for line in text.splitlines()
        if line and not line.startswith("#")
    }
    missing = {
        where: sorted(promql_metrics(q) - exported)
        for where, q in queries.items()
        if promql_metrics(q) - exported
    }
    assert not missing, f"queries name metrics /metrics does not export: {missing}"
