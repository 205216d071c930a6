"""Runtime information, ISA selection by use_isa() and LOGITKIT_ISA."""

from __future__ import annotations

import os
import subprocess
import sys
import threading

import numpy as np
import pytest

import logitkit as lk


def test_runtime_info_contents():
    info = lk.runtime_info()
    assert info["version"] == lk.__version__ and info["version"].count(".") >= 2
    assert "scalar" in info["compiled_isas"] and "scalar" in info["supported_isas"]
    assert set(info["supported_isas"]) <= set(info["compiled_isas"])
    assert info["best_isa"] in info["supported_isas"]
    assert info["active_isa"] in info["supported_isas"]
    assert isinstance(info["openmp"], bool)
    assert info["threads"] >= 1 and info["hardware_threads"] >= 1


def test_show_runtime_prints_every_key(capsys):
    lk.show_runtime()
    printed = capsys.readouterr().out
    for key in lk.runtime_info():
        assert key in printed


def test_use_isa_switches_and_restores():
    before = lk.active_isa()
    for name in lk.available_isas():
        with lk.use_isa(name) as active:
            assert active == name == lk.active_isa()
    assert lk.active_isa() == before


def test_use_isa_is_thread_local():
    seen = []
    with lk.use_isa("scalar"):
        t = threading.Thread(target=lambda: seen.append(lk.active_isa()))
        t.start()
        t.join()
    assert seen == [lk.runtime_info()["best_isa"]] or os.environ.get("LOGITKIT_ISA")


def test_use_isa_errors():
    with pytest.raises(
        ValueError, match=r"use_isa\(\): unknown instruction set 'mmx'; known: scalar"
    ):
        with lk.use_isa("mmx"):
            pass
    missing = [n for n in ("avx512", "neon", "avx2", "sse2") if n not in lk.available_isas()]
    for name in missing:
        with pytest.raises(ValueError, match=rf"use_isa\(\): instruction set '{name}' is not"):
            with lk.use_isa(name):
                pass


def run_python(code: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_env_selects_isa():
    done = run_python("import logitkit as lk; print(lk.active_isa())", LOGITKIT_ISA="scalar")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "scalar"


def test_env_with_unknown_isa_fails_clearly():
    done = run_python("import logitkit as lk; lk.softmax([1.0, 2.0])", LOGITKIT_ISA="avx9000")
    assert done.returncode != 0
    assert "LOGITKIT_ISA=avx9000: unknown instruction set 'avx9000'" in done.stderr


def test_results_agree_across_isas():
    x = np.random.default_rng(0).standard_normal((50, 300)).astype(np.float32)
    results = []
    for name in lk.available_isas():
        with lk.use_isa(name):
            results.append(lk.softmax(x))
    for r in results[1:]:
        np.testing.assert_allclose(r, results[0], rtol=5e-6, atol=1e-30)
