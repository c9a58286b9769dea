"""Routing for shadow and canary deploys without a cluster: the Gateway API HTTPRoute
validated against the HTTPRoute schema (gateway-api v1.2.1 CRD, tests/data/k8s), the
nginx configuration checked by ``nginx -t``, the traffic analysis, and usage errors."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from mlcd_actions.core.errors import ConfigError
from mlcd_actions.deploy.gateway import httproute, service_ref
from mlcd_actions.deploy.router import Route, RouterState, nginx_binary, nginx_conf
from mlcd_actions.deploy.traffic import analyse

SCHEMA = Path(__file__).resolve().parents[1] / "data" / "k8s" / "httproute-v1.schema.json"
SERVING = "http://mlcd-credit-production.ml.svc.cluster.local"
CANDIDATE = "http://mlcd-credit-production-v4.ml.svc.cluster.local"


def validate(doc):
    import jsonschema

    jsonschema.validate(doc, json.loads(SCHEMA.read_text()))


@pytest.mark.parametrize("strategy,traffic", [("direct", 0), ("canary", 12.5),
                                              ("shadow", 0)])
def test_httproute_matches_the_gateway_api_schema(strategy, traffic):
    route = Route(SERVING, strategy, None if strategy == "direct" else CANDIDATE, traffic)
    doc = httproute(route, name="mlcd-production", namespace="ml", gateway="infra/public",
                    environment="production")
    validate(doc)
    assert doc["spec"]["parentRefs"] == [{"name": "public", "namespace": "infra"}]
    rules = doc["spec"]["rules"]
    assert rules[-1]["backendRefs"] == [{"name": "mlcd-credit-production", "namespace": "ml",
                                         "port": 80}]
    if strategy == "canary":
        assert [b["weight"] for b in rules[0]["backendRefs"]] == [8750, 1250]
    if strategy == "shadow":
        mirror = rules[0]["filters"][0]
        assert mirror["type"] == "RequestMirror"
        assert mirror["requestMirror"]["backendRef"]["name"] == "mlcd-credit-production-v4"


def test_a_broken_route_fails_the_schema():
    import jsonschema

    doc = httproute(Route(SERVING, "canary", CANDIDATE, 10), name="r", namespace="ml")
    doc["spec"]["rules"][0]["backendRefs"][0]["weight"] = -1
    with pytest.raises(jsonschema.ValidationError):
        validate(doc)
    with pytest.raises(ConfigError, match="not a Kubernetes Service URL"):
        service_ref("http://127.0.0.1:8080")


@pytest.mark.parametrize("route", [
    Route("http://127.0.0.1:1"),
    Route("http://127.0.0.1:1", "shadow", "http://127.0.0.1:2"),
    Route("http://127.0.0.1:1", "canary", "http://127.0.0.1:2", 0.5),
])
def test_nginx_accepts_the_generated_configuration(route, tmp_path):
    conf = tmp_path / "nginx.conf"
    for sub in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (tmp_path / "tmp" / sub).mkdir(parents=True)
    conf.write_text(nginx_conf(route, listen="127.0.0.1:9", prefix=tmp_path,
                               access_log=tmp_path / "access.log"))
    proc = subprocess.run([nginx_binary(), "-p", str(tmp_path), "-t", "-q", "-c", str(conf)],
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    text = conf.read_text()
    if route.strategy == "canary":
        assert "0.50% mlcd_candidate;" in text and "backup;" in text
    if route.strategy == "shadow":
        assert "mirror /_mlcd_shadow;" in text


@pytest.mark.parametrize("traffic", [0, 100, -5])
def test_canary_traffic_out_of_range(traffic):
    with pytest.raises(ConfigError, match="--traffic"):
        Route("http://a:1", "canary", "http://b:2", traffic).check()


def test_analysis_of_a_canary_with_a_retried_error():
    router = RouterState(url="", listen="", prefix="", conf="", access_log="",
                         strategy="canary", serving="http://127.0.0.1:1",
                         candidate="http://127.0.0.1:2", traffic=50)
    lines = [
        {"uri": "/predict", "status": "200", "uaddr": "127.0.0.1:1", "ustatus": "200",
         "urt": "0.010", "rid": "a"},
        {"uri": "/predict", "status": "200", "uaddr": "127.0.0.1:2", "ustatus": "200",
         "urt": "0.030", "rid": "b"},
        {"uri": "/predict", "status": "200", "uaddr": "127.0.0.1:2, 127.0.0.1:1",
         "ustatus": "500, 200", "urt": "0.002, 0.011", "rid": "c"},
        {"uri": "/health", "status": "200", "uaddr": "127.0.0.1:1", "ustatus": "200",
         "urt": "0.001", "rid": "d"},
    ]
    m = analyse(lines, router)
    assert (m["requests"], m["candidate_requests"], m["serving_requests"]) == (3, 2, 2)
    assert (m["error_rate"], m["serving_error_rate"], m["client_errors"]) == (0.5, 0.0, 0)
    assert m["candidate_share"] == pytest.approx(66.666667)
    assert m["candidate_p95_ms"] == pytest.approx(30.0)
    assert m["p95_ms_delta"] == pytest.approx(19.0)


@pytest.mark.parametrize("args,needle", [
    (["deploy", "--environment", "production", "--model-uri", "models:/m/2",
      "--strategy", "canary"], "--strategy canary needs --traffic PERCENT"),
    (["deploy", "--environment", "production", "--model-uri", "models:/m/2",
      "--strategy", "shadow", "--traffic", "10"], "--traffic is for --strategy canary"),
    (["promote", "--environment", "production"], "no shadow or canary running in production"),
    (["history", "--environment", "production"], "which model? pass --name"),
    (["override", "--stage", "evaluate", "--model-uri", "models:/m/1"],
     "--reason is required"),
    (["override", "--stage", "smoke-test", "--reason", "x"], "Invalid value for '--stage'"),
])
def test_usage_errors_exit_2(mlcd, args, needle):
    r = mlcd(*args)
    assert r.exit_code == 2, r
    assert needle in r.verdict and "Traceback" not in r.output


def test_promote_rejects_an_unknown_gate_before_waiting(mlcd):
    dep = {"environment": "production", "target": "local", "url": "http://127.0.0.1:9",
           "model_name": "m", "model_version": "1", "handle": {}}
    Path(".mlcd/deployments").mkdir(parents=True)
    Path(".mlcd/deployments/production.json").write_text(json.dumps({
        "environment": "production", "current": dep, "previous": None, "history": [],
        "candidate": {**dep, "model_version": "2", "url": "http://127.0.0.1:10"},
        "rollout": {"strategy": "canary", "traffic": 10}, "router": None}))
    r = mlcd("promote", "--environment", "production", "--threshold", "eror_rate<=0.01",
             "--wait", "600")
    assert r.exit_code == 2, r
    assert "unknown metric 'eror_rate'; known: requests, client_errors" in r.verdict
