"""Accuracy, in ulps, of logitkit's vectorised exp and log, per instruction set.

    python benchmarks/exp_ulp.py [--isa NAME ...] [--step N] [--points N] [--threads N]

Three scans, each run for every ISA in lk.available_isas() (or those given with --isa):

* float32 exp over every float32 in [-104, 88.72] (every bit pattern, both zeros included),
  then over the rest of the way to 89, above which every float32 overflows;
* float64 exp over --points (default 20 million) uniform random points in [-745, 709.7];
* float32 log over every positive finite float32, subnormals included.

The error of a result is |got - exact| / spacing(exact rounded to the result's dtype). The
exact value is np.exp / np.log in float64 for the float32 scans (its own error is about
1e-9 float32 ulp) and np.exp in long double for float64 when the platform's long double
has a 64-bit significand; otherwise float64 np.exp, whose own error (up to about half an
ulp) then blurs the float64 figure. Two rules replace the ulp count where it means
little: a result whose exact value overflows the dtype must be +inf, and one whose exact
value is below the smallest normal number must be 0 or one of the two subnormals around
the exact value. A NaN result, or an infinite one where a finite one was due, shows as a
max ulp of nan / inf.

--step N takes every N-th bit pattern of the float32 scans instead of all of them. The
arguments are processed in chunks of 2^24, --threads chunks at a time (each kernel call
single-threaded); the exhaustive run over the three ISAs of an AVX2 machine takes about
three minutes on two otherwise idle cores.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

import logitkit as lk

CHUNK = 1 << 24
F64_CHUNK = 1 << 21  # long double temporaries are 16 bytes an element
EXP32_LO, EXP32_HI = -104.0, 88.72
EXP32_OVERFLOW_ALL = 89.0  # exp of every float32 above this overflows
EXP64_LO, EXP64_HI = -745.0, 709.7

HAVE_EXTENDED = np.finfo(np.longdouble).nmant >= 63


@dataclass
class Stats:
    """One ISA's results over one scan, merged over its chunks."""

    count: int = 0
    max_ulp: float = -1.0
    at: tuple[float, float, float] | None = None  # x, got, exact at the max
    over_seen: int = 0
    over_bad: int = 0
    under_seen: int = 0
    under_bad: int = 0
    first_bad: tuple[float, float, float] | None = None
    seconds: float = 0.0  # time in the kernel itself, over all chunks

    def merge(self, other: Stats) -> None:
        self.count += other.count
        self.over_seen += other.over_seen
        self.over_bad += other.over_bad
        self.under_seen += other.under_seen
        self.under_bad += other.under_bad
        self.seconds += other.seconds
        if self.first_bad is None:
            self.first_bad = other.first_bad
        if worse(other.max_ulp, self.max_ulp):
            self.max_ulp, self.at = other.max_ulp, other.at


def worse(a: float, b: float) -> bool:
    # A NaN error is a wrong result, so it outranks every number.
    if math.isnan(b):
        return False
    return math.isnan(a) or a > b


# ----------------------------------------------------------------------- the arguments


def f32_bits(v: float) -> int:
    return int(np.array(v, dtype=np.float32).view(np.uint32))


def f32_inward(lo: float, hi: float) -> tuple[np.float32, np.float32]:
    """The smallest and largest float32 inside [lo, hi]."""
    a, b = np.float32(lo), np.float32(hi)
    if a < lo:
        a = np.nextafter(a, np.float32(np.inf))
    if b > hi:
        b = np.nextafter(b, np.float32(-np.inf))
    return a, b


def f32_bit_ranges(lo: float, hi: float) -> list[tuple[int, int]]:
    """[start, stop) bit-pattern ranges that together hold every float32 in [lo, hi]."""
    a, b = f32_inward(lo, hi)
    if a > b:
        return []
    ranges = []
    if a < 0 or (a == 0 and np.signbit(a)):
        # Negative floats grow in magnitude with their bit pattern, from -0 at 0x80000000.
        start = f32_bits(float(b)) if b < 0 else 0x80000000
        ranges.append((start, f32_bits(float(a)) + 1))
    if b >= 0:
        start = f32_bits(float(a)) if a > 0 else 0
        ranges.append((start, f32_bits(float(b)) + 1))
    return ranges


