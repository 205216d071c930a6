"""The benchmark suite (``python -m logitkit bench``) on tiny shapes: what it writes, not speed."""

from __future__ import annotations

import dataclasses
import importlib.util
import itertools
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import logitkit as lk
from logitkit import _bench
from logitkit.__main__ import main as cli_main
from logitkit._bench import peers, plan

SHAPES = ["64x100", "40x300:axis0"]
THREADS = [1, 2]
PEERS = ["numpy"] + (["torch"] if importlib.util.find_spec("torch") is not None else [])


def expected_keys(ops=_bench.OPS, shapes=SHAPES, threads=THREADS, modes=_bench.MODES):
    return {
        (op, shape, mode, t)
        for op in ops
        for shape in shapes
        for t in threads
        for mode in ([_bench.READ_MODE] if op in _bench.READ_OPS else modes)
    }


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    json_path, md_path = out / "run.json", out / "run.md"
    code = _bench.main(
        [
            "--quick",
            "--no-progress",
            "--shapes",
            ",".join(SHAPES),
            "--threads",
            ",".join(map(str, THREADS)),
            "--peers",
            ",".join(PEERS),
            "--json",
            str(json_path),
            "--markdown",
            str(md_path),
        ]
    )
    assert code == 0
    return json.loads(json_path.read_text()), md_path.read_text()


def test_one_record_per_op_shape_mode_and_thread_count(quick_run):
    result, _ = quick_run
    keys = [(r["op"], r["shape"], r["mode"], r["threads"]) for r in result["records"]]
    assert len(keys) == len(set(keys))
    assert set(keys) == expected_keys()
    assert result["config"]["repeat"] == _bench.QUICK_REPEAT


def test_times_are_positive_and_finite(quick_run):
    result, _ = quick_run
    for r in result["records"]:
        lk = r["logitkit"]
        assert len(lk["times_ms"]) == result["config"]["repeat"]
        for ms in [r["median_ms"], r["yardstick"]["median_ms"], *lk["times_ms"]]:
            assert math.isfinite(ms) and ms > 0
        for info in r["peers"].values():
            if info["status"] == "ok":
                assert math.isfinite(info["median_ms"]) and info["median_ms"] > 0


def test_fraction_is_yardstick_time_over_logitkit_time(quick_run):
    result, _ = quick_run
    for r in result["records"]:
        assert r["fraction"] == pytest.approx(r["yardstick"]["median_ms"] / r["median_ms"])
        variants = r["yardstick"]["variants"]
        assert r["yardstick"]["median_ms"] == min(v["median_ms"] for v in variants.values())
        if r["op"] in _bench.READ_OPS:
            assert r["yardstick"]["kind"] == "read" and set(variants) == {"read"}
            assert r["bytes_moved"] == r["rows"] * r["cols"] * 4
        else:
            assert r["yardstick"]["kind"] == "copy" and len(variants) == 2
            assert r["bytes_moved"] == 2 * r["rows"] * r["cols"] * 4


def test_peers_run_at_the_largest_thread_count_and_agree(quick_run):
    result, _ = quick_run
    for r in result["records"]:
        assert set(r["peers"]) == set(PEERS)
        numpy = r["peers"]["numpy"]
        if r["threads"] == max(THREADS):
            assert numpy["status"] == "ok", (r["op"], r["shape"], r["mode"], numpy)
            assert numpy["agrees"], (r["op"], r["shape"], r["mode"], numpy)
            assert numpy["ratio"] == pytest.approx(numpy["median_ms"] / r["median_ms"])
            if "torch" in r["peers"]:
                assert r["peers"]["torch"]["status"] == "ok", r["peers"]["torch"]
        else:
            assert numpy["status"].startswith("not run")


def test_out_mode_uses_preallocated_buffers(quick_run):
    result, _ = quick_run
    for r in result["records"]:
        assert r["logitkit"]["uses_out"] == (r["mode"] == "out")
        if r["mode"] == "out" and r["threads"] == max(THREADS):
            assert r["peers"]["numpy"]["uses_out"]  # ufunc out= for every write op


