"""``mlcd ingest`` through the CLI, against real sources: files, an HTTP server on loopback
(including one that stalls and one that fails first), moto's S3 server, a SQLite file.

Every bad-input case checks the exit code, one line naming the file or URI, and that a
snapshot from an earlier successful ingest is left exactly as it was.
"""

from __future__ import annotations

import contextlib
import http.server
import json
import shutil
import sqlite3
import threading
import time
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from tests.services import free_port

DATA = Path(__file__).parent.parent / "data" / "ingest"


def verdict_line(r) -> str:
    return r.verdict


def snapshot(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(out.iterdir())}


@pytest.fixture
def prior(mlcd):
    """A successful earlier ingest into ./snap; returns (dir, its bytes)."""
    r = mlcd("ingest", DATA / "people.csv", "--out", "snap")
    assert r.exit_code == 0, r
    out = Path("snap")
    return out, snapshot(out)


def assert_failed_cleanly(r, code: int, *names: str, prior=None) -> None:
    assert r.exit_code == code, r
    line = r.verdict
    assert line.startswith("mlcd ingest: failed — "), r
    for name in names:
        assert name in line, r
    if prior is not None:
        out, before = prior
        assert snapshot(out) == before
        assert not [p for p in out.parent.iterdir() if p.name.startswith(".snap.")]


# --------------------------------------------------------------------------- local files

def test_csv_snapshot_manifest_and_outputs(mlcd, tmp_path, monkeypatch):
    gh_out = tmp_path / "gh-output"
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_OUTPUT", str(gh_out))
    r = mlcd("ingest", DATA / "people.csv", "--out", "snap")
    assert r.exit_code == 0, r
    assert r.verdict.startswith("mlcd ingest: passed — 5 rows × 5 columns"), r
    df = pd.read_parquet("snap/data.parquet")
    assert df["name"].tolist() == ["Ada", "Grace", "Alan", "Katherine", "Edsger"]
    assert df["score"].isna().tolist() == [False, False, True, False, False]
    manifest = json.loads(Path("snap/manifest.json").read_text())
    assert manifest["rows"] == 5
    assert manifest["columns"] == ["id", "name", "age", "score", "city"]
    assert manifest["dtypes"]["id"] == "int64" and manifest["dtypes"]["score"] == "float64"
    assert manifest["adapter"] == "local"
    assert manifest["source_details"]["content_length"] == (DATA / "people.csv").stat().st_size
    from mlcd_actions.core.files import sha256_file

    assert manifest["sha256"] == sha256_file("snap/data.parquet")
    report = json.loads(Path(".mlcd/reports/ingest.json").read_text())
    assert report["outputs"] == {"data-path": "snap/data.parquet", "rows": 5,
                                 "sha256": manifest["sha256"],
                                 "manifest-path": "snap/manifest.json"}
    text = gh_out.read_text()
    assert "data-path=snap/data.parquet" in text and f"sha256={manifest['sha256']}" in text


@pytest.mark.parametrize("name", ["people.parquet", "people.jsonl"])
def test_parquet_and_jsonl(mlcd, name):
    r = mlcd("ingest", DATA / name, "--out", "snap")
    assert r.exit_code == 0, r
    assert pd.read_parquet("snap/data.parquet")["id"].tolist() == [1, 2, 3, 4, 5]


def test_glob_and_file_uri(mlcd, tmp_path):
    parts = tmp_path / "parts"
    parts.mkdir()
    (parts / "a.csv").write_text("id,x\n1,10\n2,20\n")
    (parts / "b.csv").write_text("id,x,extra\n3,1.5,yes\n")
    r = mlcd("ingest", str(parts / "*.csv"), "--out", "snap")
    assert r.exit_code == 0, r
    df = pd.read_parquet("snap/data.parquet")
    assert df["id"].tolist() == [1, 2, 3]
    assert df["x"].tolist() == [10.0, 20.0, 1.5]            # int then float -> float
    assert df["extra"].isna().tolist() == [True, True, False]
    r = mlcd("ingest", (parts / "a.csv").as_uri(), "--out", "snap2")
    assert r.exit_code == 0, r
    assert json.loads(Path("snap2/manifest.json").read_text())["rows"] == 2


