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

The modules, along their jobs: :mod:`.plan` (ops, shapes, dtypes, the case list),
:mod:`.probe` (the machine and what imports), :mod:`.peers` (how each implementation computes
each op, and the agreement check), :mod:`.timing` (the timed calls and the record of one
case), :mod:`.report` (progress, tables, Markdown, plot) and :mod:`.cli` (options and the run).
"""

from __future__ import annotations

from .cli import main, parse_args
from .plan import (
    DEFAULT_REPEAT,
    DEFAULT_SHAPES,
    MODES,
    OPS,
    PEERS,
    QUICK_REPEAT,
    QUICK_SHAPES,
    READ_MODE,
    READ_OPS,
    ShapeSpec,
    parse_shape,
)

__all__ = [
    "main",
    "parse_args",
    "parse_shape",
    "ShapeSpec",
    "OPS",
    "READ_OPS",
    "MODES",
    "READ_MODE",
    "PEERS",
    "DEFAULT_SHAPES",
    "QUICK_SHAPES",
    "DEFAULT_REPEAT",
    "QUICK_REPEAT",
]
