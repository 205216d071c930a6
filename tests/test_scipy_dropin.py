"""logitkit.scipy against SciPy itself: results, dtypes, return types, exceptions.

Every comparison runs twice: with SciPy available to the drop-in (it may hand inputs it has
no kernel for to SciPy) and with SciPy hidden from it (everything real must still agree;
the rest must raise a clear TypeError).
"""

from __future__ import annotations

import inspect
import itertools
import subprocess
import sys
import warnings
from typing import Any

import numpy as np
import pytest

# The drop-in follows SciPy 1.17's behaviour; older releases differ (softplus, logsumexp).
pytest.importorskip("scipy", minversion="1.17")
sp = pytest.importorskip("scipy.special")
st = pytest.importorskip("scipy.stats")

from logitkit import scipy as lks  # noqa: E402

REDUCTIONS = ["softmax", "log_softmax", "logsumexp"]
UNARY = ["expit", "log_expit", "logit", "entr", "softplus"]
BINARY = ["rel_entr", "kl_div"]


@pytest.fixture(params=["with_scipy", "without_scipy"])
def scipy_mode(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "without_scipy":
        monkeypatch.setattr(lks, "_scipy", lambda submodule: None)
    return str(request.param)


def scipy_func(name: str) -> Any:
    return getattr(st if name == "entropy" else sp, name)


def run(func: Any, *args: Any, **kwargs: Any) -> tuple[Any, BaseException | None]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return func(*args, **kwargs), None
        except Exception as exc:  # noqa: BLE001 - the exception is what is compared
            return None, exc


def tolerances(dtype: np.dtype, name: str) -> tuple[float, float]:
    """(rtol, atol) between logitkit and SciPy. SciPy computes float32 and float16 in that
    precision (exp of float32 arguments up to ~100 carries ~1e-6 relative error, float16
    sums round each step); logitkit computes them in float32 and rounds once."""
    if dtype == np.float16:
        return 4e-3, 1e-7
    if dtype == np.float32:
        return 8e-6, 1e-37
    return 2e-14, 1e-300


def assert_same(ours: Any, theirs: Any, name: str, scale: float = 1.0) -> None:
    """Same Python type, dtype, shape, NaN and infinity pattern; finite values close.

    ``scale`` bounds the absolute error of log-space results near 0, where a few eps of the
    input's magnitude is all any float evaluation (SciPy's included) can promise."""
    if isinstance(theirs, tuple):
        assert isinstance(ours, tuple) and len(ours) == len(theirs)
        for a, b in zip(ours, theirs, strict=True):
            assert_same(a, b, name, scale)
        return
    assert type(ours) is type(theirs), (type(ours), type(theirs), ours, theirs)
    a, b = np.asarray(ours), np.asarray(theirs)
    assert a.dtype == b.dtype, (a.dtype, b.dtype)
    assert a.shape == b.shape, (a.shape, b.shape)
    np.testing.assert_array_equal(np.isnan(a), np.isnan(b), err_msg=f"{name}: NaN positions")
    np.testing.assert_array_equal(np.isposinf(a), np.isposinf(b), err_msg=f"{name}: +inf")
    np.testing.assert_array_equal(np.isneginf(a), np.isneginf(b), err_msg=f"{name}: -inf")
    rtol, atol = tolerances(a.dtype, name)
    if name == "log_softmax":
        atol = max(atol, 16 * np.finfo(a.dtype).eps * scale)
    if name == "softmax":
        # exp(x - max) carries the rounding of x - max: a relative error of eps |x - max|.
        rtol = max(rtol, 4 * np.finfo(a.dtype).eps * scale)
    finite = np.isfinite(b)
    np.testing.assert_allclose(
        a[finite].astype(np.float64), b[finite].astype(np.float64), rtol=rtol, atol=atol
    )


def compare(name: str, scipy_mode: str, *args: Any, **kwargs: Any) -> Any:
    ours, our_error = run(getattr(lks, name), *args, **kwargs)
    theirs, their_error = run(scipy_func(name), *args, **kwargs)
    if their_error is not None:
        assert our_error is not None, f"SciPy raised {their_error!r}, logitkit returned {ours!r}"
        assert isinstance(our_error, type(their_error)), (our_error, their_error)
        if scipy_mode == "with_scipy":
            assert str(our_error) == str(their_error)
        return None
    assert our_error is None, f"logitkit raised {our_error!r}, SciPy returned {theirs!r}"
    magnitudes = [float(np.max(np.abs(np.asarray(v, dtype=float)))) for v in args if np.size(v)]
    scale = max([1.0] + [m for m in magnitudes if np.isfinite(m)])
    assert_same(ours, theirs, name, scale)
    return ours


# ------------------------------------------------------------------ signatures


@pytest.mark.parametrize("name", REDUCTIONS + ["entropy"])
def test_signature_matches_scipy(name):
    ours = inspect.signature(getattr(lks, name)).parameters
    theirs = inspect.signature(scipy_func(name)).parameters
    assert list(ours) == list(theirs)
    for key in theirs:
        assert ours[key].default == theirs[key].default, key
        assert ours[key].kind == theirs[key].kind, key


@pytest.mark.parametrize("name", UNARY + BINARY)
def test_elementwise_take_positional_inputs_and_ufunc_keywords(name):
    ours = inspect.signature(getattr(lks, name)).parameters
    kinds = [p.kind for p in ours.values()]
    positional = kinds.count(inspect.Parameter.POSITIONAL_ONLY) + kinds.count(
        inspect.Parameter.POSITIONAL_OR_KEYWORD
    )
    scipy_obj = scipy_func(name)
    expected = scipy_obj.nin if isinstance(scipy_obj, np.ufunc) else 1
    assert positional == expected
    assert kinds[-1] == inspect.Parameter.VAR_KEYWORD


def test_import_logitkit_does_not_import_scipy():
    code = "import sys, logitkit, logitkit.scipy; assert 'scipy.special' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


# ------------------------------------------------------------------ softmax family

ROWS = [
    [1.0, 2.0, 3.0],
    [[1.0, 2.0], [3.0, 4.0]],
    [np.inf, 1.0],
    [np.inf, np.inf, 1.0],
    [np.inf, -np.inf],
    [-np.inf, -np.inf],
    [np.nan, 1.0],
    [np.inf, np.nan],
    [-np.inf, 0.0],
    [1000.0, 1.0],
    [0.0, -50.0],
    [0.0, -745.0],
    [1e308, -1e308],
    [1e308, 1e308],
    [5e-324, 0.0],
    [[np.inf, 1.0], [2.0, 3.0]],
]


@pytest.mark.parametrize("name", REDUCTIONS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.float16])
@pytest.mark.parametrize("row", ROWS, ids=range(len(ROWS)))
def test_special_rows(name, dtype, row, scipy_mode):
    with np.errstate(over="ignore"):
        x = np.array(row, dtype=dtype)
    for axis in [None, -1, 0, ()]:
        compare(name, scipy_mode, x, axis=axis)
    compare(name, scipy_mode, x)


