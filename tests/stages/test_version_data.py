"""version_data library: the version id, remote planning, and run() without the CLI."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from mlcd_actions.core.errors import ConfigError, DataError, ServiceError
from mlcd_actions.stages import version_data


def test_combined_version_is_order_independent_and_content_keyed():
    a = [("data/raw", "b47e3488a546e2214c42aa9bec8396e2.dir"), ("y.csv", "591785b7")]
    assert version_data.combined_version(a) == version_data.combined_version(a[::-1])
    expected = hashlib.md5(b"b47e3488a546e2214c42aa9bec8396e2.dir  data/raw\n"
                           b"591785b7  y.csv\n").hexdigest()
    assert version_data.combined_version(a) == expected
    assert version_data.combined_version([("y.csv", "591785b8")]) != \
        version_data.combined_version([("y.csv", "591785b7")])
    # the same content at another path is another dataset version
    assert version_data.combined_version([("z.csv", "591785b7")]) != \
        version_data.combined_version([("y.csv", "591785b7")])


def test_run_library_outputs(tmp_path):
    (tmp_path / "proj").mkdir()
    (tmp_path / "proj" / "a.csv").write_text("a\n1\n")
    result = version_data.run(["a.csv"], remote=str(tmp_path / "remote"), cwd=tmp_path / "proj")
    assert result.status == "passed"
    assert result.outputs["dvc-files"] == ["a.csv.dvc"]
    assert result.lineage == {"data_version": result.outputs["data-version"]}
    assert result.metrics["outputs"] == 1 and result.metrics["pushed"] == 1
    assert result.details["outputs"][0]["path"] == "a.csv"
    assert result.tables[0].rows[0][0] == "a.csv"
    again = version_data.run(["a.csv"], cwd=tmp_path / "proj")
    assert again.outputs["data-version"] == result.outputs["data-version"]
    assert again.metrics["pushed"] == 0


def test_existing_remote_with_same_url_is_reused(tmp_path):
    from dvc.repo import Repo

    proj = tmp_path / "proj"
    proj.mkdir()
    (proj / "a.csv").write_text("a\n1\n")
    store = tmp_path / "store"
    with Repo.init(str(proj), no_scm=True) as repo, repo.config.edit() as conf:
        conf["remote"]["team"] = {"url": str(store)}
    result = version_data.run(["a.csv"], remote=str(store), cwd=proj)
    assert result.details["remote_name"] == "team"
    config = (proj / ".dvc" / "config").read_text()
    assert "remote = team" in config and 'remote "mlcd"' not in config


def test_remote_name_option_and_validation(tmp_path):
    proj = tmp_path / "proj"
    proj.mkdir()
    (proj / "a.csv").write_text("a\n")
    with pytest.raises(ConfigError, match="--remote-name"):
        version_data.run(["a.csv"], remote=str(tmp_path / "s"), remote_name="bad name!",
                         cwd=proj)
    result = version_data.run(["a.csv"], remote=str(tmp_path / "s"), remote_name="Backup",
                              cwd=proj)
    assert result.details["remote_name"] == "backup"


def test_bad_inputs(tmp_path):
    proj = tmp_path / "proj"
    proj.mkdir()
    with pytest.raises(ConfigError, match="at least one PATH"):
        version_data.run([], cwd=proj)
    with pytest.raises(DataError, match="path not found: gone.csv") as info:
        version_data.run(["gone.csv"], cwd=proj)
    assert info.value.file == "gone.csv" and info.value.exit_code == 2
    (tmp_path / "outside.csv").write_text("x\n")
    (proj / "a.csv").write_text("a\n")
    with pytest.raises(DataError, match="outside the DVC repository"):
        version_data.run([str(tmp_path / "outside.csv")], remote="../r", cwd=proj)
    with pytest.raises(ConfigError, match="expected s3://bucket/prefix"):
        version_data.run(["a.csv"], remote="s3://", cwd=proj)
    with pytest.raises(ConfigError, match="--remote is empty"):
        version_data.run(["a.csv"], remote="  ", cwd=proj)
    with pytest.raises(DataError, match="inside .dvc/.git"):
        version_data.run([".dvc/config"], remote="../r", cwd=proj)
    assert not Path(proj / "a.csv.dvc").exists()


def test_password_in_remote_url_is_masked(tmp_path):
    from mlcd_actions.core import secrets

    proj = tmp_path / "proj"
    proj.mkdir()
    (proj / "a.csv").write_text("a\n")
    url = "https://user:sup3rsecret@127.0.0.1:9/dvc"
    with pytest.raises(ServiceError) as info:  # nothing listens on port 9
        version_data.run(["a.csv"], remote=url, cwd=proj)
    assert "cannot push to DVC remote 'mlcd'" in info.value.one_line()
    assert "sup3rsecret" not in secrets.mask(info.value.one_line())
    assert "user:***@127.0.0.1:9" in secrets.mask(info.value.one_line())
