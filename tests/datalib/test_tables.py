"""tabular.write_table / read_table round trips by extension."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from mlcd_actions.data import tables as tabular


@pytest.mark.parametrize("name,sep", [("t.tsv", "\t"), ("t.TSV", "\t"), ("t.csv", ",")])
def test_write_table_uses_the_separator_of_the_extension(name, sep):
    df = pd.DataFrame({"a": [1, 2], "b": ["x,y", "z"]})
    tabular.write_table(df, name)
    header = Path(name).read_text(encoding="utf-8").splitlines()[0]
    assert header == f"a{sep}b"
    back = tabular.read_table(name)
    assert back["a"].tolist() == [1, 2] and back["b"].tolist() == ["x,y", "z"]


def test_dictionary_columns_are_the_low_cardinality_ones():
    import numpy as np
    import pyarrow as pa

    n = 1000
    table = pa.table({"id": np.arange(n), "label": np.tile(["yes", "no"], n // 2),
                      "p": np.linspace(0, 1, n), "half": np.arange(n) % (n // 2),
                      "tags": pa.array([[1]] * n)})
    assert tabular.dictionary_columns(table) == ["label", "half"]
    assert tabular.dictionary_columns(table.slice(0, 0)) == []
