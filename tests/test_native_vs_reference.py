"""Native kernels against logitkit.reference on every ISA this machine runs.

Sizes straddle every vector width (1, 2, 4, 8, 16 lanes and the 2x/4x unrolled bodies), and
the layouts cover the native layer's row walker: contiguous rows, strided rows (gathered),
Fortran order, negative strides, a non-last axis and several axes at once.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import assert_ulp_close

import logitkit as lk
from logitkit import reference as ref

SIZES = [*range(1, 18), 31, 32, 33, 63, 64, 65, 127, 128, 129, 1000, 4099]

# float32 is judged against the float64 reference rounded once, so these bound the native
# error itself (measured worst cases: see README, "Accuracy"). For float64 the reference's
# own rounding (it does not compensate x - max) dominates, hence 1e-13 relative = 450 ulp.
ULPS = {
    ("softmax", np.float32): 4,
    ("log_softmax", np.float32): 4,
    ("logsumexp", np.float32): 2,
    ("softmax", np.float64): 450,
    ("log_softmax", np.float64): 450,
    ("logsumexp", np.float64): 450,
}


def logits(rng: np.random.Generator, shape, dtype, scale: float = 8.0) -> np.ndarray:
    return (rng.standard_normal(shape) * scale).astype(dtype)


def check(func: str, got, x, dtype, **kwargs) -> None:
    expected = getattr(ref, func)(x, **kwargs)
    # Log-space results near 0 come from cancellation (m + log S, or x - m - log S): judge
    # those against the magnitude of the inputs, as any float implementation must be.
    log_space = func in ("log_softmax", "logsumexp") and np.size(x) > 0
    abs_scale = float(np.nanmax(np.abs(np.where(np.isfinite(x), x, 0)))) if log_space else 0
    assert_ulp_close(got, expected, dtype, ULPS[(func, np.dtype(dtype).type)], abs_scale)


@pytest.mark.parametrize("func", ["softmax", "log_softmax", "logsumexp"])
def test_row_lengths_around_vector_widths(isa, dtype, func):
    rng = np.random.default_rng(1)
    for n in SIZES:
        for scale in (1.0, 30.0):
            x = logits(rng, (3, n), dtype, scale)
            got = getattr(lk, func)(x, axis=-1)
            assert got.dtype == dtype
            check(func, got, x, dtype, axis=-1)


@pytest.mark.parametrize("func", ["softmax", "log_softmax", "logsumexp"])
def test_long_rows_use_chunks(isa, dtype, func):
    # Longer than the cache-resident limit: statistics are merged over fixed chunks.
    n = lk._core.long_row_bytes // np.dtype(dtype).itemsize * 2 + 12345
    rng = np.random.default_rng(2)
    x = logits(rng, (2, n), dtype, 4.0)
    check(func, getattr(lk, func)(x), x, dtype, axis=-1)


def _layouts(rng, dtype):
    base = logits(rng, (6, 7, 37), dtype)
    yield "c", base, -1
    yield "fortran", np.asfortranarray(base), -1
    yield "fortran-axis0", np.asfortranarray(base), 0
    yield "axis0", base, 0
    yield "axis1", base, 1
    yield "sliced", base[::2, 1:, ::3], -1
    yield "negative", base[::-1, :, ::-1], -1
    yield "negative-axis1", base[:, ::-2, :], 1
    yield "tuple", base, (0, 2)
    yield "tuple-noncontiguous", base[:, ::2, :], (2, 0)
    yield "none", base, None
    yield "empty-tuple", base, ()


@pytest.mark.parametrize("func", ["softmax", "log_softmax", "logsumexp"])
def test_layouts_and_axes(isa, dtype, func):
    rng = np.random.default_rng(3)
    for name, x, axis in _layouts(rng, dtype):
        x_before = x.copy()
        got = getattr(lk, func)(x, axis=axis)
        np.testing.assert_array_equal(x, x_before, err_msg=f"{name}: input modified")
        expected_shape = ref.logsumexp(x, axis=axis).shape if func == "logsumexp" else x.shape
        assert np.shape(got) == expected_shape, name
        check(func, got, x, dtype, axis=axis)


@pytest.mark.parametrize("func", ["softmax", "log_softmax"])
@pytest.mark.parametrize("layout", ["c", "fortran", "strided"])
def test_in_place(isa, dtype, func, layout):
    rng = np.random.default_rng(4)
    x = logits(rng, (9, 131), dtype)
    if layout == "fortran":
        x = np.asfortranarray(x)
    elif layout == "strided":
        x = np.ascontiguousarray(np.concatenate([x, x], axis=1))[:, ::2]
    expected = getattr(ref, func)(x.copy())
    for axis in (-1, 0):
        y = x.copy(order="K") if layout != "strided" else x.copy()
        res = getattr(lk, func)(y, axis=axis, out=y)
        assert res is y
        check(func, y, x, dtype, axis=axis)
    del expected


@pytest.mark.parametrize("func", ["softmax", "log_softmax"])
def test_out_with_other_layout(isa, dtype, func):
    rng = np.random.default_rng(5)
    x = logits(rng, (40, 33), dtype)
    out = np.empty((33, 40), dtype=dtype).T  # Fortran-ordered output for C-ordered input
    res = getattr(lk, func)(x, out=out)
    assert res is out
    check(func, out, x, dtype)


def test_partially_overlapping_out(isa):
    x = np.linspace(-3, 3, 40).reshape(4, 10)
    expected = ref.softmax(x[:, :9].copy())
    buf = x.copy()
    out = buf[:, 1:]
    lk.softmax(buf[:, :9], out=out)
    assert_ulp_close(out, expected, np.float64, 64)


def test_logsumexp_weights(isa, dtype):
    rng = np.random.default_rng(6)
    for n in (1, 7, 33, 1000):
        x = logits(rng, (5, n), dtype, 3.0)
        b = rng.uniform(-1, 2, size=(5, n)).astype(dtype)
        b[:, ::4] = 0
        for return_sign in (False, True):
            got = lk.logsumexp(x, b=b, return_sign=return_sign)
            exp = ref.logsumexp(x, b=b, return_sign=return_sign)
            if return_sign:
                np.testing.assert_array_equal(got[1], exp[1])
                got, exp = got[0], exp[0]
            # Cancellation between weights of both signs amplifies rounding: judge absolutely.
            assert_ulp_close(got, exp, dtype, 64, abs_scale=float(np.nanmax(np.abs(x))) + 1)


def test_logsumexp_broadcast_weights_and_keepdims(isa):
    rng = np.random.default_rng(7)
    x = rng.standard_normal((4, 5, 6))
    b = rng.uniform(0.1, 2.0, size=(5, 1))
    for axis in (0, 1, 2, (0, 2), None):
        for keepdims in (False, True):
            got = lk.logsumexp(x, axis=axis, b=b, keepdims=keepdims)
            exp = ref.logsumexp(x, axis=axis, b=b, keepdims=keepdims)
            assert np.shape(got) == np.shape(exp)
            assert_ulp_close(got, exp, np.float64, 8)


@pytest.mark.parametrize(
    "func", ["sigmoid", "log_sigmoid", "softplus", "logit", "expit", "log_expit"]
)
def test_elementwise(isa, dtype, func):
    rng = np.random.default_rng(8)
    if func == "logit":
        x = np.concatenate([rng.uniform(0, 1, 5000), [0, 1, 0.5, 0.3, 0.7, -0.1, 1.1, np.nan]])
        x = np.concatenate([x, np.logspace(-40, -1, 200)]).astype(dtype)
    else:
        x = np.concatenate([rng.standard_normal(3000) * 5, rng.uniform(-120, 120, 3000)])
        x = np.concatenate([x, [0, -0.0, np.inf, -np.inf, np.nan, 1e-30, -1e-30]]).astype(dtype)
        if dtype == np.float64:
            x = np.concatenate([x, rng.uniform(-800, 800, 2000)])
    for n in (1, 3, 7, 17, 33, x.size):
        got = getattr(lk, func)(x[:n])
        assert got.dtype == dtype
        assert_ulp_close(got, getattr(ref, func)(x[:n]), dtype, 4)


def test_elementwise_layouts(isa):
    rng = np.random.default_rng(9)
    x = rng.standard_normal((7, 9, 5))
    for view in (x, np.asfortranarray(x), x[::2, ::-1], x.transpose(2, 0, 1)):
        got = lk.sigmoid(view)
        assert got.shape == view.shape
        assert_ulp_close(got, ref.sigmoid(view), np.float64, 4)
        out = np.empty_like(view)
        assert lk.softplus(view, out=out) is out
        assert_ulp_close(out, ref.softplus(view), np.float64, 4)
    y = x.copy()
    lk.log_sigmoid(y, out=y)
    assert_ulp_close(y, ref.log_sigmoid(x), np.float64, 4)


def test_logsumexp_x_broadcast_against_b(isa):
    x = np.array([0.5, -1.0, 2.0])
    b = np.array([[1.0, 2.0, 0.5], [0.0, 1.0, 3.0]])
    got = lk.logsumexp(x, b=b)
    assert got.shape == (2,)
    assert_ulp_close(got, ref.logsumexp(x, b=b), np.float64, 4)
