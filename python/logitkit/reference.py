"""Pure-NumPy reference implementation of the logitkit functions.

This module is the readable numerical specification of logitkit and the oracle
the native kernels are tested against.  Every public function of the package
has a twin here with the same signature; ``threads`` is accepted and ignored.
The module depends on NumPy only and never imports the compiled extension.

Accuracy
--------
The input is converted to float64, every intermediate is computed in float64,
and the result is rounded once to the result dtype.  The float32 results are
therefore correctly rounded except in rare near-halfway cases, and the float64
results are accurate to a few units in the last place.

Dtypes
------
===============================  =====================================
input dtype                      result dtype
===============================  =====================================
float16, float32, float64        the same dtype (byte order: native)
bool, signed or unsigned integer float64
``bfloat16`` (ml_dtypes)         bfloat16
complex, object, str, bytes,     TypeError naming the function, the
datetime, timedelta, longdouble  argument and the dtype
(when wider than float64)
===============================  =====================================

Python scalars and sequences are accepted and go through ``np.asarray``.
``logsumexp`` with ``b`` uses ``np.result_type(x, b)`` before the table above.

Output
------
``out=``, when given, must be a ``numpy.ndarray`` (otherwise TypeError) that
is writeable and has exactly the result shape and dtype (otherwise
ValueError); the result is written into it and ``out`` is returned.  The
input is never modified unless it is ``out``.  Without ``out``, a 0-d result
of ``logsumexp`` or of an elementwise function is returned as a NumPy scalar,
as NumPy reductions and ufuncs do; ``softmax`` and ``log_softmax`` always
return an array of the input's shape.

Axes
----
``axis`` is an int, a tuple of ints, or None (all axes); a reduction over
several axes treats them as one flattened row.  An axis out of range raises
``numpy.exceptions.AxisError``, a repeated axis raises ValueError, and a bool
or non-integer axis raises TypeError.  A 0-d input behaves like a 1-element
row for ``axis`` in ``-1, 0, None, ()``.  ``axis=()`` reduces over no axes:
every element is its own 1-element row.

Special values
--------------
A row is the set of entries one reduction combines (for ``logsumexp`` with
``b``, only the entries where ``b != 0``).

* ``logsumexp``: a NaN in the row gives NaN.  A row with ``+inf`` gives
  ``+inf`` with the sign of the sum of the weights of its ``+inf`` entries,
  or NaN when that sum is 0 (``inf - inf``).  A row of ``-inf`` only, or an
  empty row, gives ``-inf`` with sign 0.  A negative sum gives NaN unless
  ``return_sign=True``.
* ``softmax`` / ``log_softmax``: a NaN makes the whole row NaN; a row of
  ``-inf`` only is NaN (``0/0``); an empty row gives an empty result.
* Elementwise functions follow their limits: ``sigmoid(+-inf) = 1, 0``,
  ``logit(0) = -inf``, ``logit(1) = +inf``, ``logit(p) = NaN`` outside
  ``[0, 1]``; NaN propagates.

No RuntimeWarning is emitted for any of these.

Deliberate differences from SciPy
---------------------------------
1. ``softmax`` of a row holding ``k`` entries equal to ``+inf`` (and no NaN)
   gives ``1/k`` at those entries and 0 elsewhere, which is the limit of
   softmax as those logits grow; ``log_softmax`` gives ``-log(k)`` and
   ``-inf``.  SciPy returns NaN for such rows.
2. ``logsumexp(..., return_sign=True)`` of an empty row gives sign 0, the
   sign of the empty sum; SciPy gives -1.
"""

from __future__ import annotations

import operator
from typing import Any, Literal, overload

import numpy as np
from numpy.typing import ArrayLike, NDArray

try:
    from numpy.exceptions import AxisError
except ImportError:  # NumPy < 1.25 only has it in the main namespace
    from numpy import AxisError  # type: ignore[attr-defined,no-redef]

