"""Binary cross-entropy with logits: native against the reference and PyTorch, every ISA."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from conftest import assert_ulp_close, dtype_named

import logitkit as lk
from logitkit import reference as ref

OPTIONS = list(itertools.product([False, True], [False, True], [0.0, 0.2], ["mean", "sum", "none"]))


@pytest.mark.parametrize("weighted, pos_weighted, smoothing, reduction", OPTIONS)
def test_matches_reference(isa, dtype, weighted, pos_weighted, smoothing, reduction):
    rng = np.random.default_rng(41)
    for n in (1, 7, 8, 9, 33, 1000):
        x = (rng.standard_normal((3, n)) * 12).astype(dtype)
        y = rng.random((3, n)).astype(dtype)
        kw = {"label_smoothing": smoothing, "reduction": reduction}
        if weighted:
            kw["weight"] = rng.uniform(0, 2, (3, 1)).astype(dtype)
        if pos_weighted:
            kw["pos_weight"] = rng.uniform(0.5, 3, n).astype(dtype)
        loss, grad = lk.binary_cross_entropy_with_logits_with_grad(x, y, **kw)
        want_loss, want_grad = ref.binary_cross_entropy_with_logits_with_grad(x, y, **kw)
        assert_ulp_close(loss, want_loss, dtype, 64)
        assert_ulp_close(grad, want_grad, dtype, 8, abs_scale=float(np.abs(want_grad).max()))
        np.testing.assert_array_equal(lk.binary_cross_entropy_with_logits(x, y, **kw), loss)


def test_matches_torch():
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    rng = np.random.default_rng(42)
    x = rng.standard_normal((6, 5)) * 4
    y = rng.random((6, 5))
    w = rng.uniform(0.5, 2, 5)
    pw = rng.uniform(0.5, 2, 5)
    for reduction in ("mean", "sum", "none"):
        xt = torch.tensor(x, requires_grad=True)
        loss = F.binary_cross_entropy_with_logits(
            xt,
            torch.tensor(y),
            weight=torch.tensor(w),
            pos_weight=torch.tensor(pw),
            reduction=reduction,
        )
        loss.sum().backward()
        got, grad = lk.binary_cross_entropy_with_logits_with_grad(
            x, y, weight=w, pos_weight=pw, reduction=reduction
        )
        np.testing.assert_allclose(got, loss.detach().numpy(), rtol=1e-13)
        np.testing.assert_allclose(grad, xt.grad.numpy(), rtol=1e-13, atol=1e-16)


def test_extreme_logits_and_the_two_class_softmax(isa):
    x = np.array([800.0, -800.0, 40.0, -40.0, np.inf, -np.inf])
    y = np.array([1.0, 1.0, 1.0, 0.0, 1.0, 0.0])
    np.testing.assert_allclose(
        lk.binary_cross_entropy_with_logits(x, y, reduction="none"),
        ref.binary_cross_entropy_with_logits(x, y, reduction="none"),
        rtol=1e-15,
    )
    # The seed: a sigmoid is the softmax of [x, 0]; BCE is the two-class cross-entropy.
    z = np.random.default_rng(43).standard_normal(20) * 5
    t = (np.arange(20) % 2).astype(float)
    two_class = np.stack([z, np.zeros_like(z)], axis=-1)
    np.testing.assert_allclose(
        lk.binary_cross_entropy_with_logits(z, t, reduction="none"),
        lk.cross_entropy(two_class, (1 - t).astype(np.int64), reduction="none"),
        rtol=1e-13,
    )


def test_grad_output_and_errors():
    x = np.linspace(-3, 3, 12).reshape(3, 4)
    y = np.full((3, 4), 0.5)
    g = np.arange(12.0).reshape(3, 4)
    _, grad = lk.binary_cross_entropy_with_logits_with_grad(x, y, reduction="none", grad_output=g)
    _, unit = lk.binary_cross_entropy_with_logits_with_grad(x, y, reduction="none")
    np.testing.assert_allclose(grad, g * unit, rtol=1e-15)
    _, mean = lk.binary_cross_entropy_with_logits_with_grad(x, y, grad_output=3.0)
    np.testing.assert_allclose(mean, 3.0 * unit / 12, rtol=1e-15)
    with pytest.raises(ValueError, match=r"target must have the shape of logits \(3, 4\)"):
        lk.binary_cross_entropy_with_logits(x, y[:, :2])
    with pytest.raises(ValueError, match=r"pos_weight with shape \(3,\) cannot be broadcast"):
        lk.binary_cross_entropy_with_logits(x, y, pos_weight=np.ones(3))


def test_threads_do_not_change_bits():
    rng = np.random.default_rng(44)
    x = rng.standard_normal(300_001).astype(np.float32)
    y = rng.random(300_001).astype(np.float32)
    one = lk.binary_cross_entropy_with_logits_with_grad(x, y, threads=1)
    for t in (2, 3):
        other = lk.binary_cross_entropy_with_logits_with_grad(x, y, threads=t)
        assert other[0] == one[0]
        np.testing.assert_array_equal(other[1], one[1])


def test_float64_target_is_read_exactly_with_float32_logits(isa):
    # A float64 target just below 1 keeps 1 - y > 0, which float32 would round away: the loss
    # term (1 - y) softplus(x) is inf at x = +inf (not 0) and dominates at x = 30. Exact
    # math, in float64: 1 - y is exact there (Sterbenz), softplus(+-x) = max(+-x, 0) +
    # log1p(exp(-|x|)).
    y = np.array([np.nextafter(1.0, 0.0), 1 - 2.0**-40, 1 - 1e-9, 0.3, 1e-50])
    x64 = np.array([np.inf, np.inf, 30.0, 2.0, -np.inf])
    with np.errstate(over="ignore", invalid="ignore"):
        tail = np.log1p(np.exp(-np.abs(x64)))
        sp_pos, sp_neg = np.maximum(x64, 0) + tail, np.maximum(-x64, 0) + tail
        loss = (1 - y) * sp_pos + y * sp_neg
        sig = np.exp(-np.maximum(-x64, 0) - tail)  # sigmoid(x)
        sig_neg = np.exp(-np.maximum(x64, 0) - tail)  # sigmoid(-x)
        grad = (1 - y) * sig - y * sig_neg  # = sigmoid(x) - y, without the cancellation
    assert np.isinf(loss[:2]).all() and loss[2] > 2.9e-8 and loss[4] == np.inf
    for dtype in (np.float32, np.float16):
        x = x64.astype(dtype)
        got_loss, got_grad = lk.binary_cross_entropy_with_logits_with_grad(x, y, reduction="none")
        assert got_loss.dtype == got_grad.dtype == dtype
        for got, want in ((got_loss, loss), (got_grad, grad)):
            want = want.astype(dtype)
            finite = np.isfinite(want)
            np.testing.assert_array_equal(got[~finite], want[~finite])
            assert_ulp_close(got[finite], want[finite], dtype, 2)
        # the reduced forms, as the fuzzer called it: one element, reduction="mean"
        total, g = lk.binary_cross_entropy_with_logits_with_grad(x[:1], y[:1])
        assert total == np.inf and g[0] == grad[:1].astype(dtype)[0]
        assert lk.binary_cross_entropy_with_logits(x[2:4], y[2:4], reduction="sum") == dtype(
            loss[2:4].sum()
        )
    # a float64 target that float32 holds (hard labels) keeps the float32 kernels' result
    x = np.array([3.0, -1.5, np.inf], np.float32)
    hard = np.array([1.0, 0.0, 1.0])
    _, got = lk.binary_cross_entropy_with_logits_with_grad(x, hard, reduction="none")
    _, want = lk.binary_cross_entropy_with_logits_with_grad(x, np.float32(hard), reduction="none")
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("storage", ["float32", "bfloat16"])
def test_entry_loss_beyond_float_range_keeps_a_finite_mean(isa, storage):
    # A logit near float32's range on the wrong side of its label, times pos_weight or a
    # weight, has a loss beyond float32's range: stored as inf (its rounding), but the mean,
    # summed in float64, is finite and must equal the float64 mean rounded once.
    dtype = dtype_named(storage)
    n = 37  # a whole vector and a tail, on every ISA
    x64 = np.linspace(-3e38, 3e38, n)
    x64[5], x64[n - 1] = -3e38, 2.5e38  # on the wrong side of labels 1 and 0
    y64 = np.where(np.arange(n) % 2 == 0, 1.0, 0.0)
    y64[n - 1] = 0.0
    pw64 = np.full(n, 2.0)
    w64 = np.full(n, 1.5)
    x, y, pw, w = (a.astype(dtype) for a in (x64, y64, pw64, w64))
    xd, yd, pwd, wd = (a.astype(np.float64) for a in (x, y, pw, w))
    tail = np.log1p(np.exp(-np.abs(xd)))
    per_entry = wd * (
        pwd * yd * (np.maximum(-xd, 0) + tail) + (1 - yd) * (np.maximum(xd, 0) + tail)
    )
    assert np.isfinite(per_entry).all() and per_entry.max() > float(np.finfo(np.float32).max)
    got = lk.binary_cross_entropy_with_logits(x, y, weight=w, pos_weight=pw, reduction="mean")
    assert np.isfinite(np.float64(got))
    assert got == per_entry.mean().astype(dtype)
    got_loss, _ = lk.binary_cross_entropy_with_logits_with_grad(
        x, y, weight=w, pos_weight=pw, reduction="none"
    )
    with np.errstate(over="ignore"):  # entries beyond the range round to inf
        want_loss = per_entry.astype(dtype)
    np.testing.assert_array_equal(got_loss, want_loss)
