"""The source adapter contract kit moved to :mod:`mlcd_actions.testing.sources`.

This old import path keeps working for plugin authors' tests
(``from mlcd_actions.sources.checks import CHECKS``). rewrite_imports: skip
"""

from __future__ import annotations

from mlcd_actions.testing.sources import (
    CHECKS,
    Fixture,
    check_declares_itself,
    check_empty_source_fails,
    check_import_is_light,
    check_missing_source_is_data_error,
    check_reads_rows,
    reference_table,
)

__all__ = ["CHECKS", "Fixture", "check_declares_itself", "check_empty_source_fails",
           "check_import_is_light", "check_missing_source_is_data_error", "check_reads_rows",
           "reference_table"]
