"""logitkit: fast, accurate CPU kernels for the softmax family.

``import logitkit as lk``; every function has a pure-NumPy twin in :mod:`logitkit.reference`.
"""

from __future__ import annotations

from . import _core
from ._backward import (
    hardmax,
    log_softmax_backward,
    logsumexp_backward,
    sigmoid_backward,
    softmax_backward,
)
from ._divergences import (
    entropy,
    jensen_shannon_from_logits,
    jensen_shannon_from_logits_with_grad,
    kl_div,
    kl_divergence_from_logits,
    kl_divergence_from_logits_with_grad,
)
from ._elementwise import (
    entr,
    expit,
    kl_div_elementwise,
    log_expit,
    log_sigmoid,
    logit,
    rel_entr,
    sigmoid,
    softplus,
)
from ._linear import linear_cross_entropy, linear_cross_entropy_with_grad
from ._losses import (
    CrossEntropyStats,
    binary_cross_entropy_with_logits,
    binary_cross_entropy_with_logits_with_grad,
    cross_entropy,
    cross_entropy_with_grad,
    nll_loss,
)
from ._mergeable import CrossEntropyPartial, EntropyPartial, LogSumExpPartial, merge_partials
from ._partial import partial_cross_entropy, partial_entropy, partial_logsumexp
from ._reductions import entropy_from_logits, log_softmax, logsumexp, softmax
from ._runtime import (
    active_isa,
    available_isas,
    runtime_info,
    set_buffer_cache_limit,
    show_runtime,
    use_isa,
)

__version__: str = _core.__version__

__all__ = [
    "__version__",
    "softmax",
    "log_softmax",
    "logsumexp",
    "sigmoid",
    "expit",
    "log_sigmoid",
    "log_expit",
    "softplus",
    "logit",
    "cross_entropy",
    "cross_entropy_with_grad",
    "CrossEntropyStats",
    "binary_cross_entropy_with_logits",
    "binary_cross_entropy_with_logits_with_grad",
    "entropy_from_logits",
    "entropy",
    "entr",
    "rel_entr",
    "kl_div_elementwise",
    "kl_div",
    "nll_loss",
    "linear_cross_entropy",
    "linear_cross_entropy_with_grad",
    "kl_divergence_from_logits",
    "kl_divergence_from_logits_with_grad",
    "jensen_shannon_from_logits",
    "jensen_shannon_from_logits_with_grad",
    "softmax_backward",
    "log_softmax_backward",
    "logsumexp_backward",
    "sigmoid_backward",
    "hardmax",
    "runtime_info",
    "show_runtime",
    "use_isa",
    "active_isa",
    "available_isas",
    "set_buffer_cache_limit",
    "LogSumExpPartial",
    "EntropyPartial",
    "CrossEntropyPartial",
    "partial_logsumexp",
    "partial_entropy",
    "partial_cross_entropy",
    "merge_partials",
]
