"""Tests of logitkit.reference, the pure-NumPy specification of logitkit.

The reference is checked against independent oracles: SciPy where SciPy is
accurate, closed forms, and an arbitrary-precision evaluation with mpmath.
"""

from __future__ import annotations

import ast
import math
from collections.abc import Callable
from pathlib import Path
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

# The reference promises to be silent on inf/NaN/overflow; hold it to that.
pytestmark = pytest.mark.filterwarnings("error::RuntimeWarning")

EPS = float(np.finfo(np.float64).eps)
INF = math.inf
NAN = math.nan

ELEMENTWISE: list[Callable[..., Any]] = [
    ref.sigmoid,
    ref.log_sigmoid,
    ref.softplus,
    ref.logit,
]
ROWWISE: list[Callable[..., Any]] = [ref.logsumexp, ref.softmax, ref.log_softmax]
ALL_FUNCS = ELEMENTWISE + ROWWISE

SHAPES_AXES: list[tuple[tuple[int, ...], Any]] = [
    ((7,), -1),
    ((7,), 0),
    ((7,), None),
    ((3, 5), 0),
    ((3, 5), 1),
    ((3, 5), None),
    ((4, 1, 6), 1),
    ((2, 3, 4), (0, 2)),
    ((2, 3, 4), (-1, -2)),
    ((2, 3, 4), (0, 1, 2)),
    ((2, 3, 4), None),
    ((2, 3, 4), ()),
]


def _rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


def _same(actual: Any, expected: Any) -> None:
    """Equal values, NaN matching NaN and the zero signs ignored."""
    np.testing.assert_array_equal(np.asarray(actual), np.asarray(expected))


# ---------------------------------------------------------------------------
# The module itself
# ---------------------------------------------------------------------------


def test_public_names() -> None:
    assert sorted(ref.__all__) == sorted(
        [
            "expit",
            "log_expit",
            "log_sigmoid",
            "log_softmax",
            "logit",
            "logsumexp",
            "sigmoid",
            "softmax",
            "softplus",
            "cross_entropy",
            "cross_entropy_with_grad",
            "CrossEntropyStats",
            "nll_loss",
            "binary_cross_entropy_with_logits",
            "binary_cross_entropy_with_logits_with_grad",
            "entropy",
            "entropy_from_logits",
            "entr",
            "rel_entr",
            "kl_div_elementwise",
            "kl_div",
            "kl_divergence_from_logits",
            "kl_divergence_from_logits_with_grad",
            "jensen_shannon_from_logits",
            "jensen_shannon_from_logits_with_grad",
            "softmax_backward",
            "log_softmax_backward",
            "logsumexp_backward",
            "sigmoid_backward",
            "hardmax",
            "linear_cross_entropy",
            "linear_cross_entropy_with_grad",
        ]
    )
    for name in ref.__all__:
        assert callable(getattr(ref, name))
        assert getattr(ref, name).__doc__
    assert ref.expit is ref.sigmoid
    assert ref.log_expit is ref.log_sigmoid


REFERENCE_MODULES = sorted(Path(ref.__file__).parent.glob("*.py"))


@pytest.mark.parametrize("path", REFERENCE_MODULES, ids=lambda path: path.stem)
def test_imports_numpy_only(path: Path) -> None:
    # The oracle must stay independent of the native code it judges and of the API's
    # argument checks: its modules import NumPy, the standard library and one another.
    imported: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                imported.add("." * node.level + (node.module or ""))
                # what modules share is public in _common; the rest stays in its module
                assert not [a.name for a in node.names if a.name.startswith("_")]
            else:
                assert node.module is not None
                imported.add(node.module.split(".")[0])
    allowed = {"__future__", "numpy", "operator", "typing"}
    allowed |= {"." + sibling.stem for sibling in REFERENCE_MODULES}
    if path.stem == "_partial":
        # The partials are the API's own classes, merged by the same NumPy-only code; the
        # merge's definition sums exactly with math.fsum, row by row.
        allowed |= {".._mergeable", "collections", "math"}
    assert imported <= allowed


@pytest.mark.parametrize("func", ALL_FUNCS)
def test_threads_is_accepted_and_ignored(func: Callable[..., Any]) -> None:
    x = np.linspace(0.05, 0.95, 12).reshape(3, 4)
    _same(func(x, threads=4), func(x))


# ---------------------------------------------------------------------------
# Agreement with SciPy on ordinary inputs
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize(("shape", "axis"), SHAPES_AXES)
def test_logsumexp_vs_scipy(shape: tuple[int, ...], axis: Any, keepdims: bool) -> None:
    sp = pytest.importorskip("scipy.special")
    x = _rng(1).normal(scale=5.0, size=shape)
    got = ref.logsumexp(x, axis=axis, keepdims=keepdims)
    want = sp.logsumexp(x, axis=axis, keepdims=keepdims)
    assert np.shape(got) == np.shape(want)
    np.testing.assert_allclose(got, want, rtol=1e-13, atol=1e-14)


