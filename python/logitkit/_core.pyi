# Type stubs for the native module. Its functions expect arrays already prepared by the
# Python layer: float32/float64 or float16/bfloat16 (converted inside the kernels), aligned,
# the reduction axis last.
import numpy as np
from numpy.typing import NDArray

__version__: str
long_row_bytes: int
chunk_bytes: int
OP_SIGMOID: int
OP_LOG_SIGMOID: int
OP_SOFTPLUS: int
OP_LOGIT: int
OP_EXP: int
OP_LOG: int
OP_ENTR: int
OP_REL_ENTR: int
OP_KL_DIV_ELEMENTWISE: int
OP_KL_DIV_TORCH: int
OP_KL_DIV_TORCH_LOG_TARGET: int

def isa_names() -> list[str]: ...
def compiled_isas() -> list[str]: ...
def supported_isas() -> list[str]: ...
def best_isa() -> int: ...
def openmp_enabled() -> bool: ...
def hardware_threads() -> int: ...
def default_threads() -> int: ...
def stream_min_bytes() -> int: ...
def set_stream_min_bytes(bytes: int) -> None: ...
def pooled_bytes(bytes: int) -> NDArray[np.uint8]: ...
def set_buffer_cache_limit(bytes: int) -> int: ...
def buffer_cache_limit() -> int: ...
def buffer_cache_bytes() -> int: ...

TRACEMALLOC_DOMAIN: int

def bandwidth_read(x: NDArray[np.float32], isa: int, threads: int) -> float: ...
def bandwidth_copy(
    x: NDArray[np.float32], out: NDArray[np.float32], nontemporal: bool, isa: int, threads: int
) -> None: ...
def softmax(
    x: NDArray[np.floating],
    out: NDArray[np.floating],
    log: bool,
    isa: int,
    threads: int,
    mask: NDArray[np.floating] | None = None,
) -> None: ...
def logsumexp(
    x: NDArray[np.floating],
    b: NDArray[np.floating] | None,
    out: NDArray[np.floating],
    sign: NDArray[np.floating] | None,
    isa: int,
    threads: int,
) -> None: ...
def astype(src: NDArray[np.generic], dst: NDArray[np.generic], isa: int, threads: int) -> None: ...
def unary(
    op: int, x: NDArray[np.floating], out: NDArray[np.floating], isa: int, threads: int
) -> None: ...
def cross_entropy(
    logits: NDArray[np.generic],
    target: NDArray[np.int64] | None,
    soft: NDArray[np.floating] | None,
    counted: NDArray[np.uint8],
    grad_scale: NDArray[np.float64] | None,
    weight: NDArray[np.floating] | None,
    weight_sum: float,
    smoothing: float,
    z_loss: float,
    softcap: float,
    grad: NDArray[np.generic] | None,
    loss: NDArray[np.float64],
    lse: NDArray[np.float64],
    argmax: NDArray[np.int64],
    want_argmax: bool,
    isa: int,
    threads: int,
) -> None: ...
def entropy(
    x: NDArray[np.floating],
    mask: NDArray[np.floating] | None,
    out: NDArray[np.floating],
    isa: int,
    threads: int,
) -> None: ...
def softmax_backward(
    grad: NDArray[np.floating],
    y: NDArray[np.floating],
    out: NDArray[np.floating],
    log: bool,
    isa: int,
    threads: int,
) -> None: ...
def hardmax(x: NDArray[np.floating], out: NDArray[np.floating], isa: int, threads: int) -> None: ...
def binary_cross_entropy(
    logits: NDArray[np.floating],
    target: NDArray[np.floating],
    weight: NDArray[np.floating] | None,
    pos_weight: NDArray[np.floating] | None,
    smoothing: float,
    loss: NDArray[np.floating] | None,
    grad: NDArray[np.floating] | None,
    grad_scale: NDArray[np.floating] | None,
    scale: float,
    isa: int,
    threads: int,
) -> float: ...
def divergence(
    p_logits: NDArray[np.floating],
    q_logits: NDArray[np.floating],
    beta: float,
    value: NDArray[np.float64],
    grad_p: NDArray[np.floating] | None,
    grad_q: NDArray[np.floating] | None,
    scale: NDArray[np.float64] | None,
    isa: int,
    threads: int,
) -> None: ...
def eval_rows(
    logits: NDArray[np.generic],
    target: NDArray[np.int64],
    lse: NDArray[np.float64],
    max: NDArray[np.float64],
    loss: NDArray[np.float64],
    entropy: NDArray[np.float64],
    brier: NDArray[np.float64],
    argmax: NDArray[np.int64],
    rank: NDArray[np.int64],
    finite: NDArray[np.bool_],
    isa: int,
    threads: int,
) -> None: ...
def binary(
    op: int,
    a: NDArray[np.floating],
    b: NDArray[np.floating],
    out: NDArray[np.floating],
    isa: int,
    threads: int,
) -> None: ...
