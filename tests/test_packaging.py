"""Packaging: single-sourced version, ``python -m fastgrad``, stubs, sdist and wheel.

None of these tests needs the network.  The build tests (marked ``slow``) run
``python -m build --no-isolation`` on a copy of the source tree, so they need
``build`` and the build requirements (setuptools, Cython, numpy, scipy) in the
test environment; they skip when those are missing or when the tests run
without a source tree beside them (e.g. from an installed wheel elsewhere).
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

import fastgrad

ROOT = Path(__file__).resolve().parent.parent
COMPILED = ("_value", "_tape", "_scalar_lower", "_instr", "_atape", "_blas")  # with .pyi stubs
GENERATED = re.compile(r"\.(c|cpp|so|pyd|html|o)$|_opcodes\.pxi$|_build_info\.py$")
BUILD_TIMEOUT = 1200     # seconds: a full compile of the extensions on 2 cores


def _env_for_child() -> dict[str, str]:
    """Environment in which a child Python imports the same fastgrad as this one."""
    env = dict(os.environ)
    site = str(Path(fastgrad.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (site, env.get("PYTHONPATH")) if p)
    return env


def _run_module(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "fastgrad", *args], cwd=cwd,
                          env=_env_for_child(), capture_output=True, text=True,
                          timeout=120)


# -- the version -----------------------------------------------------------------


def test_version_is_single_sourced():
    from fastgrad import _version

    assert fastgrad.__version__ == _version.__version__
    assert re.fullmatch(r"\d+\.\d+\.\d+([.-]?(a|b|rc|dev|post)\d*)*", fastgrad.__version__)
    pyproject = ROOT / "pyproject.toml"
    if pyproject.is_file():
        import tomllib

        project = tomllib.loads(pyproject.read_text())
        assert "version" not in project["project"], "the version lives in fastgrad/_version.py"
        assert "version" in project["project"]["dynamic"]
        attr = project["tool"]["setuptools"]["dynamic"]["version"]["attr"]
        assert attr == "fastgrad._version.__version__"


def test_version_matches_installed_metadata():
    try:
        dist = importlib.metadata.distribution("fastgrad")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("fastgrad is not installed (running from the source tree)")
    installed = Path(str(dist.locate_file("fastgrad/__init__.py"))).resolve()
    if installed != Path(fastgrad.__file__).resolve() and not _is_editable(dist):
        pytest.skip(f"the fastgrad imported ({fastgrad.__file__}) is not the installed "
                    f"distribution ({installed})")
    assert fastgrad.__version__ == importlib.metadata.version("fastgrad")


def _is_editable(dist: importlib.metadata.Distribution) -> bool:
    direct_url = dist.read_text("direct_url.json")
    return bool(direct_url) and json.loads(direct_url).get("dir_info", {}).get("editable", False)


# -- python -m fastgrad ------------------------------------------------------------


def test_main_prints_version_and_build(tmp_path):
    result = _run_module(cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == f"fastgrad {fastgrad.__version__}"
    for heading in ("build", "runtime"):
        assert heading in lines
    assert any(line.startswith("BLAS") for line in lines)
    assert f"python:   {sys.implementation.name.replace('cpython', 'CPython')}" in result.stdout


def test_main_json(tmp_path):
    result = _run_module("--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    assert info["fastgrad"] == fastgrad.__version__
    assert set(info) >= {"build", "blas", "runtime", "platform", "compiled_module"}
    build = info["build"]
    if importlib.util.find_spec("fastgrad._build_info") is not None:
        assert build["recorded"] is True
        assert isinstance(build["debug"], bool)
        assert re.match(r"\d+\.\d+", build["cython_version"])
        assert re.match(r"\d+\.\d+", build["numpy_version"])
        flags = build["compile_args"]
        assert "-march=native" not in flags
        if sys.platform != "win32":
            assert "-ffp-contract=off" in flags      # the fused dot's rounding
    else:
        assert build == {"recorded": False}


def test_main_version_flag(tmp_path):
    result = _run_module("--version", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"fastgrad {fastgrad.__version__}"


# -- typing ------------------------------------------------------------------------


def test_compiled_modules_ship_stubs():
    package = Path(fastgrad.__file__).resolve().parent
    assert (package / "py.typed").is_file()
    for name in COMPILED:
        module = importlib.import_module(f"fastgrad.{name}")
        assert not str(module.__file__).endswith(".py"), f"{name} is not compiled"
        assert (package / f"{name}.pyi").is_file(), f"no stub for fastgrad.{name}"


@pytest.mark.slow
def test_stubs_match_compiled_modules(tmp_path):
    """mypy's stubtest: every stub signature agrees with the built extension."""
    pytest.importorskip("mypy.stubtest")
    allowlist = tmp_path / "allowlist.txt"
    # Cython's module internals, not API.
    allowlist.write_text("fastgrad\\._\\w+\\.__pyx_capi__\nfastgrad\\._\\w+\\.__test__\n")
    result = subprocess.run(
        [sys.executable, "-m", "mypy.stubtest", *(f"fastgrad.{m}" for m in COMPILED),
         "--allowlist", str(allowlist), "--ignore-unused-allowlist"],
        cwd=tmp_path, env=_env_for_child(), capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr


# -- sdist and wheel -----------------------------------------------------------------


def _source_copy(tmp_path: Path) -> Path:
    """A copy of the source tree, generated files included (the sdist must drop them)."""
    if not ((ROOT / "setup.py").is_file() and (ROOT / "src" / "fastgrad").is_dir()):
        pytest.skip("no source tree beside the tests")
    # Installed distributions, not importable names: a checkout's build/
    # folder would import as a namespace package called "build".
    for requirement in ("build", "setuptools", "Cython", "numpy", "scipy"):
        try:
            importlib.metadata.distribution(requirement)
        except importlib.metadata.PackageNotFoundError:
            pytest.skip(f"{requirement} is not installed (needed for a --no-isolation build)")
    copy = tmp_path / "source"
    shutil.copytree(ROOT, copy, ignore=shutil.ignore_patterns(
        ".git", "build", "dist", "wheelhouse", "*.egg-info", "__pycache__",
        ".pytest_cache", ".hypothesis", ".mypy_cache", ".venv"))
    return copy


def _build(copy: Path, out: Path, *which: str) -> None:
    env = {k: v for k, v in os.environ.items() if k != "FASTGRAD_DEBUG"}   # release build
    try:
        result = subprocess.run(
            [sys.executable, "-m", "build", "--no-isolation", *which, "--outdir", str(out),
             str(copy)],
            cwd=copy, env=env, capture_output=True, text=True, timeout=BUILD_TIMEOUT)
    except subprocess.TimeoutExpired:
        pytest.skip(f"python -m build took more than {BUILD_TIMEOUT} s")
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]


