"""logitkit for PyTorch: the softmax family and the losses as ``torch.ops.logitkit.*`` operators.

``from logitkit import torch as lkt`` (PyTorch must be installed; ``import logitkit`` alone never
imports it). Each operator is registered with :mod:`torch.library`: a CPU kernel running
logitkit's native code, a fake (meta) kernel for tracing, and an autograd formula, so
``torch.compile(fullgraph=True)`` traces them without graph breaks and ``torch.library.opcheck``
passes. The Python functions follow PyTorch's names and argument conventions
(``lkt.cross_entropy`` is a drop-in for ``torch.nn.functional.cross_entropy``) and the modules
:class:`CrossEntropyLoss` and :class:`BCEWithLogitsLoss` take the constructor arguments of
PyTorch's own.

Tensors reach the kernels as NumPy views of their memory (``Tensor.numpy`` on the detached
tensor, which shares it as DLPack would at a fifth of the cost): CPU tensors of float32,
float64, float16 and bfloat16, contiguous or strided, are read in place, without a copy, and
every result is written straight into a new tensor. No kernel writes into a tensor the caller
passed in: each result, gradients included, is a fresh tensor, so autograd never sees a buffer
change under it.
"""

# No ``from __future__ import annotations`` here, unlike the other modules:
# torch.library.custom_op reads the operators' schemas from their annotations at run time.
import warnings
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import Tensor

from . import _losses, _reductions
from ._backward import log_softmax_backward as _np_log_softmax_backward
from ._backward import logsumexp_backward as _np_logsumexp_backward
from ._backward import softmax_backward as _np_softmax_backward
from ._elementwise import softplus as _np_softplus
from ._rows import pooled_empty, reduced_shape
from ._validation import check_reduction, row_mask, torch_bfloat16_array

__all__ = [
    "softmax",
    "log_softmax",
    "logsumexp",
    "cross_entropy",
    "CrossEntropyStats",
    "binary_cross_entropy_with_logits",
    "CrossEntropyLoss",
    "BCEWithLogitsLoss",
]

_FLOATING = (torch.float32, torch.float64, torch.float16, torch.bfloat16)
_REDUCTIONS = ("none", "mean", "sum")
_SMOOTHING = ("pytorch", "megatron")


# --------------------------------------------------------------------------------------------
# Tensors <-> NumPy, without copies


def _np(t: Tensor) -> np.ndarray:
    """The tensor's memory as a NumPy array (same strides, no copy).

    NumPy has no bfloat16, so bfloat16 crosses as int16 bits and is viewed as
    ml_dtypes.bfloat16, the type logitkit computes bfloat16 arrays as. ``Tensor.numpy`` shares
    the memory as DLPack would, at a fifth of the cost, which counts on small tensors.
    """
    t = t.detach()
    if t.dtype == torch.bfloat16:
        try:
            return torch_bfloat16_array(t, Tensor.numpy)
        except ImportError:  # pragma: no cover - ml_dtypes comes with the test extras
            raise TypeError(
                "logitkit.torch: bfloat16 tensors need the ml_dtypes package "
                "(pip install ml_dtypes)"
            ) from None
    return t.numpy()


_NP_DTYPES: dict[torch.dtype, np.dtype[Any]] = {
    torch.float32: np.dtype(np.float32),
    torch.float64: np.dtype(np.float64),
    torch.float16: np.dtype(np.float16),
    torch.bfloat16: np.dtype(np.int16),  # bfloat16 bits, viewed back below
}


def _empty(shape: Sequence[int], dtype: torch.dtype) -> Tensor:
    """A new C-contiguous tensor (the layout the fake kernels promise).

    Large ones are blocks of logitkit's buffer cache (see logitkit.set_buffer_cache_limit),
    shared with the tensor without a copy: a new 64 MB gradient from the system allocator
    costs a page fault and a page zeroing per page on its first write, about as long as the
    fused cross-entropy takes, while a block that an earlier result freed costs nothing. The
    tensor keeps the block alive and returns it to the cache when it is freed.
    """
    shape = tuple(int(n) for n in shape)
    np_dtype = _NP_DTYPES.get(dtype)
    block = None if np_dtype is None else pooled_empty(shape, np_dtype)
    if block is None:
        return torch.empty(shape, dtype=dtype)
    out = torch.from_numpy(block)
    return out.view(torch.bfloat16) if dtype == torch.bfloat16 else out


def _scalar_tensor(value: Any, dtype: torch.dtype) -> Tensor:
    # logitkit's reduced losses are NumPy scalars of the input dtype; their float64 value is
    # exact, so converting it back to the tensor dtype rounds nothing.
    return torch.tensor(float(value), dtype=dtype)


def _fill(shape: Sequence[int], dtype: torch.dtype, values: Any) -> Tensor:
    out = _empty(shape, dtype)
    np.copyto(_np(out), np.asarray(values), casting="unsafe")
    return out


def _probe(name: str, unknown: Any) -> Any:
    # torch's own Python code asks these of torch._C; a build without one is taken to be in
    # the state that keeps the operator
    return getattr(torch._C, name, lambda: unknown)


_functorch_active = _probe("_are_functorch_transforms_active", True)
_dispatch_modes = _probe("_len_torch_dispatch_stack", 1)
_function_modes = _probe("_is_torch_function_mode_enabled", True)


def _transformed() -> bool:
    """Whether something between the caller and the kernels must see the operator: vmap or
    torch.func transforms (their tensors have no storage to read), a dispatch mode (fake
    tensors, FlopCounterMode) or a torch-function mode."""
    return bool(_functorch_active() or _dispatch_modes() or _function_modes())


