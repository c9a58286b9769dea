"""The training child process: ``python -m mlcd_actions.training.child SPEC.json``.

Runs in the user's working directory (so ``--entrypoint module:function`` imports like
the user's own code), reads the prepared training set, fits the model and writes into
the spec's ``out_dir``:

* ``model.pkl``: the fitted model (cloudpickle)
* ``result.json``: fit seconds, model class, the top-level modules the training imported
  (for pip requirements) and the user's source files it imported (shipped with the model)
* ``error.json`` instead, when training fails: its ``kind``, type, message, the last
  traceback lines and the full traceback (the parent appends it to the training log; it
  is never written to the terminal). Exit code 1. Kinds:

  - ``usage``: the ``--entrypoint`` cannot be used (no such module, no such function,
    not callable); the parent exits 2, no traceback;
  - ``contract``: the training returned no model or an object without ``predict``; the
    message says so (nothing was raised by the user's code);
  - ``raised``: the training code (or the built-in estimator) raised.

It imports no mlflow: the parent process tracks the run while this one trains. For a
built-in estimator on Linux the parent forks instead (:func:`run` with the frame it read):
no second interpreter start, no second import of pandas and scikit-learn, no second read.
"""

from __future__ import annotations

import json
import os
import sys
import time
import traceback
from pathlib import Path

TRACEBACK_LINES = 15


def _write_json(path: Path, data: dict) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str), encoding="utf-8")
    os.replace(tmp, path)


class EntrypointError(Exception):
    """The ``--entrypoint`` cannot be used: a usage error (exit 2)."""


class ContractError(Exception):
    """The training returned something that is not a model (the training contract)."""


def _load_entrypoint(spec: str):
    import importlib

    module_name, _, func_name = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        missing = exc.name or ""
        if module_name == missing or module_name.startswith(missing + "."):
            raise EntrypointError(f"--entrypoint {spec}: no module named {missing!r} in "
                                  f"{os.getcwd()} or on the Python path") from exc
        raise  # the user's module imports something missing: its own error
    fn = module
    for part in func_name.split("."):
        if not hasattr(fn, part):
            raise EntrypointError(f"--entrypoint {spec}: module {module_name!r} has no "
                                  f"function {func_name!r}")
        fn = getattr(fn, part)
    if not callable(fn):
        raise EntrypointError(f"--entrypoint {spec}: {func_name!r} is not a function "
                              f"(type {type(fn).__name__})")
    return fn


def _user_files(cwd: Path, before: set[str]) -> list[str]:
    """Top-level source files/packages under ``cwd`` the training imported."""
    out: set[str] = set()
    for name, module in list(sys.modules.items()):
        if name in before or module is None:
            continue
        file = getattr(module, "__file__", None)
        if not file:
            continue
        try:
            rel = Path(file).resolve().relative_to(cwd)
        except ValueError:
            continue
        if ".venv" in rel.parts or "site-packages" in rel.parts:
            continue
        out.add(rel.parts[0])
    return sorted(out)


def _await_run(spec: dict) -> None:
    """The parent starts us before its MLflow run exists (imports overlap); wait for the
    run file, then expose the run to the user's code as MLFLOW_RUN_ID etc."""
    run_file = spec.get("run_file")
    if not run_file:
        return
    path = Path(run_file)
    deadline = time.monotonic() + float(spec.get("run_wait", 600))
    while not path.exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"the parent process did not start the MLflow run ({path})")
        time.sleep(0.02)
    data = json.loads(path.read_text(encoding="utf-8"))
    if data.get("abort"):
        sys.exit(3)
    os.environ.update({k: str(v) for k, v in (data.get("env") or {}).items()})


def main(spec_path: str) -> int:
    return run(json.loads(Path(spec_path).read_text(encoding="utf-8")))


def run(spec: dict, train=None) -> int:
    """Train as the spec says and write the outputs; the exit code. ``train``: the
    training frame when the parent already read it (a forked child, built-in estimator)."""
    out_dir = Path(spec["out_dir"])
    cwd = Path(spec.get("cwd") or os.getcwd()).resolve()
    if str(cwd) not in sys.path:
        sys.path.insert(0, str(cwd))
    before = set(sys.modules)
    label = spec["label"]
    params = dict(spec.get("params") or {})
    try:
        if train is None:
            from mlcd_actions.data.tables import read_table

            train = read_table(spec["train_path"], what="training data")
        print(f"mlcd train: {len(train):,} rows x {train.shape[1]} columns from "
              f"{spec['train_path']}", flush=True)
        _await_run(spec)
        if spec["mode"] == "entrypoint":
            fn = _load_entrypoint(spec["entrypoint"])
            print(f"mlcd train: calling {spec['entrypoint']}(train_df, params)", flush=True)
            t0 = time.perf_counter()
            model = fn(train, params)
            fit_seconds = time.perf_counter() - t0
            if model is None:
                raise ContractError(f"{spec['entrypoint']} returned None; it must return "
                                    "the fitted model")
        else:
            from mlcd_actions.training import estimators

            X = train.drop(columns=[label])
            y = train[label]
            model = estimators.build(spec["estimator"], X, params)
            print(f"mlcd train: fitting built-in {spec['estimator']}", flush=True)
            t0 = time.perf_counter()
            model.fit(X, y)
            fit_seconds = time.perf_counter() - t0
        if not callable(getattr(model, "predict", None)):
            who = spec["entrypoint"] if spec["mode"] == "entrypoint" else spec["estimator"]
            raise ContractError(f"{who} returned a {type(model).__name__}, which has no "
                                "predict method; the training function must return the "
                                "fitted model")
        print(f"mlcd train: fit done in {fit_seconds:.2f}s ({type(model).__name__})", flush=True)
        import cloudpickle

        tmp = out_dir / "model.pkl.tmp"
        with open(tmp, "wb") as fh:
            cloudpickle.dump(model, fh)
        os.replace(tmp, out_dir / "model.pkl")
        modules = sorted({n.split(".")[0] for n in sys.modules if n not in before}
                         - set(sys.stdlib_module_names) - {"mlcd_actions", "__main__"})
        _write_json(out_dir / "result.json", {
            "fit_seconds": fit_seconds,
            "model_class": f"{type(model).__module__}.{type(model).__qualname__}",
            "modules": modules,
            "user_files": _user_files(cwd, before),
            "rows": len(train),
        })
        return 0
    except BaseException as exc:  # noqa: BLE001 - the user's code: report whatever it raised
        if isinstance(exc, (KeyboardInterrupt, SystemExit)):
            raise
        kind = "usage" if isinstance(exc, EntrypointError) else \
            "contract" if isinstance(exc, ContractError) else "raised"
        tb = traceback.format_exc() if kind == "raised" else ""
        lines = [line for line in tb.rstrip().splitlines() if line.strip()]
        _write_json(out_dir / "error.json", {
            "kind": kind,
            "type": type(exc).__name__,
            "message": str(exc).strip().splitlines()[0] if str(exc).strip() else "",
            "traceback": lines[-TRACEBACK_LINES:],
            "full_traceback": tb,
        })
        return 1


if __name__ == "__main__":  # pragma: no cover - run as a child process
    code = main(sys.argv[1])
    import gc

    gc.freeze()  # no last collection over the training data at exit: the parent waits on it
    sys.exit(code)
