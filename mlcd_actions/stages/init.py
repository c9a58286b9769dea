"""``mlcd init``: scaffold mlcd into a repository.

Writes a commented ``mlcd.yaml`` whose keys are checked against the CLI before it is
written, an inferred pandera schema (the ``schema infer`` stage), a PII policy (GDPR rules;
columns that hold personal data must be hashed), DVC with a local remote, and the CI
callers (GitHub workflows or ``.gitlab-ci.yml``). A file that exists is left alone and reported as skipped unless
``force``: re-running never loses a user's edits.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from mlcd_actions import scaffold
from mlcd_actions.core.errors import ConfigError, DataError
from mlcd_actions.core.files import write_text
from mlcd_actions.core.options import Commands
from mlcd_actions.core.results import StageResult, Table

STAGE = "init"
DATA_SUFFIXES = (".csv", ".tsv", ".parquet", ".pq", ".jsonl", ".json")
_LABEL_NAMES = ("label", "target", "y", "class", "outcome", "approved", "default", "churn",
                "price", "saleprice", "sale_price", "survived", "is_fraud", "fraud")
_SENSITIVE = re.compile(r"^(sex|gender|race|ethnicity|ethnic_group|age_band|age_group|"
                        r"religion|nationality|disability|marital_status)$", re.I)
_ID = re.compile(r"(^id$|_id$|^id_)", re.I)
WRITTEN, SKIPPED, OVERWRITTEN = "written", "skipped (exists; --force overwrites)", "overwritten"


def find_data(root: Path) -> Path:
    """The one data file under data/ (or the project root) when --data is not given."""
    for folder in (root / "data", root):
        if folder.is_dir():
            found = sorted(p for p in folder.iterdir()
                           if p.is_file() and p.suffix.lower() in DATA_SUFFIXES)
            if len(found) == 1:
                return found[0]
            if len(found) > 1:
                names = ", ".join(p.name for p in found[:5])
                raise ConfigError(f"several data files in {folder} ({names}): pass --data PATH")
    raise ConfigError(f"no data file (CSV, Parquet, JSON lines) in {root / 'data'} or {root}: "
                      "pass --data PATH")


def guess_label(columns: list[str], explicit: str | None) -> str:
    if explicit:
        if explicit not in columns:
            raise DataError(f"--label {explicit}: no such column (columns: "
                            f"{', '.join(columns[:20])})", file=None)
        return explicit
    lower = {c.lower(): c for c in columns}
    for name in _LABEL_NAMES:
        if name in lower:
            return lower[name]
    return columns[-1]


def guess_task(series) -> str:
    import pandas as pd

    if pd.api.types.is_bool_dtype(series) or not pd.api.types.is_numeric_dtype(series):
        return "classification"
    values = series.dropna()
    if pd.api.types.is_integer_dtype(series) and values.nunique() <= 20:
        return "classification"
    if pd.api.types.is_float_dtype(series) and values.nunique() <= 2:
        return "classification"
    return "regression"


def profile(data: Path, label: str | None, sensitive: Iterable[str]) -> dict[str, Any]:
    """What the config needs to know about the data."""
    from mlcd_actions.data import pii
    from mlcd_actions.data import tables as tabular

    dupes = tabular.duplicate_columns(data)
    if dupes:
        raise DataError(f"{data}: duplicate column name {dupes[0]!r} (mlcd ingest refuses it); "
                        "rename the columns first", file=str(data))
    df = tabular.read_table(data)
    if df.empty:
        raise DataError(f"{data}: no rows", file=str(data))
    columns = [str(c) for c in df.columns]
    label = guess_label(columns, label)
    if df[label].dropna().nunique() < 2:
        raise DataError(f"{data}: label '{label}' has fewer than two distinct values; "
                        "pass --label COL", file=str(data))
    task = guess_task(df[label])
    sens = list(sensitive) or [c for c in columns if _SENSITIVE.match(c) and c != label]
    for col in sens:
        if col not in columns:
            raise DataError(f"--sensitive {col}: no such column in {data}", file=str(data))
    ids = [c for c in columns if _ID.search(c) and c != label
           and df[c].notna().all() and df[c].is_unique]
    scan = pii.scan_frame(df.head(5000))
    pii_cols = sorted({h.column for h in scan.hits if h.column != label})
    return {"rows": len(df), "columns": columns, "label": label, "task": task,
            "sensitive": sens, "id": ids[0] if ids else None, "pii": pii_cols}


def config_text(*, project: str, source: str, prof: dict[str, Any], schema: str | None,
                policy: str | None) -> str:
    """The commented mlcd.yaml."""
    task, label = prof["task"], prof["label"]
    sens = prof["sensitive"]
    lines = [
        "# mlcd.yaml — written by `mlcd init`; edit freely (re-running init keeps your edits).",
        "# Keys are the options of `mlcd <stage> --help` (kebab-case; a repeatable option is a",
        "# list). A top-level key applies to every stage that has that option. Precedence:",
        "# command line > MLCD_<OPTION> env var > this file. ${VAR} reads the environment",
        "# (secrets are masked). `mlcd run` runs every stage locally; CI runs the same stages.",
        "version: 1",
        f"project: {project}",
        "",
        f"label: {label}                  # the column to predict ({task})",
    ]
    if sens:
        lines.append(f"sensitive: [{', '.join(sens)}]     # bias (check-data) and fairness "
                     "(check-fairness) per group")
    else:
        lines.append("# sensitive: [sex, age_band]     # columns for bias and fairness checks")
    lines += [
        f"name: {project}                 # registered model name",
        "",
        "run:",
        f"  source: {source}              # what ingest fetches: a path, https://, s3://, "
        "or a SQLAlchemy URL",
        "  # batch: data/new.csv          # scored by predict and compared by monitor "
        "(default: the test set)",
        "",
        "validate:",
        f"  schema: {schema}" if schema else "  # schema: schema.yaml          "
                                             "# `mlcd schema infer DATA --out schema.yaml`",
        "",
        "prepare:",
        "  # transform: mypackage.features:prepare   # your function(df) -> df",
        "  test-size: 0.2",
    ]
    if prof["id"]:
        lines.append(f"  split-by-id: {prof['id']}        # a row keeps its side across data "
                     "versions")
    lines += ["", "check-data:"]
    found = (f"personal data found in: {', '.join(prof['pii'])} — hash or drop it in prepare"
             if prof["pii"] else "GDPR rules; no personal data found")
    lines += [f"  pii-policy: {policy}        # {found}"]
    if sens:
        lines += ["  min-group-size: 20             # every group of a sensitive feature"]
    lines += [
        "",
        "train:",
        "  # entrypoint: mypackage.train:train        # function(train_df, params) -> model",
        "  # command: python train.py                 # or any command (see docs/training-"
        "contract.md)",
        f"  estimator: {'logistic_regression' if task == 'classification' else 'ridge'}"
        "        # built-in model while you have none",
        f"  task: {task}",
        "",
        "evaluate:",
        "  # threshold: [" + ("balanced_accuracy>=0.8" if task == "classification"
                              else "r2>=0.5") + "]   # your own bar, once you know it",
        "  min-lift:                       # better than a model that learned nothing: the "
        + ("majority class /" if task == "classification" else "mean"),
        "                                  # " + ("stratified guess" if task == "classification"
                                                  else "of the label") + " scored on the same test set",
        f"    - {'balanced_accuracy' if task == 'classification' else 'r2'}=0.1",
        "  max-drop:                       # against models:/<name>@champion, else the model the "
        "main branch",
        "                                  # last produced (.mlcd/main, written by `mlcd run` "
        "on main)",
        f"    - {'balanced_accuracy' if task == 'classification' else 'r2'}=0.02",
    ]
    if sens and task == "classification":
        lines += ["", "check-fairness:", "  threshold:",
                  "    - demographic_parity_difference<=0.2"]
    lines += [
        "",
        "deploy:",
        "  target: local                  # local | docker | kubernetes | command",
        "",
        "smoke-test:",
        "  latency-budget-ms: 1000",
        "",
        "monitor:",
        "  alpha: 0.05                     # drift alarms: each feature is tested for a change of",
        "                                  # distribution, 5% false alarms for the whole batch",
        "                                  # whatever its size (docs/stages/monitor.md)",
        "  # threshold: [psi<=0.2]         # or your own drift gates instead",
        "",
    ]
    return "\n".join(lines)


POLICY_FILE = "pii-policy.yaml"


def policy_text(pii_columns: list[str]) -> str:
    """The PII policy init writes: GDPR rules, personal-data columns must be hashed."""
    head = ("# Compliance policy for `mlcd check-data` (written by `mlcd init`).\n"
            "# Per column: forbid | allow | must-be-hashed. GDPR forbids personal data in any\n"
            "# other column.\n")
    if not pii_columns:
        return head + "# No column looked like personal data when init ran.\nrules: [gdpr]\n" \
                      "columns: {}\n"
    return (head + "# These columns look like personal data: hash them in a prepare transform "
            "(or drop them)\n# before training.\nrules: [gdpr]\ncolumns:\n"
            + "".join(f"  {c}: must-be-hashed\n" for c in pii_columns))


def readable(path: Path) -> Path:
    """Give a written file the usual mode (0644 under the usual umask), not mkstemp's 0600."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o666 & ~umask)
    return path