def test_unicode_and_very_long_strings(mlcd, tmp_path):
    src = tmp_path / "long.csv"
    shutil.copy(DATA / "unicode.csv", src)
    long_text = "ü東" * 500_000
    with open(src, "a", encoding="utf-8") as fh:
        fh.write(f'4,"{long_text}",🧪\n')
    r = mlcd("ingest", src, "--out", "snap")
    assert r.exit_code == 0, r
    df = pd.read_parquet("snap/data.parquet")
    assert df["text"][0] == "naïve café — 東京"
    assert df["text"][1] == 'Zeile mit "Anführungszeichen", Komma'
    assert df["text"][3] == long_text
    assert df["emoji"].tolist() == ["🙂", "✅", "🚀", "🧪"]


def test_nan_and_inf_survive(mlcd):
    r = mlcd("ingest", DATA / "nan_inf.csv", "--out", "snap")
    assert r.exit_code == 0, r
    df = pd.read_parquet("snap/data.parquet")
    assert df["x"].tolist()[:2] == [1.5, float("inf")]
    assert pd.isna(df["x"][2]) and df["x"][3] == float("-inf")
    assert df["y"][2] == 2.0 and df["y"][1] == float("-inf") and pd.isna(df["y"][0])


@pytest.mark.parametrize("src, code, names", [
    ("does-not-exist.csv", 2, ["does-not-exist.csv", "no such file"]),
    (str(DATA / "malformed.csv"), 2, ["malformed.csv", "malformed CSV at line 3"]),
    (str(DATA / "malformed.parquet"), 2, ["malformed.parquet", "malformed Parquet"]),
    (str(DATA / "not_utf8.csv"), 2, ["not_utf8.csv", "'name'", "UTF-8"]),
    (str(DATA / "header_only.csv"), 1, ["header_only.csv", "empty"]),
    ("nothing-here/*.csv", 2, ["nothing-here/*.csv", "no files match"]),
    ("ftp://example.org/data.csv", 2, ["ftp://example.org/data.csv", "unknown source scheme"]),
    ("data.xlsx", 2, []),
])
def test_bad_local_input(mlcd, prior, src, code, names):
    if src == "data.xlsx":
        Path(src).write_bytes(b"PK\x03\x04")
        names = ["data.xlsx", "format"]
    r = mlcd("ingest", src, "--out", "snap")
    assert_failed_cleanly(r, code, *names, prior=prior)


def test_zero_byte_file_is_empty(mlcd, prior):
    Path("zero.csv").write_bytes(b"")
    r = mlcd("ingest", "zero.csv", "--out", "snap")
    assert_failed_cleanly(r, 1, "zero.csv", "empty", prior=prior)


def test_out_is_a_file(mlcd):
    Path("snap").write_text("not a dir")
    r = mlcd("ingest", DATA / "people.csv", "--out", "snap")
    assert r.exit_code == 2, r
    assert "snap" in r.verdict


def test_keeps_other_files_in_out(mlcd, prior):
    out, _ = prior
    (out / "README").write_text("mine")
    r = mlcd("ingest", DATA / "people.parquet", "--out", "snap")
    assert r.exit_code == 0, r
    assert (out / "README").read_text() == "mine"


# --------------------------------------------------------------------------- HTTP

def test_http_download(mlcd, http_server):
    base, root = http_server
    shutil.copy(DATA / "people.parquet", root / "people.parquet")
    r = mlcd("ingest", f"{base}/people.parquet", "--out", "snap")
    assert r.exit_code == 0, r
    manifest = json.loads(Path("snap/manifest.json").read_text())
    assert manifest["adapter"] == "http" and manifest["rows"] == 5
    details = manifest["source_details"]
    assert details["content_length"] == (DATA / "people.parquet").stat().st_size
    assert details["status"] == 200 and details["attempts"] == 1
    assert details["last_modified"]


