"""``python -m fastgrad``: the version, and how this copy was built.

Prints fastgrad's version; the build configuration that setup.py recorded
when the compiled modules were built (the Cython, numpy and scipy they were
compiled against, debug or release, the compiler flags); the BLAS that
scipy's ``cython_blas`` -- the only BLAS fastgrad calls -- dispatches to; and
the platform.  Paste its output into bug reports.  ``--json`` prints the same
as one JSON object.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import json
import platform
import sys
from pathlib import Path
from typing import Any

import fastgrad

__all__ = ["build_info", "blas_info", "report", "main"]

_BUILD_FIELDS = ("cython_version", "numpy_version", "scipy_version", "debug",
                 "compile_args", "build_python", "build_platform")


def build_info() -> dict[str, Any]:
    """What setup.py recorded at build time (``{"recorded": False}`` if nothing)."""
    try:
        module = importlib.import_module("fastgrad._build_info")
    except ImportError:
        return {"recorded": False}
    info: dict[str, Any] = {"recorded": True}
    for field in _BUILD_FIELDS:
        info[field] = getattr(module, field, None)
    return info


def _scipy_blas_config() -> dict[str, Any]:
    """scipy's build-time BLAS (name, version), from ``scipy.show_config``."""
    try:
        import scipy
        config = scipy.show_config(mode="dicts")
    except Exception as exc:  # an old scipy without mode=, or a broken install
        return {"error": f"{type(exc).__name__}: {exc}"}
    if not isinstance(config, dict):
        return {}
    blas = config.get("Build Dependencies", {}).get("blas", {})
    keys = ("name", "version", "detection method", "found")
    return {key: blas[key] for key in keys if key in blas}


def _threadpool_blas() -> list[dict[str, Any]]:
    """The BLAS libraries loaded in this process, from threadpoolctl (if installed)."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return []
    # Load scipy's BLAS (what fastgrad's GEMM calls) before asking.
    importlib.import_module("scipy.linalg.cython_blas")
    keys = ("internal_api", "version", "num_threads", "threading_layer",
            "architecture", "filepath")
    pools = []
    for pool in threadpool_info():
        if pool.get("user_api") != "blas":
            continue
        entry = {key: pool[key] for key in keys if key in pool}
        entry["shipped_by"] = _shipped_by(str(pool.get("filepath", "")))
        pools.append(entry)
    # scipy's first: it is the one fastgrad calls (numpy's is loaded too).
    pools.sort(key=lambda entry: entry["shipped_by"] != "scipy")
    return pools


def _shipped_by(filepath: str) -> str:
    """Which wheel vendored a BLAS library: 'scipy', 'numpy' or '' (system)."""
    folders = {part.lower() for part in Path(filepath).parent.parts}
    for package in ("scipy", "numpy"):
        if package in folders or f"{package}.libs" in folders:
            return package
    return ""


def blas_info() -> dict[str, Any]:
    """The BLAS behind ``scipy.linalg.cython_blas``: build config and loaded libraries."""
    return {"scipy": _scipy_blas_config(), "loaded": _threadpool_blas()}


def _version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def report() -> dict[str, Any]:
    """Everything ``python -m fastgrad`` prints, as a dictionary."""
    compiled = importlib.import_module("fastgrad._tape")
    return {
        "fastgrad": fastgrad.__version__,
        "location": str(getattr(fastgrad, "__file__", "")),
        "compiled_module": str(getattr(compiled, "__file__", "")),
        "build": build_info(),
        "blas": blas_info(),
        "runtime": {
            "python": f"{platform.python_implementation()} {platform.python_version()}",
            "numpy": _version("numpy"),
            "scipy": _version("scipy"),
            "threadpoolctl": _version("threadpoolctl"),
        },
        "platform": {
            "system": platform.platform(),
            "machine": platform.machine(),
        },
    }


def _format(info: dict[str, Any]) -> str:
    build = info["build"]
    lines = [f"fastgrad {info['fastgrad']}", f"  location: {info['location']}", "", "build"]
    if build.get("recorded"):
        mode = "debug (bounds checking on)" if build["debug"] else "release"
        lines += [
            f"  Cython:   {build['cython_version']}",
            f"  numpy:    {build['numpy_version']} (headers compiled against)",
            f"  scipy:    {build['scipy_version']} (cython_blas declarations)",
            f"  mode:     {mode}",
            f"  flags:    {' '.join(build['compile_args'] or [])}",
            f"  built on: Python {build['build_python']}, {build['build_platform']}",
        ]
    else:
        lines.append("  not recorded (built without fastgrad's setup.py build step)")
    lines.append(f"  compiled: {info['compiled_module']}")

    scipy_blas = info["blas"]["scipy"]
    lines += ["", "BLAS (scipy.linalg.cython_blas: every GEMM fastgrad runs)"]
    if "error" in scipy_blas:
        lines.append(f"  scipy build config unavailable: {scipy_blas['error']}")
    elif scipy_blas:
        lines.append(f"  scipy built with: {scipy_blas.get('name', '?')} "
                     f"{scipy_blas.get('version', '')}".rstrip())
    loaded = info["blas"]["loaded"]
    if loaded:
        for pool in loaded:
            owner = f" (from {pool['shipped_by']})" if pool.get("shipped_by") else ""
            lines.append(
                f"  loaded{owner}: {pool.get('internal_api', '?')} {pool.get('version', '?')}, "
                f"{pool.get('num_threads', '?')} threads"
                + (f", {pool['architecture']}" if pool.get("architecture") else "")
                + (f", {pool['threading_layer']}" if pool.get("threading_layer") else ""))
            lines.append(f"          {pool.get('filepath', '')}")
    elif info["runtime"]["threadpoolctl"] is None:
        lines.append("  loaded libraries: install threadpoolctl to list them")

    runtime = info["runtime"]
    lines += [
        "",
        "runtime",
        f"  python:   {runtime['python']}",
        f"  numpy:    {runtime['numpy']}",
        f"  scipy:    {runtime['scipy']}",
        f"  platform: {info['platform']['system']} ({info['platform']['machine']})",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m fastgrad",
        description="Print fastgrad's version and build configuration.")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--version", action="version", version=f"fastgrad {fastgrad.__version__}")
    args = parser.parse_args(argv)
    info = report()
    if args.json:
        print(json.dumps(info, indent=2, default=str))
    else:
        print(_format(info))
    return 0


if __name__ == "__main__":
    sys.exit(main())
