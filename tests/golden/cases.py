"""The golden cases: every public numeric function of logitkit over a fixed grid of inputs.

``cases()`` yields ``(case_id, fn)`` pairs, ``fn()`` returning the function's result, and
``digest`` turns a result into a SHA-256 hex string. ``make_golden.py`` records the digests
and ``tests/test_golden.py`` recomputes them from this one list, so a case is recorded and
checked under the same id.

Ids read ``[storage16/]<function>/<dtype>/<layout>[/<options>][/t<threads>]``: the
``storage16/`` section holds the float16 and bfloat16 cases, and a function with a
``threads`` argument has a case for 1 and for 2 threads (which must hash the same).

Inputs come from a fixed seed and from NumPy alone (probabilities and log-probabilities
included), never from logitkit, so a change in the kernels cannot change its own inputs.
They are read-only: a case that writes in place copies its input first, and outputs start
filled with a sentinel, so that an entry a kernel fails to write shows as a change rather
than as whatever the memory held.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import math
import struct
import warnings
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import ml_dtypes
import numpy as np

import logitkit as lk

SEED = 20240917
THREADS = (1, 2)

DTYPES = {"f32": np.dtype(np.float32), "f64": np.dtype(np.float64)}
STORAGE16 = {"f16": np.dtype(np.float16), "bf16": np.dtype(ml_dtypes.bfloat16)}
_ALL_DTYPES = {**DTYPES, **STORAGE16}

Case = tuple[str, Callable[[], Any]]

# ---- hashing -----------------------------------------------------------------------------


def _canonical_nan(a: np.ndarray) -> np.ndarray:
    """a with every NaN replaced by one quiet NaN. A NaN's sign and payload come from which
    operand of a commutative operation the compiler put first; no result promises them."""
    if a.dtype.kind != "f" and a.dtype.name != "bfloat16":
        return a
    nan = np.isnan(a)
    if not nan.any():
        return a
    a = a.copy()
    a[nan] = np.nan
    return a


def _feed(h: Any, obj: Any) -> None:
    # Every leaf carries its type, dtype and shape: a result that keeps its bytes but changes
    # its dtype, shape or kind (a 0-d array becoming a scalar) is a change.
    if obj is None:
        h.update(b"none;")
    elif isinstance(obj, np.ndarray):
        h.update(f"array {obj.dtype.name} {obj.dtype.str} {obj.shape};".encode())
        h.update(_canonical_nan(obj).tobytes(order="C"))
    elif isinstance(obj, np.generic):
        kind = obj.dtype.kind
        if kind in "biu":
            h.update(f"scalar {obj.dtype.name} {int(obj)};".encode())
        else:
            value = float(obj)
            bits = struct.pack("<d", math.nan if math.isnan(value) else value).hex()
            h.update(f"scalar {obj.dtype.name} {bits};".encode())
    elif isinstance(obj, bool):
        h.update(f"bool {obj};".encode())
    elif isinstance(obj, int):
        h.update(f"int {obj};".encode())
    elif isinstance(obj, float):
        value = math.nan if math.isnan(obj) else obj
        h.update(f"float {struct.pack('<d', value).hex()};".encode())
    elif isinstance(obj, np.dtype):
        h.update(f"dtype {obj.name};".encode())
    elif dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        fields = dataclasses.fields(obj)
        h.update(f"{type(obj).__name__} {len(fields)};".encode())
        for f in fields:
            h.update(f"{f.name}=".encode())
            _feed(h, getattr(obj, f.name))
    elif isinstance(obj, (tuple, list)):
        h.update(f"{type(obj).__name__} {len(obj)};".encode())
        for item in obj:
            _feed(h, item)
    else:
        raise TypeError(f"no digest for a result of type {type(obj).__name__}")


def digest(result: Any) -> str:
    """SHA-256 of a result: arrays as C-order bytes after a dtype and shape header, scalars
    as the bits of their float64 value, tuples and dataclasses item by item."""
    h = hashlib.sha256()
    _feed(h, result)
    return h.hexdigest()


def run(fn: Callable[[], Any]) -> str:
    """The digest of fn()'s result. The special values make NumPy warn (overflow in a
    cast, inf - inf) inside and around the library; the warnings are no part of a result."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        with np.errstate(all="ignore"):
            return digest(fn())


# ---- inputs ------------------------------------------------------------------------------

_REGISTRY: dict[str, np.ndarray] = {}


def inputs_digest() -> str:
    """SHA-256 of every input generated so far: when it differs from the recorded one the
    inputs changed (NumPy's random streams or casts), not logitkit."""
    h = hashlib.sha256()
    for key in sorted(_REGISTRY):
        h.update(key.encode())
        _feed(h, _REGISTRY[key])
    return h.hexdigest()


def numpy_fingerprint() -> str:
    """SHA-256 of NumPy's float64 transcendentals and its BLAS on fixed inputs.

    These make some inputs (the probabilities) and finish some results (the partial
    merges, the fused linear layer's products), and their last bits depend on the CPU:
    NumPy has AVX-512 loops for float64 exp and log where other CPUs call libm, and
    OpenBLAS picks its kernels per CPU. Machines that agree here agree on every digest;
    each such kind of machine has its own digests file.
    """
    rng = np.random.default_rng([SEED, 1])
    x = rng.uniform(-40.0, 40.0, 4096)
    u = rng.uniform(0.0, 1.0, 4096)
    a = rng.standard_normal((64, 256)).astype(np.float32)
    b = rng.standard_normal((256, 48)).astype(np.float32)
    h = hashlib.sha256()
    for value in (np.exp(x), np.log(u), np.log1p(u), np.expm1(x / 40), 10.0 ** (x / 2)):
        _feed(h, value)
    _feed(h, a @ b)
    _feed(h, a.astype(np.float64) @ b.astype(np.float64))
    return h.hexdigest()


def golden_files() -> list[Path]:
    """The recorded digests, one file per kind of machine (see numpy_fingerprint)."""
    return sorted(Path(__file__).resolve().parent.glob("digests*.json"))


def matching_golden(files: dict[str, dict[str, Any]]) -> str | None:
    """The name of the file recorded on a machine like this one: the file with this
    machine's NumPy fingerprint; else one recorded before fingerprints were (the AVX-512
    machine's digests.json), preferably with the same inputs (known once every case has
    run). A file found on the fingerprint alone still reports changed inputs (new cases)."""
    fingerprint = numpy_fingerprint()
    for name, golden in files.items():
        if golden.get("fingerprint") == fingerprint:
            return name
    unmarked = [name for name, golden in files.items() if "fingerprint" not in golden]
    inputs = inputs_digest()
    for name in unmarked:
        if files[name]["inputs"] == inputs:
            return name
    return unmarked[0] if unmarked else None


def _rng(*key: Any) -> np.random.Generator:
    return np.random.default_rng([SEED, zlib.crc32(repr(key).encode())])


def _frozen(key: tuple[Any, ...], a: np.ndarray) -> np.ndarray:
    a.flags.writeable = False
    _REGISTRY[repr(key)] = a
    return a


def _to(values: np.ndarray, dt: str) -> np.ndarray:
    with np.errstate(over="ignore", under="ignore", invalid="ignore"):
        return values.astype(_ALL_DTYPES[dt])


