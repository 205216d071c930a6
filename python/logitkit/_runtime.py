"""Which kernel table runs: CPU detection results, ``LOGITKIT_ISA`` and ``use_isa``."""

from __future__ import annotations

import contextlib
import contextvars
import os
from collections.abc import Iterator
from typing import Any

from ._validation import check_index

try:
    from . import _core
except ImportError as exc:  # pragma: no cover - only in a broken install
    raise ImportError(
        "logitkit's native module (logitkit._core) could not be imported. Install logitkit "
        "with `pip install .` from a source checkout (a C++17 compiler and CMake are needed); "
        "importing it from the source tree without building does not work."
    ) from exc

__all__ = [
    "runtime_info",
    "show_runtime",
    "use_isa",
    "active_isa",
    "available_isas",
    "set_buffer_cache_limit",
]

ISA_NAMES: tuple[str, ...] = tuple(_core.isa_names())
_ISA_ENV = "LOGITKIT_ISA"

# A context variable rather than a process-wide switch: use_isa() in one thread (or task)
# does not change the kernels another thread is running.
_isa_override: contextvars.ContextVar[int | None] = contextvars.ContextVar(
    "logitkit_isa", default=None
)
# LOGITKIT_ISA is read at the first call that needs it and kept, as ATEN_CPU_CAPABILITY
# and OMP_NUM_THREADS are: reading os.environ on every call cost 2 us, a sixth of a call
# on a small array. A value it rejects is read (and rejected) again at each call.
_env_isa: int | None = None


def available_isas() -> list[str]:
    """ISAs that are both compiled into this build and supported by this CPU, slowest first.

    ``available_isas() = [name in compiled_isas if name in supported_isas]``, in the order of
    :func:`runtime_info`'s ``compiled_isas``; ``"scalar"``, which every CPU runs, is first.

    Returns
    -------
    list of str
        Names that :func:`use_isa` and ``LOGITKIT_ISA`` accept on this machine.

    Examples
    --------
    >>> import logitkit as lk
    >>> lk.available_isas()[0]
    'scalar'
    >>> lk.active_isa() in lk.available_isas()
    True
    """
    supported = set(_core.supported_isas())
    return [name for name in _core.compiled_isas() if name in supported]


def _isa_index(name: str, where: str) -> int:
    if not isinstance(name, str):
        raise TypeError(f"{where}: the instruction set must be a name (str), got {name!r}")
    if name.lower() not in ISA_NAMES:
        raise ValueError(
            f"{where}: unknown instruction set {name!r}; known: {', '.join(ISA_NAMES)}"
        )
    key = name.lower()
    if key not in _core.compiled_isas():
        raise ValueError(
            f"{where}: instruction set {key!r} is not compiled into this build "
            f"(compiled: {', '.join(_core.compiled_isas())})"
        )
    if key not in _core.supported_isas():
        raise ValueError(
            f"{where}: instruction set {key!r} is not supported by this CPU "
            f"(available: {', '.join(available_isas())})"
        )
    return ISA_NAMES.index(key)


def _default_isa() -> int:
    global _env_isa
    if _env_isa is None:
        env = os.environ.get(_ISA_ENV)
        _env_isa = _core.best_isa() if not env else _isa_index(env, f"{_ISA_ENV}={env}")
    return _env_isa


def current_isa_index() -> int:
    """The ISA the next native call in this context will use."""
    override = _isa_override.get()
    return _default_isa() if override is None else override


def active_isa() -> str:
    """Name of the kernel table the next call in this thread/context will use.

    ``active_isa() = use_isa's name if inside use_isa, else LOGITKIT_ISA if set, else the
    best of available_isas()``.

    Returns
    -------
    str
        One of :func:`available_isas`.

    Examples
    --------
    >>> import logitkit as lk
    >>> with lk.use_isa("scalar"):
    ...     lk.active_isa()
    'scalar'
    >>> lk.active_isa() in lk.available_isas()
    True
    """
    return ISA_NAMES[current_isa_index()]


@contextlib.contextmanager
def use_isa(name: str) -> Iterator[str]:
    """Run the enclosed calls with the kernels of one instruction set.

    Inside the block ``active_isa() == name``; every kernel table computes the same
    functions, to the accuracy the README states. The choice is local to the current thread
    (a :mod:`contextvars` variable) and undone when the block exits.

    Parameters
    ----------
    name : str
        One of ``"scalar"``, ``"sse2"``, ``"avx2"``, ``"avx512"``, ``"avx512bf16"``,
        ``"neon"``; asking for one this build or this CPU lacks raises ValueError.

    Yields
    ------
    str
        The name, in lower case.

    Examples
    --------
    >>> import logitkit as lk
    >>> with lk.use_isa("scalar"):
    ...     lk.softmax([1.0, 2.0])
    array([0.26894142, 0.73105858])
    """
    token = _isa_override.set(_isa_index(name, "use_isa()"))
    try:
        yield ISA_NAMES[_isa_override.get()]  # type: ignore[index]
    finally:
        _isa_override.reset(token)


