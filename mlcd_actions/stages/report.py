"""``mlcd report``: every stage report in one job summary and one sticky PR/MR comment.

Reads ``<report-dir>/*.json`` (schema ``mlcd.report/v1``; anything else there is skipped
with a warning), in pipeline order, and renders:

1. the verdict per stage (table, and an inline Mermaid flowchart coloured by verdict);
2. the failed gates, then every gate (the explainer rows: metric, value, threshold,
   baseline, delta, direction, verdict);
3. the metric diff against the main branch's champion: every gate row that carries a
   baseline (evaluate's ``--max-drop`` / ``--baseline`` gates), plus any
   ``details.baseline_metrics`` a stage recorded, with a Mermaid bar chart;
4. data and drift findings (validate, check-data, check-fairness, monitor ...);
5. each stage's own report, folded.

Size caps: a GitHub comment holds at most 65536 characters and a step summary 1 MiB.
:func:`fit` keeps the document under a cap by first folding, then dropping the least
important detail (per-stage reports, then all gates, findings, the champion diff), and
as a last resort cutting the text, always ending with a link to the full report
(``$GITHUB_SERVER_URL/$GITHUB_REPOSITORY/actions/runs/$GITHUB_RUN_ID`` or ``$CI_JOB_URL``).
The whole, unfolded document is written to ``<report-dir>/summary.md``.

``--comment`` creates the comment on the first run and updates the same one afterwards
(found by the hidden marker ``<!-- mlcd-report -->``). An API failure is exit 3.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlcd_actions.ci import forges as hosting
from mlcd_actions.core import reporting as report_mod
from mlcd_actions.core.errors import ConfigError
from mlcd_actions.core.gates import FAILED
from mlcd_actions.core.reporting import fit_text, md_escape, md_table
from mlcd_actions.core.reporting import size as _size
from mlcd_actions.core.results import ERROR, PASSED, SEV_ERROR, SKIPPED, StageResult

STAGE = "report"
MARKER = "<!-- mlcd-report -->"
SUMMARY_FILE = "summary.md"
PIPELINE_ORDER = ("init", "ingest", "schema-infer", "validate", "prepare", "check-data",
                  "version-data", "build-training", "train", "evaluate", "check-fairness",
                  "override", "register", "build-app", "deploy", "smoke-test", "promote",
                  "rollback", "history", "predict",
                  "serve", "monitor", "run")
ICON = {"passed": "✅", "failed": "❌", "skipped": "⏭️", "error": "⛔"}
# reports in the folder that are not pipeline stages (init scaffolds the repository)
NOT_PIPELINE = ("init",)
ENV_STAGES = ("deploy", "smoke-test", "rollback", "promote")
ENV_ORDER = {"staging": 0, "production": 1}
DATA_STAGES = ("validate", "check-data", "check-fairness", "monitor", "ingest", "prepare")


# --------------------------------------------------------------------------- fitting

@dataclass
class Section:
    """A part of the document. ``priority``: 0 is kept longest; higher goes first."""

    key: str
    head: str
    detail: str = ""
    summary: str = "details"
    priority: int = 5

    def render(self, level: int) -> str:
        """level 0: full, detail folded; 1: detail left out; 2: only the head's first line."""
        if level >= 2:
            first = self.head.strip().splitlines()[0] if self.head.strip() else ""
            return first + ("\n\n_detail left out to fit the size cap; see the full report._"
                            if self.head.strip() or self.detail else "")
        parts = [self.head] if self.head else []
        if self.detail and level == 0:
            parts.append(f"<details><summary>{self.summary}</summary>\n\n{self.detail}\n\n"
                         "</details>")
        elif self.detail:
            parts.append(f"_{self.summary}: left out to fit the size cap; see the full report._")
        return "\n\n".join(parts)