@pytest.mark.parametrize(("shape", "axis"), SHAPES_AXES)
def test_logsumexp_signed_weights_vs_scipy(shape: tuple[int, ...], axis: Any) -> None:
    sp = pytest.importorskip("scipy.special")
    rng = _rng(2)
    x = rng.normal(scale=2.0, size=shape)
    b = rng.uniform(0.1, 2.0, size=shape) * rng.choice([-1.0, 1.0], size=shape)
    value, sign = ref.logsumexp(x, axis=axis, b=b, return_sign=True)
    want_value, want_sign = sp.logsumexp(x, axis=axis, b=b, return_sign=True)

    # Cancellation between weights of both signs makes any float64 algorithm
    # lose accuracy in proportion to the condition number; only compare where
    # the sum is reasonably conditioned, and make sure that is most of them.
    top = np.max(x)
    terms = b * np.exp(x - top)
    cond = np.sum(np.abs(terms), axis=axis) / np.abs(np.sum(terms, axis=axis))
    ok = cond < 1e6
    assert np.mean(ok) > 0.8
    np.testing.assert_array_equal(np.asarray(sign)[ok], np.asarray(want_sign)[ok])
    err = np.abs(np.asarray(value)[ok] - np.asarray(want_value)[ok])
    tol = 1e-13 * np.abs(np.asarray(want_value)[ok]) + 1e-14 * cond[ok]
    np.testing.assert_array_less(err, tol)


def test_logsumexp_negative_sum_vs_scipy() -> None:
    sp = pytest.importorskip("scipy.special")
    rng = _rng(3)
    x = rng.normal(size=(6, 9))
    b = -rng.uniform(0.5, 1.5, size=(6, 9))
    value, sign = ref.logsumexp(x, b=b, return_sign=True)
    want_value, want_sign = sp.logsumexp(x, axis=-1, b=b, return_sign=True)
    np.testing.assert_array_equal(sign, -np.ones(6))
    np.testing.assert_array_equal(sign, want_sign)
    np.testing.assert_allclose(value, want_value, rtol=1e-13)
    assert np.all(np.isnan(ref.logsumexp(x, b=b)))


def test_logsumexp_broadcast_weights_vs_scipy() -> None:
    sp = pytest.importorskip("scipy.special")
    rng = _rng(4)
    x = rng.normal(size=(3, 5))
    b = rng.uniform(0.5, 2.0, size=5)
    np.testing.assert_allclose(
        ref.logsumexp(x, axis=0, b=b), sp.logsumexp(x, axis=0, b=b), rtol=1e-13
    )
    np.testing.assert_allclose(ref.logsumexp(x, b=2.0), sp.logsumexp(x, axis=-1, b=2.0), rtol=1e-13)


@pytest.mark.parametrize(("shape", "axis"), SHAPES_AXES)
def test_softmax_vs_scipy(shape: tuple[int, ...], axis: Any) -> None:
    sp = pytest.importorskip("scipy.special")
    x = _rng(5).normal(scale=3.0, size=shape)
    got = ref.softmax(x, axis=axis)
    assert got.shape == x.shape
    np.testing.assert_allclose(got, sp.softmax(x, axis=axis), rtol=1e-13)


