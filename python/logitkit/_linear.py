"""A linear layer fused with the cross-entropy: the loss of ``hidden @ weight.T + bias`` and
its gradients, computed a chunk of rows (and, for large vocabularies, of classes) at a time so
that the N x V logits are never held.

The matrix products go to SciPy's BLAS (NumPy's without SciPy); the cross-entropy and its
gradient to logitkit's fused kernel, in place over each chunk of logits, which then becomes
that chunk's gradient.
"""

from __future__ import annotations

import operator
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ._losses import cross_entropy, cross_entropy_with_grad, mean_denominator
from ._reductions import logsumexp
from ._rows import contiguous
from ._storage import cast
from ._validation import (
    as_input_array,
    check_index_target,
    check_reduction,
    check_softcap,
    check_threads,
    check_z_loss,
)

# Every product goes through SciPy's BLAS when SciPy is installed: its gemm accumulates into
# its output (beta=1), so the weight gradient needs no V x H temporary per chunk. All three
# products of a chunk go to the same BLAS: NumPy and SciPy ship separate OpenBLAS builds, each
# with its own thread pool, and a pool keeps spinning for a while after its call returns, so
# alternating between them left a core busy-waiting under the next product. One library for
# all three took a chunk loop from 2.85 to 2.44 s (N=4096, H=1024, V=32000 float32, 2 threads,
# 1024-row chunks; a side-by-side script on an Intel Xeon with AVX-512). SciPy is imported on
# first use, so that importing logitkit does not import it; None without it.
_UNRESOLVED: Any = object()
_scipy_blas: Any = _UNRESOLVED


def _blas() -> Any:
    global _scipy_blas
    if _scipy_blas is _UNRESOLVED:
        try:
            from scipy.linalg import blas
        except ImportError:  # pragma: no cover - exercised by monkeypatching in the tests
            blas = None
        _scipy_blas = blas
    return _scipy_blas


def _fortran_operand(m: np.ndarray) -> tuple[np.ndarray, bool]:
    """(f, trans) with f in Fortran order and op(f) = m.T, op transposing when trans is set."""
    if m.flags.c_contiguous:
        return m.T, False
    if m.flags.f_contiguous:
        return m, True
    return np.ascontiguousarray(m).T, False


def _product(out: np.ndarray, a: np.ndarray, b: np.ndarray, accumulate: bool = False) -> None:
    """out = a @ b, or out += a @ b with ``accumulate``, for a C-contiguous ``out``."""
    blas = _blas()
    if blas is None:
        if not accumulate:
            np.matmul(a, b, out=out)
            return
        # without SciPy: slabs of rows through a small temporary instead of one V x H one
        tmp = np.empty((min(_SLAB, out.shape[0]), out.shape[1]), dtype=out.dtype)
        for i in range(0, out.shape[0], _SLAB):
            j = min(i + _SLAB, out.shape[0])
            part = tmp[: j - i]
            np.matmul(a[i:j], b, out=part)
            out[i:j] += part
        return
    # out.T = b.T @ a.T, with out.T in Fortran order: BLAS writes out in place
    gemm = blas.get_blas_funcs("gemm", (out,))
    fb, trans_b = _fortran_operand(b)
    fa, trans_a = _fortran_operand(a)
    result = gemm(
        1.0,
        fb,
        fa,
        beta=1.0 if accumulate else 0.0,
        c=out.T,
        trans_a=trans_b,
        trans_b=trans_a,
        overwrite_c=True,
    )
    if not np.shares_memory(result, out):  # pragma: no cover - a BLAS wrapper that copied
        np.copyto(out, result.T)


__all__ = ["linear_cross_entropy", "linear_cross_entropy_with_grad"]

# Each chunk's three products read the whole weight: with fewer than about a thousand rows
# they are bound by memory, not by arithmetic. So a chunk has 1024 rows by default, fewer when
# that would take more than this many bytes of logits.
_MAX_ROWS = 1024
_CHUNK_BYTES = 512 << 20
# Below this many rows per chunk the products lose BLAS efficiency: split the classes instead.
_MIN_ROWS = 32
# Classes per slab when the weight gradient is accumulated without SciPy's gemm.
_SLAB = 2048