def fit(sections: Sequence[Section], cap: int, link: str | None = None, *,
        prefix: str = "", unit: str = "chars") -> tuple[str, list[str]]:
    """Render ``sections`` under ``cap`` (characters or UTF-8 bytes); returns the text and
    the keys of the sections that were shortened, least important first."""
    footer = f"\n\n---\nFull report: {link}\n" if link else "\n"
    levels = {s.key: 0 for s in sections}
    order = sorted(sections, key=lambda s: -s.priority)  # least important first

    def render() -> str:
        body = "\n\n".join(r for r in (s.render(levels[s.key]) for s in sections) if r)
        return prefix + body + footer

    shortened: list[str] = []
    text = render()
    for level in (1, 2):
        for s in order:
            if _size(text, unit) <= cap:
                return text, shortened
            if levels[s.key] < level:
                levels[s.key] = level
                if s.key not in shortened:
                    shortened.append(s.key)
                text = render()
    if _size(text, unit) <= cap:
        return text, shortened
    return fit_text(text, cap, link, unit=unit, footer=footer), shortened


# --------------------------------------------------------------------------- gathering

def gather(report_dir: str | os.PathLike) -> tuple[list[StageResult], list[str]]:
    """Every stage report in ``report_dir`` (not this stage's own), in pipeline order."""
    directory = Path(report_dir)
    if not directory.is_dir():
        raise ConfigError(f"{directory}: no such report directory (run some stages first, "
                          "or pass --report-dir)")
    results, warnings = [], []
    for path in sorted(directory.glob("*.json")):
        if path.stem == STAGE:
            continue
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            warnings.append(f"{path}: not a readable JSON report ({type(exc).__name__}); skipped")
            continue
        if not isinstance(data, dict) or data.get("schema") != report_mod.SCHEMA:
            continue  # other JSON files (manifests ...) live here too
        try:
            result = report_mod.from_dict(data)
        except (KeyError, TypeError, ValueError) as exc:
            warnings.append(f"{path}: malformed {report_mod.SCHEMA} report ({exc}); skipped")
            continue
        if result.stage in NOT_PIPELINE:
            continue
        own = report_mod.report_name(result.stage)
        if path.stem.startswith(own + "-") and not result.details.get("environment"):
            # `mlcd run` names deploy-staging.json, smoke-test-production.json ...
            result.details["environment"] = path.stem[len(own) + 1:]
        results.append(result)
    rank = {name: i for i, name in enumerate(PIPELINE_ORDER)}
    results.sort(key=lambda r: (rank.get(report_mod.report_name(r.stage), len(rank)),
                                ENV_ORDER.get(environment_of(r) or "", len(ENV_ORDER)),
                                label(r)))
    return results, warnings


def environment_of(r: StageResult) -> str | None:
    """The environment a deploy / smoke-test / rollback report is about, when known."""
    if r.stage not in ENV_STAGES:
        return None
    env = r.outputs.get("environment") or r.details.get("environment")
    return str(env) if env else None


def label(r: StageResult) -> str:
    """How the summary names a stage: ``deploy (staging)``, ``smoke-test (production)``."""
    env = environment_of(r)
    return f"{r.stage} ({env})" if env else r.stage


# --------------------------------------------------------------------------- rendering

def _verdict(r: StageResult) -> str:
    return f"{ICON.get(r.status, '')} {r.status}"


def _failed(r: StageResult) -> bool:
    return r.status in (FAILED, ERROR)


