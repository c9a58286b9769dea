"""The training child process: ``python -m mlcd_actions.training.child SPEC.json``.

Runs in the user's working directory (so ``--entrypoint module:function`` imports like
the user's own code), reads the prepared training set, fits the model and writes into
the spec's ``out_dir``:

* ``model.pkl``: the fitted model (cloudpickle)
* ``result.json``: fit seconds, model class, the top-level modules the training imported
  (for pip requirements) and the user's source files it imported (shipped with the model)
* ``error.json`` instead, when the training code raises: type, message, last traceback
  lines; the full traceback goes to stderr, i.e. the training log. Exit code 1.

It imports no mlflow: the parent process tracks the run while this one trains.
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


def _load_entrypoint(spec: str):
    import importlib

    module_name, _, func_name = spec.partition(":")
    module = importlib.import_module(module_name)
    fn = module
    for part in func_name.split("."):
        fn = getattr(fn, part)
    if not callable(fn):
        raise TypeError(f"{spec} is not callable")
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
    spec = json.loads(Path(spec_path).read_text(encoding="utf-8"))
    out_dir = Path(spec["out_dir"])
    cwd = Path(spec.get("cwd") or os.getcwd()).resolve()
    if str(cwd) not in sys.path:
        sys.path.insert(0, str(cwd))
    before = set(sys.modules)
    label = spec["label"]
    params = dict(spec.get("params") or {})
    try:
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
                raise TypeError(f"{spec['entrypoint']} returned None; it must return the "
                                "fitted model")
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
            raise TypeError(f"the training returned a {type(model).__name__}, which has no "
                            "predict method")
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
        tb = traceback.format_exc()
        sys.stderr.write(tb)
        sys.stderr.flush()
        lines = [line for line in tb.rstrip().splitlines() if line.strip()]
        _write_json(out_dir / "error.json", {
            "type": type(exc).__name__,
            "message": str(exc).strip().splitlines()[0] if str(exc).strip() else "",
            "traceback": lines[-TRACEBACK_LINES:],
        })
        return 1


if __name__ == "__main__":  # pragma: no cover - run as a child process
    code = main(sys.argv[1])
    import gc

    gc.freeze()  # no last collection over the training data at exit: the parent waits on it
    sys.exit(code)
