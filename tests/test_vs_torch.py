"""logitkit against PyTorch's CPU kernels, the library most users will compare it with."""

from __future__ import annotations

import numpy as np
import pytest

import logitkit as lk

torch = pytest.importorskip("torch")
F = torch.nn.functional

CASES = [
    ("softmax", lambda t: torch.softmax(t, dim=-1)),
    ("log_softmax", lambda t: torch.log_softmax(t, dim=-1)),
    ("logsumexp", lambda t: torch.logsumexp(t, dim=-1)),
    ("sigmoid", torch.sigmoid),
    ("log_sigmoid", F.logsigmoid),
]


@pytest.mark.parametrize("name, torch_fn", CASES, ids=[c[0] for c in CASES])
def test_matches_torch_float64(name, torch_fn):
    x = np.random.default_rng(0).standard_normal((33, 517)) * 4
    expected = torch_fn(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(getattr(lk, name)(x), expected, rtol=1e-12, atol=1e-14)


def test_softplus_matches_torch_below_its_threshold():
    # torch switches to the identity above threshold=20; below it both are log1p(exp(x)).
    x = np.linspace(-30, 19.9, 1001)
    expected = F.softplus(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(lk.softplus(x), expected, rtol=1e-12, atol=1e-300)


def test_float32_at_least_as_accurate_as_torch():
    rng = np.random.default_rng(1)
    x = (rng.standard_normal((64, 4099)) * 20).astype(np.float32)
    exact = np.asarray(
        [np.exp(r - r.max()) / np.exp(r - r.max()).sum() for r in x.astype(np.float64)]
    )
    ours = np.max(np.abs(lk.softmax(x) - exact) / exact)
    theirs = np.max(np.abs(torch.softmax(torch.from_numpy(x), dim=-1).numpy() - exact) / exact)
    assert ours <= theirs * 1.01, (ours, theirs)


def test_plus_inf_row_is_not_nan_unlike_torch():
    x = np.array([[np.inf, 1.0, 2.0]])
    assert np.isnan(torch.softmax(torch.from_numpy(x), dim=-1).numpy()).all()
    np.testing.assert_array_equal(lk.softmax(x), [[1.0, 0.0, 0.0]])