def test_http_not_found_and_refused(mlcd, http_server, prior):
    base, _ = http_server
    r = mlcd("ingest", f"{base}/nope.csv", "--out", "snap")
    assert_failed_cleanly(r, 2, f"{base}/nope.csv", "404", prior=prior)
    port = free_port()  # nothing listens there
    r = mlcd("ingest", f"http://127.0.0.1:{port}/x.csv", "--out", "snap", "--retries", "0")
    assert_failed_cleanly(r, 3, f"127.0.0.1:{port}/x.csv", "cannot connect", prior=prior)


class _Scripted(http.server.BaseHTTPRequestHandler):
    """Answers from a script shared by the test: 'stall', a status code, or 'ok'."""

    script: list = []
    body: bytes = b""
    hits: list = []
    release: threading.Event

    def log_message(self, *args) -> None:
        pass

    def do_GET(self) -> None:  # noqa: N802 - http.server API
        step = self.script.pop(0) if self.script else "ok"
        self.hits.append(step)
        if step == "stall":
            self.release.wait(10)  # bounded: the test sets it at the end
            return
        if step == "auth":
            self.send_response(401)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if isinstance(step, int):
            self.send_response(step)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/csv")
        self.send_header("Content-Length", str(len(self.body)))
        self.send_header("ETag", '"v1"')
        self.end_headers()
        if self.command == "GET":
            self.wfile.write(self.body)

    do_HEAD = do_GET  # noqa: N815 - S3 clients start with HEAD


@contextlib.contextmanager
def scripted_server(script, body=b""):
    handler = type("Handler", (_Scripted,), {"script": list(script), "body": body, "hits": [],
                                              "release": threading.Event()})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", handler
    finally:
        handler.release.set()
        server.shutdown()
        server.server_close()


def test_http_timeout_is_a_service_error(mlcd, prior):
    with scripted_server(["stall", "stall", "stall"]) as (base, handler):
        t0 = time.monotonic()
        r = mlcd("ingest", f"{base}/slow.csv", "--out", "snap", "--timeout", "0.5",
                 "--retries", "1")
        elapsed = time.monotonic() - t0
    assert_failed_cleanly(r, 3, f"{base}/slow.csv", "timed out after 0.5s", "2 attempts",
                          prior=prior)
    assert handler.hits == ["stall", "stall"]
    assert elapsed < 8


def test_http_retries_then_succeeds(mlcd):
    body = (DATA / "people.csv").read_bytes()
    with scripted_server([503, "stall"], body) as (base, handler):
        r = mlcd("ingest", f"{base}/data", "--out", "snap", "--timeout", "0.5",
                 "--retries", "3")
    assert r.exit_code == 0, r
    assert handler.hits == [503, "stall", "ok"]
    manifest = json.loads(Path("snap/manifest.json").read_text())
    assert manifest["rows"] == 5
    assert manifest["source_details"]["attempts"] == 3
    assert manifest["source_details"]["etag"] == '"v1"'
    assert manifest["source_details"]["format"] == "csv"   # from Content-Type


def test_http_auth_refused_and_password_masked(mlcd, prior):
    with scripted_server(["auth"]) as (base, _):
        url = base.replace("http://", "http://alice:s3cr3t-pw@") + "/people.csv"
        r = mlcd("ingest", url, "--out", "snap", "--header", "X-Api-Key: key-abcdef")
    assert_failed_cleanly(r, 3, "access refused", "alice:***@", prior=prior)
    assert "s3cr3t-pw" not in r.output
    assert "s3cr3t-pw" not in Path(".mlcd/reports/ingest.json").read_text()


def test_http_password_masked_in_manifest(mlcd):
    body = (DATA / "people.csv").read_bytes()
    with scripted_server([], body) as (base, _):
        url = base.replace("http://", "http://bob:hunter2-pw@") + "/people.csv?token=tok-123456"
        r = mlcd("ingest", url, "--out", "snap")
    assert r.exit_code == 0, r
    text = Path("snap/manifest.json").read_text()
    assert "hunter2-pw" not in text and "tok-123456" not in text
    manifest = json.loads(text)
    assert manifest["source"].startswith("http://bob:***@127.0.0.1:")
    assert "token=***" in manifest["source"]
    assert "hunter2-pw" not in r.output


