"""What several modules of the reference use: the dtype table, axes, ``out=``, the single
rounding to the result dtype, the checks of options and rows of the losses and divergences, and
the float64 ``entr`` and ``rel_entr`` that the elementwise functions and ``entropy`` share.

The rules are those of the :mod:`logitkit.reference` docstring.
"""

from __future__ import annotations

import operator
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

try:
    from numpy.exceptions import AxisError
except ImportError:  # NumPy < 1.25 only has it in the main namespace
    from numpy import AxisError  # type: ignore[attr-defined,no-redef]

__all__ = [
    "Axis",
    "Result",
    "as_rows",
    "check_choice",
    "check_out",
    "check_real",
    "class_axis",
    "entr64",
    "finish",
    "joint_dtype",
    "load",
    "load_pair",
    "log_ratio",
    "masked_sum",
    "normalize_axes",
    "reduce_rows",
    "rel_entr64",
    "result_dtype",
    "row_mask",
    "upstream_grad",
]

Axis = int | tuple[int, ...] | None
Result = Any  # an ndarray, or a NumPy scalar for a 0-d result without out=

_F64 = np.dtype(np.float64)

# Keyed by itemsize so that a longdouble that is really a double (MSVC, some
# ARM ABIs) is accepted as float64, while an 80- or 128-bit one is rejected.
_FLOAT_BY_SIZE: dict[int, np.dtype[Any]] = {
    2: np.dtype(np.float16),
    4: np.dtype(np.float32),
    8: _F64,
}


# ---------------------------------------------------------------------------
# Arrays: dtypes, axes, out= and the rounding of the result
# ---------------------------------------------------------------------------


def result_dtype(dtype: np.dtype[Any], func: str, arg: str) -> np.dtype[Any]:
    """The result dtype for an input of ``dtype`` (see the docstring of ``logitkit.reference``)."""
    if dtype.name == "bfloat16":
        return dtype
    if dtype.kind in "biu":
        return _F64
    if dtype.kind == "f" and dtype.itemsize in _FLOAT_BY_SIZE:
        return _FLOAT_BY_SIZE[dtype.itemsize]
    raise TypeError(
        f"{func}(): {arg} must be a real floating (float16, bfloat16, float32 or float64), "
        f"integer or bool array, got {dtype}"
    )


def load(x: ArrayLike, func: str, arg: str) -> tuple[NDArray[np.float64], np.dtype[Any]]:
    """Validate ``x`` and return a float64 copy of it with its result dtype."""
    arr = np.asarray(x)
    dtype = result_dtype(arr.dtype, func, arg)
    # astype copies, so the caller may write into out even when out is x.
    return arr.astype(np.float64), dtype


def check_out(
    out: object, shape: tuple[int, ...], dtype: np.dtype[Any], func: str, name: str = "out"
) -> None:
    if out is None:
        return
    if not isinstance(out, np.ndarray):
        raise TypeError(f"{func}(): {name} must be a numpy.ndarray, got {type(out).__name__}")
    if out.shape != shape or out.dtype != dtype:
        raise ValueError(
            f"{func}(): {name} must have shape {shape} and dtype {dtype}, "
            f"got {out.shape} {out.dtype}"
        )
    if not out.flags.writeable:
        raise ValueError(f"{func}(): {name} must be writeable")


def finish(
    res64: NDArray[np.float64], dtype: np.dtype[Any], out: Any, keep_array: bool = False
) -> Result:
    """Round ``res64`` once to ``dtype`` and deliver it into ``out`` or as a new value.

    A 0-d result becomes a NumPy scalar unless ``keep_array`` (softmax and
    log_softmax always return an array of the input's shape).
    """
    # Rounding a float64 beyond the float16 range to inf is the intended result.
    with np.errstate(over="ignore"):
        res = res64.astype(dtype)
    if out is not None:
        np.copyto(out, res)
        return out
    return res[()] if res.ndim == 0 and not keep_array else res