ODD_INPUTS = [
    3.0,
    3,
    -7,
    np.float32(3.0),
    np.float16(-2.0),
    np.inf,
    -np.inf,
    np.nan,
    np.array(2.5),
    [],
    np.zeros((0, 3)),
    np.zeros((3, 0)),
    [1, 2, 3],
    [[1, 2], [3, 4]],
    np.int8([-100, 100]),
    np.uint8([1, 2]),
    np.int16([1, 2, 300]),
    np.uint32([1, 5]),
    np.int64([10, -(2**62)]),
    [True, False],
    np.array([[1.0, 2.0]], order="F"),
]


@pytest.mark.parametrize("name", REDUCTIONS)
@pytest.mark.parametrize("value", ODD_INPUTS, ids=range(len(ODD_INPUTS)))
def test_scalars_integers_empty_and_bad_axes(name, value, scipy_mode):
    for axis in [None, 0, -1, (0,), (), 1.5, (0, 0), 5, (0, 1)]:
        compare(name, scipy_mode, value, axis=axis)
    compare(name, scipy_mode, value)


AXES_3D = [None, 0, 1, 2, -1, (0, 1), (0, 2), (1, 2), (2, 0), (0, 1, 2), ()]


@pytest.mark.parametrize("name", REDUCTIONS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.float16])
def test_every_axis_and_layout(name, dtype, scipy_mode):
    rng = np.random.default_rng(1)
    x = (rng.normal(size=(3, 4, 5)) * (3 if dtype == np.float16 else 10)).astype(dtype)
    for arr in (x, x.transpose(2, 0, 1), x[:, ::2, ::-1]):
        for axis in AXES_3D:
            compare(name, scipy_mode, arr, axis=axis)
    if name == "logsumexp":
        for axis in AXES_3D:
            compare(name, scipy_mode, x, axis=axis, keepdims=True)


