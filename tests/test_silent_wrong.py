"""Inputs that once gave a wrong answer without an error: each test here failed before its fix.

The oracles are exact values (log n for n equal logits), the float64 reference, or the same
call on an equivalent input (a pickled copy, a native-order copy, no cap for an infinite cap).
"""

from __future__ import annotations

import math
import pickle

import numpy as np
import pytest

import logitkit as lk
from logitkit import reference as ref

# More entries equal to the row's max than a float32 lane can count (2^24): the scalar
# table has one lane, so one row of 3 * 2^23 ties overflows it; the vector tables share the
# same flushing code.
MANY_TIES = 3 * 2**23


@pytest.fixture(scope="module")
def ones_row() -> np.ndarray:
    return np.ones(MANY_TIES, np.float32)


def test_entropy_counts_every_tie_on_long_rows(isa, ones_row):
    got = lk.entropy_from_logits(ones_row)
    assert got == pytest.approx(math.log(MANY_TIES), rel=1e-6)
    assert lk.logsumexp(ones_row) == pytest.approx(1 + math.log(MANY_TIES), rel=1e-6)


def test_cross_entropy_counts_every_tie_on_long_rows(isa, ones_row):
    z = ones_row.reshape(1, -1)
    for smoothing in (0.0, 0.1):  # the plain path and the swept one count ties separately
        loss, grad = lk.cross_entropy_with_grad(z, np.array([0]), label_smoothing=smoothing)
        assert loss == pytest.approx(math.log(MANY_TIES), rel=1e-6)
        # p - y' with the smoothed target y' = (1 - a) onehot + a / C
        p = 1.0 / MANY_TIES
        assert grad[0, 1] == pytest.approx(p - smoothing * p, rel=1e-5)
        assert grad[0, -1] == pytest.approx(p - smoothing * p, rel=1e-5)
        want0 = p - (1 - smoothing) - smoothing * p
        assert grad[0, 0] == pytest.approx(want0, rel=1e-5)


def test_column_kernels_count_every_tie(isa):
    # axis=0 of a C array runs the column kernels, which count ties per column.
    x = np.ones((MANY_TIES, 2), np.float32)
    want = math.log(MANY_TIES)
    np.testing.assert_allclose(lk.entropy_from_logits(x, axis=0), [want, want], rtol=1e-6)
    np.testing.assert_allclose(lk.logsumexp(x, axis=0), [1 + want, 1 + want], rtol=1e-6)
    loss = lk.cross_entropy(x, np.array([0, 5]), axis=0, reduction="none")
    np.testing.assert_allclose(loss, [want, want], rtol=1e-6)


@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.uint8, np.bool_])
def test_inplace_gradient_refuses_integer_logits_and_leaves_them(dtype):
    logits = np.array([[1, 0, 1], [0, 1, 1]], dtype=dtype)
    before = logits.copy()
    with pytest.raises(
        TypeError, match=r"^cross_entropy_with_grad\(\): inplace=True needs floating logits"
    ):
        lk.cross_entropy_with_grad(logits, np.array([0, 1]), inplace=True)
    np.testing.assert_array_equal(logits, before)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_arrays_that_went_through_pickle(dtype):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((4, 7)).astype(dtype)
    t = np.array([0, 3, 6, 2])
    y = pickle.loads(pickle.dumps(x))
    assert y.dtype == x.dtype and y.dtype is not x.dtype  # equal, not the same object
    np.testing.assert_array_equal(lk.logsumexp(y), lk.logsumexp(x))
    np.testing.assert_array_equal(lk.softmax(y), lk.softmax(x))
    np.testing.assert_array_equal(lk.sigmoid(y), lk.sigmoid(x))
    np.testing.assert_array_equal(lk.entropy_from_logits(y), lk.entropy_from_logits(x))
    assert lk.cross_entropy(y, pickle.loads(pickle.dumps(t))) == lk.cross_entropy(x, t)
    out = pickle.loads(pickle.dumps(np.empty_like(x)))
    np.testing.assert_array_equal(lk.softmax(x, out=out), lk.softmax(x))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("cap", [np.inf, 1e300, float("inf")])