def f32_chunks(ranges: list[tuple[int, int]], step: int) -> Iterator[tuple[int, int, int]]:
    for start, stop in ranges:
        for c in range(start, stop, CHUNK * step):
            yield c, min(c + CHUNK * step, stop), step


def f32_count(ranges: list[tuple[int, int]], step: int) -> int:
    return sum(len(range(start, stop, step)) for start, stop in ranges)


def f32_from_bits(chunk: tuple[int, int, int]) -> np.ndarray:
    start, stop, step = chunk
    return np.arange(start, stop, step, dtype=np.uint32).view(np.float32)


# ---------------------------------------------------------------------------- judging


def spacing_of(rounded: np.ndarray) -> np.ndarray:
    """The ulp of each (finite) value as float64, from its exponent bits.

    np.spacing does the same but goes through nextafter element by element, several times
    slower than the rest of the scan put together.
    """
    info = np.finfo(rounded.dtype)
    if rounded.dtype == np.float32:
        powers = (rounded.view(np.uint32) & np.uint32(0x7F800000)).view(np.float32)
    else:
        powers = (rounded.view(np.uint64) & np.uint64(0x7FF0000000000000)).view(np.float64)
    sp = powers.astype(np.float64)
    sp *= 2.0**-info.nmant
    # Exponent field 0 (zero and the subnormals): the spacing is the smallest subnormal.
    np.maximum(sp, float(info.smallest_subnormal), out=sp)
    return sp


@dataclass
class Reference:
    """What is known about a chunk before any ISA runs, shared by all of them."""

    x: np.ndarray
    exact: np.ndarray
    spacing: np.ndarray
    overflow: np.ndarray | None  # where the exact value rounds to +-inf
    underflow: np.ndarray | None  # where it is below the smallest normal number
    sub_lo: np.ndarray | None = field(default=None)  # subnormal grid neighbours, there
    sub_hi: np.ndarray | None = field(default=None)


def make_reference(x: np.ndarray, exact: np.ndarray, dtype: type, limits: bool) -> Reference:
    """limits: apply the overflow and underflow rules (for exp; log has neither, and its
    one tiny exact value, log(1) = 0, must come out as exactly 0)."""
    with np.errstate(over="ignore"):
        rounded = exact.astype(dtype)
    spacing = spacing_of(rounded)
    if not limits:
        return Reference(x, exact, spacing, None, None)
    overflow = np.isinf(rounded)
    underflow = np.abs(exact) < np.finfo(dtype).smallest_normal
    ref = Reference(
        x,
        exact,
        spacing,
        overflow if overflow.any() else None,
        underflow if underflow.any() else None,
    )
    if ref.underflow is not None:
        step = float(np.finfo(dtype).smallest_subnormal)
        units = np.abs(exact[ref.underflow]) / exact.dtype.type(step)
        ref.sub_lo, ref.sub_hi = np.floor(units), np.ceil(units)
    return ref


def judge(ref: Reference, got: np.ndarray) -> Stats:
    s = Stats(count=got.size)
    with np.errstate(invalid="ignore"):  # inf - inf where an overflow is handled below
        err = np.subtract(got, ref.exact, dtype=ref.exact.dtype)
        np.abs(err, out=err)
        np.divide(err, ref.spacing, out=err)

    bad = np.zeros(got.shape, dtype=bool)
    if ref.overflow is not None:
        hit = got[ref.overflow]
        want = np.where(ref.exact[ref.overflow] > 0, np.inf, -np.inf)
        wrong = hit != want
        s.over_seen, s.over_bad = hit.size, int(wrong.sum())
        bad[ref.overflow] = wrong
        err[ref.overflow] = 0
    if ref.underflow is not None:
        step = float(np.finfo(got.dtype).smallest_subnormal)
        units = np.abs(got[ref.underflow]).astype(ref.exact.dtype) / ref.exact.dtype.type(step)
        wrong = ~((units == 0) | (units == ref.sub_lo) | (units == ref.sub_hi))
        wrong |= np.signbit(got[ref.underflow]) != np.signbit(ref.exact[ref.underflow])
        s.under_seen, s.under_bad = units.size, int(wrong.sum())
        bad[ref.underflow] = wrong
        err[ref.underflow] = 0
    if s.over_bad or s.under_bad:
        i = int(np.argmax(bad))
        s.first_bad = (float(ref.x[i]), float(got[i]), float(ref.exact[i]))

    i = int(np.argmax(err))  # the first NaN, if there is one
    s.max_ulp = float(err[i])
    s.at = (float(ref.x[i]), float(got[i]), float(ref.exact[i]))
    return s


