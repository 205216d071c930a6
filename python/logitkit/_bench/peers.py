"""How logitkit and each peer (NumPy, SciPy, PyTorch, JAX) compute each op, the optional
imports of the peers, and whether a peer's result agrees with logitkit's."""

from __future__ import annotations

import importlib
import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

import logitkit as lk

from .plan import Case
from .probe import try_import


@dataclass
class Variant:
    """One callable to time, and how to turn its result into NumPy arrays."""

    label: str
    run: Callable[[], Any]
    uses_out: bool = False


def to_numpy(value: Any) -> Any:
    """A result (array, scalar, torch tensor, JAX array, or a tuple of them) as NumPy."""
    if isinstance(value, tuple):
        return tuple(to_numpy(v) for v in value)
    if hasattr(value, "detach"):  # a torch tensor
        t = value.detach()
        if str(t.dtype) == "torch.bfloat16":
            t = t.float()
        return np.asarray(t.numpy())
    return np.asarray(value)


def logitkit_variant(case: Case, buf: np.ndarray | None) -> Variant:
    x, t, ax, th, op = case.x, case.target, case.axis, case.threads, case.op
    if op == "logsumexp":
        if buf is not None:
            return Variant(
                "lk.logsumexp(out=)", lambda: lk.logsumexp(x, axis=ax, out=buf, threads=th), True
            )
        return Variant("lk.logsumexp", lambda: lk.logsumexp(x, axis=ax, threads=th))
    if op == "cross_entropy":
        return Variant("lk.cross_entropy", lambda: lk.cross_entropy(x, t, axis=ax, threads=th))
    if op == "entropy_from_logits":
        return Variant(
            "lk.entropy_from_logits", lambda: lk.entropy_from_logits(x, axis=ax, threads=th)
        )
    if op == "cross_entropy_grad":
        if buf is not None:
            return Variant(
                "lk.cross_entropy_with_grad(grad_out=)",
                lambda: lk.cross_entropy_with_grad(x, t, axis=ax, grad_out=buf, threads=th),
                True,
            )
        return Variant(
            "lk.cross_entropy_with_grad",
            lambda: lk.cross_entropy_with_grad(x, t, axis=ax, threads=th),
        )
    if op == "sigmoid":
        if buf is not None:
            return Variant("lk.sigmoid(out=)", lambda: lk.sigmoid(x, out=buf, threads=th), True)
        return Variant("lk.sigmoid", lambda: lk.sigmoid(x, threads=th))
    fn = getattr(lk, op)  # softmax, log_softmax
    if buf is not None:
        return Variant(f"lk.{op}(out=)", lambda: fn(x, axis=ax, out=buf, threads=th), True)
    return Variant(f"lk.{op}", lambda: fn(x, axis=ax, threads=th))


# NumPy: the stable formulas a careful user writes (subtract the maximum first), with ufunc
# out= into a preallocated buffer in "out" mode. They compute in the input's dtype.


def np_softmax(x: np.ndarray, axis: int, out: np.ndarray | None = None) -> np.ndarray:
    e = np.subtract(x, x.max(axis=axis, keepdims=True), out=out)
    np.exp(e, out=e)
    e /= e.sum(axis=axis, keepdims=True)
    return e  # type: ignore[no-any-return]


def np_log_softmax(x: np.ndarray, axis: int, out: np.ndarray | None = None) -> np.ndarray:
    s = np.subtract(x, x.max(axis=axis, keepdims=True), out=out)
    s -= np.log(np.exp(s).sum(axis=axis, keepdims=True))
    return s  # type: ignore[no-any-return]


def np_logsumexp(x: np.ndarray, axis: int) -> np.ndarray:
    m = x.max(axis=axis, keepdims=True)
    r = np.log(np.exp(x - m).sum(axis=axis, keepdims=True)) + m
    return np.squeeze(r, axis=axis)  # type: ignore[no-any-return]


