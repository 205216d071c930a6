"""logitkit.dask on a real dask.distributed cluster (two worker processes), against the
in-memory calls: whole-row chunks, class-chunked rows, uneven class chunks with a chunk of
one class, row-chunked global means, and 3-D logits with the class axis last or in the
middle."""

from __future__ import annotations

import numpy as np
import pytest

da = pytest.importorskip("dask.array")
distributed = pytest.importorskip("distributed")

import logitkit as lk  # noqa: E402
import logitkit.dask as lkd  # noqa: E402

N, C = 96, 203
LAYOUTS = {
    "rows": (24, C),  # whole rows per chunk: the map_blocks path
    "classes": (N, 51),  # the class axis in even chunks (the last one shorter)
    "uneven": ((40, 1, 55), (1, 100, 7, 95)),  # uneven rows and classes, a one-class chunk
}
DTYPES = [np.float32, np.float64]


@pytest.fixture(scope="module")
def client():
    with (
        distributed.LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            silence_logs=40,
        ) as cluster,
        distributed.Client(cluster) as c,
    ):
        yield c


def make_logits(dtype, seed=0, specials=True) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((N, C)) * 5
    x[3] *= 40  # nearly one-hot
    if specials:
        x[5, [0, 150]] = np.inf  # +inf in two class chunks
        x[6, :] = -np.inf  # no mass
        x[7, :] = -np.inf
        x[7, 120] = 2.0  # all mass in one chunk
        x[8, 77] = np.nan
    return x.astype(dtype)


def tolerance(dtype, scale) -> np.ndarray:
    eps = np.finfo(dtype).eps
    return (4 if dtype == np.float32 else 32) * eps * (np.abs(np.asarray(scale, np.float64)) + 1)


def assert_matches(actual, expected, dtype, scale) -> None:
    a = np.asarray(actual, np.float64)
    e = np.asarray(expected, np.float64)
    assert a.shape == e.shape
    np.testing.assert_array_equal(np.isnan(a), np.isnan(e), err_msg="NaN positions")
    with np.errstate(invalid="ignore"):  # inf - inf where both are the same infinity
        ok = np.isnan(e) | (a == e) | (np.abs(a - e) <= tolerance(dtype, scale))
    assert ok.all(), f"max error {np.nanmax(np.abs(a - e))}, rows {np.argwhere(~ok)[:5].ravel()}"


def on_cluster(client, lazy):
    """Compute on the cluster and check that the work ran in the worker processes."""
    with distributed.get_task_stream(client) as stream:
        value = client.gather(client.compute(lazy))
    workers = {t["worker"] for t in stream.data}
    # the live workers as they answer themselves: scheduler_info() is a cached summary,
    # which a slow run (under a sanitizer, say) can find empty
    alive = set(client.run(lambda: None))
    assert workers and workers <= alive, (workers, alive)
    return value


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_reductions(client, layout, dtype):
    x = make_logits(dtype)
    d = da.from_array(x, chunks=LAYOUTS[layout])
    lse = lk.logsumexp(x)
    lazy = [
        lkd.logsumexp(d),
        lkd.logsumexp(d, keepdims=True),
        lkd.entropy_from_logits(d),
        lkd.entropy_from_logits(d, base=2),
    ]
    assert all(isinstance(r, da.Array) for r in lazy)
    got = on_cluster(client, lazy)
    expected = [
        lse,
        lk.logsumexp(x, keepdims=True),
        lk.entropy_from_logits(x),
        lk.entropy_from_logits(x, base=2),
    ]
    for g, e, r in zip(got, expected, lazy, strict=True):
        assert g.dtype == e.dtype == r.dtype
        assert_matches(g, e, dtype, lse.reshape(e.shape))
    np.testing.assert_array_equal(got[0][[5, 6]], [np.inf, -np.inf])


