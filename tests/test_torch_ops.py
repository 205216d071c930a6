"""logitkit.torch: the custom operators against PyTorch's own functions and autograd."""

from __future__ import annotations

import inspect
import os
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")
lkt = pytest.importorskip("logitkit.torch")
F = torch.nn.functional
F64 = torch.float64


def _gen(seed):
    return torch.Generator().manual_seed(seed)


def randn(*shape, seed=0, dtype=F64, scale=2.0):
    return (torch.randn(*shape, generator=_gen(seed), dtype=F64) * scale).to(dtype)


def probs(*shape, seed=1, dim=1):
    return torch.softmax(randn(*shape, seed=seed), dim=dim)


def test_importing_logitkit_does_not_import_torch():
    code = "import sys, logitkit; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


# --------------------------------------------------------------------------------------------
# softmax, log_softmax, logsumexp


@pytest.mark.parametrize("dim", [0, 1, -1])
@pytest.mark.parametrize(
    "name, ref", [("softmax", torch.softmax), ("log_softmax", torch.log_softmax)]
)
def test_softmax_family_values_and_gradcheck(name, ref, dim):
    x = randn(5, 6, seed=dim + 3).requires_grad_()
    np.testing.assert_allclose(
        getattr(lkt, name)(x, dim).detach(), ref(x, dim).detach(), rtol=1e-13, atol=1e-15
    )
    assert torch.autograd.gradcheck(lambda t: getattr(lkt, name)(t, dim), (x,))


