"""Special values and dtype policy of the native functions, on every ISA."""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import assert_ulp_close

import logitkit as lk
from logitkit import reference as ref

INF, NAN = np.inf, np.nan


def test_seed_overflow_example(isa):
    # The textbook exp(x)/sum(exp(x)) overflows here and gives NaN.
    np.testing.assert_array_equal(lk.softmax(np.float32([123, 456, 789])), [0, 0, 1])
    np.testing.assert_array_equal(lk.softmax([0.0, 1000.0, 2000.0]), [0, 0, 1])
    assert lk.logsumexp([1000.0, 1000.0]) == 1000 + math.log(2)


def test_dominant_entry_keeps_precision(isa, dtype):
    x = np.array([0.0, -50.0], dtype=dtype)
    tiny = math.log1p(math.exp(-50))
    assert lk.logsumexp(x) == np.asarray(tiny, dtype=dtype)
    assert lk.log_softmax(x)[0] == np.asarray(-tiny, dtype=dtype)


@pytest.mark.parametrize(
    "row",
    [
        [1.0, NAN, 2.0],
        [INF, 1.0, -2.0],
        [INF, 3.0, INF, -INF],
        [-INF, -INF, -INF],
        [NAN, INF, 1.0],
        [NAN, -INF],
        [-INF, 0.0, -INF],
        [5.0],
        [-INF],
    ],
)
@pytest.mark.parametrize("func", ["softmax", "log_softmax", "logsumexp"])
def test_special_rows_match_reference(isa, dtype, row, func):
    for pad in (0, 5, 40):  # the special value in the vector body and in the tail
        x = np.array([-1.0] * pad + row, dtype=dtype)
        got = getattr(lk, func)(x)
        expected = getattr(ref, func)(x)
        assert_ulp_close(got, expected, dtype, 4, abs_scale=8.0)


