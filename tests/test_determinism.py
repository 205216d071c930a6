"""Every computing function gives bitwise-identical results for every thread count and run.

The inputs are large enough to be split between threads in each of the ways the native
driver splits work: many rows of moderate length, one row longer than the cache-resident
limit (shared between threads chunk by chunk), many very short rows, and a reduction over
a non-last axis (the column kernels). Sums over rows (reductions "sum" and "mean") are
included, since an order of summation that depended on the thread count would show there.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import logitkit as lk

# Under a sanitizer, one uneven split (3 threads on 2 cores) stands in for the others: the
# sanitizer looks for accesses past a thread's share, which every split has, and the full
# ladder took half of its run
THREADS = [1, 3] if os.environ.get("LOGITKIT_SANITIZED") else [1, 2, 3, 4]

# name -> (shape, axis); the long row is longer than the long-row limit for both dtypes
LAYOUTS = {
    "rows-64x5000": ((64, 5000), -1),
    "long-row-300000": ((1, 300_000), -1),
    "short-rows-20000x7": ((20_000, 7), -1),
    "axis0-3000x100": ((3000, 100), 0),
}


class Inputs:
    """Inputs of every kind the functions take, for one layout and dtype."""

    def __init__(self, shape: tuple[int, int], axis: int, dtype: np.dtype) -> None:
        rng = np.random.default_rng([*shape, axis % 2, dtype.itemsize])
        self.axis = axis
        n_classes = shape[axis]
        row_shape = tuple(d for i, d in enumerate(shape) if i != axis % 2)
        self.x = (rng.standard_normal(shape) * 4).astype(dtype)
        self.x[..., ::97] = -np.inf  # masked classes take the special-value branches
        self.x.flat[::1013] = 30.0  # and some rows get a dominant entry
        self.x2 = (rng.standard_normal(shape) * 3).astype(dtype)
        self.grad = rng.standard_normal(shape).astype(dtype)
        self.probs = rng.dirichlet(np.ones(n_classes), size=row_shape).astype(dtype)
        if axis % 2 == 0:
            self.probs = np.moveaxis(self.probs, -1, 0).copy()
        self.probs2 = self.probs[::-1].copy() if axis % 2 == 0 else self.probs[:, ::-1].copy()
        self.unit = rng.uniform(0, 1, shape).astype(dtype)
        self.unit2 = rng.uniform(0, 1, shape).astype(dtype)
        self.targets = rng.integers(0, n_classes, row_shape)
        self.targets.flat[::11] = -100  # ignore_index
        self.class_weight = rng.uniform(0.5, 2.0, n_classes).astype(dtype)
        self.row_grad = rng.standard_normal(row_shape).astype(dtype)
        self.row_mask = rng.random(row_shape) < 0.8
        self.mask = rng.random(shape) < 0.7
        self.b = rng.uniform(-0.5, 2.0, shape).astype(dtype)
        self.y = lk.softmax(self.x2, axis=axis)
        self.ly = lk.log_softmax(self.x2, axis=axis)
        self.lse = lk.logsumexp(self.x, axis=axis)
        self.bce_target = (rng.random(shape) < 0.5).astype(dtype)


@functools.lru_cache(maxsize=4)
def inputs(layout: str, dtype_str: str) -> Inputs:
    shape, axis = LAYOUTS[layout]
    return Inputs(shape, axis, np.dtype(dtype_str))


Case = Callable[[Inputs, int], Any]


def fields_of(partial: Any) -> tuple[np.ndarray, ...]:
    """The numeric state of a mergeable partial (its array attributes, by name)."""
    names = sorted(
        a for a in dir(partial) if not a.startswith("_") and not callable(getattr(partial, a))
    )
    values = [np.asarray(getattr(partial, a)) for a in names if getattr(partial, a) is not None]
    return tuple(v for v in values if v.dtype.kind in "biuf")


def shards(d: Inputs) -> tuple[np.ndarray, np.ndarray, int]:
    """x split into two shards of classes, and the number of classes of the first."""
    n = d.x.shape[d.axis] // 3 + 1
    first, second = np.split(d.x, [n], axis=d.axis)
    return first, second, n


def merged(d: Inputs, t: int) -> tuple[np.ndarray, ...]:
    # partials take no thread count: the two documented-identical merge orders stand in
    # for it (a.merge(b) and b.merge(a) are bitwise identical)
    first, second, n = shards(d)
    parts = [lk.partial_logsumexp(first, d.axis), lk.partial_logsumexp(second, d.axis)]
    ce = [
        lk.partial_cross_entropy(first, d.targets, axis=d.axis, label_smoothing=True),
        lk.partial_cross_entropy(
            second, d.targets, class_offset=n, axis=d.axis, label_smoothing=True
        ),
    ]
    if t % 2 == 0:
        parts, ce = parts[::-1], ce[::-1]
    return fields_of(lk.merge_partials(*parts)) + fields_of(lk.merge_partials(*ce))


# Each case: the function called with every option that changes its code path.
CASES: dict[str, Case] = {
    "softmax": lambda d, t: lk.softmax(d.x, d.axis, threads=t),
    "softmax-where": lambda d, t: lk.softmax(d.x, d.axis, where=d.mask, threads=t),
    "log_softmax": lambda d, t: lk.log_softmax(d.x, d.axis, threads=t),
    "log_softmax-where": lambda d, t: lk.log_softmax(d.x, d.axis, where=d.mask, threads=t),
    "logsumexp": lambda d, t: lk.logsumexp(d.x, d.axis, threads=t),
    "logsumexp-b-sign": lambda d, t: lk.logsumexp(d.x, d.axis, b=d.b, return_sign=True, threads=t),
    "logsumexp-where": lambda d, t: lk.logsumexp(d.x, d.axis, where=d.mask, threads=t),
    "logsumexp-all": lambda d, t: lk.logsumexp(d.x2, None, threads=t),
    "sigmoid": lambda d, t: lk.sigmoid(d.x, threads=t),
    "expit": lambda d, t: lk.expit(d.x2, threads=t),
    "log_sigmoid": lambda d, t: lk.log_sigmoid(d.x, threads=t),
    "log_expit": lambda d, t: lk.log_expit(d.x2, threads=t),
    "softplus": lambda d, t: lk.softplus(d.x, threads=t),
    "logit": lambda d, t: lk.logit(d.unit, threads=t),
    "entr": lambda d, t: lk.entr(d.unit, threads=t),
    "rel_entr": lambda d, t: lk.rel_entr(d.unit, d.unit2, threads=t),
    "kl_div_elementwise": lambda d, t: lk.kl_div_elementwise(d.unit, d.unit2, threads=t),
    "kl_div-sum": lambda d, t: lk.kl_div(d.ly, d.probs, "sum", threads=t),
    "kl_div-batchmean-log": lambda d, t: lk.kl_div(d.ly, d.ly, "batchmean", True, threads=t),
    "entropy": lambda d, t: lk.entropy(d.probs, axis=d.axis, threads=t),
    "entropy-qk-base": lambda d, t: lk.entropy(d.probs, d.probs2, 2.0, d.axis, threads=t),
    "entropy_from_logits": lambda d, t: lk.entropy_from_logits(d.x, d.axis, threads=t),
    "entropy_from_logits-where": lambda d, t: lk.entropy_from_logits(
        d.x, d.axis, base=10.0, where=d.mask, threads=t
    ),
    "cross_entropy-mean": lambda d, t: lk.cross_entropy(d.x, d.targets, axis=d.axis, threads=t),
    "cross_entropy-options": lambda d, t: lk.cross_entropy(
        d.x,
        d.targets,
        axis=d.axis,
        weight=d.class_weight,
        label_smoothing=0.1,
        z_loss=1e-3,
        softcap=20.0,
        reduction="sum",
        return_stats=True,
        threads=t,
    ),
    "cross_entropy-probs-none": lambda d, t: lk.cross_entropy(
        d.x2, d.probs, axis=d.axis, reduction="none", where=d.row_mask, threads=t
    ),
    "cross_entropy_with_grad": lambda d, t: lk.cross_entropy_with_grad(
        d.x, d.targets, axis=d.axis, label_smoothing=0.05, threads=t
    ),
    "cross_entropy_with_grad-options": lambda d, t: lk.cross_entropy_with_grad(
        d.x2,
        d.targets,
        axis=d.axis,
        weight=d.class_weight,
        reduction="none",
        z_loss=1e-4,
        grad_output=d.row_grad,
        threads=t,
    ),
    "cross_entropy_with_grad-probs": lambda d, t: lk.cross_entropy_with_grad(
        d.x2, d.probs, axis=d.axis, reduction="sum", threads=t
    ),
    "nll_loss": lambda d, t: lk.nll_loss(d.ly, d.targets, axis=d.axis, threads=t),
    "nll_loss-weight-sum": lambda d, t: lk.nll_loss(
        d.ly, d.targets, axis=d.axis, weight=d.class_weight, reduction="sum", threads=t
    ),
    "bce": lambda d, t: lk.binary_cross_entropy_with_logits(d.x2, d.bce_target, threads=t),
    "bce-options": lambda d, t: lk.binary_cross_entropy_with_logits(
        d.x2,
        d.unit,
        weight=d.unit2,
        pos_weight=np.asarray(1.5, d.x.dtype),
        label_smoothing=0.1,
        reduction="sum",
        threads=t,
    ),
    "bce_with_grad": lambda d, t: lk.binary_cross_entropy_with_logits_with_grad(
        d.x2, d.unit, weight=d.unit2, threads=t
    ),
    "kl_from_logits": lambda d, t: lk.kl_divergence_from_logits(
        d.x, d.x2, d.axis, reduction="sum", threads=t
    ),
    "kl_from_logits_with_grad": lambda d, t: lk.kl_divergence_from_logits_with_grad(
        d.x2, d.x, d.axis, reduction="batchmean", threads=t
    ),
    "js_from_logits": lambda d, t: lk.jensen_shannon_from_logits(
        d.x, d.x2, d.axis, beta=0.3, threads=t
    ),
    "js_from_logits_with_grad": lambda d, t: lk.jensen_shannon_from_logits_with_grad(
        d.x2, d.x, d.axis, reduction="mean", where=d.row_mask, threads=t
    ),
    "softmax_backward": lambda d, t: lk.softmax_backward(d.grad, d.y, d.axis, threads=t),
    "log_softmax_backward": lambda d, t: lk.log_softmax_backward(d.grad, d.ly, d.axis, threads=t),
    "logsumexp_backward": lambda d, t: lk.logsumexp_backward(
        d.row_grad, d.x, d.lse, d.axis, threads=t
    ),
    "logsumexp_backward-no-lse": lambda d, t: lk.logsumexp_backward(
        d.row_grad, d.x2, None, d.axis, threads=t
    ),
    "sigmoid_backward": lambda d, t: lk.sigmoid_backward(d.grad, d.unit, threads=t),
    "hardmax": lambda d, t: lk.hardmax(d.x, d.axis, threads=t),
    "partial_logsumexp": lambda d, t: fields_of(lk.partial_logsumexp(d.x, d.axis)),
    "partial_entropy": lambda d, t: fields_of(lk.partial_entropy(d.x2, d.axis)),
    "partial_cross_entropy": lambda d, t: fields_of(
        lk.partial_cross_entropy(
            d.x, d.targets, weight=d.class_weight, label_smoothing=True, axis=d.axis
        )
    ),
    "merge_partials": merged,
}


def as_arrays(result: Any) -> list[np.ndarray]:
    """Every array in a result (tuples, CrossEntropyStats), each as a NumPy array."""
    if isinstance(result, tuple):
        return [a for part in result for a in as_arrays(part)]
    return [np.asarray(result)]


def assert_bitwise_equal(got: list[np.ndarray], want: list[np.ndarray], what: str) -> None:
    assert len(got) == len(want), what
    for i, (g, w) in enumerate(zip(got, want, strict=True)):
        assert g.dtype == w.dtype and g.shape == w.shape, (what, i)
        # Byte comparison: distinguishes -0.0 from 0.0 and compares NaN payloads too.
        if g.tobytes() != w.tobytes():
            diff = np.flatnonzero(g.view(np.uint8) != w.view(np.uint8))
            raise AssertionError(f"{what}, output {i}: {diff.size} bytes differ, first {diff[:5]}")


def test_cases_cover_every_computing_function() -> None:
    named = {name.split("-")[0] for name in CASES}
    aliases = {"bce": "binary_cross_entropy_with_logits"}
    aliases["bce_with_grad"] = "binary_cross_entropy_with_logits_with_grad"
    aliases["kl_from_logits"] = "kl_divergence_from_logits"
    aliases["kl_from_logits_with_grad"] = "kl_divergence_from_logits_with_grad"
    aliases["js_from_logits"] = "jensen_shannon_from_logits"
    aliases["js_from_logits_with_grad"] = "jensen_shannon_from_logits_with_grad"
    covered = {aliases.get(n, n) for n in named}
    not_computing = {
        "__version__",
        "CrossEntropyStats",
        "LogSumExpPartial",
        "EntropyPartial",
        "CrossEntropyPartial",
        "runtime_info",
        "show_runtime",
        "use_isa",
        "active_isa",
        "available_isas",
        "set_buffer_cache_limit",
    }
    # the fused linear + cross-entropy has a test of its own below
    own_test = {"linear_cross_entropy", "linear_cross_entropy_with_grad"}
    assert set(lk.__all__) - not_computing - own_test == covered


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_linear_cross_entropy_bitwise_identical(isa: str, dtype: str) -> None:
    # threads= sets the kernels' threads; the BLAS products are NumPy's, the same each call.
    # Row and vocabulary chunks of several sizes, every gradient.
    rng = np.random.default_rng(11)
    h = rng.standard_normal((300, 32)).astype(dtype)
    w = (0.2 * rng.standard_normal((2500, 32))).astype(dtype)
    b = rng.standard_normal(2500).astype(dtype)
    t = rng.integers(0, 2500, 300)
    t[::7] = -100
    for kw in ({}, {"chunk_size": 64, "vocab_chunk_size": 700, "label_smoothing": 0.1}):
        want = None
        for threads in (1, 2, 3, 4, 2):
            got = lk.linear_cross_entropy_with_grad(h, w, t, bias=b, threads=threads, **kw)
            loss = lk.linear_cross_entropy(h, w, t, bias=b, threads=threads, **kw)
            arrays = [np.asarray(a) for a in (*got, loss)]
            if want is None:
                want = arrays
                continue
            for g, e in zip(arrays, want, strict=True):
                assert g.tobytes() == e.tobytes(), (kw, threads)


@pytest.mark.parametrize("layout", list(LAYOUTS))
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_bitwise_identical_across_threads_and_runs(isa: str, layout: str, dtype: str) -> None:
    d = inputs(layout, dtype)
    before = [d.x.copy(), d.x2.copy(), d.probs.copy()]
    for name, case in CASES.items():
        first = as_arrays(case(d, 1))
        for t in THREADS[1:]:
            assert_bitwise_equal(as_arrays(case(d, t)), first, f"{name} threads={t}")
        # a second run after the others catches nondeterminism that threads alone would not
        # cause (uninitialised or reused scratch buffers)
        assert_bitwise_equal(as_arrays(case(d, 1)), first, f"{name} run 2, threads=1")
    for a, b in zip(before, [d.x, d.x2, d.probs], strict=True):
        assert a.tobytes() == b.tobytes(), "an input was modified"
