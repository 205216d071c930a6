"""Twins of :mod:`logitkit._divergences`: entropy and divergences of probability vectors
(SciPy and PyTorch semantics) and of logits."""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ._common import (
    Axis,
    Result,
    as_rows,
    check_choice,
    check_real,
    class_axis,
    entr64,
    finish,
    load,
    load_pair,
    masked_sum,
    normalize_axes,
    reduce_rows,
    rel_entr64,
    row_mask,
    upstream_grad,
)
from ._reductions import row_softmax

__all__ = [
    "entropy",
    "kl_div",
    "kl_divergence_from_logits",
    "kl_divergence_from_logits_with_grad",
    "jensen_shannon_from_logits",
    "jensen_shannon_from_logits_with_grad",
]

_KL_REDUCTIONS = ("none", "sum", "mean", "batchmean")


def entropy(
    pk: ArrayLike,
    qk: ArrayLike | None = None,
    base: float | None = None,
    axis: Axis = 0,
    *,
    keepdims: bool = False,
    threads: int | None = None,
) -> Result:
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
    :func:`logsumexp`, and the result dtype follows the table of ``logitkit.reference``
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
        b = check_real(base, func, "base", "base")
    if qk is None:
        p64, dtype = load(pk, func, "pk")
        q64 = None
    else:
        p64, q64, dtype = load_pair(pk, qk, func, "pk", "qk", broadcast=True)
    axes = normalize_axes(axis, p64.ndim, func)
    if p64.ndim == 0:
        out_shape: tuple[int, ...] = ()
    elif keepdims:
        out_shape = tuple(1 if i in axes else n for i, n in enumerate(p64.shape))
    else:
        out_shape = tuple(n for i, n in enumerate(p64.shape) if i not in axes)
    with np.errstate(all="ignore"):
        p = as_rows(p64)
        p = p / np.sum(p, axis=axes, keepdims=True)
        if q64 is None:
            terms = entr64(p)
        else:
            q = as_rows(q64)
            terms = rel_entr64(p, q / np.sum(q, axis=axes, keepdims=True))
        res = np.sum(terms, axis=axes, keepdims=True).reshape(out_shape)
        if base is not None:
            res = res / np.log(b)
    return finish(res, dtype, None)


def kl_div(
    input: ArrayLike,
    target: ArrayLike,
    reduction: str = "mean",
    log_target: bool = False,
    *,
    threads: int | None = None,
) -> Result:
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
    of ``np.result_type(input, target)`` under the table of ``logitkit.reference``.

    Examples
    --------
    >>> logq = np.log([[0.5, 0.5], [0.9, 0.1]])
    >>> p = np.array([[0.5, 0.5], [0.5, 0.5]])
    >>> print(kl_div(logq, p, reduction="batchmean"))
    0.25541281188299525
    """
    func = "kl_div"
    check_choice(reduction, _KL_REDUCTIONS, func, "reduction")
    x64, t64, dtype = load_pair(input, target, func, "input", "target", broadcast=True)
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
    return finish(res, dtype, None)


def _reduce_divergence(
    rows: NDArray[np.float64], counted: NDArray[np.bool_], reduction: str
) -> NDArray[np.float64]:
    rows = np.where(counted, rows, 0.0)
    if reduction == "none":
        return rows
    return reduce_rows(rows, "mean", _divergence_denominator(counted, reduction))


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
    a64, b64, dtype = load_pair(p_logits, q_logits, func, "p_logits", "q_logits", broadcast=False)
    ax = class_axis(axis, a64.ndim, func, "p_logits")
    if a64.shape[ax] == 0:  # no class to form a distribution over
        raise ValueError(f"{func}(): the class axis {ax} of p_logits {a64.shape} is empty")
    rows_shape = a64.shape[:ax] + a64.shape[ax + 1 :]
    counted = row_mask(where, rows_shape, func)
    pa, qa = np.moveaxis(a64, ax, -1), np.moveaxis(b64, ax, -1)
    logp, p, _ = row_softmax(pa)
    logq, q, _ = row_softmax(qa)
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
        return masked_sum(logp - logq, p)


def _kl_grads(
    logp: NDArray[np.float64],
    p: NDArray[np.float64],
    logq: NDArray[np.float64],
    q: NDArray[np.float64],
    kl: NDArray[np.float64],
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Gradients of ``KL(softmax(a) || softmax(b))`` per row, with respect to ``a`` and ``b``."""
    with np.errstate(all="ignore"):
        d = logp - logq
        grad_a = np.where(p != 0, p * (d - kl[..., None]), 0.0)
        grad_b = q - p
        # At the maximum k of a confident P (p_k >= 1/2), d_k - KL and q_k - p_k are far
        # smaller than the terms they are formed from. They equal sums over the other
        # entries, which keep their precision: d_k - KL = sum_j p_j (d_k - d_j) and, where
        # k is Q's maximum too, q_k - p_k = sum_{j != k} (p_j - q_j).
        k = np.argmax(p, axis=-1)[..., None]
        p_k = np.take_along_axis(p, k, axis=-1)
        d_k = np.take_along_axis(d, k, axis=-1)
        others = np.arange(p.shape[-1]) != k
        gap = np.sum(np.where(others & (p != 0), p * (d_k - d), 0.0), axis=-1, keepdims=True)
        confident = (p_k >= 0.5) & np.isfinite(kl[..., None])
        at_k = np.take_along_axis(grad_a, k, axis=-1)
        np.put_along_axis(grad_a, k, np.where(confident, p_k * gap, at_k), -1)
        q_top = np.argmax(q, axis=-1)[..., None] == k
        q_gap = np.sum(np.where(others, p - q, 0.0), axis=-1, keepdims=True)
        at_k = np.take_along_axis(grad_b, k, axis=-1)
        np.put_along_axis(grad_b, k, np.where(confident & q_top, q_gap, at_k), -1)
        # A NaN row must stay NaN even where p rounds to 0.
        grad_a = np.where(np.isnan(kl)[..., None], np.nan, grad_a)
    return grad_a, grad_b


