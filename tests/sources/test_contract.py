"""The contract every registered source adapter passes (scikit-learn ``parametrize_with_checks``
style): every check in :mod:`mlcd_actions.testing.sources` over every entry point of group
``mlcd_actions.sources``, so a plugin installed in this environment is checked the same way
as the built-ins. Each adapter builds its own test sources (``Source.contract_source``),
using the real services its ``contract_fixtures`` name (HTTP server, S3 server).
"""

from __future__ import annotations

import pytest

from mlcd_actions.sources import registry
from mlcd_actions.testing.sources import CHECKS

# one scheme per adapter class (http and https share one)
SCHEMES = sorted({value: name for name, value in registry.registered().items()}.values())
CASES = [(scheme, check) for scheme in SCHEMES for check in CHECKS]


@pytest.mark.parametrize("scheme, check", CASES,
                         ids=[f"{s}-{c.__name__.removeprefix('check_')}" for s, c in CASES])
def test_adapter_contract(scheme, check, tmp_path, request):
    work = tmp_path / "contract"
    work.mkdir()
    check(scheme, registry.get(scheme), work, request.getfixturevalue)


def test_every_builtin_is_checked():
    assert {"file", "s3", "sql"} <= set(SCHEMES)
    assert {"http", "https"} & set(SCHEMES)


def test_a_broken_adapter_fails_the_contract(tmp_path, request, monkeypatch):
    """The checks can fail: an adapter that drops a row is caught."""
    import contextlib

    from mlcd_actions.sources.base import SourceData
    from mlcd_actions.sources.local import LocalSource
    from mlcd_actions.testing.sources import check_reads_rows

    class Lossy(LocalSource):
        @contextlib.contextmanager
        def open(self, uri):
            with super().open(uri) as data:
                yield SourceData((b.slice(1) for b in data.batches), data.details)

    monkeypatch.setattr(registry, "for_uri", lambda uri: Lossy)
    with pytest.raises(AssertionError, match="column 'id'"):
        check_reads_rows("file", Lossy, tmp_path, request.getfixturevalue)
