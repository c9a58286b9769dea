"""The adapter registry: entry points (built-ins and plugins alike), lazy loading, URI parsing."""

from __future__ import annotations

import sys
import textwrap

import pytest

from mlcd_actions.core.errors import ConfigError
from mlcd_actions.sources import base, registry


@pytest.fixture
def plugin_dist(tmp_path, monkeypatch):
    """Install a throw-away plugin distribution (a dist-info with entry points) on sys.path."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "mlcd_mem_plugin.py").write_text(textwrap.dedent('''
        import contextlib
        from mlcd_actions.sources.base import Source, SourceData

        class MemSource(Source):
            name = "mem"
            schemes = ("mem",)

            @contextlib.contextmanager
            def open(self, uri):
                import pyarrow as pa
                n = int(uri.split("//")[1])
                yield SourceData([pa.record_batch({"i": pa.array(range(n))})], {"n": n})

        NotASource = object()
    '''))
    dist = site / "mlcd_mem_plugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: mlcd-mem-plugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        "[mlcd_actions.sources]\nmem = mlcd_mem_plugin:MemSource\n"
        "broken = mlcd_no_such_module:Thing\nbogus = mlcd_mem_plugin:NotASource\n")
    monkeypatch.syspath_prepend(str(site))
    registry.clear_cache()
    yield
    monkeypatch.delitem(sys.modules, "mlcd_mem_plugin", raising=False)
    registry.clear_cache()


def test_builtins_are_entry_points():
    names = registry.registered()
    assert names["file"] == "mlcd_actions.sources.local:LocalSource"
    assert names["https"] == names["http"] == "mlcd_actions.sources.http:HttpSource"
    assert names["s3"] == "mlcd_actions.sources.s3:S3Source"
    assert names["sql"] == "mlcd_actions.sources.sql:SqlSource"


def test_plugin_comes_in_the_same_way(plugin_dist, tmp_path):
    from mlcd_actions.stages import ingest

    cls = registry.for_uri("mem://3")
    assert cls.__name__ == "MemSource"
    result = ingest.run("mem://3", tmp_path / "out", progress=False)
    assert result.outputs["rows"] == 3
    assert result.details["adapter"] == "mem"


def test_broken_plugins_are_named(plugin_dist):
    with pytest.raises(ConfigError, match=r"'broken' \(mlcd_no_such_module:Thing\) cannot be"):
        registry.get("broken")
    with pytest.raises(ConfigError, match="'bogus'.*not a Source subclass"):
        registry.get("bogus")
    assert registry.get("sqlite").__name__ == "SqlSource"   # other schemes still resolve
    with pytest.raises(ConfigError, match="unknown source scheme 'gopher'.*mem"):
        registry.get("gopher")


def test_builtins_load_only_when_used(monkeypatch):
    registry.clear_cache()
    for mod in ("mlcd_actions.sources.http", "mlcd_actions.sources.s3",
                "mlcd_actions.sources.sql"):
        monkeypatch.delitem(sys.modules, mod, raising=False)
    registry.for_uri("data.csv")
    assert "mlcd_actions.sources.s3" not in sys.modules
    assert "mlcd_actions.sources.sql" not in sys.modules
    assert registry.for_uri("postgresql+psycopg://u@h/db").__name__ == "SqlSource"
    assert registry.for_uri("sqlite:///x.db").__name__ == "SqlSource"
    registry.clear_cache()


@pytest.mark.parametrize("uri, scheme", [
    ("data.csv", "file"), ("/abs/data.csv", "file"), ("C:\\data\\x.csv", "file"),
    ("file:///x.csv", "file"), ("HTTPS://h/x", "https"), ("s3://b/k", "s3"),
    ("postgresql+psycopg://u@h/db", "postgresql+psycopg")])
def test_scheme_of(uri, scheme):
    assert base.scheme_of(uri) == scheme


def test_unknown_scheme_and_empty_uri():
    with pytest.raises(ConfigError, match=r"gopher://x: unknown source scheme 'gopher'; known:"):
        registry.for_uri("gopher://x")
    with pytest.raises(ConfigError, match="empty source URI"):
        registry.for_uri("  ")


def test_mask_uri():
    assert base.mask_uri("https://u:pw-secret@h/x.csv") == "https://u:***@h/x.csv"
    masked = base.mask_uri("https://h/x.csv?X-Amz-Signature=abc123&v=2")
    assert "abc123" not in masked and "v=2" in masked
    assert base.mask_uri("data.csv") == "data.csv"
