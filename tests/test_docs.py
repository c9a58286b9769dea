"""The docs: CLI pages generated from the CLI (committed copies must match), and the
mkdocs site builds in strict mode (every link resolves)."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _gen():
    spec = importlib.util.spec_from_file_location("gen_cli_docs", ROOT / "docs/gen_cli_docs.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_committed_cli_pages_equal_the_generated_ones(tmp_path):
    # generated in a fresh interpreter: other tests load and change click commands in-process
    code = ("import importlib.util, json, sys\n"
            f"spec = importlib.util.spec_from_file_location('g', {str(ROOT / 'docs/gen_cli_docs.py')!r})\n"
            "mod = importlib.util.module_from_spec(spec); spec.loader.exec_module(mod)\n"
            "json.dump({str(p): t for p, t in mod.pages().items()}, sys.stdout)\n")
    import json
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLCD_", "COLUMNS"))}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=ROOT, env=env, timeout=120, check=True)
    pages = {Path(p): t for p, t in json.loads(out.stdout).items()}
    stale = [str(p.relative_to(ROOT)) for p, text in pages.items()
             if not p.is_file() or p.read_text(encoding="utf-8") != text]
    assert not stale, f"regenerate with `python docs/gen_cli_docs.py`: {stale}"


def test_every_command_and_config_key_is_documented():
    from mlcd_actions.core.options import NOT_CONFIG_KEYS

    gen = _gen()
    pages = gen.pages()
    config = pages[ROOT / "docs/configuration.md"]
    assert "Sentinel" not in config and "`from-`" not in config and "`config-file`" not in config
    for path, cmd in gen._commands():
        page = pages[ROOT / "docs/cli" / f"{path.replace(' ', '-')}.md"]
        for p in cmd.params:
            if p.name == "help":
                continue
            key = gen._key(p)
            if p.name in NOT_CONFIG_KEYS:  # command line only: on its page, not a config key
                assert " ".join(p.opts) in page, (path, key)
                continue
            assert f"`{key}`" in page and f"`{key}`" in config, (path, key)


@pytest.mark.skipif(shutil.which("mkdocs") is None and
                    importlib.util.find_spec("mkdocs") is None, reason="mkdocs not installed")
def test_mkdocs_build_strict(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-q",
                           "-f", str(ROOT / "mkdocs.yml"), "-d", str(tmp_path / "site")],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (tmp_path / "site" / "cli" / "run" / "index.html").is_file()
