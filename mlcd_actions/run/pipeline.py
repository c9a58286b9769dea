"""``mlcd run``: the whole pipeline, locally, from ``mlcd.yaml``, skipping unchanged stages.

Every stage is called through its public CLI (DESIGN §7), in process, with the same
``mlcd.yaml``; the only arguments ``mlcd run`` adds are the wiring between stages (the
snapshot ``ingest`` wrote goes to ``validate`` and ``prepare``, ``train``'s model URI to
``evaluate``...) and defaults for what the config leaves out. That wiring is the adapter
table :data:`STEPS`: one entry per step, nothing else in this module knows a stage's options.

Before a step runs its key is computed (:mod:`mlcd_actions.run.cache`); when the cache holds a
passed entry for that key the step is skipped and its report and files are restored.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from mlcd_actions import __version__
from mlcd_actions.core import config as config_mod
from mlcd_actions.core.errors import ConfigError
from mlcd_actions.core.options import Commands
from mlcd_actions.core.results import ERROR, FAILED, PASSED, SKIPPED, StageResult, Table
from mlcd_actions.run import cache as cache_mod

# where `mlcd run` puts what the config does not place itself (relative to the project)
WORK = ".mlcd"
RAW_DIR = f"{WORK}/data/raw"
PREPARED_DIR = f"{WORK}/data/prepared"
BUILD_DIR = f"{WORK}/build"
PREDICTIONS = f"{WORK}/predictions/predictions.parquet"
DVC_REMOTE = f"{WORK}/dvc-remote"
STATE_DIR = f"{WORK}/deployments"
MAIN_SNAPSHOT = f"{WORK}/main"
# options that name where a stage writes: part of a key by name, never by content
OUTPUT_PARAMS = {"out", "output", "report_dir", "state_dir", "context_dir", "prediction_log",
                 "remote"}
# output names whose values are files or folders a stage produced (kept in the cache)
PATH_OUTPUTS = ("data-path", "manifest-path", "train-path", "test-path", "artifact",
                "predictions-path", "summary-path", "dvc-files", "schema")
NOT_RUN = "not run"
CACHED = "cached"


# --------------------------------------------------------------------------- the adapter table

@dataclass
class Arg:
    """One argument of a stage call. ``param`` is the click parameter name."""

    param: str
    value: Any
    flag: str | None = None      # None: a positional argument
    wired: bool = False          # comes from an upstream stage's output
    key: bool = True             # False: recorded for lineage only, not part of the key


@dataclass
class Step:
    id: str                                  # ingest, deploy-staging, ...
    command: str                             # the `mlcd` subcommand
    deps: tuple[str, ...]                    # upstream steps (for the static cache key)
    args: Callable[[Run], list[Arg]]       # the adapter: wiring + defaults
    code: bool = False                       # imports the project's code
    gate: bool = False                       # a gate stage (thresholds live here)
    cacheable: Callable[[Run], bool] = lambda run: True
    produces: tuple[str, ...] = ()           # option params naming produced files/folders
    summary: Callable[[dict], str] | None = None  # the "key output" cell
    skip: Callable[[Run], str | None] = lambda run: None  # a reason not to run it, or None
    git: bool = False                        # its key includes the git facts (sha, tag...)
    reads_reports: bool = False              # reads earlier reports (key, static deps)

    @property
    def report(self) -> str:
        """The report name the stage writes (``mlcd <command>`` writes ``<command>.json``)."""
        return self.command


def _out(run: Run, step: str, name: str, required: bool = True) -> Any:
    value = run.outputs.get(step, {}).get(name)
    if required and value in (None, ""):
        raise ConfigError(f"mlcd run: stage {step} gave no '{name}' output; re-run it "
                          f"(mlcd run --from {step})")
    return value


def _default(run: Run, command: str, param: str, value: Any, flag: str) -> list[Arg]:
    """Pass ``value`` only when neither mlcd.yaml nor MLCD_<PARAM> sets the option."""
    if run.given(command, param):
        return []
    return [Arg(param, value, flag)]


def _ingest(run: Run) -> list[Arg]:
    return [Arg("source_uri", run.source), *_default(run, "ingest", "out", RAW_DIR, "--out")]


def _validate(run: Run) -> list[Arg]:
    args = [Arg("data", _out(run, "ingest", "data-path"), wired=True)]
    if not run.given("validate", "schema"):
        args.append(Arg("schema", run.schema, "--schema"))
    return args


def _prepare(run: Run) -> list[Arg]:
    return [Arg("data", _out(run, "ingest", "data-path"), wired=True),
            *_default(run, "prepare", "out", PREPARED_DIR, "--out")]


def _check_data(run: Run) -> list[Arg]:
    return [Arg("data", _out(run, "prepare", "train-path"), wired=True)]


def _version_data(run: Run) -> list[Arg]:
    data = Path(_out(run, "ingest", "data-path")).parent.as_posix()
    prepared = Path(_out(run, "prepare", "train-path")).parent.as_posix()
    args = [Arg("paths", [data, prepared], wired=True)]
    if not run.given("version-data", "remote") and run.dvc_remote_is_default():
        args.append(Arg("remote", DVC_REMOTE, "--remote"))
    return args


def _build_training(run: Run) -> list[Arg]:
    args = _default(run, "build-training", "out", BUILD_DIR, "--out")
    if not run.given("build-training", "src_dir"):
        args.append(Arg("src_dir", "."))
    return args


# options whose folder counts by its code files only (data and mlcd.yaml beside the code
# do not change the training code artifact's behaviour)
CODE_PARAMS = {("build-training", "src_dir")}


def _train(run: Run) -> list[Arg]:
    args = [Arg("train", _out(run, "prepare", "train-path"), "--train", wired=True),
            Arg("test", _out(run, "prepare", "test-path"), "--test", wired=True)]
    version = run.outputs.get("version-data", {}).get("data-version")
    if version:
        args.append(Arg("data_version", version, "--data-version", wired=True))
    code = run.outputs.get("build-training", {}).get("version")
    if code:
        # lineage only: the code's content is in the key already; a CI run number is not
        args.append(Arg("code_version", code, "--code-version", wired=True, key=False))
    return args


def _scored(run: Run) -> list[Arg]:
    return [Arg("model_uri", _out(run, "train", "model-uri"), "--model-uri", wired=True),
            Arg("test", _out(run, "prepare", "test-path"), "--test", wired=True)]


def _evaluate(run: Run) -> list[Arg]:
    args = [*_scored(run), *_default(run, "evaluate", "name", run.name, "--name")]
    # the main snapshot: the last run on the main branch writes it, any other branch is
    # compared with it (its content is part of the key there, so a new main re-evaluates)
    saving = run.on_main_branch() and not run.given("evaluate", "save_main_snapshot")
    if saving:
        args.append(Arg("save_main_snapshot", True, "--save-main-snapshot"))
    if not run.given("evaluate", "main_snapshot"):
        args.append(Arg("main_snapshot", MAIN_SNAPSHOT, "--main-snapshot", key=not saving))
    return args


def _register(run: Run) -> list[Arg]:
    return [Arg("model_uri", _out(run, "train", "model-uri"), "--model-uri", wired=True),
            *_default(run, "register", "name", run.name, "--name")]


def _registered(run: Run) -> str:
    uri = run.outputs.get("register", {}).get("registered-uri")
    if uri:
        return uri
    return f"models:/{_out(run, 'register', 'model-name')}/{_out(run, 'register', 'model-version')}"


def _deploy(environment: str) -> Callable[[Run], list[Arg]]:
    def args(run: Run) -> list[Arg]:
        out = [Arg("environment", environment, "--environment"),
               Arg("model_uri", _registered(run), "--model-uri", wired=True),
               *_default(run, "deploy", "name", run.name, "--name"),
               *_default(run, "deploy", "state_dir", STATE_DIR, "--state-dir")]
        return out
    return args


def _smoke(deploy_step: str) -> Callable[[Run], list[Arg]]:
    def args(run: Run) -> list[Arg]:
        return [Arg("url", _out(run, deploy_step, "url"), "--url", wired=True),
                Arg("expect_model_version", _out(run, "register", "model-version"),
                    "--expect-model-version", wired=True),
                Arg("model_uri", _out(run, "train", "model-uri"), "--model-uri", wired=True)]
    return args


def _batch(run: Run) -> tuple[str, bool]:
    """What predict scores and monitor compares: run.batch, else the prepared test set."""
    if run.batch:
        return run.batch, False
    return _out(run, "prepare", "test-path"), True


def _predict(run: Run) -> list[Arg]:
    batch, wired = _batch(run)
    args = [Arg("model_uri", _registered(run), "--model-uri", wired=True)]
    if not run.given("predict", "input"):
        args.append(Arg("input", batch, "--input", wired=wired))
    return [*args, *_default(run, "predict", "output", PREDICTIONS, "--output")]


def _monitor(run: Run) -> list[Arg]:
    batch, wired = _batch(run)
    # the reference is the training snapshot in the same (raw) form as new data arrives
    ref = (_out(run, "ingest", "data-path") if run.batch
           else _out(run, "prepare", "train-path"))
    args = []
    if not run.given("monitor", "reference"):
        args.append(Arg("reference", ref, "--reference", wired=True))
    if not run.given("monitor", "current"):
        args.append(Arg("current", batch, "--current", wired=wired))
    return args


def _fmt_metrics(names: tuple[str, ...]) -> Callable[[dict], str]:
    def cell(report: dict) -> str:
        metrics = report.get("metrics") or {}
        parts = [f"{n} {metrics[n]:.3f}" for n in names
                 if isinstance(metrics.get(n), (int, float)) and not isinstance(metrics[n], bool)]
        return ", ".join(parts[:3])
    return cell


def _outputs_cell(*names: str) -> Callable[[dict], str]:
    def cell(report: dict) -> str:
        outputs = report.get("outputs") or {}
        return ", ".join(f"{n} {outputs[n]}" for n in names if outputs.get(n) not in (None, ""))
    return cell


STEPS: tuple[Step, ...] = (
    Step("ingest", "ingest", (), _ingest, produces=("out",),
         cacheable=lambda run: run.local_source(),
         summary=_outputs_cell("rows", "data-path")),
    Step("validate", "validate", ("ingest",), _validate, gate=True,
         skip=lambda run: None if run.schema or run.given("validate", "schema") else
         "no schema: run `mlcd schema infer` or `mlcd init`",
         summary=_outputs_cell("valid")),
    Step("prepare", "prepare", ("ingest",), _prepare, code=True, produces=("out",),
         summary=_outputs_cell("train-rows", "test-rows")),
    Step("check-data", "check-data", ("prepare",), _check_data, gate=True,
         summary=lambda r: f"{len(r.get('findings') or [])} finding(s)"),
    Step("version-data", "version-data", ("ingest", "prepare"), _version_data,
         summary=_outputs_cell("data-version")),
    Step("build-training", "build-training", (), _build_training, code=True, git=True,
         produces=("out",), summary=_outputs_cell("version")),
    Step("train", "train", ("prepare", "version-data", "build-training"), _train, code=True,
         summary=_outputs_cell("run-id")),
    Step("evaluate", "evaluate", ("train", "prepare"), _evaluate, gate=True,
         summary=_fmt_metrics(("accuracy", "roc_auc", "f1", "rmse", "r2", "mae"))),
    Step("check-fairness", "check-fairness", ("train", "prepare"), _scored, gate=True,
         skip=lambda run: None if run.given("check-fairness", "sensitive") else
         "no sensitive features configured (sensitive:)",
         summary=lambda r: r.get("reason", "")),
    Step("register", "register", ("train",), _register,
         summary=_outputs_cell("model-name", "model-version")),
    Step("deploy-staging", "deploy", ("register",), _deploy("staging"),
         cacheable=lambda run: not run.keep_serving, summary=_outputs_cell("url")),
    Step("smoke-test-staging", "smoke-test", ("deploy-staging",), _smoke("deploy-staging"),
         gate=True, cacheable=lambda run: not run.keep_serving,
         summary=lambda r: r.get("reason", "")[:60]),
    Step("deploy-production", "deploy", ("register", "smoke-test-staging"),
         _deploy("production"), cacheable=lambda run: not run.keep_serving,
         summary=_outputs_cell("url")),
    Step("smoke-test-production", "smoke-test", ("deploy-production",),
         _smoke("deploy-production"), gate=True,
         cacheable=lambda run: not run.keep_serving,
         summary=lambda r: r.get("reason", "")[:60]),
    Step("predict", "predict", ("register", "prepare"), _predict, produces=("output",),
         summary=_outputs_cell("rows", "predictions-path")),
    Step("monitor", "monitor", ("ingest", "prepare"), _monitor, gate=True,
         summary=_outputs_cell("drift", "retrain")),
    Step("report", "report", (), lambda run: [], reads_reports=True,
         summary=_outputs_cell("summary-path")),
)
STEP_IDS = tuple(s.id for s in STEPS)
# steps that stand in for a stage name in --from / --until
_BY_STAGE = {"deploy": ("deploy-staging", "deploy-production"),
             "smoke-test": ("smoke-test-staging", "smoke-test-production")}


# reports in the report folder that belong to one run only
_OWN_REPORTS = (Step("run", "run", (), lambda run: []), Step("serve", "serve", (), lambda run: []))


def step_index(name: str, *, last: bool) -> int:
    """Index of ``name`` (a step id, or a stage name: its first or last step)."""
    name = name.strip()
    if name in _BY_STAGE:
        name = _BY_STAGE[name][-1 if last else 0]
    if name not in STEP_IDS:
        raise ConfigError(f"unknown stage {name!r}; one of: {', '.join(STEP_IDS)}")
    return STEP_IDS.index(name)


def step_report_name(step: Step) -> str:
    """The report file a step leaves: deploy and smoke-test carry their environment."""
    return step.id


# --------------------------------------------------------------------------- the run

@dataclass
class StepRecord:
    step: str
    status: str = NOT_RUN
    seconds: float = 0.0
    cell: str = ""
    reason: str = ""
    exit_code: int = 0
    key: str = ""
    cpu: float = 0.0     # CPU seconds of this process and its waited-for children


@dataclass
class Run:
    root: Path
    config_path: Path | None
    cfg: config_mod.Config
    default_map: dict[str, Any]
    source: str | None
    batch: str | None
    name: str
    schema: str | None
    report_dir: Path
    commands: Commands
    keep_serving: bool = False
    outputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    hasher: cache_mod.Hasher | None = None

    # ---- config queries
    def given(self, command: str, param: str) -> bool:
        """True when mlcd.yaml or MLCD_<PARAM> sets ``param`` of ``command``."""
        if self.default_map.get(command, {}).get(param) not in (None, [], ()):
            return True
        return bool(os.environ.get("MLCD_" + param.upper()))

    def options_of(self, command: str) -> dict[str, Any]:
        """What the config and env give ``command`` (what click will see, minus argv)."""
        opts = dict(self.default_map.get(command, {}))
        cmd = self.commands.command(command)
        for p in getattr(cmd, "params", []):
            env = os.environ.get("MLCD_" + (p.name or "").upper())
            if env and p.name != "report_dir":
                opts[p.name] = env
        return opts

    def on_main_branch(self) -> bool:
        """True on the repository's default branch (CI: a push build of it)."""
        from mlcd_actions.ci import gitinfo

        return gitinfo.context(self.root).is_default_branch

    def local_source(self) -> bool:
        if not self.source:
            return False
        if "://" in self.source and not self.source.startswith("file://"):
            return False  # a remote source may change at any time: always fetched
        return True

    def dvc_remote_is_default(self) -> bool:
        """True when the project's DVC config has no remote but the embedded default one."""
        ours = (self.root / DVC_REMOTE).resolve()
        for name in ("config", "config.local"):
            path = self.root / ".dvc" / name
            with contextlib.suppress(OSError):
                for line in path.read_text(encoding="utf-8").splitlines():
                    key, _, value = line.partition("=")
                    if key.strip() == "url":
                        url = value.strip()
                        if "://" in url or (path.parent / url).resolve() != ours:
                            return False
        return True

    # ---- keys
    def key(self, step: Step, args: list[Arg], *, static: bool,
            upstream: dict[str, str] | None = None) -> str:
        """The cache key of ``step``: exact (after the upstream outputs are known) or static
        (from the project alone, for CI caches; wired values are represented by the
        upstream steps' static keys)."""
        assert self.hasher is not None
        opts = self.options_of(step.command)
        for a in args:
            opts[a.param] = a.value
        excluded = {a.param for a in args if not a.key or (static and a.wired)}
        keyed = {}
        for param, value in sorted(opts.items()):
            if param in excluded:
                continue
            if param in OUTPUT_PARAMS:
                keyed[param] = value
            elif (step.command, param) in CODE_PARAMS and isinstance(value, str):
                folder = Path(value) if Path(value).is_absolute() else self.root / value
                keyed[param] = {"path": value, "code": cache_mod.code_hash(folder)}
            else:
                keyed[param] = self.hasher.value(value)
        material: dict[str, Any] = {"step": step.id, "mlcd": __version__, "options": keyed}
        if step.code:
            material["code"] = cache_mod.code_hash(self.root)
        if step.git:
            from mlcd_actions.ci import gitinfo

            ctx = gitinfo.context(self.root)
            material["git"] = [ctx.sha, ctx.tag, ctx.branch, ctx.run_number,
                               ctx.is_pull_request]
        if step.reads_reports and not static:
            material["reports"] = _report_digest(self.report_dir)
        if static:
            material["upstream"] = upstream or {}
        return cache_mod.digest(material)


