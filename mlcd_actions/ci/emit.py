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


def junit(result: StageResult, duration_s: float | None = None) -> str:
    """One test suite per stage; one test case per gate (or one for the stage itself)."""
    cases = []
    name = report_name(result.stage)
    failures = skipped = errors = 0
    if result.gates:
        for g in result.gates:
            body = ""
            if g.verdict == FAILED:
                failures += 1
                body = f"<failure message={quoteattr(secrets.mask(g.message))}/>"
            elif g.verdict == SKIPPED:
                skipped += 1
                body = f"<skipped message={quoteattr(secrets.mask(g.message))}/>"
            cases.append(f'  <testcase classname="mlcd.{name}" name={quoteattr(g.metric)}>'
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