def _run(op: Any, impl: Any, *args: Any) -> Any:
    """``op(*args)`` for the operator ``op`` whose CPU kernel is ``impl``; in eager mode on
    plain tensors, ``impl(*args)`` itself when autograd has nothing to record, and the
    operator's autograd formula as a torch.autograd.Function when it has (_EAGER_AUTOGRAD).
    Both give the same tensors as the operator. The operator's Python layers (its autograd
    wrapper, argument defaults, the dynamo guard) cost about 30 us a call forward and 100 us
    backward, several times the work on a small batch (`python benchmarks/bench_torch.py
    --threads 1`). Under torch.compile, under vmap and the torch.func transforms, under
    dispatch and torch-function modes and on tensor subclasses (fake, functional) the operator
    runs, so tracing, batching and opcheck see it."""
    if torch.compiler.is_compiling() or _transformed():
        return op(*args)
    record = torch.is_grad_enabled()
    needs_grad = False
    for a in args:
        if isinstance(a, Tensor):
            if type(a) is not Tensor:
                return op(*args)
            needs_grad = needs_grad or (record and a.requires_grad)
    if needs_grad:
        eager = _EAGER_AUTOGRAD.get(impl)
        return op(*args) if eager is None else eager.apply(*args)  # type: ignore[no-untyped-call]
    return impl(*args)


# The operators' autograd formulas again, as torch.autograd.Function classes keyed by the CPU
# kernel: in eager mode a call that autograd records goes through one of these, which costs a
# fraction of the operator's dispatch (`python benchmarks/bench_torch.py --threads 1`, forward
# + backward on 8 x 100 logits). The formulas are the same functions, so both paths give the
# same gradients; the backward functions call _run in turn, so double backward records the
# backward operators.
_EAGER_AUTOGRAD: dict[Any, type[torch.autograd.Function]] = {}


def _register_autograd(op: Any, impl: Any, grad: Any, setup_context: Any) -> None:
    op.register_autograd(grad, setup_context=setup_context)

    def forward(ctx: Any, *args: Any) -> Any:
        # forward(ctx, ...) rather than a setup_context method: Function.apply binds the
        # arguments of the latter with inspect.signature, which took longer than the kernel
        output = impl(*args)
        setup_context(ctx, args, output)
        return output

    # made with type() so that its graph nodes are named for the op: "<op>_eagerBackward"
    name = impl.__name__.strip("_").removesuffix("_impl") + "_eager"
    methods = {"forward": staticmethod(forward), "backward": staticmethod(grad)}
    Eager = type(name, (torch.autograd.Function,), methods)
    _EAGER_AUTOGRAD[impl] = Eager


# --------------------------------------------------------------------------------------------
# Argument checks, in the Python wrappers: they run before the operator, also while
# torch.compile traces, so bad input fails early with a message naming the argument.


def _check_tensor(func: str, arg: str, t: Any, *, floating: bool = True) -> Tensor:
    if not isinstance(t, Tensor):
        raise TypeError(
            f"logitkit.torch.{func}(): {arg} must be a torch.Tensor, got {type(t).__name__}"
        )
    if t.device.type != "cpu":
        raise ValueError(
            f"logitkit.torch.{func}(): {arg} must be a CPU tensor (logitkit's kernels run on "
            f"the CPU), got a tensor on device '{t.device}'; move it with .cpu() or use "
            f"PyTorch's own function on that device"
        )
    if floating and t.dtype not in _FLOATING:
        raise TypeError(
            f"logitkit.torch.{func}(): {arg} must be a float32, float64, float16 or bfloat16 "
            f"tensor, got {t.dtype}"
        )
    return t


def _check_dim(func: str, dim: Any, ndim: int) -> int:
    if isinstance(dim, bool) or not isinstance(dim, int):
        raise TypeError(f"logitkit.torch.{func}(): dim must be an int, got {dim!r}")
    rank = max(ndim, 1)
    if not -rank <= dim < rank:
        raise IndexError(
            f"logitkit.torch.{func}(): dim {dim} is out of range for a tensor with "
            f"{ndim} dimensions (expected to be in [{-rank}, {rank - 1}])"
        )
    return dim % rank


def _check_no_grad(func: str, arg: str, t: Tensor | None) -> None:
    if t is not None and t.requires_grad:
        raise NotImplementedError(
            f"logitkit.torch.{func}(): the gradient with respect to {arg} is not implemented "
            f"(as in PyTorch); pass {arg}.detach()"
        )


def _reduction(func: str, size_average: Any, reduce: Any, reduction: Any) -> str:
    if size_average is not None or reduce is not None:
        # PyTorch's legacy arguments, with PyTorch's rule and its deprecation warning
        size_average = True if size_average is None else size_average
        reduce = True if reduce is None else reduce
        reduction = "none" if not reduce else "mean" if size_average else "sum"
        warnings.warn(
            f"size_average and reduce args will be deprecated, please use "
            f"reduction='{reduction}' instead.",
            stacklevel=3,
        )
    check_reduction(f"logitkit.torch.{func}", reduction, _REDUCTIONS)
    return str(reduction)


# --------------------------------------------------------------------------------------------
# softmax, log_softmax


def _softmax_impl(input: Tensor, dim: int) -> Tensor:
    out = _empty(input.shape, input.dtype)
    _reductions.softmax(_np(input), dim, out=_np(out))
    return out


_softmax_op = torch.library.custom_op("logitkit::softmax", _softmax_impl, mutates_args=())


def _log_softmax_impl(input: Tensor, dim: int) -> Tensor:
    out = _empty(input.shape, input.dtype)
    _reductions.log_softmax(_np(input), dim, out=_np(out))
    return out


_log_softmax_op = torch.library.custom_op(
    "logitkit::log_softmax", _log_softmax_impl, mutates_args=()
)


def _softmax_backward_impl(grad: Tensor, output: Tensor, dim: int) -> Tensor:
    out = _empty(output.shape, output.dtype)
    _np_softmax_backward(_np(grad), _np(output), dim, out=_np(out))
    return out


_softmax_backward_op = torch.library.custom_op(
    "logitkit::softmax_backward", _softmax_backward_impl, mutates_args=()
)