@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")  # scales of the special rows
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax_and_log_softmax(client, layout, dtype):
    x = make_logits(dtype)
    d = da.from_array(x, chunks=LAYOUTS[layout])
    sm, lsm = on_cluster(client, [lkd.softmax(d), lkd.log_softmax(d)])
    e_sm, e_lsm = lk.softmax(x), lk.log_softmax(x)
    assert sm.dtype == lsm.dtype == np.dtype(dtype)
    lse = lk.logsumexp(x)[:, None]
    assert_matches(lsm, e_lsm, dtype, np.broadcast_to(lse, x.shape) + np.abs(x))
    # probabilities: relative to each one, from the error of its exponent
    np.testing.assert_array_equal(np.isnan(sm), np.isnan(e_sm))
    rel = np.abs(sm.astype(np.float64) - e_sm) / np.maximum(e_sm, np.finfo(dtype).tiny)
    bound = tolerance(dtype, np.broadcast_to(lse, x.shape) + np.abs(x)) + 4 * np.finfo(dtype).eps
    assert (np.isnan(e_sm) | (rel <= bound)).all()
    np.testing.assert_array_equal(sm[5, [0, 150]], [0.5, 0.5])  # the +inf limit, as in memory


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize(
    "opts",
    [
        {},
        {"weight": True, "ignore": True},
        {"label_smoothing": 0.15, "weight": True},
        {"label_smoothing": 0.1, "smoothing": "megatron", "z_loss": 1e-3, "softcap": 8.0},
    ],
    ids=["plain", "weight-ignore", "smoothing-weight", "megatron-zloss-softcap"],
)
def test_cross_entropy(client, layout, opts):
    dtype = np.float32
    x = make_logits(dtype, seed=1, specials=False)
    rng = np.random.default_rng(2)
    t = rng.integers(0, C, N)
    t[:3] = [0, C - 1, 100]  # first class, last class, the one-class chunk of "uneven"
    if opts.get("ignore"):
        t[rng.random(N) < 0.3] = -100
        t[40] = -100  # the one-row chunk of "uneven" ignored
    w = rng.random(C).astype(np.float32) + 0.2 if opts.get("weight") else None
    kw = {k: v for k, v in opts.items() if k not in ("weight", "ignore")}
    d = da.from_array(x, chunks=LAYOUTS[layout])
    td = da.from_array(t, chunks=17)  # rechunked to the logits' rows inside
    reductions = ["none", "sum", "mean"]
    lazy = [lkd.cross_entropy(d, td, weight=w, reduction=r, **kw) for r in reductions]
    got = on_cluster(client, lazy)
    softcap = kw.get("softcap")
    lse = lk.logsumexp(x if softcap is None else softcap * np.tanh(x / softcap))
    for r, g in zip(reductions, got, strict=True):
        e = lk.cross_entropy(x, t, weight=w, reduction=r, **kw)
        assert g.dtype == np.asarray(e).dtype
        scale = lse if r == "none" else np.abs(lse).sum()
        assert_matches(g, e, dtype, scale)


# 3-D logits (batch, positions, classes), the class axis last or in the middle (PyTorch's
# (N, C, d1) layout, axis=1), chunked along rows and classes, evenly or not.
K_DIM = {
    "classes-last-whole": (-1, (6, 20, 37), ((2, 4), (7, 13), 37)),
    "classes-last-split": (-1, (6, 20, 37), (4, (1, 19), (10, 1, 26))),
    "classes-middle-whole": (1, (6, 37, 20), (3, 37, (5, 15))),
    "classes-middle-split": (1, (6, 37, 20), ((5, 1), (18, 19), 7)),
}


@pytest.mark.parametrize("case", K_DIM)
@pytest.mark.parametrize(
    "opts",
    [{}, {"weight": True, "ignore": True, "label_smoothing": 0.1, "z_loss": 1e-3}],
    ids=["plain", "weight-ignore-smoothing-zloss"],
)
def test_cross_entropy_k_dim(client, case, opts):
    """Logits of any rank with a class axis, as lk.cross_entropy takes them: the losses keep
    the rows' shape, the means are global."""
    axis, shape, chunks = K_DIM[case]
    rng = np.random.default_rng(7)
    x = (rng.standard_normal(shape) * 4).astype(np.float64)
    n_classes = shape[axis]
    rows_shape = tuple(n for d, n in enumerate(shape) if d != axis % len(shape))
    t = rng.integers(0, n_classes, rows_shape)
    t[0, 0] = n_classes - 1
    w = None
    if opts.get("ignore"):
        t[rng.random(rows_shape) < 0.3] = -100
        t[:, :2] = -100  # whole row blocks mostly ignored: the mean is not a mean of means
    if opts.get("weight"):
        w = rng.random(n_classes) * 2 + 0.1
    kw = {k: v for k, v in opts.items() if k not in ("weight", "ignore")}
    d = da.from_array(x, chunks=chunks)
    td = da.from_array(t, chunks=(5, 3))  # rechunked to the logits' rows inside
    reductions = ["none", "sum", "mean"]
    lazy = [lkd.cross_entropy(d, td, axis=axis, weight=w, reduction=r, **kw) for r in reductions]
    assert lazy[0].shape == rows_shape and lazy[1].shape == ()
    got = on_cluster(client, lazy)
    lse = lk.logsumexp(x, axis=axis)
    for r, g in zip(reductions, got, strict=True):
        e = lk.cross_entropy(x, t, axis=axis, weight=w, reduction=r, **kw)
        assert np.shape(g) == np.shape(e) and g.dtype == np.asarray(e).dtype
        scale = lse if r == "none" else np.abs(lse).sum()
        assert_matches(g, e, np.float64, scale)


