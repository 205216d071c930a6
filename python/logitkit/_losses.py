"""Cross-entropy on logits, fused with its gradient: NumPy semantics around the native rows."""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import ArrayLike, NDArray

from . import _core
from ._rows import axis_back, axis_last, contiguous, finish, native_ready
from ._runtime import current_isa_index
from ._storage import cast, copy_cast, empty_like, kernel_dtype
from ._validation import (
    as_input_array,
    check_class_input,
    check_class_weight,
    check_flag,
    check_index,
    check_out,
    check_real,
    check_reduction,
    check_softcap,
    check_threads,
    check_z_loss,
    compute_dtypes,
    partially_overlaps,
    row_mask,
    upstream_scale,
)

__all__ = [
    "cross_entropy",
    "cross_entropy_with_grad",
    "CrossEntropyStats",
    "binary_cross_entropy_with_logits",
    "binary_cross_entropy_with_logits_with_grad",
    "nll_loss",
    "target_weights",
    "mean_denominator",
]

_SMOOTHING = ("pytorch", "megatron")


class CrossEntropyStats(NamedTuple):
    r"""Per-row by-products of the cross-entropy, computed in the same pass.

    .. math:: \mathrm{lse} = \log \sum_c e^{z_c}, \quad \mathrm{argmax} = \arg\max_c z_c,
              \quad \mathrm{accuracy} = \frac{\#\{\text{correct}\}}{\#\{\text{counted}\}}

    Returned by :func:`cross_entropy` and :func:`cross_entropy_with_grad` with
    ``return_stats=True``.

    Attributes
    ----------
    lse : ndarray
        Logsumexp of each row's (capped) logits, in the loss's dtype.
    argmax : ndarray of int64
        Index of each row's first largest logit.
    correct : ndarray of bool
        ``argmax == target`` (for probability targets, the target's argmax); False for rows
        that do not count.
    accuracy : float
        The mean of ``correct`` over the rows that count (NaN when none do).

    Examples
    --------
    >>> import numpy as np
    >>> import logitkit as lk
    >>> z = np.array([[2.0, 0.5, -1.0], [0.1, 0.2, 3.0]])
    >>> loss, stats = lk.cross_entropy(z, np.array([0, 1]), return_stats=True)
    >>> stats.argmax, stats.correct, float(stats.accuracy)
    (array([0, 2]), array([ True, False]), 0.5)
    >>> bool(np.allclose(stats.lse, lk.logsumexp(z)))
    True
    """

    lse: NDArray[Any]
    argmax: NDArray[np.int64]
    correct: NDArray[np.bool_]
    accuracy: float


class _Prepared(NamedTuple):
    # class axis last, aligned, in `compute`
    logits: np.ndarray
    rows_shape: tuple[int, ...]
    axis: int
    index_target: np.ndarray | None  # int64, C-contiguous, rows_shape
    soft_target: np.ndarray | None  # like logits
    counted: np.ndarray  # bool, rows_shape
    weight: np.ndarray | None
    weight_sum: float
    denominator: float
    smoothing: float
    z_loss: float
    softcap: float  # 0: none
    # the logits' (and gradient's) dtype in the kernels: float16/bfloat16 as they are where
    # the caller keeps them, else the compute dtype
    compute: np.dtype
    result: np.dtype


def _check_softcap(func: str, softcap: Any, compute: np.dtype) -> tuple[float, np.dtype]:
    """The cap the kernels apply (0 for none) and the dtype to compute in.

    A finite cap too large for the compute dtype (over 3.4e38 with float32 logits) is applied
    in float64, where it is representable; the result keeps the logits' dtype.
    """
    cap = check_softcap(func, softcap)
    if cap is None:
        return 0.0, compute
    if cap > float(np.finfo(compute).max):
        return cap, np.dtype(np.float64)
    return cap, compute


def target_weights(
    target: np.ndarray, counted: np.ndarray, weight: np.ndarray | None
) -> np.ndarray:
    """Each row's part of reduction="mean"'s divisor: the class weight of its target (1
    without ``weight``), 0 for a row that does not count; in the weights' dtype (float64
    without). The targets of rows that do not count are not read."""
    if weight is None:
        return np.where(counted, 1.0, 0.0)
    return np.where(counted, weight[np.where(counted, target, 0)], 0)


