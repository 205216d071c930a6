"""Coverage-guided fuzzing of the logitkit Python API against logitkit.reference.

Each input is decoded into a function, an array (shape, dtype, memory layout, special
values) and options, valid or not. Acceptable outcomes:

* a result that agrees with logitkit.reference (same dtype and shape, same NaN and
  infinity positions, finite values within a tolerance of the dtype's precision), or
* TypeError, ValueError or IndexError (numpy's AxisError included) whose message starts
  with the function's name followed by "()".

Anything else is a finding and raises: another exception type, a message that does not
name the function, a RuntimeWarning, a disagreement with the reference, or an input array
modified by a call that did not ask to write into it.

Run for a bounded time (libFuzzer options pass through)::

    python tests/fuzz/fuzz_api.py -max_total_time=60 -rss_limit_mb=4096

and replay a crash file with ``python tests/fuzz/fuzz_api.py crash-<sha1>``.
"""

from __future__ import annotations

import collections
import ctypes
import ctypes.util
import os
import re
import sys
import warnings
from typing import Any

import atheris
import numpy as np

with atheris.instrument_imports():
    import logitkit as lk
    from logitkit import reference as ref

try:
    import ml_dtypes

    BFLOAT16: Any = np.dtype(ml_dtypes.bfloat16)
except ImportError:  # optional
    BFLOAT16 = None

AxisError: type[Exception] = getattr(np, "exceptions", np).AxisError
ACCEPTED_ERRORS = (TypeError, ValueError, IndexError)
ISAS = lk.available_isas()

FLOATS = [np.dtype(np.float32), np.dtype(np.float64), np.dtype(np.float16)]
if BFLOAT16 is not None:
    FLOATS.append(BFLOAT16)
# integer and bool inputs compute in float64; the others are invalid input dtypes
OTHER_DTYPES = [np.dtype(np.int32), np.dtype(np.bool_), np.dtype(np.complex64), np.dtype("U3")]

SPECIALS = [np.inf, -np.inf, np.nan, 3e38, -3e38, 1e308, -1e308, 6e4, 1e-40, 5e-324, 0.0, -0.0]

ALIASES = {"expit": "sigmoid", "log_expit": "log_sigmoid"}
OUTCOMES: collections.Counter[str] = collections.Counter()


# LOGITKIT_FUZZ_REPORT=disagreements: a result that disagrees with the reference, or a
# RuntimeWarning, is printed with its reproducer and counted instead of ending the run. What
# the search reaches changes with every change to the code, so a run gated on it would fail
# on whichever old edge case it happened to reach; broken contracts (a crash, another
# exception type, a message not naming the function, a modified input) still end it.
REPORT_DISAGREEMENTS = os.environ.get("LOGITKIT_FUZZ_REPORT") == "disagreements"


def reported(kind: str, func: str, text: str) -> str:
    """Count a reported finding; print the first of each kind and function in full."""
    key = f"reported {kind}: {func}"
    if OUTCOMES[key] == 0:
        print(f"\nreported {kind} (the run goes on): {text}", flush=True)
    return key


class Finding(AssertionError):
    """A behaviour the API promises not to have."""


# -------------------------------------------------------------------------- decoding


