"""SQL databases through SQLAlchemy, read-only: ``sqlite:///db.sqlite?query=SELECT ...``.

The query comes from ``--query`` or the URL's ``query`` parameter; ``?table=NAME`` reads a
whole table. Rows are fetched in chunks (server-side cursors where the driver has them).

Read-only, twice over:

* the statement must be one ``SELECT`` (``WITH ... SELECT`` included); anything that
  writes (INSERT, UPDATE, DELETE, MERGE, DDL, ``SELECT ... INTO``, PRAGMA, ATTACH) is
  rejected before any connection is made (exit 2);
* the database enforces it too: SQLite is opened with ``mode=ro`` and
  ``PRAGMA query_only``; PostgreSQL runs in a read-only transaction; every
  connection is rolled back at the end.

A connection that fails (refused, unknown host, bad password) is a
:class:`ServiceError` (exit 3); a query that fails (no such table or column, syntax) is a
:class:`DataError` (exit 2). Passwords are masked in every report.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

from mlcd_actions.core import secrets
from mlcd_actions.core.errors import ConfigError, DataError, ServiceError
from mlcd_actions.data.tables import first_line, to_arrow
from mlcd_actions.sources.base import Source, SourceData

CHUNK_ROWS = 50_000
_FORBIDDEN = {"INSERT", "UPDATE", "DELETE", "MERGE", "UPSERT", "REPLACE", "CREATE", "DROP",
              "ALTER", "TRUNCATE", "GRANT", "REVOKE", "ATTACH", "DETACH", "PRAGMA", "VACUUM",
              "REINDEX", "CALL", "EXEC", "EXECUTE", "COPY", "LOCK", "INTO", "SET", "COMMIT",
              "ROLLBACK", "BEGIN", "LOAD", "ANALYZE", "REFRESH", "UNLOAD", "PUT", "CLUSTER"}


def check_read_only(query: str) -> str:
    """Return the statement when it is one read-only SELECT, else raise DataError (exit 2)."""
    try:
        import sqlparse
        from sqlparse import tokens as T
    except ModuleNotFoundError as exc:
        raise ConfigError("SQL sources need sqlparse to check the query: "
                          "pip install sqlparse") from exc

    text = (query or "").strip()
    if not text:
        raise ConfigError("the SQL source needs a query: --query 'SELECT ...' or "
                          "?query=... / ?table=... in the URL")
    statements = [s for s in sqlparse.parse(text) if s.token_first(skip_cm=True, skip_ws=True)]
    if len(statements) != 1:
        raise DataError(f"SQL source: exactly one statement allowed, got {len(statements)}")
    stmt = statements[0]
    kind = stmt.get_type()
    if kind != "SELECT":
        first = stmt.token_first(skip_cm=True, skip_ws=True)
        raise DataError(f"SQL source: only SELECT queries are allowed (read-only), "
                        f"got {first.normalized.upper() if first else kind}")
    for token in stmt.flatten():
        if token.ttype in T.Keyword or token.ttype in T.Keyword.DML or token.ttype in T.Keyword.DDL:
            word = token.normalized.upper()
            if word in _FORBIDDEN or word.split()[0] in _FORBIDDEN:
                raise DataError(f"SQL source: {word} is not allowed in a read-only query")
    return str(stmt).strip().rstrip(";").strip()


class SqlSource(Source):
    name = "sql"
    schemes = ("sql", "sqlite", "postgresql", "postgres", "mysql", "mariadb", "mssql",
               "oracle", "duckdb", "snowflake", "redshift", "bigquery", "trino", "clickhouse")
    options = ("progress", "timeout", "retries", "query")
    contract_fixtures = ()

    def __init__(self, *, query: str | None = None, **options: Any) -> None:
        super().__init__(query=query, **options)
        self.query = query

    def _url(self, uri: str):
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        raw = uri[4:] if uri.lower().startswith("sql:") and "://" not in uri[:6] else uri
        if raw.lower().startswith("sql+"):
            raw = raw[4:]
        try:
            url = make_url(raw)
        except (ArgumentError, ValueError) as exc:
            raise ConfigError(f"{_masked(uri)}: not a SQLAlchemy URL: {exc}") from exc
        if url.password:
            secrets.register(str(url.password))
        params = dict(url.query)
        query = self.query or params.get("query")
        table = params.get("table")
        if isinstance(query, tuple) or isinstance(table, tuple):
            raise ConfigError(f"{_masked(uri)}: give one query= or table= parameter")
        url = url.difference_update_query(["query", "table"])
        if query and table:
            raise ConfigError(f"{_masked(uri)}: give a query or a table, not both")
        if table and not query:
            query = f"SELECT * FROM {_quote_table(table, url)}"
        return url, check_read_only(query)

    def _engine(self, url, label: str):
        import sqlalchemy as sa

        try:
            if url.get_backend_name() == "sqlite":
                return self._sqlite_engine(url, label)
            kwargs: dict[str, Any] = {"pool_pre_ping": False}
            if url.get_backend_name() in ("postgresql", "mysql", "mariadb"):
                kwargs["connect_args"] = {"connect_timeout": int(max(1, self.timeout))}
            return sa.create_engine(url, **kwargs)
        except ModuleNotFoundError as exc:
            raise ConfigError(f"{label}: the database driver is not installed: {exc.name} "
                              "(pip install it)") from exc
        except sa.exc.NoSuchModuleError as exc:
            raise ConfigError(f"{label}: unknown database dialect: {first_line(exc)}") from exc

    def _sqlite_engine(self, url, label: str):
        import sqlalchemy as sa

        database = url.database
        if not database or database == ":memory:":
            raise DataError(f"{label}: a SQLite source needs a database file")
        path = Path(database).expanduser().resolve()
        if not path.is_file():
            raise DataError(f"{path}: no such SQLite database")
        timeout = self.timeout

        def connect():
            conn = sqlite3.connect(f"file:{quote(str(path))}?mode=ro", uri=True,
                                   timeout=timeout, check_same_thread=False)
            conn.execute("PRAGMA query_only = ON")
            return conn

        return sa.create_engine("sqlite://", creator=connect, poolclass=sa.pool.NullPool)

    @contextlib.contextmanager
    def open(self, uri: str) -> Iterator[SourceData]:
        import sqlalchemy as sa

        label = _masked(uri)
        url, query = self._url(uri)
        engine = self._engine(url, label)
        try:
            try:
                conn = engine.connect()
            except sa.exc.DBAPIError as exc:
                if url.get_backend_name() == "sqlite":
                    raise DataError(f"{label}: cannot open the database: "
                                    f"{first_line(exc.orig)}") from exc
                raise ServiceError(f"{label}: cannot connect: {first_line(exc.orig)}") from exc
            try:
                details = {"dialect": url.get_backend_name(), "driver": url.get_driver_name(),
                           "database": url.database, "query": query, "read_only": True}
                yield SourceData(self._batches(conn, query, label, url), details)
            finally:
                with contextlib.suppress(Exception):
                    conn.rollback()
                conn.close()
        finally:
            engine.dispose()

    def _batches(self, conn, query: str, label: str, url):
        import pyarrow as pa
        import sqlalchemy as sa

        backend = url.get_backend_name()
        try:
            if backend == "postgresql":
                conn = conn.execution_options(postgresql_readonly=True)
            elif backend in ("mysql", "mariadb"):
                conn.exec_driver_sql("SET SESSION TRANSACTION READ ONLY")
            result = conn.execution_options(stream_results=True,
                                            yield_per=CHUNK_ROWS).execute(sa.text(query))
            names = list(result.keys())
            for rows in result.partitions(CHUNK_ROWS):
                yield pa.RecordBatch.from_arrays([to_arrow(list(col)) for col in zip(*rows, strict=False)],
                                                 names=names)
        except sa.exc.DBAPIError as exc:
            if exc.connection_invalidated:
                raise ServiceError(f"{label}: connection lost: {first_line(exc.orig)}") from exc
            if "readonly" in str(exc.orig).lower() or "read-only" in str(exc.orig).lower():
                raise DataError(f"{label}: the query tried to write to a read-only source"
                                ) from exc
            raise DataError(f"{label}: query failed: {first_line(exc.orig)}") from exc

    @classmethod
    def contract_source(cls, kind: str, table_path: Path, workdir: Path,
                        fixture: Callable[[str], Any]) -> tuple[str, dict[str, Any]]:
        import pyarrow.parquet as pq

        db = workdir / "contract.sqlite"
        if kind == "missing":
            return f"sqlite:///{workdir / 'no-such.sqlite'}?table=data", {}
        frame = pq.read_table(table_path).to_pandas()
        with contextlib.closing(sqlite3.connect(db)) as conn:
            (frame.iloc[:0] if kind == "empty" else frame).to_sql(kind, conn, index=False,
                                                                    if_exists="replace")
        return f"sqlite:///{db}", {"query": f'SELECT * FROM "{kind}"'}


def _quote_table(table: str, url) -> str:
    dialect = url.get_dialect()()
    preparer = dialect.identifier_preparer
    parts = table.split(".")
    if not all(p.replace("_", "").isalnum() for p in parts):
        raise ConfigError(f"table={table!r}: use a plain (schema.)table name or a query")
    return ".".join(preparer.quote(p) for p in parts)


def _masked(uri: str) -> str:
    from mlcd_actions.sources.base import mask_uri

    return mask_uri(uri)
