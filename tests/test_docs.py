"""Every example in the documentation runs and prints what it says.

- the docstring examples of every module of the package that holds any (found by reading
  the sources, so a new module's examples run without being listed here);
- every public callable has a docstring with an ``Examples`` section and a ``>>>`` example;
- the ``>>>`` examples of README.md and docs/*.md, each file as one doctest;
- the ```` ```python ```` blocks of those files that hold no ``>>>``, executed in order in
  one namespace per file. A block preceded by ``<!-- not run: reason -->`` is not executed
  (it needs a cluster, files on disk or names the text leaves open); it is listed as a
  skipped test with that reason.

An example (or block) that imports an optional dependency which is not installed (PyTorch,
Dask, ...) is skipped, not failed.
"""

from __future__ import annotations

import doctest
import importlib
import inspect
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import logitkit

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = Path(logitkit.__file__).resolve().parent
DOC_FILES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE

# Imports that may be missing: examples needing them are skipped, not failed. Anything else
# an example imports must be there.
OPTIONAL = {"torch", "dask", "distributed", "zarr", "ml_dtypes", "matplotlib"}

# The modules whose public callables make up the documented API.
PUBLIC_MODULES = [
    "logitkit",
    "logitkit.scipy",
    "logitkit.torch",
    "logitkit.dask",
    "logitkit.reference",
    "logitkit.reference_partial",
]


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


DOCTEST_MODULES = sorted(
    _module_name(path)
    for path in PACKAGE.rglob("*.py")
    if path.name != "__main__.py" and ">>>" in path.read_text(encoding="utf-8")
)


EXAMPLE_IMPORT = re.compile(r"^\s*>>>\s*(?:import|from)\s+(\w+)", flags=re.M)
CODE_IMPORT = re.compile(r"^\s*(?:import|from)\s+(\w+)", flags=re.M)


def _skip_missing_imports(code: str, pattern: re.Pattern[str] = EXAMPLE_IMPORT) -> None:
    for name in pattern.findall(code):
        if name in OPTIONAL:
            pytest.importorskip(name)


def _import_module(name: str) -> Any:
    """The module, or a skip when it (or one of its examples) needs an optional dependency
    that is not installed."""
    try:
        module = importlib.import_module(name)
    except ImportError as exc:
        missing = exc.name or getattr(exc.__cause__, "name", None) or ""
        if missing.split(".")[0] in OPTIONAL:
            pytest.skip(f"{name} needs {missing}, which is not installed")
        raise
    _skip_missing_imports(inspect.getsource(module))
    return module


# ---------------------------------------------------------------------------------------------
# Docstrings


def test_modules_with_examples_are_found():
    # the discovery must see the modules known to hold examples; a wrong root would find none
    assert {"logitkit._reductions", "logitkit.scipy", "logitkit.reference._losses"} <= set(
        DOCTEST_MODULES
    )


@pytest.mark.parametrize("name", DOCTEST_MODULES)
def test_docstring_examples(name):
    module = _import_module(name)
    result = doctest.testmod(module, optionflags=FLAGS)
    assert result.attempted > 0, f"{name} holds '>>>' but doctest found no example"
    assert result.failed == 0


def _public_objects(module_name: str) -> list[tuple[str, Any]]:
    module = _import_module(module_name)
    objects = []
    for name in module.__all__:
        obj = getattr(module, name)
        if callable(obj):
            objects.append((f"{module_name}.{name}", obj))
            if inspect.isclass(obj) and obj.__module__.startswith("logitkit"):
                for attr, member in vars(obj).items():
                    if not attr.startswith("_") and (
                        callable(member) or isinstance(member, property)
                    ):
                        objects.append((f"{module_name}.{name}.{attr}", member))
    return objects


@pytest.mark.parametrize("module_name", PUBLIC_MODULES)
def test_public_callables_have_examples(module_name):
    objects = _public_objects(module_name)
    assert objects
    lacking, untested = [], []
    for qualname, obj in objects:
        doc = inspect.getdoc(obj) or ""
        if qualname.count(".") > module_name.count(".") + 1:
            # a method or property: documented, its example is in its class's docstring
            if not doc:
                lacking.append(f"{qualname} (no docstring)")
            continue
        if not re.search(r"^Examples\n-{8}\n", doc, flags=re.M) or ">>>" not in doc:
            lacking.append(qualname)
        defined_in = inspect.getmodule(obj)
        if defined_in is None or defined_in.__name__ not in DOCTEST_MODULES:
            untested.append(qualname)
    assert not lacking, "no 'Examples' section with a '>>>' example: " + ", ".join(lacking)
    assert not untested, "examples that no doctest module runs: " + ", ".join(untested)