def _report_digest(report_dir: Path) -> dict[str, str]:
    out = {}
    if report_dir.is_dir():
        for p in sorted(report_dir.glob("*.json")):
            if p.stem not in ("report", "run", "serve"):
                out[p.name] = cache_mod.sha256_file(p)
    return out


def load_config(config_path: str | os.PathLike | None,
                commands: Commands) -> tuple[Path | None, config_mod.Config, dict[str, Any]]:
    """Read and validate the config against every command's options."""
    path = config_mod.find(config_path)
    cfg = config_mod.load(path)
    default_map = config_mod.validate(cfg, commands.spec())
    return path, cfg, default_map


def _argv(step: Step, args: list[Arg], config_path: Path | None, report_dir: Path) -> list[str]:
    argv = ["--config", str(config_path)] if config_path else []
    argv += [step.command, "--report-dir", str(report_dir)]
    positional: list[str] = []
    for a in args:
        values = a.value if isinstance(a.value, (list, tuple)) else [a.value]
        if a.flag is None:
            positional += [str(v) for v in values]
        else:
            for v in values:
                argv += [a.flag] if v is True else [a.flag, str(v)]
    return argv + (["--", *positional] if positional else [])


def _paths_in(value: Any) -> list[str]:
    if isinstance(value, (list, tuple)):
        return [p for v in value for p in _paths_in(v)]
    if isinstance(value, str) and value:
        return [v.strip() for v in value.split(",") if v.strip()] if "," in value else [value]
    return []