def test_softmax_family_matches_torch_autograd_on_strided_input_and_expanded_grad():
    base = randn(6, 9, seed=4)
    for name, ref in [("softmax", torch.softmax), ("log_softmax", torch.log_softmax)]:
        x = base.t()[::2].detach().requires_grad_()  # neither C nor F contiguous
        w = randn(x.shape[1], seed=5)
        # sum() sends back an expanded gradient: stride 0 along every axis
        (getattr(lkt, name)(x, 1) * w).sum().backward()
        x_ref = x.detach().clone().requires_grad_()
        (ref(x_ref, 1) * w).sum().backward()
        np.testing.assert_allclose(x.grad, x_ref.grad, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("dim, keepdim", [(1, False), (0, True), ((0, 2), False), ((2, 0), True)])
def test_logsumexp_values_and_gradcheck(dim, keepdim):
    x = randn(3, 4, 5, seed=6).requires_grad_()
    np.testing.assert_allclose(
        lkt.logsumexp(x, dim, keepdim).detach(),
        torch.logsumexp(x, dim, keepdim).detach(),
        rtol=1e-14,
    )
    assert torch.autograd.gradcheck(lambda t: lkt.logsumexp(t, dim, keepdim), (x,))


def test_zero_dim_input_is_one_element_row():
    x = torch.tensor(3.0, dtype=F64, requires_grad=True)
    assert lkt.softmax(x, 0).item() == 1.0
    assert lkt.log_softmax(x, -1).item() == 0.0
    assert lkt.logsumexp(x, 0).item() == 3.0
    lkt.logsumexp(x, 0).backward()
    assert x.grad.item() == 1.0


def test_softmax_dtype_argument_casts_first():
    x = randn(2, 5, dtype=torch.float32)
    y = lkt.softmax(x, 1, dtype=F64)
    assert y.dtype == F64
    np.testing.assert_allclose(y, torch.softmax(x.double(), 1), rtol=1e-14)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_storage_dtypes_are_kept_and_rounded_from_exact(dtype):
    x = randn(7, 33, seed=7, dtype=dtype).t()  # strided
    exact = torch.softmax(x.double(), 0)
    y = lkt.softmax(x, 0)
    assert y.dtype == dtype and y.shape == x.shape
    # 16-bit: computed in float32 and rounded once, so within half a unit of the dtype (plus
    # float32's few ulps); float32 itself: a few ulps
    eps = torch.finfo(dtype).eps * (4 if dtype == torch.float32 else 1)
    tiny = torch.finfo(dtype).smallest_normal * torch.finfo(dtype).eps  # subnormal spacing
    assert ((y.double() - exact).abs() <= eps * exact.abs() + tiny).all()
    lse = lkt.logsumexp(x, 1)
    np.testing.assert_allclose(lse.double(), torch.logsumexp(x.double(), 1), rtol=eps, atol=0)


def test_tensors_cross_to_numpy_without_a_copy():
    base = randn(8, 10, dtype=torch.float32)
    for t in [base, base.t(), base[::2, 1:], base.to(torch.bfloat16).t(), base.half()[:, ::3]]:
        a = lkt._np(t)
        assert a.__array_interface__["data"][0] == t.data_ptr()
        assert a.strides == tuple(s * t.element_size() for s in t.stride())
        np.testing.assert_array_equal(a.astype(np.float32), t.float().numpy())


def test_inputs_are_not_modified_and_gradients_are_fresh_tensors():
    x = randn(4, 6, seed=8).requires_grad_()
    t = torch.tensor([0, 5, 2, 2])
    before = x.detach().clone()
    loss = lkt.cross_entropy(x, t)
    loss.backward()
    torch.testing.assert_close(x.detach(), before, rtol=0, atol=0)
    assert x.grad.untyped_storage().data_ptr() != x.untyped_storage().data_ptr()
    # a second backward accumulates, as with any autograd function
    first = x.grad.clone()
    lkt.cross_entropy(x, t).backward()
    torch.testing.assert_close(x.grad, 2 * first)


@pytest.mark.skipif(
    bool(os.environ.get("LOGITKIT_SANITIZED")),
    reason="memory use under a sanitizer measures the sanitizer",
)
def test_large_results_are_blocks_of_the_buffer_cache():
    import logitkit as lk

    # Start from an empty cache with room to spare: blocks that earlier tests gave back
    # would otherwise be evicted when this one returns, and the counts would not add up.
    old = lk.set_buffer_cache_limit(0)
    lk.set_buffer_cache_limit(64 << 20)
    try:
        x = randn(64, 65536, seed=36, dtype=torch.float32).requires_grad_()  # 16 MiB
        t = torch.randint(0, 65536, (64,), generator=_gen(37))
        lkt.cross_entropy(x, t).backward()
        (expected,) = torch.autograd.grad(F.cross_entropy(x, t), x)
        assert x.grad.is_contiguous()
        torch.testing.assert_close(x.grad, expected, rtol=1e-5, atol=1e-9)
        cached = lk.runtime_info()["buffer_cache_bytes"]
        x.grad = None  # the block goes back to the cache ...
        assert lk.runtime_info()["buffer_cache_bytes"] == cached + x.nbytes
        y = lkt.softmax(x.detach(), 1)  # ... and the next large result takes it
        assert lk.runtime_info()["buffer_cache_bytes"] == cached
        torch.testing.assert_close(y, torch.softmax(x.detach(), 1), rtol=1e-5, atol=1e-9)
        lk.set_buffer_cache_limit(0)
        z = lkt.log_softmax(x.detach(), 1)  # the cache off: PyTorch's allocator
        assert lk.runtime_info()["buffer_cache_bytes"] == 0
        torch.testing.assert_close(z, torch.log_softmax(x.detach(), 1), rtol=1e-5, atol=1e-6)
    finally:
        lk.set_buffer_cache_limit(old)


def test_changing_saved_logits_in_place_is_caught_by_autograd():
    # the backward pass reads the logits again: autograd's version counter must see a later
    # in-place change (silently wrong gradients otherwise)
    x = randn(4, 6, seed=35).requires_grad_()
    z = x * 1.0
    loss = lkt.cross_entropy(z, torch.tensor([0, 1, 2, 3]))
    with torch.no_grad():
        z.mul_(2)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        loss.backward()


def test_eager_calls_and_operator_calls_give_the_same_tensors():
    # eager calls autograd does not record skip the dispatcher (lkt._run); the operator itself
    # must give the same bits, values and gradients
    x = randn(6, 9, seed=36)
    t = torch.tensor([0, 8, 3, 3, 1, 2])
    args = (None, -100, "mean", 0.1, "pytorch", 0.0, None, None)
    assert torch.equal(
        lkt.cross_entropy(x, t, label_smoothing=0.1),
        torch.ops.logitkit.cross_entropy(x, t, *args),
    )
    assert torch.equal(lkt.softmax(x, 1), torch.ops.logitkit.softmax(x, 1))
    g = torch.tensor(0.5)
    via_op = torch.ops.logitkit.cross_entropy_backward(g, x, t, *args, False)[0]
    xg = x.clone().requires_grad_()
    (lkt.cross_entropy(xg, t, label_smoothing=0.1) * 0.5).backward()
    assert torch.equal(xg.grad, via_op)


_CE_ARGS = (None, -100, "mean", 0.1, "pytorch", 0.0, None, None)
_RECORDED_CALLS = {
    # name: (the public function, the operator with the same arguments, needs a soft target)
    "softmax": (lambda z, t: lkt.softmax(z, 1), lambda z, t: torch.ops.logitkit.softmax(z, 1)),
    "log_softmax": (
        lambda z, t: lkt.log_softmax(z, 0),
        lambda z, t: torch.ops.logitkit.log_softmax(z, 0),
    ),
    "logsumexp": (
        lambda z, t: lkt.logsumexp(z, 1, keepdim=True),
        lambda z, t: torch.ops.logitkit.logsumexp(z, [1], True),
    ),
    "cross_entropy": (
        lambda z, t: lkt.cross_entropy(z, t, label_smoothing=0.1),
        lambda z, t: torch.ops.logitkit.cross_entropy(z, t, *_CE_ARGS),
    ),
    "bce": (
        lambda z, t: lkt.binary_cross_entropy_with_logits(z, t, reduction="sum"),
        lambda z, t: torch.ops.logitkit.binary_cross_entropy_with_logits(
            z, t, None, None, "sum", 0.0
        ),
    ),
}


@pytest.mark.parametrize("name", sorted(_RECORDED_CALLS))
def test_recorded_eager_calls_give_the_operators_values_and_gradients(name):
    # in eager mode a call that autograd records runs the operator's formula as an
    # autograd.Function (lkt._EAGER_AUTOGRAD): its graph node, values and gradients (the soft
    # target's too) must be the operator's, bit for bit
    ours, op = _RECORDED_CALLS[name]
    x = randn(5, 7, seed=38)
    t = probs(5, 7, seed=39) if name in ("cross_entropy", "bce") else None
    results = []
    for call in (ours, op):
        xg = x.clone().requires_grad_()
        tg = None if t is None else t.clone().requires_grad_()
        y = call(xg, tg)
        upstream = torch.randn(y.shape, generator=_gen(40), dtype=F64)
        grads = torch.autograd.grad(y, [xg] if tg is None else [xg, tg], upstream)
        results.append((y.detach(), grads, type(y.grad_fn).__name__))
    (y_ours, g_ours, node_ours), (y_op, g_op, node_op) = results
    assert node_ours.endswith("_eagerBackward") and not node_op.endswith("_eagerBackward")
    assert torch.equal(y_ours, y_op)
    for a, b in zip(g_ours, g_op, strict=True):
        assert torch.equal(a, b)


def test_vmap_and_modes_see_the_operator():
    x = randn(4, 5, seed=37)
    torch.testing.assert_close(torch.vmap(lambda z: lkt.softmax(z, 0))(x), torch.softmax(x, 1))
    from torch._subclasses.fake_tensor import FakeTensorMode

    with FakeTensorMode():
        fake = lkt.log_softmax(torch.empty(3, 4), 1)
    assert type(fake).__name__ == "FakeTensor" and fake.shape == (3, 4)


# --------------------------------------------------------------------------------------------
# cross_entropy: values against PyTorch (or its formula), gradients by gradcheck


def _ce_oracle(x, t, *, z_loss=0.0, softcap=None, smoothing="pytorch", where=None, **kw):
    """The same loss written with PyTorch's own functions."""
    z = x if softcap is None else softcap * torch.tanh(x / softcap)
    a = kw.pop("label_smoothing", 0.0)
    if smoothing == "megatron":
        a = a * z.shape[1] / (z.shape[1] - 1)
    reduction = kw.pop("reduction", "mean")
    if where is not None:
        t = t.masked_fill(~where, kw.get("ignore_index", -100))
    rows = F.cross_entropy(z, t, reduction="none", label_smoothing=a, **kw)
    lse = torch.logsumexp(z, 1)
    counted = t != kw.get("ignore_index", -100)
    if t.is_floating_point():
        counted = torch.ones_like(lse, dtype=torch.bool)
    rows = rows + z_loss * torch.where(counted, lse * lse, 0.0)
    if reduction == "none":
        return rows
    if reduction == "sum":
        return rows.sum()
    w = kw.get("weight")
    if t.is_floating_point() or w is None:
        return rows.sum() / counted.sum()
    return rows.sum() / torch.where(counted, w[t.clamp(min=0)], 0.0).sum()


CE_CASES = {
    "plain": {},
    "weight": {"weight": torch.rand(5, generator=_gen(20), dtype=F64) + 0.5},
    "ignore_index": {"ignore_index": 3},
    "sum": {"reduction": "sum"},
    "none": {"reduction": "none"},
    "label_smoothing": {"label_smoothing": 0.2},
    "weight_smoothing_sum": {
        "weight": torch.rand(5, generator=_gen(21), dtype=F64) + 0.5,
        "label_smoothing": 0.3,
        "reduction": "sum",
    },
    "megatron": {"label_smoothing": 0.2, "smoothing": "megatron"},
    "z_loss": {"z_loss": 1e-2},
    "softcap": {"softcap": 3.0},
    "everything": {
        "weight": torch.rand(5, generator=_gen(22), dtype=F64) + 0.5,
        "label_smoothing": 0.1,
        "z_loss": 1e-3,
        "softcap": 4.0,
        "ignore_index": 1,
    },
}


@pytest.mark.parametrize("kdim", [False, True], ids=["NC", "NCd1d2"])
@pytest.mark.parametrize("case", list(CE_CASES))
def test_cross_entropy_index_targets(case, kdim):
    kw = dict(CE_CASES[case])
    shape = (4, 5, 3, 2) if kdim else (6, 5)
    rows = (4, 3, 2) if kdim else (6,)
    x = randn(*shape, seed=list(CE_CASES).index(case)).requires_grad_()
    t = torch.randint(0, 5, rows, generator=_gen(9))
    t.view(-1)[::4] = kw.get("ignore_index", -100)  # some rows ignored in every case
    got = lkt.cross_entropy(x, t, **kw)
    want = _ce_oracle(x, t, **kw)
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-14)
    # the gradient, against PyTorch's autograd through the oracle and against finite
    # differences
    g = randn(*got.shape, seed=10) if got.ndim else torch.tensor(1.7, dtype=F64)
    (gx,) = torch.autograd.grad(got, x, g)
    (gx_ref,) = torch.autograd.grad(want, x, g)
    torch.testing.assert_close(gx, gx_ref, rtol=1e-11, atol=1e-14)
    assert torch.autograd.gradcheck(lambda z: lkt.cross_entropy(z, t, **kw), (x,))


