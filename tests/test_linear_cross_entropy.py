"""The fused linear + cross-entropy against the unfused computation (reference cross-entropy of
``hidden @ weight.T + bias``, chain rule in float64), finite differences and PyTorch."""

from __future__ import annotations

import itertools
import tracemalloc

import numpy as np
import pytest

import logitkit as lk
from logitkit import _linear
from logitkit import reference as ref

N, H, V = 29, 6, 23


def make_inputs(seed: int, n: int = N, h: int = H, v: int = V, dtype=np.float64):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, h)).astype(dtype)
    w = (rng.standard_normal((v, h)) * 0.8).astype(dtype)
    b = (rng.standard_normal(v) * 0.5).astype(dtype)
    t = rng.integers(0, v, n)
    t[::5] = -100  # some rows ignored
    return x, w, b, t


def unfused(x, w, b, t, reduction="mean", grad_output=None, class_weight=None, **options):
    """Loss and gradients through the full logits, in float64, by the chain rule."""
    x, w = x.astype(np.float64), w.astype(np.float64)
    z = x @ w.T
    if b is not None:
        z = z + b.astype(np.float64)
    loss, g = ref.cross_entropy_with_grad(
        z, t, weight=class_weight, reduction=reduction, grad_output=grad_output, **options
    )
    return loss, g @ w, g.T @ x, (None if b is None else g.sum(axis=0))


OPTION_SETS = {
    "plain": {},
    "smoothing": {"label_smoothing": 0.2},
    "z_loss": {"z_loss": 1e-2},
    "softcap": {"softcap": 2.5},
    "class_weight": {"class_weight": "w"},
    "all": {"label_smoothing": 0.1, "z_loss": 1e-3, "softcap": 3.0, "class_weight": "w"},
}
CHUNKINGS = {
    "default": {},
    "rows": {"chunk_size": 4},
    "rows+classes": {"chunk_size": 7, "vocab_chunk_size": 5},
    "one-class-blocks": {"chunk_size": 30, "vocab_chunk_size": 1},
}
CASES = list(itertools.product(OPTION_SETS, ["mean", "sum", "none"], CHUNKINGS, [True, False]))


def resolve(options, rng):
    out = dict(options)
    if out.get("class_weight") == "w":
        out["class_weight"] = rng.uniform(0.2, 2.0, V)
    return out


