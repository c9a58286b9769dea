"""The Spark stages against a real Spark Connect server (the Databricks Connect way of
reaching a cluster), started from pyspark's own jars on 127.0.0.1 for the module: the
settings in mlcd.yaml (``spark.remote`` and the ``spark.conf`` map) reach the session of
every Spark stage, and validate, check-data and monitor give the pandas engine's
verdicts there."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("pyspark", reason="the spark extra is part of the test install")
pytest.importorskip("grpc", reason="the spark extra installs pyspark[connect]")
pytestmark = pytest.mark.slow

DATA = Path(__file__).parent.parent / "data"
START_TIMEOUT = 180.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def connect_url(tmp_path_factory):
    """``sc://127.0.0.1:PORT``: a Spark Connect server (local[2]) for the module, stopped
    (its whole process group) at the end."""
    import pyspark

    submit = Path(pyspark.__file__).parent / "bin" / "spark-submit"
    port = _free_port()
    log = tmp_path_factory.mktemp("connect") / "server.log"
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable,
           "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[2]),
                                          os.environ.get("PYTHONPATH", "")])}
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [str(submit), "--class", "org.apache.spark.sql.connect.service.SparkConnectServer",
             "--master", "local[2]", "--conf", "spark.connect.grpc.binding.address=127.0.0.1",
             "--conf", f"spark.connect.grpc.binding.port={port}",
             "--conf", "spark.ui.enabled=false", "--conf", "spark.driver.host=127.0.0.1",
             "--conf", "spark.driver.bindAddress=127.0.0.1",
             "--conf", "spark.sql.shuffle.partitions=4", "spark-internal"],
            stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if proc.poll() is not None:
                pytest.fail(f"the Spark Connect server exited: {log.read_text()[-2000:]}")
            with socket.socket() as s:
                s.settimeout(1)
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            if time.monotonic() > deadline:
                pytest.fail(f"no Spark Connect server on port {port} after {START_TIMEOUT:.0f}s")
            time.sleep(1)
        yield f"sc://127.0.0.1:{port}"
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)


def _files() -> None:
    shutil.copy(DATA / "validate" / "people.csv", "people.csv")
    shutil.copy(DATA / "validate" / "people.yaml", "people.yaml")


def _yaml(url: str, conf: dict[str, str] | None = None) -> None:
    text = f"engine: spark\nspark:\n  remote: {url}\n"
    if conf:
        text += "  conf:\n" + "".join(f"    {k}: '{v}'\n" for k, v in conf.items())
    Path("mlcd.yaml").write_text(text, encoding="utf-8")


def test_stages_on_spark_connect_give_the_pandas_verdicts(mlcd, connect_url):
    import pandas as pd

    _files()
    df = pd.read_csv("people.csv")
    df.loc[[3, 17], "age"] = [5, 130]
    df.to_csv("bad.csv", index=False)
    D = DATA / "monitor"
    runs = [("validate", "bad.csv", "--schema", "people.yaml"),
            ("check-data", str(DATA / "check_data" / "people.csv"), "--sensitive", "sex",
             "--label", "approved", "--pii-policy", str(DATA / "check_data" / "policy.yaml")),
            ("monitor", "--reference", str(D / "reference.csv"),
             "--current", str(D / "current_shifted.csv"))]
    pandas = [mlcd(*args, "--engine", "pandas") for args in runs]
    _yaml(connect_url)
    for args, want in zip(runs, pandas, strict=True):
        got = mlcd(*args)
        assert "Traceback" not in got.output
        assert (got.exit_code, got.verdict) == (want.exit_code, want.verdict), got
        assert want.exit_code == 1          # each one has something to find
        report = Path(f".mlcd/reports/{args[0]}.json").read_text(encoding="utf-8")
        assert '"engine": "spark"' in report


def test_the_conf_map_reaches_every_spark_stage(mlcd, connect_url, tmp_path):
    """A property the server refuses makes every Spark stage exit 2 naming it: the conf
    map of mlcd.yaml reached that stage's session (predict included). predict itself
    needs SparkContext.addFile, which Spark Connect has not: one line, exit 2, no output."""
    from tests.delivery.serving import fixtures

    _files()
    model = fixtures.binary_model(tmp_path / "binary")
    fixtures.frame(40, seed=3).to_parquet("rows.parquet")
    predict = ("predict", "--model-uri", str(model), "--input", "rows.parquet",
               "--output", "out.parquet")
    _yaml(connect_url, {"spark.sql.shuffle.partitions": "-3"})
    for args in (("validate", "people.csv", "--schema", "people.yaml"),
                 ("check-data", "people.csv"),
                 ("monitor", "--reference", "people.csv", "--current", "people.csv"),
                 predict):
        r = mlcd(*args)
        assert r.exit_code == 2, r
        assert "spark.sql.shuffle.partitions" in r.output, r
        assert "Traceback" not in r.output
    _yaml(connect_url)
    r = mlcd(*predict)
    assert r.exit_code == 2 and "Spark Connect" in r.verdict, r
    assert not Path("out.parquet").exists()
