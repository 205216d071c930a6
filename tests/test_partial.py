"""Mergeable partial statistics: shards of the class axis reduced apart, then merged.

Oracles: the unsharded native call, the float64 twins in logitkit.reference_partial and
logitkit.reference, and the exactness of the merge: every grouping and order of the same
shards gives the same bits, those of the merge's definition (reference_partial.merge_partials,
row by row with math.fsum).
"""

from __future__ import annotations

import functools
import itertools
import math
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import logitkit as lk
from logitkit import reference as ref
from logitkit import reference_partial as refp

DTYPES = [np.float32, np.float64]
# LOGITKIT_HYPOTHESIS_EXAMPLES: a longer, random search (the default one is derandomized)
_EXAMPLES = os.environ.get("LOGITKIT_HYPOTHESIS_EXAMPLES")
# Uneven shards, one of a single class and an empty one.
CUTS = [0, 1, 1, 14, 15, 40, 53]


def shards(x: np.ndarray, cuts=CUTS):
    return [(a, x[..., a:b]) for a, b in itertools.pairwise(cuts)]


def logits(rng, dtype, n=64, c=53, scale=4.0) -> np.ndarray:
    return (rng.standard_normal((n, c)) * scale).astype(dtype)


def tol(dtype, lse) -> np.ndarray:
    """The stated accuracy: a few ulps of the result dtype at |lse| (every log-space result
    here is a difference of quantities of that size)."""
    eps = np.finfo(dtype).eps
    k = 4 if dtype == np.float32 else 32
    return k * eps * (np.abs(np.asarray(lse, dtype=np.float64)) + 1.0)


def assert_close_rows(actual, expected, dtype, lse) -> None:
    a = np.asarray(actual, dtype=np.float64)
    e = np.asarray(expected, dtype=np.float64)
    np.testing.assert_array_equal(np.isnan(a), np.isnan(e))
    ok = np.isnan(e) | (a == e) | (np.abs(a - e) <= tol(dtype, lse))
    assert ok.all(), f"max error {np.nanmax(np.abs(a - e))} at rows {np.argwhere(~ok)[:5]}"


def fields(p) -> dict:
    return {k: v for k, v in vars(p).items() if k != "dtype"}


def assert_bitwise(p, q) -> None:
    """Every field identical: the same shapes and bits (any NaN matches any NaN)."""
    assert type(p) is type(q) and p.dtype == q.dtype
    for name, v in fields(p).items():
        w = getattr(q, name)
        if v is None:
            assert w is None, name
            continue
        v, w = np.asarray(v), np.asarray(w)
        assert v.shape == w.shape and v.dtype == w.dtype, name
        if v.dtype.kind == "f":
            nan = np.isnan(v)
            np.testing.assert_array_equal(nan, np.isnan(w), err_msg=name)
            # assert_array_equal treats -0.0 == 0.0: compare the bits
            bits_v = np.where(nan, 0.0, v).view(np.int64)
            bits_w = np.where(nan, 0.0, w).view(np.int64)
            np.testing.assert_array_equal(bits_v, bits_w, err_msg=name)
        else:
            np.testing.assert_array_equal(v, w, err_msg=name)


# ---------------------------------------------------------------------------
# merged shards against the unsharded call
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
def test_logsumexp_merged_equals_unsharded(dtype):
    x = logits(np.random.default_rng(1), dtype)
    merged = lk.merge_partials(*(lk.partial_logsumexp(s) for _, s in shards(x)))
    expected = lk.logsumexp(x)
    got = merged.finalize()
    assert got.dtype == expected.dtype
    assert_close_rows(got, expected, dtype, expected)
    # and the float64 oracle, from its own float64 partials
    oracle = lk.merge_partials(*(refp.partial_logsumexp(s) for _, s in shards(x)))
    assert_close_rows(got, oracle.finalize(), dtype, expected)
    assert_close_rows(oracle.lse, ref.logsumexp(x.astype(np.float64)), np.float64, expected)


@pytest.mark.parametrize("dtype", DTYPES)
def test_logsumexp_other_class_axis(dtype):
    x = logits(np.random.default_rng(2), dtype).T.copy()  # classes on axis 0
    parts = [lk.partial_logsumexp(x[a:b], axis=0) for a, b in itertools.pairwise(CUTS)]
    expected = lk.logsumexp(x, axis=0)
    assert_close_rows(lk.merge_partials(*parts).finalize(), expected, dtype, expected)


