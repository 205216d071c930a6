"""Mergeable partial statistics: shards of the class axis reduced apart, then merged.

Oracles: the unsharded native call, the float64 twins in logitkit.reference_partial and
logitkit.reference, and exact properties of the merge (commutativity, exactly merged
fields, bounded differences between groupings).
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

import logitkit as lk
from logitkit import reference as ref
from logitkit import reference_partial as refp

DTYPES = [np.float32, np.float64]
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
    for name, v in fields(p).items():
        w = getattr(q, name)
        if v is None:
            assert w is None, name
        else:
            np.testing.assert_array_equal(np.asarray(v), np.asarray(w), err_msg=name)
            # assert_array_equal treats -0.0 == 0.0; bits must match too
            if np.asarray(v).dtype.kind == "f":
                assert np.array_equal(
                    np.asarray(v).view(np.int64), np.asarray(w).view(np.int64)
                ) or np.array_equal(np.isnan(v), np.isnan(w)), name


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
# the merge: commutativity, exact fields, bounded regrouping
# ---------------------------------------------------------------------------


def five_partials(kind: str, dtype=np.float64):
    rng = np.random.default_rng(8)
    x = logits(rng, dtype, n=32)
    x[0, :] = -np.inf
    x[0, 20] = 1.0  # only one shard has mass
    x[1, 15:] = -1e4  # shards far below the maximum
    t = rng.integers(0, x.shape[-1], x.shape[0])
    t[2] = -100
    out = []
    for a, s in shards(x, [0, 1, 14, 15, 40, 53]):
        if kind == "lse":
            out.append(lk.partial_logsumexp(s))
        elif kind == "entropy":
            out.append(lk.partial_entropy(s))
        else:
            out.append(lk.partial_cross_entropy(s, t, class_offset=a, label_smoothing=True))
    return out


def groupings(parts):
    """Every order of the parts, each folded left and as a balanced tree."""
    for perm in itertools.permutations(range(len(parts))):
        ps = [parts[i] for i in perm]
        yield lk.merge_partials(*ps)
        yield ps[0].merge(ps[1]).merge(ps[2].merge(ps[3].merge(ps[4])))


@pytest.mark.parametrize("kind", ["lse", "entropy", "ce"])
def test_merge_is_bitwise_commutative(kind):
    parts = five_partials(kind)
    for p, q in itertools.combinations(parts, 2):
        assert_bitwise(p.merge(q), q.merge(p))
    left = parts[0].merge(parts[1]).merge(parts[2])
    assert_bitwise(left.merge(parts[3]), parts[3].merge(left))


@pytest.mark.parametrize("kind", ["lse", "entropy", "ce"])
def test_every_grouping_agrees(kind):
    parts = five_partials(kind)
    results = list(groupings(parts))
    first = results[0]
    exact = {
        "target_logit",
        "target_weight",
        "found",
        "target",
        "counted",
        "max_logit",
        "argmax",
        "n_classes",
    }
    for r in results[1:]:
        for name, v in fields(first).items():
            w = getattr(r, name)
            if name in exact:
                np.testing.assert_array_equal(v, w, err_msg=name)  # exactly merged fields
            elif name == "weight_total":
                assert v == w  # integer-valued sums
            else:
                # float64 merges: within 4 * k ulps of the magnitude at stake (k = 5 shards)
                a, b = np.asarray(w), np.asarray(v)
                np.testing.assert_array_equal(np.isnan(a), np.isnan(b))
                scale = np.abs(first.lse) + np.abs(b)
                bound = 4 * len(parts) * np.spacing(np.where(np.isfinite(scale), scale, 0))
                with np.errstate(invalid="ignore"):
                    ok = np.isnan(b) | (a == b) | (np.abs(a - b) <= bound)
                assert ok.all(), (name, np.abs(a - b)[~ok], bound[~ok])


def test_merged_regroupings_give_identical_bits_in_practice():
    """The documented bound is loose: on ordinary rows most groupings agree to the bit."""
    parts = five_partials("lse")
    values = np.array([r.finalize() for r in groupings(parts)])
    spread = np.abs(values - values[0]) / np.spacing(np.abs(values[0]))
    assert np.nanmax(spread) <= 4


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
    with pytest.raises(ValueError, match="lies in both partials: the shards overlap"):
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
