"""entr, rel_entr, kl_div_elementwise, kl_div, entropy and nll_loss against the reference,
SciPy and PyTorch; the elementwise kernels on every ISA."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import assert_ulp_close

import logitkit as lk
from logitkit import reference as ref

EDGES = np.array([-1.0, 0.0, 1e-300, 0.5, 1.0, 3.0, np.inf, np.nan])


@pytest.mark.parametrize("func", ["rel_entr", "kl_div_elementwise"])
def test_binary_elementwise(isa, dtype, func):
    rng = np.random.default_rng(61)
    x = (rng.random(3000) * 3).astype(dtype)
    # from equal to far apart: the regime where the textbook formulas cancel is covered
    y = np.abs(x * (1 + rng.standard_normal(3000) * 10 ** rng.uniform(-7, 0.5, 3000)))
    y = y.astype(dtype)
    for n in (1, 3, 7, 9, 33, 3000):
        assert_ulp_close(
            getattr(lk, func)(x[:n], y[:n]), getattr(ref, func)(x[:n], y[:n]), dtype, 32
        )
    gx, gy = np.meshgrid(EDGES.astype(dtype), EDGES.astype(dtype), indexing="ij")
    # infinities and NaN exactly (assert_ulp_close counts equal values as 0), the rest in ulps
    assert_ulp_close(getattr(lk, func)(gx, gy), getattr(ref, func)(gx, gy), dtype, 4)


def test_entr(isa, dtype):
    x = np.concatenate([EDGES, np.random.default_rng(62).random(500) * 5]).astype(dtype)
    assert_ulp_close(lk.entr(x), ref.entr(x), dtype, 4, abs_scale=1.0)


def test_against_scipy():
    special = pytest.importorskip("scipy.special")
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(63)
    x, y = rng.random((5, 8)), rng.random((5, 8))
    np.testing.assert_allclose(lk.rel_entr(x, y), special.rel_entr(x, y), rtol=1e-13)
    np.testing.assert_allclose(lk.kl_div_elementwise(x, y), special.kl_div(x, y), rtol=1e-12)
    np.testing.assert_allclose(lk.entr(x), special.entr(x), rtol=1e-14)
    for kw in ({}, {"qk": y}, {"qk": y, "base": 2, "axis": 1}):
        np.testing.assert_allclose(lk.entropy(x, **kw), stats.entropy(x, **kw), rtol=1e-13)


def test_entropy_reference_semantics():
    rng = np.random.default_rng(64)
    p, q = rng.random((3, 4, 5)), rng.random((4, 5))
    for kw in ({"axis": None}, {"axis": (0, 2), "keepdims": True}, {"qk": q, "base": 10}):
        np.testing.assert_allclose(lk.entropy(p, **kw), ref.entropy(p, **kw), rtol=1e-13)


@pytest.mark.filterwarnings("ignore:reduction. 'mean' divides the total loss:UserWarning")
@pytest.mark.parametrize("reduction", ["none", "sum", "mean", "batchmean"])
@pytest.mark.parametrize("log_target", [False, True])
def test_kl_div_matches_torch(reduction, log_target):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(65)
    log_q = lk.log_softmax(rng.standard_normal((4, 7)))
    t = lk.softmax(rng.standard_normal((4, 7)))
    if not log_target:
        t[0, 0] = 0.0  # a zero target adds 0, as in PyTorch (xlogy)
    target = np.log(t) if log_target else t
    got = lk.kl_div(log_q, target, reduction, log_target)
    want = torch.nn.functional.kl_div(
        torch.tensor(log_q), torch.tensor(target), reduction=reduction, log_target=log_target
    ).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-13, atol=1e-16)
    np.testing.assert_allclose(got, ref.kl_div(log_q, target, reduction, log_target), rtol=1e-14)


@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
def test_nll_loss(reduction):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(66)
    z = rng.standard_normal((4, 6, 3))
    t = rng.integers(0, 6, (4, 3))
    t[1, 2] = -100
    w = rng.uniform(0.5, 2, 6)
    lp = lk.log_softmax(z, axis=1)
    got = lk.nll_loss(lp, t, axis=1, weight=w, reduction=reduction)
    want = torch.nn.functional.nll_loss(
        torch.tensor(lp), torch.tensor(t), weight=torch.tensor(w), reduction=reduction
    ).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-14)
    # the fused path gives the same loss from the logits
    np.testing.assert_allclose(
        got, lk.cross_entropy(z, t, axis=1, weight=w, reduction=reduction), rtol=1e-13
    )
    y = lk.softmax(rng.standard_normal((4, 6, 3)), axis=1)
    np.testing.assert_allclose(
        lk.nll_loss(lp, y, axis=1, reduction=reduction),
        ref.nll_loss(lp, y, axis=1, reduction=reduction),
        rtol=1e-14,
    )


def test_kl_div_zero_probability_log_target_is_zero_not_nan():
    # PyTorch: exp(-inf) * (-inf - input) = 0 * -inf = NaN. The limit is 0.
    log_q = np.log(np.array([0.5, 0.5]))
    with np.errstate(divide="ignore"):
        target = np.log(np.array([0.0, 1.0]))
    got = lk.kl_div(log_q, target, reduction="none", log_target=True)
    assert got[0] == 0.0 and got[1] == pytest.approx(np.log(2))
