"""Gradients of the softmax family for hand-written backward passes, and hardmax."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from . import _core
from ._reductions import softmax
from ._rows import RowInfo, finish, map_rows, reduced_shape, reduction_axes, rows_of
from ._storage import cast
from ._validation import as_input_array, check_flag, check_out, check_threads, compute_dtypes

__all__ = [
    "softmax_backward",
    "log_softmax_backward",
    "logsumexp_backward",
    "sigmoid_backward",
    "hardmax",
]


def _pair(func: str, grad: Any, y: Any) -> tuple[np.ndarray, np.ndarray, np.dtype]:
    g = as_input_array(func, "grad", grad)
    ya = as_input_array(func, "y", y)
    compute_dtypes(func, "grad", g.dtype)
    compute_dtypes(func, "y", ya.dtype)
    if g.shape != ya.shape:
        raise ValueError(
            f"{func}(): grad and y must have the same shape, got {g.shape} and {ya.shape}"
        )
    return g, ya, np.result_type(g.dtype, ya.dtype)


def _vjp(func: str, grad: Any, y: Any, axis: Any, out: Any, threads: Any, log: bool) -> Any:
    g, ya, dtype = _pair(func, grad, y)

    def run(gv: np.ndarray, target: np.ndarray, isa: int, nthreads: int, info: RowInfo) -> None:
        _core.softmax_backward(gv, rows_of(ya, info, gv.dtype), target, log, isa, nthreads)

    return map_rows(func, g, axis, out, threads, run, dtype=dtype)


def softmax_backward(
    grad: ArrayLike,
    y: ArrayLike,
    axis: int | tuple[int, ...] | None = -1,
    *,
    out: NDArray[Any] | None = None,
    threads: int | None = None,
) -> Any:
    r"""Gradient through ``y = softmax(x, axis)``: ``y * (g - sum(g * y, axis))``.

    .. math:: \frac{\partial y_i}{\partial x_j} = y_i (\delta_{ij} - y_j), \qquad
              \Big(J^\top g\Big)_j = y_j \Big(g_j - \sum_i g_i y_i\Big)

    the product of the upstream gradient with the Jacobian ``diag(y) - y y^T``, without
    forming the Jacobian. One read of each input, one write; a row of ``y`` that is all 0
    (a fully masked row) gives 0.

    Parameters
    ----------
    grad : array_like
        The upstream gradient with respect to ``y``.
    y : array_like
        The forward result, of ``grad``'s shape.
    axis : int, tuple of ints or None
        The axis (or axes) of the forward call. Default -1.
    out : ndarray, optional
        Array of the result's shape and dtype to write into.
    threads : int, optional
        Threads to use (default ``LOGITKIT_NUM_THREADS`` or all cores).

    Returns
    -------
    ndarray
        The gradient with respect to ``x``, of ``y``'s shape.

    Examples
    --------
    >>> import numpy as np
    >>> import logitkit as lk
    >>> y = lk.softmax(np.array([1.0, 2.0, 3.0]))
    >>> lk.softmax_backward(np.array([1.0, 0.0, 0.0]), y)
    array([ 0.08192507, -0.02203304, -0.05989202])
    >>> jacobian = np.diag(y) - np.outer(y, y)
    >>> bool(np.allclose(lk.softmax_backward(np.array([1.0, 0.0, 0.0]), y), jacobian[0]))
    True
    """
    return _vjp("softmax_backward", grad, y, axis, out, threads, log=False)


def log_softmax_backward(
    grad: ArrayLike,
    y: ArrayLike,
    axis: int | tuple[int, ...] | None = -1,
    *,
    out: NDArray[Any] | None = None,
    threads: int | None = None,
) -> Any:
    r"""Gradient through ``y = log_softmax(x, axis)``: ``g - exp(y) * sum(g, axis)``.

    .. math:: \frac{\partial y_i}{\partial x_j} = \delta_{ij} - p_j, \qquad
              \Big(J^\top g\Big)_j = g_j - p_j \sum_i g_i, \quad p = e^{y}

    Parameters
    ----------
    grad : array_like
        The upstream gradient with respect to ``y``.
    y : array_like
        The forward result (log-probabilities), of ``grad``'s shape.
    axis : int, tuple of ints or None
        The axis (or axes) of the forward call. Default -1.
    out : ndarray, optional
        Array of the result's shape and dtype to write into.
    threads : int, optional
        Threads to use (default ``LOGITKIT_NUM_THREADS`` or all cores).

    Returns
    -------
    ndarray
        The gradient with respect to ``x``, of ``y``'s shape.

    Examples
    --------
    >>> import numpy as np
    >>> import logitkit as lk
    >>> y = lk.log_softmax(np.array([1.0, 2.0, 3.0]))
    >>> lk.log_softmax_backward(np.array([1.0, 0.0, 0.0]), y)
    array([ 0.90996943, -0.24472847, -0.66524096])
    """
    return _vjp("log_softmax_backward", grad, y, axis, out, threads, log=True)


def logsumexp_backward(
    grad: ArrayLike,
    x: ArrayLike,
    lse: ArrayLike | None = None,
    axis: int | tuple[int, ...] | None = -1,
    keepdims: bool = False,
    *,
    out: NDArray[Any] | None = None,
    threads: int | None = None,
) -> Any:
    r"""Gradient through ``logsumexp(x, axis, keepdims=keepdims)``: ``g * softmax(x)``.

    .. math:: \frac{\partial}{\partial x_j} \log \sum_k e^{x_k} = \mathrm{softmax}(x)_j

    The softmax is recomputed from ``x`` in one pass, which is as cheap as reading
    ``exp(x - lse)`` and exact for every row.

    Parameters
    ----------
    grad : array_like
        The upstream gradient, of the shape of the forward result; broadcast back along
        ``axis``.
    x : array_like
        The forward input.
    lse : array_like, optional
        The forward result; accepted for symmetry with the other backward functions and not
        read.
    axis : int, tuple of ints or None
        The axis (or axes) of the forward call. Default -1.
    keepdims : bool
        The ``keepdims`` of the forward call.
    out : ndarray, optional
        Array of ``x``'s shape and the result dtype to write into.
    threads : int, optional
        Threads to use (default ``LOGITKIT_NUM_THREADS`` or all cores).

    Returns
    -------
    ndarray
        The gradient with respect to ``x``, of ``x``'s shape, in the promotion of the
        dtypes of ``x`` and ``grad``.

    Examples
    --------
    >>> import numpy as np
    >>> import logitkit as lk
    >>> lk.logsumexp_backward(np.array(2.0), np.array([0.0, 0.0]))
    array([1., 1.])
    """
    func = "logsumexp_backward"
    check_threads(func, threads)
    keepdims = check_flag(func, "keepdims", keepdims)
    xa = as_input_array(func, "x", x)
    g = as_input_array(func, "grad", grad)
    x_result = compute_dtypes(func, "x", xa.dtype)[1]
    g_result = compute_dtypes(func, "grad", g.dtype)[1]
    del lse
    # The forward's result shape, as logsumexp gives it.
    axes = reduction_axes(func, axis, xa.ndim)
    expected = reduced_shape(xa.shape, axes, keepdims)
    if g.shape != expected:
        raise ValueError(f"{func}(): grad must have shape {expected}, got {g.shape}")
    # The result takes the promotion of x and grad; the softmax is formed in that dtype, so
    # float16 x with a float32 grad gives float32 precision, not float16's.
    dtype = np.result_type(x_result, g_result)
    if out is not None:
        check_out(func, out, xa.shape, dtype)
    p = softmax(cast(xa, dtype) if xa.dtype != dtype else xa, axis, threads=threads)
    g_b = g if keepdims or xa.ndim == 0 else np.expand_dims(g, axes)
    if out is not None:
        np.multiply(p, g_b, out=out, casting="unsafe")
        return out
    return np.multiply(p, g_b, dtype=dtype)


def sigmoid_backward(
    grad: ArrayLike, y: ArrayLike, *, out: NDArray[Any] | None = None, threads: int | None = None
) -> Any:
    r"""Gradient through ``y = sigmoid(x)``: ``g * y * (1 - y)``.

    .. math:: \frac{d\sigma}{dx} = \sigma(x)\,(1 - \sigma(x))

    the derivative written in terms of the forward result alone.

    Parameters
    ----------
    grad : array_like
        The upstream gradient with respect to ``y``.
    y : array_like
        The forward result, of ``grad``'s shape.
    out : ndarray, optional
        Array of the result's shape and dtype to write into.
    threads : int, optional
        Accepted and checked; one NumPy expression does the work.

    Returns
    -------
    ndarray
        The gradient with respect to ``x``.

    Examples
    --------
    >>> import numpy as np
    >>> import logitkit as lk
    >>> lk.sigmoid_backward(np.array([1.0]), lk.sigmoid(np.array([0.0])))
    array([0.25])
    """
    func = "sigmoid_backward"
    g, ya, dtype = _pair(func, grad, y)
    compute, result = compute_dtypes(func, "y", dtype)
    if out is not None:
        check_out(func, out, g.shape, result)
    check_threads(func, threads)  # checked, then unused: one NumPy expression does the work
    yc = cast(ya, compute)
    # an array even for 0-d inputs, where NumPy's arithmetic returns scalars: it is
    # written into below
    # (g y)(1 - y): a zero gradient stays zero even where y(1 - y) alone would overflow
    # (y far outside [0, 1]); inf * 0 is NaN, as documented, without a warning
    with np.errstate(invalid="ignore", over="ignore"):
        res = np.asarray(np.multiply(yc, g, dtype=compute))
        np.multiply(res, 1 - yc, out=res)
    return finish(res, result, out)


def hardmax(
    x: ArrayLike,
    axis: int | tuple[int, ...] | None = -1,
    *,
    out: NDArray[Any] | None = None,
    threads: int | None = None,
) -> Any:
    r"""One-hot of the first maximum along ``axis``, in ``x``'s dtype: softmax at zero temperature.

    .. math:: \mathrm{hardmax}(x)_j = [\, j = \min \arg\max_k x_k \,]
              = \lim_{T \to 0^+} \mathrm{softmax}(x / T)_j \text{ (for a unique maximum)}

    Unlike softmax, hardmax is flat almost everywhere: it gives no gradient to any class,
    in particular none to the classes it does not pick. A row containing NaN gives NaN
    everywhere.

    Parameters
    ----------
    x : array_like
        Logits; dtypes as in :func:`logitkit.softmax`.
    axis : int, tuple of ints or None
        The axis (or axes) to pick the maximum along. Default -1.
    out : ndarray, optional
        Array of the result's shape and dtype to write into.
    threads : int, optional
        Threads to use (default ``LOGITKIT_NUM_THREADS`` or all cores).

    Returns
    -------
    ndarray of ``x``'s shape.

    Examples
    --------
    >>> import numpy as np
    >>> import logitkit as lk
    >>> lk.hardmax([1.0, 3.0, 3.0, 0.0])
    array([0., 1., 0., 0.])
    >>> x = np.array([1.0, 3.0, 2.9, 0.0])
    >>> np.round(lk.softmax(x / 0.01), 3)  # temperature 0.01
    array([0., 1., 0., 0.])
    """

    def run(xv: np.ndarray, target: np.ndarray, isa: int, nthreads: int, info: RowInfo) -> None:
        _core.hardmax(xv, target, isa, nthreads)

    return map_rows("hardmax", x, axis, out, threads, run)