__all__ = [
    "expit",
    "log_expit",
    "log_sigmoid",
    "log_softmax",
    "logit",
    "logsumexp",
    "sigmoid",
    "softmax",
    "softplus",
]

_Axis = int | tuple[int, ...] | None
_Result = Any  # an ndarray, or a NumPy scalar for a 0-d result without out=

_F64 = np.dtype(np.float64)
# Keyed by itemsize so that a longdouble that is really a double (MSVC, some
# ARM ABIs) is accepted as float64, while an 80- or 128-bit one is rejected.
_FLOAT_BY_SIZE: dict[int, np.dtype[Any]] = {
    2: np.dtype(np.float16),
    4: np.dtype(np.float32),
    8: _F64,
}


# ---------------------------------------------------------------------------
# Shared plumbing
# ---------------------------------------------------------------------------


def _result_dtype(dtype: np.dtype[Any], func: str, arg: str) -> np.dtype[Any]:
    """The result dtype for an input of ``dtype`` (see the module docstring)."""
    if dtype.name == "bfloat16":
        return dtype
    if dtype.kind in "biu":
        return _F64
    if dtype.kind == "f" and dtype.itemsize in _FLOAT_BY_SIZE:
        return _FLOAT_BY_SIZE[dtype.itemsize]
    raise TypeError(f"{func}(): {arg} must be a real floating, integer or bool array, got {dtype}")


def _load(x: ArrayLike, func: str, arg: str) -> tuple[NDArray[np.float64], np.dtype[Any]]:
    """Validate ``x`` and return a float64 copy of it with its result dtype."""
    arr = np.asarray(x)
    dtype = _result_dtype(arr.dtype, func, arg)
    # astype copies, so the caller may write into out even when out is x.
    return arr.astype(np.float64), dtype


