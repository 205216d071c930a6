"""Perplexity of logits stored on disk, computed on a Dask cluster with logitkit.dask.

    # a self-contained demo: writes synthetic logits to a temporary directory first
    python examples/dask_perplexity.py --demo [--format npy|zarr]

    # your own logits (rows x vocabulary, float32/float64/float16) and int targets (rows,)
    python examples/dask_perplexity.py --logits logits.npy --targets targets.npy
    python examples/dask_perplexity.py --logits logits.zarr --targets targets.npy

    # on a multi-machine cluster
    python examples/dask_perplexity.py --scheduler tcp://HOST:8786 --logits ... --targets ...

Perplexity is ``exp`` of the mean per-token cross-entropy over the tokens that count (targets
equal to ``--ignore-index`` are skipped). The logits never have to fit one machine's memory:
each worker reads its own blocks straight from the file, the vocabulary may be split across
chunks (``--class-chunk``), and the mean is the exact global one (total loss over the token
count), whatever the chunking.

Multi-machine: start a scheduler on one machine (``dask scheduler``), a worker on every
machine (``dask worker tcp://HOST:8786 --nthreads 1``, with logitkit installed), and pass
``--scheduler tcp://HOST:8786``. Every worker must be able to read the paths given: put the
``.npy`` file on a shared filesystem (NFS, Lustre...) under the same path everywhere, or store
the logits as Zarr, which also reads from object stores (``s3://...``, ``gs://...`` with the
matching fsspec package installed). Without ``--scheduler`` a ``LocalCluster`` of
``--workers`` processes runs on this machine.
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from pathlib import Path
from typing import Any

import dask.array as da
import numpy as np
from distributed import Client, LocalCluster

import logitkit as lk
import logitkit.dask as lkd


class NpyBlocks:
    """A ``.npy`` file as an array Dask can slice on the workers.

    ``da.from_array`` of a ``np.memmap`` would pickle the mapped data into the task graph;
    this object pickles only the path and opens the file (memory-mapped) on the worker that
    reads a block, so only the bytes of that block are read there.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        header = np.load(self.path, mmap_mode="r")
        self.shape, self.dtype, self.ndim = header.shape, header.dtype, header.ndim

    def __getitem__(self, index: Any) -> np.ndarray:
        return np.asarray(np.load(self.path, mmap_mode="r")[index])


def open_logits(path: str, row_chunk: int, class_chunk: int | None) -> da.Array:
    if Path(path).suffix == ".npy":
        source = NpyBlocks(path)
        chunks = (row_chunk, class_chunk or source.shape[1])
        return da.from_array(source, chunks=chunks, asarray=False, fancy=False)
    logits = da.from_zarr(path)
    return logits.rechunk((row_chunk, class_chunk or logits.shape[1]))


def write_demo(directory: Path, fmt: str, rows: int, vocab: int) -> tuple[str, str]:
    """Synthetic logits with a known structure: the target usually holds a high score."""
    rng = np.random.default_rng(0)
    logits = rng.standard_normal((rows, vocab), dtype=np.float32) * 2
    targets = rng.integers(0, vocab, rows)
    logits[np.arange(rows), targets] += 6.0
    targets[rng.random(rows) < 0.05] = -100  # padding tokens
    np.save(directory / "targets.npy", targets)
    if fmt == "npy":
        np.save(directory / "logits.npy", logits)
        return str(directory / "logits.npy"), str(directory / "targets.npy")
    da.from_array(logits, chunks=(1024, vocab)).to_zarr(str(directory / "logits.zarr"))
    return str(directory / "logits.zarr"), str(directory / "targets.npy")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--logits", help=".npy file or Zarr array of shape (tokens, vocab)")
    parser.add_argument("--targets", help=".npy file of int class indices, shape (tokens,)")
    parser.add_argument("--demo", action="store_true", help="write and use synthetic data")
    parser.add_argument("--format", choices=("npy", "zarr"), default="npy", help="demo format")
    parser.add_argument("--demo-rows", type=int, default=8192)
    parser.add_argument("--demo-vocab", type=int, default=32000)
    parser.add_argument("--scheduler", help="address of a running cluster, tcp://HOST:8786")
    parser.add_argument("--workers", type=int, default=2, help="local worker processes")
    parser.add_argument("--row-chunk", type=int, default=1024)
    parser.add_argument("--class-chunk", type=int, help="split the vocabulary (default: not)")
    parser.add_argument("--ignore-index", type=int, default=-100)
    args = parser.parse_args()
    if not args.demo and not (args.logits and args.targets):
        parser.error("give --logits and --targets, or --demo")

    with tempfile.TemporaryDirectory() as tmp:
        if args.demo:
            args.logits, args.targets = write_demo(
                Path(tmp), args.format, args.demo_rows, args.demo_vocab
            )
        if args.scheduler:
            client = Client(args.scheduler)
            cluster = None
        else:
            cluster = LocalCluster(
                n_workers=args.workers, threads_per_worker=1, dashboard_address=":0"
            )
            client = Client(cluster)
        try:
            logits = open_logits(args.logits, args.row_chunk, args.class_chunk)
            targets = da.from_array(np.load(args.targets), chunks=args.row_chunk)
            print(
                f"logits {logits.shape} {logits.dtype} in chunks of {logits.chunksize} "
                f"({logits.npartitions} blocks) on {len(client.scheduler_info()['workers'])} "
                "workers"
            )
            nll = lkd.cross_entropy(logits, targets, ignore_index=args.ignore_index)
            tokens = (targets != args.ignore_index).sum()
            start = time.perf_counter()
            mean_nll, n_tokens = client.compute([nll, tokens], sync=True)
            elapsed = time.perf_counter() - start
            print(f"tokens counted: {int(n_tokens)}")
            print(f"mean cross-entropy: {float(mean_nll):.6f} nats/token")
            print(f"perplexity: {math.exp(float(mean_nll)):.4f}  ({elapsed:.2f} s)")
            if args.demo:
                # the same mean in memory, in one process: the two must agree
                in_memory = lk.cross_entropy(np.asarray(logits.compute()), np.load(args.targets))
                print(f"in-memory check: {float(in_memory):.6f} nats/token")
        finally:
            client.close()
            if cluster is not None:
                cluster.close()


if __name__ == "__main__":
    main()
