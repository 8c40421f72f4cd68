"""Run the selected workloads with the selected engines; print, write JSON and PNG.

Imported only after the thread variables are set (fastgrad.bench.cli).
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import time
from typing import Any

from fastgrad.bench import machine, report, threads
from fastgrad.bench.cli import DEFAULT_WORKLOADS
from fastgrad.bench.engines_fastgrad import (CompiledW1, CompiledW2, CompiledW3, CompiledW4,
                                             GemmFloor, TapeBackward, TapeForward)
from fastgrad.bench.engines_jax import JaxW1, JaxW2, JaxW3, JaxW4
from fastgrad.bench.engines_numpy import (NumpyGemms, NumpyUfunc, NumpyW1, NumpyW2, NumpyW3,
                                          NumpyW4)
from fastgrad.bench.engines_scalar import (FastgradEager, FastgradEagerGCOff, FastgradEagerGCOn,
                                           FastgradReplay, MicrogradGCOff, MicrogradGCOn,
                                           ReferenceEngine, ReplayBackward, ReplayForward,
                                           W2ScalarReplay)
from fastgrad.bench.engines_torch import TorchOp, TorchW1, TorchW2, TorchW3, TorchW4
from fastgrad.bench.harness import run_workload
from fastgrad.bench.workloads import build

__all__ = ["SUITE", "select", "run"]

# Rows in table order, per workload.
SUITE = {
    "w1": [MicrogradGCOn, MicrogradGCOff, ReferenceEngine, FastgradEager, FastgradReplay,
           CompiledW1, NumpyW1, TorchW1, JaxW1],
    "w2": [CompiledW2, W2ScalarReplay, NumpyW2, TorchW2, JaxW2],
    "w3": [CompiledW3, GemmFloor, NumpyW3, NumpyGemms, TorchW3, JaxW3],
    "w4": [CompiledW4, GemmFloor, NumpyW4, NumpyGemms, TorchW4, JaxW4],
    "ops": [TapeForward, TapeBackward, NumpyUfunc, TorchOp],
    "scalar": [MicrogradGCOn, MicrogradGCOff, ReferenceEngine, FastgradEagerGCOff,
               FastgradEagerGCOn, FastgradReplay, ReplayForward, ReplayBackward],
}

# (rounds, seconds per timed batch, seconds of warm-up): full run, --quick
SETTINGS = {False: (11, 0.04, 0.1), True: (3, 0.005, 0.01)}


def select(classes: list, filters: list[str] | None, baseline: str) -> list:
    """The engine classes a --engines filter keeps (the baseline always)."""
    if not filters:
        return list(classes)
    return [c for c in classes
            if c.key == baseline or c.key in filters or c.family in filters]


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _preload(families: set[str]) -> None:
    """Import torch / JAX now (if installed), so the thread limits reach their pools."""
    for family, module in (("torch", "torch"), ("jax", "jax")):
        if family in families:
            try:
                importlib.import_module(module)
            except ImportError:
                pass


def _command(args) -> str:
    parts = ["python -m fastgrad.bench"]
    if args.workloads != list(DEFAULT_WORKLOADS):
        parts.append("--workloads " + ",".join(args.workloads))
    if args.engines:
        parts.append("--engines " + ",".join(args.engines))
    if args.threads != 1:
        parts.append(f"--threads {args.threads}")
    if args.quick:
        parts.append("--quick")
    if args.rounds:
        parts.append(f"--rounds {args.rounds}")
    for flag in ("json", "plot"):
        path = getattr(args, flag)
        if path:   # as given when relative; only the file name when absolute
            parts.append(f"--{flag} {path if not os.path.isabs(path) else os.path.basename(path)}")
    return " ".join(parts)


def run(args, pinned: dict[str, Any]) -> int:
    t_start = time.perf_counter()
    quick = bool(args.quick)
    rounds, batch_s, warmup_s = SETTINGS[quick]
    rounds = args.rounds or rounds

    plan = []
    for wl in args.workloads:
        w = build(wl, quick)
        plan.append((w, select(SUITE[wl], args.engines, w.baseline)))
    _preload({c.family for _, classes in plan for c in classes})
    pinned["runtime"] = threads.apply_runtime_limits(args.threads)
    info = machine.machine_info(pinned, threads.environment_report())

    out = sys.stdout
    print("## fastgrad benchmark", file=out)
    print("", file=out)
    print(f"`{_command(args)}`", file=out)
    print("", file=out)
    for line in machine.format_header(info):
        print(line, file=out)
    print("", file=out, flush=True)

    runs = []
    for w, classes in plan:
        _log(f"{w.key}: {w.title}")
        engines = [cls(w) for cls in classes]
        results = run_workload(engines, w.baseline, w.dtype, rounds=rounds, batch_s=batch_s,
                               warmup_s=warmup_s, log=_log)
        runs.append((w, results))
        for line in report.format_table(w, results):
            print(line, file=out)
        out.flush()

    all_results = {w.key: results for w, results in runs}
    targets = report.evaluate_targets(all_results)
    relevant = [t for t in targets if t["workload"] in all_results]
    if relevant:
        for line in report.format_targets(relevant):
            print(line, file=out)

    skipped = [(r.engine.label, r.install) for _, results in runs for r in results
               if r.status == "skipped"]
    if skipped:
        print("Skipped engines (not installed):", file=out)
        seen = set()
        for label, install in skipped:
            if (label, install) not in seen:
                seen.add((label, install))
                print(f"- {label}: `{install}`" if install else f"- {label}", file=out)
        print("", file=out)
    bad = [f"{w.key}/{r.engine.key}" for w, results in runs for r in results
           if r.status in ("mismatch", "error")]
    info["load_average_end"] = machine.load_average()
    elapsed = time.perf_counter() - t_start
    print(f"Total time {elapsed:.0f} s; load average (1/5/15 min) at end: "
          f"{info['load_average_end']}.", file=out)
    if bad:
        print(f"\nMISMATCH or error in: {', '.join(bad)}", file=out)
    out.flush()

    if args.json:
        payload = {
            "command": _command(args), "machine": info,
            "settings": {"rounds": rounds, "batch_s": batch_s, "warmup_s": warmup_s,
                         "quick": quick, "threads": args.threads},
            "workloads": {w.key: report.to_json(w, results) for w, results in runs},
            "targets": targets, "elapsed_s": elapsed,
        }
        with open(args.json, "w") as f:
            json.dump(payload, f, indent=1, default=str)
        _log(f"wrote {args.json}")
    if args.plot:
        from fastgrad.bench.plot import save_plot

        cpu = info["cpu"]["model"]
        header = (f"fastgrad benchmark — {cpu}, {args.threads} thread(s), "
                  f"numpy {info['versions']['numpy']}, scipy {info['versions']['scipy']}")
        save_plot(args.plot, runs, header)
        _log(f"wrote {args.plot}")
    return 3 if bad else 0
