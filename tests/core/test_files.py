import pytest

from mlcd_actions.core.files import atomic_dir, atomic_path, sha256_file, write_json, write_text


@pytest.fixture
def base(tmp_path):
    path = tmp_path / "files"
    path.mkdir()
    return path


def test_atomic_path_leaves_old_file_on_failure(base):
    target = base / "out.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("boom")
    assert target.read_text() == "old"
    assert [p.name for p in base.iterdir()] == ["out.txt"]


def test_atomic_dir_swaps_whole_and_keeps_other_files(base):
    target = base / "d"
    target.mkdir()
    (target / "a.txt").write_text("old a")
    (target / "keep.txt").write_text("keep")
    with atomic_dir(target) as tmp:
        (tmp / "a.txt").write_text("new a")
        (tmp / "b.txt").write_text("new b")
    assert (target / "a.txt").read_text() == "new a"
    assert (target / "b.txt").read_text() == "new b"
    assert (target / "keep.txt").read_text() == "keep"
    assert sorted(p.name for p in base.iterdir()) == ["d"]


def test_atomic_dir_failure_keeps_old_content(base):
    target = base / "d"
    target.mkdir()
    (target / "a.txt").write_text("old a")
    with pytest.raises(ValueError), atomic_dir(target) as tmp:
        (tmp / "a.txt").write_text("new a")
        raise ValueError("fail")
    assert (target / "a.txt").read_text() == "old a"
    assert sorted(p.name for p in base.iterdir()) == ["d"]


def test_write_json_and_sha(base):
    import numpy as np

    p = write_json(base / "x.json", {"a": np.int64(3), "b": np.float32(0.5)})
    assert p.read_text() == '{\n  "a": 3,\n  "b": 0.5\n}\n'
    q = write_text(base / "y.txt", "abc")
    assert sha256_file(q) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


@pytest.mark.parametrize("where", [".", "..", "/", "./"])
def test_atomic_dir_refuses_cwd_and_its_ancestors(where):
    from pathlib import Path

    from mlcd_actions.core.errors import ConfigError

    Path("mine.txt").write_text("precious")
    with pytest.raises(ConfigError, match="subdirectory"), atomic_dir(where) as tmp:
        (tmp / "x").write_text("never")
    assert Path("mine.txt").read_text() == "precious"
    assert sorted(p.name for p in Path(".").iterdir()) == ["mine.txt"]


def test_atomic_dir_failed_swap_moves_files_back(base, monkeypatch):
    import mlcd_actions.core.files as fsutil

    target = base / "d"
    target.mkdir()
    (target / "keep.txt").write_text("keep")
    (target / "a.txt").write_text("old a")
    real = fsutil._rename

    def failing(src, dst):
        if dst == target and src.name.endswith(".tmp"):
            raise OSError("disk on fire")
        real(src, dst)

    monkeypatch.setattr(fsutil, "_rename", failing)
    with pytest.raises(OSError, match="disk on fire"), atomic_dir(target) as tmp:
        (tmp / "a.txt").write_text("new a")
    assert (target / "keep.txt").read_text() == "keep"
    assert (target / "a.txt").read_text() == "old a"
    assert sorted(p.name for p in base.iterdir()) == ["d"]


def test_atomic_dir_failure_while_merging_moves_files_back(base, monkeypatch):
    import mlcd_actions.core.files as fsutil

    target = base / "d"
    target.mkdir()
    for name in ("k1.txt", "k2.txt", "k3.txt"):
        (target / name).write_text(name)
    real = fsutil._rename
    calls = []

    def failing(src, dst):
        calls.append(src)
        if len(calls) == 2:
            raise OSError("cannot move")
        real(src, dst)

    monkeypatch.setattr(fsutil, "_rename", failing)
    with pytest.raises(OSError, match="cannot move"), atomic_dir(target) as tmp:
        (tmp / "new.txt").write_text("new")
    assert sorted(p.name for p in target.iterdir()) == ["k1.txt", "k2.txt", "k3.txt"]
    assert all((target / n).read_text() == n for n in ("k1.txt", "k2.txt", "k3.txt"))
    assert sorted(p.name for p in base.iterdir()) == ["d"]


@pytest.mark.parametrize("stage", ["ingest", "prepare"])
def test_out_dot_is_refused_and_nothing_is_lost(mlcd, stage):
    from pathlib import Path

    Path("src.csv").write_text("a,label\n1,0\n2,1\n3,0\n4,1\n5,0\n6,1\n7,0\n8,1\n")
    Path("notes.txt").write_text("mine")
    args = ["ingest", "src.csv", "--out", "."] if stage == "ingest" else \
        ["prepare", "src.csv", "--label", "label", "--out", "."]
    r = mlcd(*args)
    assert r.exit_code == 2, r
    assert "current directory" in r.verdict and "subdirectory" in r.verdict
    assert Path("notes.txt").read_text() == "mine"
    assert Path("src.csv").read_text().startswith("a,label\n")
    assert not [p for p in Path(".").iterdir() if p.name.endswith(".tmp")]


def test_outputs_honour_the_umask_and_private_files_stay_private(tmp_path):
    import stat

    from mlcd_actions.core import files as fsutil

    mode = lambda p: stat.S_IMODE(p.stat().st_mode)  # noqa: E731
    mask = fsutil.umask()
    out = write_text(tmp_path / "report.md", "x")
    assert mode(out) == 0o666 & ~mask  # 0644 under the usual 022, not mkstemp's 0600
    with atomic_dir(tmp_path / "snap") as tmp:
        (tmp / "data.parquet").write_bytes(b"x")
    assert mode(tmp_path / "snap") == 0o777 & ~mask  # not mkdtemp's 0700
    secret = write_text(tmp_path / "token", "s3cret", private=True)
    assert mode(secret) == 0o600