def run_isas(op: int, ref: Reference, isas: list[str]) -> dict[str, Stats]:
    out: dict[str, Stats] = {}
    got = np.empty_like(ref.x)
    for name in isas:
        with lk.use_isa(name):
            t0 = time.perf_counter()
            # One thread per call: the chunks themselves run in parallel.
            lk._core.unary(op, ref.x, got, lk._runtime.current_isa_index(), 1)
            seconds = time.perf_counter() - t0
        out[name] = judge(ref, got)
        out[name].seconds = seconds
    return out


# ----------------------------------------------------------------------------- scans


@dataclass
class Scan:
    title: str
    dtype: type
    chunks: list[object]
    work: Callable[[object], dict[str, Stats]]
    count: int
    show_overflow: bool = False
    show_underflow: bool = False


def exp32_chunk(isas: list[str]) -> Callable[[object], dict[str, Stats]]:
    def work(chunk: object) -> dict[str, Stats]:
        x = f32_from_bits(chunk)  # type: ignore[arg-type]
        exact = np.exp(x.astype(np.float64))
        return run_isas(lk._core.OP_EXP, make_reference(x, exact, np.float32, True), isas)

    return work


def log32_chunk(isas: list[str]) -> Callable[[object], dict[str, Stats]]:
    def work(chunk: object) -> dict[str, Stats]:
        x = f32_from_bits(chunk)  # type: ignore[arg-type]
        exact = np.log(x.astype(np.float64))
        return run_isas(lk._core.OP_LOG, make_reference(x, exact, np.float32, False), isas)

    return work


def exp64_chunk(isas: list[str], seed: int) -> Callable[[object], dict[str, Stats]]:
    def work(chunk: object) -> dict[str, Stats]:
        index, n = chunk  # type: ignore[misc]
        # Seeded per chunk, so the points do not depend on which thread draws them.
        rng = np.random.default_rng([seed, index])
        x = rng.uniform(EXP64_LO, EXP64_HI, n)
        exact = np.exp(x.astype(np.longdouble)) if HAVE_EXTENDED else np.exp(x)
        return run_isas(lk._core.OP_EXP, make_reference(x, exact, np.float64, True), isas)

    return work


def build_scans(args: argparse.Namespace, isas: list[str]) -> list[Scan]:
    scans = []
    step = args.step
    every = "every float32" if step == 1 else f"one float32 in every {step}"

    main = f32_bit_ranges(EXP32_LO, EXP32_HI)
    scans.append(
        Scan(
            f"float32 exp, {every} in [{EXP32_LO:g}, {EXP32_HI:g}]",
            np.float32,
            list(f32_chunks(main, step)),
            exp32_chunk(isas),
            f32_count(main, step),
            show_underflow=True,
        )
    )
    edge_lo = float(np.nextafter(f32_inward(EXP32_LO, EXP32_HI)[1], np.float32(np.inf)))
    edge = f32_bit_ranges(edge_lo, EXP32_OVERFLOW_ALL)
    scans.append(
        Scan(
            f"float32 exp, {every} in ({EXP32_HI:g}, {EXP32_OVERFLOW_ALL:g}]"
            " (the overflow threshold)",
            np.float32,
            list(f32_chunks(edge, step)),
            exp32_chunk(isas),
            f32_count(edge, step),
            show_overflow=True,
        )
    )

    n = args.points
    pieces = [(i, min(F64_CHUNK, n - start)) for i, start in enumerate(range(0, n, F64_CHUNK))]
    scans.append(
        Scan(
            f"float64 exp, {n:,} uniform random points in [{EXP64_LO:g}, "
            f"{EXP64_HI:g}] (seed {args.seed})",
            np.float64,
            list(pieces),
            exp64_chunk(isas, args.seed),
            n,
            show_underflow=True,
        )
    )

    logs = [(1, 0x7F800000)]  # smallest subnormal up to the largest finite float32
    scans.append(
        Scan(
            f"float32 log, {every} > 0 (finite, subnormals included)",
            np.float32,
            list(f32_chunks(logs, step)),
            log32_chunk(isas),
            f32_count(logs, step),
        )
    )
    return scans


