"""Command line of ``python -m fastgrad.bench``: arguments, then threads, then the run.

Imports nothing numerical at module level: the thread variables must be
in the environment before numpy, scipy's BLAS, torch or JAX load (see
fastgrad.bench.threads).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import subprocess
import sys

from fastgrad.bench import threads

__all__ = ["WORKLOAD_NAMES", "DEFAULT_WORKLOADS", "ENGINE_NAMES", "build_parser", "parse_args",
           "main"]

# What a run without --workloads runs; "scalar" (w1's scalar engines in
# detail) only on request.
DEFAULT_WORKLOADS = ("w1", "w2", "w3", "w4", "ops")
WORKLOAD_NAMES = DEFAULT_WORKLOADS + ("scalar",)
# Engine keys and families --engines accepts (the fastgrad baseline always runs).
ENGINE_NAMES = ("fastgrad", "fastgrad_compiled", "fastgrad_replay", "fastgrad_replay_forward",
                "fastgrad_replay_backward", "fastgrad_eager", "fastgrad_eager_gc_off",
                "fastgrad_scalar", "fastgrad_gemms", "fastgrad_tape_forward",
                "fastgrad_tape_backward", "micrograd", "micrograd_gc_on", "micrograd_gc_off",
                "reference", "numpy", "numpy_gemms", "numpy_ufunc", "torch", "torch_op", "jax")

EPILOG = """\
workloads:
  w1      micrograd's demo step: MLP 2-16-16-1, 100 moons, SVM loss + 1e-4 L2, SGD (float64)
  w2      seed 003's 2-3-1 linear net step (float64)
  w3      MLP 784-256-128-10, batch 128, cross-entropy, SGD (float32)
  w4      MLP 1024-1024-1024-1024, batch 512, MSE, SGD (float32), and its 8 bare GEMMs
  ops     per-op overhead: a replayed chain of elementwise ops on (4,) arrays
  scalar  (only when named) w1's scalar engines in detail: the eager steps timed in
          parts (build graph, zero_grad + backward, update), fastgrad eager with GC
          on and off, the replayed tape's forward and backward sweeps alone, and
          the time per tape instruction and per graph node

engines (keys or families, comma-separated): fastgrad, micrograd (GC on and off),
reference, numpy, torch, jax, or single keys such as micrograd_gc_off, numpy_gemms.
Engines whose library is missing are listed as skipped with the pip command.

For benchmark runs, unset OpenBLAS's CPU overrides:
  env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python -m fastgrad.bench
"""


def _csv(choices, what):
    def parse(text: str) -> list[str]:
        items = [t.strip() for t in text.split(",") if t.strip()]
        bad = [t for t in items if t not in choices]
        if bad or not items:
            raise argparse.ArgumentTypeError(
                f"unknown {what} {', '.join(bad) or '(none given)'}; choose from "
                f"{', '.join(choices)}")
        return items
    return parse


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m fastgrad.bench",
        description="Benchmark fastgrad against micrograd, numpy, PyTorch and JAX on the same "
                    "workloads (same data, weights and loss), timed in interleaved rounds.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workloads", type=_csv(WORKLOAD_NAMES, "workload"),
                   default=list(DEFAULT_WORKLOADS),
                   help="comma-separated (default: w1,w2,w3,w4,ops; scalar only when named)")
    p.add_argument("--engines", type=_csv(ENGINE_NAMES, "engine"), default=None,
                   help="comma-separated keys or families (default: every importable engine)")
    p.add_argument("--threads", type=_positive, default=1,
                   help="threads for every BLAS/OpenMP/XLA/torch pool (default: 1)")
    p.add_argument("--quick", action="store_true",
                   help="3 rounds of short batches (a smoke test; w1+w2 in well under a minute)")
    p.add_argument("--rounds", type=_positive, default=None,
                   help="interleaved timing rounds (default: 11, or 3 with --quick)")
    p.add_argument("--json", metavar="PATH", help="write every number (and sample) as JSON")
    p.add_argument("--plot", metavar="PATH", help="write a PNG bar chart (needs matplotlib)")
    return p


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    return build_parser().parse_args(argv)


def _restart(threads_wanted: int) -> int:
    """Run this command again with the thread variables in the environment."""
    env = dict(os.environ)
    env.update(threads.wanted_environment(threads_wanted))
    env[threads.CHILD_MARKER] = "1"
    argv = [sys.executable, *getattr(sys, "orig_argv", [sys.executable, "-m",
                                                         "fastgrad.bench", *sys.argv[1:]])[1:]]
    sys.stdout.flush()
    sys.stderr.flush()
    if os.name == "posix":
        os.execve(sys.executable, argv, env)
    return subprocess.call(argv, env=env)


def main(argv: list[str] | None = None) -> int:
    """Parse, pin the threads (restarting the interpreter if it must), run."""
    args = parse_args(argv)
    if args.plot and importlib.util.find_spec("matplotlib") is None:
        # Fail now, not after minutes of timing.
        raise SystemExit("--plot needs matplotlib, which is not installed: "
                         "pip install matplotlib")
    if argv is None and threads.needs_restart(args.threads):
        # `python -m fastgrad.bench` imported fastgrad (numpy, scipy's BLAS)
        # before this ran: their pools are sized; start again with the
        # variables set from the first instruction.
        return _restart(args.threads)
    pinned = threads.pin_environment(args.threads)
    from fastgrad.bench.runner import run

    return run(args, pinned)