def test_json_describes_the_machine_and_versions(quick_run):
    result, _ = quick_run
    assert result["machine"]["cpu_model"]
    assert result["machine"]["logical_cpus"] >= 1
    cores = result["machine"]["physical_cores"]
    assert cores is None or 1 <= cores <= result["machine"]["logical_cpus"]
    assert result["logitkit"]["active_isa"]
    assert result["isa"]["logitkit"] == result["logitkit"]["active_isa"]
    assert result["config"]["isa"] is None and not result["config"]["interleave"]
    assert "numpy" in result["versions"]
    assert result["wall_time_s"] > 0


def test_markdown_has_one_row_per_op_shape_and_mode(quick_run):
    _, md = quick_run
    rows = [line for line in md.splitlines() if line.startswith("| ")]
    header, body = rows[0], rows[1:]
    assert "logitkit ms" in header and "vs NumPy" in header and "1 thread ms" in header
    assert len(body) == len(expected_keys(threads=[max(THREADS)]))


def test_failing_peer_is_reported_not_fatal(monkeypatch, tmp_path, capsys):
    def broken(*args, **kwargs):
        raise RuntimeError("simulated failure")

    monkeypatch.setattr(peers, "np_softmax", broken)
    path = tmp_path / "run.json"
    code = cli_main(
        [
            "bench",
            "--quick",
            "--no-progress",
            "--ops",
            "softmax",
            "--shapes",
            "16x50",
            "--threads",
            "1",
            "--peers",
            "numpy",
            "--json",
            str(path),
        ]
    )
    assert code == 0
    records = json.loads(path.read_text())["records"]
    assert {r["mode"] for r in records} == {"out", "fresh"}
    for r in records:
        assert r["peers"]["numpy"]["status"] == "failed: RuntimeError: simulated failure"
    captured = capsys.readouterr()
    assert "fail" in captured.out
    # Without a progress bar, one line per finished measurement goes to stderr.
    assert captured.err.count("softmax 16x50 f32") == 2


@pytest.mark.parametrize(
    "text, rows, cols, dtype, axis",
    [
        ("4096x1000", 4096, 1000, "float32", -1),
        ("4096x1000:axis0", 4096, 1000, "float32", 0),
        ("512x32000:f16", 512, 32000, "float16", -1),
        ("512x32000:bf16", 512, 32000, "bfloat16", -1),
        ("8x16:axis0:f64", 8, 16, "float64", 0),
    ],
)
def test_parse_shape(text, rows, cols, dtype, axis):
    spec = _bench.parse_shape(text)
    assert (spec.rows, spec.cols, spec.dtype, spec.axis) == (rows, cols, dtype, axis)
    assert _bench.parse_shape(spec.name) == spec


def test_spread_scales_the_logits():
    plain = _bench.parse_shape("64x100")
    wide = _bench.parse_shape("64x100:spread20:f64")
    assert (wide.spread, wide.dtype, wide.name) == (20.0, "float64", "64x100:spread20:f64")
    assert _bench.parse_shape(wide.name) == wide
    x3, t3 = plan.make_inputs(plain, seed=1)
    x20, t20 = plan.make_inputs(dataclasses.replace(plain, spread=20.0), seed=1)
    np.testing.assert_allclose(x20, x3 * (20 / 3), rtol=1e-6)
    np.testing.assert_array_equal(t20, t3)


@pytest.mark.parametrize("text", ["4096", "0x10", "4x4:f8", "axb", "4x4:spread0", "4x4:spreadx"])
def test_parse_shape_rejects(text):
    with pytest.raises(ValueError, match="shape"):
        _bench.parse_shape(text)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--repeat", "3"], "--repeat must be at least 5"),
        (["--ops", "softmax,nope"], "unknown nope"),
        (["--peers", "tensorflow"], "unknown tensorflow"),
        (["--threads", "0"], "positive"),
        (["--shapes", "12"], "--shapes"),
        (["--isa", "nope"], "unknown instruction set 'nope'"),
    ],
)
def test_bad_options(argv, message, capsys):
    with pytest.raises(SystemExit) as exc:
        _bench.parse_args(argv)
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


