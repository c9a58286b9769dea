"""validate (library): pandera checks column by column with pandera's own semantics,
failure table and annotations on schema lines, skew against a reference."""

from __future__ import annotations

import json
import shutil
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pandera.pandas as pa
import pyarrow as pyarrow
import pyarrow.parquet as pq
import pytest

from mlcd_actions.core.errors import ConfigError, DataError
from mlcd_actions.data import schemas
from mlcd_actions.stages import validate

DATA = Path(__file__).parent.parent / "data" / "validate"


def people() -> pd.DataFrame:
    return pd.read_csv(DATA / "people.csv")


def write_parquet(df: pd.DataFrame, path: str = "data.parquet", row_group_size: int | None = None):
    pq.write_table(pyarrow.Table.from_pandas(df, preserve_index=False), path,
                   row_group_size=row_group_size)
    return path


def schema_file(name: str = "people.yaml") -> str:
    shutil.copy(DATA / name, name)
    return name


def line_of(path: str, text: str, after: str | None = None) -> int:
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    start = 0
    if after is not None:
        start = next(i for i, line in enumerate(lines) if line.strip().startswith(after))
    return next(i for i, line in enumerate(lines) if i >= start and text in line) + 1


def groups(result) -> dict[tuple, list]:
    table = next(t for t in result.tables if t.title == "schema failures")
    return {(r[0], r[1].split("(")[0]): r for r in table.rows}


def test_valid_data_passes_with_outputs():
    data = write_parquet(people())
    result = validate.run(data, schema_file())
    assert result.status == "passed", result.reason
    assert result.outputs["valid"] is True
    assert result.outputs["failures"] == 0
    assert result.metrics["rows"] == 24 and result.metrics["columns"] == 5
    assert result.findings == []
    assert "24 rows × 5 columns match people.yaml" in result.reason


def test_failures_are_collected_lazily_with_global_rows_and_schema_lines():
    df = people()
    df.loc[[3, 17], "age"] = [5, 130]                 # in_range fails twice
    df.loc[20, "city"] = "Paris"                      # isin
    df.loc[21, "id"] = df.loc[2, "id"]                # unique (far apart)
    data = write_parquet(df, row_group_size=5)        # many row groups: indices must be global
    path = schema_file()
    result = validate.run(data, path)
    assert result.status == "failed"
    assert result.outputs["valid"] is False
    g = groups(result)
    assert g[("age", "in_range")][2] == 2
    assert g[("age", "in_range")][3] == "4, 18"          # data rows, from 1
    assert g[("city", "isin")][3] == "21" and g[("city", "isin")][4] == "Paris"
    assert g[("id", "field_uniqueness")][2] == 2 and g[("id", "field_uniqueness")][3] == "3, 22"
    assert result.metrics["failures"] == 5
    by_code = {(f.column, f.code): f for f in result.findings}
    age = by_code[("age", "schema.in_range")]
    assert age.file == path and age.line == line_of(path, "in_range:", after="age:")
    assert age.rows == [4, 18] and age.count == 2
    assert by_code[("city", "schema.isin")].line == line_of(path, "isin:", after="city:")
    assert by_code[("id", "schema.unique")].line == line_of(path, "unique: true")
    assert "column 'id': 2 duplicated value(s) in a unique column (data rows 3, 22)" in result.reason


def test_same_failures_as_plain_pandera_on_pandas():
    rng = np.random.default_rng(0)
    n = 2000
    df = pd.DataFrame({
        "a": rng.normal(0, 1, n),
        "b": rng.integers(0, 10, n),
        "c": rng.choice(["x", "y", "z"], n),
        "d": rng.normal(0, 1, n),
    })
    df.loc[rng.choice(n, 30, replace=False), "d"] = np.nan
    df.loc[5, "a"] = np.inf
    schema = pa.DataFrameSchema({
        "a": pa.Column(float, pa.Check.in_range(-3, 3)),
        "b": pa.Column(int, [pa.Check.isin(range(8)), pa.Check(lambda s: s.mean() < 4)],
                       unique=True),
        "c": pa.Column(str, pa.Check.isin(["x", "y"])),
        "d": pa.Column(float, pa.Check.gt(-1.5), nullable=False),
        "missing": pa.Column(int),
    })
    write_parquet(df, row_group_size=128)
    loaded = schemas.LoadedSchema(schema, "inline", "python")
    outcome = schemas.validate(schemas.open_source("data.parquet"), loaded)
    with pytest.raises(pa.errors.SchemaErrors) as info:
        schema.validate(pq.read_table("data.parquet").to_pandas(), lazy=True)
    fc = info.value.failure_cases
    fc["column"] = fc["column"].where(fc["column"].notna(), fc["failure_case"])
    expected = fc.groupby(["column", "check"]).size().to_dict()
    got = {(g.column, g.check): g.count for g in outcome.groups}
    assert got == {(str(k[0]), k[1]): v for k, v in expected.items()}
    for (column, check), part in fc.groupby(["column", "check"]):
        rows = sorted(int(i) for i in part["index"].dropna())[:schemas.SAMPLE_ROWS]
        g = next(g for g in outcome.groups if g.column == column and g.check == check)
        assert g.rows == rows