def runtime_info() -> dict[str, Any]:
    """What this build carries and what runs here, as a dict.

    ``supported_isas = [isa in compiled_isas if this CPU runs isa]``, ``best_isa`` the one
    picked by default among them and ``active_isa`` the one in use (:func:`active_isa`).

    Returns
    -------
    dict
        ``version``, ``compiled_isas`` (kernel tables in this build), ``supported_isas``
        (those this CPU can run), ``best_isa`` (picked by default), ``active_isa`` (after
        ``LOGITKIT_ISA`` and ``use_isa``), ``openmp``, ``threads`` (the default thread
        count: ``LOGITKIT_NUM_THREADS``, else OpenMP's), ``hardware_threads``,
        ``buffer_cache_limit`` and ``buffer_cache_bytes`` (see
        :func:`set_buffer_cache_limit`), and ``tracemalloc_domain``, the :mod:`tracemalloc`
        domain in which the cache's blocks that results hold are reported.

    Examples
    --------
    >>> import logitkit as lk
    >>> info = lk.runtime_info()
    >>> list(info)  # doctest: +NORMALIZE_WHITESPACE
    ['version', 'compiled_isas', 'supported_isas', 'best_isa', 'active_isa', 'openmp',
     'threads', 'hardware_threads', 'buffer_cache_limit', 'buffer_cache_bytes',
     'tracemalloc_domain']
    >>> info["active_isa"] in info["supported_isas"], type(info["threads"])
    (True, <class 'int'>)
    """
    return {
        "version": _core.__version__,
        "compiled_isas": list(_core.compiled_isas()),
        "supported_isas": available_isas(),
        "best_isa": ISA_NAMES[_core.best_isa()],
        "active_isa": active_isa(),
        "openmp": bool(_core.openmp_enabled()),
        "threads": int(_core.default_threads()),
        "hardware_threads": int(_core.hardware_threads()),
        "buffer_cache_limit": int(_core.buffer_cache_limit()),
        "buffer_cache_bytes": int(_core.buffer_cache_bytes()),
        "tracemalloc_domain": int(_core.TRACEMALLOC_DOMAIN),
    }


def set_buffer_cache_limit(nbytes: int) -> int:
    """Set how many bytes of freed results logitkit keeps for reuse; returns the old limit.

    Results of 16 MiB or more are allocated from a cache of blocks that earlier results
    returned when they were freed: a new block costs the operating system a page fault and a
    page zeroing per page on its first write, which for a 64 MiB softmax takes about as long
    as the softmax. The cache holds at most this many bytes (256 MiB by default), freeing the
    oldest blocks first; 0 turns it off and frees what it holds. Such results do not own
    their memory in NumPy's sense (``flags.owndata`` is False, so ``ndarray.resize`` refuses
    them); otherwise they are ordinary arrays. While a result holds a block, :mod:`tracemalloc`
    counts it, as it counts NumPy's own allocations, in the domain
    ``runtime_info()["tracemalloc_domain"]``; the blocks waiting in the cache are not counted.

    ``buffer_cache_bytes <= buffer_cache_limit = nbytes`` from then on (the two keys of
    :func:`runtime_info`).

    Parameters
    ----------
    nbytes : int
        The new limit, in ``[0, 2**63)``.

    Returns
    -------
    int
        The limit it replaces.

    Examples
    --------
    >>> import logitkit as lk
    >>> old = lk.set_buffer_cache_limit(0)  # off: freed results go back to the system
    >>> lk.runtime_info()["buffer_cache_bytes"]
    0
    >>> lk.set_buffer_cache_limit(old)  # on again; returns the limit it replaces
    0
    """
    limit = check_index("set_buffer_cache_limit", "nbytes", nbytes)
    if not 0 <= limit < 2**63:
        raise ValueError(
            f"set_buffer_cache_limit(): nbytes must be an int in [0, 2**63), got {nbytes!r}"
        )
    return int(_core.set_buffer_cache_limit(limit))


def show_runtime() -> None:
    """Print :func:`runtime_info` as aligned ``key: value`` lines.

    One line per key, ``f"{key:<width} : {value}"`` with lists joined by commas; what
    ``logitkit info`` prints.

    Examples
    --------
    >>> import logitkit as lk
    >>> lk.show_runtime()  # doctest: +ELLIPSIS
    version            : ...
    compiled_isas      : scalar...
    ...
    buffer_cache_bytes : ...
    """
    info = runtime_info()
    width = max(len(k) for k in info)
    for key, value in info.items():
        if isinstance(value, list):
            value = ", ".join(value)
        print(f"{key:<{width}} : {value}")
