"""Record the golden digests of logitkit's results in tests/golden/digests*.json.

Regenerate only when a change of the numbers is intended and has been reviewed: a kernel
that now rounds differently on purpose, a fixed bug, new cases added to cases.py. The diff
of the digests file then names every case whose result changed, and that list is what the
review checks. A refactor of the native code must reproduce every digest, so regenerating
to make tests/test_golden.py pass after one defeats the test. The file holds the digests of
this build on this machine, one table per ISA it runs; run from the repository root, with
the extension built:

    PYTHONPATH=python python tests/golden/make_golden.py

Machines whose NumPy gives other last bits (cases.numpy_fingerprint: an AVX-512 CPU and an
AVX2 one do) each have a file: this writes the one recorded on a machine like this one,
else a new digests-<fingerprint>.json. An intended change of the numbers is recorded in
every file, each on its kind of machine.

It also checks that every case gives the same bits with 1 and 2 threads, and stops if not.
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

import logitkit as lk

sys.path.insert(0, str(Path(__file__).resolve().parent))
import cases  # noqa: E402

GOLDEN_DIR = Path(__file__).resolve().parent


def _compiler() -> str | None:
    """The compiler that built the extension, from its ELF .comment strings."""
    try:
        blob = Path(lk._core.__file__).read_bytes()
    except OSError:
        return None
    found = re.findall(rb"(GCC: \([^)]*\) [\w.\-]+|clang version [\w.\-]+)", blob)
    return " / ".join(sorted({m.decode() for m in found})) or None


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def _version(module: str) -> str | None:
    try:
        return str(__import__(module).__version__)
    except ImportError:
        return None


def platform_info() -> dict[str, Any]:
    """What the digests depend on besides logitkit's own code: NumPy (its random streams make
    the inputs, and some functions finish their results in NumPy), SciPy (its BLAS
    accumulates the fused linear layer's weight gradient) and the BLAS behind NumPy."""
    info = lk.runtime_info()
    blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
    return {
        "machine": platform.machine(),
        "system": platform.system(),
        "cpu": _cpu_model(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "scipy": _version("scipy"),
        "ml_dtypes": _version("ml_dtypes"),
        "blas": f"{blas.get('name')} {blas.get('version')}",
        "logitkit": lk.__version__,
        "compiler": _compiler(),
        "openmp": info["openmp"],
        "compiled_isas": info["compiled_isas"],
        "supported_isas": info["supported_isas"],
    }


def record(isas: list[str]) -> dict[str, dict[str, str]]:
    tables: dict[str, dict[str, str]] = {}
    for isa in isas:
        start = time.perf_counter()
        with lk.use_isa(isa):
            tables[isa] = {case_id: cases.run(fn) for case_id, fn in cases.cases()}
        print(f"{isa}: {len(tables[isa])} cases in {time.perf_counter() - start:.1f} s")
    return tables


def check_threads(tables: dict[str, dict[str, str]]) -> None:
    """Results must not depend on the thread count: every case's thread variants agree."""
    bad = []
    for isa, table in tables.items():
        groups: dict[str, set[str]] = {}
        for case_id, value in table.items():
            group = cases.thread_group(case_id)
            if group is not None:
                groups.setdefault(group, set()).add(value)
        bad += [f"{isa}: {group}" for group, values in sorted(groups.items()) if len(values) > 1]
    if bad:
        raise SystemExit(
            "results depend on the thread count (nothing written):\n  " + "\n  ".join(bad)
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument(
        "--output", type=Path, help="default: the file recorded on a machine like this one"
    )
    args = parser.parse_args()
    tables = record(lk.available_isas())
    check_threads(tables)
    fingerprint = cases.numpy_fingerprint()
    golden = {
        "platform": platform_info(),
        "inputs": cases.inputs_digest(),
        "fingerprint": fingerprint,
        "isas": tables,
    }
    if args.output is None:
        recorded = {path.name: json.loads(path.read_text()) for path in cases.golden_files()}
        name = cases.matching_golden(recorded) or f"digests-{fingerprint[:12]}.json"
        args.output = GOLDEN_DIR / name
    text = json.dumps(golden, indent=1, sort_keys=False)
    args.output.write_text(text + "\n")
    print(f"wrote {args.output} ({len(text) // 1024} KiB)")


if __name__ == "__main__":
    main()