@pytest.mark.parametrize("dtype", DTYPES)
def test_entropy_merged_equals_unsharded(dtype):
    rng = np.random.default_rng(3)
    x = logits(rng, dtype)
    x[5] *= 50  # nearly one-hot: a tiny entropy, kept by the non-negative merge terms
    merged = lk.merge_partials(*(lk.partial_entropy(s) for _, s in shards(x)))
    lse = lk.logsumexp(x)
    expected = lk.entropy_from_logits(x)
    assert_close_rows(merged.finalize(), expected, dtype, lse)
    assert_close_rows(merged.finalize(base=2), lk.entropy_from_logits(x, base=2), dtype, lse)
    oracle = lk.merge_partials(*(refp.partial_entropy(s) for _, s in shards(x)))
    assert_close_rows(
        oracle.entropy, ref.entropy_from_logits(x.astype(np.float64)), np.float64, lse
    )
    # the nearly one-hot row: relative accuracy, not only absolute
    assert 0 < expected[5] < 1e-3
    assert math.isclose(merged.finalize()[5], expected[5], rel_tol=1e-4)


def test_tiny_entropies_keep_their_relative_precision():
    """Nearly one-hot rows whose entropy is far below float64's epsilon (down to 1e-280),
    wherever the top shard sits in its level, split anywhere. (Far from 0, the logits' own
    spacing limits any entropy's relative precision: the bases stay below 1024.)"""
    rng = np.random.default_rng(12)
    rows = []
    for base in [-255.9, 0.0, 255.9, 767.9, -1000.3]:
        for gap in [40.0, 300.0, 600.0, 640.0]:
            row = base - gap - rng.random(12) * 20
            row[rng.integers(0, 12)] = base
            rows.append(row)
    x = np.array(rows)
    expected = ref.entropy_from_logits(x)
    assert (expected > 1e-280).all() and (expected < 1e-15).all()
    for cut in [1, 5, 11]:
        merged = lk.partial_entropy(x[:, :cut]).merge(lk.partial_entropy(x[:, cut:]))
        np.testing.assert_allclose(merged.finalize(), expected, rtol=1e-13, atol=0)