# ---------------------------------------------------------------------------------------------
# README.md and docs/*.md

FENCE = re.compile(r"^\s*```")
NOT_RUN = re.compile(r"^<!-- not run: (.+?) -->$")


@dataclass(frozen=True)
class Block:
    """A fenced code block of a Markdown file."""

    path: Path
    line: int  # of the first line of code, counting from 1
    lang: str  # the fence's info string: "python", "pycon", "bash", ""
    code: str
    not_run: str | None  # the reason given by a preceding <!-- not run: reason -->

    @property
    def id(self) -> str:
        return f"{self.path.name}:{self.line}"


def _blocks(path: Path) -> list[Block]:
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks, i = [], 0
    while i < len(lines):
        if not FENCE.match(lines[i]):
            i += 1
            continue
        lang = lines[i].strip()[3:].strip()
        marker = NOT_RUN.match(lines[i - 1].strip()) if i else None
        end = next(j for j in range(i + 1, len(lines)) if FENCE.match(lines[j]))
        code = "\n".join(lines[i + 1 : end]) + "\n"
        blocks.append(Block(path, i + 2, lang, code, marker.group(1) if marker else None))
        i = end + 1
    return blocks


BLOCKS = [block for path in DOC_FILES for block in _blocks(path)]
DOCTEST_FILES = [path for path in DOC_FILES if any(">>>" in b.code for b in _blocks(path))]
SCRIPT_FILES = [
    path
    for path in DOC_FILES
    if any(b.lang == "python" and ">>>" not in b.code for b in _blocks(path))
]


def test_markdown_files_are_found():
    assert {"README.md", "math.md", "scipy.md", "torch.md"} <= {p.name for p in DOC_FILES}


def test_not_run_markers_precede_python_blocks():
    # a marker that precedes no block (or a shell block) would silently mark nothing
    for path in DOC_FILES:
        markers = [
            n + 1
            for n, line in enumerate(path.read_text(encoding="utf-8").splitlines())
            if NOT_RUN.match(line.strip())
        ]
        marked = [b.line - 2 for b in _blocks(path) if b.not_run and b.lang == "python"]
        assert markers == marked, (
            f"{path.name}: a not-run marker on line(s) {markers} precedes no python block"
        )


@pytest.mark.parametrize("path", DOCTEST_FILES, ids=lambda p: p.name)
def test_markdown_doctests(path):
    """The file's ``>>>`` examples, in order, as one doctest (doctest.testfile's reading),
    except that a closing fence ends an example's expected output as a blank line does."""
    text = path.read_text(encoding="utf-8")
    _skip_missing_imports(text)
    if re.search(r"^>>> import torch$", text, flags=re.M):
        # torch.md compiles functions: start from an empty compile cache, as a reader would
        importlib.import_module("torch")._dynamo.reset()
    text = "\n".join("" if FENCE.match(line) else line for line in text.splitlines())
    test = doctest.DocTestParser().get_doctest(text, {}, path.name, str(path), 0)
    runner = doctest.DocTestRunner(optionflags=FLAGS)
    # torch.compile keeps guards on the globals it compiled against: keep them to the end
    runner.run(test, clear_globs=False)
    result = runner.summarize(verbose=False)
    assert result.attempted > 0
    assert result.failed == 0


@pytest.mark.parametrize("path", SCRIPT_FILES, ids=lambda p: p.name)
def test_markdown_python_blocks(path):
    blocks = [b for b in _blocks(path) if b.lang == "python" and ">>>" not in b.code]
    runnable = [b for b in blocks if b.not_run is None]
    if not runnable:
        pytest.skip("every python block of the file is marked not run")
    namespace: dict[str, Any] = {"__name__": f"docs.{path.stem}"}
    for block in runnable:
        _skip_missing_imports(block.code, CODE_IMPORT)
        # leading blank lines keep the file's line numbers in tracebacks
        code = compile("\n" * (block.line - 1) + block.code, str(path), "exec")
        exec(code, namespace)


@pytest.mark.parametrize(
    "block",
    [
        pytest.param(b, id=b.id, marks=pytest.mark.skip(reason=f"{b.id} not run: {b.not_run}"))
        for b in BLOCKS
        if b.not_run
    ],
)
def test_not_run_blocks(block):  # pragma: no cover - listed, with the reason, never run
    raise AssertionError(block.id)
