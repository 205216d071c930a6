"""Twins of :mod:`logitkit._losses`: cross-entropy, negative log-likelihood and binary
cross-entropy with logits."""

from __future__ import annotations

import operator
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ._common import (
    Result,
    check_choice,
    check_out,
    check_real,
    class_axis,
    finish,
    load,
    masked_sum,
    reduce_rows,
    result_dtype,
    row_mask,
    upstream_grad,
)
from ._reductions import row_softmax

__all__ = [
    "CrossEntropyStats",
    "cross_entropy",
    "cross_entropy_with_grad",
    "nll_loss",
    "binary_cross_entropy_with_logits",
    "binary_cross_entropy_with_logits_with_grad",
]

_ROW_REDUCTIONS = ("none", "mean", "sum")


def _class_weight(weight: ArrayLike | None, n_classes: int, func: str) -> NDArray[np.float64]:
    if weight is None:
        return np.ones(n_classes)
    w64, _ = load(weight, func, "weight")
    if w64.shape != (n_classes,):
        raise ValueError(
            f"{func}(): weight must be a vector of length {n_classes} (one per class), "
            f"got shape {w64.shape}"
        )
    return w64


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
        check_out(logits, shape, dtype, func, "logits")
        return logits
    check_out(grad_out, shape, dtype, func, "grad_out")
    return grad_out


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
    counted = row_mask(where, rows_shape, func)
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
        result_dtype(ta.dtype, func, "target")
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


