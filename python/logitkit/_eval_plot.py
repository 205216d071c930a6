"""Figures for ``logitkit eval --plot DIR``: reliability diagram, confidence histogram and
per-class accuracy, drawn from the accumulated result (no per-row data is kept)."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from ._eval_io import EvalError

__all__ = ["check_available", "write_plots"]

# Above this many classes a bar per class is unreadable.
_MAX_BARS = 60


def check_available() -> None:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise EvalError(
            "--plot needs matplotlib (pip install matplotlib, or logitkit[plot])"
        ) from None


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _reliability(res: dict[str, Any], path: str) -> None:
    plt = _pyplot()
    cal = res["calibration"]
    edges = np.asarray(cal["edges"])
    n = cal["bins"]
    count = np.asarray(cal["count"], dtype=float)
    # The extra slot holds rows of confidence exactly 1: drawn in the last bin.
    count_b = count[:n].copy()
    acc_b = np.asarray(cal["accuracy"][:n], dtype=float)
    conf_b = np.asarray(cal["confidence"][:n], dtype=float)
    if count[n] > 0:
        tot = count_b[-1] + count[n]
        acc_b[-1] = (acc_b[-1] * count_b[-1] + cal["accuracy"][n] * count[n]) / tot
        conf_b[-1] = (conf_b[-1] * count_b[-1] + cal["confidence"][n] * count[n]) / tot
        count_b[-1] = tot
    width = np.diff(edges)
    left = edges[:-1]
    filled = count_b > 0
    fig, (ax, axc) = plt.subplots(
        2, 1, figsize=(6, 7), sharex=True, gridspec_kw={"height_ratios": [3, 1]}
    )
    ax.bar(
        left[filled],
        acc_b[filled],
        width=width[filled],
        align="edge",
        color="#4c72b0",
        edgecolor="white",
        label="accuracy in bin",
    )
    gap_lo = np.minimum(acc_b, conf_b)[filled]
    gap_hi = np.maximum(acc_b, conf_b)[filled]
    ax.bar(
        left[filled],
        gap_hi - gap_lo,
        bottom=gap_lo,
        width=width[filled],
        align="edge",
        color="#dd8452",
        alpha=0.45,
        edgecolor="#dd8452",
        hatch="//",
        label="gap to mean confidence",
    )
    ax.plot([0, 1], [0, 1], "--", color="0.3", lw=1, label="perfect calibration")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_ylabel("accuracy")
    ax.set_title(
        f"Reliability diagram: ECE ({cal['norm']}) {res['ece']:.4f}, MCE {res['mce']:.4f}\n"
        f"{res['n_counted']:,} rows, {n} bins, accuracy {res['accuracy']:.4f}"
    )
    ax.legend(loc="upper left", fontsize=8)
    axc.bar(
        left,
        count_b / max(count_b.sum(), 1),
        width=width,
        align="edge",
        color="0.55",
        edgecolor="white",
    )
    axc.set_xlabel("confidence (largest softmax probability)")
    axc.set_ylabel("share of rows")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _confidence(res: dict[str, Any], path: str) -> None:
    plt = _pyplot()
    h = res["confidence_histogram"]
    edges = np.asarray(h["edges"])
    count = np.asarray(h["count"], dtype=float)
    correct = np.asarray(h["correct"], dtype=float)
    fig, ax = plt.subplots(figsize=(6, 4))
    width = np.diff(edges)
    ax.bar(edges[:-1], correct, width=width, align="edge", color="#55a868", label="correct")
    ax.bar(
        edges[:-1],
        count - correct,
        bottom=correct,
        width=width,
        align="edge",
        color="#c44e52",
        label="wrong",
    )
    ax.set_xlim(0, 1)
    ax.set_xlabel("confidence (largest softmax probability)")
    ax.set_ylabel("rows")
    ax.set_title(f"Confidence histogram ({res['n_counted']:,} rows)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _per_class(res: dict[str, Any], path: str) -> None:
    plt = _pyplot()
    pc = res["per_class"]
    count = np.asarray(pc["count"], dtype=float)
    present = np.flatnonzero(count > 0)
    acc = np.asarray([pc["accuracy"][i] for i in present], dtype=float)
    fig, ax = plt.subplots(figsize=(7, 4))
    if present.size <= _MAX_BARS:
        ax.bar(np.arange(present.size), acc, color="#4c72b0")
        ax.set_xticks(np.arange(present.size))
        ax.set_xticklabels([str(c) for c in present], rotation=90, fontsize=7)
        ax.set_xlabel("class")
    else:
        # Too many classes for a bar each: accuracy against how often the class occurs,
        # which is what separates the rare classes a model misses from the frequent ones.
        jitter = np.random.default_rng(0).uniform(-0.15, 0.15, present.size)
        ax.scatter(
            count[present] * np.exp(jitter * 0.3),
            acc,
            s=6,
            alpha=0.35,
            color="#4c72b0",
            linewidths=0,
        )
        ax.set_xscale("log")
        ax.set_xlabel(f"rows of the class (log scale; {present.size:,} classes present)")
    ax.axhline(res["accuracy"], color="0.3", ls="--", lw=1, label=f"overall {res['accuracy']:.4f}")
    ax.set_ylim(-0.03, 1.03)
    ax.set_ylabel("accuracy")
    ax.set_title("Per-class accuracy")
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_plots(res: dict[str, Any], directory: str) -> list[str]:
    """Write the three PNGs into ``directory`` (created if needed); returns their paths."""
    os.makedirs(directory, exist_ok=True)
    paths = []
    for name, draw in (
        ("reliability.png", _reliability),
        ("confidence.png", _confidence),
        ("per_class_accuracy.png", _per_class),
    ):
        path = os.path.join(directory, name)
        draw(res, path)
        paths.append(path)
    return paths
