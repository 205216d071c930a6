"""float16 and bfloat16 are storage formats: logitkit computes them in float32. The
conversions run natively (F16C on x86): NumPy's are several times slower, and for half
subnormals (small probabilities) a hundred times slower (time ``cast(x, np.float16)`` against
``x.astype(np.float16)`` on a float32 array of softmax outputs)."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from . import _core
from ._runtime import current_isa_index

_F32 = np.dtype(np.float32)

# Results this large come from the native buffer cache (see set_buffer_cache_limit): a new
# NumPy array of that size pays a page fault and a page zeroing per page on its first write.
POOLED_MIN_BYTES = 16 << 20


def empty_like(a: np.ndarray, dtype: Any = None) -> NDArray[Any]:
    """``np.empty_like(a, dtype)``: a's shape and memory order, from the buffer cache when
    large."""
    dtype = a.dtype if dtype is None else np.dtype(dtype)
    nbytes = a.size * dtype.itemsize
    if a.flags.c_contiguous:
        order = "C"
    elif a.flags.f_contiguous:
        order = "F"
    else:
        order = ""
    if nbytes < POOLED_MIN_BYTES or not order or _core.buffer_cache_limit() == 0:
        return np.empty_like(a, dtype=dtype)
    return _core.pooled_bytes(nbytes).view(dtype).reshape(a.shape, order=order)  # type: ignore[no-any-return]


def is_storage16(dtype: np.dtype) -> bool:
    """float16 or bfloat16 (ml_dtypes'): a storage type the kernels convert in registers."""
    # itemsize first: dtype.name is slow to build, and float32/float64 never need it
    return dtype.itemsize == 2 and (dtype.char == "e" or dtype.name == "bfloat16")


def kernel_dtype(compute: np.dtype, result: np.dtype) -> np.dtype:
    """The dtype the native kernels take an input in: a 16-bit result type as it is (the
    kernels convert it in their loads and stores), any other in its compute dtype."""
    return result if is_storage16(result) else compute


def _c_order(a: np.ndarray) -> np.ndarray:
    """a, or a C-ordered aligned copy: the conversion reads contiguous, aligned elements, and
    arrays that came through pickle may not be aligned."""
    # not np.ascontiguousarray, which turns a 0-d array into a 1-d one
    return a if a.flags.c_contiguous and a.flags.aligned else a.copy(order="C")


def cast(a: np.ndarray, dtype: Any) -> NDArray[Any]:
    """``a.astype(dtype, copy=False)``, converting between float32 and float16/bfloat16
    natively (to nearest even, as NumPy does)."""
    dtype = np.dtype(dtype)
    if a.dtype == dtype:
        return a
    if (dtype == _F32 and is_storage16(a.dtype)) or (a.dtype == _F32 and is_storage16(dtype)):
        src = _c_order(a)
        dst = empty_like(src, dtype)
        _core.astype(src.reshape(-1), dst.reshape(-1), current_isa_index(), 0)
        return dst
    return a.astype(dtype)


def copy_cast(out: np.ndarray, res: np.ndarray) -> None:
    """``np.copyto(out, res, casting="unsafe")`` with the native 16-bit conversions."""
    storage16 = is_storage16(out.dtype)
    if (
        storage16
        and res.dtype == _F32
        and out.flags.c_contiguous
        and out.flags.aligned
        and res.shape == out.shape
    ):
        _core.astype(_c_order(res).reshape(-1), out.reshape(-1), current_isa_index(), 0)
        return
    np.copyto(out, cast(res, out.dtype) if storage16 else res, casting="unsafe")
