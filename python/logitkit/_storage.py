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
        dst = np.empty(src.shape, dtype)
        _core.convert16(_bits(src), dst.reshape(-1), from_kind, True, current_isa_index(), 0)
        return dst
    if a.dtype == _F32 and to_kind is not None:
        src = _c_order(a)
        dst = np.empty(src.shape, dtype)
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
