"""KL and generalized JSD from logits: native against the reference, PyTorch and the seed's
identity KL = CE - H, on every ISA."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import assert_ulp_close

import logitkit as lk
from logitkit import reference as ref

SIZES = [1, 2, 5, 8, 9, 33, 257, 1000]


@pytest.mark.parametrize("beta", [0.0, 0.1, 0.5, 0.9, 1.0])
def test_values_and_gradients_match_reference(isa, dtype, beta):
    rng = np.random.default_rng(51)
    for n in SIZES:
        a = (rng.standard_normal((4, n)) * 3).astype(dtype)
        b = (rng.standard_normal((4, n)) * 3).astype(dtype)
        got = lk.jensen_shannon_from_logits_with_grad(a, b, beta=beta)
        want = ref.jensen_shannon_from_logits_with_grad(a, b, beta=beta)
        # divergences are differences of log-probabilities: judge them against their size
        for g, w in zip(got, want, strict=True):
            assert_ulp_close(g, w, dtype, 64, abs_scale=16.0)
        np.testing.assert_array_equal(lk.jensen_shannon_from_logits(a, b, beta=beta), got[0])


@pytest.mark.parametrize("reduction", ["none", "sum", "mean", "batchmean"])
def test_reductions_where_and_axis(isa, reduction):
    rng = np.random.default_rng(52)
    a = rng.standard_normal((3, 7, 5))
    b = rng.standard_normal((3, 7, 5))
    where = rng.random((3, 5)) < 0.6
    g = rng.standard_normal((3, 5)) if reduction == "none" else 2.0
    got = lk.kl_divergence_from_logits_with_grad(
        a, b, axis=1, reduction=reduction, where=where, grad_output=g
    )
    want = ref.kl_divergence_from_logits_with_grad(
        a, b, axis=1, reduction=reduction, where=where, grad_output=g
    )
    for x, y in zip(got, want, strict=True):
        np.testing.assert_allclose(x, y, rtol=1e-12, atol=1e-15)


def test_kl_matches_torch_and_the_seed_identity(isa):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(53)
    p_logits = rng.standard_normal((6, 9)) * 2
    q_logits = rng.standard_normal((6, 9)) * 2
    qt = torch.tensor(q_logits, requires_grad=True)
    loss = torch.nn.functional.kl_div(
        torch.log_softmax(qt, -1), torch.softmax(torch.tensor(p_logits), -1), reduction="batchmean"
    )
    loss.backward()
    value, _, grad_q = lk.kl_divergence_from_logits_with_grad(
        p_logits, q_logits, reduction="batchmean"
    )
    np.testing.assert_allclose(value, loss.item(), rtol=1e-13)
    np.testing.assert_allclose(grad_q, qt.grad.numpy(), rtol=1e-12, atol=1e-16)
    # The seed: KL(P || Q) = CE(P, Q) - H(P).
    ce = lk.cross_entropy(q_logits, lk.softmax(p_logits), reduction="none")
    np.testing.assert_allclose(
        lk.kl_divergence_from_logits(p_logits, q_logits),
        ce - lk.entropy_from_logits(p_logits),
        rtol=1e-11,
        atol=1e-14,
    )


def test_limits_and_special_rows(isa):
    # Disjoint supports: the symmetric JSD reaches log 2; KL is infinite.
    a, b = np.array([0.0, -800.0]), np.array([-800.0, 0.0])
    assert lk.jensen_shannon_from_logits(a, b) == pytest.approx(np.log(2), rel=1e-15)
    assert lk.kl_divergence_from_logits([0.0, -np.inf], [-np.inf, 0.0]) == np.inf
    assert lk.kl_divergence_from_logits([0.0, -np.inf], [0.0, 0.0]) == pytest.approx(np.log(2))
    z = np.array([[np.nan, 0.0], [np.inf, 0.0], [1.0, 2.0]])
    value, gp, gq = lk.kl_divergence_from_logits_with_grad(z, np.zeros((3, 2)))
    assert np.isnan(value[:2]).all() and np.isfinite(value[2])
    assert np.isnan(gp[:2]).all() and np.isfinite(gp[2]).all()
    identical = np.random.default_rng(54).standard_normal((5, 40))
    np.testing.assert_array_equal(lk.kl_divergence_from_logits(identical, identical), 0.0)


def test_errors():
    with pytest.raises(ValueError, match=r"p_logits and q_logits must have the same shape"):
        lk.kl_divergence_from_logits(np.zeros((2, 3)), np.zeros((2, 4)))
    with pytest.raises(ValueError, match=r"beta must be in \[0, 1\]"):
        lk.jensen_shannon_from_logits(np.zeros(3), np.zeros(3), beta=1.5)
    with pytest.raises(ValueError, match=r"reduction must be one of"):
        lk.kl_divergence_from_logits(np.zeros(3), np.zeros(3), reduction="avg")


def test_threads_do_not_change_bits():
    rng = np.random.default_rng(55)
    a = rng.standard_normal((200, 301)).astype(np.float32)
    b = rng.standard_normal((200, 301)).astype(np.float32)
    one = lk.jensen_shannon_from_logits_with_grad(a, b, threads=1)
    for t in (2, 3):
        for x, y in zip(lk.jensen_shannon_from_logits_with_grad(a, b, threads=t), one, strict=True):
            np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_total_beyond_float64_range_is_inf_without_a_warning(reduction):
    # each row's divergence is finite (8e307) but their sum is not: the reduced value is inf,
    # as the reference gives it, and NumPy's overflow warning does not reach the caller
    # (warnings are errors in this suite)
    q = np.array([[0.0, -1.6e308]] * 4)
    p = np.zeros((4, 2))
    rows = lk.kl_divergence_from_logits(p, q, reduction="none")
    assert np.all(np.isfinite(rows))
    total = lk.kl_divergence_from_logits(p, q, reduction=reduction)
    if reduction == "sum":
        assert total == np.inf
    else:  # the mean of finite rows is finite, summed in float64 first
        assert total == np.inf or np.isclose(total, rows.mean())
    # F.kl_div style: target * (log(target) - input), 1.7e308 per element
    assert lk.kl_div(np.full(4, -1.7e308), np.ones(4), reduction="sum") == np.inf


@pytest.mark.parametrize("reduction", ["sum", "mean", "batchmean"])
def test_pointwise_terms_beyond_float32_range_still_reduce_to_the_true_total(reduction):
    # Each float32 term t (log t - x) is about +-2.7e40, so they round to inf and -inf,
    # whose sum is NaN; the true total (float64 terms, as the reference forms them) is
    # -1.9e36, and a sum dominated by one term of -9e76 is -inf in float32.
    t = np.array([3e38, 3e38], np.float32)
    for x in (np.array([-1.0, 178.2], np.float32), np.array([1.0, 3e38], np.float32)):
        got = lk.kl_div(x, t, reduction)
        want = ref.kl_div(x, t, reduction)
        assert got.dtype == np.float32
        assert not np.isnan(want)
        np.testing.assert_allclose(got, want, rtol=1e-6)
    assert np.isfinite(lk.kl_div(np.array([-1.0, 178.2], np.float32), t, reduction))


@pytest.mark.parametrize("margin", [5.0, 12.0, 20.0, 30.0])
@pytest.mark.parametrize("shift", [0.0, 1.0, 3.0])
def test_confident_rows_keep_the_gradient_at_their_maximum(isa, dtype, margin, shift):
    # Two classes, P = sigmoid(a), Q = sigmoid(b) with a, b the logit gaps: dKL/da is
    # p (1 - p) (a - b), and q_0 - p_0 = sigmoid(-a) - sigmoid(-b) = p_1 - q_1. At the maximum of a
    # confident P, p (d - KL) and q - p are far below the terms they are formed from (float32
    # gave 6e-8 and 0 for 4.1e-8 and 2.1e-9 at a = 20, b = 0); the closed forms above, in
    # float64, have no such cancellation. Eight classes with the other six far below still
    # have these gradients, as the six add nothing in any dtype.
    b = margin - shift if shift else 0.0  # Q confident too, or a tie
    zp = np.array([margin, 0.0] + [-1e4] * 6).astype(dtype)
    zq = np.array([b, 0.0] + [-1e4] * 6).astype(dtype)
    a, b = float(zp[0]), float(zq[0])
    sig = lambda t: 1.0 / (1.0 + np.exp(-t))  # noqa: E731
    dkl_da = sig(a) * sig(-a) * (a - b)
    want_p = np.array([dkl_da, -dkl_da] + [0.0] * 6)
    want_q = np.array([sig(-a) - sig(-b), sig(-b) - sig(-a)] + [0.0] * 6)
    _, gp, gq = lk.kl_divergence_from_logits_with_grad(zp, zq)
    # p_1 comes from log p_1 rounded, whose absolute error |log p_1| eps/2 exp makes relative
    assert_ulp_close(gp, want_p.astype(dtype), dtype, 2 * margin)
    assert_ulp_close(gq, want_q.astype(dtype), dtype, 2 * margin)


@pytest.mark.parametrize("beta", [0.3, 0.5])
@pytest.mark.parametrize("margin", [5.0, 12.0, 20.0, 30.0])
@pytest.mark.parametrize("zq0", ["-3", "0", "margin-3", "margin+2"])
def test_confident_rows_keep_the_jsd_gradient_at_their_maximum(isa, dtype, beta, margin, zq0):
    # Two classes, P = sigmoid(a), Q = sigmoid(b), M = beta P + (1 - beta) Q: the JSD's
    # terms through M cancel, so d/da = beta p (1 - p) (a - logit m), and likewise for b
    # with 1 - beta. At a confident maximum the kernel's p (h_k - sum_j p_j h_j) cancelled
    # (float32 gave 0 for 1.4e-12 at a = 30); logit m = log m - log(1 - m), with 1 - m
    # formed from sigmoid(-a) and sigmoid(-b), has no such cancellation in float64.
    b = {"-3": -3.0, "0": 0.0, "margin-3": margin - 3, "margin+2": margin + 2}[zq0]
    zp = np.array([margin, 0.0] + [-1e4] * 6).astype(dtype)
    zq = np.array([b, 0.0] + [-1e4] * 6).astype(dtype)
    a, b = float(zp[0]), float(zq[0])
    sig = lambda t: 1.0 / (1.0 + np.exp(-t))  # noqa: E731
    logit_m = np.log(beta * sig(a) + (1 - beta) * sig(b)) - np.log(
        beta * sig(-a) + (1 - beta) * sig(-b)
    )
    d_a = beta * sig(a) * sig(-a) * (a - logit_m)
    d_b = (1 - beta) * sig(b) * sig(-b) * (b - logit_m)
    _, gp, gq = lk.jensen_shannon_from_logits_with_grad(zp, zq, beta=beta)
    # as in the KL test: p_1 comes from log p_1 rounded
    tol = 2 * max(margin, abs(b)) + 8
    assert_ulp_close(gp, np.array([d_a, -d_a] + [0.0] * 6).astype(dtype), dtype, tol)
    assert_ulp_close(gq, np.array([d_b, -d_b] + [0.0] * 6).astype(dtype), dtype, tol)


def test_log_ratio_beyond_float_range_keeps_finite_gradients(isa):
    # Finite logits whose log-ratio overflows float32 (log q = -3e38 - 3e38): KL is 5.7e38,
    # inf once rounded, while its gradient p (log p - log q - KL) is the difference of two
    # huge terms, about +-2.7e37, which float32 holds; formed in float32 it was inf - inf.
    zp = np.array([[1.0, -2.0], [0.5, 0.25]], np.float32)
    zq = np.array([[-3e38, 3e38], [0.0, 1.0]], np.float32)
    zp64, zq64 = zp.astype(np.float64), zq.astype(np.float64)
    lp = zp64 - zp64.max(-1, keepdims=True)
    lp -= np.log(np.exp(lp).sum(-1, keepdims=True))
    lq = zq64 - zq64.max(-1, keepdims=True)
    lq -= np.log(np.exp(lq).sum(-1, keepdims=True))
    p, q = np.exp(lp), np.exp(lq)
    kl = (p * (lp - lq)).sum(-1)
    grad_p = p * ((lp - lq) - kl[:, None])
    assert kl[0] > float(np.finfo(np.float32).max) and np.isfinite(grad_p).all()
    value, gp, gq = lk.kl_divergence_from_logits_with_grad(zp, zq, reduction="none")
    with np.errstate(over="ignore"):  # 5.7e38 rounds to inf in float32
        np.testing.assert_array_equal(np.isinf(value), [True, False])
    assert_ulp_close(value[1:], kl[1:].astype(np.float32), np.float32, 4)
    assert_ulp_close(gp, grad_p.astype(np.float32), np.float32, 4, abs_scale=1.0)
    assert_ulp_close(gq, (q - p).astype(np.float32), np.float32, 4, abs_scale=1.0)
