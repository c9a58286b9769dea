"""build_training and versioning as a library: versions, toggles, file selection, wheels."""

from __future__ import annotations

import base64
import hashlib
import zipfile
from pathlib import Path

import pytest

from mlcd_actions.ci import versioning
from mlcd_actions.ci.gitinfo import GitContext
from mlcd_actions.core.errors import ConfigError
from mlcd_actions.stages import build_training as bt

SHA = "abc1234def5678abc1234def5678abc1234def56"


@pytest.mark.parametrize("semver, pep440", [
    ("1.2.3", "1.2.3"),
    ("1.2.3-alpha.5+abc1234", "1.2.3a5+abc1234"),
    ("1.2.3-beta.0+0123456", "1.2.3b0+g0123456"),
    ("1.2.3-beta.0+1234567", "1.2.3b0+1234567"),
    ("0.1.0-alpha.7", "0.1.0a7"),
])
def test_to_pep440(semver, pep440):
    from packaging.version import Version

    assert versioning.to_pep440(semver) == pep440
    assert str(Version(pep440)) == pep440  # already normalised


def test_to_pep440_rejects_other_forms():
    with pytest.raises(ValueError):
        versioning.to_pep440("1.2")


def test_next_patch_and_parse_core():
    assert versioning.next_patch("v1.9.9") == "1.9.10"
    assert versioning.parse_core("2.0.0") == (2, 0, 0)
    for bad in ("1.2", "01.2.3", "1.2.3-rc.1", "v"):
        with pytest.raises(ConfigError, match="expected X.Y.Z"):
            versioning.parse_core(bad)


def test_compute_without_git_uses_ci_context(tmp_path):
    pr = GitContext(sha=SHA, short_sha=SHA[:7], branch="feat", is_pull_request=True,
                    pr_number=4, run_number=31, platform="github")
    info = versioning.compute(pr, tmp_path)
    assert (info.version, info.channel, info.number) == ("0.1.0-alpha.31+abc1234", "alpha", 31)
    main = GitContext(sha=SHA, short_sha=SHA[:7], branch="trunk", default_branch="trunk",
                      run_number=2, platform="gitlab")
    assert versioning.compute(main, tmp_path, base_version="v3.1.0").version == \
        "3.1.0-beta.2+abc1234"
    tag = GitContext(sha=SHA, short_sha=SHA[:7], tag="v2.4.6", run_number=9, platform="github")
    info = versioning.compute(tag, tmp_path, base_version="9.9.9")
    assert (info.version, info.pep440, info.channel) == ("2.4.6", "2.4.6", "release")
    assert "--base-version 9.9.9 ignored" in info.warnings[0]


def test_channel_rules():
    assert versioning.channel_of(GitContext(branch="master")) == "beta"  # default unknown
    assert versioning.channel_of(GitContext(branch="dev", default_branch="main")) == "alpha"
    assert versioning.channel_of(GitContext(tag="nightly")) == "alpha"  # not a release tag
    assert versioning.channel_of(GitContext(tag="1.0.0", branch="main")) == "release"
    assert versioning.channel_of(GitContext(branch="main", is_pull_request=True)) == "alpha"


def test_load_toggles(tmp_path):
    path = tmp_path / "t.yaml"
    path.write_text("channels:\n  alpha: false\n")
    assert bt.load_toggles(path) == {"alpha": False, "beta": True, "release": True}
    path.write_text("")
    assert bt.load_toggles(path) == {"alpha": True, "beta": True, "release": True}
    path.write_text("- a\n")
    with pytest.raises(ConfigError, match="expected a mapping"):
        bt.load_toggles(path)


def test_source_files_nested_gitignore_and_excludes(tmp_path):
    root = tmp_path / "src"
    for rel in ["a.py", "data/x.csv", "pkg/m.py", "pkg/gen/out.bin", "pkg/gen/keep.bin",
                "build/lib.py", "pkg/build/ok.py", "x.egg-info/PKG-INFO", ".venv/y.py",
                "secret.env"]:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(rel)
    (root / ".gitignore").write_text("data/\n*.bin\n")
    (root / "pkg" / "gen" / ".gitignore").write_text("!keep.bin\n")
    files = [rel for rel, _ in bt.SourceFiles(root, extra_excludes=["*.env"]).list()]
    assert files == [".gitignore", "a.py", "pkg/build/ok.py", "pkg/gen/.gitignore",
                     "pkg/gen/keep.bin", "pkg/m.py"]


