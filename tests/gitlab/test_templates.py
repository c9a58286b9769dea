"""Static checks of the GitLab CI templates in action-templates/gitlab/.

A template with a ``spec:`` header is two YAML documents: the header is validated as it is,
and the body after interpolating ``$[[ inputs.x ]]`` the way GitLab does (a whole value keeps
its type, inside text it becomes text), with the inputs' defaults and the values the
pipeline passes. Both must pass check-jsonschema's GitLab CI schema.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
GITLAB = REPO / "action-templates" / "gitlab"
JOBS = GITLAB / "jobs"
PIPELINE = GITLAB / "pipeline.yml"
TEMPLATES = sorted([PIPELINE, *JOBS.glob("*.yml")])
CHECK_JSONSCHEMA = Path(sys.executable).parent / "check-jsonschema"
WHOLE = re.compile(r"^\$\[\[\s*inputs\.([A-Za-z0-9_-]+)\s*\]\]$")
PART = re.compile(r"\$\[\[\s*inputs\.([A-Za-z0-9_-]+)\s*\]\]")
# every stage that runs as a CI job has a template (serve is a server, run/init are local)
STAGES = {"ingest", "validate", "prepare", "check-data", "version-data", "build-training",
          "train", "evaluate", "check-fairness", "register", "build-app", "deploy",
          "smoke-test", "rollback", "predict", "monitor", "report", "promote", "override"}
COMMON_INPUTS = {"job-name", "stage", "needs", "rules", "image", "mlcd-package", "pip-args",
                 "config", "report-dir", "retry"}


def split(path: Path) -> tuple[dict, str]:
    text = path.read_text(encoding="utf-8")
    head, sep, body = text.partition("\n---\n")
    assert sep, f"{path}: no spec header document"
    return yaml.safe_load(head), body


def as_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, dict)):
        return json.dumps(value)
    return str(value)


def interpolate(node: Any, inputs: dict[str, Any]) -> Any:
    if isinstance(node, dict):
        return {interpolate(k, inputs): interpolate(v, inputs) for k, v in node.items()}
    if isinstance(node, list):
        return [interpolate(v, inputs) for v in node]
    if isinstance(node, str):
        whole = WHOLE.match(node)
        if whole:
            return inputs[whole.group(1)]
        return PART.sub(lambda m: as_text(inputs[m.group(1)]), node)
    return node


def resolved_inputs(spec: dict, given: dict[str, Any] | None = None) -> dict[str, Any]:
    given = given or {}
    out = {}
    for name, decl in spec["spec"]["inputs"].items():
        if name in given:
            out[name] = given[name]
        elif "default" in decl:
            out[name] = decl["default"]
        else:
            out[name] = f"required-{name}"
    return out


def check_schema(files: dict[str, Any], tmp_path: Path) -> None:
    """One check-jsonschema run over every document (one process: it starts slowly)."""
    paths = []
    for name, data in files.items():
        target = tmp_path / f"{name}.yml"
        target.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
        paths.append(str(target))
    proc = subprocess.run([str(CHECK_JSONSCHEMA), "--builtin-schema", "vendor.gitlab-ci",
                           *paths], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"{proc.stdout}\n{proc.stderr}"
    assert "ok -- validation done" in proc.stdout


def pipeline_includes() -> list[dict]:
    spec, body = split(PIPELINE)
    return interpolate(yaml.safe_load(body), resolved_inputs(spec))["include"]


def test_one_job_template_per_stage():
    assert {p.stem for p in JOBS.glob("*.yml")} == STAGES


def test_every_template_passes_the_gitlab_ci_schema(tmp_path):
    """Headers as they are; bodies with the inputs' defaults, and as the pipeline
    instantiates each job (with the stages the pipeline declares)."""
    files: dict[str, Any] = {}
    for path in TEMPLATES:
        spec, body = split(path)
        stem = path.relative_to(GITLAB).as_posix().replace("/", "-")[:-4]
        files[f"{stem}.header"] = spec
        files[f"{stem}.body"] = interpolate(yaml.safe_load(body), resolved_inputs(spec))
    stages = yaml.safe_load(split(PIPELINE)[1])["stages"]
    for n, inc in enumerate(pipeline_includes()):
        path = REPO / inc["local"].lstrip("/")
        spec, body = split(path)
        data = interpolate(yaml.safe_load(body), resolved_inputs(spec, inc.get("inputs")))
        files[f"pipeline-{n}-{path.stem}"] = {"stages": stages, **data}
    check_schema(files, tmp_path)


@pytest.mark.parametrize("path", TEMPLATES, ids=lambda p: p.relative_to(GITLAB).as_posix())
def test_every_input_is_described_and_typed(path):
    spec, _ = split(path)
    for name, decl in spec["spec"]["inputs"].items():
        assert decl.get("description"), f"{path.name}: input {name} has no description"
        kind = decl.get("type", "string")
        assert kind in ("string", "number", "boolean", "array"), (path.name, name)
        if "default" in decl:
            value = decl["default"]
            ok = {"string": isinstance(value, str), "boolean": isinstance(value, bool),
                  "number": isinstance(value, (int, float)) and not isinstance(value, bool),
                  "array": isinstance(value, list)}[kind]
            assert ok, f"{path.name}: default of {name} is not a {kind}"
        if "options" in decl and "default" in decl:
            assert decl["default"] in decl["options"], (path.name, name)


@pytest.mark.parametrize("path", sorted(JOBS.glob("*.yml")), ids=lambda p: p.stem)
def test_job_templates_share_the_common_inputs_and_reports(path):
    spec, body = split(path)
    assert COMMON_INPUTS <= set(spec["spec"]["inputs"]), path.name
    job = yaml.safe_load(body)["$[[ inputs.job-name ]]"]
    reports = job["artifacts"]["reports"]
    assert reports["dotenv"] == f"$[[ inputs.report-dir ]]/{path.stem}.env"
    assert reports["junit"] == f"$[[ inputs.report-dir ]]/{path.stem}.junit.xml"
    assert reports["metrics"] == f"$[[ inputs.report-dir ]]/{path.stem}.metrics.txt"
    assert job["artifacts"]["when"] == "always"
    assert job["artifacts"]["expire_in"] == "$[[ inputs.expire-in ]]"
    assert spec["spec"]["inputs"]["expire-in"]["default"] == "30 days"
    assert any(f"mlcd {path.stem}" in line for line in job["script"]), path.name


# inputs whose non-empty default is the template's own business: where artifacts are
# written and read (report-dir, out, output), how mlcd is installed, the image name
TEMPLATE_OWNED = {"report-dir", "out", "output", "mlcd-package", "tag", "job-name"}


@pytest.mark.parametrize("path", [PIPELINE, *sorted(JOBS.glob("*.yml"))], ids=lambda p: p.stem)
def test_inputs_left_empty_never_override_mlcd_yaml(path):
    """An input that reaches `mlcd` as an MLCD_<OPTION> variable defaults to "" (or []):
    left alone, the option comes from mlcd.yaml, else the CLI default (issue 13: the
    pipeline's `deploy-target: docker` used to override `deploy.target: local`)."""
    spec, body = split(path)
    job = yaml.safe_load(body)
    for name, decl in spec["spec"]["inputs"].items():
        default = decl.get("default")
        if name in TEMPLATE_OWNED or default in ("", [], None):
            continue
        if path == PIPELINE:  # the pipeline passes inputs on; only option-like ones matter
            assert name not in ("deploy-target", "source", "name", "tracking-uri",
                                "dvc-remote"), (name, default)
            continue
        variables = next(iter(job.values())).get("variables", {})
        mapped = [k for k, v in variables.items() if f"inputs.{name} ]]" in str(v)]
        options = [k for k in mapped if not k.startswith(("MLCD_SETUP_", "MLCD_IN_"))
                   and k not in ("MLCD_RETRAIN_DISPATCH", "MLCD_REPORT_COMMENT",
                                 "MLCD_SKIP_FOR_LOCAL_TARGET", "MLCD_MAIN_SNAPSHOT_IN")]
        assert not options, f"{path.name}: input {name} defaults to {default!r} -> {options}"


def test_report_job_exposes_the_summary_and_fails_on_a_failed_gate():
    _, body = split(JOBS / "report.yml")
    job = yaml.safe_load(body)["$[[ inputs.job-name ]]"]
    assert job["artifacts"]["expose_as"] == "mlcd report"
    assert job["artifacts"]["paths"][0] == "$[[ inputs.report-dir ]]/summary.md"
    incs = {i["inputs"].get("job-name", Path(i["local"]).stem): i for i in pipeline_includes()}
    assert incs["report"]["inputs"]["fail-on-failed-stage"] == "true"
    assert incs["build-app"]["inputs"]["skip-for-local-target"] is True


@pytest.mark.parametrize("path", sorted(JOBS.glob("*.yml")), ids=lambda p: p.stem)
def test_inputs_reach_scripts_only_through_variables(path):
    """No ``$[[ inputs.x ]]`` in a shell line: a value with quotes or `;` cannot inject."""
    _, body = split(path)
    job = yaml.safe_load(body)["$[[ inputs.job-name ]]"]
    for key in ("before_script", "script", "after_script"):
        for line in job.get(key, []):
            assert "$[[" not in line, f"{path.name} {key}: {line}"
    for name in job["variables"]:
        assert name.startswith(("MLCD_", "GIT_")), name


def test_pipeline_passes_only_inputs_the_job_templates_declare():
    """GitLab rejects unknown inputs (gitlab-ci-local does not), and a missing required one."""
    names = []
    for inc in pipeline_includes():
        path = REPO / inc["local"].lstrip("/")
        assert path.is_file(), inc["local"]
        spec, _ = split(path)
        declared = spec["spec"]["inputs"]
        given = inc.get("inputs") or {}
        unknown = set(given) - set(declared)
        assert not unknown, f"{path.name}: unknown inputs {sorted(unknown)}"
        required = {n for n, d in declared.items() if "default" not in d}
        assert required <= set(given), f"{path.name}: missing {sorted(required - set(given))}"
        names.append(given.get("job-name", declared["job-name"]["default"]))
    assert len(names) == len(set(names)), names
    needs = {n: inc["inputs"].get("needs", []) for n, inc in zip(names, pipeline_includes(), strict=True)}
    for job, wanted in needs.items():
        for need in wanted:
            target = need["job"] if isinstance(need, dict) else need
            assert target in names, f"{job} needs unknown job {target}"


def test_production_is_manual_unless_continuous_deployment():
    incs = {i["inputs"].get("job-name"): i for i in pipeline_includes()}
    prod = incs["mlcd-deploy-production"]
    rules = prod["inputs"]["rules"]
    assert rules[-1] == {"when": "manual"}
    assert rules[-2] == {"if": '"false" == "true"', "when": "on_success"}
    spec, body = split(JOBS / "deploy.yml")
    job = yaml.safe_load(body)["$[[ inputs.job-name ]]"]
    assert job["environment"]["name"] == "$[[ inputs.environment ]]"
    assert prod["inputs"]["environment"] == "production"
    rollback = incs["mlcd-rollback-production"]["inputs"]["rules"]
    assert rollback[-1]["when"] == "on_failure"


def test_component_layout_for_the_catalog(tmp_path):
    """publish_component.py writes templates/<name>.yml with nested includes that resolve
    inside the component project, and a release job for the catalog."""
    dest = tmp_path / "components"
    proc = subprocess.run([sys.executable, str(GITLAB / "publish_component.py"), str(dest)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    names = {p.stem for p in (dest / "templates").glob("*.yml")}
    assert names == STAGES | {"pipeline"}
    spec, body = split(dest / "templates" / "pipeline.yml")
    assert spec == split(PIPELINE)[0]
    includes = yaml.safe_load(body)["include"]
    for inc in includes:
        assert inc["local"].startswith("/templates/"), inc["local"]
        assert (dest / inc["local"].lstrip("/")).is_file(), inc["local"]
    for stage in STAGES:
        assert (dest / "templates" / f"{stage}.yml").read_text() == \
            (JOBS / f"{stage}.yml").read_text()
    ci = yaml.safe_load((dest / ".gitlab-ci.yml").read_text())
    assert ci["create-release"]["release"]["tag_name"] == "$CI_COMMIT_TAG"
    assert (dest / "README.md").read_text() == (GITLAB / "README.md").read_text()
    check = subprocess.run([sys.executable, "check_components.py"], cwd=dest,
                           capture_output=True, text=True, timeout=300,
                           env={**os.environ, "PATH": f"{CHECK_JSONSCHEMA.parent}{os.pathsep}"
                                                      f"{os.environ.get('PATH', '')}"})
    assert check.returncode == 0, check.stdout + check.stderr


@pytest.mark.parametrize("value, expected", [
    ('list:["accuracy>=0.8", "roc_auc>=0.85"]', ["accuracy>=0.8", "roc_auc>=0.85"]),  # GitLab
    ("list:accuracy>=0.8,roc_auc>=0.85", ["accuracy>=0.8", "roc_auc>=0.85"]),  # gitlab-ci-local
    ('list:["sex; rm -rf /", "a\\"b"]', ["sex; rm -rf /", 'a"b']),
    ("list:[]", []),
    ("list:", []),
])
def test_array_inputs_become_one_option_value_per_line(value, expected):
    """Array inputs reach a job as text (GitLab writes JSON, gitlab-ci-local `a,b`); the
    job's mlcd_list turns either into the newline-separated MLCD_<OPTION> value."""
    _, body = split(JOBS / "evaluate.yml")
    script = yaml.safe_load(body)["$[[ inputs.job-name ]]"]["script"][0]
    shell = script + '\nprintf "%s" "$MLCD_THRESHOLD"\n'
    out = subprocess.run(["bash", "-c", shell], env={**os.environ, "MLCD_IN_THRESHOLD": value,
                                                     "MLCD_IN_MAX_DROP": ""},
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert (out.stdout.split("\n") if out.stdout else []) == expected


def test_vendored_templates_pass_a_strict_ruff():
    """A repository that vendors action-templates/gitlab/ runs its own build-training checks
    over it: the one Python file must not fail them (issue 13: EXE001, FURB167), even under
    ruff's every-rule set (docstring, annotation and copyright rules aside)."""
    ruff = Path(sys.executable).parent / "ruff"
    proc = subprocess.run([str(ruff), "check", "--isolated", "--select", "ALL", "--ignore",
                           "D,ANN,T201,CPY001,INP001,COM812,ISC001", "--output-format",
                           "concise", *map(str, GITLAB.rglob("*.py"))],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("stage", ["validate", "check-data", "monitor", "predict"])
def test_spark_stages_expose_the_engine_and_the_master(stage):
    """Issue 16: the jobs of the stages that run on Spark take ``engine`` (the CLI's
    choices, "" = mlcd.yaml) and ``spark-master``, as the variables the CLI reads."""
    from mlcd_actions.cli import cli

    spec, body = split(JOBS / f"{stage}.yml")
    inputs = spec["spec"]["inputs"]
    variables = yaml.safe_load(body)["$[[ inputs.job-name ]]"]["variables"]
    params = {p.name: p for p in cli.get_command(None, stage).params}
    assert inputs["engine"]["options"] == ["", *params["engine"].type.choices]
    for name, param in (("engine", "engine"), ("spark-master", "spark_master")):
        assert inputs[name]["default"] == ""
        assert variables[params[param].envvar] == f"$[[ inputs.{name} ]]", (stage, name)