@pytest.mark.parametrize(("shape", "axis"), SHAPES_AXES)
def test_log_softmax_vs_scipy(shape: tuple[int, ...], axis: Any) -> None:
    sp = pytest.importorskip("scipy.special")
    x = _rng(6).normal(scale=3.0, size=shape)
    got = ref.log_softmax(x, axis=axis)
    assert got.shape == x.shape
    # SciPy's log(1 + r) loses the relative accuracy of entries close to 0.
    np.testing.assert_allclose(got, sp.log_softmax(x, axis=axis), rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize(
    ("func", "scipy_name", "make"),
    [
        (ref.expit, "expit", lambda rng: rng.normal(scale=15.0, size=500)),
        (ref.sigmoid, "expit", lambda rng: rng.uniform(-700.0, 700.0, size=500)),
        (ref.log_expit, "log_expit", lambda rng: rng.normal(scale=15.0, size=500)),
        (ref.log_sigmoid, "log_expit", lambda rng: rng.uniform(-700.0, 700.0, size=500)),
        (ref.logit, "logit", lambda rng: rng.uniform(0.0, 1.0, size=500)),
        (ref.logit, "logit", lambda rng: rng.uniform(0.45, 0.55, size=500)),
        (ref.logit, "logit", lambda rng: 10.0 ** rng.uniform(-300.0, -1.0, size=500)),
        (ref.logit, "logit", lambda rng: 1.0 - 10.0 ** rng.uniform(-15.0, -1.0, size=500)),
    ],
)
def test_elementwise_vs_scipy(
    func: Callable[..., Any],
    scipy_name: str,
    make: Callable[[np.random.Generator], NDArray[np.float64]],
) -> None:
    sp = pytest.importorskip("scipy.special")
    x = make(_rng(7)).reshape(20, 25)
    got = func(x)
    assert got.shape == x.shape
    np.testing.assert_allclose(got, getattr(sp, scipy_name)(x), rtol=1e-13)


def test_softplus_vs_numpy_logaddexp() -> None:
    x = _rng(8).uniform(-700.0, 700.0, size=400)
    np.testing.assert_allclose(ref.softplus(x), np.logaddexp(x, 0.0), rtol=1e-13)


# ---------------------------------------------------------------------------
# Exact values and an arbitrary-precision oracle
# ---------------------------------------------------------------------------


def test_softmax_does_not_overflow() -> None:
    # Naively exp(789) overflows float32 and float64 alike.
    _same(ref.softmax(np.array([123.0, 456.0, 789.0], dtype=np.float32)), [0.0, 0.0, 1.0])
    got = ref.softmax([123, 456, 789])
    assert got[2] == 1.0
    np.testing.assert_allclose(got[:2], [math.exp(-666.0), math.exp(-333.0)], rtol=1e-13)
    _same(ref.softmax([0.0, 1000.0, 2000.0]), [0.0, 0.0, 1.0])
    _same(ref.log_softmax([0.0, 1000.0, 2000.0]), [-2000.0, -1000.0, 0.0])


def test_logsumexp_exact_values() -> None:
    assert ref.logsumexp([1000.0, 1000.0]) == 1000.0 + math.log(2.0)
    assert ref.logsumexp([-1000.0, -1000.0]) == -1000.0 + math.log(2.0)
    tiny = ref.logsumexp([0.0, -50.0])
    assert tiny == math.log1p(math.exp(-50.0))
    assert tiny == 1.9287498479639178e-22
    assert ref.logsumexp([0.0, -50.0], b=[1.0, 1.0]) == tiny
    assert ref.logsumexp([5.0]) == 5.0
    assert ref.logsumexp([2.0], b=[-3.0], return_sign=True) == (2.0 + math.log(3.0), -1.0)


def test_log_softmax_keeps_tiny_terms() -> None:
    got = ref.log_softmax([0.0, -50.0])
    assert got[0] == -math.log1p(math.exp(-50.0))
    assert got[0] == -1.9287498479639178e-22
    assert got[1] == -50.0


def test_logsumexp_sign_flip_branch() -> None:
    # 0.5 e^2 - 2 e < 0 with the larger entry carrying the smaller weight, so
    # the magnitude comes from the 1 + r/c < 0 branch.
    value, sign = ref.logsumexp([2.0, 1.0], b=[0.5, -2.0], return_sign=True)
    want = 0.5 * math.exp(2.0) - 2.0 * math.exp(1.0)
    assert sign == -1.0
    assert value == pytest.approx(math.log(-want), rel=1e-15)
    value, sign = ref.logsumexp([2.0, 1.0], b=[0.5, -1.0], return_sign=True)
    assert sign == 1.0
    assert value == pytest.approx(math.log(0.5 * math.exp(2.0) - math.exp(1.0)), rel=1e-15)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_rowwise_vs_mpmath(dtype: type[np.floating[Any]]) -> None:
    mpmath = pytest.importorskip("mpmath")
    rng = _rng(9)
    x = rng.normal(scale=6.0, size=(25, 6)).astype(dtype)
    b = rng.uniform(0.25, 4.0, size=(25, 6)).astype(dtype)
    lse = ref.logsumexp(x)
    lse_b = ref.logsumexp(x, b=b)
    sm = ref.softmax(x)
    lsm = ref.log_softmax(x)
    with mpmath.workdps(60):
        for i, row in enumerate(x):
            xs = [mpmath.mpf(float(v)) for v in row]
            bs = [mpmath.mpf(float(v)) for v in b[i]]
            total = mpmath.fsum(mpmath.exp(v) for v in xs)
            exact = {
                "lse": mpmath.log(total),
                "lse_b": mpmath.log(
                    mpmath.fsum(w * mpmath.exp(v) for v, w in zip(xs, bs, strict=True))
                ),
            }
            exact_sm = [mpmath.exp(v) / total for v in xs]
            exact_lsm = [v - exact["lse"] for v in xs]
            if dtype is np.float32:
                # Computed in float64 and rounded once, the float32 result is the
                # correctly rounded value except in vanishingly rare ties.
                assert lse[i] == np.float32(float(exact["lse"]))
                assert lse_b[i] == np.float32(float(exact["lse_b"]))
                _same(sm[i], np.array([float(v) for v in exact_sm], dtype=np.float32))
                _same(lsm[i], np.array([float(v) for v in exact_lsm], dtype=np.float32))
            else:
                scale = float(np.max(np.abs(row)))
                assert abs(lse[i] - float(exact["lse"])) <= 4 * EPS * (scale + abs(lse[i]))
                assert abs(lse_b[i] - float(exact["lse_b"])) <= 4 * EPS * (scale + abs(lse_b[i]))
                gap = np.abs(row - np.max(row))
                want_sm = np.array([float(v) for v in exact_sm])
                np.testing.assert_array_less(
                    np.abs(sm[i] - want_sm), 4 * EPS * (1 + gap) * want_sm + 1e-300
                )
                want_lsm = np.array([float(v) for v in exact_lsm])
                np.testing.assert_array_less(
                    np.abs(lsm[i] - want_lsm), 4 * EPS * (scale + np.abs(want_lsm)) + 1e-300
                )


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_elementwise_vs_mpmath(dtype: type[np.floating[Any]]) -> None:
    mpmath = pytest.importorskip("mpmath")
    rng = _rng(11)
    x = np.concatenate([rng.normal(scale=10.0, size=60), rng.uniform(-80.0, 80.0, size=60)])
    p = np.concatenate([rng.uniform(0.0, 1.0, size=60), rng.uniform(0.3, 0.7, size=60)])
    x, p = x.astype(dtype), p.astype(dtype)
    got = {
        "sigmoid": ref.sigmoid(x),
        "log_sigmoid": ref.log_sigmoid(x),
        "softplus": ref.softplus(x),
        "logit": ref.logit(p),
    }
    with mpmath.workdps(60):
        exact = {
            "sigmoid": [1 / (1 + mpmath.exp(-mpmath.mpf(float(v)))) for v in x],
            "log_sigmoid": [-mpmath.log1p(mpmath.exp(-mpmath.mpf(float(v)))) for v in x],
            "softplus": [mpmath.log1p(mpmath.exp(mpmath.mpf(float(v)))) for v in x],
            "logit": [mpmath.log(mpmath.mpf(float(v)) / (1 - mpmath.mpf(float(v)))) for v in p],
        }
    for name, values in exact.items():
        want = np.array([float(v) for v in values])
        if dtype is np.float32:
            _same(got[name], want.astype(np.float32))
        else:
            np.testing.assert_allclose(got[name], want, rtol=4 * EPS, atol=0, err_msg=name)


# ---------------------------------------------------------------------------
# Special values
# ---------------------------------------------------------------------------

LSE_SPECIAL: list[tuple[list[float], list[float] | None, float, float]] = [
    # x, b, value with return_sign, sign
    ([1.0, NAN, 2.0], None, NAN, NAN),
    ([NAN, INF], None, NAN, NAN),
    ([NAN, -INF], None, NAN, NAN),
    ([1.0, INF, 2.0], None, INF, 1.0),
    ([INF, INF], None, INF, 1.0),
    ([INF, -INF], None, INF, 1.0),
    ([-INF, -INF], None, -INF, 0.0),
    ([-INF], None, -INF, 0.0),
    ([], None, -INF, 0.0),
    ([INF, 1.0], [-2.0, 1.0], INF, -1.0),
    ([INF, 1.0], [3.0, -100.0], INF, 1.0),
    ([INF, INF, 1.0], [1.0, -1.0, 5.0], NAN, NAN),
    ([INF, NAN, 3.0], [0.0, 0.0, 1.0], 3.0, 1.0),
    ([-INF, NAN, 3.0], [0.0, 0.0, -1.0], 3.0, -1.0),
    ([1.0, 2.0], [0.0, 0.0], -INF, 0.0),
    ([1.0, 2.0], [1.0, NAN], NAN, NAN),
    ([1.0, NAN], [NAN, 0.0], NAN, NAN),
    ([1.0, 1.0], [1.0, -1.0], -INF, 0.0),
    ([-INF, 1.0], [5.0, 0.0], -INF, 0.0),
    ([0.0, -INF], [-1.0, 2.0], 0.0, -1.0),
]


@pytest.mark.parametrize(("x", "b", "value", "sign"), LSE_SPECIAL)
def test_logsumexp_special_rows(
    x: list[float], b: list[float] | None, value: float, sign: float
) -> None:
    got_value, got_sign = ref.logsumexp(x, b=b, return_sign=True)
    _same(got_value, value)
    _same(got_sign, sign)
    plain = ref.logsumexp(x, b=b)
    _same(plain, NAN if sign < 0 else value)


def test_logsumexp_special_rows_stacked() -> None:
    # The same rules, several rows at once, along axis 0 of a transposed stack.
    rows = [(x, b) for x, b, _, _ in LSE_SPECIAL if len(x) == 3]
    x = np.array([r[0] for r in rows]).T
    b = np.array([r[1] if r[1] is not None else [1.0] * 3 for r in rows]).T
    value, sign = ref.logsumexp(x, axis=0, b=b, return_sign=True)
    for j, (xr, br) in enumerate(rows):
        want_value, want_sign = ref.logsumexp(xr, b=br, return_sign=True)
        _same(value[j], want_value)
        _same(sign[j], want_sign)


SOFTMAX_SPECIAL: list[tuple[list[float], list[float], list[float]]] = [
    # x, softmax, log_softmax
    ([1.0, NAN, 2.0], [NAN] * 3, [NAN] * 3),
    ([NAN, INF, -INF], [NAN] * 3, [NAN] * 3),
    ([1.0, INF, 2.0], [0.0, 1.0, 0.0], [-INF, 0.0, -INF]),
    ([INF, 1.0, INF], [0.5, 0.0, 0.5], [-math.log(2.0), -INF, -math.log(2.0)]),
    ([INF, -INF, 1e308], [1.0, 0.0, 0.0], [0.0, -INF, -INF]),
    ([-INF, -INF], [NAN, NAN], [NAN, NAN]),
    ([-INF], [NAN], [NAN]),
    ([-INF, 0.0], [0.0, 1.0], [-INF, 0.0]),
    ([-1e308, 1e308], [0.0, 1.0], [-INF, 0.0]),
    ([7.0], [1.0], [0.0]),
]


@pytest.mark.parametrize(("x", "soft", "log_soft"), SOFTMAX_SPECIAL)
def test_softmax_special_rows(x: list[float], soft: list[float], log_soft: list[float]) -> None:
    _same(ref.softmax(x), soft)
    _same(ref.log_softmax(x), log_soft)


def test_softmax_inf_rows_without_sign_surprises() -> None:
    # The single +inf entry is exactly 1 and its log exactly +0.
    assert not np.signbit(ref.log_softmax([1.0, INF])[1])
    assert ref.log_softmax([INF, INF, INF, 0.0])[0] == -math.log(3.0)
    assert ref.softmax([INF, INF, INF, 0.0])[0] == 1.0 / 3.0


def test_softmax_special_over_several_axes() -> None:
    x = np.zeros((2, 3, 2))
    x[0, 1, 1] = INF
    x[1, 2, 0] = NAN
    got = ref.softmax(x, axis=(1, 2))
    want0 = np.zeros((3, 2))
    want0[1, 1] = 1.0
    _same(got[0], want0)
    _same(got[1], np.full((3, 2), NAN))
    _same(ref.softmax(x, axis=None), np.full(x.shape, NAN))


@pytest.mark.parametrize("shape", [(3, 0), (0, 4), (0,), (2, 0, 3)])
def test_empty_inputs(shape: tuple[int, ...]) -> None:
    x = np.zeros(shape)
    for func in (ref.softmax, ref.log_softmax):
        got = func(x)
        assert got.shape == shape
        assert got.dtype == np.float64
    got = ref.logsumexp(x, axis=-1)
    assert np.shape(got) == shape[:-1]
    assert np.all(got == -INF)
    _, sign = ref.logsumexp(x, axis=None, return_sign=True)
    assert sign == 0.0  # SciPy says -1; the empty sum is 0


def test_elementwise_special_values() -> None:
    x = [-INF, INF, NAN, 0.0, -0.0, 1000.0, -1000.0]
    _same(ref.sigmoid(x), [0.0, 1.0, NAN, 0.5, 0.5, 1.0, 0.0])
    _same(ref.log_sigmoid(x), [-INF, 0.0, NAN, -math.log(2.0), -math.log(2.0), 0.0, -1000.0])
    _same(ref.softplus(x), [0.0, INF, NAN, math.log(2.0), math.log(2.0), 1000.0, 0.0])
    _same(
        ref.logit([0.0, 1.0, NAN, -0.1, 1.1, INF, -INF, 0.5]),
        [-INF, INF, NAN, NAN, NAN, NAN, NAN, 0.0],
    )
    # The tails keep relative accuracy instead of rounding to 0 or 1.
    assert ref.sigmoid(-740.0) == pytest.approx(math.exp(-740.0), rel=1e-9)
    assert ref.log_sigmoid(40.0) == pytest.approx(-math.exp(-40.0), rel=1e-14)
    assert ref.softplus(-40.0) == pytest.approx(math.exp(-40.0), rel=1e-14)
    assert ref.logit(0.5 + 2.0**-40) == pytest.approx(4.0 * 2.0**-40, rel=1e-14)


# ---------------------------------------------------------------------------
# 0-d inputs, axis=() and the return type
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("axis", [-1, 0, None, (), (0,), (-1,)])
def test_zero_dim_input_is_a_one_element_row(axis: Any) -> None:
    x = np.array(3.0)
    lse = ref.logsumexp(x, axis=axis)
    assert isinstance(lse, np.float64)
    assert lse == 3.0
    assert ref.logsumexp(x, axis=axis, b=2.0) == 3.0 + math.log(2.0)
    assert np.shape(ref.logsumexp(x, axis=axis, keepdims=True)) == ()
    for func, want in ((ref.softmax, 1.0), (ref.log_softmax, 0.0)):
        got = func(x, axis=axis)
        # Shape-preserving: a 0-d array, not a scalar, unlike the reductions.
        assert isinstance(got, np.ndarray)
        assert got.shape == ()
        assert got == want
    assert np.isnan(ref.softmax(np.array(-INF), axis=axis))


@pytest.mark.parametrize("axis", [1, -2, (0, 1)])
def test_zero_dim_input_rejects_other_axes(axis: Any) -> None:
    with pytest.raises((AxisError, ValueError)):
        ref.softmax(np.array(3.0), axis=axis)


def test_reduction_over_no_axes() -> None:
    x = np.array([[1.0, -INF, 2.0], [INF, NAN, -3.0]])
    _same(ref.logsumexp(x, axis=()), x)
    b = np.array([[2.0, 1.0, -1.0], [0.0, 1.0, 0.5]])
    value, sign = ref.logsumexp(x, axis=(), b=b, return_sign=True)
    _same(value, [[1.0 + math.log(2.0), -INF, 2.0], [-INF, NAN, -3.0 + math.log(0.5)]])
    _same(sign, [[1.0, 0.0, -1.0], [0.0, NAN, 1.0]])
    _same(ref.softmax(x, axis=()), [[1.0, NAN, 1.0], [1.0, NAN, 1.0]])
    _same(ref.log_softmax(x, axis=()), [[0.0, NAN, 0.0], [0.0, NAN, 0.0]])


def test_scalar_results() -> None:
    assert isinstance(ref.logsumexp([1.0, 2.0]), np.float64)
    assert isinstance(ref.logsumexp(np.ones((2, 3)), axis=None), np.float64)
    value, sign = ref.logsumexp([1.0, 2.0], return_sign=True)
    assert isinstance(value, np.float64)
    assert isinstance(sign, np.float64)
    assert isinstance(ref.logsumexp(np.ones((2, 3)), axis=None, keepdims=True), np.ndarray)
    for func in ELEMENTWISE:
        assert isinstance(func(0.25), np.float64)
        assert isinstance(func(np.array(0.25, dtype=np.float32)), np.float32)
        assert isinstance(func([0.25]), np.ndarray)
        out = np.zeros((), dtype=np.float64)
        assert func(0.25, out=out) is out
        assert out == func(0.25)


# ---------------------------------------------------------------------------
# Dtype policy
# ---------------------------------------------------------------------------

DTYPE_CASES = [
    (np.float16, np.float16),
    (np.float32, np.float32),
    (np.float64, np.float64),
    (np.bool_, np.float64),
    (np.int8, np.float64),
    (np.int32, np.float64),
    (np.int64, np.float64),
    (np.uint8, np.float64),
    (np.uint64, np.float64),
]


def _sample_for(func: Callable[..., Any], dtype: Any) -> NDArray[Any]:
    if dtype is np.bool_:
        return np.array([[True, False, True], [False, False, True]])
    if func is ref.logit:
        if np.dtype(dtype).kind in "iu":
            return np.array([[0, 1, 0], [1, 1, 0]], dtype=dtype)
        return np.array([[0.1, 0.35, 0.5], [0.625, 0.9, 0.999]], dtype=dtype)
    return np.array([[1, 2, 3], [0, 5, 100]], dtype=dtype)


@pytest.mark.parametrize(("in_dtype", "out_dtype"), DTYPE_CASES)
@pytest.mark.parametrize("func", ALL_FUNCS)
def test_result_dtype(func: Callable[..., Any], in_dtype: Any, out_dtype: Any) -> None:
    x = _sample_for(func, in_dtype)
    got = func(x)
    assert got.dtype == out_dtype
    # Computed in float64 and rounded once, whatever the input dtype.
    want = func(x.astype(np.float64)).astype(out_dtype)
    _same(got, want)


def test_float16_is_rounded_once_from_float64() -> None:
    x = np.array([0.1, 0.2, 0.7, -3.0], dtype=np.float16)
    exact = ref.softmax(x.astype(np.float64))
    got = ref.softmax(x)
    assert got.dtype == np.float16
    _same(got, exact.astype(np.float16))
    # 65504 + log(1000 * 65504) is past the float16 range: inf, without a warning.
    big = np.full(1000, 65504.0, dtype=np.float16)
    assert ref.logsumexp(big, b=big) == np.float16(INF)
    assert ref.logsumexp(big) == np.float16(65504.0)


def test_non_native_byte_order() -> None:
    x = np.array([0.5, 1.5, -2.0], dtype=">f4")
    got = ref.softmax(x)
    assert got.dtype == np.dtype(np.float32)
    _same(got, ref.softmax(x.astype(np.float32)))


def test_bfloat16() -> None:
    ml_dtypes = pytest.importorskip("ml_dtypes")
    bf16 = np.dtype(ml_dtypes.bfloat16)
    x = np.array([[0.5, 1.5, -2.0], [3.0, 0.0, 1.0]], dtype=bf16)
    for func in ALL_FUNCS:
        arg = ref.sigmoid(x) if func is ref.logit else x
        got = func(arg)
        assert got.dtype == bf16
        want = func(arg.astype(np.float64)).astype(bf16)
        _same(got.astype(np.float64), want.astype(np.float64))


def test_python_lists_and_scalars() -> None:
    _same(ref.softmax([[1, 2], [3, 4]]), ref.softmax(np.array([[1.0, 2.0], [3.0, 4.0]])))
    assert ref.sigmoid(0) == 0.5
    assert ref.logsumexp(2.5) == 2.5


BAD_DTYPES = [
    np.array([1 + 2j]),
    np.array([1 + 2j], dtype=np.complex64),
    np.array(["a"]),
    np.array([b"a"]),
    np.array([1.0], dtype=object),
    np.array(["2020-01-01"], dtype="datetime64[D]"),
    np.array([1], dtype="timedelta64[s]"),
]
if np.dtype(np.longdouble).itemsize > 8:
    BAD_DTYPES.append(np.array([1.0], dtype=np.longdouble))


@pytest.mark.parametrize("bad", BAD_DTYPES, ids=lambda a: str(a.dtype))
@pytest.mark.parametrize("func", ALL_FUNCS, ids=lambda f: f.__name__)
def test_rejected_dtypes(func: Callable[..., Any], bad: NDArray[Any]) -> None:
    arg = "p" if func is ref.logit else "x"
    msg = (
        f"{func.__name__}(): {arg} must be a real floating (float16, bfloat16, float32 or "
        f"float64), integer or bool array, got {bad.dtype}"
    )
    with pytest.raises(TypeError) as info:
        func(bad)
    assert str(info.value) == msg


def test_rejected_weight_dtype() -> None:
    with pytest.raises(TypeError, match=r"^logsumexp\(\): b must be .* got complex128$"):
        ref.logsumexp([1.0, 2.0], b=[1j, 1.0])


@pytest.mark.parametrize(
    ("x_dtype", "b_dtype", "want"),
    [
        (np.float32, np.float32, np.float32),
        (np.float32, np.float64, np.float64),
        (np.float16, np.bool_, np.float16),
        (np.float16, np.float32, np.float32),
        (np.int64, np.float16, np.float64),
        (np.int8, np.int8, np.float64),
        (np.bool_, np.bool_, np.float64),
    ],
)
def test_weighted_result_dtype(x_dtype: Any, b_dtype: Any, want: Any) -> None:
    x = np.array([1, 0, 1], dtype=x_dtype)
    b = np.array([1, 1, 0], dtype=b_dtype)
    got = ref.logsumexp(x, b=b)
    assert got.dtype == want
    assert got == np.asarray(ref.logsumexp(x.astype(np.float64), b=b.astype(np.float64))).astype(
        want
    )


# ---------------------------------------------------------------------------
# out=
# ---------------------------------------------------------------------------

CALLS: list[tuple[str, Callable[..., Any], dict[str, Any], tuple[int, ...]]] = [
    ("softmax", ref.softmax, {}, (3, 5)),
    ("log_softmax", ref.log_softmax, {"axis": 0}, (3, 5)),
    ("logsumexp", ref.logsumexp, {}, (3,)),
    ("logsumexp", ref.logsumexp, {"axis": 0, "keepdims": True}, (1, 5)),
    ("logsumexp", ref.logsumexp, {"axis": None}, ()),
    ("sigmoid", ref.sigmoid, {}, (3, 5)),
    ("log_sigmoid", ref.log_sigmoid, {}, (3, 5)),
    ("softplus", ref.softplus, {}, (3, 5)),
    ("logit", ref.logit, {}, (3, 5)),
]


def _probabilities(dtype: Any = np.float32) -> NDArray[Any]:
    return np.linspace(0.05, 0.95, 15, dtype=dtype).reshape(3, 5)


@pytest.mark.parametrize(("name", "func", "kwargs", "shape"), CALLS)
def test_out_is_filled_and_returned(
    name: str, func: Callable[..., Any], kwargs: dict[str, Any], shape: tuple[int, ...]
) -> None:
    x = _probabilities()
    before = x.copy()
    out = np.full(shape, -7.0, dtype=np.float32)
    assert func(x, out=out, **kwargs) is out
    _same(out, func(x, **kwargs))
    _same(x, before)


@pytest.mark.parametrize(("name", "func", "kwargs", "shape"), CALLS)
def test_out_errors(
    name: str, func: Callable[..., Any], kwargs: dict[str, Any], shape: tuple[int, ...]
) -> None:
    x = _probabilities()
    wrong_shape = shape + (1,)
    with pytest.raises(ValueError) as info:
        func(x, out=np.zeros(wrong_shape, dtype=np.float32), **kwargs)
    assert str(info.value) == (
        f"{name}(): out must have shape {shape} and dtype float32, got {wrong_shape} float32"
    )
    with pytest.raises(ValueError) as info:
        func(x, out=np.zeros(shape, dtype=np.float64), **kwargs)
    assert str(info.value) == (
        f"{name}(): out must have shape {shape} and dtype float32, got {shape} float64"
    )
    frozen = np.zeros(shape, dtype=np.float32)
    frozen.flags.writeable = False
    with pytest.raises(ValueError) as info:
        func(x, out=frozen, **kwargs)
    assert str(info.value) == f"{name}(): out must be writeable"
    assert np.all(frozen == 0)
    with pytest.raises(TypeError, match=rf"^{name}\(\): out must be a numpy.ndarray, got list$"):
        func(x, out=[0.0] * 5, **kwargs)


def test_out_message_example() -> None:
    with pytest.raises(ValueError) as info:
        ref.softmax(np.zeros((3, 5), dtype=np.float32), out=np.zeros((3, 4)))
    assert str(info.value) == (
        "softmax(): out must have shape (3, 5) and dtype float32, got (3, 4) float64"
    )


@pytest.mark.parametrize("func", [ref.softmax, ref.log_softmax, *ELEMENTWISE])
def test_in_place(func: Callable[..., Any]) -> None:
    x = _probabilities(np.float64)
    want = func(x.copy())
    assert func(x, out=x) is x
    _same(x, want)


def test_out_with_return_sign() -> None:
    x = _rng(12).normal(size=(4, 6))
    b = np.where(np.arange(6) % 2 == 0, 1.0, -0.5)
    value_out, sign_out = np.empty(4), np.empty(4)
    got = ref.logsumexp(x, b=b, return_sign=True, out=(value_out, sign_out))
    assert got[0] is value_out
    assert got[1] is sign_out
    want_value, want_sign = ref.logsumexp(x, b=b, return_sign=True)
    _same(value_out, want_value)
    _same(sign_out, want_sign)
    with pytest.raises(TypeError, match=r"out must be a pair"):
        ref.logsumexp(x, return_sign=True, out=value_out)
    with pytest.raises(ValueError, match=r"out\[1\] must have shape \(4,\) and dtype float64"):
        ref.logsumexp(x, return_sign=True, out=(value_out, np.empty(3)))


def test_input_not_modified() -> None:
    x = np.array([[1.0, NAN, INF], [-INF, 2.0, 3.0]])
    b = np.array([0.0, -1.0, 2.0])
    x0, b0 = x.copy(), b.copy()
    for func in ALL_FUNCS:
        func(x)
    ref.logsumexp(x, b=b, return_sign=True)
    _same(x, x0)
    _same(b, b0)


# ---------------------------------------------------------------------------
# Axis and broadcasting errors
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("axis", [2, -3, (0, 2), (5,)])
@pytest.mark.parametrize("func", ROWWISE)
def test_bad_axis(func: Callable[..., Any], axis: Any) -> None:
    with pytest.raises(AxisError):
        func(np.zeros((3, 4)), axis=axis)


@pytest.mark.parametrize("axis", [(0, 0), (2, -1), (0, 1, -2)])
@pytest.mark.parametrize("func", ROWWISE)
def test_repeated_axis(func: Callable[..., Any], axis: Any) -> None:
    with pytest.raises(ValueError, match="repeated axis") as info:
        func(np.zeros((3, 4, 2)), axis=axis)
    assert not isinstance(info.value, AxisError)


@pytest.mark.parametrize("axis", [True, 1.0, "0", (0, 1.5), (np.bool_(False),)])
@pytest.mark.parametrize("func", ROWWISE)
def test_axis_of_wrong_type(func: Callable[..., Any], axis: Any) -> None:
    with pytest.raises(TypeError, match=rf"^{func.__name__}\(\): axis must be an int"):
        func(np.zeros((3, 4)), axis=axis)


def test_weights_not_broadcastable() -> None:
    with pytest.raises(ValueError) as info:
        ref.logsumexp(np.zeros((3, 5)), b=np.ones(4))
    assert str(info.value) == (
        "logsumexp(): b with shape (4,) cannot be broadcast to x with shape (3, 5)"
    )


def test_x_broadcasts_against_b_as_in_scipy() -> None:
    sp = pytest.importorskip("scipy.special")
    x = np.array([0.5, -1.0, 2.0])
    b = np.array([[1.0, 2.0, 0.5], [0.0, 1.0, 3.0]])
    got = ref.logsumexp(x, axis=-1, b=b)
    assert got.shape == (2,)
    np.testing.assert_allclose(got, sp.logsumexp(x, axis=-1, b=b), rtol=1e-14)


# ---------------------------------------------------------------------------
# Properties
# ---------------------------------------------------------------------------

# Multiples of 2**-10 of moderate size: adding an integer shift is then exact,
# so shift invariance can be asserted bit for bit where the formulas allow.
dyadic = st.integers(-51200, 51200).map(lambda i: i / 1024.0)
row_shapes = st.tuples(st.integers(1, 4), st.integers(1, 8))
finite = st.floats(allow_nan=False, allow_infinity=False, width=64)
moderate = st.floats(-30.0, 30.0)

PROPS = settings(max_examples=80, deadline=None)


@PROPS
@given(hnp.arrays(np.float64, row_shapes, elements=dyadic), st.integers(-1000, 1000))
def test_softmax_shift_invariance(x: NDArray[np.float64], shift: int) -> None:
    _same(ref.softmax(x + shift), ref.softmax(x))
    _same(ref.log_softmax(x + shift), ref.log_softmax(x))


@PROPS
@given(hnp.arrays(np.float64, row_shapes, elements=dyadic), st.integers(-1000, 1000))
def test_logsumexp_shift(x: NDArray[np.float64], shift: int) -> None:
    got = ref.logsumexp(x + shift)
    want = ref.logsumexp(x) + shift
    tol = 4 * EPS * (abs(shift) + np.max(np.abs(x), axis=-1) + np.abs(want) + 1)
    np.testing.assert_array_less(np.abs(got - want), tol)


@PROPS
@given(hnp.arrays(np.float64, row_shapes, elements=finite), st.sampled_from([0, 1, None]))
def test_softmax_rows_sum_to_one(x: NDArray[np.float64], axis: int | None) -> None:
    p = ref.softmax(x, axis=axis)
    assert np.all((p >= 0) & (p <= 1))
    n = x.size if axis is None else x.shape[axis]
    np.testing.assert_allclose(np.sum(p, axis=axis), 1.0, rtol=0, atol=2 * n * EPS)


@PROPS
@given(hnp.arrays(np.float64, row_shapes, elements=moderate))
def test_exp_log_softmax_is_softmax(x: NDArray[np.float64]) -> None:
    np.testing.assert_allclose(np.exp(ref.log_softmax(x)), ref.softmax(x), rtol=1e-13)


@PROPS
@given(hnp.arrays(np.float64, row_shapes, elements=moderate))
def test_logsumexp_vs_log_softmax(x: NDArray[np.float64]) -> None:
    lse = ref.logsumexp(x, keepdims=True)
    np.testing.assert_allclose(
        ref.log_softmax(x), x - lse, rtol=1e-14, atol=8 * EPS * (np.abs(x).max() + 1)
    )


@PROPS
@given(finite)
def test_sigmoid_symmetry(x: float) -> None:
    assert abs(ref.sigmoid(x) + ref.sigmoid(-x) - 1.0) <= 2 * EPS


@PROPS
@given(finite)
def test_sigmoid_is_two_class_softmax(x: float) -> None:
    # Both reduce to 1 / (1 + exp(-x)) or exp(x) / (1 + exp(x)): identical bits.
    assert ref.sigmoid(x) == ref.softmax([x, 0.0])[0]
    assert ref.sigmoid(-x) == ref.softmax([x, 0.0])[1]
    assert ref.log_sigmoid(x) == pytest.approx(ref.log_softmax([x, 0.0])[0], rel=2 * EPS)


@PROPS
@given(st.floats(-700.0, 700.0))
def test_log_sigmoid_is_log_of_sigmoid(x: float) -> None:
    assert ref.log_sigmoid(x) == pytest.approx(math.log(ref.sigmoid(x)), rel=4 * EPS, abs=4 * EPS)


@PROPS
@given(finite)
def test_softplus_difference_is_identity(x: float) -> None:
    diff = ref.softplus(x) - ref.softplus(-x)
    assert abs(diff - x) <= 4 * EPS * (abs(x) + 1)
    assert ref.softplus(x) == pytest.approx(-ref.log_sigmoid(-x), rel=2 * EPS, abs=1e-300)


@PROPS
@given(st.floats(-20.0, 20.0))
def test_logit_inverts_sigmoid(x: float) -> None:
    # d logit / dp = 1 / (p (1 - p)) magnifies the rounding of sigmoid(x) by about e^x.
    tol = 8 * EPS * (1 + abs(x) + math.exp(max(x, 0.0)))
    assert abs(ref.logit(ref.sigmoid(x)) - x) <= tol


@PROPS
@given(hnp.arrays(np.float32, row_shapes, elements=st.floats(-80, 80, width=32)))
def test_float32_is_float64_rounded_once(x: NDArray[np.float32]) -> None:
    for func in (ref.softmax, ref.log_softmax, ref.logsumexp, ref.sigmoid, ref.softplus):
        got = func(x)
        assert np.asarray(got).dtype == np.float32
        _same(got, np.asarray(func(x.astype(np.float64))).astype(np.float32))


@pytest.mark.parametrize("y", [1e300, 1e308, np.finfo(np.float64).max])
def test_kl_div_and_rel_entr_of_infinite_x_near_the_largest_double(y):
    # the test x <= 2y of the series' range overflowed to inf for y above half the largest
    # double, which sent x = inf into the series and gave NaN instead of the formula's +inf
    assert ref.kl_div_elementwise(np.inf, y) == np.inf
    assert ref.rel_entr(np.inf, y) == np.inf
