"""HTTP(S) sources: a streamed download with a timeout, retries and progress.

The body is streamed to a temporary file (never held in memory), then read as CSV,
Parquet or JSON lines by its extension, ``--format`` or the ``Content-Type``.
Connection errors, timeouts, 429 and 5xx responses are retried with exponential
backoff (honouring ``Retry-After``); 401/403 and exhausted retries are a
:class:`ServiceError` (exit 3), 404/410 a :class:`DataError` (exit 2).
Credentials: ``https://user:pass@host/...`` or ``--header 'Authorization: Bearer ...'``;
both are masked in every report.
"""

from __future__ import annotations

import contextlib
import re
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

from mlcd_actions.core import secrets
from mlcd_actions.core.errors import ConfigError, DataError, ServiceError
from mlcd_actions.data.tables import COMPRESSION_SUFFIXES, format_of, iter_file_batches
from mlcd_actions.sources.base import Source, SourceData, mask_uri

CHUNK = 1 << 20
BACKOFF = 0.5           # seconds before the first retry; doubles each time
MAX_BACKOFF = 30.0
RETRY_STATUS = {408, 425, 429, 500, 502, 503, 504}
_SECRET_HEADER = re.compile(r"auth|token|key|secret|cookie|session|password|credential", re.I)


def parse_headers(values) -> dict[str, str]:
    """``["Name: value", ...]`` -> dict; credential-like values are registered as secrets."""
    headers: dict[str, str] = {}
    for raw in values or ():
        name, sep, value = str(raw).partition(":")
        if not sep or not name.strip():
            raise ConfigError(f"--header must look like 'Name: value', got {name.strip()!r}")
        headers[name.strip()] = value.strip()
        if _SECRET_HEADER.search(name):
            secrets.register(value.strip())
            if " " in value.strip():  # "Bearer <token>": the token alone is the secret
                secrets.register(value.strip().split(None, 1)[1])
    return headers


