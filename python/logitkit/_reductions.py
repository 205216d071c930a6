"""softmax, log_softmax and logsumexp: NumPy semantics around the native row kernels."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from . import _core
from ._rows import (
    RowInfo,
    finish,
    keep_reduced,
    map_rows,
    native_ready,
    reduced_shape,
    reduction_axes,
    rows_view,
)
from ._runtime import current_isa_index
from ._storage import cast, kernel_dtype
from ._validation import (
    as_input_array,
    check_base,
    check_flag,
    check_out,
    check_threads,
    check_where,
    compute_dtypes,
    normalize_axes,
)

__all__ = ["softmax", "log_softmax", "logsumexp", "entropy_from_logits"]


def _mask_rows(
    func: str, where: Any, shape: tuple[int, ...], axes: tuple[int, ...], dtype: np.dtype
) -> np.ndarray:
    """The boolean ``where`` broadcast to x, in x's row layout, as 0/1 of the compute dtype."""
    mask = check_where(func, where, shape, f"x with shape {shape}")
    return cast(rows_view(mask, axes), dtype)


def _softmax_impl(
    func: str, x: Any, axis: Any, where: Any, out: Any, threads: Any, log: bool
) -> NDArray[Any]:
    def run(xv: np.ndarray, target: np.ndarray, isa: int, nthreads: int, info: RowInfo) -> None:
        mask = None if where is None else _mask_rows(func, where, info.shape, info.axes, xv.dtype)
        _core.softmax(xv, target, log, isa, nthreads, mask)

    return map_rows(func, x, axis, out, threads, run)


def softmax(
    x: ArrayLike,
    axis: int | tuple[int, ...] | None = -1,
    *,
    where: ArrayLike | None = None,
    out: NDArray[Any] | None = None,
    threads: int | None = None,
) -> NDArray[Any]:
    r"""Softmax along an axis: ``exp(x - max) / sum(exp(x - max))``.

    .. math:: \sigma(x)_j = \frac{e^{x_j - m}}{\sum_k e^{x_k - m}}, \quad m = \max_k x_k

    Subtracting the row maximum means no finite input overflows:
    ``softmax([123, 456, 789])`` is ``[0, 0, 1]``, where the textbook formula gives NaN.

    Parameters
    ----------
    x : array_like
        Logits. float32 and float64 are computed natively; float16 (and bfloat16) are computed
        in float32 and returned in their own dtype; integers and bools give float64.
    axis : int, tuple of ints or None
        The axis (or axes, or all with None) the probabilities sum to 1 over. Default -1.
    out : ndarray, optional
        Array of the result's shape and dtype to write into. ``out=x`` works in place.
    where : array_like of bool, optional
        Entries that take part (broadcast against ``x``); the others get probability 0 and
        are ignored even when NaN or infinite. A row with no counted finite logit (all
        masked, as in attention over padding) gives 0 everywhere, not NaN.
    threads : int, optional
        Threads to use; default ``LOGITKIT_NUM_THREADS`` or all cores. Results are bitwise
        identical for every thread count.

    Returns
    -------
    ndarray of the input's shape.

    Notes
    -----
    Special rows: a NaN anywhere makes the whole row NaN. Entries equal to ``+inf`` share
    the mass (``1/k`` each for ``k`` of them, 0 elsewhere), the limit of softmax as those
    logits grow; SciPy returns NaN there. A row of only ``-inf`` is NaN (0/0), as in SciPy
    and PyTorch. An empty axis gives an empty result.

    Examples
    --------
    >>> import numpy as np
    >>> import logitkit as lk
    >>> lk.softmax([1.0, 2.0, 3.0])
    array([0.09003057, 0.24472847, 0.66524096])
    >>> lk.softmax(np.float32([123, 456, 789]))
    array([0., 0., 1.], dtype=float32)
    """
    return _softmax_impl("softmax", x, axis, where, out, threads, log=False)


def log_softmax(
    x: ArrayLike,
    axis: int | tuple[int, ...] | None = -1,
    *,
    where: ArrayLike | None = None,
    out: NDArray[Any] | None = None,
    threads: int | None = None,
) -> NDArray[Any]:
    r"""Logarithm of the softmax: ``x - logsumexp(x)``, computed without forming softmax.

    .. math:: \log\sigma(x)_j = (x_j - m) - \log\Big(c + \sum_{x_k < m} e^{x_k - m}\Big)

    where ``m`` is the row maximum and ``c`` the number of entries equal to it. The log of
    the sum is taken as ``log(c) + log1p(rest / c)``, so the largest entry keeps full
    relative precision: ``log_softmax([0, -50])[0]`` is ``-1.93e-22`` (SciPy returns 0).

    Parameters
    ----------
    x : array_like
        Logits; dtypes as in :func:`softmax`.
    axis : int, tuple of ints or None
        The axis (or axes, or all with None) normalized over. Default -1.
    where : array_like of bool, optional
        Entries that take part (broadcast against ``x``); masked entries, and rows with no
        counted finite logit, give ``-inf``.
    out : ndarray, optional
        Array of the result's shape and dtype to write into. ``out=x`` works in place.
    threads : int, optional
        As in :func:`softmax`.

    Returns
    -------
    ndarray of the input's shape.

    Notes
    -----
    Special rows: NaN anywhere gives a NaN row; ``k`` entries at ``+inf`` give ``-log(k)``
    there and ``-inf`` elsewhere (the log of the softmax rule); a row of only ``-inf`` is
    NaN; an empty axis gives an empty result.

    Examples
    --------
    >>> import logitkit as lk
    >>> lk.log_softmax([0.0, -50.0])
    array([-1.92874985e-22, -5.00000000e+01])
    """
    return _softmax_impl("log_softmax", x, axis, where, out, threads, log=True)


