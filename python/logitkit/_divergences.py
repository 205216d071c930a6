"""KL and generalized Jensen-Shannon divergences between softmax distributions, from logits."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from . import _core
from ._elementwise import binary_op, entr, rel_entr
from ._rows import axis_back, class_rows, finish, reduction_axes
from ._runtime import current_isa_index
from ._storage import cast, kernel_dtype
from ._validation import (
    REDUCTIONS,
    as_input_array,
    check_base,
    check_class_axis,
    check_flag,
    check_real,
    check_reduction,
    check_threads,
    compute_dtypes,
    row_mask,
    upstream_scale,
)

__all__ = [
    "kl_div",
    "entropy",
    "kl_divergence_from_logits",
    "kl_divergence_from_logits_with_grad",
    "jensen_shannon_from_logits",
    "jensen_shannon_from_logits_with_grad",
]

_REDUCTIONS = REDUCTIONS + ("batchmean",)


def _divergence(
    func: str,
    p_logits: Any,
    q_logits: Any,
    axis: Any,
    beta: float,
    reduction: Any,
    where: Any,
    threads: Any,
    want_grad: bool,
    grad_output: Any,
) -> tuple[Any, NDArray[Any] | None, NDArray[Any] | None]:
    nthreads = check_threads(func, threads)
    a = as_input_array(func, "p_logits", p_logits)
    b = as_input_array(func, "q_logits", q_logits)
    compute_dtypes(func, "p_logits", a.dtype)
    compute_dtypes(func, "q_logits", b.dtype)
    compute, result = compute_dtypes(func, "p_logits", np.result_type(a.dtype, b.dtype))
    if a.shape != b.shape:
        raise ValueError(
            f"{func}(): p_logits and q_logits must have the same shape, got {a.shape} and {b.shape}"
        )
    ax = check_class_axis(func, axis, a.ndim, "the logits")
    check_reduction(func, reduction, _REDUCTIONS)
    rows_shape = a.shape[:ax] + a.shape[ax + 1 :]
    counted = row_mask(func, where, rows_shape)
    n_classes = a.shape[ax]
    if n_classes == 0:  # no class to form a distribution over (as the reference)
        raise ValueError(f"{func}(): the class axis {ax} of p_logits {a.shape} is empty")
    counted_flat = counted.reshape(-1)
    if reduction == "mean":
        denominator = float(np.count_nonzero(counted_flat))
    elif reduction == "batchmean":
        denominator = float(rows_shape[0]) if rows_shape else 1.0
    else:
        denominator = 1.0

    # beta = 0 and 1 are the forward and reverse KL; the kernel computes KL(first || second).
    swap = beta == 1.0
    first, second = (b, a) if swap else (a, b)
    compute = kernel_dtype(compute, result)  # float16/bfloat16 as they are
    first, second = class_rows(first, ax, compute), class_rows(second, ax, compute)
    code = -1.0 if beta in (0.0, 1.0) else beta
    value = np.empty(first.shape[0])
    grads: list[np.ndarray | None] = [None, None]
    scale = None
    if want_grad:
        scale = upstream_scale(func, grad_output, reduction, rows_shape, denominator)
        grads = [np.empty_like(first), np.empty_like(first)]
    _core.divergence(
        first, second, code, value, grads[0], grads[1], scale, current_isa_index(), nthreads
    )
    value = np.where(counted_flat, value, 0.0)
    # A row's divergence or a total beyond the result dtype's range (the kernels form them in
    # double) is inf, as the kernels' own results are, without NumPy's overflow warning; so
    # are inf - inf sums (NaN).
    if reduction == "none":
        with np.errstate(over="ignore"):
            res: Any = finish(value.reshape(rows_shape), result)
    else:
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            res = result.type(value.sum() / denominator)
    if not want_grad:
        return res, None, None
    if swap:
        grads.reverse()
    out = []
    for g_rows in grads:
        assert g_rows is not None
        g_rows[~counted_flat] = 0  # rows that do not count, NaN ones included
        shaped = g_rows.reshape(rows_shape + (n_classes,))
        out.append(axis_back(shaped, ax))  # computed in the result dtype
    return res, out[0], out[1]


def kl_divergence_from_logits(
    p_logits: ArrayLike,
    q_logits: ArrayLike,
    axis: int = -1,
    *,
    reduction: str = "none",
    where: ArrayLike | None = None,
    threads: int | None = None,
) -> Any:
    r"""``KL(P || Q)`` per row for ``P = softmax(p_logits)``, ``Q = softmax(q_logits)``.

    .. math:: \mathrm{KL}(P\,\|\,Q) = \sum_c P_c (\log P_c - \log Q_c)

    from the logits in one read of each: the log-probabilities are formed as
    ``(z - max) - log(sum)`` with the subtraction compensated, and a class with ``P_c = 0``
    adds 0. A row with NaN, ``+inf`` or only ``-inf`` logits on either side gives NaN.

    Parameters
    ----------
    p_logits, q_logits : array_like
        Logits of ``P`` and ``Q``, of one shape; dtypes as in :func:`logitkit.softmax`.
    axis : int
        The class axis. Default -1.
    reduction : {"none", "sum", "mean", "batchmean"}
        Over the rows: "none" (0 where not counted), "sum", "mean" (over the counted rows,
        NaN if none), or "batchmean" (the sum over the first axis of the rows, as PyTorch's
        ``kl_div``).
    where : array_like of bool, optional
        The rows that count, broadcast to the rows' shape.
    threads : int, optional
        Threads to use (default ``LOGITKIT_NUM_THREADS`` or all cores).

    Returns
    -------
    ndarray or NumPy scalar
        The rows' shape for "none", else a scalar.

    Examples
    --------
    >>> import numpy as np
    >>> import logitkit as lk
    >>> round(float(lk.kl_divergence_from_logits([0.0, 0.0], [0.0, np.log(3.0)])), 12)
    0.143841036226

    It is the cross-entropy of ``Q`` against the probabilities ``P``, less ``P``'s entropy:

    >>> p, q = np.array([1.0, 0.0, -1.0]), np.array([0.0, 0.5, 0.5])
    >>> ce = lk.cross_entropy(q, lk.softmax(p))
    >>> bool(np.isclose(lk.kl_divergence_from_logits(p, q), ce - lk.entropy_from_logits(p)))
    True
    """
    value, _, _ = _divergence(
        "kl_divergence_from_logits",
        p_logits,
        q_logits,
        axis,
        0.0,
        reduction,
        where,
        threads,
        False,
        None,
    )
    return value


def kl_divergence_from_logits_with_grad(
    p_logits: ArrayLike,
    q_logits: ArrayLike,
    axis: int = -1,
    *,
    reduction: str = "none",
    where: ArrayLike | None = None,
    grad_output: ArrayLike | None = None,
    threads: int | None = None,
) -> tuple[Any, NDArray[Any], NDArray[Any]]:
    r""":func:`kl_divergence_from_logits` and its gradients ``(value, grad_p, grad_q)``.

    .. math:: \frac{\partial\,\mathrm{KL}}{\partial q} = s\,(Q - P), \qquad
              \frac{\partial\,\mathrm{KL}}{\partial p} = s\,P \odot
              \big((\log P - \log Q) - \mathrm{KL}\big)

    per row, with ``s`` the upstream gradient over the reduction's denominator. Rows that
    do not count get zero gradients. At the maximum ``k`` of a confident ``P``
    (``P_k >= 1/2``) both formulas cancel, so those entries are formed as sums over the
    other classes, ``P_k sum_j P_j (d_k - d_j)`` with ``d = log P - log Q`` and, where ``k``
    is ``Q``'s maximum too, ``sum_{j != k} (P_j - Q_j)``: they keep their relative
    precision however close ``P_k`` is to 1.

    Parameters
    ----------
    grad_output : array_like, optional
        The upstream gradient: a scalar, or shaped like the rows for "none". Default 1.

    Other parameters are those of :func:`kl_divergence_from_logits`.

    Returns
    -------
    value : ndarray or NumPy scalar
        As :func:`kl_divergence_from_logits` returns it.
    grad_p, grad_q : ndarray
        Gradients with respect to ``p_logits`` and ``q_logits``, in their shape.

    Examples
    --------
    >>> import numpy as np
    >>> import logitkit as lk
    >>> p, q = np.array([[1.0, 0.0, -1.0]]), np.array([[0.0, 0.5, 0.5]])
    >>> value, grad_p, grad_q = lk.kl_divergence_from_logits_with_grad(p, q)
    >>> bool(np.allclose(grad_q, lk.softmax(q) - lk.softmax(p)))
    True
    >>> e = 1e-6 * np.eye(3)  # central differences in p
    >>> fd = [(lk.kl_divergence_from_logits(p + d, q) - lk.kl_divergence_from_logits(p - d, q))
    ...       / 2e-6 for d in e]
    >>> bool(np.allclose(grad_p, np.hstack(fd)))
    True
    """
    return _divergence(  # type: ignore[return-value]
        "kl_divergence_from_logits_with_grad",
        p_logits,
        q_logits,
        axis,
        0.0,
        reduction,
        where,
        threads,
        True,
        grad_output,
    )


def _check_beta(func: str, beta: Any) -> float:
    return check_real(func, "beta", beta, "in [0, 1]", lambda v: 0 <= v <= 1)


def jensen_shannon_from_logits(
    p_logits: ArrayLike,
    q_logits: ArrayLike,
    axis: int = -1,
    *,
    beta: float = 0.5,
    reduction: str = "none",
    where: ArrayLike | None = None,
    threads: int | None = None,
) -> Any:
    r"""Generalized Jensen-Shannon divergence of ``softmax(p_logits)`` and ``softmax(q_logits)``.

    For ``0 < beta < 1``, with the mixture ``M = beta P + (1 - beta) Q``:

    .. math:: \mathrm{JSD}_\beta = \beta\,\mathrm{KL}(P\,\|\,M) + (1-\beta)\,\mathrm{KL}(Q\,\|\,M)

    and by convention ``beta = 0`` is ``KL(P || Q)``, ``beta = 1`` is ``KL(Q || P)``: the
    generalized JSD of on-policy distillation as Liger-Kernel and TRL compute it (``P`` the
    teacher). ``beta = 1/2`` is the classical symmetric JSD, at most ``log 2``. ``log M`` is
    ``logaddexp(log beta + log P, log(1 - beta) + log Q)``.

    Parameters
    ----------
    p_logits, q_logits : array_like
        Logits of ``P`` and ``Q``, of one shape.
    axis : int
        The class axis. Default -1.
    beta : float in [0, 1]
        The weight of ``P`` in the mixture. Default 1/2.
    reduction, where, threads
        As in :func:`kl_divergence_from_logits`.

    Returns
    -------
    ndarray or NumPy scalar
        The rows' shape for "none", else a scalar.

    Examples
    --------
    >>> import logitkit as lk
    >>> round(float(lk.jensen_shannon_from_logits([0.0, -800.0], [-800.0, 0.0])), 12)
    0.69314718056
    """
    b = _check_beta("jensen_shannon_from_logits", beta)
    value, _, _ = _divergence(
        "jensen_shannon_from_logits",
        p_logits,
        q_logits,
        axis,
        b,
        reduction,
        where,
        threads,
        False,
        None,
    )
    return value


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
) -> tuple[Any, NDArray[Any], NDArray[Any]]:
    r""":func:`jensen_shannon_from_logits` and its gradients ``(value, grad_p, grad_q)``.

    .. math:: \frac{\partial\,\mathrm{JSD}_\beta}{\partial q} = s\,(1-\beta)\, Q \odot
              \big((\log Q - \log M) - \mathrm{KL}(Q\,\|\,M)\big)

    and symmetrically for ``p`` with ``beta`` (``M = beta P + (1 - beta) Q``; the terms
    through ``M`` cancel), ``s`` being the upstream gradient over the reduction's
    denominator. At ``beta = 0`` and ``1`` they are the gradients of
    :func:`kl_divergence_from_logits_with_grad`. As there, the entry at the maximum ``k``
    of a confident ``Q`` (``Q_k >= 1/2``) is formed as ``Q_k sum_j Q_j (g_k - g_j)``,
    ``g = (1 - beta) (log Q - log M)``, which does not cancel (and likewise for ``P``).

    Parameters
    ----------
    grad_output : array_like, optional
        The upstream gradient: a scalar, or shaped like the rows for "none". Default 1.

    Other parameters are those of :func:`jensen_shannon_from_logits`.

    Returns
    -------
    value : ndarray or NumPy scalar
        As :func:`jensen_shannon_from_logits` returns it.
    grad_p, grad_q : ndarray
        Gradients with respect to ``p_logits`` and ``q_logits``, in their shape.

    Examples
    --------
    >>> import numpy as np
    >>> import logitkit as lk
    >>> p, q = np.array([[1.0, 0.0, -1.0]]), np.array([[0.0, 0.5, 0.5]])
    >>> value, grad_p, grad_q = lk.jensen_shannon_from_logits_with_grad(p, q, beta=0.3)
    >>> e = 1e-6 * np.eye(3)  # central differences in q
    >>> fd = [(lk.jensen_shannon_from_logits(p, q + d, beta=0.3)
    ...        - lk.jensen_shannon_from_logits(p, q - d, beta=0.3)) / 2e-6 for d in e]
    >>> bool(np.allclose(grad_q, np.hstack(fd)))
    True
    """
    func = "jensen_shannon_from_logits_with_grad"
    b = _check_beta(func, beta)
    return _divergence(  # type: ignore[return-value]
        func, p_logits, q_logits, axis, b, reduction, where, threads, True, grad_output
    )


def kl_div(
    input: ArrayLike,
    target: ArrayLike,
    reduction: str = "mean",
    log_target: bool = False,
    *,
    threads: int | None = None,
) -> Any:
    r"""PyTorch's ``F.kl_div``: ``input`` holds log-probabilities ``log q``.

    .. math:: \ell = y\,(\log y - \log q), \quad \text{or } e^{y}\,(y - \log q)
              \text{ with } y \text{ given as a log (``log_target``)}

    pointwise, ``y`` being ``target``; a zero target adds 0 (PyTorch gives NaN where it
    meets ``input = -inf``). Summed over the classes, it is ``KL(y || q)``.

    Parameters
    ----------
    input : array_like
        Log-probabilities ``log q``.
    target : array_like
        Probabilities ``y`` (their logs with ``log_target``), broadcast against ``input``.
    reduction : {"mean", "sum", "none", "batchmean"}
        "mean" over all elements (as PyTorch does), "sum", the pointwise terms, or
        "batchmean": the sum over ``input.shape[0]``, the KL divergence per sample.
    log_target : bool
        ``target`` holds log-probabilities.
    threads : int, optional
        Threads to use (default ``LOGITKIT_NUM_THREADS`` or all cores).

    Returns
    -------
    ndarray or NumPy scalar
        The broadcast shape for "none", else a scalar.

    Examples
    --------
    >>> import numpy as np
    >>> import logitkit as lk
    >>> round(float(lk.kl_div(np.log([0.5, 0.5]), np.array([0.25, 0.75]), reduction="sum")), 12)
    0.130812035941
    """
    func = "kl_div"
    check_reduction(func, reduction, _REDUCTIONS)
    log_target = check_flag(func, "log_target", log_target)
    op = _core.OP_KL_DIV_TORCH_LOG_TARGET if log_target else _core.OP_KL_DIV_TORCH
    pointwise = binary_op(func, op, input, target, None, threads, names=("input", "target"))
    if reduction == "none":
        return pointwise
    values = np.asarray(pointwise)
    with np.errstate(invalid="ignore", over="ignore"):  # an overflowing total is inf
        total = float(np.sum(values, dtype=np.float64))
        if not np.isfinite(total) and values.dtype != np.float64:
            # A term beyond a narrower dtype's range rounds to +-inf, and two of opposite
            # signs sum to NaN where the true total is finite or one infinity: the terms
            # in float64, which holds the product of any two float32 values, decide it.
            wide_input = np.asarray(input, dtype=np.float64)
            wide_target = np.asarray(target, dtype=np.float64)
            wide = binary_op(func, op, wide_input, wide_target, None, threads)
            total = float(np.sum(wide, dtype=np.float64))
    if reduction == "mean":
        total = total / values.size if values.size else float("nan")
    elif reduction == "batchmean":
        # PyTorch divides by the input's first dimension, not the broadcast result's
        batch = np.shape(input)[0] if np.ndim(input) else 1
        total = total / batch if batch else float("nan")
    with np.errstate(over="ignore"):  # a total beyond the result dtype's range is inf
        return values.dtype.type(total)


def entropy(
    pk: ArrayLike,
    qk: ArrayLike | None = None,
    base: float | None = None,
    axis: int | tuple[int, ...] | None = 0,
    *,
    keepdims: bool = False,
    threads: int | None = None,
) -> Any:
    r"""Shannon entropy, or relative entropy, as ``scipy.stats.entropy``.

    .. math:: H(p) = -\sum_j p_j \log_b p_j, \qquad
              \mathrm{KL}(p\,\|\,q) = \sum_j p_j \log_b \frac{p_j}{q_j}

    ``pk`` (and ``qk``) are normalized to sum to 1 along ``axis`` first. For probabilities
    given as logits, see :func:`entropy_from_logits` and :func:`kl_divergence_from_logits`,
    which skip the logs.

    Parameters
    ----------
    pk : array_like
        Probabilities (or unnormalized non-negative weights).
    qk : array_like, optional
        A second distribution, broadcast against ``pk``: the result is then ``KL(p || q)``.
    base : float, optional
        The logarithm's base ``b``: None (or ``e``) for nats, 2 for bits, 10 for hartleys.
    axis : int, tuple of ints or None
        The axis (or axes) the distribution runs along. Default 0, as in SciPy.
    keepdims : bool
        Keep the reduced axes with length 1.
    threads : int, optional
        Threads to use (default ``LOGITKIT_NUM_THREADS`` or all cores).

    Returns
    -------
    ndarray or NumPy scalar
        The input's shape without ``axis``.

    Examples
    --------
    >>> import logitkit as lk
    >>> float(lk.entropy([0.5, 0.5], base=2))
    1.0
    >>> round(float(lk.entropy([0.25, 0.75], [0.5, 0.5])), 12)
    0.130812035941
    """
    func = "entropy"
    p = as_input_array(func, "pk", pk)
    compute_dtypes(func, "pk", p.dtype)
    check_base(func, base)
    keepdims = check_flag(func, "keepdims", keepdims)
    check_threads(func, threads)
    q = None
    if qk is not None:
        q = as_input_array(func, "qk", qk)
        compute_dtypes(func, "qk", q.dtype)
        try:
            shape = np.broadcast_shapes(p.shape, q.shape)
        except ValueError:
            raise ValueError(
                f"{func}(): qk with shape {q.shape} cannot be broadcast to pk with shape {p.shape}"
            ) from None
        p, q = np.broadcast_to(p, shape), np.broadcast_to(q, shape)
    compute, result = compute_dtypes(
        func, "pk", p.dtype if q is None else np.result_type(p.dtype, q.dtype)
    )
    axes = reduction_axes(func, axis, p.ndim)
    # Normalized and summed in float64 whatever the input: in float32 the sum of pk can
    # overflow (3e38 + 3e38) and a normalized qk can fall into the subnormals, losing bits.
    wide = np.dtype(np.float64)
    pa = cast(np.atleast_1d(p), wide)
    with np.errstate(invalid="ignore", divide="ignore"):
        pa = pa / pa.sum(axis=axes, keepdims=True)
        if q is None:
            terms = entr(pa, threads=threads)
        else:
            qa = cast(np.atleast_1d(q), wide)
            terms = rel_entr(pa, qa / qa.sum(axis=axes, keepdims=True), threads=threads)
        h = np.sum(terms, axis=axes, keepdims=keepdims)
        if base is not None:
            h = h / np.log(base)
    return finish(np.asarray(h), result)