def test_wrong_column_type_and_nan_inf(tmp_path):
    df = people()
    df["age"] = df["age"].astype(str)                 # wrong type: strings
    df["score"] = df["score"].astype(float)
    df.loc[4, "score"] = np.inf
    df.loc[6, "score"] = np.nan                        # nullable: fine
    data = write_parquet(df)
    result = validate.run(data, schema_file())
    g = groups(result)
    assert ("age", "dtype") in g
    assert g[("score", "less_than_or_equal_to")][3] == "5"     # data row 5 = index 4
    assert g[("score", "less_than_or_equal_to")][4] == "inf"
    age = next(f for f in result.findings if f.column == "age" and f.code == "schema.dtype")
    assert "expected series 'age' to have type int64" in age.message
    assert age.line == line_of("people.yaml", "dtype: int64", after="age:")


def test_all_null_column_in_non_nullable_column():
    df = people()
    df["age"] = np.nan
    result = validate.run(write_parquet(df), schema_file())
    g = groups(result)
    assert g[("age", "not_nullable")][2] == 24
    finding = next(f for f in result.findings if f.code == "schema.nullable")
    assert "24 null value(s) in a non-nullable column" in finding.message
    assert finding.line == line_of("people.yaml", "age:")     # no nullable key: the column


def test_unicode_and_very_long_strings_are_quoted_short():
    df = people()
    df.loc[9, "city"] = "Ω" * 5000
    result = validate.run(write_parquet(df), schema_file())
    row = groups(result)[("city", "isin")]
    assert row[3] == "10"                                   # data row 10 = index 9
    assert row[4].startswith("ΩΩΩ") and len(row[4]) <= schemas.MAX_VALUE_CHARS


def test_schema_naming_an_absent_column_fails_on_that_line():
    df = people().drop(columns=["joined"])
    result = validate.run(write_parquet(df), schema_file())
    assert result.status == "failed"
    finding = next(f for f in result.findings if f.code == "schema.column_in_dataframe")
    assert finding.column == "joined"
    assert finding.line == line_of("people.yaml", "joined:")
    assert "column 'joined' is in the schema but not in the data" in result.reason


def test_strict_schema_reports_extra_columns():
    Path("s.yaml").write_text(textwrap.dedent("""\
        schema_type: dataframe
        columns:
          id:
            dtype: int64
        strict: true
        """), encoding="utf-8")
    result = validate.run(write_parquet(people()), "s.yaml")
    extra = {f.column for f in result.findings if f.code == "schema.strict"}
    assert extra == {"age", "city", "score", "joined"}
    assert all(f.line == 5 for f in result.findings if f.code == "schema.strict")


def test_csv_input_is_validated_too():
    shutil.copy(DATA / "people.csv", "people.csv")
    result = validate.run("people.csv", schema_file())
    assert result.status == "passed", result.reason
    assert result.details["engine"] == "pandas"


def test_python_model_file_and_module(monkeypatch):
    shutil.copy(DATA / "people_model.py", "people_model.py")
    df = people().drop(columns=["joined"])
    df.loc[7, "age"] = 99
    data = write_parquet(df)
    result = validate.run(data, "people_model.py")
    finding = next(f for f in result.findings if f.code == "schema.age_is_not_99")
    assert finding.file == "people_model.py"
    assert finding.line == line_of("people_model.py", "def age_is_not_99")
    assert finding.rows == [8]                              # data row 8 = index 7
    monkeypatch.syspath_prepend(".")
    by_module = validate.run(data, "people_model:People")
    assert [f.code for f in by_module.findings] == [f.code for f in result.findings]


