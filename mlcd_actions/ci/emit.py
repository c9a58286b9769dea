"""CI emitters: GitHub Actions outputs, job summary and annotations; GitLab dotenv and JUnit.

* GitHub (``GITHUB_ACTIONS=true``): every output is appended to ``$GITHUB_OUTPUT``
  (kebab-case names, as the action's ``outputs:`` map them), the markdown report to
  ``$GITHUB_STEP_SUMMARY``, and findings become ``::error file=..,line=..::`` lines.
* GitLab (``GITLAB_CI=true``): ``<report-dir>/<stage>.env`` holds ``MLCD_<OUTPUT>=value``
  lines for ``artifacts:reports:dotenv`` — the next job's ``mlcd`` reads them as its
  ``MLCD_<OPTION>`` env vars — and ``<report-dir>/<stage>.junit.xml`` one test case per
  gate for ``artifacts:reports:junit``.

The JUnit file is written everywhere (it is cheap and other CI systems read it too).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape, quoteattr

from mlcd_actions.core import secrets
from mlcd_actions.core.files import write_text
from mlcd_actions.core.gates import FAILED, SKIPPED
from mlcd_actions.core.reporting import report_name, to_markdown
from mlcd_actions.core.results import ERROR, SEV_ERROR, SEV_NOTICE, SEV_WARNING, StageResult

SUMMARY_CAP = 1024 * 1024  # GitHub refuses a step summary over 1 MiB


def platform(env: Mapping[str, str] | None = None) -> str | None:
    env = os.environ if env is None else env
    if env.get("GITHUB_ACTIONS") == "true":
        return "github"
    if env.get("GITLAB_CI") == "true":
        return "gitlab"
    return None


def in_ci(env: Mapping[str, str] | None = None) -> bool:
    env = os.environ if env is None else env
    return bool(env.get("CI")) or platform(env) is not None


def deploy_target(explicit: str | None = None, env: Mapping[str, str] | None = None) -> str:
    """The deploy target a CD pipeline will use, as ``mlcd deploy`` resolves it: ``explicit``
    (a workflow/template input), else ``MLCD_TARGET``, else ``deploy.target`` (or a top-level
    ``target``) in mlcd.yaml (``MLCD_CONFIG``), else ``local``. The pipelines skip the image
    build when it is ``local`` (that target serves the registered model, not an image)."""
    from mlcd_actions.core import config

    env = os.environ if env is None else env
    if explicit:
        return explicit
    if env.get("MLCD_TARGET"):
        return env["MLCD_TARGET"]
    cfg = config.load(config.find(env.get("MLCD_CONFIG") or None))
    return str(cfg.section("deploy").get("target") or cfg.get("target") or "local")


def output_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    return str(value)


def env_name(output: str) -> str:
    return "MLCD_" + output.replace("-", "_").replace(".", "_").upper()


# --------------------------------------------------------------------------- GitHub

def _escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_prop(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


def annotation(severity: str, message: str, *, file: str | None = None,
               line: int | None = None, title: str | None = None) -> str:
    """A workflow command line: ``::error file=schema.yaml,line=12,title=..::message``."""
    kind = {SEV_ERROR: "error", SEV_WARNING: "warning", SEV_NOTICE: "notice"}.get(severity,
                                                                                  "notice")
    props = []
    if file:
        props.append(f"file={_escape_prop(file)}")
    if line:
        props.append(f"line={int(line)}")
    if title:
        props.append(f"title={_escape_prop(title)}")
    head = f"::{kind} {','.join(props)}" if props else f"::{kind}"
    return f"{head}::{_escape_data(secrets.mask(message))}"


def github_outputs(outputs: Mapping[str, Any], path: str) -> None:
    with open(path, "a", encoding="utf-8") as fh:
        for name, value in outputs.items():
            text = secrets.mask(output_value(value))
            if "\n" in text:
                delim = f"ghadelimiter_{uuid.uuid4().hex}"
                fh.write(f"{name}<<{delim}\n{text}\n{delim}\n")
            else:
                fh.write(f"{name}={text}\n")


def github_summary(markdown: str, path: str) -> None:
    current = Path(path).stat().st_size if Path(path).exists() else 0
    data = markdown.encode("utf-8")
    if current + len(data) > SUMMARY_CAP:
        data = (b"_mlcd: this stage's summary was left out to stay under GitHub's 1 MiB cap; "
                b"see the report artifact._\n")
    with open(path, "ab") as fh:
        fh.write(data + b"\n")


# --------------------------------------------------------------------------- GitLab

def dotenv(outputs: Mapping[str, Any]) -> str:
    lines = []
    for name, value in outputs.items():
        text = secrets.mask(output_value(value)).replace("\n", " ")
        lines.append(f"{env_name(name)}={text}")
    return "\n".join(lines) + ("\n" if lines else "")


def _number(value: Any) -> str:
    return "-" if value is None else f"{value:.6g}" if isinstance(value, float) else str(value)


def gate_case_names(gates) -> list[str]:
    """One unique, stable JUnit case name per gate: ``accuracy >= 0.8``, ``roc_auc max drop
    0.02`` — the threshold and the max-drop gate of one metric differ; a repeated gate gets
    `` #2``. No value in the name: GitLab matches cases across pipelines by name."""
    names: list[str] = []
    seen: dict[str, int] = {}
    for g in gates:
        base = " ".join(f"{g.metric} {g.threshold}".split()) or g.metric
        seen[base] = seen.get(base, 0) + 1
        names.append(base if seen[base] == 1 else f"{base} #{seen[base]}")
    return names


