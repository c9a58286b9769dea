"""tabular.write_table / read_table round trips by extension."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from mlcd_actions import tabular


@pytest.mark.parametrize("name,sep", [("t.tsv", "\t"), ("t.TSV", "\t"), ("t.csv", ",")])
def test_write_table_uses_the_separator_of_the_extension(name, sep):
    df = pd.DataFrame({"a": [1, 2], "b": ["x,y", "z"]})
    tabular.write_table(df, name)
    header = Path(name).read_text(encoding="utf-8").splitlines()[0]
    assert header == f"a{sep}b"
    back = tabular.read_table(name)
    assert back["a"].tolist() == [1, 2] and back["b"].tolist() == ["x,y", "z"]