def test_agreement_check_handles_nan_inf_and_shapes():
    import numpy as np

    a = np.array([1.0, np.inf, np.nan, -np.inf], np.float32)
    diff = peers.max_abs_diff
    assert diff(a, a.copy()) == 0.0
    assert diff(a, np.array([1.5, np.inf, np.nan, -np.inf])) == 0.5
    assert diff(a, np.array([1.0, np.inf, 0.0, -np.inf])) == math.inf  # NaN in one only
    assert diff(a, np.array([1.0, -np.inf, np.nan, -np.inf])) == math.inf  # inf of other sign
    assert diff(np.zeros(3), np.zeros(4)) == math.inf
    assert diff((np.float32(2), np.zeros(3)), (np.float32(2), np.ones(3))) == 1.0
    big, other = np.zeros(200_000, np.float32), np.zeros(200_000, np.float32)
    other[150_000] = np.nan  # past the first chunk
    assert diff(big, other) == math.inf
    assert peers.result_scale(a) == 1.0
    assert peers.result_scale(np.array([np.nan, -5.0])) == 5.0


def run_bench(tmp_path, *options):
    """One tiny quick run at one thread; its JSON result and its stdout's text."""
    path = tmp_path / "run.json"
    md = tmp_path / "run.md"
    code = _bench.main(
        ["--quick", "--no-progress", "--threads", "1", "--json", str(path)]
        + ["--markdown", str(md), *options]
    )
    assert code == 0
    return json.loads(path.read_text()), md.read_text()


def assert_timed(timing, repeat):
    assert timing["repeats"] == repeat
    assert all(math.isfinite(ms) and ms > 0 for ms in timing["times_ms"])
    assert timing["median_ms"] > 0


def recording(monkeypatch, module, name, calls, tag):
    """Replace module.name with a wrapper that appends tag (a callable of nothing) to calls."""
    inner = getattr(module, name)

    def wrapper(*args, **kwargs):
        calls.append(tag())
        return inner(*args, **kwargs)

    monkeypatch.setattr(module, name, wrapper)


def test_isa_runs_logitkit_with_those_kernels_and_reports_them(monkeypatch, tmp_path, capsys):
    before = lk.active_isa()
    isa = "scalar" if before != "scalar" else lk.available_isas()[-1]
    seen = []
    recording(monkeypatch, lk, "softmax", seen, lk.active_isa)
    recording(monkeypatch, lk, "logsumexp", seen, lk.active_isa)
    result, md = run_bench(
        tmp_path,
        *("--ops", "logsumexp,softmax", "--shapes", "16x50,8x40:axis0:f16"),
        *("--peers", ",".join(PEERS), "--isa", isa.upper()),
    )
    # warm-up and timed calls of logsumexp (one mode) and softmax (two), on two shapes
    assert seen == [isa] * (2 * 3 * (1 + _bench.QUICK_REPEAT))
    assert lk.active_isa() == before  # the caller's context is left as it was
    assert result["config"]["isa"] == isa
    assert result["logitkit"]["active_isa"] == isa
    assert result["isa"]["logitkit"] == isa
    assert result["isa"]["logitkit_chosen_by"] == "--isa"
    assert {(r["op"], r["shape"]) for r in result["records"]} == {
        (op, shape) for op in ("logsumexp", "softmax") for shape in ("16x50", "8x40:axis0:f16")
    }
    for r in result["records"]:
        assert_timed(r["logitkit"], _bench.QUICK_REPEAT)
        assert r["peers"]["numpy"]["agrees"]
    assert f"Kernels: logitkit {isa} (--isa; best here {result['isa']['logitkit_best']})" in md
    assert f"isa      : logitkit {isa} (--isa" in capsys.readouterr().out
    if "torch" in PEERS:
        import torch

        assert result["isa"]["torch"] == torch.backends.cpu.get_cpu_capability()