def _finfo(dt: str) -> Any:
    return ml_dtypes.finfo(_ALL_DTYPES[dt])


N_SPECIAL_ROWS = 16


def _special_rows(rng: np.random.Generator, n: int, dt: str) -> np.ndarray:
    """One row per special case: -inf rows, +inf and ties at +inf, NaN, ties at the max,
    values near the dtype's largest, subnormals, a dominant entry, constants."""
    fi = _finfo(dt)
    big, tiny = float(fi.max), float(fi.smallest_subnormal)
    base = rng.standard_normal(n) * 3
    rows = np.tile(base, (N_SPECIAL_ROWS, 1))
    rows[1] = -np.inf
    rows[2, n // 2] = np.inf
    rows[3, [0, n - 1]] = np.inf
    rows[4, n // 3] = np.nan
    rows[5, 0], rows[5, n - 1] = np.inf, np.nan
    rows[6, [0, n // 2, n - 1]] = base.max() + 1.0
    rows[7] = base / 8 * big
    rows[7, 0] = big
    rows[8] = -big * rng.uniform(0.5, 1.0, n)
    rows[9] = tiny * rng.integers(0, 4, n)
    rows[10, ::2] = -np.inf
    rows[11] = -40.0
    rows[11, n // 2] = 40.0
    rows[12, 0], rows[12, n - 1] = -np.inf, np.inf
    rows[13] = 2.5
    rows[14] = -np.inf
    rows[14, n // 2] = np.nan
    rows[15] = base + 1e4
    return rows


@functools.cache
def data(kind: str, shape: tuple[int, ...], dt: str, tag: str = "") -> np.ndarray:
    """A read-only input of ``kind``, ``shape`` and dtype ``dt``; the same values (before
    the cast) for every dtype, except where the dtype's range is the point."""
    key = (kind, shape, tag)
    rng = _rng(*key)
    if kind == "normal":
        values = rng.standard_normal(shape) * 3
    elif kind == "unit":
        values = rng.uniform(0.0, 1.0, shape)
    elif kind == "positive":
        values = rng.uniform(0.0, 2.0, shape)
        values.flat[::13] = 0.0
    elif kind == "weights":  # logsumexp's b: negative, zero and positive
        values = rng.uniform(-0.5, 2.0, shape)
        values.flat[::7] = 0.0
    elif kind == "special":  # shape (n,): N_SPECIAL_ROWS rows of length n
        (n,) = shape
        values = _special_rows(rng, n, dt)
        return _frozen((*key, dt), _to(values, dt))
    elif kind == "wide":  # logits of spread 25: many exponentials below the normal range
        values = rng.standard_normal(shape) * 25
    elif kind == "long-special":  # shape (rows, n) with rows >= 5
        values = rng.standard_normal(shape) * 3
        n = shape[1]
        values[0, n - n // 10] = np.inf
        values[1, n // 3] = np.nan
        values[2] = -np.inf
        values[3, [5, n // 2, n - 5]] = values[3].max() + 1.0
        values[4, ::3] = -np.inf
        values[4, n // 2 :] = -50.0
    elif kind == "elementwise":  # shape (n,): the special values, then a sweep
        fi = _finfo(dt)
        big, tiny, eps = float(fi.max), float(fi.smallest_subnormal), float(fi.eps)
        small = float(fi.tiny)
        specials = [0.0, -0.0, tiny, -tiny, 3 * tiny, small, -small, eps, -eps, 0.25]
        specials += [0.5 - eps / 2, 0.5, 0.5 + eps, 1 - eps / 2, 1.0, 1 + eps, 2.0, -1.0, -2.0]
        specials += [10.0, -10.0, 17.0, -17.0, 20.0, -20.0, 36.8, -36.8, 40.0, -40.0, 88.7]
        specials += [-88.7, 103.9, -103.9, 709.8, -709.8, 745.2, -745.2, 800.0, -800.0]
        specials += [1e30, -1e30, big / 2, -big / 2, big, -big, np.inf, -np.inf, np.nan]
        sweep = np.linspace(-60.0, 60.0, 1201)
        mags = np.logspace(-45, 38, 300)
        values = np.concatenate([specials, sweep, mags, -mags, rng.uniform(0, 1, 200)])
        values = values[: shape[0]] if shape[0] <= values.size else np.resize(values, shape)
        return _frozen((*key, dt), _to(values, dt))
    elif kind == "probs-special":  # shape (m,): probabilities and their edge values
        fi = _finfo(dt)
        tiny, eps = float(fi.smallest_subnormal), float(fi.eps)
        values = np.array(
            [0.0, tiny, 5 * tiny, float(fi.tiny), 1e-30, eps, 0.1, 0.25, 0.5 - eps / 2, 0.5]
            + [0.5 + eps, 0.75, 1 - eps, 1.0, 1.5, 2.0, 1e30, np.inf, -1.0, -0.0, np.nan]
        )
        return _frozen((*key, dt), _to(values, dt))
    else:
        raise ValueError(kind)
    return _frozen((*key, dt), _to(np.asarray(values), dt))


@functools.cache
def targets(rows_shape: tuple[int, ...], n: int, tag: str = "") -> np.ndarray:
    """Class indices with about one in ten ignored (-100); some rows target class 3."""
    rng = _rng("targets", rows_shape, n, tag)
    t = rng.integers(0, n, rows_shape)
    flat = t.reshape(-1)
    flat[::10] = -100
    flat[5::17] = min(3, n - 1)
    return _frozen(("targets", rows_shape, n, tag), t)


@functools.cache
def mask(shape: tuple[int, ...], tag: str = "") -> np.ndarray:
    """A boolean mask, about 70% True, with the first index of axis 0 all False."""
    rng = _rng("mask", shape, tag)
    m = rng.random(shape) < 0.7
    if m.ndim:
        m[0] = False
    return _frozen(("mask", shape, tag), m)


def _np_log_softmax(x: np.ndarray, axis: int) -> np.ndarray:
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        z = x.astype(np.float64)
        m = np.max(z, axis=axis, keepdims=True)
        m = np.where(np.isfinite(m), m, 0.0)
        return z - m - np.log(np.sum(np.exp(z - m), axis=axis, keepdims=True))


@functools.cache
def probs(kind: str, shape: tuple[int, ...], axis: int, dt: str, tag: str = "") -> np.ndarray:
    """softmax (or log_softmax) along ``axis`` of a normal input, computed by NumPy."""
    lp = _np_log_softmax(data("normal", shape, "f64", "probs" + tag), axis)
    values = lp if kind == "log" else np.exp(lp)
    return _frozen(("probs", kind, shape, axis, dt, tag), _to(values, dt))


def _sentinel(shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    return np.full(shape, -1234.5, dtype=dtype)


# ---- layouts of rows ---------------------------------------------------------------------


def _normal(shape: tuple[int, ...], axis: int) -> Callable[[str], tuple[np.ndarray, int]]:
    return lambda dt: (data("normal", shape, dt), axis)


def _special(n: int, tiles: int = 1) -> Callable[[str], tuple[np.ndarray, int]]:
    def build(dt: str) -> tuple[np.ndarray, int]:
        x = data("special", (n,), dt)
        return (np.tile(x, (tiles, 1)) if tiles > 1 else x), -1

    return build


def _strided(dt: str) -> tuple[np.ndarray, int]:
    return data("normal", (80, 400), dt)[1::2, ::2], -1


def _transposed(dt: str) -> tuple[np.ndarray, int]:
    return data("normal", (300, 50), dt).T, -1


def _reversed(dt: str) -> tuple[np.ndarray, int]:
    return data("normal", (20, 100), dt)[::-1, ::-1], -1


def _fortran(dt: str) -> tuple[np.ndarray, int]:
    return np.asfortranarray(data("normal", (30, 70), dt)), -1


def _special_columns(dt: str) -> tuple[np.ndarray, int]:
    return np.ascontiguousarray(data("special", (16,), dt).T), 0


def _wide(dt: str) -> tuple[np.ndarray, int]:
    return data("wide", (40, 1000), dt), -1


def _long_special(dt: str) -> tuple[np.ndarray, int]:
    return data("long-special", (5, 50000), dt), -1


# name -> builder(dt) -> (x, axis). Lengths around the kernels' vector widths and block
# sizes; many short rows (the transposed-block path, threaded from 32768 elements); rows
# longer than the long-row limit (40960 float32, 20480 float64), one of them shared between
# threads; reductions over a non-last axis and over strided, transposed, reversed and
# Fortran-ordered rows (the column kernels and the gathered rows).
LAYOUTS: dict[str, Callable[[str], tuple[np.ndarray, int]]] = {
    "n1": _normal((33, 1), -1),
    "n3": _normal((33, 3), -1),
    "n7": _normal((33, 7), -1),
    "n16": _normal((33, 16), -1),
    "n17": _normal((33, 17), -1),
    "n100": _normal((40, 100), -1),
    "n1000": _normal((12, 1000), -1),
    "n40000": _normal((3, 40000), -1),
    "long300000": _normal((1, 300000), -1),
    "short600x1": _normal((600, 1), -1),
    "short600x5": _normal((600, 5), -1),
    "short600x16": _normal((600, 16), -1),
    "short7000x7": _normal((7000, 7), -1),
    "axis0-50x300": _normal((50, 300), 0),
    "axis0-20x2100": _normal((20, 2100), 0),
    "axis1-4x37x20": _normal((4, 37, 20), 1),
    "last-6x5x33": _normal((6, 5, 33), -1),
    "strided-40x200": _strided,
    "transposed-50x300": _transposed,
    "reversed-20x100": _reversed,
    "fortran-30x70": _fortran,
    "special-n1": _special(1),
    "special-n3": _special(3),
    "special-n7": _special(7),
    "special-n16": _special(16),
    "special-n17": _special(17),
    "special-n100": _special(100),
    "special-short-n5": _special(5, 20),
    "special-short-n16": _special(16, 20),
    "special-axis0-n16": _special_columns,
    "special-long-5x50000": _long_special,
    "wide-40x1000": _wide,
}

# Where the options run: CORE_LAYOUTS takes every option of every function (one layout per
# kernel path: rows, short rows, columns, gathered rows, and the special values on rows and
# short rows); OPTION_LAYOUTS adds the cheaper options on more shapes.
CORE_LAYOUTS = [
    "n17",
    "short600x16",
    "axis0-50x300",
    "strided-40x200",
    "special-n17",
    "special-short-n16",
]
# Of those, the ones the cross-entropy reduces by columns (short rows, a non-last class
# axis) when no option needs the rows path: there the options that keep that path.
_CE_COLUMN_LAYOUTS = ["short600x16", "axis0-50x300", "special-short-n16"]
OPTION_LAYOUTS = [
    "n1",
    "n7",
    "n17",
    "n100",
    "short600x16",
    "axis0-50x300",
    "axis1-4x37x20",
    "strided-40x200",
    "special-n17",
    "special-short-n16",
]
INPLACE_LAYOUTS = [
    "n7",
    "n100",
    "n40000",
    "long300000",
    "short600x5",
    "axis0-50x300",
    "special-n17",
    "special-long-5x50000",
]
STORAGE16_LAYOUTS = [
    "n7",
    "n100",
    "long300000",
    "short600x16",
    "axis0-50x300",
    "strided-40x200",
    "special-n17",
    "special-short-n16",
]


def _rows_shape(x: np.ndarray, axis: int) -> tuple[int, ...]:
    ax = axis % x.ndim
    return x.shape[:ax] + x.shape[ax + 1 :]


def _inplace_copy(x: np.ndarray) -> np.ndarray:
    """A writeable copy with x's memory order (C or Fortran)."""
    return x.copy(order="K")


# ---- the case list -----------------------------------------------------------------------


class _Cases:
    def __init__(self) -> None:
        self.items: list[Case] = []
        self.ids: set[str] = set()

    def add(self, case_id: str, fn: Callable[..., Any], threaded: bool = True) -> None:
        """fn(threads) when threaded (one case per thread count), else fn()."""
        if threaded:
            for t in THREADS:
                self._add(f"{case_id}/t{t}", functools.partial(fn, t))
        else:
            self._add(case_id, fn)

    def _add(self, case_id: str, fn: Callable[[], Any]) -> None:
        if case_id in self.ids:
            raise ValueError(f"duplicate case id {case_id}")
        self.ids.add(case_id)
        self.items.append((case_id, fn))


def _softmax_family(c: _Cases, pre: str, dts: dict[str, np.dtype], layouts: list[str]) -> None:
    for name in ("softmax", "log_softmax", "hardmax"):
        f = getattr(lk, name)
        for dt in dts:
            for lay in layouts:
                build = LAYOUTS[lay]
                base = f"{pre}{name}/{dt}/{lay}"
                c.add(base, lambda t, f=f, b=build, dt=dt: f(b(dt)[0], axis=b(dt)[1], threads=t))
                if lay in OPTION_LAYOUTS or lay in ("long300000", "n1000"):

                    def with_out(t: int, f: Any = f, b: Any = build, dt: str = dt) -> Any:
                        x, axis = b(dt)
                        out = _sentinel(x.shape, x.dtype)
                        return f(x, axis=axis, out=out, threads=t)

                    c.add(f"{base}/out", with_out)
                if lay in INPLACE_LAYOUTS or (pre and lay in ("n100", "long300000")):

                    def inplace(t: int, f: Any = f, b: Any = build, dt: str = dt) -> Any:
                        x, axis = b(dt)
                        y = _inplace_copy(x)
                        f(y, axis=axis, out=y, threads=t)
                        return y

                    c.add(f"{base}/inplace", inplace)
                if name != "hardmax" and lay in OPTION_LAYOUTS + ["n1000", "long300000"]:

                    def where(t: int, f: Any = f, b: Any = build, dt: str = dt) -> Any:
                        x, axis = b(dt)
                        return f(x, axis=axis, where=mask(x.shape), threads=t)

                    c.add(f"{base}/where", where)
            if pre:
                continue
            x3 = functools.partial(data, "normal", (6, 5, 33), dt)
            c.add(
                f"{name}/{dt}/last-6x5x33/axis-none", lambda t, f=f, x3=x3: f(x3(), None, threads=t)
            )
            c.add(
                f"{name}/{dt}/last-6x5x33/axis-0-2",
                lambda t, f=f, x3=x3: f(x3(), (0, 2), threads=t),
            )
            c.add(
                f"{name}/{dt}/last-6x5x33/axis-1-2",
                lambda t, f=f, x3=x3: f(x3(), (1, 2), threads=t),
            )

            def strided_out(t: int, f: Any = f, dt: str = dt) -> Any:
                x = data("normal", (40, 100), dt)
                out = _sentinel((40, 200), x.dtype)
                f(x, out=out[:, ::2], threads=t)
                return out

            c.add(f"{name}/{dt}/n100/out-strided", strided_out)
            if name != "hardmax":

                def where_row(t: int, f: Any = f, dt: str = dt) -> Any:
                    # a mask along the class axis only, broadcast over the rows
                    x = data("special", (17,), dt)
                    return f(x, where=mask((17,), "row"), threads=t)

                c.add(f"{name}/{dt}/special-n17/where-broadcast", where_row)


def _logsumexp(c: _Cases, pre: str, dts: dict[str, np.dtype], layouts: list[str]) -> None:
    lse = lk.logsumexp
    for dt in dts:
        for lay in layouts:
            build = LAYOUTS[lay]
            base = f"{pre}logsumexp/{dt}/{lay}"
            c.add(base, lambda t, b=build, dt=dt: lse(b(dt)[0], axis=b(dt)[1], threads=t))
            if lay not in OPTION_LAYOUTS + ["n1000", "n40000", "long300000"]:
                continue
            in_core = lay in CORE_LAYOUTS

            def run(t: int, b: Any = build, dt: str = dt, **kw: Any) -> Any:
                x, axis = b(dt)
                if kw.pop("weights", False):
                    kw["b"] = data("weights", x.shape, dt)
                if kw.pop("masked", False):
                    kw["where"] = mask(x.shape)
                if kw.pop("out", False):
                    shape = _rows_shape(x, axis)
                    if kw.get("keepdims"):
                        shape = tuple(1 if d == axis % x.ndim else s for d, s in enumerate(x.shape))
                    out = _sentinel(shape, x.dtype)
                    kw["out"] = (out, _sentinel(shape, x.dtype)) if kw.get("return_sign") else out
                    lse(x, axis=axis, threads=t, **kw)
                    return kw["out"]
                return lse(x, axis=axis, threads=t, **kw)

            options: dict[str, dict[str, Any]] = {
                "keepdims": {"keepdims": True},
                "b": {"weights": True},
                "b-sign": {"weights": True, "return_sign": True},
                "sign": {"return_sign": True},
                "where": {"masked": True},
                "where-b-sign": {"masked": True, "weights": True, "return_sign": True},
                "out": {"out": True},
                "out-keepdims": {"out": True, "keepdims": True},
                "out-b-sign": {"out": True, "weights": True, "return_sign": True},
            }
            if pre:
                options = {k: options[k] for k in ("b", "sign", "where", "out")}
            elif not in_core:
                options = {k: options[k] for k in ("b-sign", "where", "out-keepdims")}
            for opt, kw in options.items():
                c.add(f"{base}/{opt}", functools.partial(run, **kw))
        if pre:
            continue
        x3 = functools.partial(data, "normal", (6, 5, 33), dt)
        c.add(f"logsumexp/{dt}/last-6x5x33/axis-none", lambda t, x3=x3: lse(x3(), None, threads=t))
        c.add(
            f"logsumexp/{dt}/last-6x5x33/axis-0-2-keepdims",
            lambda t, x3=x3: lse(x3(), (0, 2), keepdims=True, threads=t),
        )

        def b_broadcast(t: int, dt: str = dt) -> Any:
            x = data("special", (17,), dt)
            b = data("weights", (17,), dt, "row")
            return lse(x, b=b, return_sign=True, threads=t)

        c.add(f"logsumexp/{dt}/special-n17/b-broadcast-sign", b_broadcast)

        def b_cancel(t: int, dt: str = dt) -> Any:
            # weights that cancel exactly at the max and at +inf: sign 0 and NaN
            x = np.array(
                [[1.0, 1.0, 0.0], [np.inf, np.inf, 0.0], [2.0, -1.0, 2.0]], _ALL_DTYPES[dt]
            )
            b = np.array([[1.0, -1.0, 0.5], [1.0, -1.0, 1.0], [0.5, 3.0, -0.5]], _ALL_DTYPES[dt])
            return lse(x, b=b, return_sign=True, threads=t)

        c.add(f"logsumexp/{dt}/cancel/b-sign", b_cancel)
        c.add(f"logsumexp/{dt}/0d", lambda t, dt=dt: lse(np.array(2.5, _ALL_DTYPES[dt]), threads=t))


def _entropy_from_logits(c: _Cases, pre: str, dts: dict[str, np.dtype], layouts: list[str]) -> None:
    f = lk.entropy_from_logits
    for dt in dts:
        for lay in layouts:
            build = LAYOUTS[lay]
            base = f"{pre}entropy_from_logits/{dt}/{lay}"
            c.add(base, lambda t, b=build, dt=dt: f(b(dt)[0], axis=b(dt)[1], threads=t))
            if lay not in CORE_LAYOUTS:
                continue
            c.add(
                f"{base}/base2-keepdims",
                lambda t, b=build, dt=dt: f(b(dt)[0], b(dt)[1], base=2, keepdims=True, threads=t),
            )

            def where(t: int, b: Any = build, dt: str = dt) -> Any:
                x, axis = b(dt)
                return f(x, axis, base=10, where=mask(x.shape), threads=t)

            c.add(f"{base}/where-base10", where)


def _backward(c: _Cases, pre: str, dts: dict[str, np.dtype], layouts: list[str]) -> None:
    for name, kind in (("softmax_backward", "prob"), ("log_softmax_backward", "log")):
        f = getattr(lk, name)
        for dt in dts:
            for lay in layouts:
                build = LAYOUTS[lay]

                def run(
                    t: int,
                    b: Any = build,
                    dt: str = dt,
                    f: Any = f,
                    kind: str = kind,
                    mode: str = "",
                ) -> Any:
                    x, axis = b(dt)
                    # the layout's own values as the upstream gradient (specials included);
                    # y from NumPy, of the layout's shape
                    y = probs(kind, x.shape, axis, dt)
                    if mode == "transposed" and x.ndim == 2:
                        y = np.ascontiguousarray(y.T).T
                    if mode == "out":
                        out = _sentinel(x.shape, x.dtype)
                        return f(x, y, axis, out=out, threads=t)
                    if mode == "inplace":
                        g = _inplace_copy(x)
                        f(g, y, axis, out=g, threads=t)
                        return g
                    return f(x, y, axis, threads=t)

                base = f"{pre}{name}/{dt}/{lay}"
                c.add(base, run)
                if lay in CORE_LAYOUTS:
                    c.add(f"{base}/y-transposed", functools.partial(run, mode="transposed"))
                    c.add(f"{base}/out", functools.partial(run, mode="out"))
                if lay in INPLACE_LAYOUTS:
                    c.add(f"{base}/inplace", functools.partial(run, mode="inplace"))
    f = lk.logsumexp_backward
    for dt in dts:
        for lay in layouts:
            build = LAYOUTS[lay]

            def lse_back(
                t: int, b: Any = build, dt: str = dt, keepdims: bool = False, out: bool = False
            ) -> Any:
                x, axis = b(dt)
                gshape = _rows_shape(x, axis)
                if keepdims:
                    gshape = tuple(1 if d == axis % x.ndim else s for d, s in enumerate(x.shape))
                g = data("normal", gshape, dt, "lse-grad")
                if out:
                    o = _sentinel(x.shape, x.dtype)
                    return f(g, x, None, axis, keepdims, out=o, threads=t)
                return f(g, x, None, axis, keepdims, threads=t)

            base = f"{pre}logsumexp_backward/{dt}/{lay}"
            c.add(base, lse_back)
            if lay in CORE_LAYOUTS:
                c.add(f"{base}/keepdims", functools.partial(lse_back, keepdims=True))
                c.add(f"{base}/out", functools.partial(lse_back, out=True))
        if not pre:
            c.add(
                f"logsumexp_backward/{dt}/last-6x5x33/axis-none",
                lambda t, dt=dt: f(
                    np.array(1.5, _ALL_DTYPES[dt]),
                    data("normal", (6, 5, 33), dt),
                    None,
                    None,
                    threads=t,
                ),
            )


_CE_OPTIONS: dict[str, dict[str, Any]] = {
    "mean": {},
    "none": {"reduction": "none"},
    "sum": {"reduction": "sum"},
    "weight": {"class_weight": True},
    "ignore3": {"ignore_index": 3},
    "ls0.1": {"label_smoothing": 0.1},
    "ls0.2-megatron": {"label_smoothing": 0.2, "smoothing": "megatron"},
    "zloss": {"z_loss": 1e-3},
    "softcap30": {"softcap": 30.0},
    "softcap-huge": {"softcap": 1e39},
    "where": {"rows_where": True},
    "stats": {"return_stats": True},
    "soft": {"soft": True},
    "soft-ls-weight-none": {
        "soft": True,
        "label_smoothing": 0.1,
        "class_weight": True,
        "reduction": "none",
    },
    "all-none": {
        "class_weight": True,
        "label_smoothing": 0.1,
        "z_loss": 1e-4,
        "softcap": 15.0,
        "rows_where": True,
        "reduction": "none",
        "return_stats": True,
    },
    "soft-all-sum": {
        "soft": True,
        "class_weight": True,
        "z_loss": 1e-4,
        "softcap": 15.0,
        "rows_where": True,
        "reduction": "sum",
        "return_stats": True,
    },
}
_CE_GRAD_OPTIONS: dict[str, dict[str, Any]] = {
    "gout": {"grad_output": 0.5},
    "none-gout": {"reduction": "none", "grad_rows": True},
    "grad-out": {"grad_out": True},
    "inplace": {"inplace": True},
    "inplace-all-none": {"inplace": True, **_CE_OPTIONS["all-none"], "grad_rows": True},
}
_CE_LOSS_OPTIONS = [
    "none",
    "mean",
    "ls0.2-megatron",
    "softcap30",
    "softcap-huge",
    "stats",
    "soft",
    "all-none",
    "soft-all-sum",
]


def _ce_call(fn: Any, t: int, b: Any, dt: str, opts: dict[str, Any], nll: bool = False) -> Any:
    x, axis = b(dt)
    kw = dict(opts)
    n = x.shape[axis]
    rows_shape = _rows_shape(x, axis)
    if nll:
        x = probs("log", x.shape, axis, dt, "nll")
    if kw.pop("soft", False):
        target: np.ndarray = probs("prob", x.shape, axis, dt, "target")
    else:
        target = targets(rows_shape, n)
        if "ignore_index" in kw:
            # the placeholders of ignored rows take the chosen index
            target = np.where(target == -100, kw["ignore_index"], target)
    if kw.pop("class_weight", False):
        kw["weight"] = data("positive", (n,), dt, "class-weight")
    if kw.pop("rows_where", False):
        kw["where"] = mask(rows_shape, "rows")
    if kw.pop("grad_rows", False):
        kw["grad_output"] = data("normal", rows_shape, dt, "grad-rows")
    if kw.pop("grad_out", False):
        kw["grad_out"] = _sentinel(x.shape, x.dtype)
    if kw.get("inplace"):
        x = _inplace_copy(x)
    res = fn(x, target, axis=axis, threads=t, **kw)
    if kw.get("inplace"):
        return res, x
    return res


def _cross_entropy(c: _Cases, pre: str, dts: dict[str, np.dtype], layouts: list[str]) -> None:
    for dt in dts:
        for lay in layouts:
            build = LAYOUTS[lay]
            x0, axis0 = build(dt)
            n = x0.shape[axis0]
            # The loss alone and the loss with its gradient run different kernel code; the
            # reductions other than "none" only sum the rows' losses in NumPy.
            if pre and lay in OPTION_LAYOUTS:
                loss_options = ["none", "ls0.1", "stats", "soft", "all-none"]
                grad_options = ["mean", "none", "soft", "all-none"]
            elif pre:
                loss_options, grad_options = ["none"], ["mean"]
            elif lay in _CE_COLUMN_LAYOUTS:
                loss_options = ["none", "weight", "ignore3", "zloss", "where", "stats"]
                grad_options = ["mean", "none", "weight", "ignore3", "zloss", "where", "ls0.1"]
            elif lay in CORE_LAYOUTS:
                loss_options = list(_CE_LOSS_OPTIONS)
                grad_options = list(_CE_OPTIONS)
            elif lay in OPTION_LAYOUTS:
                loss_options = grad_options = ["none", "stats", "soft", "ls0.1", "all-none"]
            else:
                loss_options, grad_options = ["none"], ["mean"]
            for name, opts in (
                ("cross_entropy", loss_options),
                ("cross_entropy_with_grad", grad_options),
            ):
                fn = getattr(lk, name)
                for opt in opts:
                    kw = _CE_OPTIONS[opt]
                    if n < 2 and kw.get("smoothing") == "megatron":
                        continue
                    c.add(
                        f"{pre}{name}/{dt}/{lay}/{opt}",
                        functools.partial(_ce_call, fn, b=build, dt=dt, opts=kw),
                    )
            if lay in CORE_LAYOUTS or lay in INPLACE_LAYOUTS:
                grad_options_extra = _CE_GRAD_OPTIONS
                if pre:
                    grad_options_extra = {k: _CE_GRAD_OPTIONS[k] for k in ("gout", "inplace")}
                elif lay not in CORE_LAYOUTS or lay in _CE_COLUMN_LAYOUTS:
                    grad_options_extra = {k: _CE_GRAD_OPTIONS[k] for k in ("grad-out", "inplace")}
                for opt, kw in grad_options_extra.items():
                    c.add(
                        f"{pre}cross_entropy_with_grad/{dt}/{lay}/{opt}",
                        functools.partial(
                            _ce_call, lk.cross_entropy_with_grad, b=build, dt=dt, opts=kw
                        ),
                    )
            if lay in CORE_LAYOUTS:
                nll_options = ["mean", "none", "sum", "weight", "ignore3", "where", "soft"]
                for opt in nll_options if not pre else ["mean", "soft"]:
                    c.add(
                        f"{pre}nll_loss/{dt}/{lay}/{opt}",
                        functools.partial(
                            _ce_call, lk.nll_loss, b=build, dt=dt, opts=_CE_OPTIONS[opt], nll=True
                        ),
                    )


def _bce(c: _Cases, pre: str, dts: dict[str, np.dtype]) -> None:
    inputs: dict[str, Callable[[str], np.ndarray]] = {
        "50x7": lambda dt: data("normal", (50, 7), dt),
        "200x500": lambda dt: data("normal", (200, 500), dt),
        "special-n17": lambda dt: data("special", (17,), dt),
        "elementwise": lambda dt: data("elementwise", (2000,), dt)[:, None],
        "strided": lambda dt: data("normal", (60, 80), dt)[::2, ::3],
    }
    options: dict[str, dict[str, Any]] = {
        "mean": {},
        "sum": {"reduction": "sum"},
        "none": {"reduction": "none"},
        "soft": {"soft": True},
        "weight": {"w": True},
        "pos-weight": {"pw": True},
        "ls0.1-none": {"label_smoothing": 0.1, "reduction": "none"},
        "all-sum": {
            "soft": True,
            "w": True,
            "pw": True,
            "label_smoothing": 0.05,
            "reduction": "sum",
        },
    }
    grad_options: dict[str, dict[str, Any]] = {
        "gout": {"grad_output": -0.75},
        "none-gout": {"reduction": "none", "grad_rows": True},
        "all-none-gout": {
            "soft": True,
            "w": True,
            "pw": True,
            "label_smoothing": 0.05,
            "reduction": "none",
            "grad_rows": True,
        },
    }

    def run(t: int, fn: Any, get: Any, dt: str, kw: dict[str, Any]) -> Any:
        x = get(dt)
        kw = dict(kw)
        if kw.pop("soft", False):
            y = data("unit", x.shape, dt, "bce")
        else:
            y = (data("unit", x.shape, "f64", "bce") < 0.5).astype(x.dtype)
        if kw.pop("w", False):
            kw["weight"] = data("positive", x.shape[-1:], dt, "bce-w")
        if kw.pop("pw", False):
            kw["pos_weight"] = data("positive", x.shape[-1:], dt, "bce-pw")
        if kw.pop("grad_rows", False):
            kw["grad_output"] = data("normal", x.shape, dt, "bce-grad")
        return fn(x, y, threads=t, **kw)

    for dt in dts:
        for lay, get in inputs.items():
            for opt, kw in options.items():
                if (pre or lay in ("200x500", "strided")) and opt not in (
                    "mean",
                    "none",
                    "all-sum",
                ):
                    continue
                for name in (
                    "binary_cross_entropy_with_logits",
                    "binary_cross_entropy_with_logits_with_grad",
                ):
                    fn = getattr(lk, name)
                    c.add(
                        f"{pre}{name}/{dt}/{lay}/{opt}",
                        functools.partial(run, fn=fn, get=get, dt=dt, kw=kw),
                    )
            for opt, kw in grad_options.items():
                if (pre or lay in ("200x500", "strided")) and opt != "all-none-gout":
                    continue
                fn = lk.binary_cross_entropy_with_logits_with_grad
                c.add(
                    f"{pre}binary_cross_entropy_with_logits_with_grad/{dt}/{lay}/{opt}",
                    functools.partial(run, fn=fn, get=get, dt=dt, kw=kw),
                )


# The divergences copy their rows to C order first: the row length and the values matter,
# the layout only to the Python around the kernel.
_DIV_LAYOUTS = [
    "n1",
    "n3",
    "n17",
    "n100",
    "n1000",
    "n40000",
    "short600x16",
    "axis0-50x300",
    "axis1-4x37x20",
    "special-n17",
    "special-long-5x50000",
]
_DIV_OPTION_LAYOUTS = ["n17", "axis0-50x300", "special-n17"]


def _divergences(c: _Cases, pre: str, dts: dict[str, np.dtype], layouts: list[str]) -> None:
    def run(t: int, fn: Any, b: Any, dt: str, swap: bool, kw: dict[str, Any]) -> Any:
        x, axis = b(dt)
        other = data("normal", x.shape, dt, "q-logits")
        p, q = (other, x) if swap else (x, other)
        kw = dict(kw)
        rows_shape = _rows_shape(x, axis)
        if kw.pop("rows_where", False):
            kw["where"] = mask(rows_shape, "rows")
        if kw.pop("grad_rows", False):
            kw["grad_output"] = data("normal", rows_shape, dt, "div-grad")
        return fn(p, q, axis, threads=t, **kw)

    options: dict[str, dict[str, Any]] = {
        "none": {},
        "sum": {"reduction": "sum"},
        "mean-where": {"reduction": "mean", "rows_where": True},
        "batchmean": {"reduction": "batchmean"},
    }
    js_betas = {"beta0": 0.0, "beta0.1": 0.1, "beta0.5": 0.5, "beta1": 1.0}
    grad_options: dict[str, dict[str, Any]] = {
        "gout": {"reduction": "mean", "grad_output": 2.0},
        "none-gout-where": {"grad_rows": True, "rows_where": True},
    }
    for dt in dts:
        for lay in layouts:
            build = LAYOUTS[lay]
            opt_layout = lay in _DIV_OPTION_LAYOUTS
            for swap in (False, True):
                if swap and not lay.startswith("special"):
                    continue
                side = "/q-special" if swap else ""
                for name in ("kl_divergence_from_logits", "kl_divergence_from_logits_with_grad"):
                    fn = getattr(lk, name)
                    for opt, kw in options.items():
                        if opt != "none" and (not opt_layout or pre):
                            continue
                        c.add(
                            f"{pre}{name}/{dt}/{lay}{side}/{opt}",
                            functools.partial(run, fn=fn, b=build, dt=dt, swap=swap, kw=kw),
                        )
                for name in ("jensen_shannon_from_logits", "jensen_shannon_from_logits_with_grad"):
                    fn = getattr(lk, name)
                    for bname, beta in js_betas.items():
                        if bname != "beta0.5" and (not opt_layout or pre):
                            continue
                        c.add(
                            f"{pre}{name}/{dt}/{lay}{side}/{bname}",
                            functools.partial(
                                run, fn=fn, b=build, dt=dt, swap=swap, kw={"beta": beta}
                            ),
                        )
                    if opt_layout and not pre:
                        c.add(
                            f"{pre}{name}/{dt}/{lay}{side}/beta0.3-mean-where",
                            functools.partial(
                                run,
                                fn=fn,
                                b=build,
                                dt=dt,
                                swap=swap,
                                kw={"beta": 0.3, "reduction": "mean", "rows_where": True},
                            ),
                        )
                if not opt_layout or pre:
                    continue
                for name in (
                    "kl_divergence_from_logits_with_grad",
                    "jensen_shannon_from_logits_with_grad",
                ):
                    fn = getattr(lk, name)
                    for opt, kw in grad_options.items():
                        c.add(
                            f"{name}/{dt}/{lay}{side}/{opt}",
                            functools.partial(run, fn=fn, b=build, dt=dt, swap=swap, kw=kw),
                        )


_UNARY = ["sigmoid", "expit", "log_sigmoid", "log_expit", "softplus", "logit", "entr"]


def _elementwise(c: _Cases, pre: str, dts: dict[str, np.dtype]) -> None:
    inputs: dict[str, Callable[[str], Any]] = {
        "special": lambda dt: data("elementwise", (2000,), dt),
        "unit": lambda dt: data("unit", (997,), dt),
        "probs-special": lambda dt: data("probs-special", (21,), dt),
        "100000": lambda dt: data("normal", (100000,), dt),
        "fortran-60x70": lambda dt: np.asfortranarray(data("normal", (60, 70), dt)),
        "strided": lambda dt: data("elementwise", (2000,), dt)[::3],
        "2d-transposed": lambda dt: data("normal", (90, 40), dt).T,
        "0d": lambda dt: data("elementwise", (2000,), dt)[17].reshape(()).copy(),
        "scalar": lambda dt: data("elementwise", (2000,), dt)[17],
    }
    for name in _UNARY:
        f = getattr(lk, name)
        for dt in dts:
            for lay, get in inputs.items():
                c.add(f"{pre}{name}/{dt}/{lay}", lambda t, f=f, g=get, dt=dt: f(g(dt), threads=t))

            def out(t: int, f: Any = f, dt: str = dt, order: str = "C") -> Any:
                if order == "F":
                    x = np.asfortranarray(data("normal", (60, 70), dt))
                else:
                    x = data("elementwise", (2000,), dt)
                return f(x, out=_sentinel(x.shape, x.dtype), threads=t)

            def inplace(t: int, f: Any = f, dt: str = dt) -> Any:
                x = data("elementwise", (2000,), dt).copy()
                f(x, out=x, threads=t)
                return x

            c.add(f"{pre}{name}/{dt}/special/out", out)
            c.add(f"{pre}{name}/{dt}/fortran-60x70/out-c-order", functools.partial(out, order="F"))
            c.add(f"{pre}{name}/{dt}/special/inplace", inplace)
    for name in ("rel_entr", "kl_div_elementwise"):
        f = getattr(lk, name)
        for dt in dts:
            pairs: dict[str, Callable[[], tuple[Any, Any]]] = {
                "grid": lambda dt=dt: (
                    data("probs-special", (21,), dt)[:, None],
                    data("probs-special", (21,), dt)[None, :],
                ),
                "100000": lambda dt=dt: (
                    data("positive", (100000,), dt, "x"),
                    data("positive", (100000,), dt, "y"),
                ),
                "near-equal": lambda dt=dt: (
                    data("unit", (500,), dt, "ne"),
                    np.nextafter(data("unit", (500,), dt, "ne"), np.asarray(1, _ALL_DTYPES[dt]))
                    if dt in DTYPES
                    else data("unit", (500,), dt, "ne2"),
                ),
                "broadcast": lambda dt=dt: (
                    data("positive", (300, 1), dt, "bx"),
                    data("positive", (1, 200), dt, "by"),
                ),
            }
            for lay, get in pairs.items():
                c.add(f"{pre}{name}/{dt}/{lay}", lambda t, f=f, g=get: f(*g(), threads=t))

            def out(t: int, f: Any = f, dt: str = dt) -> Any:
                x, y = data("positive", (300, 1), dt, "bx"), data("positive", (1, 200), dt, "by")
                return f(x, y, out=_sentinel((300, 200), x.dtype), threads=t)

            c.add(f"{pre}{name}/{dt}/broadcast/out", out)
    for dt in dts:
        for lay, get in inputs.items():
            if lay in ("unit", "probs-special"):
                continue

            def sigmoid_backward(t: int, g: Any = get, dt: str = dt) -> Any:
                grad = g(dt)
                y = data("unit", np.shape(grad), dt, "sig-y")
                return lk.sigmoid_backward(grad, y, threads=t)

            c.add(f"{pre}sigmoid_backward/{dt}/{lay}", sigmoid_backward)
        c.add(
            f"{pre}sigmoid_backward/{dt}/special/out",
            lambda t, dt=dt: lk.sigmoid_backward(
                data("elementwise", (2000,), dt),
                data("unit", (2000,), dt, "sig-y"),
                out=_sentinel((2000,), _ALL_DTYPES[dt]),
                threads=t,
            ),
        )
        for reduction in ("none", "sum", "mean", "batchmean"):
            for log_target in (False, True):
                lt = "/log-target" if log_target else ""

                def kl_div(t: int, dt: str = dt, r: str = reduction, lt: bool = log_target) -> Any:
                    inp = probs("log", (40, 100), -1, dt, "kl-in")
                    tgt = probs("log" if lt else "prob", (40, 100), -1, dt, "kl-t")
                    return lk.kl_div(inp, tgt, reduction=r, log_target=lt, threads=t)

                c.add(f"{pre}kl_div/{dt}/40x100/{reduction}{lt}", kl_div)

            def kl_div_special(t: int, dt: str = dt, r: str = reduction) -> Any:
                grid = data("probs-special", (21,), dt)
                with np.errstate(divide="ignore", invalid="ignore"):
                    inp = np.log(grid.astype(np.float64)).astype(grid.dtype)
                return lk.kl_div(inp[:, None], grid[None, :], reduction=r, threads=t)

            c.add(f"{pre}kl_div/{dt}/grid/{reduction}", kl_div_special)
        for opt, kw in {
            "axis0": {},
            "axis-last-base2": {"axis": -1, "base": 2},
            "axis-none": {"axis": None},
            "keepdims": {"axis": 1, "keepdims": True},
        }.items():

            def entropy(t: int, dt: str = dt, kw: dict[str, Any] = kw, qk: bool = False) -> Any:
                pk = data("positive", (50, 30), dt, "pk")
                q = data("positive", (50, 30), dt, "qk") if qk else None
                return lk.entropy(pk, q, threads=t, **kw)

            c.add(f"{pre}entropy/{dt}/50x30/{opt}", entropy)
            c.add(f"{pre}entropy/{dt}/50x30/qk-{opt}", functools.partial(entropy, qk=True))
        c.add(
            f"{pre}entropy/{dt}/probs-special",
            lambda t, dt=dt: lk.entropy(data("probs-special", (21,), dt), threads=t),
        )


def _shards(x: np.ndarray, axis: int, k: int = 3) -> list[tuple[int, np.ndarray]]:
    n = x.shape[axis]
    edges = [n * i // k for i in range(k + 1)]
    return [(edges[i], np.take(x, np.arange(edges[i], edges[i + 1]), axis=axis)) for i in range(k)]


def _partials(c: _Cases, pre: str, dts: dict[str, np.dtype], layouts: list[str]) -> None:
    def lse(b: Any, dt: str) -> Any:
        x, axis = b(dt)
        parts = [lk.partial_logsumexp(s, axis) for _, s in _shards(x, axis)]
        merged = lk.merge_partials(*parts)
        other = parts[2].merge(parts[0].merge(parts[1]))
        return parts, merged, other, merged.finalize(), other.finalize()

    def ent(b: Any, dt: str) -> Any:
        x, axis = b(dt)
        parts = [lk.partial_entropy(s, axis) for _, s in _shards(x, axis)]
        merged = lk.merge_partials(*parts)
        other = parts[2].merge(parts[0].merge(parts[1]))
        return parts, merged, other, merged.finalize(), merged.finalize(base=2), other.finalize()

    def ce(b: Any, dt: str, **kw: Any) -> Any:
        x, axis = b(dt)
        n = x.shape[axis]
        t = targets(_rows_shape(x, axis), n)
        w = data("positive", (n,), dt, "class-weight") if kw.pop("weight", False) else None
        parts = []
        for offset, s in _shards(x, axis):
            ws = None if w is None else w[offset : offset + s.shape[axis]]
            parts.append(
                lk.partial_cross_entropy(s, t, class_offset=offset, weight=ws, axis=axis, **kw)
            )
        merged = lk.merge_partials(*parts)
        other = parts[2].merge(parts[0].merge(parts[1]))
        finals: list[Any] = [merged.finalize(), other.finalize(), merged.correct()]
        finals += [merged.finalize(reduction="none"), merged.finalize(reduction="sum")]
        finals.append(merged.row_losses())
        if kw.get("label_smoothing"):
            finals.append(merged.finalize(label_smoothing=0.1))
            finals.append(merged.finalize(label_smoothing=0.2, smoothing="megatron", z_loss=1e-3))
            finals.append(merged.row_losses(label_smoothing=0.1, z_loss=1e-4))
        return parts, merged, other, finals

    ce_options: dict[str, dict[str, Any]] = {
        "plain": {},
        "weight-ls": {"weight": True, "label_smoothing": True},
        "softcap-ls": {"softcap": 20.0, "label_smoothing": True},
    }
    for dt in dts:
        for lay in layouts:
            build = LAYOUTS[lay]
            x0, axis0 = build(dt)
            if x0.shape[axis0] < 3:
                continue
            c.add(
                f"{pre}partial_logsumexp/{dt}/{lay}",
                functools.partial(lse, build, dt),
                threaded=False,
            )
            c.add(
                f"{pre}partial_entropy/{dt}/{lay}",
                functools.partial(ent, build, dt),
                threaded=False,
            )
            for opt, kw in ce_options.items():
                if pre and opt not in ("plain", "softcap-ls"):
                    continue
                c.add(
                    f"{pre}partial_cross_entropy/{dt}/{lay}/{opt}",
                    functools.partial(ce, build, dt, **kw),
                    threaded=False,
                )


def _linear(c: _Cases, pre: str, dts: dict[str, np.dtype]) -> None:
    # Small enough that NumPy's BLAS multiplies on one thread: above about a million
    # multiply-adds it wakes its threads, which on a loaded machine cost 20 ms a product.
    n_rows, hidden, vocab = 64, 16, 300

    def run(t: int, fn: Any, dt: str, kw: dict[str, Any]) -> Any:
        kw = dict(kw)
        shape = (4, 16, hidden) if kw.pop("three_d", False) else (n_rows, hidden)
        h = data("normal", shape, dt, "lin-h")
        w = (data("normal", (vocab, hidden), "f64", "lin-w") * 0.2).astype(h.dtype)
        tgt = targets(shape[:-1], vocab, "lin")
        if "ignore_index" in kw:
            tgt = np.where(tgt == -100, kw["ignore_index"], tgt)
        if kw.pop("bias", False):
            kw["bias"] = data("normal", (vocab,), dt, "lin-b")
        if kw.pop("cw", False):
            kw["class_weight"] = data("positive", (vocab,), dt, "lin-cw")
        if kw.pop("grad_rows", False):
            kw["grad_output"] = data("normal", shape[:-1], dt, "lin-grad")
        return fn(h, w, tgt, threads=t, **kw)

    options: dict[str, dict[str, Any]] = {
        "mean": {},
        "chunks32": {"chunk_size": 32},
        "vocab128": {"chunk_size": 32, "vocab_chunk_size": 128},
        "bias-none": {"bias": True, "reduction": "none"},
        "cw-ls-zloss-sum": {"cw": True, "label_smoothing": 0.1, "z_loss": 1e-3, "reduction": "sum"},
        "softcap-vocab128": {"softcap": 10.0, "vocab_chunk_size": 128, "bias": True},
        "all-vocab96-none": {
            "cw": True,
            "bias": True,
            "label_smoothing": 0.1,
            "z_loss": 1e-4,
            "softcap": 10.0,
            "chunk_size": 40,
            "vocab_chunk_size": 96,
            "reduction": "none",
            "ignore_index": 3,
        },
        "3d": {"three_d": True},
    }
    grad_options: dict[str, dict[str, Any]] = {
        "gout": {"grad_output": 0.25, "bias": True},
        "none-gout-vocab128": {"reduction": "none", "grad_rows": True, "vocab_chunk_size": 128},
        "no-weight-grad": {"compute_weight_grad": False, "bias": True},
    }
    for dt in dts:
        for opt, kw in options.items():
            if pre and opt not in ("mean", "all-vocab96-none"):
                continue
            for name in ("linear_cross_entropy", "linear_cross_entropy_with_grad"):
                fn = getattr(lk, name)
                c.add(
                    f"{pre}{name}/{dt}/64x16x300/{opt}", functools.partial(run, fn=fn, dt=dt, kw=kw)
                )
        for opt, kw in grad_options.items():
            if pre and opt != "gout":
                continue
            fn = lk.linear_cross_entropy_with_grad
            c.add(
                f"{pre}linear_cross_entropy_with_grad/{dt}/64x16x300/{opt}",
                functools.partial(run, fn=fn, dt=dt, kw=kw),
            )


def _section(c: _Cases, pre: str, dts: dict[str, np.dtype], layouts: list[str]) -> None:
    _softmax_family(c, pre, dts, layouts)
    _logsumexp(c, pre, dts, layouts)
    _entropy_from_logits(c, pre, dts, layouts)
    _backward(c, pre, dts, layouts)
    _cross_entropy(c, pre, dts, layouts)
    _bce(c, pre, dts)
    _divergences(c, pre, dts, [lay for lay in layouts if lay in _DIV_LAYOUTS])
    _elementwise(c, pre, dts)
    _partials(c, pre, dts, [lay for lay in layouts if lay in OPTION_LAYOUTS or lay == "n1000"])
    _linear(c, pre, dts)


@functools.cache
def _all_cases() -> tuple[Case, ...]:
    c = _Cases()
    _section(c, "", DTYPES, list(LAYOUTS))
    _section(c, "storage16/", STORAGE16, STORAGE16_LAYOUTS)
    return tuple(c.items)


def cases() -> Iterator[Case]:
    """Every golden case, as (case_id, fn) with fn() the result; ids are unique."""
    yield from _all_cases()


def thread_group(case_id: str) -> str | None:
    """The id without its thread count, for the cases that have one."""
    head, _, tail = case_id.rpartition("/")
    return head if tail in {f"t{t}" for t in THREADS} else None