class CrossEntropyStats(NamedTuple):
    """Per-row by-products of ``cross_entropy(..., return_stats=True)``.

    ``lse``: the logsumexp of each row of (soft-capped) logits, in the result
    dtype; ``argmax``: the first index of the row maximum of the logits
    (int64; the first NaN in a row holding one); ``correct``: whether
    ``argmax`` is the target class (for class probabilities, the first argmax
    of the target row), False in rows that do not count; ``accuracy``: the
    mean of ``correct`` over the rows that count, a float64 (NaN if none).
    Every per-row field has the shape of the rows, and covers all rows,
    counted or not::

        lse = log(sum(exp(z)))    argmax = argmax(z)
        accuracy = count(correct) / count(counted rows)

    Examples
    --------
    >>> z = np.array([[2.0, 0.5, -1.0], [0.1, 0.2, 3.0]])
    >>> loss, stats = cross_entropy(z, np.array([0, 1]), return_stats=True)
    >>> print(stats.argmax, stats.correct, stats.accuracy)
    [0 2] [ True False] 0.5
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
    x64, dtype = load(logits, func, "logits")
    ax = class_axis(axis, x64.ndim, func, "logits")
    n_classes = x64.shape[ax]
    if n_classes == 0:
        raise ValueError(f"{func}(): the class axis {ax} of logits {x64.shape} is empty")
    alpha = check_real(label_smoothing, func, "label_smoothing", "unit")
    check_choice(smoothing, ("pytorch", "megatron"), func, "smoothing")
    zl = check_real(z_loss, func, "z_loss", "nonnegative")
    cap = None if softcap is None else check_real(softcap, func, "softcap", "cap")
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
    logp, p, lse = row_softmax(zc)

    if tg.soft:
        y = tg.probs
    else:
        y = np.zeros(z.shape)
        np.put_along_axis(y, tg.classes[..., None], 1.0, axis=-1)
    if alpha:
        y = (1.0 - alpha) * y + alpha / n_classes
    coef = w * y

    with np.errstate(all="ignore"):
        row_loss = 0.0 - masked_sum(logp, coef)
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
        lse=finish(parts.lse, parts.dtype, None),
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
    check_choice(reduction, _ROW_REDUCTIONS, func, "reduction")
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
    loss = finish(reduce_rows(parts.row_loss, reduction, parts.targets.denom), parts.dtype, None)
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
        result dtype of ``logits`` (the ``out=`` rules of ``logitkit.reference``).
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
    check_choice(reduction, _ROW_REDUCTIONS, func, "reduction")
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
    upstream = upstream_grad(grad_output, reduction, tg.counted.shape, func)
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
    loss = finish(reduce_rows(parts.row_loss, reduction, tg.denom), parts.dtype, None)
    grad = finish(np.moveaxis(g, -1, parts.axis), parts.dtype, destination, keep_array=True)
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
) -> Result:
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
    check_choice(reduction, _ROW_REDUCTIONS, func, "reduction")
    x64, dtype = load(log_probs, func, "log_probs")
    ax = class_axis(axis, x64.ndim, func, "log_probs")
    n_classes = x64.shape[ax]
    if n_classes == 0:
        raise ValueError(f"{func}(): the class axis {ax} of log_probs {x64.shape} is empty")
    w = _class_weight(weight, n_classes, func)
    tg = _targets(target, x64.shape, ax, w, ignore_index, where, func, "log_probs")
    lp = np.moveaxis(x64, ax, -1)
    with np.errstate(all="ignore"):
        if tg.soft:
            row_loss = 0.0 - masked_sum(lp, w * tg.probs)
        else:
            picked = np.take_along_axis(lp, tg.classes[..., None], axis=-1)[..., 0]
            row_loss = 0.0 - w[tg.classes] * picked
    row_loss = np.where(tg.counted, row_loss, 0.0)
    return finish(reduce_rows(row_loss, reduction, tg.denom), dtype, None)


def _bce_parts(
    func: str,
    logits: ArrayLike,
    target: ArrayLike,
    weight: ArrayLike | None,
    pos_weight: ArrayLike | None,
    label_smoothing: Any,
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64], np.dtype[Any]]:
    """``(x, c_pos, c_neg, dtype)``: the loss is ``c_pos softplus(-x) + c_neg softplus(x)``."""
    x, dtype = load(logits, func, "logits")
    ta = np.asarray(target)
    y, _ = load(ta, func, "target")
    if y.shape != x.shape:
        raise ValueError(f"{func}(): target must have the shape of logits {x.shape}, got {y.shape}")
    alpha = check_real(label_smoothing, func, "label_smoothing", "unit")
    if alpha:
        y = y * (1.0 - alpha) + alpha / 2.0

    def along(arg: ArrayLike | None, name: str) -> NDArray[np.float64]:
        if arg is None:
            return np.ones(x.shape)
        a64, _ = load(arg, func, name)
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
) -> Result:
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
    check_choice(reduction, _ROW_REDUCTIONS, func, "reduction")
    x, c_pos, c_neg, dtype = _bce_parts(func, logits, target, weight, pos_weight, label_smoothing)
    loss = _bce_loss(x, c_pos, c_neg)
    return finish(reduce_rows(loss, reduction, float(loss.size)), dtype, None)


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
) -> tuple[Result, NDArray[Any]]:
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
    check_choice(reduction, _ROW_REDUCTIONS, func, "reduction")
    x, c_pos, c_neg, dtype = _bce_parts(func, logits, target, weight, pos_weight, label_smoothing)
    upstream = upstream_grad(grad_output, reduction, x.shape, func)
    loss = _bce_loss(x, c_pos, c_neg)
    with np.errstate(all="ignore"):
        e = np.exp(-np.abs(x))
        sig = np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))  # sigmoid(x)
        sig_neg = np.where(x >= 0, e / (1.0 + e), 1.0 / (1.0 + e))  # sigmoid(-x)
        g = np.where(c_neg != 0, c_neg * sig, 0.0) - np.where(c_pos != 0, c_pos * sig_neg, 0.0)
        scale = upstream / x.size if reduction == "mean" else upstream
        g = g * scale
    total = finish(reduce_rows(loss, reduction, float(loss.size)), dtype, None)
    return total, finish(np.asarray(g), dtype, None, keep_array=True)