def _divergence_with_grad(
    func: str,
    parts: _PairParts,
    rows: NDArray[np.float64],
    grad_p: NDArray[np.float64],
    grad_q: NDArray[np.float64],
    reduction: str,
    grad_output: ArrayLike | None,
) -> tuple[Result, NDArray[Any], NDArray[Any]]:
    counted = parts.counted
    upstream = upstream_grad(grad_output, reduction, counted.shape, func)
    with np.errstate(all="ignore"):
        scale = np.broadcast_to(
            upstream / _divergence_denominator(counted, reduction), counted.shape
        )
        keep = counted[..., None]
        gp = np.where(keep, grad_p * scale[..., None], 0.0)
        gq = np.where(keep, grad_q * scale[..., None], 0.0)
    loss = finish(_reduce_divergence(rows, counted, reduction), parts.dtype, None)
    return (
        loss,
        finish(np.moveaxis(gp, -1, parts.axis), parts.dtype, None, keep_array=True),
        finish(np.moveaxis(gq, -1, parts.axis), parts.dtype, None, keep_array=True),
    )


def kl_divergence_from_logits(
    p_logits: ArrayLike,
    q_logits: ArrayLike,
    axis: int = -1,
    *,
    reduction: str = "none",
    where: ArrayLike | None = None,
    threads: int | None = None,
) -> Result:
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
    table of ``logitkit.reference``.

    Examples
    --------
    >>> print(f"{kl_divergence_from_logits([0.0, 0.0], [0.0, np.log(3.0)]):.12f}")
    0.143841036226
    """
    func = "kl_divergence_from_logits"
    check_choice(reduction, _KL_REDUCTIONS, func, "reduction")
    parts = _pair_parts(func, p_logits, q_logits, axis, where)
    rows = _kl_rows(parts.logp, parts.p, parts.logq)
    return finish(_reduce_divergence(rows, parts.counted, reduction), parts.dtype, None)


def kl_divergence_from_logits_with_grad(
    p_logits: ArrayLike,
    q_logits: ArrayLike,
    axis: int = -1,
    *,
    reduction: str = "none",
    where: ArrayLike | None = None,
    grad_output: ArrayLike | None = None,
    threads: int | None = None,
) -> tuple[Result, NDArray[Any], NDArray[Any]]:
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
    check_choice(reduction, _KL_REDUCTIONS, func, "reduction")
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
) -> Result:
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
    check_choice(reduction, _KL_REDUCTIONS, func, "reduction")
    b = check_real(beta, func, "beta", "unit")
    parts = _pair_parts(func, p_logits, q_logits, axis, where)
    rows, _, _ = _jsd_parts(parts, b)
    return finish(_reduce_divergence(rows, parts.counted, reduction), parts.dtype, None)


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
) -> tuple[Result, NDArray[Any], NDArray[Any]]:
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
    check_choice(reduction, _KL_REDUCTIONS, func, "reduction")
    b = check_real(beta, func, "beta", "unit")
    parts = _pair_parts(func, p_logits, q_logits, axis, where)
    rows, grad_p, grad_q = _jsd_parts(parts, b)
    return _divergence_with_grad(func, parts, rows, grad_p, grad_q, reduction, grad_output)
