"""Side-by-side timings of softmax, log_softmax and logsumexp (axis=-1): logitkit against
plain NumPy, scipy.special, PyTorch (CPU) and JAX (CPU), with a memory-bandwidth yardstick.

    python benchmarks/bench_core.py [--rows 512] [--cols 32000] [--dtype float32]
                                    [--threads N] [--repeat 7] [--json FILE]

Every implementation gets the same random normal array (scale 3). Its result is first
compared with logitkit's (a WARNING line is printed when they differ by more than a few
hundred float rounding errors), then it runs once untimed and --repeat times timed; the
table shows the median. The timed calls of one operation go round-robin over the
implementations, so a change in clock speed or a noisy neighbour during the run affects
all of them alike rather than whichever happened to run at that moment.

GB/s counts the bytes an ideal single pass moves (the input read once, the result written
once), whatever the implementation really moves; the NumPy copy and sum rows show what
this machine's memory delivers to one thread. "ratio" is the time over logitkit's time
with out=, so above 1 means slower than logitkit.

Threads: logitkit and PyTorch get --threads; NumPy and SciPy run these operations on one
thread. JAX has no documented setting for the size of XLA's CPU thread pool, so it runs
with its own pool, sized by XLA to the machine.

The default run (512 x 32000 float32, 64 MiB) takes well under a minute with every peer
installed. Missing peers are reported as "not installed".
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np

import logitkit as lk

OPS = ("softmax", "log_softmax", "logsumexp")

# Rounding errors of a correct float implementation grow with the row length (summation
# order) and with the magnitude of the results; a few hundred eps of the largest result
# leaves room for that while still catching a wrong formula or a dtype mix-up.
TOLERANCE_EPS = 1000


@dataclass
class Impl:
    name: str
    run: Callable[[], Any] | None  # None when the implementation cannot run here
    to_numpy: Callable[[Any], np.ndarray] = np.asarray
    status: str = ""  # why it did not run
    times: list[float] = field(default_factory=list)
    max_abs_diff: float | None = None
    agrees: bool | None = None


# ---------------------------------------------------------------------------- environment


def cpu_description() -> dict[str, Any]:
    model = platform.processor() or platform.machine()
    cores: set[tuple[str, str]] = set()
    physical_id = core_id = ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            seen_model = False
            for line in fh:
                key, _, value = line.partition(":")
                key, value = key.strip(), value.strip()
                if key == "model name" and not seen_model:
                    model, seen_model = value, True
                elif key == "physical id":
                    physical_id = value
                elif key == "core id":
                    core_id = value
                elif not key:
                    if core_id:
                        cores.add((physical_id, core_id))
                    physical_id = core_id = ""
            if core_id:
                cores.add((physical_id, core_id))
    except OSError:
        pass
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    return {
        "cpu_model": model,
        "logical_cpus": os.cpu_count(),
        "physical_cores": len(cores) or None,
        "usable_cpus": usable,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "load_average": os.getloadavg() if hasattr(os, "getloadavg") else None,
    }


def try_import(name: str) -> Any | None:
    try:
        return importlib.import_module(name)
    except Exception:  # a broken install is as unusable as a missing one
        return None


# ------------------------------------------------------------------------ implementations


def numpy_softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    e /= e.sum(axis=-1, keepdims=True)
    return e


def numpy_log_softmax(x: np.ndarray) -> np.ndarray:
    shifted = x - x.max(axis=-1, keepdims=True)
    shifted -= np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
    return shifted


def numpy_logsumexp(x: np.ndarray) -> np.ndarray:
    m = x.max(axis=-1, keepdims=True)
    return np.log(np.exp(x - m).sum(axis=-1)) + m[..., 0]


def logitkit_impls(op: str, x: np.ndarray, threads: int) -> list[Impl]:
    fn = getattr(lk, op)
    out = np.empty(x.shape[:-1] if op == "logsumexp" else x.shape, dtype=x.dtype)
    return [
        Impl("logitkit out=", partial(fn, x, axis=-1, out=out, threads=threads)),
        Impl("logitkit", partial(fn, x, axis=-1, threads=threads)),
    ]


def numpy_impls(op: str, x: np.ndarray) -> list[Impl]:
    fn = {"softmax": numpy_softmax, "log_softmax": numpy_log_softmax, "logsumexp": numpy_logsumexp}[
        op
    ]
    return [Impl("numpy (max-subtract)", partial(fn, x))]


def scipy_impls(op: str, x: np.ndarray, special: Any | None) -> list[Impl]:
    name = f"scipy.special.{op}"
    if special is None:
        return [Impl(name, None, status="not installed")]
    return [Impl(name, partial(getattr(special, op), x, axis=-1))]


def torch_impls(op: str, x: np.ndarray, torch: Any | None) -> list[Impl]:
    if torch is None:
        return [Impl("torch", None, status="not installed")]
    fn = getattr(torch, op)
    t = torch.from_numpy(x)  # shares x's memory: no copy inside the timing
    buf = torch.empty(t.shape[:-1] if op == "logsumexp" else t.shape, dtype=t.dtype)

    def to_numpy(r: Any) -> np.ndarray:
        return np.asarray(r.numpy())

    with_out = Impl(f"torch.{op} out=", partial(fn, t, -1, out=buf), to_numpy)
    try:
        with_out.run()  # type: ignore[misc]
    except (TypeError, RuntimeError) as exc:
        with_out = Impl(f"torch.{op} out=", None, status=f"out= not supported ({exc})")
    return [with_out, Impl(f"torch.{op}", partial(fn, t, -1), to_numpy)]


def jax_impls(op: str, x: np.ndarray, jax: Any | None) -> list[Impl]:
    if jax is None:
        return [Impl("jax", None, status="not installed")]
    fn, label = {
        "softmax": (jax.nn.softmax, "jax.nn.softmax"),
        "log_softmax": (jax.nn.log_softmax, "jax.nn.log_softmax"),
        "logsumexp": (jax.scipy.special.logsumexp, "jax.scipy.special.logsumexp"),
    }[op]
    if x.dtype == np.float64 and not jax.config.jax_enable_x64:
        return [Impl(f"jit({label})", None, status="float64 needs jax_enable_x64")]
    compiled = jax.jit(partial(fn, axis=-1))
    # Transferring to the device is not part of the operation being compared.
    xd = jax.device_put(x, jax.devices("cpu")[0])
    return [Impl(f"jit({label})", lambda: compiled(xd).block_until_ready())]


def load_jax(dtype: np.dtype) -> Any | None:
    # JAX probes for accelerators unless told otherwise; this comparison is CPU only.
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    jax = try_import("jax")
    if jax is None:
        return None
    try:
        importlib.import_module("jax.scipy.special")
        if dtype == np.float64:
            jax.config.update("jax_enable_x64", True)
        jax.devices("cpu")
    except Exception:
        return None
    return jax


# ------------------------------------------------------------------------------ measuring


def check_agreement(impls: list[Impl], reference: np.ndarray, dtype: np.dtype) -> list[str]:
    scale = max(1.0, float(np.max(np.abs(reference))))
    tol = TOLERANCE_EPS * float(np.finfo(dtype).eps) * scale
    ref64 = reference.astype(np.float64)
    warnings = []
    for impl in impls:
        if impl.run is None:
            continue
        got = impl.to_numpy(impl.run())
        if got.shape != reference.shape:
            impl.agrees = False
            warnings.append(
                f"WARNING: {impl.name}: result shape {got.shape}, logitkit gives {reference.shape}"
            )
            continue
        with np.errstate(invalid="ignore"):
            diff = float(np.max(np.abs(got.astype(np.float64) - ref64)))
        impl.max_abs_diff = diff
        impl.agrees = diff <= tol  # False for NaN too
        if not impl.agrees:
            warnings.append(
                f"WARNING: {impl.name} differs from logitkit: max |diff| = {diff:.3g} > {tol:.3g}"
            )
    return warnings


def time_round_robin(impls: list[Impl], repeat: int) -> None:
    runnable = [impl for impl in impls if impl.run is not None]
    for impl in runnable:
        impl.run()  # type: ignore[misc]
    for _ in range(repeat):
        for impl in runnable:
            t0 = time.perf_counter()
            result = impl.run()  # type: ignore[misc]
            t1 = time.perf_counter()
            del result  # freeing a large result is not part of the call being timed
            impl.times.append(t1 - t0)


def median_ms(impl: Impl) -> float | None:
    return 1e3 * statistics.median(impl.times) if impl.times else None


# ------------------------------------------------------------------------------- the run


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--rows", type=int, default=512)
    p.add_argument("--cols", type=int, default=32000)
    p.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        help="threads for logitkit and PyTorch (default: logitkit's default)",
    )
    p.add_argument("--repeat", type=int, default=7, help="timed calls per implementation")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", metavar="FILE", help="also write every result to FILE")
    args = p.parse_args(argv)
    if args.rows < 1 or args.cols < 1 or args.repeat < 1:
        p.error("--rows, --cols and --repeat must be positive")
    if args.threads is not None and args.threads < 1:
        p.error("--threads must be positive")
    return args


def fmt_row(
    op: str,
    name: str,
    ms: float | None,
    gbps: float | None,
    ratio: float | None,
    diff: float | None,
    note: str = "",
) -> str:
    def num(v: float | None, spec: str) -> str:
        return "-" if v is None else format(v, spec)

    return (
        f"{op:<12} {name:<40} {num(ms, '10.2f'):>10} {num(gbps, '7.1f'):>7} "
        f"{num(ratio, '7.2f'):>7} {num(diff, '10.2e'):>10}  {note}"
    ).rstrip()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    dtype = np.dtype(args.dtype)
    info = lk.runtime_info()
    threads = args.threads if args.threads is not None else info["threads"]

    scipy_special = try_import("scipy.special")
    torch = try_import("torch")
    if torch is not None:
        torch.set_num_threads(threads)
    jax = load_jax(dtype)

    versions: dict[str, str] = {"numpy": np.__version__}
    scipy = try_import("scipy") if scipy_special is not None else None
    versions["scipy"] = scipy.__version__ if scipy is not None else "not installed"
    versions["torch"] = torch.__version__ if torch is not None else "not installed"
    if jax is not None:
        jaxlib = try_import("jaxlib")
        versions["jax"] = jax.__version__
        versions["jaxlib"] = getattr(jaxlib, "__version__", "?")
    else:
        versions["jax"] = "not installed"

    machine = cpu_description()
    x = np.random.default_rng(args.seed).standard_normal((args.rows, args.cols)) * 3.0
    x = x.astype(dtype)
    n_bytes = x.nbytes

    print(
        f"machine  : {machine['cpu_model']}, {machine['logical_cpus']} logical CPUs"
        f" ({machine['physical_cores'] or '?'} physical cores,"
        f" {machine['usable_cpus'] or '?'} usable by this process)"
    )
    print(f"python   : {machine['python']} on {machine['platform']}")
    if machine["load_average"] is not None:
        # Other work on the machine shows up directly in the timings.
        load = ", ".join(f"{v:.2f}" for v in machine["load_average"])
        print(f"load avg : {load} (1, 5, 15 min) at start")
    print(
        f"logitkit : {info['version']}, active ISA {info['active_isa']} "
        f"(available: {', '.join(info['supported_isas'])}), default threads "
        f"{info['threads']}, openmp {info['openmp']}"
    )
    print("peers    : " + ", ".join(f"{k} {v}" for k, v in versions.items()))
    torch_threads = torch.get_num_threads() if torch is not None else None
    print(
        f"threads  : logitkit {threads}, torch {torch_threads or '-'}, numpy/scipy 1, "
        "jax: XLA's own CPU thread pool (no documented size setting)"
    )
    print(
        f"input    : {args.rows} x {args.cols} {dtype.name} "
        f"({n_bytes / 2**20:.1f} MiB), normal(scale=3), seed {args.seed}; "
        f"median of {args.repeat} after one warm-up call"
    )

    results: list[dict[str, Any]] = []
    warnings: list[str] = []
    table: list[str] = []

    def record(op: str, impl: Impl, bytes_moved: int, base_ms: float | None) -> None:
        ms = median_ms(impl)
        gbps = bytes_moved / (ms * 1e-3) / 1e9 if ms else None
        ratio = ms / base_ms if ms is not None and base_ms else None
        table.append(
            fmt_row(
                op,
                impl.name,
                ms,
                gbps,
                ratio,
                impl.max_abs_diff,
                impl.status or ("" if impl.agrees in (None, True) else "DISAGREES"),
            )
        )
        results.append(
            {
                "op": op,
                "implementation": impl.name,
                "status": impl.status or "ok",
                "median_ms": ms,
                "times_ms": [1e3 * t for t in impl.times],
                "gb_per_s": gbps,
                "ratio_to_logitkit_out": ratio,
                "max_abs_diff_vs_logitkit": impl.max_abs_diff,
                "agrees": impl.agrees,
                "bytes_moved": bytes_moved,
            }
        )

    for op in OPS:
        impls = (
            logitkit_impls(op, x, threads)
            + numpy_impls(op, x)
            + scipy_impls(op, x, scipy_special)
            + torch_impls(op, x, torch)
            + jax_impls(op, x, jax)
        )
        reference = np.asarray(lk.__dict__[op](x, axis=-1, threads=threads))
        warnings += check_agreement(impls, reference, dtype)
        del reference
        time_round_robin(impls, args.repeat)
        out_items = x.shape[0] if op == "logsumexp" else x.size
        moved = n_bytes + out_items * dtype.itemsize
        base = median_ms(impls[0])
        for impl in impls:
            record(op, impl, moved, base)
        del impls

    # The yardstick: what one NumPy thread gets from memory with no arithmetic to do.
    buf = np.empty_like(x)
    yard = [
        Impl("numpy np.copyto (read + write)", partial(np.copyto, buf, x)),
        Impl("numpy x.sum() (read)", x.sum),
    ]
    time_round_robin(yard, args.repeat)
    record("bandwidth", yard[0], 2 * n_bytes, None)
    record("bandwidth", yard[1], n_bytes, None)

    print()
    for line in warnings:
        print(line)
    if not warnings:
        print(
            "results agree with logitkit (max |diff| within "
            f"{TOLERANCE_EPS} eps of the largest result) for every implementation"
        )
    print()
    header = (
        f"{'op':<12} {'implementation':<40} {'median ms':>10} {'GB/s':>7} "
        f"{'ratio':>7} {'max|diff|':>10}"
    )
    print(header)
    print("-" * len(header))
    for line in table:
        print(line)

    if args.json:
        payload = {
            "machine": machine,
            "logitkit": info,
            "peers": versions,
            "config": {
                "rows": args.rows,
                "cols": args.cols,
                "dtype": dtype.name,
                "threads": threads,
                "torch_threads": torch_threads,
                "repeat": args.repeat,
                "seed": args.seed,
                "input_bytes": n_bytes,
            },
            "warnings": warnings,
            "results": results,
        }
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(payload, fh, indent=2)
            fh.write("\n")
        print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
