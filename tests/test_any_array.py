"""Any array in, NumPy out: every public function takes what ``np.asarray`` takes and objects
with ``__dlpack__`` (PyTorch CPU tensors, JAX CPU arrays), reads them without a copy, and
returns NumPy arrays whose values are those of the same call on NumPy arrays."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import logitkit as lk
from logitkit._validation import as_input_array


class DLPackOnly:
    """An array that can only be read through DLPack: no ``__array__``, no buffer protocol,
    so ``np.asarray`` would make a 0-d object array of it."""

    def __init__(self, a: np.ndarray) -> None:
        self._a = a

    def __dlpack__(self, **kwargs: Any) -> Any:
        return self._a.__dlpack__(**kwargs)

    def __dlpack_device__(self) -> tuple[int, int]:
        return self._a.__dlpack_device__()  # type: ignore[no-any-return]


_rng = np.random.default_rng(7)
X = _rng.standard_normal((3, 5)).astype(np.float32)
Y = _rng.standard_normal((3, 5)).astype(np.float32)
P = lk.softmax(_rng.standard_normal((3, 5))).astype(np.float32)
Q = lk.softmax(_rng.standard_normal((3, 5))).astype(np.float32)
T = np.array([0, 4, 2])
W = np.array([1.0, 2.0, 0.5, 1.0, 3.0], dtype=np.float32)
MASK = np.array([[True, True, False, True, True]] * 3)
ROWS = np.array([True, False, True])
B01 = (_rng.random((3, 5)) > 0.5).astype(np.float32)
H = _rng.standard_normal((3, 4)).astype(np.float32)
HEAD = _rng.standard_normal((5, 4)).astype(np.float32)
G = _rng.standard_normal((3,)).astype(np.float32)

# Each public function with array arguments, called with every array argument it takes.
CALLS: dict[str, tuple[tuple[Any, ...], dict[str, Any]]] = {
    "softmax": ((X,), {"where": MASK}),
    "log_softmax": ((X,), {"where": MASK}),
    "logsumexp": ((X,), {"b": W, "where": MASK}),
    "sigmoid": ((X,), {}),
    "expit": ((X,), {}),
    "log_sigmoid": ((X,), {}),
    "log_expit": ((X,), {}),
    "softplus": ((X,), {}),
    "logit": ((P,), {}),
    "cross_entropy": ((X, T), {"weight": W, "where": ROWS}),
    "cross_entropy_with_grad": ((X, T), {"weight": W, "reduction": "none", "grad_output": G}),
    "binary_cross_entropy_with_logits": ((X, B01), {"weight": W, "pos_weight": W}),
    "binary_cross_entropy_with_logits_with_grad": ((X, B01), {"weight": W, "pos_weight": W}),
    "entropy_from_logits": ((X,), {"where": MASK}),
    "entropy": ((P, Q), {"axis": 1}),
    "entr": ((P,), {}),
    "rel_entr": ((P, Q), {}),
    "kl_div_elementwise": ((P, Q), {}),
    "kl_div": ((np.log(P), Q), {}),
    "nll_loss": ((np.log(P), T), {"weight": W}),
    "linear_cross_entropy": ((H, HEAD, T), {"bias": W, "class_weight": W}),
    "linear_cross_entropy_with_grad": ((H, HEAD, T), {"bias": W, "reduction": "sum"}),
    "kl_divergence_from_logits": ((X, Y), {"where": ROWS}),
    "kl_divergence_from_logits_with_grad": ((X, Y), {"grad_output": G}),
    "jensen_shannon_from_logits": ((X, Y), {"where": ROWS}),
    "jensen_shannon_from_logits_with_grad": ((X, Y), {"grad_output": G}),
    "softmax_backward": ((Y, P), {}),
    "log_softmax_backward": ((Y, np.log(P)), {}),
    "logsumexp_backward": ((G, X, lk.logsumexp(X)), {}),
    "sigmoid_backward": ((Y, P), {}),
    "hardmax": ((X,), {}),
    "partial_logsumexp": ((X,), {}),
    "partial_entropy": ((X,), {}),
    "partial_cross_entropy": ((X, T), {"weight": W}),
}


def _takes_arrays(fn: Callable[..., Any]) -> bool:
    params = inspect.signature(fn).parameters.values()
    return any("ArrayLike" in str(p.annotation) for p in params)


def test_every_function_with_array_arguments_is_covered():
    public = {
        name
        for name in lk.__all__
        if inspect.isfunction(getattr(lk, name)) and _takes_arrays(getattr(lk, name))
    }
    assert public - set(CALLS) == set()


def _convert(value: Any, to: Callable[[np.ndarray], Any]) -> Any:
    return to(value) if isinstance(value, np.ndarray) else value


def _flatten(result: Any) -> list[Any]:
    """The arrays and scalars of a result: tuples, stats and partials taken apart."""
    if isinstance(result, tuple):
        return [leaf for item in result for leaf in _flatten(item)]
    if hasattr(result, "__dataclass_fields__"):
        return [leaf for f in result.__dataclass_fields__ for leaf in _flatten(getattr(result, f))]
    if hasattr(result, "_fields"):
        return [leaf for f in result._fields for leaf in _flatten(getattr(result, f))]
    return [result]


def _assert_same(got: Any, want: Any) -> None:
    got_leaves, want_leaves = _flatten(got), _flatten(want)
    assert len(got_leaves) == len(want_leaves)
    for g, w in zip(got_leaves, want_leaves, strict=True):
        if w is None:
            assert g is None
            continue
        if isinstance(w, np.ndarray | np.generic):
            # NumPy out, never the caller's array type
            assert isinstance(g, np.ndarray | np.generic), type(g)
            assert g.dtype == w.dtype
            np.testing.assert_array_equal(g, w)
        else:
            assert g == w


def _converters() -> list[Any]:
    out: list[Any] = [pytest.param(DLPackOnly, id="dlpack-only")]
    try:
        import torch
    except ImportError:
        out.append(pytest.param(None, id="torch", marks=pytest.mark.skip("torch not installed")))
    else:
        out.append(pytest.param(torch.from_numpy, id="torch"))
    try:
        import jax.numpy as jnp
    except ImportError:
        out.append(pytest.param(None, id="jax", marks=pytest.mark.skip("jax not installed")))
    else:
        out.append(pytest.param(jnp.asarray, id="jax"))
    return out


@pytest.mark.parametrize("to", _converters())
@pytest.mark.parametrize("name", sorted(CALLS))
def test_same_result_as_numpy(name, to):
    fn = getattr(lk, name)
    args, kwargs = CALLS[name]
    want = fn(*args, **kwargs)
    got = fn(*(_convert(a, to) for a in args), **{k: _convert(v, to) for k, v in kwargs.items()})
    _assert_same(got, want)


def test_torch_tensor_is_read_in_place():
    torch = pytest.importorskip("torch")
    t = torch.arange(12, dtype=torch.float32).reshape(3, 4).t()  # strided, no copy either
    arr = as_input_array("softmax", "x", t)
    assert np.shares_memory(arr, t.numpy())
    assert arr.strides == tuple(s * 4 for s in t.stride())


def test_torch_bfloat16_tensor():
    torch = pytest.importorskip("torch")
    ml_dtypes = pytest.importorskip("ml_dtypes")
    t = torch.linspace(-3, 3, 20).reshape(4, 5).bfloat16()
    arr = as_input_array("softmax", "x", t)
    assert arr.dtype == np.dtype(ml_dtypes.bfloat16)
    assert np.shares_memory(arr.view(np.int16), t.view(torch.int16).numpy())
    want = lk.softmax(t.float().numpy().astype(ml_dtypes.bfloat16))
    got = lk.softmax(t)
    assert got.dtype == want.dtype
    np.testing.assert_array_equal(got, want)


def test_jax_array_is_read_in_place():
    jnp = pytest.importorskip("jax.numpy")
    j = jnp.arange(12.0, dtype=jnp.float32).reshape(3, 4)
    arr = as_input_array("softmax", "x", j)
    assert arr.__array_interface__["data"][0] == j.unsafe_buffer_pointer()


def test_tensor_that_requires_grad_is_refused_with_a_clear_message():
    torch = pytest.importorskip("torch")
    t = torch.zeros(2, 3, requires_grad=True)
    with pytest.raises(TypeError, match=r"^softmax\(\): x \(Tensor\) cannot be shared with NumPy"):
        lk.softmax(t)
    assert t.grad is None


def test_dlpack_failure_names_function_and_argument():
    class Broken:
        def __dlpack__(self, **kwargs: Any) -> Any:
            raise RuntimeError("no capsule today")

        def __dlpack_device__(self) -> tuple[int, int]:
            return (1, 0)

    with pytest.raises(TypeError, match=r"^cross_entropy\(\): target \(Broken\) cannot be read"):
        lk.cross_entropy(X, Broken())
