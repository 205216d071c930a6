"""float16 and bfloat16 are storage types, converted to and from float32 in the kernels' own
loads and stores (F16C, AVX-512 and AVX512_BF16 on x86, bit-level code elsewhere). The
conversions are exact operations: they must match NumPy's (float16) and ml_dtypes' (bfloat16)
bit for bit on every ISA, subnormals, ties, overflow and NaN included; and a 16-bit result is
the float32 result rounded once."""

from __future__ import annotations

import numpy as np
import pytest

import logitkit as lk
from logitkit._storage import cast, copy_cast


def every_16_bit_pattern(dtype) -> np.ndarray:
    return np.arange(1 << 16, dtype=np.uint32).astype(np.uint16).view(dtype)


def interesting_float32() -> np.ndarray:
    """Every float32 around the 16-bit formats' range limits and rounding ties, and a sample
    of the rest."""
    rng = np.random.default_rng(0)
    bits = [rng.integers(0, 1 << 32, 1 << 18, dtype=np.uint64).astype(np.uint32)]
    # float16: subnormal range, normal range edges and the overflow threshold, densely
    for lo, hi in [(0x33000000, 0x33800000), (0x387F0000, 0x38810000), (0x477FE000, 0x47800100)]:
        bits.append(np.arange(lo, hi, dtype=np.uint32))
    # exact ties of both formats: the dropped bits are 100...0
    mant = rng.integers(0, 1 << 23, 1 << 16, dtype=np.uint64).astype(np.uint32)
    exps = rng.integers(90, 160, 1 << 16, dtype=np.uint64).astype(np.uint32) << 23
    bits.append((exps | (mant & ~np.uint32(0x1FFF))) | np.uint32(0x1000))
    bits.append((exps | (mant & ~np.uint32(0xFFFF))) | np.uint32(0x8000))
    out = np.concatenate(bits)
    out = np.concatenate([out, out | np.uint32(0x80000000)])
    return out.view(np.float32)


def narrowed(x: np.ndarray, dtype) -> np.ndarray:
    with np.errstate(invalid="ignore", over="ignore"):  # NaN and overflow are part of the test
        return x.astype(dtype)


def same_bits_or_both_nan(got: np.ndarray, want: np.ndarray) -> None:
    nan = np.isnan(want.astype(np.float32))
    np.testing.assert_array_equal(np.isnan(got.astype(np.float32)), nan)
    g = got.view(np.uint16 if got.itemsize == 2 else np.uint32)[~nan]
    w = want.view(np.uint16 if want.itemsize == 2 else np.uint32)[~nan]
    bad = np.flatnonzero(g != w)
    assert bad.size == 0, f"{bad.size} differ, e.g. got {g[bad[:3]]} want {w[bad[:3]]}"


def storage_dtypes():
    dtypes = [np.dtype(np.float16)]
    try:
        import ml_dtypes

        dtypes.append(np.dtype(ml_dtypes.bfloat16))
    except ImportError:
        pass
    return dtypes


@pytest.fixture(params=storage_dtypes(), ids=lambda d: d.name)
def storage(request):
    return request.param


def test_widening_matches_exactly(isa, storage):
    h = every_16_bit_pattern(storage)
    same_bits_or_both_nan(cast(h, np.float32), h.astype(np.float32))


def test_narrowing_matches_exactly(isa, storage):
    x = interesting_float32()
    same_bits_or_both_nan(cast(x, storage), narrowed(x, storage))
    out = np.empty(x.shape, storage)
    copy_cast(out, x)
    same_bits_or_both_nan(out, narrowed(x, storage))


def test_shapes_and_layouts_are_kept(storage):
    x = np.arange(24, dtype=np.float32).reshape(2, 3, 4)[:, ::2, 1:]
    assert cast(x, storage).shape == x.shape
    np.testing.assert_array_equal(cast(x, storage).astype(np.float32), x)
    scalar = np.array(1.5, dtype=np.float32)
    assert cast(scalar, storage).shape == ()
    assert cast(cast(scalar, storage), np.float32) == 1.5


