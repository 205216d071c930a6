"""Arrays past the 32-bit limits: more than 2^31 elements, and a row longer than 2^31 bytes.

Index arithmetic that overflows 32 bits, or a count kept in float32 lanes, would show here as a
wrong value at the end of the array or a wrong normalisation. These tests need several GiB of
memory; they skip, saying so, where the machine has less available, and under the
sanitizer builds (tests/native/run_sanitized.sh), where they would take minutes.
"""

from __future__ import annotations

import math
import os

import numpy as np
import pytest

import logitkit as lk

GIB = 1 << 30


def _available_bytes() -> int:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _needs(gib: float) -> None:
    if os.environ.get("LOGITKIT_SANITIZED"):
        pytest.skip("huge arrays are left to the plain build (a sanitizer build is too slow)")
    have = _available_bytes()
    if have < gib * GIB:
        pytest.skip(f"needs {gib:.0f} GiB of available memory, this machine has {have / GIB:.1f}")


def test_more_than_2_31_elements():
    _needs(6)
    n = 2**31 + 33
    x = np.zeros(n, np.float16)  # 4 GiB
    # one row of n equal logits: uniform, entropy and logsumexp log(n) exactly (the 16-bit
    # result rounds it); a count kept in 32 bits would be off by log 8 here
    want = math.log(n)
    assert float(lk.entropy_from_logits(x)) == pytest.approx(want, rel=1e-3)
    assert float(lk.logsumexp(x)) == pytest.approx(want, rel=1e-3)
    x[-1] = 1.0
    lk.sigmoid(x, out=x)  # elementwise, in place, through the last element
    assert x[0] == np.float16(0.5) and x[2**31 + 1] == np.float16(0.5)
    assert x[-1] == np.float16(1 / (1 + math.exp(-1)))


def test_row_longer_than_2_31_bytes():
    _needs(6)
    n = 2**29 + 5  # float32: 2 GiB + 20 bytes in one row
    x = np.zeros((1, n), np.float32)
    x[0, -1] = 1.0
    lse = float(lk.logsumexp(x)[0])
    want = math.log((n - 1) + math.e)
    assert lse == pytest.approx(want, rel=1e-6)
    lk.softmax(x, out=x)
    assert x[0, 0] == pytest.approx(1 / ((n - 1) + math.e), rel=1e-5)
    assert x[0, -1] == pytest.approx(math.e / ((n - 1) + math.e), rel=1e-5)
    # the entries are all the same but the last: their total plus the last is 1
    assert float(x[0, 0]) * (n - 1) + float(x[0, -1]) == pytest.approx(1.0, rel=1e-5)


def test_in_place_softmax_of_2_31_float32():
    # 8 GiB in place: the long-row path must not allocate a second row (it once zero-filled
    # a row-sized scratch on one thread, taking 18.7 s and twice the memory)
    _needs(12)
    n = 2**31
    x = np.full(n, -1.0, np.float32)
    x[123] = 0.0
    lk.softmax(x, out=x)
    denom = (n - 1) * math.exp(-1.0) + 1.0
    assert x[123] == pytest.approx(1 / denom, rel=1e-5)
    assert x[0] == pytest.approx(math.exp(-1.0) / denom, rel=1e-5)
    assert x[-1] == x[0]
