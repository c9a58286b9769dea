"""The prediction log: the documented line format, flushing, several writers."""

from __future__ import annotations

import json
import multiprocessing
import time

from mlcd_actions.delivery.serving.predlog import PredictionLog

KEYS = ["ts", "request_id", "row", "model_name", "model_version", "lineage_id", "inputs",
        "prediction", "proba", "latency_ms"]


def _record(log: PredictionLog, rid: str, n: int = 2) -> None:
    log.record(request_id=rid, model_name="m", model_version="3", lineage_id="lin-1",
               inputs=[{"a": i, "s": "ü"} for i in range(n)], predictions=list(range(n)),
               probas=[0.25] * n, latency_ms=1.23456)


def test_lines_follow_the_documented_format(tmp_path):
    path = tmp_path / "sub" / "log.jsonl"
    log = PredictionLog(path)
    _record(log, "r1")
    log.record(request_id="r2", model_name=None, model_version=None, lineage_id=None,
               inputs=[{"a": 1}], predictions=["x"], probas=None, latency_ms=2)
    log.close()
    lines = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert [list(line) for line in lines] == [KEYS] * 3
    assert lines[0]["row"] == 0 and lines[1]["row"] == 1
    assert lines[1]["inputs"] == {"a": 1, "s": "ü"} and lines[1]["proba"] == 0.25
    assert lines[0]["latency_ms"] == 1.235 and lines[0]["lineage_id"] == "lin-1"
    assert lines[2]["proba"] is None and lines[2]["model_version"] is None
    assert lines[0]["ts"].endswith("+00:00")


def test_flushed_within_the_interval_without_close(tmp_path):
    path = tmp_path / "log.jsonl"
    log = PredictionLog(path, flush_interval=0.2)
    try:
        _record(log, "r1")
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not path.read_bytes():
            time.sleep(0.05)
        assert path.read_text().count("\n") == 2
    finally:
        log.close()
    log.close()  # idempotent


def test_large_buffers_flush_early_and_split_at_line_ends(tmp_path, monkeypatch):
    import mlcd_actions.delivery.serving.predlog as predlog

    monkeypatch.setattr(predlog, "_WRITE_LIMIT", 300)
    path = tmp_path / "log.jsonl"
    log = PredictionLog(path, flush_interval=60, max_buffer=1000)
    for i in range(20):
        _record(log, f"r{i}", n=3)
    assert path.stat().st_size > 0  # flushed before the interval
    log.close()
    lines = path.read_text().splitlines()
    assert len(lines) == 60 and all(json.loads(line)["request_id"] for line in lines)


def _writer(path: str, tag: str) -> None:
    log = PredictionLog(path, flush_interval=0.01, max_buffer=2000)
    for i in range(200):
        log.record(request_id=f"{tag}-{i}", model_name="m", model_version="1", lineage_id=None,
                   inputs=[{"text": tag * 50}], predictions=[i], probas=None, latency_ms=0.1)
    log.close()


def test_two_processes_share_one_file_without_torn_lines(tmp_path):
    path = str(tmp_path / "log.jsonl")
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(path, tag)) for tag in ("x", "y")]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    lines = [json.loads(line) for line in open(path, encoding="utf-8")]
    assert len(lines) == 400
    assert {line["request_id"].split("-")[0] for line in lines} == {"x", "y"}