def np_sigmoid(x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    e = np.exp(-np.abs(x))  # never overflows
    r = np.divide(1, 1 + e, out=out)  # 1 / (1 + exp(-x)) for x >= 0
    np.multiply(r, e, out=r, where=x < 0)  # exp(x) / (1 + exp(x)) for x < 0
    return r  # type: ignore[no-any-return]


def np_cross_entropy(x: np.ndarray, target: np.ndarray, axis: int) -> Any:
    idx = np.expand_dims(target, axis)
    picked = np.take_along_axis(x, idx, axis)
    return np.mean(np.expand_dims(np_logsumexp(x, axis), axis) - picked)


def np_cross_entropy_with_grad(
    x: np.ndarray, target: np.ndarray, axis: int, out: np.ndarray | None = None
) -> tuple[Any, np.ndarray]:
    idx = np.expand_dims(target, axis)
    m = x.max(axis=axis, keepdims=True)
    g = np.subtract(x, m, out=out)
    np.exp(g, out=g)
    s = g.sum(axis=axis, keepdims=True)
    g /= s
    loss = np.mean(np.log(s) + m - np.take_along_axis(x, idx, axis))
    np.put_along_axis(g, idx, np.take_along_axis(g, idx, axis) - 1, axis)
    g /= target.size
    return loss, g


def np_entropy(x: np.ndarray, axis: int) -> np.ndarray:
    lp = np_log_softmax(x, axis)
    return -(np.exp(lp) * lp).sum(axis=axis)  # type: ignore[no-any-return]


def numpy_variant(case: Case, buf: np.ndarray | None) -> Variant:
    x, t, ax, op = case.x, case.target, case.axis, case.op
    if op == "logsumexp":
        return Variant("max-subtract logsumexp", lambda: np_logsumexp(x, ax))
    if op == "cross_entropy":
        return Variant("lse - x[target], mean", lambda: np_cross_entropy(x, t, ax))
    if op == "entropy_from_logits":
        return Variant("-(exp(lsm) * lsm).sum()", lambda: np_entropy(x, ax))
    o = "(out=)" if buf is not None else ""
    if op == "softmax":
        return Variant(f"max-subtract softmax{o}", lambda: np_softmax(x, ax, buf), o != "")
    if op == "log_softmax":
        return Variant(f"max-subtract log_softmax{o}", lambda: np_log_softmax(x, ax, buf), o != "")
    if op == "sigmoid":
        return Variant(f"stable sigmoid{o}", lambda: np_sigmoid(x, buf), o != "")
    return Variant(
        f"softmax - onehot{o}", lambda: np_cross_entropy_with_grad(x, t, ax, buf), o != ""
    )


def _sp_cross_entropy(sp: Any, x: np.ndarray, target: np.ndarray, axis: int) -> Any:
    idx = np.expand_dims(target, axis)
    return -np.take_along_axis(sp.log_softmax(x, axis=axis), idx, axis).mean()


def _sp_cross_entropy_with_grad(
    sp: Any, x: np.ndarray, target: np.ndarray, axis: int
) -> tuple[Any, np.ndarray]:
    idx = np.expand_dims(target, axis)
    lsm = sp.log_softmax(x, axis=axis)
    loss = -np.take_along_axis(lsm, idx, axis).mean()
    g = np.exp(lsm, out=lsm)
    np.put_along_axis(g, idx, np.take_along_axis(g, idx, axis) - 1, axis)
    g /= target.size
    return loss, g


def scipy_variant(case: Case, buf: np.ndarray | None, sp: Any) -> Variant:
    x, t, ax, op = case.x, case.target, case.axis, case.op
    if op == "logsumexp":
        return Variant("scipy.special.logsumexp", lambda: sp.logsumexp(x, axis=ax))
    if op == "cross_entropy":
        return Variant("-log_softmax[target].mean()", lambda: _sp_cross_entropy(sp, x, t, ax))
    if op == "entropy_from_logits":
        return Variant("entr(softmax).sum()", lambda: sp.entr(sp.softmax(x, axis=ax)).sum(ax))
    if op == "softmax":
        return Variant("scipy.special.softmax", lambda: sp.softmax(x, axis=ax))
    if op == "log_softmax":
        return Variant("scipy.special.log_softmax", lambda: sp.log_softmax(x, axis=ax))
    if op == "sigmoid":
        if buf is not None:
            return Variant("scipy.special.expit(out=)", lambda: sp.expit(x, out=buf), True)
        return Variant("scipy.special.expit", lambda: sp.expit(x))
    return Variant("log_softmax, exp - onehot", lambda: _sp_cross_entropy_with_grad(sp, x, t, ax))


SCIPY_OUT_OPS = frozenset({"sigmoid"})
NUMPY_OUT_OPS = frozenset({"softmax", "log_softmax", "sigmoid", "cross_entropy_grad"})
TORCH_OUT_OPS = frozenset({"logsumexp", "softmax", "log_softmax", "sigmoid"})
JAX_OUT_OPS: frozenset[str] = frozenset()
OUT_OPS = {
    "numpy": NUMPY_OUT_OPS,
    "scipy": SCIPY_OUT_OPS,
    "torch": TORCH_OUT_OPS,
    "jax": JAX_OUT_OPS,
}


def torch_tensor(torch: Any, a: np.ndarray) -> Any:
    """A zero-copy torch view of a NumPy array (bfloat16 goes through its int16 bits)."""
    if a.dtype.name == "bfloat16":
        return torch.from_numpy(a.view(np.int16)).view(torch.bfloat16)
    return torch.from_numpy(a)


def torch_variant(case: Case, buf: np.ndarray | None, torch: Any) -> Variant:
    F = torch.nn.functional
    ax, op = case.axis, case.op
    xt = torch_tensor(torch, case.x)
    tt = torch.from_numpy(case.target)
    ot = None if buf is None else torch_tensor(torch, buf)

    def no_grad(fn: Callable[[], Any]) -> Callable[[], Any]:
        def run() -> Any:
            with torch.no_grad():
                return fn()

        return run

    def classes_last(a: Any) -> Any:  # F.cross_entropy wants (N, C)
        return a if ax == -1 else a.T

    if op == "logsumexp":
        if ot is not None:
            return Variant(
                "torch.logsumexp(out=)", no_grad(lambda: torch.logsumexp(xt, ax, out=ot)), True
            )
        return Variant("torch.logsumexp", no_grad(lambda: torch.logsumexp(xt, ax)))
    if op == "cross_entropy":
        return Variant(
            "F.cross_entropy (no_grad)", no_grad(lambda: F.cross_entropy(classes_last(xt), tt))
        )
    if op == "entropy_from_logits":

        def entropy() -> Any:
            lp = torch.log_softmax(xt, ax)
            return -(lp.exp() * lp).sum(ax)

        return Variant("-(exp(lsm) * lsm).sum()", no_grad(entropy))
    if op == "cross_entropy_grad":

        def forward_backward() -> Any:
            leaf = xt.detach().requires_grad_(True)
            loss = F.cross_entropy(classes_last(leaf), tt)
            loss.backward()
            return loss.detach(), leaf.grad

        return Variant("F.cross_entropy forward+backward", forward_backward)
    if op == "sigmoid":
        if ot is not None:
            return Variant("torch.sigmoid(out=)", no_grad(lambda: torch.sigmoid(xt, out=ot)), True)
        return Variant("torch.sigmoid", no_grad(lambda: torch.sigmoid(xt)))
    fn = getattr(torch, op)  # softmax, log_softmax
    if ot is not None:
        return Variant(f"torch.{op}(out=)", no_grad(lambda: fn(xt, ax, out=ot)), True)
    return Variant(f"torch.{op}", no_grad(lambda: fn(xt, ax)))


class JaxPeer:
    """JAX's CPU functions, jit-compiled once per (op, axis) and fed device arrays."""

    def __init__(self, jax: Any) -> None:
        self.jax = jax
        self.jnp = importlib.import_module("jax.numpy")
        self.special = importlib.import_module("jax.scipy.special")
        self.compiled: dict[tuple[str, int], Any] = {}
        self.device = jax.devices("cpu")[0]
        self.arrays: dict[int, Any] = {}

    def put(self, a: np.ndarray) -> Any:
        """The device copy of a (kept while the array lives: one transfer per input)."""
        key = id(a)
        if key not in self.arrays:
            self.arrays[key] = (a, self.jax.device_put(a, self.device))
        return self.arrays[key][1]

    def forget(self) -> None:
        self.arrays.clear()

    def function(self, op: str, axis: int) -> Any:
        key = (op, axis)
        if key in self.compiled:
            return self.compiled[key]
        jax, jnp, special = self.jax, self.jnp, self.special

        def cross_entropy(z: Any, t: Any) -> Any:
            lsm = jax.nn.log_softmax(z, axis=axis)
            return -jnp.take_along_axis(lsm, jnp.expand_dims(t, axis), axis=axis).mean()

        def entropy(z: Any) -> Any:
            lp = jax.nn.log_softmax(z, axis=axis)
            return -(jnp.exp(lp) * lp).sum(axis=axis)

        fns: dict[str, Callable[..., Any]] = {
            "logsumexp": lambda z: special.logsumexp(z, axis=axis),
            "softmax": lambda z: jax.nn.softmax(z, axis=axis),
            "log_softmax": lambda z: jax.nn.log_softmax(z, axis=axis),
            "sigmoid": jax.nn.sigmoid,
            "cross_entropy": cross_entropy,
            "cross_entropy_grad": jax.value_and_grad(cross_entropy),
            "entropy_from_logits": entropy,
        }
        compiled = jax.jit(fns[op])
        self.compiled[key] = compiled
        return compiled

    def variant(self, case: Case) -> Variant:
        if case.x.dtype == np.float64 and not self.jax.config.jax_enable_x64:
            raise RuntimeError("float64 needs jax_enable_x64")
        fn = self.function(case.op, case.axis)
        xd = self.put(case.x)
        labels = {
            "logsumexp": "jax.scipy.special.logsumexp",
            "cross_entropy": "-log_softmax[target].mean()",
            "cross_entropy_grad": "value_and_grad(cross-entropy)",
            "entropy_from_logits": "-(exp(lsm) * lsm).sum()",
            "sigmoid": "jax.nn.sigmoid",
        }
        label = "jit(" + labels.get(case.op, f"jax.nn.{case.op}") + ")"
        block = self.jax.block_until_ready
        if case.op in ("cross_entropy", "cross_entropy_grad"):
            td = self.put(case.target)
            return Variant(label, lambda: block(fn(xd, td)))
        return Variant(label, lambda: block(fn(xd)))


def load_jax(need_x64: bool) -> Any | None:
    """JAX on the CPU, or None. ``need_x64`` turns on float64 (before any array is made)."""
    os.environ.setdefault("JAX_PLATFORMS", "cpu")  # no probing for accelerators
    jax = try_import("jax")
    if jax is None:
        return None
    try:
        if need_x64:
            jax.config.update("jax_enable_x64", True)
        jax.devices("cpu")
        importlib.import_module("jax.scipy.special")
    except Exception:
        return None
    return jax


# A peer's result agrees with logitkit's when the largest difference is within this many
# machine epsilons of the result dtype, times the largest magnitude of logitkit's result
# (at least 1). Loose on purpose: rounding grows with the row length and the summation
# order, and this check is there to catch a wrong formula or a dtype mix-up, not to grade
# accuracy (tests/ does that).
_TOLERANCE_EPS = {"float32": 1000.0, "float64": 1000.0, "float16": 64.0, "bfloat16": 16.0}


def _wide(a: Any) -> np.ndarray:
    """An array in a dtype that holds differences exactly enough: float64 stays, the rest
    (float32, float16, bfloat16, ints) go to float32 (no copy for float32)."""
    arr = np.asarray(a)
    return arr if arr.dtype in (np.float64, np.float32) else arr.astype(np.float32)


def max_abs_diff(got: Any, want: Any) -> float:
    """Largest |got - want| over matching arrays (inf on a shape or NaN-pattern mismatch)."""
    if isinstance(want, tuple):
        if not isinstance(got, tuple) or len(got) != len(want):
            return math.inf
        return max((max_abs_diff(g, w) for g, w in zip(got, want, strict=True)), default=0.0)
    g, w = _wide(got), _wide(want)
    if g.shape != w.shape:
        return math.inf
    dtype = np.result_type(g.dtype, w.dtype)
    gf, wf = g.reshape(-1), w.reshape(-1)
    largest = 0.0
    step = 1 << 16  # chunks that stay in cache: no large temporary to fault in
    with np.errstate(invalid="ignore", over="ignore"):
        for start in range(0, gf.size, step):
            d = np.subtract(gf[start : start + step], wf[start : start + step], dtype=dtype)
            chunk = float(np.abs(d, out=d).max())
            if not math.isfinite(chunk):  # NaN or inf: decided by the slow path below
                largest = math.inf
                break
            largest = max(largest, chunk)
    if math.isfinite(largest):
        return largest
    # Slow path, only when NaN or inf appear: they must sit at the same places.
    g, w = g.astype(np.float64), w.astype(np.float64)
    if not np.array_equal(np.isnan(g), np.isnan(w)):
        return math.inf
    finite = ~np.isnan(w)
    with np.errstate(invalid="ignore"):
        diff = np.abs(g[finite] - w[finite])
    same = g[finite] == w[finite]  # equal infinities
    return float(np.where(same, 0.0, diff).max(initial=0.0))


def result_scale(want: Any) -> float:
    """The largest finite magnitude in want (at least 1)."""
    if isinstance(want, tuple):
        return max((result_scale(w) for w in want), default=1.0)
    a = _wide(want)
    high, low = float(a.max(initial=0.0)), float(a.min(initial=0.0))
    largest = max(high, -low)
    if not (math.isfinite(high) and math.isfinite(low)):
        finite = a[np.isfinite(a)]
        largest = float(np.abs(finite).max(initial=0.0))
    return max(1.0, largest)


def tolerance(want: Any, dtype: str) -> float:
    eps = float(np.finfo(np.float64 if dtype == "float64" else np.float32).eps)
    if dtype == "float16":
        eps = float(np.finfo(np.float16).eps)
    elif dtype == "bfloat16":
        eps = 2.0**-7
    return _TOLERANCE_EPS[dtype] * eps * result_scale(want)


@dataclass
class PeerSet:
    """The peers asked for, and the loaded modules of those that can run."""

    wanted: list[str]
    scipy_special: Any | None = None
    torch: Any | None = None
    jax: JaxPeer | None = None
    missing: dict[str, str] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)

    def variant(self, peer: str, case: Case, buf: np.ndarray | None) -> Variant:
        if peer == "numpy":
            return numpy_variant(case, buf)
        if peer == "scipy":
            return scipy_variant(case, buf, self.scipy_special)
        if peer == "torch":
            return torch_variant(case, buf, self.torch)
        assert self.jax is not None
        return self.jax.variant(case)


def load_peers(wanted: list[str], need_x64: bool, threads: int) -> PeerSet:
    peers = PeerSet(wanted)
    peers.versions["numpy"] = np.__version__
    if "scipy" in wanted:
        peers.scipy_special = try_import("scipy.special")
        scipy = try_import("scipy")
        if peers.scipy_special is None or scipy is None:
            peers.missing["scipy"] = "not installed"
        else:
            peers.versions["scipy"] = scipy.__version__
    if "torch" in wanted:
        peers.torch = try_import("torch")
        if peers.torch is None:
            peers.missing["torch"] = "not installed"
        else:
            peers.torch.set_num_threads(threads)
            peers.versions["torch"] = peers.torch.__version__
    if "jax" in wanted:
        jax = load_jax(need_x64)
        if jax is None:
            peers.missing["jax"] = "not installed"
        else:
            try:
                peers.jax = JaxPeer(jax)
                jaxlib = try_import("jaxlib")
                peers.versions["jax"] = jax.__version__
                peers.versions["jaxlib"] = getattr(jaxlib, "__version__", "?")
            except Exception as exc:  # a broken install is as unusable as a missing one
                peers.missing["jax"] = f"failed to start: {exc}"
    return peers
