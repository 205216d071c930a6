"""The native per-row statistics behind ``logitkit eval``, row by row against float64 NumPy,
on every ISA and storage type, with the special rows and the threads."""

from __future__ import annotations

import numpy as np
import pytest

from logitkit import _core
from logitkit._eval import row_statistics
from logitkit._runtime import current_isa_index

FLOATS = ("lse", "loss", "entropy", "brier")
EXACT = ("max", "argmax", "rank", "finite")


def storage_dtypes() -> list[np.dtype]:
    dtypes = [np.dtype(np.float32), np.dtype(np.float64), np.dtype(np.float16)]
    try:
        import ml_dtypes
    except ImportError:
        return dtypes
    return [*dtypes, np.dtype(ml_dtypes.bfloat16)]


DTYPES = storage_dtypes()


def reference(z: np.ndarray, t: np.ndarray) -> dict[str, np.ndarray]:
    """Every statistic in float64 from the values as stored, row by row, with the special
    rows' rules: a row whose maximum is not finite has logsumexp's lse (NaN with a NaN, +inf
    with +inf, -inf when all are -inf) and NaN loss, entropy and Brier term; max and argmax
    as NumPy's (the first NaN wins); -inf entries have probability 0."""
    z = np.asarray(z, dtype=np.float64)
    rows, C = z.shape
    out: dict[str, np.ndarray] = {k: np.full(rows, np.nan) for k in FLOATS}
    out["max"] = z.max(axis=1)
    out["argmax"] = z.argmax(axis=1)
    zt = z[np.arange(rows), t]
    before = np.arange(C)[None, :] < t[:, None]
    out["rank"] = (z > zt[:, None]).sum(1) + ((z == zt[:, None]) & before).sum(1)
    out["finite"] = np.isfinite(z).all(axis=1)
    for r in range(rows):
        x, label = z[r], int(t[r])
        m = out["max"][r]
        if np.isnan(m):
            continue
        if not np.isfinite(m):
            out["lse"][r] = m
            continue
        e = np.exp(x - m)
        at_max = np.count_nonzero(x == m)
        rest = e[x != m].sum()
        total = at_max + rest
        log_sum = np.log(at_max) + np.log1p(rest / at_max)
        out["lse"][r] = m + log_sum
        out["loss"][r] = (m - x[label]) + log_sum
        with np.errstate(invalid="ignore"):
            gaps = np.where(e > 0, e * (m - x), 0.0)
        out["entropy"][r] = log_sum + gaps.sum() / total
        p = e / total
        p_minus_1 = np.expm1((x[label] - m) - log_sum)
        out["brier"][r] = p_minus_1**2 + np.sum(np.delete(p, label) ** 2)
    return out


def assert_rows_match(got, want, z: np.ndarray, what: str = "") -> None:
    for key in EXACT:
        np.testing.assert_array_equal(getattr(got, key), want[key], err_msg=f"{key} {what}")
    wide = z.dtype == np.float64
    eps = np.finfo(np.float64 if wide else np.float32).eps
    # The compute type's arithmetic against float64: a few ulps of the sums; lse and loss,
    # sums of the max m and a log, also relative to |m|. Each exponential exp(z - m) is
    # formed from z - m rounded in the compute type, which makes it off by up to |z - m| / 2
    # of its ulps: when the entropy or the Brier term is tiny (one class takes nearly all
    # the mass) such far-off terms make up all of it. In float32, exp(z - m) underflows
    # below 1e-38, an absolute error far below anything a mean over rows could show.
    rtol = 1e-12 if wide else 5e-7
    atol = 0.0 if wide else 1e-35
    zf = z.astype(np.float64)
    with np.errstate(invalid="ignore"):
        spread = np.where(np.isfinite(zf), want["max"][:, None] - zf, 0.0)
    far = np.minimum(np.nan_to_num(spread, nan=0.0, posinf=0.0).max(axis=1), 1e3)
    for key in FLOATS:
        g, w = getattr(got, key), want[key]
        np.testing.assert_array_equal(np.isnan(g), np.isnan(w), err_msg=f"{key} NaN {what}")
        ok = ~np.isnan(w)
        if key in ("lse", "loss"):
            bound = atol + rtol * (np.abs(w[ok]) + np.abs(want["max"][ok]))
        else:
            bound = atol + (rtol + 2 * eps * far[ok]) * np.abs(w[ok])
        with np.errstate(invalid="ignore"):
            err = np.where(g[ok] == w[ok], 0.0, np.abs(g[ok] - w[ok]))
        bad = ~(err <= bound)
        assert not bad.any(), (
            f"{key} {what}: rows {np.flatnonzero(ok)[bad]}: got {g[ok][bad]}, want {w[ok][bad]}"
        )


