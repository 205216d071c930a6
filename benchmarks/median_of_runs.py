"""Median over several runs of the suite, per measurement, with the targets checked.

    python -m logitkit bench --json run1.json   # and run2.json, run3.json, one after another
    python benchmarks/median_of_runs.py run1.json run2.json run3.json [--target 1.5]

One run of the suite takes 5 calls per implementation; on a shared or virtual machine a whole
run can land in a slow phase for one implementation and not the other. This takes, for every
measurement at the largest thread count, the median over the runs of each implementation's
median time, and prints a Markdown table of logitkit's time, its speed-up over the faster of
PyTorch and JAX (--rivals; a `<` where it is below --target), and, for 16-bit dtypes, the
time over float32's on the same op, shape and mode (a `<` where it is above 0.9).
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections import defaultdict
from typing import Any

RIVALS = ("torch", "jax")  # the default --rivals


def key_of(rec: dict[str, Any]) -> tuple[str, str, str, str]:  # op, shape, dtype, mode
    return rec["op"], rec["shape_label"], rec["dtype"], rec["mode"]


Key = tuple[str, str, str, str]


def collect(
    paths: list[str], rivals: tuple[str, ...]
) -> tuple[dict[Key, dict[str, list[float]]], list[str]]:
    times: dict[Key, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    machines = []
    for path in paths:
        with open(path) as f:
            run = json.load(f)
        machines.append(str(run["machine"]["cpu_model"]))
        records = run["records"]
        top = max(rec["threads"] for rec in records)
        for rec in records:
            if rec["threads"] != top or rec["median_ms"] is None:
                continue
            entry = times[key_of(rec)]
            entry["logitkit"].append(rec["median_ms"])
            for name in rivals:
                peer = rec["peers"].get(name, {})
                if peer.get("status") == "ok" and peer.get("median_ms"):
                    entry[name].append(peer["median_ms"])
    return times, machines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="JSON files written by the suite's --json")
    parser.add_argument("--target", type=float, default=1.5, help="speed-up to check (1.5)")
    parser.add_argument(
        "--rivals",
        default=",".join(RIVALS),
        help="peers whose faster time is compared (default torch,jax; torch alone for a run "
        "of logitkit's AVX2 table against PyTorch's, since JAX picks its own kernels)",
    )
    args = parser.parse_args()
    rivals = tuple(name for name in args.rivals.split(",") if name)
    times, machines = collect(args.runs, rivals)
    if len(set(machines)) > 1:
        print(f"warning: the runs come from different machines: {sorted(set(machines))}")
    med = {
        key: {name: statistics.median(v) for name, v in impls.items()}
        for key, impls in times.items()
    }
    print(f"Medians over {len(args.runs)} runs ({machines[0]}).\n")
    print(
        "| op | shape | dtype | mode | logitkit ms | vs faster of PyTorch, JAX | 16-bit / float32 |"
    )
    print("|---|---|---|---|---:|---:|---:|")
    below = 0
    for key, m in med.items():
        op, shape, dtype, mode = key
        peer_ms = [m[name] for name in rivals if name in m]
        if peer_ms:
            ratio = min(peer_ms) / m["logitkit"]
            flag = " <" if ratio < args.target else ""
            below += bool(flag)
            vs = f"{ratio:.2f}x{flag}"
        else:
            vs = "-"
        of32 = "-"
        if dtype in ("float16", "bfloat16"):
            f32 = med.get((op, shape, "float32", mode))
            if f32:
                frac = m["logitkit"] / f32["logitkit"]
                of32 = f"{frac:.2f}{' <' if frac > 0.9 else ''}"
        print(f"| {op} | {shape} | {dtype} | {mode} | {m['logitkit']:.3f} | {vs} | {of32} |")
    print(f"\n{below} of {len(med)} measurements below {args.target}x the faster peer.")


if __name__ == "__main__":
    main()
