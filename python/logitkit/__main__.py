"""The ``logitkit`` command (also ``python -m logitkit``) and its subcommands.

``check`` (the default when no subcommand is given, so ``python -m logitkit`` keeps doing what
it always did): run every function on a default batch, natively and through the reference,
report the largest disagreement and the times (and SciPy's, when installed), and exit 1 when
they disagree. ``eval``: metrics of logits files against labels (:mod:`logitkit._eval`).
``bench``: the side-by-side benchmark suite (:mod:`logitkit._bench`). ``info``: the runtime
report.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
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


SUBCOMMANDS = {
    "check": "native kernels against the NumPy reference on a default batch, with timings "
    "(the default)",
    "eval": "metrics of a logits file against labels, streamed in chunks",
    "bench": "the side-by-side benchmark suite",
    "info": "the runtime report: version, instruction sets, threads",
}


def _usage() -> str:
    lines = [
        "usage: logitkit [check] [options]",
        "       logitkit {eval,bench,info} ...",
        "",
        "subcommands:",
    ]
    lines += [f"  {name:<7} {text}" for name, text in SUBCOMMANDS.items()]
    lines += [
        "",
        "With no subcommand (or options only), runs check. `logitkit SUBCOMMAND --help` lists "
        "each one's options.",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    args_in = list(sys.argv[1:] if argv is None else argv)
    command = args_in[0] if args_in and not args_in[0].startswith("-") else None
    if command is None:
        if args_in and args_in[0] in ("-h", "--help"):
            print(_usage())
            return 0
        return check(args_in)
    rest = args_in[1:]
    if command == "check":
        return check(rest, prog="logitkit check")
    if command == "eval":
        from logitkit._eval import main as eval_main

        return eval_main(rest)
    if command == "bench":
        from logitkit._bench import main as bench_main

        return bench_main(rest)
    if command == "info":
        if rest:
            print(f"logitkit info: takes no arguments, got {' '.join(rest)}", file=sys.stderr)
            return 2
        lk.show_runtime()
        return 0
    print(
        f"logitkit: unknown subcommand {command!r} (choose from {', '.join(SUBCOMMANDS)})\n\n"
        + _usage(),
        file=sys.stderr,
    )
    return 2


def check(argv: Sequence[str], prog: str = "logitkit") -> int:
    """The default job: every function natively and through the reference; 0 when they agree."""
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Run logitkit on a default batch of logits and compare it with the "
        "NumPy reference (and SciPy when installed).",
    )
    parser.add_argument("--rows", type=int, default=512, help="batch size (default 512)")
    parser.add_argument("--cols", type=int, default=32000, help="classes (default 32000)")
    parser.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    parser.add_argument("--threads", type=int, default=None, help="default: all cores")
    parser.add_argument("--repeat", type=int, default=5, help="timed runs per function")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(list(argv))

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
    # Relative error for every function but the log-space ones, whose values cross 0 where
    # relative error means nothing: those are held to the tolerance times their largest
    # magnitude.
    tolerance = 1e-5 if args.dtype == "float32" else 1e-12
    header = (
        f"{'function':<12} {'max abs err':>12} {'max rel err':>12} {'native ms':>10} "
        f"{'reference ms':>13} {'scipy ms':>9} {'vs scipy':>9}  result"
    )
    print(header)
    print("-" * len(header))
    worst_rel = 0.0
    failed = []
    for name, data in cases:
        native_fn = getattr(lk, name)
        got = native_fn(data, threads=threads)
        want = getattr(ref, name)(data)
        abs_err, rel_err = _max_errors(got, want)
        if name in ("log_softmax", "logsumexp"):
            scale = float(np.max(np.abs(want), initial=1.0, where=np.isfinite(want)))
            ok_fn = abs_err <= tolerance * scale
        else:
            worst_rel = max(worst_rel, rel_err)
            ok_fn = rel_err <= tolerance
        if not ok_fn:
            failed.append(name)
        t_native = _median_ms(native_fn, data, args.repeat, threads=threads)
        t_ref = _median_ms(getattr(ref, name), data, max(1, args.repeat // 2))
        if name in scipy:
            t_scipy = _median_ms(scipy[name], data, max(1, args.repeat // 2))
            scipy_cols = f"{t_scipy:>9.2f} {t_scipy / t_native:>8.1f}x"
        else:
            scipy_cols = f"{'-':>9} {'-':>9}"
        print(
            f"{name:<12} {abs_err:>12.3g} {rel_err:>12.3g} {t_native:>10.2f} "
            f"{t_ref:>13.2f} {scipy_cols}  {'pass' if ok_fn else 'FAIL'}"
        )
    if not scipy:
        print("\nSciPy is not installed: its column is empty (pip install scipy).")
    ok = not failed
    print(
        f"\nagreement with logitkit.reference: {'OK' if ok else 'FAILED'} "
        f"(max relative error {worst_rel:.3g}, tolerance {tolerance:g})"
    )
    print(
        f"check: {'PASS' if ok else 'FAIL'}, {len(cases) - len(failed)} of {len(cases)} "
        "functions agree" + (f"; failed: {', '.join(failed)}" if failed else "")
    )
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
