"""logitkit on Dask arrays: the class axis may be split across chunks, evenly or not.

``pip install 'logitkit[dask]'``, then ``import logitkit.dask as lkd``. Every function takes
a ``dask.array.Array`` (anything else goes through ``dask.array.asarray``) and returns a lazy
Dask array: nothing runs until ``.compute()``, ``.persist()`` or ``dask.compute``, on
whichever scheduler is active (threads by default, a ``dask.distributed`` cluster when a
``Client`` exists).

How the work is split
---------------------
* Whole rows in each chunk (one chunk along the class axis): logitkit's kernels run on each
  block (``map_blocks``) and the block results are the result, one read of the data.
* The class axis in several chunks: each block gives its partial statistics
  (:func:`logitkit.partial_logsumexp`, :func:`~logitkit.partial_entropy`,
  :func:`~logitkit.partial_cross_entropy`), computed by the kernels; ``dask.array.reduction``
  merges them in a tree (the partials are the tree's intermediates, merged by
  :func:`logitkit.merge_partials`), and outputs of the input's shape (softmax, log_softmax)
  take one more blockwise pass over the data with the merged row statistics.

Reductions over rows are exact global ones: a cross-entropy mean is the total loss over the
total target weight of every row block, not a mean of block means. The accuracy is that of
the merge (see :mod:`logitkit._mergeable`): within a few ulps of the in-memory call.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any, cast

import numpy as np

try:
    import dask.array as da
except ImportError as exc:  # pragma: no cover - exercised without the extra installed
    raise ImportError(
        "logitkit.dask needs dask[array]; install it with: pip install 'logitkit[dask]'"
    ) from exc

from . import _losses, _reductions
from ._mergeable import CrossEntropyPartial, LogSumExpPartial, merge_partials
from ._partial import partial_cross_entropy, partial_entropy, partial_logsumexp
from ._rows import keep_reduced
from ._validation import (
    check_base,
    check_class_axis,
    check_index_target,
    check_reduction,
    compute_dtypes,
)

# Dask's functions carry no annotations: call them through Any, type what they return.
_da: Any = da

__all__ = ["logsumexp", "softmax", "log_softmax", "entropy_from_logits", "cross_entropy"]

_SMOOTHING = ("pytorch", "megatron")


# ---------------------------------------------------------------------------
# arguments
# ---------------------------------------------------------------------------


def _dask_input(func: str, arg: str, x: Any) -> da.Array:
    if isinstance(x, da.Array):
        return x
    try:
        return _array(_da.asarray(x))
    except (TypeError, ValueError) as exc:
        raise TypeError(
            f"{func}(): {arg} must be a dask array or array-like, got {type(x).__name__}"
        ) from exc


def _prepared(func: str, arg: str, x: Any, axis: Any) -> tuple[da.Array, int, np.dtype]:
    arr = _dask_input(func, arg, x)
    _, result = compute_dtypes(func, arg, arr.dtype)
    ax = check_class_axis(func, axis, arr.ndim)
    if any(np.isnan(c) for c in arr.chunks[ax]):
        raise ValueError(
            f"{func}(): the chunk sizes along the class axis must be known, got "
            f"{arr.chunks[ax]}; call {arg}.compute_chunk_sizes() first"
        )
    return arr, ax, result


def _array(lazy: Any) -> da.Array:
    return cast(da.Array, lazy)


def _whole_rows(x: da.Array, ax: int) -> bool:
    return bool(x.numblocks[ax] == 1)


def _reduced_chunks(x: da.Array, ax: int, keepdims: bool) -> tuple[tuple[int, ...], ...]:
    if keepdims:
        return tuple((1,) if d == ax else c for d, c in enumerate(x.chunks))
    return tuple(c for d, c in enumerate(x.chunks) if d != ax)


def _meta(block: Any) -> np.ndarray:
    """What Dask's metadata probe gets instead of a partial: an empty float64 array (the
    partials flow between tasks only; the probe wants an array type)."""
    return np.empty((0,) * np.ndim(block), dtype=np.float64)


def _flatten(parts: Any) -> list[Any]:
    """The partials Dask hands to a combine step: one, a list, or nested lists of them."""
    if isinstance(parts, (list, tuple)):
        return [p for item in parts for p in _flatten(item)]
    return [parts]


def _merge_step(parts: Any, axis: Any = None, keepdims: bool = True) -> Any:
    return merge_partials(*_flatten(parts))


def _tree(
    x: da.Array,
    ax: int,
    chunk: Callable[..., Any],
    aggregate: Callable[..., np.ndarray],
    dtype: np.dtype,
    keepdims: bool,
    split_every: int | None,
    output_size: int = 1,
) -> da.Array:
    """dask.array.reduction over the class axis with partials as the intermediates."""
    out_ndim = x.ndim if keepdims else x.ndim - 1
    return _array(
        _da.reduction(
            x,
            chunk=chunk,
            combine=_merge_step,
            aggregate=aggregate,
            axis=ax,
            keepdims=keepdims,
            dtype=dtype,
            split_every=split_every,
            concatenate=False,
            output_size=output_size,
            meta=np.empty((0,) * out_ndim, dtype=dtype),
            name="logitkit-" + getattr(aggregate, "__name__", "reduce").strip("_"),
        )
    )


# ---------------------------------------------------------------------------
# log-sum-exp, softmax, log_softmax
# ---------------------------------------------------------------------------


def _lse_chunk(
    block: np.ndarray, axis: tuple[int, ...], keepdims: bool, computing_meta: bool = False
) -> Any:
    if computing_meta:
        return _meta(block)
    return partial_logsumexp(block, axis=axis[0])


def _lse_aggregate(parts: Any, axis: tuple[int, ...], keepdims: bool) -> np.ndarray:
    merged = _merge_step(parts)
    return keep_reduced(np.asarray(merged.finalize()), axis, keepdims)


def _lse_block(block: np.ndarray, axis: int, keepdims: bool) -> np.ndarray:
    return np.asarray(_reductions.logsumexp(block, axis=axis, keepdims=keepdims))


def logsumexp(
    x: Any, axis: int = -1, *, keepdims: bool = False, split_every: int | None = None
) -> da.Array:
    r""":func:`logitkit.logsumexp` of a Dask array along one axis, chunked along it or not.

    .. math:: \mathrm{lse}(x) = \log \sum_{\text{blocks } B} e^{\mathrm{lse}(x_B)}

    each block's log-sum-exp from the kernels, merged in a tree.

    Parameters
    ----------
    x : dask.array.Array or array_like
        Logits, chunked in any way.
    axis : int
        The reduced axis. Default -1.
    keepdims : bool
        Keep the reduced axis with length 1.
    split_every : int, optional
        Dask's fan-in of the merge tree (default: Dask's).

    Returns
    -------
    dask.array.Array
        Lazy, with the dtype :func:`logitkit.logsumexp` gives for ``x``'s dtype.

    Examples
    --------
    >>> import dask.array as da
    >>> import numpy as np
    >>> import logitkit as lk
    >>> import logitkit.dask as lkd
    >>> x = np.arange(12.0).reshape(2, 6)
    >>> lazy = lkd.logsumexp(da.from_array(x, chunks=(1, (1, 2, 3))))
    >>> bool(np.allclose(lazy.compute(), lk.logsumexp(x), rtol=1e-15))
    True
    """
    func = "logsumexp"
    arr, ax, result = _prepared(func, "x", x, axis)
    if _whole_rows(arr, ax):
        return _array(
            _da.map_blocks(
                _lse_block,
                arr,
                axis=ax,
                keepdims=keepdims,
                dtype=result,
                chunks=_reduced_chunks(arr, ax, keepdims),
                drop_axis=[] if keepdims else [ax],
                meta=np.empty((0,) * (arr.ndim - (0 if keepdims else 1)), dtype=result),
            )
        )
    return _tree(arr, ax, _lse_chunk, _lse_aggregate, result, keepdims, split_every)


class _RowShift:
    """Per-row log-sum-exp merged with the number of +inf entries, which softmax needs where
    the log-sum-exp is +inf (k entries at +inf share the mass, 1/k each)."""

    __slots__ = ("lse", "n_inf")

    def __init__(self, lse: LogSumExpPartial, n_inf: np.ndarray) -> None:
        self.lse, self.n_inf = lse, n_inf

    def merge(self, other: _RowShift) -> _RowShift:
        return _RowShift(self.lse.merge(other.lse), self.n_inf + other.n_inf)


def _shift_chunk(
    block: np.ndarray, axis: tuple[int, ...], keepdims: bool, computing_meta: bool = False
) -> Any:
    if computing_meta:
        return _meta(block)
    part = partial_logsumexp(block, axis=axis[0])
    n_inf = np.zeros(part.lse.shape)
    hot = part.lse == np.inf
    if hot.any():  # rare: count only in the rows that have a +inf
        n_inf[hot] = np.isposinf(np.moveaxis(block, axis[0], -1)[hot]).sum(axis=-1)
    return _RowShift(part, n_inf)


def _shift_merge(parts: Any, axis: Any = None, keepdims: bool = True) -> _RowShift:
    items = _flatten(parts)
    out = items[0]
    for p in items[1:]:
        out = out.merge(p)
    return out  # type: ignore[no-any-return]


def _shift_aggregate(parts: Any, axis: tuple[int, ...], keepdims: bool) -> np.ndarray:
    merged = _shift_merge(parts)
    # float64 (lse, n_inf) pairs along the reduced axis, kept: the blockwise pass reads them
    return np.stack([merged.lse.lse, merged.n_inf], axis=axis[0])


def _softmax_block(block: np.ndarray, shift: np.ndarray, ax: int, log: bool) -> np.ndarray:
    """softmax (or log_softmax) of a block of classes, given the rows' merged statistics.

    The kernels give the block's own softmax (relative to the block's log-sum-exp ``own``);
    one per-row factor ``exp(own - lse)`` (a shift ``own - lse`` for the log) moves it to the
    whole row: two kernel reads and one scaling pass, in the compute dtype.
    """
    compute, result = compute_dtypes("softmax", "x", block.dtype)
    z = block.astype(compute) if compute != result else block  # 16-bit: float32 throughout
    lse = np.take(shift, [0], axis=ax)
    n_inf = np.take(shift, [1], axis=ax)
    own = np.expand_dims(partial_logsumexp(z, axis=ax).lse, ax)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        gap = own - lse  # <= 0: the block's share of the row's mass, in log
        if log:
            values = _reductions.log_softmax(z, axis=ax)
            values += gap.astype(compute)
        else:
            values = _reductions.softmax(z, axis=ax)
            values *= np.exp(gap).astype(compute)
        # a block without mass in a row that has some elsewhere: probability 0 (its own
        # softmax is 0/0)
        empty = (own == -np.inf) & (lse > -np.inf)
        if empty.any():
            values = np.where(empty, -np.inf if log else 0.0, values).astype(compute)
        hot = lse == np.inf
        if hot.any():  # k entries at +inf over the row share the mass: 1/k each
            share = -np.log(n_inf) if log else 1.0 / n_inf
            limit = np.where(np.isposinf(z), share, -np.inf if log else 0.0)
            values = np.where(hot & ~np.isnan(z), limit, values).astype(compute)
    out: np.ndarray = values.astype(result, copy=False)
    return out


def _softmax_impl(func: str, x: Any, axis: Any, split_every: int | None, log: bool) -> da.Array:
    arr, ax, result = _prepared(func, "x", x, axis)
    if _whole_rows(arr, ax):
        kernel = _reductions.log_softmax if log else _reductions.softmax
        return _array(
            _da.map_blocks(
                kernel, arr, axis=ax, dtype=result, meta=np.empty((0,) * arr.ndim, result)
            )
        )
    shift = _da.reduction(
        arr,
        chunk=_shift_chunk,
        combine=_shift_merge,
        aggregate=_shift_aggregate,
        axis=ax,
        keepdims=True,
        dtype=np.float64,
        split_every=split_every,
        concatenate=False,
        output_size=2,
        meta=np.empty((0,) * arr.ndim, dtype=np.float64),
        name="logitkit-row-shift",
    )
    # shift has one chunk of length 2 along the class axis: broadcast to every class block
    index = tuple(range(arr.ndim))
    return _array(
        _da.blockwise(
            _softmax_block,
            index,
            arr,
            index,
            shift,
            tuple(i if i != ax else arr.ndim for i in index),
            ax=ax,
            log=log,
            dtype=result,
            concatenate=True,
            meta=np.empty((0,) * arr.ndim, dtype=result),
        )
    )


def softmax(x: Any, axis: int = -1, *, split_every: int | None = None) -> da.Array:
    r""":func:`logitkit.softmax` of a Dask array along one axis, chunked along it or not.

    .. math:: \mathrm{softmax}(x)_B = \mathrm{softmax}(x_B)\,
              e^{\mathrm{lse}(x_B) - \mathrm{lse}(x)}

    Whole-row chunks take one kernel pass per block. A class axis in several chunks takes
    the merged row log-sum-exp (a tree reduction), then per block ``B`` the kernel's softmax
    of the block scaled by its share of the row; ``k`` entries at ``+inf`` get ``1/k`` as in
    the in-memory call.

    Parameters
    ----------
    x : dask.array.Array or array_like
        Logits, chunked in any way.
    axis : int
        The class axis. Default -1.
    split_every : int, optional
        Dask's fan-in of the merge tree (default: Dask's).

    Returns
    -------
    dask.array.Array
        Lazy, of ``x``'s shape and chunks.

    Examples
    --------
    >>> import dask.array as da
    >>> import numpy as np
    >>> import logitkit as lk
    >>> import logitkit.dask as lkd
    >>> x = np.array([[1.0, 2.0, 3.0, 4.0], [0.0, 0.0, -1.0, 5.0]])
    >>> lazy = lkd.softmax(da.from_array(x, chunks=(1, 2)))  # each row in two blocks
    >>> bool(np.allclose(lazy.compute(), lk.softmax(x), rtol=1e-14))
    True
    """
    return _softmax_impl("softmax", x, axis, split_every, log=False)


def log_softmax(x: Any, axis: int = -1, *, split_every: int | None = None) -> da.Array:
    r""":func:`logitkit.log_softmax` of a Dask array along one axis, chunked along it or not.

    .. math:: \log\mathrm{softmax}(x)_B = \log\mathrm{softmax}(x_B)
              + (\mathrm{lse}(x_B) - \mathrm{lse}(x))

    Split rows as in :func:`softmax`: the kernel's log_softmax of each block ``B``, shifted.

    Parameters
    ----------
    x : dask.array.Array or array_like
        Logits, chunked in any way.
    axis : int
        The class axis. Default -1.
    split_every : int, optional
        Dask's fan-in of the merge tree (default: Dask's).

    Returns
    -------
    dask.array.Array
        Lazy, of ``x``'s shape and chunks.

    Examples
    --------
    >>> import dask.array as da
    >>> import numpy as np
    >>> import logitkit as lk
    >>> import logitkit.dask as lkd
    >>> x = np.array([[1.0, 2.0, 3.0, 4.0], [0.0, 0.0, -1.0, 5.0]])
    >>> lazy = lkd.log_softmax(da.from_array(x, chunks=(2, (1, 3))))
    >>> bool(np.allclose(lazy.compute(), lk.log_softmax(x), rtol=1e-14))
    True
    """
    return _softmax_impl("log_softmax", x, axis, split_every, log=True)


# ---------------------------------------------------------------------------
# entropy
# ---------------------------------------------------------------------------


def _entropy_chunk(
    block: np.ndarray, axis: tuple[int, ...], keepdims: bool, computing_meta: bool = False
) -> Any:
    if computing_meta:
        return _meta(block)
    return partial_entropy(block, axis=axis[0])


def _entropy_aggregate(
    parts: Any, axis: tuple[int, ...], keepdims: bool, base: float | None = None
) -> np.ndarray:
    merged = _merge_step(parts)
    return keep_reduced(np.asarray(merged.finalize(base=base)), axis, keepdims)


def _entropy_block(block: np.ndarray, axis: int, base: float | None, keepdims: bool) -> np.ndarray:
    return np.asarray(
        _reductions.entropy_from_logits(block, axis=axis, base=base, keepdims=keepdims)
    )


def entropy_from_logits(
    z: Any,
    axis: int = -1,
    *,
    base: float | None = None,
    keepdims: bool = False,
    split_every: int | None = None,
) -> da.Array:
    r""":func:`logitkit.entropy_from_logits` of a Dask array, chunked along ``axis`` or not.

    .. math:: H = \sum_B p_B \big(H_B + (\mathrm{lse} - \mathrm{lse}_B)\big),
              \quad p_B = e^{\mathrm{lse}_B - \mathrm{lse}}

    each block's :class:`logitkit.EntropyPartial` merged in a tree (the grouping rule of
    the entropy).

    Parameters
    ----------
    z : dask.array.Array or array_like
        Logits, chunked in any way.
    axis : int
        The class axis. Default -1.
    base : float, optional
        None (or ``e``) for nats, 2 for bits, 10 for hartleys.
    keepdims : bool
        Keep the class axis with length 1.
    split_every : int, optional
        Dask's fan-in of the merge tree (default: Dask's).

    Returns
    -------
    dask.array.Array
        Lazy, ``z``'s shape without the class axis.

    Examples
    --------
    >>> import dask.array as da
    >>> import numpy as np
    >>> import logitkit.dask as lkd
    >>> z = da.zeros((3, 8), chunks=(3, 3))  # uniform over 8 classes, in 3 blocks per row
    >>> lkd.entropy_from_logits(z, base=2).compute()
    array([3., 3., 3.])
    """
    func = "entropy_from_logits"
    arr, ax, result = _prepared(func, "z", z, axis)
    check_base(func, base)
    if _whole_rows(arr, ax):
        return _array(
            _da.map_blocks(
                _entropy_block,
                arr,
                axis=ax,
                base=base,
                keepdims=keepdims,
                dtype=result,
                chunks=_reduced_chunks(arr, ax, keepdims),
                drop_axis=[] if keepdims else [ax],
                meta=np.empty((0,) * (arr.ndim - (0 if keepdims else 1)), dtype=result),
            )
        )

    def aggregate(parts: Any, axis: tuple[int, ...], keepdims: bool) -> np.ndarray:
        return _entropy_aggregate(parts, axis, keepdims, base)

    return _tree(arr, ax, _entropy_chunk, aggregate, result, keepdims, split_every)


# ---------------------------------------------------------------------------
# cross-entropy
# ---------------------------------------------------------------------------


def _check_targets(
    t: np.ndarray, starts: tuple[int, ...], n_classes: int, ignore_index: int
) -> None:
    """Targets of a block of rows that starts at ``starts``, named by their global index."""
    bad = (t != ignore_index) & ((t < 0) | (t >= n_classes))
    if bad.any():
        local = tuple(int(i) for i in np.argwhere(bad)[0])
        pos = tuple(s + i for s, i in zip(starts, local, strict=True))
        raise IndexError(
            f"cross_entropy(): target[{pos if len(pos) != 1 else pos[0]}] = {t[local]} is out of "
            f"range for {n_classes} classes"
        )


def _ce_rows_block(
    z: np.ndarray,
    t: np.ndarray,
    *positions: np.ndarray,
    ax: int,
    weight: np.ndarray | None,
    ignore_index: int,
    options: dict[str, Any],
) -> np.ndarray:
    """Whole rows: one kernel call; (loss, target weight) per row, float64, on the class
    axis (of length 2 here)."""
    _check_targets(t, tuple(_start(p) for p in positions), z.shape[ax], ignore_index)
    loss = _losses.cross_entropy(
        z, t, axis=ax, weight=weight, ignore_index=ignore_index, reduction="none", **options
    )
    wt = _losses.target_weights(t, t != ignore_index, weight)
    return np.stack([np.asarray(loss, np.float64), wt], axis=ax)


def _ce_partial_block(
    z: np.ndarray,
    t: np.ndarray,
    *positions: np.ndarray,
    ax: int,
    weighted: bool,
    n_classes: int,
    ignore_index: int,
    softcap: float | None,
    with_smoothing: bool,
) -> CrossEntropyPartial:
    """One block of rows and classes: its partial statistics. ``positions`` are the row
    axes' positions, then the class axis', then (``weighted``) the block's class weights."""
    n_rows_axes = t.ndim
    starts = tuple(_start(p) for p in positions[:n_rows_axes])
    offset = _start(positions[n_rows_axes])
    weight = positions[n_rows_axes + 1] if weighted else None
    if offset == 0:  # the first class block of each row block checks the targets
        _check_targets(t, starts, n_classes, ignore_index)
    return partial_cross_entropy(
        z,
        t,
        class_offset=offset,
        weight=weight,
        ignore_index=ignore_index,
        softcap=softcap,
        label_smoothing=with_smoothing,
        axis=ax,
    )