def build_sections(results: Sequence[StageResult], *, title: str = "mlcd report",
                   link: str | None = None, report_dir: str | os.PathLike | None = None,
                   artifact_url: str | None = None) -> list[Section]:
    failed = [r for r in results if _failed(r)]
    overall = FAILED if failed else PASSED
    head = [f"## {ICON[overall]} {title}: {overall}",
            f"{len(results)} stage(s): " + ", ".join(
                f"{sum(1 for r in results if r.status == s)} {s}"
                for s in (PASSED, FAILED, ERROR, SKIPPED)
                if any(r.status == s for r in results))]
    if link:
        head.append(f"[full report and artifacts]({link})")
    lineage = next((r.lineage.get("id") or r.lineage.get("lineage_id") for r in results
                    if isinstance(r.lineage, dict) and (r.lineage.get("id")
                                                        or r.lineage.get("lineage_id"))), None)
    if lineage:
        head.append(f"lineage: `{lineage}`")
    stages = md_table(["stage", "verdict", "reason", "time"],
                      [[f"`{label(r)}`", _verdict(r), _clip(r.reason, 200),
                        _duration(r)] for r in results])
    sections = [Section("overview", "\n\n".join(head) + "\n\n" + stages, mermaid_flow(results),
                        "pipeline chart", priority=0)]

    failed_gates = [(r, g) for r in results for g in r.gates if g.verdict == FAILED]
    if failed_gates:
        sections.append(Section("failed-gates", "### ❌ failed gates\n\n" + _gate_table(
            failed_gates), priority=1))
    # validate's schema checks are not gate rows: it is never "without a gate"
    no_gate = [label(r) for r in results if not r.gates and r.stage in
               ("evaluate", "check-fairness", "monitor")]
    if no_gate:
        sections.append(Section("no-gates", "> [!WARNING]\n> no gate was evaluated by "
                                + ", ".join(f"`{s}`" for s in no_gate), priority=1))

    vs_main = main_diff(results)
    if vs_main is not None:
        sections.append(Section("main", vs_main, priority=1))
    charts = key_charts(results, report_dir, artifact_url)
    if charts:
        sections.append(Section("charts", charts, priority=2))
    diff = champion_diff(results)
    if diff:
        rows = [[m, v, b, None if d is None else f"{d:+.4g}", s] for m, v, b, d, s in diff]
        sections.append(Section(
            "champion", "### metric diff vs the main branch's champion\n\n"
            + md_table(["metric", "candidate", "champion", "delta", "stage"], rows),
            mermaid_bars(diff), "chart", priority=2))

    findings = [(r, f) for r in results for f in r.findings
                if r.stage in DATA_STAGES or f.severity == SEV_ERROR]
    drift = next((r for r in results if r.stage == "monitor"), None)
    if findings or drift is not None:
        lines = ["### data and drift findings"]
        if drift is not None:
            feats = drift.outputs.get("drifted-features") or ""
            lines.append(f"monitor: drift **{_yes(drift.outputs.get('drift'))}**, retrain "
                         f"**{_yes(drift.outputs.get('retrain'))}**"
                         + (f" — drifted: {md_escape(feats)}" if feats else ""))
        ordered = sorted(findings, key=lambda rf: {"error": 0, "warning": 1}.get(
            rf[1].severity, 2))
        table = md_table(["stage", "severity", "kind", "column", "count", "message"],
                         [[label(r), f.severity, f.code or "", f.column or "",
                           "" if f.count is None else f.count, _clip(f.message, 300)]
                          for r, f in ordered[:500]])
        more = f"\n\n… and {len(ordered) - 500} more" if len(ordered) > 500 else ""
        head_rows = md_table(["stage", "severity", "kind", "column", "count", "message"],
                             [[label(r), f.severity, f.code or "", f.column or "",
                               "" if f.count is None else f.count, _clip(f.message, 160)]
                              for r, f in ordered[:10]]) if ordered else "_no findings_"
        sections.append(Section("findings", "\n\n".join(lines) + "\n\n" + head_rows,
                                table + more if len(ordered) > 10 else "",
                                f"all {len(ordered)} findings", priority=3))

    all_gates = [(r, g) for r in results for g in r.gates]
    if all_gates:
        sections.append(Section("gates", f"### gates ({len(all_gates)})",
                                _gate_table(all_gates), "every gate, explained", priority=4))
    for r in results:
        sections.append(Section(f"stage:{label(r)}", "",
                                report_mod.to_markdown(r, heading_level=4,
                                                       report_dir=report_dir,
                                                       artifact_url=artifact_url),
                                f"{ICON.get(r.status, '')} {label(r)} report",
                                priority=6 if r.status == PASSED else 5))
    return sections


def _gate_table(pairs) -> str:
    return md_table(["stage", "metric", "value", "threshold", "baseline", "delta", "direction",
                     "verdict"],
                    [[label(r), g.metric, g.value, g.threshold, g.baseline,
                      None if g.delta is None else f"{g.delta:+.4g}", g.direction,
                      f"{ICON.get(g.verdict, '')} {g.verdict}"] for r, g in pairs])


