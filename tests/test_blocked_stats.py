"""Rows longer than one statistics block (2 KiB) are reduced in a single read: each block's
maximum may raise the running maximum, which rescales what was summed before. These rows put
the maximum, the ties and the special values in later blocks and check the results against
float64 / exact oracles."""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import assert_ulp_close

import logitkit as lk

N = 4099  # several blocks for float32 (512 entries) and float64 (256), and a ragged end


def sum_ulps(dtype) -> float:
    """float32 sums are carried in double; float64 ones in float64, whose rounding grows
    with the N / lanes additions per accumulator."""
    return 4 if dtype == np.float32 else 64


def exact_logsumexp(x: np.ndarray) -> float:
    """log(sum(exp(x))) with the terms summed exactly (math.fsum) around the float64 max."""
    x64 = x.astype(np.float64)
    m = float(x64.max())
    return m + math.log(math.fsum(np.exp(x64 - m)))


@pytest.mark.parametrize(
    "make",
    [
        lambda rng: np.linspace(-40, 10, N),  # every block raises the maximum
        lambda rng: np.linspace(10, -40, N),  # the first block holds it
        lambda rng: rng.standard_normal(N) * 20,
        lambda rng: np.concatenate([np.zeros(700), [1.0], np.zeros(N - 701)]),  # old ties
        lambda rng: np.where(np.arange(N) % 97 == 0, 5.0, rng.standard_normal(N)),
    ],
    ids=["ascending", "descending", "normal20", "ties-then-max", "periodic-max"],
)
def test_logsumexp_matches_exact(isa, dtype, make):
    x = make(np.random.default_rng(7)).astype(dtype)
    assert_ulp_close(
        lk.logsumexp(x), np.array(exact_logsumexp(x), dtype=dtype), dtype, sum_ulps(dtype)
    )
    y = lk.log_softmax(x)
    want = (x.astype(np.float64) - exact_logsumexp(x)).astype(dtype)
    assert_ulp_close(y, want, dtype, 2 * sum_ulps(dtype), abs_scale=float(np.abs(x).max()))


def test_dominant_maximum_in_a_late_block_keeps_relative_precision(isa, dtype):
    # log(1 + (N - 1) e^-60) ~ 3.5e-23: only a sum that keeps the maximum's entries apart
    # from the rest, across the rescaling, gets it to full relative precision.
    x = np.full(N, -60.0, dtype=dtype)
    x[3000] = 0.0
    expected = math.log1p((N - 1) * math.exp(-60.0))
    assert_ulp_close(lk.logsumexp(x), np.array(expected, dtype=dtype), dtype, sum_ulps(dtype))
    assert_ulp_close(
        lk.log_softmax(x)[3000], np.array(-expected, dtype=dtype), dtype, sum_ulps(dtype)
    )
    # earlier entries at a smaller running maximum become ordinary terms
    x[:600] = -1.0
    expected = math.log1p(600 * math.exp(-1.0) + (N - 601) * math.exp(-60.0))
    assert_ulp_close(lk.logsumexp(x), np.array(expected, dtype=dtype), dtype, sum_ulps(dtype))


@pytest.mark.parametrize("where", [5, 1500, N - 1])
def test_special_values_in_any_block(isa, dtype, where):
    x = np.random.default_rng(8).standard_normal(N).astype(dtype)
    with_nan = x.copy()
    with_nan[where] = np.nan
    assert np.isnan(lk.logsumexp(with_nan))
    assert np.isnan(lk.log_softmax(with_nan)).all()
    with_inf = x.copy()
    with_inf[where] = np.inf
    assert lk.logsumexp(with_inf) == np.inf
    np.testing.assert_array_equal(lk.softmax(with_inf), (np.arange(N) == where).astype(dtype))
    only_late = np.full(N, -np.inf, dtype=dtype)
    only_late[where] = 2.5
    assert lk.logsumexp(only_late) == dtype.type(2.5)
    assert lk.log_softmax(only_late)[where] == 0


@pytest.mark.parametrize("func", ["logsumexp", "log_softmax", "softmax"])
def test_nan_hidden_among_minus_inf_before_the_first_finite_block(isa, dtype, func):
    # max() may skip a NaN; in a block of otherwise -inf entries nothing else would find it
    x = np.full(N, -np.inf, dtype=dtype)
    x[0] = np.nan
    x[2000:] = np.random.default_rng(9).standard_normal(N - 2000)
    assert np.isnan(getattr(lk, func)(x)).all()
    target = np.array([2500])
    loss, grad = lk.cross_entropy_with_grad(x[None, :], target)
    assert np.isnan(loss) and np.isnan(grad).all()