def _log_softmax_backward_impl(grad: Tensor, output: Tensor, dim: int) -> Tensor:
    out = _empty(output.shape, output.dtype)
    _np_log_softmax_backward(_np(grad), _np(output), dim, out=_np(out))
    return out


_log_softmax_backward_op = torch.library.custom_op(
    "logitkit::log_softmax_backward", _log_softmax_backward_impl, mutates_args=()
)


@_softmax_op.register_fake
@_log_softmax_op.register_fake
def _like_input_fake(input: Tensor, dim: int) -> Tensor:
    return input.new_empty(input.shape)


@_softmax_backward_op.register_fake
@_log_softmax_backward_op.register_fake
def _like_output_fake(grad: Tensor, output: Tensor, dim: int) -> Tensor:
    return output.new_empty(output.shape)


def _save_output(ctx: Any, inputs: tuple[Any, ...], output: Tensor) -> None:
    ctx.save_for_backward(output)
    ctx.dim = inputs[1]


def _softmax_grad(ctx: Any, grad: Tensor) -> tuple[Tensor, None]:
    (output,) = ctx.saved_tensors
    return _run(
        torch.ops.logitkit.softmax_backward, _softmax_backward_impl, grad, output, ctx.dim
    ), None


def _log_softmax_grad(ctx: Any, grad: Tensor) -> tuple[Tensor, None]:
    (output,) = ctx.saved_tensors
    return _run(
        torch.ops.logitkit.log_softmax_backward, _log_softmax_backward_impl, grad, output, ctx.dim
    ), None


_register_autograd(_softmax_op, _softmax_impl, _softmax_grad, _save_output)
_register_autograd(_log_softmax_op, _log_softmax_impl, _log_softmax_grad, _save_output)


def _softmax_like(
    func: str, op: Any, impl: Any, input: Any, dim: Any, dtype: torch.dtype | None
) -> Tensor:
    _check_tensor(func, "input", input)
    if dtype is not None:
        input = input.to(dtype)
        _check_tensor(func, "input", input)
    d = _check_dim(func, dim, input.ndim)
    if input.ndim == 0:  # a one-element row, as in PyTorch
        return _run(op, impl, input.reshape(1), 0).reshape(())  # type: ignore[no-any-return]
    return _run(op, impl, input, d)  # type: ignore[no-any-return]


def softmax(input: Tensor, dim: int, *, dtype: torch.dtype | None = None) -> Tensor:
    r"""Softmax along ``dim``, as :func:`torch.softmax`: ``exp(x - max) / sum(exp(x - max))``.

    .. math:: \sigma(x)_j = \frac{e^{x_j - m}}{\sum_k e^{x_k - m}}, \quad m = \max_k x_k

    Runs ``torch.ops.logitkit.softmax``; differentiable (the gradient
    ``y * (g - sum(g * y))`` is ``torch.ops.logitkit.softmax_backward``). ``dtype`` casts the
    input first, as in PyTorch.

    Examples
    --------
    >>> import torch
    >>> from logitkit import torch as lkt
    >>> lkt.softmax(torch.tensor([1.0, 2.0, 3.0]), dim=0)
    tensor([0.0900, 0.2447, 0.6652])
    """
    return _softmax_like("softmax", torch.ops.logitkit.softmax, _softmax_impl, input, dim, dtype)


def log_softmax(input: Tensor, dim: int, *, dtype: torch.dtype | None = None) -> Tensor:
    r"""Log-softmax along ``dim``, as :func:`torch.log_softmax`: ``x - logsumexp(x)``.

    .. math:: \log\sigma(x)_j = x_j - m - \log\sum_k e^{x_k - m}

    The largest entry keeps full relative precision (``log_softmax([0, -50])[0]`` is
    ``-1.9e-22``, not 0). Runs ``torch.ops.logitkit.log_softmax``; differentiable (the gradient
    ``g - exp(y) sum(g)`` is ``torch.ops.logitkit.log_softmax_backward``).

    Examples
    --------
    >>> import torch
    >>> from logitkit import torch as lkt
    >>> lkt.log_softmax(torch.tensor([0.0, -50.0], dtype=torch.float64), dim=0)
    tensor([-1.9287e-22, -5.0000e+01], dtype=torch.float64)
    """
    return _softmax_like(
        "log_softmax", torch.ops.logitkit.log_softmax, _log_softmax_impl, input, dim, dtype
    )


# --------------------------------------------------------------------------------------------
# logsumexp


def _reduced_shape(shape: Sequence[int], dim: Sequence[int], keepdim: bool) -> list[int]:
    return list(reduced_shape(tuple(shape), tuple(dim), keepdim))


def _logsumexp_impl(input: Tensor, dim: list[int], keepdim: bool) -> Tensor:
    out = _empty(_reduced_shape(input.shape, dim, keepdim), input.dtype)
    _reductions.logsumexp(_np(input), tuple(dim), keepdims=keepdim, out=_np(out))
    return out


_logsumexp_op = torch.library.custom_op("logitkit::logsumexp", _logsumexp_impl, mutates_args=())


@_logsumexp_op.register_fake
def _logsumexp_fake(input: Tensor, dim: list[int], keepdim: bool) -> Tensor:
    return input.new_empty(_reduced_shape(input.shape, dim, keepdim))


def _logsumexp_backward_impl(grad: Tensor, input: Tensor, dim: list[int], keepdim: bool) -> Tensor:
    out = _empty(input.shape, input.dtype)
    g = _np(grad).astype(_np(out).dtype, copy=False)
    _np_logsumexp_backward(g, _np(input), None, tuple(dim), keepdim, out=_np(out))
    return out


_logsumexp_backward_op = torch.library.custom_op(
    "logitkit::logsumexp_backward", _logsumexp_backward_impl, mutates_args=()
)


@_logsumexp_backward_op.register_fake
def _logsumexp_backward_fake(grad: Tensor, input: Tensor, dim: list[int], keepdim: bool) -> Tensor:
    return input.new_empty(input.shape)