def mean_denominator(
    target: np.ndarray | None, counted: np.ndarray, weight: np.ndarray | None
) -> float:
    """reduction="mean"'s divisor: the summed target weights of the rows that count; their
    number without ``weight`` or for probability targets (``target`` None)."""
    counted = counted.reshape(-1)
    if target is None or weight is None:
        return float(np.count_nonzero(counted))
    # the counted rows alone: zeros between them would regroup NumPy's pairwise sum, and
    # with it the last bits
    rows = target_weights(target.reshape(-1), counted, weight)[counted]
    return float(rows.sum(dtype=np.float64))


def _index_target(
    func: str, t: np.ndarray, counted: np.ndarray, ignore_index: Any, n_classes: int
) -> np.ndarray:
    """Class indices as contiguous int64 rows; clears `counted` where t == ignore_index.

    Targets of rows that count must lie in [0, n_classes); those of the other rows may be
    placeholders and read as 0.
    """
    t64 = contiguous(t, np.int64).reshape(-1)
    if t64.size and isinstance(ignore_index, (int, np.integer)):
        # Nearly always every target is a class and none is ignore_index: two reductions
        # show it, where the general path below takes a pass per step.
        lo, hi = int(t64.min()), int(t64.max())
        if 0 <= lo and hi < n_classes and not lo <= ignore_index <= hi:
            return t64
    counted &= t != ignore_index
    bad = counted & ((t < 0) | (t >= n_classes))
    if bad.any():
        pos = tuple(int(i) for i in np.argwhere(bad)[0])
        raise IndexError(
            f"{func}(): target[{pos if len(pos) != 1 else pos[0]}] = {t[pos]} is out of "
            f"range for {n_classes} classes"
        )
    return np.where(counted.reshape(-1), t64, 0)


def _prepare(
    func: str,
    logits: Any,
    target: Any,
    axis: Any,
    weight: Any,
    ignore_index: Any,
    reduction: Any,
    label_smoothing: Any,
    smoothing: Any,
    z_loss: Any,
    softcap: Any,
    where: Any,
    keep16: bool = False,
) -> _Prepared:
    z, ax, compute, result = check_class_input(func, "logits", logits, axis)
    n_classes = z.shape[ax]
    if n_classes == 0:
        raise ValueError(f"{func}(): logits must have at least one class, got shape {z.shape}")
    rows_shape = z.shape[:ax] + z.shape[ax + 1 :]
    check_reduction(func, reduction)
    if smoothing not in _SMOOTHING:
        raise ValueError(f"{func}(): smoothing must be one of {_SMOOTHING}, got {smoothing!r}")
    alpha = check_real(func, "label_smoothing", label_smoothing, "in [0, 1]", lambda v: 0 <= v <= 1)
    if smoothing == "megatron" and alpha > 0:
        if n_classes < 2:
            raise ValueError(f"{func}(): smoothing='megatron' needs at least 2 classes")
        alpha = alpha * n_classes / (n_classes - 1)
    zeta = check_z_loss(func, z_loss)
    cap, compute = _check_softcap(func, softcap, compute)
    ignore_index = check_index(func, "ignore_index", ignore_index)

    t = as_input_array(func, "target", target)
    # Rows that do not count are not checked: their targets may be placeholders.
    counted = row_mask(func, where, rows_shape)
    index_target = soft_target = None
    if t.dtype.kind in "iu":
        if t.shape != rows_shape:
            raise ValueError(
                f"{func}(): class-index target must have shape {rows_shape} (logits without "
                f"the class axis), got {t.shape}"
            )
        index_target = _index_target(func, t, counted, ignore_index, n_classes)
    elif t.dtype.kind == "f" or t.dtype.name == "bfloat16":
        compute_dtypes(func, "target", t.dtype)  # refuses long double, which would be cut
        if t.shape != z.shape:
            raise ValueError(
                f"{func}(): probability target must have the shape of logits {z.shape}, "
                f"got {t.shape}"
            )
        if np.isnan(axis_last(t, ax)[counted]).any():
            raise ValueError(f"{func}(): probability target contains NaN")
        soft_target = native_ready(axis_last(t, ax), compute)
    else:
        raise TypeError(
            f"{func}(): target must be integer class indices or floating probabilities, "
            f"got {t.dtype}"
        )

    w = None
    weight_sum = float(n_classes)
    if weight is not None:
        w = contiguous(check_class_weight(func, weight, n_classes), compute)
        weight_sum = float(w.sum(dtype=np.float64))
    denominator = mean_denominator(index_target, counted, w)

    zv = axis_last(z, ax)
    if keep16 and compute == np.float32:  # not when a huge softcap asks for float64
        compute = kernel_dtype(compute, result)
    if zv.dtype != compute:
        zv = cast(zv, compute)
    elif not zv.flags.aligned:
        zv = zv.copy()
    return _Prepared(
        zv,
        rows_shape,
        ax,
        index_target,
        soft_target,
        counted,
        w,
        weight_sum,
        denominator,
        alpha,
        zeta,
        cap,
        compute,
        result,
    )