def test_infinite_or_huge_softcap_is_no_cap(dtype, cap):
    rng = np.random.default_rng(2)
    z = (4 * rng.standard_normal((5, 9))).astype(dtype)
    t = rng.integers(0, 9, 5)
    loss, grad = lk.cross_entropy_with_grad(z, t, softcap=cap)
    want_loss, want_grad = lk.cross_entropy_with_grad(z, t)
    assert np.isfinite(loss) and np.all(np.isfinite(grad))
    # 1e300 is applied as a cap (in float64 for float32 logits): equal to within rounding
    np.testing.assert_allclose(loss, want_loss, rtol=4 * np.finfo(dtype).eps)
    np.testing.assert_allclose(grad, want_grad, rtol=8 * np.finfo(dtype).eps, atol=1e-30)
    ref_loss = ref.cross_entropy(z.astype(np.float64), t, softcap=cap)
    np.testing.assert_allclose(loss, ref_loss, rtol=4 * np.finfo(dtype).eps)


def test_softcap_beyond_float32_still_caps_float32_logits():
    # a cap of 1e39 is not a float32 number, but it does cap logits near float32's max
    z = np.array([[3e38, 1e38, -2e38, 0.0]], np.float32)
    t = np.array([1])
    loss, grad = lk.cross_entropy_with_grad(z, t, softcap=1e39)
    want_loss, want_grad = ref.cross_entropy_with_grad(z.astype(np.float64), t, softcap=1e39)
    np.testing.assert_allclose(loss, want_loss, rtol=1e-6)
    np.testing.assert_allclose(grad, want_grad, rtol=1e-6, atol=1e-30)
    assert loss.dtype == np.float32 and grad.dtype == np.float32


def test_logsumexp_backward_takes_the_wider_precision():
    rng = np.random.default_rng(3)
    x16 = rng.standard_normal((3, 50)).astype(np.float16)
    g = rng.standard_normal(3).astype(np.float32)
    got = lk.logsumexp_backward(g, x16)
    assert got.dtype == np.float32
    want = ref.softmax(x16.astype(np.float64)) * g.astype(np.float64)[:, None]
    # float32 precision (before: float16's, an error near 1e-4)
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-9)


def test_logsumexp_backward_shapes_without_a_forward_pass():
    x = np.zeros((2, 3, 4))
    assert lk.logsumexp_backward(np.ones((2, 4)), x, axis=1).shape == x.shape
    assert lk.logsumexp_backward(np.ones((2, 1, 4)), x, axis=1, keepdims=True).shape == x.shape
    assert lk.logsumexp_backward(np.float64(1.0), x, axis=None).shape == x.shape
    assert lk.logsumexp_backward(np.ones(3), x, axis=(0, 2)).shape == x.shape
    assert lk.logsumexp_backward(2.0, np.float64(5.0)) == 2.0
    with pytest.raises(ValueError, match=r"^logsumexp_backward\(\): grad must have shape \(2, 4\)"):
        lk.logsumexp_backward(np.ones((2, 3)), x, axis=1)


def _storage_dtypes() -> list[np.dtype]:
    dtypes = [np.dtype(np.float16)]
    try:
        import ml_dtypes
    except ImportError:
        return dtypes
    return dtypes + [np.dtype(ml_dtypes.bfloat16)]


@pytest.mark.parametrize("dtype", _storage_dtypes(), ids=str)
def test_16bit_gradient_keeps_the_class_axis_in_place(dtype):
    rng = np.random.default_rng(4)
    z = rng.standard_normal((2, 3, 1)).astype(dtype)
    t = np.array([[2], [0]])
    loss, grad = lk.cross_entropy_with_grad(z, t, axis=1)
    assert grad.shape == (2, 3, 1) and grad.dtype == dtype
    _, want = lk.cross_entropy_with_grad(z.astype(np.float32), t, axis=1)
    np.testing.assert_array_equal(grad, want.astype(dtype))


@pytest.mark.parametrize("dtype", _storage_dtypes(), ids=str)
def test_masked_logsumexp_keeps_16bit_dtype(dtype):
    x = np.arange(6, dtype=np.float32).reshape(2, 3).astype(dtype)
    mask = np.array([True, False, True])
    got = lk.logsumexp(x, where=mask)
    assert got.dtype == dtype
    assert lk.logsumexp(x).dtype == dtype
    want = ref.logsumexp(x.astype(np.float64)[:, [0, 2]])
    np.testing.assert_allclose(got.astype(np.float64), want, rtol=1e-2)


def test_sigmoid_backward_of_scalars():
    assert lk.sigmoid_backward(1.0, 0.5) == 0.25
    got = lk.sigmoid_backward(np.float32(2.0), np.float32(0.5))
    assert got == np.float32(0.5) and got.dtype == np.float32
    assert lk.sigmoid_backward(np.array(4.0), np.array(0.5)) == 1.0