def test_cross_entropy_k_dim_target_out_of_range(client):
    x = make_logits(np.float32, specials=False)[:90].reshape(6, 15, C)
    t = np.zeros((6, 15), dtype=np.int64)
    t[4, 11] = -1
    for chunks in [(4, 8, C), (4, 8, 50)]:
        lazy = lkd.cross_entropy(da.from_array(x, chunks=chunks), t, reduction="none")
        with pytest.raises(
            IndexError, match=r"target\[\(4, 11\)\] = -1 is out of range for 203 classes"
        ):
            client.compute(lazy).result()


@pytest.mark.parametrize("layout", ["rows", "uneven"])
def test_row_chunked_mean_is_the_global_mean(client, layout):
    """Total loss over total weight, not a mean of block means."""
    x = make_logits(np.float64, seed=3, specials=False)
    rng = np.random.default_rng(4)
    t = rng.integers(0, C, N)
    t[:30] = -100  # the first row chunk is mostly ignored
    w = rng.random(C) * 3
    d = da.from_array(x, chunks=LAYOUTS[layout])
    got = on_cluster(client, lkd.cross_entropy(d, t, weight=w))
    expected = lk.cross_entropy(x, t, weight=w)
    assert abs(got - expected) <= 1e-13 * abs(expected)
    row_chunks = LAYOUTS[layout][0]
    sizes = row_chunks if isinstance(row_chunks, tuple) else (row_chunks,) * (N // row_chunks)
    bounds = np.cumsum((0,) + sizes)
    block_means = [
        lk.cross_entropy(x[a:b], t[a:b], weight=w)
        for a, b in zip(bounds[:-1], bounds[1:], strict=True)
        if (t[a:b] != -100).any()
    ]
    assert abs(np.mean(block_means) - expected) > 1e-3


def test_deep_merge_tree_and_other_axis(client):
    x = make_logits(np.float64, seed=5)
    d = da.from_array(x.T.copy(), chunks=((1,) + (7,) * 28 + (6,), 32))  # 30 class chunks
    lse = lk.logsumexp(x)
    deep = [
        lkd.logsumexp(d, axis=0, split_every=2),
        lkd.entropy_from_logits(d, axis=0, split_every=3),
        lkd.softmax(d, axis=0, split_every=2),
    ]
    got = on_cluster(client, deep)
    assert_matches(got[0], lse, np.float64, lse)
    assert_matches(got[1], lk.entropy_from_logits(x), np.float64, lse)
    assert_matches(got[2], lk.softmax(x, axis=-1).T, np.float64, 1.0 + np.abs(x.T))


def test_lazy_until_computed_and_errors_at_compute(client):
    x = make_logits(np.float32, specials=False)
    t = np.zeros(N, dtype=np.int64)
    t[50] = C  # out of range: found only when the blocks run
    d = da.from_array(x, chunks=LAYOUTS["uneven"])
    lazy = lkd.cross_entropy(d, t)
    assert isinstance(lazy, da.Array)
    with pytest.raises(
        IndexError, match=r"cross_entropy\(\): target\[50\] = 203 is out of range for 203 classes"
    ):
        client.compute(lazy).result()
    whole = da.from_array(x, chunks=LAYOUTS["rows"])
    with pytest.raises(IndexError, match=r"target\[50\] = 203 is out of range"):
        client.compute(lkd.cross_entropy(whole, t)).result()


def test_bad_arguments():
    d = da.zeros((4, 6), chunks=(2, 3))
    t = np.zeros(4, dtype=np.int64)
    with pytest.raises(
        ValueError,
        match=r"cross_entropy\(\): target must have shape \(4, 6\) \(logits without the class "
        r"axis\), got \(4,\)",
    ):
        lkd.cross_entropy(d[..., None], t)
    with pytest.raises(ValueError, match=r"cross_entropy\(\): .*axis 2 is out of bounds"):
        lkd.cross_entropy(d, t, axis=2)
    with pytest.raises(
        TypeError, match=r"cross_entropy\(\): target must be integer class indices, got float64"
    ):
        lkd.cross_entropy(d, t.astype(float))
    with pytest.raises(
        ValueError,
        match=r"target must have shape \(4,\) \(logits without the class axis\), got \(3,\)",
    ):
        lkd.cross_entropy(d, t[:3])
    with pytest.raises(
        ValueError, match=r"weight must have shape \(6,\) \(one per class\), got \(5,\)"
    ):
        lkd.cross_entropy(d, t, weight=np.ones(5))
    with pytest.raises(ValueError, match=r"reduction must be one of"):
        lkd.cross_entropy(d, t, reduction="avg")
    with pytest.raises(ValueError, match=r"label_smoothing must be in \[0, 1\], got 2"):
        lkd.cross_entropy(d, t, label_smoothing=2)
    with pytest.raises(
        TypeError, match=r"logsumexp\(\): axis must be a single int \(the class axis\), got None"
    ):
        lkd.logsumexp(d, axis=None)  # type: ignore[arg-type]
    with pytest.raises(
        TypeError,
        match=r"softmax\(\): x must be a real floating .*, integer or bool array, got complex128",
    ):
        lkd.softmax(da.zeros((2, 2), dtype=complex))
    with pytest.raises(
        ValueError, match=r"entropy_from_logits\(\): base must be None or a number > 0 other than 1"
    ):
        lkd.entropy_from_logits(d, base=1)
    unknown = d[d[:, 0] > 0]  # rows of unknown count; fine. Classes of unknown count are not:
    lkd.logsumexp(unknown)
    with pytest.raises(ValueError, match=r"chunk sizes along the class axis must be known"):
        lkd.logsumexp(unknown.T, axis=-1)


def test_perplexity_example_reads_npy_and_zarr(client, tmp_path):
    """examples/dask_perplexity.py: logits read block by block on the workers, from a
    memory-mapped .npy and from Zarr, give the in-memory mean cross-entropy."""
    import importlib.util
    from pathlib import Path

    pytest.importorskip("zarr")
    path = Path(__file__).parents[1] / "examples" / "dask_perplexity.py"
    spec = importlib.util.spec_from_file_location("dask_perplexity", path)
    assert spec is not None and spec.loader is not None
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    t = np.load(example.write_demo(tmp_path, "npy", 300, 97)[1])
    example.write_demo(tmp_path, "zarr", 300, 97)
    x = np.load(tmp_path / "logits.npy")
    expected = lk.cross_entropy(x, t)
    for name, class_chunk in [("logits.npy", None), ("logits.npy", 40), ("logits.zarr", 13)]:
        logits = example.open_logits(str(tmp_path / name), 128, class_chunk)
        got = on_cluster(client, lkd.cross_entropy(logits, da.from_array(t, chunks=128)))
        assert abs(got - expected) <= 1e-6 * expected


def test_float16_logits_keep_their_dtype(client):
    """16-bit logits: statistics in float32 on every block, rounded once to float16."""
    x = make_logits(np.float16, seed=6, specials=False)
    d = da.from_array(x, chunks=LAYOUTS["uneven"])
    lse, sm, h = on_cluster(client, [lkd.logsumexp(d), lkd.softmax(d), lkd.entropy_from_logits(d)])
    assert lse.dtype == sm.dtype == h.dtype == np.float16
    for got, expected in [
        (lse, lk.logsumexp(x)),
        (sm, lk.softmax(x)),
        (h, lk.entropy_from_logits(x)),
    ]:
        spacing = np.spacing(np.abs(expected)).astype(np.float64)
        err = np.abs(got.astype(np.float64) - expected.astype(np.float64))
        assert (err <= 2 * spacing).all()
