"""The fused cross-entropy against PyTorch autograd, finite differences and exact math."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from conftest import assert_ulp_close, dtype_named
from hypothesis import given, settings
from hypothesis import strategies as st

import logitkit as lk
from logitkit import reference as ref

torch = pytest.importorskip("torch")
F = torch.nn.functional


def torch_loss_and_grad(z, target, reduction="mean", **kwargs):
    zt = torch.tensor(z, dtype=torch.float64, requires_grad=True)
    tt = torch.tensor(target)
    kw = {
        k: torch.tensor(v, dtype=torch.float64) if isinstance(v, np.ndarray) else v
        for k, v in kwargs.items()
    }
    loss = F.cross_entropy(zt, tt, reduction=reduction, **kw)
    loss.sum().backward()
    return loss.detach().numpy(), zt.grad.numpy()


OPTIONS = list(itertools.product([False, True], [-100, 3], [0.0, 0.3], ["mean", "sum", "none"]))


@pytest.mark.parametrize("weighted, ignore_index, smoothing, reduction", OPTIONS)
def test_index_targets_match_torch(isa, weighted, ignore_index, smoothing, reduction):
    # str hashes differ between processes: seed from the position in the option list instead
    rng = np.random.default_rng(OPTIONS.index((weighted, ignore_index, smoothing, reduction)))
    n, c = 23, 37
    z = rng.standard_normal((n, c)) * 4
    t = rng.integers(0, c, n)
    t[::5] = ignore_index
    kwargs = {"ignore_index": ignore_index, "label_smoothing": smoothing}
    if weighted:
        kwargs["weight"] = rng.uniform(0.2, 3.0, c)
    want_loss, want_grad = torch_loss_and_grad(z, t, reduction, **kwargs)
    loss, grad = lk.cross_entropy_with_grad(z, t, reduction=reduction, **kwargs)
    np.testing.assert_allclose(loss, want_loss, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(grad, want_grad, rtol=1e-12, atol=1e-15)
    # With a gradient the sum is formed from the stored (compensated) exponentials: the same
    # loss to rounding, not necessarily to the bit.
    np.testing.assert_allclose(
        lk.cross_entropy(z, t, reduction=reduction, **kwargs), loss, rtol=1e-15, atol=1e-300
    )


@pytest.mark.parametrize("smoothing", [0.0, 0.25])
@pytest.mark.parametrize("weighted", [False, True])
def test_soft_targets_and_kdim_match_torch(isa, smoothing, weighted):
    rng = np.random.default_rng(1)
    z = rng.standard_normal((4, 6, 3, 2)) * 3
    w = rng.uniform(0.5, 2, 6) if weighted else None
    kw = {"label_smoothing": smoothing} | ({"weight": w} if weighted else {})
    y = rng.dirichlet(np.ones(6), (4, 3, 2)).transpose(0, 3, 1, 2).copy()
    t = rng.integers(0, 6, (4, 3, 2))
    for target in (y, t):
        want_loss, want_grad = torch_loss_and_grad(z, target, **kw)
        loss, grad = lk.cross_entropy_with_grad(z, target, axis=1, **kw)
        np.testing.assert_allclose(loss, want_loss, rtol=1e-13)
        np.testing.assert_allclose(grad, want_grad, rtol=1e-12, atol=1e-16)


def test_float32_against_float64(isa):
    rng = np.random.default_rng(2)
    for c in (1, 7, 8, 9, 33, 1000, 4099):
        z = (rng.standard_normal((9, c)) * 5).astype(np.float32)
        t = rng.integers(0, c, 9)
        loss, grad = lk.cross_entropy_with_grad(z, t, reduction="none")
        loss64, grad64 = lk.cross_entropy_with_grad(z.astype(np.float64), t, reduction="none")
        assert loss.dtype == grad.dtype == np.float32
        np.testing.assert_allclose(loss, loss64, rtol=4e-7, atol=1e-7)
        np.testing.assert_allclose(grad, grad64, rtol=1e-5, atol=4e-8)


def test_confident_rows_keep_precision(isa):
    # loss = log1p(exp(-40)) and grad_t = -expm1(...) would both round to 0 naively.
    z = np.array([[40.0, 0.0]])
    loss, grad = lk.cross_entropy_with_grad(z, np.array([0]))
    assert loss == pytest.approx(math.log1p(math.exp(-40)), rel=1e-15)
    assert grad[0, 0] == pytest.approx(-math.exp(-40) / (1 + math.exp(-40)), rel=1e-14)
    loss32, grad32 = lk.cross_entropy_with_grad(z.astype(np.float32), np.array([0]))
    assert loss32 == np.float32(math.log1p(math.exp(-40)))
    assert grad32[0, 0] != 0


def soft_target_grad64(z, y, scale=1.0, softcap=None, label_smoothing=0.0):
    """The gradient for probability targets in float64: s (sum(q) p_j - q_j) cap'(z_j), with
    the entry of the row maximum as q_others p_top - q_top (1 - p_top), which does not cancel
    when p_top is close to 1 (the other entries have p_j <= 1/2)."""
    z, y = np.asarray(z, np.float64), np.asarray(y, np.float64)
    c = z.shape[-1]
    q = (1 - label_smoothing) * y + label_smoothing / c
    if softcap:
        zc, slope = softcap * np.tanh(z / softcap), 1 / np.cosh(z / softcap) ** 2
    else:
        zc, slope = z, 1.0
    e = np.exp(zc - zc.max(axis=-1, keepdims=True))
    total = e.sum(axis=-1, keepdims=True)
    p = e / total
    at_top = np.arange(c) == np.argmax(zc, axis=-1)[..., None]
    q_others = np.sum(q, axis=-1, keepdims=True, where=~at_top)
    p_others = np.sum(e, axis=-1, keepdims=True, where=~at_top) / total
    g = np.where(at_top, q_others * p - q * p_others, q.sum(axis=-1, keepdims=True) * p - q)
    return scale * g * slope


def test_confident_rows_keep_precision_with_probability_targets(isa):
    # The maximum's entry sum(y) p_top - y_top cancels when p_top rounds to 1 and y_top holds
    # most of sum(y): formed naively it is 0 in float32 for all three rows below.
    z = np.array([[40.0, 0.0], [0.0, 20.0], [0.0, 20.0]])
    y = np.array([[1.0, 0.0], [0.0, 1.0], [1e-3, 6e4]])
    want = soft_target_grad64(z, y)
    assert want[0, 0] == pytest.approx(-math.exp(-40) / (1 + math.exp(-40)), rel=1e-15)
    assert want[2, 1] == pytest.approx(1e-3 - 6e4 * math.exp(-20), rel=1e-6)
    for dtype, ulps in ((np.float64, 4), (np.float32, 8), (np.float16, 1)):
        _, grad = lk.cross_entropy_with_grad(z.astype(dtype), y.astype(dtype), reduction="sum")
        assert_ulp_close(grad, want.astype(dtype), dtype, ulps)
        # a one-hot probability target has the gradient of its class index
        index = np.array([0, 1])
        _, by_index = lk.cross_entropy_with_grad(z[:2].astype(dtype), index, reduction="sum")
        assert_ulp_close(grad[:2], by_index, dtype, 2)


def test_float16_soft_target_gradient_rounds_the_exact_value(isa):
    # float16 logits, a float64 target holding 3e38 at the maximum: the gradient there is
    # about -1e23 (0.5 * (0.635 p_top - 3e38 (1 - p_top)), 1 - p_top ~ 7e-16), beyond float16's
    # range, so its correctly rounded value is -inf; formed in float32 as p_top sum(y) - y_top
    # with p_top rounded to 1 it was 0
    z = np.array([[-20.0, 19.84]], np.float16)
    y = np.array([[0.635285023, 3e38]])
    options = {"softcap": 30.0, "label_smoothing": 0.1, "smoothing": "megatron"}
    want = soft_target_grad64(z, y, 0.5, 30.0, 0.1 * 2 / (2 - 1))
    assert -1e24 < want[0, 1] < -1e22 and 1e22 < want[0, 0] < 1e24
    _, grad = lk.cross_entropy_with_grad(z, y, reduction="none", grad_output=0.5, **options)
    with np.errstate(over="ignore"):  # rounding beyond float16's range: inf, as intended
        np.testing.assert_array_equal(grad, want.astype(np.float16))
    np.testing.assert_array_equal(grad, [[np.inf, -np.inf]])
    # float32 logits hold it; the cap in float32 leaves a relative error of a few 1e-6
    _, grad32 = lk.cross_entropy_with_grad(
        z.astype(np.float32), y, reduction="none", grad_output=0.5, **options
    )
    np.testing.assert_allclose(grad32, want, rtol=1e-5)


@pytest.mark.parametrize("storage", ["float32", "bfloat16"])
def test_target_times_weight_beyond_float_range(isa, storage):
    # Finite targets and class weights whose products overflow float32 (3e38 * 3e38): the
    # loss and gradient are those of float64 math rounded once. A row with all its mass on its
    # only possible class has loss 0 and gradient 0, not inf * 0 = NaN.
    dtype = dtype_named(storage)
    w = np.array([3e38, 1.0, 2.0])
    z = np.array([[-14.375, -np.inf, -np.inf], [0.0, 1.0, -2.0]], dtype)
    y = np.array([[3e38, 0.0, 0.0], [3.0, 1e-38, 0.5]], np.float32)
    for reduction in ("mean", "sum"):
        assert lk.cross_entropy(z[:1], y[:1], weight=w, reduction=reduction) == 0
        # a cap makes the -inf logits -30: their share is no longer 0
        capped = lk.cross_entropy(z[:1], y[:1], weight=w, reduction=reduction, softcap=30.0)
        assert np.isinf(capped)
        assert lk.cross_entropy(z[:1, :1], y[:1, :1], weight=w[:1], softcap=30.0) == 0
    loss, grad = lk.cross_entropy_with_grad(z, y, weight=w, reduction="none")
    assert loss[0] == 0 and np.isinf(loss[1])  # 9e38 (log(sum e^z) - 0) is beyond float32
    want = soft_target_grad64(z.astype(np.float64), y * w)
    assert np.isfinite(want).all() and np.abs(want).max() > 1e38
    with np.errstate(over="ignore"):  # 5.7e38 rounds to inf in float32 and bfloat16
        want_stored = want.astype(dtype)
    np.testing.assert_array_equal(grad[0], [0, 0, 0])
    inf = np.isinf(want_stored[1])
    assert inf.any() and not inf.all()
    np.testing.assert_array_equal(grad[1][inf], want_stored[1][inf])
    assert_ulp_close(grad[1][~inf], want_stored[1][~inf], dtype, 2)


def finite_difference(f, z, h=1e-6):
    g = np.zeros_like(z)
    for idx in np.ndindex(z.shape):
        zp, zm = z.copy(), z.copy()
        zp[idx] += h
        zm[idx] -= h
        g[idx] = (f(zp) - f(zm)) / (2 * h)
    return g


@pytest.mark.parametrize(
    "options",
    [
        {"z_loss": 1e-2},
        {"softcap": 2.5},
        {"label_smoothing": 0.2, "smoothing": "megatron"},
        {"where": np.array([True, False, True, True, False, True])},
        {"softcap": 3.0, "z_loss": 0.1, "label_smoothing": 0.1, "weight": np.linspace(0.5, 2, 5)},
    ],
    ids=["z_loss", "softcap", "megatron", "where", "all"],
)
@pytest.mark.parametrize("soft", [False, True])
def test_gradient_matches_finite_differences(isa, options, soft):
    rng = np.random.default_rng(3)
    z = rng.standard_normal((6, 5)) * 2
    target = rng.dirichlet(np.ones(5), 6) if soft else rng.integers(0, 5, 6)
    loss, grad = lk.cross_entropy_with_grad(z, target, **options)
    fd = finite_difference(lambda v: float(lk.cross_entropy(v, target, **options)), z)
    np.testing.assert_allclose(grad, fd, rtol=1e-6, atol=1e-8)


def test_options_against_their_formulas(isa):
    rng = np.random.default_rng(4)
    z = rng.standard_normal((8, 11)) * 3
    t = rng.integers(0, 11, 8)
    lse = lk.logsumexp(z)
    nll = lse - z[np.arange(8), t]
    np.testing.assert_allclose(
        lk.cross_entropy(z, t, z_loss=0.05, reduction="none"), nll + 0.05 * lse**2, rtol=1e-14
    )
    capped = 4.0 * np.tanh(z / 4.0)
    np.testing.assert_allclose(
        lk.cross_entropy(z, t, softcap=4.0, reduction="none"),
        lk.cross_entropy(capped, t, reduction="none"),
        rtol=1e-13,
    )
    # Megatron: the target keeps 1 - alpha, every other class alpha / (C - 1).
    y = np.full((8, 11), 0.2 / 10)
    y[np.arange(8), t] = 0.8
    np.testing.assert_allclose(
        lk.cross_entropy(z, t, label_smoothing=0.2, smoothing="megatron"),
        lk.cross_entropy(z, y),
        rtol=1e-14,
    )


def test_stats(isa):
    z = np.array([[0.0, 3.0, 3.0], [5.0, 1.0, 0.0], [1.0, 2.0, 0.0]])
    t = np.array([1, 1, -100])
    loss, stats = lk.cross_entropy(z, t, return_stats=True)
    np.testing.assert_array_equal(stats.argmax, [1, 0, 1])
    np.testing.assert_array_equal(stats.correct, [True, False, False])
    assert stats.accuracy == 0.5
    np.testing.assert_allclose(stats.lse, lk.logsumexp(z), rtol=1e-15)


def test_in_place_grad_out_and_memory_layouts(isa):
    rng = np.random.default_rng(5)
    z = rng.standard_normal((7, 3, 13)).astype(np.float32)
    t = rng.integers(0, 3, (7, 13))
    loss, grad = lk.cross_entropy_with_grad(z, t, axis=1)
    out = np.empty_like(z)
    assert lk.cross_entropy_with_grad(z, t, axis=1, grad_out=out)[1] is out
    np.testing.assert_array_equal(out, grad)
    # Another layout may take another path (class vectors along rows or across them), whose
    # sums round differently
    fortran = np.asfortranarray(z)
    g_fortran = lk.cross_entropy_with_grad(fortran, t, axis=1)[1]
    assert g_fortran.flags.f_contiguous  # the gradient takes the logits' layout
    assert_ulp_close(g_fortran, grad, np.float32, 4)
    inplace = z.copy()
    loss2, g2 = lk.cross_entropy_with_grad(inplace, t, axis=1, inplace=True)
    assert g2 is inplace and loss2 == loss
    np.testing.assert_array_equal(inplace, grad)


def test_special_rows(isa):
    z = np.array([[1.0, np.nan, 0.0], [1.0, 2.0, 3.0], [np.inf, 0.0, 0.0], [-np.inf, 0.0, 1.0]])
    t = np.array([0, 2, 0, 0])
    loss, grad = lk.cross_entropy_with_grad(z, t, reduction="none")
    assert np.isnan(loss[0]) and np.isnan(grad[0]).all()
    assert np.isfinite(loss[1]) and np.isfinite(grad[1]).all()
    assert np.isnan(loss[2])
    assert loss[3] == np.inf  # the target's probability is exactly 0
    assert np.isnan(lk.cross_entropy(z, t))  # the mean sees the NaN row
    empty = lk.cross_entropy(np.zeros((2, 3)), np.array([-100, -100]))
    assert np.isnan(empty)


def test_errors():
    z = np.zeros((4, 5))
    with pytest.raises(
        IndexError, match=r"^cross_entropy\(\): target\[2\] = 5 is out of range for 5 classes$"
    ):
        lk.cross_entropy(z, np.array([0, 1, 5, -1]))
    with pytest.raises(ValueError, match=r"weight must have shape \(5,\).*got \(4,\)"):
        lk.cross_entropy(z, np.array([0, 1, 2, 3]), weight=np.ones(4))
    with pytest.raises(ValueError, match=r"class-index target must have shape \(4,\).*got \(5,\)"):
        lk.cross_entropy(z, np.arange(5))
    with pytest.raises(ValueError, match=r"probability target contains NaN"):
        lk.cross_entropy(z, np.full((4, 5), np.nan))
    with pytest.raises(TypeError, match=r"target must be integer class indices or floating"):
        lk.cross_entropy(z, np.array([True, False, True, True]))
    with pytest.raises(ValueError, match=r"reduction must be one of"):
        lk.cross_entropy(z, np.zeros(4, dtype=int), reduction="avg")
    with pytest.raises(ValueError, match=r"label_smoothing must be in \[0, 1\]"):
        lk.cross_entropy(z, np.zeros(4, dtype=int), label_smoothing=1.5)
    with pytest.raises(ValueError, match=r"grad_out must have shape \(4, 5\) and dtype float64"):
        lk.cross_entropy_with_grad(z, np.zeros(4, dtype=int), grad_out=np.zeros((4, 5), np.float32))


@pytest.mark.parametrize(
    "target_dtype", [np.int8, np.uint8, np.int16, np.int32, np.uint32, np.int64]
)
def test_any_integer_target_dtype(target_dtype):
    z = np.random.default_rng(6).standard_normal((6, 4))
    t = np.array([0, 1, 2, 3, 1, 0], dtype=target_dtype)
    np.testing.assert_array_equal(
        lk.cross_entropy(z, t, reduction="none"),
        lk.cross_entropy(z, t.astype(np.int64), reduction="none"),
    )


def test_thread_count_does_not_change_bits(isa):
    rng = np.random.default_rng(7)
    z = rng.standard_normal((300, 517)).astype(np.float32)
    t = rng.integers(0, 517, 300)
    base = lk.cross_entropy_with_grad(z, t, label_smoothing=0.1, threads=1)
    for threads in (2, 3):
        other = lk.cross_entropy_with_grad(z, t, label_smoothing=0.1, threads=threads)
        assert other[0] == base[0]
        np.testing.assert_array_equal(other[1], base[1])


FULL = list(
    itertools.product(["index", "soft"], [False, True], [0.0, 0.2], ["mean", "sum", "none"])
)


@pytest.mark.parametrize("kind, weighted, smoothing, reduction", FULL)
def test_matches_reference_over_the_option_product(isa, kind, weighted, smoothing, reduction):
    rng = np.random.default_rng(8)
    z = rng.standard_normal((3, 7, 2, 4)) * 3  # K-dim: classes on axis 1
    if kind == "index":
        target = rng.integers(0, 7, (3, 2, 4))
        target[0, 1, ::2] = -100
    else:
        target = lk.softmax(rng.standard_normal((3, 7, 2, 4)), axis=1)
    kw = dict(axis=1, label_smoothing=smoothing, reduction=reduction, z_loss=1e-3)
    if weighted:
        kw["weight"] = rng.uniform(0.5, 2, 7)
    got = lk.cross_entropy_with_grad(z, target, **kw)
    want = ref.cross_entropy_with_grad(z, target, **kw)
    np.testing.assert_allclose(got[0], want[0], rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(got[1], want[1], rtol=1e-12, atol=1e-15)


@settings(max_examples=40, deadline=None)
@given(
    rows=st.integers(1, 6),
    classes=st.integers(1, 40),
    smoothing=st.sampled_from([0.0, 0.1, 1.0]),
    mode=st.sampled_from(["pytorch", "megatron"]),
    z_loss=st.sampled_from([0.0, 0.01]),
    softcap=st.sampled_from([None, 3.0]),
    reduction=st.sampled_from(["mean", "sum", "none"]),
    dtype=st.sampled_from([np.float32, np.float64]),
    seed=st.integers(0, 2**32 - 1),
)
def test_hypothesis_against_reference(
    rows, classes, smoothing, mode, z_loss, softcap, reduction, dtype, seed
):
    if mode == "megatron" and classes < 2:
        mode = "pytorch"
    rng = np.random.default_rng(seed)
    z = (rng.standard_normal((rows, classes)) * 4).astype(dtype)
    t = rng.integers(0, classes, rows)
    t[rng.random(rows) < 0.3] = -100
    where = rng.random(rows) < 0.8
    kw = dict(
        label_smoothing=smoothing,
        smoothing=mode,
        z_loss=z_loss,
        softcap=softcap,
        reduction=reduction,
        where=where,
    )
    got = lk.cross_entropy_with_grad(z, t, **kw)
    want = ref.cross_entropy_with_grad(z, t, **kw)
    tol = 2e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(got[0], want[0], rtol=tol, atol=tol)
    np.testing.assert_allclose(got[1], want[1], rtol=tol, atol=tol * 0.1)