def junit(result: StageResult, duration_s: float | None = None) -> str:
    """One test suite per stage; one uniquely named test case per gate (or one for the stage
    itself). Every gate case, passed ones too, carries its value, threshold, baseline and
    delta in ``<system-out>`` (GitLab shows it in the test's details)."""
    cases = []
    name = report_name(result.stage)
    failures = skipped = errors = 0
    if result.gates:
        for g, case in zip(result.gates, gate_case_names(result.gates), strict=True):
            body = ""
            if g.verdict == FAILED:
                failures += 1
                body = f"<failure message={quoteattr(secrets.mask(g.message))}/>"
            elif g.verdict == SKIPPED:
                skipped += 1
                body = f"<skipped message={quoteattr(secrets.mask(g.message))}/>"
            detail = (f"{g.verdict}: {g.metric} = {_number(g.value)} (threshold {g.threshold}, "
                      f"baseline {_number(g.baseline)}, delta {_number(g.delta)})"
                      + (f" — {g.message}" if g.message else ""))
            body += f"<system-out>{escape(secrets.mask(detail))}</system-out>"
            cases.append(f'  <testcase classname="mlcd.{name}" name={quoteattr(case)}>'
                         f"{body}</testcase>")
    else:
        body = ""
        if result.status == ERROR:
            errors += 1
            body = f"<error message={quoteattr(secrets.mask(result.reason))}/>"
        elif result.status == FAILED:
            failures += 1
            body = f"<failure message={quoteattr(secrets.mask(result.reason))}/>"
        elif result.status == SKIPPED:
            skipped += 1
            body = f"<skipped message={quoteattr(secrets.mask(result.reason))}/>"
        cases.append(f'  <testcase classname="mlcd.{name}" name="{name}">{body}</testcase>')
    if result.gates and result.status == ERROR:
        errors += 1
        cases.append(f'  <testcase classname="mlcd.{name}" name="{name}">'
                     f"<error message={quoteattr(secrets.mask(result.reason))}/></testcase>")
    time = f' time="{duration_s:.3f}"' if duration_s is not None else ""
    return ('<?xml version="1.0" encoding="UTF-8"?>\n'
            f'<testsuite name="mlcd {escape(result.stage)}" tests="{len(cases)}" '
            f'failures="{failures}" errors="{errors}" skipped="{skipped}"{time}>\n'
            + "\n".join(cases) + "\n</testsuite>\n")


def metrics_report(result: StageResult) -> str:
    """GitLab's metrics report (``artifacts:reports:metrics``, shown in the merge request
    widget on the tiers that have it): one ``<stage>_<metric> <value>`` line per numeric
    metric, the stage's status as ``<stage>_passed 1|0``."""
    name = report_name(result.stage)
    prefix = name.replace("-", "_")
    lines = []
    for metric, value in sorted((result.metrics or {}).items()):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        if value != value or value in (float("inf"), float("-inf")):
            continue
        key = "".join(c if c.isalnum() or c in "_:" else "_" for c in str(metric))
        lines.append(f"{prefix}_{key} {value:.6g}" if isinstance(value, float)
                     else f"{prefix}_{key} {value}")
    lines.append(f"{prefix}_passed {1 if result.passed else 0}")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- all

def emit(result: StageResult, report_dir: str | os.PathLike, *, duration_s: float | None = None,
         echo=print, env: Mapping[str, str] | None = None) -> None:
    """Emit ``result`` to whatever CI this is; writes the JUnit report everywhere."""
    env = os.environ if env is None else env
    directory = Path(report_dir)
    name = report_name(result.stage)
    write_text(directory / f"{name}.junit.xml", junit(result, duration_s))
    where = platform(env)
    if where == "github":
        for f in result.findings:
            echo(annotation(f.severity, f.message, file=f.file, line=f.line, title=f.title))
        for w in result.warnings:
            echo(annotation(SEV_WARNING, w, title=f"mlcd {result.stage}"))
        if not result.passed and not any(f.severity == SEV_ERROR for f in result.findings):
            echo(annotation(SEV_ERROR, result.reason or result.status,
                            title=f"mlcd {result.stage}"))
        if env.get("GITHUB_OUTPUT"):
            github_outputs({**result.outputs, "status": result.status}, env["GITHUB_OUTPUT"])
        if env.get("GITHUB_STEP_SUMMARY"):
            github_summary(to_markdown(result), env["GITHUB_STEP_SUMMARY"])
    elif where == "gitlab":
        write_text(directory / f"{name}.env", dotenv({**result.outputs,
                                                      f"{name}-status": result.status}))
        write_text(directory / f"{name}.metrics.txt", metrics_report(result))


