"""schema infer (library): a commented pandera YAML that pandera loads and the data passes."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pandera.io import pandas_io

from mlcd_actions.core.errors import ConfigError, DataError
from mlcd_actions.stages import schema as schema_stage
from mlcd_actions.stages import validate

DATA = Path(__file__).parent.parent / "data" / "validate"


def people_csv() -> str:
    shutil.copy(DATA / "people.csv", "people.csv")
    return "people.csv"


def test_infer_writes_pandera_yaml_with_comments_and_sensible_checks():
    result = schema_stage.infer(people_csv(), "schema.yaml")
    assert result.status == "passed", result.reason
    assert result.outputs["schema"] == "schema.yaml"
    text = Path("schema.yaml").read_text(encoding="utf-8")
    assert text.startswith("# pandera DataFrameSchema")
    assert "# int64; 0 of 24 null; 24 distinct - range is the observed min/max" in text
    assert "Zürich" in text and "東京" in text              # readable, not escaped
    schema = pandas_io.from_yaml(text)                      # pandera itself loads it
    assert str(schema.columns["age"].dtype) == "int64"
    checks = {c.name: c.statistics for c in schema.columns["age"].checks}
    assert checks["greater_than_or_equal_to"]["min_value"] == 20
    assert checks["less_than_or_equal_to"]["max_value"] == 69
    city = {c.name: c.statistics for c in schema.columns["city"].checks}
    assert sorted(city["isin"]["allowed_values"]) == sorted(["Berlin", "Zürich", "Łódź", "東京"])
    assert not schema.columns["id"].checks or all(c.name != "isin" for c in schema.columns["id"].checks)
    assert schema.index is None
    assert result.metrics["categorical_columns"] >= 1
    # the data it came from passes
    assert validate.run("people.csv", "schema.yaml").status == "passed"


def test_nullable_nan_inf_all_null_and_long_strings():
    df = pd.DataFrame({
        "x": [1.0, np.nan, np.inf, 2.0] * 5,
        "empty": [None] * 20,
        "nan_only": [np.nan] * 20,
        "long": ["é" * 500 + str(i % 2) for i in range(20)],
        "code": ["a", "b"] * 10,
    })
    df.to_parquet("d.parquet")
    result = schema_stage.infer("d.parquet", "s.yaml")
    schema = pandas_io.from_yaml(Path("s.yaml").read_text(encoding="utf-8"))
    assert schema.columns["x"].nullable is True
    assert schema.columns["empty"].checks == [] and schema.columns["empty"].nullable is True
    assert schema.columns["nan_only"].checks == []          # no NaN bounds
    assert schema.columns["long"].checks == []              # too long for a category list
    assert [c.name for c in schema.columns["code"].checks] == ["isin"]
    assert any("'empty' is entirely null" in w for w in result.warnings)
    assert any("'nan_only' is entirely null" in w for w in result.warnings)
    assert validate.run("d.parquet", "s.yaml").status == "passed"


def test_max_categories_zero_turns_off_isin():
    schema_stage.infer(people_csv(), "s.yaml", max_categories=0)
    assert "    isin:" not in Path("s.yaml").read_text(encoding="utf-8")


@pytest.mark.parametrize("setup, match", [
    (lambda: None, "missing.csv: no such file"),
    (lambda: Path("missing.csv").write_text("", encoding="utf-8"), "missing.csv: file is empty"),
    (lambda: Path("missing.csv").write_text("a,b\n", encoding="utf-8"),
     r"missing.csv: dataset is empty \(0 rows\)"),
    (lambda: Path("missing.csv").write_text('a,b\n1,"x\n', encoding="utf-8"), "missing.csv"),
])
def test_bad_data_leaves_existing_schema_untouched(setup, match):
    Path("schema.yaml").write_text("# the team's schema\n", encoding="utf-8")
    setup()
    with pytest.raises(DataError, match=match):
        schema_stage.infer("missing.csv", "schema.yaml")
    assert Path("schema.yaml").read_text(encoding="utf-8") == "# the team's schema\n"
    assert sorted(p.name for p in Path(".").iterdir()) == sorted(
        {"schema.yaml"} | ({"missing.csv"} if Path("missing.csv").exists() else set()))


def test_bad_out_option():
    people_csv()
    with pytest.raises(ConfigError, match="use a .yaml or .yml name"):
        schema_stage.infer("people.csv", "schema.json")
    Path("dir.yaml").mkdir()
    with pytest.raises(ConfigError, match="is a directory"):
        schema_stage.infer("people.csv", "dir.yaml")


def test_rerun_gives_the_same_file():
    people_csv()
    schema_stage.infer("people.csv", "a.yaml")
    schema_stage.infer("people.csv", "b.yaml")
    assert Path("a.yaml").read_bytes() == Path("b.yaml").read_bytes()
