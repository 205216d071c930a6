"""Pure-NumPy twins of the partial-statistics functions (:func:`logitkit.partial_logsumexp`,
:func:`logitkit.partial_entropy`, :func:`logitkit.partial_cross_entropy`).

They are defined in ``logitkit.reference._partial``, beside the twins of the other API
modules; this module keeps the name they are imported by.
"""

from __future__ import annotations

from .reference._partial import (
    exact_sum,
    merge_partials,
    partial_cross_entropy,
    partial_entropy,
    partial_logsumexp,
)

__all__ = [
    "partial_logsumexp",
    "partial_entropy",
    "partial_cross_entropy",
    "merge_partials",
    "exact_sum",
]
