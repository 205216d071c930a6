"""Pure-NumPy twins of the partial-statistics functions (:func:`logitkit.partial_logsumexp`,
:func:`logitkit.partial_entropy`, :func:`logitkit.partial_cross_entropy`).

Each shard is converted to float64 and reduced with :mod:`logitkit.reference` or plain
float64 NumPy, so the partials carry no rounding of the input's dtype: they are the oracle
the native partials and their merge are tested against. The partials are the same
dataclasses, merged by the same code (:mod:`logitkit._mergeable`, NumPy only).
"""

from __future__ import annotations

import operator

import numpy as np
from numpy.typing import ArrayLike

from .._mergeable import CrossEntropyPartial, EntropyPartial, LogSumExpPartial
from ._common import class_axis, result_dtype
from ._reductions import entropy_from_logits, logsumexp

__all__ = ["partial_logsumexp", "partial_entropy", "partial_cross_entropy"]


def _rows(func: str, x: ArrayLike, axis: int) -> tuple[np.ndarray, np.dtype]:
    arr = np.asarray(x)
    dtype = result_dtype(arr.dtype, func, "x")
    if arr.ndim == 0:
        raise ValueError(f"{func}(): x must have a class axis, got a 0-d array")
    ax = class_axis(axis, arr.ndim, func, "x")
    return np.moveaxis(arr.astype(np.float64), ax, -1), dtype


def partial_logsumexp(x: ArrayLike, axis: int = -1) -> LogSumExpPartial:
    """Twin of :func:`logitkit.partial_logsumexp`, in float64.

    ``lse_S = log(sum(exp(x_c) for c in S))`` over the shard's classes ``S``.

    Examples
    --------
    >>> x = np.array([[1.0, 2.0, 3.0, 4.0], [0.0, 0.0, -1.0, 5.0]])
    >>> merged = partial_logsumexp(x[:, :2]).merge(partial_logsumexp(x[:, 2:]))
    >>> print(np.allclose(merged.finalize(), logsumexp(x), rtol=1e-15))
    True
    """
    rows, dtype = _rows("partial_logsumexp", x, axis)
    return LogSumExpPartial(np.asarray(logsumexp(rows, axis=-1), dtype=np.float64), dtype)


def partial_entropy(x: ArrayLike, axis: int = -1) -> EntropyPartial:
    """Twin of :func:`logitkit.partial_entropy`, in float64.

    ``lse_S`` as in :func:`partial_logsumexp` and ``H_S = -sum(p_c log p_c)`` with
    ``p_c = exp(x_c - lse_S)``: the entropy of the softmax restricted to the shard.

    Examples
    --------
    >>> x = np.array([[1.0, 2.0, 3.0, 4.0], [0.0, 0.0, -1.0, 5.0]])
    >>> merged = partial_entropy(x[:, :1]).merge(partial_entropy(x[:, 1:]))
    >>> print(np.allclose(merged.finalize(), entropy_from_logits(x), rtol=1e-14))
    True
    """
    rows, dtype = _rows("partial_entropy", x, axis)
    lse = np.asarray(logsumexp(rows, axis=-1), dtype=np.float64)
    h = np.asarray(entropy_from_logits(rows, axis=-1), dtype=np.float64)
    return EntropyPartial(lse, h, dtype)


def partial_cross_entropy(
    logits: ArrayLike,
    target: ArrayLike,
    *,
    class_offset: int = 0,
    weight: ArrayLike | None = None,
    ignore_index: int = -100,
    softcap: float | None = None,
    label_smoothing: bool = False,
    axis: int = -1,
) -> CrossEntropyPartial:
    """Twin of :func:`logitkit.partial_cross_entropy`: every statistic from its definition,
    in float64.

    ``lse_S`` over the shard's classes ``S``, the target logit ``z_t`` where ``t`` is in
    ``S``, and ``smooth_S = sum(w_c (lse_S - z_c) for c in S)``.

    Examples
    --------
    >>> from logitkit.reference import cross_entropy
    >>> x = np.array([[1.0, 2.0, 3.0, 4.0], [0.0, 0.0, -1.0, 5.0]])
    >>> t = np.array([3, 1])
    >>> left = partial_cross_entropy(x[:, :2], t, label_smoothing=True)
    >>> right = partial_cross_entropy(x[:, 2:], t, class_offset=2, label_smoothing=True)
    >>> loss = left.merge(right).finalize(label_smoothing=0.1)
    >>> print(np.isclose(loss, cross_entropy(x, t, label_smoothing=0.1), rtol=1e-14))
    True
    """
    func = "partial_cross_entropy"
    z, dtype = _rows(func, logits, axis)
    offset = operator.index(class_offset)
    rows_shape, n = z.shape[:-1], z.shape[-1]
    t = np.asarray(target).astype(np.int64)
    if t.shape != rows_shape:
        raise ValueError(f"{func}(): target must have shape {rows_shape}, got {t.shape}")
    w = np.ones(n) if weight is None else np.asarray(weight, dtype=np.float64)
    if softcap is not None:
        z = float(softcap) * np.tanh(z / float(softcap))
    counted = t != ignore_index
    local = t - offset
    found = counted & (local >= 0) & (local < n)
    idx = np.where(found, local, 0)
    if n:
        lse = np.asarray(logsumexp(z, axis=-1), dtype=np.float64)
        with np.errstate(invalid="ignore"):
            smooth = ((lse[..., None] - z) * w).sum(axis=-1)
        argmax = np.argmax(z, axis=-1)
        max_logit = np.take_along_axis(z, argmax[..., None], axis=-1)[..., 0]
        zt = np.take_along_axis(z, idx[..., None], axis=-1)[..., 0]
        wt = w[idx]
    else:
        lse = np.full(rows_shape, -np.inf)
        smooth = zt = wt = np.zeros(rows_shape)
        argmax = np.full(rows_shape, np.iinfo(np.int64).max - offset)
        max_logit = np.full(rows_shape, -np.inf)
    return CrossEntropyPartial(
        lse=lse,
        target_logit=np.where(found, zt, 0.0),
        target_weight=np.where(found, wt, 0.0),
        found=found,
        target=t,
        counted=counted,
        smooth=smooth if label_smoothing else None,
        weight_total=float(w.sum()),
        n_classes=n,
        max_logit=max_logit,
        argmax=argmax.astype(np.int64) + offset,
        dtype=dtype,
    )
