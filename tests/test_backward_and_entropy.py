"""Backward functions, hardmax and entropy_from_logits: native against the reference,
autograd and exact math, on every ISA."""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import assert_ulp_close

import logitkit as lk
from logitkit import reference as ref

SIZES = [1, 3, 4, 8, 9, 17, 33, 64, 257, 1000]


def test_softmax_and_log_softmax_backward(isa, dtype):
    rng = np.random.default_rng(31)
    for n in SIZES:
        x = (rng.standard_normal((4, n)) * 3).astype(dtype)
        g = rng.standard_normal((4, n)).astype(dtype)
        y, ly = lk.softmax(x), lk.log_softmax(x)
        scale = float(np.abs(g).max()) * 2
        assert_ulp_close(lk.softmax_backward(g, y), ref.softmax_backward(g, y), dtype, 64, scale)
        assert_ulp_close(
            lk.log_softmax_backward(g, ly), ref.log_softmax_backward(g, ly), dtype, 64, scale * n
        )


def test_backward_layouts_axes_and_out(isa):
    rng = np.random.default_rng(32)
    x = rng.standard_normal((6, 5, 7))
    g = rng.standard_normal((6, 5, 7))
    for axis in (0, 1, -1, (0, 2), None):
        y = lk.softmax(x, axis=axis)
        np.testing.assert_allclose(
            lk.softmax_backward(g, y, axis=axis),
            ref.softmax_backward(g, y, axis=axis),
            rtol=1e-12,
            atol=1e-15,
        )
    y = lk.softmax(x)
    out = np.empty_like(g)
    assert lk.softmax_backward(g, y, out=out) is out
    inplace = g.copy()
    lk.softmax_backward(inplace, y, out=inplace)
    np.testing.assert_array_equal(inplace, out)
    np.testing.assert_array_equal(
        lk.softmax_backward(np.asfortranarray(g), np.asfortranarray(y)), out
    )
    with pytest.raises(
        ValueError, match=r"softmax_backward\(\): grad and y must have the same shape"
    ):
        lk.softmax_backward(g, y[:, :, :3])


def test_against_torch_autograd():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(33)
    x = rng.standard_normal((5, 11)) * 2
    g = rng.standard_normal((5, 11))
    for fn, ours, out in (
        (torch.softmax, lk.softmax_backward, lk.softmax(x)),
        (torch.log_softmax, lk.log_softmax_backward, lk.log_softmax(x)),
    ):
        xt = torch.tensor(x, requires_grad=True)
        fn(xt, dim=-1).backward(torch.tensor(g))
        np.testing.assert_allclose(ours(g, out), xt.grad.numpy(), rtol=1e-12, atol=1e-15)
    xt = torch.tensor(x, requires_grad=True)
    torch.logsumexp(xt, dim=-1).backward(torch.tensor(g[:, 0]))
    np.testing.assert_allclose(lk.logsumexp_backward(g[:, 0], x), xt.grad.numpy(), rtol=1e-13)
    xt = torch.tensor(x, requires_grad=True)
    torch.sigmoid(xt).backward(torch.tensor(g))
    np.testing.assert_allclose(
        lk.sigmoid_backward(g, lk.sigmoid(x)), xt.grad.numpy(), rtol=1e-13, atol=1e-16
    )


def test_fully_masked_rows_have_zero_finite_gradients(isa):
    x = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    mask = np.array([[True, False, True], [False, False, False]])
    y = lk.softmax(x, where=mask)
    g = lk.softmax_backward(np.ones_like(x), y)
    assert np.isfinite(g).all()
    np.testing.assert_array_equal(g[1], 0)
    np.testing.assert_array_equal(g[0, 1], 0)


def test_hardmax(isa, dtype):
    rng = np.random.default_rng(34)
    for n in SIZES:
        x = rng.integers(-3, 3, (5, n)).astype(dtype)  # ties: the first maximum wins
        got = lk.hardmax(x)
        assert got.dtype == dtype
        np.testing.assert_array_equal(got, ref.hardmax(x))
        np.testing.assert_array_equal(got.argmax(-1), x.argmax(-1))
    np.testing.assert_array_equal(lk.hardmax(np.array([[np.nan, 1.0]], dtype)), [[np.nan] * 2])
    np.testing.assert_array_equal(lk.hardmax(np.array([[-np.inf, -np.inf]], dtype)), [[1, 0]])


def test_entropy_from_logits(isa, dtype):
    rng = np.random.default_rng(35)
    for n in SIZES:
        x = (rng.standard_normal((4, n)) * 4).astype(dtype)
        for base in (None, 2, 10):
            got = lk.entropy_from_logits(x, base=base)
            assert got.dtype == dtype
            assert_ulp_close(got, ref.entropy_from_logits(x, base=base), dtype, 8, abs_scale=8.0)
    # Uniform over 8 classes: exactly 3 bits, log 8 nats, log10 8 hartleys.
    # (pytest.approx takes only Python numbers as tolerances: a NumPy float32 is refused.)
    z = np.zeros(8, dtype)
    rel = 4 * float(np.finfo(dtype).eps)
    assert lk.entropy_from_logits(z, base=2) == pytest.approx(3.0, rel=rel)
    assert lk.entropy_from_logits(z) == pytest.approx(math.log(8), rel=rel)


def test_entropy_keeps_precision_and_special_rows(isa):
    # A nearly deterministic row: H = 51 e^-50 to first order.
    h = lk.entropy_from_logits(np.array([0.0, -50.0]))
    assert h == pytest.approx(ref.entropy_from_logits(np.array([0.0, -50.0])), rel=1e-13)
    assert h > 0
    rows = np.array([[np.inf, np.inf, 0.0], [np.nan, 0.0, 0.0], [-np.inf, -np.inf, -np.inf]])
    got = lk.entropy_from_logits(rows)
    assert got[0] == pytest.approx(math.log(2))
    assert np.isnan(got[1]) and np.isnan(got[2])


def test_entropy_where_is_the_entropy_of_the_masked_softmax(isa):
    rng = np.random.default_rng(36)
    x = rng.standard_normal((7, 40)) * 3
    mask = rng.random((7, 40)) < 0.5
    mask[0] = False
    p = lk.softmax(x, where=mask)
    with np.errstate(divide="ignore", invalid="ignore"):
        expected = -np.sum(np.where(p > 0, p * np.log(p), 0.0), axis=-1)
    np.testing.assert_allclose(
        lk.entropy_from_logits(x, where=mask), expected, rtol=1e-12, atol=1e-15
    )
    assert lk.entropy_from_logits(x, where=mask)[0] == 0.0


def test_entropy_matches_scipy():
    stats = pytest.importorskip("scipy.stats")
    x = np.random.default_rng(37).standard_normal((3, 50)) * 2
    expected = stats.entropy(lk.softmax(x), base=2, axis=-1)
    np.testing.assert_allclose(lk.entropy_from_logits(x, base=2), expected, rtol=1e-12)