# --------------------------------------------------------------------------- S3

def test_s3_with_endpoint_option(mlcd, s3, monkeypatch):
    endpoint, client = s3
    monkeypatch.delenv("AWS_ENDPOINT_URL")
    client.create_bucket(Bucket="ingest-opt")
    client.upload_file(str(DATA / "people.csv"), "ingest-opt", "raw/people.csv")
    r = mlcd("ingest", "s3://ingest-opt/raw/people.csv", "--out", "snap",
             "--endpoint-url", endpoint)
    assert r.exit_code == 0, r
    manifest = json.loads(Path("snap/manifest.json").read_text())
    assert manifest["rows"] == 5 and manifest["adapter"] == "s3"
    details = manifest["source_details"]
    assert details["etag"] and details["content_length"] == (DATA / "people.csv").stat().st_size
    assert details["endpoint_url"] == endpoint and details["key"] == "raw/people.csv"


def test_s3_prefix_and_env_endpoint(mlcd, s3):
    endpoint, client = s3   # AWS_ENDPOINT_URL is set by the fixture
    client.create_bucket(Bucket="ingest-env")
    client.upload_file(str(DATA / "people.parquet"), "ingest-env", "parts/a.parquet")
    client.upload_file(str(DATA / "people.jsonl"), "ingest-env", "parts/b.jsonl")
    client.put_object(Bucket="ingest-env", Key="parts/_SUCCESS", Body=b"")
    r = mlcd("ingest", "s3://ingest-env/parts/", "--out", "snap")
    assert r.exit_code == 0, r
    assert json.loads(Path("snap/manifest.json").read_text())["rows"] == 10
    r = mlcd("ingest", "s3://ingest-env/parts/*.jsonl", "--out", "snap2")
    assert r.exit_code == 0, r
    assert json.loads(Path("snap2/manifest.json").read_text())["rows"] == 5


def test_s3_missing_and_unreachable(mlcd, s3, prior):
    endpoint, client = s3
    client.create_bucket(Bucket="ingest-missing")
    r = mlcd("ingest", "s3://ingest-missing/nope.csv", "--out", "snap")
    assert_failed_cleanly(r, 2, "s3://ingest-missing/nope.csv", "no such object", prior=prior)
    r = mlcd("ingest", "s3://no-such-bucket-here/x.csv", "--out", "snap")
    assert_failed_cleanly(r, 2, "s3://no-such-bucket-here/x.csv", prior=prior)
    dead = f"http://127.0.0.1:{free_port()}"
    r = mlcd("ingest", "s3://ingest-missing/x.csv", "--out", "snap", "--endpoint-url", dead,
             "--retries", "0", "--timeout", "2")
    assert_failed_cleanly(r, 3, "s3://ingest-missing/x.csv", "cannot connect", dead,
                          prior=prior)


# --------------------------------------------------------------------------- SQL

@pytest.fixture
def sqlite_db(tmp_path) -> Path:
    db = tmp_path / "shop.sqlite"
    with contextlib.closing(sqlite3.connect(db)) as conn:
        conn.execute("CREATE TABLE orders (id INTEGER, customer TEXT, amount REAL)")
        conn.executemany("INSERT INTO orders VALUES (?, ?, ?)",
                         [(1, "Ada", 9.5), (2, "Grace", None), (3, "Zoë", 120.0)])
        conn.commit()
    return db


def test_sql_query_in_url_and_option(mlcd, sqlite_db):
    r = mlcd("ingest", f"sqlite:///{sqlite_db}?query=SELECT * FROM orders WHERE id > 1",
             "--out", "snap")
    assert r.exit_code == 0, r
    df = pd.read_parquet("snap/data.parquet")
    assert df["customer"].tolist() == ["Grace", "Zoë"]
    manifest = json.loads(Path("snap/manifest.json").read_text())
    assert manifest["adapter"] == "sql" and manifest["source_details"]["read_only"] is True
    r = mlcd("ingest", f"sqlite:///{sqlite_db}", "--query", "SELECT id, amount FROM orders",
             "--out", "snap2")
    assert r.exit_code == 0, r
    assert pq.read_table("snap2/data.parquet").column_names == ["id", "amount"]
    r = mlcd("ingest", f"sqlite:///{sqlite_db}?table=orders", "--out", "snap3")
    assert r.exit_code == 0, r
    assert json.loads(Path("snap3/manifest.json").read_text())["rows"] == 3