class _Writer:
    def __init__(self, root: Path, force: bool) -> None:
        self.root = root
        self.force = force
        self.rows: list[list[str]] = []

    def exists(self, rel: str) -> bool:
        return (self.root / rel).exists()

    def skip(self, rel: str) -> bool:
        """True (and recorded) when ``rel`` exists and --force is off."""
        if self.exists(rel) and not self.force:
            self.rows.append([rel, SKIPPED])
            return True
        return False

    def write(self, rel: str, text: str) -> None:
        if self.skip(rel):
            return
        state = OVERWRITTEN if self.exists(rel) else WRITTEN
        readable(write_text(self.root / rel, text))
        self.rows.append([rel, state])


def run(directory: str | os.PathLike = ".", *, ci: str = "github", data: str | None = None,
        force: bool = False, label: str | None = None, sensitive: Iterable[str] = (),
        repo: str = scaffold.DEFAULT_REPO, ref: str = scaffold.DEFAULT_REF,
        dvc: bool = True, commands: Commands) -> StageResult:
    """Scaffold mlcd into ``directory``; ``commands`` (the CLI's) check the generated
    mlcd.yaml before it is written."""
    from mlcd_actions.data import schemas

    root = Path(directory).resolve()
    if not root.is_dir():
        raise ConfigError(f"{directory}: not a folder")
    if ci not in ("github", "gitlab", "none"):
        raise ConfigError(f"--ci {ci}: use github, gitlab or none")
    data_path = Path(data) if data else find_data(root)
    if not data_path.is_absolute():
        data_path = (Path.cwd() / data_path)
    if not data_path.exists():
        raise DataError(f"--data {data}: no such file", file=str(data))
    try:
        source = data_path.resolve().relative_to(root).as_posix()
    except ValueError:
        source = str(data_path.resolve())
    prof = profile(data_path, label, sensitive)
    project = re.sub(r"[^A-Za-z0-9_.-]+", "-", root.name).strip("-") or "model"
    w = _Writer(root, force)
    result = StageResult(STAGE)

    # the schema, inferred as `mlcd schema infer` does
    if not w.skip("schema.yaml"):
        existed = w.exists("schema.yaml")
        schemas.write_inferred(str(data_path), str(root / "schema.yaml"))
        readable(root / "schema.yaml")
        w.rows.append(["schema.yaml", OVERWRITTEN if existed else WRITTEN])

    # the PII policy, always (so mlcd.yaml never names a file init did not write): GDPR rules,
    # and the columns that hold personal data must be hashed
    policy = POLICY_FILE
    w.write(policy, policy_text(prof["pii"]))
    if prof["pii"]:
        result.warnings.append(f"personal data in {', '.join(prof['pii'])}: check-data fails "
                               f"until the column(s) are hashed or dropped in prepare ({policy})")

    # mlcd.yaml, checked against the CLI before it is written
    text = config_text(project=project, source=source, prof=prof, schema="schema.yaml",
                       policy=policy)
    _check_config(text, commands)
    w.write("mlcd.yaml", text)

    # CI callers
    files = {"github": scaffold.GITHUB, "gitlab": scaffold.GITLAB}.get(ci, {})
    for name, rel in files.items():
        w.write(rel, scaffold.render(name, repo=repo, ref=ref))

    # .gitignore: the local work folder never goes to git, except the DVC files that
    # version the data (.mlcd/data/*.dvc), which are committed as in any DVC project
    state = _update_gitignore(root / ".gitignore")
    if state:
        w.rows.append([".gitignore", state])

    # DVC with a local remote
    if dvc:
        w.rows.append([".dvc/", _dvc_init(root)])

    result.tables.append(Table("mlcd init", ["file", "action"], w.rows))
    written = [r[0] for r in w.rows if r[1] in (WRITTEN, OVERWRITTEN)]
    skipped = [r[0] for r in w.rows if r[1] == SKIPPED]
    result.outputs = {"config": "mlcd.yaml", "label": prof["label"], "task": prof["task"],
                      "sensitive": ",".join(prof["sensitive"]), "written": ",".join(written),
                      "skipped": ",".join(skipped)}
    result.details["profile"] = {k: v for k, v in prof.items() if k != "columns"}
    result.reason = (f"{len(written)} file(s) written, {len(skipped)} kept"
                     + (f" ({', '.join(skipped)}; --force overwrites)" if skipped else "")
                     + f"; label {prof['label']} ({prof['task']}); next: mlcd run")
    return result


