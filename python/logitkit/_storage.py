"""float16 and bfloat16 are storage formats: logitkit computes them in float32. The
conversions run natively (F16C on x86): NumPy's are several times slower, and for half
subnormals (small probabilities) a hundred times slower."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from . import _core
from ._runtime import current_isa_index

_F32 = np.dtype(np.float32)

# Results this large come from the native buffer cache (see set_buffer_cache_limit): a new
# NumPy array of that size pays a page fault and a page zeroing per page on its first write.
_POOLED_MIN_BYTES = 16 << 20


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
    if nbytes < _POOLED_MIN_BYTES or not order or _core.buffer_cache_limit() == 0:
        return np.empty_like(a, dtype=dtype)
    return _core.pooled_bytes(nbytes).view(dtype).reshape(a.shape, order=order)  # type: ignore[no-any-return]


def _is_bfloat16(dtype: np.dtype) -> bool | None:
    """False for float16, True for bfloat16, None for any other dtype."""
    if dtype == np.float16:
        return False
    if dtype.name == "bfloat16" and dtype.itemsize == 2:
        return True
    return None


def _bits(a: np.ndarray) -> NDArray[np.uint16]:
    return a.reshape(-1).view(np.uint16)


def _c_order(a: np.ndarray) -> np.ndarray:
    """a, or a C-ordered aligned copy: the kernels read 16-bit numbers with aligned loads,
    and arrays that came through pickle may not be aligned."""
    # not np.ascontiguousarray, which turns a 0-d array into a 1-d one
    return a if a.flags.c_contiguous and a.flags.aligned else a.copy(order="C")


def cast(a: np.ndarray, dtype: Any) -> NDArray[Any]:
    """``a.astype(dtype, copy=False)``, converting between float32 and float16/bfloat16
    natively (to nearest even, as NumPy does)."""
    dtype = np.dtype(dtype)
    if a.dtype == dtype:
        return a
    from_kind, to_kind = _is_bfloat16(a.dtype), _is_bfloat16(dtype)
    if dtype == _F32 and from_kind is not None:
        src = _c_order(a)
        dst = empty_like(src, dtype)
        _core.convert16(_bits(src), dst.reshape(-1), from_kind, True, current_isa_index(), 0)
        return dst
    if a.dtype == _F32 and to_kind is not None:
        src = _c_order(a)
        dst = empty_like(src, dtype)
        _core.convert16(src.reshape(-1), _bits(dst), to_kind, False, current_isa_index(), 0)
        return dst
    return a.astype(dtype)


def copy_cast(out: np.ndarray, res: np.ndarray) -> None:
    """``np.copyto(out, res, casting="unsafe")`` with the native 16-bit conversions."""
    kind = _is_bfloat16(out.dtype)
    if (
        kind is not None
        and res.dtype == _F32
        and out.flags.c_contiguous
        and out.flags.aligned
        and res.shape == out.shape
    ):
        src = _c_order(res)
        _core.convert16(src.reshape(-1), _bits(out), kind, False, current_isa_index(), 0)
        return
    np.copyto(out, cast(res, out.dtype) if kind is not None else res, casting="unsafe")


def is_storage16(a: np.ndarray) -> bool:
    return _is_bfloat16(a.dtype) is not None


def rows16(a: np.ndarray, n: int) -> tuple[NDArray[np.uint16], bool]:
    """The bits of the C-contiguous float16/bfloat16 array `a` as (rows, n) uint16 rows, for
    the native 16-bit entry points, and whether they are bfloat16."""
    kind = _is_bfloat16(a.dtype)
    assert kind is not None and a.flags.c_contiguous and a.flags.aligned and n > 0
    return a.reshape(-1, n).view(np.uint16), kind
