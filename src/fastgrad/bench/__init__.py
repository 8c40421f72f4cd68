"""``python -m fastgrad.bench``: fastgrad against the engines it replaces.

Runs the same workloads -- same data, same initial weights, same loss -- on
fastgrad and on micrograd, fastgrad's pure-Python reference, hand-written
numpy, PyTorch and JAX (each when installed), checks every engine's loss
against fastgrad's before timing it, and times them in interleaved rounds::

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python -m fastgrad.bench \\
        [--workloads w1,w2,w3,w4,ops] [--engines ...] [--threads 1] [--quick] \\
        [--json out.json] [--plot out.png]

``--workloads scalar`` (run only when named) times w1's scalar engines in
detail: eager steps in parts, replay sweeps per tape instruction and per
graph node.

Modules: ``cli`` (arguments, thread pinning), ``threads``, ``machine`` (the
report's header), ``workloads`` (data and weights), ``harness`` (cross-check,
timing, statistics), ``engines_*`` (one per library), ``report`` (tables,
targets, the scalar workload's figures, JSON), ``plot``, ``runner``.

Importing this package imports nothing numerical: the thread counts must be
pinned before numpy and the BLAS libraries load.
"""

__all__ = ["main"]


def main(argv=None) -> int:
    """Run the benchmark with command-line arguments ``argv`` (see ``--help``)."""
    from fastgrad.bench.cli import main as _main

    return _main(argv)