def test_python_model_errors_are_config_errors():
    Path("broken.py").write_text("import pandera.pandas as pa\nraise ValueError('boom')\n")
    with pytest.raises(ConfigError, match=r"broken.py: importing the schema raised ValueError: boom") as e:
        validate.run(write_parquet(people()), "broken.py")
    assert e.value.line == 2
    Path("none.py").write_text("x = 1\n")
    with pytest.raises(ConfigError, match="expected exactly one pandera DataFrameModel"):
        validate.run("data.parquet", "none.py")
    with pytest.raises(ConfigError, match="module 'no_such_mod' not found"):
        validate.run("data.parquet", "no_such_mod:Model")


@pytest.mark.parametrize("text, match, line", [
    ("columns:\n  age:\n    dtype: int64\n   nullable: [\n", r"malformed YAML at line \d+", True),
    ("- just\n- a list\n", "must be a mapping with 'columns:'", True),
    ("columns:\n  age:\n    dtype: no_such_type\n", r"invalid pandera schema", False),
    ("columns:\n  age:\n    dtype: int64\n    no_such_check: 3\n",
     r"column 'age': unknown check or property 'no_such_check'", True),
    ("columns:\n  age:\n    dtype: int64\nstict: true\n", r"unknown schema key 'stict'", True),
    ("columns: 3\n", "'columns' must be a mapping", True),
])
def test_malformed_schema_file(text, match, line):
    Path("bad.yaml").write_text(text, encoding="utf-8")
    data = write_parquet(people())
    with pytest.raises(ConfigError, match=match) as e:
        validate.run(data, "bad.yaml")
    assert e.value.file == "bad.yaml"
    if line:
        assert e.value.line is not None


def test_bad_data_inputs():
    path = schema_file()
    with pytest.raises(DataError, match="nope.parquet: no such file"):
        validate.run("nope.parquet", path)
    Path("junk.parquet").write_bytes(b"not parquet at all")
    with pytest.raises(DataError, match="junk.parquet: cannot read as parquet"):
        validate.run("junk.parquet", path)
    Path("bad.csv").write_text('a,b\n1,"unterminated\n', encoding="utf-8")
    with pytest.raises(DataError, match="bad.csv"):
        validate.run("bad.csv", path)
    write_parquet(people().iloc[:0], "empty.parquet")
    with pytest.raises(DataError, match=r"empty.parquet: dataset is empty \(0 rows\)"):
        validate.run("empty.parquet", path)
    with pytest.raises(ConfigError, match="no such schema file"):
        validate.run("empty.parquet", "missing.yaml")


# --------------------------------------------------------------------------- skew

def _shifted() -> pd.DataFrame:
    df = people()
    df["score"] = df["score"] * 0.2 + 0.8              # within range, different distribution
    df["city"] = "Berlin"
    return df


def test_skew_over_threshold_fails_with_gates():
    ref = write_parquet(people(), "ref.parquet")
    cur = write_parquet(_shifted(), "cur.parquet")
    result = validate.run(cur, schema_file(), reference=ref,
                          skew_thresholds=["psi<=0.2", "linf<=0.5", "age.psi<=0.1"])
    assert result.status == "failed"
    assert result.outputs["valid"] is True and result.outputs["skew"] is True
    gates = {g.metric: g for g in result.gates}
    assert gates["score.psi"].verdict == "failed"
    assert gates["city.linf"].verdict == "failed"
    assert gates["age.psi"].verdict == "passed" and gates["age.psi"].threshold == "<= 0.1"
    assert "skew: city.linf = 0.75 misses <= 0.5 (+1 more)" in result.reason
    skew = next(t for t in result.tables if t.title.startswith("skew"))
    assert [r[0] for r in skew.rows] == ["id", "age", "city", "score", "joined"]
    assert next(r for r in skew.rows if r[0] == "city")[1] == "categorical"


def test_skew_within_threshold_passes_and_defaults_warn():
    ref = write_parquet(people(), "ref.parquet")
    result = validate.run(ref, schema_file(), reference=ref)
    assert result.status == "passed", result.reason
    assert result.warnings and "psi<=0.2" in result.warnings[0]
    assert {g.metric.split(".")[1] for g in result.gates} == {"psi", "linf", "null_fraction_delta"}
    assert result.outputs["skew"] is False