def _run(
    func: str,
    prep: _Prepared,
    reduction: str,
    threads: Any,
    grad_view: np.ndarray | None,
    grad_output: Any,
    want_argmax: bool,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n_rows = math.prod(prep.rows_shape)
    # bool and uint8 share their layout: a contiguous mask goes to the kernels as it is
    counted = contiguous(prep.counted.reshape(-1)).view(np.uint8)
    grad_scale = None
    if grad_view is not None:
        grad_scale = upstream_scale(func, grad_output, reduction, prep.rows_shape, prep.denominator)
    loss = np.empty(n_rows)
    lse = np.empty(n_rows)
    argmax = np.empty(n_rows, dtype=np.int64)
    nthreads = check_threads(func, threads)
    _core.cross_entropy(
        prep.logits,
        prep.index_target,
        prep.soft_target,
        counted,
        grad_scale,
        prep.weight,
        prep.weight_sum,
        prep.smoothing,
        prep.z_loss,
        prep.softcap,
        grad_view,
        loss,
        lse,
        argmax,
        want_argmax,
        current_isa_index(),
        nthreads,
    )
    return loss, lse, argmax


def _reduce(loss_rows: np.ndarray, prep: _Prepared, reduction: str) -> Any:
    # A loss beyond the result dtype's range rounds to inf, as the kernels' own results do,
    # without NumPy's overflow warning; so do inf - inf sums (NaN).
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        if reduction == "none":
            return cast(loss_rows.reshape(prep.rows_shape), prep.result)
        total = loss_rows.sum()
        if reduction == "mean":
            total = np.float64(total) / np.float64(prep.denominator)
        return prep.result.type(total)


def _stats(prep: _Prepared, lse: np.ndarray, argmax: np.ndarray) -> CrossEntropyStats:
    counted = prep.counted.reshape(-1)
    if prep.index_target is not None:
        wanted = prep.index_target
    else:
        assert prep.soft_target is not None
        wanted = np.argmax(prep.soft_target, axis=-1).reshape(-1)
    correct = (argmax == wanted) & counted
    n = np.count_nonzero(counted)
    accuracy = float(np.count_nonzero(correct)) / n if n else float("nan")
    return CrossEntropyStats(
        cast(lse.reshape(prep.rows_shape), prep.result),
        argmax.reshape(prep.rows_shape),
        correct.reshape(prep.rows_shape),
        accuracy,
    )


def cross_entropy(
    logits: ArrayLike,
    target: ArrayLike,
    *,
    axis: int = -1,
    weight: ArrayLike | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
    smoothing: str = "pytorch",
    z_loss: float = 0.0,
    softcap: float | None = None,
    where: ArrayLike | None = None,
    return_stats: bool = False,
    threads: int | None = None,
) -> Any:
    r"""Cross-entropy of logits against class indices or class probabilities.

    Per row, with :math:`\ell = \operatorname{lse}(z)` and :math:`\log p = z - \ell`:

    .. math::
        L = (1-\alpha)\, w_t (\ell - z_t) + \frac{\alpha}{C} \sum_c w_c (\ell - z_c)
            + \zeta\, \ell^2

    for an index target ``t`` (``w`` = ``weight`` or ones, ``alpha`` = ``label_smoothing``,
    ``zeta`` = ``z_loss``), and :math:`L = \sum_c w_c y'_c (\ell - z_c) + \zeta \ell^2` with
    :math:`y' = (1-\alpha) y + \alpha / C` for probability targets ``y``. Equal to PyTorch's
    ``F.cross_entropy`` for every option they share.

    Parameters
    ----------
    logits : array_like
        Scores; the class axis is ``axis``, every other axis enumerates rows (``(N, C)``, or
        ``(N, C, d1, ...)`` with ``axis=1`` as in PyTorch).
    target : array_like
        Class indices of any integer dtype shaped like the rows, or probabilities (floating)
        shaped like ``logits``.
    weight : array_like, optional
        One weight per class.
    ignore_index : int
        Index targets equal to it contribute nothing (loss 0, zero gradient, not counted).
    reduction : {"mean", "sum", "none"}
        "mean" divides by the summed target weights of the counted rows (their number without
        ``weight``; the number of counted rows for probability targets). A mean over no
        counted rows is NaN, as in PyTorch.
    label_smoothing : float in [0, 1]
    smoothing : {"pytorch", "megatron"}
        "megatron" scales alpha by C / (C - 1): the target keeps ``1 - alpha`` and every other
        class gets ``alpha / (C - 1)``.
    z_loss : float
        Adds ``z_loss * lse**2`` per counted row (PaLM's auxiliary loss).
    softcap : float, optional
        Replaces the logits by ``softcap * tanh(logits / softcap)`` first (Gemma 2).
    where : array_like of bool, optional
        Rows that count; False rows behave like ignored ones.
    return_stats : bool
        Also return :class:`CrossEntropyStats` (per-row lse, argmax, correctness, accuracy),
        computed in the same pass.

    Returns
    -------
    loss : ndarray or NumPy scalar
        A scalar for "mean" and "sum"; the rows' shape for "none".
    stats : CrossEntropyStats
        With ``return_stats`` only.

    Notes
    -----
    A row whose logits contain NaN, ``+inf`` (without ``softcap``) or only ``-inf`` has a NaN
    loss (and gradient); other rows are unaffected. A target outside ``[0, C)`` that is not
    ``ignore_index`` raises IndexError naming the first bad position.

    Examples
    --------
    >>> import numpy as np
    >>> import logitkit as lk
    >>> z = np.array([[2.0, 0.5, -1.0], [0.1, 0.2, 3.0]])
    >>> round(float(lk.cross_entropy(z, np.array([0, 2]))), 12)
    0.175456380589

    Probability targets give the same loss for one-hot rows:

    >>> y = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    >>> round(float(lk.cross_entropy(z, y)), 12)
    0.175456380589
    """
    func = "cross_entropy"
    prep = _prepare(
        func,
        logits,
        target,
        axis,
        weight,
        ignore_index,
        reduction,
        label_smoothing,
        smoothing,
        z_loss,
        softcap,
        where,
        keep16=True,
    )
    return_stats = check_flag(func, "return_stats", return_stats)
    loss, lse, argmax = _run(func, prep, reduction, threads, None, None, return_stats)
    result = _reduce(loss, prep, reduction)
    return (result, _stats(prep, lse, argmax)) if return_stats else result


def cross_entropy_with_grad(
    logits: ArrayLike,
    target: ArrayLike,
    *,
    axis: int = -1,
    weight: ArrayLike | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
    smoothing: str = "pytorch",
    z_loss: float = 0.0,
    softcap: float | None = None,
    where: ArrayLike | None = None,
    grad_output: Any = None,
    grad_out: NDArray[Any] | None = None,
    inplace: bool = False,
    return_stats: bool = False,
    threads: int | None = None,
) -> Any:
    r""":func:`cross_entropy` and its gradient with respect to the logits, in one pass.

    Returns ``(loss, grad)`` (or ``(loss, grad, stats)`` with ``return_stats``), where
    ``grad = grad_output * d(loss)/d(logits)``: for an index target without options,
    ``(softmax(z) - onehot(t)) * w_t * s`` with ``s`` = ``grad_output / denominator`` for
    "mean", ``grad_output`` for "sum", and ``grad_output[row]`` for "none". The logits are
    read once and the gradient written once: no log-softmax and no zero-filled gradient is
    stored. The target entry, ``p_t - 1``, is formed in double precision (as ``expm1``) so
    it does not cancel when ``p_t`` is close to 1. With probability targets ``y`` the
    gradient is ``(p * sum(q) - q) * s`` with ``q = w * y'`` (times the cap's slope and plus
    the z-loss term); the entry of a row's single maximum is formed in double precision as
    ``p_top * sum(q except q_top) - q_top * (1 - p_top)``, with ``1 - p_top`` from the sum of
    the other classes' exponentials, so it does not cancel either when ``p_top`` rounds to
    1 (a one-hot probability target then gives the gradient of its class index). The other
    entries, where ``p_j <= 1/2``, are formed in the compute dtype.

    Parameters
    ----------
    grad_output : float or array_like, optional
        The upstream gradient: a scalar for "mean" and "sum", an array shaped like the loss
        for "none". Default 1.
    grad_out : ndarray, optional
        Preallocated array (the logits' shape and dtype) for the gradient.
    inplace : bool
        Write the gradient over the logits (which must then be a writeable array): no memory
        beyond the logits themselves.

    Other parameters are those of :func:`cross_entropy`.

    Returns
    -------
    loss : ndarray or NumPy scalar
        As :func:`cross_entropy` returns it.
    grad : ndarray
        The logits' shape and dtype (``grad_out``, or the logits themselves with
        ``inplace``).
    stats : CrossEntropyStats
        With ``return_stats`` only.

    Examples
    --------
    >>> import numpy as np
    >>> import logitkit as lk
    >>> z = np.array([[2.0, 0.5, -1.0]])
    >>> loss, grad = lk.cross_entropy_with_grad(z, np.array([0]))
    >>> np.allclose(grad, lk.softmax(z) - [1, 0, 0])
    True
    """
    func = "cross_entropy_with_grad"
    prep = _prepare(
        func,
        logits,
        target,
        axis,
        weight,
        ignore_index,
        reduction,
        label_smoothing,
        smoothing,
        z_loss,
        softcap,
        where,
        keep16=True,
    )
    inplace = check_flag(func, "inplace", inplace)
    return_stats = check_flag(func, "return_stats", return_stats)
    z_in = logits if isinstance(logits, np.ndarray) else None
    if inplace and grad_out is not None:
        raise ValueError(f"{func}(): pass either inplace=True or grad_out, not both")
    if inplace:
        if z_in is None:
            raise TypeError(f"{func}(): inplace=True needs logits to be a numpy.ndarray")
        if z_in.dtype != prep.result:
            # integer or bool logits cannot hold a gradient; they are left as they were
            raise TypeError(
                f"{func}(): inplace=True needs floating logits (float16, bfloat16, float32 "
                f"or float64) to hold the gradient, got {z_in.dtype}"
            )
        if not z_in.flags.writeable:
            raise ValueError(f"{func}(): inplace=True needs writeable logits")
        grad_out = z_in
    elif grad_out is not None:
        check_out(func, grad_out, _logits_shape(prep), prep.result, "grad_out")

    direct = grad_out is not None and grad_out.dtype == prep.compute and grad_out.flags.aligned
    if direct:
        assert grad_out is not None
        view = axis_last(grad_out, prep.axis)
        if partially_overlaps(view, prep.logits):
            direct = False
    if direct:
        assert grad_out is not None
        grad = grad_out
        loss, lse, argmax = _run(func, prep, reduction, threads, view, grad_output, return_stats)
    else:
        # The gradient takes the logits' memory layout (as PyTorch's does), so that it is
        # written along the same axes as the logits are read.
        moved = empty_like(axis_back(prep.logits, prep.axis), prep.compute)
        loss, lse, argmax = _run(
            func,
            prep,
            reduction,
            threads,
            axis_last(moved, prep.axis),
            grad_output,
            return_stats,
        )
        if grad_out is not None:
            copy_cast(grad_out, moved)
            grad = grad_out
        else:
            grad = cast(moved, prep.result)
    result = _reduce(loss, prep, reduction)
    if return_stats:
        return result, grad, _stats(prep, lse, argmax)
    return result, grad


def _logits_shape(prep: _Prepared) -> tuple[int, ...]:
    shape = list(prep.rows_shape)
    shape.insert(prep.axis, prep.logits.shape[-1])
    return tuple(shape)


def _holds(a: np.ndarray, dtype: np.dtype, full: int) -> bool:
    """Whether every value of ``a`` is one of ``dtype``'s (bit for bit as float32), so that
    the kernels read the same numbers from ``a`` converted to ``dtype`` as from ``a`` in
    float32. A dtype that casts safely does; an operand smaller than the logits (broadcast
    against them) is checked value by value, which costs less than its broadcast copy."""
    if a.dtype == dtype or np.can_cast(a.dtype, dtype, "safe"):
        return True
    if a.size >= full:
        return False
    with np.errstate(all="ignore"):
        wide, there_and_back = a.astype(np.float32), a.astype(dtype).astype(np.float32)
    return bool(np.array_equal(wide.view(np.uint32), there_and_back.view(np.uint32)))


def _bce(
    func: str,
    logits: Any,
    target: Any,
    weight: Any,
    pos_weight: Any,
    label_smoothing: Any,
    reduction: Any,
    threads: Any,
    want_grad: bool,
    grad_output: Any,
) -> tuple[Any, np.ndarray | None]:
    nthreads = check_threads(func, threads)
    x = as_input_array(func, "logits", logits)
    compute, result = compute_dtypes(func, "logits", x.dtype)
    y = as_input_array(func, "target", target)
    compute_dtypes(func, "target", y.dtype)
    if y.shape != x.shape:
        raise ValueError(f"{func}(): target must have the shape of logits {x.shape}, got {y.shape}")
    check_reduction(func, reduction)
    alpha = check_real(func, "label_smoothing", label_smoothing, "in [0, 1]", lambda v: 0 <= v <= 1)

    def broadcast(value: Any, arg: str) -> np.ndarray | None:
        if value is None:
            return None
        a = as_input_array(func, arg, value)
        compute_dtypes(func, arg, a.dtype)
        try:
            np.broadcast_to(a, x.shape)
        except ValueError:
            raise ValueError(
                f"{func}(): {arg} with shape {a.shape} cannot be broadcast to logits with "
                f"shape {x.shape}"
            ) from None
        return a

    w, pw = broadcast(weight, "weight"), broadcast(pos_weight, "pos_weight")
    go, scale = None, 1.0
    if want_grad:
        if reduction == "none":
            go = broadcast(grad_output, "grad_output")
        else:
            # Any real number, NaN and infinities included: they propagate, as in autograd.
            g0 = (
                1.0
                if grad_output is None
                else check_real(func, "grad_output", grad_output, "a real number", lambda v: True)
            )
            scale = g0 / x.size if reduction == "mean" and x.size else g0

    # 16-bit logits are read as they are when the target, weights and grad_output hold
    # 16-bit values only; otherwise every operand goes in float32, as the kernels would see
    # them anyway.
    kernel = kernel_dtype(compute, result)
    others = [a for a in (y, w, pw, go) if a is not None]
    if kernel != compute and not all(_holds(a, kernel, x.size) for a in others):
        kernel = compute
    # The target enters as 1 - y': rounded to float32, a target just below 1 (or below
    # float32's range) would lose that difference, and with it the loss term (1 - y')
    # softplus(x): 0 instead of inf at x = +inf, 1e-13 instead of 3e-8 for y = 1 - 1e-9 at
    # x = 30. A target that float32 does not hold exactly sends every operand in float64.
    # The weights and grad_output only multiply: float32 changes them by its own precision.
    if kernel == np.float32 and not np.can_cast(y.dtype, kernel, "safe"):
        with np.errstate(all="ignore"):
            # soft float64 targets show it in their first values, before any conversion
            head = y.flat[:64]
            y32 = contiguous(y, kernel) if np.array_equal(head.astype(kernel), head) else None
        if y32 is not None and np.array_equal(y32, y):  # (a NaN target goes in float64)
            y = y32  # converted once: the kernels take it as it is
        else:
            kernel = np.dtype(np.float64)

    def flat(a: np.ndarray) -> np.ndarray:
        # a target or weight beyond the compute dtype's range becomes inf, quietly
        with np.errstate(over="ignore"):
            return contiguous(np.broadcast_to(a, x.shape), kernel).reshape(-1)

    def flat_or_none(a: np.ndarray | None) -> np.ndarray | None:
        return None if a is None else flat(a)

    loss = np.empty(x.size, dtype=kernel) if reduction == "none" else None
    grad = np.empty(x.size, dtype=kernel) if want_grad else None
    total = _core.binary_cross_entropy(
        flat(x),
        flat(y),
        flat_or_none(w),
        flat_or_none(pw),
        alpha,
        loss,
        grad,
        flat_or_none(go),
        scale,
        current_isa_index(),
        nthreads,
    )
    # a value beyond the result dtype's range (float64 results of 16-bit logits) is inf
    with np.errstate(over="ignore"):
        grad_res = None if grad is None else cast(grad.reshape(x.shape), result)
        if loss is not None:
            return finish(loss.reshape(x.shape), result), grad_res
        if reduction == "mean":
            total = total / x.size if x.size else float("nan")
        return result.type(total), grad_res


def binary_cross_entropy_with_logits(
    logits: ArrayLike,
    target: ArrayLike,
    *,
    weight: ArrayLike | None = None,
    pos_weight: ArrayLike | None = None,
    label_smoothing: float = 0.0,
    reduction: str = "mean",
    threads: int | None = None,
) -> Any:
    r"""Binary cross-entropy of ``sigmoid(logits)``: each class is its own two-class softmax.

    Elementwise, with :math:`y' = (1-\alpha) y + \alpha/2`, ``w = weight``, ``pw =
    pos_weight``:

    .. math:: \ell = w\,[\,pw\, y'\, \mathrm{softplus}(-x) + (1 - y')\, \mathrm{softplus}(x)\,]

    the same value as PyTorch's ``F.binary_cross_entropy_with_logits`` (which writes it as
    ``(1 - y') x + (1 + (pw - 1) y') softplus(-x)``), but as a sum of two non-negative terms
    it keeps full relative precision for any logit and never overflows. A term with a zero
    coefficient adds 0 even at ``x = +-inf``.

    Parameters
    ----------
    logits : array_like
        One logit per binary decision, any shape.
    target : array_like
        Probabilities of the positive class (0 or 1 for hard labels), broadcast against the
        logits. Read exactly: with float32 or 16-bit logits, a target holding values float32
        does not (a float64 just below 1) makes the computation run in float64.
    weight : array_like, optional
        Per-element weight ``w``, broadcast against the logits.
    pos_weight : array_like, optional
        Weight ``pw`` of the positive term; a vector runs along the last axis (one entry per
        class).
    label_smoothing : float in [0, 1]
        ``alpha``: the targets become ``(1 - alpha) y + alpha / 2``.
    reduction : {"mean", "sum", "none"}
        "mean" over all elements (NaN if none), "sum", or the elementwise losses.
    threads : int, optional
        Threads to use (default ``LOGITKIT_NUM_THREADS`` or all cores).

    Returns
    -------
    ndarray or NumPy scalar
        A scalar for "mean" and "sum"; the broadcast shape for "none".

    Examples
    --------
    >>> import numpy as np
    >>> import logitkit as lk
    >>> lk.binary_cross_entropy_with_logits(np.array([800.0, -800.0]), np.array([1.0, 1.0]),
    ...                                     reduction="none")
    array([  0., 800.])
    """
    loss, _ = _bce(
        "binary_cross_entropy_with_logits",
        logits,
        target,
        weight,
        pos_weight,
        label_smoothing,
        reduction,
        threads,
        False,
        None,
    )
    return loss


def binary_cross_entropy_with_logits_with_grad(
    logits: ArrayLike,
    target: ArrayLike,
    *,
    weight: ArrayLike | None = None,
    pos_weight: ArrayLike | None = None,
    label_smoothing: float = 0.0,
    reduction: str = "mean",
    grad_output: Any = None,
    threads: int | None = None,
) -> tuple[Any, NDArray[Any]]:
    r""":func:`binary_cross_entropy_with_logits` and its gradient, in one pass.

    .. math:: \frac{\partial \ell}{\partial x} = w\,[\,(1 - y')\,\sigma(x) - pw\, y'\, \sigma(-x)\,]

    times ``grad_output``, and divided by the number of elements for "mean". Without
    weights and smoothing this is ``sigmoid(x) - y``.

    Parameters
    ----------
    grad_output : float or array_like, optional
        The upstream gradient: a scalar for "mean" and "sum", an array shaped like the loss
        for "none". Default 1.

    Other parameters are those of :func:`binary_cross_entropy_with_logits`.

    Returns
    -------
    loss : ndarray or NumPy scalar
        As :func:`binary_cross_entropy_with_logits` returns it.
    grad : ndarray
        The gradient with respect to the logits, in their broadcast shape.

    Examples
    --------
    >>> import numpy as np
    >>> import logitkit as lk
    >>> x, y = np.array([0.0, 2.0]), np.array([1.0, 0.0])
    >>> loss, grad = lk.binary_cross_entropy_with_logits_with_grad(x, y, reduction="none")
    >>> grad
    array([-0.5       ,  0.88079708])
    >>> bool(np.allclose(grad, lk.sigmoid(x) - y))
    True
    """
    loss, grad = _bce(
        "binary_cross_entropy_with_logits_with_grad",
        logits,
        target,
        weight,
        pos_weight,
        label_smoothing,
        reduction,
        threads,
        True,
        grad_output,
    )
    assert grad is not None
    return loss, grad


def nll_loss(
    log_probs: ArrayLike,
    target: ArrayLike,
    *,
    axis: int = -1,
    weight: ArrayLike | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
    where: ArrayLike | None = None,
    threads: int | None = None,
) -> Any:
    r"""Negative log-likelihood of log-probabilities, as PyTorch's ``F.nll_loss``.

    .. math:: L = -w_t \log q_t \quad \text{(class index } t\text{)}, \qquad
              L = -\sum_c w_c\, y_c \log q_c \quad \text{(probabilities } y\text{)}

    per row, ``log q`` being ``log_probs``; a zero target adds 0 even against ``-inf``.
    :func:`cross_entropy` takes logits and is the fused, faster path:
    ``nll_loss(log_softmax(z), t) == cross_entropy(z, t)``.

    Parameters
    ----------
    log_probs : array_like
        Log-probabilities; the class axis is ``axis``, as the logits of :func:`cross_entropy`.
    target : array_like
        Class indices or probabilities, as in :func:`cross_entropy`.
    axis, weight, ignore_index, reduction, where, threads
        As in :func:`cross_entropy`.

    Returns
    -------
    ndarray or NumPy scalar
        A scalar for "mean" and "sum"; the rows' shape for "none".

    Examples
    --------
    >>> import numpy as np
    >>> import logitkit as lk
    >>> float(lk.nll_loss(np.log([[0.25, 0.75]]), np.array([1])))
    0.2876820724517809
    >>> z = np.array([[2.0, 0.5, -1.0]])
    >>> bool(np.isclose(lk.nll_loss(lk.log_softmax(z), np.array([0])),
    ...                 lk.cross_entropy(z, np.array([0]))))
    True
    """
    func = "nll_loss"
    check_threads(func, threads)
    prep = _prepare(
        func,
        log_probs,
        target,
        axis,
        weight,
        ignore_index,
        reduction,
        0.0,
        "pytorch",
        0.0,
        None,
        where,
    )
    lp = prep.logits
    counted = prep.counted
    with np.errstate(invalid="ignore", over="ignore"):
        if prep.index_target is not None:
            idx = prep.index_target.reshape(prep.rows_shape + (1,))
            picked = np.take_along_axis(lp, idx, axis=-1)[..., 0].astype(np.float64)
            w_t = 1.0 if prep.weight is None else prep.weight[idx[..., 0]].astype(np.float64)
            rows = np.where(counted, -w_t * picked, 0.0)
        else:
            assert prep.soft_target is not None
            coef = prep.soft_target.astype(np.float64)
            if prep.weight is not None:
                coef = coef * prep.weight
            terms = np.where(coef == 0, 0.0, -coef * lp)
            rows = np.where(counted, terms.sum(axis=-1), 0.0)
    return _reduce(rows.reshape(-1), prep, reduction)