def test_long_double_targets_and_0d_entropy_raise():
    z = np.zeros((2, 3))
    soft = np.full((2, 3), 1 / 3, dtype=np.longdouble)
    with pytest.raises(TypeError, match=r"^cross_entropy\(\): target must be a real floating"):
        lk.cross_entropy(z, soft)
    with pytest.raises(TypeError, match=r"^cross_entropy_with_grad\(\): target must be"):
        lk.cross_entropy_with_grad(z, soft)
    with pytest.raises(ValueError, match=r"^entropy_from_logits\(\): z must have at least one"):
        lk.entropy_from_logits(np.array(1.0))
    with pytest.raises(ValueError, match=r"^entropy_from_logits\(\): z must have at least one"):
        ref.entropy_from_logits(np.array(1.0))


def test_masked_arrays_are_refused_not_unmasked():
    m = np.ma.masked_array([1.0, 2.0, 100.0], mask=[False, False, True])
    calls = [
        lambda: lk.logsumexp(m),
        lambda: lk.softmax(m),
        lambda: lk.log_softmax(m),
        lambda: lk.sigmoid(m),
        lambda: lk.entropy_from_logits(m),
        lambda: lk.cross_entropy(m.reshape(1, 3), np.array([0])),
        lambda: lk.entropy(m),
        lambda: lk.logsumexp(np.ones(3), b=m),
    ]
    for call in calls:
        with pytest.raises(TypeError, match=r"must not be a masked array"):
            call()
    # what the message advises gives the masked answer
    got = lk.logsumexp(m.data, where=~m.mask)
    assert got == pytest.approx(ref.logsumexp(np.array([1.0, 2.0])), rel=1e-15)


@pytest.mark.parametrize("code", [">f4", ">f8", ">i4"])
def test_non_native_byte_order_computes_the_same(code):
    rng = np.random.default_rng(5)
    native = (rng.standard_normal((3, 6)) * 4).astype(np.dtype(code).newbyteorder("="))
    swapped = native.astype(code)
    assert not swapped.dtype.isnative
    np.testing.assert_array_equal(lk.softmax(swapped), lk.softmax(native))
    np.testing.assert_array_equal(lk.logsumexp(swapped, axis=0), lk.logsumexp(native, axis=0))
    np.testing.assert_array_equal(lk.sigmoid(swapped), lk.sigmoid(native))
    t = np.array([1, 2, 3]).astype(">i8")
    assert lk.cross_entropy(swapped, t) == lk.cross_entropy(native, t.astype(np.int64))


@pytest.mark.filterwarnings("ignore:the matrix subclass:PendingDeprecationWarning")
def test_matrix_input_gives_plain_arrays():
    m = np.matrix([[1.0, 2.0], [3.0, 5.0]])
    got = lk.softmax(m)
    assert type(got) is np.ndarray
    np.testing.assert_array_equal(got, lk.softmax(np.asarray(m)))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_rel_entr_and_kl_div_for_ratios_far_below_one(isa, dtype):
    # x / y in (1e-6, 1/2): log1p(x / y - 1) cancels there; SciPy's rel_entr(1e-5, 0.33404)
    # is exact to the last bit, and logitkit's was 180 ulp off (1.4e-4 relative in float32)
    mpmath = pytest.importorskip("mpmath")
    rng = np.random.default_rng(6)
    y = rng.uniform(0.05, 1.0, 400).astype(dtype)
    ratio = np.exp(rng.uniform(np.log(1e-6), np.log(0.5), 400))
    x = (ratio * y).astype(dtype)
    rel, kl = lk.rel_entr(x, y), lk.kl_div_elementwise(x, y)
    with mpmath.workdps(40):
        for i in range(x.size):
            xi, yi = mpmath.mpf(float(x[i])), mpmath.mpf(float(y[i]))
            want_rel = xi * mpmath.log(xi / yi)
            want_kl = want_rel - xi + yi
            # rel_entr has no cancellation: 2 ulp of the value. kl_div_elementwise adds
            # x log(x / y) < 0 to y - x > 0, so its rounding scales with the larger term.
            kl_scale = max(abs(want_rel), abs(yi - xi))
            for got, want, scale in ((rel[i], want_rel, want_rel), (kl[i], want_kl, kl_scale)):
                ulp = float(np.spacing(dtype(abs(float(scale)))))
                assert abs(float(got) - float(want)) <= 2 * ulp, (float(x[i]), float(y[i]))


def _unaligned(a: np.ndarray) -> np.ndarray:
    """A copy of a whose data starts one byte past an aligned address, as arrays received
    through pickle (Dask workers, multiprocessing) may."""
    raw = np.zeros(a.nbytes + 1, np.uint8)
    out = raw[1:].view(a.dtype).reshape(a.shape)
    out[...] = a
    assert not out.flags.aligned or a.dtype.alignment == 1
    return out


