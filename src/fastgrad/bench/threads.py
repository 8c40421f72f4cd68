"""Thread pinning for the benchmark: environment first, then run-time limits.

Thread pools read their size when their library loads, so the variables
must be in the environment before numpy, scipy's BLAS, torch or JAX are
imported.  ``python -m fastgrad.bench`` imports the ``fastgrad`` package
(and with it numpy and scipy's BLAS) before its ``__main__`` runs, so
``__main__`` re-executes the interpreter once with the variables set when
they are not already (see :func:`needs_restart`).  After the engines'
libraries are imported, :func:`apply_runtime_limits` adds threadpoolctl's
limits and ``torch.set_num_threads`` on top.

This module must not import numpy (or anything that does).
"""

from __future__ import annotations

import os
import sys
from typing import Any

__all__ = ["THREAD_VARS", "REPORTED_VARS", "CHILD_MARKER", "wanted_environment",
           "needs_restart", "pin_environment", "apply_runtime_limits", "environment_report"]

# Variables that size the thread pools of the BLAS/OpenMP libraries in use.
THREAD_VARS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
# XLA (JAX's CPU backend) has no thread-count variable; these flags keep its
# Eigen kernels on the calling thread.
XLA_SINGLE_THREAD_FLAGS = ("--xla_cpu_multi_thread_eigen=false",
                           "intra_op_parallelism_threads=1")
# Variables that change which kernels OpenBLAS picks; benchmark runs unset them
# (``env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE ...``) and the header reports them.
REPORTED_VARS = THREAD_VARS + ("XLA_FLAGS", "OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
# Set in the re-executed child so it never restarts twice.
CHILD_MARKER = "_FASTGRAD_BENCH_PINNED"

# Keeps threadpoolctl's limits in force for the life of the process.
_LIMITERS: list[Any] = []


def _xla_flags(threads: int, current: str | None) -> str | None:
    """XLA_FLAGS with the single-thread flags added (threads == 1), else unchanged."""
    if threads != 1:
        return current
    flags = (current or "").split()
    for flag in XLA_SINGLE_THREAD_FLAGS:
        name = flag.split("=", 1)[0]
        flags = [f for f in flags if f.split("=", 1)[0] != name]
        flags.append(flag)
    return " ".join(flags)


def wanted_environment(threads: int, environ: dict[str, str] | None = None) -> dict[str, str]:
    """The variables (name -> value) a run with ``threads`` threads needs."""
    environ = os.environ if environ is None else environ
    wanted = {var: str(threads) for var in THREAD_VARS}
    xla = _xla_flags(threads, environ.get("XLA_FLAGS"))
    if xla is not None:
        wanted["XLA_FLAGS"] = xla
    return wanted


def _numeric_libraries_loaded() -> list[str]:
    return [name for name in ("numpy", "scipy", "torch", "jax") if name in sys.modules]


def needs_restart(threads: int) -> bool:
    """True if the environment lacks the thread settings and a library already loaded.

    Then the process must restart with the variables set (the pools are
    already sized).  Never true in the restarted child.
    """
    if os.environ.get(CHILD_MARKER):
        return False
    if not _numeric_libraries_loaded():
        return False
    wanted = wanted_environment(threads)
    return any(os.environ.get(k) != v for k, v in wanted.items())


def pin_environment(threads: int) -> dict[str, Any]:
    """Set the thread variables in os.environ; say whether they came in time.

    Returns a record for the report: the values set and which numerical
    libraries were already loaded when they were set (ideally none, or the
    values were already in the environment at start-up).
    """
    wanted = wanted_environment(threads)
    already = all(os.environ.get(k) == v for k, v in wanted.items())
    loaded = _numeric_libraries_loaded()
    os.environ.update(wanted)
    if os.environ.get(CHILD_MARKER):
        how = "set before any numerical library loaded (process re-executed with them)"
    elif already:
        how = "already in the environment at start-up"
    elif not loaded:
        how = "set before any numerical library loaded"
    else:
        how = (f"set after {', '.join(loaded)} loaded: their pools rely on the run-time "
               f"limits below")
    return {"threads": threads, "variables": wanted, "pinned": how, "late_for": loaded
            if not (already or os.environ.get(CHILD_MARKER)) else []}


def apply_runtime_limits(threads: int) -> dict[str, Any]:
    """threadpoolctl limits on every loaded pool, and torch's own thread counts."""
    out: dict[str, Any] = {}
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        out["threadpoolctl"] = "not installed (pip install threadpoolctl): env variables only"
    else:
        _LIMITERS.append(threadpool_limits(limits=threads))
        out["threadpoolctl"] = f"threadpool_limits({threads}) on every loaded pool"
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(threads)
        try:
            torch.set_num_interop_threads(threads)
        except RuntimeError:  # only allowed before torch ran parallel work
            pass
        out["torch"] = (f"torch.set_num_threads({threads}): intra-op "
                        f"{torch.get_num_threads()}, inter-op {torch.get_num_interop_threads()}")
    return out


def environment_report() -> dict[str, str | None]:
    """The reported variables as they are now (None when unset)."""
    return {var: os.environ.get(var) for var in REPORTED_VARS}