def test_write_zip_is_byte_identical(tmp_path):
    (tmp_path / "b.txt").write_text("b")
    (tmp_path / "a.txt").write_text("a")
    files = [("b.txt", tmp_path / "b.txt"), ("a.txt", tmp_path / "a.txt"), ("m.json", b"{}")]
    bt.write_zip(files, tmp_path / "one.zip")
    bt.write_zip(list(reversed(files)), tmp_path / "two.zip")
    assert (tmp_path / "one.zip").read_bytes() == (tmp_path / "two.zip").read_bytes()
    with zipfile.ZipFile(tmp_path / "one.zip") as zf:
        assert zf.namelist() == ["a.txt", "b.txt", "m.json"]


def _toy_wheel(path: Path) -> None:
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("toy/__init__.py", "X = 1\n")
        zf.writestr("toy-0.0.0.data/scripts/run", "#!/bin/sh\n")
        zf.writestr("toy-0.0.0.dist-info/METADATA",
                    "Metadata-Version: 2.1\nName: toy\nVersion: 0.0.0\n\nVersion: in body\n")
        zf.writestr("toy-0.0.0.dist-info/WHEEL", "Wheel-Version: 1.0\nTag: py3-none-any\n")
        zf.writestr("toy-0.0.0.dist-info/RECORD", "stale\n")


def test_set_wheel_version(tmp_path):
    src = tmp_path / "toy-0.0.0-py3-none-any.whl"
    _toy_wheel(src)
    out = bt.set_wheel_version(src, "1.2.3a5+abc1234", tmp_path / "out")
    assert out.name == "toy-1.2.3a5+abc1234-py3-none-any.whl"
    with zipfile.ZipFile(out) as zf:
        names = zf.namelist()
        assert names[-1] == "toy-1.2.3a5+abc1234.dist-info/RECORD"
        assert "toy-1.2.3a5+abc1234.data/scripts/run" in names
        meta = zf.read("toy-1.2.3a5+abc1234.dist-info/METADATA").decode()
        assert "Version: 1.2.3a5+abc1234\n" in meta and "Version: in body" in meta
        record = zf.read(names[-1]).decode().splitlines()
        for line in record[:-1]:
            name, digest, size = line.split(",")
            data = zf.read(name)
            expected = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
            assert digest == "sha256=" + expected.decode() and int(size) == len(data)
        assert record[-1] == "toy-1.2.3a5+abc1234.dist-info/RECORD,,"
    again = bt.set_wheel_version(src, "1.2.3a5+abc1234", tmp_path / "again")
    assert again.read_bytes() == out.read_bytes()


def test_plan_checks(tmp_path, monkeypatch):
    (tmp_path / "tests").mkdir()
    checks, warnings = bt.plan_checks(tmp_path, ["train.py"], [])
    assert [c.label for c in checks] == ["ruff check .", "pytest"] and not warnings
    monkeypatch.setattr(bt, "_ruff_executable", lambda: None)
    checks, warnings = bt.plan_checks(tmp_path, ["train.py"], [])
    assert [c.label for c in checks] == ["pytest"]
    assert warnings == ["ruff is not installed: static checks skipped"]
    checks, _ = bt.plan_checks(tmp_path, [], ["make lint", "tox -e py"])
    assert [c.argv for c in checks] == [["make", "lint"], ["tox", "-e", "py"]]
    (tmp_path / "tests").rmdir()
    assert bt.plan_checks(tmp_path, ["README.md"], []) == ([], [])
    checks, _ = bt.plan_checks(tmp_path, ["pkg/model_test.py"], [])
    assert [c.label for c in checks] == ["pytest"]
