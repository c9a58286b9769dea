"""``mlcd smoke-test``: after each deploy, is the app up and is it the right model?

Checks, each one row in the report (and one JUnit case):

1. ``ready`` — ``/health`` answers 200 within ``--timeout`` (bounded polling);
2. ``metadata`` — ``/metadata`` reports ``--expect-model-version`` (when given);
3. ``golden`` — the golden samples saved at training time (``--samples FILE``, or the
   ``golden/samples.json`` artifact of the model's run via ``--model-uri``) predict the
   same values (numbers within ``--tolerance``; probabilities too);
4. ``latency`` — p95 of ``--requests`` single-row requests within ``--latency-budget-ms``;
5. ``bad-input`` — malformed JSON and a row missing its columns get a 4xx, never a 5xx.

Any failed check fails the stage (exit 1).
"""

from __future__ import annotations

import http.client
import json
import math
import statistics
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from mlcd_actions.core.errors import ConfigError, ServiceError
from mlcd_actions.core.gates import FAILED, PASSED, SKIPPED, GateRow, Threshold
from mlcd_actions.core.results import StageResult
from mlcd_actions.deploy.base import probe

GOLDEN_ARTIFACT = "golden/samples.json"


def _request(url: str, body: bytes | None = None, timeout: float = 10.0) -> tuple[int, Any, float]:
    req = urllib.request.Request(url, data=body, method="POST" if body is not None else "GET",
                                 headers={"Content-Type": "application/json"})
    t0 = time.perf_counter()
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 - user's URL
            raw = resp.read()
            status = resp.status
    except urllib.error.HTTPError as exc:
        raw = exc.read()
        status = exc.code
    except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
        # the app dropped the connection or timed out: status 0 fails the check
        return 0, f"{type(exc).__name__}: {exc}", (time.perf_counter() - t0) * 1000
    ms = (time.perf_counter() - t0) * 1000
    try:
        data = json.loads(raw) if raw else None
    except ValueError:
        data = raw.decode(errors="replace")[:200]
    return status, data, ms


def load_samples(samples: str | None, model_uri: str | None,
                 tracking_uri: str | None) -> dict | None:
    if samples:
        path = Path(samples)
        if not path.is_file():
            raise ConfigError(f"--samples {samples}: no such file")
        try:
            return check_samples(json.loads(path.read_text(encoding="utf-8")), samples)
        except ValueError as exc:
            raise ConfigError(f"--samples {samples}: not JSON: {exc}") from exc
    if not model_uri:
        return None
    from mlcd_actions.models import loading as models
    from mlcd_actions.models import tracking

    ref = models.load(model_uri, tracking_uri)
    if not ref.run_id:
        return None
    import mlflow

    tracking.configure(tracking_uri)
    try:
        local = tracking.with_retries(
            lambda: mlflow.artifacts.download_artifacts(run_id=ref.run_id,
                                                        artifact_path=GOLDEN_ARTIFACT),
            what=f"downloading golden samples of run {ref.run_id}")
    except ServiceError:
        raise
    except Exception:  # noqa: BLE001 - a run without golden samples: the check is skipped
        return None
    return check_samples(json.loads(Path(local).read_text(encoding="utf-8")), GOLDEN_ARTIFACT)


