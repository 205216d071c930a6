"""Reductions along an axis that is not the contiguous one run the column kernels (vectors
across the other, contiguous axis), and many short rows are transposed in blocks to run the
same kernels. Both against the reference, with special values in some columns."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import assert_ulp_close

import logitkit as lk
from logitkit import reference as ref

FUNCS = ["softmax", "log_softmax", "logsumexp"]


def ulps(dtype) -> float:
    # float32 against the float64 reference rounded once bounds the native error; in float64
    # the reference's own rounding (x - max is not compensated) dominates, as in
    # test_native_vs_reference
    return 8 if dtype == np.float32 else 450


def check(func, x, axis, dtype):
    got = getattr(lk, func)(x, axis=axis)
    want = getattr(ref, func)(x, axis=axis)
    assert got.shape == want.shape and got.dtype == want.dtype
    finite = np.abs(x[np.isfinite(x)])
    scale = float(finite.max()) if finite.size else 1.0
    assert_ulp_close(got, want, dtype, ulps(dtype), abs_scale=scale if func != "softmax" else 0.0)


def with_special_columns(x: np.ndarray) -> np.ndarray:
    """Column 0 gets a NaN, 1 a +inf, 2 two +inf, 3 only -inf, 4 some -inf (axis 0 reduced)."""
    x = x.copy()
    n, w = x.shape
    if w > 4 and n > 1:
        x[n // 2, 0] = np.nan
        x[0, 1] = np.inf
        x[[0, -1], 2] = np.inf
        x[:, 3] = -np.inf
        x[::2, 4] = -np.inf
    return x


@pytest.mark.parametrize("func", FUNCS)
@pytest.mark.parametrize("n", [1, 3, 50])
@pytest.mark.parametrize("width", [1, 7, 8, 9, 33, 300])
def test_axis_zero(isa, dtype, func, n, width):
    x = (np.random.default_rng(n * 1000 + width).standard_normal((n, width)) * 6).astype(dtype)
    check(func, x, 0, dtype)
    with np.errstate(invalid="ignore"):
        check(func, with_special_columns(x), 0, dtype)


@pytest.mark.parametrize("func", FUNCS)
def test_middle_axis_and_strided_columns(isa, dtype, func):
    x = (np.random.default_rng(3).standard_normal((4, 37, 19)) * 6).astype(dtype)
    check(func, x, 1, dtype)
    check(func, x[:, :, ::2], 1, dtype)  # columns not contiguous: the row path
    check(func, np.asfortranarray(x), 2, dtype)


@pytest.mark.parametrize("func", ["softmax", "log_softmax"])
def test_axis_zero_in_place(isa, dtype, func):
    x = (np.random.default_rng(4).standard_normal((40, 70)) * 6).astype(dtype)
    want = getattr(lk, func)(x, axis=0)
    y = x.copy()
    assert getattr(lk, func)(y, axis=0, out=y) is y
    np.testing.assert_array_equal(y, want)


@pytest.mark.parametrize("func", FUNCS)
@pytest.mark.parametrize("n", [1, 2, 5, 10, 16, 17])
def test_short_rows(isa, dtype, func, n):
    # 1003 rows: the last block ends with rows that do not fill a vector of rows
    x = (np.random.default_rng(n).standard_normal((1003, n)) * 6).astype(dtype)
    check(func, x, -1, dtype)
    x[3, 0] = np.nan
    x[5, :] = -np.inf
    x[7, n // 2] = np.inf
    with np.errstate(invalid="ignore"):
        check(func, x, -1, dtype)
    # the rows of a block need not be adjacent, nor in increasing order, nor distinct
    check(func, x[::3], -1, dtype)
    check(func, x[::-2], -1, dtype)
    check(func, np.broadcast_to(x[11], (300, n)), -1, dtype)


@pytest.mark.parametrize("func", ["softmax", "log_softmax"])
def test_axis_zero_in_place_with_special_columns(isa, dtype, func):
    x = (np.random.default_rng(5).standard_normal((9, 20)) * 3).astype(dtype)
    with np.errstate(invalid="ignore"):
        x = with_special_columns(x)
        want = getattr(ref, func)(x, axis=0)
        y = x.copy()
        getattr(lk, func)(y, axis=0, out=y)
    assert_ulp_close(y, want, dtype, ulps(dtype), abs_scale=8.0 if func == "log_softmax" else 0)


# ---- entropy and the plain cross-entropy take the same column and short-row paths ----------


def loss_grad_case(shape, axis, seed, dtype):
    """Logits with special classes in a few rows, targets with ignored rows, class weights."""
    rng = np.random.default_rng(seed)
    z = (rng.standard_normal(shape) * 4).astype(dtype)
    zc = np.moveaxis(z, axis, -1)  # a view: writes land in z
    n = zc.shape[-1]
    flat = [np.unravel_index(i, zc.shape[:-1]) for i in range(min(6, zc[..., 0].size))]
    specials = [np.nan, np.inf, -np.inf, -np.inf, 30.0, -np.inf]
    for k, idx in enumerate(flat[: len(specials)]):
        if k == 2:
            zc[idx] = -np.inf  # a row of -inf only
        elif k == 4:
            zc[idx][n // 2] = 1e30  # a finite max far above the rest
        else:
            zc[idx][k % n] = specials[k]
    t = rng.integers(0, n, zc.shape[:-1])
    t.reshape(-1)[1::7] = -100  # ignored rows
    w = (rng.random(n) + 0.5).astype(dtype)
    return z, t, w


LOSS_LAYOUTS = [((64, 300), 0), ((5, 11, 37), 1), ((3000, 10), -1), ((700, 3), -1)]


@pytest.mark.parametrize(("shape", "axis"), LOSS_LAYOUTS)
def test_entropy_columns_and_short_rows(isa, dtype, shape, axis):
    z, _, _ = loss_grad_case(shape, axis, 11, dtype)
    with np.errstate(invalid="ignore", over="ignore"):
        got = lk.entropy_from_logits(z, axis=axis)
        want = ref.entropy_from_logits(z, axis=axis)
    assert_ulp_close(got, want, dtype, ulps(dtype), abs_scale=8.0)


@pytest.mark.parametrize(("shape", "axis"), LOSS_LAYOUTS)
@pytest.mark.parametrize("options", [{}, {"weight": True, "z_loss": 1e-3}])
def test_cross_entropy_columns_and_short_rows(isa, dtype, shape, axis, options):
    z, t, w = loss_grad_case(shape, axis, 12, dtype)
    kw = {"axis": axis, "reduction": "none", "z_loss": options.get("z_loss", 0.0)}
    if options.get("weight"):
        kw["weight"] = w
    g_out = np.random.default_rng(0).standard_normal(t.shape)
    with np.errstate(invalid="ignore", over="ignore"):
        loss, grad = lk.cross_entropy_with_grad(z, t, grad_output=g_out, **kw)
        want_loss, want_grad = ref.cross_entropy_with_grad(z, t, grad_output=g_out, **kw)
        loss_only = lk.cross_entropy(z, t, **kw)
    assert_ulp_close(loss, want_loss, dtype, ulps(dtype), abs_scale=8.0)
    np.testing.assert_array_equal(loss_only, loss)
    assert grad.shape == z.shape and grad.dtype == z.dtype
    assert_ulp_close(grad, want_grad, dtype, ulps(dtype), abs_scale=1.0)
    # in place: the gradient overwrites the logits along the same path
    z2 = z.copy()
    with np.errstate(invalid="ignore", over="ignore"):
        lk.cross_entropy_with_grad(z2, t, grad_output=g_out, inplace=True, **kw)
    np.testing.assert_array_equal(z2, grad)


def test_logsumexp_near_zero_keeps_absolute_precision(isa):
    # max + log(sum) nearly cancel: the column finish must be done in double
    n = 20000
    x = (np.random.default_rng(13).standard_normal((n, 16)) * 1e-3 - np.log(n)).astype(np.float32)
    want = ref.logsumexp(x.astype(np.float64), axis=0)
    assert np.max(np.abs(want)) < 1e-4  # near 0, where cancellation shows
    # the roundings of x - max (2^-24 |x - max| <= 3e-10 here) bound what any float32 sum
    # of these terms can do; a float32 log of the sum would be off by 5e-7
    np.testing.assert_allclose(lk.logsumexp(x, axis=0), want, rtol=0, atol=1e-9)


def test_losses_over_many_column_chunks_and_threads(isa):
    # (2, 60, 4500) along axis 1: each slab of 4500 columns is split into several chunks,
    # whose rows (targets, weights, gradient scales) must follow the chunk, on two threads
    z, t, w = loss_grad_case((2, 60, 4500), 1, 15, np.float32)
    g_out = np.random.default_rng(1).standard_normal(t.shape)
    kw = {"axis": 1, "reduction": "none", "weight": w, "z_loss": 1e-3, "threads": 2}
    with np.errstate(invalid="ignore", over="ignore"):
        loss, grad = lk.cross_entropy_with_grad(z, t, grad_output=g_out, **kw)
        kw.pop("threads")
        want_loss, want_grad = ref.cross_entropy_with_grad(z, t, grad_output=g_out, **kw)
        ent = lk.entropy_from_logits(z, axis=1, threads=2)
        want_ent = ref.entropy_from_logits(z, axis=1)
    assert_ulp_close(loss, want_loss, np.float32, 8, abs_scale=8.0)
    assert_ulp_close(grad, want_grad, np.float32, 8, abs_scale=1.0)
    assert_ulp_close(ent, want_ent, np.float32, 8, abs_scale=8.0)


@pytest.mark.parametrize("shape", [(300, 5000), (2, 3, 700, 97)])
def test_columns_do_not_depend_on_the_thread_count(isa, shape):
    # how the columns are split between threads changes with the thread count; no result may
    z = (np.random.default_rng(16).standard_normal(shape) * 5).astype(np.float32)
    t = np.random.default_rng(17).integers(0, shape[-2], shape[:-2] + shape[-1:])
    results = []
    for threads in (1, 2, 3):
        kw = {"axis": -2, "threads": threads}
        loss, grad = lk.cross_entropy_with_grad(z, t, reduction="none", **kw)
        results.append(
            [
                lk.softmax(z, **kw),
                lk.log_softmax(z, **kw),
                lk.logsumexp(z, **kw),
                lk.entropy_from_logits(z, **kw),
                loss,
                grad,
            ]
        )
    for other in results[1:]:
        for got, want in zip(other, results[0], strict=True):
            np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("row", [0, 5, 8, 10])
def test_cross_entropy_column_with_a_nan_in_any_row(isa, dtype, row):
    # the column max may pass over a NaN (vector max keeps the other operand); the loss and
    # the gradient, also computed in place over the logits, must still be NaN for that column
    z = (np.random.default_rng(row).standard_normal((11, 40)) * 3).astype(dtype)
    z[row, 6] = np.nan
    t = np.random.default_rng(18).integers(0, 11, 40)
    kw = {"axis": 0, "reduction": "none"}
    with np.errstate(invalid="ignore"):
        want_loss, want_grad = ref.cross_entropy_with_grad(z, t, **kw)
        loss, grad = lk.cross_entropy_with_grad(z, t, **kw)
        in_place = z.copy()
        loss2, grad2 = lk.cross_entropy_with_grad(in_place, t, grad_out=in_place, **kw)
    assert np.isnan(loss[6]) and np.isnan(grad[:, 6]).all()
    assert_ulp_close(loss, want_loss, dtype, ulps(dtype), abs_scale=8.0)
    assert_ulp_close(grad, want_grad, dtype, ulps(dtype), abs_scale=1.0)
    assert grad2 is in_place
    np.testing.assert_array_equal(loss2, loss)
    np.testing.assert_array_equal(grad2, grad)