class Decoder:
    """Draws typed choices from the fuzz bytes (zeros once they run out)."""

    def __init__(self, data: bytes) -> None:
        self.fdp = atheris.FuzzedDataProvider(data)

    def integer(self, lo: int, hi: int) -> int:
        return int(self.fdp.ConsumeIntInRange(lo, hi))

    def pick(self, options: list[Any]) -> Any:
        return options[self.integer(0, len(options) - 1)]

    def chance(self, one_in: int) -> bool:
        return self.integer(0, one_in - 1) == 0

    def real(self, lo: float, hi: float) -> float:
        return float(self.fdp.ConsumeFloatInRange(lo, hi))

    def shape(self, min_dims: int = 0, max_dims: int = 3) -> tuple[int, ...]:
        ndim = self.integer(min_dims, max_dims)
        sides = [self.integer(0, 4) for _ in range(ndim)]
        if ndim:
            sides[-1] = self.pick([self.integer(0, 9), self.integer(0, 40)])
        return tuple(sides)

    def values(self, shape: tuple[int, ...], dtype: np.dtype, lo: float, hi: float) -> np.ndarray:
        n = int(np.prod(shape))
        ties = self.chance(4)
        a = np.empty(n, np.float64)
        for i in range(n):
            if self.chance(12):
                a[i] = self.pick(SPECIALS)
            elif ties:
                a[i] = float(self.integer(-2, 2)) if lo < 0 else float(self.integer(0, 2)) / 2
            else:
                a[i] = self.real(lo, hi)
        with np.errstate(all="ignore"):
            if dtype.kind == "U":
                return a.astype(str).astype(dtype).reshape(shape)
            return a.astype(dtype).reshape(shape)

    def layout(self, a: np.ndarray) -> np.ndarray:
        """The same values in a drawn memory layout."""
        kind = self.integer(0, 5)
        if a.ndim == 0 or kind <= 1:
            return a
        ax = self.integer(0, a.ndim - 1)
        if kind == 2:
            return np.asfortranarray(a)
        if kind == 3:
            return np.flip(np.flip(a, ax).copy(), ax)
        if kind == 4:
            big = np.repeat(a, 2, axis=ax)
            index = [slice(None)] * a.ndim
            index[ax] = slice(None, None, 2)
            return big[tuple(index)]
        perm = list(range(a.ndim))[::-1]
        transposed: np.ndarray = np.ascontiguousarray(a.transpose(perm)).transpose(perm)
        return transposed

    def array(
        self,
        shape: tuple[int, ...] | None = None,
        dtype: np.dtype | None = None,
        lo: float = -20.0,
        hi: float = 20.0,
    ) -> np.ndarray:
        shape = self.shape() if shape is None else shape
        if dtype is None:
            dtype = self.pick(OTHER_DTYPES) if self.chance(25) else self.pick(FLOATS)
        return self.layout(self.values(shape, dtype, lo, hi))

    def axis(self, ndim: int, tuples: bool = True) -> Any:
        choice = self.integer(0, 19)
        if choice < 12:
            return self.integer(-max(ndim, 1), max(ndim, 1) - 1)
        if choice == 12:
            return None
        if choice == 13 and tuples:
            return tuple(
                self.integer(-max(ndim, 1), max(ndim, 1) - 1) for _ in range(self.integer(1, 3))
            )
        if choice == 14 and tuples:
            return ()
        # invalid: out of range, bool, float, string
        return self.pick([ndim, -ndim - 1, True, 1.5, "0", [0]])

    def reduction(self, extra: tuple[str, ...] = ()) -> Any:
        if self.chance(20):
            return self.pick(["avg", None, 0, "MEAN"])
        return self.pick(["mean", "sum", "none", *extra])

    def threads(self) -> Any:
        if self.chance(20):
            return self.pick([0, -1, 2.5, "2", True])
        return self.pick([None, 1, 2, 3])

    def maybe_bad(self, good: Any, bad: list[Any]) -> Any:
        return self.pick(bad) if self.chance(15) else good

    def bshape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        """A shape that broadcasts to `shape` (or, rarely, one that does not)."""
        if self.chance(20) and shape:
            return (*shape[:-1], shape[-1] + 1)
        return tuple(d if self.integer(0, 1) else 1 for d in shape)


# ------------------------------------------------------------------------------ cases


def row_shape(shape: tuple[int, ...], axis: Any) -> tuple[int, ...]:
    if not isinstance(axis, int) or isinstance(axis, bool) or not shape:
        return ()
    if not -len(shape) <= axis < len(shape):
        return ()
    return tuple(d for i, d in enumerate(shape) if i != axis % len(shape))