def _produced(step: Step, args: list[Arg], run: Run, report: dict) -> list[str]:
    files: list[str] = []
    opts = run.options_of(step.command)
    opts.update({a.param: a.value for a in args})
    for param in step.produces:
        files += _paths_in(opts.get(param))
    outputs = report.get("outputs") or {}
    for name in PATH_OUTPUTS:
        files += _paths_in(outputs.get(name))
    files += [a for a in report.get("artifacts") or [] if isinstance(a, str)]
    return [f for f in files if (run.root / f).exists()]


@dataclass(frozen=True)
class Settings:
    """What ``mlcd run`` is asked to run on: the config, the data, the names, the reports."""

    config_path: str | None = None
    source: str | None = None
    batch: str | None = None
    name: str | None = None
    schema: str | None = None
    report_dir: str = ".mlcd/reports"
    keep_serving: bool = False


def execute_pipeline(settings: Settings, *, until: str | None, from_: str | None, force: bool,
                     cache_dir: str, echo: Callable[[str], None],
                     commands: Commands) -> StageResult:
    """Run the steps in order; return the ``run`` StageResult (summary table, verdict)."""
    t_start = time.monotonic()
    keep_serving = settings.keep_serving
    with _open_run(settings, commands) as run:
        root = run.root
        first = step_index(from_, last=False) if from_ else 0
        if STEPS[first].command == "smoke-test":
            first -= 1  # a smoke test needs its deployment running: deploy again first
        last = step_index(until, last=True) if until else len(STEPS) - 1
        if first > last:
            raise ConfigError(f"--from {from_} comes after --until {until}")
        store = cache_mod.Cache(cache_dir, root)
        records = [StepRecord(s.id) for s in STEPS]
        invoke = commands.invoke
        failed: StepRecord | None = None
        deployed: list[str] = []
        # reports of the steps this run covers are rewritten or restored below; a stale one
        # (a step that will not run because an earlier one fails) must not reach `report`
        report_dir_abs = root / run.report_dir
        # ... and so must the reports of the previous run itself and of the servers it
        # stopped (`mlcd serve` writes serve.json when it stops)
        for step in [*STEPS[first:], *_OWN_REPORTS]:
            for name in {step_report_name(step), step.report}:
                for suffix in (".json", ".md"):
                    with contextlib.suppress(OSError):
                        (report_dir_abs / f"{name}{suffix}").unlink()
        warmup = _warm_mlflow(run, echo) if last >= STEP_IDS.index("train") else None
        try:
            for i, step in enumerate(STEPS):
                rec = records[i]
                if i > last:
                    break
                if failed is not None and step.id != "report":
                    continue
                if warmup is not None and i >= STEP_IDS.index("train"):
                    _wait(warmup)
                    warmup = None
                _run_step(run, step, rec, store, echo=echo, invoke=invoke,
                          force=force or i >= first and from_ is not None,
                          before_from=i < first, index=i, total=last + 1)
                if rec.status == PASSED and step.command == "deploy":
                    deployed.append(step.id.split("-", 1)[1])
                if rec.status in (FAILED, ERROR) and failed is None:
                    failed = rec
        finally:
            if warmup is not None:
                _wait(warmup)
            if deployed and not keep_serving:
                _stop_deployments(run, deployed, echo)
        return _result(run, records, failed, t_start, keep_serving, deployed)


