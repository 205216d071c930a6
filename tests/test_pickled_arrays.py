"""Arrays that went through pickle (multiprocessing, Dask workers, joblib) carry a dtype equal
to NumPy's own but a distinct object: every function must accept them and give the same
results as for the original arrays."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

import logitkit as lk

CALLS = {
    "logsumexp": lambda x, t: lk.logsumexp(x),
    "softmax": lambda x, t: lk.softmax(x),
    "log_softmax": lambda x, t: lk.log_softmax(x),
    "entropy_from_logits": lambda x, t: lk.entropy_from_logits(x),
    "cross_entropy": lambda x, t: lk.cross_entropy(x, t, reduction="none"),
    "cross_entropy_with_grad": lambda x, t: lk.cross_entropy_with_grad(x, t)[1],
    "sigmoid": lambda x, t: lk.sigmoid(x),
    "softplus": lambda x, t: lk.softplus(x),
    "partial_cross_entropy": lambda x, t: lk.partial_cross_entropy(x, t).lse,
}


def roundtrip(a: np.ndarray) -> np.ndarray:
    return pickle.loads(pickle.dumps(a, protocol=pickle.HIGHEST_PROTOCOL))


@pytest.mark.parametrize("name", CALLS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64])
def test_unpickled_arrays(name, dtype):
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((5, 7)) * 3).astype(dtype)
    t = rng.integers(0, 7, 5)
    xp, tp = roundtrip(x), roundtrip(t)
    assert xp.dtype == x.dtype and xp.dtype is not np.dtype(dtype)  # the case at stake
    np.testing.assert_array_equal(CALLS[name](xp, tp), CALLS[name](x, t))
    np.testing.assert_array_equal(xp, x)  # not modified
