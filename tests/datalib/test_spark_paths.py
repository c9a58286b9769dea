"""``--engine spark`` on a Hadoop filesystem that is not local: ``ftp://`` (Hadoop's
FTPFileSystem, shipped in pyspark's own jars) against a real FTP server on loopback
(pyftpdlib, tests/services.py). validate, check-data, monitor and predict read their input
from it and give the verdicts they give on the local copy; a missing remote path is the
local path's line and exit code (2); a server out of reach or refusing the login is one
line, exit 3. The FTP credentials reach Hadoop only through ``spark.conf``
(``spark.hadoop.fs.ftp.user.HOST``): the module's session, and ``mlcd.yaml`` in the CLI
runs.

Hadoop's FTP streams cannot seek, so the files there are compressed text (``.csv.gz``,
``.jsonl.gz``), which Spark reads without seeking; Parquet there is one clear line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from mlcd_actions.core.errors import DataError, ServiceError
from mlcd_actions.stages import check_data, monitor, predict, validate
from tests.delivery.serving import fixtures
from tests.floats import assert_batch_frame_equal
from tests.services import free_port

pytest.importorskip("pyspark", reason="the spark extra is part of the test install")
pytest.importorskip("pyftpdlib", reason="the FTP server is part of the test install")
pytestmark = pytest.mark.slow

DATA = Path(__file__).parent.parent / "data"


def _ftp_conf(ftp) -> dict[str, str]:
    return {f"spark.hadoop.fs.ftp.user.{ftp.host}": ftp.user,
            f"spark.hadoop.fs.ftp.password.{ftp.host}": ftp.password}


@pytest.fixture(scope="module", autouse=True)
def spark(ftp_server):
    """One local session for the module (the stages reuse an active session). The FTP login
    is in its conf only: the URLs below carry none."""
    from mlcd_actions.data.spark import session

    spark, started = session.start(session.Settings.of(
        "local[2]", {"spark.sql.shuffle.partitions": "4", **_ftp_conf(ftp_server)}),
        "mlcd tests")
    assert started
    yield spark
    spark.stop()


def _publish(ftp, df: pd.DataFrame, name: str, local: Path) -> str:
    """``df`` as ``name`` (.csv.gz, .jsonl.gz) both under ``local`` and on the FTP server;
    returns the ftp:// URL (no login in it)."""
    for root in (local, ftp.root):
        target = root / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if ".jsonl" in name:
            df.to_json(target, orient="records", lines=True, compression="gzip")
        else:
            df.to_csv(target, index=False, compression="gzip")
    return ftp.url(name)


def _table(result, title):
    return [t for t in result.tables if t.title.startswith(title)][0].rows


# --------------------------------------------------------------------------- validate

def _people() -> pd.DataFrame:
    df = pd.read_csv(DATA / "validate" / "people.csv")
    df.loc[[2, 15], "age"] = [7, 140]                   # in_range, one per file below
    df.loc[18, "city"] = "Lyon"                         # isin
    df.loc[11, "id"] = df.loc[1, "id"]                  # unique across the two files
    return df


def test_validate_from_ftp_same_failures_rows_and_skew_as_local(ftp_server, tmp_path):
    df = _people()
    url = ftp_server.url
    # a directory named as any: its files say the format (Hadoop's listing), the rest of
    # it is skipped as in a local one
    _publish(ftp_server, df.iloc[10:], "people/part-1.csv.gz", tmp_path)
    _publish(ftp_server, df.iloc[:10], "people/part-0.csv.gz", tmp_path)
    for root in (tmp_path, ftp_server.root):
        (root / "people" / "_SUCCESS").write_text("")
        (root / "people" / "notes.md").write_text("not data\n")
    ref = _publish(ftp_server, pd.read_csv(DATA / "validate" / "people.csv"),
                   "reference.csv.gz", tmp_path)
    schema = str(DATA / "validate" / "people.yaml")
    local = validate.run(tmp_path / "people", schema, reference=tmp_path / "reference.csv.gz")
    remote = validate.run(url("people"), schema, reference=ref, engine="spark")
    assert remote.details["engine"] == "spark"
    assert remote.status == local.status == "failed"
    got, want = _table(remote, "schema failures"), _table(local, "schema failures")
    assert got == want and len(want) >= 3
    rows = {r[1].split("(")[0]: r[3] for r in got}
    assert rows["in_range"] == "3, 16" and rows["field_uniqueness"] == "2, 12"
    assert [(f.code, f.line, f.count, f.rows) for f in remote.findings] == \
           [(f.code, f.line, f.count, f.rows) for f in local.findings]
    assert _table(remote, "skew vs") == _table(local, "skew vs")
    assert [(g.metric, g.verdict) for g in remote.gates] == \
           [(g.metric, g.verdict) for g in local.gates]


