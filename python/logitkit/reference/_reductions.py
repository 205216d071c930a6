"""Twins of :mod:`logitkit._reductions`: ``logsumexp``, ``softmax``, ``log_softmax`` and
``entropy_from_logits``."""

from __future__ import annotations

from typing import Any, Literal, overload

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ._common import (
    Axis,
    Result,
    as_rows,
    check_out,
    check_real,
    class_axis,
    finish,
    load,
    masked_sum,
    normalize_axes,
    result_dtype,
)

__all__ = ["logsumexp", "softmax", "log_softmax", "entropy_from_logits"]


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


@overload
def logsumexp(
    x: ArrayLike,
    axis: Axis = ...,
    *,
    b: ArrayLike | None = ...,
    keepdims: bool = ...,
    return_sign: Literal[False] = ...,
    out: NDArray[Any] | None = ...,
    threads: int | None = ...,
) -> Result: ...
@overload
def logsumexp(
    x: ArrayLike,
    axis: Axis = ...,
    *,
    b: ArrayLike | None = ...,
    keepdims: bool = ...,
    return_sign: Literal[True],
    out: tuple[NDArray[Any], NDArray[Any]] | None = ...,
    threads: int | None = ...,
) -> tuple[Result, Result]: ...
def logsumexp(
    x: ArrayLike,
    axis: Axis = -1,
    *,
    b: ArrayLike | None = None,
    keepdims: bool = False,
    return_sign: bool = False,
    out: Any = None,
    threads: int | None = None,
) -> Result | tuple[Result, Result]:
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
    dtype = result_dtype(xa.dtype, func, "x")
    x64 = xa.astype(np.float64)
    b64: NDArray[np.float64] | None = None
    if b is not None:
        ba = np.asarray(b)
        result_dtype(ba.dtype, func, "b")
        try:
            joint = np.result_type(xa.dtype, ba.dtype)
        except TypeError:
            raise TypeError(
                f"{func}(): x ({xa.dtype}) and b ({ba.dtype}) have no common dtype"
            ) from None
        dtype = result_dtype(joint, func, "x and b")
        # As in SciPy, x and b broadcast against each other.
        try:
            joint_shape = np.broadcast_shapes(x64.shape, ba.shape)
        except ValueError:
            raise ValueError(
                f"{func}(): b with shape {ba.shape} cannot be broadcast to x with shape {x64.shape}"
            ) from None
        x64 = np.broadcast_to(x64, joint_shape)
        b64 = np.broadcast_to(ba.astype(np.float64), joint_shape)

    axes = normalize_axes(axis, x64.ndim, func)
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
            check_out(out[0], out_shape, dtype, func, "out[0]")
            check_out(out[1], out_shape, dtype, func, "out[1]")
    else:
        check_out(out, out_shape, dtype, func)

    nan_row, m, c, r = _row_parts(as_rows(x64), None if b64 is None else as_rows(b64), axes)
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
        return finish(value, dtype, value_out), finish(sign, dtype, sign_out)
    return finish(np.where(sign < 0, np.nan, value), dtype, out)


def softmax(
    x: ArrayLike, axis: Axis = -1, *, out: NDArray[Any] | None = None, threads: int | None = None
) -> Result:
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
    x64, dtype = load(x, func, "x")
    axes = normalize_axes(axis, x64.ndim, func)
    check_out(out, x64.shape, dtype, func)

    rows = as_rows(x64)
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
    return finish(res.reshape(x64.shape), dtype, out, keep_array=True)


def log_softmax(
    x: ArrayLike, axis: Axis = -1, *, out: NDArray[Any] | None = None, threads: int | None = None
) -> Result:
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
    x64, dtype = load(x, func, "x")
    axes = normalize_axes(axis, x64.ndim, func)
    check_out(out, x64.shape, dtype, func)

    rows = as_rows(x64)
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
    return finish(res.reshape(x64.shape), dtype, out, keep_array=True)


def row_softmax(
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


def entropy_from_logits(
    z: ArrayLike,
    axis: int = -1,
    *,
    base: float | None = None,
    keepdims: bool = False,
    where: ArrayLike | None = None,
    threads: int | None = None,
) -> Result:
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
    z64, dtype = load(z, func, "z")
    ax = class_axis(axis, z64.ndim, func, "z")
    if base is not None:
        b = check_real(base, func, "base", "base")
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
    logp, p, _ = row_softmax(rows)
    with np.errstate(all="ignore"):
        # 0.0 - s rather than -s: a certain outcome has entropy +0.
        h = np.where(no_mass, 0.0, 0.0 - masked_sum(logp, p))
        if base is not None:
            h = h / np.log(b)
    if keepdims:
        h = np.expand_dims(h, ax)
    return finish(h, dtype, None)
