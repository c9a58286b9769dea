"""StageResult: what every stage returns, and what reports, CI emitters and the CLI read.

Statuses and field names are stable strings so saved reports survive refactors.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from mlcd_actions.core.gates import FAILED, GateRow

PASSED = "passed"
SKIPPED = "skipped"
ERROR = "error"          # the stage could not run (bad input, service down); exit 2 or 3
STATUSES = (PASSED, FAILED, SKIPPED, ERROR)

# finding severities
SEV_ERROR = "error"
SEV_WARNING = "warning"
SEV_NOTICE = "notice"


@dataclass
class Finding:
    """Something a stage wants a person to see; becomes an annotation on GitHub.

    ``message`` must already be masked when it quotes data.
    """

    message: str
    severity: str = SEV_ERROR
    title: str | None = None
    file: str | None = None
    line: int | None = None
    column: str | None = None   # a data column, not a text column
    code: str | None = None     # stable id of the kind of finding, e.g. "pii.email"
    count: int | None = None
    rows: list[int] | None = None  # sample row indices

    def to_dict(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if v is not None}

    @classmethod
    def from_dict(cls, data: dict) -> Finding:
        return cls(**{k: data.get(k) for k in cls.__dataclass_fields__})


@dataclass
class Table:
    """A table for the markdown report (and the JSON report, as records)."""

    title: str
    columns: list[str]
    rows: list[list[Any]]
    note: str | None = None

    def to_dict(self) -> dict:
        return {"title": self.title, "columns": self.columns, "rows": self.rows,
                **({"note": self.note} if self.note else {})}

    @classmethod
    def from_dict(cls, data: dict) -> Table:
        return cls(data["title"], list(data["columns"]), [list(r) for r in data["rows"]],
                   data.get("note"))


@dataclass
class StageResult:
    """The outcome of one stage.

    * ``status``: passed | failed | skipped | error
    * ``reason``: one line, shown in the verdict ``mlcd <stage>: <status> — <reason>``
    * ``metrics``: numbers worth tracking
    * ``outputs``: name -> value, kebab-case names (``data-path``); become CI outputs
    * ``gates``: every gate evaluated, explained
    * ``findings``: annotations (errors, warnings, notices)
    * ``artifacts``: files the stage wrote (paths)
    * ``tables``: detail for the markdown report
    * ``details``: anything else worth keeping in the JSON report
    * ``markdown``: extra markdown sections (e.g. a Mermaid chart)
    """

    stage: str
    status: str = PASSED
    reason: str = ""
    metrics: dict[str, Any] = field(default_factory=dict)
    outputs: dict[str, Any] = field(default_factory=dict)
    gates: list[GateRow] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    artifacts: list[str] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    markdown: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    exit_code: int | None = None
    lineage: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"unknown status {self.status!r}")

    @property
    def passed(self) -> bool:
        return self.status in (PASSED, SKIPPED)

    def code(self) -> int:
        """The process exit code for this result."""
        if self.exit_code is not None:
            return self.exit_code
        return 0 if self.passed else 1

    def verdict(self) -> str:
        word = FAILED if self.status in (FAILED, ERROR) else self.status
        reason = " ".join((self.reason or "").split())
        return f"mlcd {self.stage}: {word} — {reason}" if reason else f"mlcd {self.stage}: {word}"

    def fail_unless_gates_pass(self, what: str = "gate", *,
                               override: Callable[[StageResult], object] | None = None) -> None:
        """Set status and reason from ``gates``: the first failed gate names the reason.

        ``override`` (``delivery.overrides.honouring(...)``) then gets the result: an
        audited override of this stage's gate for this model version may let it pass."""
        failed = [g for g in self.gates if g.verdict == FAILED]
        if failed:
            self.status = FAILED
            more = f" (+{len(failed) - 1} more)" if len(failed) > 1 else ""
            self.reason = f"{failed[0].message}{more}"
        if override is not None:
            override(self)
