"""A drop-in for the softmax family of ``scipy.special`` (and ``scipy.stats.entropy``).

``from logitkit import scipy as special`` gives ``logsumexp``, ``softmax``, ``log_softmax``,
``expit``, ``log_expit``, ``logit``, ``entr``, ``rel_entr``, ``kl_div`` and ``softplus`` with
SciPy 1.17's signatures, defaults, result dtypes, scalar returns and exceptions, and
``entropy`` with the signature of ``scipy.stats.entropy``. Real inputs (bool, integers,
float16, float32, float64) run on logitkit's kernels; anything else (complex, long double,
object arrays, array subclasses, other array libraries, ufunc keyword arguments) is handed
to SciPy itself when it is installed, and raises a TypeError naming the input when it is not.

SciPy is never imported by ``import logitkit``; this module imports it on first need.
See ``docs/scipy.md`` for the cases compared and the few documented differences.
"""

from __future__ import annotations

import importlib
import math
import operator
from types import ModuleType
from typing import Any, NamedTuple

import numpy as np

from . import _elementwise, _reductions
from ._rows import rows_view

try:  # NumPy >= 2.0
    from numpy.lib.array_utils import normalize_axis_tuple
except ImportError:  # pragma: no cover - NumPy 1.x
    from numpy.core.numeric import normalize_axis_tuple  # type: ignore[attr-defined,no-redef,unused-ignore]

__all__ = [
    "logsumexp",
    "softmax",
    "log_softmax",
    "expit",
    "log_expit",
    "logit",
    "entr",
    "rel_entr",
    "kl_div",
    "softplus",
    "entropy",
]

_missing = object()
_scipy_modules: dict[str, ModuleType | None] = {}


def _scipy(submodule: str) -> ModuleType | None:
    """``scipy.<submodule>`` when SciPy is installed, else None (imported once, lazily)."""
    module = _scipy_modules.get(submodule, _missing)
    if module is _missing:
        try:
            module = importlib.import_module(f"scipy.{submodule}")
        except ImportError:
            module = None
        _scipy_modules[submodule] = module
    return module  # type: ignore[return-value]


def _delegate(func: str, submodule: str, why: str, args: tuple[Any, ...], kwargs: Any) -> Any:
    """Let SciPy compute what logitkit has no kernel for; without SciPy, say so."""
    module = _scipy(submodule)
    if module is None:
        raise TypeError(
            f"logitkit.scipy.{func}(): {why}: logitkit has no native kernel for it, and SciPy, "
            f"which would compute it, is not installed (pip install scipy)"
        )
    return getattr(module, func)(*args, **kwargs)


def _retry_with_scipy(
    func: str, submodule: str, error: Exception, args: tuple[Any, ...], kwargs: Any
) -> Any:
    """An argument the native path refused: when SciPy is installed, it raises its own
    exception (class and message) for the same call, which is what a drop-in must do."""
    module = _scipy(submodule)
    if module is None:
        raise error
    return getattr(module, func)(*args, **kwargs)


def _plain(value: Any) -> bool:
    """Inputs NumPy converts the way SciPy does: exact ndarrays, NumPy and Python scalars,
    lists and tuples. Subclasses (matrix, masked arrays) and objects with their own array
    protocol keep SciPy's handling, so they are delegated."""
    return type(value) is np.ndarray or isinstance(value, (np.generic, int, float, list, tuple))


def _native_dtype(dtype: np.dtype) -> bool:
    """Real dtypes the kernels compute (after promotion): bool, integers and float16/32/64."""
    return dtype.kind in "biu" or (dtype.kind == "f" and dtype.itemsize in (2, 4, 8))


def _describe(value: Any) -> str:
    dtype = getattr(value, "dtype", None)
    if dtype is not None:
        return f"input of type {type(value).__name__} with dtype {dtype}"
    return f"input of type {type(value).__name__}"


# ---------------------------------------------------------------------------------------
# Elementwise functions (ufuncs in SciPy)
# ---------------------------------------------------------------------------------------


_INT64_MIN, _INT64_MAX = int(np.iinfo(np.int64).min), int(np.iinfo(np.int64).max)


