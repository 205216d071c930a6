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


def test_softmax_and_its_loss_gradient_below_the_normal_range(isa):
    # Logits of spread 25: a fifth of the probabilities are subnormal floats, formed through
    # units of the subnormal grid rather than by subnormal multiplies (same bits as those).
    # Each is within two units of the grid (2^-149) plus a few ulp of float64's value: the
    # exponential is rounded to the grid once, and once more when scaled by 1 / sum.
    rng = np.random.default_rng(29)
    x = (rng.standard_normal((16, 4000)) * 25).astype(np.float32)
    x64 = x.astype(np.float64)
    z = x64 - x64.max(axis=1, keepdims=True)
    p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    subnormal = (p < np.finfo(np.float32).tiny) & (p > 0)
    assert subnormal.mean() > 0.1
    target = rng.integers(0, 4000, 16)
    one_hot = np.eye(4000)[target]
    _, grad = lk.cross_entropy_with_grad(x, target, reduction="sum")
    for got, want in ((lk.softmax(x), p), (grad, p - one_hot)):
        err = np.abs(got.astype(np.float64) - want)
        bound = 2 * 2.0**-149 + 4 * np.finfo(np.float32).eps * np.abs(want)
        worst = np.unravel_index(np.argmax(err - bound), err.shape)
        assert (err <= bound).all(), (worst, got[worst], want[worst])
