"""Twins of :mod:`logitkit._linear`: a linear layer followed by cross-entropy, through the
full logits."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ._common import finish, load
from ._losses import cross_entropy, cross_entropy_with_grad

__all__ = ["linear_cross_entropy", "linear_cross_entropy_with_grad"]


def _linear_logits(
    hidden: ArrayLike, weight: ArrayLike, bias: ArrayLike | None, func: str
) -> tuple[NDArray[np.float64], NDArray[np.float64], np.dtype[Any]]:
    """float64 hidden rows (N, H) and the full logits (N, V), with the result dtype."""
    x64, dtype = load(hidden, func, "hidden")
    w64, w_dtype = load(weight, func, "weight")
    if x64.ndim == 0 or w64.ndim != 2 or x64.shape[-1] != w64.shape[1]:
        raise ValueError(
            f"{func}(): hidden must be (..., H) and weight (V, H), got {x64.shape} and {w64.shape}"
        )
    if w_dtype != dtype:
        raise TypeError(f"{func}(): weight must have hidden's dtype ({dtype}), got {w_dtype}")
    rows = x64.reshape(-1, x64.shape[-1])
    z = rows @ w64.T
    if bias is not None:
        b64, _ = load(bias, func, "bias")
        if b64.shape != (w64.shape[0],):
            raise ValueError(f"{func}(): bias must have shape ({w64.shape[0]},), got {b64.shape}")
        z = z + b64
    return rows, z, dtype


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
    """``cross_entropy(hidden @ weight.T + bias, target, weight=class_weight, ...)``, through
    the full logits in float64: the definition that ``logitkit.linear_cross_entropy`` computes
    a chunk at a time. ``chunk_size``, ``vocab_chunk_size`` and ``threads`` are accepted for
    the signature's sake and change nothing here.

    Examples
    --------
    >>> import numpy as np
    >>> h, w = np.array([[1.0, 0.0], [0.0, 2.0]]), np.array([[1.0, 1.0], [0.0, -1.0]])
    >>> round(float(linear_cross_entropy(h, w, np.array([0, 1]))), 12)
    2.165705807718
    """
    func = "linear_cross_entropy"
    rows, z, dtype = _linear_logits(hidden, weight, bias, func)
    t = np.asarray(target)
    loss = cross_entropy(
        z,
        t.reshape(-1) if t.shape == np.shape(hidden)[:-1] else t,
        weight=class_weight,
        ignore_index=ignore_index,
        reduction=reduction,
        label_smoothing=label_smoothing,
        z_loss=z_loss,
        softcap=softcap,
    )
    if reduction == "none":
        return finish(np.asarray(loss, dtype=np.float64).reshape(t.shape), dtype, None)
    return finish(np.asarray(loss, dtype=np.float64), dtype, None)


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
    grad_output: ArrayLike | None = None,
    compute_weight_grad: bool = True,
    threads: int | None = None,
) -> tuple[Any, NDArray[Any], NDArray[Any] | None, NDArray[Any] | None]:
    """:func:`linear_cross_entropy` and its gradients by the chain rule through the full
    logits: with ``G = d(grad_output * loss)/d(logits)``, ``grad_hidden = G @ weight``,
    ``grad_weight = G.T @ hidden`` and ``grad_bias = G.sum(0)`` (None without a bias, and
    both None with ``compute_weight_grad=False``), in float64, rounded once.

    Examples
    --------
    >>> import numpy as np
    >>> h, w = np.array([[1.0, 0.0]]), np.array([[1.0, 1.0], [0.0, -1.0]])
    >>> loss, gh, gw, gb = linear_cross_entropy_with_grad(h, w, np.array([0]))
    >>> print(np.round(gh, 6), gb)
    [[-0.268941 -0.537883]] None
    """
    func = "linear_cross_entropy_with_grad"
    rows, z, dtype = _linear_logits(hidden, weight, bias, func)
    t = np.asarray(target)
    flat_rows = t.shape == np.shape(hidden)[:-1]
    go = grad_output
    if reduction == "none" and grad_output is not None and flat_rows:
        go = np.broadcast_to(np.asarray(grad_output), t.shape).reshape(-1)
    loss, g = cross_entropy_with_grad(
        z,
        t.reshape(-1) if flat_rows else t,
        weight=class_weight,
        ignore_index=ignore_index,
        reduction=reduction,
        label_smoothing=label_smoothing,
        z_loss=z_loss,
        softcap=softcap,
        grad_output=go,
    )
    g64 = np.asarray(g, dtype=np.float64)
    w64 = np.asarray(weight).astype(np.float64)
    loss64 = np.asarray(loss, dtype=np.float64)
    if reduction == "none":
        loss64 = loss64.reshape(t.shape)
    grad_hidden = finish((g64 @ w64).reshape(np.shape(hidden)), dtype, None, keep_array=True)
    grad_weight = grad_bias = None
    if compute_weight_grad:
        grad_weight = finish(g64.T @ rows, dtype, None, keep_array=True)
        if bias is not None:
            grad_bias = finish(g64.sum(axis=0), dtype, None, keep_array=True)
    return finish(loss64, dtype, None), grad_hidden, grad_weight, grad_bias
