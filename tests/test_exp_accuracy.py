"""The vectorised exp and log against float64 math, on a dense sample of float32 inputs.

The full scan over every float32 (README, "Accuracy") is benchmarks/exp_ulp.py; this test
takes every 61st float so it runs in seconds.
"""

from __future__ import annotations

import numpy as np
from conftest import ulp_error

import logitkit as lk


def float32_range(lo: float, hi: float, step: int) -> np.ndarray:
    """Every `step`-th float32 in [lo, hi] (by bit pattern, so every binade is covered)."""
    pos = np.arange(0, np.float32(hi).view(np.int32), step, dtype=np.int32).view(np.float32)
    if lo >= 0:
        return pos
    neg = -np.arange(1, np.float32(-lo).view(np.int32), step, dtype=np.int32).view(np.float32)
    return np.concatenate([neg, pos])


def native_unary(op: int, x: np.ndarray) -> np.ndarray:
    y = np.empty_like(x)
    with_isa = lk._runtime.current_isa_index()
    lk._core.unary(op, x, y, with_isa, 1)
    return y


def test_exp_float32_max_ulp(isa):
    x = float32_range(-104.0, 89.0, 61)
    exact = np.exp(x.astype(np.float64))
    overflow = exact > np.finfo(np.float32).max
    got = native_unary(lk._core.OP_EXP, x)
    assert np.all(got[overflow] == np.inf)
    err = ulp_error(got[~overflow], exact[~overflow], np.dtype(np.float32))
    assert err.max() <= 1.5, float(err.max())


def test_exp_float64_max_ulp(isa):
    rng = np.random.default_rng(14)
    x = np.concatenate([rng.uniform(-745, 709.7, 400_000), rng.uniform(-1, 1, 100_000)])
    got = native_unary(lk._core.OP_EXP, x)
    err = ulp_error(got, np.exp(x), np.dtype(np.float64))
    # np.exp is itself within about half an ulp, hence the margin
    assert err.max() <= 2.0, float(err.max())


def test_log_float32_max_ulp(isa):
    x = float32_range(0.0, 3e38, 997)[1:]  # from the smallest subnormal up
    got = native_unary(lk._core.OP_LOG, x)
    err = ulp_error(got, np.log(x.astype(np.float64)), np.dtype(np.float32))
    assert err.max() <= 2.0, float(err.max())
