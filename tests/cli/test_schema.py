"""mlcd schema infer (CLI): report name, verdict, exit codes, atomic output."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

DATA = Path(__file__).parent.parent / "data" / "validate"


def test_schema_infer_writes_schema_and_report(mlcd):
    shutil.copy(DATA / "people.csv", "people.csv")
    r = mlcd("schema", "infer", "people.csv", "--out", "schemas/people.yaml")
    assert r.exit_code == 0, r
    assert r.verdict.startswith("mlcd schema infer: passed — wrote schemas/people.yaml: 5 columns")
    report = json.loads(Path(".mlcd/reports/schema-infer.json").read_text(encoding="utf-8"))
    assert report["stage"] == "schema infer"
    assert report["outputs"]["schema"] == "schemas/people.yaml"
    assert report["tables"][0]["title"] == "inferred schema"
    # the next stage takes it as --schema
    v = mlcd("validate", "people.csv", "--schema", "schemas/people.yaml")
    assert v.exit_code == 0, v


def test_schema_infer_bad_input_keeps_previous_schema(mlcd):
    Path("schema.yaml").write_text("# keep me\n", encoding="utf-8")
    Path("data.parquet").write_bytes(b"PAR1 garbage")
    r = mlcd("schema", "infer", "data.parquet", "--out", "schema.yaml")
    assert r.exit_code == 2, r
    assert r.verdict.startswith("mlcd schema infer: failed — data.parquet: cannot read as parquet")
    assert len(r.verdict.splitlines()) == 1
    assert Path("schema.yaml").read_text(encoding="utf-8") == "# keep me\n"
    assert not [p for p in Path(".").iterdir() if p.name.startswith(".schema.yaml")]

    r = mlcd("schema", "infer", "nope.csv", "--out", "schema.yaml")
    assert r.exit_code == 2, r
    assert r.verdict == "mlcd schema infer: failed — nope.csv: no such file"


def test_schema_infer_usage_error(mlcd):
    r = mlcd("schema", "infer", "x.csv")
    assert r.exit_code == 2, r
    assert "--out" in r.stderr


def test_schema_help_imports_no_heavy_modules():
    check = ("import sys\nfrom mlcd_actions.cli import main\ntry:\n    main(['schema', 'infer', "
             "'--help'])\nexcept SystemExit:\n    pass\nheavy = [m for m in ('pandas', 'sklearn', "
             "'mlflow', 'dvc', 'pandera', 'numpy', 'pyarrow') if m in sys.modules]\n"
             "print('HEAVY', heavy)\n")
    out = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True)
    assert "Infer a commented pandera YAML schema" in out.stdout
    assert "HEAVY []" in out.stdout, out.stdout + out.stderr
