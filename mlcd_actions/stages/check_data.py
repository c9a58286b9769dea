"""``mlcd check-data``: data bias (group sizes, label-rate gaps) and compliance (PII scan
against a per-column policy and the HIPAA / PCI / GDPR rule sets).

Gates (exit 1 when one fails): every ``--threshold`` / ``--min-group-size`` on the bias
metrics (:mod:`mlcd_actions.data.bias`), and the policy: a column marked ``forbid`` holding PII,
a ``must-be-hashed`` column holding a value that is not a hash, or a kind forbidden by a
rule set found in a column the policy does not allow. Every value quoted anywhere is
masked (:func:`mlcd_actions.data.pii.mask`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from mlcd_actions.core.errors import ConfigError, DataError
from mlcd_actions.core.gates import FAILED, PASSED, Threshold, parse_thresholds
from mlcd_actions.core.results import (
    SEV_ERROR,
    SEV_NOTICE,
    SEV_WARNING,
    Finding,
    StageResult,
    Table,
)
from mlcd_actions.data import bias, pii

STAGE = "check-data"
log = logging.getLogger("mlcd")


MAX_GROUP_ROWS = 100


def _safe_group(value):
    """A group label is data too: one that holds PII is shown masked."""
    return pii.mask_value(value) if isinstance(value, str) and pii.find_all(value) else value


def _rows_text(rows: list[int], count: int) -> str:
    shown = ", ".join(str(r + 1) for r in rows)
    more = f" and {count - len(rows)} more" if count > len(rows) else ""
    return f"row{'s' if count > 1 else ''} {shown}{more}"


def _zero_gate(metric: str, value: float, why: str):
    row = Threshold(metric, "==", 0.0, f"{metric}==0").check(value, metric=metric)
    row.message = f"{row.message}: {why}" if row.verdict == FAILED else row.message
    return row


class _PandasData:
    """The data as one pandas frame (the default engine)."""

    engine = "pandas"

    def __init__(self, df) -> None:
        self.df = df
        self.columns = list(df.columns)
        self.rows = len(df)

    def scan(self, hashed: list[str], on_progress=None):
        return (pii.scan_frame(self.df, on_progress=on_progress),
                {c: pii.unhashed(self.df[c]) for c in hashed})

    def feature_bias(self, feature: str, label: str | None, positive: Any = None):
        return bias.feature_bias(self.df, feature, label, positive)


def run(data: str, *, label: str | None = None, sensitive: Iterable[str] = (),
        pii_policy: str | None = None, rules: Iterable[str] = (),
        thresholds: Iterable[str] = (), min_group_size: int | None = None,
        positive_label: str | None = None, scan_pii: bool = True, engine: str = "pandas",
        spark: Any = None) -> StageResult:
    """Bias and PII checks of ``data``; ``engine="spark"`` runs them as Spark jobs
    (:mod:`mlcd_actions.data.spark.checks`; ``spark``: its session settings)."""
    from mlcd_actions.core.engines import check_engine
    from mlcd_actions.data.tables import read_table

    sensitive = [s for s in sensitive if s]
    rules = [r for r in rules if r]
    gate_specs = parse_thresholds(thresholds)
    if min_group_size is not None:
        if min_group_size < 1:
            raise ConfigError(f"--min-group-size {min_group_size}: must be at least 1")
        gate_specs.append(Threshold("min_group_size", ">=", float(min_group_size),
                                    f"min_group_size>={min_group_size}"))
    if gate_specs and not sensitive:
        raise ConfigError("--threshold/--min-group-size need at least one --sensitive feature")
    policy = pii.load_policy(pii_policy, rules) if scan_pii else pii.Policy()
    if check_engine(engine) == "spark":
        from mlcd_actions.data.spark.checks import SparkData

        with SparkData.start(data, spark) as frame:
            return _run(frame, data, label, sensitive, policy, gate_specs, positive_label,
                        scan_pii)
    return _run(_PandasData(read_table(data)), data, label, sensitive, policy, gate_specs,
                positive_label, scan_pii)


def _run(df, data: str, label: str | None, sensitive: list[str], policy: pii.Policy,
         gate_specs: list[Threshold], positive_label: str | None, scan_pii: bool) -> StageResult:
    from mlcd_actions.core.progress import Progress
    from mlcd_actions.data.tables import require_columns

    if df.rows == 0:
        raise DataError(f"{data}: dataset is empty (0 rows)")
    require_columns(df, [label], data, role="label column")
    require_columns(df, sensitive, data, role="sensitive feature")
    result = StageResult(STAGE)
    for rule in policy.columns:
        if not rule.is_glob and rule.pattern not in df.columns:
            # a column the user dropped (e.g. personal data removed in prepare): nothing
            # left to check, which is what the rule wanted; noted, never fatal
            result.findings.append(Finding(
                f"{rule.where}: policy column {rule.pattern!r} is not in {data} (dropped?); "
                "its rule has nothing to check (a typo? columns: "
                f"{', '.join(map(str, list(df.columns)[:20]))})", SEV_WARNING,
                column=rule.pattern, code="pii.policy-column-absent"))
    result.details["engine"] = df.engine
    result.metrics["rows"] = int(df.rows)
    result.metrics["columns"] = len(df.columns)

    # ------------------------------------------------------------------ compliance
    pii_gates, pii_findings = [], 0
    if scan_pii:
        hashed = [c for c in map(str, df.columns) if (rule := policy.rule_for(c)) is not None
                  and rule.action == pii.HASHED_ACTION]
        with Progress("PII scan", unit="bytes") as bar:
            scan, unhashed = df.scan(hashed, on_progress=bar.update)
        mb = scan.bytes_scanned / 1e6
        result.metrics["pii_bytes_scanned"] = scan.bytes_scanned
        result.metrics["pii_scan_mb_per_s"] = round(mb / scan.seconds, 1) if scan.seconds else None
        pii_gates, pii_findings = _apply_policy(df.columns, scan, policy, result, unhashed)
        result.outputs["pii-columns"] = ",".join(sorted({h.column for h in scan.hits}))
    result.outputs["pii-findings"] = pii_findings

    # ------------------------------------------------------------------ bias
    bias_gates = []
    if sensitive:
        if label is None:
            result.warnings.append("no --label: group sizes only, no label-rate gaps")
        features = [df.feature_bias(s, label, positive_label) for s in sensitive]
        metrics = bias.combine(features)
        result.metrics.update({k: v for k, v in metrics.items()})
        for fb in features:
            columns = list(fb.groups[0].keys()) if fb.groups else ["group", "size"]
            rows = [[_safe_group(r.get(c)) if c == "group" else r.get(c) for c in columns]
                    for r in fb.groups[:MAX_GROUP_ROWS]]
            note = fb.note
            if len(fb.groups) > MAX_GROUP_ROWS:
                note = ((note + "; ") if note else "") + (
                    f"first {MAX_GROUP_ROWS} of {len(fb.groups)} groups shown")
            result.tables.append(Table(f"groups of {fb.feature}", columns, rows, note=note))
            if len(fb.groups) < 2:
                result.warnings.append(f"sensitive feature {fb.feature!r} has a single group; "
                                       "gaps between groups are 0 by definition")
        bias_gates = _bias_gates(metrics, gate_specs, features)

    result.gates = pii_gates + bias_gates
    violations = sum(1 for g in result.gates if g.verdict == FAILED)
    result.outputs["violations"] = violations
    no_gate = not result.gates
    if no_gate:
        result.warnings.append(
            "no gate configured: nothing here can fail. Add --pii-policy or --rules "
            "hipaa|pci|gdpr for compliance, --threshold/--min-group-size for bias")
    result.fail_unless_gates_pass()
    if result.status == PASSED:
        parts = [f"{df.rows} rows"]
        if scan_pii:
            parts.append(f"{pii_findings} PII finding{'s' * (pii_findings != 1)}")
        if sensitive:
            parts.append(f"{len(sensitive)} sensitive feature{'s' * (len(sensitive) != 1)}")
        checked = f"{len(result.gates)} gate{'s' * (len(result.gates) != 1)} passed"
        result.reason = ", ".join(parts) + ("; no gate configured" if no_gate else f"; {checked}")
    else:
        result.reason = f"{violations} violation{'s' * (violations != 1)}: {result.reason}"
    return result


def _bias_gates(metrics: dict[str, Any], specs: list[Threshold],
                features: list | None = None):
    known = {k: v for k, v in metrics.items() if not k.endswith("groups")}
    rows = []
    for t in specs:
        if t.metric not in known:
            raise ConfigError(f"--threshold {t.spec!r}: unknown metric {t.metric!r}; known: "
                              f"{', '.join(sorted(known))}")
        row = t.check(known[t.metric])
        if row.verdict == FAILED:
            where = _worst_where(features or [], t.metric, known[t.metric])
            if where:
                row.message = f"{row.message} ({where})"
        rows.append(row)
    return rows


def _worst_where(features: list, metric: str, value: Any) -> str:
    """Which feature (and group) gave the failing worst value: ``feature 'sex', group 'x'``."""
    name = metric.split(":")[-1]
    if ":" in metric:
        picks = [fb for fb in features if fb.feature == metric.split(":")[0]]
    else:
        picks = [fb for fb in features if fb.metrics.get(name) == value]
    if not picks:
        return ""
    fb = picks[0]
    where = f"feature {fb.feature!r}"
    if name == "min_group_size" and fb.groups:
        small = min(fb.groups, key=lambda g: g["size"])
        where += f", group {_safe_group(small['group'])!r} has {small['size']} rows"
    return where


def _apply_policy(columns, scan: pii.ScanResult, policy: pii.Policy, result: StageResult,
                  unhashed: dict[str, tuple[int, list[int], list[str]]]):
    """Findings, a findings table and the policy gates; returns (gates, finding count)."""
    gates = []
    table_rows = []
    forbidden_totals: dict[str, int] = {k: 0 for k in policy.forbid}
    column_forbidden: dict[str, int] = {}
    for hit in scan.hits:
        rule = policy.rule_for(hit.column)
        if rule is not None and rule.action == pii.HASHED_ACTION:
            verdict, severity, why = ("checked as must-be-hashed", SEV_NOTICE,
                                     f"column must be hashed ({rule.where})")
        elif rule is not None and rule.covers(hit.kind):
            if rule.action == pii.ALLOW:
                verdict, severity, why = "allowed", SEV_NOTICE, f"allowed by {rule.where}"
            else:
                verdict, severity, why = "forbidden", SEV_ERROR, f"forbidden by {rule.where}"
                column_forbidden[hit.column] = column_forbidden.get(hit.column, 0) + hit.count
        elif hit.kind in policy.forbid:
            sources = "+".join(policy.forbid[hit.kind])
            verdict, severity, why = "forbidden", SEV_ERROR, f"forbidden by {sources}"
            forbidden_totals[hit.kind] += hit.count
        else:
            verdict, severity, why = "reported", SEV_WARNING, "no policy rule covers it"
        title = pii.KIND_TITLES[hit.kind]
        examples = ", ".join(hit.examples)
        how = " (column name suggests it)" if hit.by_name else ""
        message = (f"column {hit.column!r}: {hit.count} of {hit.non_null} values hold "
                   f"{'an' if title[0] in 'aeiouIE' else 'a'} {title}{how} "
                   f"({_rows_text(hit.rows, hit.count)}; e.g. {examples}) — {why}")
        result.findings.append(Finding(message, severity=severity, title=f"PII: {title}",
                                       column=hit.column, code=f"pii.{hit.kind}",
                                       count=hit.count, rows=[r + 1 for r in hit.rows]))
        table_rows.append([hit.column, hit.kind, hit.count, f"{hit.share:.1%}", examples,
                           ", ".join(str(r + 1) for r in hit.rows), verdict])
    result.tables.append(Table("PII findings (values masked)",
                               ["column", "kind", "values", "share", "examples", "rows",
                                "verdict"], table_rows,
                               note=f"{len(scan.columns)} columns scanned, "
                                    f"{scan.bytes_scanned / 1e6:.1f} MB, full data (no "
                                    "sampling); rows count data rows from 1"))

    for rule in policy.columns:
        cols = [c for c in map(str, columns)
                if policy.rule_for(c) is rule]
        for col in cols:
            if rule.action == pii.HASHED_ACTION:
                count, rows, examples = unhashed[col]
                gates.append(_zero_gate(f"{col}:unhashed_values", count,
                                        f"column must be hashed ({rule.where})"))
                if count:
                    result.findings.append(Finding(
                        f"column {col!r}: {count} values are not hashed "
                        f"({_rows_text(rows, count)}; e.g. {', '.join(examples)}) — "
                        f"must-be-hashed by {rule.where}", severity=SEV_ERROR,
                        title="PII: value not hashed", column=col, code="pii.unhashed",
                        count=count, rows=[r + 1 for r in rows]))
            elif rule.action == pii.FORBID:
                gates.append(_zero_gate(f"{col}:forbidden_pii", column_forbidden.get(col, 0),
                                        f"no PII allowed ({rule.where})"))
    for kind, sources in policy.forbid.items():
        gates.append(_zero_gate(f"{'+'.join(sources)}:{kind}", forbidden_totals[kind],
                                f"{pii.KIND_TITLES[kind]} forbidden outside allowed columns"))
    result.details["pii_policy"] = {
        "sources": policy.sources,
        "columns": [{"column": r.pattern, "action": r.action, "kinds": r.kinds}
                    for r in policy.columns],
        "forbid": policy.forbid,
    }
    log.info("check-data: %d PII findings in %d columns (%.1f MB in %.2fs)", len(scan.hits),
             len({h.column for h in scan.hits}), scan.bytes_scanned / 1e6, scan.seconds)
    return gates, len(scan.hits)

