"""Results are bitwise identical for every thread count, and the GIL is released safely."""

from __future__ import annotations

import subprocess
import sys
import threading

import numpy as np
import pytest
from conftest import assert_ulp_close

import logitkit as lk
from logitkit import reference as ref

THREADS = [1, 2, 3, 5]


def shapes(dtype):
    long_row = lk._core.long_row_bytes // np.dtype(dtype).itemsize * 3 + 17
    # many short rows (threads take rows), few long rows (threads share each row's chunks),
    # and an elementwise-sized array
    return [(1000, 37), (3, long_row), (1, long_row), (64, 1031)]


@pytest.mark.parametrize("func", ["softmax", "log_softmax", "logsumexp"])
def test_reductions_bitwise_identical(isa, dtype, func):
    rng = np.random.default_rng(11)
    for shape in shapes(dtype):
        x = (rng.standard_normal(shape) * 6).astype(dtype)
        results = [getattr(lk, func)(x, threads=t) for t in THREADS]
        for r in results[1:]:
            np.testing.assert_array_equal(r, results[0])
        # In Fortran order the rows are columns, reduced by the column kernels: bitwise the
        # same for every thread count, and the same arithmetic as the rows', summed in
        # another order.
        strided = np.asfortranarray(x)
        by_columns = [getattr(lk, func)(strided, threads=t) for t in THREADS]
        for r in by_columns[1:]:
            np.testing.assert_array_equal(r, by_columns[0])
        assert_ulp_close(by_columns[0], results[0], dtype, 8, abs_scale=float(np.abs(x).max()))


def test_weighted_and_elementwise_bitwise_identical(isa, dtype):
    rng = np.random.default_rng(12)
    x = rng.standard_normal((2, 200_003)).astype(dtype)
    b = rng.uniform(-1, 1, x.shape).astype(dtype)
    base = lk.logsumexp(x, b=b, return_sign=True, threads=1)
    for t in THREADS[1:]:
        got = lk.logsumexp(x, b=b, return_sign=True, threads=t)
        np.testing.assert_array_equal(got[0], base[0])
        np.testing.assert_array_equal(got[1], base[1])
    for func in ("sigmoid", "log_sigmoid", "softplus"):
        one = getattr(lk, func)(x, threads=1)
        for t in THREADS[1:]:
            np.testing.assert_array_equal(getattr(lk, func)(x, threads=t), one)


def test_env_default_threads(monkeypatch):
    monkeypatch.setenv("LOGITKIT_NUM_THREADS", "3")
    assert lk.runtime_info()["threads"] == 3
    monkeypatch.setenv("LOGITKIT_NUM_THREADS", "not a number")
    assert lk.runtime_info()["threads"] >= 1


def test_concurrent_python_threads():
    # The native work runs without the GIL; concurrent calls must not interfere.
    rng = np.random.default_rng(13)
    inputs = [rng.standard_normal((200, 501)) for _ in range(8)]
    expected = [ref.softmax(x) for x in inputs]
    results: list = [None] * len(inputs)

    def work(i: int) -> None:
        for _ in range(5):
            results[i] = lk.softmax(inputs[i], threads=2)

    workers = [threading.Thread(target=work, args=(i,)) for i in range(len(inputs))]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    for got, exp in zip(results, expected, strict=True):
        np.testing.assert_allclose(got, exp, rtol=1e-13, atol=1e-300)


DAEMON_AT_EXIT = """
import threading, time
import numpy as np
import logitkit as lk
x = np.random.default_rng(0).standard_normal((256, 20000)).astype(np.float32)
t = np.zeros(256, dtype=np.int64)
def loop():
    while True:
        lk.softmax(x)
        lk.cross_entropy_with_grad(x, t)
for _ in range(2):
    threading.Thread(target=loop, daemon=True).start()
time.sleep(0.2)
"""


def test_daemon_threads_inside_kernels_do_not_abort_the_exit():
    # The interpreter stops daemon threads that come back from native code while it shuts
    # down; that must end those threads, not abort the process.
    for _ in range(3):
        run = subprocess.run(
            [sys.executable, "-c", DAEMON_AT_EXIT], capture_output=True, text=True, timeout=120
        )
        assert run.returncode == 0, run.stderr
        assert "terminate called" not in run.stderr