# ---------------------------------------------------------------------------- output


def fmt_x(v: float, dtype: type) -> str:
    if dtype == np.float32:
        bits = int(np.array(v, dtype=np.float32).view(np.uint32))
        return f"{v:.9g} (0x{bits:08x})"
    return f"{v:.17g}"


def fmt_value(v: float, dtype: type) -> str:
    return f"{v:.9g}" if dtype == np.float32 else f"{v:.17g}"


def report(scan: Scan, totals: dict[str, Stats], elapsed: float) -> bool:
    print(f"{scan.title}: {scan.count:,} arguments, {elapsed:.1f} s")
    ok = True
    for name, s in totals.items():
        if s.at is None:
            print(f"  {name:<7} (no arguments)")
            continue
        x, got, exact = s.at
        line = (
            f"  {name:<7} max {s.max_ulp:.4f} ulp at x = {fmt_x(x, scan.dtype)}: "
            f"got {fmt_value(got, scan.dtype)}, exact {exact:.17g}; "
            f"kernel {s.seconds:.1f} s"
        )
        checks = []
        if scan.show_overflow or s.over_seen:
            checks.append(f"overflow -> inf: {s.over_seen - s.over_bad:,}/{s.over_seen:,}")
        if scan.show_underflow or s.under_seen:
            checks.append(
                f"below smallest normal -> 0 or adjacent subnormal: "
                f"{s.under_seen - s.under_bad:,}/{s.under_seen:,}"
            )
        if checks:
            line += "\n          " + "; ".join(checks)
        print(line)
        if s.first_bad is not None:
            bx, bgot, bexact = s.first_bad
            print(
                f"          RULE BROKEN, e.g. x = {fmt_x(bx, scan.dtype)}: got "
                f"{fmt_value(bgot, scan.dtype)}, exact {bexact:.17g}"
            )
        if s.over_bad or s.under_bad or not math.isfinite(s.max_ulp):
            ok = False
    return ok


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--isa",
        action="append",
        metavar="NAME",
        help="only this ISA (repeat, or separate with commas); default all available",
    )
    p.add_argument(
        "--step",
        type=int,
        default=1,
        help="take every N-th float32 bit pattern (default 1: all of them)",
    )
    p.add_argument(
        "--points", type=int, default=20_000_000, help="random points for the float64 exp scan"
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the float64 points")
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        help="chunks processed at once (default: logitkit's default threads)",
    )
    args = p.parse_args(argv)
    if args.step < 1 or args.points < 0:
        p.error("--step must be positive and --points not negative")
    if args.threads is not None and args.threads < 1:
        p.error("--threads must be positive")
    available = lk.available_isas()
    if args.isa:
        wanted = [n.strip().lower() for item in args.isa for n in item.split(",") if n.strip()]
        unknown = [n for n in wanted if n not in available]
        if unknown:
            p.error(f"not available here: {', '.join(unknown)} (available: {', '.join(available)})")
        args.isa = list(dict.fromkeys(wanted))
    else:
        args.isa = available
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    info = lk.runtime_info()
    workers = args.threads if args.threads is not None else info["threads"]
    print(
        f"logitkit {info['version']}; ISAs: {', '.join(args.isa)} "
        f"(best here: {info['best_isa']}); {workers} chunks at a time"
    )
    f64_ref = (
        "long double np.exp" if HAVE_EXTENDED else "float64 np.exp (no 64-bit long double here)"
    )
    print(f"exact values: float64 np.exp / np.log for float32, {f64_ref} for float64")
    print()

    all_ok = True
    progress = sys.stderr.isatty()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for scan in build_scans(args, args.isa):
            t0 = time.perf_counter()
            totals = {name: Stats() for name in args.isa}
            for done, part in enumerate(pool.map(scan.work, scan.chunks), 1):
                for name, s in part.items():
                    totals[name].merge(s)
                if progress:
                    print(f"\r  {done}/{len(scan.chunks)} chunks", end="", file=sys.stderr)
            if progress:
                print("\r\033[K", end="", file=sys.stderr)
            all_ok &= report(scan, totals, time.perf_counter() - t0)
    if not all_ok:
        print("\nFAILED: a result broke the overflow/underflow rule or was NaN/inf")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