def _logsumexp_setup(ctx: Any, inputs: tuple[Any, ...], output: Tensor) -> None:
    ctx.save_for_backward(inputs[0])
    ctx.dim, ctx.keepdim = inputs[1], inputs[2]


def _logsumexp_grad(ctx: Any, grad: Tensor) -> tuple[Tensor, None, None]:
    (input,) = ctx.saved_tensors
    grad_input = _run(
        torch.ops.logitkit.logsumexp_backward,
        _logsumexp_backward_impl,
        grad,
        input,
        ctx.dim,
        ctx.keepdim,
    )
    return grad_input, None, None


_register_autograd(_logsumexp_op, _logsumexp_impl, _logsumexp_grad, _logsumexp_setup)


def logsumexp(input: Tensor, dim: int | Sequence[int], keepdim: bool = False) -> Tensor:
    r"""``log(sum(exp(input)))`` over ``dim`` (an int or a sequence of ints), as
    :func:`torch.logsumexp`.

    .. math:: \operatorname{lse}(x) = m + \log\sum_k e^{x_k - m}, \quad m = \max_k x_k

    Exact to the last bit when one entry dominates (``logsumexp([0, -50])`` is ``1.9e-22``).
    Runs ``torch.ops.logitkit.logsumexp``; the gradient ``g * softmax(x)`` is
    ``torch.ops.logitkit.logsumexp_backward``.

    Examples
    --------
    >>> import torch
    >>> from logitkit import torch as lkt
    >>> lkt.logsumexp(torch.tensor([[0.0, 0.0], [1.0, 1.0]], dtype=torch.float64), dim=1)
    tensor([0.6931, 1.6931], dtype=torch.float64)
    """
    func = "logsumexp"
    _check_tensor(func, "input", input)
    dims = [dim] if isinstance(dim, int) else list(dim)
    norm = sorted({_check_dim(func, d, input.ndim) for d in dims})
    if len(norm) != len(dims):
        raise ValueError(f"logitkit.torch.{func}(): dim {tuple(dims)} repeats a dimension")
    if input.ndim == 0:
        return _run(  # type: ignore[no-any-return]
            torch.ops.logitkit.logsumexp, _logsumexp_impl, input.reshape(1), [0], False
        ).reshape(())
    return _run(torch.ops.logitkit.logsumexp, _logsumexp_impl, input, norm, bool(keepdim))  # type: ignore[no-any-return]


# --------------------------------------------------------------------------------------------
# cross_entropy


def _class_axis(ndim: int) -> int:
    # PyTorch's layout: (C,), (N, C) or (N, C, d1, ...)
    return 0 if ndim == 1 else 1


def _ce_kwargs(
    weight: Tensor | None,
    ignore_index: int,
    reduction: str,
    label_smoothing: float,
    smoothing: str,
    z_loss: float,
    softcap: float | None,
    where: Tensor | None,
    ndim: int,
) -> dict[str, Any]:
    return {
        "axis": _class_axis(ndim),
        "weight": None if weight is None else _np(weight),
        "ignore_index": ignore_index,
        "reduction": reduction,
        "label_smoothing": label_smoothing,
        "smoothing": smoothing,
        "z_loss": z_loss,
        "softcap": softcap,
        "where": None if where is None else _np(where),
    }


def _cross_entropy_impl(
    input: Tensor,
    target: Tensor,
    weight: Tensor | None,
    ignore_index: int,
    reduction: str,
    label_smoothing: float,
    smoothing: str,
    z_loss: float,
    softcap: float | None,
    where: Tensor | None,
) -> Tensor:
    kw = _ce_kwargs(
        weight,
        ignore_index,
        reduction,
        label_smoothing,
        smoothing,
        z_loss,
        softcap,
        where,
        input.ndim,
    )
    loss = _losses.cross_entropy(_np(input), _np(target), **kw)
    if reduction == "none":
        return _fill(_rows_shape(input), input.dtype, loss)
    return _scalar_tensor(loss, input.dtype)


_cross_entropy_op = torch.library.custom_op(
    "logitkit::cross_entropy", _cross_entropy_impl, mutates_args=()
)


def _rows_shape(input: Tensor) -> list[int]:
    shape = list(input.shape)
    del shape[_class_axis(input.ndim)]
    return shape


@_cross_entropy_op.register_fake
def _cross_entropy_fake(
    input: Tensor,
    target: Tensor,
    weight: Tensor | None,
    ignore_index: int,
    reduction: str,
    label_smoothing: float,
    smoothing: str,
    z_loss: float,
    softcap: float | None,
    where: Tensor | None,
) -> Tensor:
    return input.new_empty(_rows_shape(input) if reduction == "none" else [])


def _cross_entropy_backward_impl(
    grad: Tensor,
    input: Tensor,
    target: Tensor,
    weight: Tensor | None,
    ignore_index: int,
    reduction: str,
    label_smoothing: float,
    smoothing: str,
    z_loss: float,
    softcap: float | None,
    where: Tensor | None,
    target_grad: bool,
) -> tuple[Tensor, Tensor]:
    """Gradients with respect to the logits and (when asked, for probability targets) the
    target, for the upstream gradient ``grad``."""
    kw = _ce_kwargs(
        weight,
        ignore_index,
        reduction,
        label_smoothing,
        smoothing,
        z_loss,
        softcap,
        where,
        input.ndim,
    )
    z, t = _np(input), _np(target)
    g = _np(grad).astype(np.float64)
    g_out: Any = g if reduction == "none" else float(g)
    grad_input = _empty(input.shape, input.dtype)
    # The fused kernel writes the gradient once, straight into the fresh tensor; the logits
    # are only read (recomputing their statistics costs less than keeping a logits-sized
    # gradient from the forward pass alive until backward).
    _losses.cross_entropy_with_grad(z, t, grad_output=g_out, grad_out=_np(grad_input), **kw)
    if not target_grad:
        return grad_input, input.new_empty([0])
    return grad_input, _fill(target.shape, target.dtype, _soft_target_grad(z, g, kw))


