"""pandera schemas for ``mlcd validate`` and ``mlcd schema infer``.

* **Loading** (:func:`load_schema`): a pandera YAML/JSON schema (pandera's own format,
  :mod:`pandera.io`), a Python ``DataFrameModel`` or ``DataFrameSchema`` named as
  ``pkg.module:Name``, ``path/to/schemas.py`` or ``path/to/schemas.py:Name``. The result
  knows the file and line of every column and check (:meth:`LoadedSchema.line_of`), so a
  failure becomes an annotation on the schema line that declared it.
* **Inference** (:func:`infer_schema`, :func:`render_yaml`): pandera's ``infer_schema``
  plus allowed categories for low-cardinality strings, rendered as pandera YAML with
  comments a person can read and edit.
* **Validation** (:func:`validate`): pandera-on-pandas, but one column at a time, read
  column by column from Parquet with pyarrow (the next column is read while the current
  one is checked). Every column check sees the whole column, so failure semantics are
  pandera's (uniqueness and aggregate checks included) and row indices are global,
  while peak memory is about two columns instead of a copy of the whole frame.
  Dataframe-wide checks (schema ``checks:``, multi-column ``unique:``) read the columns
  they need together.

pandas, pyarrow and pandera are imported inside functions (fast ``--help``). The three
parts live in :mod:`.load`, :mod:`.infer` and :mod:`.validate`; this package re-exports
their public names.
"""

from mlcd_actions.data.schemas.infer import (
    ColumnNote,
    Inferred,
    infer_schema,
    render_yaml,
    write_inferred,
)
from mlcd_actions.data.schemas.load import (
    JSON_SUFFIXES,
    PY_SUFFIXES,
    YAML_SUFFIXES,
    LoadedSchema,
    check_key,
    load_schema,
)
from mlcd_actions.data.schemas.validate import (
    MAX_VALUE_CHARS,
    SAMPLE_ROWS,
    ColumnSource,
    FailureGroup,
    FrameSource,
    Outcome,
    ParquetSource,
    open_source,
    validate,
)

__all__ = ["JSON_SUFFIXES", "MAX_VALUE_CHARS", "PY_SUFFIXES", "SAMPLE_ROWS", "YAML_SUFFIXES",
           "ColumnNote", "ColumnSource", "FailureGroup", "FrameSource", "Inferred",
           "LoadedSchema", "Outcome", "ParquetSource", "check_key", "infer_schema",
           "load_schema", "open_source", "render_yaml", "validate", "write_inferred"]
