"""Errors that know their exit code.

Exit codes are public (DESIGN §3): 0 passed, 1 a gate or the stage failed,
2 usage or configuration error (bad input included), 3 an outside service or
source failed. A stage raises one of these with a single clear line naming the
file, column, row or service. :func:`failure` is the one mapping from an exception to
(exit code, line); the CLI applies it where a stage runs (``cli.common.execute``, which
sends the traceback to the log file only) and around the command line itself
(``cli.main``: config and usage errors before any stage runs).
"""

from __future__ import annotations

EXIT_PASSED = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_SERVICE = 3


class MlcdError(Exception):
    """Base class: one clear line for the user, an exit code for the shell."""

    exit_code = EXIT_FAILED

    def __init__(self, message: str, *, file: str | None = None, line: int | None = None,
                 hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.file = file
        self.line = line
        self.hint = hint

    def one_line(self) -> str:
        text = self.message
        if self.hint:
            text = f"{text} ({self.hint})"
        return " ".join(text.split())


class StageFailed(MlcdError):
    """The stage could not do its work for a reason that is the user's code or data (exit 1)."""

    exit_code = EXIT_FAILED


class GateFailed(MlcdError):
    """A gate failed (exit 1). Stages usually return a failed StageResult instead."""

    exit_code = EXIT_FAILED


class ConfigError(MlcdError):
    """Usage, configuration or bad input (exit 2)."""

    exit_code = EXIT_USAGE


class DataError(ConfigError):
    """An input file is missing, unreadable, malformed or of the wrong shape (exit 2)."""


class ServiceError(MlcdError):
    """An outside service or source failed: unreachable, timed out, refused auth (exit 3)."""

    exit_code = EXIT_SERVICE


def first_line(exc: BaseException) -> str:
    """The first non-blank line of an exception's message (its type name when empty)."""
    for line in str(exc).strip().splitlines():
        if line.strip():
            return line.strip()
    return type(exc).__name__


def failure(exc: BaseException, *, logfile: object = None) -> tuple[int, str]:
    """(exit code, one line) for ``exc``: an :class:`MlcdError` knows its code; anything
    else is an internal error (exit 1) whose line says where the traceback went."""
    if isinstance(exc, MlcdError):
        return exc.exit_code, exc.one_line()
    first = (str(exc).strip().splitlines() or [""])[0]
    where = f"; traceback in {logfile}" if logfile else ""
    return EXIT_FAILED, f"internal error: {type(exc).__name__}: {first}{where}"