GITIGNORE_BLOCK = (
    "# mlcd local state (MLflow store, cache, reports, DVC remote) stays out of git;\n"
    "# the DVC files that version the data (.mlcd/data/*.dvc) are committed\n"
    ".mlcd/*\n"
    "!.mlcd/data/\n"
    ".mlcd/data/*\n"
    "!.mlcd/data/*.dvc\n"
    "!.mlcd/data/.gitignore\n"
)
_BARE_RULES = (".mlcd", ".mlcd/", "/.mlcd", "/.mlcd/", ".mlcd/*", "/.mlcd/*",
               "# mlcd local state (MLflow store, cache, reports, DVC remote)")


def _update_gitignore(path: Path) -> str | None:
    """Add :data:`GITIGNORE_BLOCK`, replacing a rule that ignores the whole of ``.mlcd/``
    (what an older init wrote: DVC then refuses ``.mlcd/data/*.dvc`` as git-ignored).
    Returns what was done, None when the file is up to date."""
    current = path.read_text(encoding="utf-8") if path.exists() else ""
    if GITIGNORE_BLOCK in current:
        return None
    kept = [ln for ln in current.splitlines(keepends=True) if ln.strip() not in _BARE_RULES]
    text = "".join(kept)
    sep = "" if not text or text.endswith("\n") else "\n"
    readable(write_text(path, text + sep + GITIGNORE_BLOCK))
    return "updated (.mlcd/ ignored except .mlcd/data/*.dvc)"


