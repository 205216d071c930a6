"""Argument checks shared by the public functions: dtype policy, axes, ``out=``, threads,
``where=`` masks, reductions and the loss options.

Pure Python and NumPy, no native code. :mod:`logitkit.reference` keeps checks of its own, as its
docstring explains.
"""

from __future__ import annotations

import math
import numbers
import operator
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

try:  # NumPy >= 2.0
    from numpy.lib.array_utils import normalize_axis_tuple
except ImportError:  # pragma: no cover - NumPy 1.x
    from numpy.core.numeric import normalize_axis_tuple  # type: ignore[attr-defined,no-redef,unused-ignore]

try:  # NumPy >= 1.25
    from numpy.exceptions import AxisError
except ImportError:  # pragma: no cover - older NumPy
    from numpy import AxisError  # type: ignore[attr-defined,no-redef]

__all__ = [
    "as_input_array",
    "compute_dtypes",
    "check_out",
    "normalize_axes",
    "check_class_axis",
    "check_class_input",
    "check_threads",
    "check_where",
    "row_mask",
    "REDUCTIONS",
    "check_reduction",
    "check_base",
    "check_flag",
    "check_real",
    "check_index",
    "check_z_loss",
    "check_softcap",
    "check_class_weight",
    "check_index_target",
    "partially_overlaps",
    "upstream_scale",
    "torch_bfloat16_array",
]

# The reductions over rows every loss takes; the divergences add "batchmean".
REDUCTIONS = ("none", "sum", "mean")


def _torch_bfloat16(value: Any) -> bool:
    dtype = getattr(value, "dtype", None)
    return type(value).__module__.startswith("torch") and str(dtype) == "torch.bfloat16"


def torch_bfloat16_array(
    tensor: Any, share: Callable[[Any], np.ndarray] = np.from_dlpack
) -> np.ndarray:
    """A PyTorch bfloat16 tensor's memory as an ``ml_dtypes.bfloat16`` array, without a copy.

    DLPack and NumPy have no bfloat16: the tensor crosses as its int16 bits, which ``share``
    turns into an array sharing their memory (``numpy.from_dlpack``, or ``Tensor.numpy``,
    cheaper on small tensors but refusing one that requires grad), and the array is viewed
    as ml_dtypes' bfloat16, the type logitkit computes bfloat16 arrays in. Raises
    ImportError without ml_dtypes. torch is imported here, not with this module: a caller
    holding a tensor has imported it already.
    """
    import ml_dtypes
    import torch

    return share(tensor.view(torch.int16)).view(ml_dtypes.bfloat16)


def _from_dlpack(func: str, arg: str, value: Any) -> np.ndarray:
    """An array sharing the memory of an object with ``__dlpack__`` (PyTorch and JAX CPU
    arrays, CuPy on the host, ...), without a copy.

    DLPack's bfloat16 has no NumPy dtype: a PyTorch bfloat16 tensor crosses as its int16 bits
    and is viewed as ml_dtypes' bfloat16, the type logitkit computes bfloat16 arrays in; other
    producers of bfloat16 (JAX) are read through ``__array__``, which gives that type itself.
    """
    try:
        if _torch_bfloat16(value):
            return torch_bfloat16_array(value)
        return np.from_dlpack(value)
    except ImportError:
        raise TypeError(
            f"{func}(): {arg} is a bfloat16 tensor, which needs the ml_dtypes package "
            "(pip install ml_dtypes)"
        ) from None
    except BufferError as exc:
        # The producer refuses to share: memory on another device, or a tensor that
        # requires grad. Copying behind the caller's back would hide both.
        raise TypeError(
            f"{func}(): {arg} ({type(value).__name__}) cannot be shared with NumPy: {exc}"
        ) from exc
    except (TypeError, ValueError, RuntimeError) as exc:
        # a dtype DLPack or NumPy has no code for: __array__ may still know it
        reason: Exception = exc
    try:
        arr = np.asarray(value)
    except (TypeError, ValueError, RuntimeError) as exc:
        reason = exc
    else:
        if arr.dtype != object:
            return arr
    raise TypeError(
        f"{func}(): {arg} ({type(value).__name__}) cannot be read as a NumPy array: {reason}"
    ) from reason