def test_small_probabilities_round_trip_through_the_functions(isa):
    # softmax over many classes gives float16 subnormals; they must be the float32 results
    # rounded once, as the dtype policy promises
    x = (np.random.default_rng(1).standard_normal((4, 5000)) * 3).astype(np.float16)
    got = lk.softmax(x)
    want = lk.softmax(x.astype(np.float32)).astype(np.float16)
    assert got.dtype == np.float16
    np.testing.assert_array_equal(got.view(np.uint16), want.view(np.uint16))
    out = np.empty_like(x)
    lk.softmax(x, out=out)
    np.testing.assert_array_equal(out.view(np.uint16), want.view(np.uint16))


@pytest.mark.parametrize("func", ["softmax", "log_softmax", "sigmoid"])
def test_native_calls_equal_float32_rounded_once(isa, storage, func):
    # The kernels read and write the 16-bit rows themselves, computing in float32: each result
    # must be the float32 computation rounded once, in every row of a multi-megabyte array.
    x = (np.random.default_rng(2).standard_normal((300, 5000)) * 4).astype(storage)
    want = narrowed(getattr(lk, func)(x.astype(np.float32)), storage)
    bits = np.uint16
    np.testing.assert_array_equal(getattr(lk, func)(x).view(bits), want.view(bits))
    out = np.empty_like(x)
    assert getattr(lk, func)(x, out=out) is out
    np.testing.assert_array_equal(out.view(bits), want.view(bits))
    y = x.copy()
    assert getattr(lk, func)(y, out=y) is y
    np.testing.assert_array_equal(y.view(bits), want.view(bits))
    # a non-contiguous input takes the general path, with the same results
    np.testing.assert_array_equal(
        getattr(lk, func)(x[::2]).view(bits),
        want[::2].view(bits)
        if func == "sigmoid"
        else narrowed(getattr(lk, func)(x[::2].astype(np.float32)), storage).view(bits),
    )


@pytest.mark.parametrize("func", ["logsumexp", "entropy_from_logits"])
@pytest.mark.parametrize("keepdims", [False, True])
def test_native_reductions_equal_float32_rounded_once(isa, storage, func, keepdims):
    x = (np.random.default_rng(3).standard_normal((3, 150, 5000)) * 4).astype(storage)
    want = narrowed(getattr(lk, func)(x.astype(np.float32), keepdims=keepdims), storage)
    got = getattr(lk, func)(x, keepdims=keepdims)
    assert got.dtype == storage and got.shape == want.shape
    np.testing.assert_array_equal(got.view(np.uint16), want.view(np.uint16))


@pytest.mark.parametrize("options", [{}, {"label_smoothing": 0.1, "reduction": "sum"}])
def test_native_cross_entropy_equals_float32(isa, storage, options):
    rng = np.random.default_rng(4)
    z = (rng.standard_normal((300, 5000)) * 4).astype(storage)
    target = rng.integers(0, z.shape[1], z.shape[0])
    target[7] = -100
    z32 = z.astype(np.float32)
    loss32, grad32 = lk.cross_entropy_with_grad(z32, target, **options)
    want_grad = narrowed(grad32, storage).view(np.uint16)
    loss, grad = lk.cross_entropy_with_grad(z, target, **options)
    assert loss.dtype == storage and grad.dtype == storage
    # the loss is a double rounded once to the storage type, or via float32: 1 ulp apart
    eps = 2.0**-10 if storage == np.float16 else 2.0**-7
    np.testing.assert_allclose(float(loss), float(loss32), rtol=eps)
    np.testing.assert_array_equal(grad.view(np.uint16), want_grad)
    assert float(lk.cross_entropy(z, target, **options)) == float(loss)
    out = np.empty_like(z)
    lk.cross_entropy_with_grad(z, target, grad_out=out, **options)
    np.testing.assert_array_equal(out.view(np.uint16), want_grad)
    y = z.copy()
    lk.cross_entropy_with_grad(y, target, inplace=True, **options)
    np.testing.assert_array_equal(y.view(np.uint16), want_grad)