def as_storage(z64: np.ndarray, dtype: np.dtype) -> np.ndarray:
    return z64.astype(dtype)


def special_rows(C: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Rows that exercise the rules: ties, confident rows (p_t within 1e-8 of 1, where
    1 - p_t cancels), and non-finite entries of every kind, on the label and elsewhere."""
    rows, labels = [], []

    def add(row: np.ndarray, label: int) -> None:
        rows.append(row)
        labels.append(label % C)

    base = rng.standard_normal(C)
    ties = np.round(rng.uniform(-2, 2, C))
    for label in (0, C // 2, C - 1):
        add(ties, label)  # the label tied with entries before and after it
    top = int(np.argmax(ties))
    add(ties, top)
    confident = np.full(C, -20.0)
    confident[C // 3] = 0.0  # p_t = 1 - (C - 1) e^-20
    add(confident, C // 3)
    add(confident, C // 3 + 1)
    add(np.zeros(C), C - 1)  # all tied: rank C - 1, argmax 0
    if C >= 2:
        for value in (np.nan, np.inf, -np.inf):
            for where in (0, C - 1):
                row = base.copy()
                row[where] = value
                add(row, where)  # on the label
                add(row, where + 1)  # elsewhere
        two = base.copy()
        two[[0, C - 1]] = np.inf
        add(two, 1)
        mixed = base.copy()
        mixed[0], mixed[C - 1] = np.nan, np.inf
        add(mixed, C // 2)
        late_nan = base.copy()
        late_nan[C - 1] = np.nan
        late_nan[0] = 50.0  # a larger entry before the NaN: argmax is still the NaN
        add(late_nan, 0)
    add(np.full(C, -np.inf), 0)
    return np.array(rows), np.array(labels)


SIZES = (1, 2, 3, 7, 15, 16, 17, 31, 32, 33, 63, 64, 65, 100, 257, 1000, 4099)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_rows_match_float64(isa, dtype):
    rng = np.random.default_rng(1)
    for C in SIZES:
        normal = rng.standard_normal((6, C)) * np.array([[0.1], [1], [3], [10], [30], [100]])
        special, special_t = special_rows(C, rng)
        z64 = np.concatenate([normal, special])
        z = as_storage(z64, dtype)
        t = np.concatenate([rng.integers(0, C, 6), special_t]).astype(np.int64)
        got = row_statistics(z, t)
        assert_rows_match(got, reference(z, t), z, f"{isa} {dtype} C={C}")


def test_confident_row_keeps_the_brier_precision(isa):
    """p_t = 1 - 9 e^-20 (about 1 - 2e-8): the Brier term is about 4e-16, far below float32's
    rounding of p_t, and must still come out to float32 precision (relative)."""
    z = np.full((1, 10), -20.0, dtype=np.float32)
    z[0, 4] = 0
    t = np.array([4])
    got = row_statistics(z, t)
    pt_minus_1 = np.expm1(-np.log1p(9 * np.exp(-20.0)))
    want = pt_minus_1**2 + 9 * (np.exp(-20.0) / (1 + 9 * np.exp(-20.0))) ** 2
    assert got.brier[0] == pytest.approx(want, rel=1e-6)
    assert got.loss[0] == pytest.approx(np.log1p(9 * np.exp(-20.0)), rel=1e-6)
    assert got.rank[0] == 0 and got.argmax[0] == 4


def test_long_rows_and_the_label_at_either_end(isa):
    rng = np.random.default_rng(2)
    C = 40000  # longer than the statistics' blocks; not a multiple of any vector width
    z = np.round(rng.standard_normal((4, C)), 1).astype(np.float32)  # many ties
    t = np.array([0, C - 1, int(np.argmax(z[2])), C // 2])
    assert_rows_match(row_statistics(z, t), reference(z, t), z, isa)


def test_16_bit_rows_equal_their_float32_widening(isa):
    """The 16-bit kernels read the stored values and compute in float32: the same figures
    as float32 rows holding the widened values, bit for bit."""
    rng = np.random.default_rng(3)
    t = rng.integers(0, 333, 50)
    for dtype in DTYPES:
        if dtype.itemsize != 2:
            continue
        z = (3 * rng.standard_normal((50, 333))).astype(dtype)
        a, b = row_statistics(z, t), row_statistics(z.astype(np.float32), t)
        for got, want in zip(a, b, strict=True):
            np.testing.assert_array_equal(got, want)


def test_results_do_not_depend_on_the_thread_count(isa):
    rng = np.random.default_rng(4)
    z = (4 * rng.standard_normal((300, 1500))).astype(np.float32)
    z[::7, 3] = z[::7, 5]  # ties
    t = rng.integers(0, 1500, 300)
    runs = [row_statistics(z, t, threads) for threads in (1, 2, 3, 8)]
    for other in runs[1:]:
        for got, want in zip(other, runs[0], strict=True):
            np.testing.assert_array_equal(got, want)


def outputs(rows: int) -> list[np.ndarray]:
    floats = [np.empty(rows) for _ in range(5)]
    return [*floats, np.empty(rows, np.int64), np.empty(rows, np.int64), np.empty(rows, bool)]


def test_the_binding_refuses_bad_arrays():
    z = np.zeros((4, 5), dtype=np.float32)
    t = np.zeros(4, dtype=np.int64)
    isa = current_isa_index()

    def call(z=z, t=t, outs=None):
        _core.eval_rows(z, t, *(outs if outs is not None else outputs(4)), isa, 1)

    call()
    with pytest.raises(TypeError, match=r"eval_rows\(\): logits must be"):
        call(z=z.astype(np.int32))
    with pytest.raises(ValueError, match="C-contiguous"):
        call(z=np.zeros((5, 4), dtype=np.float32).T)
    with pytest.raises(ValueError, match="C-contiguous"):
        call(z=np.zeros(20, dtype=np.float32))
    with pytest.raises(TypeError, match="target must have dtype int64"):
        call(t=t.astype(np.int32))
    with pytest.raises(ValueError, match=r"target must be contiguous .* one entry per row \(4\)"):
        call(t=t[:3])
    with pytest.raises(IndexError, match="target 5 in row 2 is out of range for 5 classes"):
        call(t=np.array([0, 1, 5, 2]))
    with pytest.raises(IndexError, match="target -1 in row 0"):
        call(t=np.array([-1, 1, 2, 2]))
    bad = outputs(4)
    bad[0] = np.empty(4, np.float32)
    with pytest.raises(TypeError, match="lse must have dtype float64"):
        call(outs=bad)
    bad = outputs(4)
    bad[7] = np.empty(4, np.uint8)
    with pytest.raises(TypeError, match="finite must have dtype bool"):
        call(outs=bad)
    bad = outputs(4)
    bad[2].flags.writeable = False
    with pytest.raises(ValueError, match="loss must be writeable"):
        call(outs=bad)
    with pytest.raises(ValueError, match="no classes"):
        call(z=np.zeros((4, 0), dtype=np.float32))
    # no rows: nothing to do, and nothing to complain about
    _core.eval_rows(np.zeros((0, 5), np.float32), np.zeros(0, np.int64), *outputs(0), isa, 1)