@pytest.mark.parametrize("query, words", [
    ("DELETE FROM orders", ["only SELECT", "DELETE"]),
    ("SELECT 1; DROP TABLE orders", ["one statement"]),
    ("WITH x AS (SELECT 1) INSERT INTO orders SELECT * FROM x", ["only SELECT"]),
    ("SELECT * INTO backup FROM orders", ["INTO"]),
    ("PRAGMA writable_schema = ON", ["only SELECT"]),
    ("SELECT * FROM no_such_table", ["query failed", "no_such_table"]),
])
def test_sql_rejects_writes_and_bad_queries(mlcd, sqlite_db, prior, query, words):
    before = sqlite_db.read_bytes()
    r = mlcd("ingest", f"sqlite:///{sqlite_db}", "--query", query, "--out", "snap")
    assert_failed_cleanly(r, 2, *words, prior=prior)
    assert sqlite_db.read_bytes() == before


def test_sql_empty_result_and_missing_db(mlcd, sqlite_db, prior):
    r = mlcd("ingest", f"sqlite:///{sqlite_db}", "--query", "SELECT * FROM orders WHERE 0",
             "--out", "snap")
    assert_failed_cleanly(r, 1, "empty", prior=prior)
    r = mlcd("ingest", "sqlite:///missing.sqlite?table=orders", "--out", "snap")
    assert_failed_cleanly(r, 2, "missing.sqlite", "no such SQLite database", prior=prior)
    assert not Path("missing.sqlite").exists()


def test_option_that_does_not_apply(mlcd, prior):
    r = mlcd("ingest", DATA / "people.csv", "--out", "snap", "--query", "SELECT 1")
    assert_failed_cleanly(r, 2, "--query does not apply to local sources", prior=prior)


def test_help_lists_options(mlcd):
    r = mlcd("ingest", "--help")
    assert r.exit_code == 0, r
    for opt in ("--out", "--format", "--query", "--endpoint-url", "--timeout", "--retries",
                "--header", "MLCD_OUT"):
        assert opt in r.stdout


def test_s3_endpoint_that_stalls_times_out(mlcd, s3, prior):
    with scripted_server(["stall", "stall"]) as (base, handler):
        r = mlcd("ingest", "s3://bucket/slow.csv", "--out", "snap", "--endpoint-url", base,
                 "--timeout", "0.5", "--retries", "0")
    assert_failed_cleanly(r, 3, "s3://bucket/slow.csv", "timed out after 0.5s", prior=prior)
    assert handler.hits == ["stall"]


def test_http_body_cut_short_is_retried_then_reported(mlcd, prior):
    class Short(_Scripted):
        def do_GET(self) -> None:  # noqa: N802
            self.hits.append("short")
            self.send_response(200)
            self.send_header("Content-Length", "1000")
            self.end_headers()
            self.wfile.write(b"id,x\n1,2\n")

    handler = type("H", (Short,), {"script": [], "body": b"", "hits": [],
                                   "release": threading.Event()})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/cut.csv"
        r = mlcd("ingest", url, "--out", "snap", "--retries", "1", "--timeout", "2")
    finally:
        server.shutdown()
        server.server_close()
    assert_failed_cleanly(r, 3, url, "2 attempts", prior=prior)
    assert handler.hits == ["short", "short"]


def test_empty_message_counts_columns(mlcd, prior):
    r = mlcd("ingest", DATA / "header_only.csv", "--out", "snap")
    assert_failed_cleanly(r, 1, "0 rows, 3 columns", prior=prior)


