"""float16 and bfloat16 are storage formats: logitkit computes them in float32. The
conversions run natively (F16C on x86): NumPy's are several times slower, and for half
subnormals (small probabilities) a hundred times slower."""

from __future__ import annotations

from collections.abc import Callable, Iterator
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
    return _core.pooled_bytes(nbytes).view(dtype).reshape(a.shape, order=order)


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
    # not np.ascontiguousarray, which turns a 0-d array into a 1-d one
    return a if a.flags.c_contiguous else a.copy(order="C")


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
    if kind is not None and res.dtype == _F32 and out.flags.c_contiguous and res.shape == out.shape:
        src = _c_order(res)
        _core.convert16(src.reshape(-1), _bits(out), kind, False, current_isa_index(), 0)
        return
    np.copyto(out, cast(res, out.dtype) if kind is not None else res, casting="unsafe")


# float32 bytes per stage of a staged call: small enough that the converted rows are still
# in cache when the kernel reads them, large enough that the per-stage calls cost nothing.
_STAGE_BYTES = 2 << 20


def is_storage16(a: np.ndarray) -> bool:
    return _is_bfloat16(a.dtype) is not None


def stages(
    x: np.ndarray, out: np.ndarray | None, threads: int
) -> Iterator[tuple[int, int, NDArray[np.float32], NDArray[np.float32] | None]]:
    """Stages of the C-contiguous float16/bfloat16 rows of the 2-d `x`, as
    ``(first, count, rows_in, rows_out)``: rows_in holds rows [first, first + count) in
    float32; what the caller writes into rows_out (when `out`, 2-d like x, is given) is
    converted into those rows of `out` before the next stage. `out` may be `x` itself: a
    stage is read whole before it is written. Memory sees 16-bit traffic only, and no float32
    copy of the whole array is made."""
    kind = _is_bfloat16(x.dtype)
    assert kind is not None and x.ndim == 2 and x.flags.c_contiguous
    rows, n = x.shape
    per = max(1, _STAGE_BYTES // (4 * max(n, 1)))
    stage_in = np.empty((min(per, rows), n), _F32)
    stage_out = None if out is None else np.empty_like(stage_in)
    isa = current_isa_index()
    for first in range(0, rows, per):
        count = min(per, rows - first)
        a = stage_in[:count]
        b = None if stage_out is None else stage_out[:count]
        _core.convert16(_bits(x[first : first + count]), a.reshape(-1), kind, True, isa, threads)
        yield first, count, a, b
        if out is not None and b is not None:
            dst = _bits(out[first : first + count])
            _core.convert16(b.reshape(-1), dst, kind, False, isa, threads)


def staged_rows(
    x: np.ndarray,
    out: np.ndarray,
    n: int,
    fn: Callable[[NDArray[np.float32], NDArray[np.float32]], None],
    threads: int,
) -> None:
    """Run a float32 row-to-row kernel `fn(rows_in, rows_out)` over the rows of length `n` of
    a C-contiguous float16/bfloat16 array `x`, writing `out` (same shape and dtype, C order;
    it may be `x` itself), a stage at a time (see stages)."""
    assert out.dtype == x.dtype and out.flags.c_contiguous
    rows = x.size // n if n else 0
    if rows == 0:
        return
    for _, _, a, b in stages(x.reshape(rows, n), out.reshape(rows, n), threads):
        assert b is not None
        fn(a, b)


def staged_reduce(
    x: np.ndarray,
    n: int,
    fn: Callable[[NDArray[np.float32], NDArray[np.float32]], None],
    threads: int,
) -> NDArray[np.float32]:
    """Run a float32 row reduction `fn(rows_in, values_out)` over the rows of length `n` of a
    C-contiguous float16/bfloat16 array, a stage at a time (see stages); returns the float32
    values, one per row, shaped like x without its last axis."""
    assert n > 0
    rows = x.size // n
    values = np.empty(rows, _F32)
    for first, count, a, _ in stages(x.reshape(rows, n), None, threads):
        fn(a, values[first : first + count])
    return values.reshape(x.shape[:-1])
