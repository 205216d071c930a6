"""Bad input gets a clear exception naming the function, the argument, expected and given."""

from __future__ import annotations

import numpy as np
import pytest

import logitkit as lk

try:
    from numpy.exceptions import AxisError
except ImportError:  # NumPy < 1.25
    from numpy import AxisError  # type: ignore[attr-defined,no-redef]

ALL = ["softmax", "log_softmax", "logsumexp", "sigmoid", "log_sigmoid", "softplus", "logit"]


@pytest.mark.parametrize("func", ALL)
@pytest.mark.parametrize(
    "bad, shown",
    [
        (np.array([1 + 2j, 3j]), "complex128"),
        (np.array(["a", "b"]), "<U1"),
        (np.array([object(), object()]), "object"),
    ],
)
def test_bad_dtype(func, bad, shown):
    arg = "p" if func == "logit" else "x"  # the parameter's name in the signature
    with pytest.raises(
        TypeError, match=rf"^{func}\(\): {arg} must be a real floating.*got {shown}"
    ):
        getattr(lk, func)(bad)


@pytest.mark.parametrize("func", ["softmax", "log_softmax", "logsumexp"])
def test_bad_axis(func):
    x = np.zeros((2, 3))
    with pytest.raises(AxisError):
        getattr(lk, func)(x, axis=2)
    with pytest.raises(AxisError):
        getattr(lk, func)(x, axis=(0, -3))
    with pytest.raises(ValueError, match=rf"^{func}\(\): axis must not repeat an axis"):
        getattr(lk, func)(x, axis=(0, 0))
    with pytest.raises(TypeError, match=rf"{func}\(\): axis must be an int"):
        getattr(lk, func)(x, axis=1.5)


@pytest.mark.parametrize("func", ["softmax", "log_softmax", "sigmoid", "logit"])
def test_bad_out(func):
    x = np.zeros((3, 5), dtype=np.float32)
    with pytest.raises(
        ValueError,
        match=rf"^{func}\(\): out must have shape \(3, 5\) and dtype float32, got \(3, 4\) float64$",
    ):
        getattr(lk, func)(x, out=np.zeros((3, 4)))
    with pytest.raises(ValueError, match=r"dtype float32, got \(3, 5\) float64"):
        getattr(lk, func)(x, out=np.zeros((3, 5)))
    ro = np.zeros((3, 5), dtype=np.float32)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match=rf"^{func}\(\): out must be writeable$"):
        getattr(lk, func)(x, out=ro)
    with pytest.raises(TypeError, match=rf"^{func}\(\): out must be a numpy.ndarray, got list"):
        getattr(lk, func)(x, out=[0.0] * 15)


def test_logsumexp_bad_out_and_b():
    x = np.zeros((3, 5))
    with pytest.raises(ValueError, match=r"logsumexp\(\): out must have shape \(3,\)"):
        lk.logsumexp(x, out=np.zeros(5))
    with pytest.raises(ValueError, match=r"shape \(3, 1\).*got \(3,\)"):
        lk.logsumexp(x, keepdims=True, out=np.zeros(3))
    with pytest.raises(
        ValueError,
        match=r"^logsumexp\(\): b with shape \(4,\) cannot be broadcast to x with shape \(3, 5\)",
    ):
        lk.logsumexp(x, b=np.ones(4))
    with pytest.raises(TypeError, match=r"logsumexp\(\): b must be a real floating.*complex"):
        lk.logsumexp(x, b=np.ones(5, dtype=complex))
    with pytest.raises(TypeError, match=r"out must be a pair"):
        lk.logsumexp(x, return_sign=True, out=np.zeros(3))


@pytest.mark.parametrize("threads", [0, -1, 1.5, True, "2"])
def test_bad_threads(threads):
    error = ValueError if threads in (0, -1) and not isinstance(threads, bool) else TypeError
    with pytest.raises(error, match=r"^softmax\(\): threads must be a positive int or None"):
        lk.softmax(np.zeros(4), threads=threads)


def test_input_never_modified_and_lists_accepted():
    x = np.linspace(-3, 3, 60).reshape(6, 10)
    before = x.copy()
    for func in ALL[:-1]:
        getattr(lk, func)(x)
        np.testing.assert_array_equal(x, before)
    np.testing.assert_allclose(lk.softmax([[1, 2], [3, 4]]).sum(-1), [1, 1], rtol=1e-15)