@pytest.mark.parametrize(
    "case", ["plain", "weight", "sum", "none", "label_smoothing", "megatron", "everything"]
)
def test_cross_entropy_probability_targets_differentiate_both(case):
    kw = {k: v for k, v in CE_CASES[case].items() if k != "ignore_index"}
    x = randn(3, 5, 2, seed=11).requires_grad_()
    y = probs(3, 5, 2, seed=12).requires_grad_()
    got = lkt.cross_entropy(x, y, **kw)
    torch.testing.assert_close(got, _ce_oracle(x, y, **kw), rtol=1e-12, atol=1e-14)
    assert torch.autograd.gradcheck(lambda z, p: lkt.cross_entropy(z, p, **kw), (x, y))


def test_cross_entropy_where_masks_rows():
    x = randn(4, 6, 3, seed=13).requires_grad_()
    t = torch.randint(0, 6, (4, 3), generator=_gen(14))
    where = torch.tensor([True, False, True])  # broadcast to the (4, 3) rows
    for reduction in ["mean", "none"]:
        kw = {"where": where, "reduction": reduction, "z_loss": 1e-2}
        torch.testing.assert_close(
            lkt.cross_entropy(x, t, **kw), _ce_oracle(x, t, **kw), rtol=1e-12, atol=1e-14
        )
        assert torch.autograd.gradcheck(lambda z, kw=kw: lkt.cross_entropy(z, t, **kw), (x,))
    y = probs(4, 6, 3, seed=15).requires_grad_()
    assert torch.autograd.gradcheck(lambda z, p: lkt.cross_entropy(z, p, where=where), (x, y))


