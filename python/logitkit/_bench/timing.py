"""Timing one case: the warm-up and timed calls of logitkit, of its bandwidth yardstick on
the same bytes and of each peer, their medians, and the record they make."""

from __future__ import annotations

import argparse
import math
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np

from .. import _core
from .._runtime import current_isa_index
from .peers import OUT_OPS, PeerSet, logitkit_variant, max_abs_diff, to_numpy, tolerance
from .plan import MIN_REPEAT, READ_MODE, READ_OPS, SETTLE_S, SLOW_CALL_S, Case
from .probe import CpuMeter
from .report import Progress, record_line


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
    first = warm_up(timing, fn, repeat, on_call)
    if on_call is not None:
        on_call(timing.label)
    while timing.error is None and len(timing.times) < timing.target_repeat:
        _timed_call(timing, fn)
    return first


def warm_up(
    timing: Timing,
    fn: Callable[[], Any],
    repeat: int,
    on_call: Callable[[str], None] | None = None,
) -> Any:
    """The untimed first call, which sets the Timing up for `repeat` timed calls; returns its
    result. An exception propagates."""
    if on_call is not None:
        on_call(f"{timing.label} (warm-up)")
    timing.first_call_s, first = _call(fn)
    timing.target_repeat = repeat
    return first


def _timed_call(timing: Timing, fn: Callable[[], Any]) -> None:
    try:
        elapsed, result = _call(fn)
    except Exception as exc:
        timing.error = _error_text(exc)
        return
    del result  # freeing a large result is not part of the call being timed
    timing.times.append(elapsed)
    if len(timing.times) == 1 and elapsed > SLOW_CALL_S and timing.target_repeat > MIN_REPEAT:
        timing.target_repeat = MIN_REPEAT
        timing.capped = True


def time_round_robin(
    entries: Sequence[tuple[Timing, Callable[[], Any], Callable[[str], None] | None]],
    settle_s: float = SETTLE_S,
) -> None:
    """The timed calls of callables that had their warm_up, in turns: one call of each per
    round (``--interleave``), each after a pause of settle_s.

    A change in clock speed, or a burst of other work, during the case then falls on every
    implementation alike instead of on whichever was running at that moment. The price is
    the one time_block avoids: each call follows another library's, and may pay for waking
    its own thread pool. The pause lets the previous library's threads stop spinning first,
    so that they do not take the cores from the call being timed (SETTLE_S). A callable
    leaves the rotation when it has its calls (MIN_REPEAT after a slow first one, as in
    time_block) or when a call raises (the Timing keeps the error).
    """
    active = list(entries)
    while active:
        for timing, fn, on_call in active:
            if on_call is not None:
                on_call(timing.label)
            time.sleep(settle_s)
            _timed_call(timing, fn)
        active = [e for e in active if e[0].error is None and len(e[0].times) < e[0].target_repeat]


def _error_text(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    first = text[0] if text else ""
    return f"{type(exc).__name__}: {first}"[:200]


def _float32_bytes(a: np.ndarray) -> np.ndarray:
    """A contiguous array's memory as a 1-d float32 array (a trailing 1-3 bytes left out)."""
    raw = a.reshape(-1).view(np.uint8)
    return raw[: raw.size // 4 * 4].view(np.float32)


@dataclass
class Buffers:
    """Preallocated outputs of one shape, reused across ops and thread counts."""

    x: np.ndarray
    _bufs: dict[str, np.ndarray] = field(default_factory=dict)

    def get(self, owner: str) -> np.ndarray:
        if owner not in self._bufs:
            self._bufs[owner] = np.empty_like(self.x)  # the warm-up call maps its pages
        return self._bufs[owner]

    def reduced(self, owner: str, axis: int) -> np.ndarray:
        """A result of x reduced along axis (logsumexp's out=), in x's dtype."""
        key = f"{owner} reduced along {axis}"
        if key not in self._bufs:
            shape = list(self.x.shape)
            del shape[axis]
            self._bufs[key] = np.empty(shape, self.x.dtype)
        return self._bufs[key]


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
    value = to_numpy(value)
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

        def out_buffer(owner: str) -> np.ndarray:
            return buffers.reduced(owner, case.axis) if op in READ_OPS else buffers.get(owner)

        def raise_on_error(timing: Timing, who: str = "") -> None:
            if timing.error is not None:
                raise RuntimeError(f"{what}: {who}{timing.label} failed: {timing.error}")

        repeat = self.args.repeat
        # With --interleave every implementation gets only its warm-up call here, and the
        # timed calls all come at the end, in turns.
        interleave = self.args.interleave
        first_calls = warm_up if interleave else time_block
        turns: list[tuple[Timing, Callable[[], Any], Callable[[str], None] | None]] = []
        meter = CpuMeter()
        lk_variant = logitkit_variant(case, out_buffer("logitkit") if case.uses_out else None)
        lk_timing = Timing(lk_variant.label, uses_out=lk_variant.uses_out)
        reference = _copy_result(first_calls(lk_timing, lk_variant.run, repeat, on_call))
        turns.append((lk_timing, lk_variant.run, on_call))
        raise_on_error(lk_timing)

        yard = yardstick_entries(kind, case.x, buffers, case.threads)
        for timing, fn in yard:
            first_calls(timing, fn, repeat, partial(on_call, who="yardstick"))
            turns.append((timing, fn, partial(on_call, who="yardstick")))
            raise_on_error(timing, "yardstick ")

        peer_results: dict[str, dict[str, Any]] = {}
        peer_timings: dict[str, Timing] = {}
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
                buf = out_buffer(peer) if case.uses_out and has_out else None
                variant = self.peers.variant(peer, case, buf)
                timing = Timing(variant.label, uses_out=variant.uses_out)
                first = first_calls(timing, variant.run, repeat, partial(on_call, who=peer))
                got = to_numpy(first)
                del first
            except Exception as exc:
                peer_results[peer] = {"status": f"failed: {_error_text(exc)}"}
                continue
            if timing.error is not None:
                peer_results[peer] = {"status": f"failed: {timing.error}"}
                continue
            if tol is None:
                tol = tolerance(reference, spec.dtype)
            diff = max_abs_diff(got, reference)
            del got
            peer_results[peer] = {
                "status": "ok",
                "max_abs_diff": diff if math.isfinite(diff) else None,
                "tolerance": tol,
                "agrees": bool(diff <= tol),
            }
            peer_timings[peer] = timing
            turns.append((timing, variant.run, partial(on_call, who=peer)))

        if interleave:
            time_round_robin(turns)
            raise_on_error(lk_timing)
            for timing, _ in yard:
                raise_on_error(timing, "yardstick ")
        for peer, timing in peer_timings.items():
            if timing.error is not None:
                peer_results[peer] = {"status": f"failed: {timing.error}"}
                continue
            peer_results[peer].update(timing.as_json())
            if case.mode != READ_MODE and op not in OUT_OPS[peer]:
                key = (peer, op, spec.name, case.threads)
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
        self.progress.advance(weight, f"[{index:>3}/{count}] " + record_line(record))
        return record