class _Setup(NamedTuple):
    x: np.ndarray  # (N, H), compute dtype, C-contiguous
    w: np.ndarray  # (V, H), compute dtype, C-contiguous
    b: np.ndarray | None  # (V,), compute dtype
    t: np.ndarray  # (N,) int64 targets as given (ignored rows keep ignore_index)
    counted: np.ndarray  # (N,) bool
    cw: np.ndarray | None  # (V,) class weights, compute dtype
    cw_sum: float  # sum of the class weights (V without them)
    denominator: float  # the mean's divisor: counted rows, or their summed target weights
    rows_shape: tuple[int, ...]
    compute: np.dtype
    result: np.dtype
    rows: int  # rows per chunk
    vocab: int  # classes per chunk (V when the classes are not split)
    ignore_index: int
    alpha: float
    z_loss: float
    softcap: float | None
    threads: int | None


def _float_array(func: str, arg: str, value: Any) -> np.ndarray:
    a = as_input_array(func, arg, value)
    if not (a.dtype.kind == "f" or a.dtype.name == "bfloat16") or a.dtype.itemsize < 2:
        raise TypeError(
            f"{func}(): {arg} must be a floating array (float16, bfloat16, float32 or "
            f"float64), got {a.dtype}"
        )
    return a


def _number(func: str, arg: str, value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{func}(): {arg} must be a real number, got {value!r}") from None


def _positive_int(func: str, arg: str, value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool):
        raise TypeError(f"{func}(): {arg} must be a positive int or None, got bool")
    try:
        n = operator.index(value)
    except TypeError:
        raise TypeError(
            f"{func}(): {arg} must be a positive int or None, got {type(value).__name__}"
        ) from None
    if n < 1:
        raise ValueError(f"{func}(): {arg} must be a positive int or None, got {n}")
    return n


def _setup(
    func: str,
    hidden: Any,
    weight: Any,
    target: Any,
    bias: Any,
    reduction: Any,
    ignore_index: Any,
    label_smoothing: Any,
    z_loss: Any,
    softcap: Any,
    class_weight: Any,
    chunk_size: Any,
    vocab_chunk_size: Any,
    threads: Any,
) -> _Setup:
    x = _float_array(func, "hidden", hidden)
    if x.ndim == 0:
        raise ValueError(f"{func}(): hidden must have a feature axis (last), got a 0-d array")
    w = _float_array(func, "weight", weight)
    if w.ndim != 2:
        raise ValueError(f"{func}(): weight must be 2-D (classes, features), got shape {w.shape}")
    n_classes, n_features = w.shape
    if x.shape[-1] != n_features:
        raise ValueError(
            f"{func}(): hidden's last axis ({x.shape[-1]}) must match weight's features "
            f"({n_features}); weight has shape {w.shape}, hidden {x.shape}"
        )
    if n_classes == 0:
        raise ValueError(f"{func}(): weight must have at least one class, got shape {w.shape}")
    if w.dtype != x.dtype:
        raise TypeError(f"{func}(): weight must have hidden's dtype ({x.dtype}), got {w.dtype}")
    # float16/bfloat16 are storage formats: BLAS has no product for them, so they are
    # multiplied and accumulated in float32.
    result = x.dtype
    compute = np.dtype(np.float64) if x.dtype == np.float64 else np.dtype(np.float32)

    check_reduction(func, reduction)
    if isinstance(ignore_index, bool) or not isinstance(ignore_index, (int, np.integer)):
        raise TypeError(f"{func}(): ignore_index must be an int, got {ignore_index!r}")
    alpha = _number(func, "label_smoothing", label_smoothing)
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"{func}(): label_smoothing must be in [0, 1], got {label_smoothing}")
    zeta = check_z_loss(func, z_loss)
    cap = check_softcap(func, softcap)

    rows_shape = x.shape[:-1]
    t = as_input_array(func, "target", target)
    check_index_target(func, t, rows_shape, "hidden without its last axis")
    t64 = contiguous(t, np.int64).reshape(-1)
    counted = t64 != ignore_index
    bad = counted & ((t64 < 0) | (t64 >= n_classes))
    if bad.any():
        pos = tuple(int(i) for i in np.unravel_index(int(np.argmax(bad)), rows_shape))
        raise IndexError(
            f"{func}(): target[{pos if len(pos) != 1 else pos[0]}] = {t[pos]} is out of range "
            f"for {n_classes} classes (and is not ignore_index={ignore_index})"
        )

    b = None
    if bias is not None:
        b_arr = _float_array(func, "bias", bias)
        if b_arr.dtype != x.dtype:
            raise TypeError(
                f"{func}(): bias must have hidden's dtype ({x.dtype}), got {b_arr.dtype}"
            )
        if b_arr.shape != (n_classes,):
            raise ValueError(
                f"{func}(): bias must have shape ({n_classes},) (one per class), got {b_arr.shape}"
            )
        b = contiguous(cast(b_arr, compute), compute)
    cw = None
    cw_sum = float(n_classes)
    if class_weight is not None:
        cw_arr = _float_array(func, "class_weight", class_weight)
        if cw_arr.shape != (n_classes,):
            raise ValueError(
                f"{func}(): class_weight must have shape ({n_classes},) (one per class), "
                f"got {cw_arr.shape}"
            )
        cw = contiguous(cast(cw_arr, compute), compute)
        cw_sum = float(cw.sum(dtype=np.float64))
    denominator = mean_denominator(t64, counted, cw)

    rows_arg = _positive_int(func, "chunk_size", chunk_size)
    vocab_arg = _positive_int(func, "vocab_chunk_size", vocab_chunk_size)
    check_threads(func, threads)
    n_rows = t64.size
    row_bytes = n_classes * compute.itemsize
    if rows_arg is None:
        rows_arg = max(min(_CHUNK_BYTES // row_bytes, _MAX_ROWS), 1)
        if rows_arg < _MIN_ROWS and vocab_arg is None:
            rows_arg = _MIN_ROWS
            vocab_arg = max(_CHUNK_BYTES // (_MIN_ROWS * compute.itemsize), 1)
    rows = max(min(rows_arg, n_rows), 1)
    vocab = n_classes if vocab_arg is None else min(vocab_arg, n_classes)

    xs = contiguous(cast(x, compute).reshape(n_rows, n_features))
    ws = contiguous(cast(w, compute))
    return _Setup(
        xs,
        ws,
        b,
        t64,
        counted,
        cw,
        cw_sum,
        denominator,
        rows_shape,
        compute,
        result,
        rows,
        vocab,
        int(ignore_index),
        alpha,
        zeta,
        cap,
        threads,
    )


def _grad_scale(func: str, st: _Setup, reduction: str, grad_output: Any) -> NDArray[np.float64]:
    """Per-row factor of d(loss)/d(row's loss): the upstream gradient, over the mean's divisor."""
    n_rows = st.t.size
    if reduction == "none":
        g = (
            np.ones(st.rows_shape)
            if grad_output is None
            else as_input_array(func, "grad_output", grad_output)
        )
        try:
            g = np.broadcast_to(g, st.rows_shape)
        except ValueError:
            raise ValueError(
                f"{func}(): grad_output must have the loss's shape {st.rows_shape}, "
                f"got {np.shape(grad_output)}"
            ) from None
        return contiguous(g, np.float64).reshape(n_rows)
    if grad_output is None:
        g0 = 1.0
    else:
        if np.ndim(grad_output) != 0:
            raise ValueError(
                f"{func}(): grad_output must be a scalar for reduction={reduction!r}, "
                f"got shape {np.shape(grad_output)}"
            )
        g0 = float(grad_output)
    if reduction == "mean":
        # NaN when the counted rows weigh nothing in total, as the loss; uncounted rows get 0
        g0 = g0 / st.denominator if st.denominator else float("nan")
    return np.full(n_rows, g0)


def _chunk_buffer(st: _Setup, softcap_copy: bool) -> tuple[np.ndarray, np.ndarray | None]:
    size = st.rows * st.vocab
    buf = np.empty(size, dtype=st.compute)
    return buf, (np.empty(size, dtype=st.compute) if softcap_copy else None)


def _block(flat: np.ndarray, m: int, n: int) -> np.ndarray:
    # a C-contiguous (m, n) view of the chunk buffer, whatever the chunk's width: BLAS and
    # the kernel get unit-stride rows
    return flat[: m * n].reshape(m, n)


def _logits(st: _Setup, xc: np.ndarray, a: int, b: int, out: np.ndarray) -> None:
    _product(out, xc, st.w[a:b].T)
    if st.b is not None:
        out += st.b[a:b]


def _row_chunk(
    st: _Setup,
    s: int,
    e: int,
    flat: np.ndarray,
    scale: np.ndarray | None,
    gx: np.ndarray | None,
    gw: np.ndarray | None,
    gb: np.ndarray | None,
) -> np.ndarray:
    """Loss rows of rows s:e with whole rows of logits, and their share of the gradients."""
    n_classes = st.w.shape[0]
    xc = st.x[s:e]
    z = _block(flat, e - s, n_classes)
    _logits(st, xc, 0, n_classes, z)
    options: dict[str, Any] = dict(
        weight=st.cw,
        ignore_index=st.ignore_index,
        reduction="none",
        label_smoothing=st.alpha,
        z_loss=st.z_loss,
        softcap=st.softcap,
        threads=st.threads,
    )
    if gx is None:
        return np.asarray(cross_entropy(z, st.t[s:e], **options))
    assert scale is not None
    loss, _ = cross_entropy_with_grad(z, st.t[s:e], grad_output=scale[s:e], inplace=True, **options)
    _product(gx[s:e], z, st.w)
    if gw is not None:
        _product(gw, z.T, xc, accumulate=True)
    if gb is not None:
        gb += z.sum(axis=0)
    return np.asarray(loss)


def _vocab_chunk(
    st: _Setup,
    s: int,
    e: int,
    flat: np.ndarray,
    capped_flat: np.ndarray | None,
    scale: np.ndarray | None,
    gx: np.ndarray | None,
    gw: np.ndarray | None,
    gb: np.ndarray | None,
) -> np.ndarray:
    """Loss rows of rows s:e with the classes split in blocks, and their gradients.

    A first pass merges the blocks' logsumexps (and gathers the target logit and, for label
    smoothing, the weighted sum of the logits); every term of the loss is a sum over the
    classes, so the merge is exact. With gradients, a second pass recomputes each block's
    logits and writes its gradient from the merged logsumexp.
    """
    n_classes = st.w.shape[0]
    m = e - s
    xc = st.x[s:e]
    t = st.t[s:e]
    counted = st.counted[s:e]
    cap = st.softcap
    alpha, zeta = st.alpha, st.z_loss
    blocks = [(a, min(a + st.vocab, n_classes)) for a in range(0, n_classes, st.vocab)]

    def logits(a: int, b: int, scaled: np.ndarray | None = None) -> np.ndarray:
        """The block's (capped) logits; with `scaled`, z / cap is kept there too."""
        z = _block(flat, m, b - a)
        _logits(st, xc, a, b, z)
        if cap is not None:
            z /= cap
            if scaled is not None:
                np.copyto(scaled, z)
            np.tanh(z, out=z)
            z *= cap
        return z

    lse = np.full(m, -np.inf)
    z_t = np.zeros(m)
    weighted_sum = np.zeros(m)  # sum_c w_c z_c, for label smoothing
    for a, b in blocks:
        z = logits(a, b)
        with np.errstate(invalid="ignore"):  # NaN rows stay NaN, as in the kernel
            lse = np.logaddexp(lse, logsumexp(z, axis=-1, threads=st.threads))
        inside = np.flatnonzero(counted & (t >= a) & (t < b))
        z_t[inside] = z[inside, t[inside] - a]
        if alpha:
            weighted_sum += z.sum(axis=-1) if st.cw is None else z @ st.cw[a:b]

    safe_t = np.where(counted, t, 0)
    w_t = np.ones(m) if st.cw is None else st.cw[safe_t].astype(np.float64)
    with np.errstate(invalid="ignore", over="ignore"):
        loss = (1.0 - alpha) * w_t * (lse - z_t) + zeta * lse * lse
        if alpha:
            loss += alpha / n_classes * (st.cw_sum * lse - weighted_sum)
    loss = np.where(counted, loss, 0.0)
    if gx is None:
        return loss

    assert scale is not None
    s_row = np.where(counted, scale[s:e], 0.0)
    # g_c = s [K p_c - (alpha / C) w_c - (1 - alpha) w_t [c == t]] (times the softcap's
    # derivative), with K = (1 - alpha) w_t + (alpha / C) sum(w) + 2 zeta lse
    with np.errstate(invalid="ignore", over="ignore"):
        k = s_row * ((1.0 - alpha) * w_t + alpha / n_classes * st.cw_sum + 2.0 * zeta * lse)
        p_t = np.exp(z_t - lse)
        # the target entry takes p_t - 1 as expm1, so that it does not cancel when p_t ~ 1
        g_t = s_row * (
            (1.0 - alpha) * w_t * np.expm1(z_t - lse)
            + alpha / n_classes * (st.cw_sum * p_t - w_t)
            + 2.0 * zeta * lse * p_t
        )
    k_c = k.astype(st.compute)[:, None]
    lse_c = np.where(counted, lse, 0.0).astype(st.compute)[:, None]
    smooth_c = (s_row * alpha / n_classes).astype(st.compute)[:, None]
    dropped = np.flatnonzero(~counted)
    gx_c = gx[s:e]
    for i, (a, b) in enumerate(blocks):
        scaled = None
        if cap is not None:
            assert capped_flat is not None
            scaled = _block(capped_flat, m, b - a)
        z = logits(a, b, scaled)
        g = z
        with np.errstate(invalid="ignore", over="ignore"):
            g -= lse_c
            np.exp(g, out=g)
            g *= k_c
            if alpha:
                g -= smooth_c if st.cw is None else smooth_c * st.cw[a:b]
        inside = np.flatnonzero(counted & (t >= a) & (t < b))
        g[inside, t[inside] - a] = g_t[inside]
        if scaled is not None:
            # d(cap tanh(u))/dz = 1 - tanh(u)^2 = 4 e / (1 + e)^2, e = exp(-2|u|), u = z / cap:
            # 1 - tanh^2 cancels where |tanh| is near 1, this form does not
            with np.errstate(invalid="ignore"):
                np.abs(scaled, out=scaled)
                scaled *= -2.0
                np.exp(scaled, out=scaled)
                g *= 4.0 * scaled / np.square(1.0 + scaled)
        g[dropped] = 0.0
        _product(gx_c, g, st.w[a:b], accumulate=i > 0)
        if gw is not None:
            _product(gw[a:b], g.T, xc, accumulate=True)
        if gb is not None:
            gb[a:b] += g.sum(axis=0)
    return loss


def _run(
    func: str, st: _Setup, reduction: str, want_grad: bool, grad_output: Any, weight_grad: bool
) -> tuple[Any, np.ndarray | None, np.ndarray | None, np.ndarray | None]:
    n_rows, n_features = st.x.shape
    n_classes = st.w.shape[0]
    scale = _grad_scale(func, st, reduction, grad_output) if want_grad else None
    gx = gw = gb = None
    if want_grad:
        gx = np.empty((n_rows, n_features), dtype=st.compute)
        if weight_grad:
            gw = np.zeros((n_classes, n_features), dtype=st.compute)
            if st.b is not None:
                gb = np.zeros(n_classes, dtype=np.float64)
    split = st.vocab < n_classes
    flat, capped_flat = _chunk_buffer(st, split and want_grad and st.softcap is not None)
    loss_rows = np.empty(n_rows, dtype=np.float64)
    for s in range(0, n_rows, st.rows):
        e = min(s + st.rows, n_rows)
        if split:
            loss_rows[s:e] = _vocab_chunk(st, s, e, flat, capped_flat, scale, gx, gw, gb)
        else:
            loss_rows[s:e] = _row_chunk(st, s, e, flat, scale, gx, gw, gb)

    if reduction == "none":
        loss: Any = cast(loss_rows.astype(st.compute).reshape(st.rows_shape), st.result)
    else:
        with np.errstate(invalid="ignore", over="ignore"):  # an overflowing total is inf
            total = np.float64(loss_rows.sum())
        if reduction == "mean":
            with np.errstate(invalid="ignore", divide="ignore"):
                total = total / np.float64(st.denominator)
        with np.errstate(over="ignore"):  # a total beyond the result dtype's range is inf
            loss = st.result.type(total)
    if not want_grad:
        return loss, None, None, None
    assert gx is not None
    grad_hidden = cast(gx, st.result).reshape(st.rows_shape + (n_features,))
    grad_weight = None if gw is None else cast(gw, st.result)
    grad_bias = None if gb is None else cast(gb.astype(st.compute), st.result)
    return loss, grad_hidden, grad_weight, grad_bias


def _fused(
    func: str,
    hidden: Any,
    weight: Any,
    target: Any,
    bias: Any,
    reduction: Any,
    ignore_index: Any,
    label_smoothing: Any,
    z_loss: Any,
    softcap: Any,
    class_weight: Any,
    chunk_size: Any,
    vocab_chunk_size: Any,
    threads: Any,
    *,
    want_grad: bool = False,
    grad_output: Any = None,
    compute_weight_grad: Any = False,
) -> tuple[Any, np.ndarray | None, np.ndarray | None, np.ndarray | None]:
    """Both public functions: their arguments checked and prepared, then the chunks run."""
    st = _setup(
        func,
        hidden,
        weight,
        target,
        bias,
        reduction,
        ignore_index,
        label_smoothing,
        z_loss,
        softcap,
        class_weight,
        chunk_size,
        vocab_chunk_size,
        threads,
    )
    if not isinstance(compute_weight_grad, (bool, np.bool_)):
        raise TypeError(
            f"{func}(): compute_weight_grad must be a bool, got {compute_weight_grad!r}"
        )
    return _run(func, st, reduction, want_grad, grad_output, bool(compute_weight_grad))


def linear_cross_entropy(
    hidden: ArrayLike,
    weight: ArrayLike,
    target: ArrayLike,
    *,
    bias: ArrayLike | None = None,
    reduction: str = "mean",
    ignore_index: int = -100,
    label_smoothing: float = 0.0,
    z_loss: float = 0.0,
    softcap: float | None = None,
    class_weight: ArrayLike | None = None,
    chunk_size: int | None = None,
    vocab_chunk_size: int | None = None,
    threads: int | None = None,
) -> Any:
    r"""Cross-entropy of the linear layer ``hidden @ weight.T + bias`` against class indices,
    without holding the logits.

    Equal to ``cross_entropy(hidden @ weight.T + bias, target, weight=class_weight, ...)``
    (PyTorch's ``F.cross_entropy(F.linear(hidden, weight, bias), target, ...)``), computed a
    chunk of rows at a time: each chunk's logits are formed by one BLAS product, reduced by the
    fused cross-entropy kernel, and dropped.

    Parameters
    ----------
    hidden : array_like, shape (..., H)
        The layer's inputs; every leading axis enumerates rows (tokens).
    weight : array_like, shape (V, H)
        The output layer (PyTorch's ``nn.Linear.weight`` layout), of hidden's dtype.
    target : array_like of int, shape hidden.shape[:-1]
        Class indices in ``[0, V)`` or ``ignore_index``.
    bias : array_like, shape (V,), optional
    reduction : {"mean", "sum", "none"}
        "mean" divides by the number of counted rows, or with ``class_weight`` by their summed
        target weights, over the whole call (not per chunk).
    ignore_index, label_smoothing, z_loss, softcap
        As in :func:`cross_entropy`; ``softcap`` caps the logits (Gemma 2).
    class_weight : array_like, shape (V,), optional
        One weight per class (``cross_entropy``'s and PyTorch's ``weight``).
    chunk_size : int, optional
        Rows per chunk. By default 1024, fewer when 1024 rows of logits would take more than
        512 MiB (at least 32).
    vocab_chunk_size : int, optional
        Classes per chunk. By default all of them, unless 32 rows of logits would exceed
        512 MiB; then the classes are split so that a chunk does not.

    Notes
    -----
    Peak memory beyond the inputs and outputs: one chunk of logits, ``chunk_size x V``
    (``chunk_size x vocab_chunk_size`` when the classes are split) in the compute dtype, plus
    O(N) per-row values. float16 and bfloat16 inputs are multiplied in float32 (BLAS has no
    16-bit product), which adds float32 copies of ``hidden`` and ``weight``.

    Examples
    --------
    >>> import numpy as np
    >>> import logitkit as lk
    >>> rng = np.random.default_rng(0)
    >>> h, w = rng.standard_normal((6, 4)), rng.standard_normal((10, 4))
    >>> t = np.array([1, 2, 3, 4, 5, -100])
    >>> loss = lk.linear_cross_entropy(h, w, t, chunk_size=2)
    >>> bool(np.isclose(loss, lk.cross_entropy(h @ w.T, t)))
    True
    """
    loss, _, _, _ = _fused(
        "linear_cross_entropy",
        hidden,
        weight,
        target,
        bias,
        reduction,
        ignore_index,
        label_smoothing,
        z_loss,
        softcap,
        class_weight,
        chunk_size,
        vocab_chunk_size,
        threads,
    )
    return loss


def linear_cross_entropy_with_grad(
    hidden: ArrayLike,
    weight: ArrayLike,
    target: ArrayLike,
    *,
    bias: ArrayLike | None = None,
    reduction: str = "mean",
    ignore_index: int = -100,
    label_smoothing: float = 0.0,
    z_loss: float = 0.0,
    softcap: float | None = None,
    class_weight: ArrayLike | None = None,
    chunk_size: int | None = None,
    vocab_chunk_size: int | None = None,
    grad_output: Any = None,
    compute_weight_grad: bool = True,
    threads: int | None = None,
) -> tuple[Any, NDArray[Any], NDArray[Any] | None, NDArray[Any] | None]:
    r""":func:`linear_cross_entropy` and its gradients, in the same pass over the chunks.

    Returns ``(loss, grad_hidden, grad_weight, grad_bias)``: the gradients of
    ``grad_output * loss`` with respect to ``hidden``, ``weight`` and ``bias`` (``grad_bias``
    is None without a bias). Each chunk's logits are overwritten by their gradient ``G`` (the
    cross-entropy kernel runs in place), then ``grad_hidden[chunk] = G @ weight``,
    ``grad_weight += G.T @ hidden[chunk]`` and ``grad_bias += G.sum(0)``.

    Parameters
    ----------
    grad_output : float or array_like, optional
        The upstream gradient: a scalar for "mean" and "sum"; for "none", an array shaped like
        the loss (one factor per row, non-uniform ones included). Default 1.
    compute_weight_grad : bool
        False for a frozen output layer: ``grad_weight`` and ``grad_bias`` are not computed
        (returned as None), which saves a third of the products and the V x H accumulator.

    Other parameters are those of :func:`linear_cross_entropy`.

    Notes
    -----
    Memory beyond the inputs: the outputs (``grad_hidden``, N x H; ``grad_weight``, V x H),
    one chunk of logits as in :func:`linear_cross_entropy` (twice that with ``softcap`` when
    the classes are split), and, for float16/bfloat16 inputs, float32 copies of ``hidden`` and
    ``weight`` and float32 accumulators for the gradients. Without SciPy, the weight gradient
    is accumulated through a 2048 x H temporary.

    To accumulate over micro-batches, call with ``reduction="sum"`` on each, add the losses and
    gradients, and divide them by the global number of counted tokens (or their summed class
    weights); or pass ``grad_output=1 / global_count`` to get the scaled gradients directly.
    A mean per micro-batch, averaged, is not the global mean when they count different
    numbers of tokens.

    Examples
    --------
    >>> import numpy as np
    >>> import logitkit as lk
    >>> rng = np.random.default_rng(0)
    >>> h, w = rng.standard_normal((6, 4)), rng.standard_normal((10, 4))
    >>> t = np.array([1, 2, 3, 4, 5, -100])
    >>> loss, grad_h, grad_w, grad_b = lk.linear_cross_entropy_with_grad(h, w, t, chunk_size=2)
    >>> _, g = lk.cross_entropy_with_grad(h @ w.T, t)  # through the full logits
    >>> bool(np.allclose(grad_h, g @ w) and np.allclose(grad_w, g.T @ h)), grad_b
    (True, None)
    """
    loss, gx, gw, gb = _fused(
        "linear_cross_entropy_with_grad",
        hidden,
        weight,
        target,
        bias,
        reduction,
        ignore_index,
        label_smoothing,
        z_loss,
        softcap,
        class_weight,
        chunk_size,
        vocab_chunk_size,
        threads,
        want_grad=True,
        grad_output=grad_output,
        compute_weight_grad=compute_weight_grad,
    )
    assert gx is not None
    return loss, gx, gw, gb