def build(d: Decoder) -> tuple[str, tuple[Any, ...], dict[str, Any], Any]:
    """A function name, its arguments, and which argument (if any) may be written."""
    func = d.pick(FUNCS)
    kw: dict[str, Any] = {}
    writes: Any = None
    if func in ("softmax", "log_softmax", "hardmax"):
        x = d.array()
        kw["axis"] = d.axis(x.ndim)
        if func != "hardmax" and d.chance(3):
            kw["where"] = d.array(d.bshape(x.shape), np.dtype(np.bool_))
        if d.chance(4):
            writes = kw["out"] = x if d.integer(0, 1) else np.empty_like(x, order="F")
        args: tuple[Any, ...] = (x,)
    elif func == "logsumexp":
        x = d.array()
        kw["axis"] = d.axis(x.ndim)
        if d.chance(2):
            kw["b"] = d.array(d.bshape(x.shape), lo=0.0, hi=3.0)
        if d.chance(4):
            kw["where"] = d.array(d.bshape(x.shape), np.dtype(np.bool_))
        kw["keepdims"] = d.maybe_bad(bool(d.integer(0, 1)), [1, "yes", None])
        kw["return_sign"] = bool(d.integer(0, 1))
        args = (x,)
    elif func in ("sigmoid", "expit", "log_sigmoid", "log_expit", "softplus", "logit", "entr"):
        lo, hi = (0.0, 1.0) if func in ("logit", "entr") else (-30.0, 30.0)
        x = d.array(lo=lo, hi=hi)
        if d.chance(4):
            writes = kw["out"] = x if d.integer(0, 1) else np.empty_like(x)
        args = (x,)
    elif func in ("rel_entr", "kl_div_elementwise", "sigmoid_backward"):
        x = d.array(lo=0.0, hi=3.0)
        shape = x.shape if func == "sigmoid_backward" and d.integer(0, 3) else d.bshape(x.shape)
        args = (x, d.array(shape, lo=0.0, hi=1.0))
    elif func == "entropy":
        pk = d.array(lo=0.0, hi=4.0)
        qk = d.array(pk.shape, lo=0.0, hi=4.0) if d.chance(2) else None
        base = d.pick([None, 2.0, 10.0, np.e, 1.0, 0.0, -2.0, "2"])
        args = (pk, qk, base, d.axis(pk.ndim))
        kw["keepdims"] = bool(d.integer(0, 1))
    elif func == "entropy_from_logits":
        z = d.array()
        kw["axis"] = d.axis(z.ndim, tuples=False)
        kw["base"] = d.pick([None, 2.0, 10.0, 1.0, -1.0])
        kw["keepdims"] = bool(d.integer(0, 1))
        if d.chance(3):
            kw["where"] = d.array(d.bshape(z.shape), np.dtype(np.bool_))
        args = (z,)
    elif func in ("cross_entropy", "cross_entropy_with_grad", "nll_loss"):
        z = d.array(d.shape(min_dims=1))
        axis = d.axis(z.ndim, tuples=False)
        rows = row_shape(z.shape, axis)
        c = (
            z.shape[axis]
            if rows or z.ndim == 1 and isinstance(axis, int) and -1 <= axis <= 0
            else 1
        )
        if func != "nll_loss" and d.chance(3):
            target = d.array(z.shape, lo=0.0, hi=1.0)
        else:
            hi = max(c - 1, 0) + (1 if d.chance(15) else 0)  # rarely out of range
            t = np.array([d.pick([d.integer(0, hi), -100, -1]) for _ in range(int(np.prod(rows)))])
            target = t.reshape(rows).astype(d.pick([np.int64, np.int32, np.uint8, np.bool_]))
        kw["axis"] = axis
        kw["reduction"] = d.reduction()
        if d.chance(3):
            kw["weight"] = d.array((c,) if d.integer(0, 5) else (c + 1,), lo=0.0, hi=2.0)
        if d.chance(4) and rows:
            kw["where"] = d.array(d.bshape(rows), np.dtype(np.bool_))
        kw["ignore_index"] = d.maybe_bad(-100, [-1, 0, 1.5, "x"])
        if func != "nll_loss":
            kw["label_smoothing"] = d.pick([0.0, 0.1, 1.0, -0.1, 1.5, float("nan")])
            kw["smoothing"] = d.maybe_bad("pytorch", ["megatron", "other"])
            kw["z_loss"] = d.pick([0.0, 1e-3, -1.0])
            kw["softcap"] = d.pick([None, 30.0, 1.0, 0.0, -1.0])
            kw["return_stats"] = bool(d.integer(0, 1))
        if func == "cross_entropy_with_grad" and d.chance(3):
            kw["grad_output"] = d.pick([2.0, -1.0, np.float32(0.5), "1"])
        args = (z, target)
    elif func in ("binary_cross_entropy_with_logits", "binary_cross_entropy_with_logits_with_grad"):
        x = d.array()
        y = d.array(x.shape if d.integer(0, 9) else d.bshape(x.shape), lo=0.0, hi=1.0)
        if d.chance(3):
            kw["weight"] = d.array(d.bshape(x.shape), lo=0.0, hi=2.0)
        if d.chance(3) and x.ndim:
            kw["pos_weight"] = d.array(x.shape[-1:], lo=0.0, hi=3.0)
        kw["label_smoothing"] = d.pick([0.0, 0.1, -0.5])
        kw["reduction"] = d.reduction()
        if func.endswith("grad") and d.chance(3):
            kw["grad_output"] = d.pick([2.0, np.float64(-1.0)])
        args = (x, y)
    elif func == "kl_div":
        shape = d.shape()
        inp = d.array(shape, lo=-10.0, hi=0.0)
        log_target = d.maybe_bad(bool(d.integer(0, 1)), [1, "no"])
        lo = -10.0 if log_target is True else 0.0
        target = d.array(d.bshape(shape), lo=lo, hi=0.0 if log_target is True else 1.0)
        args = (inp, target, d.reduction(("batchmean",)), log_target)
    elif func in (
        "kl_divergence_from_logits",
        "kl_divergence_from_logits_with_grad",
        "jensen_shannon_from_logits",
        "jensen_shannon_from_logits_with_grad",
    ):
        p = d.array(d.shape(min_dims=1))
        axis = d.axis(p.ndim, tuples=False)
        q = d.array(p.shape if d.integer(0, 9) else d.bshape(p.shape))
        kw["reduction"] = d.reduction(("batchmean",))
        if func.startswith("jensen"):
            kw["beta"] = d.pick([0.5, 0.0, 1.0, 0.2, -0.1, 1.5])
        rows = row_shape(p.shape, axis)
        if d.chance(4) and rows:
            kw["where"] = d.array(d.bshape(rows), np.dtype(np.bool_))
        if func.endswith("grad") and d.chance(3):
            kw["grad_output"] = d.pick([2.0, -1.0])
        args = (p, q, axis)
    elif func in ("softmax_backward", "log_softmax_backward"):
        x = d.array(lo=-10.0, hi=10.0)
        axis = d.axis(x.ndim)
        try:
            y = (ref.softmax if func == "softmax_backward" else ref.log_softmax)(x, axis=axis)
        except Exception:  # noqa: BLE001  (the call below meets the same invalid axis)
            y = x
        g = d.array(np.shape(y), lo=-2.0, hi=2.0)
        if d.chance(4):
            try:
                out_dtype = np.result_type(g, y)
            except TypeError:  # no common dtype (a str input): the call must reject it
                out_dtype = np.dtype(np.float64)
            writes = kw["out"] = np.empty(np.shape(y), out_dtype)
        args = (g, y, axis)
    elif func == "logsumexp_backward":
        x = d.array(lo=-10.0, hi=10.0)
        axis = d.axis(x.ndim)
        keepdims = bool(d.integer(0, 1))
        try:
            g_shape = np.shape(ref.logsumexp(x, axis, keepdims=keepdims))
        except Exception:  # noqa: BLE001
            g_shape = ()
        g = d.array(g_shape, lo=-2.0, hi=2.0)
        lse = None
        if d.chance(3):
            try:
                lse = np.asarray(ref.logsumexp(x, axis, keepdims=keepdims))
            except Exception:  # noqa: BLE001
                lse = np.zeros(g_shape)
        args = (g, x, lse, axis, keepdims)
    else:
        raise AssertionError(func)
    if d.chance(3):
        kw["threads"] = d.threads()
    return func, args, kw, writes


