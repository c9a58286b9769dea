"""The shared batch tolerance (tests/floats.py) accepts last-bit differences, nothing more."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tests.floats import assert_batch_equal, assert_batch_frame_equal


def test_last_bit_differences_pass_real_differences_fail():
    want = np.array([0.1, 0.7000000000000001, 0.25])
    assert_batch_equal(want + np.array([1.1e-16, -1.1e-16, 0.0]), want)  # issue 15 #7
    with pytest.raises(AssertionError):
        assert_batch_equal(want + 1e-6, want)
    with pytest.raises(AssertionError):
        assert_batch_equal(np.array(["yes", "no"]), np.array(["yes", "yes"]))
    with pytest.raises(AssertionError):
        assert_batch_equal(np.array([1, 2]), np.array([1, 3]))
    with pytest.raises(AssertionError):
        assert_batch_equal(want[:2], want)


def test_frames_compare_labels_exactly_and_floats_within_tolerance():
    a = pd.DataFrame({"id": [1, 2], "prediction": ["x", "y"], "probability": [0.3, 0.9]})
    b = a.assign(probability=a.probability + 2e-16)
    assert_batch_frame_equal(b, a)
    with pytest.raises(AssertionError):
        assert_batch_frame_equal(b.assign(prediction=["x", "x"]), a)
    with pytest.raises(AssertionError):
        assert_batch_frame_equal(b.assign(probability=[0.3, 0.91]), a)
