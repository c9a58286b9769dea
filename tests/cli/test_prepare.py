"""``mlcd prepare`` through the CLI: outputs, CI outputs, mlcd.yaml steps, exit codes, and
that earlier outputs survive every failure."""

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import DATA


@pytest.fixture
def repo(isolated):
    shutil.copy(DATA / "prepare" / "loans.csv", "loans.csv")
    shutil.copy(DATA / "prepare" / "transforms.py", "transforms.py")
    return isolated


def test_prepare_writes_both_sets_and_ci_outputs(mlcd, repo, tmp_path):
    gh = tmp_path / "gh_out"
    r = mlcd("prepare", "loans.csv", "--label", "approved", "--out", "data/prepared",
             "--test-size", "0.25", "--seed", "7", "--step", "impute:age=median",
             "--step", "encode:city", "--transform", "transforms:add_ratio",
             env={"GITHUB_ACTIONS": "true", "GITHUB_OUTPUT": str(gh)})
    assert r.exit_code == 0, r
    assert r.verdict == ("mlcd prepare: passed — 15 train / 5 test rows "
                         "(stratified, seed 7, test-size 0.25)")
    outputs = gh.read_text()
    for line in ("train-path=data/prepared/train.parquet", "test-path=data/prepared/test.parquet",
                 "train-rows=15", "test-rows=5"):
        assert line in outputs
    train = pd.read_parquet("data/prepared/train.parquet")
    assert "income_per_age" in train.columns and "city_Paris" in train.columns
    manifest = json.loads(Path("data/prepared/prepare.json").read_text())
    assert manifest["rows"] == {"input": 20, "train": 15, "test": 5, "dropped_unlabelled": 0}
    assert manifest["sha256"]["train.parquet"]


def test_steps_and_options_from_mlcd_yaml(mlcd, repo):
    Path("mlcd.yaml").write_text(
        "label: approved\nprepare:\n  out: prepared\n  seed: 1\n  step:\n"
        "    - impute:age=median\n    - {scale: 'income=minmax'}\n    - drop:user_id\n")
    r = mlcd("prepare", "loans.csv")
    assert r.exit_code == 0, r
    train = pd.read_parquet("prepared/train.parquet")
    assert "user_id" not in train.columns and train["income"].max() == pytest.approx(1.0)


def test_bad_step_in_mlcd_yaml_names_the_line(mlcd, repo):
    Path("mlcd.yaml").write_text("prepare:\n  label: approved\n  step:\n    - normalize:age\n")
    r = mlcd("prepare", "loans.csv", "--out", "p")
    assert r.exit_code == 2, r
    assert "mlcd.yaml:3" in r.verdict and "unknown kind 'normalize'" in r.verdict


def test_split_by_id_from_the_cli(mlcd, repo):
    r = mlcd("prepare", "loans.csv", "--label", "approved", "--out", "p",
             "--split-by-id", "user_id")
    assert r.exit_code == 0, r
    assert "by hashed id 'user_id'" in r.verdict


def test_transform_raising_exits_1_with_traceback_in_report_and_keeps_outputs(mlcd, repo,
                                                                               tmp_path):
    assert mlcd("prepare", "loans.csv", "--label", "approved", "--out", "p").exit_code == 0
    before = {n: Path("p", n).read_bytes() for n in ("train.parquet", "test.parquet")}
    summary = tmp_path / "summary.md"
    r = mlcd("prepare", "loans.csv", "--label", "approved", "--out", "p",
             "--transform", "transforms:boom",
             env={"GITHUB_ACTIONS": "true", "GITHUB_STEP_SUMMARY": str(summary)})
    assert r.exit_code == 1, r
    assert r.verdict == ("mlcd prepare: failed — transform transforms:boom raised ValueError: "
                         "cannot parse income in row 3")
    assert "::error file=transforms.py,line=14" in r.stdout
    md = Path(".mlcd/reports/prepare.md").read_text()
    assert 'raise ValueError("cannot parse income in row 3")' in md
    assert "ValueError: cannot parse income in row 3" in summary.read_text()
    report = json.loads(Path(".mlcd/reports/prepare.json").read_text())
    assert report["details"]["traceback"][-1] == "ValueError: cannot parse income in row 3"
    assert {n: Path("p", n).read_bytes() for n in before} == before
    assert "cannot parse income" in Path(".mlcd/logs/mlcd.log").read_text()


@pytest.mark.parametrize("args,code,message", [
    (["missing.csv", "--label", "approved"], 2, "missing.csv: no such file"),
    (["loans.csv", "--label", "outcome"], 2, "loans.csv: label column 'outcome' not found"),
    (["bad.csv", "--label", "approved"], 2, "bad.csv: malformed CSV"),
    (["empty.csv", "--label", "approved"], 2, "empty.csv: file is empty"),
    (["header.csv", "--label", "approved"], 2, "header.csv: dataset is empty (0 rows)"),
    (["oneclass.csv", "--label", "approved"], 2,
     "label 'approved' has a single class ('yes'); a stratified split needs two or more"),
    (["loans.csv", "--label", "approved", "--test-size", "2"], 2, "--test-size"),
    (["loans.csv", "--label", "approved", "--step", "impute:age"], 2,
     "unknown impute method"),
    (["loans.csv", "--label", "approved", "--transform", "transforms:not_a_frame"], 1,
     "transform transforms:not_a_frame returned dict, not a pandas DataFrame"),
    (["loans.csv", "--label", "approved", "--transform", "transforms:drop_label"], 1,
     "dropped the label column 'approved'"),
    (["loans.csv", "--label", "approved", "--transform", "nowhere:f"], 2,
     "module 'nowhere' not found"),
])
def test_bad_input_one_line_and_outputs_untouched(mlcd, repo, args, code, message):
    Path("bad.csv").write_text('approved,b\n1,"unterminated\n')
    Path("empty.csv").write_text("")
    Path("header.csv").write_text("approved,x\n")
    Path("oneclass.csv").write_text("x,approved\n1,yes\n2,yes\n3,yes\n")
    Path("p").mkdir()
    Path("p/train.parquet").write_bytes(b"earlier train")
    Path("p/test.parquet").write_bytes(b"earlier test")
    r = mlcd("prepare", *args, "--out", "p")
    assert r.exit_code == code, r
    assert message in r.verdict, r
    assert Path("p/train.parquet").read_bytes() == b"earlier train"
    assert Path("p/test.parquet").read_bytes() == b"earlier test"
    assert sorted(p.name for p in Path(".").iterdir() if p.name.startswith(".p.")) == []


def test_one_class_label_without_stratify_splits(mlcd, repo):
    Path("oneclass.csv").write_text("x,approved\n" + "".join(f"{i},yes\n" for i in range(10)))
    r = mlcd("prepare", "oneclass.csv", "--label", "approved", "--out", "p", "--no-stratify")
    assert r.exit_code == 0, r
    assert "random, seed 42" in r.verdict


def test_transform_error_quoting_pii_is_masked_everywhere(mlcd, repo):
    r = mlcd("prepare", "loans.csv", "--label", "approved", "--out", "p",
             "--transform", "transforms:leaky")
    assert r.exit_code == 1, r
    assert "j***@e***.com" in r.verdict and "**** **** **** 1111" in r.verdict
    written = r.stdout + r.stderr + "".join(
        p.read_text() for p in Path(".mlcd").rglob("*") if p.is_file())
    assert "john.doe" not in written and "4111 1111 1111 1111" not in written