@contextlib.contextmanager
def _open_run(settings: Settings, commands: Commands):
    """The Run, in the project folder (the config's) while the block runs."""
    path, cfg, default_map = load_config(settings.config_path, commands)
    root = (path.parent if path else Path.cwd()).resolve()
    before = Path.cwd()
    os.chdir(root)
    try:
        yield _make_run(root, path, cfg, default_map, source=settings.source,
                        batch=settings.batch, name=settings.name, schema=settings.schema,
                        report_dir=settings.report_dir, keep_serving=settings.keep_serving,
                        commands=commands)
    finally:
        os.chdir(before)


def _make_run(root: Path, path: Path | None, cfg, default_map, *, source, batch, name, schema,
              report_dir, keep_serving, commands: Commands) -> Run:
    run_opts = default_map.get("run", {})
    source = source or run_opts.get("source") or default_map.get("ingest", {}).get("source_uri")
    if not source:
        raise ConfigError(f"{path or 'mlcd.yaml'}: no data source: set run.source (or "
                          "ingest.source-uri), or pass --source")
    batch = batch or run_opts.get("batch")
    name = (name or run_opts.get("name") or cfg.get("project") or root.name)
    name = str(name).strip().replace(" ", "-")
    if schema is None and (root / "schema.yaml").is_file():
        schema = "schema.yaml"
    run = Run(root=root, config_path=path.resolve() if path else None, cfg=cfg,
              default_map=default_map, source=str(source), batch=batch, name=name,
              schema=schema, report_dir=Path(report_dir), commands=commands,
              keep_serving=keep_serving)
    run.hasher = cache_mod.Hasher(root)
    return run