_cross_entropy_backward_op = torch.library.custom_op(
    "logitkit::cross_entropy_backward", _cross_entropy_backward_impl, mutates_args=()
)


def _soft_target_grad(z: np.ndarray, g: np.ndarray, kw: dict[str, Any]) -> np.ndarray:
    """d loss / d y for probability targets y: the loss is sum_c w_c y'_c (lse - z_c) per row
    with y' = (1 - a) y + a / C, so the derivative is -(1 - a) w_c log_softmax(z)_c, times the
    upstream gradient of the row."""
    ax, n_classes = kw["axis"], z.shape[kw["axis"]]
    zc = z.astype(np.float64)
    if kw["softcap"] is not None:
        zc = kw["softcap"] * np.tanh(zc / kw["softcap"])
    alpha = float(kw["label_smoothing"])
    if kw["smoothing"] == "megatron" and alpha > 0:
        alpha = alpha * n_classes / (n_classes - 1)
    coef = -(1.0 - alpha) * _reductions.log_softmax(zc, ax)
    if kw["weight"] is not None:
        shape = [1] * z.ndim
        shape[ax] = n_classes
        coef = coef * kw["weight"].astype(np.float64).reshape(shape)
    rows_shape = z.shape[:ax] + z.shape[ax + 1 :]
    counted = row_mask("cross_entropy", kw["where"], rows_shape)
    if kw["reduction"] == "none":
        scale = np.broadcast_to(g, rows_shape) * counted
    else:
        scale = float(g) * counted
        if kw["reduction"] == "mean":
            n = _losses.mean_denominator(None, counted, kw["weight"])
            scale = scale / n if n else np.full(rows_shape, np.nan)
    with np.errstate(invalid="ignore"):
        # rows that do not count get exactly 0, even where log_softmax is -inf
        return np.where(np.expand_dims(scale, ax) != 0, coef * np.expand_dims(scale, ax), 0.0)


@_cross_entropy_backward_op.register_fake
def _cross_entropy_backward_fake(
    grad: Tensor,
    input: Tensor,
    target: Tensor,
    weight: Tensor | None,
    ignore_index: int,
    reduction: str,
    label_smoothing: float,
    smoothing: str,
    z_loss: float,
    softcap: float | None,
    where: Tensor | None,
    target_grad: bool,
) -> tuple[Tensor, Tensor]:
    grad_target = target.new_empty(target.shape) if target_grad else input.new_empty([0])
    return input.new_empty(input.shape), grad_target


def _cross_entropy_setup(ctx: Any, inputs: tuple[Any, ...], output: Tensor) -> None:
    input, target, weight, *options, where = inputs
    ctx.save_for_backward(input, target, weight, where)
    ctx.options = options


def _cross_entropy_grad(ctx: Any, grad: Tensor) -> tuple[Any, ...]:
    input, target, weight, where = ctx.saved_tensors
    target_grad = bool(ctx.needs_input_grad[1])
    grad_input, grad_target = _run(
        torch.ops.logitkit.cross_entropy_backward,
        _cross_entropy_backward_impl,
        grad,
        input,
        target,
        weight,
        *ctx.options,
        where,
        target_grad,
    )
    return (grad_input, grad_target if target_grad else None) + (None,) * 8


_register_autograd(
    _cross_entropy_op, _cross_entropy_impl, _cross_entropy_grad, _cross_entropy_setup
)


class CrossEntropyStats(NamedTuple):
    r"""Per-row by-products of :func:`cross_entropy` (``return_stats=True``), as tensors.

    .. math:: \mathrm{lse} = \log \sum_c e^{z_c}, \quad \mathrm{argmax} = \arg\max_c z_c,
              \quad \mathrm{accuracy} = \frac{\#\{\text{correct}\}}{\#\{\text{counted}\}}

    ``lse``: logsumexp of each row's (capped) logits, in the input dtype; ``argmax``: index
    of each row's first largest logit (int64); ``correct``: ``argmax == target`` (for
    probability targets, the target's argmax), False for rows that do not count;
    ``accuracy``: the mean of ``correct`` over the rows that count (a 0-d float64 tensor, NaN
    when none do). None of them is differentiable.

    Examples
    --------
    >>> import torch
    >>> from logitkit import torch as lkt
    >>> z = torch.tensor([[2.0, 0.5, -1.0], [0.1, 0.2, 3.0]])
    >>> loss, stats = lkt.cross_entropy(z, torch.tensor([0, 1]), return_stats=True)
    >>> stats.argmax, stats.correct, float(stats.accuracy)
    (tensor([0, 2]), tensor([ True, False]), 0.5)
    """

    lse: Tensor
    argmax: Tensor
    correct: Tensor
    accuracy: Tensor