FUNCS = [
    "softmax",
    "log_softmax",
    "logsumexp",
    "hardmax",
    "sigmoid",
    "expit",
    "log_sigmoid",
    "log_expit",
    "softplus",
    "logit",
    "entr",
    "rel_entr",
    "kl_div_elementwise",
    "sigmoid_backward",
    "entropy",
    "entropy_from_logits",
    "cross_entropy",
    "cross_entropy_with_grad",
    "nll_loss",
    "binary_cross_entropy_with_logits",
    "binary_cross_entropy_with_logits_with_grad",
    "kl_div",
    "kl_divergence_from_logits",
    "kl_divergence_from_logits_with_grad",
    "jensen_shannon_from_logits",
    "jensen_shannon_from_logits_with_grad",
    "softmax_backward",
    "log_softmax_backward",
    "logsumexp_backward",
]


# ------------------------------------------------------------------------- comparison


def flat(result: Any) -> list[np.ndarray]:
    if isinstance(result, tuple):
        return [a for part in result for a in flat(part)]
    return [np.asarray(result)]


def input_scale(args: tuple[Any, ...], kw: dict[str, Any]) -> float:
    """(largest finite magnitude among the numeric inputs + 1) * (elements + 1)."""
    big, n = 1.0, 1
    for a in [*args, *kw.values()]:
        # integer targets count too: a loss may cancel at their scale
        if isinstance(a, np.ndarray) and (a.dtype.kind in "fiub" or a.dtype == BFLOAT16):
            v = np.asarray(a, np.float64)
            fin = np.abs(v[np.isfinite(v)])
            if fin.size:
                big = max(big, float(fin.max()) + 1)
            n = max(n, v.size + 1)
    return big * n


