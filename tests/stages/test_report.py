"""mlcd report, the library: gathering, rendering, fitting under the caps."""

from __future__ import annotations

import pytest

from mlcd_actions.core import reporting as report_mod
from mlcd_actions.core.errors import ConfigError
from mlcd_actions.core.gates import MaxDrop, Threshold
from mlcd_actions.core.results import Finding, StageResult, Table
from mlcd_actions.stages import report


def write_reports(directory, *, findings=3, big=False):
    ev = StageResult("evaluate", metrics={"accuracy": 0.91, "f1": 0.87})
    ev.gates = [Threshold.parse("accuracy>=0.8").check(0.91),
                MaxDrop.parse("accuracy=0.01").check(0.91, 0.89),
                MaxDrop.parse("f1=0.01").check(0.87, 0.9)]
    ev.fail_unless_gates_pass()
    data = StageResult("check-data", findings=[
        Finding(f"email address in column contact (row {i})", code="pii.email",
                column="contact", count=1) for i in range(findings)])
    val = StageResult("validate", reason="schema ok")
    rows = [[f"col{i}", "x" * 200] for i in range(4000 if big else 3)]
    val.tables.append(Table("column statistics", ["column", "note"], rows))
    for r in (ev, data, val):
        report_mod.write(r, directory)
    (directory / "manifest.json").write_text('{"rows": 3}')  # not a report: ignored
    return directory


def test_gather_in_pipeline_order_and_skip_own_report(tmp_path):
    write_reports(tmp_path)
    report_mod.write(StageResult("report"), tmp_path)
    results, warnings = report.gather(tmp_path)
    assert [r.stage for r in results] == ["validate", "check-data", "evaluate"]
    assert warnings == []


def test_corrupt_report_is_a_warning(tmp_path):
    write_reports(tmp_path)
    (tmp_path / "train.json").write_text("{broken")
    results, warnings = report.gather(tmp_path)
    assert len(results) == 3 and "train.json" in warnings[0]


def test_no_reports_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="holds no stage reports"):
        report.run(tmp_path, env={})
    with pytest.raises(ConfigError, match="no such report directory"):
        report.run(tmp_path / "nope", env={})


def test_document_has_verdicts_gates_champion_diff_and_charts(tmp_path):
    write_reports(tmp_path)
    r = report.run(tmp_path, env={"GITHUB_SERVER_URL": "https://github.com",
                                  "GITHUB_REPOSITORY": "acme/credit", "GITHUB_RUN_ID": "77"})
    text = r.markdown[0]
    assert r.outputs["overall"] == "failed" and r.outputs["failed-stages"] == "evaluate"
    assert r.status == "passed"
    assert "| `evaluate` | ❌ failed |" in text
    assert "### ❌ failed gates" in text and "f1 dropped by 0.03" in text
    assert "metric diff vs the main branch's champion" in text
    assert "| accuracy | 0.91 | 0.89 | +0.02 | evaluate |" in text
    assert text.count("```mermaid") == 2 and "flowchart LR" in text and "xychart-beta" in text
    assert "pii.email" in text
    assert "https://github.com/acme/credit/actions/runs/77" in text
    assert (tmp_path / "summary.md").read_text().startswith("## ❌ mlcd report: failed")


def test_fail_on_failed_stage(tmp_path):
    write_reports(tmp_path)
    assert report.run(tmp_path, env={}, fail_on_failed_stage=True).status == "failed"