def test_skew_threshold_errors():
    ref = write_parquet(people(), "ref.parquet")
    path = schema_file()
    with pytest.raises(ConfigError, match="unknown metric 'psy'"):
        validate.run(ref, path, reference=ref, skew_thresholds=["psy<=0.2"])
    with pytest.raises(ConfigError, match="column 'nope' is not compared"):
        validate.run(ref, path, reference=ref, skew_thresholds=["nope.psi<=0.2"])
    with pytest.raises(ConfigError, match="--skew-threshold 'psi<' is not of the form"):
        validate.run(ref, path, reference=ref, skew_thresholds=["psi<"])
    with pytest.raises(ConfigError, match="needs --reference"):
        validate.run(ref, path, skew_thresholds=["psi<=0.2"])
    with pytest.raises(DataError, match="missing.parquet: no such file"):
        validate.run(ref, path, reference="missing.parquet")


def test_json_schema_written_by_pandera():
    schema = pa.DataFrameSchema({"age": pa.Column(int, pa.Check.le(30))})
    Path("s.json").write_text(schema.to_json(indent=2), encoding="utf-8")
    result = validate.run(write_parquet(people()), "s.json")
    assert result.status == "failed"
    finding = next(f for f in result.findings if f.column == "age")
    assert finding.file == "s.json" and finding.count == int((people()["age"] > 30).sum()) == 19
    assert finding.line == line_of("s.json", '"less_than_or_equal_to"')
    Path("bad.json").write_text('{"columns": {"age": }}', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"bad.json: malformed JSON at line 1"):
        validate.run("data.parquet", "bad.json")


def test_directory_of_parquet_files_and_regex_columns():
    Path("parts").mkdir()
    pd.DataFrame({"f_a": [1, 2, 3], "f_b": [4, 5, 6]}).to_parquet("parts/part-0.parquet")
    pd.DataFrame({"f_a": [7, -1, 9], "f_b": [4, 5, -6]}).to_parquet("parts/part-1.parquet")
    Path("rx.yaml").write_text("columns:\n  f_.*:\n    dtype: int64\n    regex: true\n"
                               "    greater_than_or_equal_to: 0\n", encoding="utf-8")
    result = validate.run("parts", "rx.yaml")
    rows = {f.column: (f.rows, f.line) for f in result.findings}
    assert rows == {"f_a": ([5], 5), "f_b": ([6], 5)}       # global data rows across files


def test_coercion_failure_is_one_line_and_pii_values_are_masked():
    df = people().astype({"age": object})
    df.loc[2, "age"] = "abc"
    df.loc[4, "age"] = "bob.secret@example.org"
    df.loc[6, "city"] = "eve.hidden@example.net"
    df.to_csv("people.csv", index=False)
    Path("coerce.yaml").write_text(Path(schema_file()).read_text(encoding="utf-8")
                                   .replace("coerce: false", "coerce: true"), encoding="utf-8")
    result = validate.run("people.csv", "coerce.yaml")
    assert result.status == "failed"
    assert "cannot be coerced to int64" in result.reason
    coerce = [f for f in result.findings if "coerced" in f.message]
    assert coerce and all("\n" not in f.message for f in coerce)
    assert ("column 'age': 2 value(s) cannot be coerced to int64 (first data rows 3, 5)"
            in coerce[0].message)
    dumped = json.dumps([f.to_dict() for f in result.findings] + [t.to_dict() for t in result.tables]
                        + [result.reason])
    assert "bob.secret@example.org" not in dumped and "eve.hidden@example.net" not in dumped
    assert "index failure_case" not in dumped
    assert "b***@e***.org" in dumped and "e***@e***.net" in dumped


def test_all_null_column_fails_default_skew_gates():
    ref = write_parquet(people(), "ref.parquet")
    cur = people()
    cur["score"] = np.nan
    result = validate.run(write_parquet(cur, "cur.parquet"), schema_file(), reference=ref)
    assert result.status == "failed"
    gates = {g.metric: g for g in result.gates}
    assert gates["score.null_fraction_delta"].verdict == "failed"
    assert "score.null_fraction_delta" in result.reason
    result = validate.run(write_parquet(cur, "cur.parquet"), schema_file(), reference=ref,
                          skew_thresholds=["psi<=0.5"])        # kept beside the user's gates
    assert result.status == "failed" and "score.null_fraction_delta" in result.reason
    result = validate.run(write_parquet(cur, "cur.parquet"), schema_file(), reference=ref,
                          skew_thresholds=["psi<=0.5", "null_fraction_delta<=1"])
    assert result.status == "passed", result.reason