def as_input_array(func: str, arg: str, value: Any) -> np.ndarray:
    """``np.asarray`` with a message naming the function when the conversion fails.

    Objects with ``__dlpack__`` (PyTorch CPU tensors, JAX CPU arrays) are read through
    DLPack, sharing their memory. Subclasses become plain arrays (``np.matrix`` included),
    except masked arrays: dropping their mask would count the masked entries, so they are
    refused. Arrays in non-native byte order are converted to native order (a copy), as the
    kernels read native numbers.
    """
    if isinstance(value, np.ma.MaskedArray):
        raise TypeError(
            f"{func}(): {arg} must not be a masked array (its mask would be ignored); pass "
            f"{arg}.filled(value), or the mask's complement as where= where the function "
            "takes one"
        )
    if not isinstance(value, np.ndarray) and hasattr(value, "__dlpack__"):
        arr = _from_dlpack(func, arg, value)
    else:
        try:
            arr = np.asarray(value)
        except (TypeError, ValueError) as exc:
            raise TypeError(
                f"{func}(): {arg} must be array-like, got {type(value).__name__}"
            ) from exc
    if not arr.dtype.isnative:
        arr = arr.astype(arr.dtype.newbyteorder("="))
    return arr


def _plain_scalar(value: Any) -> Any:
    """A 0-d array's element; anything else as it is."""
    if isinstance(value, np.ndarray) and value.ndim == 0:
        return value[()]
    return value


def check_flag(func: str, name: str, value: Any) -> bool:
    """A boolean option: True or False (Python's or NumPy's), nothing else."""
    value = _plain_scalar(value)
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{func}(): {name} must be True or False, got {value!r}")
    return bool(value)


def check_real(
    func: str, name: str, value: Any, expected: str, valid: Callable[[float], bool]
) -> float:
    """A real-number option: TypeError unless it is a real number (bools are not), and
    ValueError unless ``valid(value)``; both messages say ``expected``."""
    if type(value) is float or type(value) is int:  # the usual case, without the ABC check
        if not valid(float(value)):
            raise ValueError(f"{func}(): {name} must be {expected}, got {value!r}")
        return float(value)
    value = _plain_scalar(value)
    if isinstance(value, np.generic) and value.dtype.name == "bfloat16":
        value = float(value)  # ml_dtypes' scalars are not registered as numbers.Real
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{func}(): {name} must be {expected}, got {value!r}")
    number = float(value)
    if not valid(number):
        raise ValueError(f"{func}(): {name} must be {expected}, got {value!r}")
    return number


def check_index(func: str, name: str, value: Any) -> int:
    """An integer option (Python's or NumPy's integers; not bool, not a float)."""
    value = _plain_scalar(value)
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{func}(): {name} must be an int, got {value!r}")
    try:
        return operator.index(value)
    except TypeError:
        raise TypeError(f"{func}(): {name} must be an int, got {value!r}") from None


_NATIVE_FLOATS = frozenset((np.dtype(np.float32), np.dtype(np.float64)))


def compute_dtypes(func: str, arg: str, dtype: np.dtype) -> tuple[np.dtype, np.dtype]:
    """Return ``(compute dtype, result dtype)`` for an input dtype.

    float32 and float64 are computed natively; float16 and bfloat16 are storage types
    computed in float32; integers and bools are computed in float64, as SciPy does.
    """
    if dtype in _NATIVE_FLOATS:  # a set lookup: comparing dtypes one by one costs more
        return dtype, dtype
    if dtype == np.float16 or dtype.name == "bfloat16":
        return np.dtype(np.float32), dtype
    if dtype.kind in "biu":
        return np.dtype(np.float64), np.dtype(np.float64)
    raise TypeError(
        f"{func}(): {arg} must be a real floating (float16, bfloat16, float32 or float64), "
        f"integer or bool array, got {dtype}"
    )


