"""Faults in the middle of a run: the DVC remote becomes unreachable during
``version-data``'s push.

The remote is a real S3-compatible server (moto_server) reached through
:class:`~tests.faults.tcp.CuttingProxy`, which cuts the network path at the 15th upload of
a 61-file push: connections reset, new ones refused, and the store keeps what it already
received. ``version-data`` must exit 3 with one line naming the remote, leave
``.dvc/config`` without the remote (it is written only after a push succeeded), leave only
whole objects on the remote, and a rerun once the path is back must push the rest so that
a fresh ``dvc pull`` restores every byte.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
import uuid
from pathlib import Path

from tests.cli.test_version_data import git, pull_fresh
from tests.faults.tcp import CuttingProxy

FILES = 60


def _data(root: Path) -> dict[str, bytes]:
    content = {}
    for i in range(FILES):
        content[f"data/raw/part-{i:03d}.csv"] = f"id,x\n{i},{i * 0.5}\n".encode()
    content["train.csv"] = b"id,y\n1,0\n2,1\n"
    for rel, data in content.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return content


def _objects(client, bucket: str) -> dict[str, bytes]:
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket)
    keys = [o["Key"] for page in pages for o in page.get("Contents", [])]
    return {k: client.get_object(Bucket=bucket, Key=k)["Body"].read() for k in keys}


def test_remote_lost_mid_push_exits_3_and_a_rerun_completes(mlcd, s3, monkeypatch):
    endpoint, client = s3
    bucket = f"mlcd-cut-{uuid.uuid4().hex[:8]}"
    client.create_bucket(Bucket=bucket)
    work = Path.cwd()
    git(work, "init", "-q", "-b", "main")
    content = _data(work)
    remote = f"s3://{bucket}/dvc"
    moto_port = int(endpoint.rsplit(":", 1)[1])
    proxy = CuttingProxy(moto_port, marker=b"PUT /", cut_at=15)
    monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
    # botocore's default (5 attempts with backoff per upload) takes ~60 s to give up here;
    # two attempts keep the test short and still retry each upload once
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "2")

    started = time.monotonic()
    r = mlcd("version-data", "data/raw", "train.csv", "--remote", remote)
    took = time.monotonic() - started
    assert proxy.cut.is_set(), "the push finished before the remote was cut"
    assert r.exit_code == 3, r
    assert r.verdict.startswith(f"mlcd version-data: failed — cannot push to DVC remote "
                                f"'mlcd' ({remote}): "), r
    assert "(first: Could not connect to the endpoint URL" in r.verdict, r
    assert "Traceback" not in r.output and "failed to transfer" not in r.output, r
    assert "failed to transfer" in Path(".mlcd/logs/mlcd.log").read_text()  # kept there
    assert took < 120, took
    assert "mlcd" not in Path(".dvc/config").read_text()  # no remote recorded as used
    assert json.loads(Path(".mlcd/reports/version-data.json").read_text())["status"] == "error"
    half = _objects(client, bucket)
    assert 0 < len(half) < FILES + 2, len(half)  # some objects landed, not all
    for key, data in half.items():  # each whole: content-addressed by its md5
        if not key.endswith(".dir"):
            assert hashlib.md5(data).hexdigest() == key.split("/md5/")[1].replace("/", ""), key

    back = CuttingProxy(moto_port, marker=b"PUT /", cut_at=10**9, port=proxy.port)  # path back
    try:
        r = mlcd("version-data", "data/raw", "train.csv", "--remote", remote)
    finally:
        back.kill()
    assert r.exit_code == 0, r
    done = json.loads(Path(".mlcd/reports/version-data.json").read_text())
    assert done["metrics"]["pushed"] == FILES + 2 - len(half), (done["metrics"], len(half))
    assert "remote = mlcd" in Path(".dvc/config").read_text()
    assert len(_objects(client, bucket)) == FILES + 2  # 61 files + the folder's manifest

    shutil.rmtree("data/raw")
    Path("train.csv").unlink()
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    pull_fresh(work)
    assert {rel: (work / rel).read_bytes() for rel in content} == content