def agree(got: Any, want: Any, scale: float) -> str | None:
    """None when the results agree, else what differs."""
    g_all, w_all = flat(got), flat(want)
    if len(g_all) != len(w_all):
        return f"{len(g_all)} outputs, reference {len(w_all)}"
    for i, (g, w) in enumerate(zip(g_all, w_all, strict=True)):
        if g.shape != w.shape or g.dtype != w.dtype:
            return f"output {i}: {g.dtype}{g.shape}, reference {w.dtype}{w.shape}"
        if w.dtype.kind in "biu":
            if not np.array_equal(g, w):
                return f"output {i}: {g!r} != reference {w!r}"
            continue
        g64, w64 = g.astype(np.float64), w.astype(np.float64)
        if not np.array_equal(np.isnan(g64), np.isnan(w64)):
            return f"output {i}: NaN at {np.argwhere(np.isnan(g64) != np.isnan(w64))[:3].tolist()}"
        fin = np.isfinite(w64)
        if not np.array_equal(g64[~fin & ~np.isnan(w64)], w64[~fin & ~np.isnan(w64)]):
            return f"output {i}: infinities differ: {g!r} vs {w!r}"
        if not np.isfinite(g64[fin]).all():
            return f"output {i}: infinite where the reference is finite: {g!r} vs {w!r}"
        eps = float(np.finfo(w.dtype).eps)
        # 16-bit types are rounded once from float32 (1 ulp); float32 and float64 allow the
        # bounds the test suite asserts for the hardest functions (64 and 450 ulp), and an
        # absolute floor for cancellation at the scale of the inputs
        ulps = 2 if w.dtype.itemsize == 2 else 64 if w.dtype == np.float32 else 512
        with np.errstate(all="ignore"):
            spacing = np.spacing(np.abs(w64[fin]).astype(w.dtype)).astype(np.float64)
            err = np.abs(g64[fin] - w64[fin])
            bad = (err > ulps * spacing) & (err > ulps * eps * scale)
        if bad.any():
            j = int(np.argmax(bad))
            return f"output {i}: {g64[fin][j]!r} vs reference {w64[fin][j]!r} ({err[j]:.3g})"
    return None