def normalize_axes(axis: Any, ndim: int, func: str) -> tuple[int, ...]:
    """Non-negative, sorted axes; 0-d arrays accept the axes of a 1-element row."""
    bound = max(ndim, 1)
    if axis is None:
        return tuple(range(bound))
    items = axis if isinstance(axis, (tuple, list)) else (axis,)
    axes = []
    for item in items:
        # operator.index would take True for 1, which is almost surely a mistake.
        if isinstance(item, (bool, np.bool_)):
            raise TypeError(f"{func}(): axis must be an int, a tuple of ints or None, got bool")
        try:
            a = operator.index(item)
        except TypeError:
            raise TypeError(
                f"{func}(): axis must be an int, a tuple of ints or None, got {axis!r}"
            ) from None
        if not -bound <= a < bound:
            raise AxisError(a, ndim)
        axes.append(a % bound)
    if len(set(axes)) != len(axes):
        raise ValueError(f"{func}(): repeated axis in axis={axis!r}")
    return tuple(sorted(axes))


def as_rows(x: NDArray[np.float64]) -> NDArray[np.float64]:
    # A 0-d array is computed as the 1-element row it stands for.
    return x.reshape(1) if x.ndim == 0 else x


# ---------------------------------------------------------------------------
# Options and rows of the losses and divergences
# ---------------------------------------------------------------------------


def check_choice(value: object, choices: tuple[str, ...], func: str, name: str) -> str:
    if not isinstance(value, str) or value not in choices:
        listed = ", ".join(repr(c) for c in choices[:-1]) + f" or {choices[-1]!r}"
        raise ValueError(f"{func}(): {name} must be {listed}, got {value!r}")
    return value


def check_real(value: object, func: str, name: str, kind: str) -> float:
    """``value`` as a Python float, checked against ``kind``.

    ``kind`` is ``"unit"`` (in ``[0, 1]``), ``"nonnegative"`` (finite, ``>= 0``),
    ``"positive"`` (finite, ``> 0``), ``"cap"`` (``> 0``, inf meaning no cap) or
    ``"base"`` (``> 0``, inf allowed as SciPy allows it); NaN fails every check.
    """
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{func}(): {name} must be a real number, got bool")
    try:
        v = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise TypeError(f"{func}(): {name} must be a real number, got {value!r}") from None
    checks = {
        "unit": (0.0 <= v <= 1.0, "in [0, 1]"),
        "nonnegative": (0.0 <= v < np.inf, "a finite number >= 0"),
        "positive": (0.0 < v < np.inf, "a finite number > 0"),
        "cap": (0.0 < v, "None or a number > 0 (inf: no cap)"),
        "base": (0.0 < v, "a positive number or None"),
    }
    ok, expected = checks[kind]
    if not ok:
        raise ValueError(f"{func}(): {name} must be {expected}, got {value!r}")
    return v


def class_axis(axis: Any, ndim: int, func: str, arg: str) -> int:
    """The one axis holding the classes, non-negative."""
    if isinstance(axis, (bool, np.bool_)) or not isinstance(axis, (int, np.integer)):
        raise TypeError(f"{func}(): axis must be an int, got {axis!r}")
    if ndim == 0:
        raise ValueError(f"{func}(): {arg} must have at least one dimension, the class axis")
    return normalize_axes(int(axis), ndim, func)[0]


def row_mask(where: Any, rows_shape: tuple[int, ...], func: str) -> NDArray[np.bool_]:
    """``where`` broadcast to the rows, as a fresh array the caller may modify."""
    if where is None:
        return np.ones(rows_shape, dtype=bool)
    wa = np.asarray(where)
    if wa.dtype != np.bool_:
        raise TypeError(f"{func}(): where must be a bool array, got {wa.dtype}")
    try:
        return np.broadcast_to(wa, rows_shape).copy()  # type: ignore[no-any-return]
    except ValueError:
        raise ValueError(
            f"{func}(): where with shape {wa.shape} cannot be broadcast to the rows {rows_shape}"
        ) from None


def upstream_grad(
    grad_output: ArrayLike | None, reduction: str, shape: tuple[int, ...], func: str
) -> NDArray[np.float64]:
    """The upstream gradient: a scalar for a reduced loss, else broadcast to ``shape``."""
    if grad_output is None:
        g = np.ones(())
    else:
        g, _ = load(grad_output, func, "grad_output")
    if reduction == "none":
        try:
            return np.broadcast_to(g, shape)
        except ValueError:
            raise ValueError(
                f"{func}(): grad_output with shape {g.shape} cannot be broadcast to the loss "
                f"shape {shape}"
            ) from None
    if g.ndim != 0:
        raise ValueError(
            f"{func}(): grad_output must be a scalar with reduction={reduction!r}, "
            f"got shape {g.shape}"
        )
    return g


