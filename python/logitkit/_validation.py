"""Argument handling shared by the public functions: dtype policy, axes, ``out=``, threads.

Pure Python and NumPy, no native code, so that ``logitkit.reference`` may share it.
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from typing import Any

import numpy as np

try:  # NumPy >= 2.0
    from numpy.lib.array_utils import normalize_axis_tuple
except ImportError:  # pragma: no cover - NumPy 1.x
    from numpy.core.numeric import normalize_axis_tuple  # type: ignore[attr-defined,no-redef]

__all__ = [
    "as_input_array",
    "compute_dtypes",
    "check_out",
    "normalize_axes",
    "check_threads",
    "row_mask",
    "check_base",
]


def as_input_array(func: str, arg: str, value: Any) -> np.ndarray:
    """``np.asarray`` with a message naming the function when the conversion fails."""
    try:
        arr = np.asarray(value)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{func}(): {arg} must be array-like, got {type(value).__name__}") from exc
    # An unpickled array (multiprocessing, Dask workers) has a dtype equal to NumPy's own
    # but a distinct object, and the native layer recognizes dtypes by identity: a view with
    # the canonical dtype costs nothing and keeps such arrays working.
    dt = arr.dtype
    if dt.kind in "biuf" and dt.isnative and dt.metadata is None:
        canonical = np.dtype(dt.char)
        if dt is not canonical and dt == canonical:
            arr = arr.view(canonical)
    return arr


def compute_dtypes(func: str, arg: str, dtype: np.dtype) -> tuple[np.dtype, np.dtype]:
    """Return ``(compute dtype, result dtype)`` for an input dtype.

    float32 and float64 are computed natively; float16 and bfloat16 are storage types
    computed in float32; integers and bools are computed in float64, as SciPy does.
    """
    if dtype == np.float32 or dtype == np.float64:
        return dtype, dtype
    if dtype == np.float16 or dtype.name == "bfloat16":
        return np.dtype(np.float32), dtype
    if dtype.kind in "biu":
        return np.dtype(np.float64), np.dtype(np.float64)
    raise TypeError(f"{func}(): {arg} must be a real floating, integer or bool array, got {dtype}")


def normalize_axes(func: str, axis: Any, ndim: int) -> tuple[int, ...]:
    """Axes as a tuple of non-negative ints; numpy's AxisError for an out-of-range axis."""
    if axis is None:
        return tuple(range(ndim))
    if isinstance(axis, bool):
        raise TypeError(f"{func}(): axis must be an int, a tuple of ints or None, got bool")
    if isinstance(axis, Sequence) and not isinstance(axis, str):
        items = tuple(axis)
    else:
        items = (axis,)
    try:
        indices = tuple(operator.index(a) for a in items)
    except TypeError as exc:
        raise TypeError(
            f"{func}(): axis must be an int, a tuple of ints or None, got {axis!r}"
        ) from exc
    return tuple(normalize_axis_tuple(indices, ndim, argname="axis"))


def check_out(
    func: str, out: Any, shape: tuple[int, ...], dtype: np.dtype, name: str = "out"
) -> np.ndarray:
    """Validate a user-supplied output array: exact shape and dtype, writeable."""
    if not isinstance(out, np.ndarray):
        raise TypeError(f"{func}(): {name} must be a numpy.ndarray, got {type(out).__name__}")
    if out.shape != shape or out.dtype != dtype:
        raise ValueError(
            f"{func}(): {name} must have shape {shape} and dtype {dtype}, "
            f"got {out.shape} {out.dtype}"
        )
    if not out.flags.writeable:
        raise ValueError(f"{func}(): {name} must be writeable")
    return out


def partially_overlaps(a: np.ndarray, b: np.ndarray) -> bool:
    """a and b share memory without being the same view: writing one would change entries
    of the other before they are read."""
    same_view = (
        a.__array_interface__["data"][0] == b.__array_interface__["data"][0]
        and a.strides == b.strides
        and a.shape == b.shape
    )
    return not same_view and bool(np.may_share_memory(a, b))


def check_threads(func: str, threads: Any) -> int:
    """``threads=None`` means the library default, passed to the native layer as 0."""
    if threads is None:
        return 0
    if isinstance(threads, bool) or not isinstance(threads, (int, np.integer)):
        raise TypeError(f"{func}(): threads must be a positive int or None, got {threads!r}")
    if threads < 1:
        raise ValueError(f"{func}(): threads must be a positive int or None, got {threads}")
    return int(threads)


def row_mask(func: str, where: Any, rows_shape: tuple[int, ...]) -> np.ndarray:
    """``where`` selecting whole rows (the shape without the class axis), broadcast to them."""
    counted = np.ones(rows_shape, dtype=bool)
    if where is None:
        return counted
    mask = as_input_array(func, "where", where)
    if mask.dtype != np.bool_:
        raise TypeError(f"{func}(): where must be a boolean array, got {mask.dtype}")
    try:
        return counted & np.broadcast_to(mask, rows_shape)
    except ValueError:
        raise ValueError(
            f"{func}(): where with shape {mask.shape} cannot be broadcast to the rows {rows_shape}"
        ) from None


def check_base(func: str, base: Any) -> None:
    """A logarithm base: positive and not 1 (None means e)."""
    if base is not None and not (float(base) > 0 and float(base) != 1):
        raise ValueError(f"{func}(): base must be positive and not 1, got {base}")