def within_one_step(got: np.ndarray, want: np.ndarray) -> None:
    """Both 16-bit arrays hold the same values to within one representable step (rows that
    take another kernel path, e.g. the short-row block edges, may round the other way)."""
    g = got.view(np.uint16).astype(np.int32)
    w = want.view(np.uint16).astype(np.int32)
    # the sign bit apart, neighbouring values differ by one in their bit patterns
    same_sign = (g >> 15) == (w >> 15)
    both_zero = ((g & 0x7FFF) == 0) & ((w & 0x7FFF) == 0)
    assert np.all(same_sign | both_zero)
    assert int(np.max(np.abs((g & 0x7FFF) - (w & 0x7FFF)))) <= 1


def long_row(storage) -> int:
    return lk._core.long_row_bytes // 4 * 2 + 5  # float32 bytes: the chunked path


@pytest.mark.parametrize(
    "func", ["softmax", "log_softmax", "sigmoid", "logsumexp", "entropy_from_logits"]
)
@pytest.mark.parametrize("rows", ["short", "long"])
def test_native_16bit_short_and_long_rows(isa, storage, func, rows):
    shape = (5000, 7) if rows == "short" else (3, long_row(storage))
    x = (np.random.default_rng(6).standard_normal(shape) * 4).astype(storage)
    x[1, 2] = np.inf
    want = narrowed(getattr(lk, func)(x.astype(np.float32)), storage)
    got = getattr(lk, func)(x)
    assert got.dtype == storage and got.shape == want.shape
    with np.errstate(invalid="ignore"):
        np.testing.assert_array_equal(
            np.isnan(got.astype(np.float32)), np.isnan(want.astype(np.float32))
        )
    finite = np.isfinite(want.astype(np.float32))
    within_one_step(got[finite], want[finite])


@pytest.mark.parametrize("rows", ["short", "long"])
def test_native_16bit_cross_entropy_short_and_long_rows(isa, storage, rows):
    shape = (5000, 7) if rows == "short" else (3, long_row(storage))
    rng = np.random.default_rng(7)
    z = (rng.standard_normal(shape) * 4).astype(storage)
    target = rng.integers(0, shape[1], shape[0])
    target[1] = -100
    loss32, grad32 = lk.cross_entropy_with_grad(z.astype(np.float32), target, reduction="none")
    loss, grad = lk.cross_entropy_with_grad(z, target, reduction="none")
    within_one_step(loss, narrowed(loss32, storage))
    within_one_step(grad, narrowed(grad32, storage))
    y = z.copy()
    lk.cross_entropy_with_grad(y, target, reduction="none", inplace=True)
    np.testing.assert_array_equal(y.view(np.uint16), grad.view(np.uint16))


# The ops whose 16-bit rows used to be converted as whole arrays now read and write them in
# their kernels: on C-ordered rows each result must still be the float32 result rounded once,
# and on other layouts (gathered rows, a non-last axis) within one 16-bit step of it.
ROW_OPS = {
    # the forward outputs are b, as given: the same 16-bit values on both sides
    "softmax_backward": lambda a, b: lk.softmax_backward(a, abs(b) / 4),
    "log_softmax_backward": lambda a, b: lk.log_softmax_backward(a, -abs(b)),
    "hardmax": lambda a, b: lk.hardmax(a),
    "softmax_where": lambda a, b: lk.softmax(a, where=b > 0),
    "log_softmax_where": lambda a, b: lk.log_softmax(a, where=b > -1),
    "entropy_where": lambda a, b: lk.entropy_from_logits(a, where=b > 0),
    "logsumexp_b": lambda a, b: lk.logsumexp(a, b=(b > 0).astype(a.dtype), axis=-1),
}


@pytest.mark.parametrize("op", sorted(ROW_OPS))
def test_native_16bit_row_ops_equal_float32_rounded_once(isa, storage, op):
    rng = np.random.default_rng(8)
    a = (rng.standard_normal((40, 700)) * 3).astype(storage)
    b = (rng.standard_normal((40, 700)) * 3).astype(storage)
    fn = ROW_OPS[op]
    want = narrowed(np.asarray(fn(a.astype(np.float32), b.astype(np.float32))), storage)
    got = np.asarray(fn(a, b))
    assert got.dtype == storage and got.shape == want.shape
    same_bits_or_both_nan(got, want)


