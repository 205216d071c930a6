"""Twins of :mod:`logitkit._elementwise`: the logistic family and the elementwise entropy
terms of SciPy."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ._common import Result, check_out, entr64, finish, load, load_pair, log_ratio, rel_entr64

__all__ = [
    "sigmoid",
    "expit",
    "log_sigmoid",
    "log_expit",
    "softplus",
    "logit",
    "entr",
    "rel_entr",
    "kl_div_elementwise",
]


def sigmoid(x: ArrayLike, *, out: NDArray[Any] | None = None, threads: int | None = None) -> Result:
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
    x64, dtype = load(x, "sigmoid", "x")
    check_out(out, x64.shape, dtype, "sigmoid")
    e = np.exp(-np.abs(x64))
    res = np.where(x64 >= 0, 1.0 / (1.0 + e), e / (1.0 + e))
    return finish(res, dtype, out)


def log_sigmoid(
    x: ArrayLike, *, out: NDArray[Any] | None = None, threads: int | None = None
) -> Result:
    """``log(sigmoid(x)) = min(x, 0) - log1p(exp(-|x|))``, elementwise.

    The formula never overflows and keeps relative accuracy for large ``|x|``:
    ``log_sigmoid(-1000) = -1000`` and ``log_sigmoid(40) = -4.2e-18``.
    ``log_sigmoid(+inf) = 0``, ``log_sigmoid(-inf) = -inf``, NaN gives NaN.

    Examples
    --------
    >>> print(log_sigmoid([0.0, -1000.0, float("inf")]))
    [-6.93147181e-01 -1.00000000e+03  0.00000000e+00]
    """
    x64, dtype = load(x, "log_sigmoid", "x")
    check_out(out, x64.shape, dtype, "log_sigmoid")
    res = np.minimum(x64, 0.0) - np.log1p(np.exp(-np.abs(x64)))
    return finish(res, dtype, out)


def softplus(
    x: ArrayLike, *, out: NDArray[Any] | None = None, threads: int | None = None
) -> Result:
    """``log(1 + exp(x)) = max(x, 0) + log1p(exp(-|x|))``, elementwise.

    The formula never overflows: ``softplus(1000) = 1000``.  It equals
    ``-log_sigmoid(-x)``.  ``softplus(+inf) = +inf``, ``softplus(-inf) = 0``,
    NaN gives NaN.

    Examples
    --------
    >>> print(softplus(1000.0), softplus(0.0), softplus(-1000.0))
    1000.0 0.6931471805599453 0.0
    """
    x64, dtype = load(x, "softplus", "x")
    check_out(out, x64.shape, dtype, "softplus")
    res = np.maximum(x64, 0.0) + np.log1p(np.exp(-np.abs(x64)))
    return finish(res, dtype, out)


def logit(p: ArrayLike, *, out: NDArray[Any] | None = None, threads: int | None = None) -> Result:
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
    p64, dtype = load(p, "logit", "p")
    check_out(out, p64.shape, dtype, "logit")
    with np.errstate(all="ignore"):
        q = 1.0 - p64
        near_half = (p64 >= 0.3) & (p64 <= 0.7)
        res = np.where(near_half, np.log1p((2.0 * p64 - 1.0) / q), np.log(p64 / q))
    return finish(res, dtype, out)


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


def _kl_div64(x: NDArray[np.float64], y: NDArray[np.float64]) -> NDArray[np.float64]:
    with np.errstate(all="ignore"):
        # 0.5 * x <= y rather than x <= 2 * y, which overflows to inf for y above half the
        # largest double and so took x = inf for near
        near = (x >= 0.5 * y) & (0.5 * x <= y)
        # x log(x/y) - x + y = x (t - log1p(t)) with t = y/x - 1, exact-ish near x = y.
        close = x * _t_minus_log1p_t(np.where(near, (y - x) / x, 0.0))
        far = x * (log_ratio(x, y) - 1.0) + y
        return np.select(
            [np.isnan(x) | np.isnan(y), (x > 0) & (y > 0), (x == 0) & (y >= 0)],
            [np.nan, np.where(near, close, far), y],
            default=np.inf,
        )


def entr(x: ArrayLike, *, out: NDArray[Any] | None = None, threads: int | None = None) -> Result:
    """``-x log x``, elementwise, as ``scipy.special.entr``.

    ``entr(0) = 0`` (the limit), ``entr(x) = -inf`` for ``x < 0`` and for
    ``x = +inf``; NaN gives NaN.  The entropy of a probability vector is
    ``sum(entr(p))``.

    Examples
    --------
    >>> print(entr([0.0, 0.5, 1.0, -1.0]))
    [ 0.          0.34657359 -0.                -inf]
    """
    x64, dtype = load(x, "entr", "x")
    check_out(out, x64.shape, dtype, "entr")
    return finish(entr64(x64), dtype, out)


def rel_entr(
    x: ArrayLike, y: ArrayLike, *, out: NDArray[Any] | None = None, threads: int | None = None
) -> Result:
    """``x log(x / y)``, elementwise, as ``scipy.special.rel_entr``.

    It is ``x log(x / y)`` for ``x > 0, y > 0``, 0 for ``x = 0, y >= 0`` and
    ``+inf`` otherwise; NaN gives NaN.  ``x`` and ``y`` broadcast together and
    the result dtype is that of ``np.result_type(x, y)`` under the table of
    ``logitkit.reference``.  Near ``x = y`` the logarithm is taken as
    ``log1p((x - y) / y)`` (``x - y`` is exact there), which keeps the
    relative accuracy SciPy's ``log(x / y)`` loses.  ``sum(rel_entr(p, q))``
    is the Kullback-Leibler divergence of probability vectors.

    Examples
    --------
    >>> print(rel_entr([0.5, 0.0, 0.5], [0.25, 0.5, 0.0]))
    [0.34657359 0.                inf]
    """
    x64, y64, dtype = load_pair(x, y, "rel_entr", "x", "y", broadcast=True)
    check_out(out, x64.shape, dtype, "rel_entr")
    return finish(rel_entr64(x64, y64), dtype, out)


def kl_div_elementwise(
    x: ArrayLike, y: ArrayLike, *, out: NDArray[Any] | None = None, threads: int | None = None
) -> Result:
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
    x64, y64, dtype = load_pair(x, y, "kl_div_elementwise", "x", "y", broadcast=True)
    check_out(out, x64.shape, dtype, "kl_div_elementwise")
    return finish(_kl_div64(x64, y64), dtype, out)


expit = sigmoid

log_expit = log_sigmoid
