"""Mergeable per-row statistics: reduce a class axis split into shards, one shard at a time.

A row whose classes are split across shards (chunks of an array, devices holding a slice of
the vocabulary, files read one after another) is reduced in three steps:

1. each shard gives its *partial* statistics, computed by logitkit's kernels
   (:func:`partial_logsumexp`, :func:`partial_entropy`, :func:`partial_cross_entropy`);
2. partials of the same rows are combined with :func:`merge_partials` (or ``a.merge(b)``), in any
   grouping and order, as a tree reduction or a left fold;
3. the merged partial gives the result: ``.finalize()``.

Every partial is a frozen dataclass of float64 per-row arrays (shape: the rows, without the
class axis), so merging adds no rounding of the input's dtype; the final result is cast to
the dtype the unsharded call returns.

Guarantees
----------
* ``a.merge(b)`` and ``b.merge(a)`` are bitwise identical (commutativity).
* The maximum/argmax, the target logit, its weight, the class count and the row flags are
  merged exactly: any grouping and order gives the same bits.
* The log-sum-exp, entropy and smoothing sums are merged in float64 with a few roundings per
  merge; different groupings can differ in the last bits. Over ``k`` shards the merged
  value is within ``4 * k`` float64 ulps of the value's magnitude (``|lse|``, the entropy
  plus ``|lse|``) of any other grouping, far below float32 resolution and a few float64 ulps
  in practice. The tests check both the bitwise and the bounded properties.
* Against the unsharded call: float64 logits agree within 32 float64 ulps of ``|lse| + 1``,
  float32 logits within 4 float32 ulps of ``|lse| + 1`` (each shard's statistics come from
  the float32 kernels); float16/bfloat16 shards are reduced in float32 and rounded once, at
  the end.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import reduce
from typing import Any, TypeVar

import numpy as np
from numpy.typing import NDArray

from ._validation import check_base, check_reduction

__all__ = ["LogSumExpPartial", "EntropyPartial", "CrossEntropyPartial", "merge_partials"]

F64 = NDArray[np.float64]
_SMOOTHING = ("pytorch", "megatron")


def _same_rows(func: str, a: Any, b: Any) -> None:
    if type(a) is not type(b):
        raise TypeError(f"{func}(): cannot merge a {type(a).__name__} with a {type(b).__name__}")
    if a.lse.shape != b.lse.shape:
        raise ValueError(
            f"{func}(): partials must cover the same rows, got row shapes {a.lse.shape} and "
            f"{b.lse.shape}"
        )


def _merged_dtype(a: np.dtype, b: np.dtype) -> np.dtype:
    return np.dtype(np.result_type(a, b))


def _shares(l1: F64, l2: F64, lse: F64) -> tuple[F64, F64]:
    """Each shard's share of the row's mass, exp(l_i - lse), 0 for an empty shard.

    Where both shards hold +inf entries the shares are undefined (inf - inf); the callers
    handle those rows by their own rule.
    """
    with np.errstate(invalid="ignore", over="ignore"):
        p1 = np.where(l1 == -np.inf, 0.0, np.exp(l1 - lse))
        p2 = np.where(l2 == -np.inf, 0.0, np.exp(l2 - lse))
    return p1, p2


def _gap(lse: F64, part: F64) -> F64:
    """lse - part, with 0 for an empty part (whose terms carry no mass)."""
    with np.errstate(invalid="ignore"):
        return np.where(part == -np.inf, 0.0, lse - part)


def cast(values: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """float64 results rounded once to the result dtype (overflow to inf is the intended
    float16 result)."""
    with np.errstate(over="ignore"):
        return np.asarray(values).astype(dtype, copy=False)


@dataclass(frozen=True)
class LogSumExpPartial:
    r"""Partial log-sum-exp of rows over one shard (or several merged shards).

    ``lse``: float64 log-sum-exp of each row's entries seen so far (``-inf`` for none);
    ``dtype``: the dtype the unsharded :func:`logitkit.logsumexp` would return.

    .. math:: \mathrm{lse}(A \cup B) = \log\big(e^{\mathrm{lse}(A)} + e^{\mathrm{lse}(B)}\big)

    Merge: ``logaddexp`` of the two, the pair ``(max, sum exp(x - max))`` of each side folded
    into one number, so a merge costs one ``exp`` and one ``log1p`` per row.

    Attributes
    ----------
    lse : ndarray of float64
        Log-sum-exp of each row's entries seen so far (``-inf`` for none).
    dtype : numpy.dtype
        The dtype the unsharded :func:`logitkit.logsumexp` would return.

    Examples
    --------
    >>> import numpy as np
    >>> import logitkit as lk
    >>> x = np.array([[1.0, 2.0, 3.0, 4.0], [0.0, 0.0, -1.0, 5.0]])
    >>> left, right = lk.partial_logsumexp(x[:, :2]), lk.partial_logsumexp(x[:, 2:])
    >>> left
    LogSumExpPartial(lse=array([2.31326169, 0.69314718]), dtype=dtype('float64'))
    >>> bool(np.allclose(left.merge(right).finalize(), lk.logsumexp(x), rtol=1e-15))
    True
    """

    lse: F64
    dtype: np.dtype

    def merge(self, other: LogSumExpPartial) -> LogSumExpPartial:
        """The partial of the union of both sides' shards (the same rows)."""
        _same_rows("LogSumExpPartial.merge", self, other)
        with np.errstate(invalid="ignore"):
            lse = np.logaddexp(self.lse, other.lse)
        return LogSumExpPartial(lse, _merged_dtype(self.dtype, other.dtype))

    def finalize(self) -> Any:
        """The row log-sum-exp over every merged shard, in the unsharded call's dtype."""
        res = cast(self.lse, self.dtype)
        return res[()] if res.ndim == 0 else res


