"""What live traffic says about a shadow or canary candidate.

Inputs: the environment's nginx access log (one JSON line per ``/predict`` request and per
mirrored copy: upstream addresses, statuses and times) and the prediction logs of both
versions (one line per predicted row with the request id nginx gave it). Output: metrics
that gates read:

* ``requests`` — ``/predict`` requests clients sent; ``candidate_requests`` — those the
  candidate answered (shadow: every mirrored copy; canary: its share);
  ``candidate_share`` — percent of the requests the candidate saw;
* ``error_rate`` / ``serving_error_rate`` — share of the candidate's / serving version's
  answers that were 5xx or no answer; ``client_errors`` — 5xx answers clients got;
* ``candidate_p50_ms``, ``candidate_p95_ms``, ``serving_p50_ms``, ``serving_p95_ms`` and
  ``p95_ms_delta`` (candidate minus serving), from nginx's upstream times;
* shadow only, from the prediction logs joined on request id and row: ``compared_rows``,
  ``agreement`` (share of rows with the same prediction), ``mean_abs_delta`` and
  ``max_abs_delta`` (numeric predictions), ``max_proba_delta`` (class probabilities).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from mlcd_actions.deploy.router import CANARY, SHADOW, RouterState

METRICS = ("requests", "client_errors", "candidate_requests", "serving_requests",
           "candidate_share", "error_rate", "serving_error_rate", "candidate_errors",
           "serving_errors", "candidate_p50_ms", "candidate_p95_ms", "serving_p50_ms",
           "serving_p95_ms", "p95_ms_delta", "compared_rows", "agreement", "mean_abs_delta",
           "max_abs_delta", "max_proba_delta")
DEFAULT_GATES = {
    SHADOW: ("error_rate<=0.01", "agreement>=0.9", "p95_ms_delta<=100"),
    CANARY: ("error_rate<=0.01", "p95_ms_delta<=100"),
}


def read_access_log(path: str | Path) -> list[dict[str, Any]]:
    lines = []
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    for raw in text.splitlines():
        try:
            lines.append(json.loads(raw))
        except ValueError:
            continue
    return lines


def _addr(url: str | None) -> str:
    return (url or "").split("://", 1)[-1].rstrip("/")


def _split(value: str) -> list[str]:
    return [p.strip() for p in str(value or "").replace(" : ", ",").split(",") if p.strip()]


def _ms(value: str | None) -> float | None:
    try:
        return float(value) * 1000.0
    except (TypeError, ValueError):
        return None


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def _is_error(status: str | None) -> bool:
    return not status or not str(status).isdigit() or int(status) >= 500


def attempts(lines: Iterable[dict[str, Any]], route: RouterState) -> dict[str, Any]:
    """Per version: statuses and upstream times of the ``/predict`` answers it gave."""
    serving, candidate = _addr(route.serving), _addr(route.candidate)
    out: dict[str, Any] = {"serving": [], "candidate": [], "requests": 0, "client_errors": 0,
                           "request_ids": {"serving": set(), "candidate": set()}}
    for line in lines:
        if not str(line.get("uri", "")).startswith("/predict"):
            continue
        addrs, statuses, times = (_split(line.get(k, "")) for k in ("uaddr", "ustatus", "urt"))
        if not addrs:
            continue
        mirrored = route.strategy == SHADOW and addrs[0] == candidate
        if not mirrored:
            out["requests"] += 1
            out["client_errors"] += _is_error(line.get("status"))
        for i, addr in enumerate(addrs):
            who = "candidate" if addr == candidate else "serving" if addr == serving else None
            if who is None:
                continue
            status = statuses[i] if i < len(statuses) else None
            out[who].append((status, _ms(times[i] if i < len(times) else None)))
            out["request_ids"][who].add(line.get("rid"))
    return out


def _same(a: Any, b: Any, tol: float) -> bool:
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and \
            not isinstance(a, bool) and not isinstance(b, bool):
        return abs(a - b) <= tol * max(1.0, abs(b))
    return a == b


def compare_predictions(serving_rows: Iterable[dict], candidate_rows: Iterable[dict],
                        request_ids: set[str], tolerance: float = 1e-6) -> dict[str, Any]:
    """Join both versions' prediction-log lines on (request id, row)."""
    mine = {(r.get("request_id"), r.get("row")): r for r in serving_rows
            if r.get("request_id") in request_ids}
    pairs = [(mine[k], r) for r in candidate_rows
             if (k := (r.get("request_id"), r.get("row"))) in mine]
    if not pairs:
        return {"compared_rows": 0}
    agree = sum(_same(c.get("prediction"), s.get("prediction"), tolerance) for s, c in pairs)
    deltas = [abs(float(c["prediction"]) - float(s["prediction"])) for s, c in pairs
              if isinstance(c.get("prediction"), (int, float))
              and isinstance(s.get("prediction"), (int, float))]
    proba = []
    for s, c in pairs:
        ps, pc = s.get("proba"), c.get("proba")
        if isinstance(ps, (int, float)) and isinstance(pc, (int, float)):
            proba.append(abs(pc - ps))
        elif isinstance(ps, list) and isinstance(pc, list) and len(ps) == len(pc):
            proba.append(max((abs(a - b) for a, b in zip(pc, ps, strict=True)), default=0.0))
    metrics: dict[str, Any] = {"compared_rows": len(pairs), "agreement": agree / len(pairs)}
    if deltas:
        metrics["mean_abs_delta"] = sum(deltas) / len(deltas)
        metrics["max_abs_delta"] = max(deltas)
    if proba:
        metrics["max_proba_delta"] = max(proba)
    return metrics


def analyse(lines: list[dict[str, Any]], route: RouterState, *,
            serving_predictions: Iterable[dict] = (), candidate_predictions: Iterable[dict] = (),
            tolerance: float = 1e-6) -> dict[str, Any]:
    seen = attempts(lines, route)
    metrics: dict[str, Any] = {"requests": seen["requests"],
                               "client_errors": seen["client_errors"]}
    for who in ("serving", "candidate"):
        answers = seen[who]
        times = [ms for _, ms in answers if ms is not None]
        errors = sum(_is_error(status) for status, _ in answers)
        prefix = "" if who == "candidate" else "serving_"
        metrics[f"{who}_requests"] = len(answers)
        metrics[f"{prefix}error_rate"] = errors / len(answers) if answers else None
        metrics[f"{who}_errors"] = errors
        metrics[f"{who}_p50_ms"] = _pct(times, 0.5)
        metrics[f"{who}_p95_ms"] = _pct(times, 0.95)
    a, b = metrics["candidate_p95_ms"], metrics["serving_p95_ms"]
    metrics["p95_ms_delta"] = None if a is None or b is None else a - b
    metrics["candidate_share"] = (100.0 * metrics["candidate_requests"] / metrics["requests"]
                                  if metrics["requests"] else None)
    if route.strategy == SHADOW:
        ids = seen["request_ids"]["candidate"] & seen["request_ids"]["serving"]
        metrics.update(compare_predictions(serving_predictions, candidate_predictions,
                                           {i for i in ids if i}, tolerance))
        metrics.setdefault("agreement", None)
    return {k: (round(v, 6) if isinstance(v, float) else v) for k, v in metrics.items()}
