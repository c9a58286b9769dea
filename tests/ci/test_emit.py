import json
import xml.etree.ElementTree as ET

from mlcd_actions.ci import emit as ci
from mlcd_actions.core import secrets
from mlcd_actions.core.gates import Threshold
from mlcd_actions.core.results import Finding, StageResult


def result():
    r = StageResult("evaluate", outputs={"model-uri": "runs:/abc/model", "passed": False,
                                         "notes": "a\nb"})
    r.gates = [Threshold.parse("f1>=0.8").check(0.7), Threshold.parse("accuracy>=0.5").check(0.9)]
    r.fail_unless_gates_pass()
    r.findings.append(Finding("bad value, 100%", file="schema.yaml", line=12, title="x: y"))
    return r


def test_github_outputs_summary_annotations(tmp_path):
    out, summary = tmp_path / "out", tmp_path / "summary.md"
    env = {"GITHUB_ACTIONS": "true", "GITHUB_OUTPUT": str(out),
           "GITHUB_STEP_SUMMARY": str(summary)}
    lines = []
    ci.emit(result(), tmp_path / "reports", env=env, echo=lines.append)
    text = out.read_text()
    assert "model-uri=runs:/abc/model\n" in text
    assert "passed=false\n" in text
    assert "status=failed\n" in text
    assert "notes<<ghadelimiter_" in text
    assert lines[0] == "::error file=schema.yaml,line=12,title=x%3A y::bad value, 100%25"
    assert "| f1 | 0.7 | >= 0.8 |" in summary.read_text()


def test_gitlab_dotenv_and_junit(tmp_path):
    env = {"GITLAB_CI": "true"}
    ci.emit(result(), tmp_path, env=env, echo=lambda s: None)
    dotenv = (tmp_path / "evaluate.env").read_text()
    assert "MLCD_MODEL_URI=runs:/abc/model\n" in dotenv
    assert "MLCD_EVALUATE_STATUS=failed\n" in dotenv
    suite = ET.parse(tmp_path / "evaluate.junit.xml").getroot()
    assert suite.get("tests") == "2" and suite.get("failures") == "1"
    failed = [c for c in suite if c.find("failure") is not None]
    assert failed[0].get("name") == "f1 >= 0.8"
    # passed cases carry their value too
    passed = next(c for c in suite if c.get("name") == "accuracy >= 0.5")
    assert passed.find("failure") is None
    assert passed.find("system-out").text.startswith("passed: accuracy = 0.9 (threshold >= 0.5")
    metrics = (tmp_path / "evaluate.metrics.txt").read_text().splitlines()
    assert metrics == ["evaluate_passed 0"]  # no numeric metrics in this result


def test_junit_names_every_gate_uniquely_and_metrics_report(tmp_path):
    """The threshold and the max-drop gate of one metric are two distinct cases; a gate
    given twice gets a suffix; the metrics report has one line per numeric metric."""
    from mlcd_actions.core.gates import MaxDrop

    r = StageResult("check-fairness", metrics={"accuracy": 0.91, "rows": 120, "name": "x",
                                               "flag": True, "nan": float("nan")})
    r.gates = [Threshold.parse("accuracy>=0.5").check(0.91),
               MaxDrop.parse("accuracy=0.01").check(0.91, 0.95),
               Threshold.parse("accuracy>=0.5").check(0.91)]
    r.fail_unless_gates_pass()
    suite = ET.fromstring(ci.junit(r))
    names = [c.get("name") for c in suite]
    assert names == ["accuracy >= 0.5", "accuracy max drop 0.01", "accuracy >= 0.5 #2"], names
    drop = suite[1]
    assert drop.find("failure") is not None
    assert "baseline 0.95, delta -0.04" in drop.find("system-out").text
    assert ci.metrics_report(r).splitlines() == [
        "check_fairness_accuracy 0.91", "check_fairness_rows 120", "check_fairness_passed 0"]