@dataclass(frozen=True)
class EntropyPartial:
    r"""Partial entropy of ``softmax`` of rows over one shard (or several merged shards).

    .. math:: H(A \cup B) = \sum_{i \in \{A, B\}} p_i \big(H_i + (\ell - \ell_i)\big),
              \quad \ell = \log(e^{\ell_A} + e^{\ell_B}), \quad p_i = e^{\ell_i - \ell}

    the grouping rule of the entropy: the entropy of the shares ``p_i`` plus the mean of the
    parts' entropies. Every term is non-negative, so a nearly one-hot row keeps its small
    entropy's precision. ``k`` entries at ``+inf`` across the shards give ``log k``, as
    unsharded.

    Attributes
    ----------
    lse : ndarray of float64
        Log-sum-exp of the shard's logits.
    entropy : ndarray of float64
        Entropy (nats) of the softmax *restricted to the shard*.
    dtype : numpy.dtype
        The unsharded call's result dtype.

    Examples
    --------
    >>> import numpy as np
    >>> import logitkit as lk
    >>> x = np.array([[1.0, 2.0, 3.0, 4.0], [0.0, 0.0, -1.0, 5.0]])
    >>> merged = lk.partial_entropy(x[:, :1]).merge(lk.partial_entropy(x[:, 1:]))
    >>> bool(np.allclose(merged.finalize(), lk.entropy_from_logits(x), rtol=1e-14))
    True
    >>> bool(np.allclose(merged.finalize(base=2), lk.entropy_from_logits(x, base=2)))
    True
    """

    lse: F64
    entropy: F64
    dtype: np.dtype

    def merge(self, other: EntropyPartial) -> EntropyPartial:
        """The partial of the union of both sides' shards (the same rows)."""
        _same_rows("EntropyPartial.merge", self, other)
        l1, l2, h1, h2 = self.lse, other.lse, self.entropy, other.entropy
        with np.errstate(invalid="ignore"):
            lse = np.logaddexp(l1, l2)
            p1, p2 = _shares(l1, l2, lse)
            # a part without mass adds nothing, even when its own entropy is undefined (NaN
            # for a shard of -inf logits only)
            t1 = np.where(l1 == -np.inf, 0.0, p1 * (h1 + _gap(lse, l1)))
            t2 = np.where(l2 == -np.inf, 0.0, p2 * (h2 + _gap(lse, l2)))
            h = t1 + t2
            # +inf entries hold all the mass, shared evenly: log(k1 + k2) from log k1, log k2
            both_inf = (l1 == np.inf) & (l2 == np.inf)
            h = np.where(both_inf, np.logaddexp(h1, h2), h)
            h = np.where((l1 == np.inf) & (l2 < np.inf), h1, h)
            h = np.where((l2 == np.inf) & (l1 < np.inf), h2, h)
            # two empty parts stay empty: the entropy of nothing is what either side says
            h = np.where((l1 == -np.inf) & (l2 == -np.inf), h1 + h2, h)
        return EntropyPartial(lse, h, _merged_dtype(self.dtype, other.dtype))

    def finalize(self, base: float | None = None) -> Any:
        """The row entropy over every merged shard (nats, or in ``base``)."""
        check_base("EntropyPartial.finalize", base)
        h = self.entropy if base is None else self.entropy / np.log(float(base))
        res = cast(np.asarray(h), self.dtype)
        return res[()] if res.ndim == 0 else res


