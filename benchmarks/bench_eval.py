"""``logitkit eval`` against a plain sequential read of the same file, cached and uncached.

Writes a language-model-shaped logits file (batch x sequence x classes, float32) and its
labels, then times, in one run:

* ``read``: the file read front to back into one 64 MB buffer (what ``dd bs=64M`` does);
* ``eval``: ``python -m logitkit eval LOGITS LABELS --shift`` in a subprocess (its own time,
  as it reports it, and the child's peak resident memory);

in turns, one read and one evaluation per round, each with the file in the page cache
("cached") and evicted from it first with ``posix_fadvise(DONTNEED)`` ("uncached": every
byte comes from the disk, as for a file larger than the page cache). Prints medians, rows/s,
GB/s, and eval's time over the read's, of the medians and of the best rounds.

    python benchmarks/bench_eval.py --dir /tmp --batch 10 --seq 1024 --classes 32000

The file is deleted afterwards unless ``--keep`` is given.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

BUF = 64 << 20


def write_data(logits: Path, labels: Path, batch: int, seq: int, classes: int, seed: int) -> None:
    """Peaked logits whose labels are drawn from a slightly flatter softmax of them: an
    over-confident model, so the calibration figures have something to show. The peaks fall
    on Zipf-distributed classes, so some classes are frequent, as tokens are."""
    rng = np.random.default_rng(seed)
    z = np.lib.format.open_memmap(logits, mode="w+", dtype=np.float32, shape=(batch, seq, classes))
    t = np.empty((batch, seq), dtype=np.int64)
    for b in range(batch):
        for s0 in range(0, seq, 256):
            n = min(256, seq - s0)
            block = 2.0 * rng.standard_normal((n, classes), dtype=np.float32)
            top = (rng.zipf(1.3, n) - 1) % classes  # a few classes are frequent, as tokens are
            block[np.arange(n), top] += rng.uniform(0, 16, n).astype(np.float32)
            tempered = 0.8 * block
            tempered -= tempered.max(axis=1, keepdims=True)
            p = np.exp(tempered)
            cdf = np.cumsum(p, axis=1)
            u = rng.random(n) * cdf[:, -1]
            # with --shift the logits at position s predict the label at s + 1
            nxt = np.arange(s0, s0 + n) + 1
            drawn = (cdf >= u[:, None]).argmax(axis=1)
            t[b, nxt[nxt < seq]] = drawn[nxt < seq]
            z[b, s0 : s0 + n] = block
        t[b, 0] = 0
        t[b, seq - seq // 16 :] = -100  # right padding
    z.flush()
    del z
    np.save(labels, t)


def evict(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def warm(path: Path) -> None:
    plain_read(path)


def plain_read(path: Path) -> float:
    buf = bytearray(BUF)
    view = memoryview(buf)
    start = time.perf_counter()
    with open(path, "rb", buffering=0) as f:
        while f.readinto(view):
            pass
    return time.perf_counter() - start


def run_eval(logits: Path, labels: Path, extra: list[str]) -> tuple[float, float, str]:
    """Seconds as eval reports them, the child's peak RSS in MB, and its stdout."""
    out = logits.with_suffix(".json")
    probe = (
        "import resource, subprocess, sys; r = subprocess.run(sys.argv[1:]); "
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr); "
        "sys.exit(r.returncode)"
    )
    cmd = [sys.executable, "-c", probe, sys.executable, "-m", "logitkit", "eval", str(logits),
           str(labels), "--shift", "--quiet", "--json", str(out), *extra]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
    seconds = json.loads(out.read_text())["timing"]["seconds"]
    rss_mb = int(proc.stderr.strip().splitlines()[-1]) / 1024
    return seconds, rss_mb, proc.stdout


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dir", default="/tmp", help="where the file is written")
    parser.add_argument("--batch", type=int, default=10)
    parser.add_argument("--seq", type=int, default=1024)
    parser.add_argument("--classes", type=int, default=32000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", action="store_true", help="keep the files")
    parser.add_argument("--json", help="write the figures to this JSON file")
    parser.add_argument("eval_args", nargs="*", help="extra logitkit eval options (after --)")
    args = parser.parse_args()

    d = Path(args.dir)
    d.mkdir(parents=True, exist_ok=True)
    logits, labels = d / "bench_eval_logits.npy", d / "bench_eval_labels.npy"
    if not logits.exists():
        t0 = time.perf_counter()
        write_data(logits, labels, args.batch, args.seq, args.classes, args.seed)
        print(f"wrote {logits} in {time.perf_counter() - t0:.1f} s")
    size = logits.stat().st_size
    rows = args.batch * args.seq
    cpu = next(
        (line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if "model name" in line),
        platform.processor(),
    )
    print(
        f"{logits.name}: {args.batch} x {args.seq} x {args.classes} float32, {size / 1e9:.2f} GB; "
        f"CPU {cpu}, {os.cpu_count()} cores; load average {os.getloadavg()[0]:.1f}; "
        f"medians of {args.repeat}"
    )
    figures: dict[str, dict[str, float]] = {}
    try:
        for mode in ("uncached", "cached"):
            reads, evals, rss = [], [], []
            prepare = evict if mode == "uncached" else warm
            # Reads and evaluations take turns, one of each per round: this disk's times
            # come in two modes (a plain uncached read of the same file takes 0.58 s or
            # 0.7 to 1.2 s), and in turns a slow spell falls on both alike. One untimed read
            # first, so that the first timed one starts from a plain read too.
            prepare(logits)
            plain_read(logits)
            for _ in range(args.repeat):
                prepare(logits)
                reads.append(plain_read(logits))
                prepare(logits)
                secs, mb, stdout = run_eval(logits, labels, args.eval_args)
                evals.append(secs)
                rss.append(mb)
            r, e = statistics.median(reads), statistics.median(evals)
            figures[mode] = {
                "read_s": r,
                "eval_s": e,
                "read_GBps": size / r / 1e9,
                "eval_GBps": size / e / 1e9,
                "eval_rows_per_s": rows / e,
                "eval_over_read": e / r,
                # the disk's fast mode, which both reach in most runs of seven
                "eval_over_read_best": min(evals) / min(reads),
                "peak_rss_MB": max(rss),
            }
            f = figures[mode]
            f["read_s_all"], f["eval_s_all"] = reads, evals  # type: ignore[assignment]
            rounds_read = " ".join(f"{t:.2f}" for t in reads)
            rounds_eval = " ".join(f"{t:.2f}" for t in evals)
            print(
                f"{mode:>9}: read {r:6.2f} s ({f['read_GBps']:.2f} GB/s)   eval {e:6.2f} s "
                f"({f['eval_GBps']:.2f} GB/s, {f['eval_rows_per_s']:,.0f} rows/s, "
                f"peak RSS {f['peak_rss_MB']:.0f} MB)   eval / read {f['eval_over_read']:.2f}\n"
                f"{'':>11}rounds: read {rounds_read} s; eval {rounds_eval} s; "
                f"best eval / best read {f['eval_over_read_best']:.2f}"
            )
        print("\nlast eval's report:\n" + stdout)
    finally:
        if not args.keep:
            logits.unlink(missing_ok=True)
            labels.unlink(missing_ok=True)
            logits.with_suffix(".json").unlink(missing_ok=True)
    if args.json:
        Path(args.json).write_text(
            json.dumps({"file_bytes": size, "rows": rows, "cpu": cpu, "figures": figures}, indent=1)
            + "\n"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
