"""What a run measures: the ops, their modes, the shapes and dtypes, the repeat counts, the
inputs, and the list of (op, shape, mode, threads) cases."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .probe import try_import

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
#: Read-type ops whose vector result can go to a preallocated ``out=``. By default they have
#: READ_MODE only, their result being small next to their input; with ``--logsumexp-out`` they
#: run in the ``--modes`` as the write-type ops do, which shows what the allocation costs where
#: rows are short (262144x10: a 1 MB result from 10 MB of logits).
VECTOR_OUT_OPS = frozenset({"logsumexp"})
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
#: With --interleave, the pause before each timed call. A library's thread pool spins for a
#: few milliseconds after a call before it sleeps, and on 2 cores those spinning threads take
#: the cores from whatever runs next. On an AMD EPYC (2 threads), logitkit's float16 softmax
#: and log_softmax on 512x32000 with out=, which follow JAX's calls, took 20.8 and 18.1 ms
#: without a pause and 10.7 and 10.3 ms with this one (`python -m logitkit bench --interleave
#: --repeat 7 --threads 2 --ops softmax,log_softmax --shapes 512x32000:f16 --peers torch,jax`).
SETTLE_S = 0.02
DEFAULT_REPEAT = 5
QUICK_REPEAT = 3

DEFAULT_SPREAD = 3.0
DTYPE_SUFFIX = {"f32": "float32", "f64": "float64", "f16": "float16", "bf16": "bfloat16"}
DTYPE_SHORT = {v: k for k, v in DTYPE_SUFFIX.items()}


@dataclass(frozen=True)
class ShapeSpec:
    """A benchmark input: ``rows x cols`` logits of one dtype, reduced along ``axis``."""

    name: str
    rows: int
    cols: int
    dtype: str = "float32"
    axis: int = -1
    #: The logits' standard deviation. From about 20 on a large share of float32
    #: probabilities falls below the normal range, where a CPU without flush-to-zero may
    #: take a slow path.
    spread: float = DEFAULT_SPREAD

    @property
    def label(self) -> str:
        """The shape without the dtype: ``4096x1000``, ``4096x1000:axis0``, ``64x100:spread20``."""
        base = f"{self.rows}x{self.cols}"
        if self.axis != -1:
            base += ":axis0"
        if self.spread != DEFAULT_SPREAD:
            base += f":spread{self.spread:g}"
        return base

    @property
    def short_dtype(self) -> str:
        return DTYPE_SHORT[self.dtype]

    @property
    def n_classes(self) -> int:
        return self.cols if self.axis == -1 else self.rows

    @property
    def n_rows(self) -> int:
        return self.rows if self.axis == -1 else self.cols


def parse_shape(text: str) -> ShapeSpec:
    """``ROWSxCOLS`` followed by optional ``:axis0`` / ``:axis1``, ``:spreadS`` (logits of
    standard deviation S instead of 3) and a dtype suffix (``:f32``, ``:f64``, ``:f16``,
    ``:bf16``), e.g. ``512x32000:f16``, ``4096x1000:axis0`` or ``512x32000:spread20``."""
    parts = text.strip().lower().split(":")
    dims = parts[0].split("x")
    if len(dims) != 2 or not all(d.isdigit() and int(d) > 0 for d in dims):
        raise ValueError(f"shape {text!r}: expected ROWSxCOLS with positive sizes, e.g. 512x32000")
    dtype, axis, spread = "float32", -1, DEFAULT_SPREAD
    for suffix in parts[1:]:
        if suffix in DTYPE_SUFFIX:
            dtype = DTYPE_SUFFIX[suffix]
        elif suffix in ("axis0", "axis1", "axis-1"):
            axis = 0 if suffix == "axis0" else -1
        elif suffix.startswith("spread"):
            try:
                spread = float(suffix[len("spread") :])
            except ValueError:
                spread = -1.0
            if not spread > 0 or spread == float("inf"):
                raise ValueError(
                    f"shape {text!r}: {suffix!r} needs a positive finite spread, e.g. spread20"
                )
        else:
            known = ", ".join(["axis0", "axis1", "spreadS", *DTYPE_SUFFIX])
            raise ValueError(f"shape {text!r}: unknown suffix {suffix!r} (known: {known})")
    spec = ShapeSpec("", int(dims[0]), int(dims[1]), dtype, axis, spread)
    name = spec.label if dtype == "float32" else f"{spec.label}:{DTYPE_SHORT[dtype]}"
    return dataclasses.replace(spec, name=name)


def modes_of(op: str, modes: Sequence[str], vector_out: bool = False) -> list[str]:
    """The modes op runs in; ``vector_out`` gives the ops of VECTOR_OUT_OPS all of them."""
    if op in READ_OPS and not (vector_out and op in VECTOR_OUT_OPS):
        return [READ_MODE]
    return list(modes)


def np_dtype(name: str) -> np.dtype:
    if name == "bfloat16":
        ml_dtypes = try_import("ml_dtypes")
        if ml_dtypes is None:
            raise LookupError("bfloat16 needs ml_dtypes (pip install ml_dtypes)")
        return np.dtype(ml_dtypes.bfloat16)  # type: ignore[no-any-return]
    return np.dtype(name)


def make_inputs(spec: ShapeSpec, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Logits ``spread * standard normal`` (3 unless the shape says) in the spec's dtype, and
    uniform class-index targets."""
    rng = np.random.default_rng(seed)
    base = np.float64 if spec.dtype == "float64" else np.float32
    x = rng.standard_normal((spec.rows, spec.cols), dtype=base)
    x *= spec.spread
    x = x.astype(np_dtype(spec.dtype), copy=False)
    target = rng.integers(0, spec.n_classes, spec.n_rows, dtype=np.int64)
    return x, target


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


def case_list(
    specs: Sequence[ShapeSpec],
    thread_counts: Sequence[int],
    ops: Sequence[str],
    modes: Sequence[str],
    vector_out: bool = False,
) -> list[tuple[ShapeSpec, int, str, str]]:
    """Every (shape, threads, op, mode) in the order they run: shape by shape, so that one
    shape's inputs and buffers are made once and freed before the next."""
    return [
        (spec, th, op, mode)
        for spec in specs
        for th in thread_counts
        for op in ops
        for mode in modes_of(op, modes, vector_out)
    ]
