"""Fused linear + cross-entropy (loss and every gradient) against PyTorch, one process per path.

    python benchmarks/bench_linear_ce.py [--rows 4096 --hidden 1024 --vocab 32000,128256]
                                         [--repeat 3 --threads 2 --json FILE]

Paths, on the same float32 inputs (``hidden`` N x H, ``weight`` V x H, uniform targets,
mean reduction), each timed for the loss and the gradients of ``hidden`` and ``weight``:

- ``logitkit``: ``lk.linear_cross_entropy_with_grad`` with its default chunking;
- ``torch-chunked``: ``F.linear_cross_entropy(..., options=torch.nn.LinearCrossEntropyOptions())``
  and ``backward()``, PyTorch's chunked path with its default (automatic) chunk size;
- ``torch-plain``: ``F.cross_entropy(hidden @ weight.T, target)`` and ``backward()``, which
  holds the N x V logits.

Each path runs in its own process, so that one path's peak memory cannot hide in another's
freed pages: the peak extra memory is the process's peak resident set (``ru_maxrss``) after the
first call minus its peak once the inputs are allocated and written, so it counts the gradients
(N x H and V x H) as well as every temporary. A run is ``--repeat`` rounds; each round starts
every path's process in turn, which makes a warm-up call and then one timed call, so that a
change in the machine's load falls on every path. Times are the median over the rounds. The
parent checks that every path returns the same loss and gradients (sampled rows) as logitkit.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

PATHS = ("logitkit", "torch-chunked", "torch-plain")
# rows of each gradient saved for the cross-check
_SAMPLE = 64


def _maxrss_bytes() -> int:
    # Linux reports kilobytes
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _inputs(n: int, h: int, v: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    # Filled in place: a temporary would raise the resident-set peak before the baseline.
    rng = np.random.default_rng(seed)
    x = np.empty((n, h), dtype=np.float32)
    rng.standard_normal(out=x, dtype=np.float32)
    w = np.empty((v, h), dtype=np.float32)
    rng.standard_normal(out=w, dtype=np.float32)
    w *= np.float32(2.0 / np.sqrt(h))  # logits of standard deviation about 2
    t = rng.integers(0, v, n)
    return x, w, t


def _child(args: argparse.Namespace) -> None:
    n, h, v = args.rows, args.hidden, args.child_vocab
    x, w, t = _inputs(n, h, v, args.seed)
    call: Callable[[], tuple[float, np.ndarray, np.ndarray]]
    if args.child == "logitkit":
        import logitkit as lk

        def call() -> tuple[float, np.ndarray, np.ndarray]:
            loss, gx, gw, _ = lk.linear_cross_entropy_with_grad(x, w, t, threads=args.threads)
            assert gw is not None
            return float(loss), gx, gw

        version = lk.__version__
    else:
        import torch
        import torch.nn.functional as F

        torch.set_num_threads(args.threads)
        xt = torch.from_numpy(x).requires_grad_()
        wt = torch.from_numpy(w).requires_grad_()
        tt = torch.from_numpy(t)
        chunked = args.child == "torch-chunked"
        options = torch.nn.LinearCrossEntropyOptions() if chunked else None

        def call() -> tuple[float, np.ndarray, np.ndarray]:
            xt.grad = None
            wt.grad = None
            if chunked:
                loss = F.linear_cross_entropy(xt, wt, tt, options=options)
            else:
                loss = F.cross_entropy(xt @ wt.T, tt)
            loss.backward()  # type: ignore[no-untyped-call]
            assert xt.grad is not None and wt.grad is not None
            return float(loss.detach()), xt.grad.numpy(), wt.grad.numpy()

        version = torch.__version__
    baseline = _maxrss_bytes()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loss, gx, gw = call()  # warm-up, and the result checked by the parent
    # the peak of one call: later calls would also count the warm-up's results kept here
    peak = _maxrss_bytes() - baseline
    np.savez(args.sample, loss=loss, gx=gx[:_SAMPLE], gw=gw[:: max(v // _SAMPLE, 1)])
    del gx, gw
    times = []
    for _ in range(args.repeat):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    print(
        json.dumps(
            {
                "path": args.child,
                "version": version,
                "vocab": v,
                "times_s": times,
                "median_s": float(np.median(times)),
                "min_s": float(np.min(times)),
                "peak_extra_mb": peak / 1e6,
                "loss": loss,
                "warnings": [str(c.message) for c in caught],
            }
        )
    )


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _max_rel_diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(a - b)) / max(float(np.max(np.abs(b))), 1e-30))


def _run_child(args: argparse.Namespace, path: str, v: int, sample: str) -> dict[str, Any] | None:
    """One process: inputs, a warm-up call (measured for memory), one timed call."""
    command = [sys.executable, __file__, "--child", path, "--child-vocab", str(v)]
    command += ["--sample", sample, "--rows", str(args.rows), "--hidden", str(args.hidden)]
    command += ["--repeat", "1", "--threads", str(args.threads), "--seed", str(args.seed)]
    proc = subprocess.run(command, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        print(f"  V={v} {path}: failed\n{proc.stderr[-2000:]}")
        return None
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def _report(
    args: argparse.Namespace, v: int, results: list[dict[str, Any]], samples: dict[str, Any]
) -> None:
    base = next((r for r in results if r["vocab"] == v and r["path"] == "logitkit"), None)
    print(f"\nV={v}: logits would be {args.rows * v * 4 / 1e6:.0f} MB")
    print(
        f"  {'path':<14} {'median s':>9} {'min s':>7} {'x logitkit':>11} "
        f"{'peak extra MB':>14}  check"
    )
    for r in (r for r in results if r["vocab"] == v):
        ratio = r["median_s"] / base["median_s"] if base else float("nan")
        check = ""
        if base and r["path"] != "logitkit" and "logitkit" in samples:
            ref, got = samples["logitkit"], samples[r["path"]]
            check = (
                f"loss {abs(float(got['loss']) - float(ref['loss'])):.1e}, "
                f"grad_hidden {_max_rel_diff(got['gx'], ref['gx']):.1e}, "
                f"grad_weight {_max_rel_diff(got['gw'], ref['gw']):.1e} (rel)"
            )
            r["check"] = check
        note = f"  [{'; '.join(r['warnings'])}]" if r["warnings"] else ""
        print(
            f"  {r['path']:<14} {r['median_s']:>9.3f} {r['min_s']:>7.3f} {ratio:>11.2f} "
            f"{r['peak_extra_mb']:>14.0f}  {check}{note}",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=4096)
    parser.add_argument("--hidden", type=int, default=1024)
    parser.add_argument("--vocab", default="32000,128256", help="comma-separated class counts")
    parser.add_argument("--paths", default=",".join(PATHS))
    parser.add_argument(
        "--repeat", type=int, default=3, help="rounds; each runs every path once, in turn"
    )
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", help="write the results to this file")
    parser.add_argument("--child", choices=PATHS, help=argparse.SUPPRESS)
    parser.add_argument("--child-vocab", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--sample", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args)
        return

    paths = [p for p in args.paths.split(",") if p]
    vocabs = [int(v) for v in args.vocab.split(",")]
    print(
        f"{_cpu_model()}, {os.cpu_count()} CPUs, {args.threads} threads; N={args.rows}, "
        f"H={args.hidden}, float32, mean reduction; median of {args.repeat} rounds (each path "
        f"in its own process per round: a warm-up call, then one timed call); "
        f"load average before: {os.getloadavg()[0]:.2f}"
    )
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for v in vocabs:
            samples: dict[str, Any] = {}
            runs: dict[str, list[dict[str, Any]]] = {p: [] for p in paths}
            # Rounds interleave the paths, so that a change in the machine's load during the
            # run falls on every path rather than on whichever ran then.
            for rnd in range(args.repeat):
                for path in paths:
                    sample = os.path.join(tmp, f"{path}-{v}.npz")
                    res = _run_child(args, path, v, sample)
                    if res is None:
                        continue
                    runs[path].append(res)
                    if rnd == 0:
                        samples[path] = np.load(sample)
            for path in paths:
                if runs[path]:
                    times = [t for r in runs[path] for t in r["times_s"]]
                    results.append(
                        runs[path][0]
                        | {
                            "times_s": times,
                            "median_s": float(np.median(times)),
                            "min_s": float(np.min(times)),
                            "peak_extra_mb": max(r["peak_extra_mb"] for r in runs[path]),
                        }
                    )
            _report(args, v, results, samples)
    print(f"\nload average after: {os.getloadavg()[0]:.2f} (the machine is shared: noisy)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(
                {"cpu": _cpu_model(), "threads": args.threads, "results": results}, f, indent=1
            )


if __name__ == "__main__":
    main()