@dataclass(frozen=True)
class CrossEntropyPartial:
    r"""Partial cross-entropy statistics of rows over a shard of the classes.

    As Megatron's vocabulary-parallel cross-entropy computes them on each device, without
    the collectives: the rows' log-sum-exp of the shard's (soft-capped) logits, the target
    logit when the target lies in the shard, and the terms label smoothing needs.

    Fields (float64 per row unless said):

    ``lse``
        log-sum-exp of the (capped) logits seen so far.
    ``target_logit``, ``target_weight``, ``found`` (bool)
        The target's (capped) logit and class weight where the target lies in a merged shard
        (``found``), 0 elsewhere.
    ``target`` (int64), ``counted`` (bool)
        Each row's global target index, and the rows whose target is not ``ignore_index``.
    ``smooth``
        ``sum_c w_c (lse - z_c)`` over the classes seen (non-negative terms), or None when
        the partials were computed with ``label_smoothing=False``.
    ``weight_total`` (float), ``n_classes`` (int)
        Sum of the class weights and number of classes seen.
    ``max_logit``, ``argmax`` (int64)
        The largest logit and its (global) class index, first one on ties.
    ``dtype``
        The unsharded :func:`logitkit.cross_entropy`'s result dtype.

    Once every shard is merged, each counted row's loss is

    .. math:: L = (1 - \alpha)\, w_t\, (\mathrm{lse} - z_t) + \frac{\alpha}{C}\,
              \mathrm{smooth} + \zeta\, \mathrm{lse}^2

    as in :func:`logitkit.cross_entropy`.

    Examples
    --------
    >>> import numpy as np
    >>> import logitkit as lk
    >>> x = np.array([[1.0, 2.0, 3.0, 4.0], [0.0, 0.0, -1.0, 5.0]])
    >>> t = np.array([3, 1])
    >>> parts = [lk.partial_cross_entropy(x[:, :2], t),
    ...          lk.partial_cross_entropy(x[:, 2:], t, class_offset=2)]
    >>> merged = lk.merge_partials(*parts)
    >>> bool(np.isclose(merged.finalize(), lk.cross_entropy(x, t), rtol=1e-14))
    True
    >>> merged.correct()
    array([ True, False])
    >>> loss, weight = merged.row_losses()
    >>> bool(np.isclose(loss.sum() / weight.sum(), lk.cross_entropy(x, t), rtol=1e-14))
    True
    """

    lse: F64
    target_logit: F64
    target_weight: F64
    found: NDArray[np.bool_]
    target: NDArray[np.int64]
    counted: NDArray[np.bool_]
    smooth: F64 | None
    weight_total: float
    n_classes: int
    max_logit: F64
    argmax: NDArray[np.int64]
    dtype: np.dtype

    def merge(self, other: CrossEntropyPartial) -> CrossEntropyPartial:
        """The partial of the union of both sides' shards (same rows, same targets, shards
        that do not overlap)."""
        func = "CrossEntropyPartial.merge"
        _same_rows(func, self, other)
        if not (
            np.array_equal(self.counted, other.counted)
            and np.array_equal(self.target, other.target)
        ):
            raise ValueError(
                f"{func}(): the partials disagree on the targets or on which rows count: "
                "they were computed with different targets or ignore_index"
            )
        if (self.smooth is None) != (other.smooth is None):
            raise ValueError(
                f"{func}(): one partial has the label-smoothing terms and the other not; "
                "compute both with the same label_smoothing flag"
            )
        if (self.found & other.found).any():
            raise ValueError(f"{func}(): a row's target lies in both partials: the shards overlap")
        with np.errstate(invalid="ignore"):
            lse = np.logaddexp(self.lse, other.lse)
        smooth = None
        if self.smooth is not None and other.smooth is not None:
            with np.errstate(invalid="ignore"):
                smooth = (self.smooth + self.weight_total * _gap(lse, self.lse)) + (
                    other.smooth + other.weight_total * _gap(lse, other.lse)
                )
        # b's maximum wins when larger, NaN, or equal with a smaller index: a total order,
        # so the choice does not depend on which side is which
        a_nan, b_nan = np.isnan(self.max_logit), np.isnan(other.max_logit)
        with np.errstate(invalid="ignore"):
            take_b = np.where(
                a_nan | b_nan,
                b_nan & (~a_nan | (other.argmax < self.argmax)),
                (other.max_logit > self.max_logit)
                | ((other.max_logit == self.max_logit) & (other.argmax < self.argmax)),
            )
        return CrossEntropyPartial(
            lse=lse,
            # exactly one side is non-zero where found, both zero elsewhere: exact sums
            target_logit=self.target_logit + other.target_logit,
            target_weight=self.target_weight + other.target_weight,
            found=self.found | other.found,
            target=self.target,
            counted=self.counted,
            smooth=smooth,
            weight_total=self.weight_total + other.weight_total,
            n_classes=self.n_classes + other.n_classes,
            max_logit=np.where(take_b, other.max_logit, self.max_logit),
            argmax=np.where(take_b, other.argmax, self.argmax),
            dtype=_merged_dtype(self.dtype, other.dtype),
        )

    def _check_complete(self, func: str) -> None:
        missing = self.counted & ~self.found
        if missing.any():
            pos = tuple(int(i) for i in np.argwhere(missing)[0])
            raise IndexError(
                f"{func}(): the target of row {pos if len(pos) != 1 else pos[0]} lies in none "
                f"of the merged shards ({self.n_classes} classes): it is out of range, or a "
                "shard is missing"
            )

    def row_losses(
        self,
        *,
        label_smoothing: float = 0.0,
        smoothing: str = "pytorch",
        z_loss: float = 0.0,
    ) -> tuple[F64, F64]:
        """Per-row loss and per-row target weight (float64; 0 for rows that do not count).

        The pair a distributed mean needs: ``sum(loss) / sum(weight)`` over every row block is
        the global ``reduction="mean"``, not a mean of block means.
        """
        func = "CrossEntropyPartial.row_losses"
        self._check_complete(func)
        if smoothing not in _SMOOTHING:
            raise ValueError(f"{func}(): smoothing must be one of {_SMOOTHING}, got {smoothing!r}")
        alpha = float(label_smoothing)
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"{func}(): label_smoothing must be in [0, 1], got {label_smoothing}")
        if smoothing == "megatron" and alpha > 0:
            if self.n_classes < 2:
                raise ValueError(f"{func}(): smoothing='megatron' needs at least 2 classes")
            alpha = alpha * self.n_classes / (self.n_classes - 1)
        with np.errstate(invalid="ignore", over="ignore"):
            loss = (1.0 - alpha) * self.target_weight * (self.lse - self.target_logit)
            if alpha > 0:
                if self.smooth is None:
                    raise ValueError(
                        f"{func}(): label_smoothing > 0 needs partials computed with "
                        "label_smoothing=True"
                    )
                loss = loss + (alpha / self.n_classes) * self.smooth
            if z_loss:
                loss = loss + float(z_loss) * self.lse * self.lse
        loss = np.where(self.counted, loss, 0.0)
        weight = np.where(self.counted, self.target_weight, 0.0)
        return loss, weight

    def finalize(
        self,
        *,
        reduction: str = "mean",
        label_smoothing: float = 0.0,
        smoothing: str = "pytorch",
        z_loss: float = 0.0,
    ) -> Any:
        """The cross-entropy over every merged shard, as :func:`logitkit.cross_entropy` gives
        it with the same options (the shards' classes must make up all the classes)."""
        check_reduction("CrossEntropyPartial.finalize", reduction)
        loss, weight = self.row_losses(
            label_smoothing=label_smoothing, smoothing=smoothing, z_loss=z_loss
        )
        if reduction == "none":
            return cast(loss, self.dtype)
        # A total beyond the result dtype's range is inf, without NumPy's overflow warning.
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            total = loss.sum()
            if reduction == "mean":
                total = np.float64(total) / np.float64(weight.sum())
            return self.dtype.type(total)

    def correct(self) -> NDArray[np.bool_]:
        """Rows that count whose first largest logit is at the target class."""
        hit: NDArray[np.bool_] = self.counted & (self.argmax == self.target)
        return hit


