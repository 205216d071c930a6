"""Every example in the public docstrings runs and prints what it says."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "logitkit._reductions",
    "logitkit._elementwise",
    "logitkit._losses",
    "logitkit._linear",
    "logitkit._divergences",
    "logitkit._backward",
    "logitkit._runtime",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0
    assert result.failed == 0
