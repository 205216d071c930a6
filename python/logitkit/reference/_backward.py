"""Twins of :mod:`logitkit._backward`: the backward passes of the softmax family, and
``hardmax``."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ._common import (
    Axis,
    Result,
    as_rows,
    check_out,
    finish,
    joint_dtype,
    load,
    load_pair,
    normalize_axes,
    result_dtype,
)
from ._reductions import softmax

__all__ = [
    "softmax_backward",
    "log_softmax_backward",
    "logsumexp_backward",
    "sigmoid_backward",
    "hardmax",
]


def softmax_backward(
    grad: ArrayLike,
    y: ArrayLike,
    axis: Axis = -1,
    *,
    out: NDArray[Any] | None = None,
    threads: int | None = None,
) -> Result:
    """The gradient through ``y = softmax(x, axis)``: ``y * (g - sum(g * y))``.

    ``grad`` is the upstream gradient ``g`` with respect to ``y``; the sum
    runs over ``axis`` (which may name several axes, as in :func:`softmax`)
    and is broadcast back.  ``grad`` and ``y`` must have the same shape; the
    result has it too, with the dtype of ``np.result_type(grad, y)`` under the
    table of ``logitkit.reference``.  NaN propagates along its row.

    Examples
    --------
    >>> print(softmax_backward([1.0, 0.0], [0.25, 0.75]))
    [ 0.1875 -0.1875]
    """
    func = "softmax_backward"
    g64, y64, dtype = load_pair(grad, y, func, "grad", "y", broadcast=False)
    axes = normalize_axes(axis, g64.ndim, func)
    check_out(out, g64.shape, dtype, func)
    g, yr = as_rows(g64), as_rows(y64)
    with np.errstate(all="ignore"):
        res = yr * (g - np.sum(g * yr, axis=axes, keepdims=True))
    return finish(res.reshape(g64.shape), dtype, out, keep_array=True)


def log_softmax_backward(
    grad: ArrayLike,
    y: ArrayLike,
    axis: Axis = -1,
    *,
    out: NDArray[Any] | None = None,
    threads: int | None = None,
) -> Result:
    """The gradient through ``y = log_softmax(x, axis)``: ``g - exp(y) * sum(g)``.

    ``exp(y)`` is the softmax; the sum runs over ``axis`` and is broadcast
    back.  Shapes and dtypes as in :func:`softmax_backward`.

    Examples
    --------
    >>> print(log_softmax_backward([1.0, 0.0], np.log([0.25, 0.75])))
    [ 0.75 -0.75]
    """
    func = "log_softmax_backward"
    g64, y64, dtype = load_pair(grad, y, func, "grad", "y", broadcast=False)
    axes = normalize_axes(axis, g64.ndim, func)
    check_out(out, g64.shape, dtype, func)
    g, yr = as_rows(g64), as_rows(y64)
    with np.errstate(all="ignore"):
        res = g - np.exp(yr) * np.sum(g, axis=axes, keepdims=True)
    return finish(res.reshape(g64.shape), dtype, out, keep_array=True)


def logsumexp_backward(
    grad: ArrayLike,
    x: ArrayLike,
    lse: ArrayLike | None = None,
    axis: Axis = -1,
    keepdims: bool = False,
    *,
    out: NDArray[Any] | None = None,
    threads: int | None = None,
) -> Result:
    """The gradient through ``logsumexp(x, axis, keepdims=keepdims)``: ``g * softmax(x)``.

    ``grad`` has the shape of that logsumexp's result (``keepdims`` says which
    of the two) and is broadcast along ``axis``.  Without ``lse`` the softmax
    is :func:`softmax` (so ``+inf`` entries share the mass); with ``lse``, the
    saved forward result of the same shape as ``grad``, it is ``exp(x - lse)``
    as given, as a backward pass would reuse it.  The result has the shape of
    ``x`` and the dtype of ``np.result_type(grad, x[, lse])`` under the table
    of ``logitkit.reference``.

    Examples
    --------
    >>> print(logsumexp_backward(2.0, [0.0, 0.0]))
    [1. 1.]
    """
    func = "logsumexp_backward"
    ga, xa = np.asarray(grad), np.asarray(x)
    result_dtype(ga.dtype, func, "grad")
    result_dtype(xa.dtype, func, "x")
    dtype = joint_dtype(ga, xa, func, "grad and x")
    la = None
    if lse is not None:
        la = np.asarray(lse)
        result_dtype(la.dtype, func, "lse")
        dtype = result_dtype(np.result_type(dtype, la.dtype), func, "grad, x and lse")
    x64 = xa.astype(np.float64)
    axes = normalize_axes(axis, x64.ndim, func)
    rows = as_rows(x64)
    kept = tuple(1 if i in axes else n for i, n in enumerate(rows.shape))
    if x64.ndim == 0:
        want: tuple[int, ...] = ()
    elif keepdims:
        want = kept
    else:
        want = tuple(n for i, n in enumerate(x64.shape) if i not in axes)
    for name, arr in (("grad", ga), ("lse", la)):
        if arr is not None and arr.shape != want:
            raise ValueError(
                f"{func}(): {name} must have the shape {want} of the logsumexp result, "
                f"got {arr.shape}"
            )
    check_out(out, x64.shape, dtype, func)
    g = ga.astype(np.float64).reshape(kept)
    with np.errstate(all="ignore"):
        if la is None:
            p = softmax(rows, axis=axes)
        else:
            p = np.exp(rows - la.astype(np.float64).reshape(kept))
        res = g * p
    return finish(res.reshape(x64.shape), dtype, out, keep_array=True)


def sigmoid_backward(
    grad: ArrayLike, y: ArrayLike, *, out: NDArray[Any] | None = None, threads: int | None = None
) -> Result:
    """The gradient through ``y = sigmoid(x)``: ``g * y * (1 - y)``, elementwise.

    ``grad`` and ``y`` must have the same shape; dtypes as in
    :func:`softmax_backward`.

    Examples
    --------
    >>> print(sigmoid_backward([1.0, 2.0], [0.5, 0.25]))
    [0.25  0.375]
    """
    func = "sigmoid_backward"
    g64, y64, dtype = load_pair(grad, y, func, "grad", "y", broadcast=False)
    check_out(out, g64.shape, dtype, func)
    with np.errstate(all="ignore"):
        res = g64 * y64 * (1.0 - y64)
    return finish(res, dtype, out)


def hardmax(
    x: ArrayLike, axis: Axis = -1, *, out: NDArray[Any] | None = None, threads: int | None = None
) -> Result:
    """One-hot of the first maximum along ``axis``: the limit of ``softmax(x / T)`` as ``T -> 0+``.

    Ties go to the first maximum (in C order over the axes when ``axis`` names
    several), where the softmax limit would split the mass; ``+inf`` is an
    ordinary maximum, and a row of ``-inf`` only gets its first entry.  A row
    holding a NaN is all NaN.  The result has the shape of ``x`` and its
    result dtype; an empty axis gives an empty result.

    Examples
    --------
    >>> print(hardmax([[1.0, 3.0, 3.0], [0.0, float("nan"), 1.0]]))
    [[ 0.  1.  0.]
     [nan nan nan]]
    """
    func = "hardmax"
    x64, dtype = load(x, func, "x")
    axes = normalize_axes(axis, x64.ndim, func)
    check_out(out, x64.shape, dtype, func)
    rows = as_rows(x64)
    lead = len(axes)
    moved = np.moveaxis(rows, axes, tuple(range(rows.ndim - lead, rows.ndim)))
    batch = moved.shape[: moved.ndim - lead]
    size = int(np.prod(moved.shape[moved.ndim - lead :], dtype=np.int64))
    flat = moved.reshape(batch + (size,))
    res = np.zeros(flat.shape)
    if size:
        np.put_along_axis(res, np.argmax(flat, axis=-1)[..., None], 1.0, axis=-1)
        res = np.where(np.any(np.isnan(flat), axis=-1, keepdims=True), np.nan, res)
    back = np.moveaxis(res.reshape(moved.shape), tuple(range(rows.ndim - lead, rows.ndim)), axes)
    return finish(back.reshape(x64.shape), dtype, out, keep_array=True)
