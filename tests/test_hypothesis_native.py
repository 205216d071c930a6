"""Native functions against logitkit.reference on inputs Hypothesis draws.

Shapes from 0-d to 3-d (empty axes included), memory layouts (strided, reversed,
transposed, Fortran order), every floating dtype, special values (infinities, NaN, values
near the dtype's maximum, subnormals, exact ties) and the options of each function.

Tolerances follow tests/test_native_vs_reference.py: float32 is judged in ulps against the
float64 reference rounded once; float64 allows the reference's own rounding (it does not
compensate ``x - max``, so 450 ulp ~ 1e-13 relative); float16 and bfloat16 are computed in
float32 and rounded once, so they must be within one ulp of their own dtype. Where a result
is a difference of larger quantities (log-space values near 0, losses, divergences), the
error is also allowed in absolute terms relative to the size of those quantities (the
``abs_scale`` of assert_ulp_close), as it must be for any floating-point implementation.
NaN positions and infinities must match exactly.
"""

from __future__ import annotations

import functools
import os
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from conftest import assert_ulp_close
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import logitkit as lk
from logitkit import reference as ref

# LOGITKIT_HYPOTHESIS_EXAMPLES raises the budget for a longer, random search than CI's. The
# default search is derandomized, so that a run's verdict depends on the code alone: an edge
# case a random search happens on is reproduced with the budget above and then fixed, or
# kept as a strict xfail, rather than failing one CI run in some.
_EXAMPLES = os.environ.get("LOGITKIT_HYPOTHESIS_EXAMPLES")
settings.register_profile(
    "native-vs-reference",
    max_examples=int(_EXAMPLES or "80"),
    derandomize=_EXAMPLES is None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile("native-vs-reference")

try:
    import ml_dtypes

    BFLOAT16: np.dtype | None = np.dtype(ml_dtypes.bfloat16)
except ImportError:  # optional: bfloat16 is only tested where ml_dtypes is installed
    BFLOAT16 = None

DTYPES: list[np.dtype[Any]] = [np.dtype(np.float32), np.dtype(np.float64), np.dtype(np.float16)]
if BFLOAT16 is not None:
    DTYPES.append(BFLOAT16)
dtypes: st.SearchStrategy[np.dtype[Any]] = st.sampled_from(DTYPES)

INF, NAN = np.inf, np.nan
# Values placed at drawn positions; cast to the dtype, so 1e308 is +inf in float32 and the
# subnormals flush to 0 in the 16-bit types: each dtype meets its own extremes.
SPECIALS = [INF, -INF, NAN, 3e38, -3e38, 1e308, -1e308, 6e4, -6e4, 1e-40, -1e-40, 5e-324]
SPECIALS += [1e-310, 0.0, -0.0]


def is16(dtype: np.dtype) -> bool:
    return dtype.itemsize == 2


def ulps_for(dtype: np.dtype, f32: float, f64: float = 450) -> float:
    """The project's bound for float32/float64; one ulp of the 16-bit types (rounded once)."""
    if is16(dtype):
        return 1
    return f32 if dtype == np.float32 else f64


def cast(values: np.ndarray, dtype: np.dtype) -> np.ndarray:
    with np.errstate(over="ignore", under="ignore", invalid="ignore"):
        return values.astype(dtype)


def finite_max(*arrays_: Any) -> float:
    """Largest finite magnitude among the arrays (0 when there is none)."""
    best = 0.0
    for a in arrays_:
        a = np.asarray(a, dtype=np.float64)
        fin = np.abs(a[np.isfinite(a)])
        if fin.size:
            best = max(best, float(fin.max()))
    return best


def as_arrays(result: Any) -> list[np.ndarray]:
    if isinstance(result, tuple):
        return [a for part in result for a in as_arrays(part)]
    return [np.asarray(result)]


def check(got: Any, want: Any, ulps: float, abs_scale: float = 0.0) -> None:
    """Every array of the result (tuples flattened) within `ulps` of the reference."""
    g_all, w_all = as_arrays(got), as_arrays(want)
    assert len(g_all) == len(w_all)
    for g, w in zip(g_all, w_all, strict=True):
        assert g.dtype == w.dtype, (g.dtype, w.dtype)
        assert g.shape == w.shape, (g.shape, w.shape)
        if w.dtype.kind in "biu":  # argmax, sign-free integer stats: exact
            np.testing.assert_array_equal(g, w)
            continue
        with np.errstate(invalid="ignore", over="ignore"):  # np.spacing(inf) in ulp_error
            assert_ulp_close(g, w, w.dtype, ulps, abs_scale)


ISAS = lk.available_isas()


def on_drawn_isa(test: Callable[[st.DataObject], None]) -> Callable[[st.DataObject], None]:
    """Run the test body under a kernel table drawn from those this CPU runs."""

    @functools.wraps(test)
    def wrapper(data: st.DataObject) -> None:
        with lk.use_isa(data.draw(st.sampled_from(ISAS), label="isa")):
            test(data)

    return wrapper


def run_both(func: str, *args: Any, **kwargs: Any) -> tuple[Any, Any] | None:
    """(logitkit, reference) results; None when both reject the input with one error type."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the reference's own warnings are not at issue
            want = getattr(ref, func)(*args, **kwargs)
    except (TypeError, ValueError, IndexError) as e:
        with pytest.raises(type(e)):
            getattr(lk, func)(*args, **kwargs)
        return None
    return getattr(lk, func)(*args, **kwargs), want


# ---------------------------------------------------------------------------- strategies


@st.composite
def shapes(draw: st.DrawFn, min_dims: int = 0, max_dims: int = 3) -> tuple[int, ...]:
    ndim = draw(st.integers(min_dims, max_dims))
    sides = [draw(st.integers(0, 5)) for _ in range(ndim)]
    if ndim:
        # rows long enough for every vector width and unrolled body
        sides[-1] = draw(st.one_of(st.integers(0, 9), st.integers(10, 70)))
    return tuple(sides)


@st.composite
def values(
    draw: st.DrawFn,
    shape: tuple[int, ...],
    dtype: np.dtype,
    lo: float | None = None,
    hi: float | None = None,
    specials: bool = True,
    special_values: list[float] | None = None,
) -> np.ndarray:
    """Finite values of one scale (or small integers: ties), with a few special values."""
    if lo is None or hi is None:
        scale = draw(st.sampled_from([1.0, 8.0, 30.0]))
        lo, hi = -scale, scale
    if draw(st.booleans()) and lo < 0:
        elements = st.integers(-2, 2).map(float)  # exact ties, and max attained several times
    else:
        elements = st.floats(lo, hi, width=64)
    a = draw(arrays(np.float64, shape, elements=elements))
    if specials and a.size:
        for i, v in draw(
            st.lists(
                st.tuples(st.integers(0, a.size - 1), st.sampled_from(special_values or SPECIALS)),
                max_size=3,
            )
        ):
            a.flat[i] = v
    return cast(a, dtype)


@st.composite
def laid_out(draw: st.DrawFn, a: np.ndarray) -> np.ndarray:
    """The same values in another memory layout (a view wherever the layout is not C)."""
    kind = draw(st.sampled_from(["c", "fortran", "step", "reverse", "transpose"]))
    if a.ndim == 0 or kind == "c":
        return a
    ax = draw(st.integers(0, a.ndim - 1))
    if kind == "fortran":
        return np.asfortranarray(a)
    if kind == "step":
        step = draw(st.sampled_from([2, 3, -2]))
        shape = list(a.shape)
        shape[ax] = max(1, a.shape[ax] * abs(step))
        big = np.zeros(shape, a.dtype)
        index: list[slice] = [slice(None)] * a.ndim
        index[ax] = slice(None, None, step) if step > 0 else slice(None, None, step)
        view = big[tuple(index)]
        index[ax] = slice(0, a.shape[ax])
        view = view[tuple(index)]
        view[...] = a
        return view
    if kind == "reverse":
        return np.flip(np.flip(a, ax).copy(), ax)
    perm = draw(st.permutations(range(a.ndim)))
    transposed: np.ndarray = np.ascontiguousarray(a.transpose(perm)).transpose(np.argsort(perm))
    return transposed


@st.composite
def arrays_of(
    draw: st.DrawFn, dtype: np.dtype[Any], shape: tuple[int, ...] | None = None, /, **kw: Any
) -> np.ndarray:
    shape = draw(shapes()) if shape is None else shape
    return draw(laid_out(draw(values(shape, dtype, **kw))))


def axes(ndim: int) -> st.SearchStrategy[Any]:
    if ndim == 0:
        return st.sampled_from([-1, 0, None, ()])
    single = st.integers(-ndim, ndim - 1)
    several = st.lists(single, min_size=1, max_size=ndim, unique_by=lambda i: i % ndim)
    return st.one_of(single, st.none(), several.map(tuple), st.just(()))


def avoid_empty_merge(x: np.ndarray, axis: Any) -> Any:
    """Several axes of an empty array fail to merge: test_empty_array_several_axes."""
    if isinstance(axis, tuple) and len(axis) > 1 and x.size == 0:
        return axis[0]
    return axis


def reduced_shape(shape: tuple[int, ...], axis: Any, keepdims: bool = False) -> tuple[int, ...]:
    return np.sum(np.zeros(shape), axis=axis, keepdims=keepdims).shape  # type: ignore[no-any-return]


def layout_of_out(draw: Callable[..., Any], shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    order = draw(st.sampled_from("CF"))
    return np.full(shape, np.nan, dtype=dtype, order=order)


def unchanged(before: list[np.ndarray], after: list[np.ndarray]) -> None:
    for b, a in zip(before, after, strict=True):
        assert b.tobytes() == np.ascontiguousarray(a).tobytes(), "an input was modified"


def snapshot(*arrays_: Any) -> list[np.ndarray]:
    return [np.ascontiguousarray(a).copy() for a in arrays_]


# ---------------------------------------------------------------- softmax / log_softmax


@given(st.data())
@on_drawn_isa
def test_softmax_log_softmax_hardmax(data: st.DataObject) -> None:
    func = data.draw(st.sampled_from(["softmax", "log_softmax", "hardmax"]))
    dtype = data.draw(dtypes)
    x = data.draw(arrays_of(dtype))
    axis = avoid_empty_merge(x, data.draw(axes(x.ndim)))
    if func == "hardmax" and isinstance(axis, tuple):
        # an unsorted tuple breaks ties in the wrong order: test_hardmax_unsorted_axes_ties
        axis = tuple(sorted(a % x.ndim for a in axis))
    mode = data.draw(st.sampled_from(["plain", "out", "in-place"]))
    before = snapshot(x)
    want = getattr(ref, func)(x, axis=axis)
    if mode == "plain":
        got = getattr(lk, func)(x, axis=axis)
        unchanged(before, [x])
    elif mode == "out":
        out = layout_of_out(data.draw, want.shape, want.dtype)
        got = getattr(lk, func)(x, axis=axis, out=out)
        assert got is out
        unchanged(before, [x])
    else:
        y = x.copy(order="K")
        got = getattr(lk, func)(y, axis=axis, out=y)
        assert got is y
    if func == "hardmax":
        check(got, want, 0)
    elif func == "softmax":
        check(got, want, ulps_for(dtype, 4))
    else:  # x - m - log S near 0 cancels: judged against the size of the inputs
        check(got, want, ulps_for(dtype, 4), abs_scale=finite_max(x))


def masked_softmax_oracle(func: str, x: np.ndarray, mask: np.ndarray, axis: int) -> np.ndarray:
    """softmax(x, where=mask) from the unmasked reference applied to the counted entries."""
    xr = np.moveaxis(x.astype(np.float64), axis, -1)
    mr = np.moveaxis(np.broadcast_to(mask, x.shape), axis, -1)
    out = np.empty(xr.shape)
    for idx in np.ndindex(xr.shape[:-1]):
        keep = mr[idx]
        row = xr[idx][keep]
        full = np.full(xr.shape[-1], -INF if func == "log_softmax" else 0.0)
        if row.size and not np.isneginf(row).all():  # some counted mass
            full[keep] = getattr(ref, func)(row)
        if np.isnan(row).any():  # a counted NaN poisons the whole row (as unmasked)
            full[:] = NAN
        out[idx] = full
    return cast(np.moveaxis(out, -1, axis), x.dtype)


@given(st.data())
@on_drawn_isa
def test_softmax_where(data: st.DataObject) -> None:
    func = data.draw(st.sampled_from(["softmax", "log_softmax"]))
    dtype = data.draw(dtypes)
    x = data.draw(arrays_of(dtype, data.draw(shapes(min_dims=1))))
    axis = data.draw(st.integers(-x.ndim, x.ndim - 1))
    mask_shape = tuple(d if data.draw(st.booleans()) else 1 for d in x.shape)
    mask = data.draw(arrays(np.bool_, mask_shape))
    before = snapshot(x, mask)
    got = getattr(lk, func)(x, axis=axis, where=mask)
    unchanged(before, [x, mask])
    want = masked_softmax_oracle(func, x, mask, axis)
    scale = finite_max(np.where(np.broadcast_to(mask, x.shape), x, 0)) if func != "softmax" else 0
    check(got, want, ulps_for(dtype, 4), abs_scale=scale)


# -------------------------------------------------------------------------- logsumexp


@given(st.data())
@on_drawn_isa
def test_logsumexp(data: st.DataObject) -> None:
    dtype = data.draw(dtypes)
    x = data.draw(arrays_of(dtype))
    axis = avoid_empty_merge(x, data.draw(axes(x.ndim)))
    keepdims = data.draw(st.booleans())
    return_sign = data.draw(st.booleans())
    signed = data.draw(st.booleans())
    b = None
    if data.draw(st.booleans()):
        b_shape = tuple(d if data.draw(st.booleans()) else 1 for d in x.shape)
        b_dtype = data.draw(st.sampled_from([dtype, np.dtype(np.float32), np.dtype(np.float64)]))
        weight_values = [0.0, 0.25, 1.0, 3.0] + ([-1.0, -0.5] if signed else [])
        b = data.draw(
            laid_out(
                cast(
                    data.draw(arrays(np.float64, b_shape, elements=st.sampled_from(weight_values))),
                    b_dtype,
                )
            )
        )
    mask = None
    if data.draw(st.booleans()):
        mask = data.draw(arrays(np.bool_, x.shape))
    before = snapshot(x, *([] if b is None else [b]))
    got = lk.logsumexp(x, axis, b=b, where=mask, keepdims=keepdims, return_sign=return_sign)
    unchanged(before, [x, *([] if b is None else [b])])
    # where= is documented as a weight of 0 where False, 1 (or b) where True
    weights: Any = b
    if mask is not None:
        w = np.ones((), dtype=x.dtype) if b is None else b  # x's result dtype: x is floating
        weights = np.where(mask, w, np.zeros((), dtype=np.asarray(w).dtype))
    want = ref.logsumexp(x, axis, b=weights, keepdims=keepdims, return_sign=return_sign)  # type: ignore[call-overload]
    out_dtype = as_arrays(want)[0].dtype
    if weights is None:
        check(got, want, ulps_for(out_dtype, 2), abs_scale=finite_max(x))
        return
    # Weights of both signs cancel: the sum's condition number |b| e^x / |sum b e^x| scales
    # the error of any implementation. Elements where it exceeds 1/(1000 eps) carry no
    # information (even their sign is rounding) and are left out; the others are judged
    # with an absolute floor proportional to it.
    w64 = np.broadcast_to(
        np.asarray(weights, dtype=np.float64), np.broadcast_shapes(np.shape(weights), x.shape)
    )
    x64 = np.broadcast_to(x.astype(np.float64), w64.shape)
    lse_abs = ref.logsumexp(x64, axis, b=np.abs(w64), keepdims=keepdims)
    lse_val, sign = ref.logsumexp(x64, axis, b=w64, keepdims=keepdims, return_sign=True)
    with np.errstate(invalid="ignore", over="ignore"):
        cond = np.where(np.isfinite(lse_abs) & np.isfinite(lse_val), np.exp(lse_abs - lse_val), 1.0)
    eps = float(np.finfo(out_dtype).eps)
    informative = np.asarray(cond < 1e-3 / eps)
    g_all, w_all = as_arrays(got), as_arrays(want)
    for g, w in zip(g_all, w_all, strict=True):
        assert g.shape == w.shape and g.dtype == w.dtype
        g, w = g[informative], w[informative]
        worst = float(cond[informative].max()) if informative.any() else 1.0
        with np.errstate(invalid="ignore", over="ignore"):
            assert_ulp_close(
                g, w, out_dtype, 1 if is16(out_dtype) else 64, (finite_max(x) + 1) * worst
            )


# ------------------------------------------------------------------------ elementwise

UNARY = {  # func: (value range, float32 ulps, abs_scale)
    "sigmoid": (None, 4, 0.0),
    "expit": (None, 4, 0.0),
    "log_sigmoid": (None, 4, 0.0),
    "log_expit": (None, 4, 0.0),
    "softplus": (None, 4, 0.0),
    "logit": ((0.0, 1.0), 4, 0.0),
    "entr": ((0.0, 5.0), 4, 1.0),
}


@given(st.data())
@on_drawn_isa
def test_unary_elementwise(data: st.DataObject) -> None:
    func = data.draw(st.sampled_from(sorted(UNARY)))
    rng_, f32_ulps, abs_scale = UNARY[func]
    dtype = data.draw(dtypes)
    kw: dict[str, Any] = {} if rng_ is None else {"lo": rng_[0], "hi": rng_[1]}
    x = data.draw(arrays_of(dtype, **kw))
    mode = data.draw(st.sampled_from(["plain", "out", "in-place"]))
    want = getattr(ref, func)(x)
    before = snapshot(x)
    if mode == "plain":
        got = getattr(lk, func)(x)
        unchanged(before, [x])
        assert type(got) is type(want)  # NumPy scalar for a 0-d result, as ufuncs
    elif mode == "out":
        out = layout_of_out(data.draw, np.shape(want), np.asarray(want).dtype)
        got = getattr(lk, func)(x, out=out)
        assert got is out
        unchanged(before, [x])
    else:
        y = x.copy(order="K")
        got = getattr(lk, func)(y, out=y)
        assert got is y
    # 64 ulp for float64: the reference's float64 formulas are themselves a few ulp off
    check(got, want, ulps_for(dtype, f32_ulps, 8), abs_scale=abs_scale)


@given(st.data())
@on_drawn_isa
def test_binary_elementwise(data: st.DataObject) -> None:
    func = data.draw(st.sampled_from(["rel_entr", "kl_div_elementwise", "sigmoid_backward"]))
    dtype = data.draw(dtypes)
    shape = data.draw(shapes())
    lo, hi = (0.0, 3.0) if func != "sigmoid_backward" else (-3.0, 3.0)
    # no infinite gradient: test_sigmoid_backward_warns
    finite_only = func == "sigmoid_backward"
    a = data.draw(arrays_of(dtype, shape, lo=lo, hi=hi, specials=not finite_only))
    # sigmoid_backward takes grad and y of one shape; the others broadcast
    b_shape = shape
    if func != "sigmoid_backward":
        b_shape = tuple(d if data.draw(st.booleans()) else 1 for d in shape)
    b_dtype = data.draw(st.sampled_from([dtype, np.dtype(np.float32), np.dtype(np.float64)]))
    if func == "sigmoid_backward":  # y is a sigmoid output, in [0, 1]
        b = data.draw(arrays_of(b_dtype, b_shape, lo=0.0, hi=1.0, specials=False))
    else:
        b = data.draw(arrays_of(b_dtype, b_shape, lo=0.0, hi=3.0))
    use_out = data.draw(st.booleans())
    want = getattr(ref, func)(a, b)
    before = snapshot(a, b)
    if use_out:
        out = layout_of_out(data.draw, np.shape(want), np.asarray(want).dtype)
        got = getattr(lk, func)(a, b, out=out)
        assert got is out
    else:
        got = getattr(lk, func)(a, b)
    unchanged(before, [a, b])
    # rel_entr and kl_div_elementwise: 32 ulp as in tests/test_information.py
    out_dtype = np.asarray(want).dtype
    check(got, want, ulps_for(out_dtype, 32 if func != "sigmoid_backward" else 4, 64))


# ---------------------------------------------------------------------------- entropy


@given(st.data())
@on_drawn_isa
def test_entropy(data: st.DataObject) -> None:
    dtype = data.draw(dtypes)
    # No finite values whose sum overflows the dtype, nor so small that the normalized
    # values are subnormal in it: test_entropy_normalizes_in_input_dtype
    kw: dict[str, Any] = {"lo": 0.0, "hi": 4.0, "special_values": ENTROPY_SPECIALS}
    tiny = float(np.finfo(dtype).tiny) * 1e8

    def flushed(a: np.ndarray) -> np.ndarray:
        with np.errstate(invalid="ignore"):
            small = np.abs(a.astype(np.float64)) < tiny
        return np.where(small, np.zeros((), a.dtype), a)

    pk = flushed(data.draw(arrays_of(dtype, data.draw(shapes(min_dims=1)), **kw)))
    qk = None
    if data.draw(st.booleans()):
        qk = flushed(data.draw(arrays_of(dtype, pk.shape, **kw)))
    base = data.draw(st.sampled_from([None, 2.0, np.e, 10.0]))
    axis = data.draw(st.one_of(st.integers(-pk.ndim, pk.ndim - 1), st.none()))
    keepdims = data.draw(st.booleans())
    before = snapshot(pk, *([] if qk is None else [qk]))
    got = lk.entropy(pk, qk, base, axis, keepdims=keepdims)
    unchanged(before, [pk, *([] if qk is None else [qk])])
    want = ref.entropy(pk, qk, base, axis, keepdims=keepdims)
    # a sum of terms of both signs: judged against the sum of their magnitudes
    with np.errstate(all="ignore"):
        p = pk.astype(np.float64) / np.sum(pk, axis=axis, keepdims=True, dtype=np.float64)
        q = (
            1.0
            if qk is None
            else qk.astype(np.float64) / np.sum(qk, axis=axis, keepdims=True, dtype=np.float64)
        )
        terms = np.abs(np.where(p > 0, p * np.log(p / q), 0.0))
        scale = finite_max(np.sum(terms, axis=axis)) + 1.0
    check(got, want, ulps_for(np.asarray(want).dtype, 8, 450), abs_scale=scale)


ENTROPY_SPECIALS = [v for v in SPECIALS if not 1e4 < abs(v) < INF and not 0 < abs(v) < 1e-30]
# losses overflow at huge finite logits (test_no_runtime_warning_on_overflow)
LOSS_SPECIALS = [v for v in SPECIALS if not 1e4 < abs(v) < INF]


@pytest.mark.parametrize("case", ["overflow", "subnormal"])
def test_entropy_normalizes_in_input_dtype(case: str) -> None:
    # overflow: the float32 sum of pk is inf, every p becomes 0: logitkit gives 0.0 (and a
    # RuntimeWarning) where the reference gives log 2, and 0.0 instead of 44.3 with qk.
    # subnormal: q / sum(q) = 7.9e-44 keeps 6 bits in float32: 99.25358 for 99.24469
    if case == "overflow":
        p = np.array([3e38, 3e38], np.float32)
        q = np.array([1.0, 3e38], np.float32)
        assert_ulp_close(lk.entropy(p), ref.entropy(p), np.float32, 8)
    else:
        p = np.array([0.0, 1.0], np.float32)
        q = np.array([2.0, 1.58e-43], np.float32)
    assert_ulp_close(lk.entropy(p, q), ref.entropy(p, q), np.float32, 8)


@pytest.mark.xfail(
    strict=True,
    reason="hardmax over an unsorted axis tuple breaks ties in the tuple's order, not C order",
)
def test_hardmax_unsorted_axes_ties() -> None:
    # documented: "Ties go to the first maximum (in C order over the axes ...)"; the first
    # maximum in C order is [0, 1], logitkit marks [1, 0]
    x = np.array([[-1.0, 0.0], [0.0, 0.0]])
    np.testing.assert_array_equal(lk.hardmax(x, (1, 0)), ref.hardmax(x, (1, 0)))


@pytest.mark.xfail(strict=True, reason="a zero weight times an infinite loss term gives NaN")
def test_bce_zero_weight_at_infinite_logit() -> None:
    # the reference: a zero coefficient contributes 0 (logitkit.reference docstring); logitkit
    # gives NaN, and so does every reduction over it
    x, y, w = np.array([np.inf, 1.0]), np.array([0.0, 0.5]), np.array([0.0, 1.0])
    for reduction in ("none", "sum"):
        got = lk.binary_cross_entropy_with_logits(x, y, weight=w, reduction=reduction)
        want = ref.binary_cross_entropy_with_logits(x, y, weight=w, reduction=reduction)
        assert_ulp_close(got, want, np.float64, 4)


def test_kl_div_mean_of_empty() -> None:
    # the reference (and PyTorch) give NaN, a mean over nothing
    for reduction in ("mean", "batchmean"):
        got = lk.kl_div(np.zeros((0, 3)), np.zeros((0, 3)), reduction)
        assert np.isnan(got) and np.isnan(ref.kl_div(np.zeros((0, 3)), np.zeros((0, 3)), reduction))


@pytest.mark.xfail(strict=True, reason="logsumexp_backward ignores the lse it is given")
def test_logsumexp_backward_uses_given_lse() -> None:
    # documented: with lse the result is g * exp(x - lse) "as given", as a backward pass
    # reusing its forward result; logitkit returns g * softmax(x) whatever lse is
    x = np.array([0.0, -1.0])
    for lse in (np.float64(5.0), np.float64(np.inf)):
        got = lk.logsumexp_backward(np.float64(1.0), x, lse)
        assert_ulp_close(got, ref.logsumexp_backward(np.float64(1.0), x, lse), np.float64, 4)


@pytest.mark.parametrize("func", ["nll_loss", "cross_entropy"])
def test_ignore_index_with_where_0d(func: str) -> None:
    # one row (1-d logits, 0-d target) that is ignored: without where= the loss is 0 (sum)
    # as in the reference; with where=True logitkit counts it, log(10) = 2.30
    logp = np.log(np.full(10, 0.1))
    want = getattr(ref, func)(logp, np.array(-100), where=True, reduction="sum")
    got = getattr(lk, func)(logp, np.array(-100), where=True, reduction="sum")
    assert_ulp_close(got, want, np.float64, 4)


def test_sigmoid_backward_warns() -> None:
    # the reference returns NaN for inf * 0 without a RuntimeWarning, as documented for the
    # package; logitkit emits "invalid value encountered in multiply"

    g, y = np.array([np.inf, 0.0, 1.0]), np.array([0.0, np.inf, 0.5])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = lk.sigmoid_backward(g, y)
    assert_ulp_close(got, ref.sigmoid_backward(g, y), np.float64, 4)


@pytest.mark.parametrize("func", ["softmax", "log_softmax", "logsumexp", "hardmax"])
def test_empty_array_several_axes(func: str) -> None:
    # ValueError "cannot reshape array of size 0 into shape (0,newaxis)", which does not
    # name the function; the reference returns the empty result
    x = np.zeros((0, 2, 3))
    want = getattr(ref, func)(x, axis=(1, 2))
    check(getattr(lk, func)(x, axis=(1, 2)), want, 0)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_rel_entr_small_ratio(dtype: str) -> None:
    # x far below y, where log1p(x / y - 1) cancels: before the kernels took log(x / y)
    # there, float64 was 1.8e-3 off at x = 2.2e-16, y = 0.375 and float32 13833 ulp off at
    # x = 1, y = 1e6
    if dtype == "float64":
        x, y = np.array([2.220446e-16, 1e-10, 1e-5]), np.full(3, 0.375)
    else:
        x, y = np.ones(2, np.float32), np.array([6e4, 1e6], np.float32)
    assert_ulp_close(lk.rel_entr(x, y), ref.rel_entr(x, y), np.dtype(dtype), 32)


def test_softcap_gradient_accuracy() -> None:
    # d/dz c*tanh(z/c) = 1 - tanh(z/c)**2 formed by cancellation: at z/c = 5 the gradient
    # is 4608 ulp off in float32, at z/c = 10 it is 0 instead of 6.0e-9
    for r in (5.0, 10.0):
        z, t = np.array([[r, 0.0]], np.float32), np.array([1])
        got = lk.cross_entropy_with_grad(z, t, softcap=1.0)[1]
        want = ref.cross_entropy_with_grad(z, t, softcap=1.0)[1]
        assert_ulp_close(got, want, np.float32, 16)


@pytest.mark.parametrize("case", ["cross_entropy-z_loss", "nll_loss-weight", "bce-target"])
def test_no_runtime_warning_on_overflow(case: str) -> None:
    # the package documents no RuntimeWarning; these come from NumPy operations in the
    # Python layer (a float64 -> float32 cast, a weight product) on huge finite inputs

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        if case == "cross_entropy-z_loss":
            lk.cross_entropy(np.array([3e38], np.float32), np.array(0), z_loss=1e-3)
        elif case == "nll_loss-weight":
            lk.nll_loss(np.array([-1e308, 0.0]), np.array(0), weight=np.array([2.0, 2.0]))
        else:
            lk.binary_cross_entropy_with_logits(np.array(1.0, np.float16), np.array(1e308))


@pytest.mark.xfail(strict=True, reason="stats argmax is the +inf, not the first NaN")
def test_stats_argmax_nan_and_inf() -> None:
    # documented: argmax is "the first NaN in a row holding one"; with a +inf in the row as
    # well logitkit reports the +inf (rows [nan, inf, 0] -> 1, [5, nan, inf] -> 2)
    for row in ([np.nan, np.inf, 0.0], [5.0, np.nan, np.inf], [np.inf, np.nan]):
        z = np.array(row, np.float32)
        got = lk.cross_entropy(z, np.array(0), return_stats=True)[1]
        want = ref.cross_entropy(z, np.array(0), return_stats=True)[1]
        assert int(got.argmax) == int(want.argmax), row


@pytest.mark.xfail(strict=True, reason="stats take the argmax of the soft target rounded")
def test_stats_soft_target_argmax() -> None:
    # float64 probabilities with float32 logits: the target's first argmax is class 1
    # (1 > 1 - 1e-12), as the reference says; logitkit rounds the target to float32 first,
    # where the two tie, and reports class 0, so `correct` is False
    z, t = np.array([-2.0, 5.0], np.float32), np.array([1 - 1e-12, 1.0])
    got = lk.cross_entropy(z, t, return_stats=True)[1]
    want = ref.cross_entropy(z, t, return_stats=True)[1]
    assert bool(got.correct) == bool(want.correct)


@pytest.mark.skipif(BFLOAT16 is None, reason="needs ml_dtypes")
def test_bfloat16_grad_output() -> None:
    # TypeError "grad_output must be a real number, got 0"; the reference accepts it
    z = np.zeros((2, 3), BFLOAT16)
    g = np.array(1.0, BFLOAT16)
    want = ref.cross_entropy_with_grad(z, np.array([0, 1]), grad_output=g)
    check(lk.cross_entropy_with_grad(z, np.array([0, 1]), grad_output=g), want, 1)


def test_kl_div_nan_input_zero_target() -> None:
    # the reference (and PyTorch: 0 * NaN) give NaN; logitkit gives 0.0
    inp, target = np.array([np.nan, 0.0]), np.array([0.0, 1.0])
    check(lk.kl_div(inp, target, "sum"), ref.kl_div(inp, target, "sum"), 4)


@pytest.mark.xfail(strict=True, reason="KL gradient is NaN, not 0, at a -inf logit")
def test_kl_grad_of_infinite_divergence() -> None:
    # KL = inf (q puts no mass where p has some); d/dp at p's -inf logit: the reference
    # gives 0 (zero probability, zero coefficient), logitkit NaN
    p = np.array([-np.inf, 0.0], np.float32)
    q = np.array([0.0, -np.inf], np.float32)
    got = lk.kl_divergence_from_logits_with_grad(p, q, 0)
    check(got, ref.kl_divergence_from_logits_with_grad(p, q, 0), 4)


@given(st.data())
@on_drawn_isa
def test_entropy_from_logits(data: st.DataObject) -> None:
    dtype = data.draw(dtypes)
    z = data.draw(arrays_of(dtype, data.draw(shapes(min_dims=1))))
    axis = data.draw(st.integers(-z.ndim, z.ndim - 1))
    base = data.draw(st.sampled_from([None, 2.0, 10.0]))
    keepdims = data.draw(st.booleans())
    mask = data.draw(st.one_of(st.none(), arrays(np.bool_, z.shape)))
    before = snapshot(z)
    got = lk.entropy_from_logits(z, axis, base=base, keepdims=keepdims, where=mask)
    unchanged(before, [z])
    want = ref.entropy_from_logits(z, axis, base=base, keepdims=keepdims, where=mask)
    # H = lse - sum p z cancels at the scale of the logits (tests/test_backward_and_entropy)
    check(got, want, ulps_for(dtype, 8), abs_scale=max(8.0, 2 * finite_max(z)))


# ------------------------------------------------------------------------------ losses


@st.composite
def class_problem(draw: st.DrawFn, dtype: np.dtype) -> tuple[np.ndarray, int, tuple[int, ...]]:
    """Logits with classes along a drawn axis, and the shape of the rows."""
    ndim = draw(st.integers(1, 3))
    shape = draw(shapes(min_dims=ndim, max_dims=ndim))
    z = draw(laid_out(draw(values(shape, dtype, special_values=LOSS_SPECIALS))))
    axis = draw(st.integers(-ndim, ndim - 1))
    rows = tuple(d for i, d in enumerate(shape) if i != axis % ndim)
    return z, axis, rows


def loss_scale(z: np.ndarray, n_rows: int, weight: Any, z_loss: float = 0.0) -> float:
    """Size of the quantities a (summed) loss is the difference of."""
    c = max(z.shape[-1] if z.ndim else 1, 1)
    row = finite_max(z) + np.log(c) + 1.0
    row *= 1.0 + 2 * z_loss * row
    w = 1.0 if weight is None else max(finite_max(weight), 1.0)
    return float(row * w * 2 * max(n_rows, 1))


def grad_unit(z: np.ndarray, target: np.ndarray, kw: dict[str, Any]) -> float:
    """Largest |w g / D| (1 + 2 z_loss |lse|) of a cross-entropy gradient."""
    axis = kw["axis"]
    weight = kw.get("weight")
    w = np.ones(z.shape[axis]) if weight is None else weight.astype(np.float64)
    rows_shape = np.delete(np.array(z.shape), axis % z.ndim)
    counted = np.ones(tuple(rows_shape), bool)
    if "where" in kw:
        counted &= np.broadcast_to(kw["where"], counted.shape)
    if target.dtype.kind in "iu":
        counted &= target != kw.get("ignore_index", -100)
        d = float(np.sum(np.where(counted, w[np.where(counted, target, 0)], 0.0)))
    else:
        d = float(np.sum(counted))
    g = finite_max(kw.get("grad_output", 1.0)) or 1.0
    lse = finite_max(z) + np.log(max(z.shape[axis], 1)) + 1
    k = finite_max(w) * g * (1 + 2 * kw["z_loss"] * lse)
    if kw["reduction"] == "mean" and d > 0:
        k /= d
    return float(max(k, 1e-300))


@given(st.data())
@on_drawn_isa
def test_cross_entropy(data: st.DataObject) -> None:
    dtype = data.draw(dtypes)
    z, axis, rows = data.draw(class_problem(dtype))
    c = z.shape[axis]
    soft = data.draw(st.booleans())
    if soft:
        target = data.draw(
            arrays_of(
                data.draw(st.sampled_from([dtype, np.dtype(np.float64)])),
                z.shape,
                lo=0.0,
                hi=1.0,
                specials=False,
            )
        )
    else:
        target = data.draw(
            arrays(np.int64, rows, elements=st.one_of(st.integers(0, max(c - 1, 0)), st.just(-100)))
        )
        if c == 0:
            target[...] = -100
    kw: dict[str, Any] = {
        "axis": axis,
        "reduction": data.draw(st.sampled_from(["mean", "sum", "none"])),
        "label_smoothing": data.draw(st.sampled_from([0.0, 0.1, 0.5, 1.0])),
        "smoothing": data.draw(st.sampled_from(["pytorch", "megatron"])),
        "z_loss": data.draw(st.sampled_from([0.0, 1e-3, 0.1])),
        # a cap far below the logits: test_softcap_gradient_accuracy
        "softcap": data.draw(st.sampled_from([None, 8.0, 30.0])),
    }
    if data.draw(st.booleans()):
        kw["weight"] = cast(
            data.draw(arrays(np.float64, (c,), elements=st.floats(0.5, 2.0))), dtype
        )
    if data.draw(st.booleans()) and rows:  # 0-d rows: test_ignore_index_with_where_0d
        kw["where"] = data.draw(arrays(np.bool_, rows))
    with_grad = data.draw(st.booleans())
    if with_grad and data.draw(st.booleans()):
        g_shape = rows if kw["reduction"] == "none" else ()
        g_dtype = np.dtype(np.float32) if dtype == BFLOAT16 else dtype  # test_bfloat16_grad_output
        kw["grad_output"] = cast(
            data.draw(arrays(np.float64, g_shape, elements=st.floats(-2, 2))), g_dtype
        )
    kw["return_stats"] = data.draw(st.booleans())
    if kw["return_stats"] and np.isnan(z).any():
        z = np.where(np.isposinf(z), 0, z).astype(z.dtype)  # test_stats_argmax_nan_and_inf
    if kw["return_stats"] and soft:
        # argmax of a soft target rounded to the logits' dtype: test_stats_soft_target_argmax
        target = target.astype(dtype)
    before = snapshot(z, target)
    # where the reference rejects the input (an empty class axis, a NaN in a soft target),
    # the library must raise the same exception type
    both = run_both("cross_entropy_with_grad" if with_grad else "cross_entropy", z, target, **kw)
    unchanged(before, [z, target])
    if both is None:
        return
    got, want = both
    n_rows = int(np.prod(rows))
    scale = loss_scale(np.moveaxis(z, axis, -1), n_rows, kw.get("weight"), kw["z_loss"])
    g_all, w_all = as_arrays(got), as_arrays(want)
    # loss: as tests/test_cross_entropy.py (float64 1e-13 relative); gradient entries are
    # differences p - y' of size at most the weight: judged against the largest of them
    check(g_all[0], w_all[0], ulps_for(dtype, 8), abs_scale=scale)
    i = 1
    if with_grad:
        # each entry is p' k - y' k with p' = p (1 + 2 z_loss lse) and k = w g / D: it cancels
        # at the scale of k (1 + 2 z_loss |lse|), as in tests/test_cross_entropy.py's atol
        check(g_all[1], w_all[1], ulps_for(dtype, 16), abs_scale=grad_unit(z, target, kw))
        i = 2
    if kw["return_stats"]:
        assert len(g_all) == len(w_all) == i + 4
        check(g_all[i], w_all[i], ulps_for(dtype, 4), abs_scale=finite_max(z))  # lse
        for g, w in zip(g_all[i + 1 :], w_all[i + 1 :], strict=True):  # argmax, correct, accuracy
            check(g, w, 0)


@given(st.data())
@on_drawn_isa
def test_nll_loss(data: st.DataObject) -> None:
    dtype = data.draw(dtypes)
    z, axis, rows = data.draw(class_problem(dtype))
    c = z.shape[axis]
    logp = ref.log_softmax(z, axis=axis)
    target = data.draw(
        arrays(np.int64, rows, elements=st.one_of(st.integers(0, max(c - 1, 0)), st.just(-100)))
    )
    if c == 0:
        target[...] = -100
    kw: dict[str, Any] = {
        "axis": axis,
        "reduction": data.draw(st.sampled_from(["mean", "sum", "none"])),
    }
    if data.draw(st.booleans()):
        kw["weight"] = cast(
            data.draw(arrays(np.float64, (c,), elements=st.floats(0.5, 2.0))), dtype
        )
    if data.draw(st.booleans()) and rows:  # 0-d rows: test_ignore_index_with_where_0d
        kw["where"] = data.draw(arrays(np.bool_, rows))
    both = run_both("nll_loss", logp, target, **kw)
    if both is None:
        return
    got, want = both
    scale = (
        finite_max(logp) * max(finite_max(kw.get("weight", 1.0)), 1.0) * max(int(np.prod(rows)), 1)
    )
    check(got, want, ulps_for(dtype, 8), abs_scale=scale)


@given(st.data())
@on_drawn_isa
def test_binary_cross_entropy_with_logits(data: st.DataObject) -> None:
    dtype = data.draw(dtypes)
    shape = data.draw(shapes())
    x = data.draw(arrays_of(dtype, shape))
    y = data.draw(arrays_of(dtype, shape, lo=0.0, hi=1.0, specials=False))
    kw: dict[str, Any] = {
        "reduction": data.draw(st.sampled_from(["mean", "sum", "none"])),
        "label_smoothing": data.draw(st.sampled_from([0.0, 0.1])),
    }
    if data.draw(st.booleans()):
        w_shape = tuple(d if data.draw(st.booleans()) else 1 for d in shape)
        # no zero weight: test_bce_zero_weight_at_infinite_logit
        weights = st.floats(0.01, 2)
        kw["weight"] = cast(data.draw(arrays(np.float64, w_shape, elements=weights)), dtype)
    if data.draw(st.booleans()) and shape:
        kw["pos_weight"] = cast(
            data.draw(arrays(np.float64, shape[-1:], elements=st.floats(0.5, 3))), dtype
        )
    with_grad = data.draw(st.booleans())
    if with_grad and data.draw(st.booleans()):
        g_shape = shape if kw["reduction"] == "none" else ()
        g_dtype = np.dtype(np.float32) if dtype == BFLOAT16 else dtype  # test_bfloat16_grad_output
        kw["grad_output"] = cast(
            data.draw(arrays(np.float64, g_shape, elements=st.floats(-2, 2))), g_dtype
        )
    before = snapshot(x, y)
    if with_grad:
        got = lk.binary_cross_entropy_with_logits_with_grad(x, y, **kw)
        want = ref.binary_cross_entropy_with_logits_with_grad(x, y, **kw)
    else:
        got = lk.binary_cross_entropy_with_logits(x, y, **kw)
        want = ref.binary_cross_entropy_with_logits(x, y, **kw)
    unchanged(before, [x, y])
    g_all, w_all = as_arrays(got), as_arrays(want)
    # as tests/test_bce.py: the loss is y*softplus(-x) + (1-y)*softplus(x), terms that cancel
    # only through the target, at the scale of the logits
    n = max(int(np.prod(shape)), 1)
    scale = (
        (finite_max(x) + 1)
        * max(finite_max(kw.get("weight", 1.0)), 1.0)
        * 3
        * n
        * max(finite_max(kw.get("pos_weight", 1.0)), 1.0)
    )
    check(g_all[0], w_all[0], ulps_for(dtype, 64), abs_scale=scale)
    if with_grad:
        check(g_all[1], w_all[1], ulps_for(dtype, 8), abs_scale=max(finite_max(w_all[1]), 1e-300))


@given(st.data())
@on_drawn_isa
def test_kl_div(data: st.DataObject) -> None:
    dtype = data.draw(dtypes)
    shape = data.draw(shapes(min_dims=1))
    log_target = data.draw(st.booleans())
    no_nan = [v for v in LOSS_SPECIALS if not np.isnan(v)]  # test_kl_div_nan_input_zero_target
    inp = ref.log_softmax(data.draw(arrays_of(dtype, shape, special_values=no_nan)))
    target = data.draw(arrays_of(dtype, shape, lo=0.0, hi=1.0))
    if log_target:
        target = ref.log_softmax(target)
    reduction = data.draw(st.sampled_from(["mean", "sum", "none", "batchmean"]))
    if reduction in ("mean", "batchmean") and inp.size == 0:
        reduction = "sum"  # test_kl_div_mean_of_empty
    got, want = run_both("kl_div", inp, target, reduction, log_target) or (None, None)
    if got is None:
        return
    with np.errstate(all="ignore"):
        t = np.exp(target.astype(np.float64)) if log_target else target.astype(np.float64)
        scale = (
            float(
                np.nansum(np.abs(t) * (np.abs(np.log(np.abs(t))) + np.abs(inp.astype(np.float64))))
            )
            + 1
        )
    check(got, want, ulps_for(dtype, 8, 450), abs_scale=min(scale, 1e300))


@given(st.data())
@on_drawn_isa
def test_divergences_from_logits(data: st.DataObject) -> None:
    func = data.draw(
        st.sampled_from(
            [
                "kl_divergence_from_logits",
                "kl_divergence_from_logits_with_grad",
                "jensen_shannon_from_logits",
                "jensen_shannon_from_logits_with_grad",
            ]
        )
    )
    dtype = data.draw(dtypes)
    p, axis, rows = data.draw(class_problem(dtype))
    q = data.draw(arrays_of(data.draw(st.sampled_from([dtype, np.dtype(np.float64)])), p.shape))
    kw: dict[str, Any] = {
        "reduction": data.draw(st.sampled_from(["none", "sum", "mean", "batchmean"]))
    }
    if func.startswith("jensen"):
        kw["beta"] = data.draw(st.sampled_from([0.0, 0.1, 0.5, 1.0]))
    if data.draw(st.booleans()):
        kw["where"] = data.draw(arrays(np.bool_, rows))
    if func.endswith("grad") and data.draw(st.booleans()):
        g_shape = rows if kw["reduction"] == "none" else ()
        kw["grad_output"] = data.draw(arrays(np.float64, g_shape, elements=st.floats(-2, 2)))
    before = snapshot(p, q)
    both = run_both(func, p, q, axis, **kw)
    unchanged(before, [p, q])
    if both is None:
        return
    got, want = both
    out_dtype = as_arrays(want)[0].dtype
    # differences of log-probabilities: 64 ulp at the scale of the logits (test_divergences)
    n_rows = max(int(np.prod(rows)), 1)
    scale = max(16.0, 4 * (finite_max(p) + finite_max(q))) * n_rows
    if func.endswith("grad") and not np.isfinite(as_arrays(want)[0].astype(np.float64)).all():
        # gradients of an infinite divergence: test_kl_grad_of_infinite_divergence
        got, want = as_arrays(got)[0], as_arrays(want)[0]
    check(got, want, ulps_for(out_dtype, 64), abs_scale=scale)


# --------------------------------------------------------------------------- backward


@given(st.data())
@on_drawn_isa
def test_softmax_and_log_softmax_backward(data: st.DataObject) -> None:
    func = data.draw(st.sampled_from(["softmax_backward", "log_softmax_backward"]))
    dtype = data.draw(dtypes)
    x = data.draw(arrays_of(dtype, specials=False))
    axis = avoid_empty_merge(x, data.draw(axes(x.ndim)))
    y = (ref.softmax if func == "softmax_backward" else ref.log_softmax)(x, axis=axis)
    g = data.draw(arrays_of(dtype, x.shape, lo=-2.0, hi=2.0, specials=False))
    use_out = data.draw(st.booleans())
    want = getattr(ref, func)(g, y, axis)
    before = snapshot(g, y)
    if use_out:
        out = layout_of_out(data.draw, want.shape, want.dtype)
        got = getattr(lk, func)(g, y, axis, out=out)
        assert got is out
    else:
        got = getattr(lk, func)(g, y, axis)
    unchanged(before, [g, y])
    n = max(x.size // max(int(np.prod(reduced_shape(x.shape, axis))), 1), 1)
    scale = 2 * finite_max(g) * (n if func == "log_softmax_backward" else 1)
    check(got, want, ulps_for(dtype, 64), abs_scale=scale)


@given(st.data())
@on_drawn_isa
def test_logsumexp_backward(data: st.DataObject) -> None:
    dtype = data.draw(dtypes)
    x = data.draw(arrays_of(dtype))
    axis = avoid_empty_merge(x, data.draw(axes(x.ndim)))
    keepdims = data.draw(st.booleans())
    g = data.draw(
        arrays_of(
            dtype,
            reduced_shape(x.shape if x.ndim else (1,), axis if x.ndim else None, keepdims)
            if x.ndim
            else (),
            lo=-2.0,
            hi=2.0,
            specials=False,
        )
    )
    lse = None
    # the lse of x itself, with no +inf in x: test_logsumexp_backward_uses_given_lse
    # (and not in 16-bit types, where the rounding of lse shows): the same test
    if data.draw(st.booleans()) and not np.isposinf(x).any() and not is16(dtype):
        lse = ref.logsumexp(x, axis, keepdims=keepdims)
    before = snapshot(g, x)
    got = lk.logsumexp_backward(g, x, lse, axis, keepdims)
    unchanged(before, [g, x])
    want = ref.logsumexp_backward(g, x, lse, axis, keepdims)
    # g * exp(x - lse): the exponential's argument is rounded at the scale of x
    check(got, want, ulps_for(np.asarray(want).dtype, 64), abs_scale=finite_max(g))
