"""The drift engine: statistics against scipy, shifted vs unshifted data, nulls and infinities,
Parquet paths read column by column."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from scipy.spatial.distance import jensenshannon

from mlcd_actions.core.errors import DataError
from mlcd_actions.data import drift


def frames(n=2000, seed=0, shift=False):
    r = np.random.default_rng(seed)
    df = pd.DataFrame({"a": r.normal(0, 1, n), "b": r.exponential(2, n), "c": r.normal(5, 2, n),
                       "k": r.integers(0, 5, n),
                       "cat": r.choice(["x", "y", "z"], n, p=[.5, .3, .2]),
                       "flag": r.random(n) < 0.3})
    if shift:
        df["a"] += 1.0
        df["b"] *= 2.0
        df.loc[r.choice(n, n // 4, replace=False), "cat"] = "new"
    return df


def by_column(results):
    return {r.column: r for r in results}


def test_shifted_columns_are_flagged_and_only_those():
    res = drift.compare(frames(seed=1), frames(seed=2, shift=True))
    assert sorted(drift.drifted(res)) == ["a", "b", "cat"]
    assert drift.drifted(drift.compare(frames(seed=1), frames(seed=3))) == []
    cat = by_column(res)["cat"]
    assert cat.kind == drift.CATEGORICAL and cat.new_categories == ["new"]
    assert cat.metrics()["new_categories"] == 1.0 and cat.missing_categories == []
    assert by_column(res)["flag"].kind == drift.CATEGORICAL
    assert by_column(res)["k"].kind == drift.NUMERIC


def test_ks_matches_scipy_with_and_without_ties():
    r = np.random.default_rng(7)
    for i in range(60):
        n, m = r.integers(1, 400, 2)
        if i % 2:
            a, b = r.integers(0, 6, n).astype(float), r.integers(0, 7, m).astype(float)
        else:
            a, b = r.normal(0, 1, n), r.normal(0.2, 1.3, m)
        got = drift.compare(pd.DataFrame({"v": a}), pd.DataFrame({"v": b}))[0]
        want = stats.ks_2samp(a, b)
        assert got.ks == pytest.approx(want.statistic, abs=1e-12)
        if n * m <= drift.EXACT_KS_MAX:
            assert got.ks_pvalue == pytest.approx(want.pvalue, rel=1e-6, abs=1e-12)


def test_large_sample_pvalue_matches_scipy_asymptotic():
    r = np.random.default_rng(3)
    a, b = r.normal(0, 1, 20000), r.normal(0.02, 1, 15000)
    got = drift.compare(pd.DataFrame({"v": a}), pd.DataFrame({"v": b}))[0]
    want = stats.ks_2samp(a, b, method="asymp")
    assert got.ks == pytest.approx(want.statistic, abs=1e-12)
    assert got.ks_pvalue == pytest.approx(want.pvalue, rel=1e-6)


def test_categorical_statistics_match_scipy():
    ref = pd.DataFrame({"c": ["a"] * 50 + ["b"] * 30 + ["c"] * 20})
    cur = pd.DataFrame({"c": ["a"] * 30 + ["b"] * 30 + ["d"] * 40})
    got = drift.compare(ref, cur)[0]
    table = np.array([[50, 30, 20, 0], [30, 30, 0, 40]])
    chi2, p, *_ = stats.chi2_contingency(table, correction=False)
    assert got.chi2 == pytest.approx(chi2) and got.chi2_pvalue == pytest.approx(p)
    pr, pc = table[0] / 100, table[1] / 100
    assert got.js == pytest.approx(jensenshannon(pr, pc, base=2))
    assert got.linf == pytest.approx(0.4)
    assert got.new_categories == ["d"] and got.missing_categories == ["c"]
    assert got.ref_count == 100 and got.cur_count == 100


def test_psi_of_identical_data_is_zero_and_of_disjoint_data_large():
    x = pd.DataFrame({"v": np.arange(1000.0)})
    same = drift.compare(x, x)[0]
    assert same.psi == pytest.approx(0.0) and same.ks == 0.0
    far = drift.compare(x, pd.DataFrame({"v": np.arange(1000.0) + 5000}))[0]
    assert far.psi > 5 and far.ks == 1.0
    # values outside the reference range land in the open bins
    assert far.cur_hist[-1] == pytest.approx(1.0) and far.bin_labels[-1].startswith(">")


def test_nulls_and_infinities_are_counted_not_compared():
    ref = pd.DataFrame({"v": [1.0, 2.0, 3.0, np.nan, 4.0, 5.0],
                        "s": ["a", "b", None, "a", "b", "a"]})
    cur = pd.DataFrame({"v": [1.0, np.inf, 2.0, -np.inf, np.nan, np.nan],
                        "s": [None, None, "a", "b", "a", float("nan")]})
    got = by_column(drift.compare(ref, cur))
    v = got["v"]
    assert (v.ref_nulls, v.cur_nulls, v.cur_nonfinite, v.ref_count, v.cur_count) == (1, 2, 2, 5, 2)
    assert v.metrics()["null_fraction"] == pytest.approx(2 / 6)
    assert v.metrics()["null_fraction_delta"] == pytest.approx(2 / 6 - 1 / 6)
    assert v.metrics()["nonfinite_fraction"] == pytest.approx(2 / 6)
    s = got["s"]
    assert (s.ref_nulls, s.cur_nulls, s.ref_count, s.cur_count) == (1, 3, 5, 3)


def test_all_null_column_gives_no_statistics_and_a_note():
    got = drift.compare(pd.DataFrame({"v": [1.0, 2.0]}), pd.DataFrame({"v": [np.nan, np.nan]}))[0]
    assert got.psi is None and got.ks is None and got.notes
    assert got.metrics()["psi"] is None


def test_parquet_paths_read_column_by_column(tmp_path):
    ref, cur = frames(seed=1), frames(seed=2, shift=True)
    ref.loc[3, "a"] = np.nan
    ref.to_parquet(tmp_path / "r.parquet", row_group_size=300)
    cur.to_parquet(tmp_path / "c.parquet", row_group_size=300)
    from_paths = by_column(drift.compare(tmp_path / "r.parquet", tmp_path / "c.parquet"))
    from_frames = by_column(drift.compare(ref, cur))
    for col, d in from_frames.items():
        for k, v in d.metrics().items():
            w = from_paths[col].metrics()[k]
            assert (v is None and w is None) or math.isclose(v, w, rel_tol=1e-9, abs_tol=1e-12), \
                (col, k)
    assert from_paths["a"].ref_nulls == 1


def test_text_in_a_numeric_column_is_one_clear_error():
    ref = pd.DataFrame({"v": [1.0, 2.0, 3.0]})
    cur = pd.DataFrame({"v": ["1", "two", "3"]})
    with pytest.raises(DataError, match=r"column 'v' .* 'two' at row 1"):
        drift.compare(ref, cur)
    # numbers written as text are fine
    assert drift.compare(ref, pd.DataFrame({"v": ["1", "2", None]}))[0].cur_nulls == 1


def test_missing_column_named():
    with pytest.raises(DataError, match="column 'nope' not found"):
        drift.compare(frames(50), frames(50), columns=["a", "nope"])


def test_forced_categorical_integer_codes():
    got = drift.compare(frames(seed=1), frames(seed=2), categorical=["k"])
    assert by_column(got)["k"].kind == drift.CATEGORICAL
    assert by_column(got)["k"].psi is None and by_column(got)["k"].js is not None


def test_unicode_and_very_long_categories():
    long = "ü" * 10_000
    ref = pd.DataFrame({"c": ["東京", "paris", long] * 30})
    cur = pd.DataFrame({"c": ["東京", "paris", "naïve"] * 30})
    got = drift.compare(ref, cur)[0]
    assert got.new_categories == ["naïve"] and got.missing_categories == [long]
    assert got.js == pytest.approx(jensenshannon([1, 1, 1, 0], [1, 1, 0, 1], base=2))


def _numeric_cases(r):
    n, m = 6000, 5000
    ints = r.integers(0, 7, n).astype(float), r.integers(0, 8, m).astype(float)
    rounded = np.round(r.normal(0, 1, n), 2), np.round(r.normal(0.1, 1, m), 2)  # ties, -0.0
    outliers = np.concatenate([r.normal(0, 1, n - 3), [1e300, -1e300, 5e12]]), r.normal(0, 1, m)
    with_gaps = r.normal(0, 1, n), r.normal(0, 1, m)
    with_gaps[0][::50] = np.nan
    with_gaps[1][::70] = np.inf
    return {"normal": (r.normal(0, 1, n), r.normal(0.3, 1.2, m)), "integers": ints,
            "rounded": rounded, "outliers": outliers, "constant": (np.full(n, 2.5), np.full(m, 2.5)),
            "cauchy": (r.standard_cauchy(n), r.standard_cauchy(m)), "gaps": with_gaps,
            "same": (np.arange(n, dtype=float), np.arange(n, dtype=float))}


def test_histogram_path_gives_the_numbers_of_the_sorting_path(monkeypatch):
    r = np.random.default_rng(11)
    for name, (a, b) in _numeric_cases(r).items():
        monkeypatch.setattr(drift, "GRID_MIN_VALUES", 10**12)
        sorted_way = drift._numeric("v", a.copy(), b.copy(), 10).to_dict()
        monkeypatch.setattr(drift, "GRID_MIN_VALUES", 0)
        grid_way = drift._numeric("v", a.copy(), b.copy(), 10).to_dict()
        assert grid_way == sorted_way, name
        assert grid_way["ks"] == stats.ks_2samp(a[np.isfinite(a)], b[np.isfinite(b)]).statistic


def test_grid_statistics_equal_sorting_for_any_bin_count():
    r = np.random.default_rng(12)
    for name, (a, b) in _numeric_cases(r).items():
        a, b = a[np.isfinite(a)][:700], b[np.isfinite(b)][:500]
        sa, sb = np.sort(a), np.sort(b)
        kth = np.sort(r.integers(0, a.size, 9))
        edges = np.sort(np.concatenate([r.choice(a, 4), r.choice(b, 4), [np.inf]]))
        for nbins in (1, 2, 3, 7, 64, 4096):
            grid = drift._Grid(a, b, nbins)
            assert grid.ks() == drift._ks_statistic(sa, sb), (name, nbins)
            assert (grid.a.order_statistics(kth) == sa[kth]).all(), (name, nbins)
            assert (grid.a.count_below(edges) == np.searchsorted(sa, edges, "left")).all()
            assert (grid.b.count_below(edges) == np.searchsorted(sb, edges, "left")).all()


def test_parquet_text_counted_from_dictionaries_equals_decoded_text(tmp_path):
    r = np.random.default_rng(13)

    def frame(n, seed):
        g = np.random.default_rng(seed)
        return pd.DataFrame({
            "s": g.choice(np.array(["a", "b", "", "東京", None], dtype=object), n),
            "c": pd.Categorical(g.choice(["x", "y", None], n), categories=["x", "y", "unused"]),
        })

    ref, cur = frame(3000, 1), frame(2500, 2)
    cur.loc[r.choice(2500, 40, replace=False), "s"] = "brand new"
    ref.to_parquet(tmp_path / "r.parquet", row_group_size=700)  # a dictionary per row group
    cur.to_parquet(tmp_path / "c.parquet", row_group_size=600)
    from_files = drift.compare(tmp_path / "r.parquet", tmp_path / "c.parquet")
    decoded = drift.compare(ref.astype({"c": object}), cur.astype({"c": object}))
    assert [d.to_dict() for d in from_files] == [d.to_dict() for d in decoded]
    s = by_column(from_files)["s"]
    assert s.new_categories == ["brand new"] and s.ref_nulls == int(ref["s"].isna().sum())