LSE_VALUES = [
    [1.0, 2.0],
    np.float32([1, 2]),
    np.float16([1, 2]),
    np.int8([1, 2]),
    [np.inf, 1.0],
    [np.inf, np.inf],
    [-np.inf, -np.inf],
    [np.nan, 1.0],
    [1.0, 1.0],
    [],
    3.0,
    [[1.0, 2.0], [3.0, -np.inf]],
]
LSE_OPTIONS = [
    {},
    {"keepdims": True},
    {"return_sign": True},
    {"b": [1, -1]},
    {"b": [1, -1], "return_sign": True},
    {"b": [0, 1]},
    {"b": [0, 0]},
    {"b": 2.0},
    {"b": 2},
    {"b": [[1, 1], [2, 2]]},
    {"b": [1, 2, 3]},
    {"b": np.float16([1, 1])},
    {"b": np.int64(2)},
    {"b": np.float32(0.5)},
    {"b": [1, -1], "keepdims": True, "return_sign": True, "axis": 0},
    {"b": [-1, -1], "return_sign": True},
    {"axis": -1, "b": [[1], [-1]], "return_sign": True},
]


@pytest.mark.parametrize("options", LSE_OPTIONS, ids=range(len(LSE_OPTIONS)))
def test_logsumexp_weights_signs_keepdims(options, scipy_mode):
    for value in LSE_VALUES:
        compare("logsumexp", scipy_mode, value, **options)


def test_scipy_documented_examples(scipy_mode):
    # The examples of SciPy 1.17's docstrings, through the drop-in.
    a = np.arange(10)
    assert lks.logsumexp(a) == pytest.approx(9.4586297444267107, rel=1e-15)
    b = np.arange(10, 0, -1)
    assert lks.logsumexp(a, b=b) == pytest.approx(9.9170178533034665, rel=1e-15)
    value, sign = lks.logsumexp([1, 2], b=[1, -1], return_sign=True)
    assert (value, sign) == (pytest.approx(1.5413248546129181, rel=1e-15), -1.0)
    masked = np.ma.array([np.log(2), 2, np.log(3)], mask=[False, True, False])
    weights = (~masked.mask).astype(int)
    assert lks.logsumexp(masked.data, b=weights) == pytest.approx(np.log(5), rel=1e-15)

    x = np.array([[1, 0.5, 0.2, 3], [1, -1, 7, 3], [2, 12, 13, 3]])
    m = lks.softmax(x)
    assert m[2, 2] == pytest.approx(7.29644e-01, rel=1e-5)
    assert m.sum() == pytest.approx(1.0, rel=1e-15)
    np.testing.assert_allclose(lks.softmax(x, axis=0).sum(axis=0), 1.0, rtol=1e-15)
    np.testing.assert_allclose(lks.softmax(x, axis=1)[1, 2], 9.79307e-01, rtol=1e-5)
    np.testing.assert_array_equal(lks.log_softmax(np.array([1000.0, 1.0])), [0.0, -999.0])

    assert lks.expit(0) == 0.5
    np.testing.assert_allclose(
        lks.expit([-np.inf, -1.5, 0, 1.5, np.inf]),
        [0.0, 0.18242552, 0.5, 0.81757448, 1.0],
        atol=5e-9,
    )
    np.testing.assert_allclose(
        lks.logit([0, 0.25, 0.5, 0.75, 1]), sp.logit([0, 0.25, 0.5, 0.75, 1])
    )
    np.testing.assert_allclose(
        lks.logit([0, 0.25, 0.5, 0.75, 1]), [-np.inf, -1.09861229, 0, 1.09861229, np.inf], atol=5e-9
    )
    np.testing.assert_allclose(lks.expit(lks.logit([0.1, 0.75, 0.999])), [0.1, 0.75, 0.999])
    np.testing.assert_allclose(lks.logit(lks.expit([-2.5, 0, 3.1, 5.0])), [-2.5, 0, 3.1, 5.0])
    np.testing.assert_allclose(
        lks.log_expit([-3.0, 0.25, 2.5, 5.0]),
        [-3.04858735, -0.57593942, -0.07888973, -0.00671535],
        atol=5e-9,
    )
    np.testing.assert_array_equal(lks.log_expit([-100, -500, -1000]), [-100.0, -500.0, -1000.0])
    np.testing.assert_allclose(
        lks.log_expit([29, 120, 400]),
        [-2.54366565e-013, -7.66764807e-053, -1.91516960e-174],
        rtol=5e-9,
    )
    assert lks.softplus(0) == pytest.approx(0.6931471805599453, rel=1e-16)
    np.testing.assert_allclose(
        lks.softplus([-1, 0, 1]), [0.31326169, 0.69314718, 1.31326169], rtol=1e-8
    )
    assert float(lks.entropy([1 / 2, 1 / 2], base=2)) == 1.0
    assert lks.entropy([9 / 10, 1 / 10], base=2) == pytest.approx(0.46899559358928117, rel=1e-15)
    d = lks.entropy([1 / 2, 1 / 2], qk=[9 / 10, 1 / 10], base=2)
    assert d == pytest.approx(0.7369655941662062, rel=1e-15)
    ce = lks.entropy([1 / 2, 1 / 2], base=2) + d
    assert ce == pytest.approx(1.736965594166206, rel=1e-15)