# --------------------------------------------------------------------------- main snapshot

MAIN_SNAPSHOT_DIR = ".mlcd/main"
MAIN_SNAPSHOT_JOB = "mlcd-evaluate"


def fetch_gitlab_main_snapshot(dest: str | os.PathLike | None = None, *,
                               job: str = MAIN_SNAPSHOT_JOB,
                               env: Mapping[str, str] | None = None,
                               echo=print, timeout: float = 60) -> bool:
    """Put the main snapshot (``.mlcd/main/``: the model the default branch last produced,
    saved by its evaluate job as an artifact) in place for a merge-request evaluate job.

    GitLab keeps it as an artifact of ``job`` in the default branch's pipelines. With
    ``MLCD_GITLAB_TOKEN`` (api scope) the newest successful ``job`` on the default branch
    is found through the jobs API; otherwise the job-token-friendly
    ``/jobs/artifacts/<branch>/download?job=<job>`` endpoint gives the one of the last
    successful default-branch pipeline. Never fails the job: without a snapshot evaluate
    reports "no model on main yet". Returns True when a snapshot is in place.
    """
    env = os.environ if env is None else env
    target = Path(dest or env.get("MLCD_MAIN_SNAPSHOT") or MAIN_SNAPSHOT_DIR)
    if (target / "meta.json").is_file():
        echo(f"mlcd: main snapshot already in {target}")
        return True
    branch = env.get("CI_DEFAULT_BRANCH") or "main"
    if env.get("CI_COMMIT_BRANCH") == branch and not env.get("CI_MERGE_REQUEST_IID"):
        return False  # the default branch makes the snapshot; it does not read one
    api, project = env.get("CI_API_V4_URL"), env.get("CI_PROJECT_ID")
    if not api or not project:
        echo("mlcd: no CI_API_V4_URL/CI_PROJECT_ID: the main snapshot is not fetched")
        return False
    import io
    import json
    import shutil
    import urllib.error
    import urllib.parse
    import urllib.request
    import zipfile

    base = f"{api.rstrip('/')}/projects/{urllib.parse.quote(project, safe='')}"
    token = env.get("MLCD_GITLAB_TOKEN") or env.get("GITLAB_TOKEN")
    headers = {"PRIVATE-TOKEN": token} if token else (
        {"JOB-TOKEN": env["CI_JOB_TOKEN"]} if env.get("CI_JOB_TOKEN") else {})
    secrets.register(token)
    secrets.register(env.get("CI_JOB_TOKEN"))

    def get(url: str) -> bytes:
        req = urllib.request.Request(url, headers=headers)
        with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 - CI API
            return resp.read()

    try:
        url = (f"{base}/jobs/artifacts/{urllib.parse.quote(branch, safe='')}/download?"
               + urllib.parse.urlencode({"job": job}))
        if token:  # the newest successful job, even when its pipeline awaits approval
            jobs = json.loads(get(f"{base}/jobs?scope[]=success&per_page=100"))
            newest = next((j for j in jobs if j.get("name") == job and j.get("ref") == branch
                           and (j.get("artifacts_file") or j.get("artifacts"))), None)
            if newest is not None:
                url = f"{base}/jobs/{int(newest['id'])}/artifacts"
        data = get(url)
        prefix = MAIN_SNAPSHOT_DIR.rstrip("/") + "/"
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            members = [m for m in zf.namelist() if m.startswith(prefix) and ".." not in m]
            if not any(m.endswith("/meta.json") for m in members):
                echo(f"mlcd: no model on main yet: the last {job} on {branch} kept no "
                     f"{MAIN_SNAPSHOT_DIR}/")
                return False
            tmp = target.with_name(target.name + ".fetching")
            shutil.rmtree(tmp, ignore_errors=True)
            for m in members:
                out = tmp / m[len(prefix):]
                if m.endswith("/"):
                    out.mkdir(parents=True, exist_ok=True)
                    continue
                out.parent.mkdir(parents=True, exist_ok=True)
                out.write_bytes(zf.read(m))
            shutil.rmtree(target, ignore_errors=True)
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp.rename(target)
    except urllib.error.HTTPError as exc:
        why = ("none yet" if exc.code == 404 else f"HTTP {exc.code}")
        echo(f"mlcd: no model on main yet ({job} artifacts of {branch}: {why})")
        return False
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        echo(f"mlcd: warning — the main snapshot could not be fetched: "
             f"{secrets.mask(str(exc))[:200]}")
        return False
    echo(f"mlcd: main snapshot of {branch} ({job}) in {target}")
    return True
