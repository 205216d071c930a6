"""Fused cross-entropy against PyTorch's F.cross_entropy, side by side in one run.

    python benchmarks/bench_losses.py [--rows 4096 --cols 32000 --threads 2 --repeat 5]

Times the loss alone and the loss with its gradient (into a preallocated buffer, freshly
allocated, and in place over the logits) against PyTorch's forward and forward + backward on
the same float32 buffers and thread count, and measures the peak memory logitkit allocates
beyond its inputs (NumPy reports its allocations to tracemalloc, and logitkit the blocks of
its buffer cache that results hold).
"""

from __future__ import annotations

import argparse
import time
import tracemalloc
from collections.abc import Callable

import numpy as np

import logitkit as lk


def median_ms(fn: Callable[[], object], repeat: int) -> float:
    fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1e3 * float(np.median(times))


def peak_extra_mb(fn: Callable[[], object]) -> float:
    tracemalloc.start()
    tracemalloc.reset_peak()
    fn()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=4096)
    parser.add_argument("--cols", type=int, default=32000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    z = 3 * rng.standard_normal((args.rows, args.cols), dtype=np.float32)
    t = rng.integers(0, args.cols, args.rows)
    grad = np.empty_like(z)
    scratch = z.copy()
    info = lk.runtime_info()
    print(
        f"logitkit {info['version']} ({info['active_isa']}), {args.threads} threads; "
        f"logits {args.rows} x {args.cols} float32 ({z.nbytes / 1e6:.0f} MB); "
        f"median of {args.repeat}"
    )

    th = args.threads
    results = {
        "logitkit loss": median_ms(lambda: lk.cross_entropy(z, t, threads=th), args.repeat),
        "logitkit loss+grad (grad_out=)": median_ms(
            lambda: lk.cross_entropy_with_grad(z, t, grad_out=grad, threads=th), args.repeat
        ),
        "logitkit loss+grad (allocating)": median_ms(
            lambda: lk.cross_entropy_with_grad(z, t, threads=th), args.repeat
        ),
        "logitkit loss+grad (inplace=True)": median_ms(
            lambda: lk.cross_entropy_with_grad(scratch, t, inplace=True, threads=th), args.repeat
        ),
    }
    try:
        import torch
        import torch.nn.functional as F

        torch.set_num_threads(th)
        zt, tt = torch.from_numpy(z), torch.from_numpy(t)

        def forward() -> None:
            with torch.no_grad():
                F.cross_entropy(zt, tt)

        def forward_backward() -> None:
            x = zt.detach().requires_grad_(True)
            F.cross_entropy(x, tt).backward()

        results[f"torch {torch.__version__} forward"] = median_ms(forward, args.repeat)
        results[f"torch {torch.__version__} forward+backward"] = median_ms(
            forward_backward, args.repeat
        )
    except ImportError:
        print("PyTorch is not installed: no comparison")
    for name, ms in results.items():
        print(f"  {name:<40} {ms:9.1f} ms")
    torch_rows = [k for k in results if k.startswith("torch")]
    if torch_rows:
        fwd, fwdbwd = results[torch_rows[0]], results[torch_rows[1]]
        print(f"loss alone: {fwd / results['logitkit loss']:.2f}x faster than torch forward")
        for mode in ("grad_out=", "allocating", "inplace=True"):
            ms = results[f"logitkit loss+grad ({mode})"]
            print(f"loss+grad ({mode}): {fwdbwd / ms:.2f}x faster than torch forward+backward")

    logits_mb = z.nbytes / 1e6
    for mode, fn in (
        ("allocating", lambda: lk.cross_entropy_with_grad(z, t, threads=th)),
        ("grad_out=", lambda: lk.cross_entropy_with_grad(z, t, grad_out=grad, threads=th)),
        ("inplace=True", lambda: lk.cross_entropy_with_grad(scratch, t, inplace=True, threads=th)),
    ):
        mb = peak_extra_mb(fn)
        print(
            f"peak extra memory, loss+grad ({mode}): {mb:.1f} MB "
            f"= {mb / logits_mb:.3f} x the logits"
        )


if __name__ == "__main__":
    main()
