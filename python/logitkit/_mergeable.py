"""Mergeable per-row statistics: reduce a class axis split into shards, one shard at a time.

A row whose classes are split across shards (chunks of an array, devices holding a slice of
the vocabulary, files read one after another) is reduced in three steps:

1. each shard gives its *partial* statistics, computed by logitkit's kernels
   (:func:`partial_logsumexp`, :func:`partial_entropy`, :func:`partial_cross_entropy`);
2. partials of the same rows are combined with :func:`merge_partials` (or ``a.merge(b)``), in any
   grouping and order, as a tree reduction or a left fold;
3. the merged partial gives the result: ``.finalize()``.

Every partial is a frozen dataclass of float64 per-row arrays (shape: the rows, without the
class axis, and for the exact sums a last axis of components), so merging adds no rounding of
the input's dtype; the final result is cast to the dtype the unsharded call returns.

Guarantees
----------
* Merging is exact: a merged partial depends on the set of shards it covers, not on the
  grouping or order of the merges. Every tree reduction and every fold of the same shards
  gives the same partial and the same results, bit for bit; ``a.merge(b)`` and
  ``b.merge(a)`` are one case of it. The tests check all orders and bracketings.
* Against the unsharded call: float64 logits agree within 32 float64 ulps of ``|lse| + 1``,
  float32 logits within 4 float32 ulps of ``|lse| + 1`` (each shard's statistics come from
  the float32 kernels); float16/bfloat16 shards are reduced in float32 and rounded once, at
  the end. The entropy keeps its relative accuracy when it is small (nearly one-hot rows).

How the merge is exact
----------------------
Each shard's log-sum-exp ``l`` is written ``l = 512 k + d``: an integer *level* ``k``
(``l / 512`` rounded) and an offset ``|d| <= 256``, both exact. The shard's mass ``exp(l)``
is kept as ``s = exp(d) e^256`` (rounded once, when the shard's partial is made), between 1
and ``e^512``, in units of ``exp(512 k - 256)``: the units of a level are fixed, so no merge
ever rescales a mass. A partial keeps, per row, the exact sums of the masses of its shards
at the top level ``K`` (the largest), at ``K - 1`` and at ``K - 2``, apart. These are float64
expansions (a few components, as in Shewchuk's arithmetic), stored in canonical form
(``c0`` = the sum rounded to nearest, ``c1`` = the rest rounded, ...), which depends on the
exact value alone; no sum can overflow below ``2**270`` shards, and none underflows. Shards
three or more levels below the top are dropped: they lie at least 1024 nats below the top
shard, so their share of the row's mass is below ``e^-1024``, under the smallest subnormal
double (shards within 1024 nats of the top one are always kept). Which shards are dropped
depends only on the final top level, so dropping too is independent of the grouping.

The entropy keeps, per level, the exact sum of ``s (H - d)`` (``H`` the shard's entropy;
each product is split exactly into two components, the split's error term being exact
unless the product is below ``2**-969``: as ``s >= 1``, only for ``|H - d|`` that small).
With ``d_top`` the top shard's offset, ``sum s (H + d_top + 512 j - d)`` over the shards
``j`` levels below the top is computed exactly and rounded once: over the mass it is the
shards' mass-weighted entropy plus their mean gap below the top shard, and with
``log1p(R)`` (below) the row's entropy. Every term is non-negative, so a nearly one-hot row
keeps its small entropy's relative precision, down to about ``1e-290``.

The cross-entropy's smoothing sum keeps ``sum(smooth_i - W_i l_i)`` exactly over every
shard (``W_i`` the shard's class-weight total; nothing is dropped) and adds ``W lse`` at the
end; the class-weight total is an exact sum too. These sums are exact while every partial
sum stays below ``2**1024``, that is for logits and weights whose products ``W_i l_i`` stay
far below the largest double.

Each result is then computed once from the merged exact sums: ``lse = l_top + log1p(R)``,
with ``R`` the other shards' mass over the top shard's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
from numpy.typing import NDArray

from ._validation import check_base, check_reduction

__all__ = ["LogSumExpPartial", "EntropyPartial", "CrossEntropyPartial", "merge_partials"]

F64 = NDArray[np.float64]
_SMOOTHING = ("pytorch", "megatron")

# Nats per level. A shard's mass is kept in its level's units, between 1 and e^512: never
# below 1, so that a tiny entropy times a mass stays above the subnormal range.
_WIDTH = 512.0
# Levels kept: shards three or more levels below the top one hold less than e^-1024 of the
# row's mass, below the subnormal range, so dropping them changes no float64 result.
_LEVELS = 3
# e^256, the factor that takes a mass exp(d), |d| <= 256, to [1, e^512]; and e^-512, which
# moves a level's sums into the units of the level above.
_LIFT = 1.5114276650041035e111
_DOWN = 4.377491037053051e-223


# ---------------------------------------------------------------------------
# exact sums: float64 expansions
# ---------------------------------------------------------------------------
#
# An expansion is a sum of float64 components whose value is kept exactly. The canonical
# expansion of a value v is c0 = round(v), c1 = round(v - c0), c2 = round(v - c0 - c1), ...
# (round to nearest, ties to even), stopping at the first zero remainder: a function of v
# alone, so two expansions of the same value have the same components, bit for bit.
# Partials store canonical expansions along a last axis, zero-padded to the longest row
# (at least one component).


def _two_sum(a: F64, b: F64) -> tuple[F64, F64]:
    """a + b as its rounded sum and the exact error (Knuth's TwoSum; any order, no
    overflow)."""
    s = a + b
    t = s - a
    return s, (a - (s - t)) + (b - t)


def _split(a: F64) -> tuple[F64, F64]:
    """a as a sum of two 26-bit halves (Veltkamp); magnitudes above 2**995 are split scaled
    down, so that the splitting product cannot overflow."""
    big = np.abs(a) > 2.0**995
    scaled = np.where(big, a * 2.0**-30, a)
    c = 134217729.0 * scaled
    hi = c - (c - scaled)
    hi = np.where(big, hi * 2.0**30, hi)
    return hi, a - hi


def _two_prod(a: Any, b: F64) -> tuple[F64, F64]:
    """a * b as its rounded product and the error (Dekker). The error is exact unless it
    falls below the subnormal range; it is 0 where the product overflows."""
    p = np.multiply(a, b)
    ah, al = _split(np.asarray(a, dtype=np.float64))
    bh, bl = _split(b)
    with np.errstate(invalid="ignore", over="ignore"):
        e = ((ah * bh - p) + ah * bl + al * bh) + al * bl
    return p, np.where(np.isfinite(p), e, 0.0)


def _grow(parts: list[F64], x: F64) -> list[F64]:
    """Add x to a nonoverlapping expansion (components in increasing magnitude, zeros
    allowed): the result is again one, of the exact sum (Shewchuk's Grow-Expansion)."""
    out = []
    for p in parts:
        x, low = _two_sum(x, p)
        out.append(low)
    out.append(x)
    return out


def _distill(x: F64) -> list[F64]:
    """The components along x's last axis as a nonoverlapping expansion of their exact sum,
    in increasing magnitude (zeros allowed)."""
    parts: list[F64] = []
    for j in range(x.shape[-1]):
        col = x[..., j]
        if col.any():
            parts = _grow(parts, col)
    return [p for p in parts if p.any()]


def _nearest(parts: list[F64], shape: tuple[int, ...]) -> F64:
    """The exact sum of a nonoverlapping expansion (increasing magnitude, zeros allowed),
    rounded to nearest, ties to even.

    From the top down the partial sums are exact until one rounds; what lies below that
    component is smaller than the lowest bit of the rounding error, so it only matters when
    the error is exactly half an ulp: then its sign breaks the tie.
    """
    hi = np.zeros(shape)
    err = np.zeros(shape)
    below = np.zeros(shape)  # the largest nonzero component under the one that rounded
    exact = np.ones(shape, dtype=bool)
    for p in reversed(parts):
        below = np.where(~exact & (below == 0), p, below)
        s = hi + p
        e = p - (s - hi)
        hi = np.where(exact, s, hi)
        err = np.where(exact, e, err)
        exact &= e == 0
    tie_away = ((err < 0) & (below < 0)) | ((err > 0) & (below > 0))
    twice = 2.0 * err
    away = hi + twice
    hi = np.where(tie_away & (away - hi == twice), away, hi)
    return hi + 0.0  # no negative zero: its bits would depend on the grouping


def _distilled(x: F64) -> tuple[NDArray[np.bool_], F64, list[F64]]:
    """The components along x's last axis: rows that hold inf or NaN or whose exact sum
    overflows, with their IEEE sum (inf, -inf or NaN: nothing finite can change it), and the
    other rows as a nonoverlapping expansion."""
    with np.errstate(invalid="ignore", over="ignore"):
        finite = np.isfinite(x)
        special: NDArray[np.bool_] = np.asarray(~finite.all(axis=-1))
        value: F64 = np.asarray(np.where(finite, 0.0, x).sum(axis=-1))
        parts = _distill(np.where(finite & ~special[..., None], x, 0.0))
        over = np.zeros(special.shape, dtype=bool)
        for p in parts:
            over |= ~np.isfinite(p)
        if over.any():
            special = special | over
            value = np.where(over, np.where(finite, x, 0.0).sum(axis=-1), value)
            parts = [np.where(over, 0.0, p) for p in parts]
    return special, value, parts


def _canonical(x: F64) -> F64:
    """The canonical expansion of the exact sum of the components along x's last axis.

    Rows holding inf or NaN, or whose sum overflows, keep their IEEE sum as the first
    component (see the module documentation for the ranges where no sum overflows).
    """
    shape = x.shape[:-1]
    special, value, parts = _distilled(x)
    out = []
    with np.errstate(over="ignore"):
        while parts:
            c = _nearest(parts, shape)
            out.append(c)
            parts = [p for p in _grow(parts, -c) if p.any()]
    if not out:
        out.append(np.zeros(shape))
    out[0] = np.where(special, value, out[0])
    return np.stack(out, axis=-1)


def _rounded(x: F64) -> F64:
    """The exact sum of the components along x's last axis, rounded to nearest (the first
    component of its canonical expansion)."""
    special, value, parts = _distilled(x)
    with np.errstate(over="ignore"):
        return np.where(special, value, _nearest(parts, x.shape[:-1]))


# ---------------------------------------------------------------------------
# masses by level
# ---------------------------------------------------------------------------


def _leaf_mass(lse: Any) -> tuple[F64, F64, F64, F64]:
    """level, offset, mass and level sums of shards whose log-sum-exp is ``lse``.

    ``lse = level * 512 + offset`` exactly: the level is a multiple of a power of two, and
    the offset needs no more bits than ``lse`` has below 256. ``-inf`` (no mass), ``+inf`` and
    NaN rows keep ``lse`` as their level and no mass.
    """
    lse = np.asarray(lse, dtype=np.float64)
    finite = np.isfinite(lse)
    with np.errstate(invalid="ignore", over="ignore"):
        level = np.where(finite, np.rint(lse / _WIDTH), lse)
        level = np.where(np.isnan(level), np.nan, level) + 0.0  # one NaN, no negative zero
        top = np.where(finite, lse - level * _WIDTH, 0.0) + 0.0
        top_mass = np.where(finite, np.exp(top) * _LIFT, 0.0)
    mass = np.zeros(lse.shape + (_LEVELS, 1))
    mass[..., 0, 0] = top_mass
    return level, top, top_mass, mass


def _merge_levels(parts: Sequence[Any], *names: str) -> tuple[F64, F64, F64, list[F64]]:
    """The level, top shard (offset and mass) and level sums of the union of partials.

    ``names`` are fields laid out like ``mass`` (rows, levels, components); each comes back
    in the merged levels, as a canonical expansion.
    """
    with np.errstate(invalid="ignore"):
        level = np.maximum.reduce([p.level for p in parts])
        level = np.where(np.isnan(level), np.nan, level)
        # g < 3: the partial's top level is g below the merged one; else it is dropped (or
        # the row is special)
        gaps = [level - p.level for p in parts]
    finite = np.isfinite(level)
    top_level, top, top_mass = parts[0].level, parts[0].top, parts[0].top_mass
    for p in parts[1:]:
        # the larger (level, offset, mass): a total order on finite shards, so the same top
        # shard in any order
        take = (p.level > top_level) | (
            (p.level == top_level) & ((p.top > top) | ((p.top == top) & (p.top_mass > top_mass)))
        )
        top_level = np.where(take, p.level, top_level)
        top = np.where(take, p.top, top)
        top_mass = np.where(take, p.top_mass, top_mass)
    merged = []
    for name in names:
        # a partial g levels below the merged top puts its level j at level j + g
        by_level: list[list[F64]] = [[] for _ in range(_LEVELS)]
        for p, gap in zip(parts, gaps, strict=True):
            sums = getattr(p, name)
            for j in range(_LEVELS):
                for g in range(_LEVELS - j):
                    by_level[j + g].append(np.where((gap == g)[..., None], sums[..., j, :], 0.0))
        # level by level: the levels below the top are usually empty, and cost nothing then
        sums_by_level = [_canonical(np.concatenate(comps, axis=-1)) for comps in by_level]
        width = max(x.shape[-1] for x in sums_by_level)
        padded = [
            np.concatenate([x, np.zeros(level.shape + (width - x.shape[-1],))], axis=-1)
            for x in sums_by_level
        ]
        merged.append(np.stack(padded, axis=-2))
    return level, np.where(finite, top, 0.0), np.where(finite, top_mass, 0.0), merged


def _in_top_units(values: list[F64], unit: F64) -> F64:
    """Per-level values (top level first) over ``unit``, in the top level's units, added."""
    total = values[0] / unit
    for j, v in enumerate(values[1:], start=1):
        # one factor e^-512 before the division and the rest after: neither side overflows
        scaled = (v * _DOWN) / unit
        for _ in range(j - 1):
            scaled = scaled * _DOWN
        total = total + scaled
    return total


def _rest_ratio(level: F64, top_mass: F64, mass: F64) -> F64:
    """R: the mass of every shard but the top one, over the top one's (0 on special rows)."""
    finite = np.isfinite(level)
    unit = np.where(finite, top_mass, 1.0)
    rest = _rounded(np.concatenate([mass[..., 0, :], -top_mass[..., None]], axis=-1))
    r = _in_top_units([rest] + [mass[..., j, 0] for j in range(1, _LEVELS)], unit)
    return np.where(finite, r, 0.0)


def _log_mass(level: F64, top: F64, r: F64) -> F64:
    """The log-sum-exp: the top shard's exactly, ``level * 512 + offset``, plus log1p(R)."""
    with np.errstate(invalid="ignore", over="ignore"):
        lse = (level * _WIDTH + top) + np.log1p(r)
    return np.where(np.isfinite(level), lse, level)


def _scalar_or_array(values: Any) -> Any:
    return values[()] if values.ndim == 0 else values


def cast(values: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """float64 results rounded once to the result dtype (overflow to inf is the intended
    float16 result)."""
    with np.errstate(over="ignore"):
        return np.asarray(values).astype(dtype, copy=False)


def _same_rows(func: str, parts: Sequence[Any]) -> None:
    first = parts[0]
    for p in parts[1:]:
        if type(p) is not type(first):
            raise TypeError(
                f"{func}(): cannot merge a {type(first).__name__} with a {type(p).__name__}"
            )
        if p.level.shape != first.level.shape:
            raise ValueError(
                f"{func}(): partials must cover the same rows, got row shapes "
                f"{first.level.shape} and {p.level.shape}"
            )


def _merged_dtype(parts: Sequence[Any]) -> np.dtype:
    return np.dtype(np.result_type(*(p.dtype for p in parts)))


@dataclass(frozen=True)
class LogSumExpPartial:
    r"""Partial log-sum-exp of rows over one shard (or several merged shards).

    Per row (see the module documentation): ``level`` (the top level, integer-valued; the
    row's log-sum-exp itself where it is ``-inf`` for no entries, ``+inf`` or NaN), ``top``
    and ``top_mass`` (the offset of the largest shard in its level and its mass,
    ``exp(top) e^256``), ``mass`` (rows, 3, m: canonical expansions of the shards' masses at
    the top level and the two levels below). ``dtype``: the dtype the unsharded
    :func:`logitkit.logsumexp` would return. Build one from log-sum-exp values with
    :meth:`from_lse`.

    .. math:: \mathrm{lse}(A \cup B) = \log\big(e^{\mathrm{lse}(A)} + e^{\mathrm{lse}(B)}\big)

    Examples
    --------
    >>> import numpy as np
    >>> import logitkit as lk
    >>> x = np.array([[1.0, 2.0, 3.0, 4.0], [0.0, 0.0, -1.0, 5.0]])
    >>> left, right = lk.partial_logsumexp(x[:, :2]), lk.partial_logsumexp(x[:, 2:])
    >>> bool(np.allclose(left.merge(right).finalize(), lk.logsumexp(x), rtol=1e-15))
    True
    >>> bool((left.merge(right).lse == right.merge(left).lse).all())
    True
    """

    level: F64
    top: F64
    top_mass: F64
    mass: F64
    dtype: np.dtype

    @classmethod
    def from_lse(cls, lse: Any, dtype: Any) -> LogSumExpPartial:
        """The partial of shards whose row log-sum-exps are ``lse``, for a result of ``dtype``."""
        return cls(*_leaf_mass(lse), np.dtype(dtype))

    @property
    def lse(self) -> F64:
        """float64 log-sum-exp of each row's entries seen so far (``-inf`` for none)."""
        return _log_mass(self.level, self.top, _rest_ratio(self.level, self.top_mass, self.mass))

    def merge(self, other: LogSumExpPartial) -> LogSumExpPartial:
        """The partial of the union of both sides' shards (the same rows), exactly."""
        return self._merge_all("LogSumExpPartial.merge", [self, other])

    @classmethod
    def _merge_all(cls, func: str, parts: Sequence[LogSumExpPartial]) -> LogSumExpPartial:
        _same_rows(func, parts)
        level, top, top_mass, (mass,) = _merge_levels(parts, "mass")
        return cls(level, top, top_mass, mass, _merged_dtype(parts))

    def finalize(self) -> Any:
        """The row log-sum-exp over every merged shard, in the unsharded call's dtype."""
        return _scalar_or_array(cast(self.lse, self.dtype))


@dataclass(frozen=True)
class EntropyPartial:
    r"""Partial entropy of ``softmax`` of rows over one shard (or several merged shards).

    .. math:: H(A \cup B) = \sum_{i \in \{A, B\}} p_i \big(H_i + (\ell - \ell_i)\big),
              \quad \ell = \log(e^{\ell_A} + e^{\ell_B}), \quad p_i = e^{\ell_i - \ell}

    the grouping rule of the entropy: the entropy of the shares ``p_i`` plus the mean of the
    parts' entropies. Every term is non-negative, so a nearly one-hot row keeps its small
    entropy's precision.

    The fields of :class:`LogSumExpPartial`, and per row ``moment`` (laid out like ``mass``:
    the exact sums of ``s (H - d)`` of the shards at each level, ``s`` a shard's mass, ``d``
    its offset, ``H`` its entropy), ``n_inf`` (the number of ``+inf`` entries: ``k`` of them
    hold all the mass and give entropy ``log k``) and ``undefined`` (a shard without mass had
    an undefined entropy: a row without mass then has entropy NaN, as unsharded). Build one
    with :meth:`from_rows`.

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

    level: F64
    top: F64
    top_mass: F64
    mass: F64
    moment: F64
    n_inf: F64
    undefined: NDArray[np.bool_]
    dtype: np.dtype

    @classmethod
    def from_rows(cls, lse: Any, entropy: Any, dtype: Any) -> EntropyPartial:
        """The partial of shards whose rows have log-sum-exp ``lse`` and entropy ``entropy``
        (nats, of the softmax restricted to the shard)."""
        lse = np.asarray(lse, dtype=np.float64)
        h = np.asarray(entropy, dtype=np.float64)
        level, top, top_mass, mass = _leaf_mass(lse)
        finite = np.isfinite(level)
        # a finite mass with an undefined entropy poisons the row, as a NaN entry would
        level = np.where(finite & ~np.isfinite(h), np.nan, level)
        finite = np.isfinite(level)
        top = np.where(finite, top, 0.0)
        top_mass = np.where(finite, top_mass, 0.0)
        mass = np.where(finite[..., None, None], mass, 0.0)
        a, b = _two_sum(np.where(finite, h, 0.0), -top)
        pa, ea = _two_prod(top_mass, a)
        pb, eb = _two_prod(top_mass, b)
        moment = _canonical(np.stack([pa, ea, pb, eb], axis=-1))
        moment = np.stack([moment] + [np.zeros_like(moment)] * (_LEVELS - 1), axis=-2)
        with np.errstate(invalid="ignore", over="ignore"):
            n_inf = np.where(lse == np.inf, np.rint(np.exp(h)), 0.0)
        undefined = (lse == -np.inf) & np.isnan(h)
        return cls(level, top, top_mass, mass, moment, n_inf, undefined, np.dtype(dtype))

    @property
    def lse(self) -> F64:
        """float64 log-sum-exp of the logits seen so far."""
        return _log_mass(self.level, self.top, _rest_ratio(self.level, self.top_mass, self.mass))

    @property
    def entropy(self) -> F64:
        """float64 entropy (nats) of the softmax over the classes seen so far."""
        level, top, mass, moment = self.level, self.top, self.mass, self.moment
        finite = np.isfinite(level)
        unit = np.where(finite, self.top_mass, 1.0)
        r = _rest_ratio(level, self.top_mass, mass)
        # sum exp(d) * (H + top + 512 j - d) over the shards j levels below the top:
        # non-negative terms, summed exactly
        t = top[..., None]
        numerators = []
        for j in range(_LEVELS):
            comps = [*_two_prod(t, mass[..., j, :]), moment[..., j, :]]
            if j:
                comps += _two_prod(_WIDTH * j, mass[..., j, :])
            numerators.append(np.maximum(_rounded(np.concatenate(comps, axis=-1)), 0.0))
        n = _in_top_units(numerators, unit)
        h = n / (1.0 + r) + np.log1p(r)
        with np.errstate(divide="ignore", invalid="ignore"):
            h = np.where(level == np.inf, np.log(self.n_inf), h)
        h = np.where(level == -np.inf, np.where(self.undefined, np.nan, 0.0), h)
        return np.where(np.isnan(level), np.nan, h)

    def merge(self, other: EntropyPartial) -> EntropyPartial:
        """The partial of the union of both sides' shards (the same rows), exactly."""
        return self._merge_all("EntropyPartial.merge", [self, other])

    @classmethod
    def _merge_all(cls, func: str, parts: Sequence[EntropyPartial]) -> EntropyPartial:
        _same_rows(func, parts)
        level, top, top_mass, (mass, moment) = _merge_levels(parts, "mass", "moment")
        n_inf, undefined = parts[0].n_inf, parts[0].undefined
        for p in parts[1:]:
            n_inf, undefined = n_inf + p.n_inf, undefined | p.undefined  # exact counts
        return cls(level, top, top_mass, mass, moment, n_inf, undefined, _merged_dtype(parts))

    def finalize(self, base: float | None = None) -> Any:
        """The row entropy over every merged shard (nats, or in ``base``)."""
        check_base("EntropyPartial.finalize", base)
        h = self.entropy if base is None else self.entropy / np.log(float(base))
        return _scalar_or_array(cast(np.asarray(h), self.dtype))


def _smoothing_terms(smooth: Any, weight_total: float, lse: F64) -> F64:
    """A shard's smoothing sum as the exact ``smooth - W * lse``; for a shard without mass,
    its own sum (``sum(w) * inf``: every class of it is infinitely unlikely)."""
    s = np.asarray(smooth, dtype=np.float64)
    if weight_total == 0.0:
        return _canonical(s[..., None])
    with np.errstate(invalid="ignore", over="ignore"):
        p, e = _two_prod(weight_total, np.where(lse == -np.inf, 0.0, lse))
    return _canonical(np.stack([s, -p, -e], axis=-1))


@dataclass(frozen=True)
class CrossEntropyPartial:
    r"""Partial cross-entropy statistics of rows over a shard of the classes.

    As Megatron's vocabulary-parallel cross-entropy computes them on each device, without
    the collectives: the rows' log-sum-exp of the shard's (soft-capped) logits, the target
    logit when the target lies in the shard, and the terms label smoothing needs.

    Fields (float64 per row unless said):

    ``level``, ``top``, ``top_mass``, ``mass``
        The log-sum-exp of the (capped) logits seen so far, as in
        :class:`LogSumExpPartial` (read it as ``.lse``).
    ``target_logit``, ``target_weight``, ``found`` (bool)
        The target's (capped) logit and class weight where the target lies in a merged shard
        (``found``), 0 elsewhere.
    ``target`` (int64), ``counted`` (bool)
        Each row's global target index, and the rows whose target is not ``ignore_index``.
    ``smooth``
        (rows, m): the exact sum over the shards seen of ``s_i - W_i * l_i``, with ``s_i =
        sum_c w_c (l_i - z_c)`` the shard's smoothing sum (non-negative terms), ``l_i`` its
        log-sum-exp and ``W_i`` its class-weight total; None when the partials were computed
        with ``label_smoothing=False``. The row's smoothing sum is this plus ``W * lse``.
    ``weight_sum`` (m,), ``n_classes`` (int)
        The exact sum of the class weights (read it as ``.weight_total``) and the number of
        classes seen.
    ``max_logit``, ``argmax`` (int64)
        The largest logit and its (global) class index, first one on ties.
    ``dtype``
        The unsharded :func:`logitkit.cross_entropy`'s result dtype.

    Build one from a shard's statistics with :meth:`from_rows`.

    Once every shard is merged, each counted row's loss is

    .. math:: L = (1 - \alpha)\, w_t\, (\mathrm{lse} - z_t) + \frac{\alpha}{C}\,
              \mathrm{smoothing\ sum} + \zeta\, \mathrm{lse}^2

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

    level: F64
    top: F64
    top_mass: F64
    mass: F64
    target_logit: F64
    target_weight: F64
    found: NDArray[np.bool_]
    target: NDArray[np.int64]
    counted: NDArray[np.bool_]
    smooth: F64 | None
    weight_sum: F64
    n_classes: int
    max_logit: F64
    argmax: NDArray[np.int64]
    dtype: np.dtype

    @classmethod
    def from_rows(
        cls,
        *,
        lse: Any,
        target_logit: Any,
        target_weight: Any,
        found: Any,
        target: Any,
        counted: Any,
        smooth: Any,
        weight_total: float,
        n_classes: int,
        max_logit: Any,
        argmax: Any,
        dtype: Any,
    ) -> CrossEntropyPartial:
        """The partial of one shard from its per-row statistics: ``lse`` its log-sum-exp,
        ``smooth`` its smoothing sum ``sum_c w_c (lse - z_c)`` (or None; for rows without
        mass, ``sum_c w_c * inf``), ``weight_total`` its class-weight total; the other
        arguments are the fields of the same names."""
        level, top, top_mass, mass = _leaf_mass(lse)
        w = float(weight_total)
        return cls(
            level=level,
            top=top,
            top_mass=top_mass,
            mass=mass,
            target_logit=np.asarray(target_logit, dtype=np.float64),
            target_weight=np.asarray(target_weight, dtype=np.float64),
            found=np.asarray(found, dtype=bool),
            target=np.asarray(target, dtype=np.int64),
            counted=np.asarray(counted, dtype=bool),
            smooth=None if smooth is None else _smoothing_terms(smooth, w, np.asarray(lse)),
            weight_sum=_canonical(np.array([w])),
            n_classes=int(n_classes),
            max_logit=np.asarray(max_logit, dtype=np.float64),
            argmax=np.asarray(argmax, dtype=np.int64),
            dtype=np.dtype(dtype),
        )

    @property
    def lse(self) -> F64:
        """float64 log-sum-exp of the (capped) logits seen so far."""
        return _log_mass(self.level, self.top, _rest_ratio(self.level, self.top_mass, self.mass))

    @property
    def weight_total(self) -> float:
        """Sum of the class weights seen (their number without ``weight``)."""
        return float(self.weight_sum[0])

    def merge(self, other: CrossEntropyPartial) -> CrossEntropyPartial:
        """The partial of the union of both sides' shards (same rows, same targets, shards
        that do not overlap), exactly."""
        return self._merge_all("CrossEntropyPartial.merge", [self, other])

    @classmethod
    def _merge_all(cls, func: str, parts: Sequence[CrossEntropyPartial]) -> CrossEntropyPartial:
        _same_rows(func, parts)
        first = parts[0]
        found = first.found
        for p in parts[1:]:
            if not (
                np.array_equal(first.counted, p.counted) and np.array_equal(first.target, p.target)
            ):
                raise ValueError(
                    f"{func}(): the partials disagree on the targets or on which rows count: "
                    "they were computed with different targets or ignore_index"
                )
            if (first.smooth is None) != (p.smooth is None):
                raise ValueError(
                    f"{func}(): one partial has the label-smoothing terms and the other not; "
                    "compute both with the same label_smoothing flag"
                )
            if (found & p.found).any():
                raise ValueError(
                    f"{func}(): a row's target lies in two of the partials: the shards overlap"
                )
            found = found | p.found
        level, top, top_mass, (mass,) = _merge_levels(parts, "mass")
        smooth = None
        if first.smooth is not None:
            smooth = _canonical(np.concatenate([p.smooth for p in parts], axis=-1))
        target_logit, target_weight = first.target_logit, first.target_weight
        max_logit, argmax = first.max_logit, first.argmax
        for p in parts[1:]:
            # one side at most is non-zero where found, both zero elsewhere: exact sums
            target_logit = target_logit + p.target_logit
            target_weight = target_weight + p.target_weight
            # p's maximum wins when larger, NaN, or equal with a smaller index: a total
            # order, so the same maximum in any order
            a_nan, b_nan = np.isnan(max_logit), np.isnan(p.max_logit)
            with np.errstate(invalid="ignore"):
                take = np.where(
                    a_nan | b_nan,
                    b_nan & (~a_nan | (p.argmax < argmax)),
                    (p.max_logit > max_logit) | ((p.max_logit == max_logit) & (p.argmax < argmax)),
                )
            max_logit = np.where(take, p.max_logit, max_logit)
            argmax = np.where(take, p.argmax, argmax)
        return cls(
            level=level,
            top=top,
            top_mass=top_mass,
            mass=mass,
            target_logit=target_logit,
            target_weight=target_weight,
            found=found,
            target=first.target,
            counted=first.counted,
            smooth=smooth,
            weight_sum=_canonical(np.concatenate([p.weight_sum for p in parts])),
            n_classes=sum(p.n_classes for p in parts),
            max_logit=max_logit,
            argmax=argmax,
            dtype=_merged_dtype(parts),
        )

    def _smoothing_sum(self, lse: F64) -> F64:
        """``sum_c w_c (lse - z_c)`` over the classes seen: the kept exact sum plus
        ``W * lse``, rounded once."""
        assert self.smooth is not None
        w = self.weight_sum
        with np.errstate(invalid="ignore", over="ignore"):
            p, e = _two_prod(w, lse[..., None])
            p = np.where(w == 0.0, 0.0, p)
        return _rounded(np.concatenate([self.smooth, p, e], axis=-1))

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
        if alpha > 0 and self.smooth is None:
            raise ValueError(
                f"{func}(): label_smoothing > 0 needs partials computed with label_smoothing=True"
            )
        lse = self.lse
        with np.errstate(invalid="ignore", over="ignore"):
            loss = (1.0 - alpha) * self.target_weight * (lse - self.target_logit)
            if alpha > 0:
                loss = loss + (alpha / self.n_classes) * self._smoothing_sum(lse)
            if z_loss:
                loss = loss + float(z_loss) * lse * lse
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
    """Merge partials of the same rows: all at once, as ``a.merge(b)`` does two.

    The merge is exact: every grouping and order of the same shards gives the same partial,
    bit for bit (see the module documentation).

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
    >>> a, b, c = parts
    >>> bool((a.merge(b).merge(c).lse == a.merge(b.merge(c)).lse).all())
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
    if len(parts) == 1:
        return parts[0]
    merged: P = parts[0]._merge_all("merge_partials", parts)
    return merged
