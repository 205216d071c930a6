"""Every public function gives today's results, bit for bit, on every ISA this machine runs.

The cases (tests/golden/cases.py) cover float32 and float64, and under ``storage16/``
float16 and bfloat16, over row lengths, layouts, options and special values; their
SHA-256 digests were recorded from one build in tests/golden/digests.json. A refactor of
the native code must reproduce them all. When a change of the numbers is intended,
regenerate the file as tests/golden/make_golden.py says, and review its diff.
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
GOLDEN = json.loads((GOLDEN_DIR / "digests.json").read_text())
RECORDED: dict[str, dict[str, str]] = GOLDEN["isas"]
AVAILABLE = lk.available_isas()
ISAS = list(RECORDED) + [isa for isa in AVAILABLE if isa not in RECORDED]


def _listing(title: str, ids: list[str]) -> str:
    shown = "\n".join(f"    {case_id}" for case_id in ids[:SHOWN])
    more = f"\n    ... and {len(ids) - SHOWN} more" if len(ids) > SHOWN else ""
    return f"  {title} ({len(ids)}):\n{shown}{more}"


def _context() -> str:
    """What else differs from the recording, which would explain changes across the board."""
    notes = []
    if cases.inputs_digest() != GOLDEN["inputs"]:
        notes.append(
            "the generated inputs differ from the recorded ones (NumPy's random streams or "
            "casts changed): the digests cannot match, whatever the kernels do"
        )
    recorded = GOLDEN["platform"]
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
            f"digests.json has {isa!r} results but this build or CPU cannot run {isa!r} "
            f"(available: {', '.join(AVAILABLE)})"
        )
    if isa not in RECORDED:
        pytest.skip(
            f"{isa!r} runs here but digests.json has no {isa!r} results (recorded: "
            f"{', '.join(RECORDED)}); record them on a machine with {isa!r}: {REGENERATE}"
        )
    expected = RECORDED[isa]
    changed: list[str] = []
    storage16: list[str] = []
    missing: list[str] = []
    raised: list[str] = []
    seen = set()
    with lk.use_isa(isa):
        for case_id, fn in cases.cases():
            seen.add(case_id)
            try:
                got = cases.run(fn)
            except Exception as exc:  # one failing case must not hide the others
                raised.append(f"{case_id}: {type(exc).__name__}: {exc}")
                continue
            if case_id not in expected:
                missing.append(case_id)
            elif got != expected[case_id]:
                (storage16 if case_id.startswith("storage16/") else changed).append(case_id)
    stale = sorted(set(expected) - seen)
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
            f"golden digests on {isa} ({len(seen)} cases):\n" + "\n".join(problems) + _context(),
            pytrace=False,
        )