class HttpSource(Source):
    name = "http"
    schemes = ("http", "https")
    options = ("format", "progress", "timeout", "retries", "headers")
    contract_fixtures = ("http_server",)

    def __init__(self, *, headers=None, **options: Any) -> None:
        super().__init__(headers=headers, **options)
        self.headers = parse_headers(headers)

    @contextlib.contextmanager
    def open(self, uri: str) -> Iterator[SourceData]:
        import requests

        shown = mask_uri(uri)
        parts = urlsplit(uri)
        if not parts.hostname:
            raise ConfigError(f"{shown}: no host in the URL")
        if parts.password:
            secrets.register(parts.password)
        with tempfile.TemporaryDirectory(prefix="mlcd-http-") as tmp:
            target = Path(tmp) / "body"
            with requests.Session() as session:
                session.headers.update({"User-Agent": "mlcd-actions", **self.headers})
                details = self._download(session, uri, shown, target)
            name = (PurePosixPath(urlsplit(details["url"]).path).name
                    or PurePosixPath(parts.path).name)
            fmt = format_of(name, content_type=details.get("content_type"),
                            explicit=self.format, label=shown)
            details["format"] = fmt
            suffix = PurePosixPath(name).suffix.lower()
            if suffix in COMPRESSION_SUFFIXES and not details.get("content_encoding"):
                target = target.rename(target.with_suffix(suffix))  # let pyarrow decompress
            yield SourceData(iter_file_batches(target, fmt, label=shown), details)

    # ------------------------------------------------------------------ download

    def _download(self, session, uri: str, shown: str, target: Path) -> dict[str, Any]:
        import requests

        last = "no attempt"
        for attempt in range(1, self.retries + 2):
            wait = min(MAX_BACKOFF, BACKOFF * 2 ** (attempt - 1))
            try:
                with session.get(uri, stream=True, timeout=self.timeout,
                                 allow_redirects=True) as resp:
                    status = resp.status_code
                    if status in (401, 403):
                        raise ServiceError(f"{shown}: access refused (HTTP {status} "
                                           f"{resp.reason}); check the credentials")
                    if status in (404, 410):
                        raise DataError(f"{shown}: not found (HTTP {status})")
                    if status in RETRY_STATUS:
                        last = f"HTTP {status} {resp.reason}"
                        wait = max(wait, _retry_after(resp.headers.get("Retry-After")))
                    elif status >= 400:
                        raise ServiceError(f"{shown}: HTTP {status} {resp.reason}")
                    else:
                        return self._save(resp, shown, target, attempt)
            except requests.exceptions.Timeout:
                last = f"timed out after {self.timeout:g}s"
            except (requests.exceptions.ConnectionError,
                    requests.exceptions.ChunkedEncodingError) as exc:
                reason = _reason(exc)
                if "timed out" in reason.lower():
                    last = f"timed out after {self.timeout:g}s"
                elif isinstance(exc, requests.exceptions.ChunkedEncodingError):
                    last = f"connection broken during the download: {reason}"
                else:
                    last = f"cannot connect: {reason}"
            except requests.exceptions.InvalidURL as exc:
                raise ConfigError(f"{shown}: invalid URL: {_reason(exc)}") from exc
            except requests.exceptions.RequestException as exc:
                raise ServiceError(f"{shown}: {type(exc).__name__}: {_reason(exc)}") from exc
            if attempt <= self.retries:
                time.sleep(wait)
        tries = self.retries + 1
        raise ServiceError(f"{shown}: {last} ({tries} attempt{'s' if tries > 1 else ''})")

    def _save(self, resp, shown: str, target: Path, attempt: int) -> dict[str, Any]:
        from mlcd_actions.core.progress import Progress

        size = resp.headers.get("Content-Length")
        total = int(size) if size and size.isdigit() else None
        written = 0
        with open(target, "wb") as fh, Progress(f"download {shown}", total=total, unit="bytes",
                                                enabled=None if self.progress else False) as bar:
            for block in resp.iter_content(CHUNK):
                fh.write(block)
                written += len(block)
                bar.update(len(block))
        if total is not None and written < total and "Content-Encoding" not in resp.headers:
            raise ServiceError(f"{shown}: connection closed after {written} of {total} bytes")
        details = {
            "url": mask_uri(resp.url),
            "status": resp.status_code,
            "etag": resp.headers.get("ETag"),
            "last_modified": resp.headers.get("Last-Modified"),
            "content_type": resp.headers.get("Content-Type"),
            "content_encoding": resp.headers.get("Content-Encoding"),
            "content_length": total,
            "bytes_downloaded": written,
            "attempts": attempt,
        }
        return {k: v for k, v in details.items() if v is not None}

    @classmethod
    def contract_source(cls, kind: str, table_path: Path, workdir: Path,
                        fixture: Callable[[str], Any]) -> tuple[str, dict[str, Any]]:
        import pyarrow.csv as pcsv
        import pyarrow.parquet as pq

        base, root = fixture("http_server")
        if kind == "missing":
            return f"{base}/no-such-table.csv", {"retries": 0}
        table = pq.read_table(table_path)
        pcsv.write_csv(table.slice(0, 0) if kind == "empty" else table, root / f"{kind}.csv")
        return f"{base}/{kind}.csv", {"retries": 0}


def _retry_after(value: str | None) -> float:
    if not value:
        return 0.0
    try:
        return min(MAX_BACKOFF, max(0.0, float(value)))
    except ValueError:
        return 0.0


def _reason(exc: BaseException) -> str:
    """The innermost useful line of a requests/urllib3 error."""
    inner = exc
    while inner.__cause__ is not None or inner.__context__ is not None:
        inner = inner.__cause__ or inner.__context__
    text = str(getattr(inner, "reason", None) or inner or exc)
    text = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
    for marker in ("Failed to establish a new connection: ", "[Errno"):
        if marker in text:
            text = text[text.index(marker):].replace("Failed to establish a new connection: ",
                                                     "")
    return text.rstrip("')\"")

