"""``logitkit eval``: metrics of model outputs (logits) against labels, streamed from files.

The logits file is mapped (or, where it cannot be, read) a chunk of rows at a time by a reader
thread while the computation works on the chunk before, two chunks at most at a time, so
reading overlaps computing and resident memory is a small multiple of one chunk whatever the
file size. One native pass over each chunk gives every per-row figure. Every metric is
accumulated as exact counts or float64 sums (compensated across chunks; the calibration error
as per-bin sums), so the result does not depend on the chunk size.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import queue
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import NDArray

import logitkit as lk

from . import _core
from ._eval_io import ArrayFile, EvalError, open_array, parse_dtype
from ._rows import class_rows, contiguous
from ._runtime import current_isa_index
from ._validation import check_threads

__all__ = ["main", "build_parser", "evaluate", "EvalError"]

LOG2 = math.log(2.0)
LOGIT_DTYPES = ("float16", "bfloat16", "float32", "float64")
CONFIDENCE_HISTOGRAM_BINS = 50

METRICS_HELP = """\
metrics (all over the counted rows: rows with a label that is not --ignore-index, and, with
--nonfinite skip, finite logits):
  cross_entropy    mean of -log softmax(z)[label], in nats.
  perplexity       exp(cross_entropy): corpus-level, over all counted tokens together (not
                   the mean of per-text perplexities that Hugging Face's `evaluate` reports).
  bits_per_token   cross_entropy / ln 2.
  accuracy         fraction of rows whose first largest logit is the label.
  top_k_accuracy   fraction of rows whose label ranks among the k largest logits; ties are
                   broken by class index (lower first), so k=1 equals accuracy
                   (scikit-learn's top_k_accuracy_score breaks them the other way).
  entropy_bits     mean entropy of softmax(z), in bits.
  ece              expected calibration error as torchmetrics computes it by default:
                   top-label confidence max softmax(z), --ece-bins equal-width bins [i/n,
                   (i+1)/n) (confidence exactly 1 in a bin of its own), |bin accuracy - bin
                   mean confidence| weighted by bin share (l1), its root mean square (l2) or
                   its maximum (max).
  mce              maximum calibration error: the --ece-norm max value, always reported.
  brier            multiclass Brier score: mean over rows of sum_c (p_c - onehot_c)^2 (in
                   [0, 2]).
  per_class        per label class: rows, accuracy and mean cross-entropy.
"""


@dataclasses.dataclass(frozen=True)
class Options:
    ignore_index: int = -100
    shift: bool = False
    class_axis: int = -1
    top_k: tuple[int, ...] = (1, 5)
    ece_bins: int = 15
    ece_norm: str = "l1"
    nonfinite: str = "error"
    chunk_bytes: int = 64 << 20
    threads: int | None = None


class RowStatistics(NamedTuple):
    """Per-row figures of a block of logits against its labels (one native pass)."""

    lse: NDArray[np.float64]
    max: NDArray[np.float64]
    loss: NDArray[np.float64]  # lse - z[label], in nats
    entropy: NDArray[np.float64]  # of softmax(z), in nats
    brier: NDArray[np.float64]  # sum_c (p_c - onehot_c)^2
    argmax: NDArray[np.int64]  # first index of the max (of the first NaN, if any)
    rank: NDArray[np.int64]  # classes with a larger logit, plus equal ones before the label
    finite: NDArray[np.bool_]  # no NaN or infinity in the row


def row_statistics(
    z: NDArray[Any], target: NDArray[np.int64], threads: int | None = None
) -> RowStatistics:
    """The statistics of each row of ``z`` (rows x classes; float16, bfloat16, float32 or
    float64, read as stored) against ``target`` (a class index per row, each in range), in
    two reads of the row. A row whose maximum is not finite (a NaN, +inf, or only -inf) has
    lse as logsumexp gives it and NaN loss, entropy and Brier term."""
    n = z.shape[0]
    stats = RowStatistics(
        lse=np.empty(n),
        max=np.empty(n),
        loss=np.empty(n),
        entropy=np.empty(n),
        brier=np.empty(n),
        argmax=np.empty(n, dtype=np.int64),
        rank=np.empty(n, dtype=np.int64),
        finite=np.empty(n, dtype=np.bool_),
    )
    _core.eval_rows(
        contiguous(z),
        contiguous(target, np.int64),
        *stats,
        current_isa_index(),
        check_threads("eval", threads),
    )
    return stats


class Compensated:
    """Neumaier-compensated running sum of float64 scalars or arrays."""

    def __init__(self, shape: tuple[int, ...] = ()) -> None:
        self.total = np.zeros(shape, dtype=np.float64)
        self.comp = np.zeros(shape, dtype=np.float64)

    def add(self, value: Any) -> None:
        v = np.asarray(value, dtype=np.float64)
        t = self.total + v
        big = np.abs(self.total) >= np.abs(v)
        self.comp += np.where(big, (self.total - t) + v, (v - t) + self.total)
        self.total = t

    def value(self) -> Any:
        return self.total + self.comp


class Accumulator:
    """Counts and sums from which every metric follows; fed chunk by chunk."""

    def __init__(self, n_classes: int, opts: Options) -> None:
        self.C = n_classes
        self.opts = opts
        self.ks = tuple(opts.top_k)
        self.n_rows = 0
        self.n_counted = 0
        self.n_ignored = 0
        self.n_nonfinite = 0
        self.n_correct = 0
        self.topk_hits = dict.fromkeys(self.ks, 0)
        self.loss = Compensated()
        self.entropy = Compensated()
        self.brier = Compensated()
        # torchmetrics' layout: n bins plus a last slot that only a confidence of exactly 1
        # reaches (bucketize(..., right=True) - 1 over n + 1 boundaries)
        self.edges = np.linspace(0.0, 1.0, opts.ece_bins + 1)
        self.bin_count = np.zeros(opts.ece_bins + 1, dtype=np.int64)
        self.bin_correct = np.zeros(opts.ece_bins + 1, dtype=np.int64)
        self.bin_conf = Compensated((opts.ece_bins + 1,))
        self.hist_count = np.zeros(CONFIDENCE_HISTOGRAM_BINS, dtype=np.int64)
        self.hist_correct = np.zeros(CONFIDENCE_HISTOGRAM_BINS, dtype=np.int64)
        self.class_count = np.zeros(n_classes, dtype=np.int64)
        self.class_correct = np.zeros(n_classes, dtype=np.int64)
        self.class_loss = Compensated((n_classes,))

    def update(
        self,
        z: NDArray[Any],
        labels: NDArray[np.int64],
        has_target: NDArray[np.bool_] | None,
        where: tuple[ArrayFile, ArrayFile, int, int],
    ) -> None:
        """Add rows ``z`` (rows x classes, C order, any of the logit dtypes, as stored) with
        their ``labels``; rows where ``has_target`` is False (the last position of a shifted
        sequence) are not rows at all. ``where``: the two files, the first row's index and the
        label shift, for messages.

        Every row is computed on and the rows that do not count are masked out of the sums:
        cheaper than copying the rows that do, which would be a pass over the chunk."""
        logits_file, labels_file, row0, shift = where
        opts = self.opts
        is_row = np.ones(labels.shape[0], dtype=bool) if has_target is None else has_target
        self.n_rows += int(is_row.sum())
        counted = is_row & (labels != opts.ignore_index)
        bad = counted & ((labels < 0) | (labels >= self.C))
        if bad.any():
            i = int(np.argmax(bad))
            pos = np.unravel_index(row0 + i + shift, labels_file.shape)
            raise EvalError(
                f"{labels_file.label}: label {int(labels[i])} at {_fmt_index(pos)} is out of "
                f"range for {self.C} classes (and is not the ignore index {opts.ignore_index})"
            )
        target = np.where(counted, labels, 0)
        n = target.shape[0]

        # One native pass gives every per-row figure: loss, entropy, Brier term, rank of the
        # label (classes with a larger logit plus equal ones before it: argmax's tie rule,
        # so that top-1 is the accuracy), max, logsumexp and whether the row is finite
        # (NaN or an infinity of either sign).
        stats = row_statistics(z, target, opts.threads)
        finite = stats.finite
        nonfinite = counted & ~finite
        n_nonfinite = int(nonfinite.sum())
        if n_nonfinite:
            if opts.nonfinite == "error":
                i = int(np.argmax(nonfinite))
                pos = np.unravel_index(row0 + i, _rows_shape(logits_file.shape, opts.class_axis))
                raise EvalError(
                    f"{logits_file.label}: non-finite logits (NaN or infinity) in row "
                    f"{_fmt_index(pos)}; pass --nonfinite skip to leave such rows out"
                )
            self.n_nonfinite += n_nonfinite
            counted &= finite
        m = int(counted.sum())
        self.n_ignored += int(is_row.sum()) - m - n_nonfinite
        if m == 0:
            return
        self.n_counted += m
        sel: Any = slice(None) if m == n else counted

        loss64 = stats.loss[sel]
        correct = (stats.argmax == target)[sel]
        t = target[sel]
        self.loss.add(loss64.sum())
        self.n_correct += int(correct.sum())
        self.entropy.add(stats.entropy[sel].sum() / LOG2)
        rank = stats.rank[sel]
        for k in self.ks:
            self.topk_hits[k] += int(np.count_nonzero(rank < k))
        self.brier.add(stats.brier[sel].sum())

        lse = stats.lse[sel]
        top = stats.max[sel]
        conf = np.minimum(np.exp(top - lse), 1.0)
        bins = np.searchsorted(self.edges, conf, side="right") - 1
        nb = self.bin_count.shape[0]
        self.bin_count += np.bincount(bins, minlength=nb)
        self.bin_correct += np.bincount(bins[correct], minlength=nb)
        self.bin_conf.add(np.bincount(bins, weights=conf, minlength=nb))
        hb = np.minimum(
            (conf * CONFIDENCE_HISTOGRAM_BINS).astype(np.int64), CONFIDENCE_HISTOGRAM_BINS - 1
        )
        self.hist_count += np.bincount(hb, minlength=CONFIDENCE_HISTOGRAM_BINS)
        self.hist_correct += np.bincount(hb[correct], minlength=CONFIDENCE_HISTOGRAM_BINS)

        self.class_count += np.bincount(t, minlength=self.C)
        self.class_correct += np.bincount(t[correct], minlength=self.C)
        self.class_loss.add(np.bincount(t, weights=loss64, minlength=self.C))

    def result(self) -> dict[str, Any]:
        n = self.n_counted
        nan = float("nan")

        def mean(total: float) -> float:
            return float(total) / n if n else nan

        ce = mean(self.loss.value())
        count = self.bin_count.astype(np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            acc_bin = np.where(count > 0, self.bin_correct / count, 0.0)
            conf_bin = np.where(count > 0, self.bin_conf.value() / count, 0.0)
        gap = np.abs(acc_bin - conf_bin)
        prop = count / n if n else count
        ece_by_norm = {
            "l1": float((gap * prop).sum()),
            "l2": float(math.sqrt((gap * gap * prop).sum())),
            "max": float(gap.max()),
        }
        cls = self.class_count.astype(np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            cls_acc = self.class_correct / cls
            cls_loss = self.class_loss.value() / cls
        return {
            "n_rows": self.n_rows,
            "n_counted": n,
            "n_ignored": self.n_ignored,
            "n_nonfinite": self.n_nonfinite,
            "n_classes": self.C,
            "cross_entropy": ce,
            "perplexity": math.exp(ce) if ce == ce else nan,
            "bits_per_token": ce / LOG2,
            "accuracy": mean(self.n_correct),
            "top_k_accuracy": {str(k): mean(v) for k, v in self.topk_hits.items()},
            "entropy_bits": mean(self.entropy.value()),
            "ece": ece_by_norm[self.opts.ece_norm] if n else nan,
            "mce": ece_by_norm["max"] if n else nan,
            "brier": mean(self.brier.value()),
            "calibration": {
                "bins": self.opts.ece_bins,
                "norm": self.opts.ece_norm,
                "edges": self.edges.tolist(),
                "count": self.bin_count.tolist(),
                "accuracy": acc_bin.tolist(),
                "confidence": conf_bin.tolist(),
                "ece_l1": ece_by_norm["l1"] if n else nan,
                "ece_l2": ece_by_norm["l2"] if n else nan,
            },
            "confidence_histogram": {
                "edges": np.linspace(0, 1, CONFIDENCE_HISTOGRAM_BINS + 1).tolist(),
                "count": self.hist_count.tolist(),
                "correct": self.hist_correct.tolist(),
            },
            "per_class": {
                "count": self.class_count.tolist(),
                "accuracy": cls_acc.tolist(),
                "cross_entropy": cls_loss.tolist(),
            },
        }


def _fmt_index(pos: tuple[Any, ...]) -> str:
    return "[" + ", ".join(str(int(p)) for p in pos) + "]"


def _rows_shape(shape: tuple[int, ...], axis: int) -> tuple[int, ...]:
    return shape[:axis] + shape[axis + 1 :] if axis != -1 else shape[:-1]


@dataclasses.dataclass(frozen=True)
class Layout:
    """The logits as (P, C, Q): P rows before the class axis, Q after, row = p * Q + q."""

    P: int
    C: int
    Q: int

    @property
    def n_rows(self) -> int:
        return self.P * self.Q

    def chunks(self, rows_per_chunk: int) -> Iterator[tuple[int, int]]:
        R = max(1, rows_per_chunk)
        if self.Q == 1 or self.Q <= R:
            step = R if self.Q == 1 else (R // self.Q) * self.Q
            for r0 in range(0, self.n_rows, step):
                yield r0, min(r0 + step, self.n_rows)
        else:
            for p in range(self.P):
                for q0 in range(0, self.Q, R):
                    yield p * self.Q + q0, p * self.Q + min(q0 + R, self.Q)


def _read_logits(
    src: ArrayFile, layout: Layout, r0: int, r1: int, buf: NDArray[np.uint8]
) -> NDArray[Any]:
    """Rows [r0, r1) as a (rows, classes) array: mapped from the file where it can be (no
    copy), else read into ``buf``; a copy when the class axis is not last."""
    C, Q, isz = layout.C, layout.Q, src.dtype.itemsize
    n = r1 - r0
    raw = buf[: n * C * isz]
    if Q == 1 or (r0 % Q == 0 and n % Q == 0):
        flat = src.map_elements(r0 * C, n * C)
        if flat is None:
            src.read_elements(raw.data, r0 * C)
            flat = raw.view(src.dtype)
        if Q == 1:
            return flat.reshape(n, C)
        return class_rows(flat.reshape(n // Q, C, Q), 1)
    p, q0 = divmod(r0, Q)
    seg = n * isz
    for c in range(C):
        src.read_elements(raw[c * seg : (c + 1) * seg].data, (p * C + c) * Q + q0)
    return class_rows(raw.view(src.dtype).reshape(C, n), 0)


def _read_labels(src: ArrayFile, start: int, count: int) -> NDArray[np.int64]:
    out = np.empty(count, dtype=src.dtype)
    if count:
        src.read_elements(out.view(np.uint8).data, start)
    return out.astype(np.int64, copy=False)


class _Prefetcher:
    """Reads (or maps) chunk i + 1 in a thread while chunk i is computed on: two buffers,
    taking turns. A mapped chunk does not use its buffer, but holds it until the consumer is
    done with the chunk, so that at most two chunks are mapped at a time; the consumer drops
    its references to a chunk before asking for the next one."""

    def __init__(
        self,
        logits: ArrayFile,
        labels: ArrayFile,
        layout: Layout,
        ranges: list[tuple[int, int]],
        shift: int,
        buf_bytes: int,
    ) -> None:
        self.free: queue.Queue[NDArray[np.uint8]] = queue.Queue()
        for _ in range(2):
            self.free.put(np.empty(buf_bytes, dtype=np.uint8))
        self.full: queue.Queue[Any] = queue.Queue()
        self.stop = threading.Event()
        self.args = (logits, labels, layout, ranges, shift)
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        logits, labels, layout, ranges, shift = self.args
        try:
            for r0, r1 in ranges:
                buf = self.free.get()
                if self.stop.is_set():
                    return
                z = _read_logits(logits, layout, r0, r1, buf)
                lo, hi = r0 + shift, min(r1 + shift, layout.n_rows)
                self.full.put((r0, r1, z, _read_labels(labels, lo, hi - lo), buf))
        except BaseException as exc:  # handed to the consumer, which reports it
            self.full.put(exc)
        self.full.put(None)

    def __iter__(self) -> Iterator[tuple[int, int, NDArray[Any], NDArray[np.int64]]]:
        while True:
            item = self.full.get()
            if item is None:
                return
            if isinstance(item, BaseException):
                raise item
            r0, r1, z, lab, buf = item
            yield r0, r1, z, lab
            del item, z  # unmaps a mapped chunk, once the consumer has let go of it too
            self.free.put(buf)

    def close(self) -> None:
        self.stop.set()
        self.free.put(np.empty(0, dtype=np.uint8))  # wake a reader waiting for a buffer
        self.thread.join()


def _compute_view(z: NDArray[Any]) -> NDArray[Any]:
    """The rows as the kernel reads them: any logit dtype as stored (16-bit ones too, so
    no pass over the chunk converts them), in native byte order."""
    if not z.dtype.isnative:
        return z.astype(z.dtype.newbyteorder("="))
    return z


@dataclasses.dataclass
class Inputs:
    logits: ArrayFile
    labels: ArrayFile
    layout: Layout
    axis: int


def resolve_inputs(
    logits_spec: str,
    labels_spec: str,
    opts: Options,
    shape: tuple[int, ...] | None = None,
    dtype: str | None = None,
    labels_dtype: str | None = None,
) -> Inputs:
    raw_dtype = parse_dtype(dtype) if dtype else None
    if shape is not None and raw_dtype is None:
        raw_dtype = np.dtype(np.float32)
    override = parse_dtype(dtype) if dtype else None
    logits = open_array(
        logits_spec,
        prefer_member="logits",
        raw_shape=shape,
        raw_dtype=raw_dtype if shape is not None else None,
        dtype_override=override,
    )
    if logits.dtype.name not in LOGIT_DTYPES:
        raise EvalError(
            f"{logits.label}: logits must be float16, bfloat16, float32 or float64, "
            f"got {logits.dtype}"
        )
    if len(logits.shape) not in (2, 3):
        raise EvalError(
            f"{logits.label}: logits must be 2-D (rows x classes) or 3-D (batch x sequence x "
            f"classes), got shape {logits.shape}"
        )
    nd = len(logits.shape)
    if not -nd <= opts.class_axis < nd:
        raise EvalError(
            f"{logits.label}: --class-axis {opts.class_axis} is out of range for {nd}-D logits"
        )
    axis = opts.class_axis % nd
    rows_shape = logits.shape[:axis] + logits.shape[axis + 1 :]
    lab_raw = parse_dtype(labels_dtype) if labels_dtype else None
    labels = open_array(
        labels_spec,
        prefer_member="labels",
        raw_shape=rows_shape if lab_raw is not None else None,
        raw_dtype=lab_raw,
    )
    if labels.dtype.kind not in "iu":
        raise EvalError(
            f"{labels.label}: labels must be integers (class indices), got {labels.dtype}"
        )
    if labels.shape != rows_shape:
        raise EvalError(
            f"{labels.label}: labels have shape {labels.shape}, but logits "
            f"{logits.shape} with class axis {axis} need {rows_shape}"
        )
    C = logits.shape[axis]
    if C == 0 or math.prod(rows_shape) == 0:
        raise EvalError(f"{logits.label}: logits of shape {logits.shape} hold no rows to evaluate")
    if opts.shift and rows_shape[-1] < 2:
        raise EvalError(
            f"{logits.label}: --shift needs a sequence axis of at least 2 positions, got "
            f"shape {logits.shape}"
        )
    layout = Layout(math.prod(logits.shape[:axis]), C, math.prod(logits.shape[axis + 1 :]))
    if not logits.seekable and not (
        layout.Q == 1 or layout.Q * C * logits.dtype.itemsize <= opts.chunk_bytes
    ):
        raise EvalError(
            f"{logits.label}: a compressed .npz member can only be read front to back, and "
            "this class axis needs it read out of order; store it uncompressed (np.savez) or "
            "with the class axis last"
        )
    return Inputs(logits, labels, layout, axis)


def evaluate(inputs: Inputs, opts: Options, progress: Any = None) -> tuple[dict[str, Any], float]:
    """Stream the files through an :class:`Accumulator`; returns the metrics and seconds."""
    logits, labels, layout = inputs.logits, inputs.labels, inputs.layout
    row_bytes = layout.C * logits.dtype.itemsize
    rows_per_chunk = max(1, opts.chunk_bytes // row_bytes)
    ranges = list(layout.chunks(rows_per_chunk))
    buf_bytes = max(r1 - r0 for r0, r1 in ranges) * row_bytes
    acc = Accumulator(layout.C, opts)
    shift = 1 if opts.shift else 0
    seq = inputs.labels.shape[-1]
    start = time.perf_counter()
    logits.open()
    labels.open()
    reader = _Prefetcher(logits, labels, layout, ranges, shift, buf_bytes)
    try:
        for r0, r1, z, lab in reader:
            has_target = None
            if shift:
                ids = np.arange(r0, r1)
                has_target = ids % seq != seq - 1
                full = np.full(r1 - r0, opts.ignore_index, dtype=np.int64)
                full[: lab.shape[0]] = lab
                lab = full
            acc.update(_compute_view(z), lab, has_target, (logits, labels, r0, shift))
            del z  # see _Prefetcher
            if progress is not None:
                progress.update(r1 - r0)
    finally:
        reader.close()
        logits.close()
        labels.close()
    return acc.result(), time.perf_counter() - start


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not value > 0 or not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _int_list(text: str) -> tuple[int, ...]:
    try:
        values = tuple(sorted({int(v) for v in text.split(",") if v.strip()}))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated positive integers, got {text!r}"
        ) from None
    if not values or values[0] <= 0:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated positive integers, got {text!r}"
        )
    return values


def _shape(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.replace("x", ",").split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a shape such as 8192,32000, got {text!r}"
        ) from None
    if not values or min(values) < 0:
        raise argparse.ArgumentTypeError(f"expected a shape such as 8192,32000, got {text!r}")
    return values


def build_parser(prog: str = "logitkit eval") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Evaluate model outputs (logits) against integer labels, streaming the "
        "files in chunks:\ncross-entropy, perplexity, accuracy, top-k accuracy, entropy, "
        "calibration error, Brier score\nand per-class figures. Exit code 2 on bad input.",
        epilog=METRICS_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "logits",
        metavar="LOGITS",
        help="logits: .npy, .npz (FILE.npz:NAME picks a member; 'logits' by default) or raw "
        "binary with --shape; 2-D (rows x classes) or 3-D (batch x sequence x classes)",
    )
    parser.add_argument(
        "labels",
        metavar="LABELS",
        help="class indices of any integer dtype, shaped like the logits without the class "
        "axis: .npy, .npz (FILE.npz:NAME; 'labels' by default) or raw with --labels-dtype",
    )
    parser.add_argument("--shape", type=_shape, help="shape of a raw logits file, e.g. 8192,32000")
    parser.add_argument(
        "--dtype",
        choices=LOGIT_DTYPES,
        help="element type of a raw logits file (default float32); bfloat16 also reads an "
        ".npy that ml_dtypes saved (its header says V2)",
    )
    parser.add_argument("--labels-dtype", help="element type of a raw labels file, e.g. int64")
    parser.add_argument(
        "--ignore-index",
        type=int,
        default=-100,
        help="label of padding rows, not counted (default -100)",
    )
    parser.add_argument(
        "--shift",
        action="store_true",
        help="causal language model: the logits at position t are scored against the label "
        "at t + 1 along the last non-class axis; the last position has no label",
    )
    parser.add_argument(
        "--class-axis", type=int, default=-1, help="axis of the classes (default -1)"
    )
    parser.add_argument(
        "--top-k", type=_int_list, default=(1, 5), help="k values for top-k accuracy (default 1,5)"
    )
    parser.add_argument(
        "--ece-bins",
        type=_positive_int,
        default=15,
        help="equal-width confidence bins (default 15)",
    )
    parser.add_argument(
        "--ece-norm",
        choices=("l1", "l2", "max"),
        default="l1",
        help="calibration error norm (default l1)",
    )
    parser.add_argument(
        "--nonfinite",
        choices=("error", "skip"),
        default="error",
        help="rows with NaN or infinite logits: stop with an error (default), or leave them "
        "out and count them",
    )
    parser.add_argument(
        "--chunk-mb",
        type=_positive_float,
        default=64,
        help="logits read per chunk, in MB (default 64); peak memory is a few chunks",
    )
    parser.add_argument(
        "--threads", type=_positive_int, default=None, help="kernel threads (default: all cores)"
    )
    parser.add_argument(
        "--classes", type=int, default=5, help="worst and best classes to list (default 5)"
    )
    parser.add_argument(
        "--min-class-rows",
        type=int,
        default=10,
        help="rank only classes with at least this many counted rows (default 10)",
    )
    parser.add_argument("--json", metavar="FILE", help="write every metric to FILE as JSON")
    parser.add_argument(
        "--plot",
        metavar="DIR",
        help="write reliability, confidence and per-class plots (PNG) to DIR (needs matplotlib)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def _jsonable(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def _class_lines(res: dict[str, Any], n_show: int, min_rows: int) -> list[str]:
    pc = res["per_class"]
    count = np.asarray(pc["count"])
    n_present = int(np.count_nonzero(count))
    present = np.flatnonzero(count >= max(min_rows, 1))
    if n_show <= 0 or n_present == 0:
        return []
    if present.size == 0:
        return [
            f"per class ({n_present} classes present, none with {min_rows} rows or more; "
            "full table in --json)"
        ]
    acc = np.asarray(pc["accuracy"])[present]
    loss = np.asarray(pc["cross_entropy"])[present]
    order = np.lexsort((-loss, acc))  # worst: lowest accuracy, then highest loss
    lines = [
        f"per class ({n_present} classes present; {present.size} with at least {min_rows} "
        "rows ranked; full table in --json):"
    ]
    n_show = min(n_show, present.size)

    def row(i: int) -> str:
        c = present[i]
        return (
            f"    class {c:>7}: {count[c]:>10} rows, accuracy {acc[i]:.4f}, "
            f"cross-entropy {loss[i]:.4f}"
        )

    lines.append("  worst:")
    lines += [row(i) for i in order[:n_show]]
    lines.append("  best:")
    lines += [row(i) for i in order[::-1][:n_show]]
    return lines


def format_report(
    res: dict[str, Any], inputs: Inputs, seconds: float, n_show: int = 5, min_rows: int = 10
) -> str:
    lg, lb = inputs.logits, inputs.labels
    ece_label = f"ece ({res['calibration']['norm']}, {res['calibration']['bins']} bins)"
    lines = [
        f"logits {lg.label}: {lg.shape} {lg.dtype}, {lg.nbytes / 1e9:.3f} GB "
        f"(class axis {inputs.axis})",
        f"labels {lb.label}: {lb.shape} {lb.dtype}",
        f"rows {res['n_rows']}, counted {res['n_counted']} ({res['n_ignored']} ignored, "
        f"{res['n_nonfinite']} non-finite), classes {res['n_classes']}",
        "",
        f"{'cross_entropy':<22} {res['cross_entropy']:.6f} nats",
        f"{'perplexity':<22} {res['perplexity']:.6g} (corpus-level)",
        f"{'bits_per_token':<22} {res['bits_per_token']:.6f}",
        f"{'accuracy':<22} {res['accuracy']:.6f}",
    ]
    for k, v in res["top_k_accuracy"].items():
        lines.append(f"{f'top_{k}_accuracy':<22} {v:.6f}")
    lines += [
        f"{'entropy_bits':<22} {res['entropy_bits']:.6f}",
        f"{ece_label:<22} {res['ece']:.6f}",
        f"{'mce':<22} {res['mce']:.6f}",
        f"{'brier':<22} {res['brier']:.6f}",
        "",
    ]
    lines += _class_lines(res, n_show, min_rows)
    rows = inputs.layout.n_rows
    secs = max(seconds, 1e-9)
    lines.append(
        f"\n{seconds:.2f} s: {rows / secs:,.0f} rows/s, {lg.nbytes / secs / 1e9:.3f} GB/s of logits"
    )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None, prog: str = "logitkit eval") -> int:
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    opts = Options(
        ignore_index=args.ignore_index,
        shift=args.shift,
        class_axis=args.class_axis,
        top_k=args.top_k,
        ece_bins=args.ece_bins,
        ece_norm=args.ece_norm,
        nonfinite=args.nonfinite,
        chunk_bytes=max(1, int(args.chunk_mb * (1 << 20))),
        threads=args.threads,
    )
    try:
        # Output paths are checked before a long run, not after it.
        if args.plot:
            if os.path.exists(args.plot) and not os.path.isdir(args.plot):
                raise EvalError(f"{args.plot}: --plot needs a directory, and this is a file")
            from ._eval_plot import check_available

            check_available()
        if args.json:
            folder = os.path.dirname(os.path.abspath(args.json))
            if not os.path.isdir(folder):
                raise EvalError(f"{args.json}: cannot write the JSON (no directory {folder})")
        inputs = resolve_inputs(
            args.logits, args.labels, opts, args.shape, args.dtype, args.labels_dtype
        )
        bar = None
        if not args.quiet and sys.stderr.isatty():
            try:
                from tqdm import tqdm
            except ImportError:
                tqdm = None
            if tqdm is not None:
                # tqdm draws nothing on a terminal that reports no size (a bare
                # pseudo-terminal): give it one.
                try:
                    width = os.get_terminal_size(sys.stderr.fileno()).columns
                except OSError:
                    width = 0
                bar = tqdm(
                    total=inputs.layout.n_rows,
                    unit="row",
                    unit_scale=True,
                    file=sys.stderr,
                    desc="eval",
                    dynamic_ncols=width > 0,
                    ncols=None if width > 0 else 80,
                    nrows=None if width > 0 else 24,
                )
        try:
            res, seconds = evaluate(inputs, opts, bar)
        finally:
            if bar is not None:
                bar.close()
        print(format_report(res, inputs, seconds, args.classes, args.min_class_rows))
        res["timing"] = {
            "seconds": seconds,
            "rows_per_second": inputs.layout.n_rows / seconds if seconds > 0 else None,
            "logits_bytes": inputs.logits.nbytes,
            "bytes_per_second": inputs.logits.nbytes / seconds if seconds > 0 else None,
        }
        res["inputs"] = {
            "logits": {
                "file": inputs.logits.label,
                "shape": list(inputs.logits.shape),
                "dtype": str(inputs.logits.dtype),
            },
            "labels": {
                "file": inputs.labels.label,
                "shape": list(inputs.labels.shape),
                "dtype": str(inputs.labels.dtype),
            },
        }
        res["options"] = {
            k: (list(v) if isinstance(v, tuple) else v) for k, v in vars(args).items()
        }
        res["version"] = lk.__version__
        if args.json:
            try:
                with open(args.json, "w") as f:
                    json.dump(_jsonable(res), f, indent=1, allow_nan=False)
                    f.write("\n")
            except OSError as exc:
                raise EvalError(f"{args.json}: cannot write the JSON ({exc.strerror})") from None
        if args.plot:
            from ._eval_plot import write_plots

            try:
                paths = write_plots(res, args.plot)
            except OSError as exc:
                raise EvalError(f"{args.plot}: cannot write the plots ({exc.strerror})") from None
            print("plots: " + ", ".join(paths))
    except EvalError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        name = exc.filename or "input"
        print(f"{prog}: error: {name}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