def test_headers_from_env_are_sent_and_masked(mlcd, monkeypatch):
    seen = []

    class Echo(_Scripted):
        def do_GET(self) -> None:  # noqa: N802
            seen.append((self.headers.get("Authorization"), self.headers.get("Accept")))
            self.send_response(200)
            body = (DATA / "people.csv").read_bytes()
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    handler = type("H", (Echo,), {"script": [], "body": b"", "hits": [],
                                  "release": threading.Event()})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/people.csv"
        r = mlcd("ingest", url, "--out", "snap",
                 env={"MLCD_HEADER": "Authorization: Bearer tok-very-secret\nAccept: text/csv"})
    finally:
        server.shutdown()
        server.server_close()
    assert r.exit_code == 0, r
    assert seen == [("Bearer tok-very-secret", "text/csv")]
    assert "tok-very-secret" not in Path(".mlcd/reports/ingest.json").read_text()


def test_download_shows_progress(mlcd, http_server, monkeypatch):
    import io

    from mlcd_actions.core import progress

    stream = io.StringIO()

    class Visible(progress.Progress):
        def __init__(self, *a, **k):
            k.update(interval=0.0, stream=stream, enabled=True)
            super().__init__(*a, **k)

    monkeypatch.setattr(progress, "Progress", Visible)
    base, root = http_server
    shutil.copy(DATA / "people.parquet", root / "p.parquet")
    r = mlcd("ingest", f"{base}/p.parquet", "--out", "snap")
    assert r.exit_code == 0, r
    size = (DATA / "people.parquet").stat().st_size
    assert f"download {base}/p.parquet: 100.0% ({size:,}/{size:,} bytes" in stream.getvalue()
    assert "rows" in stream.getvalue()


def test_options_from_mlcd_yaml(mlcd):
    Path("mlcd.yaml").write_text("version: 1\ningest:\n  out: from-config\n  format: csv\n")
    shutil.copy(DATA / "people.csv", "people.data")
    r = mlcd("ingest", "people.data")
    assert r.exit_code == 0, r
    assert json.loads(Path("from-config/manifest.json").read_text())["rows"] == 5


def test_directory_source_with_out_inside_it(mlcd, tmp_path):
    src = Path("data")
    src.mkdir()
    shutil.copy(DATA / "people.csv", src / "a.csv")
    shutil.copy(DATA / "people.jsonl", src / "b.jsonl")
    (src / "_SUCCESS").write_text("")
    for _ in range(2):  # the snapshot in data/snap is not read back in the second run
        r = mlcd("ingest", "data", "--out", "data/snap")
        assert r.exit_code == 0, r
        assert json.loads(Path("data/snap/manifest.json").read_text())["rows"] == 10


def test_http_gzipped_csv(mlcd, http_server):
    import gzip

    base, root = http_server
    with gzip.open(root / "people.csv.gz", "wb") as fh:
        fh.write((DATA / "people.csv").read_bytes())
    r = mlcd("ingest", f"{base}/people.csv.gz", "--out", "snap")
    assert r.exit_code == 0, r
    assert pd.read_parquet("snap/data.parquet")["name"][0] == "Ada"


def test_help_imports_nothing_heavy():
    import subprocess
    import sys

    code = ("import sys; from mlcd_actions.cli import main; main(['ingest', '--help']); "
            "print([m for m in ('pandas', 'pyarrow', 'numpy', 'sqlalchemy', 'boto3', 'botocore', "
            "'requests', 'sklearn', 'mlflow') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]", out.stdout


def test_source_from_run_source_in_mlcd_yaml(mlcd):
    """What `mlcd init` writes (run.source) is also ingest's SOURCE_URI: the GitLab and
    GitHub templates call `mlcd ingest` alone."""
    shutil.copy(DATA / "people.csv", "people.csv")
    Path("mlcd.yaml").write_text("version: 1\nrun:\n  source: people.csv\n")
    r = mlcd("ingest", "--out", "snap")
    assert r.exit_code == 0, r
    assert (Path("snap") / "manifest.json").exists() or any(Path("snap").iterdir())
    Path("mlcd.yaml").write_text("version: 1\nrun:\n  source: people.csv\n"
                                 "ingest:\n  source-uri: missing.csv\n")
    r = mlcd("ingest", "--out", "snap2")
    assert r.exit_code == 2 and "missing.csv" in r.verdict, r  # ingest's own key wins
