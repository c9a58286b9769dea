"""mlcd validate (CLI): exit codes, verdict, outputs, annotations on schema lines, bad input."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd

DATA = Path(__file__).parent.parent / "data" / "validate"


def setup_files(df: pd.DataFrame | None = None) -> None:
    shutil.copy(DATA / "people.yaml", "schema.yaml")
    (df if df is not None else pd.read_csv(DATA / "people.csv")).to_parquet("data.parquet")


def line_of(text: str, after: str) -> int:
    lines = Path("schema.yaml").read_text(encoding="utf-8").splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip() == after)
    return next(i for i, line in enumerate(lines) if i > start and text in line) + 1


def test_valid_data_exit_0(mlcd):
    setup_files()
    r = mlcd("validate", "data.parquet", "--schema", "schema.yaml")
    assert r.exit_code == 0, r
    assert r.verdict.startswith("mlcd validate: passed — 24 rows × 5 columns match schema.yaml")
    report = json.loads(Path(".mlcd/reports/validate.json").read_text(encoding="utf-8"))
    assert report["outputs"]["valid"] is True
    assert report["tables"][0]["title"] == "schema failures" and report["tables"][0]["rows"] == []


def test_failures_exit_1_with_github_annotations_and_outputs(mlcd, tmp_path):
    df = pd.read_csv(DATA / "people.csv")
    df.loc[11, "age"] = 500
    df.loc[[2, 19], "city"] = "Atlantis"
    setup_files(df)
    out = tmp_path / "gh_output"
    summary = tmp_path / "gh_summary"
    r = mlcd("validate", "data.parquet", "--schema", "schema.yaml",
             env={"GITHUB_ACTIONS": "true", "GITHUB_OUTPUT": str(out),
                  "GITHUB_STEP_SUMMARY": str(summary)})
    assert r.exit_code == 1, r
    assert r.verdict.startswith("mlcd validate: failed — 3 schema failure(s): column 'age' fails "
                                "in_range")
    age_line = line_of("in_range:", "age:")
    city_line = line_of("isin:", "city:")
    assert f"::error file=schema.yaml,line={age_line}," in r.stdout
    assert f"::error file=schema.yaml,line={city_line}," in r.stdout
    assert "data rows 3, 20" in r.stdout
    assert "valid=false" in out.read_text(encoding="utf-8")
    text = summary.read_text(encoding="utf-8")
    assert "| city | isin(['Berlin', 'Zürich', 'Łódź', '東京']) | 2 | 3, 20 | Atlantis, Atlantis |" \
        in text


def test_skew_gate_exit_1(mlcd):
    df = pd.read_csv(DATA / "people.csv")
    setup_files(df)
    df["score"] = df["score"] * 0.1 + 0.9
    df.to_parquet("cur.parquet")
    r = mlcd("validate", "cur.parquet", "--schema", "schema.yaml", "--reference", "data.parquet",
             "--skew-threshold", "psi<=0.2")
    assert r.exit_code == 1, r
    assert r.verdict.startswith("mlcd validate: failed — skew: score.psi = ")
    r = mlcd("validate", "data.parquet", "--schema", "schema.yaml", "--reference", "data.parquet",
             "--skew-threshold", "psi<=0.2,linf<=0.1")
    assert r.exit_code == 0, r
    assert "skew within" in r.verdict


def test_bad_inputs_exit_2_one_line(mlcd):
    setup_files()
    report = Path(".mlcd/reports/validate.json")
    cases = [
        (["missing.parquet", "--schema", "schema.yaml"], "missing.parquet: no such file"),
        (["data.parquet", "--schema", "nope.yaml"], "nope.yaml: no such schema file"),
        (["data.parquet", "--schema", "schema.yaml", "--skew-threshold", "psi<=0.2"],
         "--skew-threshold needs --reference"),
        (["data.parquet", "--schema", "schema.yaml", "--reference", "data.parquet",
          "--skew-threshold", "bogus<=1"], "unknown metric 'bogus'"),
    ]
    for args, message in cases:
        r = mlcd("validate", *args)
        assert r.exit_code == 2, r
        assert message in r.verdict, r
        assert json.loads(report.read_text(encoding="utf-8"))["exit_code"] == 2
    Path("bad.csv").write_bytes(b"a,b\n1,2,3,4\n\xff\xfe\n")
    r = mlcd("validate", "bad.csv", "--schema", "schema.yaml")
    assert r.exit_code == 2, r
    assert r.verdict.startswith("mlcd validate: failed — bad.csv:")


def test_malformed_schema_annotated_at_its_line(mlcd):
    setup_files()
    Path("schema.yaml").write_text("columns:\n  age:\n    dtype: int64\n    in_rnage: 3\n",
                                   encoding="utf-8")
    r = mlcd("validate", "data.parquet", "--schema", "schema.yaml", env={"GITHUB_ACTIONS": "true"})
    assert r.exit_code == 2, r
    assert "column 'age': unknown check or property 'in_rnage'" in r.verdict
    assert "::error file=schema.yaml,line=4," in r.stdout


def test_schema_naming_absent_column_exit_1(mlcd):
    setup_files(pd.read_csv(DATA / "people.csv").drop(columns=["score"]))
    r = mlcd("validate", "data.parquet", "--schema", "schema.yaml", env={"GITHUB_ACTIONS": "true"})
    assert r.exit_code == 1, r
    assert "column 'score' is in the schema but not in the data" in r.verdict
    lines = Path("schema.yaml").read_text(encoding="utf-8").splitlines()
    assert f"::error file=schema.yaml,line={lines.index('  score:') + 1}," in r.stdout


def test_empty_dataset_exit_2(mlcd):
    setup_files(pd.read_csv(DATA / "people.csv").iloc[:0])
    r = mlcd("validate", "data.parquet", "--schema", "schema.yaml")
    assert r.exit_code == 2, r
    assert r.verdict == ("mlcd validate: failed — data.parquet: dataset is empty (0 rows); "
                         "nothing to validate")


def test_python_model_schema(mlcd):
    setup_files(pd.read_csv(DATA / "people.csv").drop(columns=["joined"]))
    shutil.copy(DATA / "people_model.py", "people_model.py")
    r = mlcd("validate", "data.parquet", "--schema", "people_model.py:People")
    assert r.exit_code == 0, r
    r = mlcd("validate", "data.parquet", "--schema", "people_model:People")   # module in cwd
    assert r.exit_code == 0, r
    r = mlcd("validate", "data.parquet", "--schema", "people_model.py:Nobody")
    assert r.exit_code == 2, r
    assert "people_model.py defines no 'Nobody'" in r.verdict


def test_validate_help_imports_no_heavy_modules():
    check = ("import sys\nfrom mlcd_actions.cli import main\ntry:\n    main(['validate', "
             "'--help'])\nexcept SystemExit:\n    pass\nheavy = [m for m in ('pandas', 'sklearn', "
             "'mlflow', 'dvc', 'pandera', 'numpy', 'pyarrow') if m in sys.modules]\n"
             "print('HEAVY', heavy)\n")
    out = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True)
    assert "--skew-threshold" in out.stdout
    assert "HEAVY []" in out.stdout, out.stdout + out.stderr


def test_skew_threshold_env_keeps_spaces_and_splits_on_newlines_and_commas(mlcd):
    setup_files()
    for value, want in [("psi <= 0.3", {"<= 0.3"}), ("psi <= 0.3\nlinf <= 0.25", {"<= 0.3", "<= 0.25"}),
                        ("psi <= 0.3, linf <= 0.25", {"<= 0.3", "<= 0.25"})]:
        r = mlcd("validate", "data.parquet", "--schema", "schema.yaml", "--reference",
                 "data.parquet", env={"MLCD_SKEW_THRESHOLD": value})
        assert r.exit_code == 0, r
        report = json.loads(Path(".mlcd/reports/validate.json").read_text(encoding="utf-8"))
        assert {g["threshold"] for g in report["gates"]
                if not g["metric"].endswith(".null_fraction_delta")} == want


def test_pii_in_failing_values_never_appears_raw(mlcd, tmp_path):
    df = pd.read_csv(DATA / "people.csv")
    df.loc[4, "city"] = "mallory.private@example.com"
    setup_files(df)
    out, summary = tmp_path / "gh_output", tmp_path / "gh_summary"
    r = mlcd("validate", "data.parquet", "--schema", "schema.yaml",
             env={"GITHUB_ACTIONS": "true", "GITHUB_OUTPUT": str(out),
                  "GITHUB_STEP_SUMMARY": str(summary)})
    assert r.exit_code == 1, r
    assert "::error file=schema.yaml," in r.stdout and "(data row 5)" in r.stdout
    written = (r.stdout + r.stderr + summary.read_text(encoding="utf-8")
               + "".join(p.read_text(encoding="utf-8", errors="replace")
                         for p in Path(".mlcd").rglob("*") if p.is_file()))
    assert "mallory.private@example.com" not in written
    assert "m***@e***.com" in written