# ------------------------------------------------------------------ elementwise

SPECIALS = [0.0, -0.0, 1.0, -1.0, 0.3, 0.5, 2.0, np.inf, -np.inf, np.nan, 1e308, -1e308]
SPECIALS += [5e-324, 2.2e-308, 40.0, -40.0, 88.0, -88.0, 104.0, -104.0, 725.0, -725.0, 745.0]


@pytest.mark.parametrize("name", UNARY)
def test_unary_special_values_and_scalar_types(name, scipy_mode):
    makers = [
        float,
        np.float64,
        np.float32,
        np.float16,
        np.array,
        lambda v: np.array([v, v], np.float32),
        lambda v: np.array([[v], [v]], np.float16),
    ]
    with np.errstate(over="ignore"):
        for value, make in itertools.product(SPECIALS, makers):
            compare(name, scipy_mode, make(value))


DTYPE_CODES = "?bBhHiIlLqQefd"
PY_SCALARS: list[Any] = [int, float, bool]


@pytest.mark.parametrize("name", UNARY)
def test_unary_result_dtypes(name, scipy_mode):
    for code in DTYPE_CODES:
        compare(name, scipy_mode, np.ones(3, dtype=code))
        compare(name, scipy_mode, np.ones((), dtype=code))
        compare(name, scipy_mode, np.ones(1, dtype=code)[0])
    for kind in PY_SCALARS:
        compare(name, scipy_mode, kind(1))
    for value in [[1, 2], [0.25, 0.5], [], np.zeros((2, 0)), [[0.1, 0.2]], [True]]:
        compare(name, scipy_mode, value)


@pytest.mark.parametrize("name", BINARY)
def test_binary_result_dtypes_and_broadcasting(name, scipy_mode):
    def make(kind: Any) -> Any:
        return kind(1) if kind in PY_SCALARS else np.full(2, 0.75, dtype=kind)

    for k1, k2 in itertools.product(list(DTYPE_CODES) + PY_SCALARS, repeat=2):
        compare(name, scipy_mode, make(k1), make(k2))
    compare(name, scipy_mode, [1, 2], [1, 2, 3])
    compare(name, scipy_mode, [[0.5], [0.25]], [0.5, 0.25, 0.0])
    compare(name, scipy_mode, np.float32(0.3), 0.2)


