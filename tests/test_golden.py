"""Every public function gives today's results, bit for bit, on every ISA this machine runs.

The cases (tests/golden/cases.py) cover float32 and float64, and under ``storage16/``
float16 and bfloat16, over row lengths, layouts, options and special values; their
SHA-256 digests were recorded from one build in tests/golden/digests*.json, one file per
kind of machine: NumPy's float64 exp and log and its BLAS, which make some inputs and finish
some results, differ in their last bits between CPUs (cases.numpy_fingerprint), and the
file whose recording matches this machine's is the one compared. A refactor of the native
code must reproduce them all. When a change of the numbers is intended, regenerate the
file as tests/golden/make_golden.py says, and review its diff.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

import pytest

import logitkit as lk

pytest.importorskip("ml_dtypes")

GOLDEN_DIR = Path(__file__).resolve().parent / "golden"
REGENERATE = "PYTHONPATH=python python tests/golden/make_golden.py"
SHOWN = 40


def _load_cases() -> Any:
    # by path, under a name of its own: tests/ is not a package, and pytest's import mode
    # decides whether tests/golden is importable by name
    name = "logitkit_golden_cases"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, GOLDEN_DIR / "cases.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


cases = _load_cases()
GOLDEN_FILES = {path.name: json.loads(path.read_text()) for path in cases.golden_files()}
AVAILABLE = lk.available_isas()
ISAS = list(dict.fromkeys([isa for g in GOLDEN_FILES.values() for isa in g["isas"]] + AVAILABLE))


def _listing(title: str, ids: list[str]) -> str:
    shown = "\n".join(f"    {case_id}" for case_id in ids[:SHOWN])
    more = f"\n    ... and {len(ids) - SHOWN} more" if len(ids) > SHOWN else ""
    return f"  {title} ({len(ids)}):\n{shown}{more}"


def _context(golden: dict[str, Any]) -> str:
    """What else differs from the recording, which would explain changes across the board."""
    notes = []
    if cases.inputs_digest() != golden["inputs"]:
        notes.append(
            "the generated inputs differ from the recorded ones (cases added or changed, or "
            "NumPy's random streams or casts changed): their digests cannot match, whatever "
            "the kernels do"
        )
    recorded = golden["platform"]
    here = {"numpy": _version("numpy"), "scipy": _version("scipy"), "logitkit": lk.__version__}
    for key, value in here.items():
        if recorded.get(key) != value:
            notes.append(f"{key} {value} here, {recorded.get(key)} when recorded")
    return "".join(f"\n  note: {n}" for n in notes)


def _version(module: str) -> str | None:
    try:
        return str(__import__(module).__version__)
    except ImportError:
        return None


@pytest.mark.parametrize("isa", ISAS)
def test_golden_digests(isa: str) -> None:
    if isa not in AVAILABLE:
        pytest.skip(
            f"the digests files have {isa!r} results but this build or CPU cannot run {isa!r} "
            f"(available: {', '.join(AVAILABLE)})"
        )
    got: dict[str, str] = {}
    raised: list[str] = []
    with lk.use_isa(isa):
        for case_id, fn in cases.cases():
            try:
                got[case_id] = cases.run(fn)
            except Exception as exc:  # one failing case must not hide the others
                got[case_id] = ""
                raised.append(f"{case_id}: {type(exc).__name__}: {exc}")
    # the inputs are all generated now, so the recording of this kind of machine is known
    name = cases.matching_golden(GOLDEN_FILES)
    if name is None:
        pytest.fail(
            f"no digests file was recorded on a machine whose NumPy gives these numbers "
            f"(fingerprint {cases.numpy_fingerprint()[:12]}; files: "
            f"{', '.join(GOLDEN_FILES) or 'none'}). Record one with the kernels of a commit "
            f"that passes on another kind of machine: {REGENERATE}",
            pytrace=False,
        )
    golden = GOLDEN_FILES[name]
    if isa not in golden["isas"]:
        pytest.skip(
            f"{isa!r} runs here but {name} has no {isa!r} results (recorded: "
            f"{', '.join(golden['isas'])}); record them on a machine with {isa!r}: {REGENERATE}"
        )
    expected = golden["isas"][isa]
    changed: list[str] = []
    storage16: list[str] = []
    missing: list[str] = []
    for case_id, value in got.items():
        if not value:  # raised
            continue
        if case_id not in expected:
            missing.append(case_id)
        elif value != expected[case_id]:
            (storage16 if case_id.startswith("storage16/") else changed).append(case_id)
    stale = sorted(set(expected) - set(got))
    problems = []
    if changed:
        problems.append(_listing(f"float32/float64 results changed on {isa}", changed))
    if storage16:
        problems.append(_listing(f"storage16/ results changed on {isa}", storage16))
    if raised:
        problems.append(_listing(f"cases that raised on {isa}", raised))
    if missing:
        problems.append(
            _listing(
                f"cases with no recorded digest (new cases: regenerate, {REGENERATE})", missing
            )
        )
    if stale:
        problems.append(_listing("recorded cases that cases.py no longer has", stale))
    if problems:
        pytest.fail(
            f"golden digests on {isa} ({len(got)} cases, {name}):\n"
            + "\n".join(problems)
            + _context(golden),
            pytrace=False,
        )


def test_the_recording_of_a_like_machine_is_chosen(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cases, "numpy_fingerprint", lambda: "fp-here")
    monkeypatch.setattr(cases, "inputs_digest", lambda: "inputs-here")
    legacy = {"inputs": "inputs-there", "isas": {}}
    legacy_like = {"inputs": "inputs-here", "isas": {}}
    mine = {"fingerprint": "fp-here", "inputs": "inputs-old", "isas": {}}
    other = {"fingerprint": "fp-there", "inputs": "inputs-here", "isas": {}}
    # the fingerprint decides, even where cases were added since (other inputs)
    assert cases.matching_golden({"a": legacy_like, "b": other, "c": mine}) == "c"
    # without one, a file from before fingerprints: the one with these inputs first
    assert cases.matching_golden({"a": legacy, "b": legacy_like, "c": other}) == "b"
    assert cases.matching_golden({"a": legacy, "c": other}) == "a"
    assert cases.matching_golden({"c": other}) is None