def test_unaligned_targets_weights_and_upstream_gradients():
    # The kernels read int64 targets, weights and per-row gradient scales as aligned arrays
    # (UBSan reported the misaligned loads); unaligned ones are copied first.
    rng = np.random.default_rng(7)
    z = rng.standard_normal((6, 5))
    t, w, g = rng.integers(0, 5, 6), rng.random(5) + 0.5, rng.random(6)
    want = lk.cross_entropy_with_grad(z, t, weight=w, reduction="none", grad_output=g)
    got = lk.cross_entropy_with_grad(
        _unaligned(z),
        _unaligned(t),
        weight=_unaligned(w),
        reduction="none",
        grad_output=_unaligned(g),
    )
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_array_equal(got[1], want[1])
    y = _unaligned(rng.random((6, 5)))
    np.testing.assert_array_equal(
        lk.binary_cross_entropy_with_logits(_unaligned(z), y, pos_weight=_unaligned(w)),
        lk.binary_cross_entropy_with_logits(z, np.array(y), pos_weight=w),
    )


@pytest.mark.parametrize("dtype", _storage_dtypes(), ids=str)
def test_unaligned_16bit_arrays(dtype):
    # 16-bit numbers are read and written with aligned 2-byte loads; unaligned inputs and
    # outputs go through aligned copies (UBSan reported the loads)
    rng = np.random.default_rng(8)
    x = rng.standard_normal((5, 40)).astype(dtype)
    xu, t = _unaligned(x), rng.integers(0, 40, 5)
    np.testing.assert_array_equal(lk.softmax(xu), lk.softmax(x))
    np.testing.assert_array_equal(lk.logsumexp(xu), lk.logsumexp(x))
    np.testing.assert_array_equal(lk.sigmoid(xu), lk.sigmoid(x))
    np.testing.assert_array_equal(lk.entropy_from_logits(xu), lk.entropy_from_logits(x))
    loss_u, grad_u = lk.cross_entropy_with_grad(xu, t)
    loss, grad = lk.cross_entropy_with_grad(x, t)
    assert loss_u == loss
    np.testing.assert_array_equal(grad_u, grad)
    out = _unaligned(np.zeros_like(x))
    np.testing.assert_array_equal(lk.log_softmax(x, out=out), lk.log_softmax(x))
    np.testing.assert_array_equal(lk.sigmoid(x, out=out), lk.sigmoid(x))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_softcap_gradient_where_tanh_saturates(isa, dtype):
    # d(c tanh(z / c))/dz = 1 - tanh^2 was formed by cancellation: at z / c = 5 the float32
    # gradient was 4608 ulp off, at z / c = 10 it was 0 instead of 6e-9 (times p)
    z = np.array([[5.0, 0.0, -7.0, 10.0, 2.0], [-12.0, 1.0, 0.5, 9.0, -3.0]], dtype)
    t = np.array([1, 4])
    got_loss, got = lk.cross_entropy_with_grad(z, t, softcap=1.0, reduction="sum")
    want_loss, want = ref.cross_entropy_with_grad(
        z.astype(np.float64), t, softcap=1.0, reduction="sum"
    )
    np.testing.assert_allclose(got_loss, want_loss, rtol=8 * np.finfo(dtype).eps)
    np.testing.assert_allclose(got, want, rtol=16 * np.finfo(dtype).eps, atol=0)


def test_linear_softcap_gradient_with_split_vocabulary():
    # the fused linear path splits the classes in blocks and applies the softcap's derivative
    # itself: it must match the kernel on the explicit logits, saturated entries included
    rng = np.random.default_rng(9)
    h = np.abs(rng.standard_normal((6, 8)))
    w = 4 * rng.standard_normal((40, 8))
    w[:5] = 6.0  # classes 0-4: z / cap near 20 on every row, where tanh rounds to 1
    t = rng.integers(5, 40, 6)
    _, gh, gw, _ = lk.linear_cross_entropy_with_grad(h, w, t, softcap=2.0, vocab_chunk_size=7)
    _, g = lk.cross_entropy_with_grad(h @ w.T, t, softcap=2.0)
    assert np.all(g[:, :5] > 0)  # tiny, but not the 0 of a cancelled 1 - tanh^2
    np.testing.assert_allclose(gw, g.T @ h, rtol=1e-10, atol=0)
    np.testing.assert_allclose(gh, g @ w, rtol=1e-10, atol=1e-15)