CE_OPTIONS = [
    {},
    {"weight": True},
    {"ignore": True},
    {"label_smoothing": 0.2},
    {"label_smoothing": 0.2, "smoothing": "megatron"},
    {"label_smoothing": 0.1, "weight": True, "ignore": True},
    {"z_loss": 1e-2},
    {"softcap": 6.0, "label_smoothing": 0.1},
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("opts", CE_OPTIONS, ids=lambda o: "-".join(o) or "plain")
@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
def test_cross_entropy_merged_equals_unsharded(dtype, opts, reduction):
    rng = np.random.default_rng(4)
    x = logits(rng, dtype)
    c = x.shape[-1]
    t = rng.integers(0, c, x.shape[0])
    t[:3] = [0, c - 1, 14]  # the first class, the last class, the one-class shard
    if opts.get("ignore"):
        t[rng.random(t.size) < 0.25] = -100
    w = rng.random(c) + 0.1 if opts.get("weight") else None
    alpha = opts.get("label_smoothing", 0.0)
    smoothing = opts.get("smoothing", "pytorch")
    z_loss = opts.get("z_loss", 0.0)
    softcap = opts.get("softcap")

    def parts(module, x):
        return [
            module.partial_cross_entropy(
                s,
                t,
                class_offset=a,
                weight=None if w is None else w[a : a + s.shape[-1]],
                softcap=softcap,
                label_smoothing=alpha > 0,
            )
            for a, s in shards(x)
        ]

    finals = dict(reduction=reduction, label_smoothing=alpha, smoothing=smoothing, z_loss=z_loss)
    got = lk.merge_partials(*parts(lk, x)).finalize(**finals)
    expected = lk.cross_entropy(x, t, weight=w, softcap=softcap, **finals)
    oracle = lk.merge_partials(*parts(refp, x.astype(np.float64))).finalize(**finals)
    exact = ref.cross_entropy(x.astype(np.float64), t, weight=w, softcap=softcap, **finals)
    assert np.asarray(got).dtype == np.asarray(expected).dtype
    lse = lk.logsumexp(x if softcap is None else softcap * np.tanh(x / softcap))
    scale = lse if reduction == "none" else np.abs(lse).sum() * (1 + 10 * z_loss * lse.max())
    assert_close_rows(got, expected, dtype, scale)
    assert_close_rows(oracle, exact, np.float64, scale)
    assert_close_rows(got, exact, dtype, scale)


@pytest.mark.parametrize("dtype", DTYPES)
def test_cross_entropy_stats_match_unsharded(dtype):
    rng = np.random.default_rng(5)
    x = logits(rng, dtype)
    x[7, [3, 30]] = 20.0  # a tie across shards: the first index wins
    t = rng.integers(0, x.shape[-1], x.shape[0])
    t[7] = 3
    t[8] = -100
    merged = lk.merge_partials(
        *(lk.partial_cross_entropy(s, t, class_offset=a) for a, s in shards(x))
    )
    _, stats = lk.cross_entropy(x, t, return_stats=True)
    np.testing.assert_array_equal(merged.argmax, stats.argmax)
    np.testing.assert_array_equal(merged.correct(), stats.correct)
    assert merged.argmax[7] == 3 and merged.correct()[7]
    assert_close_rows(merged.lse, stats.lse, dtype, stats.lse)
    np.testing.assert_array_equal(merged.max_logit, x.max(axis=-1).astype(np.float64))


@pytest.mark.parametrize("dtype", DTYPES)
def test_row_blocks_give_the_global_mean(dtype):
    """Rows split in blocks: total loss over total weight, not a mean of block means."""
    rng = np.random.default_rng(6)
    x = logits(rng, dtype)
    t = rng.integers(0, x.shape[-1], x.shape[0])
    t[:20] = -100  # the first block is mostly ignored rows
    w = rng.random(x.shape[-1]) + 0.1
    totals = np.zeros(2)
    block_means = []
    for lo, hi in [(0, 24), (24, 25), (25, 64)]:
        merged = lk.merge_partials(
            *(
                lk.partial_cross_entropy(
                    s[lo:hi], t[lo:hi], class_offset=a, weight=w[a : a + s.shape[-1]]
                )
                for a, s in shards(x)
            )
        )
        loss, weight = merged.row_losses()
        totals += loss.sum(), weight.sum()
        block_means.append(merged.finalize())
    expected = lk.cross_entropy(x, t, weight=w)
    assert math.isclose(
        totals[0] / totals[1], expected, rel_tol=1e-5 if dtype == np.float32 else 1e-12
    )
    assert not math.isclose(float(np.mean(block_means)), expected, rel_tol=1e-3)


def test_sixteen_bit_logits_are_not_rounded_per_shard():
    x = logits(np.random.default_rng(7), np.float16)
    merged = lk.merge_partials(*(lk.partial_logsumexp(s) for _, s in shards(x)))
    assert merged.finalize().dtype == np.float16
    # the float32 shard statistics, rounded once at the end
    expected = ref.logsumexp(x.astype(np.float64)).astype(np.float16)
    assert (np.abs(merged.finalize().astype(np.float64) - expected) <= np.spacing(expected)).all()


# ---------------------------------------------------------------------------
# the merge is exact: every grouping and order gives the same bits
# ---------------------------------------------------------------------------


def five_partials(kind: str, dtype=np.float64):
    rng = np.random.default_rng(8)
    x = logits(rng, dtype, n=32)
    x[0, :] = -np.inf
    x[0, 20] = 1.0  # only one shard has mass
    x[1, 15:] = -1e4  # shards far below the maximum: more than a level down, dropped
    x[3, :14] += 700.0  # shards on three levels (of 512 nats, centred on multiples of 512)
    x[3, 40:] -= 600.0
    x[4, 15:40] += 255.0  # straddling the boundary between levels 0 and 1
    x[4, 40:] += 257.0
    x[5] *= 300.0  # a wide row
    x[6, :] += 1e6  # a high level, offsets with few fractional bits
    x[7, 1:14] -= 2000.0  # a shard four levels below the top one, dropped
    x[8, 15:] -= 1100.0  # and two levels below, kept
    t = rng.integers(0, x.shape[-1], x.shape[0])
    t[2] = -100
    w = rng.random(x.shape[-1]) + 0.1
    out = []
    for a, s in shards(x, [0, 1, 14, 15, 40, 53]):
        if kind == "lse":
            out.append(lk.partial_logsumexp(s))
        elif kind == "entropy":
            out.append(lk.partial_entropy(s))
        else:
            ws = w[a : a + s.shape[-1]]
            out.append(
                lk.partial_cross_entropy(s, t, class_offset=a, weight=ws, label_smoothing=True)
            )
    return out


def groupings(parts):
    """Every order of the parts, each folded left, as a tree and all at once."""
    for perm in itertools.permutations(range(len(parts))):
        ps = [parts[i] for i in perm]
        yield functools.reduce(lambda a, b: a.merge(b), ps)
        yield ps[0].merge(ps[1]).merge(ps[2].merge(ps[3].merge(ps[4])))
        yield lk.merge_partials(*ps)


@pytest.mark.parametrize("kind", ["lse", "entropy", "ce"])
def test_every_grouping_gives_the_same_bits(kind):
    parts = five_partials(kind)
    results = list(groupings(parts))
    assert len(results) == 360
    for r in results[1:]:
        assert_bitwise(results[0], r)
    # and the merge's definition, all shards at once, row by row with math.fsum
    assert_bitwise(results[0], refp.merge_partials(*parts))
    if kind == "ce":
        assert results[0].weight_total == pytest.approx(sum(p.weight_total for p in parts))


@pytest.mark.parametrize("kind", ["lse", "entropy", "ce"])
def test_merge_is_bitwise_commutative(kind):
    parts = five_partials(kind)
    for p, q in itertools.combinations(parts, 2):
        assert_bitwise(p.merge(q), q.merge(p))
    left = parts[0].merge(parts[1]).merge(parts[2])
    assert_bitwise(left.merge(parts[3]), parts[3].merge(left))


def test_regrouped_results_are_identical():
    """The finalized values too, whatever the grouping (a tree of Dask, a fold of files)."""
    for kind in ["lse", "entropy", "ce"]:
        parts = five_partials(kind)
        if kind == "ce":
            finals = [
                r.finalize(reduction="none", label_smoothing=0.1, z_loss=1e-3)
                for r in groupings(parts)
            ]
        else:
            finals = [r.finalize() for r in groupings(parts)]
        for f in finals[1:]:
            np.testing.assert_array_equal(f.view(np.int64), finals[0].view(np.int64))


def test_one_shard_and_an_empty_one_change_nothing():
    x = logits(np.random.default_rng(10), np.float64)
    x[3, :] = -np.inf
    t = np.arange(x.shape[0]) % x.shape[-1]
    empty = x[:, :0]
    for p, e in [
        (lk.partial_logsumexp(x), lk.partial_logsumexp(empty)),
        (lk.partial_entropy(x), lk.partial_entropy(empty)),
        (
            lk.partial_cross_entropy(x, t, label_smoothing=True),
            lk.partial_cross_entropy(empty, t, class_offset=x.shape[-1], label_smoothing=True),
        ),
    ]:
        assert_bitwise(p.merge(e), p)  # the partial of no classes is the merge's identity
    # a single shard's log-sum-exp is the kernel's, bit for bit
    np.testing.assert_array_equal(lk.partial_logsumexp(x).finalize(), lk.logsumexp(x))


def test_shards_far_below_are_dropped_without_a_trace():
    """A shard 1024 nats or more below the top shard holds less than e^-1024 of the mass: the
    merged partial is the one without it."""
    x = logits(np.random.default_rng(11), np.float64)
    far = x[:, :10] - 3000.0
    near = x[:, :10] - 1000.0  # kept: within 1024 nats
    with_far = lk.partial_entropy(x).merge(lk.partial_entropy(far))
    assert_bitwise(with_far, lk.partial_entropy(x))
    with_near = lk.partial_entropy(x).merge(lk.partial_entropy(near))
    assert with_near.mass[:, 1:].any()
    expected = ref.logsumexp(np.concatenate([x, near], axis=-1))
    assert_close_rows(with_near.lse, expected, np.float64, expected)


def test_exact_sums_are_canonical_and_round_ties_to_even():
    """The kept sums are canonical expansions (c0 = the sum rounded to nearest, c1 = the rest
    rounded, ...), as math.fsum defines them, halfway cases included."""
    u = 2.0**-53  # half an ulp of 1
    shards_smooth = [
        [1.0, 1.0, 1.0 + 2 * u, 1.0, 3.0, 1e300, 0.1],
        [u, u, u, u, 2.0**-1074, -1e300, 0.2],
        [0.0, 2.0**-200, 0.0, -(2.0**-200), 2.0**-1074, 1.0, 0.3],
    ]
    rows = len(shards_smooth[0])

    def shard(values, weight_total):
        zeros = np.zeros(rows)
        return lk.CrossEntropyPartial.from_rows(
            lse=zeros,  # so the kept sum is the smoothing sum itself
            target_logit=zeros,
            target_weight=zeros,
            found=np.zeros(rows, bool),
            target=np.full(rows, -100),
            counted=np.zeros(rows, bool),
            smooth=np.array(values),
            weight_total=weight_total,
            n_classes=1,
            max_logit=zeros,
            argmax=np.zeros(rows, np.int64),
            dtype=np.float64,
        )

    parts = [shard(v, w) for v, w in zip(shards_smooth, [1.0, u, 2.0**-200], strict=True)]
    for merged in groupings_of(parts):
        smooth = merged.smooth
        for i in range(rows):
            column = [v[i] for v in shards_smooth]
            expected = refp.exact_sum(column)
            got = [c for c in smooth[i] if c != 0.0] or [0.0]
            assert got == expected, (i, got, expected)
            assert got[0] == math.fsum(column)
        assert list(merged.weight_sum) == refp.exact_sum([1.0, u, 2.0**-200])
        assert merged.weight_total == 1.0 + 2 * u  # above the tie: rounded up
    assert smooth[0, 0] == 1.0  # 1 + 2^-53: the tie goes to the even neighbour, 1
    assert smooth[2, 0] == 1.0 + 4 * u  # (1 + 2^-52) + 2^-53: to the even one above


def groupings_of(parts):
    """Three partials in every order, folded left and right."""
    for a, b, c in itertools.permutations(parts):
        yield lk.merge_partials(a, b, c)
        yield a.merge(b.merge(c))


wide = st.floats(-3000, 3000, allow_nan=False, width=64)


@settings(
    max_examples=int(_EXAMPLES or "40"),
    derandomize=_EXAMPLES is None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    st.integers(2, 9),
    st.integers(0, 2**32 - 1),
    st.sampled_from([0.5, 4.0, 40.0, 900.0]),
    st.lists(wide, min_size=1, max_size=9),
    st.data(),
)
def test_random_groupings_give_the_same_bits(k, seed, scale, shifts, data):
    """Random shards (each shifted by its own offset, across levels) merged in a random tree
    give the left fold's bits and the definition's."""
    rng = np.random.default_rng(seed)
    n = 6
    parts = {"lse": [], "entropy": [], "ce": []}
    t = rng.integers(0, 5 * k, n)
    for i in range(k):
        s = rng.standard_normal((n, 5)) * scale + shifts[i % len(shifts)]
        s[rng.random(s.shape) < 0.1] = -np.inf
        parts["lse"].append(lk.partial_logsumexp(s))
        parts["entropy"].append(lk.partial_entropy(s))
        parts["ce"].append(
            lk.partial_cross_entropy(
                s, t, class_offset=5 * i, weight=rng.random(5), label_smoothing=True
            )
        )
    order = data.draw(st.permutations(range(k)))
    cuts = [data.draw(st.integers(0, j)) for j in range(k - 2, -1, -1)]
    for ps in parts.values():
        tree = [ps[i] for i in order]
        for i in cuts:  # merge a random neighbouring pair until one partial is left
            tree[i : i + 2] = [tree[i].merge(tree[i + 1])]
        (merged,) = tree
        assert_bitwise(merged, lk.merge_partials(*ps))
        assert_bitwise(merged, refp.merge_partials(*ps))


# ---------------------------------------------------------------------------
# special rows
# ---------------------------------------------------------------------------


def test_special_rows():
    inf, nan = np.inf, np.nan
    x = np.array(
        [
            [inf, 0.0, inf, 1.0],  # +inf in two shards: entropy log 3 with the third
            [inf, 0.0, 0.0, 1.0],  # +inf in one shard
            [-inf, -inf, -inf, -inf],  # nothing
            [-inf, -inf, 2.0, 3.0],  # one empty shard
            [0.0, nan, 1.0, 2.0],  # NaN
        ]
    )
    x[0, 3] = inf
    a, b = x[:, :2], x[:, 2:]
    lse = lk.merge_partials(lk.partial_logsumexp(a), lk.partial_logsumexp(b)).finalize()
    np.testing.assert_array_equal(lse, lk.logsumexp(x))
    h = lk.merge_partials(lk.partial_entropy(a), lk.partial_entropy(b)).finalize()
    expected = lk.entropy_from_logits(x)
    np.testing.assert_allclose(h, expected, rtol=1e-15, atol=1e-15)
    assert math.isclose(h[0], math.log(3), rel_tol=1e-15)
    assert h[1] == 0.0
    # label smoothing: a shard of -inf logits puts infinitely unlikely classes in the
    # smoothing sum (+inf loss) when the row has mass elsewhere, as unsharded
    t = np.array([1, 1, 0, 2, 2])
    ce_parts = [
        lk.partial_cross_entropy(a, t, label_smoothing=True),
        lk.partial_cross_entropy(b, t, class_offset=2, label_smoothing=True),
    ]
    for merged in [ce_parts[0].merge(ce_parts[1]), ce_parts[1].merge(ce_parts[0])]:
        got = merged.finalize(reduction="none", label_smoothing=0.1)
        expected = lk.cross_entropy(x, t, reduction="none", label_smoothing=0.1)
        np.testing.assert_array_equal(got, expected)
        assert got[3] == np.inf


# ---------------------------------------------------------------------------
# bad input
# ---------------------------------------------------------------------------


def test_errors():
    x = np.zeros((4, 6))
    t = np.array([0, 1, 5, 2])
    p = lk.partial_cross_entropy(x[:, :3], t)
    q = lk.partial_cross_entropy(x[:, 3:], t, class_offset=3)
    with pytest.raises(
        TypeError, match=r"merge\(\): cannot merge a CrossEntropyPartial with a LogSumExpPartial"
    ):
        p.merge(lk.partial_logsumexp(x))
    with pytest.raises(ValueError, match=r"same rows, got row shapes \(4,\) and \(3,\)"):
        lk.partial_logsumexp(x).merge(lk.partial_logsumexp(x[:3]))
    with pytest.raises(ValueError, match="lies in two of the partials: the shards overlap"):
        p.merge(lk.partial_cross_entropy(x[:, :3], t))
    with pytest.raises(ValueError, match="disagree on the targets"):
        p.merge(lk.partial_cross_entropy(x[:, 3:], t[::-1].copy(), class_offset=3))
    with pytest.raises(
        IndexError, match=r"the target of row 2 lies in none of the merged shards \(3 classes\)"
    ):
        p.finalize()
    with pytest.raises(
        ValueError, match=r"label_smoothing > 0 needs partials computed with label_smoothing=True"
    ):
        p.merge(q).finalize(label_smoothing=0.1)
    with pytest.raises(ValueError, match="one partial has the label-smoothing terms"):
        p.merge(lk.partial_cross_entropy(x[:, 3:], t, class_offset=3, label_smoothing=True))
    with pytest.raises(
        ValueError,
        match=r"partial_cross_entropy\(\): class_offset must be a non-negative int, got -1",
    ):
        lk.partial_cross_entropy(x, t, class_offset=-1)
    with pytest.raises(
        TypeError, match=r"partial_cross_entropy\(\): class_offset must be an int, got float"
    ):
        lk.partial_cross_entropy(x, t, class_offset=1.5)
    with pytest.raises(
        ValueError,
        match=r"weight must have shape \(3,\) \(one per class of the shard\), got \(6,\)",
    ):
        lk.partial_cross_entropy(x[:, :3], t, weight=np.ones(6))
    with pytest.raises(
        TypeError,
        match=r"partial_cross_entropy\(\): target must be integer class indices, got float64",
    ):
        lk.partial_cross_entropy(x, t.astype(float))
    with pytest.raises(ValueError, match=r"target must have shape \(4,\)"):
        lk.partial_cross_entropy(x, t[:2])
    with pytest.raises(TypeError, match=r"partial_logsumexp\(\): axis must be a single int"):
        lk.partial_logsumexp(x, axis=None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"partial_entropy\(\): x must have a class axis"):
        lk.partial_entropy(1.0)
    with pytest.raises(TypeError, match=r"partial_logsumexp\(\): x must be a real floating"):
        lk.partial_logsumexp(np.zeros(3, complex))
    with pytest.raises(ValueError, match="reduction must be one of"):
        p.merge(q).finalize(reduction="avg")
    with pytest.raises(TypeError, match="needs at least one partial"):
        lk.merge_partials()


def test_inputs_are_not_modified():
    rng = np.random.default_rng(9)
    x = logits(rng, np.float32)
    t = rng.integers(0, x.shape[-1], x.shape[0])
    x0, t0 = x.copy(), t.copy()
    lk.partial_cross_entropy(x, t, softcap=3.0, label_smoothing=True)
    lk.partial_entropy(x)
    lk.partial_logsumexp(x)
    np.testing.assert_array_equal(x, x0)
    np.testing.assert_array_equal(t, t0)
