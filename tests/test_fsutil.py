import pytest

from mlcd_actions.fsutil import atomic_dir, atomic_path, sha256_file, write_json, write_text


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