def test_fit_folds_then_drops_then_cuts(tmp_path):
    write_reports(tmp_path, findings=3000, big=True)
    results, _ = report.gather(tmp_path)
    sections = report.build_sections(results, link="https://ci/job/1")
    full, _ = report.fit(sections, 1 << 40)
    assert len(full) > 200_000
    text, cut = report.fit(sections, 20_000, "https://ci/job/1")
    assert len(text) <= 20_000 and cut[0].startswith("stage:")
    assert "## ❌ mlcd report: failed" in text and "### ❌ failed gates" in text
    assert text.rstrip().endswith("Full report: https://ci/job/1")
    tiny, _ = report.fit(sections, 3_000, "https://ci/job/1")
    assert len(tiny) <= 3_000 and tiny.rstrip().endswith("https://ci/job/1")
    assert tiny.count("<details>") == tiny.count("</details>")
    utf, _ = report.fit(sections, 5_000, None, unit="bytes")
    assert len(utf.encode()) <= 5_000


def test_summary_sized_to_what_is_left(tmp_path):
    write_reports(tmp_path, findings=3000, big=True)
    summary = tmp_path / "step_summary.md"
    summary.write_bytes(b"x" * 1_000_000)
    r = report.run(tmp_path, env={"GITHUB_STEP_SUMMARY": str(summary)})
    assert len(r.markdown[0].encode()) <= 1024 * 1024 - 1_000_000


def test_environments_named_init_left_out_validate_not_gateless(tmp_path):
    report_mod.write(StageResult("init", reason="5 file(s) written"), tmp_path)
    report_mod.write(StageResult("validate", reason="19 checks passed"), tmp_path)
    for env in ("production", "staging"):
        for stage in ("deploy", "smoke-test"):
            written = report_mod.write(StageResult(stage, reason=f"{stage} {env}"), tmp_path)
            for path in written:  # `mlcd run` names them deploy-staging.json ...
                path.rename(path.with_name(f"{stage}-{env}{path.suffix}"))
    results, _ = report.gather(tmp_path)
    assert [report.label(r) for r in results] == [
        "validate", "deploy (staging)", "deploy (production)", "smoke-test (staging)",
        "smoke-test (production)"]
    text = report.run(tmp_path, env={}).markdown[0]
    assert "`deploy (staging)`" in text and "`init`" not in text
    assert "no gate was evaluated" not in text


def test_plots_are_linked_with_the_artifact_url_and_stale_ones_removed(tmp_path):
    ev = StageResult("evaluate", metrics={"accuracy": 0.9})
    png = tmp_path / "evaluate-roc.png"
    png.write_bytes(b"\x89PNG")
    ev.artifacts = [str(png)]
    ev.markdown = ["**metrics chart**\n\n```mermaid\nxychart-beta\n```"]
    report_mod.write(ev, tmp_path)
    assert "[evaluate-roc.png](evaluate-roc.png)" in (tmp_path / "evaluate.md").read_text()
    r = report.run(tmp_path, env={}, artifact_url="https://ci.example/job/7/file/{path}")
    text = r.markdown[0]
    assert "### charts" in text and "xychart-beta" in text
    assert "[evaluate-roc.png](https://ci.example/job/7/file/evaluate-roc.png)" in text
    stale = tmp_path / "evaluate-pr.png"
    stale.write_bytes(b"\x89PNG")
    (tmp_path / "monitor").mkdir()
    (tmp_path / "monitor" / "age.png").write_bytes(b"\x89PNG")
    report_mod.remove_stale_plots("evaluate", tmp_path)
    report_mod.remove_stale_plots("monitor", tmp_path)
    assert not png.exists() and not stale.exists()
    assert not (tmp_path / "monitor" / "age.png").exists()
    # a report listing a PNG that is gone links nothing
    assert "evaluate-roc.png" not in report_mod.plot_links(ev, tmp_path)


def test_main_diff_section_from_evaluate(tmp_path):
    ev = StageResult("evaluate", metrics={"accuracy": 0.9})
    ev.tables.append(Table("metrics vs main", ["metric", "value", "main", "delta", "change"],
                           [["no model on main yet (.mlcd/main)", None, None, None, "—"]]))
    report_mod.write(ev, tmp_path)
    text = report.run(tmp_path, env={}).markdown[0]
    assert "### metrics vs main" in text and "no model on main yet" in text