# ----------------------------------------------------------------- known disagreements


def finite_abs_max(a: Any) -> float:
    if (
        not isinstance(a, np.ndarray)
        or a.size == 0
        or a.dtype.kind not in "fiub"
        and a.dtype != BFLOAT16
    ):
        return 0.0
    v = np.abs(a.astype(np.float64))
    v = v[np.isfinite(v)]
    return float(v.max()) if v.size else 0.0


def known_issue(func: str, args: tuple[Any, ...], kw: dict[str, Any], what: str) -> str | None:
    """Already reported disagreements (see tests/test_hypothesis_native.py, xfail tests):
    recognised so that the fuzzer keeps exploring past them."""
    if func == "entropy" and np.ndim(args[0]) == 0 and "(1,)" in what:
        return "entropy-0d-keepdims-shape"
    if func == "kl_div_elementwise" and "NaN" in what:
        with np.errstate(all="ignore"):
            if np.isposinf(np.asarray(args[0]).astype(np.float64)).any():
                return "reference: kl_div_elementwise(inf, y > 1e300) is NaN, documented +inf"
    b = kw.get("b")
    if func == "logsumexp" and isinstance(b, np.ndarray) and what.startswith("output"):
        with np.errstate(all="ignore"):
            if not np.isfinite(b.astype(np.float64)).all():
                return "logsumexp-infinite-weights"
    if func == "hardmax" and isinstance(kw.get("axis"), tuple):
        return "hardmax-unsorted-axes"
    if func.startswith("binary_cross_entropy") and what.startswith("output"):
        with np.errstate(all="ignore"):
            y = np.asarray(args[1]).astype(np.float64)
        if np.any(np.abs(y - 0.5) > 0.5):  # a target outside [0, 1]: the loss cancels
            return "bce-target-outside-unit-interval"
    if func.startswith("binary_cross_entropy") and what.startswith("output"):
        with np.errstate(all="ignore"):
            big = [finite_abs_max(kw.get(k)) for k in ("weight", "pos_weight")]
        if max(big) > 1e30:  # the product of huge weights overflows float32 on the way
            return "bce-intermediate-overflow-huge-weight"
    if func.startswith("binary_cross_entropy") and "weight" in kw and "NaN" in what:
        return "bce-zero-weight-inf"
    if func.startswith("cross_entropy") and np.asarray(args[1]).dtype.kind not in "biu":
        with np.errstate(all="ignore"):
            if np.isinf(np.asarray(args[1]).astype(np.float64)).any() and what.startswith("output"):
                return "cross_entropy-infinite-soft-target"
    if func.endswith("_from_logits_with_grad") and "NaN" in what:
        with np.errstate(all="ignore"):
            if any(np.isneginf(np.asarray(a).astype(np.float64)).any() for a in args[:2]):
                return "kl-grad-at-minus-inf-logit"
    if func in ("cross_entropy", "cross_entropy_with_grad", "nll_loss") and what.startswith(
        "output"
    ):
        # class weights take the logits' compute dtype: float64 weights below float32's
        # smallest subnormal become 0 with float32 logits (a mean of 0 / 0)
        w = kw.get("weight")
        if (
            isinstance(w, np.ndarray)
            and w.dtype == np.float64
            and np.asarray(args[0]).dtype != np.float64
        ):
            with np.errstate(all="ignore"):
                tiny = (w != 0) & (np.abs(w) < np.finfo(np.float32).smallest_subnormal)
            if tiny.any():
                return "class-weight-underflows-compute-dtype"
    if func.startswith("cross_entropy") and what.startswith("output"):
        with np.errstate(all="ignore"):
            w = kw.get("weight")
            if w is not None and not np.isfinite(np.asarray(w).astype(np.float64)).all():
                return "cross_entropy-non-finite-class-weight"
    soft = np.asarray(args[1]).dtype.kind not in "biu" if func.startswith("cross_") else False
    if func.startswith("cross_") and kw.get("return_stats") and what.startswith("output"):
        with np.errstate(all="ignore"):
            if np.isnan(np.asarray(args[0]).astype(np.float64)).any():
                return "cross_entropy-stats-argmax-nan-and-inf"
    if soft and kw.get("return_stats") and re.match(r"output [34]: ", what):
        return "cross_entropy-stats-argmax-of-rounded-soft-target"
    if func == "logsumexp_backward" and args[2] is not None and what.startswith("output"):
        return "logsumexp_backward-ignores-lse"
    bools = any(isinstance(a, np.ndarray) and a.dtype == np.bool_ for a in args)
    dtype_differs = re.match(r"output \d+: \w+\([\d, ]*\), reference", what) is not None
    if func == "logsumexp_backward" and bools and dtype_differs:
        return "logsumexp_backward-bool-grad-dtype"
    weight = kw.get("weight")
    if what.startswith("RuntimeWarning") and isinstance(weight, np.ndarray):
        with np.errstate(all="ignore"):
            if (weight.dtype.kind == "f" or weight.dtype == BFLOAT16) and not np.isfinite(
                weight.astype(np.float64)
            ).all():
                return f"RuntimeWarning with a non-finite weight (reference too): {func}"
    if what.startswith("RuntimeWarning: invalid value encountered in reduce"):
        return f"RuntimeWarning summing inf - inf: {func}"
    if what.startswith("RuntimeWarning: overflow encountered in cast"):
        return f"RuntimeWarning casting a second input down: {func}"
    if func.endswith("_backward") and what.startswith("RuntimeWarning"):
        return f"RuntimeWarning from the multiply by grad: {func}"
    return None


