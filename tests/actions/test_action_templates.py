"""The composite actions match the CLI: names, env vars, outputs, docs (DESIGN §2, §4, §8)."""

from __future__ import annotations

import ast
import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import click
import pytest
import yaml

from mlcd_actions.cli import cli

ROOT = Path(__file__).resolve().parents[2]
TEMPLATES = ROOT / "action-templates"


def _generator():
    spec = importlib.util.spec_from_file_location("mlcd_generate", TEMPLATES / "generate.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


gen = _generator()
STAGES = {s.action: s for s in gen.stages()}


def load(path: Path) -> dict:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def test_every_planned_stage_has_an_action():
    planned = {"ingest", "validate", "schema-infer", "prepare", "check-data", "version-data",
               "build-training", "train", "evaluate", "check-fairness", "register",
               "build-app", "deploy", "smoke-test", "rollback", "predict", "monitor", "report",
               "promote", "history", "override"}
    assert set(STAGES) == planned
    for name in [*planned, "setup"]:
        assert (TEMPLATES / name / "action.yml").is_file(), name
        assert (TEMPLATES / name / "README.md").is_file(), name


def test_generated_files_are_up_to_date():
    r = subprocess.run([sys.executable, str(TEMPLATES / "generate.py"), "--check"],
                       capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr


@pytest.mark.parametrize("action", sorted(STAGES))
def test_inputs_are_the_cli_options_of_the_same_name(action):
    stage = STAGES[action]
    cmd = gen.load_command(stage.command)
    params = {gen.input_name(p): p for p in cmd.params if p.name != "help"}
    data = load(TEMPLATES / action / "action.yml")
    inputs = data["inputs"]
    # every CLI parameter is an input, and every input is a CLI parameter (or a shared one)
    assert set(params) <= set(inputs), set(params) - set(inputs)
    extra = set(inputs) - set(params)
    assert extra == set(gen.COMMON_INPUTS), extra
    group_opts = {o.lstrip("-") for p in cli.params for o in p.opts}
    assert "config" in group_opts  # `config` is the mlcd group's --config option
    step = data["runs"]["steps"][-1]
    for name, spec in inputs.items():
        assert spec.get("description", "").strip(), f"{action}: input {name} has no description"
        assert "default" in spec, f"{action}: input {name} has no default"
        if name != "working-directory":  # mlcd.yaml is the one source of defaults
            assert spec["default"] == "", f"{action}: input {name} defaults to {spec['default']!r}"
        if name in params:
            p = params[name]
            if isinstance(p, click.Option):  # the input is the long option's name
                assert f"--{name}" in p.opts, (name, p.opts)
            # it reaches the CLI as MLCD_<PARAM> (the env var the CLI reads) through env:
            in_var = gen.IN_PREFIX + name.replace("-", "_").upper()
            assert step["env"][in_var] == f"${{{{ inputs.{name} }}}}"
            assert re.search(rf"mlcd_export(_paths)? {in_var} {p.envvar}\n", step["run"])
    assert step["run"].rstrip().endswith(f"exec mlcd {' '.join(stage.command)}")


def _literal_output_keys(module: Path) -> set[str]:
    """String keys a stage module puts into ``result.outputs`` (literal ones only)."""
    tree = ast.parse(module.read_text(encoding="utf-8"))
    keys: set[str] = set()

    def is_outputs(node) -> bool:
        return (isinstance(node, ast.Attribute) and node.attr == "outputs") or \
            (isinstance(node, ast.Name) and node.id == "outputs")

    def dict_keys(node) -> None:
        if isinstance(node, ast.Dict):
            for k, v in zip(node.keys, node.values, strict=True):
                if isinstance(k, ast.Constant) and isinstance(k.value, str):
                    keys.add(k.value)
                elif k is None:
                    dict_keys(v)

    for node in ast.walk(tree):
        if isinstance(node, ast.Assign):
            for t in node.targets:
                if is_outputs(t):
                    dict_keys(node.value)
                if isinstance(t, ast.Subscript) and is_outputs(t.value) and \
                        isinstance(t.slice, ast.Constant):
                    keys.add(t.slice.value)
        elif isinstance(node, ast.Call):
            f = node.func
            if isinstance(f, ast.Attribute) and f.attr == "update" and is_outputs(f.value):
                for a in node.args:
                    dict_keys(a)
            for kw in node.keywords:
                if kw.arg == "outputs":
                    dict_keys(kw.value)
    return keys


@pytest.mark.parametrize("action", sorted(STAGES))
def test_outputs_cover_what_the_stage_writes(action):
    stage = STAGES[action]
    module = ROOT / "mlcd_actions" / "stages" / (stage.command[0].replace("-", "_") + ".py")
    written = _literal_output_keys(module)
    if stage.command == ("schema", "infer"):
        written = {"schema"}
    if action in ("deploy", "rollback"):  # both run the deploy procedure
        written |= _literal_output_keys(ROOT / "mlcd_actions" / "deploy" / "rollout.py")
    outputs = load(TEMPLATES / action / "action.yml")["outputs"]
    assert written, f"no outputs found in {module}"
    assert written <= set(outputs), f"{action}: undeclared outputs {written - set(outputs)}"
    for name, spec in outputs.items():
        assert spec["description"].strip()
        assert spec["value"] == f"${{{{ steps.mlcd.outputs.{name} }}}}"
    assert "status" in outputs


@pytest.mark.parametrize("action", sorted([*STAGES, "setup"]))
def test_readme_documents_every_input_and_output(action):
    readme = (TEMPLATES / action / "README.md").read_text(encoding="utf-8")
    data = load(TEMPLATES / action / "action.yml")
    for name in [*data["inputs"], *data.get("outputs", {})]:
        assert f"`{name}`" in readme, f"{action}/README.md does not document {name}"
    assert "```yaml" in readme and f"action-templates/{action}@" in readme


def _yaml_files() -> list[Path]:
    files = [*TEMPLATES.rglob("action.yml"), *ROOT.joinpath(".github", "workflows").glob("*.yml"),
             *[p for p in TEMPLATES.joinpath("workflows").glob("*.yml")
               if not p.name.startswith("gitlab")]]
    return sorted(files)


@pytest.mark.parametrize("path", _yaml_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_expression_inside_run_and_third_party_pinned_by_sha(path):
    text = path.read_text(encoding="utf-8")
    in_run, indent = False, 0
    for i, line in enumerate(text.splitlines(), 1):
        stripped = line.lstrip()
        ind = len(line) - len(stripped)
        if re.match(r"-?\s*run:\s*[|>]", stripped):
            in_run, indent = True, ind
            continue
        if in_run and stripped and ind <= indent:
            in_run = False
        if in_run or re.match(r"-?\s*run:\s*\S", stripped):
            assert "${{" not in line, f"{path}:{i}: expression inside run: {stripped}"
    for ref in re.findall(r"uses:\s*([^\s#]+)", text):
        if ref.startswith(("./", "docker://")) or ref.startswith(gen.ACTIONS_REPO + "/"):
            continue
        assert re.search(r"@[0-9a-f]{40}$", ref), f"{path}: {ref} is not pinned by commit SHA"


def test_composite_steps_use_bash():
    for action in TEMPLATES.rglob("action.yml"):
        for step in load(action)["runs"]["steps"]:
            if "run" in step:
                assert step.get("shell") == "bash", (action, step.get("name"))
