"""Pure-NumPy reference implementation of the logitkit functions.

This package is the readable numerical specification of logitkit and the oracle
the native kernels are tested against.  Every public function of the package
has a twin here with the same signature (those of the partial statistics in
:mod:`logitkit.reference_partial`); ``threads`` is accepted and ignored.
Its modules mirror the API's (``_reductions``, ``_elementwise``, ``_losses``,
``_divergences``, ``_backward``, ``_linear``, ``_partial``); what several of
them use (dtypes, axes, ``out=``, rounding, option checks) is in ``_common``.
The package depends on NumPy only and never imports the compiled extension;
``_partial`` also uses the partial-statistics classes of ``logitkit._mergeable``
(NumPy only), the same ones the API returns.  It does not share the API's
argument checks (``logitkit._validation``): an oracle built on the code it
judges would agree with that code's mistakes, so it states the rules below on
its own.

Accuracy
--------
The input is converted to float64, every intermediate is computed in float64,
and the result is rounded once to the result dtype.  The float32 results are
therefore correctly rounded except in rare near-halfway cases, and the float64
results are accurate to a few units in the last place.

Dtypes
------
===============================  =====================================
input dtype                      result dtype
===============================  =====================================
float16, float32, float64        the same dtype (byte order: native)
bool, signed or unsigned integer float64
``bfloat16`` (ml_dtypes)         bfloat16
complex, object, str, bytes,     TypeError naming the function, the
datetime, timedelta, longdouble  argument and the dtype
(when wider than float64)
===============================  =====================================

Python scalars and sequences are accepted and go through ``np.asarray``.
``logsumexp`` with ``b`` uses ``np.result_type(x, b)`` before the table above.

Output
------
``out=``, when given, must be a ``numpy.ndarray`` (otherwise TypeError) that
is writeable and has exactly the result shape and dtype (otherwise
ValueError); the result is written into it and ``out`` is returned.  The
input is never modified unless it is ``out``.  Without ``out``, a 0-d result
of ``logsumexp`` or of an elementwise function is returned as a NumPy scalar,
as NumPy reductions and ufuncs do; ``softmax`` and ``log_softmax`` always
return an array of the input's shape.

Axes
----
``axis`` is an int, a tuple of ints, or None (all axes); a reduction over
several axes treats them as one flattened row.  An axis out of range raises
``numpy.exceptions.AxisError``, a repeated axis raises ValueError, and a bool
or non-integer axis raises TypeError.  A 0-d input behaves like a 1-element
row for ``axis`` in ``-1, 0, None, ()``.  ``axis=()`` reduces over no axes:
every element is its own 1-element row.

Special values
--------------
A row is the set of entries one reduction combines (for ``logsumexp`` with
``b``, only the entries where ``b != 0``).

* ``logsumexp``: a NaN in the row gives NaN.  A row with ``+inf`` gives
  ``+inf`` with the sign of the sum of the weights of its ``+inf`` entries,
  or NaN when that sum is 0 (``inf - inf``).  A row of ``-inf`` only, or an
  empty row, gives ``-inf`` with sign 0.  A negative sum gives NaN unless
  ``return_sign=True``.
* ``softmax`` / ``log_softmax``: a NaN makes the whole row NaN; a row of
  ``-inf`` only is NaN (``0/0``); an empty row gives an empty result.
* Elementwise functions follow their limits: ``sigmoid(+-inf) = 1, 0``,
  ``logit(0) = -inf``, ``logit(1) = +inf``, ``logit(p) = NaN`` outside
  ``[0, 1]``; NaN propagates.

No RuntimeWarning is emitted for any of these.

Deliberate differences from SciPy
---------------------------------
1. ``softmax`` of a row holding ``k`` entries equal to ``+inf`` (and no NaN)
   gives ``1/k`` at those entries and 0 elsewhere, which is the limit of
   softmax as those logits grow; ``log_softmax`` gives ``-log(k)`` and
   ``-inf``.  SciPy returns NaN for such rows.
2. ``logsumexp(..., return_sign=True)`` of an empty row gives sign 0, the
   sign of the empty sum; SciPy gives -1.

Losses and information theory
-----------------------------
``cross_entropy``, ``nll_loss`` and the ``*_from_logits`` functions take the
classes along one int ``axis``; every position of the other axes is a *row*.
Their ``where=`` selects rows (it broadcasts to the shape without ``axis``):
a row where it is False contributes 0 and is left out of means.  It is not
an element mask.  Reductions are ``"none"``, ``"sum"`` and ``"mean"`` (plus
``"batchmean"`` for the divergences); a mean over nothing is NaN.

The loss and the gradient of ``cross_entropy``, ``nll_loss`` and
``binary_cross_entropy_with_logits`` have the result dtype of their first
argument (logits or log-probabilities); targets and weights do not change
it.  Functions of two arrays of equal
standing (``rel_entr``, ``kl_div_elementwise``, ``entropy``, ``kl_div``,
the divergences from logits, the ``*_backward`` functions) take the result
dtype of ``np.result_type`` of their inputs, as ``logsumexp`` does with
``b``.

In sums of ``coefficient * log(probability)``, a zero coefficient
contributes 0 even where the logarithm is ``-inf`` (``0 log 0 = 0``), so a
class masked with a ``-inf`` logit costs nothing where it carries no target
mass.  The ``with_grad`` variants return the exact derivative of the value
they return, multiplied by the upstream gradient ``grad_output``.

Deliberate differences: ``kl_div_elementwise`` stays finite where ``x / y``
over- or underflows and is ``+inf`` at ``x = +inf`` (SciPy's ``kl_div`` gives
``inf``, ``-inf`` or NaN there), and it keeps full relative accuracy near
``x = y``; ``entropy`` of float16 is float16 (SciPy: float32);
``kl_div`` is 0 where the target is 0 even if the input is ``-inf``
(PyTorch: NaN).
"""

from __future__ import annotations

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
from ._reductions import entropy_from_logits, log_softmax, logsumexp, softmax

__all__ = [
    "CrossEntropyStats",
    "binary_cross_entropy_with_logits",
    "binary_cross_entropy_with_logits_with_grad",
    "cross_entropy",
    "cross_entropy_with_grad",
    "entr",
    "entropy",
    "entropy_from_logits",
    "expit",
    "hardmax",
    "jensen_shannon_from_logits",
    "jensen_shannon_from_logits_with_grad",
    "kl_div",
    "kl_div_elementwise",
    "kl_divergence_from_logits",
    "kl_divergence_from_logits_with_grad",
    "linear_cross_entropy",
    "linear_cross_entropy_with_grad",
    "log_expit",
    "log_sigmoid",
    "log_softmax",
    "log_softmax_backward",
    "logit",
    "logsumexp",
    "logsumexp_backward",
    "nll_loss",
    "rel_entr",
    "sigmoid",
    "sigmoid_backward",
    "softmax",
    "softmax_backward",
    "softplus",
]
