"""logitkit.dask against SciPy on Dask arrays and against map_blocks, on a local cluster.

    python benchmarks/bench_dask.py [--rows 4096 --cols 32000 --row-chunk 1024
                                     --class-chunk 8000 --workers 2 --repeat 5]

Starts a ``dask.distributed.LocalCluster`` (``--workers`` processes, one thread each, the
kernels single-threaded inside them), creates float32 logits on the workers and keeps them
there (``persist``) in two layouts: whole rows per chunk (``--row-chunk`` x C) and the class
axis split too (``--row-chunk`` x ``--class-chunk``). Each entry is the median wall time of
``--repeat`` rounds after a warm-up (each round runs every case once, so the drifting load of
a shared machine falls on every path alike), from submission to the result on the client:

* reductions (logsumexp, entropy, cross-entropy) return a vector or a scalar to the client;
* softmax computes its logits-sized output on the workers and returns its row sums (the
  same small reduction for every path).

Peers on the same persisted arrays in the same run: SciPy's ``scipy.special`` functions, which
take Dask arrays under ``SCIPY_ARRAY_API=1`` (a max pass and a sum pass as separate Dask
reductions), and ``dask.array.map_blocks`` with logitkit on whole-row chunks (the baseline
that needs every row inside one chunk). The in-memory single-process call on the same
logits is printed as a yardstick.
"""

from __future__ import annotations

import os

# SciPy reads this once, at import: it must be set before scipy is imported.
os.environ.setdefault("SCIPY_ARRAY_API", "1")
# Workers inherit the environment: one kernel thread per single-threaded worker process.
os.environ.setdefault("LOGITKIT_NUM_THREADS", "1")

import argparse  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from typing import Any  # noqa: E402

import dask  # noqa: E402
import dask.array as da  # noqa: E402
import numpy as np  # noqa: E402
import scipy  # noqa: E402
import scipy.special  # noqa: E402
from distributed import Client, LocalCluster, wait  # noqa: E402

import logitkit as lk  # noqa: E402
import logitkit.dask as lkd  # noqa: E402


