"""Stage reports: ``<report-dir>/<stage>.json`` (versioned schema) and ``<stage>.md``.

The JSON report is the contract between stages, ``mlcd report`` and outside tools;
its ``schema`` field names the version (``mlcd.report/v1``). The markdown is what a
person reads in a job summary or a pull-request comment.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
from pathlib import Path
from typing import Any

from mlcd_actions import __version__
from mlcd_actions.core import secrets
from mlcd_actions.core.files import json_safe, write_json, write_text
from mlcd_actions.core.gates import GateRow, fmt
from mlcd_actions.core.results import Finding, StageResult, Table

SCHEMA = "mlcd.report/v1"
DEFAULT_DIR = ".mlcd/reports"
_ICON = {"passed": "✅", "failed": "❌", "skipped": "⏭️", "error": "⛔"}


def report_name(stage: str) -> str:
    """``schema infer`` -> ``schema-infer``: a file-system-safe stage name."""
    return stage.replace(" ", "-").replace("/", "-")


def to_dict(result: StageResult, *, started_at: str | None = None,
            duration_s: float | None = None) -> dict[str, Any]:
    data = {
        "schema": SCHEMA,
        "stage": result.stage,
        "status": result.status,
        "reason": result.reason,
        "exit_code": result.code(),
        "mlcd_version": __version__,
        "started_at": started_at,
        "duration_s": None if duration_s is None else round(duration_s, 3),
        "metrics": result.metrics,
        "outputs": result.outputs,
        "gates": [g.to_dict() for g in result.gates],
        "findings": [f.to_dict() for f in result.findings],
        "artifacts": [os.fspath(a) for a in result.artifacts],
        "tables": [t.to_dict() for t in result.tables],
        "warnings": result.warnings,
        "lineage": result.lineage,
        "details": result.details,
        "markdown": result.markdown,
    }
    return _mask_all(json_safe(data))


def from_dict(data: dict[str, Any]) -> StageResult:
    """Read a saved report back (``mlcd report``, ``mlcd run``)."""
    if data.get("schema") != SCHEMA:
        raise ValueError(f"unsupported report schema {data.get('schema')!r}")
    return StageResult(
        stage=data["stage"], status=data["status"], reason=data.get("reason", ""),
        metrics=data.get("metrics") or {}, outputs=data.get("outputs") or {},
        gates=[GateRow.from_dict(g) for g in data.get("gates") or []],
        findings=[Finding.from_dict(f) for f in data.get("findings") or []],
        artifacts=list(data.get("artifacts") or []),
        tables=[Table.from_dict(t) for t in data.get("tables") or []],
        details=data.get("details") or {}, markdown=list(data.get("markdown") or []),
        warnings=list(data.get("warnings") or []), exit_code=data.get("exit_code"),
        lineage=data.get("lineage") or {},
    )


def load(path: str | os.PathLike) -> StageResult:
    return from_dict(json.loads(Path(path).read_text(encoding="utf-8")))


def write(result: StageResult, report_dir: str | os.PathLike = DEFAULT_DIR, *,
          started_at: str | None = None, duration_s: float | None = None) -> tuple[Path, Path]:
    """Write both reports atomically; returns (json_path, md_path)."""
    directory = Path(report_dir)
    name = report_name(result.stage)
    data = to_dict(result, started_at=started_at, duration_s=duration_s)
    json_path = write_json(directory / f"{name}.json", data)
    md_path = write_text(directory / f"{name}.md", to_markdown(result, report_dir=directory))
    return json_path, md_path


def now_iso() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


# --------------------------------------------------------------------------- markdown

def md_escape(value: Any) -> str:
    text = fmt(value) if isinstance(value, float) or value is None else str(value)
    return text.replace("|", "\\|").replace("\n", " ")


def md_table(columns: list[str], rows: list[list[Any]]) -> str:
    head = "| " + " | ".join(md_escape(c) for c in columns) + " |"
    sep = "|" + "|".join("---" for _ in columns) + "|"
    body = ["| " + " | ".join(md_escape(v) for v in row) + " |" for row in rows]
    return "\n".join([head, sep, *body])


def gates_table(gates: list[GateRow]) -> str:
    """One row per gate; a gate that did not pass says why in its own row (``detail``)."""
    rows = [[g.metric, g.value, g.threshold, g.baseline,
             None if g.delta is None else f"{g.delta:+.4g}", g.direction,
             f"{_ICON.get(g.verdict, '')} {g.verdict}",
             g.message if g.verdict != "passed" else ""] for g in gates]
    return md_table(["metric", "value", "threshold", "baseline", "delta", "direction", "verdict",
                     "detail"], rows)


ARTIFACT_URL_ENV = "MLCD_ARTIFACT_URL"


def artifact_link(path: str | os.PathLike, report_dir: str | os.PathLike | None = None,
                  base: str | None = None) -> str:
    """A markdown link to a file a stage wrote (a plot), for a summary or a comment.

    ``base`` (default ``$MLCD_ARTIFACT_URL``): with ``{path}`` in it, the file's path
    relative to the report folder goes there (GitLab job artifact URLs); without, every
    file links to that URL (a GitHub run's artifacts); unset, a relative link."""
    from urllib.parse import quote

    p = Path(path)
    rel = p
    if report_dir is not None:
        try:
            rel = Path(os.path.relpath(p, report_dir))
        except ValueError:  # another drive (Windows)
            rel = p
    rel_text = rel.as_posix()
    base = os.environ.get(ARTIFACT_URL_ENV) if base is None else base
    if base:
        url = base.replace("{path}", quote(rel_text)) if "{path}" in base else base
    else:
        url = quote(rel_text)
    return f"[{p.name}]({url})"


def plot_links(result: StageResult, report_dir: str | os.PathLike | None = None,
               base: str | None = None) -> str:
    """The "plots" line: a link per PNG the stage wrote that still exists (a stale one
    from an earlier run is removed before the stage runs: :func:`remove_stale_plots`)."""
    pngs = [a for a in result.artifacts if str(a).lower().endswith(".png")]
    if report_dir is not None:
        pngs = [a for a in pngs if Path(a).is_file()
                or (Path(report_dir) / Path(a).name).is_file()]
    if not pngs:
        return ""
    return "**plots**: " + " · ".join(artifact_link(a, report_dir, base) for a in pngs)


def remove_stale_plots(stage: str, report_dir: str | os.PathLike) -> None:
    """Delete the PNGs an earlier run of ``stage`` left (``<stage>-*.png`` and
    ``<stage>/*.png`` in the report folder), so only this run's plots are shown."""
    import contextlib

    d = Path(report_dir)
    name = report_name(stage)
    for png in [*d.glob(f"{name}-*.png"), *(d / name).glob("*.png")]:
        with contextlib.suppress(OSError):
            png.unlink()


def to_markdown(result: StageResult, heading_level: int = 3,
                report_dir: str | os.PathLike | None = None,
                artifact_url: str | None = None) -> str:
    h = "#" * heading_level
    parts = [f"{h} {_ICON.get(result.status, '')} mlcd {result.stage}: {result.status}"]
    if result.reason:
        parts.append(result.reason)
    for w in result.warnings:
        parts.append(f"> [!WARNING]\n> {w}")
    if result.gates:
        parts.append(gates_table(result.gates))
    if result.metrics:
        rows = [[k, v] for k, v in result.metrics.items() if not isinstance(v, (dict, list))]
        if rows:
            parts.append("<details><summary>metrics</summary>\n\n"
                         + md_table(["metric", "value"], rows) + "\n\n</details>")
    if result.outputs:
        parts.append("<details><summary>outputs</summary>\n\n"
                     + md_table(["output", "value"], [[k, v] for k, v in result.outputs.items()])
                     + "\n\n</details>")
    for t in result.tables:
        body = md_table(t.columns, t.rows) if t.rows else "_none_"
        note = f"\n\n{t.note}" if t.note else ""
        parts.append(f"**{t.title}**\n\n{body}{note}")
    if result.findings:
        rows = [[f.severity, f.code or "", f.column or "", f.count if f.count is not None else "",
                 f.message] for f in result.findings[:200]]
        more = len(result.findings) - 200
        parts.append("**findings**\n\n" + md_table(["severity", "kind", "column", "count",
                                                    "message"], rows)
                     + (f"\n\n… and {more} more in the JSON report" if more > 0 else ""))
    parts.extend(result.markdown)
    links = plot_links(result, report_dir, artifact_url)
    if links:
        parts.append(links)
    return secrets.mask("\n\n".join(parts) + "\n")


def _mask_all(value: Any) -> Any:
    if isinstance(value, str):
        return secrets.mask(value)
    if isinstance(value, dict):
        return {k: _mask_all(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_mask_all(v) for v in value]
    return value


# --------------------------------------------------------------------------- size caps

CUT_NOTE = "\n\n_…cut to stay under the size cap._"


def size(text: str, unit: str) -> int:
    """Length in characters, or in UTF-8 bytes when ``unit`` is ``"bytes"``."""
    return len(text.encode("utf-8")) if unit == "bytes" else len(text)


def fit_text(text: str, cap: int, link: str | None = None, *, unit: str = "chars",
             footer: str | None = None) -> str:
    """Cut ``text`` to ``cap``, closing an open code fence and ``<details>``."""
    if footer is None:
        footer = f"\n\n---\nFull report: {link}\n" if link else "\n"
    if size(text, unit) <= cap:
        return text
    room = cap - size(footer + CUT_NOTE, unit) - 64
    cut = text
    while size(cut, unit) > room:
        over = size(cut, unit) - room
        cut = cut[: max(0, len(cut) - max(over, 1))]
    if cut.count("```") % 2:
        cut += "\n```"
    opened = cut.count("<details>") - cut.count("</details>")
    cut += "\n\n</details>" * max(0, opened)
    return cut + CUT_NOTE + footer
