"""Every stage × every bad input of DESIGN §6 that applies, as a table.

A row: the stage's arguments (``{M}`` a local copy of the trained model, ``{R}`` its
``runs:/`` URI, ``{S}`` the tracking server, ``{DOWN}`` a tracking server that is down),
the exit code, and the words the one verdict line must hold (file, column, row or
service). Every row also checks: the verdict is the last line, no traceback anywhere on
the terminal, and every earlier output in the workspace and in the registry is byte for
byte unchanged (see conftest.py). Rows with exit 0 are inputs a stage must take as they
are (unicode, very long strings, an all-null column for the stages that only look).
"""

from __future__ import annotations

import pytest

from tests.badinput.conftest import cli, files, registry
from tests.services import free_port

DOWN_ENV = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "3",
            "MLCD_TRACKING_RETRY_SECONDS": "0"}

EV = ("--label", "approved", "--threshold", "accuracy>=0.0")
FAIR = ("--label", "approved", "--sensitive", "sex",
        "--threshold", "demographic_parity_difference<=1.0")
MON = ("--threshold", "psi<=10", "--threshold", "js<=1", "--max-plots", "0")

CASES = [
    # ---- ingest
    ("ingest missing", ["ingest", "missing.csv", "--out", "snap"], 2,
     ["missing.csv", "no such file"]),
    ("ingest malformed csv", ["ingest", "malformed.csv", "--out", "snap"], 2,
     ["malformed.csv", "malformed CSV", "line 3"]),
    ("ingest malformed parquet", ["ingest", "malformed.parquet", "--out", "snap"], 2,
     ["malformed.parquet"]),
    ("ingest empty", ["ingest", "empty.csv", "--out", "snap"], 2, ["empty.csv", "empty"]),
    # ---- schema infer
    ("schema missing", ["schema", "infer", "missing.csv", "--out", "schema.yaml"], 2,
     ["missing.csv"]),
    ("schema malformed", ["schema", "infer", "malformed.csv", "--out", "schema.yaml"], 2,
     ["malformed.csv"]),
    ("schema empty", ["schema", "infer", "empty.csv", "--out", "schema.yaml"], 2,
     ["empty.csv"]),
    # ---- validate
    ("validate missing data", ["validate", "missing.csv", "--schema", "schema.yaml"], 2,
     ["missing.csv"]),
    ("validate missing schema", ["validate", "good.csv", "--schema", "nope.yaml"], 2,
     ["nope.yaml"]),
    ("validate malformed", ["validate", "malformed.csv", "--schema", "schema.yaml"], 2,
     ["malformed.csv"]),
    ("validate malformed parquet", ["validate", "malformed.parquet", "--schema",
                                    "schema.yaml"], 2, ["malformed.parquet"]),
    ("validate empty", ["validate", "empty.csv", "--schema", "schema.yaml"], 2,
     ["empty.csv"]),
    ("validate wrong type", ["validate", "wrongtype.csv", "--schema", "schema.yaml"], 1,
     ["income"]),
    ("validate all-null", ["validate", "allnull.csv", "--schema", "schema.yaml"], 1,
     ["debt"]),
    ("validate label missing", ["validate", "nolabel.csv", "--schema", "schema.yaml"], 1,
     ["approved"]),
    # ---- prepare
    ("prepare missing", ["prepare", "missing.csv", "--label", "approved", "--out",
                         "prepared"], 2, ["missing.csv"]),
    ("prepare malformed", ["prepare", "malformed.csv", "--label", "approved", "--out",
                           "prepared"], 2, ["malformed.csv"]),
    ("prepare empty", ["prepare", "empty.csv", "--label", "approved", "--out", "prepared"],
     2, ["empty.csv"]),
    ("prepare label missing", ["prepare", "nolabel.csv", "--label", "approved", "--out",
                               "prepared"], 2, ["nolabel.csv", "approved"]),
    ("prepare one-class", ["prepare", "oneclass.csv", "--label", "approved", "--out",
                           "prepared"], 2, ["oneclass.csv", "approved", "single class"]),
    ("prepare transform raises", ["prepare", "good.csv", "--label", "approved", "--out",
                                  "prepared", "--transform", "bad_model:broken"], 1,
     ["bad_model:broken"]),
    ("prepare unknown transform", ["prepare", "good.csv", "--label", "approved", "--out",
                                   "prepared", "--transform", "nosuchmod:fn"], 2,
     ["nosuchmod"]),
    # ---- check-data
    ("check-data missing", ["check-data", "missing.csv", "--label", "approved"], 2,
     ["missing.csv"]),
    ("check-data malformed", ["check-data", "malformed.csv", "--label", "approved"], 2,
     ["malformed.csv"]),
    ("check-data empty", ["check-data", "empty.csv", "--label", "approved"], 2,
     ["empty.csv"]),
    ("check-data label missing", ["check-data", "nolabel.csv", "--label", "approved"], 2,
     ["nolabel.csv", "approved"]),
    ("check-data unknown sensitive", ["check-data", "good.csv", "--label", "approved",
                                      "--sensitive", "religion"], 2, ["religion"]),
    ("check-data unicode", ["check-data", "unicode.csv", "--label", "approved",
                            "--sensitive", "sex", "--threshold", "label_rate_gap<=1"], 0, []),
    ("check-data all-null", ["check-data", "allnull.csv", "--label", "approved"], 0, []),
    # ---- version-data
    ("version-data missing", ["version-data", "missing.csv"], 2, ["missing.csv"]),
    # ---- build-training
    ("build-training missing dir", ["build-training", "no-such-src", "--out", "dist"], 2,
     ["no-such-src"]),
    # ---- train
    ("train missing", ["train", "--train", "missing.csv", "--label", "approved"], 2,
     ["missing.csv"]),
    ("train malformed", ["train", "--train", "malformed.parquet", "--label", "approved"], 2,
     ["malformed.parquet"]),
    ("train empty", ["train", "--train", "empty.parquet", "--label", "approved"], 2,
     ["empty.parquet", "no rows"]),
    ("train label missing", ["train", "--train", "nolabel.parquet", "--label", "approved"],
     2, ["nolabel.parquet", "approved"]),
    ("train one-class", ["train", "--train", "oneclass.parquet", "--label", "approved"], 2,
     ["oneclass.parquet", "one class"]),
    ("train inf", ["train", "--train", "naninf.parquet", "--label", "approved"], 2,
     ["naninf.parquet", "'income'", "row 5"]),
    ("train registry down", ["train", "--train", "prepared/train.parquet", "--label",
                             "approved", "--tracking-uri", "{DOWN}"], 3, ["{DOWN}"]),
    ("train function raises", ["train", "--train", "prepared/train.parquet", "--label",
                               "approved", "--entrypoint", "bad_model:broken",
                               "--tracking-uri", "{S}", "--experiment", "badinput-bad"], 1,
     ["bad_model:broken raised ValueError"]),
    ("train no such entrypoint", ["train", "--train", "prepared/train.parquet", "--label",
                                  "approved", "--entrypoint", "nosuchmod:train",
                                  "--tracking-uri", "{S}", "--experiment", "badinput-bad"], 2,
     ["nosuchmod"]),
    # ---- evaluate
    ("evaluate missing test", ["evaluate", "--model-uri", "{M}", "--test", "missing.csv",
                               *EV], 2, ["missing.csv"]),
    ("evaluate missing model", ["evaluate", "--model-uri", "no-model", "--test",
                                "test.csv", *EV], 2, ["no-model"]),
    ("evaluate malformed", ["evaluate", "--model-uri", "{M}", "--test", "malformed.csv",
                            *EV], 2, ["malformed.csv"]),
    ("evaluate empty", ["evaluate", "--model-uri", "{M}", "--test", "empty.csv", *EV], 2,
     ["empty.csv"]),
    ("evaluate label missing", ["evaluate", "--model-uri", "{M}", "--test", "nolabel.csv",
                                *EV], 2, ["nolabel.csv", "approved"]),
    ("evaluate wrong type", ["evaluate", "--model-uri", "{M}", "--test", "wrongtype.csv",
                             *EV], 2, ["income", "row"]),
    ("evaluate nan/inf", ["evaluate", "--model-uri", "{M}", "--test", "naninf.parquet",
                          *EV], 2, ["income"]),
    ("evaluate one-class", ["evaluate", "--model-uri", "{M}", "--test", "oneclass.csv",
                            *EV], 2, ["oneclass.csv", "'approved'", "one class"]),
    ("evaluate registry down", ["evaluate", "--model-uri", "models:/x@champion", "--test",
                                "test.csv", *EV, "--tracking-uri", "{DOWN}"], 3, ["{DOWN}"]),
    # ---- check-fairness
    ("fairness missing", ["check-fairness", "--model-uri", "{M}", "--test", "missing.csv",
                          *FAIR], 2, ["missing.csv"]),
    ("fairness empty", ["check-fairness", "--model-uri", "{M}", "--test", "empty.csv",
                        *FAIR], 2, ["empty.csv"]),
    ("fairness label missing", ["check-fairness", "--model-uri", "{M}", "--test",
                                "nolabel.csv", *FAIR], 2, ["nolabel.csv", "approved"]),
    ("fairness unknown sensitive", ["check-fairness", "--model-uri", "{M}", "--test",
                                    "test.csv", "--label", "approved", "--sensitive",
                                    "religion"], 2, ["religion"]),
    ("fairness unicode groups", ["check-fairness", "--model-uri", "{M}", "--test",
                                 "unicode.csv", *FAIR], 0, []),
    # ---- register
    ("register registry down", ["register", "--model-uri", "{R}", "--name", "x",
                                "--tracking-uri", "{DOWN}"], 3, ["{DOWN}"]),
    ("register unknown run", ["register", "--model-uri", "runs:/0123456789abcdef/model",
                              "--name", "badinput-model", "--tracking-uri", "{S}"], 2,
     ["0123456789abcdef"]),
    # ---- predict
    ("predict missing", ["predict", "--model-uri", "{M}", "--input", "missing.csv",
                         "--output", "preds.parquet"], 2, ["missing.csv"]),
    ("predict malformed", ["predict", "--model-uri", "{M}", "--input", "malformed.csv",
                           "--output", "preds.parquet"], 2, ["malformed.csv"]),
    ("predict empty", ["predict", "--model-uri", "{M}", "--input", "empty.csv",
                       "--output", "preds.parquet"], 2, ["empty.csv"]),
    ("predict wrong type", ["predict", "--model-uri", "{M}", "--input", "wrongtype.csv",
                            "--output", "preds.parquet"], 2, ["wrongtype.csv", "'income'",
                                                              "'lots'"]),
    ("predict nan/inf", ["predict", "--model-uri", "{M}", "--input", "naninf.parquet",
                         "--output", "preds.parquet"], 2, ["income"]),
    ("predict registry down", ["predict", "--model-uri", "models:/x@champion", "--input",
                               "test.csv", "--output", "preds.parquet", "--tracking-uri",
                               "{DOWN}"], 3, ["{DOWN}"]),
    ("predict unicode", ["predict", "--model-uri", "{M}", "--input", "unicode.csv",
                         "--output", "preds-unicode.parquet"], 0, []),
    # ---- monitor
    ("monitor missing", ["monitor", "--reference", "missing.csv", "--current",
                         "test.csv", *MON], 2, ["missing.csv"]),
    ("monitor malformed", ["monitor", "--reference", "good.csv", "--current",
                           "malformed.csv", *MON], 2, ["malformed.csv"]),
    ("monitor empty", ["monitor", "--reference", "good.csv", "--current", "empty.csv",
                       *MON], 2, ["empty.csv"]),
    ("monitor labels missing", ["monitor", "--reference", "good.csv", "--current",
                                "nolabel.csv", "--label-column", "approved", "--labels",
                                "nolabel.csv", *MON], 2, ["nolabel.csv", "prediction"]),
    ("monitor all-null", ["monitor", "--reference", "good.csv", "--current", "allnull.csv",
                          *MON], 1, ["drift", "debt"]),
    ("monitor unicode", ["monitor", "--reference", "good.csv", "--current", "unicode.csv",
                         "--threshold", "psi<=10", "--threshold", "js<=1"], 0, []),
    # ---- serve, build-app, deploy, report
    ("serve missing model", ["serve", "--model-uri", "no-model"], 2, ["no-model"]),
    ("build-app missing model", ["build-app", "--model-uri", "no-model", "--tag",
                                 "mlcd-badinput:1"], 2, ["no-model"]),
    ("deploy registry down", ["deploy", "--environment", "badinput", "--target", "local",
                              "--model-uri", "models:/x@candidate", "--tracking-uri",
                              "{DOWN}"], 3, ["{DOWN}"]),
    ("report malformed report", ["report", "--report-dir", "broken-reports"], 2,
     ["broken-reports/evaluate.json", "not a readable JSON report"]),
    ("check-data missing policy", ["check-data", "good.csv", "--label", "approved",
                                   "--pii-policy", "missing.yaml"], 2, ["missing.yaml"]),
    ("version-data remote unwritable", ["version-data", "prepared/train.parquet",
                                        "--remote", "/proc/no-such/remote"], 3,
     ["/proc/no-such/remote"]),
    # ---- smoke-test
    ("smoke-test service down", ["smoke-test", "--url", "http://127.0.0.1:{PORT}",
                                 "--timeout", "1"], 1, ["127.0.0.1:{PORT}/health"]),
    ("smoke-test missing samples", ["smoke-test", "--url", "http://127.0.0.1:{PORT}",
                                    "--samples", "missing.json", "--timeout", "1"], 2,
     ["missing.json"]),
]


