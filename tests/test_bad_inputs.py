"""Every row of the bad-input table in docs/errors.md, run as written.

A row names one or more functions; ``f`` in its call and message stands for each of them in
turn. The call must raise the exception the row names, with a message that starts as the row
says, and must leave every input array as it was.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import logitkit as lk

TABLE = Path(__file__).resolve().parents[1] / "docs" / "errors.md"
EXCEPTIONS: dict[str, type[BaseException]] = {
    "TypeError": TypeError,
    "ValueError": ValueError,
    "IndexError": IndexError,
    "AxisError": np.exceptions.AxisError,
}


def _rows() -> list[tuple[str, str, str, str]]:
    """(function, call, exception, message) for every function of every table row."""
    rows = []
    for line in TABLE.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 4 or not cells[1].startswith("`"):
            continue
        funcs, call, exc, message = cells
        names = re.findall(r"`(\w+)`", funcs)
        for name in names:
            rows.append(
                (
                    name,
                    re.sub(r"\bf\(", f"lk.{name}(", call.strip("`")),
                    exc,
                    re.sub(r"^f\(\)", f"{name}()", message.strip("`")),
                )
            )
    return rows


ROWS = _rows()


def _namespace() -> dict[str, Any]:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 5)).astype(np.float32)
    readonly = np.empty((3, 5), np.float32)
    readonly.flags.writeable = False
    return {
        "lk": lk,
        "np": np,
        "x": x,
        "p": lk.softmax(x),
        "g": np.ones_like(x),
        "t": np.array([0, 1, 2]),
        "y01": (x > 0).astype(np.float32),
        "readonly": readonly,
        "h": rng.standard_normal((3, 4)).astype(np.float32),
        "W": rng.standard_normal((5, 4)).astype(np.float32),
    }


def test_the_table_covers_every_public_function():
    documented = {name for name, *_ in ROWS}
    public = {
        name
        for name in lk.__all__
        if callable(getattr(lk, name)) and not isinstance(getattr(lk, name), type)
    }
    # functions that take no argument cannot be given a bad one
    public -= {"runtime_info", "show_runtime", "active_isa", "available_isas"}
    # aliases are the same function objects as the names they alias
    public = {n for n in public if not any(getattr(lk, n) is getattr(lk, d) for d in documented)}
    assert public <= documented, sorted(public - documented)
    assert len(ROWS) > 200


@pytest.mark.parametrize("name, call, exc, message", ROWS, ids=[f"{r[0]}: {r[1]}" for r in ROWS])
def test_bad_input_row(name, call, exc, message):
    ns = _namespace()
    arrays = {k: v.copy() for k, v in ns.items() if isinstance(v, np.ndarray)}
    with pytest.raises(EXCEPTIONS[exc]) as info:
        eval(call, ns)  # noqa: S307 - the calls are the documentation's own
    assert type(info.value) is EXCEPTIONS[exc] or exc == "AxisError"
    assert str(info.value).startswith(message), (str(info.value), message)
    assert name in str(info.value)
    for key, before in arrays.items():
        np.testing.assert_array_equal(ns[key], before, err_msg=f"{call} changed {key}")
