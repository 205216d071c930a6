"""The sigmoid family, elementwise: sigmoid, log_sigmoid, softplus, logit."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from . import _core
from ._rows import contiguous, finish, flat_view, native_ready
from ._runtime import current_isa_index
from ._storage import empty_like, kernel_dtype
from ._validation import (
    as_input_array,
    check_out,
    check_threads,
    compute_dtypes,
    partially_overlaps,
)

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


def _unary(func: str, op: int, x: Any, out: Any, threads: Any, arg: str = "x") -> Any:
    nthreads = check_threads(func, threads)
    arr = as_input_array(func, arg, x)
    compute, result_dtype = compute_dtypes(func, arg, arr.dtype)
    if out is not None:
        check_out(func, out, arr.shape, result_dtype)
    isa = current_isa_index()

    compute = kernel_dtype(compute, result_dtype)  # float16/bfloat16 as they are

    src = native_ready(arr, compute)
    flat_in = flat_view(src)
    if flat_in is None:
        src = contiguous(src)
        flat_in = src.reshape(-1)

    # Write straight into out when it has the same memory order as the input (this covers
    # out=x); a partial overlap or another layout goes through a temporary.
    if out is not None and out.dtype == compute and out.flags.aligned:
        flat_out = flat_view(out)
        same_order = flat_out is not None and (
            out.ndim < 2 or out.flags.c_contiguous == src.flags.c_contiguous
        )
        if same_order and flat_out is not None:
            if not partially_overlaps(flat_out, flat_in):
                _core.unary(op, flat_in, flat_out, isa, nthreads)
                return out

    res = empty_like(src)
    flat_res = flat_view(res)
    assert flat_res is not None  # empty_like keeps the C or Fortran order of src
    _core.unary(op, flat_in, flat_res, isa, nthreads)
    return finish(res, result_dtype, out)


def sigmoid(x: ArrayLike, *, out: NDArray[Any] | None = None, threads: int | None = None) -> Any:
    r"""Logistic sigmoid ``1 / (1 + exp(-x))``, the two-class softmax of ``[x, 0]``.

    .. math:: \sigma(x) = \frac{1}{1 + e^{-x}} = \frac{e^x}{e^x + e^0}

    Computed as ``1 / (1 + exp(-|x|))`` and, for negative ``x``, ``e / (1 + e)`` with
    ``e = exp(x)``: no overflow for any input, full relative precision in both tails.
    ``sigmoid(+inf) = 1``, ``sigmoid(-inf) = 0``, NaN stays NaN. Same as ``scipy.special.expit``.

    Parameters
    ----------
    x : array_like
        Any shape; dtype policy as in :func:`logitkit.softmax`.
    out : ndarray, optional
        Array of the input's shape and the result dtype; ``out=x`` works in place.
    threads : int, optional
        Threads to use (default ``LOGITKIT_NUM_THREADS`` or all cores).

    Returns
    -------
    ndarray
        Of ``x``'s shape; a NumPy scalar for a 0-d input.

    Examples
    --------
    >>> import logitkit as lk
    >>> lk.sigmoid([-800.0, 0.0, 800.0])
    array([0. , 0.5, 1. ])

    The sigmoid is the first entry of the softmax of ``[x, 0]``:

    >>> bool(abs(lk.sigmoid(1.5) - lk.softmax([1.5, 0.0])[0]) < 1e-15)
    True
    """
    return _unary("sigmoid", _core.OP_SIGMOID, x, out, threads)


def log_sigmoid(
    x: ArrayLike, *, out: NDArray[Any] | None = None, threads: int | None = None
) -> Any:
    r"""``log(sigmoid(x)) = min(x, 0) - log1p(exp(-|x|))``, finite for every finite input.

    .. math:: \log\sigma(x) = \min(x, 0) - \log\left(1 + e^{-|x|}\right)

    ``log_sigmoid(-1000) = -1000`` (the naive formula gives ``-inf``). Same as
    ``scipy.special.log_expit`` and ``torch.nn.functional.logsigmoid``.

    Parameters
    ----------
    x : array_like
        Any shape; dtype policy as in :func:`logitkit.softmax`.
    out : ndarray, optional
        Array of the input's shape and the result dtype; ``out=x`` works in place.
    threads : int, optional
        Threads to use (default ``LOGITKIT_NUM_THREADS`` or all cores).

    Returns
    -------
    ndarray
        Of ``x``'s shape; a NumPy scalar for a 0-d input.

    Examples
    --------
    >>> import logitkit as lk
    >>> lk.log_sigmoid([-1000.0, 0.0])
    array([-1.00000000e+03, -6.93147181e-01])
    """
    return _unary("log_sigmoid", _core.OP_LOG_SIGMOID, x, out, threads)


def softplus(x: ArrayLike, *, out: NDArray[Any] | None = None, threads: int | None = None) -> Any:
    r"""``log(1 + exp(x)) = max(x, 0) + log1p(exp(-|x|))``, the integral of the sigmoid.

    .. math:: \mathrm{softplus}(x) = \log(1 + e^x) = \max(x, 0) + \log(1 + e^{-|x|})

    Exact for any input (``softplus(1000) = 1000``); ``softplus(x) - softplus(-x) = x``.
    Matches ``torch.nn.functional.softplus`` with ``beta=1`` without its linear cut-off.

    Parameters
    ----------
    x : array_like
        Any shape; dtype policy as in :func:`logitkit.softmax`.
    out : ndarray, optional
        Array of the input's shape and the result dtype; ``out=x`` works in place.
    threads : int, optional
        Threads to use (default ``LOGITKIT_NUM_THREADS`` or all cores).

    Returns
    -------
    ndarray
        Of ``x``'s shape; a NumPy scalar for a 0-d input.

    Examples
    --------
    >>> import logitkit as lk
    >>> lk.softplus([-1000.0, 0.0, 1000.0])
    array([0.00000000e+00, 6.93147181e-01, 1.00000000e+03])
    """
    return _unary("softplus", _core.OP_SOFTPLUS, x, out, threads)


def logit(p: ArrayLike, *, out: NDArray[Any] | None = None, threads: int | None = None) -> Any:
    r"""Inverse of the sigmoid: ``log(p / (1 - p))``.

    .. math:: \mathrm{logit}(p) = \log\frac{p}{1 - p}, \quad \sigma(\mathrm{logit}(p)) = p

    Near ``p = 1/2`` it is ``log1p((2p - 1) / (1 - p))`` to keep relative precision.
    ``logit(0) = -inf``, ``logit(1) = +inf``, ``p`` outside ``[0, 1]`` or NaN gives NaN.
    Same as ``scipy.special.logit``.

    Parameters
    ----------
    p : array_like
        Any shape; dtype policy as in :func:`logitkit.softmax`.
    out : ndarray, optional
        Array of the input's shape and the result dtype; ``out=p`` works in place.
    threads : int, optional
        Threads to use (default ``LOGITKIT_NUM_THREADS`` or all cores).

    Returns
    -------
    ndarray
        Of ``p``'s shape; a NumPy scalar for a 0-d input.

    Examples
    --------
    >>> import logitkit as lk
    >>> lk.logit([0.0, 0.5, 0.75, 1.0])
    array([      -inf, 0.        , 1.09861229,        inf])
    """
    return _unary("logit", _core.OP_LOGIT, p, out, threads, arg="p")


def binary_op(
    func: str,
    op: int,
    a: Any,
    b: Any,
    out: Any,
    threads: Any,
    names: tuple[str, str] = ("x", "y"),
) -> Any:
    """Apply a native two-input elementwise operation with NumPy broadcasting; ``names``
    are the two arguments' names in the caller's signature, for the messages."""
    nthreads = check_threads(func, threads)
    x = as_input_array(func, names[0], a)
    y = as_input_array(func, names[1], b)
    compute_dtypes(func, names[0], x.dtype)
    compute_dtypes(func, names[1], y.dtype)
    compute, result_dtype = compute_dtypes(func, names[0], np.result_type(x.dtype, y.dtype))
    try:
        shape = np.broadcast_shapes(x.shape, y.shape)
    except ValueError:
        raise ValueError(
            f"{func}(): {names[0]} with shape {x.shape} and {names[1]} with shape {y.shape} "
            "cannot be broadcast together"
        ) from None
    if out is not None:
        check_out(func, out, shape, result_dtype)
    # float16/bfloat16 as they are: an operand of another dtype promotes to a 16-bit result
    # only when its values are all 16-bit ones (int8, uint8, bool)
    compute = kernel_dtype(compute, result_dtype)

    def flat(v: np.ndarray) -> np.ndarray:
        return contiguous(np.broadcast_to(v, shape), compute).reshape(-1)

    res = np.empty(shape, dtype=compute)
    _core.binary(op, flat(x), flat(y), res.reshape(-1), current_isa_index(), nthreads)
    return finish(res, result_dtype, out)


def entr(x: ArrayLike, *, out: NDArray[Any] | None = None, threads: int | None = None) -> Any:
    r"""``-x log x`` elementwise (``scipy.special.entr``), the terms of an entropy.

    .. math:: \operatorname{entr}(x) = -x \log x, \quad H(p) = \sum_j \operatorname{entr}(p_j)

    0 at 0, ``-inf`` for ``x < 0`` and ``x = +inf``, NaN for NaN. The entropy of a
    probability vector ``p`` is ``entr(p).sum()``.

    Parameters
    ----------
    x : array_like
        Any shape; dtype policy as in :func:`logitkit.softmax`.
    out : ndarray, optional
        Array of the input's shape and the result dtype; ``out=x`` works in place.
    threads : int, optional
        Threads to use (default ``LOGITKIT_NUM_THREADS`` or all cores).

    Returns
    -------
    ndarray
        Of ``x``'s shape; a NumPy scalar for a 0-d input.

    Examples
    --------
    >>> import logitkit as lk
    >>> lk.entr([0.0, 0.5, 1.0, -1.0])
    array([0.        , 0.34657359, 0.        ,       -inf])
    """
    return _unary("entr", _core.OP_ENTR, x, out, threads)


def rel_entr(
    x: ArrayLike, y: ArrayLike, *, out: NDArray[Any] | None = None, threads: int | None = None
) -> Any:
    r"""``x log(x / y)`` elementwise (``scipy.special.rel_entr``), the terms of a KL divergence.

    .. math:: \operatorname{rel\_entr}(x, y) = x \log\frac{x}{y}, \quad
              \mathrm{KL}(p \,\|\, q) = \sum_j \operatorname{rel\_entr}(p_j, q_j)

    For ``x, y > 0``; 0 for ``x = 0 <= y``; ``+inf`` otherwise (``-inf`` for ``y = +inf``);
    NaN gives NaN. Near ``x = y`` the log of the ratio comes from ``log1p`` of the relative
    difference, and far from it from the two logs apart, so it is accurate where ``x / y``
    is close to 1 and finite where ``x / y`` would overflow. ``x`` and ``y`` broadcast.

    Parameters
    ----------
    x, y : array_like
        Broadcast together; dtype policy as in :func:`logitkit.softmax`, applied to
        ``np.result_type(x, y)``.
    out : ndarray, optional
        Array of the broadcast shape and the result dtype.
    threads : int, optional
        Threads to use (default ``LOGITKIT_NUM_THREADS`` or all cores).

    Returns
    -------
    ndarray
        Of the broadcast shape; a NumPy scalar when both inputs are 0-d.

    Examples
    --------
    >>> import logitkit as lk
    >>> float(lk.rel_entr(0.5, 0.25))
    0.34657359027997264
    """
    return binary_op("rel_entr", _core.OP_REL_ENTR, x, y, out, threads)


def kl_div_elementwise(
    x: ArrayLike, y: ArrayLike, *, out: NDArray[Any] | None = None, threads: int | None = None
) -> Any:
    r"""``x log(x / y) - x + y`` elementwise (``scipy.special.kl_div``), always ``>= 0``.

    .. math:: \operatorname{kl\_div}(x, y) = x \log\frac{x}{y} - x + y

    ``y`` for ``x = 0 <= y``, ``+inf`` outside the domain, NaN for ``y = +inf > x`` and NaN
    inputs. Near ``x = y``, where the textbook formula cancels to nothing, it is
    ``y ((1 + u) log1p(u) - u)`` with ``u = (x - y) / y`` evaluated from the ``atanh``
    series without cancellation: full relative precision for tiny divergences.

    Parameters
    ----------
    x, y : array_like
        Broadcast together; dtype policy as in :func:`logitkit.softmax`, applied to
        ``np.result_type(x, y)``.
    out : ndarray, optional
        Array of the broadcast shape and the result dtype.
    threads : int, optional
        Threads to use (default ``LOGITKIT_NUM_THREADS`` or all cores).

    Returns
    -------
    ndarray
        Of the broadcast shape; a NumPy scalar when both inputs are 0-d.

    Examples
    --------
    >>> import logitkit as lk
    >>> float(lk.kl_div_elementwise(1.0, 1.0 + 1e-9)) > 0
    True
    """
    return binary_op("kl_div_elementwise", _core.OP_KL_DIV_ELEMENTWISE, x, y, out, threads)


expit = sigmoid
log_expit = log_sigmoid