def _operand(value: Any) -> tuple[Any, np.dtype | type]:
    """The value to compute with and what type resolution sees: Python int and float stay
    "weak" (NEP 50), a Python bool is NumPy's bool, anything else is an array."""
    if isinstance(value, bool):
        return np.bool_(value), np.dtype(np.bool_)
    if type(value) is int and not _INT64_MIN <= value <= _INT64_MAX:
        # NumPy makes an object array of it; SciPy's ufuncs decide what that gives.
        return value, np.dtype(object)
    if type(value) in (int, float):
        return value, type(value)
    arr = np.asarray(value)
    return arr, arr.dtype


def _resolve_loop(loops: tuple[str, ...], kinds: list[np.dtype | type]) -> str | None:
    """The inner loop NumPy picks for a SciPy ufunc with these loop type codes.

    A loop matching every input dtype exactly wins; else the first loop, in SciPy's order,
    that every input casts to safely. A weak Python scalar counts as the dtype it promotes
    to together with the array inputs (NEP 50)."""
    strong = [k for k in kinds if isinstance(k, np.dtype)]
    dtypes = [k if isinstance(k, np.dtype) else np.result_type(*strong, k(1)) for k in kinds]
    for loop in loops:
        if all(d.char == c for d, c in zip(dtypes, loop, strict=True)):
            return loop
    for loop in loops:
        if all(np.can_cast(d, c, "safe") for d, c in zip(dtypes, loop, strict=True)):
            return loop
    return None


class _Native(NamedTuple):
    """A ufunc call the kernels compute: the inputs cast to the loop dtype, and that dtype."""

    inputs: list[np.ndarray]
    compute: np.dtype