def logsumexp(
    x: ArrayLike,
    axis: int | tuple[int, ...] | None = -1,
    *,
    b: ArrayLike | None = None,
    where: ArrayLike | None = None,
    keepdims: bool = False,
    return_sign: bool = False,
    out: Any = None,
    threads: int | None = None,
) -> Any:
    r"""``log(sum(b * exp(x)))`` along an axis, without overflow or lost precision.

    .. math:: \operatorname{lse}(x) = m + \log\Big(c + \sum_{x_k < m} b_k e^{x_k - m}\Big)

    with ``m`` the maximum of the counted entries and ``c`` the sum of ``b`` over the entries
    equal to ``m``; the log is taken as ``log|c| + log1p(rest / c)`` so results stay exact
    to the last bit when one entry dominates: ``logsumexp([0, -50])`` is ``1.93e-22``.

    Parameters
    ----------
    x : array_like
        Input values (dtype policy as in :func:`softmax`).
    axis : int, tuple of ints or None
        Axis or axes to reduce; None reduces all. Default -1 (SciPy's default is None).
    b : array_like, optional
        Weights broadcast against ``x`` (SciPy semantics): may be negative; an entry with
        ``b == 0`` is ignored even where ``x`` is ``inf`` or NaN. The result dtype is the
        floating promotion of ``x`` and ``b``.
    where : array_like of bool, optional
        Entries that take part; the others are ignored as if their weight were 0. A row with
        nothing counted gives ``-inf``.
    keepdims : bool
        Keep the reduced axes with length 1.
    return_sign : bool
        Also return the sign of the sum; then the value is ``log|sum|``. Without it a
        negative sum gives NaN.
    out : ndarray or (ndarray, ndarray), optional
        Where to write the result (a pair when ``return_sign``).
    threads : int, optional
        As in :func:`softmax`.

    Returns
    -------
    value or (value, sign); a NumPy scalar when the result is 0-d and ``out`` is None.

    Notes
    -----
    NaN among the counted entries gives NaN (sign NaN). A ``+inf`` entry gives ``+inf``
    with the sign of the total weight at ``+inf`` (NaN when those weights cancel). Only
    ``-inf`` entries, no counted entries, or an empty axis give ``-inf`` with sign 0
    (SciPy gives sign -1 for an empty input).

    Examples
    --------
    >>> import logitkit as lk
    >>> float(lk.logsumexp([1000.0, 1000.0]))
    1000.6931471805599
    >>> lk.logsumexp([1.0, 2.0], b=[1.0, -1.0], return_sign=True)
    (np.float64(1.5413248546129181), np.float64(-1.0))
    """
    func = "logsumexp"
    nthreads = check_threads(func, threads)
    keepdims = check_flag(func, "keepdims", keepdims)
    return_sign = check_flag(func, "return_sign", return_sign)
    arr = as_input_array(func, "x", x)
    x_result = compute_dtypes(func, "x", arr.dtype)[1]  # rejects bad dtypes before b
    if where is not None:
        mask = check_where(
            func, where, arr.shape, f"x with shape {arr.shape}", expand=True, weights=b
        )
        # A mask is a weight of 0 or 1: one mechanism, the one b already has. Its weights
        # take x's result dtype, so that the mask alone does not change the result's dtype.
        weights = as_input_array(func, "b", np.ones((), dtype=x_result) if b is None else b)
        b = np.where(mask, weights, np.zeros((), dtype=weights.dtype))
    barr = None
    if b is not None:
        barr = as_input_array(func, "b", b)
        compute_dtypes(func, "b", barr.dtype)
        try:
            shape = np.broadcast_shapes(arr.shape, barr.shape)
        except ValueError:
            raise ValueError(
                f"{func}(): b with shape {barr.shape} cannot be broadcast to x with shape "
                f"{arr.shape}"
            ) from None
        arr = np.broadcast_to(arr, shape)
        barr = np.broadcast_to(barr, shape)
        dtype = np.result_type(arr.dtype, barr.dtype)
    else:
        dtype = arr.dtype
    compute, result_dtype = compute_dtypes(func, "x", dtype)
    axes = reduction_axes(func, axis, arr.ndim)
    final_shape = reduced_shape(arr.shape, axes, keepdims)
    if arr.ndim == 0:
        arr = arr.reshape(1)
        barr = None if barr is None else barr.reshape(1)

    outs: tuple[Any, Any] = (None, None)
    if out is not None:
        if return_sign:
            if not (isinstance(out, tuple) and len(out) == 2):
                raise TypeError(
                    f"{func}(): with return_sign=True, out must be a pair of arrays "
                    "(value_out, sign_out)"
                )
            outs = (
                check_out(func, out[0], final_shape, result_dtype, "out[0]"),
                check_out(func, out[1], final_shape, result_dtype, "out[1]"),
            )
        else:
            outs = (check_out(func, out, final_shape, result_dtype), None)

    # float16/bfloat16 rows go to the kernels as they are; the values come in float32
    storage = kernel_dtype(compute, result_dtype)
    xv = native_ready(rows_view(arr, axes), storage)
    bv = None if barr is None else native_ready(rows_view(barr, axes), storage)
    value = np.empty(xv.shape[:-1], dtype=compute)
    sign = np.empty(xv.shape[:-1], dtype=compute) if return_sign else None
    _core.logsumexp(xv, bv, value, sign, current_isa_index(), nthreads)

    if return_sign:
        assert sign is not None
        return (
            finish(value.reshape(final_shape), result_dtype, outs[0]),
            finish(sign.reshape(final_shape), result_dtype, outs[1]),
        )
    return finish(value.reshape(final_shape), result_dtype, outs[0])


