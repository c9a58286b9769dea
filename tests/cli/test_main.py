"""The CLI contract shared by every stage: lazy loading, fast help, exit codes, verdicts,
MLCD_<OPTION> env vars and mlcd.yaml defaults."""

import json
import subprocess
import sys
import textwrap

import click
import pytest

from mlcd_actions import cli as cli_mod
from mlcd_actions.cli.common import stage_command
from mlcd_actions.core.errors import DataError, ServiceError, StageFailed
from mlcd_actions.core.results import StageResult

HEAVY = ("pandas", "sklearn", "mlflow", "dvc", "numpy", "pyarrow", "pandera", "fairlearn", "scipy")


@stage_command("demo-stage", help="A stage used only by these tests.")
@click.option("--value", type=int, default=1, help="A number.")
@click.option("--mode", default="ok", help="ok | data | service | fail | crash | gate")
@click.option("--model-uri", default=None, help="An option with a dash.")
def demo(value, mode, model_uri):
    if mode == "data":
        raise DataError("train.csv: column 'age' not found", file="train.csv")
    if mode == "service":
        raise ServiceError("MLflow tracking server http://127.0.0.1:1 unavailable")
    if mode == "fail":
        raise StageFailed("training function raised ValueError: boom")
    if mode == "crash":
        raise RuntimeError("unexpected\nsecond line")
    r = StageResult("demo-stage", outputs={"value": value, "model-uri": model_uri})
    if mode == "gate":
        r.status, r.reason = "failed", "f1 = 0.5 misses >= 0.8"
    else:
        r.reason = f"value {value}"
    return r


@pytest.fixture
def demo_cmd():
    cli_mod.COMMANDS["demo-stage"] = f"{__name__}:demo"
    cli_mod.cli._loaded.pop("demo-stage", None)
    yield
    del cli_mod.COMMANDS["demo-stage"]
    cli_mod.cli._loaded.pop("demo-stage", None)


@pytest.mark.parametrize("mode,code,verdict", [
    ("ok", 0, "mlcd demo-stage: passed — value 1"),
    ("gate", 1, "mlcd demo-stage: failed — f1 = 0.5 misses >= 0.8"),
    ("fail", 1, "mlcd demo-stage: failed — training function raised ValueError: boom"),
    ("data", 2, "mlcd demo-stage: failed — train.csv: column 'age' not found"),
    ("service", 3, "mlcd demo-stage: failed — MLflow tracking server http://127.0.0.1:1 unavailable"),
])
def test_exit_codes_and_verdict(mlcd, demo_cmd, mode, code, verdict):
    r = mlcd("demo-stage", "--mode", mode)
    assert r.exit_code == code, r
    assert r.verdict == verdict
    data = json.load(open(".mlcd/reports/demo-stage.json"))
    assert data["exit_code"] == code


def test_unexpected_error_is_one_line_with_traceback_in_log(mlcd, demo_cmd):
    r = mlcd("demo-stage", "--mode", "crash")
    assert r.exit_code == 1
    assert r.verdict.startswith("mlcd demo-stage: failed — internal error: RuntimeError: unexpected")
    assert "Traceback" not in r.output
    assert "Traceback" in open(".mlcd/logs/mlcd.log").read()


def test_usage_error_exit_2(mlcd, demo_cmd):
    r = mlcd("demo-stage", "--value", "x")
    assert r.exit_code == 2
    assert r.verdict.startswith("mlcd demo-stage: failed — usage: Invalid value for '--value'")
    r = mlcd("no-such-stage")
    assert r.exit_code == 2


def test_env_var_and_config(mlcd, demo_cmd):
    r = mlcd("demo-stage", env={"MLCD_VALUE": "5", "MLCD_MODEL_URI": "runs:/r/model"})
    assert r.verdict == "mlcd demo-stage: passed — value 5"
    with open("mlcd.yaml", "w") as fh:
        fh.write("version: 1\ndemo-stage:\n  value: 7\n")
    assert mlcd("demo-stage").verdict.endswith("value 7")
    # precedence: option > env > config
    assert mlcd("demo-stage", env={"MLCD_VALUE": "8"}).verdict.endswith("value 8")
    assert mlcd("demo-stage", "--value", "9", env={"MLCD_VALUE": "8"}).verdict.endswith("value 9")


def test_config_error_one_line(mlcd, demo_cmd):
    with open("mlcd.yaml", "w") as fh:
        fh.write("version: 1\ndemo-stage:\n  valeu: 7\n")
    r = mlcd("demo-stage")
    assert r.exit_code == 2
    assert r.verdict == ("mlcd demo-stage: failed — mlcd.yaml:3: unknown option 'valeu' for "
                         "'demo-stage' (did you mean 'value'?)")
    # --help still works with a broken config
    assert mlcd("demo-stage", "--help").exit_code == 0


def test_github_outputs_from_cli(mlcd, demo_cmd, tmp_path):
    out = tmp_path / "gh-out"
    r = mlcd("demo-stage", "--model-uri", "runs:/r/model",
             env={"GITHUB_ACTIONS": "true", "GITHUB_OUTPUT": str(out)})
    assert r.exit_code == 0, r
    assert "model-uri=runs:/r/model\n" in out.read_text()


def _imported_by(args):
    code = textwrap.dedent(f"""
        import sys
        from mlcd_actions.cli import main
        code = main({args!r})
        print("MODULES", " ".join(sorted({{m.split('.')[0] for m in sys.modules}})))
        sys.exit(code)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    line = [ln for ln in out.stdout.splitlines() if ln.startswith("MODULES")][0]
    return set(line.split()[1:]), out.stdout


@pytest.mark.parametrize("args", [["--help"], ["--version"]] + [
    [name, "--help"] for name in sorted(cli_mod.COMMANDS)])
def test_help_imports_nothing_heavy(args):
    if args[0] in cli_mod.COMMANDS and not cli_mod.cli._available(args[0]):
        pytest.skip(f"mlcd {args[0]} is not built yet")
    modules, out = _imported_by(args)
    assert not modules & set(HEAVY), f"{args}: imported {sorted(modules & set(HEAVY))}"
    assert "Usage: mlcd" in out or "mlcd, version" in out


def test_every_listed_command_loads():
    ctx = click.Context(cli_mod.cli)
    for name in cli_mod.cli.list_commands(ctx):
        cmd = cli_mod.cli.get_command(ctx, name)
        assert cmd is not None and cmd.help, name
        for param in cmd.params:
            if isinstance(param, click.Option) and param.name != "help":
                assert param.help, f"mlcd {name} {param.opts[0]} has no help text"
