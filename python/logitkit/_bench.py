"""The side-by-side benchmark suite: ``python -m logitkit bench`` (or ``benchmarks/suite.py``).

One run times every (op, shape, dtype, mode, thread count) for logitkit, NumPy's stable
max-subtract formulas, ``scipy.special``, PyTorch's CPU kernels and JAX's jitted CPU functions,
next to a native bandwidth yardstick on the same buffer: a multi-threaded read for the
reductions (logsumexp, the cross-entropy loss, the entropy) and the better of a plain and a
non-temporal copy for the ops that write a logits-sized result (softmax, log_softmax, sigmoid,
the cross-entropy gradient).

For each measurement it reports the median time, the bytes an ideal single pass moves per
second (GB/s), the fraction of the yardstick (yardstick time / op time: 1.0 runs at the
speed of a bare read or copy of the same bytes) and each peer's time over logitkit's (above
1 means logitkit is faster). Every peer's result is compared once with logitkit's.

Only the standard library, NumPy and logitkit are needed; SciPy, PyTorch and JAX are
compared when importable, matplotlib is needed for ``--plot`` only.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import importlib
import json
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any, TextIO

import numpy as np

import logitkit as lk

from . import _core
from ._runtime import current_isa_index

__all__ = ["main", "parse_shape", "ShapeSpec", "OPS", "DEFAULT_SHAPES", "QUICK_SHAPES"]

# ------------------------------------------------------------------------------- the plan

#: Ops in the order they run; the first three reduce (read-type), the others write a
#: result the size of the logits (write-type).
OPS: tuple[str, ...] = (
    "logsumexp",
    "cross_entropy",
    "entropy_from_logits",
    "softmax",
    "log_softmax",
    "sigmoid",
    "cross_entropy_grad",
)
READ_OPS = frozenset({"logsumexp", "cross_entropy", "entropy_from_logits"})
MODES: tuple[str, ...] = ("out", "fresh")
#: The one mode of a read-type op (its result is a vector or a scalar: nothing to preallocate).
READ_MODE = "-"
PEERS: tuple[str, ...] = ("numpy", "scipy", "torch", "jax")

DEFAULT_SHAPES: tuple[str, ...] = (
    "4096x1000",
    "512x32000",
    "128x128256",
    "8x1048576",
    "262144x10",
    "4096x1000:axis0",
    "512x32000:f64",
    "512x32000:f16",
    "512x32000:bf16",
)
QUICK_SHAPES: tuple[str, ...] = ("256x1000", "32x8000", "256x1000:axis0", "32x8000:f16")

#: A peer whose first timed call takes longer than this gets only MIN_REPEAT timed calls.
SLOW_CALL_S = 1.0
MIN_REPEAT = 3
DEFAULT_REPEAT = 5
QUICK_REPEAT = 3

_DTYPE_SUFFIX = {"f32": "float32", "f64": "float64", "f16": "float16", "bf16": "bfloat16"}
_DTYPE_SHORT = {v: k for k, v in _DTYPE_SUFFIX.items()}

# A peer's result agrees with logitkit's when the largest difference is within this many
# machine epsilons of the result dtype, times the largest magnitude of logitkit's result
# (at least 1). Loose on purpose: rounding grows with the row length and the summation
# order, and this check is there to catch a wrong formula or a dtype mix-up, not to grade
# accuracy (tests/ does that).
_TOLERANCE_EPS = {"float32": 1000.0, "float64": 1000.0, "float16": 64.0, "bfloat16": 16.0}


@dataclass(frozen=True)
class ShapeSpec:
    """A benchmark input: ``rows x cols`` logits of one dtype, reduced along ``axis``."""

    name: str
    rows: int
    cols: int
    dtype: str = "float32"
    axis: int = -1

    @property
    def label(self) -> str:
        """The shape without the dtype: ``4096x1000`` or ``4096x1000:axis0``."""
        base = f"{self.rows}x{self.cols}"
        return base if self.axis == -1 else f"{base}:axis0"

    @property
    def short_dtype(self) -> str:
        return _DTYPE_SHORT[self.dtype]

    @property
    def n_classes(self) -> int:
        return self.cols if self.axis == -1 else self.rows

    @property
    def n_rows(self) -> int:
        return self.rows if self.axis == -1 else self.cols


def parse_shape(text: str) -> ShapeSpec:
    """``ROWSxCOLS`` followed by optional ``:axis0`` / ``:axis1`` and a dtype suffix
    (``:f32``, ``:f64``, ``:f16``, ``:bf16``), e.g. ``512x32000:f16`` or ``4096x1000:axis0``."""
    parts = text.strip().lower().split(":")
    dims = parts[0].split("x")
    if len(dims) != 2 or not all(d.isdigit() and int(d) > 0 for d in dims):
        raise ValueError(f"shape {text!r}: expected ROWSxCOLS with positive sizes, e.g. 512x32000")
    dtype, axis = "float32", -1
    for suffix in parts[1:]:
        if suffix in _DTYPE_SUFFIX:
            dtype = _DTYPE_SUFFIX[suffix]
        elif suffix in ("axis0", "axis1", "axis-1"):
            axis = 0 if suffix == "axis0" else -1
        else:
            known = ", ".join(["axis0", "axis1", *_DTYPE_SUFFIX])
            raise ValueError(f"shape {text!r}: unknown suffix {suffix!r} (known: {known})")
    spec = ShapeSpec("", int(dims[0]), int(dims[1]), dtype, axis)
    name = spec.label if dtype == "float32" else f"{spec.label}:{_DTYPE_SHORT[dtype]}"
    return dataclasses.replace(spec, name=name)


def _modes_of(op: str, modes: Sequence[str]) -> list[str]:
    return [READ_MODE] if op in READ_OPS else list(modes)


# ---------------------------------------------------------------------------- environment


def try_import(name: str) -> Any | None:
    """The module, or None when it is missing or its import fails (as unusable either way)."""
    try:
        return importlib.import_module(name)
    except Exception:
        return None


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return fh.read().strip()
    except OSError:
        return None


def _caches_from_sys() -> list[dict[str, Any]]:
    """Cache levels seen by CPU 0, from /sys (Linux)."""
    base = "/sys/devices/system/cpu/cpu0/cache"
    caches = []
    try:
        entries = sorted(e for e in os.listdir(base) if e.startswith("index"))
    except OSError:
        return []
    for entry in entries:
        d = os.path.join(base, entry)
        caches.append(
            {
                "level": _read(os.path.join(d, "level")),
                "type": _read(os.path.join(d, "type")),
                "size": _read(os.path.join(d, "size")),
                "shared_cpu_list": _read(os.path.join(d, "shared_cpu_list")),
            }
        )
    return caches


def _lscpu() -> dict[str, str]:
    """lscpu's ``key: value`` lines (empty when lscpu is missing)."""
    exe = shutil.which("lscpu")
    if exe is None:
        return {}
    try:
        text = subprocess.run(
            [exe], capture_output=True, text=True, timeout=10, check=True, env={"LC_ALL": "C"}
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return {}
    info = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and not key.startswith("Vulnerability") and key.strip() != "Flags":
            info[key.strip()] = value.strip()
    return info


def machine_description() -> dict[str, Any]:
    """CPU model, core counts, caches, OS and Python: what the numbers depend on."""
    lscpu = _lscpu()
    model = lscpu.get("Model name") or platform.processor() or platform.machine()
    cpuinfo = _read("/proc/cpuinfo") or ""
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "model name" and not lscpu.get("Model name"):
            model = value.strip()
            break
    flags: set[str] = set()
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "flags":
            flags = set(value.split())
            break
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    cache_keys = ("L1d cache", "L1i cache", "L2 cache", "L3 cache")
    return {
        "cpu_model": model,
        "architecture": platform.machine(),
        "logical_cpus": os.cpu_count(),
        "usable_cpus": usable,
        "threads_per_core": lscpu.get("Thread(s) per core"),
        "cores_per_socket": lscpu.get("Core(s) per socket"),
        "sockets": lscpu.get("Socket(s)"),
        "hypervisor": lscpu.get("Hypervisor vendor"),
        "caches_lscpu": {k: lscpu[k] for k in cache_keys if k in lscpu},
        "caches_sys": _caches_from_sys(),
        "simd_flags": sorted(flags & {"sse2", "avx", "avx2", "fma", "f16c", "avx512f", "asimd"}),
        "memory_bytes": _memory_bytes(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "load_average_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }


def _memory_bytes() -> int | None:
    text = _read("/proc/meminfo") or ""
    for line in text.splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) * 1024
    return None


class CpuMeter:
    """How busy other processes kept the CPUs over an interval: the machine's busy time
    (/proc/stat) minus this process's own CPU time, as a fraction of all CPUs' time.

    On a shared machine this says which measurements ran beside someone else's work: a
    multi-threaded call then waits for a core, often for a whole scheduler time slice.
    None where /proc/stat is missing. Coarse: the kernel counts in ticks (10 ms).
    """

    def __init__(self) -> None:
        self._start = self._sample()

    @staticmethod
    def _sample() -> tuple[float, float, float] | None:
        text = _read("/proc/stat")
        if not text or not text.startswith("cpu "):
            return None
        fields = [int(v) for v in text.splitlines()[0].split()[1:9]]
        tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
        total = sum(fields) / tick
        busy = total - (fields[3] + fields[4]) / tick  # all but idle and iowait
        own = os.times()
        return busy, total, own.user + own.system

    def others(self) -> float | None:
        """Fraction of all CPUs' time used by other processes since the meter started."""
        end = self._sample()
        if self._start is None or end is None:
            return None
        busy = end[0] - self._start[0]
        total = end[1] - self._start[1]
        own = end[2] - self._start[2]
        if total <= 0:
            return None
        return min(1.0, max(0.0, (busy - own) / total))


def _short_machine(machine: dict[str, Any]) -> str:
    caches = [c for c in machine["caches_sys"] if c.get("type") != "Instruction"]
    if caches:
        shared = [
            "-" in (c["shared_cpu_list"] or "") or "," in (c["shared_cpu_list"] or "")
            for c in caches
        ]
        cache_text = ", ".join(
            f"L{c['level']} {c['size']}" + (" shared" if sh else " per core")
            for c, sh in zip(caches, shared, strict=True)
        )
    else:
        lscpu = machine["caches_lscpu"]
        cache_text = ", ".join(f"{k.split()[0]} {v}" for k, v in lscpu.items())
    return f"{machine['cpu_model']}, {machine['usable_cpus']} usable CPUs" + (
        f" ({cache_text})" if cache_text else ""
    )


# ---------------------------------------------------------------------------------- inputs


def _np_dtype(name: str) -> np.dtype:
    if name == "bfloat16":
        ml_dtypes = try_import("ml_dtypes")
        if ml_dtypes is None:
            raise LookupError("bfloat16 needs ml_dtypes (pip install ml_dtypes)")
        return np.dtype(ml_dtypes.bfloat16)  # type: ignore[no-any-return]
    return np.dtype(name)


def make_inputs(spec: ShapeSpec, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Logits ``3 * standard normal`` in the spec's dtype, and uniform class-index targets."""
    rng = np.random.default_rng(seed)
    base = np.float64 if spec.dtype == "float64" else np.float32
    x = rng.standard_normal((spec.rows, spec.cols), dtype=base)
    x *= 3.0
    x = x.astype(_np_dtype(spec.dtype), copy=False)
    target = rng.integers(0, spec.n_classes, spec.n_rows, dtype=np.int64)
    return x, target


def _float32_bytes(a: np.ndarray) -> np.ndarray:
    """A contiguous array's memory as a 1-d float32 array (a trailing 1-3 bytes left out)."""
    raw = a.reshape(-1).view(np.uint8)
    return raw[: raw.size // 4 * 4].view(np.float32)


# -------------------------------------------------------------------------- what is timed


@dataclass
class Case:
    """Everything one (op, shape, mode, threads) measurement needs."""

    op: str
    spec: ShapeSpec
    mode: str
    threads: int
    x: np.ndarray
    target: np.ndarray

    @property
    def axis(self) -> int:
        return self.spec.axis

    @property
    def uses_out(self) -> bool:
        return self.mode == "out"


@dataclass
class Variant:
    """One callable to time, and how to turn its result into NumPy arrays."""

    label: str
    run: Callable[[], Any]
    uses_out: bool = False


def _to_numpy(value: Any) -> Any:
    """A result (array, scalar, torch tensor, JAX array, or a tuple of them) as NumPy."""
    if isinstance(value, tuple):
        return tuple(_to_numpy(v) for v in value)
    if hasattr(value, "detach"):  # a torch tensor
        t = value.detach()
        if str(t.dtype) == "torch.bfloat16":
            t = t.float()
        return np.asarray(t.numpy())
    return np.asarray(value)


def logitkit_variant(case: Case, buf: np.ndarray | None) -> Variant:
    x, t, ax, th, op = case.x, case.target, case.axis, case.threads, case.op
    if op == "logsumexp":
        return Variant("lk.logsumexp", lambda: lk.logsumexp(x, axis=ax, threads=th))
    if op == "cross_entropy":
        return Variant("lk.cross_entropy", lambda: lk.cross_entropy(x, t, axis=ax, threads=th))
    if op == "entropy_from_logits":
        return Variant(
            "lk.entropy_from_logits", lambda: lk.entropy_from_logits(x, axis=ax, threads=th)
        )
    if op == "cross_entropy_grad":
        if buf is not None:
            return Variant(
                "lk.cross_entropy_with_grad(grad_out=)",
                lambda: lk.cross_entropy_with_grad(x, t, axis=ax, grad_out=buf, threads=th),
                True,
            )
        return Variant(
            "lk.cross_entropy_with_grad",
            lambda: lk.cross_entropy_with_grad(x, t, axis=ax, threads=th),
        )
    if op == "sigmoid":
        if buf is not None:
            return Variant("lk.sigmoid(out=)", lambda: lk.sigmoid(x, out=buf, threads=th), True)
        return Variant("lk.sigmoid", lambda: lk.sigmoid(x, threads=th))
    fn = getattr(lk, op)  # softmax, log_softmax
    if buf is not None:
        return Variant(f"lk.{op}(out=)", lambda: fn(x, axis=ax, out=buf, threads=th), True)
    return Variant(f"lk.{op}", lambda: fn(x, axis=ax, threads=th))


# NumPy: the stable formulas a careful user writes (subtract the maximum first), with ufunc
# out= into a preallocated buffer in "out" mode. They compute in the input's dtype.


def np_softmax(x: np.ndarray, axis: int, out: np.ndarray | None = None) -> np.ndarray:
    e = np.subtract(x, x.max(axis=axis, keepdims=True), out=out)
    np.exp(e, out=e)
    e /= e.sum(axis=axis, keepdims=True)
    return e  # type: ignore[no-any-return]


def np_log_softmax(x: np.ndarray, axis: int, out: np.ndarray | None = None) -> np.ndarray:
    s = np.subtract(x, x.max(axis=axis, keepdims=True), out=out)
    s -= np.log(np.exp(s).sum(axis=axis, keepdims=True))
    return s  # type: ignore[no-any-return]


def np_logsumexp(x: np.ndarray, axis: int) -> np.ndarray:
    m = x.max(axis=axis, keepdims=True)
    r = np.log(np.exp(x - m).sum(axis=axis, keepdims=True)) + m
    return np.squeeze(r, axis=axis)  # type: ignore[no-any-return]


def np_sigmoid(x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    e = np.exp(-np.abs(x))  # never overflows
    r = np.divide(1, 1 + e, out=out)  # 1 / (1 + exp(-x)) for x >= 0
    np.multiply(r, e, out=r, where=x < 0)  # exp(x) / (1 + exp(x)) for x < 0
    return r  # type: ignore[no-any-return]


def np_cross_entropy(x: np.ndarray, target: np.ndarray, axis: int) -> Any:
    idx = np.expand_dims(target, axis)
    picked = np.take_along_axis(x, idx, axis)
    return np.mean(np.expand_dims(np_logsumexp(x, axis), axis) - picked)


def np_cross_entropy_with_grad(
    x: np.ndarray, target: np.ndarray, axis: int, out: np.ndarray | None = None
) -> tuple[Any, np.ndarray]:
    idx = np.expand_dims(target, axis)
    m = x.max(axis=axis, keepdims=True)
    g = np.subtract(x, m, out=out)
    np.exp(g, out=g)
    s = g.sum(axis=axis, keepdims=True)
    g /= s
    loss = np.mean(np.log(s) + m - np.take_along_axis(x, idx, axis))
    np.put_along_axis(g, idx, np.take_along_axis(g, idx, axis) - 1, axis)
    g /= target.size
    return loss, g


def np_entropy(x: np.ndarray, axis: int) -> np.ndarray:
    lp = np_log_softmax(x, axis)
    return -(np.exp(lp) * lp).sum(axis=axis)  # type: ignore[no-any-return]


def numpy_variant(case: Case, buf: np.ndarray | None) -> Variant:
    x, t, ax, op = case.x, case.target, case.axis, case.op
    if op == "logsumexp":
        return Variant("max-subtract logsumexp", lambda: np_logsumexp(x, ax))
    if op == "cross_entropy":
        return Variant("lse - x[target], mean", lambda: np_cross_entropy(x, t, ax))
    if op == "entropy_from_logits":
        return Variant("-(exp(lsm) * lsm).sum()", lambda: np_entropy(x, ax))
    o = "(out=)" if buf is not None else ""
    if op == "softmax":
        return Variant(f"max-subtract softmax{o}", lambda: np_softmax(x, ax, buf), o != "")
    if op == "log_softmax":
        return Variant(f"max-subtract log_softmax{o}", lambda: np_log_softmax(x, ax, buf), o != "")
    if op == "sigmoid":
        return Variant(f"stable sigmoid{o}", lambda: np_sigmoid(x, buf), o != "")
    return Variant(
        f"softmax - onehot{o}", lambda: np_cross_entropy_with_grad(x, t, ax, buf), o != ""
    )


def _sp_cross_entropy(sp: Any, x: np.ndarray, target: np.ndarray, axis: int) -> Any:
    idx = np.expand_dims(target, axis)
    return -np.take_along_axis(sp.log_softmax(x, axis=axis), idx, axis).mean()


def _sp_cross_entropy_with_grad(
    sp: Any, x: np.ndarray, target: np.ndarray, axis: int
) -> tuple[Any, np.ndarray]:
    idx = np.expand_dims(target, axis)
    lsm = sp.log_softmax(x, axis=axis)
    loss = -np.take_along_axis(lsm, idx, axis).mean()
    g = np.exp(lsm, out=lsm)
    np.put_along_axis(g, idx, np.take_along_axis(g, idx, axis) - 1, axis)
    g /= target.size
    return loss, g


def scipy_variant(case: Case, buf: np.ndarray | None, sp: Any) -> Variant:
    x, t, ax, op = case.x, case.target, case.axis, case.op
    if op == "logsumexp":
        return Variant("scipy.special.logsumexp", lambda: sp.logsumexp(x, axis=ax))
    if op == "cross_entropy":
        return Variant("-log_softmax[target].mean()", lambda: _sp_cross_entropy(sp, x, t, ax))
    if op == "entropy_from_logits":
        return Variant("entr(softmax).sum()", lambda: sp.entr(sp.softmax(x, axis=ax)).sum(ax))
    if op == "softmax":
        return Variant("scipy.special.softmax", lambda: sp.softmax(x, axis=ax))
    if op == "log_softmax":
        return Variant("scipy.special.log_softmax", lambda: sp.log_softmax(x, axis=ax))
    if op == "sigmoid":
        if buf is not None:
            return Variant("scipy.special.expit(out=)", lambda: sp.expit(x, out=buf), True)
        return Variant("scipy.special.expit", lambda: sp.expit(x))
    return Variant("log_softmax, exp - onehot", lambda: _sp_cross_entropy_with_grad(sp, x, t, ax))


SCIPY_OUT_OPS = frozenset({"sigmoid"})
NUMPY_OUT_OPS = frozenset({"softmax", "log_softmax", "sigmoid", "cross_entropy_grad"})
TORCH_OUT_OPS = frozenset({"softmax", "log_softmax", "sigmoid"})
JAX_OUT_OPS: frozenset[str] = frozenset()
OUT_OPS = {
    "numpy": NUMPY_OUT_OPS,
    "scipy": SCIPY_OUT_OPS,
    "torch": TORCH_OUT_OPS,
    "jax": JAX_OUT_OPS,
}


def torch_tensor(torch: Any, a: np.ndarray) -> Any:
    """A zero-copy torch view of a NumPy array (bfloat16 goes through its int16 bits)."""
    if a.dtype.name == "bfloat16":
        return torch.from_numpy(a.view(np.int16)).view(torch.bfloat16)
    return torch.from_numpy(a)


def torch_variant(case: Case, buf: np.ndarray | None, torch: Any) -> Variant:
    F = torch.nn.functional
    ax, op = case.axis, case.op
    xt = torch_tensor(torch, case.x)
    tt = torch.from_numpy(case.target)
    ot = None if buf is None else torch_tensor(torch, buf)

    def no_grad(fn: Callable[[], Any]) -> Callable[[], Any]:
        def run() -> Any:
            with torch.no_grad():
                return fn()

        return run

    def classes_last(a: Any) -> Any:  # F.cross_entropy wants (N, C)
        return a if ax == -1 else a.T

    if op == "logsumexp":
        return Variant("torch.logsumexp", no_grad(lambda: torch.logsumexp(xt, ax)))
    if op == "cross_entropy":
        return Variant(
            "F.cross_entropy (no_grad)", no_grad(lambda: F.cross_entropy(classes_last(xt), tt))
        )
    if op == "entropy_from_logits":

        def entropy() -> Any:
            lp = torch.log_softmax(xt, ax)
            return -(lp.exp() * lp).sum(ax)

        return Variant("-(exp(lsm) * lsm).sum()", no_grad(entropy))
    if op == "cross_entropy_grad":

        def forward_backward() -> Any:
            leaf = xt.detach().requires_grad_(True)
            loss = F.cross_entropy(classes_last(leaf), tt)
            loss.backward()
            return loss.detach(), leaf.grad

        return Variant("F.cross_entropy forward+backward", forward_backward)
    if op == "sigmoid":
        if ot is not None:
            return Variant("torch.sigmoid(out=)", no_grad(lambda: torch.sigmoid(xt, out=ot)), True)
        return Variant("torch.sigmoid", no_grad(lambda: torch.sigmoid(xt)))
    fn = getattr(torch, op)  # softmax, log_softmax
    if ot is not None:
        return Variant(f"torch.{op}(out=)", no_grad(lambda: fn(xt, ax, out=ot)), True)
    return Variant(f"torch.{op}", no_grad(lambda: fn(xt, ax)))


class JaxPeer:
    """JAX's CPU functions, jit-compiled once per (op, axis) and fed device arrays."""

    def __init__(self, jax: Any) -> None:
        self.jax = jax
        self.jnp = importlib.import_module("jax.numpy")
        self.special = importlib.import_module("jax.scipy.special")
        self.compiled: dict[tuple[str, int], Any] = {}
        self.device = jax.devices("cpu")[0]
        self.arrays: dict[int, Any] = {}

    def put(self, a: np.ndarray) -> Any:
        """The device copy of a (kept while the array lives: one transfer per input)."""
        key = id(a)
        if key not in self.arrays:
            self.arrays[key] = (a, self.jax.device_put(a, self.device))
        return self.arrays[key][1]

    def forget(self) -> None:
        self.arrays.clear()

    def function(self, op: str, axis: int) -> Any:
        key = (op, axis)
        if key in self.compiled:
            return self.compiled[key]
        jax, jnp, special = self.jax, self.jnp, self.special

        def cross_entropy(z: Any, t: Any) -> Any:
            lsm = jax.nn.log_softmax(z, axis=axis)
            return -jnp.take_along_axis(lsm, jnp.expand_dims(t, axis), axis=axis).mean()

        def entropy(z: Any) -> Any:
            lp = jax.nn.log_softmax(z, axis=axis)
            return -(jnp.exp(lp) * lp).sum(axis=axis)

        fns: dict[str, Callable[..., Any]] = {
            "logsumexp": lambda z: special.logsumexp(z, axis=axis),
            "softmax": lambda z: jax.nn.softmax(z, axis=axis),
            "log_softmax": lambda z: jax.nn.log_softmax(z, axis=axis),
            "sigmoid": jax.nn.sigmoid,
            "cross_entropy": cross_entropy,
            "cross_entropy_grad": jax.value_and_grad(cross_entropy),
            "entropy_from_logits": entropy,
        }
        compiled = jax.jit(fns[op])
        self.compiled[key] = compiled
        return compiled

    def variant(self, case: Case) -> Variant:
        if case.x.dtype == np.float64 and not self.jax.config.jax_enable_x64:
            raise RuntimeError("float64 needs jax_enable_x64")
        fn = self.function(case.op, case.axis)
        xd = self.put(case.x)
        labels = {
            "logsumexp": "jax.scipy.special.logsumexp",
            "cross_entropy": "-log_softmax[target].mean()",
            "cross_entropy_grad": "value_and_grad(cross-entropy)",
            "entropy_from_logits": "-(exp(lsm) * lsm).sum()",
            "sigmoid": "jax.nn.sigmoid",
        }
        label = "jit(" + labels.get(case.op, f"jax.nn.{case.op}") + ")"
        block = self.jax.block_until_ready
        if case.op in ("cross_entropy", "cross_entropy_grad"):
            td = self.put(case.target)
            return Variant(label, lambda: block(fn(xd, td)))
        return Variant(label, lambda: block(fn(xd)))


def load_jax(need_x64: bool) -> Any | None:
    """JAX on the CPU, or None. ``need_x64`` turns on float64 (before any array is made)."""
    os.environ.setdefault("JAX_PLATFORMS", "cpu")  # no probing for accelerators
    jax = try_import("jax")
    if jax is None:
        return None
    try:
        if need_x64:
            jax.config.update("jax_enable_x64", True)
        jax.devices("cpu")
        importlib.import_module("jax.scipy.special")
    except Exception:
        return None
    return jax


# ------------------------------------------------------------------------------ measuring


@dataclass
class Timing:
    """The timed calls of one callable in one measurement."""

    label: str
    times: list[float] = field(default_factory=list)  # seconds
    first_call_s: float | None = None  # the untimed warm-up (and agreement check) call
    target_repeat: int = 0
    capped: bool = False
    uses_out: bool = False
    error: str | None = None

    @property
    def median_s(self) -> float:
        return statistics.median(self.times)

    def as_json(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "median_ms": 1e3 * self.median_s if self.times else None,
            "times_ms": [1e3 * t for t in self.times],
            "repeats": len(self.times),
            "warmup_ms": None if self.first_call_s is None else 1e3 * self.first_call_s,
            "capped": self.capped,
            "uses_out": self.uses_out,
        }


def _wide(a: Any) -> np.ndarray:
    """An array in a dtype that holds differences exactly enough: float64 stays, the rest
    (float32, float16, bfloat16, ints) go to float32 (no copy for float32)."""
    arr = np.asarray(a)
    return arr if arr.dtype in (np.float64, np.float32) else arr.astype(np.float32)


def _max_abs_diff(got: Any, want: Any) -> float:
    """Largest |got - want| over matching arrays (inf on a shape or NaN-pattern mismatch)."""
    if isinstance(want, tuple):
        if not isinstance(got, tuple) or len(got) != len(want):
            return math.inf
        return max((_max_abs_diff(g, w) for g, w in zip(got, want, strict=True)), default=0.0)
    g, w = _wide(got), _wide(want)
    if g.shape != w.shape:
        return math.inf
    dtype = np.result_type(g.dtype, w.dtype)
    gf, wf = g.reshape(-1), w.reshape(-1)
    largest = 0.0
    step = 1 << 16  # chunks that stay in cache: no large temporary to fault in
    with np.errstate(invalid="ignore", over="ignore"):
        for start in range(0, gf.size, step):
            d = np.subtract(gf[start : start + step], wf[start : start + step], dtype=dtype)
            chunk = float(np.abs(d, out=d).max())
            if not math.isfinite(chunk):  # NaN or inf: decided by the slow path below
                largest = math.inf
                break
            largest = max(largest, chunk)
    if math.isfinite(largest):
        return largest
    # Slow path, only when NaN or inf appear: they must sit at the same places.
    g, w = g.astype(np.float64), w.astype(np.float64)
    if not np.array_equal(np.isnan(g), np.isnan(w)):
        return math.inf
    finite = ~np.isnan(w)
    with np.errstate(invalid="ignore"):
        diff = np.abs(g[finite] - w[finite])
    same = g[finite] == w[finite]  # equal infinities
    return float(np.where(same, 0.0, diff).max(initial=0.0))


def _scale(want: Any) -> float:
    """The largest finite magnitude in want (at least 1)."""
    if isinstance(want, tuple):
        return max((_scale(w) for w in want), default=1.0)
    a = _wide(want)
    high, low = float(a.max(initial=0.0)), float(a.min(initial=0.0))
    largest = max(high, -low)
    if not (math.isfinite(high) and math.isfinite(low)):
        finite = a[np.isfinite(a)]
        largest = float(np.abs(finite).max(initial=0.0))
    return max(1.0, largest)


def tolerance(want: Any, dtype: str) -> float:
    eps = float(np.finfo(np.float64 if dtype == "float64" else np.float32).eps)
    if dtype == "float16":
        eps = float(np.finfo(np.float16).eps)
    elif dtype == "bfloat16":
        eps = 2.0**-7
    return _TOLERANCE_EPS[dtype] * eps * _scale(want)


def _call(fn: Callable[[], Any]) -> tuple[float, Any]:
    t0 = time.perf_counter()
    result = fn()
    return time.perf_counter() - t0, result


def time_block(
    timing: Timing,
    fn: Callable[[], Any],
    repeat: int,
    on_call: Callable[[str], None] | None = None,
) -> Any:
    """One warm-up call, then up to `repeat` timed calls back to back; returns the warm-up
    call's result (kept for the agreement check, made after the timed calls).

    Back to back, not round-robin over the implementations: a multi-threaded call made
    right after another library's call (or after a pause) can pay for waking its pool's
    sleeping threads, and on a 2-core virtual machine that can cost milliseconds. Each
    implementation is timed with its own pool warm, as it runs in a loop.

    A callable whose first timed call exceeds SLOW_CALL_S stops at MIN_REPEAT calls (never
    fewer, never more than asked). An exception from the warm-up call propagates; one from
    a timed call ends the block, and the Timing keeps the error.
    """
    if on_call is not None:
        on_call(f"{timing.label} (warm-up)")
    timing.first_call_s, first = _call(fn)
    timing.target_repeat = repeat
    if on_call is not None:
        on_call(timing.label)
    while len(timing.times) < timing.target_repeat:
        try:
            elapsed, result = _call(fn)
        except Exception as exc:
            timing.error = _error_text(exc)
            break
        del result  # freeing a large result is not part of the call being timed
        timing.times.append(elapsed)
        if len(timing.times) == 1 and elapsed > SLOW_CALL_S and repeat > MIN_REPEAT:
            timing.target_repeat = MIN_REPEAT
            timing.capped = True
    return first


def _error_text(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    first = text[0] if text else ""
    return f"{type(exc).__name__}: {first}"[:200]


# ---------------------------------------------------------------------------- progress bar


class Progress:
    """A one-line progress bar on a terminal; one line per finished measurement otherwise."""

    def __init__(self, total: float, stream: TextIO, bar: bool) -> None:
        self.total = max(total, 1e-9)
        self.stream = stream
        self.bar = bar
        self.done = 0.0
        self.count = 0
        self.started = time.perf_counter()
        self._last_draw = 0.0
        self._label = ""

    def _fmt_s(self, seconds: float) -> str:
        seconds = max(0, int(seconds))
        return f"{seconds // 60}m{seconds % 60:02d}s"

    def draw(self, label: str | None = None, force: bool = False) -> None:
        if label is not None:
            self._label = label
        if not self.bar:
            return
        now = time.perf_counter()
        if not force and now - self._last_draw < 0.1:
            return
        self._last_draw = now
        frac = min(1.0, self.done / self.total)
        elapsed = now - self.started
        eta = elapsed * (1 - frac) / frac if frac > 0.01 else None
        width = shutil.get_terminal_size((100, 20)).columns - 1
        timing = f"{self._fmt_s(elapsed)}" + (f" ~{self._fmt_s(eta)} left" if eta else "")
        head = f"{100 * frac:3.0f}% "
        bar_w = max(10, min(30, width // 4))
        filled = int(round(bar_w * frac))
        text = f"[{'#' * filled}{'.' * (bar_w - filled)}] {head}{timing}  {self._label}"
        self.stream.write("\r" + text[:width].ljust(width))
        self.stream.flush()

    def advance(self, amount: float, line: str) -> None:
        """A measurement finished: move the bar, or print its line when there is no bar."""
        self.done += amount
        self.count += 1
        if self.bar:
            self.draw(force=True)
        else:
            self.stream.write(line + "\n")
            self.stream.flush()

    def close(self) -> None:
        if self.bar:
            width = shutil.get_terminal_size((100, 20)).columns - 1
            self.stream.write("\r" + " " * width + "\r")
            self.stream.flush()


# ------------------------------------------------------------------------------- the run


@dataclass
class PeerSet:
    """The peers asked for, and the loaded modules of those that can run."""

    wanted: list[str]
    scipy_special: Any | None = None
    torch: Any | None = None
    jax: JaxPeer | None = None
    missing: dict[str, str] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)

    def variant(self, peer: str, case: Case, buf: np.ndarray | None) -> Variant:
        if peer == "numpy":
            return numpy_variant(case, buf)
        if peer == "scipy":
            return scipy_variant(case, buf, self.scipy_special)
        if peer == "torch":
            return torch_variant(case, buf, self.torch)
        assert self.jax is not None
        return self.jax.variant(case)


def load_peers(wanted: list[str], need_x64: bool, threads: int) -> PeerSet:
    peers = PeerSet(wanted)
    peers.versions["numpy"] = np.__version__
    if "scipy" in wanted:
        peers.scipy_special = try_import("scipy.special")
        scipy = try_import("scipy")
        if peers.scipy_special is None or scipy is None:
            peers.missing["scipy"] = "not installed"
        else:
            peers.versions["scipy"] = scipy.__version__
    if "torch" in wanted:
        peers.torch = try_import("torch")
        if peers.torch is None:
            peers.missing["torch"] = "not installed"
        else:
            peers.torch.set_num_threads(threads)
            peers.versions["torch"] = peers.torch.__version__
    if "jax" in wanted:
        jax = load_jax(need_x64)
        if jax is None:
            peers.missing["jax"] = "not installed"
        else:
            try:
                peers.jax = JaxPeer(jax)
                jaxlib = try_import("jaxlib")
                peers.versions["jax"] = jax.__version__
                peers.versions["jaxlib"] = getattr(jaxlib, "__version__", "?")
            except Exception as exc:  # a broken install is as unusable as a missing one
                peers.missing["jax"] = f"failed to start: {exc}"
    return peers


@dataclass
class Buffers:
    """Preallocated outputs of one shape, reused across ops and thread counts."""

    x: np.ndarray
    _bufs: dict[str, np.ndarray] = field(default_factory=dict)

    def get(self, owner: str) -> np.ndarray:
        if owner not in self._bufs:
            self._bufs[owner] = np.empty_like(self.x)  # the warm-up call maps its pages
        return self._bufs[owner]


def yardstick_entries(
    kind: str, x: np.ndarray, buffers: Buffers, threads: int
) -> list[tuple[Timing, Callable[[], Any]]]:
    """The bare read, or the plain and the non-temporal copy, of x's bytes."""
    isa = current_isa_index()
    src = _float32_bytes(x)
    if kind == "read":
        return [(Timing("read"), lambda: _core.bandwidth_read(src, isa, threads))]
    dst = _float32_bytes(buffers.get("yardstick"))
    return [
        (Timing("copy"), lambda: _core.bandwidth_copy(src, dst, False, isa, threads)),
        (Timing("copy (non-temporal)"), lambda: _core.bandwidth_copy(src, dst, True, isa, threads)),
    ]


def _copy_result(value: Any) -> Any:
    """A result detached from any buffer a later call will overwrite."""
    value = _to_numpy(value)
    if isinstance(value, tuple):
        return tuple(np.array(v, copy=True) for v in value)
    return np.array(value, copy=True)


@dataclass
class Runner:
    """Runs the plan and collects one record per (op, shape, mode, threads)."""

    args: argparse.Namespace
    peers: PeerSet
    progress: Progress
    max_threads: int
    records: list[dict[str, Any]] = field(default_factory=list)
    # A peer with no out= for an op runs the same call in both modes: time it once.
    _reuse: dict[tuple[str, str, str, int], dict[str, Any]] = field(default_factory=dict)

    def measure(
        self, case: Case, buffers: Buffers, weight: float, index: int, count: int
    ) -> dict[str, Any]:
        spec, op = case.spec, case.op
        what = f"{op} {spec.label} {spec.short_dtype} {case.mode} t={case.threads}"
        self.progress.draw(f"{what}: preparing")
        kind = "read" if op in READ_OPS else "copy"

        def on_call(label: str, who: str = "logitkit") -> None:
            self.progress.draw(f"{what}: {who} {label}")

        repeat = self.args.repeat
        meter = CpuMeter()
        lk_variant = logitkit_variant(case, buffers.get("logitkit") if case.uses_out else None)
        lk_timing = Timing(lk_variant.label, uses_out=lk_variant.uses_out)
        reference = _copy_result(time_block(lk_timing, lk_variant.run, repeat, on_call))
        if lk_timing.error is not None:
            raise RuntimeError(f"{what}: {lk_timing.label} failed: {lk_timing.error}")

        yard = yardstick_entries(kind, case.x, buffers, case.threads)
        for timing, fn in yard:
            time_block(timing, fn, repeat, partial(on_call, who="yardstick"))
            if timing.error is not None:
                raise RuntimeError(f"{what}: yardstick {timing.label} failed: {timing.error}")

        peer_results: dict[str, dict[str, Any]] = {}
        tol: float | None = None  # computed once, at the first peer that runs
        for peer in self.peers.wanted:
            if peer in self.peers.missing:
                peer_results[peer] = {"status": self.peers.missing[peer]}
                continue
            if case.threads != self.max_threads:
                peer_results[peer] = {"status": f"not run (peers run at {self.max_threads})"}
                continue
            has_out = op in OUT_OPS[peer]
            key = (peer, op, spec.name, case.threads)
            if case.mode != READ_MODE and not has_out and key in self._reuse:
                peer_results[peer] = dict(self._reuse[key], same_call_as_other_mode=True)
                continue
            try:
                buf = buffers.get(peer) if case.uses_out and has_out else None
                variant = self.peers.variant(peer, case, buf)
                timing = Timing(variant.label, uses_out=variant.uses_out)
                first = time_block(timing, variant.run, repeat, partial(on_call, who=peer))
                got = _to_numpy(first)
                del first
            except Exception as exc:
                peer_results[peer] = {"status": f"failed: {_error_text(exc)}"}
                continue
            if timing.error is not None:
                peer_results[peer] = {"status": f"failed: {timing.error}"}
                continue
            if tol is None:
                tol = tolerance(reference, spec.dtype)
            diff = _max_abs_diff(got, reference)
            del got
            peer_results[peer] = {
                "status": "ok",
                "max_abs_diff": diff if math.isfinite(diff) else None,
                "tolerance": tol,
                "agrees": bool(diff <= tol),
                **timing.as_json(),
            }
            if case.mode != READ_MODE and not has_out:
                self._reuse[key] = dict(peer_results[peer])

        lk_s = lk_timing.median_s
        yard_best = min(yard, key=lambda e: e[0].median_s)[0]
        bytes_moved = case.x.nbytes * (1 if kind == "read" else 2)
        for info in peer_results.values():
            if info["status"] == "ok":
                info["ratio"] = info["median_ms"] / 1e3 / lk_s
        record: dict[str, Any] = {
            "op": op,
            "kind": "read" if kind == "read" else "write",
            "shape": spec.name,
            "shape_label": spec.label,
            "rows": spec.rows,
            "cols": spec.cols,
            "axis": spec.axis,
            "dtype": spec.dtype,
            "mode": case.mode,
            "threads": case.threads,
            "bytes_moved": bytes_moved,
            "logitkit": lk_timing.as_json(),
            "median_ms": 1e3 * lk_s,
            "gb_per_s": bytes_moved / lk_s / 1e9,
            "yardstick": {
                "kind": kind,
                "median_ms": 1e3 * yard_best.median_s,
                "best": yard_best.label,
                "gb_per_s": bytes_moved / yard_best.median_s / 1e9,
                "variants": {t.label: t.as_json() for t, _ in yard},
            },
            "fraction": yard_best.median_s / lk_s,
            "peers": peer_results,
            "others_cpu": meter.others(),
        }
        self.progress.advance(weight, f"[{index:>3}/{count}] " + _record_line(record))
        return record


def _ratio_cell(info: dict[str, Any] | None, mark: str = "!") -> str:
    """A peer's time over logitkit's as a short cell: '4.8x', '4.8x!' (disagrees), 'fail'."""
    if info is None:
        return "-"
    status = info.get("status", "")
    if status == "ok":
        cell = f"{info['ratio']:.2f}x" if info["ratio"] < 10 else f"{info['ratio']:.1f}x"
        return cell + ("" if info.get("agrees", True) else mark)
    if status.startswith("failed"):
        return "fail"
    if status.startswith("not run"):
        return "-"
    return "n/a"


def _record_line(rec: dict[str, Any]) -> str:
    peers = ", ".join(
        f"{p} {_ratio_cell(i)}"
        for p, i in rec["peers"].items()
        if not i["status"].startswith("not run")
    )
    line = (
        f"{rec['op']} {rec['shape_label']} {_DTYPE_SHORT[rec['dtype']]} {rec['mode']} "
        f"t={rec['threads']}: logitkit {rec['median_ms']:.3f} ms, {rec['gb_per_s']:.1f} GB/s, "
        f"{rec['fraction']:.2f} of {rec['yardstick']['kind']}"
    )
    return line + (f"; {peers}" if peers else "")


# --------------------------------------------------------------------------------- reports


def _fmt_ms(ms: float) -> str:
    return f"{ms:.3f}" if ms < 10 else f"{ms:.2f}" if ms < 100 else f"{ms:.1f}"


def _peer_columns(records: list[dict[str, Any]]) -> list[str]:
    seen: list[str] = []
    for rec in records:
        for p in rec["peers"]:
            if p not in seen:
                seen.append(p)
    return [p for p in PEERS if p in seen]


def text_report(result: dict[str, Any]) -> str:
    """The final table: logitkit at the largest thread count with the peers' ratios, then the
    thread scaling, then the notes (disagreements, failures, capped repeats)."""
    records = result["records"]
    max_t = result["config"]["max_threads"]
    lines: list[str] = []
    top = [r for r in records if r["threads"] == max_t]
    peers = _peer_columns(top)
    head = (
        f"{'op':<20} {'shape':<16} {'dtype':<5} {'mode':<5} {'ms':>9} {'GB/s':>6} "
        f"{'of yard':>12} {'yard ms':>9}" + "".join(f" {p:>7}" for p in peers) + f" {'busy':>5}"
    )
    lines.append(
        f"logitkit at {max_t} thread(s); peers' columns are their time / logitkit's "
        "(above 1: logitkit faster; '!' = result disagrees); busy: CPU share other "
        f"processes took meanwhile ('*' above {100 * BUSY_FLAG:.0f}%)"
    )
    lines.append(head)
    lines.append("-" * len(head))
    for r in top:
        frac = f"{r['fraction']:.2f} {r['yardstick']['kind']}"
        lines.append(
            f"{r['op']:<20} {r['shape_label']:<16} {_DTYPE_SHORT[r['dtype']]:<5} {r['mode']:<5} "
            f"{_fmt_ms(r['median_ms']):>9} {r['gb_per_s']:>6.1f} {frac:>12} "
            f"{_fmt_ms(r['yardstick']['median_ms']):>9}"
            + "".join(f" {_ratio_cell(r['peers'].get(p)):>7}" for p in peers)
            + f" {_busy_cell(r):>5}"
        )

    scaling = _scaling_rows(records, max_t)
    if scaling:
        lines.append("")
        lines.append("thread scaling (logitkit)")
        head = (
            f"{'op':<20} {'shape':<16} {'dtype':<5} {'mode':<5} {'1 thr ms':>9} "
            f"{'of yard':>8} {f'{max_t} thr ms':>9} {'of yard':>8} {'speed-up':>8} {'busy':>5}"
        )
        lines.append(head)
        lines.append("-" * len(head))
        for one, many in scaling:
            lines.append(
                f"{one['op']:<20} {one['shape_label']:<16} {_DTYPE_SHORT[one['dtype']]:<5} "
                f"{one['mode']:<5} {_fmt_ms(one['median_ms']):>9} {one['fraction']:>8.2f} "
                f"{_fmt_ms(many['median_ms']):>9} {many['fraction']:>8.2f} "
                f"{one['median_ms'] / many['median_ms']:>7.2f}x {_busy_cell(one, many):>5}"
            )
    notes = result["notes"]
    if notes:
        lines.append("")
        lines.append("notes")
        lines += [f"- {n}" for n in notes]
    return "\n".join(lines)


#: A measurement during which other processes used more than this fraction of all CPUs is
#: flagged: its multi-threaded times are likely to include waits for a core.
BUSY_FLAG = 0.10


def _busy_cell(*recs: dict[str, Any]) -> str:
    """The CPU share other processes took during the measurement(s), '*' when flagged."""
    values = [r["others_cpu"] for r in recs if r.get("others_cpu") is not None]
    if not values:
        return "?"
    v = max(values)
    return f"{100 * v:.0f}%" + ("*" if v > BUSY_FLAG else "")


def _flag(rec: dict[str, Any]) -> str:
    return "*" if (rec.get("others_cpu") or 0.0) > BUSY_FLAG else ""


def _scaling_rows(
    records: list[dict[str, Any]], max_t: int
) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    one = {(r["op"], r["shape"], r["mode"]): r for r in records if r["threads"] == 1}
    rows = []
    for r in records:
        if r["threads"] == max_t and max_t != 1 and (r["op"], r["shape"], r["mode"]) in one:
            rows.append((one[(r["op"], r["shape"], r["mode"])], r))
    return rows


def collect_notes(result: dict[str, Any]) -> list[str]:
    notes = []
    for r in result["records"]:
        where = f"{r['op']} {r['shape']} {r['mode']} t={r['threads']}"
        if r["logitkit"]["capped"]:
            notes.append(f"{where}: logitkit timed {r['logitkit']['repeats']} times (slow call)")
        for peer, info in r["peers"].items():
            status = info.get("status", "")
            if status.startswith("failed"):
                notes.append(f"{where}: {peer} {status}")
            elif status == "ok" and not info.get("agrees", True):
                diff = info.get("max_abs_diff")
                diff_text = "shape or NaN mismatch" if diff is None else f"max |diff| {diff:.3g}"
                notes.append(
                    f"{where}: {peer} disagrees with logitkit ({diff_text} > "
                    f"tolerance {info['tolerance']:.3g})"
                )
            if status == "ok" and info.get("capped") and not info.get("same_call_as_other_mode"):
                first = info["times_ms"][0] / 1e3
                notes.append(
                    f"{where}: {peer} timed {info['repeats']} times, not "
                    f"{result['config']['repeat']}: one call took {first:.2f} s "
                    f"(> {SLOW_CALL_S:g} s)"
                )
    busy = [r for r in result["records"] if (r.get("others_cpu") or 0.0) > BUSY_FLAG]
    if busy:
        notes.append(
            f"{len(busy)} of {len(result['records'])} measurements ran while other processes "
            f"used more than {100 * BUSY_FLAG:.0f}% of the CPUs ('*' in the busy column): their "
            "multi-threaded times may include waits for a core"
        )
    if result.get("others_cpu") is not None:
        notes.append(
            f"other processes used {100 * result['others_cpu']:.0f}% of the CPUs over the whole run"
        )
    missing = sorted(
        {
            p
            for r in result["records"]
            for p, i in r["peers"].items()
            if i["status"] == "not installed"
        }
    )
    for p in missing:
        notes.append(f"{p}: not installed, its column is empty")
    peers = result["config"]["peers"]
    if "numpy" in peers or "scipy" in peers:
        notes.append("NumPy and SciPy run these formulas on one thread whatever --threads says")
    if "jax" in peers and "jax" in result["versions"]:
        notes.append("JAX's thread count is not controlled: XLA sizes its own CPU thread pool")
    notes.append(
        "a peer without an out= form for an op runs its allocating call in out mode too "
        "(timed once, shown in both rows)"
    )
    return notes


def markdown_report(result: dict[str, Any]) -> str:
    """One row per op x shape x dtype x mode at the largest thread count."""
    records = result["records"]
    max_t = result["config"]["max_threads"]
    one = {(r["op"], r["shape"], r["mode"]): r for r in records if r["threads"] == 1}
    machine = result["machine"]
    versions = ", ".join(f"{k} {v}" for k, v in result["versions"].items() if k != "logitkit")
    lines = [
        "# logitkit benchmark suite",
        "",
        f"{_short_machine(machine)}; logitkit {result['logitkit']['version']} "
        f"({result['logitkit']['active_isa']}); {versions}.",
        f"Threads: logitkit {max_t} (1-thread time in the last column); medians of "
        f"{result['config']['repeat']} timed calls after a warm-up; full run "
        f"{result['wall_time_s']:.0f} s, {result['started']}.",
        "",
        "*of yardstick*: the yardstick's time over logitkit's (1.00 = as fast as a bare read "
        "(R) or copy (C) of the same bytes). *vs X*: X's time over logitkit's (above 1: "
        "logitkit faster; `!` = X's result disagrees with logitkit's).",
    ]
    if result.get("others_cpu") is not None:
        flagged = sum(1 for r in records if (r.get("others_cpu") or 0.0) > BUSY_FLAG)
        lines.append(
            f"Other processes used {100 * result['others_cpu']:.0f}% of the CPUs during the "
            f"run; `*` after a time marks the {flagged} measurement(s) during which they used "
            f"more than {100 * BUSY_FLAG:.0f}%."
        )
    lines.append("")
    peers = _peer_columns(records)
    names = {"numpy": "NumPy", "scipy": "SciPy", "torch": "PyTorch", "jax": "JAX"}
    header = (
        ["op", "shape", "dtype", "mode", "logitkit ms", "GB/s", "of yardstick"]
        + [f"vs {names[p]}" for p in peers]
        + ["1 thread ms"]
    )
    lines.append("| " + " | ".join(header) + " |")
    lines.append("|" + "|".join(["---"] * 4 + ["---:"] * (len(header) - 4)) + "|")
    for r in records:
        if r["threads"] != max_t:
            continue
        single = one.get((r["op"], r["shape"], r["mode"]))
        cells = [
            r["op"],
            r["shape_label"],
            _DTYPE_SHORT[r["dtype"]],
            r["mode"],
            _fmt_ms(r["median_ms"]) + _flag(r),
            f"{r['gb_per_s']:.1f}",
            f"{r['fraction']:.2f} {r['yardstick']['kind'][0].upper()}",
            *[_ratio_cell(r["peers"].get(p)) for p in peers],
            _fmt_ms(single["median_ms"]) + _flag(single) if single is not None else "-",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_plot(result: dict[str, Any], path: str) -> None:
    """Fraction of the yardstick per op (bars grouped by shape), and the speed-up over
    PyTorch on a log axis, at the largest thread count, out mode (the one mode of reductions)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    max_t = result["config"]["max_threads"]
    recs = [
        r for r in result["records"] if r["threads"] == max_t and r["mode"] in ("out", READ_MODE)
    ]
    ops = [op for op in OPS if any(r["op"] == op for r in recs)]
    shapes = list(dict.fromkeys(r["shape"] for r in recs))
    by_key = {(r["op"], r["shape"]): r for r in recs}
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(max(10, 1.6 * len(ops) + 2), 9))
    width = 0.8 / max(1, len(shapes))
    cmap = plt.get_cmap("tab10")
    xs = np.arange(len(ops))
    for i, shape in enumerate(shapes):
        offs = xs - 0.4 + width * (i + 0.5)
        frac = [by_key[(op, shape)]["fraction"] if (op, shape) in by_key else np.nan for op in ops]
        speed: list[float] = []
        for op in ops:
            info = by_key.get((op, shape), {}).get("peers", {}).get("torch") or {}
            speed.append(info["ratio"] if info.get("status") == "ok" else np.nan)
        ax1.bar(offs, frac, width, label=shape, color=cmap(i % 10))
        ax2.bar(offs, speed, width, label=shape, color=cmap(i % 10))
    ax1.axhline(1.0, color="black", lw=0.8)
    ax1.set_ylabel("fraction of yardstick\n(yardstick time / logitkit time)")
    ax1.set_title(
        f"logitkit, {max_t} thread(s), out= mode: reductions vs a bare read, writers vs a bare copy"
    )
    ax2.axhline(1.0, color="black", lw=0.8)
    ax2.set_yscale("log")
    ax2.set_ylabel("speed-up vs PyTorch\n(torch time / logitkit time)")
    ax2.set_title(f"PyTorch CPU at {max_t} thread(s) (above 1: logitkit faster)")
    for ax in (ax1, ax2):
        ax.set_xticks(xs)
        ax.set_xticklabels(ops, fontsize=9)
        ax.grid(axis="y", alpha=0.3)
    ax1.set_ylim(0, max(1.1, float(np.nanmax([r["fraction"] for r in recs] + [0.0])) * 1.05))
    ax1.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), title="shape")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# -------------------------------------------------------------------------------- options


def _csv(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m logitkit bench",
        description=(
            "Time logitkit side by side with NumPy, SciPy, PyTorch and JAX, against a native "
            "read/copy bandwidth yardstick on the same buffers."
        ),
        epilog=(
            "Shapes: ROWSxCOLS with optional ':axis0' (reduce along the first axis) and a dtype "
            "suffix ':f64', ':f16' or ':bf16' (float32 otherwise). Default shapes: "
            + ", ".join(DEFAULT_SHAPES)
            + ". Ops: "
            + ", ".join(OPS)
            + "."
        ),
    )
    p.add_argument("--ops", type=_csv, default=list(OPS), help="comma-separated (default: all)")
    p.add_argument("--shapes", type=_csv, default=None, help="comma-separated (default: all)")
    p.add_argument(
        "--modes",
        type=_csv,
        default=list(MODES),
        help="out (preallocated result) and/or fresh (allocating); default both",
    )
    p.add_argument(
        "--threads",
        type=_csv,
        default=None,
        help="comma-separated thread counts (default: 1 and all usable cores); peers run at "
        "the largest only",
    )
    p.add_argument(
        "--repeat",
        type=int,
        default=None,
        help=f"timed calls per measurement (default {DEFAULT_REPEAT}, at least {DEFAULT_REPEAT} "
        f"unless --quick)",
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help=f"small shapes and {QUICK_REPEAT} repeats, for smoke tests",
    )
    p.add_argument(
        "--peers", type=_csv, default=list(PEERS), help="subset of numpy,scipy,torch,jax"
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the random logits (default 0)")
    p.add_argument("--json", metavar="FILE", help="write every raw time and the machine to FILE")
    p.add_argument("--markdown", metavar="FILE", help="write a compact Markdown table to FILE")
    p.add_argument(
        "--plot", metavar="FILE.png", help="draw the fractions and speed-ups (matplotlib)"
    )
    p.add_argument(
        "--no-progress",
        action="store_true",
        help="no progress bar: one line per finished measurement on stderr instead",
    )
    args = p.parse_args(list(argv) if argv is not None else None)

    bad = [o for o in args.ops if o not in OPS]
    if bad:
        p.error(f"--ops: unknown {', '.join(bad)} (known: {', '.join(OPS)})")
    args.ops = [o for o in OPS if o in args.ops]
    bad = [m for m in args.modes if m not in MODES]
    if bad or not args.modes:
        p.error(f"--modes: expected out and/or fresh, got {','.join(args.modes)}")
    args.modes = [m for m in MODES if m in args.modes]
    bad = [q for q in args.peers if q not in PEERS]
    if bad:
        p.error(f"--peers: unknown {', '.join(bad)} (known: {', '.join(PEERS)})")
    args.peers = [q for q in PEERS if q in args.peers]

    shape_texts = args.shapes or list(QUICK_SHAPES if args.quick else DEFAULT_SHAPES)
    try:
        args.shape_specs = list(dict.fromkeys(parse_shape(s) for s in shape_texts))
    except ValueError as exc:
        p.error(f"--shapes: {exc}")

    if args.threads is None:
        usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
        counts = [1, usable or _core.hardware_threads() or 1]
    else:
        try:
            counts = [int(t) for t in args.threads]
        except ValueError:
            p.error(f"--threads: expected comma-separated integers, got {','.join(args.threads)}")
        if not counts or min(counts) < 1:
            p.error("--threads: thread counts must be positive")
    args.thread_counts = sorted(set(counts))

    if args.repeat is None:
        args.repeat = QUICK_REPEAT if args.quick else DEFAULT_REPEAT
    floor = MIN_REPEAT if args.quick else DEFAULT_REPEAT
    if args.repeat < floor:
        p.error(
            f"--repeat must be at least {floor}"
            + ("" if args.quick else f" (or {MIN_REPEAT} with --quick)")
        )
    if args.plot and try_import("matplotlib") is None:
        p.error("--plot needs matplotlib: pip install matplotlib (or 'logitkit[plot]')")
    return args


# ---------------------------------------------------------------------------------- main


def _write(path: str, text: str) -> None:
    folder = os.path.dirname(path)
    if folder:
        os.makedirs(folder, exist_ok=True)
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(text)


def main(argv: Sequence[str] | None = None) -> int:
    wall_start = time.perf_counter()
    started = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    args = parse_args(argv)
    max_threads = max(args.thread_counts)
    stdout = sys.stdout

    specs: list[ShapeSpec] = []
    skipped: list[str] = []
    for spec in args.shape_specs:
        try:
            _np_dtype(spec.dtype)
            specs.append(spec)
        except LookupError as exc:
            skipped.append(f"{spec.name}: skipped, {exc}")

    need_x64 = any(s.dtype == "float64" for s in specs)
    peers = load_peers(args.peers, need_x64, max_threads)
    machine = machine_description()
    info = lk.runtime_info()
    versions = {"logitkit": info["version"], **peers.versions}
    versions.setdefault("numpy", np.__version__)
    ml_dtypes = try_import("ml_dtypes")
    if ml_dtypes is not None:
        versions["ml_dtypes"] = getattr(ml_dtypes, "__version__", "?")

    print(f"machine  : {_short_machine(machine)}", file=stdout)
    if machine["load_average_start"] is not None:
        load = ", ".join(f"{v:.2f}" for v in machine["load_average_start"])
        print(f"load avg : {load} (1, 5, 15 min) at start", file=stdout)
    print(
        f"logitkit : {info['version']}, ISA {info['active_isa']} "
        f"(available: {', '.join(info['supported_isas'])}), OpenMP {info['openmp']}",
        file=stdout,
    )
    print("versions : " + ", ".join(f"{k} {v}" for k, v in versions.items()), file=stdout)
    missing = ", ".join(f"{k} {v}" for k, v in peers.missing.items())
    print(
        f"threads  : {', '.join(map(str, args.thread_counts))} (peers at {max_threads} only"
        + (f"; torch set_num_threads({max_threads})" if peers.torch is not None else "")
        + ")"
        + (f"; missing: {missing}" if missing else ""),
        file=stdout,
    )
    print(f"repeat   : median of {args.repeat} timed calls after a warm-up call", file=stdout)
    for line in skipped:
        print(line, file=stdout)
    stdout.flush()

    plan = [
        (spec, th, op, mode)
        for spec in specs
        for th in args.thread_counts
        for op in args.ops
        for mode in _modes_of(op, args.modes)
    ]
    n_impls = 1 + len(peers.wanted)

    def weight(spec: ShapeSpec, th: int) -> float:
        nbytes = spec.rows * spec.cols * _np_dtype(spec.dtype).itemsize
        return nbytes * (n_impls + 2 if th == max_threads else 3)

    total = sum(weight(s, th) for s, th, _, _ in plan)
    bar = sys.stderr.isatty() and not args.no_progress
    progress = Progress(total, sys.stderr, bar)
    runner = Runner(args, peers, progress, max_threads)

    index = 0
    run_meter = CpuMeter()
    try:
        for spec in specs:
            x, target = make_inputs(spec, args.seed)
            buffers = Buffers(x)
            for th in args.thread_counts:
                for op in args.ops:
                    for mode in _modes_of(op, args.modes):
                        index += 1
                        case = Case(op, spec, mode, th, x, target)
                        rec = runner.measure(case, buffers, weight(spec, th), index, len(plan))
                        runner.records.append(rec)
            if peers.jax is not None:
                peers.jax.forget()
            del x, target, buffers
    finally:
        progress.close()

    machine["load_average_end"] = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
    wall = time.perf_counter() - wall_start
    result: dict[str, Any] = {
        "suite": "logitkit bench",
        "format": 1,
        "started": started,
        "wall_time_s": wall,
        "config": {
            "ops": args.ops,
            "shapes": [s.name for s in specs],
            "skipped_shapes": skipped,
            "modes": args.modes,
            "threads": args.thread_counts,
            "max_threads": max_threads,
            "repeat": args.repeat,
            "min_repeat_for_slow_calls": MIN_REPEAT,
            "slow_call_s": SLOW_CALL_S,
            "quick": args.quick,
            "peers": args.peers,
            "seed": args.seed,
            "timing": "time.perf_counter; per implementation one warm-up call, then the "
            "timed calls back to back; median",
            "bytes_moved": "read-type ops: input bytes; write-type ops: input + output bytes",
            "fraction": "yardstick median time / logitkit median time",
            "ratio": "peer median time / logitkit median time",
        },
        "machine": machine,
        "logitkit": info,
        "versions": versions,
        "records": runner.records,
        "others_cpu": run_meter.others(),
    }
    result["notes"] = skipped + collect_notes(result)

    print("", file=stdout)
    print(text_report(result), file=stdout)
    if args.json:
        _write(args.json, json.dumps(result, indent=1, allow_nan=False) + "\n")
        print(f"\nwrote {args.json}", file=stdout)
    if args.markdown:
        _write(args.markdown, markdown_report(result))
        print(f"wrote {args.markdown}", file=stdout)
    if args.plot:
        write_plot(result, args.plot)
        print(f"wrote {args.plot}", file=stdout)
    minutes, seconds = divmod(time.perf_counter() - wall_start, 60)
    print(f"\nwall time: {int(minutes)} min {seconds:.1f} s", file=stdout)
    return 0