# --------------------------------------------------------------------------- check-data

def test_check_data_from_ftp_same_masked_findings_as_local(ftp_server, tmp_path):
    df = pd.concat([pd.read_csv(DATA / "check_data" / "people.csv")] * 8, ignore_index=True)
    df.loc[3, "email_sha"] = "not a hash"
    url = _publish(ftp_server, df, "people.jsonl.gz", tmp_path)
    kwargs = dict(label="approved", sensitive=["sex"], min_group_size=5,
                  pii_policy=str(DATA / "check_data" / "policy.yaml"))
    local = check_data.run(str(tmp_path / "people.jsonl.gz"), **kwargs)
    remote = check_data.run(url, engine="spark", **kwargs)
    assert remote.status == local.status == "failed"
    assert [f.message for f in remote.findings] == [f.message for f in local.findings]
    assert "john.doe@example.com" not in str(_table(remote, "PII findings"))
    assert _table(remote, "PII findings") == _table(local, "PII findings")
    assert [(g.metric, g.verdict) for g in remote.gates] == \
           [(g.metric, g.verdict) for g in local.gates]


# --------------------------------------------------------------------------- monitor

def test_monitor_from_ftp_same_drift_verdicts_as_local(ftp_server, tmp_path):
    D = DATA / "monitor"
    ref = _publish(ftp_server, pd.read_csv(D / "reference.csv"), "reference.csv.gz", tmp_path)
    for name, status in (("current_shifted", "failed"), ("current_same", "passed")):
        cur = _publish(ftp_server, pd.read_csv(D / f"{name}.csv"), f"{name}.csv.gz", tmp_path)
        local = monitor.run(tmp_path / "reference.csv.gz", tmp_path / f"{name}.csv.gz")
        remote = monitor.run(ref, cur, engine="spark")
        assert remote.status == local.status == status
        assert remote.outputs == local.outputs
        assert remote.details["drift"] == local.details["drift"]


# --------------------------------------------------------------------------- predict

def test_predict_reads_ftp_input_and_writes_the_local_output(ftp_server, tmp_path):
    model = fixtures.binary_model(tmp_path / "model")
    df = fixtures.frame(120, seed=11)
    url = _publish(ftp_server, df, "batch.csv.gz", tmp_path)
    df.to_csv(tmp_path / "batch.csv", index=False)
    remote = predict.run(str(model), url, str(tmp_path / "sp.parquet"), engine="spark")
    assert remote.outputs["rows"] == 120 and remote.details["input"] == url
    predict.run(str(model), str(tmp_path / "batch.csv"), str(tmp_path / "pd.parquet"))
    got, want = (pd.read_parquet(tmp_path / n).sort_values("customer_id")
                 .reset_index(drop=True) for n in ("sp.parquet", "pd.parquet"))
    # Spark infers int32 for small integers in a CSV where pandas has int64 (as on a
    # local CSV: predict_spark's reader, not the filesystem)
    assert_batch_frame_equal(got.astype({"customer_id": "int64"}), want)
    with pytest.raises(Exception, match="writes to a local path") as err:
        predict.run(str(model), url, url.replace("batch.csv.gz", "out.parquet"),
                    engine="spark")
    assert err.value.exit_code == 2


# --------------------------------------------------------------------------- bad input

def _stages(model: str, out: Path):
    schema = str(DATA / "validate" / "people.yaml")
    yield "validate", lambda p, **kw: validate.run(p, schema, **kw)
    yield "check-data", lambda p, **kw: check_data.run(p, **kw)
    yield "monitor", lambda p, **kw: monitor.run(p, p, **kw)
    yield "predict", lambda p, **kw: predict.run(model, p, str(out), **kw)


def test_a_missing_remote_path_is_the_local_line_and_exit_code(ftp_server, tmp_path):
    model = str(fixtures.binary_model(tmp_path / "model"))
    for stage, run in _stages(model, tmp_path / "out.parquet"):
        lines = {}
        for where, path in (("local", str(tmp_path / "gone.csv.gz")),
                            ("ftp", ftp_server.url("gone.csv.gz"))):
            with pytest.raises(DataError) as err:
                run(path, engine="spark")
            assert err.value.exit_code == 2, (stage, where)
            lines[where] = err.value.one_line().replace(path, "PATH")
        assert lines["ftp"] == lines["local"] == "PATH: no such file", stage
    for root in (tmp_path, ftp_server.root):                  # a directory without data
        (root / "empty").mkdir()
        (root / "empty" / "notes.md").write_text("not data\n")
    for path in (str(tmp_path / "empty"), ftp_server.url("empty")):
        with pytest.raises(DataError) as err:
            monitor.run(path, path, engine="spark")
        assert err.value.one_line() == f"{path}: directory holds no .parquet, .csv or " \
                                       ".jsonl files"
    assert not (tmp_path / "out.parquet").exists()