def test_special_rows_in_long_rows(isa):
    n = lk._core.long_row_bytes // 8 * 3
    for special in (NAN, INF, -INF):
        x = np.zeros((2, n))
        x[0, n // 2] = special
        x[1, -1] = special
        for func in ("softmax", "log_softmax", "logsumexp"):
            assert_ulp_close(getattr(lk, func)(x), getattr(ref, func)(x), np.float64, 64, 8.0)
    x = np.full((1, n), -INF)
    assert lk.logsumexp(x)[0] == -INF
    assert np.isnan(lk.softmax(x)).all()


def test_empty(isa, dtype):
    assert lk.softmax(np.zeros((3, 0), dtype)).shape == (3, 0)
    np.testing.assert_array_equal(lk.logsumexp(np.zeros((3, 0), dtype)), [-INF] * 3)
    np.testing.assert_array_equal(lk.logsumexp(np.zeros((0, 4), dtype), axis=0), [-INF] * 4)
    assert lk.logsumexp(np.zeros((0, 4), dtype)).shape == (0,)
    value, sign = lk.logsumexp(np.zeros(0, dtype), return_sign=True)
    assert value == -INF and sign == 0


def test_weights_zero_mask_inf_and_nan(isa):
    x = np.array([INF, NAN, 1.0, 2.0])
    b = np.array([0.0, 0.0, 1.0, 1.0])
    assert lk.logsumexp(x, b=b) == pytest.approx(np.logaddexp(1.0, 2.0), rel=1e-15)
    value, sign = lk.logsumexp([1.0, 1.0], b=[1.0, -1.0], return_sign=True)
    assert value == -INF and sign == 0
    assert np.isnan(lk.logsumexp([1.0, 2.0], b=[1.0, -1.0]))
    assert lk.logsumexp([INF, 2.0], b=[-1.0, 1.0], return_sign=True) == (INF, -1.0)
    assert np.isnan(lk.logsumexp([INF, INF], b=[1.0, -1.0]))


def test_elementwise_extremes(isa, dtype):
    assert list(lk.sigmoid(np.array([-INF, 0, INF], dtype))) == [0.0, 0.5, 1.0]
    big = 80.0 if dtype == np.float32 else 700.0
    assert lk.log_sigmoid(np.array([-1000.0], dtype))[0] == -1000.0
    assert lk.softplus(np.array([1000.0], dtype))[0] == 1000.0
    # Both tails keep full relative precision (not 0 or 1 - eps).
    assert_ulp_close(lk.sigmoid(np.array([-big], dtype)), [math.exp(-big)], dtype, 4)
    assert_ulp_close(lk.softplus(np.array([-big], dtype)), [math.exp(-big)], dtype, 4)
    assert list(lk.logit(np.array([0.0, 1.0], dtype))) == [-INF, INF]
    assert np.isnan(lk.logit(np.array([-0.5, 1.5, NAN], dtype))).all()
    # Subnormal outputs are produced, not flushed to zero.
    sub = -100.0 if dtype == np.float32 else -740.0
    assert_ulp_close(
        lk.sigmoid(np.array([sub], dtype)), ref.sigmoid(np.array([sub], dtype)), dtype, 4
    )
    assert lk.sigmoid(np.array([sub], dtype))[0] > 0


@pytest.mark.parametrize("src", [np.float16, np.int8, np.int64, np.uint16, np.bool_])
def test_dtype_policy(src):
    x = (np.arange(12).reshape(3, 4) % 3).astype(src)
    want = np.float16 if src == np.float16 else np.float64
    for func in ("softmax", "log_softmax", "logsumexp", "sigmoid", "softplus"):
        got = getattr(lk, func)(x)
        assert got.dtype == want, func
        # float16 is computed in float32 and rounded once: within one float16 ulp.
        assert_ulp_close(got, getattr(ref, func)(x), want, 1)


def test_bfloat16():
    ml_dtypes = pytest.importorskip("ml_dtypes")
    x = np.linspace(-4, 4, 24).reshape(4, 6).astype(ml_dtypes.bfloat16)
    for func in ("softmax", "log_softmax", "logsumexp", "sigmoid", "log_sigmoid"):
        got = getattr(lk, func)(x)
        assert got.dtype == x.dtype, func
        expected = getattr(ref, func)(x)
        np.testing.assert_allclose(
            got.astype(np.float64), expected.astype(np.float64), rtol=2**-7, atol=2**-7
        )


def test_scalars_and_0d():
    assert lk.softmax(np.array(3.0)).shape == ()
    assert lk.softmax(np.array(3.0)) == 1.0
    assert isinstance(lk.logsumexp(np.array(2.0)), np.float64)
    assert lk.logsumexp(2.0) == 2.0
    assert isinstance(lk.sigmoid(0.0), np.float64)
    assert isinstance(lk.logsumexp(np.ones((2, 3)), axis=None), np.float64)


def test_huge_logits(isa, dtype):
    # |max| so large that max - 128 rounds back to max: far entries must still vanish.
    big = 1e30 if dtype == np.float32 else 1e300
    for row in ([big, -big], [big], [-big, big, 0.0] * 7, [big, big, -np.inf]):
        x = np.array(row, dtype=dtype)
        for func in ("softmax", "log_softmax", "logsumexp"):
            assert_ulp_close(getattr(lk, func)(x), getattr(ref, func)(x), dtype, 4, abs_scale=big)
    n = lk._core.long_row_bytes // np.dtype(dtype).itemsize + 100
    x = np.zeros(n, dtype=dtype)
    x[7] = big
    expected = np.zeros(n)
    expected[7] = 1
    np.testing.assert_array_equal(lk.softmax(x), expected)


def masked_oracle(func, x, mask):
    """The masked op from the unmasked reference on the counted entries of each row."""
    out = np.empty(x.shape[:-1] if func == "logsumexp" else x.shape)
    for idx in np.ndindex(x.shape[:-1]):
        keep = mask[idx]
        row = x[idx][keep]
        if func == "logsumexp":
            out[idx] = ref.logsumexp(row) if row.size else -INF
            continue
        off = -INF if func == "log_softmax" else 0.0
        full = np.full(x.shape[-1], off)
        if row.size and not np.isneginf(row).all():  # some counted mass
            full[keep] = getattr(ref, func)(row)
        if np.isnan(row).any():
            full[:] = NAN
        out[idx] = full
    return out


@pytest.mark.parametrize("func", ["softmax", "log_softmax", "logsumexp"])
def test_where_masks(isa, dtype, func):
    rng = np.random.default_rng(21)
    for n in (1, 5, 8, 17, 64, 1000):
        x = (rng.standard_normal((6, n)) * 4).astype(dtype)
        mask = rng.random((6, n)) < 0.6
        mask[0] = False  # a fully masked row
        x[1, 0] = NAN  # NaN under the mask is ignored ...
        mask[1, 0] = False
        x[2, -1] = NAN  # ... and counted NaN poisons its row
        mask[2, -1] = True
        x[3, :] = -INF
        x[4, 0] = INF
        mask[4, 0] = True
        got = getattr(lk, func)(x, where=mask)
        expected = masked_oracle(func, x.astype(np.float64), mask)
        assert_ulp_close(got, expected.astype(dtype), dtype, 4, abs_scale=16.0)


def test_where_broadcast_layout_and_threads():
    rng = np.random.default_rng(22)
    x = rng.standard_normal((40, 300))
    mask = rng.random(300) < 0.5  # one mask for every row, broadcast
    full = np.broadcast_to(mask, x.shape)
    expected = masked_oracle("softmax", x, full)
    np.testing.assert_allclose(lk.softmax(x, where=mask), expected, rtol=1e-13, atol=1e-300)
    np.testing.assert_allclose(
        lk.softmax(x.T, axis=0, where=full.T), expected.T, rtol=1e-13, atol=1e-300
    )
    np.testing.assert_array_equal(
        lk.softmax(x, where=mask, threads=1), lk.softmax(x, where=mask, threads=2)
    )
    np.testing.assert_allclose(
        lk.logsumexp(x, where=mask, b=2.0), lk.logsumexp(x, where=mask) + np.log(2), rtol=1e-14
    )
    with pytest.raises(TypeError, match=r"softmax\(\): where must be a boolean array"):
        lk.softmax(x, where=mask.astype(int))
    with pytest.raises(ValueError, match=r"where with shape \(7,\) cannot be broadcast"):
        lk.softmax(x, where=np.ones(7, bool))


def test_long_rows_with_late_maximum_and_leading_minus_inf(isa, dtype):
    # The long-row softmax stores exp(x - m_b) per block and rescales every block to the
    # row's maximum afterwards: a maximum in the last chunk rescales all earlier blocks, and
    # blocks before the first finite entry must come out as exact zeros.
    n = lk._core.long_row_bytes // np.dtype(dtype).itemsize * 3 + 77
    x = (np.random.default_rng(9).standard_normal((3, n)) * 3).astype(dtype)
    x[0, -5] = 40
    x[1, : n // 2] = -INF
    x[2, 1] = 40  # the maximum first, for contrast
    # in float64 the reference's own x - max (not compensated) dominates the difference
    ulps = 8 if dtype == np.float32 else 450
    for func in ("softmax", "log_softmax"):
        got = getattr(lk, func)(x)
        assert_ulp_close(
            got, getattr(ref, func)(x), dtype, ulps, 8.0 if func == "log_softmax" else 0
        )
        np.testing.assert_array_equal(getattr(lk, func)(x, threads=1), got)
    assert (lk.softmax(x)[1, : n // 2] == 0).all()


@pytest.mark.parametrize("func", ["softmax", "log_softmax"])
def test_in_place_gives_the_same_bits(isa, dtype, func):
    long = lk._core.long_row_bytes // np.dtype(dtype).itemsize * 2 + 7
    for shape in [(40, 1003), (3, long), (1, long)]:
        x = (np.random.default_rng(10).standard_normal(shape) * 5).astype(dtype)
        x[-1, 3] = INF if shape[0] == 3 else x[-1, 3]  # a special row among them
        with np.errstate(invalid="ignore"):
            want = getattr(lk, func)(x)
            y = x.copy()
            assert getattr(lk, func)(y, out=y) is y
        np.testing.assert_array_equal(y, want)
