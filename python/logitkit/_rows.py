"""The layout the kernels read and write, and the way back to the caller's.

The kernels work on rows: the reduced (class) axes last and merged into one, C-contiguous
or at least aligned, in the compute dtype. These helpers put arrays in that layout (a view
when possible), put results back in the caller's layout, and hand them over as NumPy does
(``out=``, ``keepdims``, 0-d results as NumPy scalars). The argument checks are in
:mod:`logitkit._validation`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import NDArray

from . import _core
from ._runtime import current_isa_index
from ._storage import POOLED_MIN_BYTES, cast, copy_cast, empty_like, kernel_dtype
from ._validation import (
    as_input_array,
    check_out,
    check_threads,
    compute_dtypes,
    normalize_axes,
    partially_overlaps,
)

__all__ = [
    "POOLED_MIN_BYTES",
    "RowInfo",
    "axis_back",
    "axis_last",
    "class_rows",
    "contiguous",
    "finish",
    "flat_view",
    "keep_reduced",
    "map_rows",
    "native_ready",
    "pooled_empty",
    "reduced_shape",
    "reduction_axes",
    "rows_of",
    "rows_view",
    "unrows",
]


def pooled_empty(shape: tuple[int, ...], dtype: Any) -> NDArray[Any] | None:
    """A new C-ordered array from the buffer cache; None when it is too small to be cached
    or the cache is off."""
    dtype = np.dtype(dtype)
    nbytes = math.prod(shape) * dtype.itemsize
    if nbytes < POOLED_MIN_BYTES or _core.buffer_cache_limit() == 0:
        return None
    return _core.pooled_bytes(nbytes).view(dtype).reshape(shape)  # type: ignore[no-any-return]


def reduction_axes(func: str, axis: Any, ndim: int) -> tuple[int, ...]:
    """The reduced axes, normalized. A 0-d array is a one-element row, as in SciPy and
    PyTorch: axis None or 0 reduces it."""
    return normalize_axes(func, 0 if ndim == 0 and axis is None else axis, max(ndim, 1))


def reduced_shape(shape: tuple[int, ...], axes: tuple[int, ...], keepdims: bool) -> tuple[int, ...]:
    """The shape of a reduction over ``axes``: without them, or with length 1 there; () for
    a 0-d input."""
    if not shape:
        return ()
    if keepdims:
        return tuple(1 if d in axes else n for d, n in enumerate(shape))
    return tuple(n for d, n in enumerate(shape) if d not in axes)


def keep_reduced(values: np.ndarray, axes: tuple[int, ...], keepdims: bool) -> np.ndarray:
    """A reduction's result with the reduced axes back at length 1 when ``keepdims``."""
    return np.expand_dims(values, axes) if keepdims else values


def axis_last(a: np.ndarray, axis: int) -> np.ndarray:
    """np.moveaxis(a, axis, -1), skipped when the axis is already last (the usual case,
    where moveaxis alone would be a fifth of a small call's time)."""
    return a if axis == a.ndim - 1 else np.moveaxis(a, axis, -1)


def axis_back(a: np.ndarray, axis: int) -> np.ndarray:
    """The inverse of axis_last: the last axis moved to ``axis``."""
    return a if axis == a.ndim - 1 else np.moveaxis(a, -1, axis)


def rows_view(x: np.ndarray, axes: tuple[int, ...]) -> np.ndarray:
    """x with the reduced axes moved to the end and merged into one (a view when possible)."""
    if len(axes) == 0:
        return x[..., np.newaxis]
    if len(axes) == 1:
        return axis_last(x, axes[0])
    k = len(axes)
    moved = np.moveaxis(x, axes, tuple(range(-k, 0)))
    # the merged length spelled out: -1 cannot be inferred when another axis is 0
    return moved.reshape(moved.shape[:-k] + (math.prod(moved.shape[-k:]),))


def unrows(rows: np.ndarray, shape: tuple[int, ...], axes: tuple[int, ...]) -> np.ndarray:
    """Inverse of rows_view for a freshly computed array of rows."""
    if len(axes) == 0:
        return rows[..., 0]
    k = len(axes)
    kept = [d for d in range(len(shape)) if d not in axes]
    moved_shape = tuple(shape[d] for d in kept) + tuple(shape[d] for d in axes)
    return np.moveaxis(rows.reshape(moved_shape), tuple(range(-k, 0)), axes)