def check_samples(data: Any, where: str) -> dict:
    """Golden samples are ``{"inputs": [{...}, ...], "predictions": [...]}`` of equal length."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: golden samples must be a JSON object with 'inputs' and "
                          "'predictions'")
    inputs, preds = data.get("inputs"), data.get("predictions")
    if not isinstance(inputs, list) or not all(isinstance(r, dict) for r in inputs):
        raise ConfigError(f"{where}: 'inputs' must be a list of records")
    if not isinstance(preds, list) or len(preds) != len(inputs):
        raise ConfigError(f"{where}: 'predictions' must be a list as long as 'inputs' "
                          f"({len(inputs)})")
    probs = data.get("probabilities")
    if probs is not None and (not isinstance(probs, list) or len(probs) != len(inputs)):
        raise ConfigError(f"{where}: 'probabilities' must be a list as long as 'inputs'")
    return data


def _close(a: Any, b: Any, tol: float) -> bool:
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_close(x, y, tol) for x, y in zip(a, b, strict=False))
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and \
            not isinstance(a, bool) and not isinstance(b, bool):
        if math.isnan(a) and math.isnan(b):
            return True
        return abs(a - b) <= tol * max(1.0, abs(b))
    return a == b


def run(*, url: str, samples: str | None = None, expect_model_version: str | None = None,
        model_uri: str | None = None, tracking_uri: str | None = None, timeout: float = 60.0,
        latency_budget_ms: float = 250.0, requests: int = 20, tolerance: float = 1e-6) \
        -> StageResult:
    base = url.rstrip("/")
    if not base.startswith(("http://", "https://")):
        raise ConfigError(f"--url {url!r} is not an http(s) URL")
    rows: list[list[Any]] = []
    gates: list[GateRow] = []

    def check(name: str, ok: bool | None, detail: str) -> None:
        verdict = SKIPPED if ok is None else (PASSED if ok else FAILED)
        rows.append([name, verdict, detail])
        gates.append(GateRow(name, None if ok is None else float(ok), "pass", None, None,
                             "equal", verdict, f"{name}: {detail}"))

    # 1. ready
    deadline = time.monotonic() + timeout
    t0 = time.monotonic()
    ready = False
    while time.monotonic() < deadline:
        if probe(base + "/health", 2.0):
            ready = True
            break
        time.sleep(0.5)
    check("ready", ready, f"/health answered in {time.monotonic() - t0:.1f}s" if ready
          else f"/health did not answer 200 within {timeout:.0f}s")
    result = StageResult("smoke-test", outputs={"url": base})
    if not ready:
        return _finish(result, rows, gates)

    # 2. metadata
    status, meta, _ = _request(base + "/metadata")
    served = str((meta or {}).get("model_version")) if isinstance(meta, dict) else None
    if expect_model_version:
        check("metadata", status == 200 and served == str(expect_model_version),
              f"serves version {served}, expected {expect_model_version}")
    else:
        check("metadata", status == 200, f"/metadata answered {status}; version {served}")
    result.outputs["model-version"] = served or ""

    # 3. golden predictions
    gold = load_samples(samples, model_uri, tracking_uri)
    single_row: dict | None = None
    if gold and gold.get("inputs"):
        single_row = gold["inputs"][0]
        status, body, _ = _request(base + "/predict", json.dumps(gold["inputs"]).encode())
        if status != 200 or not isinstance(body, dict):
            check("golden", False, f"/predict answered {status}: {str(body)[:120]}")
        else:
            got = body.get("predictions")
            want = gold.get("predictions")
            bad = [i for i, (g, w) in enumerate(zip(got or [], want or [], strict=False))
                   if not _close(g, w, tolerance)]
            ok = got is not None and len(got) == len(want) and not bad
            if ok and gold.get("probabilities") is not None and body.get("probabilities"):
                ok = _close(body["probabilities"], gold["probabilities"], max(tolerance, 1e-6))
                if not ok:
                    bad = ["probabilities"]
            check("golden", ok, f"{len(want)} golden rows match" if ok else
                  f"{len(bad)} of {len(want)} golden rows differ (first: row {bad[0]})"
                  if bad else f"expected {len(want)} predictions, got {len(got or [])}")
    else:
        check("golden", None, "no golden samples (pass --samples or a --model-uri whose run "
                              "has golden/samples.json)")

    # 4. latency
    if single_row is not None:
        times = []
        errors = 0
        payload = json.dumps([single_row]).encode()
        for _ in range(max(1, requests)):
            status, _, ms = _request(base + "/predict", payload)
            times.append(ms)
            errors += status != 200
        p95 = sorted(times)[max(0, math.ceil(0.95 * len(times)) - 1)]
        gate = Threshold.parse(f"p95_ms<={latency_budget_ms}").check(p95)
        ok = gate.verdict == PASSED and errors == 0
        check("latency", ok, f"p95 {p95:.1f} ms, median {statistics.median(times):.1f} ms over "
                             f"{len(times)} requests (budget {latency_budget_ms:g} ms)"
              + (f"; {errors} errors" if errors else ""))
        result.metrics.update({"p95_ms": round(p95, 2),
                               "median_ms": round(statistics.median(times), 2)})
    else:
        check("latency", None, "no sample row to send (needs golden samples)")

    # 5. bad input gets a 4xx
    s1, _, _ = _request(base + "/predict", b"{not json")
    s2, _, _ = _request(base + "/predict", json.dumps([{"__no_such_column__": 1}]).encode())
    check("bad-input", 400 <= s1 < 500 and 400 <= s2 < 500,
          f"malformed JSON -> {s1}, unknown columns -> {s2}")
    return _finish(result, rows, gates)


def _finish(result: StageResult, rows, gates) -> StageResult:
    from mlcd_actions.core.results import Table

    result.tables.append(Table("smoke checks", ["check", "verdict", "detail"], rows))
    result.gates = gates
    failed = [r for r in rows if r[1] == FAILED]
    if failed:
        result.status = FAILED
        result.reason = "; ".join(f"{r[0]}: {r[2]}" for r in failed)
    else:
        passed = sum(1 for r in rows if r[1] == PASSED)
        result.reason = f"{passed} checks passed at {result.outputs['url']}" + (
            f" ({len(rows) - passed} skipped)" if passed < len(rows) else "")
    return result