def _identity_chunk(part: Any, axis: Any, keepdims: bool, computing_meta: bool = False) -> Any:
    if computing_meta:
        return _meta(part)
    return part


def _positions(chunks: tuple[int, ...]) -> da.Array:
    """The indices along an axis, chunked like it: a block's first entry tells a blockwise
    function where its block starts."""
    return _array(_da.arange(sum(chunks), chunks=(chunks,), dtype=np.int64))


def _start(positions: np.ndarray) -> int:
    return int(positions[0]) if positions.size else 0


def cross_entropy(
    logits: Any,
    target: Any,
    *,
    axis: int = -1,
    weight: Any = None,
    ignore_index: int = -100,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
    smoothing: str = "pytorch",
    z_loss: float = 0.0,
    softcap: float | None = None,
    split_every: int | None = None,
) -> da.Array:
    r""":func:`logitkit.cross_entropy` of Dask logits against class indices.

    Every axis of ``logits`` but the class axis enumerates rows (``(N, C)``, or
    ``(N, C, d1, ...)`` with ``axis=1`` as in PyTorch). ``reduction="mean"`` is

    .. math:: \text{mean} = \frac{\sum_{\text{row blocks}} \sum_n L_n}
              {\sum_{\text{row blocks}} \sum_n w_{t_n}}

    each row's loss from the merged :class:`logitkit.CrossEntropyPartial` of its class
    blocks: the global mean, not a mean of block means.

    Parameters
    ----------
    logits : dask.array.Array or array_like
        Logits with the classes on ``axis``, chunked in any way.
    target : dask.array.Array or array_like
        Integer class indices shaped like ``logits`` without the class axis (a Dask array is
        rechunked to the logits' rows if needed).
    axis : int
        The class axis (default -1, the last).
    weight : array_like, optional
        ``(C,)`` class weights, in memory; each class block gets its slice.
    ignore_index, reduction, label_smoothing, smoothing, z_loss, softcap
        As in :func:`logitkit.cross_entropy`.
    split_every : int, optional
        Dask's fan-in of the merge tree (default: Dask's).

    Returns
    -------
    dask.array.Array
        Lazy: 0-d, or shaped like ``target`` for ``reduction="none"``. A target out of range
        raises IndexError naming its index, when computed.

    Examples
    --------
    >>> import dask.array as da
    >>> import numpy as np
    >>> import logitkit.dask as lkd
    >>> z = da.from_array(np.array([[2.0, 0.5, -1.0], [0.1, 0.2, 3.0]]), chunks=(1, (2, 1)))
    >>> round(float(lkd.cross_entropy(z, np.array([0, 2])).compute()), 12)
    0.175456380589
    """
    func = "cross_entropy"
    z = _dask_input(func, "logits", logits)
    _, result = compute_dtypes(func, "logits", z.dtype)
    ax = check_class_axis(func, axis, z.ndim, "logits")
    n_classes = z.shape[ax]
    if n_classes == 0:
        raise ValueError(f"{func}(): logits must have at least one class, got shape {z.shape}")
    if any(np.isnan(c) for chunks in z.chunks for c in chunks):
        raise ValueError(f"{func}(): the chunk sizes of logits must be known, got {z.chunks}")
    check_reduction(func, reduction)
    if smoothing not in _SMOOTHING:
        raise ValueError(f"{func}(): smoothing must be one of {_SMOOTHING}, got {smoothing!r}")
    alpha = float(label_smoothing)
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"{func}(): label_smoothing must be in [0, 1], got {label_smoothing}")
    if softcap is not None and not float(softcap) > 0:
        raise ValueError(f"{func}(): softcap must be a positive number or None, got {softcap}")
    ignore_index = operator.index(ignore_index)
    rows = tuple(d for d in range(z.ndim) if d != ax)  # the row axes, as blockwise indices
    rows_shape = tuple(z.shape[d] for d in rows)
    t = _dask_input(func, "target", target)
    check_index_target(func, t, rows_shape, "logits without the class axis")
    t = _array(cast(Any, t).rechunk(tuple(z.chunks[d] for d in rows)))
    w = None
    if weight is not None:
        w = np.asarray(weight)
        compute_dtypes(func, "weight", w.dtype)
        if w.shape != (n_classes,):
            raise ValueError(
                f"{func}(): weight must have shape ({n_classes},) (one per class), got {w.shape}"
            )
        w = w.astype(np.float64)
    index = tuple(range(z.ndim))
    # logits, targets, then where each block starts along every row axis (for messages)
    args: list[Any] = [z, index, t, rows]
    for d in rows:
        args += [_positions(z.chunks[d]), (d,)]

    if _whole_rows(z, ax):
        options = dict(label_smoothing=alpha, smoothing=smoothing, z_loss=z_loss, softcap=softcap)
        # (loss, target weight) of each row where the class axis was
        pairs = _da.blockwise(
            _ce_rows_block,
            index,
            *args,
            adjust_chunks={ax: 2},
            ax=ax,
            weight=w,
            ignore_index=ignore_index,
            options=options,
            dtype=np.float64,
            meta=np.empty((0,) * z.ndim, np.float64),
        )
    else:
        args += [_positions(z.chunks[ax]), (ax,)]
        if w is not None:
            args += [_da.from_array(w, chunks=(z.chunks[ax],)), (ax,)]
        # One CrossEntropyPartial per block: the array's chunks describe the logits, the
        # blocks hold the partials, consumed only by the reduction below.
        parts = _da.blockwise(
            _ce_partial_block,
            index,
            *args,
            ax=ax,
            weighted=w is not None,
            n_classes=n_classes,
            ignore_index=ignore_index,
            softcap=softcap,
            with_smoothing=alpha > 0,
            dtype=object,
            meta=np.empty((0,) * z.ndim, object),
        )

        def aggregate(p: Any, axis: tuple[int, ...], keepdims: bool) -> np.ndarray:
            merged: CrossEntropyPartial = _merge_step(p)
            loss, wt = merged.row_losses(label_smoothing=alpha, smoothing=smoothing, z_loss=z_loss)
            return np.stack([loss, wt], axis=axis[0])

        pairs = _da.reduction(
            parts,
            chunk=_identity_chunk,
            combine=_merge_step,
            aggregate=aggregate,
            axis=ax,
            keepdims=True,
            dtype=np.float64,
            split_every=split_every,
            concatenate=False,
            output_size=2,
            meta=np.empty((0,) * z.ndim, np.float64),
            name="logitkit-cross-entropy",
        )

    def pick(i: int) -> Any:  # the losses (0) or the target weights (1), shaped like the rows
        return pairs[tuple(i if d == ax else slice(None) for d in index)]

    loss = pick(0)
    if reduction == "none":
        return _array(loss.astype(result))
    # A total beyond the result dtype's range is inf, without NumPy's overflow warning.
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        total = loss.sum()
        if reduction == "sum":
            return _array(total.astype(result))
        return _array((total / pick(1).sum()).astype(result))
