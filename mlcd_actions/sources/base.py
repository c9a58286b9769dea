"""The source adapter interface used by ``mlcd ingest``.

An adapter turns a source URI into a stream of :class:`pyarrow.RecordBatch` objects,
so a large source never has to fit in memory: ``ingest`` writes the batches to a
Parquet snapshot as they come. Remote adapters (HTTP, S3) download to a temporary
file first (with progress, timeouts and retries) and then read it like a local file.

Writing an adapter (a third-party one comes in the same way as the built-ins, through
the ``mlcd_actions.sources`` entry-point group)::

    class FtpSource(Source):
        name = "ftp"
        schemes = ("ftp",)
        options = ("timeout", "retries", "format")

        @contextlib.contextmanager
        def open(self, uri):
            ...                      # fetch, then
            yield SourceData(batches=iter_file_batches(path, "csv", label=uri),
                             details={"etag": ...})

        @classmethod
        def contract_source(cls, kind, table_path, workdir, fixture):
            ...                      # how the contract test builds a source of this kind

Errors are :mod:`mlcd_actions.core.errors` with one line naming the URI: a missing object
or malformed content is :class:`DataError` (exit 2), an unreachable, slow or refusing
service is :class:`ServiceError` (exit 3). Heavy libraries are imported inside methods.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from mlcd_actions.core import secrets
from mlcd_actions.core.errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    from pathlib import Path

    import pyarrow as pa

# options an adapter may accept; ``ingest`` passes only those an adapter lists in ``options``
COMMON_OPTIONS = ("timeout", "retries", "format", "progress")
DEFAULT_TIMEOUT = 30.0
DEFAULT_RETRIES = 3

# query parameters that carry credentials (presigned URLs, API tokens): masked in reports
_SECRET_PARAMS = re.compile(
    r"(token|key|secret|password|passwd|pwd|signature|sig|credential|auth|session)", re.I)

# contract-test source kinds (see :meth:`Source.contract_source`)
CONTRACT_KINDS = ("data", "empty", "missing")


@dataclass
class SourceData:
    """What an adapter yields: record batches (read lazily) and facts about the source."""

    batches: Iterable[pa.RecordBatch]
    details: dict[str, Any] = field(default_factory=dict)


class Source:
    """Base class of source adapters. Constructors store options; :meth:`open` does the work."""

    #: short adapter name, shown in the manifest and the report
    name: ClassVar[str] = ""
    #: URI schemes this adapter handles (its entry-point names, plus aliases)
    schemes: ClassVar[tuple[str, ...]] = ()
    #: options this adapter accepts (besides the URI)
    options: ClassVar[tuple[str, ...]] = COMMON_OPTIONS
    #: pytest fixtures :meth:`contract_source` needs (e.g. ``("http_server",)``)
    contract_fixtures: ClassVar[tuple[str, ...]] = ()

    def __init__(self, *, timeout: float | None = None, retries: int | None = None,
                 format: str | None = None, progress: bool = True, **extra: Any) -> None:
        unknown = sorted(k for k, v in extra.items()
                         if v not in (None, (), []) and k not in self.options)
        if unknown:
            raise ConfigError(f"option --{unknown[0].replace('_', '-')} does not apply to "
                              f"{self.name or type(self).__name__} sources")
        self.timeout = DEFAULT_TIMEOUT if timeout is None else float(timeout)
        self.retries = DEFAULT_RETRIES if retries is None else int(retries)
        if self.timeout <= 0:
            raise ConfigError(f"--timeout must be positive, got {timeout}")
        if self.retries < 0:
            raise ConfigError(f"--retries must be 0 or more, got {retries}")
        self.format = format.lower().lstrip(".") if format else None
        self.progress = progress
        self.extra = {k: v for k, v in extra.items() if k in self.options}

    @contextlib.contextmanager
    def open(self, uri: str) -> Iterator[SourceData]:  # pragma: no cover - interface
        """Yield the source's batches; release temporary files and connections on exit."""
        raise NotImplementedError
        yield  # noqa: B901 - makes this a generator for contextmanager

    def describe(self, uri: str) -> str:
        """The URI as it may be shown: passwords and credential parameters masked."""
        return mask_uri(uri)

    @classmethod
    def contract_source(cls, kind: str, table_path: Path, workdir: Path,
                        fixture: Callable[[str], Any]) -> tuple[str, dict[str, Any]]:
        """Build a source for the contract test; return ``(uri, options)``.

        ``kind`` is ``"data"`` (the rows of the Parquet file ``table_path``),
        ``"empty"`` (same columns, no rows) or ``"missing"`` (a URI naming nothing).
        ``fixture(name)`` returns a pytest fixture listed in ``contract_fixtures``.
        Like scikit-learn's ``parametrize_with_checks``, every registered adapter must
        implement this so the checks in :mod:`mlcd_actions.testing.sources` can run on it.
        """
        raise NotImplementedError(f"{cls.__name__} does not declare a contract source")


def mask_uri(uri: str) -> str:
    """Mask a URL password (``user:***@``) and credential-like query parameters."""
    text = secrets.mask(uri)
    try:
        parts = urlsplit(text)
    except ValueError:
        return text
    if not parts.query:
        return text
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    if not any(_SECRET_PARAMS.search(k) for k, _ in pairs):
        return text
    masked = [(k, "***" if _SECRET_PARAMS.search(k) else v) for k, v in pairs]
    return urlunsplit(parts._replace(query=urlencode(masked, safe="*/:")))


def scheme_of(uri: str) -> str:
    """The URI scheme, lower-case; ``file`` for a plain path (``C:\\x`` included)."""
    match = re.match(r"^([A-Za-z][A-Za-z0-9+.-]*):", uri)
    if not match or len(match.group(1)) == 1:
        return "file"
    return match.group(1).lower()
