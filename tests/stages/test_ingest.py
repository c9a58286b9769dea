"""The ingest library: streaming writer, schema widening, atomic output."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mlcd_actions.core.errors import DataError, ServiceError
from mlcd_actions.data import tables as formats
from mlcd_actions.stages import ingest

DATA = Path(__file__).parent.parent / "data" / "ingest"


def test_run_returns_outputs_and_manifest(tmp_path):
    result = ingest.run(str(DATA / "people.parquet"), tmp_path / "out", progress=False)
    assert result.status == "passed"
    assert result.outputs["rows"] == 5
    assert result.outputs["data-path"] == str(tmp_path / "out" / "data.parquet")
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["schema"] == ingest.MANIFEST_SCHEMA
    assert [f["nulls"] for f in manifest["fields"]] == [0, 0, 0, 1, 0]
    assert manifest["ingested_at"].endswith("+00:00")
    assert result.lineage == {"data_sha256": manifest["sha256"]}
    assert result.tables[0].columns == ["column", "dtype", "arrow type", "nulls"]


def test_csv_type_changes_after_the_first_block(tmp_path, monkeypatch):
    monkeypatch.setattr(formats, "CSV_BLOCK", 64)  # many tiny blocks: inference sees little
    src = tmp_path / "drift.csv"
    lines = ["n,code,maybe"] + [f"{i},{i},"for i in range(40)] + ["40.5,A7,x", "41,B8,y"]
    src.write_text("\n".join(lines) + "\n")
    result = ingest.run(str(src), tmp_path / "out", progress=False)
    assert result.status == "passed", result.reason
    df = pd.read_parquet(tmp_path / "out" / "data.parquet")
    assert len(df) == 42
    assert df["n"].tolist()[-2:] == [40.5, 41.0] and df["n"][0] == 0.0
    assert df["code"].tolist()[:2] == ["0", "1"] and df["code"].tolist()[-2:] == ["A7", "B8"]
    assert df["maybe"].tolist()[-2:] == ["x", "y"] and df["maybe"][:40].isna().all()
    assert any("widened" in w for w in result.warnings)


def test_writer_merges_parts_with_bounded_row_groups(tmp_path, monkeypatch):
    monkeypatch.setattr(ingest, "ROW_GROUP_ROWS", 10)
    batches = [pa.record_batch({"a": pa.array(range(i * 7, i * 7 + 7))}) for i in range(3)]
    batches.append(pa.record_batch({"a": pa.array([1.5]), "b": pa.array(["z"])}))
    work = tmp_path / "w"
    work.mkdir()
    stats = ingest.write_snapshot(iter(batches), work / "d.parquet", label="t",
                                  progress=False)
    assert stats.rows == 22
    table = pq.read_table(work / "d.parquet")
    assert table.schema.field("a").type == pa.float64()
    assert table.column("a").to_pylist()[:3] == [0.0, 1.0, 2.0]
    assert table.column("b").null_count == 21
    assert pq.ParquetFile(work / "d.parquet").metadata.num_row_groups >= 2
    assert sorted(p.name for p in work.iterdir()) == ["d.parquet"]  # no parts left


def test_duplicate_column_names(tmp_path):
    src = tmp_path / "dup.csv"
    src.write_text("a,b,a\n1,2,3\n")
    with pytest.raises(DataError, match=r"dup.csv: duplicate column name 'a'"):
        ingest.run(str(src), tmp_path / "out", progress=False)


def test_a_source_that_fails_midway_leaves_the_old_snapshot(tmp_path, monkeypatch):
    tmp_path = tmp_path / "w"
    tmp_path.mkdir()
    out = tmp_path / "out"
    ingest.run(str(DATA / "people.csv"), out, progress=False)
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    from mlcd_actions.sources.local import LocalSource

    real_open = LocalSource.open

    def broken_open(self, uri):
        cm = real_open(self, uri)

        class Wrapped:
            def __enter__(self_inner):
                data = cm.__enter__()
                inner = data.batches

                def batches():
                    yield from inner
                    raise ServiceError(f"{uri}: connection reset")

                data.batches = batches()
                return data

            def __exit__(self_inner, *exc):
                return cm.__exit__(*exc)

        return Wrapped()

    monkeypatch.setattr(LocalSource, "open", broken_open)
    with pytest.raises(ServiceError, match="connection reset"):
        ingest.run(str(DATA / "people.parquet"), out, progress=False)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


@pytest.mark.parametrize("name, expected", [
    ("a.csv", "csv"), ("a.CSV.gz", "csv"), ("a.tsv", "tsv"), ("x.pq", "parquet"),
    ("y.ndjson", "jsonl"), ("z.json", "json")])
def test_format_of(name, expected):
    assert formats.format_of(name) == expected


def test_format_from_content_type_and_explicit():
    assert formats.format_of("data", content_type="text/csv; charset=utf-8") == "csv"
    assert formats.format_of("data", explicit="parquet") == "parquet"
    with pytest.raises(DataError, match="--format"):
        formats.format_of("data", label="http://h/data")


def test_gzip_tsv_and_json(tmp_path):
    import gzip

    with gzip.open(tmp_path / "t.tsv.gz", "wt") as fh:
        fh.write("a\tb\n1\tx\n2\ty\n")
    assert ingest.run(str(tmp_path / "t.tsv.gz"), tmp_path / "o1",
                      progress=False).outputs["rows"] == 2
    (tmp_path / "r.json").write_text(json.dumps([{"a": 1}, {"a": 2, "b": "q"}]))
    result = ingest.run(str(tmp_path / "r.json"), tmp_path / "o2", progress=False)
    assert result.outputs["rows"] == 2
    (tmp_path / "bad.json").write_text('[{"a": 1},')
    with pytest.raises(DataError, match=r"bad.json: malformed JSON at line 1"):
        ingest.run(str(tmp_path / "bad.json"), tmp_path / "o3", progress=False)


def test_malformed_jsonl_names_file(tmp_path):
    (tmp_path / "bad.jsonl").write_text('{"a": 1}\n{"a": \n')
    with pytest.raises(DataError, match=r"bad.jsonl: malformed JSON lines at line 2"):
        ingest.run(str(tmp_path / "bad.jsonl"), tmp_path / "o", progress=False)


def test_csv_row_longer_than_a_block(tmp_path, monkeypatch):
    monkeypatch.setattr(formats, "CSV_BLOCK", 256)
    src = tmp_path / "wide.csv"
    src.write_text("id,t\n1,a\n2," + "x" * 5000 + "\n3,c\n")
    result = ingest.run(str(src), tmp_path / "out", progress=False)
    df = pd.read_parquet(tmp_path / "out" / "data.parquet")
    assert result.outputs["rows"] == 3 and len(df["t"][1]) == 5000 and df["t"][2] == "c"


def test_jsonl_types_that_change_between_and_within_chunks(tmp_path, monkeypatch):
    monkeypatch.setattr(formats, "CSV_BLOCK", 64)
    rows = [{"a": i, "b": "q"} for i in range(20)] + [{"a": "text", "c": [1, 2]}, {"a": 3.5}]
    src = tmp_path / "m.jsonl"
    src.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    result = ingest.run(str(src), tmp_path / "out", progress=False)
    assert result.status == "passed", result.reason
    df = pd.read_parquet(tmp_path / "out" / "data.parquet")
    assert df["a"].tolist()[:2] == ["0", "1"] and df["a"].tolist()[-2:] == ["text", "3.5"]
    assert df["b"].tolist()[-1] is None or pd.isna(df["b"].tolist()[-1])


def test_dtypes_are_what_pandas_reads(tmp_path):
    src = tmp_path / "n.csv"
    src.write_text("i,j,b,c,s\n1,1,true,true,x\n,2,,false,\n")
    ingest.run(str(src), tmp_path / "out", progress=False)
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    df = pd.read_parquet(tmp_path / "out" / "data.parquet")
    assert manifest["dtypes"] == {k: str(v) for k, v in df.dtypes.items()}
    assert manifest["dtypes"]["i"] == "float64" and manifest["dtypes"]["j"] == "int64"