@pytest.mark.parametrize("name", BINARY)
def test_binary_special_values(name, scipy_mode):
    mpmath = pytest.importorskip("mpmath")
    values = [0.0, 1.0, 0.3, 1e-5, 0.33, 1e-300, -1.0, np.inf, -np.inf, np.nan, 1e308]
    x, y = (v.ravel() for v in np.meshgrid(values, values))
    # Documented difference (kl_div): where x / y over- or underflows for finite positive
    # x and y, SciPy's kl_div is infinite; logitkit's is finite unless the true value
    # overflows. Both functions are checked against the exact value there.
    with np.errstate(all="ignore"):
        ratio = x / y
    finite_positive = np.isfinite(x) & np.isfinite(y) & (x > 0) & (y > 0)
    out_of_range = finite_positive & ((ratio == np.inf) | (ratio < np.finfo(float).tiny))
    with mpmath.workdps(40):
        truth = []
        for a, b in zip(x[out_of_range], y[out_of_range], strict=True):
            a_, b_ = mpmath.mpf(float(a)), mpmath.mpf(float(b))
            v = a_ * mpmath.log(a_ / b_) - (0 if name == "rel_entr" else a_ - b_)
            truth.append(
                float(v) if abs(v) < mpmath.mpf(np.finfo(float).max) else np.sign(float(v)) * np.inf
            )
    np.testing.assert_allclose(
        getattr(lks, name)(x[out_of_range], y[out_of_range]), truth, rtol=1e-14
    )
    x, y = x[~out_of_range], y[~out_of_range]
    compare(name, scipy_mode, x, y)
    for a, b in zip(x, y, strict=True):
        compare(name, scipy_mode, float(a), float(b))
    with np.errstate(all="ignore"):
        x32, y32 = x.astype(np.float32), y.astype(np.float32)
        ratio32 = x32 / y32
    keep = ~((x32 > 0) & (y32 > 0) & np.isfinite(x32) & np.isfinite(y32))
    keep |= (ratio32 < np.inf) & (ratio32 >= np.finfo(np.float32).tiny)
    compare(name, scipy_mode, x32[keep], y32[keep])


def ulps(ours: np.ndarray, theirs: np.ndarray) -> np.ndarray:
    same = (ours == theirs) | (np.isnan(ours) & np.isnan(theirs))
    with np.errstate(invalid="ignore", over="ignore"):
        err = np.abs(ours - theirs) / np.spacing(np.abs(theirs).astype(ours.dtype))
    return np.where(same, 0, err)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", UNARY)
def test_unary_dense_grid(name, dtype):
    fi = np.finfo(dtype)
    if name in ("logit", "entr"):
        grid = np.concatenate([np.linspace(0, 1, 20001), np.logspace(-300, 0, 3001)])
    else:
        grid = np.concatenate([np.linspace(-760, 760, 20001), -np.logspace(-300, 3, 2001)])
        grid = np.concatenate([grid, -grid])
    x = grid.astype(dtype)
    ours, theirs = getattr(lks, name)(x), scipy_func(name)(x)
    assert ours.dtype == theirs.dtype
    err = ulps(ours, theirs)
    if name == "expit":
        # Documented difference: SciPy flushes the subnormal tail to 0, logitkit keeps it.
        tail = (theirs == 0) & (ours > 0) & (ours < fi.tiny)
        err = np.where(tail, 0, err)
    assert float(np.max(err)) <= 4, (name, x[np.argmax(err)], np.max(err))


def test_expit_keeps_the_subnormal_tail():
    mpmath = pytest.importorskip("mpmath")
    x = np.array([-709.5, -720.0, -740.0, -744.0])
    ours = lks.expit(x)
    truth = np.array([float(1 / (1 + mpmath.exp(-mpmath.mpf(v)))) for v in x])
    np.testing.assert_array_equal(ours, truth)
    assert np.all(sp.expit(x) <= truth)  # SciPy rounds these toward 0