def test_secrets_never_reach_outputs(tmp_path):
    secrets.register("hunter2-token")
    r = StageResult("x", outputs={"url": "https://u:hunter2-token@host/p"})
    out = tmp_path / "out"
    ci.emit(r, tmp_path, env={"GITHUB_ACTIONS": "true", "GITHUB_OUTPUT": str(out)},
            echo=lambda s: None)
    assert "hunter2" not in out.read_text()


def test_summary_cap(tmp_path):
    summary = tmp_path / "s.md"
    summary.write_bytes(b"x" * (ci.SUMMARY_CAP - 10))
    ci.github_summary("y" * 100, str(summary))
    assert summary.stat().st_size < ci.SUMMARY_CAP + 200
    assert b"1 MiB cap" in summary.read_bytes()


def _zip(files: dict[str, bytes]) -> bytes:
    import io
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return buf.getvalue()


def test_gitlab_main_snapshot_is_fetched_from_the_default_branch_artifacts(tmp_path):
    """A merge-request evaluate job gets `.mlcd/main/` from the last default-branch
    evaluate job's artifacts (job token), or from the newest successful job with an api
    token; nothing there is "no model on main yet", never an error."""
    import http.server
    import threading

    routes: dict[str, tuple[int, bytes]] = {}
    seen: list[tuple[str, dict]] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):  # noqa: N802 - http.server's name
            seen.append((self.path, {k.lower(): v for k, v in self.headers.items()}))
            status, body = routes.get(self.path, (404, b'{"message": "404 Not found"}'))
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    api = f"http://127.0.0.1:{server.server_address[1]}/api/v4"
    env = {"GITLAB_CI": "true", "CI_API_V4_URL": api, "CI_PROJECT_ID": "42",
           "CI_DEFAULT_BRANCH": "main", "CI_COMMIT_BRANCH": "feature", "CI_JOB_TOKEN": "jt"}
    lines: list[str] = []
    try:
        dest = tmp_path / ".mlcd" / "main"
        assert not ci.fetch_gitlab_main_snapshot(dest, env=env, echo=lines.append)
        assert "no model on main yet" in lines[-1] and not dest.exists()
        assert seen[-1][0] == "/api/v4/projects/42/jobs/artifacts/main/download?job=mlcd-evaluate"
        assert seen[-1][1].get("job-token") == "jt"
        routes[seen[-1][0]] = (200, _zip({".mlcd/main/meta.json": b'{"git_sha": "abc"}',
                                          ".mlcd/main/model/MLmodel": b"flavors: {}\n",
                                          ".mlcd/reports/evaluate.json": b"{}"}))
        assert ci.fetch_gitlab_main_snapshot(dest, env=env, echo=lines.append)
        assert (dest / "meta.json").read_text() == '{"git_sha": "abc"}'
        assert (dest / "model" / "MLmodel").is_file()
        assert not (tmp_path / ".mlcd" / "reports").exists()
        # with an api token: the newest successful evaluate job of main, by id
        routes["/api/v4/projects/42/jobs?scope[]=success&per_page=100"] = (200, json.dumps([
            {"id": 9, "name": "mlcd-train", "ref": "main", "artifacts_file": {"filename": "artifacts.zip", "size": 9}},
            {"id": 8, "name": "mlcd-evaluate", "ref": "main", "artifacts_file": {"filename": "artifacts.zip", "size": 9}}]).encode())
        routes["/api/v4/projects/42/jobs/8/artifacts"] = (
            200, _zip({".mlcd/main/meta.json": b'{"git_sha": "def"}'}))
        other = tmp_path / "other"
        assert ci.fetch_gitlab_main_snapshot(other, env={**env, "MLCD_GITLAB_TOKEN": "pat"},
                                             echo=lines.append)
        assert json.loads((other / "meta.json").read_text())["git_sha"] == "def"
        assert seen[-1][1].get("private-token") == "pat"
        # the default branch makes the snapshot, it does not fetch one
        n = len(seen)
        assert not ci.fetch_gitlab_main_snapshot(tmp_path / "x", env={
            **env, "CI_COMMIT_BRANCH": "main"}, echo=lines.append)
        assert len(seen) == n
    finally:
        server.shutdown()
        server.server_close()
