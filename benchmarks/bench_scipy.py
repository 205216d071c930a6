"""logitkit.scipy against scipy.special (and scipy.stats.entropy), call for call.

    python benchmarks/bench_scipy.py [--rows 1000] [--cols 1000] [--dtypes float64,float32]
                                     [--threads 1] [--repeat 7] [--small] [--json FILE]

Every function of the drop-in is called exactly as code written for SciPy calls it (SciPy's
defaults: softmax, log_softmax and logsumexp over the whole array unless an axis is given)
on the same random arrays, first once to check the two results agree, then --repeat times
round-robin, so that a noisy neighbour slows both alike. The table shows the median time
of each and SciPy's time over logitkit's ("speed-up"). ``--small`` adds an 8 x 100 input,
where the per-call overhead of argument handling dominates.

SciPy and NumPy run these functions on one thread; logitkit runs with --threads (set
through LOGITKIT_NUM_THREADS, since the drop-in keeps SciPy's signatures; 0 means its
default, all cores). On a machine shared with other jobs, more threads than free cores make
every call wait for a descheduled thread: compare at --threads 1 there.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np

import logitkit as lk
from logitkit import scipy as lks


def cases(x: np.ndarray, p: np.ndarray, q: np.ndarray) -> list[tuple[str, str, Callable[..., Any]]]:
    """(label, function name, call(module)) for every function of the drop-in."""
    return [
        ("softmax(x)", "softmax", lambda m: m.softmax(x)),
        ("softmax(x, axis=-1)", "softmax", lambda m: m.softmax(x, axis=-1)),
        ("log_softmax(x, axis=-1)", "log_softmax", lambda m: m.log_softmax(x, axis=-1)),
        ("logsumexp(x)", "logsumexp", lambda m: m.logsumexp(x)),
        ("logsumexp(x, axis=-1)", "logsumexp", lambda m: m.logsumexp(x, axis=-1)),
        ("expit(x)", "expit", lambda m: m.expit(x)),
        ("log_expit(x)", "log_expit", lambda m: m.log_expit(x)),
        ("logit(p)", "logit", lambda m: m.logit(p)),
        ("softplus(x)", "softplus", lambda m: m.softplus(x)),
        ("entr(p)", "entr", lambda m: m.entr(p)),
        ("rel_entr(p, q)", "rel_entr", lambda m: m.rel_entr(p, q)),
        ("kl_div(p, q)", "kl_div", lambda m: m.kl_div(p, q)),
        ("entropy(p, axis=1)", "entropy", lambda m: m.entropy(p, axis=1)),
        ("entropy(p, q, axis=1)", "entropy", lambda m: m.entropy(p, q, axis=1)),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1000)
    parser.add_argument("--cols", type=int, default=1000)
    parser.add_argument("--dtypes", default="float64,float32")
    parser.add_argument("--threads", type=int, default=1, help="logitkit threads, 0 = all")
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--small", action="store_true", help="also time an 8 x 100 input")
    parser.add_argument("--json", help="write the medians to this file")
    args = parser.parse_args()

    import scipy
    import scipy.special
    import scipy.stats

    class SciPy:
        """scipy.special with scipy.stats.entropy, as code written for SciPy sees them."""

        def __getattr__(self, name: str) -> Any:
            return getattr(scipy.stats if name == "entropy" else scipy.special, name)

    if args.threads > 0:
        os.environ["LOGITKIT_NUM_THREADS"] = str(args.threads)
    peers = {"logitkit.scipy": lks, "scipy": SciPy()}
    shapes = [(args.rows, args.cols)] + ([(8, 100)] if args.small else [])
    print(f"logitkit {lk.__version__}, SciPy {scipy.__version__}, NumPy {np.__version__}")
    threads = lk.runtime_info()["threads"]
    print(f"{platform.machine()}, ISA {lk.active_isa()}, logitkit threads {threads}")
    print(f"median of {args.repeat} round-robin runs after a warm-up\n")
    rng = np.random.default_rng(0)
    results = []
    for shape in shapes:
        for dtype in args.dtypes.split(","):
            x = (3 * rng.standard_normal(shape)).astype(dtype)
            p = rng.random(shape).astype(dtype)
            q = rng.random(shape).astype(dtype)
            header = f"{shape[0]}x{shape[1]} {dtype}"
            print(f"{header:<34}{'logitkit.scipy':>16}{'scipy':>12}{'speed-up':>10}")
            for label, _, call in cases(x, p, q):
                ours, theirs = call(lks), call(peers["scipy"])
                tol = 1e-4 if dtype == "float32" else 1e-10
                if not np.allclose(ours, theirs, rtol=tol, atol=tol, equal_nan=True):
                    print(f"WARNING: {label} differs from SciPy beyond {tol}")
                times: dict[str, list[float]] = {name: [] for name in peers}
                for _ in range(args.repeat):
                    for name, module in peers.items():
                        start = time.perf_counter()
                        call(module)
                        times[name].append(time.perf_counter() - start)
                ours_t = statistics.median(times["logitkit.scipy"])
                theirs_t = statistics.median(times["scipy"])
                print(
                    f"  {label:<32}{ours_t * 1e3:>13.3f} ms{theirs_t * 1e3:>9.3f} ms"
                    f"{theirs_t / ours_t:>9.2f}x"
                )
                results.append(
                    {
                        "shape": list(shape),
                        "dtype": dtype,
                        "call": label,
                        "logitkit_s": ours_t,
                        "scipy_s": theirs_t,
                        "speedup": theirs_t / ours_t,
                    }
                )
            print()
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=1)


if __name__ == "__main__":
    main()
