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

Losses and information theory
-----------------------------
``cross_entropy``, ``nll_loss`` and the ``*_from_logits`` functions take the
classes along one int ``axis``; every position of the other axes is a *row*.
Their ``where=`` selects rows (it broadcasts to the shape without ``axis``):
a row where it is False contributes 0 and is left out of means.  It is not
an element mask.  Reductions are ``"none"``, ``"sum"`` and ``"mean"`` (plus
``"batchmean"`` for the divergences); a mean over nothing is NaN.

The loss and the gradient of ``cross_entropy``, ``nll_loss`` and
``binary_cross_entropy_with_logits`` have the result dtype of their first
argument (logits or log-probabilities); targets and weights do not change
it.  Functions of two arrays of equal
standing (``rel_entr``, ``kl_div_elementwise``, ``entropy``, ``kl_div``,
the divergences from logits, the ``*_backward`` functions) take the result
dtype of ``np.result_type`` of their inputs, as ``logsumexp`` does with
``b``.

In sums of ``coefficient * log(probability)``, a zero coefficient
contributes 0 even where the logarithm is ``-inf`` (``0 log 0 = 0``), so a
class masked with a ``-inf`` logit costs nothing where it carries no target
mass.  The ``with_grad`` variants return the exact derivative of the value
they return, multiplied by the upstream gradient ``grad_output``.