CHART_STAGES = ("evaluate", "check-fairness", "monitor")


def key_charts(results: Sequence[StageResult], report_dir=None, artifact_url=None) -> str:
    """The charts a reviewer looks at, inline (Mermaid) with links to the stage's PNGs:
    evaluate's metrics, check-fairness' groups, monitor's drift."""
    parts = []
    for r in results:
        if r.stage not in CHART_STAGES:
            continue
        charts = [m for m in r.markdown if "```mermaid" in m]
        links = report_mod.plot_links(r, report_dir, artifact_url)
        if charts or links:
            parts.append(f"**{label(r)}**\n\n" + "\n\n".join([*charts, links]).strip())
    return "### charts\n\n" + "\n\n".join(parts) if parts else ""


def main_diff(results: Sequence[StageResult]) -> str | None:
    """evaluate's metric diff against the model main last produced (``dvc metrics diff``
    style: every metric, value, main, delta), or the row saying there is none yet."""
    ev = next((r for r in results if r.stage == "evaluate"), None)
    if ev is None:
        return None
    table = next((t for t in ev.tables if t.title.startswith("metrics vs main")), None)
    if table is None:
        return None
    return f"### {table.title}\n\n" + md_table(table.columns, table.rows)


def champion_diff(results: Sequence[StageResult]) -> list[tuple]:
    """(metric, candidate, champion, delta, stage) from gates with a baseline and from
    ``details.baseline_metrics`` / ``details.baseline`` mappings."""
    out: dict[str, tuple] = {}
    for r in results:
        for g in r.gates:
            if g.threshold.startswith("lift"):
                continue  # a naive baseline, not the champion
            if g.baseline is not None and g.value is not None and g.metric not in out:
                out[g.metric] = (g.metric, g.value, g.baseline,
                                 g.delta if g.delta is not None else g.value - g.baseline, r.stage)
        for key in ("baseline_metrics", "baseline", "champion_metrics"):
            base = r.details.get(key)
            if isinstance(base, dict):
                for m, b in base.items():
                    v = r.metrics.get(m)
                    if _num(v) and _num(b) and m not in out:
                        out[m] = (m, float(v), float(b), float(v) - float(b), r.stage)
    return list(out.values())


def mermaid_flow(results: Sequence[StageResult]) -> str:
    if not results:
        return ""
    lines = ["```mermaid", "flowchart LR"]
    ids = []
    for i, r in enumerate(results):
        node = f"s{i}"
        ids.append(node)
        name = re.sub(r'["\[\]<>{}|()]', " ", label(r)).strip()
        lines.append(f'  {node}["{name}: {r.status}"]:::{r.status}')
    lines.append("  " + " --> ".join(ids))
    lines += ["  classDef passed fill:#dafbe1,stroke:#1a7f37",
              "  classDef failed fill:#ffebe9,stroke:#cf222e",
              "  classDef error fill:#ffebe9,stroke:#cf222e",
              "  classDef skipped fill:#eaeef2,stroke:#57606a", "```"]
    return "\n".join(lines)


def mermaid_bars(diff: Sequence[tuple], top: int = 15) -> str:
    rows = [d for d in diff if _num(d[1]) and _num(d[2])][:top]
    if not rows:
        return ""
    names = ", ".join(json.dumps(re.sub(r'["\[\],]', "_", str(d[0]))[:24]) for d in rows)
    values = [float(d[1]) for d in rows] + [float(d[2]) for d in rows]
    lo, hi = min(0.0, min(values)), max(values) * 1.1 or 1.0
    cand = ", ".join(f"{float(d[1]):.4g}" for d in rows)
    champ = ", ".join(f"{float(d[2]):.4g}" for d in rows)
    return ("champion (first bar) vs candidate (second bar)\n\n```mermaid\nxychart-beta\n"
            f'  x-axis [{names}]\n  y-axis "value" {lo:.4g} --> {hi:.4g}\n'
            f"  bar [{champ}]\n  bar [{cand}]\n```")


def _num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _yes(v: Any) -> str:
    return "yes" if v in (True, "true", "True") else "no"