def _check_config(text: str, commands: Commands) -> None:
    """Validate the generated config against every command's options (never write a
    config the CLI would refuse)."""
    import tempfile

    from mlcd_actions.core import config as config_mod

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "mlcd.yaml"
        path.write_text(text, encoding="utf-8")
        cfg = config_mod.load(path)
        try:
            config_mod.validate(cfg, commands.spec())
        except ConfigError as exc:  # a bug in this template, not the user's fault
            raise RuntimeError(f"generated mlcd.yaml is invalid: {exc.one_line()}") from exc


def _dvc_init(root: Path) -> str:
    if (root / ".dvc").is_dir():
        return "skipped (exists)"
    import sys

    in_git = subprocess.run(["git", "rev-parse", "--show-toplevel"], cwd=root,
                            capture_output=True, text=True).returncode == 0
    cmd = [sys.executable, "-m", "dvc", "init", "-q"] + ([] if in_git else ["--no-scm"])
    done = subprocess.run(cmd, cwd=root, capture_output=True, text=True)
    if done.returncode != 0:
        raise ConfigError(f"dvc init failed: {(done.stderr or done.stdout).strip()[:300]}")
    remote = [sys.executable, "-m", "dvc", "remote", "add", "-d", "mlcd",
              str(Path(".mlcd") / "dvc-remote")]
    done = subprocess.run(remote, cwd=root, capture_output=True, text=True)
    if done.returncode != 0:
        raise ConfigError(f"dvc remote add failed: {(done.stderr or done.stdout).strip()[:300]}")
    return ("dvc init" + ("" if in_git else " --no-scm") + ", remote mlcd -> .mlcd/dvc-remote "
            "(local runs only; CI needs a persistent one: "
            "dvc remote add -d -f mlcd s3://|gs://|azure://|ssh://...)")
