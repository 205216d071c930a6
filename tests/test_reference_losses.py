"""Tests of the losses, divergences and backward passes of logitkit.reference.

The oracles are independent of the reference: PyTorch autograd in float64 for
every option PyTorch has, central finite differences for the gradients of the
options it lacks, SciPy for the entropies, mpmath for accuracy, and the
identities that tie the functions together.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from numpy.typing import NDArray

from logitkit import reference as ref

try:
    from numpy.exceptions import AxisError
except ImportError:  # NumPy < 1.25
    from numpy import AxisError  # type: ignore[attr-defined,no-redef]

pytestmark = pytest.mark.filterwarnings("error::RuntimeWarning")

EPS = float(np.finfo(np.float64).eps)
INF = math.inf
NAN = math.nan

NEW_FUNCTIONS = [
    "binary_cross_entropy_with_logits",
    "binary_cross_entropy_with_logits_with_grad",
    "cross_entropy",
    "cross_entropy_with_grad",
    "entr",
    "entropy",
    "entropy_from_logits",
    "hardmax",
    "jensen_shannon_from_logits",
    "jensen_shannon_from_logits_with_grad",
    "kl_div",
    "kl_div_elementwise",
    "kl_divergence_from_logits",
    "kl_divergence_from_logits_with_grad",
    "log_softmax_backward",
    "logsumexp_backward",
    "nll_loss",
    "rel_entr",
    "sigmoid_backward",
    "softmax_backward",
]


def _rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


def _same(actual: Any, expected: Any) -> None:
    np.testing.assert_array_equal(np.asarray(actual), np.asarray(expected))


def _close(actual: Any, expected: Any, rtol: float = 1e-12, atol: float = 1e-14) -> None:
    a, e = np.asarray(actual), np.asarray(expected)
    assert a.shape == e.shape, (a.shape, e.shape)
    np.testing.assert_allclose(a, e, rtol=rtol, atol=atol)


def _numeric_grad(f: Callable[[NDArray[np.float64]], float], x: NDArray[np.float64]) -> Any:
    """Central differences of a scalar function, in float64."""
    h = 1e-6
    g = np.zeros_like(x)
    for idx in np.ndindex(*x.shape):
        up, down = x.copy(), x.copy()
        up[idx] += h
        down[idx] -= h
        g[idx] = (float(f(up)) - float(f(down))) / (2 * h)
    return g


def _assert_fd(analytic: Any, numeric: Any) -> None:
    np.testing.assert_allclose(analytic, numeric, rtol=1e-6, atol=1e-8)


def _call_with_threads(name: str) -> tuple[Any, Any]:
    rng = _rng(0)
    z = rng.normal(size=(3, 4))
    p = ref.softmax(z)
    t = np.array([0, 3, 1])
    calls: dict[str, tuple[Any, ...]] = {
        "binary_cross_entropy_with_logits": (z, p),
        "binary_cross_entropy_with_logits_with_grad": (z, p),
        "cross_entropy": (z, t),
        "cross_entropy_with_grad": (z, t),
        "entr": (p,),
        "entropy": (p,),
        "entropy_from_logits": (z,),
        "hardmax": (z,),
        "jensen_shannon_from_logits": (z, z[::-1]),
        "jensen_shannon_from_logits_with_grad": (z, z[::-1]),
        "kl_div": (np.log(p), p[::-1]),
        "kl_div_elementwise": (p, p[::-1]),
        "kl_divergence_from_logits": (z, z[::-1]),
        "kl_divergence_from_logits_with_grad": (z, z[::-1]),
        "log_softmax_backward": (z, ref.log_softmax(z)),
        "logsumexp_backward": (np.ones(3), z),
        "nll_loss": (np.log(p), t),
        "rel_entr": (p, p[::-1]),
        "sigmoid_backward": (z, p),
        "softmax_backward": (z, p),
    }
    func = getattr(ref, name)
    args = calls[name]
    return func(*args, threads=3), func(*args)


# ---------------------------------------------------------------------------
# The module
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", NEW_FUNCTIONS)
def test_public_with_docstring_and_threads(name: str) -> None:
    assert name in ref.__all__
    func = getattr(ref, name)
    assert func.__doc__ and "Examples" in func.__doc__
    with_threads, without = _call_with_threads(name)
    for a, b in zip(
        with_threads if isinstance(with_threads, tuple) else (with_threads,),
        without if isinstance(without, tuple) else (without,),
        strict=True,
    ):
        _same(a, b)


def test_stats_type_is_public() -> None:
    assert "CrossEntropyStats" in ref.__all__
    assert ref.CrossEntropyStats._fields == ("lse", "argmax", "correct", "accuracy")


# ---------------------------------------------------------------------------
# cross_entropy against PyTorch
# ---------------------------------------------------------------------------

LAYOUTS = {
    # name: (logits shape, class axis)
    "2d": ((7, 5), -1),
    "kdim": ((3, 4, 2, 3), 1),
}


def _ce_case(layout: str, kind: str, seed: int = 0) -> tuple[Any, Any, int]:
    """Logits and a target: ``kind`` is "index", "index-ignore" (two rows at -100) or "soft"."""
    shape, axis = LAYOUTS[layout]
    rng = _rng(seed)
    logits = rng.normal(scale=2.0, size=shape)
    n_classes = shape[axis]
    rows = shape[: axis % len(shape)] + shape[axis % len(shape) + 1 :]
    if kind.startswith("index"):
        target: Any = rng.integers(0, n_classes, size=rows)
        if kind == "index-ignore":
            target.flat[[1, 4]] = -100
    else:
        target = ref.softmax(rng.normal(size=shape), axis=axis)
    return logits, target, axis


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("smoothing", [0.0, 0.3, 1.0])
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("kind", ["index", "index-ignore", "soft"])
@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_cross_entropy_vs_torch(
    layout: str, kind: str, weighted: bool, smoothing: float, reduction: str
) -> None:
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    logits, target, axis = _ce_case(layout, kind)
    n_classes = logits.shape[axis]
    weight = _rng(1).uniform(0.2, 2.0, size=n_classes) if weighted else None
    kwargs: dict[str, Any] = {
        "weight": weight,
        "reduction": reduction,
        "label_smoothing": smoothing,
    }

    zt = torch.tensor(logits, requires_grad=True)
    tt = torch.tensor(target)
    wt = None if weight is None else torch.tensor(weight)
    want = F.cross_entropy(zt, tt, weight=wt, reduction=reduction, label_smoothing=smoothing)
    upstream = _rng(2).uniform(0.5, 1.5, size=want.shape) if reduction == "none" else 0.7
    want.backward(torch.as_tensor(upstream, dtype=torch.float64))

    loss = ref.cross_entropy(logits, target, axis=axis, **kwargs)
    _close(loss, want.detach().numpy())
    loss2, grad = ref.cross_entropy_with_grad(
        logits, target, axis=axis, grad_output=upstream, **kwargs
    )
    _same(loss2, loss)
    assert grad.shape == logits.shape
    _close(grad, zt.grad.numpy(), atol=1e-15)


@pytest.mark.parametrize("ignore_index", [0, 2, 4])
def test_cross_entropy_in_range_ignore_index_vs_torch(ignore_index: int) -> None:
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    logits, target, _ = _ce_case("2d", "index", seed=3)
    weight = _rng(4).uniform(0.2, 2.0, size=5)
    for reduction in ("mean", "sum", "none"):
        want = F.cross_entropy(
            torch.tensor(logits),
            torch.tensor(target),
            weight=torch.tensor(weight),
            ignore_index=ignore_index,
            reduction=reduction,
            label_smoothing=0.2,
        )
        got = ref.cross_entropy(
            logits,
            target,
            weight=weight,
            ignore_index=ignore_index,
            reduction=reduction,
            label_smoothing=0.2,
        )
        _close(got, want.numpy())


def test_smoothing_mean_denominator_is_the_weighted_one() -> None:
    # PyTorch divides the label-smoothing term by sum(w_t) over the counted
    # rows, like the NLL term, rather than by the number of rows.
    logits, target, _ = _ce_case("2d", "index-ignore", seed=5)
    w = _rng(6).uniform(0.2, 2.0, size=5)
    a = 0.4
    logp = ref.log_softmax(logits)
    counted = target != -100
    t = target[counted]
    nll = -np.sum(w[t] * logp[counted, t])
    smooth = -np.sum(logp[counted] * w)
    denom = np.sum(w[t])
    want = ((1 - a) * nll + a / 5 * smooth) / denom
    got = ref.cross_entropy(logits, target, weight=w, label_smoothing=a)
    assert got == pytest.approx(want, rel=1e-13)


def test_soft_target_mean_divides_by_rows_not_weights() -> None:
    logits, target, _ = _ce_case("2d", "soft", seed=7)
    w = _rng(8).uniform(0.2, 2.0, size=5)
    rows = ref.cross_entropy(logits, target, weight=w, reduction="none")
    assert ref.cross_entropy(logits, target, weight=w) == pytest.approx(np.mean(rows), rel=1e-14)
    mask = np.array([True, False, True, True, False, True, True])
    got = ref.cross_entropy(logits, target, weight=w, where=mask)
    assert got == pytest.approx(np.sum(rows[mask]) / 5, rel=1e-14)


@pytest.mark.parametrize(
    "dtype", [np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32, np.uint64]
)
def test_any_integer_target_dtype(dtype: Any) -> None:
    logits, target, _ = _ce_case("2d", "index", seed=9)
    want = ref.cross_entropy(logits, target, reduction="none")
    _same(ref.cross_entropy(logits, target.astype(dtype), reduction="none"), want)
    if np.dtype(dtype).kind == "u":
        # -100 cannot occur in an unsigned target; a matching ignore_index can.
        t = target.astype(dtype)
        t[2] = 200
        got = ref.cross_entropy(logits, t, ignore_index=200, reduction="none")
        assert got[2] == 0.0


def test_ignore_index_beyond_the_target_dtype() -> None:
    logits, target, _ = _ce_case("2d", "index", seed=10)
    _same(
        ref.cross_entropy(logits, target.astype(np.int8), ignore_index=1000),
        ref.cross_entropy(logits, target),
    )


def test_mean_over_no_counted_rows_is_nan() -> None:
    logits = _rng(11).normal(size=(4, 3))
    none = np.full(4, -100)
    assert np.isnan(ref.cross_entropy(logits, none))
    assert ref.cross_entropy(logits, none, reduction="sum") == 0.0
    _same(ref.cross_entropy(logits, none, reduction="none"), np.zeros(4))
    loss, grad = ref.cross_entropy_with_grad(logits, none)
    assert np.isnan(loss)
    _same(grad, np.zeros((4, 3)))
    soft = ref.softmax(logits)
    assert np.isnan(ref.cross_entropy(logits, soft, where=np.zeros(4, dtype=bool)))
    assert np.isnan(ref.cross_entropy(np.zeros((0, 3)), np.zeros(0, dtype=np.int64)))


# ---------------------------------------------------------------------------
# cross_entropy: the options PyTorch does not have
# ---------------------------------------------------------------------------


def test_megatron_smoothing_is_a_soft_target() -> None:
    logits, target, _ = _ce_case("2d", "index", seed=12)
    a, n = 0.3, 5
    soft = np.full((7, n), a / (n - 1))
    soft[np.arange(7), target] = 1 - a
    w = _rng(13).uniform(0.5, 2.0, size=n)
    got = ref.cross_entropy(
        logits, target, weight=w, label_smoothing=a, smoothing="megatron", reduction="none"
    )
    _close(got, ref.cross_entropy(logits, soft, weight=w, reduction="none"))
    # alpha_eff = alpha C / (C - 1) through PyTorch's smoothing.
    _close(
        got,
        ref.cross_entropy(
            logits, target, weight=w, label_smoothing=a * n / (n - 1), reduction="none"
        ),
    )


def test_z_loss_adds_lse_squared() -> None:
    logits, target, _ = _ce_case("2d", "index-ignore", seed=14)
    w = _rng(15).uniform(0.5, 2.0, size=5)
    lse = ref.logsumexp(logits)
    counted = target != -100
    base = ref.cross_entropy(logits, target, weight=w, reduction="none")
    got = ref.cross_entropy(logits, target, weight=w, z_loss=1e-2, reduction="none")
    _close(got, base + np.where(counted, 1e-2 * lse**2, 0.0))
    denom = np.sum(w[target[counted]])
    mean = ref.cross_entropy(logits, target, weight=w, z_loss=1e-2)
    assert mean == pytest.approx(np.sum(got) / denom, rel=1e-14)


def test_softcap_caps_first() -> None:
    logits, target, _ = _ce_case("2d", "index", seed=16)
    logits = logits * 20
    capped = 30.0 * np.tanh(logits / 30.0)
    _close(
        ref.cross_entropy(logits, target, softcap=30.0, reduction="none"),
        ref.cross_entropy(capped, target, reduction="none"),
    )
    _, stats = ref.cross_entropy(logits, target, softcap=30.0, return_stats=True)
    _close(stats.lse, ref.logsumexp(capped))
    # +inf logits are capped to c, so the row stays finite.
    z = np.array([[INF, 0.0, 1.0]])
    assert ref.cross_entropy(z, np.array([0]), softcap=5.0) == pytest.approx(
        ref.cross_entropy(np.array([[5.0, 0.0, 5 * np.tanh(0.2)]]), np.array([0])), rel=1e-15
    )


@pytest.mark.parametrize("kind", ["index", "soft"])
def test_where_is_the_subset_of_rows(kind: str) -> None:
    logits, target, axis = _ce_case("kdim", kind, seed=17)
    mask = _rng(18).random(size=(3, 2, 3)) < 0.6
    w = _rng(19).uniform(0.5, 2.0, size=4)
    z = np.moveaxis(logits, 1, -1)[mask]
    t = target[mask] if kind == "index" else np.moveaxis(target, 1, -1)[mask]
    for reduction in ("mean", "sum"):
        got = ref.cross_entropy(
            logits, target, axis=1, weight=w, where=mask, reduction=reduction, label_smoothing=0.1
        )
        want = ref.cross_entropy(z, t, weight=w, reduction=reduction, label_smoothing=0.1)
        assert got == pytest.approx(want, rel=1e-13)
    rows = ref.cross_entropy(logits, target, axis=1, where=mask, reduction="none")
    _same(rows[~mask], 0.0)
    # Masked rows are not checked, whatever they hold.
    if kind == "index":
        bad = target.copy()
        bad[~mask] = 99
        _same(ref.cross_entropy(logits, bad, axis=1, where=mask, reduction="none"), rows)
    else:
        bad = target.copy()
        np.moveaxis(bad, 1, -1)[~mask] = NAN
        _same(ref.cross_entropy(logits, bad, axis=1, where=mask, reduction="none"), rows)


def test_where_broadcasts_to_rows() -> None:
    logits, target, _ = _ce_case("kdim", "index", seed=20)
    mask = np.array([True, False, True])
    got = ref.cross_entropy(logits, target, axis=1, where=mask, reduction="none")
    _same(got, np.where(mask, ref.cross_entropy(logits, target, axis=1, reduction="none"), 0.0))


OPTION_SETS: list[dict[str, Any]] = [
    {"z_loss": 1e-2},
    {"softcap": 3.0},
    {"label_smoothing": 0.2, "smoothing": "megatron"},
    {"where": np.array([True, False, True, True, False])},
    {
        "z_loss": 5e-3,
        "softcap": 2.5,
        "label_smoothing": 0.3,
        "smoothing": "megatron",
        "where": np.array([True, True, False, True, True]),
        "weight": np.array([0.5, 1.5, 1.0, 2.0]),
    },
]


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("kind", ["index", "soft"])
@pytest.mark.parametrize("options", OPTION_SETS, ids=lambda o: "+".join(o))
def test_cross_entropy_grad_by_finite_differences(
    options: dict[str, Any], kind: str, reduction: str
) -> None:
    rng = _rng(21)
    logits = rng.normal(scale=1.5, size=(5, 4))
    target: Any = (
        np.array([0, 3, -100, 1, 2]) if kind == "index" else ref.softmax(rng.normal(size=(5, 4)))
    )
    upstream = rng.uniform(0.5, 1.5, size=5) if reduction == "none" else 0.8

    def f(z: NDArray[np.float64]) -> float:
        loss = ref.cross_entropy(z, target, reduction=reduction, **options)
        return float(np.sum(upstream * loss))

    _, grad = ref.cross_entropy_with_grad(
        logits, target, reduction=reduction, grad_output=upstream, **options
    )
    _assert_fd(grad, _numeric_grad(f, logits))


def test_cross_entropy_grad_kdim_finite_differences() -> None:
    logits, target, _ = _ce_case("kdim", "index-ignore", seed=22)
    opts: dict[str, Any] = {"z_loss": 1e-2, "softcap": 4.0, "label_smoothing": 0.1}
    _, grad = ref.cross_entropy_with_grad(logits, target, axis=1, **opts)

    def f(z: NDArray[np.float64]) -> float:
        return float(ref.cross_entropy(z, target, axis=1, **opts))

    _assert_fd(grad, _numeric_grad(f, logits))


# ---------------------------------------------------------------------------
# cross_entropy: stats, special values, outputs, dtypes
# ---------------------------------------------------------------------------


def test_stats() -> None:
    logits = np.array([[1.0, 3.0, 3.0], [0.0, -1.0, 2.0], [5.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    target = np.array([1, 0, -100, 1])
    loss, stats = ref.cross_entropy(logits, target, return_stats=True)
    assert isinstance(stats, ref.CrossEntropyStats)
    _same(stats.argmax, [1, 2, 0, 1])
    assert stats.argmax.dtype == np.int64
    _same(stats.correct, [True, False, False, True])
    assert stats.accuracy == pytest.approx(2 / 3)
    _close(stats.lse, ref.logsumexp(logits), atol=0)
    _same(loss, ref.cross_entropy(logits, target))

    soft = ref.softmax(np.array([[0.0, 2.0, 1.0], [3.0, 0.0, 0.0], [0, 0, 9.0], [0, 0, 9.0]]))
    _, stats = ref.cross_entropy(
        logits, soft, where=np.array([True, True, False, True]), return_stats=True
    )
    _same(stats.correct, [True, False, False, False])
    assert stats.accuracy == pytest.approx(1 / 3)

    _, _, stats = ref.cross_entropy_with_grad(logits, np.full(4, -100), return_stats=True)
    assert np.isnan(stats.accuracy)
    _same(stats.correct, [False] * 4)


def test_nan_row_stays_in_its_row() -> None:
    logits = _rng(23).normal(size=(4, 5))
    logits[1, 3] = NAN
    target = np.array([0, 1, 2, 3])
    rows = ref.cross_entropy(logits, target, reduction="none")
    assert np.isnan(rows[1])
    assert np.all(np.isfinite(rows[[0, 2, 3]]))
    _close(
        rows[[0, 2, 3]], ref.cross_entropy(logits[[0, 2, 3]], target[[0, 2, 3]], reduction="none")
    )
    assert np.isnan(ref.cross_entropy(logits, target))
    _, grad = ref.cross_entropy_with_grad(logits, target, reduction="none")
    assert np.all(np.isnan(grad[1]))
    assert np.all(np.isfinite(grad[[0, 2, 3]]))
    # An ignored NaN row costs nothing.
    assert np.isfinite(ref.cross_entropy(logits, np.array([0, -100, 2, 3])))


def test_infinite_logits() -> None:
    # Without a cap, +inf or only -inf leaves the row without a loss: NaN, as in PyTorch.
    z = np.array([[INF, 0.0, 1.0], [-INF, -INF, -INF], [0.0, -INF, 1.0]])
    rows = ref.cross_entropy(z, np.array([0, 1, 0]), reduction="none")
    assert np.isnan(rows[0]) and np.isnan(rows[1])
    assert rows[2] == pytest.approx(math.log1p(math.e))
    _, grad = ref.cross_entropy_with_grad(z, np.array([0, 1, 0]), reduction="none")
    assert np.all(np.isnan(grad[:2]))
    _close(grad[2], [ref.softmax(z[2])[0] - 1, 0.0, ref.softmax(z[2])[2]])
    # A masked class (-inf) with no target mass is free, even with soft targets.
    soft = np.array([[0.25, 0.0, 0.75]])
    assert np.isfinite(ref.cross_entropy(z[2:], soft))
    # ... but target mass on it is infinitely expensive.
    assert ref.cross_entropy(z[2:], np.array([1])) == INF


def test_confident_rows_keep_relative_accuracy() -> None:
    # p_t - 1 for p_t close to 1 must not cancel: compare every gradient entry,
    # and the loss, with an arbitrary-precision evaluation.
    mpmath = pytest.importorskip("mpmath")
    z = np.array([[30.0, 0.0, -2.0], [20.0, 1.0, 0.0], [0.5, 40.0, 3.0]])
    t = np.array([0, 0, 1])
    w = np.array([0.5, 2.0, 1.0])
    loss, grad = ref.cross_entropy_with_grad(z, t, weight=w, reduction="none")
    with mpmath.workdps(50):
        for r in range(3):
            e = [mpmath.exp(mpmath.mpf(float(v))) for v in z[r]]
            total = mpmath.fsum(e)
            wt = float(w[t[r]])
            want_loss = -wt * mpmath.log(e[t[r]] / total)
            assert abs(loss[r] - float(want_loss)) <= 4 * EPS * float(want_loss)
            for j in range(3):
                want = wt * (e[j] / total - (1 if j == t[r] else 0))
                assert abs(grad[r, j] - float(want)) <= 4 * EPS * abs(float(want)), (r, j)


def test_grad_out_and_inplace() -> None:
    logits, target, _ = _ce_case("2d", "index-ignore", seed=24)
    want_loss, want = ref.cross_entropy_with_grad(logits, target, label_smoothing=0.1)
    buf = np.full_like(logits, 7.0)
    loss, grad = ref.cross_entropy_with_grad(logits, target, label_smoothing=0.1, grad_out=buf)
    assert grad is buf
    _same(buf, want)
    z = logits.copy()
    loss, grad = ref.cross_entropy_with_grad(z, target, label_smoothing=0.1, inplace=True)
    assert grad is z
    _same(z, want)
    _same(loss, want_loss)
    z32 = logits.astype(np.float32)
    _, grad = ref.cross_entropy_with_grad(z32, target, inplace=True)
    assert grad is z32 and z32.dtype == np.float32

    func = "cross_entropy_with_grad"
    with pytest.raises(ValueError, match=rf"^{func}\(\): pass grad_out or inplace=True, not both$"):
        ref.cross_entropy_with_grad(logits, target, grad_out=buf, inplace=True)
    with pytest.raises(TypeError, match=rf"^{func}\(\): logits must be a numpy.ndarray, got list$"):
        ref.cross_entropy_with_grad(logits.tolist(), target, inplace=True)
    with pytest.raises(ValueError) as info:
        ref.cross_entropy_with_grad(logits, target, grad_out=np.zeros((7, 5), np.float32))
    assert str(info.value) == (
        f"{func}(): grad_out must have shape (7, 5) and dtype float64, got (7, 5) float32"
    )
    with pytest.raises(ValueError, match=r"logits must have shape \(7, 5\) and dtype float64"):
        ref.cross_entropy_with_grad(logits.astype(np.int64), target, inplace=True)


def test_grad_output_shapes() -> None:
    logits, target, _ = _ce_case("2d", "index", seed=25)
    func = "cross_entropy_with_grad"
    with pytest.raises(ValueError) as info:
        ref.cross_entropy_with_grad(logits, target, grad_output=np.ones(7))
    assert str(info.value) == (
        f"{func}(): grad_output must be a scalar with reduction='mean', got shape (7,)"
    )
    with pytest.raises(ValueError, match=r"grad_output with shape \(3,\) cannot be broadcast"):
        ref.cross_entropy_with_grad(logits, target, reduction="none", grad_output=np.ones(3))
    # A scalar upstream gradient broadcasts over the rows of "none".
    _, a = ref.cross_entropy_with_grad(logits, target, reduction="none", grad_output=2.0)
    _, b = ref.cross_entropy_with_grad(logits, target, reduction="sum", grad_output=2.0)
    _same(a, b)


@pytest.mark.parametrize(
    ("dtype", "want"),
    [
        (np.float16, np.float16),
        (np.float32, np.float32),
        (np.float64, np.float64),
        (np.int32, np.float64),
        (np.bool_, np.float64),
    ],
)
def test_cross_entropy_dtypes(dtype: Any, want: Any) -> None:
    logits = (_rng(26).normal(size=(6, 4)) * 3).astype(dtype)
    target = np.array([0, 1, 2, 3, 0, 1])
    soft = ref.softmax(_rng(27).normal(size=(6, 4))).astype(np.float32)
    for t in (target, soft):
        for reduction in ("mean", "none"):
            loss, grad = ref.cross_entropy_with_grad(logits, t, reduction=reduction, z_loss=1e-3)
            assert np.asarray(loss).dtype == want and grad.dtype == want
            wl, wg = ref.cross_entropy_with_grad(
                logits.astype(np.float64), t, reduction=reduction, z_loss=1e-3
            )
            _same(loss, np.asarray(wl).astype(want))
            _same(grad, wg.astype(want))


def test_cross_entropy_bfloat16() -> None:
    ml_dtypes = pytest.importorskip("ml_dtypes")
    bf16 = np.dtype(ml_dtypes.bfloat16)
    logits = _rng(28).normal(size=(3, 4)).astype(bf16)
    target = np.array([0, 3, 1])
    loss, grad = ref.cross_entropy_with_grad(logits, target, reduction="none")
    assert loss.dtype == bf16 and grad.dtype == bf16
    wl, wg = ref.cross_entropy_with_grad(logits.astype(np.float64), target, reduction="none")
    _same(loss.astype(np.float64), wl.astype(bf16).astype(np.float64))
    _same(grad.astype(np.float64), wg.astype(bf16).astype(np.float64))
    soft = ref.softmax(logits.astype(np.float64)).astype(bf16)
    assert np.isfinite(ref.cross_entropy(logits, soft))


def test_single_row_and_one_class() -> None:
    got = ref.cross_entropy(np.array([1.0, 2.0, 3.0]), np.array(2), reduction="none")
    assert np.ndim(got) == 0
    assert got == pytest.approx(ref.logsumexp([1.0, 2.0, 3.0]) - 3.0, rel=1e-15)
    assert ref.cross_entropy(np.zeros((4, 1)), np.zeros(4, dtype=np.int64)) == 0.0
    assert (
        ref.cross_entropy(np.zeros((4, 1)), np.zeros(4, dtype=np.int64), label_smoothing=0.5) == 0
    )


# ---------------------------------------------------------------------------
# cross_entropy and nll_loss: errors
# ---------------------------------------------------------------------------


def test_out_of_range_target_names_position_and_value() -> None:
    logits = np.zeros((2, 5, 4))
    target = np.zeros((2, 4), dtype=np.int64)
    target[1, 3] = 7
    target[1, 2] = -100
    with pytest.raises(IndexError) as info:
        ref.cross_entropy(logits, target, axis=1)
    assert str(info.value) == "cross_entropy(): target[(1, 3)] = 7 is out of range for 5 classes"
    with pytest.raises(IndexError) as info:
        ref.cross_entropy_with_grad(np.zeros((3, 5)), np.array([0, -1, 9]))
    assert str(info.value) == (
        "cross_entropy_with_grad(): target[1] = -1 is out of range for 5 classes"
    )
    with pytest.raises(IndexError) as info:
        ref.nll_loss(np.zeros((3, 5)), np.array([0, 4, 200], dtype=np.uint8))
    assert str(info.value) == "nll_loss(): target[2] = 200 is out of range for 5 classes"
    big = np.array([0, 2**64 - 1], dtype=np.uint64)
    with pytest.raises(IndexError, match=r"target\[1\] = 18446744073709551615 is out of range"):
        ref.cross_entropy(np.zeros((2, 5)), big)
    with pytest.raises(IndexError, match=r"^cross_entropy\(\): target\[\(\)\] = 3 is out"):
        ref.cross_entropy(np.zeros(3), np.array(3))


@pytest.mark.parametrize("func", [ref.cross_entropy, ref.nll_loss], ids=lambda f: f.__name__)
def test_target_and_weight_errors(func: Callable[..., Any]) -> None:
    name = func.__name__
    arg = "logits" if func is ref.cross_entropy else "log_probs"
    z = np.zeros((4, 3))
    t = np.array([0, 1, 2, 0])
    with pytest.raises(ValueError) as info:
        func(z, t, weight=np.ones(4))
    assert str(info.value) == (
        f"{name}(): weight must be a vector of length 3 (one per class), got shape (4,)"
    )
    with pytest.raises(ValueError) as info:
        func(z, np.array([0, 1, 2]))
    assert str(info.value) == (
        f"{name}(): target of class indices must have shape (4,) "
        f"({arg} (4, 3) without axis 1), got (3,)"
    )
    with pytest.raises(TypeError) as type_info:
        func(z, t.astype(np.float64))
    assert str(type_info.value) == (
        f"{name}(): target has the shape of class indices (4,) but dtype float64; "
        "class indices must be integers"
    )
    with pytest.raises(ValueError) as info:
        func(z, np.zeros((4, 2)))
    assert str(info.value) == (
        f"{name}(): target of class probabilities must have the shape of {arg} (4, 3), got (4, 2)"
    )
    soft = np.full((4, 3), 1 / 3)
    soft[2, 1] = NAN
    with pytest.raises(ValueError) as info:
        func(z, soft)
    assert str(info.value) == (f"{name}(): target (class probabilities) is NaN at target[(2, 1)]")
    with pytest.raises(TypeError, match=rf"^{name}\(\): target must hold integer class indices"):
        func(z, t.astype(bool))
    with pytest.raises(TypeError, match=rf"^{name}\(\): {arg} must be a real floating"):
        func(z.astype(complex), t)
    with pytest.raises(TypeError, match=rf"^{name}\(\): weight must be a real floating"):
        func(z, t, weight=np.ones(3, dtype=complex))
    with pytest.raises(ValueError) as info:
        func(z, t, reduction="avg")
    assert str(info.value) == f"{name}(): reduction must be 'none', 'mean' or 'sum', got 'avg'"
    with pytest.raises(TypeError, match=rf"^{name}\(\): where must be a bool array, got int64$"):
        func(z, t, where=np.ones(4, dtype=np.int64))
    with pytest.raises(ValueError, match=r"where with shape \(3,\) cannot be broadcast"):
        func(z, t, where=np.ones(3, dtype=bool))
    with pytest.raises(TypeError, match=rf"^{name}\(\): axis must be an int, got \(0, 1\)$"):
        func(z, t, axis=(0, 1))
    with pytest.raises(TypeError, match=rf"^{name}\(\): axis must be an int, got None$"):
        func(z, t, axis=None)
    with pytest.raises(AxisError):
        func(z, t, axis=2)
    with pytest.raises(ValueError, match=rf"^{name}\(\): {arg} must have at least one dimension"):
        func(np.float64(1.0), np.int64(0))
    with pytest.raises(ValueError, match=r"class axis 1 of .* is empty"):
        func(np.zeros((4, 0)), t)
    with pytest.raises(TypeError, match=rf"^{name}\(\): ignore_index must be an int"):
        func(z, t, ignore_index=1.5)


def test_option_errors() -> None:
    z, t = np.zeros((2, 3)), np.array([0, 1])
    cases: list[tuple[dict[str, Any], str]] = [
        ({"label_smoothing": 1.5}, r"label_smoothing must be in \[0, 1\], got 1.5"),
        ({"label_smoothing": NAN}, r"label_smoothing must be in \[0, 1\], got nan"),
        ({"smoothing": "nemo"}, r"smoothing must be 'pytorch' or 'megatron', got 'nemo'"),
        ({"z_loss": -1.0}, r"z_loss must be a finite number >= 0, got -1.0"),
        ({"z_loss": INF}, r"z_loss must be a finite number >= 0, got inf"),
        ({"softcap": 0.0}, r"softcap must be None or a number > 0 \(inf: no cap\), got 0.0"),
        ({"softcap": NAN}, r"softcap must be None or a number > 0 \(inf: no cap\), got nan"),
    ]
    for kwargs, msg in cases:
        with pytest.raises(ValueError, match=rf"^cross_entropy\(\): {msg}$"):
            ref.cross_entropy(z, t, **kwargs)
    with pytest.raises(TypeError, match=r"^cross_entropy\(\): z_loss must be a real number"):
        ref.cross_entropy(z, t, z_loss="big")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"smoothing='megatron' needs at least 2 classes"):
        ref.cross_entropy(np.zeros((2, 1)), t * 0, label_smoothing=0.1, smoothing="megatron")


# ---------------------------------------------------------------------------
# nll_loss
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_nll_loss_vs_torch(layout: str, weighted: bool, reduction: str) -> None:
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    logits, target, axis = _ce_case(layout, "index-ignore", seed=29)
    log_probs = ref.log_softmax(logits, axis=axis)
    weight = _rng(30).uniform(0.2, 2.0, size=logits.shape[axis]) if weighted else None
    want = F.nll_loss(
        torch.tensor(log_probs),
        torch.tensor(target),
        weight=None if weight is None else torch.tensor(weight),
        reduction=reduction,
    )
    got = ref.nll_loss(log_probs, target, axis=axis, weight=weight, reduction=reduction)
    _close(got, want.numpy())


def test_nll_loss_soft_targets() -> None:
    rng = _rng(31)
    log_probs = ref.log_softmax(rng.normal(size=(5, 4)))
    y = ref.softmax(rng.normal(size=(5, 4)))
    w = rng.uniform(0.5, 2.0, size=4)
    rows = ref.nll_loss(log_probs, y, weight=w, reduction="none")
    _close(rows, -np.sum(w * y * log_probs, axis=-1))
    assert ref.nll_loss(log_probs, y, weight=w) == pytest.approx(np.mean(rows), rel=1e-14)
    # No target mass on a class of probability 0: no cost, no NaN.
    lp = np.array([[0.0, -INF]])
    assert ref.nll_loss(lp, np.array([[1.0, 0.0]])) == 0.0


# ---------------------------------------------------------------------------
# Identities between the losses
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_one_hot_soft_target_is_nll_of_log_softmax(layout: str) -> None:
    logits, target, axis = _ce_case(layout, "index", seed=32)
    n_classes = logits.shape[axis]
    one_hot = np.moveaxis(np.eye(n_classes)[target], -1, axis)
    w = _rng(33).uniform(0.5, 2.0, size=n_classes)
    by_index = ref.cross_entropy(logits, target, axis=axis, weight=w, reduction="none")
    _close(ref.cross_entropy(logits, one_hot, axis=axis, weight=w, reduction="none"), by_index)
    nll = ref.nll_loss(
        ref.log_softmax(logits, axis=axis), target, axis=axis, weight=w, reduction="none"
    )
    _close(nll, by_index)
    _, g_index = ref.cross_entropy_with_grad(logits, target, axis=axis, reduction="sum")
    _, g_soft = ref.cross_entropy_with_grad(logits, one_hot, axis=axis, reduction="sum")
    _close(g_soft, g_index, atol=1e-16)


def test_cross_entropy_is_entropy_plus_kl() -> None:
    rng = _rng(34)
    p_logits = rng.normal(scale=2.0, size=(6, 7))
    q_logits = rng.normal(scale=2.0, size=(6, 7))
    ce = ref.cross_entropy(q_logits, ref.softmax(p_logits), reduction="none")
    h = ref.entropy_from_logits(p_logits)
    kl = ref.kl_divergence_from_logits(p_logits, q_logits)
    _close(ce, h + kl, rtol=1e-13)


@pytest.mark.parametrize("soft", [False, True])
def test_bce_is_two_class_cross_entropy(soft: bool) -> None:
    # sigmoid(x) = softmax([x, 0])[0], so BCE on x is CE on [x, 0].
    rng = _rng(35)
    x = rng.normal(scale=4.0, size=12)
    y = rng.random(12) if soft else (rng.random(12) < 0.5).astype(np.float64)
    pair = np.stack([x, np.zeros_like(x)], axis=-1)
    target: Any = np.stack([y, 1 - y], axis=-1) if soft else np.where(y == 1, 0, 1)
    bce_loss, bce_grad = ref.binary_cross_entropy_with_logits_with_grad(x, y, reduction="none")
    ce_loss, ce_grad = ref.cross_entropy_with_grad(pair, target, reduction="none")
    _close(bce_loss, ce_loss, rtol=1e-13)
    _close(bce_grad, ce_grad[:, 0], atol=1e-15)
    # The gradient of CE with respect to the constant 0 logit is the opposite.
    _close(ce_grad[:, 1], -ce_grad[:, 0], atol=1e-15)


# ---------------------------------------------------------------------------
# Binary cross-entropy with logits
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("smoothing", [0.0, 0.2])
@pytest.mark.parametrize(
    "weights",
    ["none", "weight", "pos_weight", "both"],
)
def test_bce_vs_torch(weights: str, smoothing: float, reduction: str) -> None:
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    rng = _rng(36)
    x = rng.normal(scale=3.0, size=(6, 4))
    y = rng.random((6, 4))
    y[0] = [0.0, 1.0, 0.0, 1.0]
    weight = rng.uniform(0.2, 2.0, size=(6, 1)) if weights in ("weight", "both") else None
    pos_weight = rng.uniform(0.2, 3.0, size=4) if weights in ("pos_weight", "both") else None
    xt = torch.tensor(x, requires_grad=True)
    smoothed = y * (1 - smoothing) + smoothing / 2
    want = F.binary_cross_entropy_with_logits(
        xt,
        torch.tensor(smoothed),
        weight=None if weight is None else torch.tensor(weight),
        pos_weight=None if pos_weight is None else torch.tensor(pos_weight),
        reduction=reduction,
    )
    upstream = rng.uniform(0.5, 1.5, size=x.shape) if reduction == "none" else 1.3
    want.backward(torch.as_tensor(upstream, dtype=torch.float64))
    kwargs: dict[str, Any] = {
        "weight": weight,
        "pos_weight": pos_weight,
        "label_smoothing": smoothing,
        "reduction": reduction,
    }
    got = ref.binary_cross_entropy_with_logits(x, y, **kwargs)
    # PyTorch's (1 - y) x + softplus(-x) loses some relative accuracy; allow for it.
    _close(got, want.detach().numpy(), rtol=1e-12, atol=1e-13)
    loss, grad = ref.binary_cross_entropy_with_logits_with_grad(
        x, y, grad_output=upstream, **kwargs
    )
    _same(loss, got)
    _close(grad, xt.grad.numpy(), atol=1e-15)


def test_bce_tails_are_accurate() -> None:
    mpmath = pytest.importorskip("mpmath")
    x = np.array([-700.0, -40.0, -5.0, 0.0, 5.0, 40.0, 700.0])
    for y in (0.0, 1.0, 0.25):
        got = ref.binary_cross_entropy_with_logits(x, np.full_like(x, y), reduction="none")
        with mpmath.workdps(50):
            for xi, gi in zip(x, got, strict=True):
                # -log sigmoid(x) = log1p(exp(-x)) and -log(1 - sigmoid(x)) = log1p(exp(x)).
                xm = mpmath.mpf(float(xi))
                want = y * mpmath.log1p(mpmath.exp(-xm)) + (1 - y) * mpmath.log1p(mpmath.exp(xm))
                assert abs(gi - float(want)) <= 4 * EPS * float(want), (xi, y, gi, want)


def test_bce_special_values() -> None:
    x = np.array([INF, INF, -INF, -INF, NAN])
    y = np.array([1.0, 0.0, 0.0, 1.0, 1.0])
    loss, grad = ref.binary_cross_entropy_with_logits_with_grad(x, y, reduction="none")
    _same(loss, [0.0, INF, 0.0, INF, NAN])
    _same(grad, [0.0, 1.0, 0.0, -1.0, NAN])
    assert np.isnan(ref.binary_cross_entropy_with_logits(np.zeros(0), np.zeros(0)))


def test_bce_grad_by_finite_differences() -> None:
    rng = _rng(37)
    x = rng.normal(scale=2.0, size=(3, 4))
    y = rng.random((3, 4))
    kw: dict[str, Any] = {"pos_weight": rng.uniform(0.5, 2, 4), "label_smoothing": 0.1}
    _, grad = ref.binary_cross_entropy_with_logits_with_grad(x, y, **kw)
    _assert_fd(grad, _numeric_grad(lambda v: ref.binary_cross_entropy_with_logits(v, y, **kw), x))


def test_bce_errors() -> None:
    func = "binary_cross_entropy_with_logits"
    with pytest.raises(ValueError) as info:
        ref.binary_cross_entropy_with_logits(np.zeros((2, 3)), np.zeros(3))
    assert str(info.value) == f"{func}(): target must have the shape of logits (2, 3), got (3,)"
    with pytest.raises(ValueError) as info:
        ref.binary_cross_entropy_with_logits(np.zeros((2, 3)), np.zeros((2, 3)), pos_weight=[1, 2])
    assert str(info.value) == (
        f"{func}(): pos_weight with shape (2,) cannot be broadcast to logits (2, 3)"
    )
    with pytest.raises(ValueError, match=r"weight with shape \(2, 3, 1\) cannot be broadcast"):
        ref.binary_cross_entropy_with_logits(
            np.zeros((2, 3)), np.zeros((2, 3)), weight=np.ones((2, 3, 1))
        )
    with pytest.raises(ValueError, match=r"label_smoothing must be in \[0, 1\], got -0.1"):
        ref.binary_cross_entropy_with_logits(np.zeros(2), np.zeros(2), label_smoothing=-0.1)
    with pytest.raises(TypeError, match=r"target must be a real floating"):
        ref.binary_cross_entropy_with_logits(np.zeros(2), np.array(["a", "b"]))


def test_bce_dtypes() -> None:
    x = _rng(38).normal(size=5).astype(np.float32)
    y = np.array([1, 0, 1, 1, 0])  # integer targets are fine
    loss, grad = ref.binary_cross_entropy_with_logits_with_grad(x, y)
    assert loss.dtype == np.float32 and grad.dtype == np.float32
    wl, wg = ref.binary_cross_entropy_with_logits_with_grad(x.astype(np.float64), y)
    _same(loss, np.float32(wl))
    _same(grad, wg.astype(np.float32))


# ---------------------------------------------------------------------------
# Entropy, entr, rel_entr, kl_div_elementwise against SciPy
# ---------------------------------------------------------------------------

ENTROPY_CASES: list[tuple[tuple[int, ...], tuple[int, ...] | None, Any, bool]] = [
    # (pk shape, qk shape or None, axis, keepdims)
    ((7,), None, 0, False),
    ((7,), (7,), 0, False),
    ((3, 5), None, 0, False),
    ((3, 5), None, 1, True),
    ((3, 5), (3, 5), -1, False),
    ((3, 5), (5,), 1, False),
    ((3, 5), (3, 1), 1, False),
    ((2, 3, 4), None, (0, 2), False),
    ((2, 3, 4), (2, 3, 4), None, False),
    ((2, 3, 4), None, None, True),
]


@pytest.mark.parametrize("base", [None, 2.0, 10.0])
@pytest.mark.parametrize(("pshape", "qshape", "axis", "keepdims"), ENTROPY_CASES)
def test_entropy_vs_scipy(
    pshape: tuple[int, ...], qshape: tuple[int, ...] | None, axis: Any, keepdims: bool, base: Any
) -> None:
    stats = pytest.importorskip("scipy.stats")
    rng = _rng(39)
    pk = rng.uniform(0.0, 3.0, size=pshape)
    pk.flat[0] = 0.0
    qk = None if qshape is None else rng.uniform(0.1, 3.0, size=qshape)
    got = ref.entropy(pk, qk, base=base, axis=axis, keepdims=keepdims)
    want = stats.entropy(pk, qk, base=base, axis=axis, keepdims=keepdims)
    _close(got, want, rtol=1e-13)


def test_entropy_edge_cases_vs_scipy() -> None:
    stats = pytest.importorskip("scipy.stats")
    cases: list[tuple[Any, Any]] = [
        ([1, 2, 3], None),
        ([0, 0], None),
        ([1, -1, 2], None),
        ([1, NAN], None),
        ([1, INF], None),
        ([1, 2], [0, 1]),
        ([0, 1], [0, 1]),
        ([], None),
        ([True, False], None),
    ]
    for pk, qk in cases:
        with np.errstate(all="ignore"):
            want = stats.entropy(pk, qk)
        _same(ref.entropy(pk, qk), want)
    _same(ref.entropy(np.zeros((2, 0)), axis=1), [0.0, 0.0])
    assert ref.entropy(5.0) == 0.0
    assert ref.entropy(np.array([1, 2], np.float32)).dtype == np.float32
    assert ref.entropy(np.array([1, 2], np.float16)).dtype == np.float16
    with pytest.raises(
        ValueError, match=r"^entropy\(\): base must be a positive number or None, got -1$"
    ):
        ref.entropy([1, 2], base=-1)
    with pytest.raises(AxisError):
        ref.entropy([1, 2], axis=1)


def test_entropy_base_units() -> None:
    p = [0.125] * 8
    assert ref.entropy(p, base=2) == pytest.approx(3.0, rel=1e-15)
    assert ref.entropy(p) == pytest.approx(3 * math.log(2), rel=1e-15)
    assert ref.entropy(p, base=10) == pytest.approx(3 * math.log10(2), rel=1e-15)
    assert ref.entropy_from_logits(np.zeros(8), base=2) == pytest.approx(3.0, rel=1e-15)


SPECIAL = [0.0, -0.0, 1e-310, 1e-300, 0.3, 0.5, 1.0, 2.0, 7.0, 1e300, INF, -1.0, -INF, NAN]


def test_entr_vs_scipy() -> None:
    sp = pytest.importorskip("scipy.special")
    x = np.concatenate([SPECIAL, _rng(40).uniform(0, 5, 200)])
    got = ref.entr(x)
    want = sp.entr(x)
    _close(got, want, rtol=1e-14, atol=0)


@pytest.mark.parametrize("name", ["rel_entr", "kl_div"])
def test_binary_elementwise_vs_scipy(name: str) -> None:
    sp = pytest.importorskip("scipy.special")
    ours = ref.rel_entr if name == "rel_entr" else ref.kl_div_elementwise
    x, y = np.meshgrid(SPECIAL, SPECIAL, indexing="ij")
    got = ours(x, y)
    with np.errstate(all="ignore"):
        want = getattr(sp, name)(x, y)

    # SciPy's x / y over- or underflows for huge or subnormal arguments and
    # kl_div(inf, y) is inf - inf there; compare everywhere else.
    def extreme(v: NDArray[np.float64]) -> Any:
        a = np.abs(v)
        return (np.isfinite(a) & (a >= 1e299)) | ((a > 0) & (a < 1e-300))

    moderate = ~extreme(x) & ~extreme(y)
    if name == "kl_div":
        moderate &= ~((x == INF) & (y > 0))
    _close(got[moderate], want[moderate], rtol=1e-13, atol=0)
    rng = _rng(41)
    a, b = rng.uniform(0, 4, 300), rng.uniform(0, 4, 300)
    _close(ours(a, b), getattr(sp, name)(a, b), rtol=1e-11, atol=1e-15)


def test_binary_elementwise_extremes() -> None:
    # x log(x/y) - x + y with x/y overflowing: finite, unlike SciPy's inf and -inf.
    assert ref.kl_div_elementwise(1e300, 1e-300) == pytest.approx(
        1e300 * (600 * math.log(10) - 1), rel=1e-14
    )
    assert ref.kl_div_elementwise(1e-300, 1e300) == pytest.approx(1e300, rel=1e-14)
    assert ref.kl_div_elementwise(INF, 1.0) == INF
    assert ref.rel_entr(1e-300, 1e300) == pytest.approx(-1e-300 * 600 * math.log(10), rel=1e-14)


def test_near_equal_arguments_vs_mpmath() -> None:
    mpmath = pytest.importorskip("mpmath")
    rng = _rng(42)
    x = rng.uniform(0.1, 10.0, 200)
    y = x * (1 + rng.choice([-1, 1], 200) * 10.0 ** rng.uniform(-15, -0.05, 200))
    got_rel, got_kl = ref.rel_entr(x, y), ref.kl_div_elementwise(x, y)
    with mpmath.workdps(60):
        for i in range(200):
            xm, ym = mpmath.mpf(float(x[i])), mpmath.mpf(float(y[i]))
            rel = xm * mpmath.log(xm / ym)
            kl = rel - xm + ym
            assert abs(got_rel[i] - float(rel)) <= 4 * EPS * abs(float(rel))
            assert abs(got_kl[i] - float(kl)) <= 8 * EPS * abs(float(kl)), (x[i], y[i])


def test_elementwise_out_and_dtypes() -> None:
    p = np.array([0.25, 0.5], dtype=np.float32)
    out = np.empty(2, dtype=np.float32)
    assert ref.entr(p, out=out) is out
    _same(out, ref.entr(p.astype(np.float64)).astype(np.float32))
    assert ref.rel_entr(p, np.float16(0.5)).dtype == np.float32
    assert ref.kl_div_elementwise(p, p.astype(np.float64)).dtype == np.float64
    assert ref.rel_entr(1, 2).dtype == np.float64
    with pytest.raises(ValueError, match=r"^rel_entr\(\): out must have shape \(2,\)"):
        ref.rel_entr(p, p, out=np.empty(3, dtype=np.float32))
    with pytest.raises(ValueError, match=r"x with shape \(2,\) and y with shape \(3,\) cannot"):
        ref.kl_div_elementwise(p, np.ones(3))


# ---------------------------------------------------------------------------
# kl_div against PyTorch
# ---------------------------------------------------------------------------


@pytest.mark.filterwarnings("ignore:reduction. 'mean' divides:UserWarning")
@pytest.mark.parametrize("log_target", [False, True])
@pytest.mark.parametrize("reduction", ["none", "sum", "mean", "batchmean"])
@pytest.mark.parametrize("shape", [(4, 5), (2, 3, 4), ()])
def test_kl_div_vs_torch(shape: tuple[int, ...], reduction: str, log_target: bool) -> None:
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    rng = _rng(43)
    x = np.log(rng.uniform(0.05, 1.0, size=shape))
    t = rng.uniform(0.0, 1.0, size=shape)
    if shape:
        t.flat[0] = 0.0
    if log_target:
        t = np.log(t + 0.01)
    want = F.kl_div(torch.tensor(x), torch.tensor(t), reduction=reduction, log_target=log_target)
    got = ref.kl_div(x, t, reduction=reduction, log_target=log_target)
    _close(got, want.numpy())


def test_kl_div_zero_target_mass() -> None:
    # 0 where the target is 0, even against a log-probability of -inf.
    _same(ref.kl_div([-INF, 0.0], [0.0, 1.0], reduction="none"), [0.0, 0.0])
    _same(ref.kl_div([-INF, 0.0], [-INF, 0.0], reduction="none", log_target=True), [0.0, 0.0])
    _same(ref.kl_div([NAN, 0.0], [0.0, 1.0], reduction="none"), [NAN, 0.0])
    assert np.isnan(ref.kl_div([0.0], [-1.0], reduction="sum"))
    assert np.isnan(ref.kl_div(np.zeros((0, 3)), np.zeros((0, 3)), reduction="batchmean"))
    with pytest.raises(ValueError, match=r"reduction must be 'none', 'sum', 'mean' or 'batchmean'"):
        ref.kl_div([0.0], [1.0], reduction="avg")


# ---------------------------------------------------------------------------
# Entropy and divergences from logits
# ---------------------------------------------------------------------------


def test_entropy_from_logits_vs_scipy() -> None:
    stats = pytest.importorskip("scipy.stats")
    z = _rng(44).normal(scale=3.0, size=(4, 6, 5))
    for axis in (0, 1, -1):
        want = stats.entropy(ref.softmax(z, axis=axis), axis=axis)
        _close(ref.entropy_from_logits(z, axis=axis), want, rtol=1e-13)
        got = ref.entropy_from_logits(z, axis=axis, keepdims=True, base=2)
        _close(got, np.expand_dims(want, axis) / math.log(2), rtol=1e-13)


def test_entropy_from_logits_special_rows_and_where() -> None:
    z = np.array([[INF, 0.0, INF], [NAN, 0.0, 1.0], [-INF, -INF, -INF], [0.0, -INF, 0.0]])
    got = ref.entropy_from_logits(z)
    _close(got, [math.log(2), NAN, NAN, math.log(2)], atol=0)
    # where= masks entries: the entropy of softmax(z, where=mask).
    mask = np.array(
        [[True, False, True], [False, True, True], [False, False, False], [True, True, False]]
    )
    h01 = math.log1p(math.exp(-1)) + math.exp(-1) / (1 + math.exp(-1))  # softmax([0, 1])
    _close(ref.entropy_from_logits(z, where=mask), [math.log(2), h01, 0.0, 0.0], rtol=1e-15)
    assert ref.entropy_from_logits(np.zeros((3, 0))).tolist() == [0.0, 0.0, 0.0]
    assert ref.entropy_from_logits(np.array([0.0, 900.0])) == 0.0
    # Accurate where lse - sum(p z) would cancel: one dominant class.
    mpmath = pytest.importorskip("mpmath")
    row = [30.0, 0.0, -1.0]
    with mpmath.workdps(50):
        e = [mpmath.exp(v) for v in row]
        s = mpmath.fsum(e)
        want = -mpmath.fsum(v / s * mpmath.log(v / s) for v in e)
    assert ref.entropy_from_logits(row) == pytest.approx(float(want), rel=4 * EPS)


def _kl_oracle(p_logits: NDArray[np.float64], q_logits: NDArray[np.float64]) -> Any:
    sp = pytest.importorskip("scipy.special")
    p, q = sp.softmax(p_logits, axis=-1), sp.softmax(q_logits, axis=-1)
    return np.sum(sp.rel_entr(p, q), axis=-1)


def _jsd_oracle(p_logits: NDArray[np.float64], q_logits: NDArray[np.float64], beta: float) -> Any:
    sp = pytest.importorskip("scipy.special")
    p, q = sp.softmax(p_logits, axis=-1), sp.softmax(q_logits, axis=-1)
    if beta == 0:
        return np.sum(sp.rel_entr(p, q), axis=-1)
    if beta == 1:
        return np.sum(sp.rel_entr(q, p), axis=-1)
    m = beta * p + (1 - beta) * q
    return beta * np.sum(sp.rel_entr(p, m), axis=-1) + (1 - beta) * np.sum(
        sp.rel_entr(q, m), axis=-1
    )


@pytest.mark.parametrize("reduction", ["none", "sum", "mean", "batchmean"])
def test_kl_from_logits(reduction: str) -> None:
    rng = _rng(45)
    a, b = rng.normal(scale=2.0, size=(2, 5, 6))
    rows = _kl_oracle(a, b)
    mask = np.array([True, True, False, True, False])
    got = ref.kl_divergence_from_logits(a, b, reduction=reduction, where=mask)
    kept = np.where(mask, rows, 0.0)
    want = {
        "none": kept,
        "sum": kept.sum(),
        "mean": kept.sum() / 3,
        "batchmean": kept.sum() / 5,
    }[reduction]
    _close(got, want, rtol=1e-12)
    # And against PyTorch's kl_div on log-probabilities.
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    if reduction in ("sum", "batchmean"):
        t = F.kl_div(
            torch.log_softmax(torch.tensor(b), -1),
            torch.log_softmax(torch.tensor(a), -1),
            reduction=reduction,
            log_target=True,
        )
        _close(ref.kl_divergence_from_logits(a, b, reduction=reduction), t.numpy())


def test_kl_from_logits_layouts() -> None:
    rng = _rng(46)
    a, b = rng.normal(size=(2, 3, 4, 5))
    got = ref.kl_divergence_from_logits(a, b, axis=1)
    want = _kl_oracle(np.moveaxis(a, 1, -1), np.moveaxis(b, 1, -1))
    _close(got, want, rtol=1e-12)
    assert np.ndim(ref.kl_divergence_from_logits(a[0, :, 0], b[0, :, 0])) == 0
    assert ref.kl_divergence_from_logits([0.0, -INF], [0.0, 0.0]) == pytest.approx(math.log(2))
    assert ref.kl_divergence_from_logits([0.0, 0.0], [0.0, -INF]) == INF


@pytest.mark.parametrize("beta", [0.0, 0.1, 0.5, 0.9, 1.0])
def test_jsd_vs_oracle(beta: float) -> None:
    rng = _rng(47)
    a, b = rng.normal(scale=2.0, size=(2, 6, 7))
    _close(ref.jensen_shannon_from_logits(a, b, beta=beta), _jsd_oracle(a, b, beta), rtol=1e-11)


def test_jsd_limits_and_symmetry() -> None:
    rng = _rng(48)
    a, b = rng.normal(scale=2.0, size=(2, 6, 7))
    # The ends are the forward and reverse KL.
    _same(ref.jensen_shannon_from_logits(a, b, beta=0.0), ref.kl_divergence_from_logits(a, b))
    _same(ref.jensen_shannon_from_logits(a, b, beta=1.0), ref.kl_divergence_from_logits(b, a))
    # The interior formula tends to 0 at the ends: the ends are conventions.
    assert np.all(ref.jensen_shannon_from_logits(a, b, beta=1e-9) < 1e-7)
    assert np.all(ref.jensen_shannon_from_logits(a, b, beta=1 - 1e-9) < 1e-7)
    # JSD_beta(P, Q) = JSD_{1-beta}(Q, P); beta = 1/2 is symmetric and at most log 2.
    _close(
        ref.jensen_shannon_from_logits(a, b, beta=0.3),
        ref.jensen_shannon_from_logits(b, a, beta=0.7),
        rtol=1e-13,
    )
    half = ref.jensen_shannon_from_logits(a, b)
    assert np.all((half >= 0) & (half <= math.log(2)))
    assert ref.jensen_shannon_from_logits([0.0, -INF], [-INF, 0.0]) == pytest.approx(math.log(2))
    _close(ref.jensen_shannon_from_logits(a, a, beta=0.4), np.zeros(6), atol=1e-15)
    with pytest.raises(ValueError, match=r"^jensen_shannon_from_logits\(\): beta must be in"):
        ref.jensen_shannon_from_logits(a, b, beta=1.5)


DIVERGENCES: list[tuple[str, dict[str, Any]]] = [
    ("kl", {}),
    ("jsd", {"beta": 0.0}),
    ("jsd", {"beta": 0.25}),
    ("jsd", {"beta": 0.5}),
    ("jsd", {"beta": 1.0}),
]


@pytest.mark.parametrize("reduction", ["none", "mean", "batchmean"])
@pytest.mark.parametrize(("which", "kw"), DIVERGENCES, ids=lambda v: str(v))
def test_divergence_grads_by_finite_differences(
    which: str, kw: dict[str, Any], reduction: str
) -> None:
    rng = _rng(49)
    a, b = rng.normal(scale=1.5, size=(2, 4, 5))
    mask = np.array([True, False, True, True])
    upstream = rng.uniform(0.5, 1.5, size=4) if reduction == "none" else 0.6
    plain = ref.kl_divergence_from_logits if which == "kl" else ref.jensen_shannon_from_logits
    with_grad = (
        ref.kl_divergence_from_logits_with_grad
        if which == "kl"
        else ref.jensen_shannon_from_logits_with_grad
    )
    opts = {"reduction": reduction, "where": mask, **kw}
    loss, gp, gq = with_grad(a, b, grad_output=upstream, **opts)
    _same(loss, plain(a, b, **opts))

    def fp(v: NDArray[np.float64]) -> float:
        return float(np.sum(upstream * plain(v, b, **opts)))

    def fq(v: NDArray[np.float64]) -> float:
        return float(np.sum(upstream * plain(a, v, **opts)))

    _assert_fd(gp, _numeric_grad(fp, a))
    _assert_fd(gq, _numeric_grad(fq, b))
    _same(gp[1], 0.0)
    np.testing.assert_allclose(np.sum(gp, axis=-1), 0.0, atol=1e-15)
    np.testing.assert_allclose(np.sum(gq, axis=-1), 0.0, atol=1e-15)


def test_kl_grads_vs_torch() -> None:
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    rng = _rng(50)
    a, b = rng.normal(scale=2.0, size=(2, 3, 6))
    at = torch.tensor(a, requires_grad=True)
    bt = torch.tensor(b, requires_grad=True)
    F.kl_div(
        torch.log_softmax(bt, -1), torch.log_softmax(at, -1), reduction="batchmean", log_target=True
    ).backward()
    _, gp, gq = ref.kl_divergence_from_logits_with_grad(a, b, reduction="batchmean")
    _close(gp, at.grad.numpy(), atol=1e-15)
    _close(gq, bt.grad.numpy(), atol=1e-15)


def test_divergence_errors_and_dtypes() -> None:
    func = "kl_divergence_from_logits"
    with pytest.raises(ValueError) as info:
        ref.kl_divergence_from_logits(np.zeros((2, 3)), np.zeros((3, 3)))
    assert str(info.value) == (
        f"{func}(): p_logits and q_logits must have the same shape, got (2, 3) and (3, 3)"
    )
    with pytest.raises(ValueError, match=r"grad_output must be a scalar with reduction='mean'"):
        ref.kl_divergence_from_logits_with_grad(
            np.zeros((2, 3)), np.zeros((2, 3)), reduction="mean", grad_output=[1.0, 2.0]
        )
    a32 = np.zeros((2, 3), dtype=np.float32)
    assert ref.kl_divergence_from_logits(a32, a32).dtype == np.float32
    assert ref.jensen_shannon_from_logits(a32, a32.astype(np.float16)).dtype == np.float32
    _, gp, gq = ref.jensen_shannon_from_logits_with_grad(a32, a32)
    assert gp.dtype == np.float32 and gq.dtype == np.float32
    assert ref.entropy_from_logits(a32.astype(np.float16)).dtype == np.float16
    assert ref.entropy_from_logits(np.array([[1, 2]])).dtype == np.float64


# ---------------------------------------------------------------------------
# Backward passes and hardmax
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(("shape", "axis"), [((4, 6), -1), ((4, 6), 0), ((2, 3, 4), 1)])
def test_backward_passes_vs_torch(shape: tuple[int, ...], axis: int) -> None:
    torch = pytest.importorskip("torch")
    rng = _rng(51)
    x = rng.normal(scale=2.0, size=shape)
    g = rng.normal(size=shape)

    def autograd(fn: Callable[[Any], Any], upstream: Any) -> Any:
        xt = torch.tensor(x, requires_grad=True)
        fn(xt).backward(torch.tensor(upstream))
        return xt.grad.numpy()

    y = ref.softmax(x, axis=axis)
    want = autograd(lambda t: torch.softmax(t, axis), g)
    _close(ref.softmax_backward(g, y, axis=axis), want, atol=1e-15)
    ly = ref.log_softmax(x, axis=axis)
    want = autograd(lambda t: torch.log_softmax(t, axis), g)
    _close(ref.log_softmax_backward(g, ly, axis=axis), want, atol=1e-15)
    s = ref.sigmoid(x)
    _close(ref.sigmoid_backward(g, s), autograd(torch.sigmoid, g), atol=1e-16)

    gl = rng.normal(size=np.shape(ref.logsumexp(x, axis=axis)))
    want = autograd(lambda t: torch.logsumexp(t, axis), gl)
    _close(ref.logsumexp_backward(gl, x, axis=axis), want, atol=1e-16)
    lse = ref.logsumexp(x, axis=axis)
    _close(ref.logsumexp_backward(gl, x, lse, axis=axis), want, atol=1e-16)
    gk = np.expand_dims(gl, axis)
    _close(ref.logsumexp_backward(gk, x, axis=axis, keepdims=True), want, atol=1e-16)


def test_backward_passes_over_several_axes() -> None:
    rng = _rng(52)
    x = rng.normal(size=(2, 3, 4))
    g = rng.normal(size=(2, 3, 4))
    y = ref.softmax(x, axis=(0, 2))
    # Each (0, 2) slab is one row: compare with the flattened computation.
    flat = np.moveaxis(x, 1, 0).reshape(3, 8)
    gf = np.moveaxis(g, 1, 0).reshape(3, 8)
    yf = ref.softmax(flat)
    want = np.moveaxis((yf * (gf - np.sum(gf * yf, axis=1, keepdims=True))).reshape(3, 2, 4), 0, 1)
    _close(ref.softmax_backward(g, y, axis=(0, 2)), want, atol=1e-16)
    gl = rng.normal(size=3)
    want = gl[None, :, None] * y
    _close(ref.logsumexp_backward(gl, x, axis=(0, 2)), want, atol=1e-16)
    got = ref.logsumexp_backward(np.float64(2.0), x, axis=None)
    _close(got, 2.0 * ref.softmax(x, axis=None), atol=1e-16)


def test_backward_errors_and_dtypes() -> None:
    x32 = np.zeros((2, 3), dtype=np.float32)
    with pytest.raises(ValueError) as info:
        ref.softmax_backward(np.zeros((2, 3)), np.zeros((3, 3)))
    assert str(info.value) == (
        "softmax_backward(): grad and y must have the same shape, got (2, 3) and (3, 3)"
    )
    with pytest.raises(ValueError) as info:
        ref.logsumexp_backward(np.zeros(3), x32)
    assert str(info.value) == (
        "logsumexp_backward(): grad must have the shape (2,) of the logsumexp result, got (3,)"
    )
    with pytest.raises(ValueError, match=r"lse must have the shape \(2, 1\)"):
        ref.logsumexp_backward(np.zeros((2, 1)), x32, np.zeros(2), keepdims=True)
    assert ref.softmax_backward(x32, x32).dtype == np.float32
    assert ref.log_softmax_backward(x32, x32.astype(np.float64)).dtype == np.float64
    assert ref.logsumexp_backward(np.zeros(2, np.float32), x32).dtype == np.float32
    assert ref.sigmoid_backward(x32.astype(np.float16), x32.astype(np.float16)).dtype == np.float16
    out = np.empty((2, 3), dtype=np.float32)
    assert ref.sigmoid_backward(x32, x32 + 0.5, out=out) is out
    _same(out, np.full((2, 3), 0.0))
    with pytest.raises(TypeError, match=r"^sigmoid_backward\(\): grad must be a real floating"):
        ref.sigmoid_backward(np.zeros(2, complex), np.zeros(2))


def test_hardmax() -> None:
    x = np.array([[1.0, 3.0, 3.0], [-INF, -INF, -INF], [0.0, NAN, 1.0], [0.0, INF, INF]])
    want = np.array([[0, 1, 0], [1, 0, 0], [NAN] * 3, [0, 1, 0]], dtype=np.float64)
    _same(ref.hardmax(x), want)
    _same(ref.hardmax(x[[0, 3]], axis=0), [[1, 0, 0], [0, 1, 1]])
    rng = _rng(53)
    z = rng.normal(size=(2, 3, 4)).astype(np.float32)
    got = ref.hardmax(z, axis=(0, 2))
    assert got.dtype == np.float32
    for j in range(3):
        slab = z[:, j, :]
        one = np.zeros(slab.shape, dtype=np.float32)
        one[np.unravel_index(np.argmax(slab), slab.shape)] = 1
        _same(got[:, j, :], one)
    _same(ref.hardmax(z, axis=()), np.ones_like(z))
    assert ref.hardmax(np.zeros((3, 0))).shape == (3, 0)
    _same(ref.hardmax(np.array(2.0)), 1.0)
    # The limit of softmax(x / T) as T -> 0 away from ties.
    _same(ref.hardmax(z), np.round(ref.softmax(z.astype(np.float64) / 1e-6)).astype(np.float32))


# ---------------------------------------------------------------------------
# Properties
# ---------------------------------------------------------------------------

PROPS = settings(max_examples=60, deadline=None)
logit_rows = hnp.arrays(
    np.float64, st.tuples(st.integers(1, 5), st.integers(2, 6)), elements=st.floats(-20, 20)
)


@PROPS
@given(logit_rows, st.data())
def test_hard_target_grad_rows_sum_to_zero(z: NDArray[np.float64], data: st.DataObject) -> None:
    n, c = z.shape
    target = np.array(data.draw(st.lists(st.integers(0, c - 1), min_size=n, max_size=n)))
    weight = data.draw(hnp.arrays(np.float64, (c,), elements=st.floats(0.1, 3.0)) | st.none())
    alpha = data.draw(st.sampled_from([0.0, 0.1, 0.5]))
    smoothing = data.draw(st.sampled_from(["pytorch", "megatron"]))
    _, grad = ref.cross_entropy_with_grad(
        z, target, weight=weight, label_smoothing=alpha, smoothing=smoothing, reduction="none"
    )
    scale = 1.0 if weight is None else float(np.max(weight))
    np.testing.assert_allclose(np.sum(grad, axis=-1), 0.0, atol=8 * c * EPS * scale)


@PROPS
@given(logit_rows, st.data())
def test_grad_of_mean_is_grad_of_sum_over_denominator(
    z: NDArray[np.float64], data: st.DataObject
) -> None:
    n, c = z.shape
    target = np.array(data.draw(st.lists(st.integers(-1, c - 1), min_size=n, max_size=n)))
    target[target == -1] = -100
    weight = data.draw(hnp.arrays(np.float64, (c,), elements=st.floats(0.1, 3.0)))
    kw: dict[str, Any] = {"weight": weight, "ignore_index": -100, "z_loss": 1e-3}
    mean, g_mean = ref.cross_entropy_with_grad(z, target, reduction="mean", **kw)
    total, g_sum = ref.cross_entropy_with_grad(z, target, reduction="sum", **kw)
    counted = target != -100
    if not counted.any():
        assert np.isnan(mean)
        return
    denom = np.sum(weight[target[counted]])
    np.testing.assert_allclose(mean, total / denom, rtol=1e-14)
    np.testing.assert_allclose(g_mean, g_sum / denom, rtol=1e-14, atol=1e-300)


@PROPS
@given(logit_rows, logit_rows)
def test_divergences_are_non_negative(a: NDArray[np.float64], b: NDArray[np.float64]) -> None:
    if a.shape != b.shape:
        b = np.resize(b, a.shape)
    kl = ref.kl_divergence_from_logits(a, b)
    assert np.all(kl >= -8 * EPS * (1 + np.abs(a).max() + np.abs(b).max()))
    for beta in (0.2, 0.5):
        jsd = ref.jensen_shannon_from_logits(a, b, beta=beta)
        assert np.all(jsd >= -8 * EPS)
    h = ref.entropy_from_logits(a)
    assert np.all((h >= 0) & (h <= math.log(a.shape[-1]) * (1 + 4 * EPS)))


@PROPS
@given(logit_rows)
def test_own_softmax_as_target_gives_entropy_and_no_grad(z: NDArray[np.float64]) -> None:
    # With its own softmax as the target, a row's loss is its entropy, and the
    # gradient (the target held fixed) vanishes: the loss is at its minimum.
    p = ref.softmax(z)
    loss, grad = ref.cross_entropy_with_grad(z, p, reduction="none")
    np.testing.assert_allclose(loss, ref.entropy_from_logits(z), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(grad, 0.0, atol=8 * EPS)


def test_inputs_not_modified() -> None:
    rng = _rng(54)
    z = rng.normal(size=(4, 3))
    t = np.array([0, -100, 2, 1])
    p = ref.softmax(rng.normal(size=(4, 3)))
    w = np.ones(3)
    before = [a.copy() for a in (z, t, p, w)]
    ref.cross_entropy_with_grad(z, t, weight=w, label_smoothing=0.1, softcap=2.0)
    ref.cross_entropy_with_grad(z, p, weight=w)
    ref.nll_loss(z, t, weight=w)
    ref.binary_cross_entropy_with_logits_with_grad(z, p, weight=w)
    ref.kl_divergence_from_logits_with_grad(z, p)
    ref.jensen_shannon_from_logits_with_grad(z, p)
    ref.entropy(p, z**2)
    for a, b in zip((z, t, p, w), before, strict=True):
        _same(a, b)
