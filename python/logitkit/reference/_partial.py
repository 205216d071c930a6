"""Pure-NumPy twins of the partial-statistics functions (:func:`logitkit.partial_logsumexp`,
:func:`logitkit.partial_entropy`, :func:`logitkit.partial_cross_entropy`).

Each shard is converted to float64 and reduced with :mod:`logitkit.reference` or plain
float64 NumPy, so the partials carry no rounding of the input's dtype: they are the oracle
the native partials are tested against. The partials are the same dataclasses, merged by the
same code (:mod:`logitkit._mergeable`, NumPy only).

:func:`merge_partials` states what that merge computes, row by row with :func:`math.fsum`:
the merged partial of a set of shards, whatever the grouping (the vectorized exact
arithmetic of :mod:`logitkit._mergeable` must give it bit for bit).
"""

from __future__ import annotations

import math
import operator
from collections.abc import Iterable
from typing import Any, TypeVar

import numpy as np
from numpy.typing import ArrayLike

from .._mergeable import CrossEntropyPartial, EntropyPartial, LogSumExpPartial
from ._common import class_axis, result_dtype
from ._reductions import entropy_from_logits, logsumexp

__all__ = [
    "partial_logsumexp",
    "partial_entropy",
    "partial_cross_entropy",
    "merge_partials",
    "exact_sum",
]


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
    return LogSumExpPartial.from_lse(np.asarray(logsumexp(rows, axis=-1), dtype=np.float64), dtype)


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
    return EntropyPartial.from_rows(lse, h, dtype)


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
            # a row without mass: every class is infinitely below the merged log-sum-exp
            smooth = np.where(lse == -np.inf, (w * np.inf).sum(), smooth)
        argmax = np.argmax(z, axis=-1)
        max_logit = np.take_along_axis(z, argmax[..., None], axis=-1)[..., 0]
        zt = np.take_along_axis(z, idx[..., None], axis=-1)[..., 0]
        wt = w[idx]
    else:
        lse = np.full(rows_shape, -np.inf)
        smooth = zt = wt = np.zeros(rows_shape)
        argmax = np.full(rows_shape, np.iinfo(np.int64).max - offset)
        max_logit = np.full(rows_shape, -np.inf)
    return CrossEntropyPartial.from_rows(
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


def exact_sum(values: Iterable[float]) -> list[float]:
    """The canonical expansion of the exact sum of ``values``: ``c0`` the sum rounded to
    nearest, ``c1`` the rest rounded, and so on until nothing is left (``[0.0]`` for 0).

    With an inf or NaN among the values, their IEEE sum alone: no finite value changes it.

    Examples
    --------
    >>> from logitkit.reference_partial import exact_sum
    >>> exact_sum([1e16, 1.0, -1e16, 1e-20])
    [1.0, 1e-20]
    >>> exact_sum([1.0, -1.0])
    [0.0]
    """
    values = [float(v) for v in values]
    special = [v for v in values if not math.isfinite(v)]
    if special:
        return [sum(special)]
    out: list[float] = []
    while (c := math.fsum(values)) != 0.0:
        out.append(c)
        values.append(-c)
    return out or [0.0]


def _padded(rows: list[list[float]], shape: tuple[int, ...]) -> np.ndarray:
    """Expansions of every row (and level) as one array, zero-padded to the longest."""
    width = max(len(r) for r in rows)
    out = np.zeros((len(rows), width))
    for i, r in enumerate(rows):
        out[i, : len(r)] = r
    return out.reshape(shape + (width,))


def _level_sums(parts: tuple[Any, ...], name: str, level: np.ndarray) -> np.ndarray:
    """A per-level field of the merged partial: at each of the row's three levels K, K - 1,
    K - 2 (K the top one), the exact sum of what the partials hold at that level; shards
    further down are dropped."""
    n_levels = parts[0].mass.shape[-2]
    rows = []
    for idx in np.ndindex(level.shape):
        top = level[idx]
        by_level: list[list[float]] = [[] for _ in range(n_levels)]
        if math.isfinite(top):
            for p in parts:
                sums = getattr(p, name)[idx]
                for j in range(n_levels):
                    at = top - (p.level[idx] - j)  # where the partial's level j lands
                    if at in range(n_levels):
                        by_level[int(at)] += list(sums[j])
        rows += [exact_sum(values) for values in by_level]
    return _padded(rows, level.shape + (n_levels,))


P = TypeVar("P", LogSumExpPartial, EntropyPartial, CrossEntropyPartial)


def merge_partials(*parts: P) -> P:
    """Twin of :func:`logitkit.merge_partials`: the merged partial from its definition, all
    shards at once, row by row.

    The top level is the largest shard level (NaN and +inf rows stay so), the top shard the
    largest (level, offset, mass); the sums are exact and canonical (:func:`exact_sum`); the
    counts, flags and target fields add up or combine with "or"; the largest logit is the
    first NaN, else the largest value, the smallest class index on ties.

    Examples
    --------
    >>> import numpy as np
    >>> import logitkit as lk
    >>> from logitkit import reference_partial as ref
    >>> x = np.array([[1.0, 2.0, 3.0, 4.0], [0.0, 0.0, -1.0, 5.0]])
    >>> merged = ref.merge_partials(ref.partial_logsumexp(x[:, :2]),
    ...                             ref.partial_logsumexp(x[:, 2:]))
    >>> bool(np.allclose(merged.finalize(), lk.logsumexp(x), rtol=1e-15))
    True
    """
    first = parts[0]
    dtype = np.dtype(np.result_type(*(p.dtype for p in parts)))
    level = np.maximum.reduce([p.level for p in parts])
    level = np.where(np.isnan(level), np.nan, level)
    top = np.zeros(level.shape)
    top_mass = np.zeros(level.shape)
    for idx in np.ndindex(level.shape):
        if math.isfinite(level[idx]):
            best = max((p.level[idx], p.top[idx], p.top_mass[idx]) for p in parts)
            top[idx], top_mass[idx] = best[1], best[2]
    mass = _level_sums(parts, "mass", level)
    merged: Any
    if isinstance(first, LogSumExpPartial):
        merged = LogSumExpPartial(level, top, top_mass, mass, dtype)
    elif isinstance(first, EntropyPartial):
        es: list[Any] = list(parts)
        merged = EntropyPartial(
            level,
            top,
            top_mass,
            mass,
            moment=_level_sums(parts, "moment", level),
            n_inf=np.sum([p.n_inf for p in es], axis=0),
            undefined=np.logical_or.reduce([p.undefined for p in es]),
            dtype=dtype,
        )
    else:
        merged = _merge_cross_entropy(list(parts), level, top, top_mass, mass, dtype)
    return merged  # type: ignore[no-any-return]


def _merge_cross_entropy(
    parts: list[Any],
    level: np.ndarray,
    top: np.ndarray,
    top_mass: np.ndarray,
    mass: np.ndarray,
    dtype: np.dtype,
) -> CrossEntropyPartial:
    first = parts[0]
    max_logit = np.zeros(level.shape)
    argmax = np.zeros(level.shape, dtype=np.int64)
    smooth = []
    for idx in np.ndindex(level.shape):
        cands = [(p.max_logit[idx], p.argmax[idx]) for p in parts]
        nans = [c for c in cands if math.isnan(c[0])]
        # the first NaN, else the largest value and on ties the smallest index
        if nans:
            max_logit[idx], argmax[idx] = min(nans, key=lambda c: c[1])
        else:
            max_logit[idx], argmax[idx] = min(cands, key=lambda c: (-c[0], c[1]))
        if first.smooth is not None:
            smooth.append(exact_sum(c for p in parts for c in p.smooth[idx]))
    return CrossEntropyPartial(
        level=level,
        top=top,
        top_mass=top_mass,
        mass=mass,
        target_logit=np.sum([p.target_logit for p in parts], axis=0),
        target_weight=np.sum([p.target_weight for p in parts], axis=0),
        found=np.logical_or.reduce([p.found for p in parts]),
        target=first.target,
        counted=first.counted,
        smooth=None if first.smooth is None else _padded(smooth, level.shape),
        weight_sum=np.asarray(exact_sum(c for p in parts for c in p.weight_sum), np.float64),
        n_classes=sum(p.n_classes for p in parts),
        max_logit=max_logit,
        argmax=argmax,
        dtype=dtype,
    )