def test_log_expit_and_softplus_subnormal_results_are_correctly_rounded():
    mpmath = pytest.importorskip("mpmath")
    x = np.array([709.0, 725.0, 740.0, 744.0, 745.0, 746.0])
    truth = np.array([float(-mpmath.log1p(mpmath.exp(-mpmath.mpf(v)))) for v in x])
    np.testing.assert_array_equal(lks.log_expit(x), truth)
    np.testing.assert_array_equal(lks.log_expit(x), sp.log_expit(x))
    np.testing.assert_array_equal(lks.softplus(-x), -truth)
    np.testing.assert_array_equal(lks.softplus(-x), sp.softplus(-x))
    # The same with NaN elsewhere in the array (a NaN must not hide the subnormal tail).
    with_nan = np.append(x, np.nan)
    np.testing.assert_array_equal(lks.log_expit(with_nan)[:-1], truth)
    with np.errstate(invalid="ignore"):
        np.testing.assert_array_equal(lks.softplus(-with_nan), sp.softplus(-with_nan))


@pytest.mark.parametrize("name", BINARY)
def test_binary_accuracy_against_mpmath(name):
    mpmath = pytest.importorskip("mpmath")
    rng = np.random.default_rng(2)
    x = np.concatenate([10.0 ** rng.uniform(-12, 2, 400), [1e-5, 0.5, 1.0]])
    y = np.concatenate([10.0 ** rng.uniform(-12, 2, 400), [0.33404, 0.5 + 1e-12, 1.0 + 1e-9]])
    ours = getattr(lks, name)(x, y)

    def exact(a: float, b: float) -> float:
        a_, b_ = mpmath.mpf(a), mpmath.mpf(b)
        v = a_ * mpmath.log(a_ / b_)
        return float(v if name == "rel_entr" else v - a_ + b_)

    with mpmath.workdps(40):
        truth = np.array([exact(a, b) for a, b in zip(x, y, strict=True)])
    # kl_div adds three rounded terms where they do not cancel.
    assert float(np.max(ulps(ours, truth))) <= (4 if name == "rel_entr" else 8)


def test_binary_ratio_overflow_stays_finite():
    mpmath = pytest.importorskip("mpmath")
    # Documented difference: SciPy's x / y overflows to inf here.
    x, y = 2.1e-4, 9.3e-319
    with mpmath.workdps(40):
        truth = float(mpmath.mpf(x) * mpmath.log(mpmath.mpf(x) / mpmath.mpf(y)))
    assert lks.rel_entr(x, y) == pytest.approx(truth, rel=1e-14)
    assert lks.kl_div(x, y) == pytest.approx(truth - x + y, rel=1e-14)


# ------------------------------------------------------------------ entropy

ENTROPY_OPTIONS = [
    {},
    {"base": 2},
    {"base": 10.0},
    {"base": -1},
    {"base": 1},
    {"axis": None},
    {"axis": 1},
    {"axis": -1},
    {"axis": (0, 1)},
    {"axis": 2},
    {"axis": 1.5},
    {"keepdims": True},
    {"axis": 1, "keepdims": True},
    {"axis": None, "keepdims": True},
    {"nan_policy": "raise"},
    {"nan_policy": "bad"},
]
ENTROPY_PK = [
    [1, 2, 3],
    [[1, 2], [3, 4]],
    [],
    np.zeros((0, 3)),
    np.zeros((3, 0)),
    3.0,
    [1, np.nan],
    [-1, 2],
    [0, 0],
    [1, np.inf],
    np.float16([1, 2]),
    np.float32([1, 2]),
    np.int8([1, 2]),
    [True, False],
    np.random.default_rng(3).random((3, 4, 2)),
]
ENTROPY_PAIRS = [
    ([1, 2, 3], [1, 2]),
    ([[1, 2], [3, 4]], [1, 2]),
    ([[1, 2], [3, 4]], [[1], [2]]),
    (np.float32([1, 2]), [1.0, 2.0]),
    (np.float32([1, 2]), np.float32([3, 2])),
    ([1, 2], [0, 1]),
    ([0.5, 0.5], [0.9, 0.1]),
    ([1e-5, 1.0], [0.33, 0.67]),
    (np.random.default_rng(4).random((2, 3)), np.random.default_rng(5).random((2, 3))),
]


@pytest.mark.parametrize("options", ENTROPY_OPTIONS, ids=range(len(ENTROPY_OPTIONS)))
def test_entropy(options, scipy_mode):
    for pk in ENTROPY_PK:
        compare("entropy", scipy_mode, pk, **options)
    for pk, qk in ENTROPY_PAIRS:
        compare("entropy", scipy_mode, pk, qk, **options)