def _sdist_members(sdist: Path) -> set[str]:
    with tarfile.open(sdist) as tar:
        names = tar.getnames()
    top = names[0].split("/")[0]
    return {name[len(top) + 1:] for name in names if name.startswith(top + "/")}


@pytest.mark.slow
def test_sdist_has_sources_and_nothing_generated(tmp_path):
    copy = _source_copy(tmp_path)
    _build(copy, tmp_path / "dist", "--sdist")
    (sdist,) = (tmp_path / "dist").glob("fastgrad-*.tar.gz")
    assert sdist.name == f"fastgrad-{fastgrad.__version__}.tar.gz"
    members = _sdist_members(sdist)

    package = copy / "src" / "fastgrad"
    needed = {f"src/fastgrad/{p.name}" for p in package.iterdir()
              if p.suffix in (".pyx", ".pxd", ".pyi")}
    assert {"src/fastgrad/_tape.pyx", "src/fastgrad/_tape.pxd"} <= needed
    needed |= {"pyproject.toml", "setup.py", "MANIFEST.in", "LICENSE", "README.md",
               "src/fastgrad/py.typed", "src/fastgrad/ops.py", "src/fastgrad/_version.py",
               "tests/test_packaging.py"}
    assert needed <= members, f"missing from the sdist: {sorted(needed - members)}"
    generated = sorted(m for m in members if GENERATED.search(m))
    assert not generated, f"generated files in the sdist: {generated}"


@pytest.mark.slow
def test_wheel_builds_from_sdist(tmp_path):
    """``python -m build``: the sdist, then a wheel built from that sdist alone."""
    copy = _source_copy(tmp_path)
    _build(copy, tmp_path / "dist")
    (wheel,) = (tmp_path / "dist").glob("fastgrad-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        build_info = zf.read("fastgrad/_build_info.py").decode()
    for name in ("_value", "_tape", "_scalar_lower", "_kernels", "_blas", "_instr", "_atape"):
        assert any(re.fullmatch(rf"fastgrad/{name}\..*(so|pyd)", n) for n in names), name
    assert {"fastgrad/py.typed", "fastgrad/__main__.py"} <= names
    assert {f"fastgrad/{m}.pyi" for m in COMPILED} <= names
    leaked = sorted(n for n in names if n.endswith((".c", ".cpp", ".pyx", ".html")))
    assert not leaked, f"sources in the wheel: {leaked}"
    assert "cython_version = " in build_info and "debug = False" in build_info