def contiguous(a: Any, dtype: Any = None) -> np.ndarray:
    """a as a C-contiguous, aligned array of ``dtype`` (a itself when it already is one)."""
    if (
        isinstance(a, np.ndarray)
        and (dtype is None or a.dtype == dtype)
        and a.flags.c_contiguous
        and a.flags.aligned
    ):
        return a  # as np.require would, without its keyword handling (several microseconds)
    return np.require(a, dtype, ("C", "A"))


def class_rows(a: np.ndarray, axis: int, dtype: Any = None) -> np.ndarray:
    """The rows of ``a`` along its class axis as one C-contiguous, aligned (rows, classes)
    array of ``dtype``."""
    moved = contiguous(axis_last(a, axis), dtype)
    # the number of rows spelled out: -1 cannot be inferred when there are no classes
    return moved.reshape(math.prod(moved.shape[:-1]), moved.shape[-1])


def flat_view(a: np.ndarray) -> np.ndarray | None:
    """A 1-d view of a C- or Fortran-contiguous array in memory order, else None."""
    if a.flags.c_contiguous:
        return a.reshape(-1)
    if a.flags.f_contiguous:
        return a.reshape(-1, order="F")
    return None


def native_ready(a: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Cast to the compute dtype and make sure the data is aligned for the kernels."""
    if a.dtype != dtype:
        return cast(a, dtype)
    if not a.flags.aligned:
        return a.copy()  # type: ignore[no-any-return]
    return a


def finish(res: np.ndarray, dtype: np.dtype, out: np.ndarray | None = None) -> Any:
    """A result as the caller gets it: written into ``out`` (and ``out`` returned), or cast
    to the result dtype, a NumPy scalar when 0-d."""
    if out is not None:
        copy_cast(out, res)
        return out
    res = cast(res, dtype)
    return res[()] if res.ndim == 0 else res


class RowInfo(NamedTuple):
    shape: tuple[int, ...]  # of the input (a 0-d input counts as shape (1,))
    axes: tuple[int, ...]


def map_rows(
    func: str,
    x: Any,
    axis: Any,
    out: Any,
    threads: Any,
    run: Callable[[np.ndarray, np.ndarray, int, int, RowInfo], None],
    dtype: np.dtype | None = None,
) -> NDArray[Any]:
    """Apply a row-to-row native operation along `axis`, with NumPy's semantics around it.

    `run(x_rows, out_rows, isa, threads, info)` gets x with the reduced axes merged last
    (a view when possible) and the array to fill, of the same shape. `dtype`, when given,
    is the input dtype the result follows (the promotion of several inputs).
    """
    nthreads = check_threads(func, threads)
    arr = as_input_array(func, "x", x)
    compute, result_dtype = compute_dtypes(func, "x", arr.dtype)
    axes = reduction_axes(func, axis, arr.ndim)
    scalar_input = arr.ndim == 0
    if scalar_input:
        arr = arr.reshape(1)
    if dtype is not None:
        compute, result_dtype = compute_dtypes(func, "x", dtype)
    compute = kernel_dtype(compute, result_dtype)  # float16/bfloat16 go to the kernels as they are
    out_shape = () if scalar_input else arr.shape
    if out is not None:
        check_out(func, out, out_shape, result_dtype)
    isa = current_isa_index()
    info = RowInfo(arr.shape, axes)

    xv = native_ready(rows_view(arr, axes), compute)
    target = None
    if out is not None and len(axes) == 1 and not scalar_input and out.dtype == compute:
        target = axis_last(out, axes[0]) if out.flags.aligned else None
        # A partial overlap with the input would be read after being written.
        if target is not None and partially_overlaps(target, xv):
            target = None
    if target is not None:
        run(xv, target, isa, nthreads, info)
        return out  # type: ignore[no-any-return]

    if len(axes) == 1 and out is None:
        res = empty_like(arr, compute)  # keeps the input's memory layout
        run(xv, axis_last(res, axes[0]), isa, nthreads, info)
    else:
        rows = np.empty(xv.shape, dtype=compute)
        run(xv, rows, isa, nthreads, info)
        res = unrows(rows, arr.shape, axes)
    if scalar_input:
        res = res.reshape(())
    if out is not None:
        copy_cast(out, res)
        return out  # type: ignore[no-any-return]
    return cast(res, result_dtype)


def rows_of(a: np.ndarray, info: RowInfo, dtype: np.dtype) -> np.ndarray:
    """A second input laid out like the first one's rows (for map_rows callbacks)."""
    return native_ready(rows_view(a.reshape(info.shape), info.axes), dtype)
