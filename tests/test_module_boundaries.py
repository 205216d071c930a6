"""No module of the package uses another module's private (underscore) names.

What modules share is public in the module that defines it: the argument checks in
``_validation``, the row layout in ``_rows``. ``_core``, the compiled extension, is the one
exception: its names are the native entry points.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "python" / "logitkit"
MODULES = {path.stem for path in PACKAGE.glob("*.py")} | {"_core"}
EXTENSION = "_core"


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _source_module(node: ast.ImportFrom) -> str | None:
    """The package module an import reads from: "" for the package itself, None for an
    import from outside the package."""
    if node.level == 1:
        return node.module or ""
    if node.level == 0 and node.module is not None:
        if node.module == "logitkit":
            return ""
        if node.module.startswith("logitkit."):
            return node.module.split(".", 1)[1]
    return None


def private_uses(source: str, own: str) -> list[str]:
    """``module._name`` for each private name of another package module that ``source``
    (the text of module ``own``) imports or reads as an attribute."""
    tree = ast.parse(source)
    aliases: dict[str, str] = {}  # local name -> package module ("" for the package)
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            src = _source_module(node)
            if src is None:
                continue
            for alias in node.names:
                if src == "" and alias.name in MODULES:
                    aliases[alias.asname or alias.name] = alias.name
                elif _private(alias.name) and src not in (own, EXTENSION):
                    found.append(f"{src or 'logitkit'}.{alias.name}")
        elif isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] != "logitkit":
                    continue
                if alias.asname is not None:
                    aliases[alias.asname] = parts[1] if len(parts) > 1 else ""
                else:
                    aliases["logitkit"] = ""

    def module_of(expr: ast.expr) -> str | None:
        if isinstance(expr, ast.Name):
            return aliases.get(expr.id)
        if isinstance(expr, ast.Attribute) and module_of(expr.value) == "":
            return expr.attr if expr.attr in MODULES else None
        return None

    for node in ast.walk(tree):
        if not isinstance(node, ast.Attribute):
            continue
        module = module_of(node.value)
        if module is None or module in (own, EXTENSION):
            continue
        if _private(node.attr) and not (module == "" and node.attr in MODULES):
            found.append(f"{module or 'logitkit'}.{node.attr}")
    return found


def _all_uses() -> set[tuple[str, str]]:
    return {
        (path.name, use)
        for path in sorted(PACKAGE.glob("*.py"))
        for use in private_uses(path.read_text(encoding="utf-8"), path.stem)
    }


def test_no_module_uses_another_modules_private_names():
    unexpected = sorted(_all_uses())
    assert not unexpected, (
        "private names used across modules (make them public where they are defined, or "
        f"move them to _rows or _validation): {unexpected}"
    )


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("from ._storage import _POOLED_MIN_BYTES", ["_storage._POOLED_MIN_BYTES"]),
        ("from logitkit._reductions import _RowInfo", ["_reductions._RowInfo"]),
        ("from . import _losses\n_losses._prepare()", ["_losses._prepare"]),
        ("from . import _losses as L\nL._prepare()", ["_losses._prepare"]),
        ("import logitkit._losses as L\nL._prepare()", ["_losses._prepare"]),
        ("import logitkit as lk\nlk._runtime._isa_index('x', 'y')", ["_runtime._isa_index"]),
        ("import logitkit\nlogitkit._losses._run()", ["_losses._run"]),
        ("from logitkit import _private_helper", ["logitkit._private_helper"]),
        # allowed: public names, modules, the extension, dunders, the module's own names
        ("from ._rows import map_rows\nfrom . import _core\n_core._anything()", []),
        ("from . import _losses\n_losses.cross_entropy\n_losses.__name__", []),
        ("import logitkit as lk\nlk._core.softmax\nlk.__version__", []),
        ("from ._this import _helper", []),
    ],
)
def test_the_check_finds_private_uses(source, expected):
    assert private_uses(source, "_this") == expected
