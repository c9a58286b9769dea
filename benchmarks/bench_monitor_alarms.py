"""Monitor alarm benchmark: false alarms on same-distribution resamples, detection of a
real shift, for monitor's default gates and the old fixed-threshold defaults (the peer).

    .venv/bin/python benchmarks/bench_monitor_alarms.py [--resamples 200] [--seed 0]
        [--sizes 36 100 1000 100000] [--shift-sizes 1000 100000] [--shift 0.25]

Data per resample: a reference of 4 n rows (what `mlcd run` compares: the training split
is four times the test split) and a current batch of n rows, drawn independently from the
same distribution: 5 numeric features (normal, log-normal, Poisson counts, uniform, a
two-component mixture) and 1 categorical (6 categories, one of them rare, 1%).

* false alarms: the share of resamples in which monitor's gates flag any feature (an
  alarm asks for retraining); target <= 5 % at every n;
* detection: the same with the normal feature's mean shifted by SHIFT standard deviations
  in the current batch; the share of resamples that alarm.

"mlcd defaults" are ``monitor.drift_gates`` with no threshold (a KS / chi-square test per
feature at alpha 0.05 over all features, the KS threshold never below 0.05, PSI bins by
sample size); "psi<=0.2, js<=0.1 (10 bins)" is the previous default, run in the same
process on the same draws. Prints a table, the load average and the time taken.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

CATEGORIES = ("a", "b", "c", "d", "e", "rare")
CAT_P = (0.35, 0.25, 0.2, 0.12, 0.07, 0.01)
OLD_DEFAULTS = ("psi<=0.2", "js<=0.1")


def draw(rng, n: int, shift: float = 0.0):
    import numpy as np
    import pandas as pd

    mix = rng.random(n) < 0.3
    return pd.DataFrame({
        "normal": rng.normal(shift, 1.0, n),
        "lognormal": rng.lognormal(0.0, 0.6, n),
        "counts": rng.poisson(3.0, n).astype(np.int64),
        "uniform": rng.uniform(0, 10, n),
        "mixture": np.where(mix, rng.normal(-2, 0.5, n), rng.normal(1, 1.0, n)),
        "segment": rng.choice(np.asarray(CATEGORIES), size=n, p=CAT_P),
    })


def alarms(ref, cur) -> tuple[bool, bool]:
    """(mlcd defaults alarm, old defaults alarm) on one pair of tables."""
    from mlcd_actions.core.gates import FAILED, Threshold
    from mlcd_actions.data import drift
    from mlcd_actions.stages import monitor

    bins = monitor.auto_bins(10, len(ref), len(cur))
    new = monitor.drift_gates(drift.compare(ref, cur, bins=bins, threads=1), [])
    old_drifts = drift.compare(ref, cur, bins=10, threads=1)
    old = monitor.drift_gates(old_drifts, [Threshold.parse(s) for s in OLD_DEFAULTS])
    return (any(g.verdict == FAILED for g in new), any(g.verdict == FAILED for g in old))


def rate(n: int, resamples: int, rng, shift: float = 0.0) -> tuple[float, float]:
    hits_new = hits_old = 0
    for _ in range(resamples):
        ref = draw(rng, 4 * n)
        cur = draw(rng, n, shift)
        new, old = alarms(ref, cur)
        hits_new += new
        hits_old += old
    return hits_new / resamples, hits_old / resamples


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--resamples", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--sizes", type=int, nargs="+", default=[36, 100, 1000, 100_000])
    ap.add_argument("--shift-sizes", type=int, nargs="+", default=[1000, 100_000])
    ap.add_argument("--shift", type=float, default=0.25)
    args = ap.parse_args(argv)

    import numpy as np

    rng = np.random.default_rng(args.seed)
    t0 = time.perf_counter()
    rows = []
    for n in args.sizes:
        new, old = rate(n, args.resamples, rng)
        rows.append(("false alarms", n, new, old))
        print(f"  false alarms n={n}: mlcd {new:.1%}  old {old:.1%}", file=sys.stderr, flush=True)
    for n in args.shift_sizes:
        new, old = rate(n, args.resamples, rng, shift=args.shift)
        rows.append((f"detection, {args.shift:g} sd shift", n, new, old))
        print(f"  detection n={n}: mlcd {new:.1%}  old {old:.1%}", file=sys.stderr, flush=True)

    print(f"\nmonitor alarms: {args.resamples} resamples per row, reference 4 n rows, "
          "5 numeric + 1 categorical features")
    head = f"{'':32} {'n':>8}  {'mlcd defaults':>14}  {'psi<=0.2, js<=0.1':>18}"
    print(head)
    print("-" * len(head))
    for what, n, new, old in rows:
        print(f"{what:32} {n:>8}  {new:>14.1%}  {old:>18.1%}")
    fa = [r for r in rows if r[0] == "false alarms"]
    worst = max(r[2] for r in fa) if fa else 0.0
    print(f"\nworst false-alarm rate, mlcd defaults: {worst:.1%} (target <= 5%): "
          f"{'met' if worst <= 0.05 else 'NOT met'}")
    print(f"load average {os.getloadavg()}; {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