def test_cross_entropy_return_stats():
    x = randn(5, 7, 2, seed=38).requires_grad_()
    t = torch.randint(0, 7, (5, 2), generator=_gen(39))
    t[0, 0] = -100
    t[1] = x[1].argmax(0)  # two correct rows at least
    where = torch.tensor([True, True, True, True, False])[:, None]
    loss, stats = lkt.cross_entropy(x, t, softcap=3.0, where=where, return_stats=True)
    assert isinstance(stats, lkt.CrossEntropyStats)
    torch.testing.assert_close(loss, _ce_oracle(x, t, softcap=3.0, where=where), rtol=1e-12, atol=0)
    torch.testing.assert_close(stats.lse, torch.logsumexp(3.0 * torch.tanh(x.detach() / 3.0), 1))
    torch.testing.assert_close(stats.argmax, x.detach().argmax(1))
    counted = (t != -100) & where
    torch.testing.assert_close(stats.correct, (x.detach().argmax(1) == t) & counted)
    expected = ((x.argmax(1) == t) & counted).sum() / counted.sum()
    torch.testing.assert_close(stats.accuracy, expected.double())
    assert not stats.lse.requires_grad
    loss.backward()  # the loss stays differentiable
    y = probs(5, 7, 2, seed=40)
    _, soft = lkt.cross_entropy(x, y, return_stats=True)
    assert soft.correct.tolist() == (x.argmax(1) == y.argmax(1)).tolist()