@pytest.mark.parametrize("func", ["softmax", "log_softmax", "logsumexp", "entropy_from_logits"])
@pytest.mark.parametrize("layout", ["strided", "axis0", "fortran"])
def test_native_16bit_other_layouts(isa, storage, func, layout):
    x = (np.random.default_rng(9).standard_normal((300, 90)) * 4).astype(storage)
    if layout == "strided":
        x, axis = x[:, ::3], -1
    elif layout == "axis0":
        axis = 0
    else:
        x, axis = np.asfortranarray(x), -1
    want = narrowed(getattr(lk, func)(x.astype(np.float32), axis=axis), storage)
    got = getattr(lk, func)(x, axis=axis)
    assert got.dtype == storage and got.shape == want.shape
    within_one_step(got, want)


# The kernels of two inputs read and write 16-bit arrays too: each result must be the float32
# result of the widened inputs rounded once (NaN as NaN), and a total the same number.
PAIR_OPS = {
    "rel_entr": lambda a, b, c: lk.rel_entr(abs(a), abs(b)),
    "kl_div_elementwise": lambda a, b, c: lk.kl_div_elementwise(abs(a), abs(b)),
    "kl_div": lambda a, b, c: lk.kl_div(a, abs(b), reduction="none"),
    "kl_div_log_target": lambda a, b, c: lk.kl_div(a, b, reduction="none", log_target=True),
    "bce": lambda a, b, c: lk.binary_cross_entropy_with_logits(a, c, reduction="none"),
    "bce_with_grad": lambda a, b, c: lk.binary_cross_entropy_with_logits_with_grad(
        a, c, weight=abs(b[0]), pos_weight=abs(b[1]), label_smoothing=0.1, grad_output=-0.5
    ),
    "bce_none_with_grad": lambda a, b, c: lk.binary_cross_entropy_with_logits_with_grad(
        a, c, reduction="none", grad_output=b
    ),
    "kl_from_logits": lambda a, b, c: lk.kl_divergence_from_logits_with_grad(a, b),
    "js_from_logits_axis0": lambda a, b, c: lk.jensen_shannon_from_logits_with_grad(
        a, b, axis=0, beta=0.3, reduction="none"
    ),
}


@pytest.mark.parametrize("op", sorted(PAIR_OPS))
def test_native_16bit_pair_ops_equal_float32_rounded_once(isa, storage, op, monkeypatch):
    rng = np.random.default_rng(10)
    a = (rng.standard_normal((40, 700)) * 3).astype(storage)
    b = (rng.standard_normal((40, 700)) * 3).astype(storage)
    c = rng.uniform(size=(40, 700)).astype(storage)
    a[3, :4] = [np.inf, -np.inf, np.nan, 0]
    b[5, :3] = [0, np.inf, np.nan]
    fn = PAIR_OPS[op]
    want = fn(a.astype(np.float32), b.astype(np.float32), c.astype(np.float32))
    # the kernels get the 16-bit arrays themselves, not float32 copies
    seen: list[np.dtype] = []
    for name in ("binary", "binary_cross_entropy", "divergence"):
        real = getattr(lk._core, name)

        def spy(*args: object, real: object = real) -> object:
            seen.extend(v.dtype for v in args if isinstance(v, np.ndarray))
            return real(*args)  # type: ignore[operator]

        monkeypatch.setattr(lk._core, name, spy)
    got = fn(a, b, c)
    assert seen and np.dtype(np.float32) not in seen
    pairs = zip(got, want, strict=True) if isinstance(got, tuple) else [(got, want)]
    for g, w in pairs:
        g, w = np.asarray(g), np.asarray(w)
        assert g.dtype == storage and g.shape == w.shape
        if w.ndim == 0:  # a total: the same double rounded to the storage type, not via float32
            np.testing.assert_allclose(float(g), float(w), rtol=2.0**-7)
        else:
            same_bits_or_both_nan(g, narrowed(w, storage))