def joint_dtype(a: NDArray[Any], b: NDArray[Any], func: str, names: str) -> np.dtype[Any]:
    """The result dtype of a function of two arrays, as ``logsumexp`` does for ``x`` and ``b``."""
    try:
        joint = np.result_type(a.dtype, b.dtype)
    except TypeError:
        raise TypeError(f"{func}(): {names} ({a.dtype}, {b.dtype}) have no common dtype") from None
    return result_dtype(joint, func, names)


def load_pair(
    x: ArrayLike, y: ArrayLike, func: str, xname: str, yname: str, *, broadcast: bool
) -> tuple[NDArray[np.float64], NDArray[np.float64], np.dtype[Any]]:
    """Two validated float64 arrays and their joint result dtype.

    With ``broadcast`` they are broadcast against each other, otherwise their
    shapes must be equal.
    """
    xa, ya = np.asarray(x), np.asarray(y)
    result_dtype(xa.dtype, func, xname)
    result_dtype(ya.dtype, func, yname)
    dtype = joint_dtype(xa, ya, func, f"{xname} and {yname}")
    if broadcast:
        try:
            shape = np.broadcast_shapes(xa.shape, ya.shape)
        except ValueError:
            raise ValueError(
                f"{func}(): {xname} with shape {xa.shape} and {yname} with shape {ya.shape} "
                "cannot be broadcast together"
            ) from None
        xa, ya = np.broadcast_to(xa, shape), np.broadcast_to(ya, shape)
    elif xa.shape != ya.shape:
        raise ValueError(
            f"{func}(): {xname} and {yname} must have the same shape, got {xa.shape} and {ya.shape}"
        )
    return xa.astype(np.float64), ya.astype(np.float64), dtype


def masked_sum(values: NDArray[np.float64], coef: NDArray[np.float64]) -> NDArray[np.float64]:
    """``sum(coef * values)`` over the last axis, a zero coefficient contributing 0.

    The convention ``0 * log 0 = 0`` is what lets a masked class (logit
    ``-inf``) sit in a row without turning the loss into NaN.
    """
    with np.errstate(all="ignore"):
        return np.sum(coef * values, axis=-1, where=coef != 0)  # type: ignore[no-any-return]


def reduce_rows(row_loss: NDArray[np.float64], reduction: str, denom: float) -> NDArray[np.float64]:
    if reduction == "none":
        return row_loss
    total = np.sum(row_loss)
    if reduction == "sum":
        return np.asarray(total)
    # 0 / 0 is NaN, as PyTorch gives for a mean over nothing.
    with np.errstate(all="ignore"):
        return np.asarray(np.float64(total) / np.float64(denom))


# ---------------------------------------------------------------------------
# float64 terms of the entropy and divergences of probability vectors
# ---------------------------------------------------------------------------


def log_ratio(x: NDArray[np.float64], y: NDArray[np.float64]) -> NDArray[np.float64]:
    """``log(x / y)`` for ``x, y > 0``, accurate to a few ulps in relative terms.

    Within a factor 2 of each other ``x - y`` is exact (Sterbenz), so
    ``log1p((x - y) / y)`` keeps the relative accuracy that ``log`` of a
    rounded ratio near 1 loses.  Elsewhere ``|log(x / y)| > log 2`` and the
    rounded ratio is good enough, unless it over- or underflows, where
    ``log x - log y`` (of magnitude above 700) takes over.
    """
    with np.errstate(all="ignore"):
        near = (x >= 0.5 * y) & (0.5 * x <= y)  # 2 * y would overflow for y above max / 2
        ratio = x / y
        normal = np.isfinite(ratio) & (ratio >= np.finfo(np.float64).tiny)
        far = np.where(normal, np.log(ratio), np.log(x) - np.log(y))
        return np.where(near, np.log1p((x - y) / y), far)


def entr64(x: NDArray[np.float64]) -> NDArray[np.float64]:
    with np.errstate(all="ignore"):
        return np.select(
            [np.isnan(x), x > 0, x == 0], [np.nan, -x * np.log(x), 0.0], default=-np.inf
        )


def rel_entr64(x: NDArray[np.float64], y: NDArray[np.float64]) -> NDArray[np.float64]:
    with np.errstate(all="ignore"):
        return np.select(
            [np.isnan(x) | np.isnan(y), (x > 0) & (y > 0), (x == 0) & (y >= 0)],
            [np.nan, x * log_ratio(x, y), 0.0],
            default=np.inf,
        )
