"""Hypothesis properties of the native functions: the identities from the math itself."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import logitkit as lk

finite = st.floats(-80, 80, allow_nan=False, width=64)
rows = arrays(np.float64, st.tuples(st.integers(1, 6), st.integers(1, 70)), elements=finite)
settings.register_profile("logitkit", max_examples=60, deadline=None)
settings.load_profile("logitkit")


@given(rows, st.floats(-1e3, 1e3))
def test_softmax_shift_invariant(x, c):
    np.testing.assert_allclose(lk.softmax(x + c), lk.softmax(x), rtol=1e-9, atol=1e-300)


@given(rows, st.floats(-1e3, 1e3))
def test_logsumexp_shift_equivariant(x, c):
    np.testing.assert_allclose(lk.logsumexp(x + c), lk.logsumexp(x) + c, rtol=1e-12, atol=1e-9)


@given(rows)
def test_softmax_rows_sum_to_one(x):
    np.testing.assert_allclose(lk.softmax(x).sum(axis=-1), 1.0, rtol=1e-13)
    x32 = x.astype(np.float32)
    np.testing.assert_allclose(lk.softmax(x32).sum(axis=-1, dtype=np.float64), 1.0, rtol=1e-5)


@given(rows)
def test_exp_log_softmax_is_softmax(x):
    np.testing.assert_allclose(np.exp(lk.log_softmax(x)), lk.softmax(x), rtol=1e-12, atol=1e-300)


@given(rows)
def test_log_softmax_is_x_minus_logsumexp(x):
    expected = x - lk.logsumexp(x, keepdims=True)
    np.testing.assert_allclose(lk.log_softmax(x), expected, rtol=1e-12, atol=1e-12)


@given(arrays(np.float64, st.integers(1, 50), elements=st.floats(-700, 700)))
def test_sigmoid_symmetry_and_two_class_softmax(x):
    np.testing.assert_allclose(lk.sigmoid(x) + lk.sigmoid(-x), 1.0, rtol=1e-15)
    # The seed's point: the sigmoid is the softmax of [x, 0], first component.
    two_class = lk.softmax(np.stack([x, np.zeros_like(x)], axis=-1))[:, 0]
    np.testing.assert_allclose(lk.sigmoid(x), two_class, rtol=1e-14, atol=1e-300)
    np.testing.assert_allclose(lk.softplus(x) - lk.softplus(-x), x, rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(lk.log_sigmoid(x), -lk.softplus(-x), rtol=1e-15, atol=1e-300)


# Beyond |x| ~ 15, sigmoid(x) is within 3e-7 of 0 or 1 and storing it in float64 already
# loses the digits logit would need to recover x: the round trip is ill-conditioned there.
@given(arrays(np.float64, st.integers(1, 50), elements=st.floats(-15, 15)))
def test_logit_inverts_sigmoid(x):
    np.testing.assert_allclose(lk.logit(lk.sigmoid(x)), x, rtol=1e-9, atol=1e-9)
