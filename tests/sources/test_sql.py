"""SQL source: read-only, twice over (statement check and a read-only connection)."""

from __future__ import annotations

import contextlib
import sqlite3

import pytest

from mlcd_actions.core.errors import ConfigError, DataError
from mlcd_actions.sources.sql import SqlSource, check_read_only


@pytest.mark.parametrize("query", [
    "SELECT 1",
    "select a, b from t where a > 1 order by b;",
    "WITH x AS (SELECT * FROM t) SELECT * FROM x",
    "SELECT 'DELETE FROM t' AS s",               # a keyword inside a string is fine
    "-- leading comment\nSELECT * FROM t",
])
def test_accepts_selects(query):
    checked = check_read_only(query)
    assert "select" in checked.lower() and not checked.endswith(";")


@pytest.mark.parametrize("query, match", [
    ("INSERT INTO t VALUES (1)", "only SELECT"),
    ("UPDATE t SET a = 1", "only SELECT"),
    ("DROP TABLE t", "only SELECT"),
    ("SELECT 1; DELETE FROM t", "exactly one statement"),
    ("WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d", "DELETE"),
    ("SELECT * INTO t2 FROM t", "INTO"),
    ("ATTACH DATABASE 'x.db' AS x", "only SELECT"),
    ("PRAGMA query_only = OFF", "only SELECT"),
])
def test_rejects_everything_else(query, match):
    with pytest.raises(DataError, match=match):
        check_read_only(query)


def test_needs_a_query():
    with pytest.raises(ConfigError, match="needs a query"):
        check_read_only("  ")


def test_sqlite_connection_is_read_only_even_without_the_check(tmp_path):
    db = tmp_path / "x.sqlite"
    with contextlib.closing(sqlite3.connect(db)) as conn:
        conn.execute("CREATE TABLE t (a INTEGER)")
        conn.commit()
    source = SqlSource(query="SELECT * FROM t")
    url, _ = source._url(f"sqlite:///{db}")
    engine = source._engine(url, "x")
    import sqlalchemy as sa

    try:
        with engine.connect() as conn, pytest.raises(sa.exc.OperationalError,
                                                     match="readonly|read-only|query_only"):
            conn.exec_driver_sql("INSERT INTO t VALUES (1)")
    finally:
        engine.dispose()
    with contextlib.closing(sqlite3.connect(db)) as conn:
        assert conn.execute("SELECT count(*) FROM t").fetchone() == (0,)


def test_mixed_sqlite_types_become_text(tmp_path):
    from mlcd_actions.stages import ingest

    db = tmp_path / "m.sqlite"
    with contextlib.closing(sqlite3.connect(db)) as conn:
        conn.execute("CREATE TABLE t (a, b)")
        conn.executemany("INSERT INTO t VALUES (?, ?)", [(1, "x"), ("y", 2.5), (None, None)])
        conn.commit()
    result = ingest.run(f"sqlite:///{db}?table=t", tmp_path / "out", progress=False)
    import pandas as pd

    df = pd.read_parquet(tmp_path / "out" / "data.parquet")
    assert result.outputs["rows"] == 3
    assert df["a"].tolist()[:2] == ["1", "y"]


def test_password_is_masked(tmp_path):
    source = SqlSource()
    shown = source.describe("postgresql://app:pa55word-x@db.example:5432/prod?table=t")
    assert "pa55word-x" not in shown and "app:***@" in shown


def test_unknown_driver_is_a_config_error():
    source = SqlSource(query="SELECT 1")
    url, _ = source._url("mysql+nosuchdriver://u@h/db")
    with pytest.raises(ConfigError, match="dialect|driver"):
        source._engine(url, "mysql+nosuchdriver://u@h/db")