def normalize_axes(func: str, axis: Any, ndim: int) -> tuple[int, ...]:
    """Axes as a tuple of non-negative ints; numpy's AxisError for an out-of-range axis."""
    if type(axis) is int and -ndim <= axis < ndim:
        # the usual call, answered before the general checks (a tenth of a small call's time)
        return (axis % ndim,)
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
    for a in indices:
        if not -ndim <= a < ndim:
            raise AxisError(a, ndim, msg_prefix=f"{func}()")
    if len(set(a % ndim for a in indices)) != len(indices):
        raise ValueError(f"{func}(): axis must not repeat an axis, got {axis!r}")
    return tuple(normalize_axis_tuple(indices, ndim, argname="axis"))


def check_class_axis(func: str, axis: Any, ndim: int, what: str = "x") -> int:
    """The class axis of an array with ``ndim`` dimensions: one int (not a tuple, not None),
    as a non-negative index. ``what`` names the array in the message for a 0-d one."""
    if ndim == 0:
        raise ValueError(f"{func}(): {what} must have a class axis, got a 0-d array")
    if isinstance(axis, (tuple, list)) or axis is None:
        raise TypeError(f"{func}(): axis must be a single int (the class axis), got {axis!r}")
    (ax,) = normalize_axes(func, axis, ndim)
    return ax


def check_class_input(
    func: str, arg: str, value: Any, axis: Any
) -> tuple[np.ndarray, int, np.dtype, np.dtype]:
    """An array with a class axis: ``(array, class axis, compute dtype, result dtype)``."""
    arr = as_input_array(func, arg, value)
    compute, result = compute_dtypes(func, arg, arr.dtype)
    return arr, check_class_axis(func, axis, arr.ndim, arg), compute, result


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
    # may_share_memory first: it is a bounds check, where reading a data pointer through
    # __array_interface__ builds a dict (2 us, a tenth of a small call)
    if not np.may_share_memory(a, b):
        return False
    same_start = a.__array_interface__["data"][0] == b.__array_interface__["data"][0]
    return not (same_start and a.strides == b.strides and a.shape == b.shape)


def check_threads(func: str, threads: Any) -> int:
    """``threads=None`` means the library default, passed to the native layer as 0."""
    if threads is None:
        return 0
    if isinstance(threads, bool) or not isinstance(threads, (int, np.integer)):
        raise TypeError(f"{func}(): threads must be a positive int or None, got {threads!r}")
    if threads < 1:
        raise ValueError(f"{func}(): threads must be a positive int or None, got {threads}")
    return int(threads)


def check_where(
    func: str,
    where: Any,
    shape: tuple[int, ...],
    against: str,
    *,
    expand: bool = False,
    weights: Any = None,
) -> np.ndarray:
    """A ``where=`` argument: a boolean array, broadcast to ``shape`` (a read-only view).

    ``against`` names that shape in the message. With ``expand`` (logsumexp's mask, a weight
    of 0 or 1) the mask need only broadcast together with ``shape`` and the shape of
    ``weights``, and is returned as given: like the weights, it may add axes to ``x``.
    """
    mask = as_input_array(func, "where", where)
    if mask.dtype != np.bool_:
        raise TypeError(f"{func}(): where must be a boolean array, got {mask.dtype}")
    try:
        if expand:
            np.broadcast_shapes(mask.shape, shape, np.shape(weights))
            return mask
        return np.broadcast_to(mask, shape)
    except ValueError:
        raise ValueError(
            f"{func}(): where with shape {mask.shape} cannot be broadcast to {against}"
        ) from None


def row_mask(func: str, where: Any, rows_shape: tuple[int, ...]) -> np.ndarray:
    """``where`` selecting whole rows (the shape without the class axis), broadcast to them,
    as a new array the caller may update."""
    counted = np.ones(rows_shape, dtype=bool)
    if where is None:
        return counted
    mask = check_where(func, where, rows_shape, f"the rows {rows_shape}")
    # in place, so that a 0-d mask stays an array (`&` would give a NumPy scalar, which
    # callers cannot update in place)
    return np.logical_and(counted, mask, out=counted)  # type: ignore[no-any-return]


