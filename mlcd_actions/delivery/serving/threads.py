"""Worker processes that do not fight over cores.

A scikit-learn model calls native thread pools: OpenMP (HistGradientBoosting, k-means...)
and BLAS (linear algebra). Each pool starts as many threads as the machine has cores, so
N serving workers each running 2 threads on a 2-core machine keep 2N busy threads for 2
cores: the OpenMP threads spin waiting for each other while the other worker holds the
core, and one HistGradientBoosting row took 100+ ms instead of 1 ms (p99 near a second
at 8 concurrent clients). Serving parallelism comes from worker processes (and from
gathering concurrent requests into one model call), so each worker runs its pools with
``threads`` threads (default 1):

* :func:`environment` — ``OMP_NUM_THREADS``, ``OPENBLAS_NUM_THREADS``, ``MKL_NUM_THREADS``
  and friends for the worker processes (read by each library when it starts); a value the
  user set is kept;
* :func:`limit` — ``threadpoolctl.threadpool_limits`` in the running process, for the
  libraries already loaded (the model was unpickled before the server started);
* :func:`info` — what is in force, as ``/metadata`` shows it and the start-up line logs.

:func:`default_workers` is the number of CPUs this process may use (its affinity mask,
and a cgroup CPU quota when one is set, as in a container started with ``--cpus``).
"""

from __future__ import annotations

import math
import os
from pathlib import Path

THREAD_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
              "BLIS_NUM_THREADS", "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")


def usable_cpus() -> int:
    """CPUs this process may run on: affinity mask, capped by a cgroup v2/v1 quota."""
    try:
        n = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        n = os.cpu_count() or 1
    quota = _cgroup_quota()
    if quota is not None:
        n = min(n, max(1, math.ceil(quota)))
    return max(1, n)


def _cgroup_quota() -> float | None:
    try:
        text = Path("/sys/fs/cgroup/cpu.max").read_text().split()
        if text and text[0] != "max":
            return int(text[0]) / int(text[1])
    except (OSError, ValueError, IndexError):
        pass
    try:
        q = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us").read_text())
        p = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_period_us").read_text())
        if q > 0 and p > 0:
            return q / p
    except (OSError, ValueError):
        pass
    return None


def default_workers() -> int:
    """One worker per usable CPU (each runs single-threaded native pools)."""
    return usable_cpus()


def environment(threads: int, env: dict | None = None) -> dict[str, str]:
    """The thread-count variables to set for workers (those the user set are kept)."""
    env = os.environ if env is None else env
    return {k: str(threads) for k in THREAD_ENV if not env.get(k)}


def limit(threads: int) -> list[dict]:
    """Cap every native thread pool loaded in this process at ``threads``; :func:`info`."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=threads)
    return info()


def info() -> list[dict]:
    """``[{"api": "openmp"|"blas", "library": ..., "threads": n}, ...]`` in force now."""
    from threadpoolctl import threadpool_info

    return [{"api": p.get("user_api"), "library": p.get("internal_api"),
             "threads": p.get("num_threads")} for p in threadpool_info()]


def describe(pools: list[dict]) -> str:
    """``openmp=1 (openmp), blas=1 (openblas)`` for the log line."""
    return ", ".join(f"{p['api']}={p['threads']} ({p['library']})" for p in pools) \
        or "no native thread pool loaded"
