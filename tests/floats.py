"""One tolerance for answers computed in different batchings.

The same rows predicted in another batch (predict's chunks and files, serve's
micro-batches, the numeric fast path, Spark partitions) may differ in the last bits:
BLAS kernels round differently by CPU and batch shape. Every test that compares such
answers uses these helpers, with the tolerance the docs state
(``mlcd_actions.models.loading.BATCH_RTOL`` / ``BATCH_ATOL``); values that are not floats (class
labels, ids) must be equal.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from mlcd_actions.models.loading import BATCH_ATOL, BATCH_RTOL


def assert_batch_equal(got, want) -> None:
    """``got`` (another batching) equals ``want``: floats within the batch tolerance,
    anything else exactly; shapes equal."""
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape, (got.shape, want.shape)
    if got.dtype.kind in "fc" and want.dtype.kind in "fc":
        np.testing.assert_allclose(got, want, rtol=BATCH_RTOL, atol=BATCH_ATOL)
    else:
        np.testing.assert_array_equal(got, want)


def assert_batch_frame_equal(got: pd.DataFrame, want: pd.DataFrame) -> None:
    """Two prediction frames from different batchings: same columns, dtypes and non-float
    values; float columns within the batch tolerance."""
    pd.testing.assert_frame_equal(got, want, check_exact=False, rtol=BATCH_RTOL,
                                  atol=BATCH_ATOL)
    for col in got.columns:
        if got[col].dtype.kind not in "fc":
            assert got[col].tolist() == want[col].tolist(), col