def _clip(text: str, n: int) -> str:
    text = " ".join(str(text or "").split())
    return text if len(text) <= n else text[: n - 1] + "…"


def _duration(r: StageResult) -> str:
    d = r.details.get("duration_s")
    return f"{d:.1f}s" if _num(d) else ""


# --------------------------------------------------------------------------- the stage

def run(report_dir: str | os.PathLike = report_mod.DEFAULT_DIR, *, comment: bool = False,
        platform: str | None = None, pr: int | None = None, title: str = "mlcd report",
        fail_on_failed_stage: bool = False, comment_cap: int = hosting.COMMENT_CAP,
        summary_cap: int | None = None, env: dict[str, str] | None = None,
        echo: Callable[[str], None] = print, artifact_url: str | None = None) -> StageResult:
    from mlcd_actions.ci import emit as ci
    from mlcd_actions.core.files import write_text

    env = dict(os.environ) if env is None else env
    results, warnings = gather(report_dir)
    if not results:
        if warnings:  # only unreadable reports: say which, not "run some stages first"
            more = f" (+{len(warnings) - 1} more)" if len(warnings) > 1 else ""
            raise ConfigError(f"{report_dir}: no readable stage report: {warnings[0]}{more}")
        raise ConfigError(f"{report_dir}: holds no stage reports ({report_mod.SCHEMA}); "
                          "run some stages first")
    link = hosting.run_url(env)
    sections = build_sections(results, title=title, link=link, report_dir=report_dir,
                              artifact_url=artifact_url)
    full, _ = fit(sections, 1 << 62, link)
    summary_path = write_text(Path(report_dir) / SUMMARY_FILE, full)

    failed = [label(r) for r in results if _failed(r)]
    overall = FAILED if failed else PASSED
    result = StageResult(STAGE, warnings=warnings)
    result.outputs.update({"overall": overall, "stages": len(results),
                           "failed-stages": ",".join(failed), "summary-path": str(summary_path)})
    result.metrics.update({"stages": len(results), "failed_stages": len(failed)})
    result.artifacts.append(str(summary_path))

    # the job summary: the runner appends this result's markdown; size it to what is left
    cap = summary_cap if summary_cap is not None else ci.SUMMARY_CAP
    used = 0
    if env.get("GITHUB_STEP_SUMMARY") and Path(env["GITHUB_STEP_SUMMARY"]).exists():
        used = Path(env["GITHUB_STEP_SUMMARY"]).stat().st_size
    budget = max(4096, cap - used - 8192)
    summary_text, cut = fit(sections, budget, link, unit="bytes")
    result.markdown.append(summary_text)
    result.details["summary_shortened"] = cut

    if comment:
        platform = platform or hosting.detect_platform(env)
        number = pr or hosting.pull_request_number(env)
        if number is None:
            msg = ("--comment: not in a pull/merge request (no PR number in GITHUB_EVENT_PATH/"
                   "GITHUB_REF or CI_MERGE_REQUEST_IID; pass --pr); no comment written")
            result.warnings.append(msg)
            echo(f"mlcd report: warning — {msg}")
            result.outputs["comment-action"] = "none"
        else:
            forge = hosting.from_env(platform, env=env)
            hosting.require_token(forge)
            cap = min(comment_cap, hosting.COMMENT_CAP if isinstance(forge, hosting.GitHub)
                      else hosting.GITLAB_NOTE_CAP)
            body, cut = fit(sections, cap - 200, link, prefix=MARKER + "\n")
            done = forge.upsert_comment(number, body, MARKER)
            result.outputs.update({"comment-action": done["action"],
                                   "comment-id": done.get("id") or "",
                                   "comment-url": done.get("url") or ""})
            result.details["comment_shortened"] = cut
            result.details["comment_chars"] = len(body)
    result.reason = (f"{len(results)} stage report(s), overall {overall}"
                     + (f" (failed: {', '.join(failed)})" if failed else "")
                     + (f"; comment {result.outputs['comment-action']}"
                        if result.outputs.get("comment-action") else ""))
    if fail_on_failed_stage and failed:
        result.status = FAILED
    return result