def test_entropy_nan_policy_omit_is_computed_by_scipy(scipy_mode):
    ours, error = run(lks.entropy, [1.0, np.nan, 2.0], nan_policy="omit")
    if scipy_mode == "with_scipy":
        assert ours == st.entropy([1.0, np.nan, 2.0], nan_policy="omit")
    else:
        assert isinstance(error, TypeError) and "SciPy" in str(error)


# ------------------------------------------------------------------ delegation

with warnings.catch_warnings():
    warnings.simplefilter("ignore", PendingDeprecationWarning)  # np.matrix, on purpose
    MATRIX = np.asmatrix(np.array([[0.25, 0.5]]))

UNUSUAL = [
    np.array([1 + 1j, 2 - 1j]),
    np.array([0.25, 0.5], dtype=np.longdouble),
    np.ma.array([0.25, 0.5], mask=[False, True]),
    MATRIX,
    np.array([0.25, 0.5], dtype=object),
    0.5 + 0.5j,
]


@pytest.mark.parametrize("name", REDUCTIONS + UNARY + BINARY + ["entropy"])
@pytest.mark.parametrize("value", UNUSUAL, ids=range(len(UNUSUAL)))
def test_unusual_inputs_go_to_scipy_or_raise_type_error(name, value, scipy_mode):
    args = (value, value) if name in BINARY else (value,)
    ours, our_error = run(getattr(lks, name), *args)
    theirs, their_error = run(scipy_func(name), *args)
    if scipy_mode == "with_scipy":
        if their_error is not None:
            assert type(our_error) is type(their_error)
            assert str(our_error) == str(their_error)
        else:
            assert our_error is None
            assert type(ours) is type(theirs)
            np.testing.assert_array_equal(ours, theirs)
    elif our_error is not None:
        # Without SciPy: a TypeError naming the function and what to install.
        assert isinstance(our_error, TypeError), our_error
        assert f"logitkit.scipy.{name}()" in str(our_error) or their_error is not None
    else:
        # Computed natively (e.g. a masked array read as its data): SciPy agrees on values.
        assert their_error is None
        np.testing.assert_allclose(np.asarray(ours), np.asarray(theirs), rtol=1e-14)


@pytest.mark.parametrize("name", UNARY)
def test_ufunc_keywords(name, scipy_mode):
    x = np.array([0.25, 0.5, 0.75])
    out = np.zeros(3)
    result = getattr(lks, name)(x, out=out)
    assert result is out
    np.testing.assert_allclose(out, scipy_func(name)(x), rtol=1e-15)
    out32 = np.zeros((2, 3), np.float32)
    getattr(lks, name)(x, out=(out32,))
    np.testing.assert_allclose(out32, np.broadcast_to(scipy_func(name)(x), (2, 3)), rtol=1e-6)
    ours, error = run(getattr(lks, name), x, where=x > 0.3, out=np.zeros(3))
    if scipy_mode == "with_scipy":
        expected = scipy_func(name)(x, where=x > 0.3, out=np.zeros(3))
        np.testing.assert_array_equal(ours, expected)
    else:
        assert isinstance(error, TypeError) and "SciPy" in str(error)


@pytest.mark.parametrize("name", REDUCTIONS + UNARY + BINARY + ["entropy"])
def test_inputs_are_not_modified(name):
    x = np.array([[np.inf, 0.3, 0.0], [0.2, 0.5, 0.7]])
    before = x.copy()
    args = (x, x[::-1]) if name in BINARY else (x,)
    getattr(lks, name)(*args)
    np.testing.assert_array_equal(x, before)


# ------------------------------------------------------------------ properties


def test_random_arrays_match_scipy():
    hypothesis = pytest.importorskip("hypothesis")
    from hypothesis import given, settings
    from hypothesis import strategies as hst
    from hypothesis.extra import numpy as hnp

    floats = hst.floats(-1e4, 1e4, allow_nan=False, width=64)
    arrays = hnp.arrays(
        np.float64, hnp.array_shapes(min_dims=1, max_dims=3, max_side=5), elements=floats
    )

    @settings(max_examples=150, deadline=None, database=None)
    @given(arrays, hst.data())
    def check(x: np.ndarray, data: Any) -> None:
        axis = data.draw(
            hst.one_of(
                hst.none(),
                hst.integers(-x.ndim, x.ndim - 1),
                hst.lists(hst.integers(0, x.ndim - 1), unique=True).map(tuple),
            )
        )
        for name in REDUCTIONS:
            compare(name, "with_scipy", x, axis=axis)
        compare("logsumexp", "with_scipy", x, axis=axis, b=np.cos(x), return_sign=True)

    assert hypothesis is not None
    check()


