"""What the numbers were measured on: CPU, Python, library versions, BLAS, threads.

Nothing here names the host or a local path: library files are reported by
file name and by the package that shipped them, never by location.
"""

from __future__ import annotations

import os
import platform
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

__all__ = ["machine_info", "blas_pools", "format_header", "load_average"]

_VERSIONS = ("fastgrad", "numpy", "scipy", "torch", "jax", "jaxlib", "micrograd",
             "threadpoolctl", "matplotlib")


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        module = sys.modules.get(dist)      # e.g. fastgrad run from a source tree
        return getattr(module, "__version__", None)


def _cpu() -> dict[str, Any]:
    model, physical, mhz = None, set(), None
    try:
        with open("/proc/cpuinfo") as f:
            phys_id = "0"
            for line in f:
                key, _, value = line.partition(":")
                key, value = key.strip(), value.strip()
                if key == "model name" and model is None:
                    model = value
                elif key == "cpu MHz" and mhz is None:
                    mhz = float(value)
                elif key == "physical id":
                    phys_id = value
                elif key == "core id":
                    physical.add((phys_id, value))
    except OSError:
        pass
    if model is None:
        model = platform.processor() or platform.machine() or "unknown"
    try:
        usable = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        usable = os.cpu_count()
    return {"model": model, "logical_cpus": os.cpu_count(), "usable_cpus": usable,
            "physical_cores": len(physical) or None, "mhz": mhz}


def load_average() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except (AttributeError, OSError):
        return "unknown"


def _shipped_by(filepath: str) -> str:
    parts = {p.lower() for p in Path(filepath).parent.parts}
    for package in ("scipy", "numpy", "torch", "jaxlib"):
        if package in parts or f"{package}.libs" in parts:
            return package
    return "system"


def blas_pools() -> list[dict[str, Any]]:
    """threadpoolctl's view of every loaded BLAS/OpenMP pool (file names only)."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return []
    pools = []
    for pool in threadpool_info():
        path = str(pool.get("filepath", ""))
        entry = {k: pool.get(k) for k in ("user_api", "internal_api", "prefix", "version",
                                          "architecture", "threading_layer", "num_threads")}
        entry["library"] = Path(path).name
        entry["shipped_by"] = _shipped_by(path)
        pools.append(entry)
    return pools


def _torch_blas() -> str | None:
    torch = sys.modules.get("torch")
    if torch is None:
        return None
    kind = "MKL" if torch.backends.mkl.is_available() else "its bundled BLAS"
    return (f"{kind} (linked into torch; threadpoolctl cannot see it), "
            f"{torch.get_num_threads()} intra-op thread(s)")


def machine_info(threads: dict[str, Any], environment: dict[str, str | None]) -> dict[str, Any]:
    return {
        "cpu": _cpu(),
        "system": f"{platform.system()} {platform.release()} {platform.machine()}",
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "versions": {name: _version(name) for name in _VERSIONS},
        "threads": threads,
        "environment": environment,
        "blas": blas_pools(),
        "torch_blas": _torch_blas(),
        "load_average_start": load_average(),
    }


def _pool_line(pool: dict[str, Any]) -> str:
    who = {"scipy": "scipy's", "numpy": "numpy's", "torch": "torch's"}.get(
        pool["shipped_by"], "a system")
    arch = f", kernels for {pool['architecture']}" if pool.get("architecture") else ""
    layer = f", {pool['threading_layer']}" if pool.get("threading_layer") else ""
    name = " ".join(str(x) for x in (who, pool["internal_api"], pool.get("version")) if x)
    return f"{name} ({pool['library']}){arch}{layer}, {pool['num_threads']} thread(s)"


def format_header(info: dict[str, Any]) -> list[str]:
    cpu, v = info["cpu"], info["versions"]
    cores = f"{cpu['logical_cpus']} logical CPUs"
    if cpu["physical_cores"]:
        cores += f", {cpu['physical_cores']} physical cores"
    if cpu["usable_cpus"] != cpu["logical_cpus"]:
        cores += f", {cpu['usable_cpus']} usable"
    optional = ", ".join(f"{name} {v[name]}" for name in ("torch", "jax", "jaxlib", "micrograd",
                                                          "threadpoolctl") if v[name])
    lines = [
        f"- machine: {cpu['model']} ({cores}); {info['system']}",
        f"- python: {info['python']}; fastgrad {v['fastgrad'] or '(source tree)'}, "
        f"numpy {v['numpy']}, scipy {v['scipy']}" + (f"; {optional}" if optional else ""),
    ]
    t = info["threads"]
    variables = " ".join(f"{k}={val}" for k, val in t["variables"].items())
    lines.append(f"- threads: {t['threads']} — `{variables}` ({t['pinned']})")
    for what in ("threadpoolctl", "torch"):
        if what in t.get("runtime", {}):
            lines.append(f"  - {t['runtime'][what]}")
    env = info["environment"]
    odd = {k: env.get(k) for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")}
    lines.append("- OpenBLAS tuning variables: " + ", ".join(
        f"{k}={val}" if val is not None else f"{k} unset" for k, val in odd.items())
        + ("" if not any(odd.values()) else
           " — set: these override OpenBLAS's own CPU detection; benchmark runs unset them"))
    pools = info["blas"]
    scipy_pool = [p for p in pools if p["user_api"] == "blas" and p["shipped_by"] == "scipy"]
    numpy_pool = [p for p in pools if p["user_api"] == "blas" and p["shipped_by"] == "numpy"]
    others = [p for p in pools if p not in scipy_pool and p not in numpy_pool]
    lines.append("- BLAS:")
    if not pools:
        lines.append("  - threadpoolctl is not installed (pip install threadpoolctl): "
                     "loaded BLAS libraries unknown")
    for p in scipy_pool:
        lines.append(f"  - fastgrad (scipy.linalg.cython_blas): {_pool_line(p)}")
    for p in numpy_pool:
        lines.append(f"  - numpy (`@`, np.matmul): {_pool_line(p)}")
    if info.get("torch_blas"):
        lines.append(f"  - PyTorch: {info['torch_blas']}")
    if v.get("jax") and "jax" in sys.modules:
        lines.append("  - JAX: XLA's CPU backend (Eigen/its own GEMM kernels; not a BLAS "
                     "threadpoolctl sees)")
    for p in others:
        lines.append(f"  - also loaded: {_pool_line(p)}")
    lines.append(f"- load average (1/5/15 min) at start: {info['load_average_start']}"
                 + (f"; at end: {info['load_average_end']}" if "load_average_end" in info
                    else ""))
    return lines
