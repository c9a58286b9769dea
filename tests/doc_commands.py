"""Run the shell blocks the docs show, exactly as written.

A block is a fenced ``bash`` block directly after an HTML comment ``<!-- test: NAME -->``
in a Markdown file; the tests run all blocks of one NAME, in order, as one ``bash -e``
script, so what a reader copies is what the tests ran.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

_BLOCK = re.compile(r"<!-- test: (?P<name>[\w-]+) -->\s*\n```bash\n(?P<body>.*?)\n```", re.S)


def blocks(doc: Path, name: str) -> list[str]:
    found = [m["body"] for m in _BLOCK.finditer(doc.read_text(encoding="utf-8"))
             if m["name"] == name]
    assert found, f"{doc}: no ```bash block marked <!-- test: {name} -->"
    return found


def run(doc: Path, names: str | list[str], cwd: Path, env: dict[str, str],
        timeout: float) -> subprocess.CompletedProcess:
    """The blocks of ``names`` (one name, or several in the order a reader follows them)."""
    names = [names] if isinstance(names, str) else names
    script = "set -euo pipefail\n" + "\n".join(b for n in names for b in blocks(doc, n)) + "\n"
    return subprocess.run(["bash", "-c", script], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout, stdin=subprocess.DEVNULL)
