"""Partial statistics of a shard of classes, computed by logitkit's kernels.

See :mod:`logitkit._mergeable` for the partials, their merge and its guarantees.
"""

from __future__ import annotations

import operator
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from ._losses import cross_entropy, target_weights
from ._mergeable import CrossEntropyPartial, EntropyPartial, LogSumExpPartial
from ._reductions import entropy_from_logits, logsumexp
from ._storage import cast
from ._validation import (
    as_input_array,
    check_class_input,
    check_class_weight,
    check_flag,
    check_index,
    check_index_target,
    check_softcap,
    compute_dtypes,
)

__all__ = ["partial_logsumexp", "partial_entropy", "partial_cross_entropy"]


def _computable(arr: np.ndarray) -> np.ndarray:
    """float16/bfloat16 widened to float32, so the shard statistics are not rounded to 16
    bits before the merge (the unsharded call rounds only its final result)."""
    compute, result = compute_dtypes("", "", arr.dtype)
    return cast(arr, compute) if compute != result else arr


def _to_rows(func: str, x: Any, axis: Any) -> tuple[np.ndarray, int, np.dtype]:
    arr, ax, _, result = check_class_input(func, "x", x, axis)
    return arr, ax, result


def partial_logsumexp(x: ArrayLike, axis: int = -1) -> LogSumExpPartial:
    r"""The :class:`LogSumExpPartial` of the rows of ``x`` (a shard of their classes).

    .. math:: \mathrm{lse}_S = \log \sum_{c \in S} e^{x_c}

    over the shard's classes ``S``, in float64, from logitkit's kernels.

    Parameters
    ----------
    x : array_like
        The shard: the rows' logits at some of their classes.
    axis : int
        The class axis. Default -1.

    Returns
    -------
    LogSumExpPartial

    Examples
    --------
    >>> import numpy as np
    >>> import logitkit as lk
    >>> x = np.array([[1.0, 2.0, 3.0, 4.0]])
    >>> p = lk.merge_partials(lk.partial_logsumexp(x[:, :1]), lk.partial_logsumexp(x[:, 1:]))
    >>> bool(np.isclose(p.finalize()[0], lk.logsumexp(x)[0], rtol=1e-15))
    True
    """
    func = "partial_logsumexp"
    arr, ax, result = _to_rows(func, x, axis)
    lse = np.asarray(logsumexp(_computable(arr), axis=ax), dtype=np.float64)
    return LogSumExpPartial.from_lse(lse, result)


