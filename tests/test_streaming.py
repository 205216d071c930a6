"""Outputs larger than the cache are written with non-temporal stores (log_softmax and the
cross-entropy gradient; the kernels' streamed paths are also checked one by one in
tests/native); the values must be bitwise those of plain stores, at any alignment of the
output and for every ISA."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import pytest

import logitkit as lk


@contextmanager
def streaming(min_bytes: int) -> Iterator[None]:
    saved = lk._core.stream_min_bytes()
    lk._core.set_stream_min_bytes(min_bytes)
    try:
        yield
    finally:
        lk._core.set_stream_min_bytes(saved)


def misaligned_like(x: np.ndarray, shift: int) -> np.ndarray:
    """An output buffer shaped like x that starts `shift` elements past an aligned address."""
    raw = np.empty(x.size + 64, dtype=x.dtype)
    base = (-raw.ctypes.data // x.itemsize) % (64 // x.itemsize)
    return raw[base + shift : base + shift + x.size].reshape(x.shape)


def both_ways(fn):
    """fn(out) with streaming forced on and then off; returns the two outputs."""
    results = []
    for min_bytes in (0, 1 << 62):
        with streaming(min_bytes):
            results.append(fn())
    return results


def long_row(dtype) -> int:
    return lk._core.long_row_bytes // np.dtype(dtype).itemsize * 2 + 13


@pytest.mark.parametrize("func", ["log_softmax"])
@pytest.mark.parametrize("shift", [0, 1, 3])
def test_row_outputs(isa, dtype, func, shift):
    rng = np.random.default_rng(3)
    for shape in [(40, 1003), (2, long_row(dtype))]:
        x = (rng.standard_normal(shape) * 5).astype(dtype)
        x[0, :7] = -np.inf
        streamed, plain = both_ways(
            lambda x=x: getattr(lk, func)(x, out=misaligned_like(x, shift), threads=2)
        )
        np.testing.assert_array_equal(streamed, plain)
        np.testing.assert_array_equal(plain, getattr(lk, func)(x, threads=1))


@pytest.mark.parametrize("options", [{}, {"label_smoothing": 0.1}, {"softcap": 20.0}])
@pytest.mark.parametrize("shift", [0, 3])
def test_cross_entropy_gradient(isa, dtype, options, shift):
    rng = np.random.default_rng(5)
    z = (rng.standard_normal((64, 1001)) * 4).astype(dtype)
    target = rng.integers(0, z.shape[1], z.shape[0])
    target[3] = -100

    def run():
        grad = misaligned_like(z, shift)
        loss = lk.cross_entropy_with_grad(z, target, grad_out=grad, **options)[0]
        return loss, grad

    (loss_s, grad_s), (loss_p, grad_p) = both_ways(run)
    assert loss_s == loss_p
    np.testing.assert_array_equal(grad_s, grad_p)