def test_cross_entropy_one_dim_input():
    x = randn(7, seed=16).requires_grad_()
    t = torch.tensor(3)
    torch.testing.assert_close(lkt.cross_entropy(x, t), F.cross_entropy(x, t), rtol=1e-14, atol=0)
    assert torch.autograd.gradcheck(lambda z: lkt.cross_entropy(z, t), (x,))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_cross_entropy_storage_dtypes(dtype):
    x = randn(16, 40, seed=17, dtype=dtype).requires_grad_()
    t = torch.randint(0, 40, (16,), generator=_gen(18))
    loss = lkt.cross_entropy(x, t, label_smoothing=0.1)
    loss.backward()
    assert loss.dtype == dtype and x.grad.dtype == dtype
    x64 = x.detach().double().requires_grad_()
    ref = F.cross_entropy(x64, t, label_smoothing=0.1)
    ref.backward()
    eps = torch.finfo(dtype).eps
    assert abs(loss.double() - ref).item() <= eps * ref.item()
    # computed in float32 and rounded once per entry
    assert ((x.grad.double() - x64.grad).abs() <= eps * x64.grad.abs() + 1e-7).all()


# --------------------------------------------------------------------------------------------
# binary_cross_entropy_with_logits


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("options", ["plain", "weight", "pos_weight", "smoothing"])
def test_bce_values_and_gradcheck(options, reduction):
    x = randn(4, 3, seed=19).requires_grad_()
    y = torch.rand(4, 3, generator=_gen(20), dtype=F64).requires_grad_()
    kw = {
        "plain": {},
        "weight": {"weight": torch.rand(4, 1, generator=_gen(21), dtype=F64)},
        "pos_weight": {
            "weight": torch.rand(3, generator=_gen(22), dtype=F64),
            "pos_weight": torch.rand(3, generator=_gen(23), dtype=F64) * 3,
        },
        "smoothing": {"label_smoothing": 0.2},
    }[options]
    a = kw.get("label_smoothing", 0.0)
    torch_kw = {k: v for k, v in kw.items() if k != "label_smoothing"}
    want = F.binary_cross_entropy_with_logits(
        x, (1 - a) * y + a / 2, reduction=reduction, **torch_kw
    )
    got = lkt.binary_cross_entropy_with_logits(x, y, reduction=reduction, **kw)
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-14)
    assert torch.autograd.gradcheck(
        lambda z, p: lkt.binary_cross_entropy_with_logits(z, p, reduction=reduction, **kw), (x, y)
    )


