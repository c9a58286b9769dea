"""The contract every source adapter passes, as plain functions (like scikit-learn's
``utils/estimator_checks.py``): mlcd-actions runs them over every registered adapter in
``tests/sources/test_contract.py``, and a plugin author runs them in their own tests::

    import pytest
    from mlcd_actions.testing.sources import CHECKS

    @pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.__name__)
    def test_contract(check, tmp_path, request):
        check("ftp", FtpSource, tmp_path, request.getfixturevalue)

Each check takes ``(scheme, adapter class, a fresh working directory, fixture getter)``
and raises ``AssertionError`` with a message saying what is wrong. The adapter builds
its test sources itself in :meth:`Source.contract_source` (rows, empty, missing), asking
the fixture getter for the services it names in ``contract_fixtures``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from mlcd_actions.core.errors import DataError, MlcdError
from mlcd_actions.sources import registry
from mlcd_actions.sources.base import Source

Fixture = Callable[[str], Any]
HEAVY = ("pandas", "pyarrow", "sqlalchemy", "boto3", "botocore", "requests", "numpy")


def _expect(condition: bool, message: str) -> None:
    if not condition:
        raise AssertionError(message)


def reference_table(workdir: Path) -> Path:
    """The rows every adapter must hand back unchanged: ints, floats with a null, unicode."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table({
        "id": pa.array([1, 2, 3, 4], pa.int64()),
        "score": pa.array([0.5, None, 2.25, -1.0], pa.float64()),
        "name": pa.array(["Ada", "Grace", "東京 café", "O'Brien, Jr."], pa.string()),
    })
    path = workdir / "reference.parquet"
    pq.write_table(table, path)
    return path


def _source(kind: str, cls: type[Source], workdir: Path, fixture: Fixture):
    work = workdir / f"contract-{kind}"
    work.mkdir(parents=True, exist_ok=True)
    return cls.contract_source(kind, reference_table(workdir), work, fixture)


def check_declares_itself(scheme: str, cls: type[Source], workdir: Path,
                          fixture: Fixture) -> None:
    _expect(isinstance(cls, type) and issubclass(cls, Source), f"{cls!r} is not a Source")
    _expect(bool(cls.name), f"{cls.__name__}: empty adapter name")
    _expect(scheme in cls.schemes, f"{cls.__name__}: scheme {scheme!r} not in {cls.schemes}")
    _expect({"timeout", "retries"} <= set(cls.options),
            f"{cls.__name__}: options must include timeout and retries")
    uri = "x.csv" if scheme == "file" else f"{scheme}://x/y"
    _expect(registry.for_uri(uri) is cls, f"{uri} does not resolve to {cls.__name__}")
    for name in cls.contract_fixtures:
        fixture(name)


def check_import_is_light(scheme: str, cls: type[Source], workdir: Path,
                          fixture: Fixture) -> None:
    code = (f"import sys, {cls.__module__}; "
            f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, check=True)
    _expect(out.stdout.strip() == "",
            f"{cls.__module__} imports {out.stdout.strip()} at import time (import inside "
            "methods so `mlcd --help` stays fast)")


def check_reads_rows(scheme: str, cls: type[Source], workdir: Path, fixture: Fixture) -> None:
    import pyarrow.parquet as pq

    from mlcd_actions.stages import ingest

    uri, options = _source("data", cls, workdir, fixture)
    out = workdir / "snap"
    result = ingest.run(uri, out, progress=False, **options)
    _expect(result.status == "passed", f"{cls.__name__}: {result.reason}")
    expected = pq.read_table(reference_table(workdir)).to_pydict()
    got = pq.read_table(out / "data.parquet").to_pydict()
    _expect(list(got) == list(expected), f"columns {list(got)} != {list(expected)}")
    for name, values in expected.items():
        _expect(got[name] == values, f"column {name!r}: {got[name]!r} != {values!r}")
    manifest = json.loads((out / "manifest.json").read_text())
    _expect(manifest["rows"] == 4 == result.outputs["rows"], "rows in the manifest")
    _expect(manifest["adapter"] == cls.name, "adapter in the manifest")
    _expect(manifest["sha256"] == result.outputs["sha256"], "sha256 in the manifest")
    json.dumps(manifest["source_details"])
    again = ingest.run(uri, out, progress=False, **options)
    _expect(again.outputs["sha256"] == result.outputs["sha256"],
            "the same source must give the same snapshot (sha256)")


def check_empty_source_fails(scheme: str, cls: type[Source], workdir: Path,
                             fixture: Fixture) -> None:
    from mlcd_actions.stages import ingest

    uri, options = _source("data", cls, workdir, fixture)
    out = workdir / "snap-empty"
    _expect(ingest.run(uri, out, progress=False, **options).status == "passed", "first ingest")
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    uri, options = _source("empty", cls, workdir, fixture)
    result = ingest.run(uri, out, progress=False, **options)
    _expect(result.status == "failed" and result.code() == 1,
            f"an empty source must fail with exit 1, got {result.status}: {result.reason}")
    _expect("empty" in result.reason, f"reason should say empty: {result.reason}")
    _expect({p.name: p.read_bytes() for p in out.iterdir()} == before,
            "an empty source must leave the earlier snapshot untouched")


def check_missing_source_is_data_error(scheme: str, cls: type[Source], workdir: Path,
                                       fixture: Fixture) -> None:
    from mlcd_actions.stages import ingest

    uri, options = _source("missing", cls, workdir, fixture)
    out = workdir / "snap-missing"
    try:
        ingest.run(uri, out, progress=False, **options)
    except MlcdError as exc:
        _expect(isinstance(exc, DataError) and exc.exit_code == 2,
                f"a missing source must be a DataError (exit 2), got "
                f"{type(exc).__name__}: {exc.one_line()}")
        line = exc.one_line()
        _expect("\n" not in line, "one line")
        name = Path(urlsplit(uri).path).name
        _expect(name in line, f"the message must name {name!r}: {line}")
    else:
        raise AssertionError(f"{uri}: a missing source must raise DataError")
    _expect(not out.exists(), "a failed ingest must not create the output directory")


CHECKS = (check_declares_itself, check_import_is_light, check_reads_rows,
          check_empty_source_fails, check_missing_source_is_data_error)
