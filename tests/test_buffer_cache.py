"""Large results come from a cache of freed result buffers: reused, never while still in use,
bounded by its limit, and the same values and memory order as NumPy-allocated results."""

from __future__ import annotations

import gc
import tracemalloc

import numpy as np
import pytest

import logitkit as lk
from logitkit import _core

BIG = (1024, 4200)  # float32: 16.4 MiB, above the 16 MiB at which results are cached


def address(a: np.ndarray) -> int:
    return int(a.__array_interface__["data"][0])


@pytest.fixture
def cache_limit():
    previous = lk.set_buffer_cache_limit(256 << 20)
    yield
    lk.set_buffer_cache_limit(previous)


def logits(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(BIG).astype(np.float32)


def test_freed_results_are_reused(cache_limit):
    x = logits(0)
    first = lk.softmax(x)
    where = address(first)
    del first
    gc.collect()
    assert lk.runtime_info()["buffer_cache_bytes"] >= x.nbytes
    second = lk.log_softmax(x)
    assert address(second) == where
    np.testing.assert_array_equal(second, lk.log_softmax(x, out=np.empty_like(x)))


def test_tracemalloc_counts_the_blocks_results_hold(cache_limit):
    x = logits(4)
    lk.softmax(x)  # a freed block waits in the cache
    domain = lk.runtime_info()["tracemalloc_domain"]
    ours = tracemalloc.DomainFilter(inclusive=True, domain=domain)
    tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        y = lk.softmax(x)
        held, _ = tracemalloc.get_traced_memory()
        traced = tracemalloc.take_snapshot().filter_traces([ours])
        assert sum(stat.size for stat in traced.statistics("filename")) >= x.nbytes
        view = y[::2]  # the block stays counted while any array holds it
        del y
        gc.collect()
        assert tracemalloc.get_traced_memory()[0] >= before + x.nbytes
        del view
        gc.collect()
        after, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert held - before >= x.nbytes
    assert held - after >= x.nbytes  # back in the cache, it is not counted


def test_a_block_is_not_reused_while_a_view_holds_it(cache_limit):
    x = logits(1)
    y = lk.softmax(x)
    head = y[:3]
    kept = head.copy()
    del y
    gc.collect()
    z = lk.softmax(logits(2))
    assert not np.shares_memory(z, head)
    np.testing.assert_array_equal(head, kept)


def test_results_match_and_keep_the_input_order(cache_limit):
    x = logits(3)
    for a in (x, np.asfortranarray(x)):
        got = lk.softmax(a, axis=0)
        assert got.flags.c_contiguous == a.flags.c_contiguous
        assert got.flags.f_contiguous == a.flags.f_contiguous
        assert got.flags.writeable and got.flags.aligned
        np.testing.assert_array_equal(got, lk.softmax(a, axis=0, out=np.empty_like(a)))
        _, grad = lk.cross_entropy_with_grad(a, np.zeros(a.shape[1], dtype=np.int64), axis=0)
        assert grad.flags.f_contiguous == a.flags.f_contiguous


def test_limit_zero_frees_and_stops_caching():
    previous = lk.set_buffer_cache_limit(0)
    try:
        assert lk.runtime_info()["buffer_cache_bytes"] == 0
        x = logits(4)
        y = lk.sigmoid(x)
        assert y.flags.owndata  # NumPy's own allocation
        del y
        gc.collect()
        assert _core.buffer_cache_bytes() == 0
    finally:
        lk.set_buffer_cache_limit(previous)


def test_the_cache_stays_within_its_limit():
    previous = lk.set_buffer_cache_limit(40 << 20)  # room for two of these blocks
    try:
        x = logits(5)
        results = [lk.softmax(x) for _ in range(4)]
        del results
        gc.collect()
        assert 0 < _core.buffer_cache_bytes() <= 40 << 20
        assert lk.set_buffer_cache_limit(18 << 20) == 40 << 20
        assert _core.buffer_cache_bytes() <= 18 << 20
    finally:
        lk.set_buffer_cache_limit(previous)


@pytest.mark.parametrize(
    "bad, error",
    [(-1, ValueError), (2**64, ValueError), (1.5, TypeError), ("1", TypeError), (True, TypeError)]
    + [(None, TypeError)],
)
def test_bad_limit(bad, error):
    with pytest.raises(error, match=r"^set_buffer_cache_limit\(\): nbytes must be an int"):
        lk.set_buffer_cache_limit(bad)


def test_a_block_above_the_limit_does_not_empty_the_cache():
    previous = lk.set_buffer_cache_limit(64 << 20)
    try:
        x = logits(6)
        kept = [lk.softmax(x) for _ in range(3)]
        del kept
        gc.collect()
        before = _core.buffer_cache_bytes()
        assert before > 0
        big = lk.softmax(np.ones((1024, 17000), np.float32))  # 66 MiB: over the limit
        del big
        gc.collect()
        assert _core.buffer_cache_bytes() == before
    finally:
        lk.set_buffer_cache_limit(previous)