def test_bce_keeps_precision_where_torch_cancels():
    x = torch.tensor([-40.0, 800.0, -800.0], dtype=F64)
    got = lkt.binary_cross_entropy_with_logits(x, torch.zeros(3, dtype=F64), reduction="none")
    exact = torch.tensor([np.log1p(np.exp(-40.0)), 800.0, 0.0], dtype=F64)
    torch.testing.assert_close(got, exact, rtol=1e-15, atol=0)


# --------------------------------------------------------------------------------------------
# Bad input


def test_other_devices_are_refused_with_a_clear_message():
    x = torch.empty(2, 3, device="meta")
    with pytest.raises(ValueError, match=r"softmax\(\): input must be a CPU tensor.*'meta'"):
        lkt.softmax(x, 1)
    t = torch.zeros(2, dtype=torch.long, device="meta")
    with pytest.raises(ValueError, match=r"cross_entropy\(\): target must be a CPU tensor"):
        lkt.cross_entropy(randn(2, 3), t)


def test_bad_arguments_raise_named_errors():
    x = randn(2, 3)
    with pytest.raises(TypeError, match=r"softmax\(\): input must be a float32.*got torch.int64"):
        lkt.softmax(torch.ones(2, 3, dtype=torch.long), 1)
    with pytest.raises(TypeError, match=r"log_softmax\(\): input must be a torch.Tensor"):
        lkt.log_softmax(np.ones(3), 0)
    with pytest.raises(IndexError, match=r"softmax\(\): dim 2 is out of range"):
        lkt.softmax(x, 2)
    with pytest.raises(ValueError, match=r"logsumexp\(\): dim \(1, -1\) repeats"):
        lkt.logsumexp(x, (1, -1))
    with pytest.raises(ValueError, match=r"class-index target must have shape \(2,\)"):
        lkt.cross_entropy(x, torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match=r"probability target must have the shape"):
        lkt.cross_entropy(x, torch.zeros(2, 4, dtype=F64))
    with pytest.raises(ValueError, match=r"weight must have shape \(3,\)"):
        lkt.cross_entropy(x, torch.zeros(2, dtype=torch.long), weight=torch.ones(4))
    with pytest.raises(NotImplementedError, match=r"gradient with respect to weight"):
        lkt.cross_entropy(
            x, torch.zeros(2, dtype=torch.long), weight=torch.ones(3, requires_grad=True)
        )
    with pytest.raises(ValueError, match=r"reduction must be one of"):
        lkt.cross_entropy(x, torch.zeros(2, dtype=torch.long), reduction="avg")
    with pytest.raises(TypeError, match=r"ignore_index must be an int"):
        lkt.cross_entropy(x, torch.zeros(2, dtype=torch.long), ignore_index=None)
    with pytest.raises(IndexError, match=r"target\[1\] = 3 is out of range for 3 classes"):
        lkt.cross_entropy(x, torch.tensor([0, 3]))
    with pytest.raises(ValueError, match=r"pos_weight with shape \(4,\) cannot be broadcast"):
        lkt.binary_cross_entropy_with_logits(x, x, pos_weight=torch.ones(4, dtype=F64))


# --------------------------------------------------------------------------------------------
# torch.library registration and torch.compile