def test_parquet_on_ftp_cannot_be_read_and_says_why(ftp_server, tmp_path):
    _people().to_parquet(ftp_server.root / "people.parquet", index=False)
    with pytest.raises(DataError) as err:
        validate.run(ftp_server.url("people.parquet"), str(DATA / "validate" / "people.yaml"),
                     engine="spark")
    assert err.value.exit_code == 2
    assert "cannot seek" in err.value.one_line() and ".csv.gz" in err.value.one_line()


def test_http_cannot_be_listed_and_is_one_line_exit_2(http_server):
    """Hadoop's HttpFileSystem (in pyspark's jars) has no listing, which Spark's file
    sources need."""
    base, root = http_server
    pd.read_csv(DATA / "monitor" / "reference.csv").to_csv(root / "ref.csv", index=False)
    with pytest.raises(DataError) as err:
        monitor.run(f"{base}/ref.csv", f"{base}/ref.csv", engine="spark")
    assert err.value.exit_code == 2 and "listStatus" in err.value.one_line()
    assert err.value.one_line().startswith(f"{base}/ref.csv: Spark cannot read it as csv")


def test_a_refused_login_or_a_closed_port_is_exit_3(ftp_server, tmp_path):
    df = pd.read_csv(DATA / "monitor" / "reference.csv")
    url = _publish(ftp_server, df, "ref.csv.gz", tmp_path)
    wrong = url.replace("ftp://", f"ftp://{ftp_server.user}:not-the-password@")
    with pytest.raises(ServiceError) as err:
        monitor.run(wrong, wrong, engine="spark")
    assert err.value.exit_code == 3
    assert "Login failed" in err.value.one_line()
    assert "spark.hadoop.fs.ftp.user.HOST" in err.value.one_line()
    closed = url.replace(f":{ftp_server.port}/", f":{free_port()}/")
    with pytest.raises(ServiceError, match="Connection refused"):
        check_data.run(closed, engine="spark")


# --------------------------------------------------------------------------- the CLI

def _cli(args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess:
    """``mlcd ARGS`` in a process of its own: no active session, so it starts one from
    mlcd.yaml's ``spark`` section (a second JVM: one run in this module)."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("MLCD_", "PYSPARK_"))}
    return subprocess.run([sys.executable, "-m", "mlcd_actions", *args], cwd=cwd,
                          env={**clean, **env, "CI": "true"}, capture_output=True,
                          text=True, timeout=600)


def test_cli_ftp_login_from_mlcd_yaml_and_an_unreachable_server(ftp_server, tmp_path, mlcd):
    """spark.conf in mlcd.yaml (the password from the environment) reaches the Hadoop
    filesystem of the session the CLI starts: the same failures as the local copy."""
    df = _people()
    url = _publish(ftp_server, df, "people.csv.gz", tmp_path)
    schema = str(DATA / "validate" / "people.yaml")
    want = mlcd("validate", str(tmp_path / "people.csv.gz"), "--schema", schema)
    assert want.exit_code == 1
    project = tmp_path / "project"
    project.mkdir()
    (project / "mlcd.yaml").write_text(
        "engine: spark\n"
        "spark:\n"
        "  master: local[1]\n"
        "  conf:\n"
        f"    spark.hadoop.fs.ftp.user.{ftp_server.host}: {ftp_server.user}\n"
        f"    spark.hadoop.fs.ftp.password.{ftp_server.host}: ${{FTP_PASSWORD}}\n",
        encoding="utf-8")
    got = _cli(["validate", url, "--schema", schema], project,
               FTP_PASSWORD=ftp_server.password)
    assert got.returncode == 1, got.stderr[-3000:]
    assert got.stdout.strip().splitlines()[-1] == want.verdict     # "... data rows 3, 16"
    assert "data rows 2, 12" in want.verdict
    report = json.loads((project / ".mlcd" / "reports" / "validate.json").read_text())
    assert report["details"]["engine"] == "spark"

    # a server out of reach, a password in the URL: in this process (the module's session)
    closed = f"ftp://{ftp_server.user}:{ftp_server.password}@localhost:{free_port()}/x.csv.gz"
    down = mlcd("check-data", closed, "--engine", "spark")
    assert down.exit_code == 3, down
    assert "Connection refused" in down.verdict and len(down.verdict.splitlines()) == 1
    assert "Traceback" not in down.output and ftp_server.password not in down.output