def check_reduction(func: str, reduction: Any, choices: tuple[str, ...] = REDUCTIONS) -> None:
    """A ``reduction=`` name, one of ``choices`` (listed in that order in the message)."""
    if reduction not in choices:
        raise ValueError(f"{func}(): reduction must be one of {choices}, got {reduction!r}")


def check_base(func: str, base: Any) -> None:
    """A logarithm base: positive and not 1 (None means e; inf gives 0, as in SciPy)."""
    if base is not None:
        check_real(
            func, "base", base, "None or a number > 0 other than 1", lambda v: v > 0 and v != 1
        )


def check_z_loss(func: str, z_loss: Any) -> float:
    return check_real(func, "z_loss", z_loss, "a finite number >= 0", lambda v: 0 <= v < np.inf)


def check_softcap(func: str, softcap: Any) -> float | None:
    """A logit cap ``c`` (the logits become ``c * tanh(z / c)``), or None for none.

    ``c * tanh(z / c)`` tends to ``z`` as ``c`` grows, so ``softcap=inf`` is no cap: None.
    """
    if softcap is None:
        return None
    cap = check_real(
        func, "softcap", softcap, "None or a number > 0 (inf: no cap)", lambda v: v > 0
    )
    return None if cap == np.inf else cap


def check_class_weight(
    func: str, weight: Any, n_classes: int, per: str = "one per class"
) -> np.ndarray:
    """Class weights: a real array of shape ``(n_classes,)``, in its own dtype; ``per``
    says in the message what the classes are."""
    w = as_input_array(func, "weight", weight)
    compute_dtypes(func, "weight", w.dtype)
    if w.shape != (n_classes,):
        raise ValueError(f"{func}(): weight must have shape ({n_classes},) ({per}), got {w.shape}")
    return w


def check_index_target(func: str, target: Any, rows_shape: tuple[int, ...], rows: str) -> None:
    """Class-index targets, one per row: an integer array (NumPy's or Dask's) of
    ``rows_shape``; ``rows`` says in the message what that shape is."""
    if target.dtype.kind not in "iu":
        raise TypeError(f"{func}(): target must be integer class indices, got {target.dtype}")
    if target.shape != rows_shape:
        raise ValueError(
            f"{func}(): target must have shape {rows_shape} ({rows}), got {target.shape}"
        )


def upstream_scale(
    func: str, grad_output: Any, reduction: str, rows_shape: tuple[int, ...], denominator: float
) -> np.ndarray:
    """Each row's factor on its loss gradient, as float64: ``grad_output`` (default 1) per
    row for reduction "none", ``grad_output / denominator`` for the means and
    ``grad_output`` for "sum". NaN and infinite upstream gradients propagate, as in
    autograd; a mean over a zero denominator is NaN."""
    n_rows = math.prod(rows_shape)
    if reduction == "none":
        if grad_output is None:
            return np.ones(n_rows)
        g = as_input_array(func, "grad_output", grad_output)
        if g.dtype.kind not in "biuf" or g.dtype == np.longdouble:
            raise TypeError(
                f"{func}(): grad_output must be a real array shaped like the loss "
                f"{rows_shape}, got dtype {g.dtype}"
            )
        try:
            g = np.broadcast_to(g, rows_shape)
        except ValueError:
            raise ValueError(
                f"{func}(): grad_output must have the loss's shape {rows_shape}, got {g.shape}"
            ) from None
        return np.require(g, np.float64, ("C", "A")).reshape(-1)
    g0 = 1.0
    if grad_output is not None:
        g0 = check_real(func, "grad_output", grad_output, "a real number", lambda v: True)
    if reduction != "sum":
        g0 = g0 / denominator if denominator else float("nan")
    return np.full(n_rows, g0)