OPCHECK_CASES = [
    ("softmax", lambda: (randn(3, 4).requires_grad_(), 1)),
    ("softmax", lambda: (randn(6, 4, dtype=torch.bfloat16).t().requires_grad_(), 1)),
    ("log_softmax", lambda: (randn(3, 4, dtype=torch.float32).t().requires_grad_(), 0)),
    ("logsumexp", lambda: (randn(3, 4, 2).requires_grad_(), [0, 2], True)),
    (
        "cross_entropy",
        lambda: (
            randn(3, 4, 2).requires_grad_(),
            torch.tensor([[0, 3], [1, -100], [2, 2]]),
            torch.rand(4, dtype=F64),
            -100,
            "mean",
            0.1,
            "pytorch",
            1e-3,
            5.0,
            None,
        ),
    ),
    (
        "cross_entropy",
        lambda: (
            randn(3, 4).requires_grad_(),
            probs(3, 4).requires_grad_(),
            None,
            -100,
            "none",
            0.0,
            "megatron",
            0.0,
            None,
            torch.tensor([True, False, True]),
        ),
    ),
    (
        "cross_entropy",
        lambda: (
            randn(3, 5, 2, dtype=torch.float16).requires_grad_(),
            torch.randint(0, 5, (3, 2), generator=_gen(34)),
            None,
            -100,
            "none",
            0.0,
            "pytorch",
            0.0,
            None,
            None,
        ),
    ),
    (
        "cross_entropy_stats",
        lambda: (randn(3, 4, 2), torch.tensor([[0, 3], [1, -100], [2, 2]]), -100, 2.0, None),
    ),
    (
        "binary_cross_entropy_with_logits",
        lambda: (
            randn(3, 4).requires_grad_(),
            torch.rand(3, 4, dtype=F64).requires_grad_(),
            None,
            torch.rand(4, dtype=F64),
            "sum",
            0.1,
        ),
    ),
]


@pytest.mark.parametrize("name, make_args", OPCHECK_CASES, ids=[c[0] for c in OPCHECK_CASES])
def test_opcheck(name, make_args):
    torch.library.opcheck(getattr(torch.ops.logitkit, name).default, make_args())


def _model(n_in=16, hidden=32, n_classes=50, seed=0):
    torch.manual_seed(seed)
    return torch.nn.Sequential(
        torch.nn.Linear(n_in, hidden), torch.nn.Tanh(), torch.nn.Linear(hidden, n_classes)
    ).double()


def _grads_through(model, loss_fn, x, t):
    model.zero_grad()
    loss = loss_fn(model(x), t)
    loss.backward()
    return loss.detach(), [p.grad.clone() for p in model.parameters()]


def test_compiled_fullgraph_training_step_matches_pytorch_aot_eager():
    from torch._dynamo.testing import CompileCounterWithBackend

    torch._dynamo.reset()
    model = _model()
    x = randn(8, 16, seed=24)
    t = torch.randint(0, 50, (8,), generator=_gen(25))
    t[3] = -100
    counter = CompileCounterWithBackend("aot_eager")
    compiled = torch.compile(
        lambda z, y: lkt.cross_entropy(z, y, label_smoothing=0.1),
        fullgraph=True,
        backend=counter,
    )
    loss, grads = _grads_through(model, compiled, x, t)
    ref_loss, ref_grads = _grads_through(
        model, lambda z, y: F.cross_entropy(z, y, label_smoothing=0.1), x, t
    )
    assert counter.frame_count == 1  # one graph: no graph break
    torch.testing.assert_close(loss, ref_loss, rtol=1e-13, atol=0)
    for g, r in zip(grads, ref_grads, strict=True):
        torch.testing.assert_close(g, r, rtol=1e-12, atol=1e-15)
    # the softmax family and the binary loss trace as well
    w, y = randn(4, 5, seed=32), torch.rand(4, 5, generator=_gen(33), dtype=F64)
    f = torch.compile(
        lambda z: (
            lkt.logsumexp(lkt.log_softmax(z, 1) * w, 1).sum()
            + (lkt.softmax(z, 0) * w).sum()
            + lkt.binary_cross_entropy_with_logits(z, y)
        ),
        fullgraph=True,
        backend="aot_eager",
    )
    z = randn(4, 5).requires_grad_()
    assert torch.autograd.gradcheck(f, (z,))


