"""Secrets are never printed.

Values that reach mlcd through ``${VAR}`` interpolation in ``mlcd.yaml`` (and any
value a stage marks with :func:`register`) are replaced by ``***`` in every line the
CLI prints, every report and every log record. On GitHub Actions each one is also
announced with ``::add-mask::`` so the runner hides it from its own log.
"""

from __future__ import annotations

import os
import re
import sys

_SECRETS: set[str] = set()
_MIN_LEN = 4  # masking "1" or "on" would shred every message
_URL_PASSWORD = re.compile(r"(?P<scheme>[a-zA-Z][\w+.-]*://)(?P<user>[^:/@\s]+):(?P<pw>[^@/\s]+)@")


def register(value: str | None) -> None:
    if value is None:
        return
    value = str(value)
    if len(value) < _MIN_LEN or value in _SECRETS:
        return
    _SECRETS.add(value)
    if os.environ.get("GITHUB_ACTIONS") == "true":
        sys.stdout.write(f"::add-mask::{value}\n")


def mask(text: str) -> str:
    """Replace every registered secret and any password in a URL by ``***``."""
    if not text:
        return text
    for secret in sorted(_SECRETS, key=len, reverse=True):
        text = text.replace(secret, "***")
    return _URL_PASSWORD.sub(lambda m: f"{m['scheme']}{m['user']}:***@", text)


def clear() -> None:
    """Forget every secret (tests)."""
    _SECRETS.clear()