def _warm_mlflow(run: Run, echo):
    """Create the embedded MLflow store (its schema migrations take seconds) in a
    background process while the data stages run; ``train`` waits for it. Only for the
    default SQLite store, only when it does not exist yet."""
    import subprocess
    import sys

    if os.environ.get("MLFLOW_TRACKING_URI") or any(
            run.given(c, "tracking_uri") for c in ("train", "register", "evaluate")):
        return None
    if (run.root / WORK / "mlflow.db").exists():
        return None
    code = ("from mlcd_actions.models import tracking; tracking.configure(); import mlflow; "
            "c = mlflow.MlflowClient(); c.search_experiments(max_results=1); "
            "c.search_registered_models(max_results=1)")
    try:
        proc = subprocess.Popen([sys.executable, "-c", code], cwd=run.root,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                stdin=subprocess.DEVNULL)
    except OSError:
        return None
    echo("mlcd run: creating the MLflow store (.mlcd/mlflow.db) in the background")
    return proc


def _wait(proc) -> None:
    import subprocess

    try:
        proc.wait(timeout=600)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _cpu() -> float:
    import resource

    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def _read_report(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _run_step(run: Run, step: Step, rec: StepRecord, store: cache_mod.Cache, *, echo,
              invoke, force: bool, before_from: bool, index: int, total: int) -> None:
    t0 = time.monotonic()
    report_path = run.report_dir / f"{step_report_name(step)}.json"
    assert run.hasher is not None
    run.hasher.forget()
    reason = step.skip(run)
    if reason:
        rec.status, rec.reason = SKIPPED, reason
        echo(f"mlcd run: [{index + 1}/{total}] {step.id} skipped — {rec.reason}")
        return
    try:
        args = step.args(run)
    except ConfigError as exc:
        rec.status, rec.exit_code, rec.reason = ERROR, exc.exit_code, exc.one_line()
        echo(f"mlcd {step.command}: failed — {rec.reason}")
        return
    rec.key = key = run.key(step, args, static=False)
    entry = None
    if not force and step.cacheable(run):
        entry = store.lookup(step.id, key)
    if entry is not None:
        store.restore(entry, run.report_dir)
        run.outputs[step.id] = entry.outputs
        data = _read_report(report_path) or {}
        rec.status, rec.reason = CACHED, f"inputs unchanged (key {key[:12]})"
        rec.cell = step.summary(data) if step.summary else ""
        rec.seconds = time.monotonic() - t0
        echo(f"mlcd run: [{index + 1}/{total}] {step.id} skipped — {rec.reason}")
        return
    if before_from:
        data = _read_report(report_path)
        if data is None or data.get("status") not in (PASSED, SKIPPED):
            rec.status, rec.exit_code = ERROR, 2
            rec.reason = (f"--from: {step.id} has no passed report in {run.report_dir} and "
                          "no cache entry; run the earlier stages first")
            echo(f"mlcd {step.command}: failed — {rec.reason}")
            return
        run.outputs[step.id] = data.get("outputs") or {}
        rec.status, rec.reason = CACHED, "before --from: previous outputs reused"
        rec.cell = step.summary(data) if step.summary else ""
        return

    echo(f"mlcd run: [{index + 1}/{total}] {step.id}")
    own = run.report_dir / f"{step.report}.json"
    for p in {own, report_path}:
        for suffix in (".json", ".md"):
            with contextlib.suppress(OSError):
                p.with_suffix(suffix).unlink()
    cpu0 = _cpu()
    code = invoke(_argv(step, args, run.config_path, run.report_dir))
    rec.cpu = _cpu() - cpu0
    if own != report_path:
        for suffix in (".json", ".md"):
            src = own.with_suffix(suffix)
            if src.is_file():
                os.replace(src, report_path.with_suffix(suffix))
    data = _read_report(report_path) or {}
    rec.seconds = time.monotonic() - t0
    rec.exit_code = code
    status = data.get("status") or (PASSED if code == 0 else ERROR)
    rec.reason = data.get("reason", "")
    if code != 0:
        rec.status = FAILED if status == FAILED or code == 1 else ERROR
        if not data:
            rec.reason = f"exit {code} (usage or configuration error; see above)"
        return
    rec.status = status
    outputs = data.get("outputs") or {}
    run.outputs[step.id] = outputs
    rec.cell = step.summary(data) if step.summary else ""
    if status in (PASSED, SKIPPED) and step.cacheable(run):
        store.store(step.id, key, status=status, exit_code=code, outputs=outputs,
                    reports={step_report_name(step): report_path},
                    files=_produced(step, args, run, data))


def static_key(step_id: str, settings: Settings, *, commands: Commands) -> str:
    """The CI cache key of a step: computable from the repository alone (no stage runs)."""
    with _open_run(replace(settings, keep_serving=False), commands) as run:
        keys: dict[str, str] = {}
        target = STEP_IDS[step_index(step_id, last=True)]
        for step in STEPS:
            deps = STEP_IDS[:STEP_IDS.index(step.id)] if step.reads_reports else step.deps
            args = step.args(_Placeholder(run))  # type: ignore[arg-type]
            keys[step.id] = run.key(step, args, static=True,
                                    upstream={d: keys[d] for d in deps})
            if step.id == target:
                return keys[step.id]
    raise ConfigError(f"unknown stage {step_id!r}")


class _Placeholder:
    """A Run whose upstream outputs are placeholders (the static key leaves them out)."""

    def __init__(self, run: Run) -> None:
        self._run = run
        self.outputs = _AnyOutputs()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._run, name)


