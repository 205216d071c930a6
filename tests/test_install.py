"""logitkit as pip installs it: the distribution's metadata, its console script, its module.

The version is written once, in pyproject.toml: the build backend puts it in the metadata,
and CMake compiles it into the native module, whose ``__version__`` the package exports.
These tests check that the two agree and that the ``logitkit`` script works, for the
distribution the imported package belongs to (a wheel, or an editable install of a tree).
Run from a source tree on PYTHONPATH, where no installed distribution stands behind the
imported package, they skip and say so: there is no metadata or script to check then, and
those of some other installed logitkit would say nothing about the code under test.
"""

from __future__ import annotations

import importlib.metadata
import json
import shutil
import subprocess
import sysconfig
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse
from urllib.request import url2pathname

import pytest

import logitkit as lk
from logitkit import _core

PACKAGE_DIR = Path(lk.__file__).resolve().parent


@dataclass(frozen=True)
class Installed:
    dist: importlib.metadata.Distribution
    editable: bool


def _owned_files(dist: importlib.metadata.Distribution) -> set[Path]:
    return {Path(str(dist.locate_file(f))).resolve() for f in dist.files or ()}


def _editable_root(dist: importlib.metadata.Distribution) -> Path | None:
    # PEP 610: pip records where an install came from, and whether it is editable.
    text = dist.read_text("direct_url.json")
    if not text:
        return None
    info = json.loads(text)
    if not info.get("dir_info", {}).get("editable") or not info["url"].startswith("file:"):
        return None
    return Path(url2pathname(urlparse(info["url"]).path)).resolve()


@pytest.fixture(scope="module")
def installed() -> Installed:
    """The distribution that the imported logitkit comes from; skips when there is none."""
    try:
        dist = importlib.metadata.distribution("logitkit")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip(f"logitkit is imported from {PACKAGE_DIR}; no distribution is installed")
    if PACKAGE_DIR / "__init__.py" in _owned_files(dist):
        return Installed(dist, editable=False)
    root = _editable_root(dist)
    if root is not None and PACKAGE_DIR.is_relative_to(root):
        return Installed(dist, editable=True)
    pytest.skip(
        f"logitkit is imported from {PACKAGE_DIR}, which the installed distribution "
        f"{dist.version} does not contain (a source tree on PYTHONPATH?)"
    )


def test_metadata_version_is_the_module_version(installed: Installed):
    assert importlib.metadata.version("logitkit") == installed.dist.version
    assert installed.dist.version == lk.__version__ == _core.__version__
    assert lk.runtime_info()["version"] == lk.__version__


def test_native_module_is_the_distributions_own(installed: Installed):
    # A build that packed a stale extension from the source tree beside the fresh one, or an
    # extension left over from another install, would be imported instead of the wheel's.
    if installed.editable:
        pytest.skip("an editable install loads the native module from its build")
    owned = _owned_files(installed.dist)
    extensions = [p for p in owned if p.parent == PACKAGE_DIR and p.name.startswith("_core.")]
    assert len([p for p in extensions if p.suffix in (".so", ".pyd")]) == 1, extensions
    assert Path(_core.__file__).resolve() in owned


def test_console_script_is_declared(installed: Installed):
    scripts = {
        ep.name: ep.value for ep in installed.dist.entry_points.select(group="console_scripts")
    }
    assert scripts == {"logitkit": "logitkit.__main__:main"}


@pytest.fixture(scope="module")
def script(installed: Installed) -> str:
    # The script pip wrote for this interpreter, not whichever `logitkit` comes first on PATH:
    # that one may belong to another environment.
    scripts_dir = sysconfig.get_path("scripts")
    found = shutil.which("logitkit", path=scripts_dir)
    if found is None:
        pytest.skip(f"no logitkit script in {scripts_dir}, this interpreter's scripts directory")
    return found


def _run(script: str, *args: str) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([script, *args], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"logitkit {' '.join(args)}: exit {proc.returncode}\n{proc.stderr}"
    return proc


def test_console_script_help(script: str):
    out = _run(script, "--help").stdout
    for subcommand in ("check", "eval", "bench", "info"):
        assert f"  {subcommand} " in out


def test_console_script_info(script: str):
    fields = [line.partition(":") for line in _run(script, "info").stdout.splitlines()]
    versions = [value.strip() for key, _, value in fields if key.strip() == "version"]
    assert versions == [lk.__version__]


def test_console_script_check(script: str):
    # The default job on a small batch: every function, natively and through the reference.
    out = _run(script, "check", "--rows", "16", "--cols", "1000", "--repeat", "1").stdout
    assert "check: PASS" in out, out