def partial_entropy(x: ArrayLike, axis: int = -1) -> EntropyPartial:
    r"""The :class:`EntropyPartial` of the rows of ``x`` (a shard of their classes).

    .. math:: \mathrm{lse}_S = \log \sum_{c \in S} e^{x_c}, \qquad
              H_S = -\sum_{c \in S} p_c \log p_c, \quad p_c = e^{x_c - \mathrm{lse}_S}

    the entropy of the softmax restricted to the shard's classes ``S``, in float64.

    Parameters
    ----------
    x : array_like
        The shard: the rows' logits at some of their classes.
    axis : int
        The class axis. Default -1.

    Returns
    -------
    EntropyPartial

    Examples
    --------
    >>> import numpy as np
    >>> import logitkit as lk
    >>> x = np.array([[0.0, 0.0, 0.0, 0.0]])
    >>> halves = lk.partial_entropy(x[:, :2]), lk.partial_entropy(x[:, 2:])
    >>> float(lk.merge_partials(*halves).finalize(base=2)[0])  # four equal classes: 2 bits
    2.0
    """
    func = "partial_entropy"
    arr, ax, result = _to_rows(func, x, axis)
    arr = _computable(arr)
    lse = np.asarray(logsumexp(arr, axis=ax), dtype=np.float64)
    if arr.shape[ax] == 0:
        h = np.zeros(lse.shape)
    else:
        h = np.asarray(entropy_from_logits(arr, axis=ax), dtype=np.float64)
    return EntropyPartial.from_rows(lse, h, result)


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
    r"""The :class:`CrossEntropyPartial` of a shard of classes.

    ``logits`` holds classes ``class_offset .. class_offset + C_shard - 1`` of every row
    (class axis ``axis``); ``target`` holds the *global* class index of each row (shape: the
    rows), or ``ignore_index``. ``weight``, when given, is the shard's slice of the class
    weights (length ``C_shard``). Targets outside the shard are simply not found here; a
    counted row whose target no merged shard holds raises IndexError when the loss
    is asked for. ``label_smoothing=True`` also gathers the terms smoothing needs (one more
    sum per row, computed in the same kernel pass).

    .. math:: \mathrm{lse}_S = \log \sum_{c \in S} e^{z_c}, \quad
              z_t \text{ if } t \in S, \quad
              \mathrm{smooth}_S = \sum_{c \in S} w_c (\mathrm{lse}_S - z_c)

    over the shard's classes ``S`` (with ``z`` capped first when ``softcap`` is given).

    Parameters
    ----------
    logits : array_like
        The shard: classes ``class_offset`` to ``class_offset + C_shard - 1`` of every row.
    target : array_like of int
        Global class indices, one per row, or ``ignore_index``.
    class_offset : int
        The global index of the shard's first class. Default 0.
    weight : array_like, optional
        The shard's slice of the class weights.
    ignore_index : int
        Rows whose target equals it do not count. Default -100.
    softcap : float, optional
        Logits become ``softcap * tanh(z / softcap)`` first, as in
        :func:`logitkit.cross_entropy`.
    label_smoothing : bool
        Also gather the smoothing sum (needed to finalize with ``label_smoothing > 0``).
    axis : int
        The class axis. Default -1.

    Returns
    -------
    CrossEntropyPartial

    Examples
    --------
    >>> import numpy as np
    >>> import logitkit as lk
    >>> z = np.array([[2.0, 0.5, -1.0], [0.1, 0.2, 3.0]])
    >>> t = np.array([0, 2])
    >>> parts = [lk.partial_cross_entropy(z[:, :2], t),
    ...          lk.partial_cross_entropy(z[:, 2:], t, class_offset=2)]
    >>> round(float(lk.merge_partials(*parts).finalize()), 12)
    0.175456380589
    """
    func = "partial_cross_entropy"
    z, ax, _, result = check_class_input(func, "logits", logits, axis)
    try:
        offset = operator.index(class_offset)
    except TypeError:
        raise TypeError(
            f"{func}(): class_offset must be an int, got {type(class_offset).__name__}"
        ) from None
    if isinstance(class_offset, bool) or offset < 0:
        raise ValueError(f"{func}(): class_offset must be a non-negative int, got {class_offset}")
    zr = _computable(np.moveaxis(z, ax, -1))
    rows_shape, n = zr.shape[:-1], zr.shape[-1]
    t = as_input_array(func, "target", target)
    check_index_target(func, t, rows_shape, "logits without the class axis")
    w = None
    if weight is not None:
        w_arr = check_class_weight(func, weight, n, "one per class of the shard")
        w = np.asarray(w_arr, dtype=np.float64)
    label_smoothing = check_flag(func, "label_smoothing", label_smoothing)
    ignore_index = check_index(func, "ignore_index", ignore_index)
    softcap = check_softcap(func, softcap)

    counted = np.asarray(t != ignore_index)
    t64 = t.astype(np.int64)
    local = t64 - offset
    found = counted & (local >= 0) & (local < n)
    weight_total = float(n if w is None else w.sum())
    if n == 0:
        empty = np.zeros(rows_shape)
        return CrossEntropyPartial.from_rows(
            lse=np.full(rows_shape, -np.inf),
            target_logit=empty,
            target_weight=empty,
            found=found,
            target=t64,
            counted=counted,
            smooth=empty if label_smoothing else None,
            weight_total=0.0,
            n_classes=0,
            max_logit=np.full(rows_shape, -np.inf),
            argmax=np.full(rows_shape, np.iinfo(np.int64).max),
            dtype=result,
        )

    # One kernel pass gives the lse, the argmax and, with label smoothing 1 against a dummy
    # target, (1/C) sum_c w_c (lse - z_c): the smoothing sum without cancellation.
    loss, stats = cross_entropy(
        zr,
        np.zeros(rows_shape, dtype=np.int64),
        weight=w,
        reduction="none",
        label_smoothing=1.0 if label_smoothing else 0.0,
        softcap=softcap,
        return_stats=True,
    )
    lse = np.asarray(stats.lse, dtype=np.float64)
    smooth = None
    if label_smoothing:
        # a row without mass here puts every class of the shard infinitely far below the
        # row's log-sum-exp: w_c * inf each, as the unsharded sum has them
        with np.errstate(invalid="ignore"):
            no_mass = np.inf if w is None else float(np.sum(w * np.inf))
        smooth = np.where(lse == -np.inf, no_mass, np.asarray(loss, dtype=np.float64) * n)
    argmax_local = np.asarray(stats.argmax, dtype=np.int64)
    max_logit = np.take_along_axis(zr, argmax_local[..., None], axis=-1)[..., 0]
    max_logit = np.asarray(max_logit, dtype=np.float64)
    if softcap is not None:
        max_logit = float(softcap) * np.tanh(max_logit / float(softcap))

    idx = np.where(found, local, 0)[..., None]
    zt = np.take_along_axis(zr, idx, axis=-1)[..., 0].astype(np.float64)
    if softcap is not None:
        zt = float(softcap) * np.tanh(zt / float(softcap))
    return CrossEntropyPartial.from_rows(
        lse=lse,
        target_logit=np.where(found, zt, 0.0),
        target_weight=target_weights(local, found, w),
        found=found,
        target=t64,
        counted=counted,
        smooth=smooth,
        weight_total=weight_total,
        n_classes=n,
        max_logit=max_logit,
        argmax=argmax_local + offset,
        dtype=result,
    )
