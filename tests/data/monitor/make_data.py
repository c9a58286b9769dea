"""Regenerate the monitor test data (deterministic): ``python tests/data/monitor/make_data.py``.

* ``reference.csv``: 800 rows, the training set (features + label ``approved``);
* ``current_same.csv``: an unshifted resample of the same distribution;
* ``current_shifted.csv``: mean shift on ``age`` (+1 sd) and ``income`` (x1.8), and a new
  category ``marseille`` on ``city`` (30% of rows); the other features resampled unshifted;
* ``predictions.jsonl``: a prediction log in the format ``mlcd serve`` writes, 400 rows in
  requests of 1-4 rows;
* ``labels.csv``: ground truth for 320 of the logged rows (``request_id``, ``row``, ``label``),
  agreeing with the logged prediction about 75% of the time;
* ``baseline.json``: the metrics recorded at training time (accuracy 0.9).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).parent


def features(n: int, seed: int, shift: bool = False) -> pd.DataFrame:
    r = np.random.default_rng(seed)
    df = pd.DataFrame({
        "age": r.normal(40, 10, n).round(1),
        "income": r.lognormal(10, 0.4, n).round(2),
        "score": r.uniform(0, 1, n).round(4),
        "tenure": r.integers(0, 30, n),
        "city": r.choice(["paris", "lyon", "nice"], n, p=[0.5, 0.3, 0.2]),
        "plan": r.choice(["basic", "plus", "pro"], n, p=[0.6, 0.3, 0.1]),
    })
    if shift:
        df["age"] = (df["age"] + 10).round(1)
        df["income"] = (df["income"] * 1.8).round(2)
        idx = r.choice(n, int(0.3 * n), replace=False)
        df.loc[idx, "city"] = "marseille"
    return df


def main() -> None:
    ref = features(800, 1)
    ref["approved"] = ((ref["score"] > 0.4) & (ref["age"] > 30)).astype(int)
    ref.to_csv(HERE / "reference.csv", index=False)
    features(800, 2).to_csv(HERE / "current_same.csv", index=False)
    features(800, 3, shift=True).to_csv(HERE / "current_shifted.csv", index=False)

    r = np.random.default_rng(4)
    cur = features(400, 5)
    lines, labels = [], []
    i, req = 0, 0
    t0 = pd.Timestamp("2026-11-20T08:00:00Z")
    while i < len(cur):
        size = int(r.integers(1, 5))
        rid = f"req-{req:05d}-{r.integers(16**6):06x}"
        for row in range(min(size, len(cur) - i)):
            x = cur.iloc[i]
            truth = int((x["score"] > 0.4) and (x["age"] > 30))
            pred = truth if r.random() < 0.75 else 1 - truth
            proba = round(float(np.clip(0.5 + (0.4 if pred else -0.4) + r.normal(0, 0.05),
                                        0, 1)), 4)
            lines.append({
                "ts": (t0 + pd.Timedelta(seconds=37 * i)).isoformat(),
                "request_id": rid, "row": row, "model_name": "credit", "model_version": "3",
                "lineage_id": "lin-7f3a9c", "inputs": {
                    "age": float(x["age"]), "income": float(x["income"]),
                    "score": float(x["score"]), "tenure": int(x["tenure"]),
                    "city": str(x["city"]), "plan": str(x["plan"])},
                "prediction": pred, "proba": proba,
                "latency_ms": round(float(r.gamma(2.0, 2.0)), 3)})
            if r.random() < 0.8:
                labels.append({"request_id": rid, "row": row, "label": truth})
            i += 1
        req += 1
    with open(HERE / "predictions.jsonl", "w", encoding="utf-8") as fh:
        for rec in lines:
            fh.write(json.dumps(rec) + "\n")
    pd.DataFrame(labels).to_csv(HERE / "labels.csv", index=False)
    (HERE / "baseline.json").write_text(json.dumps({"accuracy": 0.9, "f1": 0.88}, indent=2) + "\n")


if __name__ == "__main__":
    main()
