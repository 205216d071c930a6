"""logitkit.torch against PyTorch's own cross-entropy, side by side in one run.

    python benchmarks/bench_torch.py [--threads 2] [--repeat 7] [--batch 512] [--compile]

Two measurements:

1. Per-call overhead on small logits (8 x 100 float32), where the work is negligible and the
   time is dispatch: ``F.cross_entropy`` against ``logitkit.torch.cross_entropy`` (through
   ``torch.ops.logitkit``) and the plain NumPy call ``logitkit.cross_entropy`` on the same
   memory, forward alone and forward + backward.
2. A training step (zero_grad, forward, loss, backward, SGD step) of a small model with a
   32000-class head, with PyTorch's loss and with logitkit's, and the loss alone (forward +
   backward on the head's logits). ``--compile`` adds the same step under
   ``torch.compile(fullgraph=True)`` (compiling takes a while on a small machine).

Both libraries use ``--threads`` threads. Medians of ``--repeat`` samples after a warm-up; the
candidates are timed in turn within each round (see interleaved_medians).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import time
from collections.abc import Callable, Sequence


def cpu_name() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return platform.processor() or "unknown CPU"
    for line in out.splitlines():
        if line.startswith("Model name"):
            return line.split(":", 1)[1].strip()
    return "unknown CPU"


def interleaved_medians(
    fns: Sequence[Callable[[], object]], repeat: int, loops: int = 1
) -> list[tuple[float, float]]:
    """Median and minimum seconds per call of each function, over `repeat` rounds of `loops` calls.

    Each round times every function in turn, so that a burst of load from other processes on
    a shared machine hits all of them alike and the ratios stay meaningful.
    """
    for fn in fns:  # warm-up: first-call costs, caches, compilation
        for _ in range(max(1, loops // 10)):
            fn()
    samples: list[list[float]] = [[] for _ in fns]
    for _ in range(repeat):
        for fn, times in zip(fns, samples, strict=True):
            start = time.perf_counter()
            for _ in range(loops):
                fn()
            times.append((time.perf_counter() - start) / loops)
    return [(statistics.median(times), min(times)) for times in samples]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--loops", type=int, default=2000, help="calls per overhead sample")
    parser.add_argument("--batch", type=int, default=512, help="rows of the training step")
    parser.add_argument("--classes", type=int, default=32000)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--compile", action="store_true", help="also time compiled steps")
    args = parser.parse_args()
    # logitkit reads its default thread count when it loads
    os.environ["LOGITKIT_NUM_THREADS"] = str(args.threads)

    import torch
    import torch.nn.functional as F

    import logitkit as lk
    from logitkit import torch as lkt

    torch.set_num_threads(args.threads)
    info = lk.runtime_info()
    print(
        f"CPU: {cpu_name()}; logitkit {info['version']} ({info['active_isa']}), "
        f"torch {torch.__version__}; {args.threads} threads; median of {args.repeat} samples"
    )
    print("Shared machine: absolute times are noisy, compare the ratios.\n")

    # ---- 1. per-call overhead --------------------------------------------------------------
    gen = torch.Generator().manual_seed(0)
    z = 3 * torch.randn(8, 100, generator=gen)
    t = torch.randint(0, 100, (8,), generator=gen)
    z_np, t_np = z.numpy(), t.numpy()
    zg = z.clone().requires_grad_()

    def fwd_bwd(loss_fn: Callable[..., torch.Tensor]) -> Callable[[], None]:
        def run() -> None:
            zg.grad = None
            torch.autograd.backward(loss_fn(zg, t))

        return run

    rows = [
        ("forward", "F.cross_entropy", lambda: F.cross_entropy(z, t)),
        ("forward", "lkt.cross_entropy", lambda: lkt.cross_entropy(z, t)),
        ("forward", "lk.cross_entropy (NumPy)", lambda: lk.cross_entropy(z_np, t_np)),
        ("forward+backward", "F.cross_entropy", fwd_bwd(F.cross_entropy)),
        ("forward+backward", "lkt.cross_entropy", fwd_bwd(lkt.cross_entropy)),
        (
            "forward+backward",
            "lk.cross_entropy_with_grad (NumPy)",
            lambda: lk.cross_entropy_with_grad(z_np, t_np),
        ),
    ]
    print(
        "Per-call time, logits 8 x 100 float32 (median microseconds; ratio to F.cross_entropy; "
        "the minimum shows the cost on a quiet core)"
    )
    base: dict[str, float] = {}
    medians = interleaved_medians([fn for _, _, fn in rows], args.repeat, args.loops)
    for (kind, name, _), (med, low) in zip(rows, medians, strict=True):
        us = 1e6 * med
        base.setdefault(kind, us)
        print(
            f"  {kind:17s} {name:36s} {us:8.1f} us   x{us / base[kind]:5.2f}   "
            f"(min {1e6 * low:.1f} us)"
        )

    # ---- 2. training step with a 32000-class head -------------------------------------------
    n_in, hidden, classes, batch = 128, args.hidden, args.classes, args.batch
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(n_in, hidden), torch.nn.GELU(), torch.nn.Linear(hidden, classes)
    )
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    x = torch.randn(batch, n_in, generator=gen)
    y = torch.randint(0, classes, (batch,), generator=gen)
    logits = (3 * torch.randn(batch, classes, generator=gen)).requires_grad_()

    def step(loss_fn: Callable[..., torch.Tensor]) -> Callable[[], None]:
        def run() -> None:
            opt.zero_grad(set_to_none=True)
            torch.autograd.backward(loss_fn(model(x), y))
            opt.step()

        return run

    def compiled_step(fwd: Callable[..., torch.Tensor]) -> Callable[[], None]:
        def run() -> None:
            opt.zero_grad(set_to_none=True)
            torch.autograd.backward(fwd(x, y))
            opt.step()

        return run

    def loss_only(loss_fn: Callable[..., torch.Tensor]) -> Callable[[], None]:
        def run() -> None:
            logits.grad = None
            torch.autograd.backward(loss_fn(logits, y))

        return run

    cases: list[tuple[str, str, Callable[[], None]]] = [
        ("loss fwd+bwd", "F.cross_entropy", loss_only(F.cross_entropy)),
        ("loss fwd+bwd", "lkt.cross_entropy", loss_only(lkt.cross_entropy)),
        ("training step", "torch.nn.CrossEntropyLoss", step(torch.nn.CrossEntropyLoss())),
        ("training step", "lkt.CrossEntropyLoss", step(lkt.CrossEntropyLoss())),
    ]
    if args.compile:
        for name, loss_fn in [
            ("compiled, torch.nn.CrossEntropyLoss", torch.nn.CrossEntropyLoss()),
            ("compiled, lkt.CrossEntropyLoss", lkt.CrossEntropyLoss()),
        ]:
            fwd = torch.compile(lambda a, b, f=loss_fn: f(model(a), b), fullgraph=True)
            cases.append(("training step", name, compiled_step(fwd)))
    print(
        f"\nTraining, float32: Linear({n_in}, {hidden}) - GELU - Linear({hidden}, {classes}), "
        f"batch {batch}; logits {batch} x {classes} ({batch * classes * 4 / 1e6:.0f} MB) "
        f"(milliseconds; ratio to PyTorch's loss)"
    )
    base = {}
    medians = interleaved_medians([fn for _, _, fn in cases], args.repeat)
    for (kind, name, _), (seconds, _low) in zip(cases, medians, strict=True):
        ms = 1e3 * seconds
        key = kind if "compiled" not in name else kind + " compiled"
        base.setdefault(key, ms)
        print(f"  {kind:14s} {name:38s} {ms:8.2f} ms   x{ms / base[key]:.2f}")


if __name__ == "__main__":
    main()