@pytest.mark.skipif("torch" not in PEERS, reason="PyTorch is not installed")
def test_torch_cpu_capability_follows_aten_cpu_capability(tmp_path):
    # PyTorch reads the variable once, at import: only a new process shows its effect.
    path = tmp_path / "run.json"
    env = dict(os.environ, ATEN_CPU_CAPABILITY="default")
    env["PYTHONPATH"] = os.pathsep.join(
        [str(Path(lk.__file__).parent.parent), env.get("PYTHONPATH", "")]
    )
    argv = ["bench", "--quick", "--no-progress", "--ops", "softmax", "--modes", "fresh"]
    argv += ["--shapes", "8x40", "--threads", "1", "--peers", "torch", "--json", str(path)]
    proc = subprocess.run(
        [sys.executable, "-m", "logitkit", *argv], env=env, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(path.read_text())
    assert result["isa"]["torch"] == "DEFAULT"
    assert result["isa"]["ATEN_CPU_CAPABILITY"] == "default"
    assert "PyTorch DEFAULT (ATEN_CPU_CAPABILITY=default)" in proc.stdout
    assert result["records"][0]["peers"]["torch"]["status"] == "ok"


@pytest.mark.parametrize("interleave", [False, True])
def test_interleave_takes_the_timed_calls_in_turns(monkeypatch, tmp_path, interleave):
    calls = []
    recording(monkeypatch, lk, "softmax", calls, lambda: ("logitkit", time.perf_counter()))
    recording(monkeypatch, peers, "np_softmax", calls, lambda: ("numpy", time.perf_counter()))
    options = ["--ops", "softmax", "--modes", "fresh", "--shapes", "16x50", "--peers", "numpy"]
    result, md = run_bench(tmp_path, *options, *(["--interleave"] if interleave else []))
    n = _bench.QUICK_REPEAT
    who = [name for name, _ in calls]
    if interleave:
        # the warm-up calls first, then one call of each per round
        assert who == ["logitkit", "numpy"] * (1 + n)
        # every timed call waits plan.SETTLE_S after the one before it: numpy's comes after
        # logitkit's and the yardstick's plain and non-temporal copies, logitkit's after numpy's
        gaps = [b - a for (_, a), (_, b) in itertools.pairwise(calls[2:])]
        assert all(g >= 3 * plan.SETTLE_S for g in gaps[::2]), gaps
        assert all(g >= plan.SETTLE_S for g in gaps[1::2]), gaps
    else:
        assert who == ["logitkit"] * (1 + n) + ["numpy"] * (1 + n)
    assert result["config"]["interleave"] is interleave
    assert ("in turns" in result["config"]["timing"]) is interleave
    assert ("in turns over the implementations" in md) is interleave
    (record,) = result["records"]
    assert_timed(record["logitkit"], n)
    assert_timed(record["peers"]["numpy"], n)
    for variant in record["yardstick"]["variants"].values():
        assert_timed(variant, n)
    assert record["peers"]["numpy"]["agrees"]
    assert record["fraction"] == pytest.approx(
        record["yardstick"]["median_ms"] / record["median_ms"]
    )


def test_interleave_reports_a_failing_peer_and_keeps_the_others(monkeypatch, tmp_path):
    calls = []
    real = peers.np_softmax

    def fails_after_warm_up(x, axis, out=None):
        calls.append(1)
        if len(calls) > 1:
            raise RuntimeError("simulated failure")
        return real(x, axis, out)

    monkeypatch.setattr(peers, "np_softmax", fails_after_warm_up)
    options = ["--ops", "softmax", "--modes", "fresh", "--shapes", "16x50", "--interleave"]
    result, _ = run_bench(tmp_path, *options, "--peers", ",".join(PEERS))
    (record,) = result["records"]
    assert record["peers"]["numpy"]["status"] == "failed: RuntimeError: simulated failure"
    assert_timed(record["logitkit"], _bench.QUICK_REPEAT)
    if "torch" in PEERS:
        assert record["peers"]["torch"]["status"] == "ok"
        assert_timed(record["peers"]["torch"], _bench.QUICK_REPEAT)


def test_logsumexp_out_times_it_into_a_preallocated_vector_and_allocating(tmp_path):
    shapes = ["16x50", "8x40:axis0:f16"]
    result, md = run_bench(
        tmp_path,
        *("--ops", "logsumexp", "--shapes", ",".join(shapes), "--logsumexp-out"),
        *("--peers", ",".join(PEERS)),
    )
    assert result["config"]["logsumexp_out"] is True
    records = result["records"]
    assert {(r["op"], r["shape"], r["mode"]) for r in records} == {
        ("logsumexp", shape, mode) for shape in shapes for mode in _bench.MODES
    }
    for r in records:
        out = r["mode"] == "out"
        assert r["logitkit"]["uses_out"] is out
        assert r["logitkit"]["label"] == ("lk.logsumexp(out=)" if out else "lk.logsumexp")
        assert_timed(r["logitkit"], _bench.QUICK_REPEAT)
        # still a reduction: its yardstick is a read of the input
        assert r["kind"] == "read" and r["yardstick"]["kind"] == "read"
        assert r["bytes_moved"] == r["rows"] * r["cols"] * (2 if r["dtype"] == "float16" else 4)
        numpy = r["peers"]["numpy"]
        assert numpy["status"] == "ok" and numpy["agrees"] and not numpy["uses_out"]
        # NumPy has no out= for it: one call, timed once, shown in both modes
        assert numpy.get("same_call_as_other_mode", False) is (not out)
        if "torch" in PEERS:
            torch_info = r["peers"]["torch"]
            assert torch_info["status"] == "ok" and torch_info["agrees"]
            assert torch_info["uses_out"] is out
    assert sum(1 for line in md.splitlines() if line.startswith("| logsumexp |")) == 4


def test_without_logsumexp_out_the_reductions_keep_one_mode():
    assert _bench.parse_args(["--logsumexp-out"]).logsumexp_out
    from logitkit._bench.plan import modes_of

    assert modes_of("logsumexp", _bench.MODES) == [_bench.READ_MODE]
    assert modes_of("logsumexp", _bench.MODES, vector_out=True) == list(_bench.MODES)
    # the other reductions have no out= for a vector result
    assert modes_of("cross_entropy", _bench.MODES, vector_out=True) == [_bench.READ_MODE]
    assert modes_of("entropy_from_logits", _bench.MODES, vector_out=True) == [_bench.READ_MODE]


def test_median_of_runs_takes_each_implementations_median_over_runs(tmp_path, quick_run):
    # Three copies of a real run with logitkit's and PyTorch's times scaled per run: the
    # script must report the median over runs (the middle scale), flag ratios below the
    # target, and compare each 16-bit time with float32's.
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "median_of_runs.py"
    run = json.loads(json.dumps(quick_run[0]))  # a copy: the fixture is shared
    top = max(r["threads"] for r in run["records"])
    record = next(r for r in run["records"] if r["threads"] == top and r["op"] == "softmax")
    f16 = json.loads(json.dumps(record))
    f16["dtype"] = "float16"
    record["peers"] = {"torch": {"status": "ok", "median_ms": 2.0}}
    f16["peers"] = {"jax": {"status": "ok", "median_ms": 1.0}}
    paths = []
    for i, scale in enumerate((1.0, 5.0, 2.0)):  # median 2, mean 2.67
        record["median_ms"], f16["median_ms"] = 1.0 * scale, 0.5 * scale
        path = tmp_path / f"run{i}.json"
        path.write_text(json.dumps({**run, "records": [record, f16]}))
        paths.append(str(path))
    out = subprocess.run(
        [sys.executable, str(script), *paths], capture_output=True, text=True, check=True
    ).stdout
    rows = [line.split("|")[1:-1] for line in out.splitlines() if line.startswith("| softmax")]
    by_dtype = {cells[2].strip(): [c.strip() for c in cells] for cells in rows}
    # median logitkit times 2.0 and 1.0; the peers' 2.0 and 1.0
    assert by_dtype["float32"][4:] == ["2.000", "1.00x <", "-"]
    assert by_dtype["float16"][4:] == ["1.000", "1.00x <", "0.50"]
    assert "2 of 2 measurements below 1.5x" in out
