"""Shared fixtures: every test that takes ``isa`` runs once per kernel table this CPU can run."""

from __future__ import annotations

import os

import numpy as np
import pytest

import logitkit as lk

ISAS = lk.available_isas()
if os.environ.get("LOGITKIT_SANITIZED") and len(ISAS) > 1:
    # Under a sanitizer (tests/native/run_sanitized.sh) these tests run the vector tables only:
    # the scalar table is the same generic kernels with one lane, without the tails and
    # partial loads a sanitizer is there to check, and it took 43% of the run's time. The
    # golden digests, run under the sanitizer too, still call every function on it.
    ISAS = ISAS[1:]
FLOAT_DTYPES = [np.float32, np.float64]


@pytest.fixture(params=ISAS)
def isa(request: pytest.FixtureRequest):
    with lk.use_isa(request.param):
        yield request.param


@pytest.fixture(params=FLOAT_DTYPES, ids=["f32", "f64"])
def dtype(request: pytest.FixtureRequest):
    return np.dtype(request.param)


def dtype_named(name: str) -> np.dtype:
    """NumPy's dtype of that name, or ml_dtypes' for "bfloat16" (the test skips without it)."""
    if name == "bfloat16":
        return np.dtype(pytest.importorskip("ml_dtypes").bfloat16)
    return np.dtype(name)


def ulp_error(actual: np.ndarray, expected: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """|actual - expected| in units of the spacing of `dtype` at |expected|.

    Equal values (including matching infinities and NaNs) count as 0.
    """
    a = np.asarray(actual, dtype=np.float64)
    e = np.asarray(expected, dtype=np.float64)
    same = (a == e) | (np.isnan(a) & np.isnan(e))
    spacing = np.spacing(np.abs(e).astype(dtype)).astype(np.float64)
    with np.errstate(invalid="ignore", over="ignore"):
        err = np.abs(a - e) / spacing
    return np.where(same, 0.0, np.where(np.isnan(err), np.inf, err))


def assert_ulp_close(actual, expected, dtype, ulps: float, abs_scale: float = 0.0) -> None:
    """Within `ulps` units in the last place, or `ulps` eps of `abs_scale` in absolute terms.

    `abs_scale` lets log-space results near 0 (where a tiny absolute error is a large relative
    one for any float implementation, the reference included) be judged in absolute terms.
    """
    actual = np.asarray(actual)
    expected = np.asarray(expected)
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    np.testing.assert_array_equal(np.isnan(actual), np.isnan(expected), err_msg="NaN positions")
    err = ulp_error(actual, expected, np.dtype(dtype))
    if abs_scale:
        eps = np.finfo(dtype).eps
        with np.errstate(invalid="ignore"):
            abs_err = np.abs(actual.astype(np.float64) - expected.astype(np.float64))
        err = np.where(abs_err <= ulps * eps * abs_scale, 0.0, err)
    worst = float(np.max(err)) if err.size else 0.0
    if worst > ulps:
        i = np.unravel_index(int(np.argmax(err)), err.shape)
        raise AssertionError(
            f"max error {worst:.3g} ulp > {ulps} at {i}: got {actual[i]!r}, expected {expected[i]!r}"
        )