def test_layouts_big_python_ints_and_axis_types(scipy_mode):
    x = np.random.default_rng(6).normal(size=(6, 5))
    readonly = x.copy()
    readonly.setflags(write=False)
    for name in UNARY + BINARY:
        # Python ints beyond int64 become object arrays in NumPy: SciPy's business.
        args = (2**70, 3) if name in BINARY else (-(2**70),)
        if scipy_mode == "with_scipy":
            compare(name, scipy_mode, *args)
        else:
            with pytest.raises(TypeError, match="SciPy"):
                getattr(lks, name)(*args)
    for name in UNARY:
        for value in (x[::2, ::-1], np.asfortranarray(x), x.T, (0.1, 0.2)):
            compare(name, scipy_mode, value)
        compare(name, scipy_mode, x.astype(np.float32)[:, 1])
        compare(name, scipy_mode, readonly)
    for name in BINARY:
        compare(name, scipy_mode, np.abs(x[::2]), np.abs(x[1::2]))
        compare(name, scipy_mode, np.abs(x).T, 0.5)
        compare(name, scipy_mode, np.float64(0.3), np.float32([0.2, 0.5]))
    for name in REDUCTIONS:
        for axis in (np.int64(1), [0, 1], True, "a"):
            compare(name, scipy_mode, x, axis=axis)
        compare(name, scipy_mode, x[::2, ::-1], axis=0)
        compare(name, scipy_mode, (1.0, 2.0))
        compare(name, scipy_mode, readonly)
        compare(name, scipy_mode, np.float16([1, np.nan]))
        compare(name, scipy_mode, np.array([[-np.inf, 1], [np.inf, np.inf]], np.float32), axis=0)
    for options in ({}, {"axis": 1}, {"axis": None}, {"base": 2, "keepdims": True}):
        compare("entropy", scipy_mode, np.float16([1, np.nan]), **options)
        compare("entropy", scipy_mode, [[1, np.nan], [1, 2]], **options)
        compare("entropy", scipy_mode, x**2, x[0] ** 2, **options)
        compare("entropy", scipy_mode, np.float16([1, 2]), np.float32([3, 4]), **options)
        compare("entropy", scipy_mode, [1, 2], [[1, 2], [3, 4]], **options)
        compare("entropy", scipy_mode, [1, 2], 3, **options)


@pytest.mark.parametrize("name", UNARY + BINARY + REDUCTIONS)
def test_byte_order_and_long_double_arrays(name, scipy_mode):
    x = np.array([[0.25, 0.5], [0.125, 0.75]])
    for value in (x.astype(">f8"), x.astype(">f4"), x.astype(np.longdouble)):
        args = (value, value[::-1]) if name in BINARY else (value,)
        if value.dtype == np.longdouble and scipy_mode == "without_scipy":
            with pytest.raises(TypeError, match="SciPy"):
                getattr(lks, name)(*args)
        else:
            compare(name, scipy_mode, *args)


def test_works_when_scipy_cannot_be_imported():
    code = """
import sys
sys.modules["scipy"] = None  # makes every import of scipy fail, as when it is absent
import numpy as np
from logitkit import scipy as special
assert special.softmax([1.0, 1.0]).tolist() == [0.5, 0.5]
assert special.logsumexp([0.0, 0.0]) == np.log(2)
assert float(special.entropy([1, 1], base=2)) == 1.0
try:
    special.expit(np.array([1j]))
except TypeError as exc:
    assert "logitkit.scipy.expit()" in str(exc) and "SciPy" in str(exc), exc
else:
    raise AssertionError("complex input without SciPy must raise TypeError")
"""
    subprocess.run([sys.executable, "-c", code], check=True)