# ------------------------------------------------------------------------------- oracle


def result_dtype(a: np.ndarray) -> np.dtype:
    return a.dtype if a.dtype in FLOATS else np.dtype(np.float64)


def describe(func: str, args: tuple[Any, ...], kw: dict[str, Any]) -> str:
    def show(a: Any) -> str:
        if isinstance(a, np.ndarray):
            body = np.array2string(a, threshold=40, separator=", ")
            return (
                f"np.array({body}, dtype={a.dtype.name!r}).reshape({a.shape}) [strides {a.strides}]"
            )
        return repr(a)

    parts = [show(a) for a in args] + [f"{k}={show(v)}" for k, v in kw.items()]
    return f"lk.{func}({', '.join(parts)})"


def run(func: str, args: tuple[Any, ...], kw: dict[str, Any], writes: Any) -> str:
    """The outcome class of one call; raises Finding for a behaviour outside the contract."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            # the reference may be handed a copy: `out=x` must not feed it modified input
            ref_args = tuple(a.copy() if a is writes and a is not None else a for a in args)
            ref_kw = dict(kw)
            if func in ("softmax", "log_softmax"):
                ref_kw.pop("where", None)  # no element mask in the reference: not compared
            if func == "logsumexp" and "where" in kw:
                # documented: where=False is a weight of 0, where=True a weight of b (or 1)
                mask = ref_kw.pop("where")
                if isinstance(mask, np.ndarray) and mask.dtype == np.bool_:
                    w = kw.get("b")
                    if w is None:
                        w = np.ones((), result_dtype(args[0]))
                    ref_kw["b"] = np.where(mask, w, np.zeros((), np.asarray(w).dtype))
            if "out" in ref_kw:
                ref_kw["out"] = None
            want: Any = getattr(ref, func)(*ref_args, **ref_kw)
            ref_error: BaseException | None = None
    except Exception as e:  # noqa: BLE001  (any rejection by the reference is information)
        want, ref_error = None, e
    masked_softmax = func in ("softmax", "log_softmax") and "where" in kw

    before = [
        (a, a.tobytes())
        for a in [*args, *kw.values()]
        if isinstance(a, np.ndarray) and a is not writes
    ]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            got = getattr(lk, func)(*args, **kw)
    except ACCEPTED_ERRORS as e:
        msg = str(e)
        if msg.startswith(f"{ALIASES.get(func)}()"):
            # expit and log_expit are the same objects as sigmoid and log_sigmoid
            return "known: alias error names sigmoid/log_sigmoid"
        if not msg.startswith(f"{func}()"):
            issue = known_issue(func, args, kw, f"{type(e).__name__}: {msg}")
            if issue:
                return f"known: {issue}"
            raise Finding(
                f"{type(e).__name__} not naming {func}(): {msg!r}\n{describe(func, args, kw)}"
            ) from e
        for a, b in before:
            if a.tobytes() != b:
                raise Finding(
                    f"input modified by a call that raised\n{describe(func, args, kw)}"
                ) from e
        return (
            "rejected (reference too)" if ref_error is not None else "rejected (reference accepts)"
        )
    except Exception as e:  # noqa: BLE001
        what = f"{type(e).__name__}: {e}"
        issue = known_issue(func, args, kw, what)
        if issue:
            return f"known: {issue}"
        if REPORT_DISAGREEMENTS and isinstance(e, RuntimeWarning):
            return reported("RuntimeWarning", func, f"{what}\n{describe(func, args, kw)}")
        raise Finding(f"{what}\n{describe(func, args, kw)}") from e
    for a, b in before:
        if a.tobytes() != b:
            raise Finding(f"input modified\n{describe(func, args, kw)}")
    if writes is not None and "out" in kw and got is not kw["out"]:
        raise Finding(f"out= given but another array returned\n{describe(func, args, kw)}")
    if masked_softmax or ref_error is not None:
        # the reference has no element mask for softmax; a result where the reference
        # rejects is allowed (the reference is stricter in places), both are counted
        return (
            "result (masked softmax, not compared)"
            if masked_softmax
            else "result (reference rejects)"
        )
    diff = agree(got, want, input_scale(args, kw))
    if diff is not None:
        issue = known_issue(func, args, kw, diff)
        if issue:
            return f"known: {issue}"
        text = f"{diff}\n{describe(func, args, kw)}"
        if REPORT_DISAGREEMENTS:
            return reported("disagreement with the reference", func, text)
        raise Finding(f"disagrees with the reference: {text}")
    return "result agrees"


def test_one_input(data: bytes) -> None:
    d = Decoder(data)
    isa = d.pick(ISAS)
    func, args, kw, writes = build(d)
    with lk.use_isa(isa):
        outcome = run(func, args, kw, writes)
    OUTCOMES[outcome] += 1
    OUTCOMES[f"calls: {func}"] += 1


def report(_arg: Any = None) -> None:
    calls = sum(v for k, v in OUTCOMES.items() if k.startswith("calls: "))
    print(f"\nfuzz_api: {calls} calls", flush=True)
    for k, v in sorted(OUTCOMES.items()):
        if not k.startswith("calls: "):
            print(f"  {v:8d}  {k}", flush=True)
    per_func = ", ".join(
        f"{k[7:]} {v}" for k, v in sorted(OUTCOMES.items()) if k.startswith("calls: ")
    )
    print(f"  per function: {per_func}", flush=True)


def main() -> None:
    # libFuzzer ends the process with exit() when -max_total_time or -runs is reached, which
    # skips Python's atexit: register the summary with the C library instead
    callback = ctypes.CFUNCTYPE(None, ctypes.c_void_p)(report)
    libc = ctypes.CDLL(ctypes.util.find_library("c"))
    libc.__cxa_atexit(callback, None, None)
    main.callback = callback  # type: ignore[attr-defined]  # keep it alive until exit
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