def _cross_entropy_stats_impl(
    input: Tensor,
    target: Tensor,
    ignore_index: int,
    softcap: float | None,
    where: Tensor | None,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    kw = _ce_kwargs(None, ignore_index, "sum", 0.0, "pytorch", 0.0, softcap, where, input.ndim)
    _, stats = _losses.cross_entropy(_np(input), _np(target), return_stats=True, **kw)
    rows = _rows_shape(input)
    return (
        _fill(rows, input.dtype, stats.lse),
        _fill(rows, torch.int64, stats.argmax),
        _fill(rows, torch.bool, stats.correct),
        torch.tensor(stats.accuracy, dtype=torch.float64),
    )


_cross_entropy_stats_op = torch.library.custom_op(
    "logitkit::cross_entropy_stats", _cross_entropy_stats_impl, mutates_args=()
)


@_cross_entropy_stats_op.register_fake
def _cross_entropy_stats_fake(
    input: Tensor,
    target: Tensor,
    ignore_index: int,
    softcap: float | None,
    where: Tensor | None,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    rows = _rows_shape(input)
    return (
        input.new_empty(rows),
        input.new_empty(rows, dtype=torch.int64),
        input.new_empty(rows, dtype=torch.bool),
        input.new_empty([], dtype=torch.float64),
    )


def cross_entropy(
    input: Tensor,
    target: Tensor,
    weight: Tensor | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
    *,
    smoothing: str = "pytorch",
    z_loss: float = 0.0,
    softcap: float | None = None,
    where: Tensor | None = None,
    return_stats: bool = False,
    size_average: bool | None = None,
    reduce: bool | None = None,
) -> Any:
    r"""Cross-entropy of logits, as :func:`torch.nn.functional.cross_entropy`, fused.

    With :math:`\ell = \operatorname{lse}(z)` per row, an index target ``t``, ``w`` =
    ``weight`` (or ones), ``a`` = ``label_smoothing`` and ``zeta`` = ``z_loss``:

    .. math::
        L = (1-a)\, w_t (\ell - z_t) + \frac{a}{C} \sum_c w_c (\ell - z_c) + \zeta\, \ell^2

    and for probability targets ``y``, :math:`L = \sum_c w_c y'_c (\ell - z_c) + \zeta \ell^2`
    with :math:`y' = (1-a) y + a/C`. The gradient with respect to the logits is
    ``softmax(z) - onehot(t)`` (scaled and weighted) for plain index targets.

    Parameters
    ----------
    input : Tensor
        Logits shaped ``(C,)``, ``(N, C)`` or ``(N, C, d1, ...)`` (classes along dim 1).
    target : Tensor
        Class indices (an integer tensor shaped like ``input`` without the class dim) or
        class probabilities (a floating tensor shaped like ``input``; differentiable).
    weight, ignore_index, reduction, label_smoothing
        As in PyTorch; ``size_average`` and ``reduce`` are PyTorch's deprecated spellings of
        ``reduction`` and are honoured the same way.
    smoothing : {"pytorch", "megatron"}
        "megatron" scales ``label_smoothing`` by ``C / (C - 1)``: the target keeps ``1 - a``.
    z_loss : float
        Adds ``z_loss * lse**2`` per counted row (PaLM).
    softcap : float, optional
        Uses ``softcap * tanh(z / softcap)`` as the logits (Gemma 2).
    where : Tensor of bool, optional
        Rows that count (broadcast to the rows); the others behave like ignored ones.
    return_stats : bool
        Return ``(loss, CrossEntropyStats(lse, argmax, correct, accuracy))``. The statistics
        come from ``torch.ops.logitkit.cross_entropy_stats``, a second read of the logits
        (the forward operator has one output, the loss, so that its autograd formula stays
        that of the loss alone).

    The forward pass reads the logits once and stores nothing logits-sized; the backward
    pass (``torch.ops.logitkit.cross_entropy_backward``) reads them once more and writes the
    gradient once, in one fused kernel.

    Examples
    --------
    >>> import torch
    >>> from logitkit import torch as lkt
    >>> z = torch.tensor([[2.0, 0.5, -1.0], [0.1, 0.2, 3.0]], requires_grad=True)
    >>> loss = lkt.cross_entropy(z, torch.tensor([0, 2]))
    >>> round(loss.item(), 6)
    0.175456
    >>> loss.backward()
    >>> torch.allclose(z.grad, (torch.softmax(z, 1) - torch.eye(3)[[0, 2]]) / 2)
    True
    """
    func = "cross_entropy"
    _check_tensor(func, "input", input)
    _check_tensor(func, "target", target, floating=False)
    reduction = _reduction(func, size_average, reduce, reduction)
    if input.ndim == 0:
        raise ValueError(f"logitkit.torch.{func}(): input must have a class dim, got a 0-d tensor")
    ax = _class_axis(input.ndim)
    if target.is_floating_point():
        _check_tensor(func, "target", target)
        if target.shape != input.shape:
            raise ValueError(
                f"logitkit.torch.{func}(): probability target must have the shape of input "
                f"{tuple(input.shape)}, got {tuple(target.shape)}"
            )
    elif target.dtype in (torch.bool, torch.complex64, torch.complex128):
        raise TypeError(
            f"logitkit.torch.{func}(): target must be integer class indices or floating "
            f"probabilities, got {target.dtype}"
        )
    elif list(target.shape) != _rows_shape(input):
        raise ValueError(
            f"logitkit.torch.{func}(): class-index target must have shape "
            f"{tuple(_rows_shape(input))} (input without dim {ax}), got {tuple(target.shape)}"
        )
    if weight is not None:
        _check_tensor(func, "weight", weight)
        if tuple(weight.shape) != (input.shape[ax],):
            raise ValueError(
                f"logitkit.torch.{func}(): weight must have shape ({input.shape[ax]},) (one "
                f"per class), got {tuple(weight.shape)}"
            )
        _check_no_grad(func, "weight", weight)
    if where is not None:
        _check_tensor(func, "where", where, floating=False)
        if where.dtype != torch.bool:
            raise TypeError(
                f"logitkit.torch.{func}(): where must be a bool tensor, got {where.dtype}"
            )
    if isinstance(ignore_index, bool) or not isinstance(ignore_index, int):
        raise TypeError(
            f"logitkit.torch.{func}(): ignore_index must be an int, got {ignore_index!r}"
        )
    if smoothing not in _SMOOTHING:
        raise ValueError(
            f"logitkit.torch.{func}(): smoothing must be one of {_SMOOTHING}, got {smoothing!r}"
        )
    if not 0.0 <= float(label_smoothing) <= 1.0:
        raise ValueError(
            f"logitkit.torch.{func}(): label_smoothing must be in [0, 1], got {label_smoothing}"
        )
    if softcap is not None and not float(softcap) > 0:
        raise ValueError(
            f"logitkit.torch.{func}(): softcap must be a positive number or None, got {softcap}"
        )
    cap = None if softcap is None else float(softcap)
    loss = _run(
        torch.ops.logitkit.cross_entropy,
        _cross_entropy_impl,
        input,
        target,
        weight,
        int(ignore_index),
        reduction,
        float(label_smoothing),
        str(smoothing),
        float(z_loss),
        cap,
        where,
    )
    if not return_stats:
        return loss
    stats = _run(
        torch.ops.logitkit.cross_entropy_stats,
        _cross_entropy_stats_impl,
        input.detach(),
        target.detach(),
        int(ignore_index),
        cap,
        where,
    )
    return loss, CrossEntropyStats(*stats)


# --------------------------------------------------------------------------------------------
# binary_cross_entropy_with_logits


def _bce_impl(
    input: Tensor,
    target: Tensor,
    weight: Tensor | None,
    pos_weight: Tensor | None,
    reduction: str,
    label_smoothing: float,
) -> Tensor:
    loss = _losses.binary_cross_entropy_with_logits(
        _np(input),
        _np(target),
        weight=None if weight is None else _np(weight),
        pos_weight=None if pos_weight is None else _np(pos_weight),
        label_smoothing=label_smoothing,
        reduction=reduction,
    )
    if reduction == "none":
        return _fill(input.shape, input.dtype, loss)
    return _scalar_tensor(loss, input.dtype)


_bce_op = torch.library.custom_op(
    "logitkit::binary_cross_entropy_with_logits", _bce_impl, mutates_args=()
)


@_bce_op.register_fake
def _bce_fake(
    input: Tensor,
    target: Tensor,
    weight: Tensor | None,
    pos_weight: Tensor | None,
    reduction: str,
    label_smoothing: float,
) -> Tensor:
    return input.new_empty(input.shape if reduction == "none" else [])


def _bce_backward_impl(
    grad: Tensor,
    input: Tensor,
    target: Tensor,
    weight: Tensor | None,
    pos_weight: Tensor | None,
    reduction: str,
    label_smoothing: float,
    target_grad: bool,
) -> tuple[Tensor, Tensor]:
    x, y = _np(input), _np(target)
    w = None if weight is None else _np(weight)
    pw = None if pos_weight is None else _np(pos_weight)
    g = _np(grad).astype(np.float64)
    _, gx = _losses.binary_cross_entropy_with_logits_with_grad(
        x,
        y,
        weight=w,
        pos_weight=pw,
        label_smoothing=label_smoothing,
        reduction=reduction,
        grad_output=g if reduction == "none" else float(g),
    )
    grad_input = _fill(input.shape, input.dtype, gx)
    if not target_grad:
        return grad_input, input.new_empty([0])
    # loss = w [pw y' softplus(-x) + (1 - y') softplus(x)] with y' = (1 - a) y + a / 2
    x64 = x.astype(np.float64)
    d = _np_softplus(-x64)
    if pw is not None:
        d = d * pw.astype(np.float64)
    d = (1.0 - label_smoothing) * (d - _np_softplus(x64))
    if w is not None:
        d = d * w.astype(np.float64)
    if reduction == "none":
        d = d * g
    else:
        d = d * (float(g) / x.size if reduction == "mean" and x.size else float(g))
    return grad_input, _fill(target.shape, target.dtype, np.broadcast_to(d, x.shape))


_bce_backward_op = torch.library.custom_op(
    "logitkit::binary_cross_entropy_with_logits_backward", _bce_backward_impl, mutates_args=()
)


@_bce_backward_op.register_fake
def _bce_backward_fake(
    grad: Tensor,
    input: Tensor,
    target: Tensor,
    weight: Tensor | None,
    pos_weight: Tensor | None,
    reduction: str,
    label_smoothing: float,
    target_grad: bool,
) -> tuple[Tensor, Tensor]:
    grad_target = target.new_empty(target.shape) if target_grad else input.new_empty([0])
    return input.new_empty(input.shape), grad_target


def _bce_setup(ctx: Any, inputs: tuple[Any, ...], output: Tensor) -> None:
    input, target, weight, pos_weight, reduction, label_smoothing = inputs
    ctx.save_for_backward(input, target, weight, pos_weight)
    ctx.options = (reduction, label_smoothing)


def _bce_grad(ctx: Any, grad: Tensor) -> tuple[Any, ...]:
    input, target, weight, pos_weight = ctx.saved_tensors
    target_grad = bool(ctx.needs_input_grad[1])
    grad_input, grad_target = _run(
        torch.ops.logitkit.binary_cross_entropy_with_logits_backward,
        _bce_backward_impl,
        grad,
        input,
        target,
        weight,
        pos_weight,
        *ctx.options,
        target_grad,
    )
    return grad_input, (grad_target if target_grad else None), None, None, None, None


_register_autograd(_bce_op, _bce_impl, _bce_grad, _bce_setup)


def binary_cross_entropy_with_logits(
    input: Tensor,
    target: Tensor,
    weight: Tensor | None = None,
    *,
    reduction: str = "mean",
    pos_weight: Tensor | None = None,
    label_smoothing: float = 0.0,
    size_average: bool | None = None,
    reduce: bool | None = None,
) -> Tensor:
    r"""Binary cross-entropy of ``sigmoid(input)``, as
    :func:`torch.nn.functional.binary_cross_entropy_with_logits`.

    Elementwise, with :math:`y' = (1-a) y + a/2`, ``w = weight`` and ``pw = pos_weight``
    (broadcast along the last dim, one per class):

    .. math:: \ell = w\,[\,pw\, y'\, \mathrm{softplus}(-x) + (1 - y')\, \mathrm{softplus}(x)\,]

    a sum of two non-negative terms, so it keeps full relative precision for any logit.
    Differentiable with respect to ``input`` and ``target``. Arguments after ``weight`` are
    keyword-only (PyTorch's third and fourth positional arguments are the deprecated
    ``size_average`` and ``reduce``, accepted here by keyword).

    Examples
    --------
    >>> import torch
    >>> from logitkit import torch as lkt
    >>> x = torch.tensor([800.0, -800.0], dtype=torch.float64)
    >>> lkt.binary_cross_entropy_with_logits(x, torch.ones(2, dtype=torch.float64),
    ...                                      reduction="none")
    tensor([  0., 800.], dtype=torch.float64)
    """
    func = "binary_cross_entropy_with_logits"
    _check_tensor(func, "input", input)
    _check_tensor(func, "target", target)
    reduction = _reduction(func, size_average, reduce, reduction)
    if target.shape != input.shape:
        raise ValueError(
            f"logitkit.torch.{func}(): target must have the shape of input "
            f"{tuple(input.shape)}, got {tuple(target.shape)}"
        )
    for arg, value in (("weight", weight), ("pos_weight", pos_weight)):
        if value is not None:
            _check_tensor(func, arg, value)
            _check_no_grad(func, arg, value)
            try:
                np.broadcast_shapes(tuple(value.shape), tuple(input.shape))
            except ValueError:
                raise ValueError(
                    f"logitkit.torch.{func}(): {arg} with shape {tuple(value.shape)} cannot be "
                    f"broadcast to input with shape {tuple(input.shape)}"
                ) from None
    if not 0.0 <= float(label_smoothing) <= 1.0:
        raise ValueError(
            f"logitkit.torch.{func}(): label_smoothing must be in [0, 1], got {label_smoothing}"
        )
    return _run(  # type: ignore[no-any-return]
        torch.ops.logitkit.binary_cross_entropy_with_logits,
        _bce_impl,
        input,
        target,
        weight,
        pos_weight,
        reduction,
        float(label_smoothing),
    )


# --------------------------------------------------------------------------------------------
# Modules


class CrossEntropyLoss(torch.nn.Module):
    """:func:`cross_entropy` as a module: the constructor arguments of
    :class:`torch.nn.CrossEntropyLoss`, plus logitkit's keyword-only options.

    ``loss_fn(input, target) == cross_entropy(input, target, weight, ignore_index,
    reduction, label_smoothing, smoothing=..., z_loss=..., softcap=...)``. ``weight`` is a
    buffer, so ``.to()``, ``.double()`` and ``state_dict()`` treat it as PyTorch's module
    does.

    Examples
    --------
    >>> import torch
    >>> from logitkit import torch as lkt
    >>> loss_fn = lkt.CrossEntropyLoss(label_smoothing=0.1)
    >>> z, t = torch.zeros(4, 10), torch.tensor([1, 2, 3, 4])
    >>> torch.allclose(loss_fn(z, t), torch.nn.CrossEntropyLoss(label_smoothing=0.1)(z, t))
    True
    """

    weight: Tensor | None

    def __init__(
        self,
        weight: Tensor | None = None,
        size_average: bool | None = None,
        ignore_index: int = -100,
        reduce: bool | None = None,
        reduction: str = "mean",
        label_smoothing: float = 0.0,
        *,
        smoothing: str = "pytorch",
        z_loss: float = 0.0,
        softcap: float | None = None,
    ) -> None:
        super().__init__()
        self.reduction = _reduction("CrossEntropyLoss", size_average, reduce, reduction)
        self.register_buffer("weight", weight)
        self.ignore_index = ignore_index
        self.label_smoothing = label_smoothing
        self.smoothing = smoothing
        self.z_loss = z_loss
        self.softcap = softcap

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        loss: Tensor = cross_entropy(
            input,
            target,
            self.weight,
            self.ignore_index,
            self.reduction,
            self.label_smoothing,
            smoothing=self.smoothing,
            z_loss=self.z_loss,
            softcap=self.softcap,
        )
        return loss

    def extra_repr(self) -> str:
        return (
            f"ignore_index={self.ignore_index}, reduction={self.reduction!r}, "
            f"label_smoothing={self.label_smoothing}, smoothing={self.smoothing!r}, "
            f"z_loss={self.z_loss}, softcap={self.softcap}"
        )


class BCEWithLogitsLoss(torch.nn.Module):
    """:func:`binary_cross_entropy_with_logits` as a module: the constructor arguments of
    :class:`torch.nn.BCEWithLogitsLoss`, plus ``label_smoothing`` (keyword-only).

    ``loss_fn(input, target) == binary_cross_entropy_with_logits(input, target, weight,
    reduction=..., pos_weight=..., label_smoothing=...)``. ``weight`` and ``pos_weight`` are
    buffers, as in PyTorch's module.

    Examples
    --------
    >>> import torch
    >>> from logitkit import torch as lkt
    >>> loss_fn = lkt.BCEWithLogitsLoss(pos_weight=torch.tensor([2.0, 1.0]))
    >>> x, y = torch.tensor([[0.5, -1.0]]), torch.tensor([[1.0, 0.0]])
    >>> ref = torch.nn.BCEWithLogitsLoss(pos_weight=torch.tensor([2.0, 1.0]))(x, y)
    >>> torch.allclose(loss_fn(x, y), ref)
    True
    """

    weight: Tensor | None
    pos_weight: Tensor | None

    def __init__(
        self,
        weight: Tensor | None = None,
        size_average: bool | None = None,
        reduce: bool | None = None,
        reduction: str = "mean",
        pos_weight: Tensor | None = None,
        *,
        label_smoothing: float = 0.0,
    ) -> None:
        super().__init__()
        self.reduction = _reduction("BCEWithLogitsLoss", size_average, reduce, reduction)
        self.register_buffer("weight", weight)
        self.register_buffer("pos_weight", pos_weight)
        self.label_smoothing = label_smoothing

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return binary_cross_entropy_with_logits(
            input,
            target,
            self.weight,
            reduction=self.reduction,
            pos_weight=self.pos_weight,
            label_smoothing=self.label_smoothing,
        )

    def extra_repr(self) -> str:
        return f"reduction={self.reduction!r}, label_smoothing={self.label_smoothing}"
