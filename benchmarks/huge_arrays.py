"""How long the longest single calls take: softmax in place over one row of 1 GiB and of
2^31 float32 (8 GiB), and over the same 8 GiB as 2048 rows, with logsumexp and the fused
cross-entropy gradient on the rows.

    python benchmarks/huge_arrays.py [--repeat 3] [--skip-8gib]

A native call cannot be interrupted part way (Ctrl-C is raised when it returns), so these
times are how long a user waits at most per call. Needs about 9 GiB of free memory for the
8 GiB cases. Prints the median of --repeat runs for each case.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np

import logitkit as lk


def median_seconds(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--skip-8gib", action="store_true", help="only the 1 GiB cases")
    args = parser.parse_args()
    info = lk.runtime_info()
    print(f"logitkit {info['version']}, ISA {info['active_isa']}, {info['threads']} threads")
    sizes = [2**28] + ([] if args.skip_8gib else [2**31])
    for n in sizes:
        x = np.zeros(n, np.float32)
        gib = x.nbytes / 2**30
        t = median_seconds(lambda x=x: lk.softmax(x, out=x), args.repeat)
        print(
            f"softmax in place, one row of {gib:.0f} GiB: {t:.2f} s ({x.nbytes / t / 1e9:.1f} GB/s)"
        )
        rows = x.reshape(2048, -1)
        t = median_seconds(lambda rows=rows: lk.softmax(rows, out=rows), args.repeat)
        print(f"softmax in place, 2048 rows, {gib:.0f} GiB: {t:.2f} s")
        t = median_seconds(lambda rows=rows: lk.logsumexp(rows), args.repeat)
        print(f"logsumexp, 2048 rows, {gib:.0f} GiB: {t:.2f} s")
        target = np.zeros(2048, np.int64)
        t = median_seconds(
            lambda rows=rows, target=target: lk.cross_entropy_with_grad(rows, target, inplace=True),
            args.repeat,
        )
        print(f"cross_entropy_with_grad in place, 2048 rows, {gib:.0f} GiB: {t:.2f} s")
        del x, rows


if __name__ == "__main__":
    main()