def _ufunc_call(
    func: str,
    submodule: str,
    loops: tuple[str, ...],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> Any:
    """Resolve a ufunc call: a :class:`_Native` when the kernels compute it, else SciPy's
    result (or the TypeError when SciPy is absent)."""
    if not kwargs and all(type(a) is np.ndarray for a in args):
        # The common call, arrays whose dtype has its own loop: nothing to resolve.
        char = args[0].dtype.char
        native_order = all(a.dtype.isnative for a in args)
        same = all(a.dtype.char == char for a in args)
        if native_order and same and char in "fd" and char * len(args) in loops:
            if len(args) == 1 or args[0].shape == args[1].shape:
                return _Native(list(args), args[0].dtype)
    if kwargs and _scipy(submodule) is not None:
        return _delegate(func, submodule, "ufunc keyword arguments", args, kwargs)
    if not all(_plain(a) for a in args):
        bad = next(a for a in args if not _plain(a))
        return _delegate(func, submodule, _describe(bad), args, kwargs)
    operands = [_operand(a) for a in args]
    kinds = [k for _, k in operands]
    if not all(_native_dtype(k) for k in kinds if isinstance(k, np.dtype)):
        bad = next(v for v, k in operands if isinstance(k, np.dtype) and not _native_dtype(k))
        return _delegate(func, submodule, _describe(bad), args, kwargs)
    loop = _resolve_loop(loops, kinds)
    if loop is None or loop[0] == "g":
        return _delegate(func, submodule, f"inputs of types {kinds}", args, kwargs)
    compute = np.dtype(loop[0])
    shapes = [np.shape(v) for v, _ in operands]
    if len(shapes) == 2 and shapes[0] != shapes[1]:
        # Let NumPy raise its own broadcasting error (no data is touched when it fails).
        np.equal(*(np.broadcast_to(np.False_, shape) for shape in shapes))
    return _Native([np.asarray(v, dtype=compute) for v, _ in operands], compute)


def _finish(result: Any, kwargs: dict[str, Any], func: str) -> Any:
    """Without SciPy, ``out=`` is honoured as a ufunc would (cast same_kind, broadcast into
    it); other ufunc keywords need SciPy."""
    if not kwargs:
        return result
    unknown = sorted(set(kwargs) - {"out"})
    if unknown:
        raise TypeError(
            f"logitkit.scipy.{func}(): keyword arguments {unknown} need SciPy, which is not "
            "installed (only out= is supported without it)"
        )
    out = kwargs["out"]
    if isinstance(out, tuple):
        if len(out) != 1:
            raise ValueError(f"logitkit.scipy.{func}(): out must be one array, got {len(out)}")
        out = out[0]
    if out is None:
        return result
    if not isinstance(out, np.ndarray):
        raise TypeError(f"logitkit.scipy.{func}(): out must be an array, got {type(out).__name__}")
    np.copyto(out, result, casting="same_kind")
    return out


_UNARY_LOOPS = ("d", "f", "g")  # expit, log_expit, logit, in SciPy's loop order
_ENTR_LOOPS = ("f", "d")
_BINARY_LOOPS = ("ff", "dd")  # rel_entr, kl_div


def expit(x: Any, /, **kwargs: Any) -> Any:
    r"""Logistic sigmoid ``1 / (1 + exp(-x))``: ``scipy.special.expit``.

    .. math:: \operatorname{expit}(x) = \frac{1}{1 + e^{-x}}

    A ufunc in SciPy: float32 input gives float32, float16, bool and integers give float64,
    NumPy scalars come back for scalar input. Keyword arguments (``out=``, ``where=``, ...)
    go to SciPy. Below ``x = -708`` the result is subnormal; logitkit keeps it (SciPy
    returns 0 below about -709).

    Examples
    --------
    >>> from logitkit import scipy as special
    >>> special.expit([-1.0, 0.0, 1.0])
    array([0.26894142, 0.5       , 0.73105858])
    >>> special.expit(0)
    np.float64(0.5)
    """
    call = _ufunc_call("expit", "special", _UNARY_LOOPS, (x,), kwargs)
    if not isinstance(call, _Native):
        return call
    (arr,), _ = call
    return _finish(_elementwise.sigmoid(arr), kwargs, "expit")


def log_expit(x: Any, /, **kwargs: Any) -> Any:
    r"""``log(expit(x)) = -log1p(exp(-x))``: ``scipy.special.log_expit``.

    .. math:: \log\operatorname{expit}(x) = \min(x, 0) - \log(1 + e^{-|x|})

    Finite for every finite input; dtypes as :func:`expit`. Results that are subnormal
    (``x`` above 708) are ``-exp(-x)`` rounded once, as SciPy returns them.

    Examples
    --------
    >>> from logitkit import scipy as special
    >>> special.log_expit([-1000.0, 0.0])
    array([-1.00000000e+03, -6.93147181e-01])
    >>> float(special.log_expit(745.0))
    -5e-324
    """
    call = _ufunc_call("log_expit", "special", _UNARY_LOOPS, (x,), kwargs)
    if not isinstance(call, _Native):
        return call
    (arr,), compute = call
    res = _elementwise.log_sigmoid(arr)
    tiny = np.finfo(compute).tiny
    if np.size(res) and np.fmax.reduce(res, axis=None) > -tiny:  # fmax: NaN skipped
        # The kernel's tail loses the last subnormal bits; there log1p(exp(-x)) is exp(-x).
        with np.errstate(all="ignore"):
            res = np.where(res > -tiny, -np.exp(-arr), res)[()]
    return _finish(res, kwargs, "log_expit")


def logit(x: Any, /, **kwargs: Any) -> Any:
    r"""``log(p / (1 - p))``, the inverse of :func:`expit`: ``scipy.special.logit``.

    .. math:: \operatorname{logit}(p) = \log\frac{p}{1 - p}

    ``logit(0) = -inf``, ``logit(1) = inf``, NaN outside ``[0, 1]``; dtypes as :func:`expit`.

    Examples
    --------
    >>> from logitkit import scipy as special
    >>> special.logit([0.0, 0.25, 0.5, 1.0])
    array([       -inf, -1.09861229,  0.        ,         inf])
    """
    call = _ufunc_call("logit", "special", _UNARY_LOOPS, (x,), kwargs)
    if not isinstance(call, _Native):
        return call
    (arr,), _ = call
    return _finish(_elementwise.logit(arr), kwargs, "logit")


def entr(x: Any, /, **kwargs: Any) -> Any:
    r"""``-x log x`` elementwise: ``scipy.special.entr``.

    .. math:: \operatorname{entr}(x) = \begin{cases} -x \log x & x > 0 \\ 0 & x = 0 \\
              -\infty & x < 0 \end{cases}

    float16, bool and 8- and 16-bit integers give float32 here, as in SciPy.

    Examples
    --------
    >>> from logitkit import scipy as special
    >>> special.entr([0.0, 0.5, 1.0, -1.0])
    array([0.        , 0.34657359, 0.        ,       -inf])
    """
    call = _ufunc_call("entr", "special", _ENTR_LOOPS, (x,), kwargs)
    if not isinstance(call, _Native):
        return call
    (arr,), _ = call
    return _finish(_elementwise.entr(arr), kwargs, "entr")


def _kl_div_at_inf(res: Any, x: np.ndarray, y: np.ndarray) -> Any:
    """SciPy's kl_div(inf, y) is inf - inf = NaN for 0 < y < inf, where logitkit gives the
    limit, inf."""
    with np.errstate(all="ignore"):
        undefined = np.isposinf(x) & (y > 0) & (y < np.inf)
        if np.any(undefined):
            res = np.where(undefined, np.nan, res).astype(x.dtype)
    return np.asarray(res)[()]


def rel_entr(x: Any, y: Any, /, **kwargs: Any) -> Any:
    r"""``x log(x / y)`` elementwise: ``scipy.special.rel_entr``.

    .. math:: \operatorname{rel\_entr}(x, y) = \begin{cases} x \log(x / y) & x > 0, y > 0 \\
              0 & x = 0, y \ge 0 \\ \infty & \text{otherwise} \end{cases}

    ``x`` and ``y`` broadcast; where ``x / y`` over- or underflows the result is
    ``x (log x - log y)``, finite, as in SciPy.

    Examples
    --------
    >>> from logitkit import scipy as special
    >>> special.rel_entr([0.5, 0.0, 1.0], [0.25, 1.0, 0.0])
    array([0.34657359, 0.        ,        inf])
    """
    call = _ufunc_call("rel_entr", "special", _BINARY_LOOPS, (x, y), kwargs)
    if not isinstance(call, _Native):
        return call
    (a, b), _ = call
    return _finish(_elementwise.rel_entr(a, b), kwargs, "rel_entr")


def kl_div(x: Any, y: Any, /, **kwargs: Any) -> Any:
    r"""``x log(x / y) - x + y`` elementwise: ``scipy.special.kl_div`` (always ``>= 0``).

    .. math:: \operatorname{kl\_div}(x, y) = x \log\frac{x}{y} - x + y

    Near ``x = y``, where this formula cancels, logitkit evaluates it from a series and
    keeps full relative precision (SciPy's value there has only a few correct digits, or
    none: ``kl_div(1, 1 + 1e-9)`` is 0 in SciPy, ``5.0e-19`` here). Where ``x / y``
    over- or underflows, logitkit's value stays finite (SciPy's is ``inf`` or ``-inf``).

    Examples
    --------
    >>> from logitkit import scipy as special
    >>> special.kl_div([0.5, 0.0], [0.25, 2.0])
    array([0.09657359, 2.        ])
    """
    call = _ufunc_call("kl_div", "special", _BINARY_LOOPS, (x, y), kwargs)
    if not isinstance(call, _Native):
        return call
    (a, b), _ = call
    res = _kl_div_at_inf(_elementwise.kl_div_elementwise(a, b), a, b)
    return _finish(res, kwargs, "kl_div")


_LOGADDEXP_LOOPS = tuple(t[:2] for t in np.logaddexp.types if t[0] == t[1] and t[0] in "efdg")


def softplus(x: Any, **kwargs: Any) -> Any:
    r"""``log(1 + exp(x))``: ``scipy.special.softplus``, which is ``np.logaddexp(0, x)``.

    .. math:: \operatorname{softplus}(x) = \max(x, 0) + \log(1 + e^{-|x|})

    Dtypes follow ``np.logaddexp(0, x)``: float16 and 8-bit integers give float16.

    Examples
    --------
    >>> from logitkit import scipy as special
    >>> special.softplus(0)
    np.float64(0.6931471805599453)
    >>> special.softplus([-1, 0, 1])
    array([0.31326169, 0.69314718, 1.31326169])
    """
    func = "softplus"
    if kwargs and _scipy("special") is not None:
        return _delegate(func, "special", "ufunc keyword arguments", (x,), kwargs)
    if not _plain(x):
        return _delegate(func, "special", _describe(x), (x,), kwargs)
    value, kind = _operand(x)
    if isinstance(kind, np.dtype) and not _native_dtype(kind):
        return _delegate(func, "special", _describe(value), (x,), kwargs)
    loop = _resolve_loop(_LOGADDEXP_LOOPS, [int, kind])
    if loop is None or loop[1] == "g":
        return _delegate(func, "special", f"input of type {kind}", (x,), kwargs)
    compute = np.dtype(loop[1])
    arr = np.asarray(value, dtype=compute)
    res = _elementwise.softplus(arr)
    tiny = np.finfo(compute).tiny
    if np.size(res) and np.fmin.reduce(res, axis=None) < tiny:  # fmin: NaN skipped
        # A subnormal log1p(exp(x)) is exp(x), rounded once as NumPy rounds it.
        with np.errstate(all="ignore"):
            res = np.where(res < tiny, np.exp(arr), res)[()]
    return _finish(res, kwargs, func)


# ---------------------------------------------------------------------------------------
# softmax, log_softmax, logsumexp
# ---------------------------------------------------------------------------------------


def _axes(axis: Any, ndim: int) -> tuple[int, ...]:
    """Axes as NumPy reductions take them, with NumPy's exceptions for bad ones."""
    if axis is None:
        return tuple(range(ndim))
    # NumPy's reductions take an int or a tuple of ints; not a list, nor a bool.
    if isinstance(axis, (bool, np.bool_)):
        raise TypeError("an integer is required")
    if not isinstance(axis, tuple):
        axis = operator.index(axis)
    return tuple(normalize_axis_tuple(axis, ndim))


def _softmax_numpy(a: np.ndarray, axis: Any) -> Any:
    """SciPy's shifted formula evaluated in NumPy, for the inputs whose SciPy result depends
    on NumPy's own integer and float16 arithmetic (integer wrap-around in ``x - max``, exp
    evaluated in float16 for 8-bit integers), and for 0-d and empty inputs."""
    shift = np.max(a, axis=axis, keepdims=True)
    e = np.exp(a - shift)
    return e / np.sum(e, axis=axis, keepdims=True)


def _log_softmax_numpy(a: np.ndarray, axis: Any) -> Any:
    """The NumPy twin of log_softmax for the same inputs as :func:`_softmax_numpy`: a
    non-finite maximum is not subtracted."""
    shift = np.max(a, axis=axis, keepdims=True)
    if shift.ndim > 0:
        shift[~np.isfinite(shift)] = 0
    elif not np.isfinite(shift):
        shift = 0
    shifted = a - shift
    with np.errstate(divide="ignore"):
        log_sum = np.log(np.sum(np.exp(shifted), axis=axis, keepdims=True))
    return shifted - log_sum


def _softmax_common(func: str, x: Any, axis: Any, log: bool) -> Any:
    if not _plain(x):
        return _delegate(func, "special", _describe(x), (x,), {"axis": axis})
    a = np.asarray(x)
    if not _native_dtype(a.dtype):
        return _delegate(func, "special", _describe(a), (x,), {"axis": axis})
    if a.dtype.kind in "biu" or a.ndim == 0 or a.size == 0:
        return (_log_softmax_numpy if log else _softmax_numpy)(a, axis)
    if not a.dtype.isnative:
        a = a.astype(np.dtype(a.dtype.char))  # the canonical native dtype the kernels take
    axes = _axes(axis, a.ndim)
    res = (_reductions.log_softmax if log else _reductions.softmax)(a, axis=axes)
    top = np.max(a)
    if top == np.inf or np.isnan(top):
        # logitkit shares the mass among +inf logits (their limit); SciPy's x - max is
        # inf - inf there: NaN for the whole row in softmax, at the +inf entries in
        # log_softmax (the others are -inf in both).
        posinf = np.isposinf(a)
        if log:
            res[posinf] = np.nan
        else:
            rows = np.any(posinf, axis=axes, keepdims=True)
            res[np.broadcast_to(rows, res.shape)] = np.nan
    return res


def softmax(x: Any, axis: int | tuple[int, ...] | None = None) -> Any:
    r"""Softmax over the whole array (default) or along ``axis``: ``scipy.special.softmax``.

    .. math:: \sigma(x)_j = \frac{e^{x_j - m}}{\sum_k e^{x_k - m}}, \quad m = \max_k x_k

    Unlike :func:`logitkit.softmax`, ``axis`` defaults to None, the whole array, as in
    SciPy. float16/32/64 keep their dtype; integer input follows SciPy exactly (8-bit
    integers give float16, 16-bit float32, wider float64, computed as SciPy does); a row
    holding ``+inf`` gives NaN; 0-d input gives a NumPy scalar; an empty reduction raises
    ValueError.

    Examples
    --------
    >>> import numpy as np
    >>> from logitkit import scipy as special
    >>> x = np.array([[1.0, 0.5, 0.2, 3.0], [1.0, -1.0, 7.0, 3.0]])
    >>> round(float(special.softmax(x).sum()), 12)
    1.0
    >>> special.softmax(x, axis=1).sum(axis=1)
    array([1., 1.])
    """
    try:
        return _softmax_common("softmax", x, axis, log=False)
    except (TypeError, ValueError, IndexError) as error:
        return _retry_with_scipy("softmax", "special", error, (x,), {"axis": axis})


def log_softmax(x: Any, axis: int | tuple[int, ...] | None = None) -> Any:
    r"""Logarithm of the softmax, whole array by default: ``scipy.special.log_softmax``.

    .. math:: \log\sigma(x)_j = x_j - m - \log\sum_k e^{x_k - m}

    Dtypes, defaults and special values as :func:`softmax`: an entry equal to ``+inf``
    gives NaN, entries of a row holding ``+inf`` give ``-inf``. logitkit keeps the
    largest entry's tiny negative value that SciPy rounds to 0 (``log_softmax([0, -50])``).

    Examples
    --------
    >>> import numpy as np
    >>> from logitkit import scipy as special
    >>> special.log_softmax(np.array([1000.0, 1.0]))
    array([   0., -999.])
    """
    try:
        return _softmax_common("log_softmax", x, axis, log=True)
    except (TypeError, ValueError, IndexError) as error:
        return _retry_with_scipy("log_softmax", "special", error, (x,), {"axis": axis})


def _promoted(value: Any) -> Any:
    """What SciPy's promotion sees: iterables become arrays, scalars stay scalars (weak)."""
    return np.asarray(value) if np.iterable(value) else value


def _logsumexp_native(a: Any, axis: Any, b: Any, keepdims: bool, return_sign: bool) -> Any:
    args = (a,)
    kwargs = {"axis": axis, "b": b, "keepdims": keepdims, "return_sign": return_sign}
    for value in (a, b):
        if value is not None and not _plain(value):
            return _delegate("logsumexp", "special", _describe(value), args, kwargs)
    pa, pb = _promoted(a), _promoted(b)
    for value in (pa, pb):
        if isinstance(value, (np.ndarray, np.generic)) and not _native_dtype(value.dtype):
            return _delegate("logsumexp", "special", _describe(value), args, kwargs)
    # Integers and bools are promoted to the default float, as SciPy's force_floating does.
    dtype = np.result_type(*[v for v in (pa, pb) if v is not None], 1.0)
    if dtype not in (np.float16, np.float32, np.float64):
        return _delegate("logsumexp", "special", f"inputs promoting to {dtype}", args, kwargs)
    xa = np.asarray(pa, dtype=dtype)
    xb = None if pb is None else np.asarray(pb, dtype=dtype)
    if xb is not None and xb.shape != xa.shape:
        try:
            shape = np.broadcast_shapes(xa.shape, xb.shape)
        except ValueError:
            raise ValueError("Array shapes are incompatible for broadcasting.") from None
        xa, xb = np.broadcast_to(xa, shape), np.broadcast_to(xb, shape)
    xa = np.atleast_1d(xa)
    xb = None if xb is None else np.atleast_1d(xb)
    if xa.size == 0:
        # SciPy: -inf, with sign(-inf) = -1 as the sign; the reduced axes are found by
        # indexing the shape with `axis` itself, as SciPy does (and fails where it fails).
        reduced = tuple(range(xa.ndim)) if axis is None else axis
        shape_array = np.asarray(xa.shape)
        shape_array[reduced] = 1
        value = np.full(tuple(shape_array), -np.inf, dtype=dtype)
        if not keepdims:
            value = np.squeeze(value, axis=reduced)
        sign = np.sign(value)
        value, sign = value[()], sign[()]
        return (value, sign) if return_sign else value
    axes = _axes(axis, xa.ndim)
    result = _reductions.logsumexp(xa, axis=axes, b=xb, keepdims=keepdims, return_sign=return_sign)
    value, sign = result if return_sign else (result, None)
    if np.all(np.isfinite(value)):
        return result
    # Where its result is not finite, SciPy returns log(sum(b * exp(a))) evaluated
    # directly; that differs from the weight-0 rule when a zero weight meets an infinite
    # entry (0 * inf is NaN), so the non-finite results are recomputed the same way.
    with np.errstate(all="ignore"):
        terms = np.exp(xa) if xb is None else xb * np.exp(xa)
        total = np.sum(terms, axis=axes, keepdims=keepdims)
        direct_sign = np.sign(total) if return_sign else None
        direct = np.log(np.abs(total) if return_sign else total)
    finite = np.isfinite(value)
    value = np.asarray(np.where(finite, value, direct))[()]
    if not return_sign:
        return value
    return value, np.asarray(np.where(finite, sign, direct_sign))[()]


def logsumexp(
    a: Any,
    axis: int | tuple[int, ...] | None = None,
    b: Any = None,
    keepdims: bool = False,
    return_sign: bool = False,
) -> Any:
    r"""``log(sum(b * exp(a)))`` without overflow: ``scipy.special.logsumexp``.

    .. math:: \operatorname{lse}(a) = m + \log\sum_k b_k e^{a_k - m}, \quad m = \max_k a_k

    Reduces the whole array by default (``axis=None``). ``a`` and ``b`` are promoted
    together (integers and bools to float64, float16 and float32 kept) and broadcast; a
    weight ``b = 0`` removes its entry even where ``a`` is infinite or NaN; a negative sum
    gives NaN unless ``return_sign``, which returns ``(log|sum|, sign)``. An empty
    reduction gives ``-inf`` with sign -1. The result is a NumPy scalar when 0-d.

    Examples
    --------
    >>> import numpy as np
    >>> from logitkit import scipy as special
    >>> float(special.logsumexp(np.arange(10)))
    9.45862974442671
    >>> round(float(special.logsumexp(np.arange(10), b=np.arange(10, 0, -1))), 12)
    9.917017853303
    >>> special.logsumexp([1, 2], b=[1, -1], return_sign=True)
    (np.float64(1.5413248546129181), np.float64(-1.0))
    """
    try:
        return _logsumexp_native(a, axis, b, keepdims, return_sign)
    except (TypeError, ValueError, IndexError) as error:
        kwargs = {"axis": axis, "b": b, "keepdims": keepdims, "return_sign": return_sign}
        return _retry_with_scipy("logsumexp", "special", error, (a,), kwargs)


# ---------------------------------------------------------------------------------------
# entropy (scipy.stats)
# ---------------------------------------------------------------------------------------

_NAN_POLICIES = ("propagate", "omit", "raise")


def _entropy_native(pk: Any, qk: Any, base: Any, axis: Any, nan_policy: Any, keepdims: bool) -> Any:
    args = (pk, qk, base, axis)
    kwargs = {"nan_policy": nan_policy, "keepdims": keepdims}
    if nan_policy == "omit":
        return _delegate("entropy", "stats", "nan_policy='omit'", args, kwargs)
    for value in (pk, qk):
        if value is not None and not _plain(value):
            return _delegate("entropy", "stats", _describe(value), args, kwargs)
    p = np.asarray(pk)
    q = None if qk is None else np.asarray(qk)
    for arr in (p, q):
        if arr is not None and not _native_dtype(arr.dtype):
            return _delegate("entropy", "stats", _describe(arr), args, kwargs)
    ndim = max(p.ndim, 0 if q is None else q.ndim, 1)
    if axis is None:
        # SciPy flattens each input on its own before pairing them.
        p = p.reshape(-1)
        q = None if q is None else q.reshape(-1)
    if q is not None and q.shape != p.shape:
        try:
            shape = np.broadcast_shapes(p.shape, q.shape)
        except ValueError:
            raise ValueError("Array shapes are incompatible for broadcasting.") from None
        p, q = np.broadcast_to(p, shape), np.broadcast_to(q, shape)
    if q is not None:
        dtype = np.result_type(p, q)
        p, q = p.astype(dtype, copy=False), q.astype(dtype, copy=False)
    p = np.atleast_1d(p)
    q = None if q is None else np.atleast_1d(q)
    if nan_policy == "raise" and any(
        a is not None and a.dtype.kind == "f" and bool(np.isnan(a).any()) for a in (p, q)
    ):
        raise ValueError("The input contains nan values")
    if nan_policy not in _NAN_POLICIES and p.size:
        raise ValueError(f"nan_policy must be one of {set(_NAN_POLICIES)}.")
    # The reduced axes become one last axis, so the sums below see one axis, as SciPy's.
    if axis is None:
        axes: tuple[int, ...] = (0,)
    elif isinstance(axis, tuple):
        axes = tuple(normalize_axis_tuple(axis, p.ndim))
    else:
        axes = tuple(normalize_axis_tuple(operator.index(axis), p.ndim))
    kept = [d for d in range(p.ndim) if d not in axes]
    kept_shape = tuple(p.shape[d] for d in kept)
    if p.size == 0 and math.prod(kept_shape) == 0:
        # SciPy returns an empty result for an empty output before looking at `base`.
        empty = np.empty(kept_shape, dtype=np.result_type(p, 1.0))
        if keepdims:
            return np.reshape(empty, (1,) * ndim) if axis is None else np.expand_dims(empty, axes)
        return empty
    if nan_policy not in _NAN_POLICIES:
        raise ValueError(f"nan_policy must be one of {set(_NAN_POLICIES)}.")
    if p.ndim == 1 and any(
        a is not None and a.dtype.kind == "f" and bool(np.isnan(a).any()) for a in (p, q)
    ):
        # One-dimensional input holding NaN: SciPy answers NaN (in the inputs' floating
        # dtype) without evaluating the entropy, so before `base` is checked.
        nan = np.full((1,) * ndim if keepdims else (), np.nan, dtype=np.result_type(p, 1.0))
        return nan[()] if nan.ndim == 0 else nan
    if base is not None and base <= 0:
        raise ValueError("`base` must be a positive number or `None`.")

    p = rows_view(p, axes)
    q = None if q is None else rows_view(q, axes)
    with np.errstate(invalid="ignore"):
        if q is not None:
            q = q / np.sum(q, axis=-1, keepdims=True)
        p = p / np.sum(p, axis=-1, keepdims=True)
    terms = entr(p) if q is None else rel_entr(p, q)
    total = np.sum(terms, axis=-1)
    if base is not None:
        total = total / math.log(base)
    if keepdims:
        total = np.reshape(total, (1,) * ndim) if axis is None else np.expand_dims(total, axes)
    return total[()] if np.ndim(total) == 0 else total


def entropy(
    pk: Any,
    qk: Any = None,
    base: float | None = None,
    axis: int | tuple[int, ...] | None = 0,
    *,
    nan_policy: str = "propagate",
    keepdims: bool = False,
) -> Any:
    r"""Shannon entropy, or relative entropy: ``scipy.stats.entropy``.

    .. math:: H(p) = -\sum_k p_k \log p_k, \qquad D(p\,\|\,q) = \sum_k p_k \log\frac{p_k}{q_k}

    ``pk`` (and ``qk``) are normalised to sum to 1 along ``axis`` (default 0, as in
    SciPy); ``base`` 2 gives bits, 10 hartleys, None nats. ``nan_policy="raise"`` refuses
    NaN; ``"omit"`` is computed by SciPy. float16 input gives float32, integers float64.

    Examples
    --------
    >>> from logitkit import scipy as special
    >>> float(special.entropy([1 / 2, 1 / 2], base=2))
    1.0
    >>> float(special.entropy([9 / 10, 1 / 10], base=2))
    0.46899559358928117
    >>> round(float(special.entropy([1 / 2, 1 / 2], qk=[9 / 10, 1 / 10], base=2)), 14)
    0.73696559416621
    """
    try:
        return _entropy_native(pk, qk, base, axis, nan_policy, keepdims)
    except (TypeError, ValueError, IndexError) as error:
        kwargs = {"nan_policy": nan_policy, "keepdims": keepdims}
        return _retry_with_scipy("entropy", "stats", error, (pk, qk, base, axis), kwargs)
