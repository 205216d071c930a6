"""``python -m logitkit``: run every function on a default batch, natively and through the
reference, report the largest disagreement and the times (and SciPy's, when installed).

``python -m logitkit bench [options]`` runs the side-by-side benchmark suite instead
(:mod:`logitkit._bench`; ``python -m logitkit bench --help`` lists its options).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np

import logitkit as lk
from logitkit import reference as ref


def _median_ms(fn: Callable[..., Any], data: np.ndarray, repeat: int, **kwargs: Any) -> float:
    fn(data, **kwargs)  # warm-up: page faults, thread pool start
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn(data, **kwargs)
        times.append(time.perf_counter() - start)
    return 1e3 * float(np.median(times))


def _scipy_twins() -> dict[str, Callable[[np.ndarray], Any]]:
    try:
        import scipy.special as sp
    except ImportError:
        return {}
    return {
        "softmax": lambda x: sp.softmax(x, axis=-1),
        "log_softmax": lambda x: sp.log_softmax(x, axis=-1),
        "logsumexp": lambda x: sp.logsumexp(x, axis=-1),
        "sigmoid": sp.expit,
        "log_sigmoid": sp.log_expit,
        "logit": sp.logit,
    }


def _max_errors(got: np.ndarray, want: np.ndarray) -> tuple[float, float]:
    g = np.asarray(got, dtype=np.float64)
    w = np.asarray(want, dtype=np.float64)
    finite = np.isfinite(w)
    if not np.array_equal(np.isfinite(g), finite):
        return float("inf"), float("inf")
    diff = np.abs(g[finite] - w[finite])
    rel = diff / np.maximum(np.abs(w[finite]), np.finfo(np.float64).tiny)
    return float(diff.max(initial=0.0)), float(rel.max(initial=0.0))


def main(argv: list[str] | None = None) -> int:
    args_in = sys.argv[1:] if argv is None else argv
    if args_in and args_in[0] == "bench":
        from logitkit._bench import main as bench_main

        return bench_main(args_in[1:])
    parser = argparse.ArgumentParser(
        prog="python -m logitkit",
        description="Run logitkit on a default batch of logits and compare it with the "
        "NumPy reference (and SciPy when installed).",
    )
    parser.add_argument("--rows", type=int, default=512, help="batch size (default 512)")
    parser.add_argument("--cols", type=int, default=32000, help="classes (default 32000)")
    parser.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    parser.add_argument("--threads", type=int, default=None, help="default: all cores")
    parser.add_argument("--repeat", type=int, default=5, help="timed runs per function")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    info = lk.runtime_info()
    threads = args.threads or info["threads"]
    print(
        f"logitkit {info['version']}: ISA {info['active_isa']} "
        f"(available: {', '.join(info['supported_isas'])}), {threads} thread(s), "
        f"OpenMP {'on' if info['openmp'] else 'off'}"
    )
    rng = np.random.default_rng(args.seed)
    x = (3.0 * rng.standard_normal((args.rows, args.cols))).astype(args.dtype)
    probs = lk.sigmoid(x)
    print(
        f"batch: {args.rows} x {args.cols} {args.dtype} logits (normal, sd 3), "
        f"{x.nbytes / 1e6:.1f} MB; times are medians of {args.repeat} runs\n"
    )

    cases: list[tuple[str, np.ndarray]] = [
        ("softmax", x),
        ("log_softmax", x),
        ("logsumexp", x),
        ("sigmoid", x),
        ("log_sigmoid", x),
        ("softplus", x),
        ("logit", probs),
    ]
    scipy = _scipy_twins()
    header = (
        f"{'function':<12} {'max abs err':>12} {'max rel err':>12} {'native ms':>10} "
        f"{'reference ms':>13} {'scipy ms':>9} {'vs scipy':>9}"
    )
    print(header)
    print("-" * len(header))
    worst_rel = 0.0
    for name, data in cases:
        native_fn = getattr(lk, name)
        got = native_fn(data, threads=threads)
        want = getattr(ref, name)(data)
        abs_err, rel_err = _max_errors(got, want)
        if name not in ("log_softmax", "logsumexp"):  # log-space values near 0: see README
            worst_rel = max(worst_rel, rel_err)
        t_native = _median_ms(native_fn, data, args.repeat, threads=threads)
        t_ref = _median_ms(getattr(ref, name), data, max(1, args.repeat // 2))
        if name in scipy:
            t_scipy = _median_ms(scipy[name], data, max(1, args.repeat // 2))
            scipy_cols = f"{t_scipy:>9.2f} {t_scipy / t_native:>8.1f}x"
        else:
            scipy_cols = f"{'-':>9} {'-':>9}"
        print(
            f"{name:<12} {abs_err:>12.3g} {rel_err:>12.3g} {t_native:>10.2f} "
            f"{t_ref:>13.2f} {scipy_cols}"
        )
    if not scipy:
        print("\nSciPy is not installed: its column is empty (pip install scipy).")
    tolerance = 1e-5 if args.dtype == "float32" else 1e-12
    ok = worst_rel <= tolerance
    print(
        f"\nagreement with logitkit.reference: {'OK' if ok else 'FAILED'} "
        f"(max relative error {worst_rel:.3g}, tolerance {tolerance:g})"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