Deliberate differences: ``kl_div_elementwise`` stays finite where ``x / y``
over- or underflows and is ``+inf`` at ``x = +inf`` (SciPy's ``kl_div`` gives
``inf``, ``-inf`` or NaN there), and it keeps full relative accuracy near
``x = y``; ``entropy`` of float16 is float16 (SciPy: float32);
``kl_div`` is 0 where the target is 0 even if the input is ``-inf``
(PyTorch: NaN).
"""

from __future__ import annotations

import operator
from typing import Any, Literal, NamedTuple, overload

import numpy as np
from numpy.typing import ArrayLike, NDArray

try:
    from numpy.exceptions import AxisError
except ImportError:  # NumPy < 1.25 only has it in the main namespace
    from numpy import AxisError  # type: ignore[attr-defined,no-redef]

__all__ = [
    "CrossEntropyStats",
    "binary_cross_entropy_with_logits",
    "binary_cross_entropy_with_logits_with_grad",
    "cross_entropy",
    "cross_entropy_with_grad",
    "entr",
    "entropy",
    "entropy_from_logits",
    "expit",
    "hardmax",
    "jensen_shannon_from_logits",
    "jensen_shannon_from_logits_with_grad",
    "kl_div",
    "kl_div_elementwise",
    "kl_divergence_from_logits",
    "kl_divergence_from_logits_with_grad",
    "linear_cross_entropy",
    "linear_cross_entropy_with_grad",
    "log_expit",
    "log_sigmoid",
    "log_softmax",
    "log_softmax_backward",
    "logit",
    "logsumexp",
    "logsumexp_backward",
    "nll_loss",
    "rel_entr",
    "sigmoid",
    "sigmoid_backward",
    "softmax",
    "softmax_backward",
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
    raise TypeError(
        f"{func}(): {arg} must be a real floating (float16, bfloat16, float32 or float64), "
        f"integer or bool array, got {dtype}"
    )


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


# ---------------------------------------------------------------------------
# Losses and information theory: shared plumbing
# ---------------------------------------------------------------------------

_ROW_REDUCTIONS = ("none", "mean", "sum")
_KL_REDUCTIONS = ("none", "sum", "mean", "batchmean")


def _check_choice(value: object, choices: tuple[str, ...], func: str, name: str) -> str:
    if not isinstance(value, str) or value not in choices:
        listed = ", ".join(repr(c) for c in choices[:-1]) + f" or {choices[-1]!r}"
        raise ValueError(f"{func}(): {name} must be {listed}, got {value!r}")
    return value


def _check_real(value: object, func: str, name: str, kind: str) -> float:
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


def _class_axis(axis: Any, ndim: int, func: str, arg: str) -> int:
    """The one axis holding the classes, non-negative."""
    if isinstance(axis, (bool, np.bool_)) or not isinstance(axis, (int, np.integer)):
        raise TypeError(f"{func}(): axis must be an int, got {axis!r}")
    if ndim == 0:
        raise ValueError(f"{func}(): {arg} must have at least one dimension, the class axis")
    return _normalize_axes(int(axis), ndim, func)[0]


def _row_mask(where: Any, rows_shape: tuple[int, ...], func: str) -> NDArray[np.bool_]:
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


def _class_weight(weight: ArrayLike | None, n_classes: int, func: str) -> NDArray[np.float64]:
    if weight is None:
        return np.ones(n_classes)
    w64, _ = _load(weight, func, "weight")
    if w64.shape != (n_classes,):
        raise ValueError(
            f"{func}(): weight must be a vector of length {n_classes} (one per class), "
            f"got shape {w64.shape}"
        )
    return w64


def _upstream(
    grad_output: ArrayLike | None, reduction: str, shape: tuple[int, ...], func: str
) -> NDArray[np.float64]:
    """The upstream gradient: a scalar for a reduced loss, else broadcast to ``shape``."""
    if grad_output is None:
        g = np.ones(())
    else:
        g, _ = _load(grad_output, func, "grad_output")
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


def _grad_destination(
    logits: Any,
    grad_out: Any,
    inplace: bool,
    shape: tuple[int, ...],
    dtype: np.dtype[Any],
    func: str,
) -> Any:
    """Where a gradient goes: ``grad_out``, the logits themselves, or None for a new array."""
    if inplace:
        if grad_out is not None:
            raise ValueError(f"{func}(): pass grad_out or inplace=True, not both")
        _check_out(logits, shape, dtype, func, "logits")
        return logits
    _check_out(grad_out, shape, dtype, func, "grad_out")
    return grad_out


def _joint_dtype(a: NDArray[Any], b: NDArray[Any], func: str, names: str) -> np.dtype[Any]:
    """The result dtype of a function of two arrays, as ``logsumexp`` does for ``x`` and ``b``."""
    try:
        joint = np.result_type(a.dtype, b.dtype)
    except TypeError:
        raise TypeError(f"{func}(): {names} ({a.dtype}, {b.dtype}) have no common dtype") from None
    return _result_dtype(joint, func, names)


def _load_pair(
    x: ArrayLike, y: ArrayLike, func: str, xname: str, yname: str, *, broadcast: bool
) -> tuple[NDArray[np.float64], NDArray[np.float64], np.dtype[Any]]:
    """Two validated float64 arrays and their joint result dtype.

    With ``broadcast`` they are broadcast against each other, otherwise their
    shapes must be equal.
    """
    xa, ya = np.asarray(x), np.asarray(y)
    _result_dtype(xa.dtype, func, xname)
    _result_dtype(ya.dtype, func, yname)
    dtype = _joint_dtype(xa, ya, func, f"{xname} and {yname}")
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


def _row_softmax(
    z: NDArray[np.float64],
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """``(log_softmax, softmax, logsumexp)`` over the last axis of a float64 array.

    Going through the public functions keeps their treatment of ``+inf`` and
    NaN rows; the logsumexp keeps no class axis.
    """
    logp = log_softmax(z, axis=-1)
    p = softmax(z, axis=-1)
    lse = np.asarray(logsumexp(z, axis=-1, keepdims=True))[..., 0]
    return logp, p, lse


def _masked_sum(values: NDArray[np.float64], coef: NDArray[np.float64]) -> NDArray[np.float64]:
    """``sum(coef * values)`` over the last axis, a zero coefficient contributing 0.

    The convention ``0 * log 0 = 0`` is what lets a masked class (logit
    ``-inf``) sit in a row without turning the loss into NaN.
    """
    with np.errstate(all="ignore"):
        return np.sum(coef * values, axis=-1, where=coef != 0)  # type: ignore[no-any-return]


def _sum_of_others(v: NDArray[np.float64]) -> NDArray[np.float64]:
    """``sum(v) - v_j`` for every ``j`` of the last axis, without cancellation for ``v >= 0``.

    Only the largest entry can hold most of the sum, so for it the sum of the
    others is added up directly; elsewhere ``sum(v) - v_j >= sum(v) / 2``.
    """
    with np.errstate(all="ignore"):
        res = np.sum(v, axis=-1, keepdims=True) - v
        if v.shape[-1]:
            top = np.argmax(np.abs(v), axis=-1)[..., None]
            at_top = np.arange(v.shape[-1]) == top
            others = np.sum(v, axis=-1, keepdims=True, where=~at_top)
            res = np.where(at_top, others, res)
    return res  # type: ignore[no-any-return]


def _reduce_rows(
    row_loss: NDArray[np.float64], reduction: str, denom: float
) -> NDArray[np.float64]:
    if reduction == "none":
        return row_loss
    total = np.sum(row_loss)
    if reduction == "sum":
        return np.asarray(total)
    # 0 / 0 is NaN, as PyTorch gives for a mean over nothing.
    with np.errstate(all="ignore"):
        return np.asarray(np.float64(total) / np.float64(denom))


def _int_equals(t: NDArray[Any], value: int) -> NDArray[np.bool_]:
    info = np.iinfo(t.dtype)
    if not info.min <= value <= info.max:
        return np.zeros(t.shape, dtype=bool)
    return np.asarray(t == t.dtype.type(value))


def _int_outside(t: NDArray[Any], n_classes: int) -> NDArray[np.bool_]:
    """``(t < 0) | (t >= n_classes)`` without converting ``t``, which may not fit in int64."""
    below = t < 0 if t.dtype.kind == "i" else np.zeros(t.shape, dtype=bool)
    if n_classes - 1 >= np.iinfo(t.dtype).max:
        return np.asarray(below)
    return np.asarray(below | (t > t.dtype.type(n_classes - 1)))


def _position(pos: tuple[int, ...]) -> str:
    """An index as one would type it: ``3`` for a vector, ``(1, 3)`` otherwise."""
    return str(pos[0]) if len(pos) == 1 else str(pos)


class _Targets(NamedTuple):
    soft: bool
    counted: NDArray[np.bool_]  # rows that contribute to the loss
    classes: NDArray[np.int64]  # the class of each row (0 where not counted); hard targets
    probs: NDArray[np.float64]  # rows + (C,); soft targets only, else empty
    denom: float  # the mean's denominator


def _targets(
    target: ArrayLike,
    x_shape: tuple[int, ...],
    axis: int,
    weight: NDArray[np.float64],
    ignore_index: Any,
    where: Any,
    func: str,
    arg: str,
) -> _Targets:
    """Validate the targets of a classification loss and find the rows that count."""
    n_classes = x_shape[axis]
    rows_shape = x_shape[:axis] + x_shape[axis + 1 :]
    counted = _row_mask(where, rows_shape, func)
    ta = np.asarray(target)
    kind = ta.dtype.kind
    if kind in "iu":
        if isinstance(ignore_index, (bool, np.bool_)):
            raise TypeError(f"{func}(): ignore_index must be an int, got bool")
        try:
            ignore = operator.index(ignore_index)
        except TypeError:
            raise TypeError(
                f"{func}(): ignore_index must be an int, got {ignore_index!r}"
            ) from None
        if ta.shape != rows_shape:
            raise ValueError(
                f"{func}(): target of class indices must have shape {rows_shape} "
                f"({arg} {x_shape} without axis {axis}), got {ta.shape}"
            )
        counted &= ~_int_equals(ta, ignore)
        bad = counted & _int_outside(ta, n_classes)
        if np.any(bad):
            pos = tuple(int(i) for i in np.argwhere(bad)[0])
            raise IndexError(
                f"{func}(): target[{_position(pos)}] = {int(ta[pos])} is out of range for "
                f"{n_classes} classes"
            )
        # Masking first keeps unchecked values (say 2**63 in a uint64) out of the cast.
        index = np.where(counted, ta, 0).astype(np.int64)
        denom = float(np.sum(weight[index], where=counted))
        return _Targets(False, counted, index, np.empty(0), denom)
    if kind == "f" or ta.dtype.name == "bfloat16":
        _result_dtype(ta.dtype, func, "target")
        if ta.shape != x_shape:
            if ta.shape == rows_shape:
                raise TypeError(
                    f"{func}(): target has the shape of class indices {rows_shape} but dtype "
                    f"{ta.dtype}; class indices must be integers"
                )
            raise ValueError(
                f"{func}(): target of class probabilities must have the shape of {arg} "
                f"{x_shape}, got {ta.shape}"
            )
        probs = np.moveaxis(ta.astype(np.float64), axis, -1)
        nan_at = np.isnan(probs) & counted[..., None]
        if np.any(nan_at):
            pos = tuple(int(i) for i in np.argwhere(np.moveaxis(nan_at, -1, axis))[0])
            raise ValueError(
                f"{func}(): target (class probabilities) is NaN at target[{_position(pos)}]"
            )
        index = np.zeros(rows_shape, dtype=np.int64)
        return _Targets(True, counted, index, probs, float(np.sum(counted)))
    raise TypeError(
        f"{func}(): target must hold integer class indices or floating class probabilities, "
        f"got {ta.dtype}"
    )


# ---------------------------------------------------------------------------
# Cross-entropy and negative log-likelihood
# ---------------------------------------------------------------------------


class CrossEntropyStats(NamedTuple):
    """Per-row by-products of ``cross_entropy(..., return_stats=True)``.

    ``lse``: the logsumexp of each row of (soft-capped) logits, in the result
    dtype; ``argmax``: the first index of the row maximum of the logits
    (int64; the first NaN in a row holding one); ``correct``: whether
    ``argmax`` is the target class (for class probabilities, the first argmax
    of the target row), False in rows that do not count; ``accuracy``: the
    mean of ``correct`` over the rows that count, a float64 (NaN if none).
    Every per-row field has the shape of the rows, and covers all rows,
    counted or not.
    """

    lse: Any
    argmax: Any
    correct: Any
    accuracy: Any


class _CrossEntropyParts(NamedTuple):
    dtype: np.dtype[Any]
    axis: int
    targets: _Targets
    coef: NDArray[np.float64]  # w_c y'_c, rows + (C,)
    prob: NDArray[np.float64]
    lse: NDArray[np.float64]
    slope: NDArray[np.float64] | None  # d(capped)/d(logit), rows + (C,)
    z_loss: float
    row_loss: NDArray[np.float64]  # 0 in rows that do not count
    argmax: NDArray[np.int64]


def _cross_entropy_parts(
    func: str,
    logits: ArrayLike,
    target: ArrayLike,
    axis: Any,
    weight: ArrayLike | None,
    ignore_index: Any,
    label_smoothing: Any,
    smoothing: Any,
    z_loss: Any,
    softcap: Any,
    where: Any,
) -> _CrossEntropyParts:
    x64, dtype = _load(logits, func, "logits")
    ax = _class_axis(axis, x64.ndim, func, "logits")
    n_classes = x64.shape[ax]
    if n_classes == 0:
        raise ValueError(f"{func}(): the class axis {ax} of logits {x64.shape} is empty")
    alpha = _check_real(label_smoothing, func, "label_smoothing", "unit")
    _check_choice(smoothing, ("pytorch", "megatron"), func, "smoothing")
    zl = _check_real(z_loss, func, "z_loss", "nonnegative")
    cap = None if softcap is None else _check_real(softcap, func, "softcap", "cap")
    if cap == np.inf:
        cap = None  # c * tanh(z / c) -> z as c grows: the limit is no cap
    if smoothing == "megatron" and alpha > 0:
        if n_classes < 2:
            raise ValueError(f"{func}(): smoothing='megatron' needs at least 2 classes")
        # The target keeps 1 - alpha and each other class gets alpha / (C - 1).
        alpha = alpha * n_classes / (n_classes - 1)
    w = _class_weight(weight, n_classes, func)
    tg = _targets(target, x64.shape, ax, w, ignore_index, where, func, "logits")

    z = np.moveaxis(x64, ax, -1)
    slope = None
    if cap is not None:
        u = z / cap
        zc = cap * np.tanh(u)
        # sech^2 rather than 1 - tanh^2 keeps its relative accuracy where tanh
        # rounds to +-1; cosh overflowing to inf correctly gives 0.
        with np.errstate(over="ignore"):
            slope = 1.0 / np.cosh(u) ** 2
    else:
        zc = z
    logp, p, lse = _row_softmax(zc)

    if tg.soft:
        y = tg.probs
    else:
        y = np.zeros(z.shape)
        np.put_along_axis(y, tg.classes[..., None], 1.0, axis=-1)
    if alpha:
        y = (1.0 - alpha) * y + alpha / n_classes
    coef = w * y

    with np.errstate(all="ignore"):
        row_loss = 0.0 - _masked_sum(logp, coef)
        if zl:
            row_loss = row_loss + zl * lse**2
    # A row whose largest (capped) logit is +inf, or that holds only -inf or a
    # NaN, has no meaningful loss over all its classes: NaN, as in PyTorch.
    row_loss = np.where(np.isfinite(lse), row_loss, np.nan)
    row_loss = np.where(tg.counted, row_loss, 0.0)
    argmax = np.argmax(z, axis=-1) if z.size else np.zeros(z.shape[:-1], dtype=np.int64)
    return _CrossEntropyParts(
        dtype, ax, tg, coef, p, lse, slope, zl, row_loss, argmax.astype(np.int64)
    )


def _cross_entropy_stats(parts: _CrossEntropyParts) -> CrossEntropyStats:
    tg = parts.targets
    wanted = np.argmax(tg.probs, axis=-1) if tg.soft and tg.probs.size else tg.classes
    correct = tg.counted & (parts.argmax == wanted)
    with np.errstate(all="ignore"):
        accuracy = np.float64(np.sum(correct)) / np.float64(np.sum(tg.counted))
    return CrossEntropyStats(
        lse=_finish(parts.lse, parts.dtype, None),
        argmax=parts.argmax[()] if parts.argmax.ndim == 0 else parts.argmax,
        correct=correct[()] if correct.ndim == 0 else correct,
        accuracy=accuracy,
    )


def cross_entropy(
    logits: ArrayLike,
    target: ArrayLike,
    *,
    axis: int = -1,
    weight: ArrayLike | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
    smoothing: str = "pytorch",
    z_loss: float = 0.0,
    softcap: float | None = None,
    where: ArrayLike | None = None,
    return_stats: bool = False,
    threads: int | None = None,
) -> Any:
    """Cross-entropy between ``softmax(logits)`` and a target, as PyTorch's ``F.cross_entropy``.

    The classes lie along ``axis`` (``C = logits.shape[axis]``); every
    position of the other axes is a *row*: ``(N, C)`` with ``axis=-1``, or
    PyTorch's ``(N, C, d1, ...)`` with ``axis=1``.  The target is either

    * class indices (any integer dtype) with the shape of the rows, or
    * class probabilities (any floating dtype) with the shape of ``logits``;
      they are neither checked to be non-negative nor to sum to 1, as in
      PyTorch, but a NaN in a row that counts raises ValueError.

    A row counts unless its index equals ``ignore_index`` or ``where`` is
    False there; rows that do not count contribute nothing, whatever they
    hold, and their targets are not checked.

    Per row, with ``z'`` the logits, capped to ``c * tanh(z / c)`` if
    ``softcap=c`` (Gemma 2), ``lse = logsumexp(z')`` and ``logp = z' - lse``::

        a    = alpha                   smoothing="pytorch"
             = alpha * C / (C - 1)     smoothing="megatron" (the target keeps
                                        1 - alpha, every other class alpha/(C-1))
        y'   = (1 - a) * onehot(t) + a / C       (class indices t)
             = (1 - a) * y         + a / C       (class probabilities y)
        loss = -sum_c w_c y'_c logp_c + z_loss * lse**2

    which for indices is ``(1 - a) (-w_t logp_t) + (a / C) (-sum_c w_c logp_c)``;
    ``w`` is ``weight`` or ones, and the z-loss term (PaLM) is not weighted.
    A term with ``w_c y'_c == 0`` contributes 0 even where ``logp_c = -inf``.

    Reductions: ``"none"`` gives the row losses in the shape of the rows (0 in
    rows that do not count); ``"sum"`` their sum; ``"mean"`` their sum divided
    by ``D``, where ``D = sum of w_t over the counted rows`` for class indices
    (their number without ``weight``) and ``D = number of counted rows`` for
    class probabilities.  PyTorch divides its label-smoothing term by the same
    weighted ``D`` (not by the row count), and divides a soft-target loss by
    the number of rows whatever the weights; the z-loss term is divided by
    ``D`` too.  A mean over no counted rows (``D = 0``) is NaN, as in PyTorch.

    Parameters
    ----------
    logits : array_like, at least 1-d
    target : array_like of integers or of floats (see above); not bool
    axis : int, default -1
    weight : array_like of shape (C,), optional
    ignore_index : int, default -100
        Only used with class indices.
    reduction : {"mean", "sum", "none"}
    label_smoothing : float in [0, 1]
    smoothing : {"pytorch", "megatron"}
    z_loss : float >= 0
    softcap : float > 0, optional
    where : array_like of bool, broadcastable to the rows, optional
    return_stats : bool
        Also return a :class:`CrossEntropyStats`.
    threads : ignored

    The loss has the result dtype of ``logits``.  A counted row whose logits
    hold a NaN, a ``+inf`` (without ``softcap``, which maps it to ``c``) or
    only ``-inf`` has a NaN loss, as in PyTorch, and so has a mean or sum over
    it; other rows are unaffected.  Out-of-range indices raise IndexError
    naming the first one, e.g. ``target[(1, 3)] = 7 is out of range for 5
    classes`` (``target[3]`` for a vector of targets).

    Examples
    --------
    >>> z = np.array([[2.0, 0.5, -1.0], [0.0, 0.0, 3.0]])
    >>> print(cross_entropy(z, np.array([0, 2])))
    0.16811712653905897
    >>> print(cross_entropy(z, np.array([0, -100]), reduction="none"))
    [0.2413113 0.       ]
    >>> loss, stats = cross_entropy(z, np.array([1, 2]), return_stats=True)
    >>> print(stats.argmax, stats.correct, stats.accuracy)
    [0 2] [False  True] 0.5
    """
    func = "cross_entropy"
    _check_choice(reduction, _ROW_REDUCTIONS, func, "reduction")
    parts = _cross_entropy_parts(
        func,
        logits,
        target,
        axis,
        weight,
        ignore_index,
        label_smoothing,
        smoothing,
        z_loss,
        softcap,
        where,
    )
    loss = _finish(_reduce_rows(parts.row_loss, reduction, parts.targets.denom), parts.dtype, None)
    if return_stats:
        return loss, _cross_entropy_stats(parts)
    return loss


def cross_entropy_with_grad(
    logits: ArrayLike,
    target: ArrayLike,
    *,
    axis: int = -1,
    weight: ArrayLike | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
    smoothing: str = "pytorch",
    z_loss: float = 0.0,
    softcap: float | None = None,
    where: ArrayLike | None = None,
    grad_output: ArrayLike | None = None,
    grad_out: NDArray[Any] | None = None,
    inplace: bool = False,
    return_stats: bool = False,
    threads: int | None = None,
) -> Any:
    """``cross_entropy`` and its gradient with respect to ``logits``, in one pass.

    Returns ``(loss, grad)``, or ``(loss, grad, stats)`` with ``return_stats``;
    ``loss`` and every option are as in :func:`cross_entropy`.  With ``p =
    softmax(z')`` and ``q_c = w_c y'_c`` (so that the row loss is
    ``-sum_c q_c logp_c + z_loss lse**2``), the gradient of a counted row is::

        g_j = s * [(sum_c q_c) p_j - q_j + 2 z_loss lse p_j] * (1 - (z'_j / c)**2)

    where the last factor, the derivative of the soft cap, is present only
    with ``softcap=c``, and ``s`` is the upstream gradient divided by ``D``
    for ``"mean"``, itself for ``"sum"`` and its entry for the row for
    ``"none"``.  For class indices ``t`` this is
    ``(1 - a) w_t (p_j - [j == t]) + (a / C) (p_j sum_c w_c - w_j)`` plus the
    z-loss term.  Rows that do not count get a zero gradient, rows with a
    NaN loss a NaN one.  Without ``z_loss`` and ``softcap``, each row of the
    gradient sums to 0.

    Parameters
    ----------
    grad_output : array_like, optional
        The upstream gradient (default 1): a scalar for ``"mean"`` and
        ``"sum"``, an array broadcastable to the rows for ``"none"``.
    grad_out : ndarray, optional
        Receives the gradient, which is returned; it must have the shape and
        result dtype of ``logits`` (the ``out=`` rules of this module).
    inplace : bool
        Write the gradient over ``logits``, which must then be a writeable
        ndarray of its result dtype; the loss is computed first.

    The gradient has the shape and result dtype of ``logits``.

    Examples
    --------
    >>> loss, grad = cross_entropy_with_grad(np.array([[0.0, 0.0]]), np.array([1]))
    >>> print(loss, grad)
    0.6931471805599453 [[ 0.5 -0.5]]
    """
    func = "cross_entropy_with_grad"
    _check_choice(reduction, _ROW_REDUCTIONS, func, "reduction")
    parts = _cross_entropy_parts(
        func,
        logits,
        target,
        axis,
        weight,
        ignore_index,
        label_smoothing,
        smoothing,
        z_loss,
        softcap,
        where,
    )
    tg = parts.targets
    shape = np.moveaxis(parts.prob, -1, parts.axis).shape
    destination = _grad_destination(logits, grad_out, inplace, shape, parts.dtype, func)
    upstream = _upstream(grad_output, reduction, tg.counted.shape, func)
    with np.errstate(all="ignore"):
        scale = upstream / tg.denom if reduction == "mean" else upstream
        p, coef = parts.prob, parts.coef
        # (sum q) p_j - q_j rewritten as p_j (sum of q but q_j) - q_j (sum of p
        # but p_j): at the target of a confident row, p_t - 1 would cancel,
        # whereas the sum of the other probabilities keeps full accuracy.
        g = p * _sum_of_others(coef) - coef * _sum_of_others(p)
        if parts.z_loss:
            g = g + 2.0 * parts.z_loss * parts.lse[..., None] * p
        if parts.slope is not None:
            g = g * parts.slope
        g = g * np.broadcast_to(scale, tg.counted.shape)[..., None]
    g = np.where(np.isfinite(parts.lse)[..., None], g, np.nan)
    g = np.where(tg.counted[..., None], g, 0.0)
    loss = _finish(_reduce_rows(parts.row_loss, reduction, tg.denom), parts.dtype, None)
    grad = _finish(np.moveaxis(g, -1, parts.axis), parts.dtype, destination, keep_array=True)
    if return_stats:
        return loss, grad, _cross_entropy_stats(parts)
    return loss, grad


def nll_loss(
    log_probs: ArrayLike,
    target: ArrayLike,
    *,
    axis: int = -1,
    weight: ArrayLike | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
    where: ArrayLike | None = None,
    threads: int | None = None,
) -> _Result:
    """Negative log-likelihood of log-probabilities, as PyTorch's ``F.nll_loss``.

    The layout, targets, ``weight``, ``ignore_index``, ``where`` and the
    reductions are those of :func:`cross_entropy`, without the softmax: the
    row loss is ``-w_t * log_probs[t]`` for a class index ``t`` and
    ``-sum_c w_c y_c log_probs_c`` for class probabilities ``y`` (which
    PyTorch's ``nll_loss`` does not take; a term with ``w_c y_c == 0`` then
    contributes 0).  ``"mean"`` divides by the sum of ``w_t`` over the
    counted rows for indices and by the number of counted rows for
    probabilities; over no counted rows it is NaN.  ``log_probs`` is used as
    given: nothing checks that its rows are normalized.

    Examples
    --------
    >>> lp = np.log([[0.5, 0.25, 0.25], [0.125, 0.125, 0.75]])
    >>> print(nll_loss(lp, np.array([0, 1])))
    1.3862943611198906
    >>> print(nll_loss(lp, np.array([0, 1]), weight=[1.0, 0.0, 1.0], reduction="sum"))
    0.6931471805599453
    """
    func = "nll_loss"
    _check_choice(reduction, _ROW_REDUCTIONS, func, "reduction")
    x64, dtype = _load(log_probs, func, "log_probs")
    ax = _class_axis(axis, x64.ndim, func, "log_probs")
    n_classes = x64.shape[ax]
    if n_classes == 0:
        raise ValueError(f"{func}(): the class axis {ax} of log_probs {x64.shape} is empty")
    w = _class_weight(weight, n_classes, func)
    tg = _targets(target, x64.shape, ax, w, ignore_index, where, func, "log_probs")
    lp = np.moveaxis(x64, ax, -1)
    with np.errstate(all="ignore"):
        if tg.soft:
            row_loss = 0.0 - _masked_sum(lp, w * tg.probs)
        else:
            picked = np.take_along_axis(lp, tg.classes[..., None], axis=-1)[..., 0]
            row_loss = 0.0 - w[tg.classes] * picked
    row_loss = np.where(tg.counted, row_loss, 0.0)
    return _finish(_reduce_rows(row_loss, reduction, tg.denom), dtype, None)


# ---------------------------------------------------------------------------
# Binary cross-entropy with logits
# ---------------------------------------------------------------------------


def _bce_parts(
    func: str,
    logits: ArrayLike,
    target: ArrayLike,
    weight: ArrayLike | None,
    pos_weight: ArrayLike | None,
    label_smoothing: Any,
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64], np.dtype[Any]]:
    """``(x, c_pos, c_neg, dtype)``: the loss is ``c_pos softplus(-x) + c_neg softplus(x)``."""
    x, dtype = _load(logits, func, "logits")
    ta = np.asarray(target)
    y, _ = _load(ta, func, "target")
    if y.shape != x.shape:
        raise ValueError(f"{func}(): target must have the shape of logits {x.shape}, got {y.shape}")
    alpha = _check_real(label_smoothing, func, "label_smoothing", "unit")
    if alpha:
        y = y * (1.0 - alpha) + alpha / 2.0

    def along(arg: ArrayLike | None, name: str) -> NDArray[np.float64]:
        if arg is None:
            return np.ones(x.shape)
        a64, _ = _load(arg, func, name)
        try:
            return np.broadcast_to(a64, x.shape)
        except ValueError:
            raise ValueError(
                f"{func}(): {name} with shape {a64.shape} cannot be broadcast to logits {x.shape}"
            ) from None

    w = along(weight, "weight")
    pw = along(pos_weight, "pos_weight")
    return x, w * pw * y, w * (1.0 - y), dtype


def _bce_loss(
    x: NDArray[np.float64], c_pos: NDArray[np.float64], c_neg: NDArray[np.float64]
) -> NDArray[np.float64]:
    with np.errstate(all="ignore"):
        sp_neg = np.maximum(-x, 0.0) + np.log1p(np.exp(-np.abs(x)))  # softplus(-x)
        sp_pos = np.maximum(x, 0.0) + np.log1p(np.exp(-np.abs(x)))  # softplus(x)
        pos = np.where(c_pos != 0, c_pos * sp_neg, 0.0)
        neg = np.where(c_neg != 0, c_neg * sp_pos, 0.0)
        return np.where(np.isnan(x), np.nan, pos + neg)


def binary_cross_entropy_with_logits(
    logits: ArrayLike,
    target: ArrayLike,
    *,
    weight: ArrayLike | None = None,
    pos_weight: ArrayLike | None = None,
    label_smoothing: float = 0.0,
    reduction: str = "mean",
    threads: int | None = None,
) -> _Result:
    """Binary cross-entropy of ``sigmoid(logits)``, as PyTorch's function of the same name.

    Elementwise, with ``y' = y (1 - alpha) + alpha / 2`` (``alpha =
    label_smoothing``), ``w = weight`` and ``pw = pos_weight``::

        loss = -w [pw y' log sigmoid(x) + (1 - y') log(1 - sigmoid(x))]
             =  w [pw y' softplus(-x) + (1 - y') softplus(x)]

    using ``log sigmoid(x) = -softplus(-x)`` and ``log(1 - sigmoid(x)) =
    -softplus(x)``.  PyTorch evaluates the equal
    ``w [(1 - y') x + (1 + (pw - 1) y') softplus(-x)]``; the form above adds
    two non-negative terms when ``0 <= y' <= 1`` and ``pw >= 0``, so it keeps
    full relative accuracy for any ``x`` (PyTorch's ``x + softplus(-x)`` cancels
    for large negative ``x``), and never overflows.  A term whose coefficient
    is 0 contributes 0, so ``x = +-inf`` gives the limits (0 when the target
    agrees, ``inf`` otherwise); NaN in ``x`` gives NaN.

    ``target`` must have the shape of ``logits``; ``weight`` and
    ``pos_weight`` are broadcast to it (a vector ``pos_weight`` therefore runs
    along the last axis, one entry per class, as in PyTorch).  Reductions:
    ``"none"`` (the shape of ``logits``), ``"sum"``, ``"mean"`` over all
    elements (NaN if there are none).  The loss has the result dtype of
    ``logits``.

    Examples
    --------
    >>> print(binary_cross_entropy_with_logits([800.0, -800.0], [1.0, 1.0], reduction="none"))
    [  0. 800.]
    >>> print(binary_cross_entropy_with_logits([-40.0], [0.0]))
    4.248354255291589e-18
    """
    func = "binary_cross_entropy_with_logits"
    _check_choice(reduction, _ROW_REDUCTIONS, func, "reduction")
    x, c_pos, c_neg, dtype = _bce_parts(func, logits, target, weight, pos_weight, label_smoothing)
    loss = _bce_loss(x, c_pos, c_neg)
    return _finish(_reduce_rows(loss, reduction, float(loss.size)), dtype, None)


def binary_cross_entropy_with_logits_with_grad(
    logits: ArrayLike,
    target: ArrayLike,
    *,
    weight: ArrayLike | None = None,
    pos_weight: ArrayLike | None = None,
    label_smoothing: float = 0.0,
    reduction: str = "mean",
    grad_output: ArrayLike | None = None,
    threads: int | None = None,
) -> tuple[_Result, NDArray[Any]]:
    """``binary_cross_entropy_with_logits`` and its gradient with respect to ``logits``.

    Differentiating ``w [pw y' softplus(-x) + (1 - y') softplus(x)]``::

        d loss / dx = w [(1 - y') sigmoid(x) - pw y' sigmoid(-x)]
                    = w [(1 + (pw - 1) y') sigmoid(x) - pw y']

    times the upstream gradient ``grad_output`` (default 1; a scalar for
    ``"mean"`` and ``"sum"``, broadcastable to ``logits`` for ``"none"``),
    divided by the number of elements for ``"mean"``.  Both ``sigmoid`` terms
    are evaluated without cancellation of their own.  Returns ``(loss, grad)``,
    ``grad`` with the shape and result dtype of ``logits``.

    Examples
    --------
    >>> loss, grad = binary_cross_entropy_with_logits_with_grad([0.0, 0.0], [1.0, 0.0])
    >>> print(loss, grad)
    0.6931471805599453 [-0.25  0.25]
    """
    func = "binary_cross_entropy_with_logits_with_grad"
    _check_choice(reduction, _ROW_REDUCTIONS, func, "reduction")
    x, c_pos, c_neg, dtype = _bce_parts(func, logits, target, weight, pos_weight, label_smoothing)
    upstream = _upstream(grad_output, reduction, x.shape, func)
    loss = _bce_loss(x, c_pos, c_neg)
    with np.errstate(all="ignore"):
        e = np.exp(-np.abs(x))
        sig = np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))  # sigmoid(x)
        sig_neg = np.where(x >= 0, e / (1.0 + e), 1.0 / (1.0 + e))  # sigmoid(-x)
        g = np.where(c_neg != 0, c_neg * sig, 0.0) - np.where(c_pos != 0, c_pos * sig_neg, 0.0)
        scale = upstream / x.size if reduction == "mean" else upstream
        g = g * scale
    total = _finish(_reduce_rows(loss, reduction, float(loss.size)), dtype, None)
    return total, _finish(np.asarray(g), dtype, None, keep_array=True)


# ---------------------------------------------------------------------------
# Entropy and divergences of probability vectors (SciPy and PyTorch semantics)
# ---------------------------------------------------------------------------


def _log_ratio(x: NDArray[np.float64], y: NDArray[np.float64]) -> NDArray[np.float64]:
    """``log(x / y)`` for ``x, y > 0``, accurate to a few ulps in relative terms.

    Within a factor 2 of each other ``x - y`` is exact (Sterbenz), so
    ``log1p((x - y) / y)`` keeps the relative accuracy that ``log`` of a
    rounded ratio near 1 loses.  Elsewhere ``|log(x / y)| > log 2`` and the
    rounded ratio is good enough, unless it over- or underflows, where
    ``log x - log y`` (of magnitude above 700) takes over.
    """
    with np.errstate(all="ignore"):
        near = (x >= 0.5 * y) & (x <= 2.0 * y)
        ratio = x / y
        normal = np.isfinite(ratio) & (ratio >= np.finfo(np.float64).tiny)
        far = np.where(normal, np.log(ratio), np.log(x) - np.log(y))
        return np.where(near, np.log1p((x - y) / y), far)


def _t_minus_log1p_t(t: NDArray[np.float64]) -> NDArray[np.float64]:
    """``t - log1p(t)`` for ``-1/2 <= t <= 1``, without the cancellation near ``t = 0``.

    With ``u = t / (2 + t)``, ``log1p(t) = 2 atanh(u)`` and ``t = 2u / (1 - u)``, so
    ``t - log1p(t) = 2u^2 [1/(1 - u) - u (1/3 + u^2/5 + u^4/7 + ...)]``, whose
    bracket stays near 1 for ``|u| <= 1/3``; 24 terms of the series in
    ``u^2 <= 1/9`` reach well below the float64 rounding.
    """
    u = t / (2.0 + t)
    v = u * u
    series = np.zeros_like(t)
    for k in range(23, -1, -1):
        series = series * v + 1.0 / (2 * k + 3)
    return 2.0 * v * (1.0 / (1.0 - u) - u * series)


def _entr64(x: NDArray[np.float64]) -> NDArray[np.float64]:
    with np.errstate(all="ignore"):
        return np.select(
            [np.isnan(x), x > 0, x == 0], [np.nan, -x * np.log(x), 0.0], default=-np.inf
        )


def _rel_entr64(x: NDArray[np.float64], y: NDArray[np.float64]) -> NDArray[np.float64]:
    with np.errstate(all="ignore"):
        return np.select(
            [np.isnan(x) | np.isnan(y), (x > 0) & (y > 0), (x == 0) & (y >= 0)],
            [np.nan, x * _log_ratio(x, y), 0.0],
            default=np.inf,
        )


def _kl_div64(x: NDArray[np.float64], y: NDArray[np.float64]) -> NDArray[np.float64]:
    with np.errstate(all="ignore"):
        near = (x >= 0.5 * y) & (x <= 2.0 * y)
        # x log(x/y) - x + y = x (t - log1p(t)) with t = y/x - 1, exact-ish near x = y.
        close = x * _t_minus_log1p_t(np.where(near, (y - x) / x, 0.0))
        far = x * (_log_ratio(x, y) - 1.0) + y
        return np.select(
            [np.isnan(x) | np.isnan(y), (x > 0) & (y > 0), (x == 0) & (y >= 0)],
            [np.nan, np.where(near, close, far), y],
            default=np.inf,
        )


def entr(x: ArrayLike, *, out: NDArray[Any] | None = None, threads: int | None = None) -> _Result:
    """``-x log x``, elementwise, as ``scipy.special.entr``.

    ``entr(0) = 0`` (the limit), ``entr(x) = -inf`` for ``x < 0`` and for
    ``x = +inf``; NaN gives NaN.  The entropy of a probability vector is
    ``sum(entr(p))``.

    Examples
    --------
    >>> print(entr([0.0, 0.5, 1.0, -1.0]))
    [ 0.          0.34657359 -0.                -inf]
    """
    x64, dtype = _load(x, "entr", "x")
    _check_out(out, x64.shape, dtype, "entr")
    return _finish(_entr64(x64), dtype, out)


def rel_entr(
    x: ArrayLike, y: ArrayLike, *, out: NDArray[Any] | None = None, threads: int | None = None
) -> _Result:
    """``x log(x / y)``, elementwise, as ``scipy.special.rel_entr``.

    It is ``x log(x / y)`` for ``x > 0, y > 0``, 0 for ``x = 0, y >= 0`` and
    ``+inf`` otherwise; NaN gives NaN.  ``x`` and ``y`` broadcast together and
    the result dtype is that of ``np.result_type(x, y)`` under the table of
    this module.  Near ``x = y`` the logarithm is taken as
    ``log1p((x - y) / y)`` (``x - y`` is exact there), which keeps the
    relative accuracy SciPy's ``log(x / y)`` loses.  ``sum(rel_entr(p, q))``
    is the Kullback-Leibler divergence of probability vectors.

    Examples
    --------
    >>> print(rel_entr([0.5, 0.0, 0.5], [0.25, 0.5, 0.0]))
    [0.34657359 0.                inf]
    """
    x64, y64, dtype = _load_pair(x, y, "rel_entr", "x", "y", broadcast=True)
    _check_out(out, x64.shape, dtype, "rel_entr")
    return _finish(_rel_entr64(x64, y64), dtype, out)


def kl_div_elementwise(
    x: ArrayLike, y: ArrayLike, *, out: NDArray[Any] | None = None, threads: int | None = None
) -> _Result:
    """``x log(x / y) - x + y``, elementwise, as ``scipy.special.kl_div``.

    It is that for ``x > 0, y > 0``, ``y`` for ``x = 0, y >= 0`` and ``+inf``
    otherwise; NaN gives NaN.  The result is ``x f(t)`` with ``t = y/x - 1``
    and ``f(t) = t - log1p(t) >= 0``; for ``y/2 <= x <= 2y``, where the
    textbook formula cancels, ``f`` comes from a series that keeps full
    relative accuracy (the value is about ``(x - y)**2 / (2x)`` there).
    Broadcasting and dtypes are those of :func:`rel_entr`.  For probability
    vectors its sum equals ``sum(rel_entr(p, q))``.

    Examples
    --------
    >>> print(kl_div_elementwise([1.0, 0.0, 2.0], [1.0, 3.0, 0.0]))
    [ 0.  3. inf]
    >>> print(kl_div_elementwise(1.0, 1.0 + 2.0**-20))
    4.547470617660916e-13
    """
    x64, y64, dtype = _load_pair(x, y, "kl_div_elementwise", "x", "y", broadcast=True)
    _check_out(out, x64.shape, dtype, "kl_div_elementwise")
    return _finish(_kl_div64(x64, y64), dtype, out)


def entropy(
    pk: ArrayLike,
    qk: ArrayLike | None = None,
    base: float | None = None,
    axis: _Axis = 0,
    *,
    keepdims: bool = False,
    threads: int | None = None,
) -> _Result:
    """Shannon entropy or relative entropy along ``axis``, as ``scipy.stats.entropy``.

    ``pk`` (and ``qk``, broadcast against it first) is normalized to sum to 1
    along ``axis``; then::

        H(p)      = -sum p log p          = sum(entr(p))          (qk is None)
        D(p || q) =  sum p log(p / q)     = sum(rel_entr(p, q))   (Kullback-Leibler)

    divided by ``log(base)`` when ``base`` is given: ``base=2`` gives bits
    (shannons), ``base=e`` (or None) nats, ``base=10`` hartleys (bans).

    Edge cases follow SciPy: a row summing to 0 is NaN (``0/0``); a negative
    entry after normalization gives ``-inf`` in ``H`` (``entr``) and ``inf`` in
    ``D``; ``q = 0`` where ``p > 0`` gives ``inf``; an empty row gives 0.
    ``base <= 0`` raises ValueError; ``base = 1`` divides by 0 (``inf`` or NaN,
    silently).  ``axis`` may be an int, a tuple or None, as for
    :func:`logsumexp`, and the result dtype follows the table of this module
    (from ``np.result_type(pk, qk)``), so float16 stays float16 where SciPy
    gives float32.

    Examples
    --------
    >>> print(entropy([0.5, 0.5], base=2))
    1.0
    >>> print(entropy([1, 1, 2], [1, 2, 1]))
    0.17328679513998632
    """
    func = "entropy"
    if base is not None:
        b = _check_real(base, func, "base", "base")
    if qk is None:
        p64, dtype = _load(pk, func, "pk")
        q64 = None
    else:
        p64, q64, dtype = _load_pair(pk, qk, func, "pk", "qk", broadcast=True)
    axes = _normalize_axes(axis, p64.ndim, func)
    if p64.ndim == 0:
        out_shape: tuple[int, ...] = ()
    elif keepdims:
        out_shape = tuple(1 if i in axes else n for i, n in enumerate(p64.shape))
    else:
        out_shape = tuple(n for i, n in enumerate(p64.shape) if i not in axes)
    with np.errstate(all="ignore"):
        p = _as_rows(p64)
        p = p / np.sum(p, axis=axes, keepdims=True)
        if q64 is None:
            terms = _entr64(p)
        else:
            q = _as_rows(q64)
            terms = _rel_entr64(p, q / np.sum(q, axis=axes, keepdims=True))
        res = np.sum(terms, axis=axes, keepdims=True).reshape(out_shape)
        if base is not None:
            res = res / np.log(b)
    return _finish(res, dtype, None)


def kl_div(
    input: ArrayLike,
    target: ArrayLike,
    reduction: str = "mean",
    log_target: bool = False,
    *,
    threads: int | None = None,
) -> _Result:
    """PyTorch's ``F.kl_div``: ``target * (log(target) - input)``, ``input`` holding log-probs.

    Pointwise::

        l = target * (log(target) - input)          log_target=False
          = exp(target) * (target - input)          log_target=True

    with ``l = 0`` where ``target == 0`` (where ``exp(target) == 0`` with
    ``log_target``), so a class with ``input = -inf`` and no target mass adds
    nothing; PyTorch's ``xlogy(t, t) - t * input`` agrees for finite ``input``
    and gives NaN there instead.  A NaN in ``input`` or ``target`` gives NaN; a
    negative ``target`` gives NaN (without ``log_target``).  ``input`` and
    ``target`` broadcast together.

    Reductions: ``"none"`` (the broadcast shape), ``"sum"``, ``"mean"`` over
    all elements (NaN if none) and ``"batchmean"``: the sum divided by
    ``input.shape[0]``, or the sum itself for a 0-d ``input`` (PyTorch's
    rule); ``batchmean`` is the true KL divergence per sample for rows of
    log-probabilities, which ``"mean"`` is not.  The loss has the result dtype
    of ``np.result_type(input, target)`` under the table of this module.

    Examples
    --------
    >>> logq = np.log([[0.5, 0.5], [0.9, 0.1]])
    >>> p = np.array([[0.5, 0.5], [0.5, 0.5]])
    >>> print(kl_div(logq, p, reduction="batchmean"))
    0.25541281188299525
    """
    func = "kl_div"
    _check_choice(reduction, _KL_REDUCTIONS, func, "reduction")
    x64, t64, dtype = _load_pair(input, target, func, "input", "target", broadcast=True)
    with np.errstate(all="ignore"):
        if log_target:
            e = np.exp(t64)
            pointwise = np.where((e == 0) & ~np.isnan(x64), 0.0, e * (t64 - x64))
        else:
            pointwise = np.where((t64 == 0) & ~np.isnan(x64), 0.0, t64 * (np.log(t64) - x64))
        if reduction == "none":
            res = pointwise
        elif reduction == "sum":
            res = np.asarray(np.sum(pointwise))
        elif reduction == "mean":
            res = np.asarray(np.float64(np.sum(pointwise)) / np.float64(pointwise.size))
        else:
            batch = np.shape(input)[0] if np.ndim(input) else 1
            res = np.asarray(np.float64(np.sum(pointwise)) / np.float64(batch))
    return _finish(res, dtype, None)


# ---------------------------------------------------------------------------
# Entropy and divergences from logits
# ---------------------------------------------------------------------------


def _reduce_divergence(
    rows: NDArray[np.float64], counted: NDArray[np.bool_], reduction: str
) -> NDArray[np.float64]:
    rows = np.where(counted, rows, 0.0)
    if reduction == "none":
        return rows
    return _reduce_rows(rows, "mean", _divergence_denominator(counted, reduction))


def _divergence_denominator(counted: NDArray[np.bool_], reduction: str) -> float:
    if reduction == "mean":
        return float(np.sum(counted))
    if reduction == "batchmean":
        return float(counted.shape[0]) if counted.ndim else 1.0
    return 1.0


class _PairParts(NamedTuple):
    dtype: np.dtype[Any]
    axis: int
    counted: NDArray[np.bool_]
    logp: NDArray[np.float64]  # rows + (C,)
    p: NDArray[np.float64]
    logq: NDArray[np.float64]
    q: NDArray[np.float64]


def _pair_parts(
    func: str, p_logits: ArrayLike, q_logits: ArrayLike, axis: Any, where: Any
) -> _PairParts:
    a64, b64, dtype = _load_pair(p_logits, q_logits, func, "p_logits", "q_logits", broadcast=False)
    ax = _class_axis(axis, a64.ndim, func, "p_logits")
    if a64.shape[ax] == 0:  # no class to form a distribution over
        raise ValueError(f"{func}(): the class axis {ax} of p_logits {a64.shape} is empty")
    rows_shape = a64.shape[:ax] + a64.shape[ax + 1 :]
    counted = _row_mask(where, rows_shape, func)
    pa, qa = np.moveaxis(a64, ax, -1), np.moveaxis(b64, ax, -1)
    logp, p, _ = _row_softmax(pa)
    logq, q, _ = _row_softmax(qa)
    # As for cross_entropy: a divergence over all classes has no value for a row with NaN,
    # +inf, or only -inf logits on either side (the +inf limit of softmax is not taken here).
    with np.errstate(invalid="ignore"):
        undefined = ~(np.isfinite(np.max(pa, axis=-1)) & np.isfinite(np.max(qa, axis=-1)))
    undefined |= np.isnan(pa).any(axis=-1) | np.isnan(qa).any(axis=-1)
    if undefined.any():
        logp, p, logq, q = (np.where(undefined[..., None], np.nan, a) for a in (logp, p, logq, q))
    return _PairParts(dtype, ax, counted, logp, p, logq, q)


def _kl_rows(
    logp: NDArray[np.float64], p: NDArray[np.float64], logq: NDArray[np.float64]
) -> NDArray[np.float64]:
    with np.errstate(all="ignore"):
        return _masked_sum(logp - logq, p)


def _kl_grads(
    logp: NDArray[np.float64],
    p: NDArray[np.float64],
    logq: NDArray[np.float64],
    q: NDArray[np.float64],
    kl: NDArray[np.float64],
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Gradients of ``KL(softmax(a) || softmax(b))`` per row, with respect to ``a`` and ``b``."""
    with np.errstate(all="ignore"):
        grad_a = np.where(p != 0, p * ((logp - logq) - kl[..., None]), 0.0)
        # A NaN row must stay NaN even where p rounds to 0.
        grad_a = np.where(np.isnan(kl)[..., None], np.nan, grad_a)
        grad_b = q - p
    return grad_a, grad_b


def _divergence_with_grad(
    func: str,
    parts: _PairParts,
    rows: NDArray[np.float64],
    grad_p: NDArray[np.float64],
    grad_q: NDArray[np.float64],
    reduction: str,
    grad_output: ArrayLike | None,
) -> tuple[_Result, NDArray[Any], NDArray[Any]]:
    counted = parts.counted
    upstream = _upstream(grad_output, reduction, counted.shape, func)
    with np.errstate(all="ignore"):
        scale = np.broadcast_to(
            upstream / _divergence_denominator(counted, reduction), counted.shape
        )
        keep = counted[..., None]
        gp = np.where(keep, grad_p * scale[..., None], 0.0)
        gq = np.where(keep, grad_q * scale[..., None], 0.0)
    loss = _finish(_reduce_divergence(rows, counted, reduction), parts.dtype, None)
    return (
        loss,
        _finish(np.moveaxis(gp, -1, parts.axis), parts.dtype, None, keep_array=True),
        _finish(np.moveaxis(gq, -1, parts.axis), parts.dtype, None, keep_array=True),
    )


def entropy_from_logits(
    z: ArrayLike,
    axis: int = -1,
    *,
    base: float | None = None,
    keepdims: bool = False,
    where: ArrayLike | None = None,
    threads: int | None = None,
) -> _Result:
    """Entropy of ``softmax(z)`` along ``axis``, without forming ``log`` of a rounded probability.

    With ``p = softmax(z)`` and ``lse = logsumexp(z)``::

        H = -sum p log p = sum p (lse - z) = lse - sum p z

    evaluated as the first form with ``log p = log_softmax(z)``: a sum of
    non-negative terms, so no cancellation; a class with ``p = 0`` adds 0.
    The result is in nats, or divided by ``log(base)``: bits for ``base=2``,
    hartleys for ``base=10``.  It lies in ``[0, log C]``.

    Special rows follow :func:`softmax`: ``k`` entries at ``+inf`` give
    ``log k`` (the uniform limit), a NaN or a row of ``-inf`` only gives NaN.
    An empty class axis gives 0.  ``where`` (bool, broadcast against ``z``)
    selects the entries that form the distribution, as in
    ``softmax(z, where=...)``: masked entries are ignored even when NaN or
    infinite, and a row with no counted mass (all masked, or only ``-inf``
    counted) has entropy 0, the entropy of its all-zero masked softmax.
    ``keepdims`` keeps ``axis`` with size 1.

    Examples
    --------
    >>> print(entropy_from_logits([0.0, 0.0, 0.0, 0.0], base=2))
    2.0
    >>> print(entropy_from_logits([[0.0, 800.0], [1.0, 1.0]]))
    [0.         0.69314718]
    """
    func = "entropy_from_logits"
    z64, dtype = _load(z, func, "z")
    ax = _class_axis(axis, z64.ndim, func, "z")
    if base is not None:
        b = _check_real(base, func, "base", "base")
    rows = np.moveaxis(z64, ax, -1)
    no_mass = np.zeros(rows.shape[:-1], dtype=bool)
    if where is not None:
        wa = np.asarray(where)
        if wa.dtype != np.bool_:
            raise TypeError(f"{func}(): where must be a bool array, got {wa.dtype}")
        try:
            mask = np.moveaxis(np.broadcast_to(wa, z64.shape), ax, -1)
        except ValueError:
            raise ValueError(
                f"{func}(): where with shape {wa.shape} cannot be broadcast to z with shape "
                f"{z64.shape}"
            ) from None
        rows = np.where(mask, rows, -np.inf)
        no_mass = np.all(rows == -np.inf, axis=-1)
    logp, p, _ = _row_softmax(rows)
    with np.errstate(all="ignore"):
        # 0.0 - s rather than -s: a certain outcome has entropy +0.
        h = np.where(no_mass, 0.0, 0.0 - _masked_sum(logp, p))
        if base is not None:
            h = h / np.log(b)
    if keepdims:
        h = np.expand_dims(h, ax)
    return _finish(h, dtype, None)


def kl_divergence_from_logits(
    p_logits: ArrayLike,
    q_logits: ArrayLike,
    axis: int = -1,
    *,
    reduction: str = "none",
    where: ArrayLike | None = None,
    threads: int | None = None,
) -> _Result:
    """``KL(P || Q)`` per row, for ``P = softmax(p_logits)`` and ``Q = softmax(q_logits)``.

    ::

        KL(P || Q) = sum_c P_c (log P_c - log Q_c)

    with ``log P = log_softmax(p_logits)``, ``log Q = log_softmax(q_logits)``;
    a class with ``P_c = 0`` adds 0, one with ``P_c > 0 = Q_c`` makes it
    ``+inf``.  It equals ``kl_div(log_softmax(q_logits), softmax(p_logits),
    reduction="none")`` summed along ``axis``, but from logits.  A row with
    NaN, ``+inf`` or only ``-inf`` logits on either side gives NaN (and NaN
    gradients), as in :func:`cross_entropy`.

    The arrays must have the same shape; the classes lie along ``axis`` and
    the other positions are rows.  ``where`` (bool, broadcastable to the
    rows) selects the rows that count.  Reductions over rows: ``"none"``
    (the rows, 0 where not counted), ``"sum"``, ``"mean"`` (over the counted
    rows, NaN if none) and ``"batchmean"`` (the sum over the size of the first
    axis of the rows, 1 for a single row, as PyTorch's ``batchmean``).  The
    result dtype is that of ``np.result_type(p_logits, q_logits)`` under the
    table of this module.

    Examples
    --------
    >>> print(f"{kl_divergence_from_logits([0.0, 0.0], [0.0, np.log(3.0)]):.12f}")
    0.143841036226
    """
    func = "kl_divergence_from_logits"
    _check_choice(reduction, _KL_REDUCTIONS, func, "reduction")
    parts = _pair_parts(func, p_logits, q_logits, axis, where)
    rows = _kl_rows(parts.logp, parts.p, parts.logq)
    return _finish(_reduce_divergence(rows, parts.counted, reduction), parts.dtype, None)


def kl_divergence_from_logits_with_grad(
    p_logits: ArrayLike,
    q_logits: ArrayLike,
    axis: int = -1,
    *,
    reduction: str = "none",
    where: ArrayLike | None = None,
    grad_output: ArrayLike | None = None,
    threads: int | None = None,
) -> tuple[_Result, NDArray[Any], NDArray[Any]]:
    """:func:`kl_divergence_from_logits` and its gradients: ``(loss, grad_p, grad_q)``.

    Per counted row, with ``s`` the upstream gradient (``grad_output``,
    default 1: a scalar unless ``reduction="none"``, where it broadcasts to
    the rows) divided by the denominator of the reduction::

        d KL / d q_logits_j = s (Q_j - P_j)
        d KL / d p_logits_j = s P_j ((log P_j - log Q_j) - KL)

    (``0`` where ``P_j = 0``); both sum to 0 over a row.  Rows that do not
    count get zero gradients.  The gradients have the shape of the inputs and
    the result dtype.

    Examples
    --------
    >>> loss, gp, gq = kl_divergence_from_logits_with_grad([0.0, 0.0], [0.0, 0.0])
    >>> print(loss, gp, gq)
    0.0 [0. 0.] [0. 0.]
    """
    func = "kl_divergence_from_logits_with_grad"
    _check_choice(reduction, _KL_REDUCTIONS, func, "reduction")
    parts = _pair_parts(func, p_logits, q_logits, axis, where)
    rows = _kl_rows(parts.logp, parts.p, parts.logq)
    grad_p, grad_q = _kl_grads(parts.logp, parts.p, parts.logq, parts.q, rows)
    return _divergence_with_grad(func, parts, rows, grad_p, grad_q, reduction, grad_output)


def _jsd_parts(
    parts: _PairParts, beta: float
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """Row values and the gradients with respect to ``p_logits`` and ``q_logits``."""
    logp, p, logq, q = parts.logp, parts.p, parts.logq, parts.q
    if beta == 0.0:
        kl = _kl_rows(logp, p, logq)
        grad_p, grad_q = _kl_grads(logp, p, logq, q, kl)
        return kl, grad_p, grad_q
    if beta == 1.0:
        kl = _kl_rows(logq, q, logp)
        grad_q, grad_p = _kl_grads(logq, q, logp, p, kl)
        return kl, grad_p, grad_q
    with np.errstate(all="ignore"):
        log_m = np.logaddexp(np.log(beta) + logp, np.log1p(-beta) + logq)
        kl_pm = _kl_rows(logp, p, log_m)
        kl_qm = _kl_rows(logq, q, log_m)
        rows = beta * kl_pm + (1.0 - beta) * kl_qm
        # d/dP_c of the row is beta (log P_c - log M_c) (the log M terms of both
        # halves cancel against each other); the softmax then projects it.
        grad_p = beta * np.where(p != 0, p * ((logp - log_m) - kl_pm[..., None]), 0.0)
        grad_q = (1.0 - beta) * np.where(q != 0, q * ((logq - log_m) - kl_qm[..., None]), 0.0)
        nan_row = np.isnan(rows)[..., None]
        grad_p = np.where(nan_row, np.nan, grad_p)
        grad_q = np.where(nan_row, np.nan, grad_q)
    return rows, grad_p, grad_q


def jensen_shannon_from_logits(
    p_logits: ArrayLike,
    q_logits: ArrayLike,
    axis: int = -1,
    *,
    beta: float = 0.5,
    reduction: str = "none",
    where: ArrayLike | None = None,
    threads: int | None = None,
) -> _Result:
    """Generalized Jensen-Shannon divergence of ``softmax(p_logits)`` and ``softmax(q_logits)``.

    For ``0 < beta < 1``, with the mixture ``M = beta P + (1 - beta) Q``::

        JSD_beta(P || Q) = beta KL(P || M) + (1 - beta) KL(Q || M)
                         = sum_c beta P_c log P_c + (1 - beta) Q_c log Q_c - M_c log M_c

    and at the ends, by convention::

        JSD_0 = KL(P || Q)      (forward KL)
        JSD_1 = KL(Q || P)      (reverse KL)

    This is the generalized JSD of on-policy distillation (GKD) as Liger-Kernel
    and TRL compute it, with ``P`` the teacher (their target) and ``Q`` the
    student (their input).  ``beta = 1/2`` is the classical symmetric JSD,
    bounded by ``log 2``.  The interior formula tends to 0 at both ends, so
    the value jumps at ``beta = 0`` and ``beta = 1``: they are different
    losses, not limits.  ``log M`` is computed as ``logaddexp(log beta + log P,
    log(1 - beta) + log Q)``.

    Shapes, ``where``, the reductions and the result dtype are those of
    :func:`kl_divergence_from_logits`; ``beta`` outside ``[0, 1]`` raises
    ValueError.

    Examples
    --------
    >>> print(jensen_shannon_from_logits([0.0, -800.0], [-800.0, 0.0]))
    0.6931471805599453
    >>> p, q = [0.0, 1.0], [1.0, 0.0]
    >>> print(jensen_shannon_from_logits(p, q, beta=0.0) == kl_divergence_from_logits(p, q))
    True
    """
    func = "jensen_shannon_from_logits"
    _check_choice(reduction, _KL_REDUCTIONS, func, "reduction")
    b = _check_real(beta, func, "beta", "unit")
    parts = _pair_parts(func, p_logits, q_logits, axis, where)
    rows, _, _ = _jsd_parts(parts, b)
    return _finish(_reduce_divergence(rows, parts.counted, reduction), parts.dtype, None)


def jensen_shannon_from_logits_with_grad(
    p_logits: ArrayLike,
    q_logits: ArrayLike,
    axis: int = -1,
    *,
    beta: float = 0.5,
    reduction: str = "none",
    where: ArrayLike | None = None,
    grad_output: ArrayLike | None = None,
    threads: int | None = None,
) -> tuple[_Result, NDArray[Any], NDArray[Any]]:
    """:func:`jensen_shannon_from_logits` and its gradients: ``(loss, grad_p, grad_q)``.

    For ``0 < beta < 1``, per counted row and with ``s`` as in
    :func:`kl_divergence_from_logits_with_grad`::

        d / d p_logits_j = s beta P_j ((log P_j - log M_j) - KL(P || M))
        d / d q_logits_j = s (1 - beta) Q_j ((log Q_j - log M_j) - KL(Q || M))

    and at ``beta = 0`` and ``1`` the gradients of the forward and reverse KL.

    Examples
    --------
    >>> loss, gp, gq = jensen_shannon_from_logits_with_grad([1.0, 1.0], [1.0, 1.0])
    >>> print(loss, gp, gq)
    0.0 [0. 0.] [0. 0.]
    """
    func = "jensen_shannon_from_logits_with_grad"
    _check_choice(reduction, _KL_REDUCTIONS, func, "reduction")
    b = _check_real(beta, func, "beta", "unit")
    parts = _pair_parts(func, p_logits, q_logits, axis, where)
    rows, grad_p, grad_q = _jsd_parts(parts, b)
    return _divergence_with_grad(func, parts, rows, grad_p, grad_q, reduction, grad_output)


# ---------------------------------------------------------------------------
# Backward passes of the softmax family, and hardmax
# ---------------------------------------------------------------------------


def softmax_backward(
    grad: ArrayLike,
    y: ArrayLike,
    axis: _Axis = -1,
    *,
    out: NDArray[Any] | None = None,
    threads: int | None = None,
) -> _Result:
    """The gradient through ``y = softmax(x, axis)``: ``y * (g - sum(g * y))``.

    ``grad`` is the upstream gradient ``g`` with respect to ``y``; the sum
    runs over ``axis`` (which may name several axes, as in :func:`softmax`)
    and is broadcast back.  ``grad`` and ``y`` must have the same shape; the
    result has it too, with the dtype of ``np.result_type(grad, y)`` under the
    table of this module.  NaN propagates along its row.

    Examples
    --------
    >>> print(softmax_backward([1.0, 0.0], [0.25, 0.75]))
    [ 0.1875 -0.1875]
    """
    func = "softmax_backward"
    g64, y64, dtype = _load_pair(grad, y, func, "grad", "y", broadcast=False)
    axes = _normalize_axes(axis, g64.ndim, func)
    _check_out(out, g64.shape, dtype, func)
    g, yr = _as_rows(g64), _as_rows(y64)
    with np.errstate(all="ignore"):
        res = yr * (g - np.sum(g * yr, axis=axes, keepdims=True))
    return _finish(res.reshape(g64.shape), dtype, out, keep_array=True)


def log_softmax_backward(
    grad: ArrayLike,
    y: ArrayLike,
    axis: _Axis = -1,
    *,
    out: NDArray[Any] | None = None,
    threads: int | None = None,
) -> _Result:
    """The gradient through ``y = log_softmax(x, axis)``: ``g - exp(y) * sum(g)``.

    ``exp(y)`` is the softmax; the sum runs over ``axis`` and is broadcast
    back.  Shapes and dtypes as in :func:`softmax_backward`.

    Examples
    --------
    >>> print(log_softmax_backward([1.0, 0.0], np.log([0.25, 0.75])))
    [ 0.75 -0.75]
    """
    func = "log_softmax_backward"
    g64, y64, dtype = _load_pair(grad, y, func, "grad", "y", broadcast=False)
    axes = _normalize_axes(axis, g64.ndim, func)
    _check_out(out, g64.shape, dtype, func)
    g, yr = _as_rows(g64), _as_rows(y64)
    with np.errstate(all="ignore"):
        res = g - np.exp(yr) * np.sum(g, axis=axes, keepdims=True)
    return _finish(res.reshape(g64.shape), dtype, out, keep_array=True)


def logsumexp_backward(
    grad: ArrayLike,
    x: ArrayLike,
    lse: ArrayLike | None = None,
    axis: _Axis = -1,
    keepdims: bool = False,
    *,
    out: NDArray[Any] | None = None,
    threads: int | None = None,
) -> _Result:
    """The gradient through ``logsumexp(x, axis, keepdims=keepdims)``: ``g * softmax(x)``.

    ``grad`` has the shape of that logsumexp's result (``keepdims`` says which
    of the two) and is broadcast along ``axis``.  Without ``lse`` the softmax
    is :func:`softmax` (so ``+inf`` entries share the mass); with ``lse``, the
    saved forward result of the same shape as ``grad``, it is ``exp(x - lse)``
    as given, as a backward pass would reuse it.  The result has the shape of
    ``x`` and the dtype of ``np.result_type(grad, x[, lse])`` under the table
    of this module.

    Examples
    --------
    >>> print(logsumexp_backward(2.0, [0.0, 0.0]))
    [1. 1.]
    """
    func = "logsumexp_backward"
    ga, xa = np.asarray(grad), np.asarray(x)
    _result_dtype(ga.dtype, func, "grad")
    _result_dtype(xa.dtype, func, "x")
    dtype = _joint_dtype(ga, xa, func, "grad and x")
    la = None
    if lse is not None:
        la = np.asarray(lse)
        _result_dtype(la.dtype, func, "lse")
        dtype = _result_dtype(np.result_type(dtype, la.dtype), func, "grad, x and lse")
    x64 = xa.astype(np.float64)
    axes = _normalize_axes(axis, x64.ndim, func)
    rows = _as_rows(x64)
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
    _check_out(out, x64.shape, dtype, func)
    g = ga.astype(np.float64).reshape(kept)
    with np.errstate(all="ignore"):
        if la is None:
            p = softmax(rows, axis=axes)
        else:
            p = np.exp(rows - la.astype(np.float64).reshape(kept))
        res = g * p
    return _finish(res.reshape(x64.shape), dtype, out, keep_array=True)


def sigmoid_backward(
    grad: ArrayLike, y: ArrayLike, *, out: NDArray[Any] | None = None, threads: int | None = None
) -> _Result:
    """The gradient through ``y = sigmoid(x)``: ``g * y * (1 - y)``, elementwise.

    ``grad`` and ``y`` must have the same shape; dtypes as in
    :func:`softmax_backward`.

    Examples
    --------
    >>> print(sigmoid_backward([1.0, 2.0], [0.5, 0.25]))
    [0.25  0.375]
    """
    func = "sigmoid_backward"
    g64, y64, dtype = _load_pair(grad, y, func, "grad", "y", broadcast=False)
    _check_out(out, g64.shape, dtype, func)
    with np.errstate(all="ignore"):
        res = g64 * y64 * (1.0 - y64)
    return _finish(res, dtype, out)


def hardmax(
    x: ArrayLike, axis: _Axis = -1, *, out: NDArray[Any] | None = None, threads: int | None = None
) -> _Result:
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
    x64, dtype = _load(x, func, "x")
    axes = _normalize_axes(axis, x64.ndim, func)
    _check_out(out, x64.shape, dtype, func)
    rows = _as_rows(x64)
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
    return _finish(back.reshape(x64.shape), dtype, out, keep_array=True)


# ---------------------------------------------------------------------------
# Linear layer + cross-entropy
# ---------------------------------------------------------------------------


def _linear_logits(
    hidden: ArrayLike, weight: ArrayLike, bias: ArrayLike | None, func: str
) -> tuple[NDArray[np.float64], NDArray[np.float64], np.dtype[Any]]:
    """float64 hidden rows (N, H) and the full logits (N, V), with the result dtype."""
    x64, dtype = _load(hidden, func, "hidden")
    w64, w_dtype = _load(weight, func, "weight")
    if x64.ndim == 0 or w64.ndim != 2 or x64.shape[-1] != w64.shape[1]:
        raise ValueError(
            f"{func}(): hidden must be (..., H) and weight (V, H), got {x64.shape} and {w64.shape}"
        )
    if w_dtype != dtype:
        raise TypeError(f"{func}(): weight must have hidden's dtype ({dtype}), got {w_dtype}")
    rows = x64.reshape(-1, x64.shape[-1])
    z = rows @ w64.T
    if bias is not None:
        b64, _ = _load(bias, func, "bias")
        if b64.shape != (w64.shape[0],):
            raise ValueError(f"{func}(): bias must have shape ({w64.shape[0]},), got {b64.shape}")
        z = z + b64
    return rows, z, dtype


def linear_cross_entropy(
    hidden: ArrayLike,
    weight: ArrayLike,
    target: ArrayLike,
    *,
    bias: ArrayLike | None = None,
    reduction: str = "mean",
    ignore_index: int = -100,
    label_smoothing: float = 0.0,
    z_loss: float = 0.0,
    softcap: float | None = None,
    class_weight: ArrayLike | None = None,
    chunk_size: int | None = None,
    vocab_chunk_size: int | None = None,
    threads: int | None = None,
) -> Any:
    """``cross_entropy(hidden @ weight.T + bias, target, weight=class_weight, ...)``, through
    the full logits in float64: the definition that ``logitkit.linear_cross_entropy`` computes
    a chunk at a time. ``chunk_size``, ``vocab_chunk_size`` and ``threads`` are accepted for
    the signature's sake and change nothing here.

    Examples
    --------
    >>> import numpy as np
    >>> h, w = np.array([[1.0, 0.0], [0.0, 2.0]]), np.array([[1.0, 1.0], [0.0, -1.0]])
    >>> round(float(linear_cross_entropy(h, w, np.array([0, 1]))), 12)
    2.165705807718
    """
    func = "linear_cross_entropy"
    rows, z, dtype = _linear_logits(hidden, weight, bias, func)
    t = np.asarray(target)
    loss = cross_entropy(
        z,
        t.reshape(-1) if t.shape == np.shape(hidden)[:-1] else t,
        weight=class_weight,
        ignore_index=ignore_index,
        reduction=reduction,
        label_smoothing=label_smoothing,
        z_loss=z_loss,
        softcap=softcap,
    )
    if reduction == "none":
        return _finish(np.asarray(loss, dtype=np.float64).reshape(t.shape), dtype, None)
    return _finish(np.asarray(loss, dtype=np.float64), dtype, None)


def linear_cross_entropy_with_grad(
    hidden: ArrayLike,
    weight: ArrayLike,
    target: ArrayLike,
    *,
    bias: ArrayLike | None = None,
    reduction: str = "mean",
    ignore_index: int = -100,
    label_smoothing: float = 0.0,
    z_loss: float = 0.0,
    softcap: float | None = None,
    class_weight: ArrayLike | None = None,
    chunk_size: int | None = None,
    vocab_chunk_size: int | None = None,
    grad_output: ArrayLike | None = None,
    compute_weight_grad: bool = True,
    threads: int | None = None,
) -> tuple[Any, NDArray[Any], NDArray[Any] | None, NDArray[Any] | None]:
    """:func:`linear_cross_entropy` and its gradients by the chain rule through the full
    logits: with ``G = d(grad_output * loss)/d(logits)``, ``grad_hidden = G @ weight``,
    ``grad_weight = G.T @ hidden`` and ``grad_bias = G.sum(0)`` (None without a bias, and
    both None with ``compute_weight_grad=False``), in float64, rounded once.

    Examples
    --------
    >>> import numpy as np
    >>> h, w = np.array([[1.0, 0.0]]), np.array([[1.0, 1.0], [0.0, -1.0]])
    >>> loss, gh, gw, gb = linear_cross_entropy_with_grad(h, w, np.array([0]))
    >>> print(np.round(gh, 6), gb)
    [[-0.268941 -0.537883]] None
    """
    func = "linear_cross_entropy_with_grad"
    rows, z, dtype = _linear_logits(hidden, weight, bias, func)
    t = np.asarray(target)
    flat_rows = t.shape == np.shape(hidden)[:-1]
    go = grad_output
    if reduction == "none" and grad_output is not None and flat_rows:
        go = np.broadcast_to(np.asarray(grad_output), t.shape).reshape(-1)
    loss, g = cross_entropy_with_grad(
        z,
        t.reshape(-1) if flat_rows else t,
        weight=class_weight,
        ignore_index=ignore_index,
        reduction=reduction,
        label_smoothing=label_smoothing,
        z_loss=z_loss,
        softcap=softcap,
        grad_output=go,
    )
    g64 = np.asarray(g, dtype=np.float64)
    w64 = np.asarray(weight).astype(np.float64)
    loss64 = np.asarray(loss, dtype=np.float64)
    if reduction == "none":
        loss64 = loss64.reshape(t.shape)
    grad_hidden = _finish((g64 @ w64).reshape(np.shape(hidden)), dtype, None, keep_array=True)
    grad_weight = grad_bias = None
    if compute_weight_grad:
        grad_weight = _finish(g64.T @ rows, dtype, None, keep_array=True)
        if bias is not None:
            grad_bias = _finish(g64.sum(axis=0), dtype, None, keep_array=True)
    return _finish(loss64, dtype, None), grad_hidden, grad_weight, grad_bias