def test_compiled_fullgraph_training_step_matches_pytorch_inductor():
    # the default backend compiles C++: one small model, one step
    torch._dynamo.reset()
    model = _model(n_classes=100, seed=1)
    loss_fn = lkt.CrossEntropyLoss(weight=torch.rand(100, generator=_gen(26), dtype=F64) + 0.5)
    compiled = torch.compile(lambda z, y: loss_fn(model(z), y), fullgraph=True)
    x = randn(8, 16, seed=27)
    t = torch.randint(0, 100, (8,), generator=_gen(28))
    model.zero_grad()
    loss = compiled(x, t)
    loss.backward()
    grads = [p.grad.clone() for p in model.parameters()]
    _, ref_grads = _grads_through(model, torch.nn.CrossEntropyLoss(weight=loss_fn.weight), x, t)
    for g, r in zip(grads, ref_grads, strict=True):
        torch.testing.assert_close(g, r, rtol=1e-12, atol=1e-15)


# --------------------------------------------------------------------------------------------
# Modules


@pytest.mark.parametrize(
    "ours, theirs",
    [
        (lkt.CrossEntropyLoss, torch.nn.CrossEntropyLoss),
        (lkt.BCEWithLogitsLoss, torch.nn.BCEWithLogitsLoss),
    ],
)
def test_modules_take_pytorch_constructor_arguments(ours, theirs):
    def positional(cls):
        params = inspect.signature(cls.__init__).parameters.values()
        return [(p.name, p.default) for p in params if p.kind is p.POSITIONAL_OR_KEYWORD]

    assert positional(ours) == positional(theirs)


def test_cross_entropy_module_swaps_into_a_training_loop():
    weight = torch.rand(50, generator=_gen(29), dtype=F64) + 0.5
    models = [_model(seed=2), _model(seed=2)]
    losses = [
        lkt.CrossEntropyLoss(weight, ignore_index=0, label_smoothing=0.05),
        torch.nn.CrossEntropyLoss(weight, ignore_index=0, label_smoothing=0.05),
    ]
    opts = [torch.optim.SGD(m.parameters(), lr=0.5, momentum=0.9) for m in models]
    for step in range(5):
        x = randn(8, 16, seed=30 + step)
        t = torch.randint(0, 50, (8,), generator=_gen(40 + step))
        for model, loss_fn, opt in zip(models, losses, opts, strict=True):
            opt.zero_grad()
            loss_fn(model(x), t).backward()
            opt.step()
    for p, q in zip(models[0].parameters(), models[1].parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=1e-11, atol=1e-13)


def test_modules_keep_weights_as_buffers_and_honour_legacy_arguments():
    ce = lkt.CrossEntropyLoss(torch.ones(3))
    assert "weight" in ce.state_dict()
    assert ce.double().weight.dtype == F64
    bce = lkt.BCEWithLogitsLoss(pos_weight=torch.ones(3))
    assert set(bce.state_dict()) == {"pos_weight"}
    with pytest.warns(UserWarning, match="reduction='sum'"):
        assert lkt.CrossEntropyLoss(size_average=False).reduction == "sum"
    with pytest.warns(UserWarning, match="reduction='none'"):
        assert lkt.BCEWithLogitsLoss(reduce=False).reduction == "none"
    x, y = randn(4, 3), torch.rand(4, 3, generator=_gen(31), dtype=F64)
    # both warn of the deprecated argument when built; the calls themselves must stay silent
    with pytest.warns(UserWarning, match="reduction='none'"):
        ours, theirs = lkt.BCEWithLogitsLoss(reduce=False), torch.nn.BCEWithLogitsLoss(reduce=False)
    torch.testing.assert_close(ours(x, y), theirs(x, y), rtol=1e-13, atol=1e-15)