def _check_out(
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


def _finish(
    res64: NDArray[np.float64], dtype: np.dtype[Any], out: Any, keep_array: bool = False
) -> _Result:
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


def _normalize_axes(axis: Any, ndim: int, func: str) -> tuple[int, ...]:
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


def _as_rows(x: NDArray[np.float64]) -> NDArray[np.float64]:
    # A 0-d array is computed as the 1-element row it stands for.
    return x.reshape(1) if x.ndim == 0 else x


def _row_parts(
    x: NDArray[np.float64], b: NDArray[np.float64] | None, axes: tuple[int, ...]
) -> tuple[NDArray[np.bool_], NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """The per-row quantities behind logsumexp, softmax and log_softmax.

    Returns ``(nan_row, m, c, r)``, each with the reduced axes kept as size 1:

    * ``nan_row``: the row has a NaN in ``b``, or in ``x`` where ``b != 0``;
    * ``m``: the maximum of the counted entries that are not NaN (-inf if none);
    * ``c``: the sum of the weights of the entries equal to ``m`` (their count
      without ``b``); when ``m = +inf`` this is the weight of the ``+inf`` entries;
    * ``r``: the sum of ``b * exp(x - m)`` over the entries strictly below a
      finite ``m`` (0 in rows where ``m`` is infinite).

    so that, in a row with finite ``m``, ``sum(b * exp(x)) = exp(m) * (c + r)``.
    """
    weight = np.ones_like(x) if b is None else b
    counted = weight != 0  # NaN != 0, so a NaN weight is counted and poisons its row
    bad = counted & (np.isnan(x) | np.isnan(weight))
    live = counted & ~bad
    nan_row = np.any(bad, axis=axes, keepdims=True)

    xl = np.where(live, x, -np.inf)
    m = np.max(xl, axis=axes, keepdims=True, initial=-np.inf)
    # x - m may overflow to -inf (x = -1e308, m = 1e308), and huge weights may
    # sum to inf; both are the correctly rounded outcome, so stay quiet.
    with np.errstate(all="ignore"):
        c = np.sum(weight, axis=axes, keepdims=True, where=live & (xl == m))
        # Only rows with finite m need r; masking the others keeps exp() from
        # overflowing on them, and exp(x - m) <= 1 where it is evaluated.
        below = live & (xl < m) & np.isfinite(m)
        scaled = np.exp(np.where(below, xl - np.where(np.isfinite(m), m, 0.0), -np.inf))
        r = np.sum(weight * scaled, axis=axes, keepdims=True, where=below)
    return nan_row, m, c, r


def _log_abs_sum(
    c: NDArray[np.float64], r: NDArray[np.float64]
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """``log|c + r|`` and ``sign(c + r)``, accurate when ``|r|`` is tiny next to ``|c|``.

    With ``t = r / c``, ``log|c + r| = log|c| + log1p(t)`` when ``1 + t >= 0``;
    when ``1 + t < 0`` the magnitude is ``-(1 + t) = 1 + (-2 - t)``.  The
    computed sign of ``1 + t`` is always right: ``1 + t`` is exact for
    ``-2 <= t <= -1/2`` (Sterbenz) and plainly positive or negative elsewhere.
    """
    with np.errstate(all="ignore"):
        t = r / c
        flipped = t < -1.0
        via_c = np.log(np.abs(c)) + np.log1p(np.where(flipped, -2.0 - t, t))
        value = np.where(c != 0, via_c, np.log(np.abs(r)))
        sign = np.where(c != 0, np.sign(c) * np.sign(1.0 + t), np.sign(r))
    return value, sign


# ---------------------------------------------------------------------------
# Reductions along an axis
# ---------------------------------------------------------------------------


@overload
def logsumexp(
    x: ArrayLike,
    axis: _Axis = ...,
    *,
    b: ArrayLike | None = ...,
    keepdims: bool = ...,
    return_sign: Literal[False] = ...,
    out: NDArray[Any] | None = ...,
    threads: int | None = ...,
) -> _Result: ...
@overload
def logsumexp(
    x: ArrayLike,
    axis: _Axis = ...,
    *,
    b: ArrayLike | None = ...,
    keepdims: bool = ...,
    return_sign: Literal[True],
    out: tuple[NDArray[Any], NDArray[Any]] | None = ...,
    threads: int | None = ...,
) -> tuple[_Result, _Result]: ...
def logsumexp(
    x: ArrayLike,
    axis: _Axis = -1,
    *,
    b: ArrayLike | None = None,
    keepdims: bool = False,
    return_sign: bool = False,
    out: Any = None,
    threads: int | None = None,
) -> _Result | tuple[_Result, _Result]:
    """``log(sum(b * exp(x)))`` over ``axis``, without overflow or underflow.

    Let ``m`` be the largest counted entry of a row, ``c`` the sum of the
    weights of the entries equal to ``m`` and ``r = sum(b * exp(x - m))``
    over the entries below ``m``.  Then::

        logsumexp = m + log|c + r| = m + (log|c| + log1p(r / c))    (c != 0)
                                   = m + log|r|                      (c == 0)

    Writing ``log1p(r / c)`` instead of ``log(c + r)`` keeps the tiny
    contributions that ``c + r`` would round away (Blanchard & Higham).

    Parameters
    ----------
    x : array_like
    axis : int, tuple of ints or None, default -1
    b : array_like, optional
        Weights, broadcast against ``x`` (both ways, as in SciPy); they may be negative.  Entries
        with ``b == 0`` are ignored, even where ``x`` is inf or NaN.
    keepdims : bool
        Keep the reduced axes with size 1.
    return_sign : bool
        Return ``(log|sum|, sign(sum))`` instead of ``log(sum)``, which is NaN
        for a negative sum.  The sign is +1, -1, 0 (the sum is 0, the value
        is -inf) or NaN, with the dtype of the value.
    out : ndarray, or a pair ``(value_out, sign_out)`` with ``return_sign``
    threads : ignored

    Special rows: a NaN gives NaN (sign NaN); ``+inf`` entries give ``+inf``
    with the sign of their total weight ``s``, NaN if ``s == 0``; only ``-inf``
    entries, or none at all (all ``b == 0``, empty axis) give ``-inf``, sign 0.

    Examples
    --------
    >>> print(logsumexp([1000.0, 1000.0]))
    1000.6931471805599
    >>> print(logsumexp([0.0, -50.0]))
    1.9287498479639178e-22
    >>> value, sign = logsumexp([0.0, 1.0], b=[1.0, -1.0], return_sign=True)
    >>> print(value, sign)
    0.5413248546129181 -1.0
    >>> print(logsumexp([3.0, float("nan")], b=[1.0, 0.0]))
    3.0
    """
    func = "logsumexp"
    xa = np.asarray(x)
    dtype = _result_dtype(xa.dtype, func, "x")
    x64 = xa.astype(np.float64)
    b64: NDArray[np.float64] | None = None
    if b is not None:
        ba = np.asarray(b)
        _result_dtype(ba.dtype, func, "b")
        try:
            joint = np.result_type(xa.dtype, ba.dtype)
        except TypeError:
            raise TypeError(
                f"{func}(): x ({xa.dtype}) and b ({ba.dtype}) have no common dtype"
            ) from None
        dtype = _result_dtype(joint, func, "x and b")
        # As in SciPy, x and b broadcast against each other.
        try:
            joint_shape = np.broadcast_shapes(x64.shape, ba.shape)
        except ValueError:
            raise ValueError(
                f"{func}(): b with shape {ba.shape} cannot be broadcast to x with shape {x64.shape}"
            ) from None
        x64 = np.broadcast_to(x64, joint_shape)
        b64 = np.broadcast_to(ba.astype(np.float64), joint_shape)

    axes = _normalize_axes(axis, x64.ndim, func)
    if x64.ndim == 0:
        out_shape: tuple[int, ...] = ()
    elif keepdims:
        out_shape = tuple(1 if i in axes else n for i, n in enumerate(x64.shape))
    else:
        out_shape = tuple(n for i, n in enumerate(x64.shape) if i not in axes)

    if return_sign:
        if out is not None:
            if not (isinstance(out, tuple) and len(out) == 2):
                raise TypeError(
                    f"{func}(): with return_sign=True, out must be a pair of arrays "
                    "(value_out, sign_out)"
                )
            _check_out(out[0], out_shape, dtype, func, "out[0]")
            _check_out(out[1], out_shape, dtype, func, "out[1]")
    else:
        _check_out(out, out_shape, dtype, func)

    nan_row, m, c, r = _row_parts(_as_rows(x64), None if b64 is None else _as_rows(b64), axes)
    finite_m = np.isfinite(m)
    log_abs, sign_finite = _log_abs_sum(c, r)
    with np.errstate(all="ignore"):
        value = np.select(
            [nan_row, m == np.inf, m == -np.inf],
            [np.nan, np.where(c != 0, np.inf, np.nan), -np.inf],
            default=np.where(finite_m, m, 0.0) + log_abs,
        )
        sign = np.select(
            [nan_row, m == np.inf, m == -np.inf],
            [np.nan, np.where(c != 0, np.sign(c), np.nan), 0.0],
            default=sign_finite,
        )
    value = value.reshape(out_shape)
    sign = sign.reshape(out_shape)

    if return_sign:
        value_out, sign_out = (None, None) if out is None else out
        return _finish(value, dtype, value_out), _finish(sign, dtype, sign_out)
    return _finish(np.where(sign < 0, np.nan, value), dtype, out)


def softmax(
    x: ArrayLike, axis: _Axis = -1, *, out: NDArray[Any] | None = None, threads: int | None = None
) -> _Result:
    """``exp(x - m) / sum(exp(x - m))`` over ``axis``, ``m`` the row maximum.

    Subtracting ``m`` makes every ``exp`` at most 1, so nothing overflows and
    the denominator is at least 1.  ``axis`` may name several axes, which
    are then normalized together.

    Special rows: a NaN makes the whole row NaN.  With ``k`` entries equal to
    ``+inf`` (and no NaN), those entries get ``1/k`` and the others 0, the limit
    of softmax as those logits grow (SciPy returns NaN).  A row of ``-inf``
    only is NaN (``0/0``).  An empty axis gives an empty result.

    Examples
    --------
    >>> print(softmax(np.array([123.0, 456.0, 789.0], dtype=np.float32)))
    [0. 0. 1.]
    >>> print(softmax([123.0, 456.0, 789.0]))
    [5.75274406e-290 2.39848787e-145 1.00000000e+000]
    >>> print(softmax([0.0, float("inf"), 5.0, float("inf")]))
    [0.  0.5 0.  0.5]
    >>> print(softmax([0.0, 0.0, 0.0, 0.0]))
    [0.25 0.25 0.25 0.25]
    """
    func = "softmax"
    x64, dtype = _load(x, func, "x")
    axes = _normalize_axes(axis, x64.ndim, func)
    _check_out(out, x64.shape, dtype, func)

    rows = _as_rows(x64)
    nan_row, m, c, r = _row_parts(rows, None, axes)
    finite_m = np.isfinite(m)
    with np.errstate(all="ignore"):
        # All entries are <= m in a row with finite m, so exp() cannot overflow.
        p = np.exp(np.where(finite_m, rows - np.where(finite_m, m, 0.0), -np.inf)) / (c + r)
        res = np.select(
            [nan_row, m == np.inf, m == -np.inf],
            [np.nan, np.where(rows == np.inf, 1.0 / c, 0.0), np.nan],
            default=p,
        )
    return _finish(res.reshape(x64.shape), dtype, out, keep_array=True)


def log_softmax(
    x: ArrayLike, axis: _Axis = -1, *, out: NDArray[Any] | None = None, threads: int | None = None
) -> _Result:
    """``x - logsumexp(x)`` over ``axis``, computed as ``(x - m) - log(c + r)``.

    With ``m`` the row maximum, ``c`` the number of entries equal to ``m`` and
    ``r = sum(exp(x - m))`` over the others, ``log(c + r)`` is evaluated as
    ``log(c) + log1p(r / c)`` so that the largest entry of ``[0, -50]`` gets
    ``-1.9287498479639178e-22`` rather than 0.

    Special rows: a NaN makes the whole row NaN.  With ``k`` entries equal to
    ``+inf`` (and no NaN), those entries get ``-log(k)`` and the others
    ``-inf`` (the logarithm of the softmax rule; SciPy returns NaN).  A row of
    ``-inf`` only is NaN.  An empty axis gives an empty result.

    Examples
    --------
    >>> print(log_softmax([0.0, -50.0]))
    [-1.92874985e-22 -5.00000000e+01]
    >>> print(log_softmax([1.0, float("inf")]))
    [-inf   0.]
    """
    func = "log_softmax"
    x64, dtype = _load(x, func, "x")
    axes = _normalize_axes(axis, x64.ndim, func)
    _check_out(out, x64.shape, dtype, func)

    rows = _as_rows(x64)
    nan_row, m, c, r = _row_parts(rows, None, axes)
    finite_m = np.isfinite(m)
    with np.errstate(all="ignore"):
        log_norm = np.log(c) + np.log1p(r / c)
        shifted = np.where(finite_m, rows - np.where(finite_m, m, 0.0), -np.inf)
        # 0.0 - log(k) rather than -log(k): k = 1 must give +0, as in finite rows.
        res = np.select(
            [nan_row, m == np.inf, m == -np.inf],
            [np.nan, np.where(rows == np.inf, 0.0 - np.log(c), -np.inf), np.nan],
            default=shifted - log_norm,
        )
    return _finish(res.reshape(x64.shape), dtype, out, keep_array=True)


# ---------------------------------------------------------------------------
# Elementwise functions
# ---------------------------------------------------------------------------


def sigmoid(
    x: ArrayLike, *, out: NDArray[Any] | None = None, threads: int | None = None
) -> _Result:
    """The logistic function ``1 / (1 + exp(-x))``, elementwise.

    With ``e = exp(-|x|)``, which never overflows, the result is
    ``1 / (1 + e)`` for ``x >= 0`` and ``e / (1 + e)`` for ``x < 0``; the latter
    keeps full relative accuracy deep in the left tail.  ``sigmoid(+inf) = 1``,
    ``sigmoid(-inf) = 0``, NaN gives NaN.  ``sigmoid(x)`` is the first
    component of ``softmax([x, 0])``.

    Examples
    --------
    >>> print(sigmoid([0.0, -800.0, float("inf")]))
    [0.5 0.  1. ]
    >>> print(sigmoid(-40.0))
    4.248354255291589e-18
    """
    x64, dtype = _load(x, "sigmoid", "x")
    _check_out(out, x64.shape, dtype, "sigmoid")
    e = np.exp(-np.abs(x64))
    res = np.where(x64 >= 0, 1.0 / (1.0 + e), e / (1.0 + e))
    return _finish(res, dtype, out)


def log_sigmoid(
    x: ArrayLike, *, out: NDArray[Any] | None = None, threads: int | None = None
) -> _Result:
    """``log(sigmoid(x)) = min(x, 0) - log1p(exp(-|x|))``, elementwise.

    The formula never overflows and keeps relative accuracy for large ``|x|``:
    ``log_sigmoid(-1000) = -1000`` and ``log_sigmoid(40) = -4.2e-18``.
    ``log_sigmoid(+inf) = 0``, ``log_sigmoid(-inf) = -inf``, NaN gives NaN.

    Examples
    --------
    >>> print(log_sigmoid([0.0, -1000.0, float("inf")]))
    [-6.93147181e-01 -1.00000000e+03  0.00000000e+00]
    """
    x64, dtype = _load(x, "log_sigmoid", "x")
    _check_out(out, x64.shape, dtype, "log_sigmoid")
    res = np.minimum(x64, 0.0) - np.log1p(np.exp(-np.abs(x64)))
    return _finish(res, dtype, out)


def softplus(
    x: ArrayLike, *, out: NDArray[Any] | None = None, threads: int | None = None
) -> _Result:
    """``log(1 + exp(x)) = max(x, 0) + log1p(exp(-|x|))``, elementwise.

    The formula never overflows: ``softplus(1000) = 1000``.  It equals
    ``-log_sigmoid(-x)``.  ``softplus(+inf) = +inf``, ``softplus(-inf) = 0``,
    NaN gives NaN.

    Examples
    --------
    >>> print(softplus(1000.0), softplus(0.0), softplus(-1000.0))
    1000.0 0.6931471805599453 0.0
    """
    x64, dtype = _load(x, "softplus", "x")
    _check_out(out, x64.shape, dtype, "softplus")
    res = np.maximum(x64, 0.0) + np.log1p(np.exp(-np.abs(x64)))
    return _finish(res, dtype, out)


def logit(p: ArrayLike, *, out: NDArray[Any] | None = None, threads: int | None = None) -> _Result:
    """The log-odds ``log(p / (1 - p))``, elementwise; the inverse of ``sigmoid``.

    For ``0.3 <= p <= 0.7`` the result is small and ``log`` of a ratio close to
    1 would lose relative accuracy, so ``log1p((2p - 1) / (1 - p))`` is used
    there (``2p - 1`` is exact in that range).  ``logit(0) = -inf``,
    ``logit(1) = +inf``; ``p < 0``, ``p > 1`` and NaN give NaN.

    Examples
    --------
    >>> print(logit([0.0, 0.5, 0.75, 1.0, 2.0]))
    [      -inf 0.         1.09861229        inf        nan]
    """
    p64, dtype = _load(p, "logit", "p")
    _check_out(out, p64.shape, dtype, "logit")
    with np.errstate(all="ignore"):
        q = 1.0 - p64
        near_half = (p64 >= 0.3) & (p64 <= 0.7)
        res = np.where(near_half, np.log1p((2.0 * p64 - 1.0) / q), np.log(p64 / q))
    return _finish(res, dtype, out)


expit = sigmoid
log_expit = log_sigmoid