@pytest.mark.parametrize("args, code, words", [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_bad_input(workspace, monkeypatch, args, code, words):
    root, uri, model_uri, local_model = workspace
    monkeypatch.chdir(root)
    port = str(free_port())
    subst = {"{M}": local_model, "{R}": model_uri, "{S}": uri,
             "{DOWN}": f"http://127.0.0.1:{port}", "{PORT}": port}

    def fill(text: str) -> str:
        for key, value in subst.items():
            text = text.replace(key, value)
        return text

    stage = args[0]
    report = "schema-infer" if stage == "schema" else stage
    before_files = files(root, skip_stage=report)
    before_registry = registry(uri)
    r = cli(*[fill(a) for a in args], env=DOWN_ENV)
    assert r.code == code, r
    verb = "passed" if code == 0 else "failed"
    assert r.verdict.startswith(f"mlcd {stage}") and f": {verb} — " in r.verdict, r
    for word in words:
        assert fill(word) in r.verdict, (fill(word), r)
    assert "Traceback" not in r.output, r
    if code:
        assert files(root, skip_stage=report) == before_files
    else:  # a stage that passes may write its own outputs, never touch the others'
        after = files(root, skip_stage=report)
        assert {k: v for k, v in after.items() if k in before_files} == before_files
    assert registry(uri) == before_registry