class _AnyOutputs(dict):
    def get(self, key, default=None):  # noqa: D401 - every step "has" every output
        return _AnyValue()

    def __missing__(self, key):
        return _AnyValue()


class _AnyValue(dict):
    def get(self, key, default=None):
        return f"<{key}>"


def _stop_deployments(run: Run, environments: list[str], echo) -> None:
    from mlcd_actions.deploy import get_target
    from mlcd_actions.deploy.base import Deployment, load_state

    state_dir = run.default_map.get("deploy", {}).get("state_dir") or STATE_DIR
    for env in environments:
        with contextlib.suppress(Exception):
            dep = Deployment.from_dict(load_state(env, state_dir).get("current"))
            if dep is not None:
                get_target(dep.target, state_dir=state_dir).stop(dep)
                echo(f"mlcd run: stopped the {env} deployment at {dep.url} "
                     "(--keep-serving keeps it)")


def _result(run: Run, records: list[StepRecord], failed: StepRecord | None, t_start: float,
            keep_serving: bool, deployed: list[str]) -> StageResult:
    total = time.monotonic() - t_start
    if deployed and not keep_serving:
        _forget_stopped_urls(records, deployed)
    ran = [r for r in records if r.status != NOT_RUN]
    cached = [r for r in ran if r.status == CACHED]
    rows = [[r.step, "skipped (cached)" if r.status == CACHED else r.status,
             round(r.seconds, 1), r.cell or r.reason] for r in records if r.status != NOT_RUN]
    table = Table("mlcd run", ["stage", "status", "seconds", "key output"], rows)
    summary_md = run.root / run.report_dir / "summary.md"
    result = StageResult("run", tables=[table])
    result.metrics = {"stages": len(ran), "cached": len(cached),
                      "ran": len(ran) - len(cached), "seconds": round(total, 2),
                      "cpu_seconds": round(sum(r.cpu for r in records), 2)}
    result.outputs = {"summary-path": str(summary_md) if summary_md.is_file() else "",
                      "stages-run": ",".join(r.step for r in ran if r.status != CACHED),
                      "stages-cached": ",".join(r.step for r in cached)}
    result.details["steps"] = [r.__dict__ for r in records]
    if keep_serving and deployed:
        result.details["serving"] = deployed
    where = f"; report: {summary_md}" if summary_md.is_file() else ""
    if failed is not None:
        result.status = FAILED if failed.status == FAILED else ERROR
        result.exit_code = failed.exit_code or 1
        result.reason = f"{failed.step} {failed.status}: {failed.reason}{where}"
    else:
        done = len(ran) - len(cached)
        idle = [r.step for r in ran if r.status == SKIPPED]
        note = f"; {', '.join(idle)} skipped (not configured)" if idle else ""
        result.reason = (f"{len(ran)} stage(s) passed ({done} ran, {len(cached)} skipped "
                         f"unchanged{note}) in {total:.1f}s{where}")
    return result


_URL = re.compile(r"\s*(?:at\s+)?https?://\S+")


def _forget_stopped_urls(records: list[StepRecord], environments: list[str]) -> None:
    """The servers of ``environments`` were stopped at the end of the run: their URLs are
    dead, so the table says so instead of showing them."""
    for rec in records:
        env = None
        for e in environments:
            if rec.step in (f"deploy-{e}", f"smoke-test-{e}"):
                env = e
        if env is None:
            continue
        if rec.step.startswith("deploy-"):
            rec.cell = f"{env}: stopped after the run (--keep-serving keeps it)"
        else:
            rec.cell = _URL.sub("", rec.cell or rec.reason)
            rec.reason = _URL.sub("", rec.reason)


def render_table(result: StageResult) -> str:
    """The summary table as aligned plain text for the terminal."""
    table = result.tables[0]
    cells = [table.columns] + [[str(c) for c in row] for row in table.rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(table.columns))]
    widths[-1] = min(widths[-1], 70)
    lines = []
    for n, row in enumerate(cells):
        lines.append("  ".join(str(c)[:70].ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)
