"""Lay the GitLab templates out as a CI/CD component project (for the CI/CD Catalog).

GitLab finds components in a ``templates/`` folder at the root of the component project:
``templates/<name>.yml`` or ``templates/<name>/template.yml``. This script writes that
layout from ``action-templates/gitlab/``:

    DEST/templates/pipeline.yml   the whole pipeline (nested includes: /templates/)
    DEST/templates/<stage>.yml    one component per stage (ingest, train, deploy, ...)
    DEST/README.md                the usage documentation (the catalog shows it)
    DEST/.gitlab-ci.yml           checks the components, releases a tag to the catalog

Usage:  python3 action-templates/gitlab/publish_component.py DEST

Then push DEST to a GitLab project with "CI/CD Catalog project" turned on (Settings >
General) and tag it (``git tag 1.0.0 && git push --tags``); users include
``$CI_SERVER_FQDN/<group>/<project>/pipeline@1.0.0``. Standard library only.
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
JOBS = HERE / "jobs"
REPO_PREFIX = "/action-templates/gitlab/jobs/"
COMPONENT_PREFIX = "/templates/"
INCLUDE = re.compile(
    r"(^\s*-\s*local:\s*)" + re.escape(REPO_PREFIX) + r"([a-z0-9-]+\.yml)\s*$",
    re.MULTILINE,
)

COMPONENT_CI = """\
# The component project's own pipeline: check that every component still parses with
# its defaults, and publish a release (a semantic-version tag) to the CI/CD Catalog.
stages: [test, release]

check-components:
  stage: test
  image: python:3.11-slim
  rules:
    - if: $CI_PIPELINE_SOURCE == "merge_request_event"
    - if: $CI_COMMIT_BRANCH == $CI_DEFAULT_BRANCH
    - if: $CI_COMMIT_TAG
  script:
    - python3 -m pip install --quiet check-jsonschema pyyaml
    - python3 check_components.py

create-release:
  stage: release
  image: registry.gitlab.com/gitlab-org/release-cli:latest
  rules:
    - if: $CI_COMMIT_TAG =~ /^\\d+\\.\\d+\\.\\d+$/
  script:
    - echo "Releasing the mlcd components $CI_COMMIT_TAG to the CI/CD Catalog"
  release:
    tag_name: $CI_COMMIT_TAG
    description: mlcd-actions GitLab CI/CD components $CI_COMMIT_TAG
"""

CHECK_COMPONENTS = '''\
"""Validate every component (header as is, body with its input defaults interpolated)
against check-jsonschema's GitLab CI schema."""
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

WHOLE = re.compile(r"^\\$\\[\\[\\s*inputs\\.([A-Za-z0-9_-]+)\\s*\\]\\]$")
PART = re.compile(r"\\$\\[\\[\\s*inputs\\.([A-Za-z0-9_-]+)\\s*\\]\\]")


def text(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    return json.dumps(v) if isinstance(v, (list, dict)) else str(v)


def interpolate(node, inputs):
    if isinstance(node, dict):
        return {interpolate(k, inputs): interpolate(v, inputs) for k, v in node.items()}
    if isinstance(node, list):
        return [interpolate(v, inputs) for v in node]
    if isinstance(node, str):
        m = WHOLE.match(node)
        if m:
            return inputs[m.group(1)]
        return PART.sub(lambda m: text(inputs[m.group(1)]), node)
    return node


files = []
out = Path(tempfile.mkdtemp())
for path in sorted(Path("templates").glob("*.yml")):
    head, _, body = path.read_text().partition("\\n---\\n")
    spec = yaml.safe_load(head)
    inputs = {n: d.get("default", "x") for n, d in spec["spec"]["inputs"].items()}
    body = interpolate(yaml.safe_load(body), inputs)
    for part, data in (("header", spec), ("body", body)):
        target = out / f"{path.stem}.{part}.yml"
        target.write_text(yaml.safe_dump(data))
        files.append(str(target))
schema = ["--builtin-schema", "vendor.gitlab-ci"]
sys.exit(subprocess.call(["check-jsonschema", *schema, *files]))
'''


def publish(dest: Path) -> list[Path]:
    """Write the component project into ``dest``; returns the component files."""
    templates = dest / "templates"
    if templates.exists():
        shutil.rmtree(templates)
    templates.mkdir(parents=True)
    written = []
    for job in sorted(JOBS.glob("*.yml")):
        target = templates / job.name
        shutil.copyfile(job, target)
        written.append(target)
    pipeline = (HERE / "pipeline.yml").read_text(encoding="utf-8")
    rewritten, count = INCLUDE.subn(
        lambda m: m.group(1) + COMPONENT_PREFIX + m.group(2), pipeline)
    if count == 0 or re.search(r"local:\s*" + re.escape(REPO_PREFIX), rewritten):
        message = "publish_component: an include of pipeline.yml was not rewritten"
        raise SystemExit(message)
    # the comments: where the files are in the component project
    rewritten = rewritten.replace(REPO_PREFIX, COMPONENT_PREFIX).replace(
        "/action-templates/gitlab/pipeline.yml", "/templates/pipeline.yml")
    (templates / "pipeline.yml").write_text(rewritten, encoding="utf-8")
    written.append(templates / "pipeline.yml")
    shutil.copyfile(HERE / "README.md", dest / "README.md")
    (dest / ".gitlab-ci.yml").write_text(COMPONENT_CI, encoding="utf-8")
    (dest / "check_components.py").write_text(CHECK_COMPONENTS, encoding="utf-8")
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dest", type=Path,
                        help="Folder of the component project (created).")
    args = parser.parse_args(argv)
    files = publish(args.dest)
    print(f"publish_component: {len(files)} components in {args.dest / 'templates'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