def cpu_name() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        for line in out.splitlines():
            if line.startswith("Model name"):
                return line.split(":", 1)[1].strip()
    except (OSError, subprocess.CalledProcessError):
        pass
    return platform.processor() or "unknown CPU"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=4096)
    parser.add_argument("--cols", type=int, default=32000)
    parser.add_argument("--row-chunk", type=int, default=1024)
    parser.add_argument("--class-chunk", type=int, default=8000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    with (
        LocalCluster(
            n_workers=args.workers,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            silence_logs=40,
        ) as cluster,
        Client(cluster) as client,
    ):
        n, c = args.rows, args.cols
        rng = da.random.default_rng(0)
        whole = rng.standard_normal((n, c), dtype=np.float32, chunks=(args.row_chunk, c)) * 3
        whole = client.persist(whole)
        split = client.persist(whole.rechunk((args.row_chunk, args.class_chunk)))
        target = client.persist(rng.integers(0, c, n, chunks=args.row_chunk).astype(np.int64))
        wait([whole, split, target])
        # Arrays gathered from workers can sit at unaligned addresses (they are assembled from
        # network frames); the kernels would copy them on every call, so align them once.
        local_x = whole.compute().copy()
        local_t = target.compute().copy()

        print(
            f"CPU: {cpu_name()}; {args.workers} worker processes x 1 thread; "
            f"logitkit {lk.__version__} ({lk.active_isa()}), dask {dask.__version__}, "
            f"scipy {scipy.__version__}"
        )
        print(
            f"logits {n} x {c} float32 ({local_x.nbytes / 1e6:.0f} MB) on the workers; "
            f"whole rows: chunks {args.row_chunk} x {c}; split: {args.row_chunk} x "
            f"{args.class_chunk} ({split.numblocks[1]} class chunks); median of {args.repeat} "
            "interleaved rounds after a warm-up; the machine is shared, so compare ratios "
            "within one run"
        )

        def get(lazy: Any) -> Callable[[], Any]:
            return lambda: client.compute(lazy).result()

        def keep(lazy: Any) -> Callable[[], Any]:
            # a logits-sized output: its row sums come back (every path pays the same cheap
            # reduction), so nothing stays cached between repeats
            return get(lazy.sum(axis=-1))

        def lse_map_blocks(x: Any) -> Any:
            return da.map_blocks(
                lk.logsumexp, x, axis=-1, drop_axis=1, dtype=np.float32, chunks=(x.chunks[0],)
            )

        def ce_map_blocks(x: Any, t: Any) -> Any:
            # the rows of logits and targets go together: blockwise with a shared row index
            rows = da.blockwise(
                lambda zb, tb: lk.cross_entropy(zb, tb, reduction="none"),
                "i",
                x,
                "ij",
                t,
                "i",
                concatenate=True,
                dtype=np.float32,
            )
            return rows.mean()

        cases: list[tuple[str, str, Callable[[], Any]]] = [
            (
                "logsumexp",
                "in memory, --workers threads: lk.logsumexp",
                lambda: lk.logsumexp(local_x, threads=args.workers),
            ),
            ("logsumexp", "map_blocks(lk.logsumexp), whole rows", get(lse_map_blocks(whole))),
            ("logsumexp", "logitkit.dask, whole rows", get(lkd.logsumexp(whole))),
            ("logsumexp", "logitkit.dask, split classes", get(lkd.logsumexp(split))),
            (
                "logsumexp",
                "scipy.special on dask, whole rows",
                get(scipy.special.logsumexp(whole, axis=-1)),
            ),
            (
                "logsumexp",
                "scipy.special on dask, split classes",
                get(scipy.special.logsumexp(split, axis=-1)),
            ),
            (
                "softmax",
                "in memory, --workers threads: lk.softmax",
                lambda: lk.softmax(local_x, threads=args.workers),
            ),
            (
                "softmax",
                "map_blocks(lk.softmax), whole rows",
                keep(da.map_blocks(lk.softmax, whole, dtype=np.float32)),
            ),
            ("softmax", "logitkit.dask, whole rows", keep(lkd.softmax(whole))),
            ("softmax", "logitkit.dask, split classes", keep(lkd.softmax(split))),
            (
                "softmax",
                "scipy.special on dask, whole rows",
                keep(scipy.special.softmax(whole, axis=-1)),
            ),
            (
                "softmax",
                "scipy.special on dask, split classes",
                keep(scipy.special.softmax(split, axis=-1)),
            ),
            (
                "entropy",
                "logitkit.dask, whole rows",
                get(lkd.entropy_from_logits(whole)),
            ),
            (
                "entropy",
                "logitkit.dask, split classes",
                get(lkd.entropy_from_logits(split)),
            ),
            (
                "cross_entropy",
                "in memory, --workers threads: lk.cross_entropy",
                lambda: lk.cross_entropy(local_x, local_t, threads=args.workers),
            ),
            (
                "cross_entropy",
                "blockwise(lk.cross_entropy), whole rows",
                get(ce_map_blocks(whole, target)),
            ),
            ("cross_entropy", "logitkit.dask, whole rows", get(lkd.cross_entropy(whole, target))),
            (
                "cross_entropy",
                "logitkit.dask, split classes",
                get(lkd.cross_entropy(split, target)),
            ),
        ]
        # Rounds over every case, not every repeat of one case in a row: on a shared machine
        # the load drifts, and interleaving spreads it over all the paths alike.
        for _, _, fn in cases:
            fn()  # warm-up: imports and caches on the workers
        samples: dict[tuple[str, str], list[float]] = {(op, name): [] for op, name, _ in cases}
        for round_ in range(args.repeat):
            for op, name, fn in cases:
                start = time.perf_counter()
                fn()
                samples[op, name].append(time.perf_counter() - start)
            print(f"  round {round_ + 1} of {args.repeat} done", file=sys.stderr, flush=True)
        results = {key: statistics.median(times) for key, times in samples.items()}
        print()
        print(f"{'op':<14} {'path':<44} {'median s':>9} {'vs lkd whole':>13}")
        for op, name, _ in cases:
            base = results[op, "logitkit.dask, whole rows"]
            t = results[op, name]
            print(f"{op:<14} {name:<44} {t:>9.3f} {t / base:>12.2f}x", flush=True)


if __name__ == "__main__":
    main()