P = TypeVar("P", LogSumExpPartial, EntropyPartial, CrossEntropyPartial)


def merge_partials(*parts: P) -> P:
    """Merge partials of the same rows (a left fold of ``a.merge(b)``).

    ``merge_partials(p1, p2, ..., pk) = (...((p1.merge(p2)).merge(p3))...).merge(pk)``.
    Any grouping of the same shards gives the result to the accuracy stated in the module
    documentation; ``a.merge(b)`` and ``b.merge(a)`` are bitwise identical.

    Parameters
    ----------
    *parts : LogSumExpPartial, EntropyPartial or CrossEntropyPartial
        At least one, all of one type and of the same rows.

    Returns
    -------
    The merged partial, of the parts' type.

    Examples
    --------
    >>> import numpy as np
    >>> import logitkit as lk
    >>> x = np.arange(12.0).reshape(2, 6)
    >>> parts = [lk.partial_logsumexp(x[:, i:i + 2]) for i in range(0, 6, 2)]
    >>> bool(np.allclose(lk.merge_partials(*parts).finalize(), lk.logsumexp(x), rtol=1e-15))
    True
    """
    if not parts:
        raise TypeError("merge_partials(): needs at least one partial")
    for part in parts:
        if not isinstance(part, (LogSumExpPartial, EntropyPartial, CrossEntropyPartial)):
            raise TypeError(
                "merge_partials(): parts must be LogSumExpPartial, EntropyPartial or "
                f"CrossEntropyPartial, got {type(part).__name__}"
            )
    return reduce(lambda a, b: a.merge(b), parts)