def entropy_from_logits(
    z: ArrayLike,
    axis: int = -1,
    *,
    base: float | None = None,
    keepdims: bool = False,
    where: ArrayLike | None = None,
    threads: int | None = None,
) -> Any:
    r"""Entropy of ``softmax(z)`` along ``axis``, from the logits in one read.

    .. math:: H = -\sum_j p_j \log p_j = \operatorname{lse}(z) - \sum_j p_j z_j,
              \quad p = \operatorname{softmax}(z)

    computed as ``log(sum) + sum(e * (m - z)) / sum`` with ``e = exp(z - m)``: no per-element
    log, and every term non-negative, so a nearly one-hot distribution keeps its small
    entropy's precision.

    Parameters
    ----------
    z : array_like
        Logits, at least 1-d; dtypes as in :func:`softmax`.
    axis : int
        The class axis (a single axis). Default -1.
    base : float, optional
        The unit: None (or ``e``) for nats, 2 for bits, 10 for hartleys; the result is
        divided by ``log(base)``.
    keepdims : bool
        Keep the class axis with length 1.
    where : array_like of bool, optional
        Entries that take part (broadcast against ``z``); only they form the distribution.
        A row with nothing counted has entropy 0.
    threads : int, optional
        As in :func:`softmax`.

    Returns
    -------
    ndarray
        ``z``'s shape without the class axis; a NumPy scalar for 1-d ``z``.

    Notes
    -----
    Special rows: NaN gives NaN; ``k`` entries at ``+inf`` give ``log k`` (the entropy of the
    limit, uniform over them); a row of only ``-inf`` (no ``where``) gives NaN.

    Examples
    --------
    >>> import numpy as np
    >>> import logitkit as lk
    >>> float(lk.entropy_from_logits(np.zeros(8), base=2))
    3.0
    >>> z = np.array([2.0, 0.5, -1.0])
    >>> p = lk.softmax(z)
    >>> bool(np.isclose(lk.entropy_from_logits(z), -(p * np.log(p)).sum()))
    True
    """
    func = "entropy_from_logits"
    nthreads = check_threads(func, threads)
    keepdims = check_flag(func, "keepdims", keepdims)
    arr = as_input_array(func, "z", z)
    compute, result_dtype = compute_dtypes(func, "z", arr.dtype)
    if isinstance(axis, (tuple, list)) or axis is None:
        raise TypeError(f"{func}(): axis must be a single int, got {axis!r}")
    check_base(func, base)
    if arr.ndim == 0:
        # as the reference: a 0-d array has no class axis to form a distribution over
        raise ValueError(f"{func}(): z must have at least one dimension, the class axis")
    axes = normalize_axes(func, axis, arr.ndim)
    # float16/bfloat16 rows (and their mask) go to the kernels as they are
    storage = kernel_dtype(compute, result_dtype)
    mask = None if where is None else _mask_rows(func, where, arr.shape, axes, storage)
    xv = native_ready(rows_view(arr, axes), storage)
    value = np.empty(xv.shape[:-1], dtype=compute)
    _core.entropy(xv, mask, value, current_isa_index(), nthreads)
    if base is not None:
        value /= np.log(compute.type(base))
    return finish(keep_reduced(value, axes, keepdims), result_dtype)
