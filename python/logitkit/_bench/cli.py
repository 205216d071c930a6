"""The command line: ``python -m logitkit bench`` options, and the run from the machine
probe to the reports."""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import sys
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

import logitkit as lk

from .. import _core
from .peers import load_peers
from .plan import (
    DEFAULT_REPEAT,
    DEFAULT_SHAPES,
    MIN_REPEAT,
    MODES,
    OPS,
    PEERS,
    QUICK_REPEAT,
    QUICK_SHAPES,
    SETTLE_S,
    SLOW_CALL_S,
    Case,
    ShapeSpec,
    case_list,
    make_inputs,
    modes_of,
    np_dtype,
    parse_shape,
)
from .probe import CpuMeter, isa_description, machine_description, short_machine, try_import
from .report import (
    Progress,
    collect_notes,
    isa_text,
    markdown_report,
    text_report,
    write_plot,
)
from .timing import Buffers, Runner


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
    p.add_argument(
        "--isa",
        metavar="NAME",
        help="run logitkit and the yardstick with one instruction set's kernels, as "
        f"lk.use_isa(NAME): {', '.join(lk.available_isas())} here (default: LOGITKIT_ISA, "
        "else the best this CPU runs); PyTorch's are set by ATEN_CPU_CAPABILITY before the run",
    )
    p.add_argument(
        "--interleave",
        action="store_true",
        help="time the implementations of each measurement in turns, one call of each per "
        f"round after a {1e3 * SETTLE_S:.0f} ms pause, instead of back to back: a change in "
        "clock speed or load then falls on all of them alike, but a multi-threaded call may "
        "wait for its sleeping thread pool",
    )
    p.add_argument(
        "--logsumexp-out",
        action="store_true",
        help="run logsumexp in --modes as well: into a preallocated vector (out=, logitkit "
        "and PyTorch) and allocating; by default it has one mode, '-'",
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
    if args.isa is not None:
        try:
            with lk.use_isa(args.isa) as name:
                args.isa = name
        except ValueError as exc:
            p.error(f"--isa: {exc}")
    if args.plot and try_import("matplotlib") is None:
        p.error("--plot needs matplotlib: pip install matplotlib (or 'logitkit[plot]')")
    return args


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
    # use_isa holds for this thread's context only: the logitkit calls and the yardstick all
    # start from here, and the caller's own calls are left as they were.
    with lk.use_isa(args.isa) if args.isa is not None else contextlib.nullcontext():
        return _run(args, wall_start, started)


def _run(args: argparse.Namespace, wall_start: float, started: str) -> int:
    max_threads = max(args.thread_counts)
    stdout = sys.stdout

    specs: list[ShapeSpec] = []
    skipped: list[str] = []
    for spec in args.shape_specs:
        try:
            np_dtype(spec.dtype)
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
    isa = isa_description(info, args.isa, peers.torch)

    print(f"machine  : {short_machine(machine)}", file=stdout)
    if machine["load_average_start"] is not None:
        load = ", ".join(f"{v:.2f}" for v in machine["load_average_start"])
        print(f"load avg : {load} (1, 5, 15 min) at start", file=stdout)
    print(
        f"logitkit : {info['version']}, ISA {info['active_isa']} "
        f"(available: {', '.join(info['supported_isas'])}), OpenMP {info['openmp']}",
        file=stdout,
    )
    print(f"isa      : {isa_text(isa)}", file=stdout)
    print("versions : " + ", ".join(f"{k} {v}" for k, v in versions.items()), file=stdout)
    missing = ", ".join(f"{k} {v}" for k, v in peers.missing.items())
    print(
        f"threads  : {', '.join(map(str, args.thread_counts))} (peers at {max_threads} only"
        + (f"; torch set_num_threads({max_threads})" if peers.torch is not None else "")
        + ")"
        + (f"; missing: {missing}" if missing else ""),
        file=stdout,
    )
    print(
        f"repeat   : median of {args.repeat} timed calls after a warm-up call"
        + (", in turns over the implementations (--interleave)" if args.interleave else ""),
        file=stdout,
    )
    for line in skipped:
        print(line, file=stdout)
    stdout.flush()

    plan = case_list(specs, args.thread_counts, args.ops, args.modes, args.logsumexp_out)
    n_impls = 1 + len(peers.wanted)

    def weight(spec: ShapeSpec, th: int) -> float:
        nbytes = spec.rows * spec.cols * np_dtype(spec.dtype).itemsize
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
                    for mode in modes_of(op, args.modes, args.logsumexp_out):
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
            "isa": args.isa,
            "interleave": args.interleave,
            "logsumexp_out": args.logsumexp_out,
            "timing": (
                "time.perf_counter; per implementation one warm-up call, then the timed calls "
                "in turns, one call of each implementation per round, each after a pause "
                f"of {1e3 * SETTLE_S:.0f} ms; median"
                if args.interleave
                else "time.perf_counter; per implementation one warm-up call, then the "
                "timed calls back to back; median"
            ),
            "bytes_moved": "read-type ops: input bytes; write-type ops: input + output bytes",
            "fraction": "yardstick median time / logitkit median time",
            "ratio": "peer median time / logitkit median time",
        },
        "machine": machine,
        "logitkit": info,
        "isa": isa,
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
