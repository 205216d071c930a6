"""``logitkit eval`` through the command line, against float64 computations of every metric."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

import logitkit as lk
from logitkit.__main__ import main as cli_main

PYTHONPATH = os.pathsep.join(
    [str(Path(lk.__file__).resolve().parent.parent)]
    + ([os.environ["PYTHONPATH"]] if os.environ.get("PYTHONPATH") else [])
)
ENV = {**os.environ, "PYTHONPATH": PYTHONPATH}


def run_eval(*args: object, json_path: Path | None = None) -> tuple[int, str, str, dict | None]:
    cmd = [sys.executable, "-m", "logitkit", "eval", *map(str, args)]
    if json_path is not None:
        cmd += ["--json", str(json_path)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=ENV, timeout=300)
    result = None
    if json_path is not None and proc.returncode == 0:
        result = json.loads(json_path.read_text())
    return proc.returncode, proc.stdout, proc.stderr, result


# ----------------------------------------------------------------------------- the oracle


def oracle(z: np.ndarray, t: np.ndarray, ignore: int = -100, ks=(1, 5), bins: int = 15) -> dict:
    """Every metric in float64 straight from its definition, on 2-D logits and 1-D labels."""
    z = np.asarray(z, dtype=np.float64)
    keep = t != ignore
    z, t = z[keep], t[keep].astype(np.int64)
    n, C = z.shape
    m = z.max(axis=1, keepdims=True)
    logp = z - m - np.log(np.exp(z - m).sum(axis=1, keepdims=True))
    p = np.exp(logp)
    rows = np.arange(n)
    nll = -logp[rows, t]
    pred = z.argmax(axis=1)  # first largest
    correct = pred == t
    # rank of the label with ties broken by class index
    zt = z[rows, t][:, None]
    rank = (z > zt).sum(1) + ((z == zt) & (np.arange(C)[None, :] < t[:, None])).sum(1)
    onehot = np.zeros_like(p)
    onehot[rows, t] = 1.0
    conf = p.max(axis=1)
    edges = np.linspace(0, 1, bins + 1)
    which = np.searchsorted(edges, conf, side="right") - 1
    gaps, props = [], []
    for b in range(bins + 1):
        sel = which == b
        if sel.any():
            gaps.append(abs(correct[sel].mean() - conf[sel].mean()))
            props.append(sel.mean())
    gaps_a, props_a = np.array(gaps), np.array(props)
    with np.errstate(divide="ignore", invalid="ignore"):
        ent = -np.where(p > 0, p * logp, 0.0).sum(axis=1) / math.log(2)
    ce = nll.mean()
    counts = np.bincount(t, minlength=C)
    with np.errstate(invalid="ignore"):
        cls_acc = np.bincount(t, weights=correct, minlength=C) / counts
        cls_ce = np.bincount(t, weights=nll, minlength=C) / counts
    return {
        "n_counted": n,
        "n_classes": C,
        "cross_entropy": ce,
        "perplexity": math.exp(ce),
        "bits_per_token": ce / math.log(2),
        "accuracy": correct.mean(),
        "top_k_accuracy": {str(k): (rank < k).mean() for k in ks},
        "entropy_bits": ent.mean(),
        "ece": float((gaps_a * props_a).sum()),
        "ece_l2": float(math.sqrt((gaps_a**2 * props_a).sum())),
        "mce": float(gaps_a.max()),
        "brier": ((p - onehot) ** 2).sum(axis=1).mean(),
        "per_class": {"count": counts, "accuracy": cls_acc, "cross_entropy": cls_ce},
    }


SCALARS = ["cross_entropy", "perplexity", "bits_per_token", "entropy_bits", "brier"]


def assert_matches(got: dict, want: dict, rtol: float) -> None:
    assert got["n_counted"] == want["n_counted"]
    assert got["n_classes"] == want["n_classes"]
    for key in SCALARS:
        assert got[key] == pytest.approx(want[key], rel=rtol), key
    # counts divided by the same n: exact up to the last bit
    assert got["accuracy"] == pytest.approx(want["accuracy"], rel=1e-12, abs=0)
    assert got["top_k_accuracy"] == pytest.approx(want["top_k_accuracy"], rel=1e-12)
    assert got["top_k_accuracy"]["1"] == got["accuracy"]
    # confidences differ from float64 ones by float32 rounding: a row may rarely cross a bin
    # edge, so the calibration errors are held to a looser bound
    assert got["ece"] == pytest.approx(want["ece"], abs=max(1e-3, 20 * rtol))
    assert got["mce"] == pytest.approx(want["mce"], abs=max(1e-2, 20 * rtol))
    pc = got["per_class"]
    np.testing.assert_array_equal(pc["count"], want["per_class"]["count"])
    present = want["per_class"]["count"] > 0
    np.testing.assert_allclose(
        np.array(pc["accuracy"], dtype=float)[present], want["per_class"]["accuracy"][present]
    )
    np.testing.assert_allclose(
        np.array(pc["cross_entropy"], dtype=float)[present],
        want["per_class"]["cross_entropy"][present],
        rtol=rtol,
    )
    assert all(v is None for v, p in zip(pc["accuracy"], present, strict=True) if not p)


def make_data(rng, n=3000, C=41, scale=2.5, ignore_frac=0.1, calibrated=True):
    """Logits and labels drawn from a tempered softmax of them, so that every confidence bin
    and every metric gets exercised; some labels set to the ignore index."""
    z = scale * rng.standard_normal((n, C))
    if calibrated:
        p = np.exp(0.7 * z - lk.reference.logsumexp(0.7 * z, axis=-1)[:, None])
        t = (p.cumsum(axis=1) > rng.random((n, 1))).argmax(axis=1)
    else:
        t = rng.integers(0, C, n)
    t[rng.random(n) < ignore_frac] = -100
    return z, t


@pytest.fixture(scope="module")
def data32(tmp_path_factory):
    rng = np.random.default_rng(1234)
    z, t = make_data(rng)
    d = tmp_path_factory.mktemp("eval32")
    np.save(d / "z.npy", z.astype(np.float32))
    np.save(d / "t.npy", t)
    return d, z.astype(np.float32), t


# ----------------------------------------------------------------------------- metrics


def test_every_metric_matches_float64(data32, tmp_path):
    d, z, t = data32
    rc, out, err, got = run_eval(
        d / "z.npy", d / "t.npy", "--top-k", "1,3,5,10", json_path=tmp_path / "r.json"
    )
    assert rc == 0, err
    assert err == ""  # not a terminal: no progress bar
    want = oracle(z, t, ks=(1, 3, 5, 10))
    assert_matches(got, want, rtol=2e-6)
    assert got["n_rows"] == len(t)
    assert got["n_ignored"] == int((t == -100).sum())
    assert got["n_nonfinite"] == 0
    assert "cross_entropy" in out and "perplexity" in out and "worst:" in out
    assert got["version"] == lk.__version__
    assert got["inputs"]["logits"]["file"].endswith("z.npy")
    assert got["options"]["top_k"] == [1, 3, 5, 10]
    required = {
        "n_rows", "n_counted", "n_classes", "cross_entropy", "perplexity", "bits_per_token",
        "accuracy", "top_k_accuracy", "entropy_bits", "ece", "mce", "brier", "per_class",
    }  # fmt: skip
    assert required <= got.keys()


def test_against_scikit_learn(data32, tmp_path):
    metrics = pytest.importorskip("sklearn.metrics")
    d, z, t = data32
    rc, _, err, got = run_eval(d / "z.npy", d / "t.npy", json_path=tmp_path / "r.json")
    assert rc == 0, err
    keep = t != -100
    z64, y = z[keep].astype(np.float64), t[keep]
    p = np.exp(z64 - lk.reference.logsumexp(z64, axis=-1)[:, None])
    labels = np.arange(z.shape[1])
    assert got["cross_entropy"] == pytest.approx(metrics.log_loss(y, p, labels=labels), rel=2e-6)
    for k in (1, 5):
        want = metrics.top_k_accuracy_score(y, z64, k=k, labels=labels)
        assert got["top_k_accuracy"][str(k)] == pytest.approx(want, rel=1e-12)
    assert got["accuracy"] == pytest.approx(metrics.accuracy_score(y, z64.argmax(1)), rel=1e-12)


def test_calibration_against_torch(data32, tmp_path):
    torch = pytest.importorskip("torch")
    d, z, t = data32
    rc, _, err, got = run_eval(
        d / "z.npy", d / "t.npy", "--ece-norm", "l2", "--ece-bins", "10",
        json_path=tmp_path / "r.json",
    )  # fmt: skip
    assert rc == 0, err
    keep = t != -100
    # torchmetrics' default binning, written out in torch: bucketize(right=True) - 1
    probs = torch.softmax(torch.from_numpy(z[keep].astype(np.float64)), dim=1)
    conf, pred = probs.max(dim=1)
    acc = pred.eq(torch.from_numpy(t[keep])).double()
    edges = torch.linspace(0, 1, 11, dtype=torch.float64)
    idx = torch.bucketize(conf, edges, right=True) - 1
    cnt = torch.zeros(11, dtype=torch.float64).scatter_add_(0, idx, torch.ones_like(conf))
    cb = torch.nan_to_num(torch.zeros(11, dtype=torch.float64).scatter_add_(0, idx, conf) / cnt)
    ab = torch.nan_to_num(torch.zeros(11, dtype=torch.float64).scatter_add_(0, idx, acc) / cnt)
    prop = cnt / cnt.sum()
    l2 = float(torch.sqrt(torch.sum((ab - cb) ** 2 * prop)))
    mce = float(torch.max(torch.abs(ab - cb)))
    assert got["ece"] == pytest.approx(l2, abs=1e-3)
    assert got["calibration"]["ece_l2"] == got["ece"]
    assert got["mce"] == pytest.approx(mce, abs=1e-2)
    assert sum(got["calibration"]["count"]) == int(keep.sum())


@pytest.mark.parametrize("dtype", ["float64", "float16", "bfloat16"])
def test_other_float_dtypes(dtype, tmp_path):
    rng = np.random.default_rng(7)
    z, t = make_data(rng, n=800, C=29)
    if dtype == "bfloat16":
        ml_dtypes = pytest.importorskip("ml_dtypes")
        zs = z.astype(ml_dtypes.bfloat16)
        extra = ["--dtype", "bfloat16"]  # ml_dtypes arrays save as '<V2'
    else:
        zs = z.astype(dtype)
        extra = []
    np.save(tmp_path / "z.npy", zs)
    np.save(tmp_path / "t.npy", t.astype(np.int32))
    rc, _, err, got = run_eval(
        tmp_path / "z.npy", tmp_path / "t.npy", *extra, json_path=tmp_path / "r.json"
    )
    assert rc == 0, err
    # the oracle sees exactly the values stored; 16-bit values tie often, which the rank
    # rule has to handle
    assert_matches(
        got, oracle(zs.astype(np.float64), t), rtol=1e-12 if dtype == "float64" else 2e-6
    )


def test_bfloat16_header_without_dtype_is_explained(tmp_path):
    ml_dtypes = pytest.importorskip("ml_dtypes")
    np.save(tmp_path / "z.npy", np.zeros((4, 3), dtype=ml_dtypes.bfloat16))
    np.save(tmp_path / "t.npy", np.zeros(4, dtype=np.int64))
    rc, _, err, _ = run_eval(tmp_path / "z.npy", tmp_path / "t.npy")
    assert rc == 2 and "--dtype bfloat16" in err


def test_chunk_size_does_not_change_the_result(data32, tmp_path):
    d, _, _ = data32
    results = []
    for chunk in ("64", "0.05", "0.003"):  # one chunk; a few; a row or so each
        rc, _, err, got = run_eval(
            d / "z.npy", d / "t.npy", "--chunk-mb", chunk, json_path=tmp_path / f"{chunk}.json"
        )
        assert rc == 0, err
        results.append(got)
    base = results[0]
    for other in results[1:]:
        for key in ["n_rows", "n_counted", "accuracy", "top_k_accuracy"]:
            assert other[key] == base[key]
        for key in SCALARS + ["ece", "mce"]:
            assert other[key] == pytest.approx(base[key], rel=1e-13, abs=1e-15), key
        assert other["calibration"]["count"] == base["calibration"]["count"]
        assert other["per_class"]["count"] == base["per_class"]["count"]
        np.testing.assert_allclose(
            np.array(other["per_class"]["cross_entropy"], dtype=float),
            np.array(base["per_class"]["cross_entropy"], dtype=float),
            rtol=1e-13,
        )


def test_3d_with_shift(tmp_path):
    rng = np.random.default_rng(3)
    B, T, C = 5, 64, 23
    z = rng.standard_normal((B, T, C)).astype(np.float32)
    t = rng.integers(0, C, (B, T))
    t[:, -7:] = -100  # right padding
    np.save(tmp_path / "z.npy", z)
    np.save(tmp_path / "t.npy", t)
    rc, _, err, got = run_eval(
        tmp_path / "z.npy", tmp_path / "t.npy", "--shift", "--chunk-mb", "0.004",
        json_path=tmp_path / "r.json",
    )  # fmt: skip
    assert rc == 0, err
    want = oracle(z[:, :-1].reshape(-1, C), t[:, 1:].reshape(-1))
    assert got["n_rows"] == B * (T - 1)
    assert got["n_ignored"] == B * 7
    assert_matches(got, want, rtol=2e-6)
    # without --shift: position t against label t
    rc, _, err, got = run_eval(
        tmp_path / "z.npy", tmp_path / "t.npy", json_path=tmp_path / "s.json"
    )
    assert rc == 0, err
    assert_matches(got, oracle(z.reshape(-1, C), t.reshape(-1)), rtol=2e-6)


@pytest.mark.parametrize(
    ("layout", "axis", "chunk"),
    [
        ("bct", "1", "64"),  # whole batches per chunk
        ("bct", "1", "0.002"),  # part of a sequence per chunk: one read per class
        ("cn", "0", "0.002"),
        ("cn", "-2", "64"),
    ],
)
def test_class_axis(layout, axis, chunk, tmp_path):
    rng = np.random.default_rng(11)
    if layout == "bct":
        B, C, T = 3, 17, 40
        z = rng.standard_normal((B, C, T)).astype(np.float32)
        t = rng.integers(0, C, (B, T))
        rows, labels = np.moveaxis(z, 1, -1).reshape(-1, C), t.reshape(-1)
    else:
        C, N = 13, 500
        z = rng.standard_normal((C, N)).astype(np.float32)
        t = rng.integers(0, C, N)
        rows, labels = z.T, t
    np.save(tmp_path / "z.npy", z)
    np.save(tmp_path / "t.npy", t)
    rc, _, err, got = run_eval(
        tmp_path / "z.npy", tmp_path / "t.npy", "--class-axis", axis, "--chunk-mb", chunk,
        json_path=tmp_path / "r.json",
    )  # fmt: skip
    assert rc == 0, err
    assert_matches(got, oracle(rows, labels), rtol=2e-6)


# ----------------------------------------------------------------------------- file formats


@pytest.mark.parametrize("compressed", [False, True])
def test_npz_members(data32, tmp_path, compressed):
    _, z, t = data32
    path = tmp_path / "both.npz"
    (np.savez_compressed if compressed else np.savez)(path, logits=z, labels=t, other=t[:3])
    with zipfile.ZipFile(path) as zf:
        kinds = {i.compress_type for i in zf.infolist()}
    assert kinds == {zipfile.ZIP_DEFLATED if compressed else zipfile.ZIP_STORED}
    # 'logits' and 'labels' are found by name; FILE:NAME names one explicitly
    rc, _, err, got = run_eval(
        path, f"{path}:labels", "--chunk-mb", "0.05", json_path=tmp_path / "r.json"
    )
    assert rc == 0, err
    assert_matches(got, oracle(z, t), rtol=2e-6)
    assert got["inputs"]["logits"]["file"] == f"{path}:logits"


def test_npz_with_unnamed_members_needs_a_name(data32, tmp_path):
    _, z, t = data32
    np.savez(tmp_path / "a.npz", z[:10], z[:10])
    np.save(tmp_path / "t.npy", t[:10])
    rc, _, err, _ = run_eval(tmp_path / "a.npz", tmp_path / "t.npy")
    assert rc == 2 and "arr_0, arr_1" in err and ":NAME" in err
    rc, _, err, _ = run_eval(f"{tmp_path / 'a.npz'}:nope", tmp_path / "t.npy")
    assert rc == 2 and "no array named 'nope'" in err
    rc, _, err, _ = run_eval(f"{tmp_path / 'a.npz'}:arr_1", tmp_path / "t.npy", "--quiet")
    assert rc == 0, err


def test_compressed_3d_member_with_shift(tmp_path):
    rng = np.random.default_rng(4)
    z = rng.standard_normal((3, 40, 19)).astype(np.float32)
    t = rng.integers(0, 19, (3, 40))
    np.savez_compressed(tmp_path / "a.npz", logits=z, labels=t)
    rc, _, err, got = run_eval(
        tmp_path / "a.npz", tmp_path / "a.npz", "--shift", "--chunk-mb", "0.001",
        json_path=tmp_path / "r.json",
    )  # fmt: skip
    assert rc == 0, err
    assert_matches(got, oracle(z[:, :-1].reshape(-1, 19), t[:, 1:].reshape(-1)), rtol=2e-6)


def test_compressed_member_with_class_axis_first_is_refused(tmp_path):
    z = np.zeros((7, 300000), dtype=np.float32)  # classes first, one row is spread over all
    np.savez_compressed(tmp_path / "a.npz", logits=z)
    np.save(tmp_path / "t.npy", np.zeros(300000, dtype=np.int64))
    rc, _, err, _ = run_eval(
        tmp_path / "a.npz", tmp_path / "t.npy", "--class-axis", "0", "--chunk-mb", "1"
    )
    assert rc == 2 and "np.savez" in err and "Traceback" not in err


def test_raw_binary(data32, tmp_path):
    _, z, t = data32
    z.astype(np.float64).tofile(tmp_path / "z.bin")
    t.astype(np.int16).tofile(tmp_path / "t.bin")
    rc, _, err, got = run_eval(
        tmp_path / "z.bin", tmp_path / "t.bin", "--shape", f"{z.shape[0]},{z.shape[1]}",
        "--dtype", "float64", "--labels-dtype", "int16", json_path=tmp_path / "r.json",
    )  # fmt: skip
    assert rc == 0, err
    assert_matches(got, oracle(z, t), rtol=1e-12)
    rc, _, err, _ = run_eval(
        tmp_path / "z.bin",
        tmp_path / "t.bin",
        "--shape",
        "10,10",
        "--dtype",
        "float64",
        "--labels-dtype",
        "int16",
    )
    assert rc == 2 and "z.bin" in err and "needs 800" in err


# ----------------------------------------------------------------------------- bad input


def _bad_inputs(d: Path) -> dict[str, tuple[list[str], str, str]]:
    """name -> (arguments, the file the message must name, a phrase it must contain)"""
    rng = np.random.default_rng(5)
    z = rng.standard_normal((20, 6)).astype(np.float32)
    t = rng.integers(0, 6, 20)
    np.save(d / "z.npy", z)
    np.save(d / "t.npy", t)
    np.save(d / "z1d.npy", z[0])
    np.save(d / "t_short.npy", t[:19])
    t_bad = t.copy()
    t_bad[13] = 6
    np.save(d / "t_range.npy", t_bad)
    t_neg = t.copy()
    t_neg[2] = -1
    np.save(d / "t_neg.npy", t_neg)
    np.save(d / "t_float.npy", t.astype(np.float32))
    np.save(d / "z_int.npy", t.reshape(4, 5))
    for name, value in (("nan", np.nan), ("inf", np.inf), ("ninf", -np.inf)):
        zz = z.copy()
        zz[11, 2] = value
        np.save(d / f"z_{name}.npy", zz)
    (d / "text.npy").write_text("rows,classes\n1,2\n")
    with open(d / "z.npy", "rb") as f:
        (d / "z_trunc.npy").write_bytes(f.read()[:-40])
    (d / "unreadable.npy").write_bytes((d / "z.npy").read_bytes())
    os.chmod(d / "unreadable.npy", 0)
    (d / "adir").mkdir()
    s = str(d)
    return {
        "missing": ([f"{s}/nope.npy", f"{s}/t.npy"], "nope.npy", "no such file"),
        "missing labels": ([f"{s}/z.npy", f"{s}/nope.npy"], "nope.npy", "no such file"),
        "directory": ([f"{s}/adir", f"{s}/t.npy"], "adir", "directory"),
        "unreadable": ([f"{s}/unreadable.npy", f"{s}/t.npy"], "unreadable.npy", "cannot be read"),
        "not numpy": ([f"{s}/text.npy", f"{s}/t.npy"], "text.npy", "not a NumPy file"),
        "truncated": ([f"{s}/z_trunc.npy", f"{s}/t.npy"], "z_trunc.npy", "truncated"),
        "1-D logits": ([f"{s}/z1d.npy", f"{s}/t.npy"], "z1d.npy", "2-D"),
        "integer logits": ([f"{s}/z_int.npy", f"{s}/t.npy"], "z_int.npy", "float16, bfloat16"),
        "length mismatch": ([f"{s}/z.npy", f"{s}/t_short.npy"], "t_short.npy", "need (20,)"),
        "label too large": ([f"{s}/z.npy", f"{s}/t_range.npy"], "t_range.npy", "label 6 at [13] is out of range for 6 classes"),
        "negative label": ([f"{s}/z.npy", f"{s}/t_neg.npy"], "t_neg.npy", "label -1 at [2]"),
        "float labels": ([f"{s}/z.npy", f"{s}/t_float.npy"], "t_float.npy", "must be integers"),
        "nan": ([f"{s}/z_nan.npy", f"{s}/t.npy"], "z_nan.npy", "non-finite logits (NaN or infinity) in row [11]"),
        "inf": ([f"{s}/z_inf.npy", f"{s}/t.npy"], "z_inf.npy", "row [11]"),
        "-inf": ([f"{s}/z_ninf.npy", f"{s}/t.npy"], "z_ninf.npy", "--nonfinite skip"),
        "class axis": ([f"{s}/z.npy", f"{s}/t.npy", "--class-axis", "2"], "z.npy", "--class-axis 2 is out of range"),
        "dtype mismatch": ([f"{s}/z.npy", f"{s}/t.npy", "--dtype", "float16"], "z.npy", "--dtype float16 does not match the file's <f4"),
        "plot into a file": ([f"{s}/z.npy", f"{s}/t.npy", "--plot", f"{s}/t.npy"], "t.npy", "--plot needs a directory"),
        "json nowhere": ([f"{s}/z.npy", f"{s}/t.npy", "--json", f"{s}/nodir/r.json"], "r.json", "no directory"),
    }  # fmt: skip


@pytest.fixture(scope="module")
def bad_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("bad")
    cases = _bad_inputs(d)
    yield d, cases
    os.chmod(d / "unreadable.npy", 0o600)


BAD_NAMES = [
    "missing", "missing labels", "directory", "unreadable", "not numpy", "truncated",
    "1-D logits", "integer logits", "length mismatch", "label too large", "negative label",
    "float labels", "nan", "inf", "-inf", "class axis", "dtype mismatch", "plot into a file",
    "json nowhere",
]  # fmt: skip


@pytest.mark.parametrize("name", BAD_NAMES)
def test_bad_input_is_one_line_on_stderr_with_exit_2(bad_dir, name):
    _, cases = bad_dir
    args, file, phrase = cases[name]
    if name == "unreadable" and os.geteuid() == 0:
        pytest.skip("root reads files whatever their mode")
    rc, out, err, _ = run_eval(*args)
    assert rc == 2, (out, err)
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("logitkit eval: error: ")
    assert file in lines[0] and phrase in lines[0], lines[0]


def test_shift_needs_a_sequence_axis(bad_dir):
    d, _ = bad_dir
    # (classes, rows) with --class-axis 0 has a sequence axis of 20: fine; a single column is not
    np.save(d / "zc.npy", np.zeros((6, 1), dtype=np.float32))
    np.save(d / "tc.npy", np.zeros(1, dtype=np.int64))
    rc, _, err, _ = run_eval(d / "zc.npy", d / "tc.npy", "--shift", "--class-axis", "0")
    assert rc == 2 and "--shift needs a sequence axis of at least 2" in err


def test_nonfinite_skip_counts_and_excludes_rows(tmp_path):
    rng = np.random.default_rng(9)
    z, t = make_data(rng, n=400, C=11)
    z = z.astype(np.float32)
    bad_rows = [3, 50, 51, 399]
    z[3, 0], z[50, 4], z[51, :], z[399, 10] = np.nan, np.inf, -np.inf, -np.inf
    t[[3, 50, 51, 399]] = [1, 2, 3, 4]
    t[60] = -100
    z[60, 1] = np.nan  # an ignored row's logits do not matter
    np.save(tmp_path / "z.npy", z)
    np.save(tmp_path / "t.npy", t)
    rc, _, err, got = run_eval(
        tmp_path / "z.npy", tmp_path / "t.npy", "--nonfinite", "skip", json_path=tmp_path / "r.json"
    )
    assert rc == 0, err
    keep = np.ones(len(t), bool)
    keep[bad_rows] = False
    assert got["n_nonfinite"] == 4
    assert got["n_rows"] == 400 and got["n_ignored"] == int((t == -100).sum())
    assert_matches(got, oracle(z[keep], t[keep]), rtol=2e-6)


def test_uint8_labels_and_custom_ignore_index(tmp_path):
    rng = np.random.default_rng(2)
    z, t = make_data(rng, n=500, C=9, ignore_frac=0)
    t[::5] = 255
    np.save(tmp_path / "z.npy", z.astype(np.float32))
    np.save(tmp_path / "t.npy", t.astype(np.uint8))
    rc, _, err, got = run_eval(
        tmp_path / "z.npy",
        tmp_path / "t.npy",
        "--ignore-index",
        "255",
        json_path=tmp_path / "r.json",
    )
    assert rc == 0, err
    assert_matches(got, oracle(z.astype(np.float32), t, ignore=255), rtol=2e-6)
    rc, _, err, _ = run_eval(tmp_path / "z.npy", tmp_path / "t.npy")
    assert rc == 2 and "label 255 at [0]" in err


def test_no_counted_rows_gives_nulls(tmp_path):
    np.save(tmp_path / "z.npy", np.zeros((4, 3), dtype=np.float32))
    np.save(tmp_path / "t.npy", np.full(4, -100))
    rc, _, err, got = run_eval(
        tmp_path / "z.npy", tmp_path / "t.npy", json_path=tmp_path / "r.json"
    )
    assert rc == 0, err
    assert got["n_counted"] == 0 and got["cross_entropy"] is None and got["ece"] is None


# ----------------------------------------------------------------------------- memory, output


@pytest.mark.skipif(
    bool(os.environ.get("LOGITKIT_SANITIZED")),
    reason="memory use under a sanitizer measures the sanitizer",
)
def test_memory_stays_bounded_on_a_large_file(tmp_path):
    """A 256 MB file evaluated in 8 MB chunks: the child's peak RSS stays far below it."""
    rows, C = 2048, 32768
    path = tmp_path / "big.npy"
    mm = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(rows, C))
    rng = np.random.default_rng(0)
    block = rng.standard_normal((64, C), dtype=np.float32)
    for r in range(0, rows, 64):
        mm[r : r + 64] = block
        mm[r : r + 64, r // 64] += 4.0  # some structure, so accuracy is not 0
    mm.flush()
    del mm
    np.save(tmp_path / "t.npy", np.arange(rows) // 64)
    size = path.stat().st_size
    assert size > 256e6
    probe = (
        "import resource, subprocess, sys; r = subprocess.run(sys.argv[1:]); "
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); sys.exit(r.returncode)"
    )
    proc = subprocess.run(
        [sys.executable, "-c", probe, sys.executable, "-m", "logitkit", "eval", str(path),
         str(tmp_path / "t.npy"), "--chunk-mb", "8", "--quiet", "--json", str(tmp_path / "r.json")],
        capture_output=True, text=True, env=ENV, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    peak_mb = int(proc.stdout.strip().splitlines()[-1]) / 1024
    assert peak_mb < 160, f"peak RSS {peak_mb:.0f} MB for a {size / 1e6:.0f} MB file"
    got = json.loads((tmp_path / "r.json").read_text())
    assert got["n_counted"] == rows and got["n_classes"] == C
    # Block b holds the same 64 rows with class b raised by 4 and labelled b: the float64
    # cross-entropy and accuracy follow from the rows' sums without forming the file.
    base = block.astype(np.float64)
    total = np.exp(base).sum(axis=1)
    nll, correct = [], []
    for b in range(rows // 64):
        raised = (block[:, b] + np.float32(4.0)).astype(np.float64)
        lse = np.log(total - np.exp(base[:, b]) + np.exp(raised))
        nll.append(lse - raised)
        others = np.delete(base, b, axis=1)
        first_max = (raised > others.max(axis=1)) | (
            (raised == others.max(axis=1)) & (others[:, :b].max(axis=1, initial=-np.inf) < raised)
        )
        correct.append(first_max)
    assert got["cross_entropy"] == pytest.approx(np.mean(nll), rel=1e-5)
    assert got["accuracy"] == pytest.approx(np.mean(correct), rel=1e-12)


def test_plots(data32, tmp_path):
    pytest.importorskip("matplotlib")
    d, _, _ = data32
    rc, out, err, _ = run_eval(d / "z.npy", d / "t.npy", "--plot", tmp_path / "plots")
    assert rc == 0, err
    for name in ("reliability.png", "confidence.png", "per_class_accuracy.png"):
        data = (tmp_path / "plots" / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
    assert "reliability.png" in out


def test_progress_bar_on_a_terminal(data32):
    pytest.importorskip("tqdm")
    pty = pytest.importorskip("pty")
    d, _, _ = data32
    leader, follower = pty.openpty()
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "logitkit", "eval", str(d / "z.npy"), str(d / "t.npy"),
             "--chunk-mb", "0.05"],
            stdout=subprocess.PIPE, stderr=follower, env=ENV, timeout=120,
        )  # fmt: skip
        os.close(follower)
        follower = -1
        chunks = []
        while True:
            try:
                data = os.read(leader, 65536)
            except OSError:
                break
            if not data:
                break
            chunks.append(data)
    finally:
        if follower >= 0:
            os.close(follower)
        os.close(leader)
    assert proc.returncode == 0
    bar = b"".join(chunks).decode(errors="replace")
    assert "row/s" in bar and "3.00k/3.00k" in bar
    # --quiet silences it on a terminal too
    leader, follower = pty.openpty()
    proc = subprocess.run(
        [sys.executable, "-m", "logitkit", "eval", str(d / "z.npy"), str(d / "t.npy"), "--quiet"],
        stdout=subprocess.PIPE, stderr=follower, env=ENV, timeout=120,
    )  # fmt: skip
    os.close(follower)
    os.set_blocking(leader, False)
    try:
        leftover = os.read(leader, 65536)
    except OSError:
        leftover = b""
    os.close(leader)
    assert proc.returncode == 0 and leftover == b""


# ----------------------------------------------------------------------------- the command


def test_help_defines_every_metric(capsys):
    with pytest.raises(SystemExit) as exc:
        cli_main(["eval", "--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    for word in ("corpus-level", "torchmetrics", "bits", "Brier", "ties", "--ece-norm", "--shift"):
        assert word in text


def test_main_in_process(data32, tmp_path, capsys):
    d, z, t = data32
    code = cli_main(
        ["eval", str(d / "z.npy"), str(d / "t.npy"), "--json", str(tmp_path / "r.json"), "--quiet"]
    )
    assert code == 0
    got = json.loads((tmp_path / "r.json").read_text())
    assert got["cross_entropy"] == pytest.approx(oracle(z, t)["cross_entropy"], rel=2e-6)
    assert cli_main(["eval", str(tmp_path / "none.npy"), str(d / "t.npy")]) == 2
    assert "none.npy: no such file" in capsys.readouterr().err


def test_check_and_info_subcommands(capsys):
    args = ["--rows", "16", "--cols", "300", "--repeat", "1"]
    # options only still mean check, as `python -m logitkit` always did
    proc = subprocess.run(
        [sys.executable, "-m", "logitkit", *args],
        capture_output=True,
        text=True,
        env=ENV,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "check: PASS, 7 of 7 functions agree" in proc.stdout
    assert cli_main(["check", *args]) == 0
    assert "check: PASS, 7 of 7 functions agree" in capsys.readouterr().out
    assert cli_main(["info"]) == 0
    assert "version" in capsys.readouterr().out
    assert cli_main(["frobnicate"]) == 2
    assert "unknown subcommand 'frobnicate'" in capsys.readouterr().err


# ----------------------------------------------------------------------------- storage types


@pytest.mark.parametrize("dtype", [">f4", ">f8", ">f2"])
def test_big_endian_files(dtype, tmp_path):
    rng = np.random.default_rng(8)
    z, t = make_data(rng, n=300, C=19)
    np.save(tmp_path / "be.npy", z.astype(dtype))
    np.save(tmp_path / "le.npy", z.astype(dtype.replace(">", "<")))
    np.save(tmp_path / "t.npy", t)
    rc, _, err, be = run_eval(
        tmp_path / "be.npy", tmp_path / "t.npy", json_path=tmp_path / "b.json"
    )
    assert rc == 0, err
    rc, _, err, le = run_eval(
        tmp_path / "le.npy", tmp_path / "t.npy", json_path=tmp_path / "l.json"
    )
    assert rc == 0, err
    for key in SCALARS + ["accuracy", "top_k_accuracy", "ece", "calibration", "per_class"]:
        assert be[key] == le[key], key


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_16_bit_logits_give_their_float32_widening_results(dtype, tmp_path):
    """The kernels read 16-bit logits as stored and compute in float32: every figure equals
    that of a float32 file holding the same values."""
    if dtype == "bfloat16":
        dtype = pytest.importorskip("ml_dtypes").bfloat16
    rng = np.random.default_rng(12)
    z, t = make_data(rng, n=700, C=37)
    z16 = z.astype(dtype)
    np.save(tmp_path / "z16.npy", z16)
    np.save(tmp_path / "z32.npy", z16.astype(np.float32))
    np.save(tmp_path / "t.npy", t)
    extra = ["--dtype", "bfloat16"] if z16.dtype.name == "bfloat16" else []
    rc, _, err, a = run_eval(
        tmp_path / "z16.npy", tmp_path / "t.npy", *extra, json_path=tmp_path / "a.json"
    )
    assert rc == 0, err
    rc, _, err, b = run_eval(
        tmp_path / "z32.npy", tmp_path / "t.npy", json_path=tmp_path / "b.json"
    )
    assert rc == 0, err
    for key in SCALARS + ["accuracy", "top_k_accuracy", "ece", "calibration", "per_class"]:
        assert a[key] == b[key], key


# ----------------------------------------------------------------------------- reading


def test_mapped_and_read_chunks_agree(data32, tmp_path, monkeypatch):
    """Chunks are mapped from the file where they can be; read into a buffer, the figures
    are the same."""
    from logitkit import _eval, _eval_io

    d, _, _ = data32
    opts = _eval.Options(chunk_bytes=50_000)
    inputs = _eval.resolve_inputs(str(d / "z.npy"), str(d / "t.npy"), opts)
    mapped = []
    original = _eval_io.ArrayFile.map_elements

    def spy(self, start, count):
        block = original(self, start, count)
        mapped.append(block is not None)
        return block

    monkeypatch.setattr(_eval_io.ArrayFile, "map_elements", spy)
    got, _ = _eval.evaluate(inputs, opts)
    assert len(mapped) > 2 and all(mapped)
    monkeypatch.setattr(_eval_io.ArrayFile, "map_elements", lambda self, start, count: None)
    want, _ = _eval.evaluate(inputs, opts)
    assert _eval._jsonable(got) == _eval._jsonable(want)


def test_unaligned_npz_member_is_read(data32, tmp_path):
    """A stored .npz member's data need not be aligned for its type: such a member is read
    into a buffer, not mapped."""
    from logitkit import _eval_io

    _, z, t = data32
    np.savez(tmp_path / "a.npz", z=z, t=t)  # member "z.npy": data at an odd offset
    member = _eval_io.open_array(
        f"{tmp_path / 'a.npz'}:z", prefer_member="logits", raw_shape=None, raw_dtype=None
    )
    assert member.seekable and member.offset % 4 != 0
    member.open()
    try:
        assert member.map_elements(0, 10) is None
    finally:
        member.close()
    rc, _, err, got = run_eval(
        f"{tmp_path / 'a.npz'}:z", f"{tmp_path / 'a.npz'}:t", json_path=tmp_path / "r.json"
    )
    assert rc == 0, err
    assert_matches(got, oracle(z, t), rtol=2e-6)


def test_file_cut_short_while_open_is_reported(tmp_path):
    """Mapping past the end of a file that shrank after it was opened would end the process
    with SIGBUS when read; it is reported instead."""
    from logitkit import _eval_io

    np.save(tmp_path / "z.npy", np.zeros((100, 10), dtype=np.float32))
    arr = _eval_io.open_array(
        str(tmp_path / "z.npy"), prefer_member="logits", raw_shape=None, raw_dtype=None
    )
    arr.open()
    try:
        os.truncate(tmp_path / "z.npy", arr.offset + 4000)
        assert arr.map_elements(0, 1000) is not None
        with pytest.raises(_eval_io.EvalError, match="truncated"):
            arr.map_elements(0, 1001)
    finally:
        arr.close()


def test_mapped_chunk_is_read_before_it_is_handed_over(tmp_path, monkeypatch):
    """map_elements, called a chunk ahead, reads the chunk's bytes from the disk itself
    (sendfile to /dev/null, else preadv), so that the computation's page faults find them
    in memory; the mapping gives the file's values either way."""
    from logitkit import _eval_io

    z = np.arange(3000, dtype=np.float32).reshape(300, 10)
    np.save(tmp_path / "z.npy", z)
    arr = _eval_io.open_array(
        str(tmp_path / "z.npy"), prefer_member="logits", raw_shape=None, raw_dtype=None
    )
    sent: list[tuple[int, int]] = []
    read: list[tuple[int, int]] = []
    sendfile, preadv = os.sendfile, os.preadv

    def spy_sendfile(out, fd, pos, count):
        got = sendfile(out, fd, pos, count)
        sent.append((pos, got))
        return got

    def spy_preadv(fd, buffers, pos):
        got = preadv(fd, buffers, pos)
        read.append((pos, got))
        return got

    def refuse(out, fd, pos, count):
        raise OSError(22, "Invalid argument")

    monkeypatch.setattr(os, "sendfile", spy_sendfile)
    monkeypatch.setattr(os, "preadv", spy_preadv)
    arr.open()
    try:
        block = arr.map_elements(100 * 10, 50 * 10)
        assert block is not None
        np.testing.assert_array_equal(block.reshape(50, 10), z[100:150])
        start = arr.offset + 100 * 10 * 4
        assert sum(n for _, n in sent) == 50 * 10 * 4 and sent[0][0] == start
        assert not read
        monkeypatch.setattr(os, "sendfile", refuse)
        sent.clear()
        block = arr.map_elements(200 * 10, 100 * 10)
        assert block is not None
        np.testing.assert_array_equal(block.reshape(100, 10), z[200:])
        assert sum(n for _, n in read) == 100 * 10 * 4 and read[0][0] == arr.offset + 8000
    finally:
        arr.close()