@pytest.mark.parametrize("opts, reduction, chunking, with_bias", CASES)
def test_matches_unfused_float64(opts, reduction, chunking, with_bias):
    seed = CASES.index((opts, reduction, chunking, with_bias))
    rng = np.random.default_rng(1000 + seed)
    x, w, b, t = make_inputs(seed)
    if not with_bias:
        b = None
    options = resolve(OPTION_SETS[opts], rng)
    # a non-uniform upstream gradient for "none", with negative and zero entries
    go = rng.standard_normal(N) if reduction == "none" else 0.7
    if reduction == "none":
        go[1] = 0.0
    want = unfused(x, w, b, t, reduction, go, **options)
    got = lk.linear_cross_entropy_with_grad(
        x, w, t, bias=b, reduction=reduction, grad_output=go, **options, **CHUNKINGS[chunking]
    )
    loss_only = lk.linear_cross_entropy(
        x, w, t, bias=b, reduction=reduction, **options, **CHUNKINGS[chunking]
    )
    np.testing.assert_allclose(got[0], want[0], rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(loss_only, want[0], rtol=1e-12, atol=1e-13)
    for name, g, e in zip(["grad_hidden", "grad_weight"], got[1:3], want[1:3], strict=True):
        assert g.dtype == np.float64 and g.shape == e.shape, name
        np.testing.assert_allclose(g, e, rtol=1e-11, atol=1e-13, err_msg=name)
    if with_bias:
        np.testing.assert_allclose(got[3], want[3], rtol=1e-11, atol=1e-13)
    else:
        assert got[3] is None


@pytest.mark.parametrize("chunking", ["rows", "rows+classes"])
def test_finite_differences(chunking):
    """Every gradient against central differences of the loss, every option on."""
    rng = np.random.default_rng(7)
    n, h, v = 4, 3, 5
    x = rng.standard_normal((n, h))
    w = rng.standard_normal((v, h))
    b = rng.standard_normal(v)
    t = np.array([0, 4, -100, 2])
    go = np.array([0.3, -1.2, 5.0, 2.0])
    opts = dict(
        label_smoothing=0.15,
        z_loss=0.05,
        softcap=1.5,
        class_weight=rng.uniform(0.5, 2.0, v),
        reduction="none",
        **{"rows": {"chunk_size": 3}, "rows+classes": {"chunk_size": 3, "vocab_chunk_size": 2}}[
            chunking
        ],
    )

    def objective(xx, ww, bb):
        return float(np.dot(go, lk.linear_cross_entropy(xx, ww, t, bias=bb, **opts)))

    _, gx, gw, gb = lk.linear_cross_entropy_with_grad(x, w, t, bias=b, grad_output=go, **opts)
    eps = 1e-6
    for arr, grad, name in [(x, gx, "hidden"), (w, gw, "weight"), (b, gb, "bias")]:
        numeric = np.empty_like(arr)
        for idx in np.ndindex(arr.shape):
            saved = arr[idx]
            arr[idx] = saved + eps
            up = objective(x, w, b)
            arr[idx] = saved - eps
            down = objective(x, w, b)
            arr[idx] = saved
            numeric[idx] = (up - down) / (2 * eps)
        np.testing.assert_allclose(grad, numeric, rtol=1e-6, atol=1e-8, err_msg=name)


TORCH_CASES = list(
    itertools.product([False, True], [0.0, 0.25], ["mean", "sum", "none"], [None, 4])
)


@pytest.mark.parametrize("weighted, smoothing, reduction, vocab_chunk", TORCH_CASES)
def test_matches_torch_autograd(weighted, smoothing, reduction, vocab_chunk):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    seed = TORCH_CASES.index((weighted, smoothing, reduction, vocab_chunk))
    rng = np.random.default_rng(50 + seed)
    x, w, b, t = make_inputs(seed)
    cw = rng.uniform(0.2, 2.0, V) if weighted else None
    go = rng.standard_normal(N) if reduction == "none" else 1.3
    xt, wt, bt = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    loss_t = F.cross_entropy(
        F.linear(xt, wt, bt),
        torch.tensor(t),
        weight=None if cw is None else torch.tensor(cw),
        reduction=reduction,
        label_smoothing=smoothing,
    )
    (loss_t * torch.tensor(go, dtype=torch.float64)).sum().backward()
    loss, gx, gw, gb = lk.linear_cross_entropy_with_grad(
        x,
        w,
        t,
        bias=b,
        class_weight=cw,
        label_smoothing=smoothing,
        reduction=reduction,
        grad_output=go,
        chunk_size=6,
        vocab_chunk_size=vocab_chunk,
    )
    np.testing.assert_allclose(loss, loss_t.detach().numpy(), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(gx, xt.grad.numpy(), rtol=1e-11, atol=1e-14)
    np.testing.assert_allclose(gw, wt.grad.numpy(), rtol=1e-11, atol=1e-14)
    np.testing.assert_allclose(gb, bt.grad.numpy(), rtol=1e-11, atol=1e-14)


def test_none_reduction_weight_grad_follows_each_rows_upstream_gradient():
    """grad_weight = sum_i g_i d(loss_i)/d(weight): checked one row at a time."""
    x, w, b, t = make_inputs(3)
    go = np.zeros(N)
    total = np.zeros_like(w)
    for i in range(N):
        go[:] = 0.0
        go[i] = 1.0 + i
        _, _, gw_i, _ = lk.linear_cross_entropy_with_grad(
            x, w, t, reduction="none", grad_output=go, chunk_size=5
        )
        total += gw_i
    go = 1.0 + np.arange(N)
    _, _, gw, _ = lk.linear_cross_entropy_with_grad(
        x, w, t, reduction="none", grad_output=go, chunk_size=5
    )
    np.testing.assert_allclose(gw, total, rtol=1e-12, atol=1e-14)
    # and not what a uniform upstream gradient gives
    _, _, gw_uniform, _ = lk.linear_cross_entropy_with_grad(
        x, w, t, reduction="none", grad_output=np.full(N, go.mean()), chunk_size=5
    )
    assert not np.allclose(gw, gw_uniform)


def test_frozen_head_skips_weight_and_bias_grads():
    x, w, b, t = make_inputs(4)
    full = lk.linear_cross_entropy_with_grad(x, w, t, bias=b, chunk_size=8)
    for vc in (None, 6):
        loss, gx, gw, gb = lk.linear_cross_entropy_with_grad(
            x, w, t, bias=b, compute_weight_grad=False, chunk_size=8, vocab_chunk_size=vc
        )
        assert gw is None and gb is None
        np.testing.assert_allclose(loss, full[0], rtol=1e-13)
        np.testing.assert_allclose(gx, full[1], rtol=1e-12, atol=1e-15)


def test_micro_batches_summed_then_divided_by_global_count_equal_the_full_mean():
    x, w, b, t = make_inputs(5)
    t[:12] = -100  # the micro-batches count different numbers of tokens
    full = lk.linear_cross_entropy_with_grad(x, w, t, bias=b)
    count = np.count_nonzero(t != -100)
    parts = [
        lk.linear_cross_entropy_with_grad(x[s], w, t[s], bias=b, reduction="sum")
        for s in (slice(0, 10), slice(10, N))
    ]
    np.testing.assert_allclose((parts[0][0] + parts[1][0]) / count, full[0], rtol=1e-13)
    np.testing.assert_allclose(
        np.concatenate([parts[0][1], parts[1][1]]) / count, full[1], rtol=1e-12, atol=1e-16
    )
    np.testing.assert_allclose((parts[0][2] + parts[1][2]) / count, full[2], rtol=1e-12)
    np.testing.assert_allclose((parts[0][3] + parts[1][3]) / count, full[3], rtol=1e-12)
    # the mean of the micro-batch means is not the global mean here
    means = [lk.linear_cross_entropy(x[s], w, t[s], bias=b) for s in (slice(0, 10), slice(10, N))]
    assert not np.isclose(np.mean(means), full[0])


def test_float32_against_float64():
    x, w, b, t = make_inputs(6, n=300, h=64, v=1000, dtype=np.float32)
    opts = dict(label_smoothing=0.1, z_loss=1e-3, softcap=20.0)
    want = unfused(x, w, b, t, **opts)
    for vc in (None, 300):
        got = lk.linear_cross_entropy_with_grad(
            x, w, t, bias=b, chunk_size=64, vocab_chunk_size=vc, **opts
        )
        assert all(a.dtype == np.float32 for a in got)
        np.testing.assert_allclose(got[0], want[0], rtol=1e-5)
        for g, e in zip(got[1:], want[1:], strict=True):
            np.testing.assert_allclose(g, e, rtol=1e-3, atol=1e-5 * np.abs(e).max())


@pytest.mark.parametrize("name", ["bfloat16", "float16"])
def test_16bit_inputs_accumulate_in_float32(name):
    if name == "bfloat16":
        dtype = np.dtype(pytest.importorskip("ml_dtypes").bfloat16)
    else:
        dtype = np.dtype(np.float16)
    x, w, b, t = make_inputs(8, n=200, h=64, v=500)
    x16, w16, b16 = (a.astype(dtype) for a in (x, w, b))
    # the oracle takes the same rounded inputs, in float64
    want = unfused(*(a.astype(np.float64) for a in (x16, w16, b16)), t, reduction="sum")
    for vc in (None, 128):
        got = lk.linear_cross_entropy_with_grad(
            x16, w16, t, bias=b16, reduction="sum", chunk_size=48, vocab_chunk_size=vc
        )
        assert all(a.dtype == dtype for a in got)
        eps = float(np.finfo(dtype).eps)
        np.testing.assert_allclose(float(got[0]), want[0], rtol=eps)
        for g, e in zip(got[1:], want[1:], strict=True):
            # one rounding of a float32-accumulated value to the 16-bit format
            err = np.abs(g.astype(np.float64) - e)
            assert np.all(err <= eps * np.abs(e) + 1e-4 * np.abs(e).max())
        assert got[0] == lk.linear_cross_entropy(
            x16, w16, t, bias=b16, reduction="sum", chunk_size=48, vocab_chunk_size=vc
        )


def test_leading_axes_and_loss_shape():
    x, w, b, t = make_inputs(9, n=24)
    x3, t3 = x.reshape(2, 3, 4, H), t.reshape(2, 3, 4)
    go = np.random.default_rng(0).standard_normal((2, 3, 4))
    loss, gx, gw, gb = lk.linear_cross_entropy_with_grad(
        x3, w, t3, bias=b, reduction="none", grad_output=go
    )
    flat = lk.linear_cross_entropy_with_grad(
        x, w, t, bias=b, reduction="none", grad_output=go.reshape(-1)
    )
    assert loss.shape == (2, 3, 4) and gx.shape == x3.shape
    np.testing.assert_array_equal(loss.reshape(-1), flat[0])
    np.testing.assert_array_equal(gx.reshape(x.shape), flat[1])
    np.testing.assert_allclose(gw, flat[2], rtol=1e-14)
    # a broadcast upstream gradient for "none"
    loss_b, gx_b, _, _ = lk.linear_cross_entropy_with_grad(
        x3, w, t3, reduction="none", grad_output=go[:, :, :1]
    )
    want = unfused(x, w, None, t, "none", np.broadcast_to(go[:, :, :1], t3.shape).reshape(-1))
    np.testing.assert_allclose(gx_b.reshape(x.shape), want[1], rtol=1e-12, atol=1e-15)


def test_a_single_row():
    x, w, b, t = make_inputs(18)
    loss, gx, gw, gb = lk.linear_cross_entropy_with_grad(x[2], w, t[2], bias=b, reduction="none")
    want = unfused(x[2:3], w, b, t[2:3], "none")
    assert loss.shape == () and gx.shape == (H,)
    np.testing.assert_allclose(loss, want[0][0], rtol=1e-13)
    np.testing.assert_allclose(gx, want[1][0], rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(gw, want[2], rtol=1e-12, atol=1e-15)


def test_all_rows_ignored_and_no_rows():
    x, w, b, t = make_inputs(10)
    t[:] = -100
    loss, gx, gw, gb = lk.linear_cross_entropy_with_grad(x, w, t, bias=b)
    assert np.isnan(loss)  # a mean over nothing, as in PyTorch
    assert not gx.any() and not gw.any() and not gb.any()
    assert lk.linear_cross_entropy(x, w, t, reduction="sum") == 0.0
    empty = lk.linear_cross_entropy_with_grad(x[:0], w, t[:0], bias=b, reduction="sum")
    assert empty[0] == 0.0 and empty[1].shape == (0, H)
    assert not empty[2].any() and not empty[3].any()
    assert lk.linear_cross_entropy(x[:0], w, t[:0], reduction="none").shape == (0,)


def test_ignore_index_inside_the_class_range():
    x, w, b, t = make_inputs(11)
    t[t == -100] = 0
    got = lk.linear_cross_entropy_with_grad(x, w, t, ignore_index=0, vocab_chunk_size=4)
    want = unfused(x, w, None, t, ignore_index=0)
    for g, e in zip(got[:3], want[:3], strict=True):
        np.testing.assert_allclose(g, e, rtol=1e-12, atol=1e-15)


def test_inputs_are_not_modified():
    x, w, b, t = make_inputs(12)
    cw = np.linspace(0.5, 1.5, V)
    copies = [a.copy() for a in (x, w, b, t, cw)]
    go = np.linspace(-1, 1, N)
    for vc in (None, 5):
        lk.linear_cross_entropy_with_grad(
            x,
            w,
            t,
            bias=b,
            class_weight=cw,
            reduction="none",
            grad_output=go,
            softcap=2.0,
            chunk_size=4,
            vocab_chunk_size=vc,
        )
    for a, c in zip((x, w, b, t, cw), copies, strict=True):
        np.testing.assert_array_equal(a, c)


def test_large_vocabulary_splits_the_classes_by_default(monkeypatch):
    """With a small chunk budget the default chunking splits the classes, same results."""
    x, w, b, t = make_inputs(13, n=70, v=300)
    want = unfused(x, w, b, t, label_smoothing=0.1)
    monkeypatch.setattr(_linear, "_CHUNK_BYTES", 32 * 8 * 50)  # 32 rows of 50 float64 classes
    st = _linear._setup("f", x, w, t, b, "mean", -100, 0.1, 0.0, None, None, None, None, None)
    assert (st.rows, st.vocab) == (32, 50)
    got = lk.linear_cross_entropy_with_grad(x, w, t, bias=b, label_smoothing=0.1)
    for g, e in zip(got, want, strict=True):
        np.testing.assert_allclose(g, e, rtol=1e-12, atol=1e-15)


def test_weight_gradient_without_scipy(monkeypatch):
    x, w, b, t = make_inputs(14, v=50)
    want = unfused(x, w, b, t)
    monkeypatch.setattr(_linear, "_scipy_blas", None)
    monkeypatch.setattr(_linear, "_SLAB", 16)  # several slabs, the last one partial
    for vc in (None, 20):
        got = lk.linear_cross_entropy_with_grad(x, w, t, bias=b, chunk_size=8, vocab_chunk_size=vc)
        for g, e in zip(got, want, strict=True):
            np.testing.assert_allclose(g, e, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("blas", ["scipy", "numpy"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_product_takes_every_operand_layout(blas, dtype, monkeypatch):
    """out = a @ b and out += a @ b into a C-contiguous out, for operands in C order, in
    Fortran order (transposed views) and strided, against NumPy's matmul in float64."""
    if blas == "numpy":
        monkeypatch.setattr(_linear, "_scipy_blas", None)
        monkeypatch.setattr(_linear, "_SLAB", 4)
    rng = np.random.default_rng(3)
    base_a = rng.standard_normal((9, 14)).astype(dtype)
    base_b = rng.standard_normal((14, 7)).astype(dtype)
    layouts_a = {
        "C": base_a,
        "F": np.asfortranarray(base_a),
        "strided": np.repeat(base_a, 2, 1)[:, ::2],
    }
    layouts_b = {
        "C": base_b,
        "F": np.asfortranarray(base_b),
        "strided": np.repeat(base_b, 2, 0)[::2],
    }
    want = base_a.astype(np.float64) @ base_b.astype(np.float64)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    for a in layouts_a.values():
        for b in layouts_b.values():
            out = np.full((9, 7), np.nan, dtype=dtype)  # not read without accumulate
            _linear._product(out, a, b)
            np.testing.assert_allclose(out, want, rtol=tol, atol=tol)
            _linear._product(out, a, b, accumulate=True)
            np.testing.assert_allclose(out, 2 * want, rtol=tol, atol=tol)
            assert np.array_equal(a, base_a) and np.array_equal(b, base_b)


def test_peak_memory_is_one_chunk_of_logits():
    """NumPy allocations beyond the inputs: the outputs, one chunk, and O(N) row values."""
    n, v, rows = 1024, 2048, 64
    x, w, _, t = make_inputs(15, n=n, h=16, v=v, dtype=np.float32)
    logits_bytes = n * v * 4
    outputs = x.nbytes + w.nbytes
    for vc, block in ((None, rows * v * 4), (256, rows * 256 * 4)):
        opts = dict(chunk_size=rows, vocab_chunk_size=vc, threads=1)
        lk.linear_cross_entropy_with_grad(x, w, t, **opts)
        tracemalloc.start()
        try:
            lk.linear_cross_entropy_with_grad(x, w, t, **opts)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert peak < outputs + 2 * block + 128 * 1024, (vc, peak)
        assert peak < logits_bytes / 4


ERRORS = [
    (
        dict(hidden=np.zeros(3)),
        ValueError,
        r"hidden's last axis \(3\) must match weight's features",
    ),
    (dict(hidden=np.float64(1.0)), ValueError, "hidden must have a feature axis"),
    (dict(weight=np.zeros((V, H, 1))), ValueError, r"weight must be 2-D \(classes, features\)"),
    (dict(weight=np.zeros((0, H))), ValueError, "weight must have at least one class"),
    (
        dict(weight=np.zeros((V, H), np.float32)),
        TypeError,
        r"weight must have hidden's dtype \(float64\), got float32",
    ),
    (
        dict(hidden=np.zeros((N, H), np.int64)),
        TypeError,
        "hidden must be a floating array .* got int64",
    ),
    (dict(target=np.zeros(N)), TypeError, "target must be integer class indices, got float64"),
    (
        dict(target=np.zeros(N - 1, int)),
        ValueError,
        r"target must have shape \(29,\) .* got \(28,\)",
    ),
    (dict(target=np.full(N, V)), IndexError, r"target\[0\] = 23 is out of range for 23 classes"),
    (
        dict(bias=np.zeros(V + 1)),
        ValueError,
        r"bias must have shape \(23,\) \(one per class\), got \(24,\)",
    ),
    (dict(bias=np.zeros(V, np.float32)), TypeError, r"bias must have hidden's dtype"),
    (dict(class_weight=np.ones(3)), ValueError, r"class_weight must have shape \(23,\)"),
    (dict(reduction="avg"), ValueError, "reduction must be one of"),
    (dict(label_smoothing=1.5), ValueError, r"label_smoothing must be in \[0, 1\], got 1.5"),
    (dict(label_smoothing="a"), TypeError, "label_smoothing must be a real number, got 'a'"),
    (
        dict(softcap=[1.0, 2.0]),
        TypeError,
        r"softcap must be None or a number > 0 \(inf: no cap\), got \[1.0, 2.0\]",
    ),
    (dict(z_loss=-1.0), ValueError, "z_loss must be a finite number >= 0, got -1.0"),
    (
        dict(softcap=0.0),
        ValueError,
        r"softcap must be None or a number > 0 \(inf: no cap\), got 0.0",
    ),
    (dict(ignore_index=1.5), TypeError, "ignore_index must be an int"),
    (dict(chunk_size=0), ValueError, "chunk_size must be a positive int or None, got 0"),
    (dict(chunk_size=2.5), TypeError, "chunk_size must be a positive int or None, got float"),
    (
        dict(vocab_chunk_size=True),
        TypeError,
        "vocab_chunk_size must be a positive int or None, got bool",
    ),
    (dict(threads=0), ValueError, "threads must be a positive int or None, got 0"),
]


@pytest.mark.parametrize("func", ["linear_cross_entropy", "linear_cross_entropy_with_grad"])
@pytest.mark.parametrize("bad, exc, message", ERRORS)
def test_bad_arguments_name_the_function_and_argument(func, bad, exc, message):
    x, w, _, t = make_inputs(16)
    t[:] = np.arange(N) % V
    args = dict(hidden=x, weight=w, target=t) | bad
    positional = [args.pop(k) for k in ("hidden", "weight", "target")]
    with pytest.raises(exc, match=rf"^{func}\(\): {message}"):
        getattr(lk, func)(*positional, **args)


def test_bad_grad_output_and_flag():
    x, w, _, t = make_inputs(17)
    f = lk.linear_cross_entropy_with_grad
    with pytest.raises(
        ValueError, match=r"grad_output must have the loss's shape \(29,\), got \(3,\)"
    ):
        f(x, w, t, reduction="none", grad_output=np.ones(3))
    with pytest.raises(ValueError, match=r"grad_output must be a scalar for reduction='mean'"):
        f(x, w, t, grad_output=np.ones(N))
    with pytest.raises(TypeError, match="compute_weight_grad must be a bool, got 'no'"):
        f(x, w, t, compute_weight_grad="no")


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_reference_twin_agrees(reduction):
    x, w, b, t = make_inputs(19)
    x3, t3 = x[:24].reshape(4, 6, H), t[:24].reshape(4, 6)
    rng = np.random.default_rng(19)
    go = rng.standard_normal((4, 6)) if reduction == "none" else 0.5
    opts = dict(
        bias=b,
        reduction=reduction,
        label_smoothing=0.1,
        z_loss=1e-3,
        softcap=4.0,
        class_weight=rng.uniform(0.5, 1.5, V),
    )
    got = lk.linear_cross_entropy_with_grad(x3, w, t3, grad_output=go, vocab_chunk_size=6, **opts)
    want = ref.linear_cross_entropy_with_grad(x3, w, t3, grad_output=go, **opts)
    for g, e in zip(got, want, strict=True):
        assert g.shape == e.shape
        np.testing.assert_allclose(g, e, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(
        lk.linear_cross_entropy(x3, w, t3, **opts),
        ref.linear_cross_entropy(x3, w, t3, **opts),
        rtol=1e-12,
    )
    _, _, gw, gb = ref.linear_cross_entropy_with_grad(x3, w, t3, compute_weight_grad=False, **opts)
    assert gw is None and gb is None
