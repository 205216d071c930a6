"""What a run shows: the progress bar or per-measurement lines, the final text tables and
notes, the Markdown table and the plot (the JSON is the result dict itself)."""

from __future__ import annotations

import shutil
import time
from typing import Any, TextIO

import numpy as np

from .plan import DTYPE_SHORT, OPS, PEERS, READ_MODE, SETTLE_S, SLOW_CALL_S
from .probe import short_machine


class Progress:
    """A one-line progress bar on a terminal; one line per finished measurement otherwise."""

    def __init__(self, total: float, stream: TextIO, bar: bool) -> None:
        self.total = max(total, 1e-9)
        self.stream = stream
        self.bar = bar
        self.done = 0.0
        self.count = 0
        self.started = time.perf_counter()
        self._last_draw = 0.0
        self._label = ""

    def _fmt_s(self, seconds: float) -> str:
        seconds = max(0, int(seconds))
        return f"{seconds // 60}m{seconds % 60:02d}s"

    def draw(self, label: str | None = None, force: bool = False) -> None:
        if label is not None:
            self._label = label
        if not self.bar:
            return
        now = time.perf_counter()
        if not force and now - self._last_draw < 0.1:
            return
        self._last_draw = now
        frac = min(1.0, self.done / self.total)
        elapsed = now - self.started
        eta = elapsed * (1 - frac) / frac if frac > 0.01 else None
        width = shutil.get_terminal_size((100, 20)).columns - 1
        timing = f"{self._fmt_s(elapsed)}" + (f" ~{self._fmt_s(eta)} left" if eta else "")
        head = f"{100 * frac:3.0f}% "
        bar_w = max(10, min(30, width // 4))
        filled = int(round(bar_w * frac))
        text = f"[{'#' * filled}{'.' * (bar_w - filled)}] {head}{timing}  {self._label}"
        self.stream.write("\r" + text[:width].ljust(width))
        self.stream.flush()

    def advance(self, amount: float, line: str) -> None:
        """A measurement finished: move the bar, or print its line when there is no bar."""
        self.done += amount
        self.count += 1
        if self.bar:
            self.draw(force=True)
        else:
            self.stream.write(line + "\n")
            self.stream.flush()

    def close(self) -> None:
        if self.bar:
            width = shutil.get_terminal_size((100, 20)).columns - 1
            self.stream.write("\r" + " " * width + "\r")
            self.stream.flush()


def _ratio_cell(info: dict[str, Any] | None, mark: str = "!") -> str:
    """A peer's time over logitkit's as a short cell: '4.8x', '4.8x!' (disagrees), 'fail'."""
    if info is None:
        return "-"
    status = info.get("status", "")
    if status == "ok":
        cell = f"{info['ratio']:.2f}x" if info["ratio"] < 10 else f"{info['ratio']:.1f}x"
        return cell + ("" if info.get("agrees", True) else mark)
    if status.startswith("failed"):
        return "fail"
    if status.startswith("not run"):
        return "-"
    return "n/a"


def record_line(rec: dict[str, Any]) -> str:
    peers = ", ".join(
        f"{p} {_ratio_cell(i)}"
        for p, i in rec["peers"].items()
        if not i["status"].startswith("not run")
    )
    line = (
        f"{rec['op']} {rec['shape_label']} {DTYPE_SHORT[rec['dtype']]} {rec['mode']} "
        f"t={rec['threads']}: logitkit {rec['median_ms']:.3f} ms, {rec['gb_per_s']:.1f} GB/s, "
        f"{rec['fraction']:.2f} of {rec['yardstick']['kind']}"
    )
    return line + (f"; {peers}" if peers else "")


def _fmt_ms(ms: float) -> str:
    return f"{ms:.3f}" if ms < 10 else f"{ms:.2f}" if ms < 100 else f"{ms:.1f}"


def _peer_columns(records: list[dict[str, Any]]) -> list[str]:
    seen: list[str] = []
    for rec in records:
        for p in rec["peers"]:
            if p not in seen:
                seen.append(p)
    return [p for p in PEERS if p in seen]


def text_report(result: dict[str, Any]) -> str:
    """The final table: logitkit at the largest thread count with the peers' ratios, then the
    thread scaling, then the notes (disagreements, failures, capped repeats)."""
    records = result["records"]
    max_t = result["config"]["max_threads"]
    lines: list[str] = []
    top = [r for r in records if r["threads"] == max_t]
    peers = _peer_columns(top)
    head = (
        f"{'op':<20} {'shape':<16} {'dtype':<5} {'mode':<5} {'ms':>9} {'GB/s':>6} "
        f"{'of yard':>12} {'yard ms':>9}" + "".join(f" {p:>7}" for p in peers) + f" {'busy':>5}"
    )
    lines.append(
        f"logitkit at {max_t} thread(s); peers' columns are their time / logitkit's "
        "(above 1: logitkit faster; '!' = result disagrees); busy: CPU share other "
        f"processes took meanwhile ('*' above {100 * BUSY_FLAG:.0f}%)"
    )
    lines.append(head)
    lines.append("-" * len(head))
    for r in top:
        frac = f"{r['fraction']:.2f} {r['yardstick']['kind']}"
        lines.append(
            f"{r['op']:<20} {r['shape_label']:<16} {DTYPE_SHORT[r['dtype']]:<5} {r['mode']:<5} "
            f"{_fmt_ms(r['median_ms']):>9} {r['gb_per_s']:>6.1f} {frac:>12} "
            f"{_fmt_ms(r['yardstick']['median_ms']):>9}"
            + "".join(f" {_ratio_cell(r['peers'].get(p)):>7}" for p in peers)
            + f" {_busy_cell(r):>5}"
        )

    scaling = _scaling_rows(records, max_t)
    if scaling:
        lines.append("")
        lines.append("thread scaling (logitkit)")
        head = (
            f"{'op':<20} {'shape':<16} {'dtype':<5} {'mode':<5} {'1 thr ms':>9} "
            f"{'of yard':>8} {f'{max_t} thr ms':>9} {'of yard':>8} {'speed-up':>8} {'busy':>5}"
        )
        lines.append(head)
        lines.append("-" * len(head))
        for one, many in scaling:
            lines.append(
                f"{one['op']:<20} {one['shape_label']:<16} {DTYPE_SHORT[one['dtype']]:<5} "
                f"{one['mode']:<5} {_fmt_ms(one['median_ms']):>9} {one['fraction']:>8.2f} "
                f"{_fmt_ms(many['median_ms']):>9} {many['fraction']:>8.2f} "
                f"{one['median_ms'] / many['median_ms']:>7.2f}x {_busy_cell(one, many):>5}"
            )
    notes = result["notes"]
    if notes:
        lines.append("")
        lines.append("notes")
        lines += [f"- {n}" for n in notes]
    return "\n".join(lines)


#: A measurement during which other processes used more than this fraction of all CPUs is
#: flagged: its multi-threaded times are likely to include waits for a core.
BUSY_FLAG = 0.10


def _busy_cell(*recs: dict[str, Any]) -> str:
    """The CPU share other processes took during the measurement(s), '*' when flagged."""
    values = [r["others_cpu"] for r in recs if r.get("others_cpu") is not None]
    if not values:
        return "?"
    v = max(values)
    return f"{100 * v:.0f}%" + ("*" if v > BUSY_FLAG else "")


def _flag(rec: dict[str, Any]) -> str:
    return "*" if (rec.get("others_cpu") or 0.0) > BUSY_FLAG else ""


def _scaling_rows(
    records: list[dict[str, Any]], max_t: int
) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    one = {(r["op"], r["shape"], r["mode"]): r for r in records if r["threads"] == 1}
    rows = []
    for r in records:
        if r["threads"] == max_t and max_t != 1 and (r["op"], r["shape"], r["mode"]) in one:
            rows.append((one[(r["op"], r["shape"], r["mode"])], r))
    return rows


def collect_notes(result: dict[str, Any]) -> list[str]:
    notes = []
    for r in result["records"]:
        where = f"{r['op']} {r['shape']} {r['mode']} t={r['threads']}"
        if r["logitkit"]["capped"]:
            notes.append(f"{where}: logitkit timed {r['logitkit']['repeats']} times (slow call)")
        for peer, info in r["peers"].items():
            status = info.get("status", "")
            if status.startswith("failed"):
                notes.append(f"{where}: {peer} {status}")
            elif status == "ok" and not info.get("agrees", True):
                diff = info.get("max_abs_diff")
                diff_text = "shape or NaN mismatch" if diff is None else f"max |diff| {diff:.3g}"
                notes.append(
                    f"{where}: {peer} disagrees with logitkit ({diff_text} > "
                    f"tolerance {info['tolerance']:.3g})"
                )
            if status == "ok" and info.get("capped") and not info.get("same_call_as_other_mode"):
                first = info["times_ms"][0] / 1e3
                notes.append(
                    f"{where}: {peer} timed {info['repeats']} times, not "
                    f"{result['config']['repeat']}: one call took {first:.2f} s "
                    f"(> {SLOW_CALL_S:g} s)"
                )
    busy = [r for r in result["records"] if (r.get("others_cpu") or 0.0) > BUSY_FLAG]
    if busy:
        notes.append(
            f"{len(busy)} of {len(result['records'])} measurements ran while other processes "
            f"used more than {100 * BUSY_FLAG:.0f}% of the CPUs ('*' in the busy column): their "
            "multi-threaded times may include waits for a core"
        )
    if result.get("others_cpu") is not None:
        notes.append(
            f"other processes used {100 * result['others_cpu']:.0f}% of the CPUs over the whole run"
        )
    missing = sorted(
        {
            p
            for r in result["records"]
            for p, i in r["peers"].items()
            if i["status"] == "not installed"
        }
    )
    for p in missing:
        notes.append(f"{p}: not installed, its column is empty")
    peers = result["config"]["peers"]
    if "numpy" in peers or "scipy" in peers:
        notes.append("NumPy and SciPy run these formulas on one thread whatever --threads says")
    if "jax" in peers and "jax" in result["versions"]:
        notes.append("JAX's thread count is not controlled: XLA sizes its own CPU thread pool")
    isa = result.get("isa") or {}
    torch_ran = any(r["peers"].get("torch", {}).get("status") == "ok" for r in result["records"])
    if torch_ran and isa.get("torch") and isa["torch"].lower() != isa["logitkit"]:
        notes.append(
            f"logitkit ran its {isa['logitkit']} kernels, PyTorch its {isa['torch']} ones: "
            "PyTorch's are chosen by ATEN_CPU_CAPABILITY (default, avx2 or avx512 on x86-64) "
            "when it is imported, so set it before the run to compare like with like"
        )
    if result["config"].get("interleave"):
        notes.append(
            "--interleave: each timed call follows another implementation's, after a "
            f"{1e3 * SETTLE_S:.0f} ms pause that lets that one's threads stop spinning, so a "
            "multi-threaded one may include waking its library's sleeping thread pool"
        )
    notes.append(
        "a peer without an out= form for an op runs its allocating call in out mode too "
        "(timed once, shown in both rows)"
    )
    return notes


def isa_text(isa: dict[str, Any]) -> str:
    """Which kernels ran, in one line: ``logitkit avx2 (--isa; best here avx512), PyTorch
    AVX512``."""
    if isa["logitkit_chosen_by"] == "default":
        text = f"logitkit {isa['logitkit']} (the best here)"
    else:
        text = f"logitkit {isa['logitkit']} ({isa['logitkit_chosen_by']}; best here "
        text += f"{isa['logitkit_best']})"
    if isa.get("torch"):
        env = isa.get("ATEN_CPU_CAPABILITY")
        text += f", PyTorch {isa['torch']}" + (f" (ATEN_CPU_CAPABILITY={env})" if env else "")
    return text


def markdown_report(result: dict[str, Any]) -> str:
    """One row per op x shape x dtype x mode at the largest thread count."""
    records = result["records"]
    max_t = result["config"]["max_threads"]
    one = {(r["op"], r["shape"], r["mode"]): r for r in records if r["threads"] == 1}
    machine = result["machine"]
    versions = ", ".join(f"{k} {v}" for k, v in result["versions"].items() if k != "logitkit")
    lines = [
        "# logitkit benchmark suite",
        "",
        f"{short_machine(machine)}; logitkit {result['logitkit']['version']} "
        f"({result['logitkit']['active_isa']}); {versions}.",
        f"Threads: logitkit {max_t} (1-thread time in the last column); medians of "
        f"{result['config']['repeat']} timed calls after a warm-up"
        + (", in turns over the implementations" if result["config"].get("interleave") else "")
        + f"; full run {result['wall_time_s']:.0f} s, {result['started']}.",
        *([f"Kernels: {isa_text(result['isa'])}."] if result.get("isa") else []),
        "",
        "*of yardstick*: the yardstick's time over logitkit's (1.00 = as fast as a bare read "
        "(R) or copy (C) of the same bytes). *vs X*: X's time over logitkit's (above 1: "
        "logitkit faster; `!` = X's result disagrees with logitkit's).",
    ]
    if result.get("others_cpu") is not None:
        flagged = sum(1 for r in records if (r.get("others_cpu") or 0.0) > BUSY_FLAG)
        lines.append(
            f"Other processes used {100 * result['others_cpu']:.0f}% of the CPUs during the "
            f"run; `*` after a time marks the {flagged} measurement(s) during which they used "
            f"more than {100 * BUSY_FLAG:.0f}%."
        )
    lines.append("")
    peers = _peer_columns(records)
    names = {"numpy": "NumPy", "scipy": "SciPy", "torch": "PyTorch", "jax": "JAX"}
    header = (
        ["op", "shape", "dtype", "mode", "logitkit ms", "GB/s", "of yardstick"]
        + [f"vs {names[p]}" for p in peers]
        + ["1 thread ms"]
    )
    lines.append("| " + " | ".join(header) + " |")
    lines.append("|" + "|".join(["---"] * 4 + ["---:"] * (len(header) - 4)) + "|")
    for r in records:
        if r["threads"] != max_t:
            continue
        single = one.get((r["op"], r["shape"], r["mode"]))
        cells = [
            r["op"],
            r["shape_label"],
            DTYPE_SHORT[r["dtype"]],
            r["mode"],
            _fmt_ms(r["median_ms"]) + _flag(r),
            f"{r['gb_per_s']:.1f}",
            f"{r['fraction']:.2f} {r['yardstick']['kind'][0].upper()}",
            *[_ratio_cell(r["peers"].get(p)) for p in peers],
            _fmt_ms(single["median_ms"]) + _flag(single) if single is not None else "-",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_plot(result: dict[str, Any], path: str) -> None:
    """Fraction of the yardstick per op (bars grouped by shape), and the speed-up over
    PyTorch on a log axis, at the largest thread count, out mode (the one mode of reductions)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    max_t = result["config"]["max_threads"]
    recs = [
        r for r in result["records"] if r["threads"] == max_t and r["mode"] in ("out", READ_MODE)
    ]
    ops = [op for op in OPS if any(r["op"] == op for r in recs)]
    shapes = list(dict.fromkeys(r["shape"] for r in recs))
    by_key = {(r["op"], r["shape"]): r for r in recs}
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(max(10, 1.6 * len(ops) + 2), 9))
    width = 0.8 / max(1, len(shapes))
    cmap = plt.get_cmap("tab10")
    xs = np.arange(len(ops))
    for i, shape in enumerate(shapes):
        offs = xs - 0.4 + width * (i + 0.5)
        frac = [by_key[(op, shape)]["fraction"] if (op, shape) in by_key else np.nan for op in ops]
        speed: list[float] = []
        for op in ops:
            info = by_key.get((op, shape), {}).get("peers", {}).get("torch") or {}
            speed.append(info["ratio"] if info.get("status") == "ok" else np.nan)
        ax1.bar(offs, frac, width, label=shape, color=cmap(i % 10))
        ax2.bar(offs, speed, width, label=shape, color=cmap(i % 10))
    ax1.axhline(1.0, color="black", lw=0.8)
    ax1.set_ylabel("fraction of yardstick\n(yardstick time / logitkit time)")
    ax1.set_title(
        f"logitkit, {max_t} thread(s), out= mode: reductions vs a bare read, writers vs a bare copy"
    )
    ax2.axhline(1.0, color="black", lw=0.8)
    ax2.set_yscale("log")
    ax2.set_ylabel("speed-up vs PyTorch\n(torch time / logitkit time)")
    ax2.set_title(f"PyTorch CPU at {max_t} thread(s) (above 1: logitkit faster)")
    for ax in (ax1, ax2):
        ax.set_xticks(xs)
        ax.set_xticklabels(ops, fontsize=9)
        ax.grid(axis="y", alpha=0.3)
    ax1.set_ylim(0, max(1.1, float(np.nanmax([r["fraction"] for r in recs] + [0.0])) * 1.05))
    ax1.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), title="shape")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
