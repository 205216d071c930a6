"""The benchmark suite (``python -m logitkit bench``) on tiny shapes: what it writes, not speed."""

from __future__ import annotations

import importlib.util
import json
import math

import pytest

from logitkit import _bench
from logitkit.__main__ import main as cli_main
from logitkit._bench import peers

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
    assert result["logitkit"]["active_isa"]
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


@pytest.mark.parametrize("text", ["4096", "0x10", "4x4:f8", "axb"])
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
