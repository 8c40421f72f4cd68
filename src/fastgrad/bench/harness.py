"""Timing: engines, the loss cross-check, interleaved rounds and statistics.

An *engine* is one way of running a workload's step.  The harness

1. sets each engine up (an engine whose library is missing raises
   :class:`Skip` and becomes a "skipped" row);
2. runs two steps of every engine and compares the losses with the baseline
   engine's (fastgrad): the loss of the first step (same data, same initial
   weights) and the loss of the second, and the change between them, which
   checks the gradients and the update.  An engine that disagrees beyond the dtype's tolerance is
   reported as MISMATCH and not timed.  An engine that does not update
   (a forward-only or backward-only sweep) is checked on its first loss;
3. warms every engine up (never timed) and picks a batch size per engine so
   a batch takes about ``batch_s`` seconds;
4. times ``rounds`` rounds; in each, every engine runs one batch, in an
   order that rotates from round to round, with ``gc.collect()`` before each
   batch (outside the timed region).  An engine that times the parts of
   its step (``parts``) reports them for each batch too.  Objects alive once every engine is set
   up (the libraries, the models) are frozen out of the collector's scans
   (``gc.freeze``), as they would be irrelevant in a script that imports one
   engine: the GC-on rows pay for their own garbage, not for the heaps of the
   other engines' libraries;
5. summarises each engine's per-step samples (median, quartiles, min, max)
   and its ratio to the baseline: ratio of medians, and the median of the
   per-round ratios.
"""

from __future__ import annotations

import gc
import math
import statistics
import time
from typing import Any, Callable

__all__ = ["Skip", "Engine", "Result", "run_workload", "summarize", "fmt_time"]

perf_counter = time.perf_counter

# Relative tolerance of the loss cross-check, by dtype.  float32 engines sum
# in different orders (BLAS blocking, reductions): 1e-4 of the loss is far
# above their rounding and far below any real bug.
TOLERANCE = {"float64": 1e-9, "float32": 1e-4}
# ... and of the change of the loss made by the first update.
STEP_TOLERANCE = {"float64": 1e-6, "float32": 1e-2}
# The step check needs a change well above rounding: 1000 ulps of the loss.
_EPS = {"float64": 2.220446049250313e-16, "float32": 1.1920929e-07}


class Skip(Exception):
    """An engine that cannot run here: ``reason`` and the command that would fix it."""

    def __init__(self, reason: str, install: str | None = None):
        super().__init__(reason)
        self.reason = reason
        self.install = install


class Engine:
    """One row of a workload's table.

    Subclasses set ``key``, ``label``, ``family`` and implement ``setup`` and
    ``step`` (one training step; returns the loss in any form ``loss_value``
    turns into a float or an array).  ``run(n)`` times n steps;
    engines whose work is asynchronous override ``sync``.  An engine that
    sets ``parts`` overrides ``run`` to also leave in ``part_seconds`` the
    time each part took, summed over the n steps.
    """

    key = ""
    label = ""
    family = ""             # "fastgrad", "numpy", "torch", "jax", "micrograd", ...
    gc_off = False           # disable the cyclic GC inside timed batches
    min_batch = 1            # steps per timed batch, at least
    max_batch = 1_000_000
    per_step = 1             # work units per step (e.g. ops in a chain)
    show_first_call = False  # report setup + first step as "first call"
    has_loss = True          # False for floors (bare GEMMs): nothing to cross-check
    updates = True           # False for sweeps that leave the weights alone: only the
                             # first loss is cross-checked
    parts: tuple[str, ...] = ()   # names of the parts of a step that run() times
    note = ""                # shown under the table

    def __init__(self, workload):
        self.w = workload
        self.setup_s = 0.0
        self.facts: dict[str, Any] = {}       # what setup found (sizes, once-only times)
        self.part_seconds: list[float] = []   # per part, summed over the last run()

    def setup(self) -> None:
        raise NotImplementedError

    def step(self):
        raise NotImplementedError

    def loss_value(self, out) -> Any:
        return float(out)

    def sync(self) -> None:
        """Wait for outstanding work (asynchronous engines)."""

    def release(self) -> None:
        """Drop what the last step left alive (called after every batch, untimed)."""

    def run(self, n: int) -> float:
        step = self.step
        t0 = perf_counter()
        for _ in range(n):
            step()
        self.sync()
        return perf_counter() - t0


class Result:
    """What happened to one engine: status, check, samples, statistics."""

    def __init__(self, engine: Engine):
        self.engine = engine
        self.status = "ok"      # ok | skipped | mismatch | error
        self.message = ""
        self.install: str | None = None
        self.check: dict[str, Any] = {}
        self.first_call_s: float | None = None
        self.batch = 0
        self.samples: list[tuple[int, float]] = []   # (round, seconds per unit)
        self.stats: dict[str, float] = {}
        # (round, seconds per step of each part), for engines that time parts
        self.part_samples: list[tuple[int, list[float]]] = []
        self.part_stats: dict[str, float] = {}       # part -> median seconds per step

    @property
    def timed(self) -> bool:
        return self.status == "ok" and bool(self.samples)


def _as_floats(value) -> list[float]:
    try:
        return [float(v) for v in value]
    except TypeError:
        return [float(value)]


def _rel_err(a: list[float], b: list[float]) -> float:
    if len(a) != len(b):
        return math.inf
    scale = max(max((abs(x) for x in b), default=0.0), 1e-300)
    err = max((abs(x - y) for x, y in zip(a, b)), default=0.0)
    return err / scale if err == err else math.inf   # NaN -> inf


def cross_check(results: list[Result], baseline: Result, dtype: str) -> None:
    """Compare each engine's step-1 and step-2 losses with the baseline's.

    Two tests: the losses themselves (relative ``tol``), and the change of
    the loss made by the first update (relative ``tol_step``), which checks
    the gradients and the update even when the change is small next to the
    loss.  The second is skipped when the baseline's change is within 1000
    ulps of the loss (e.g. a forward-only workload), where it means nothing.
    An engine that does not update (``updates`` False) is compared on its
    first loss alone.
    """
    tol, tol_step = TOLERANCE[dtype], STEP_TOLERANCE[dtype]
    base = baseline.check.get("losses")
    base_step = _step_change(base) if base else None
    for r in results:
        if r.status != "ok" or r is baseline or not r.engine.has_loss:
            if r is baseline and r.status == "ok":
                r.check["rel_err"] = 0.0
            continue
        if base is None:
            r.check["rel_err"] = None
            continue
        mine = r.check["losses"]
        compared = len(base) if r.engine.updates else 1
        err = max(_rel_err(a, b) for a, b in zip(mine[:compared], base[:compared]))
        r.check["rel_err"] = err
        problem = None
        if not err <= tol:
            problem = f"relative error {err:.1e} > {tol:g}"
        elif (r.engine.updates and base_step is not None
              and abs(base_step) > 1000 * _EPS[dtype] * abs(base[0][0])):
            step_err = _rel_err([_step_change(mine)], [base_step])
            r.check["step_rel_err"] = step_err
            if not step_err <= tol_step:
                problem = (f"the first update changed the loss by {_step_change(mine):.6g}, "
                           f"fastgrad's by {base_step:.6g} (relative error {step_err:.1e} "
                           f"> {tol_step:g})")
        if problem:
            r.status = "mismatch"
            got = ", ".join(f"{v[0]:.10g}" for v in mine)
            ref = ", ".join(f"{v[0]:.10g}" for v in base)
            r.message = f"MISMATCH: losses of steps 1, 2 = {got}; fastgrad's = {ref}: {problem}"


def _step_change(losses) -> float | None:
    if len(losses[0]) != 1:
        return None
    return losses[1][0] - losses[0][0]


def _first_steps(r: Result) -> float:
    """Two untimed steps, their losses recorded for the cross-check; returns s/step."""
    e = r.engine
    t0 = perf_counter()
    out = e.step()
    e.sync()
    first = perf_counter() - t0
    # Read each loss at once: a compiled step returns the same tensor every call.
    loss1 = _as_floats(e.loss_value(out)) if e.has_loss else None
    t1 = perf_counter()
    out = e.step()
    e.sync()
    second = perf_counter() - t1
    loss2 = _as_floats(e.loss_value(out)) if e.has_loss else None
    r.first_call_s = e.setup_s + first if e.show_first_call else None
    if e.has_loss:
        r.check["losses"] = [loss1, loss2]
    r.check["first_step_s"] = first
    return second


def _timed_batch(e: Engine, n: int) -> float:
    gc.collect()
    if e.gc_off:
        gc.disable()
    try:
        return e.run(n)
    finally:
        gc.enable()
        e.release()


def run_workload(engines: list[Engine], baseline_key: str, dtype: str, *, rounds: int,
                 batch_s: float, warmup_s: float,
                 log: Callable[[str], None] = lambda s: None) -> list[Result]:
    """Set up, cross-check, warm up and time the engines of one workload."""
    results = [Result(e) for e in engines]
    estimate: dict[str, float] = {}
    for r in results:
        e = r.engine
        try:
            t0 = perf_counter()
            e.setup()
            e.setup_s = perf_counter() - t0
            gc.collect()
            if e.gc_off:
                gc.disable()
            try:
                estimate[e.key] = _first_steps(r)
            finally:
                gc.enable()
                e.release()
        except Skip as exc:
            r.status, r.message, r.install = "skipped", exc.reason, exc.install
        except Exception as exc:  # a broken engine is a row, not a crash
            r.status, r.message = "error", f"{type(exc).__name__}: {exc}"
        log(f"  {e.label}: {r.status}{(' -- ' + r.message) if r.message else ''}")
    baseline = next((r for r in results if r.engine.key == baseline_key), None)
    if baseline is None or baseline.status != "ok":
        for r in results:
            if r.status == "ok":
                r.status, r.message = "error", "no fastgrad baseline to check against"
        return results
    cross_check(results, baseline, dtype)

    live = [r for r in results if r.status == "ok"]
    # What is alive now (libraries, models, tapes) lives for the whole run:
    # keep it out of every later collection's scan, as it would be in a small
    # script that imports one engine, so neither the GC-on rows nor the
    # harness's own gc.collect() pay for the other engines' heaps.
    gc.collect()
    gc.freeze()
    try:
        _time(live, baseline, estimate, rounds, batch_s, warmup_s)
    finally:
        gc.unfreeze()
    return results


def _time(live: list[Result], baseline: Result, estimate: dict[str, float], rounds: int,
          batch_s: float, warmup_s: float) -> None:
    for r in live:  # warm-up, then the batch size from the warm-up's speed
        e, per = r.engine, max(estimate[r.engine.key], 1e-9)
        if per < warmup_s:
            n = max(1, int(warmup_s / per))
            per = max(_timed_batch(e, n) / n, 1e-9)
        r.batch = max(e.min_batch, min(e.max_batch, int(batch_s / per) or 1))
    for k in range(rounds):
        shift = k % len(live) if live else 0
        for r in live[shift:] + live[:shift]:
            e = r.engine
            t = _timed_batch(e, r.batch)
            r.samples.append((k, t / r.batch / e.per_step))
            if e.parts:
                r.part_samples.append((k, [p / r.batch for p in e.part_seconds]))
    for r in live:
        r.stats = summarize([s for _, s in r.samples])
        r.part_stats = {name: statistics.median(ps[i] for _, ps in r.part_samples)
                        for i, name in enumerate(r.engine.parts) if r.part_samples}
    for r in live:
        r.stats.update(_ratios(r, baseline))


def summarize(xs: list[float]) -> dict[str, float]:
    xs = sorted(xs)
    med = statistics.median(xs)
    if len(xs) >= 2:
        q1, _, q3 = statistics.quantiles(xs, n=4, method="inclusive")
    else:
        q1 = q3 = xs[0]
    return {"median": med, "q1": q1, "q3": q3, "min": xs[0], "max": xs[-1], "n": len(xs),
            "iqr_rel": (q3 - q1) / med if med else 0.0}


def _ratios(r: Result, baseline: Result) -> dict[str, float]:
    """This engine's time over the baseline's: of medians, and per round."""
    base = dict(baseline.samples)
    per_round = [s / base[k] for k, s in r.samples if base.get(k)]
    return {"ratio": r.stats["median"] / baseline.stats["median"],
            "ratio_per_round": statistics.median(per_round) if per_round else math.nan}


def fmt_time(s: float | None) -> str:
    if s is None or s != s:
        return "—"
    if s >= 1.0:
        return f"{s:.2f} s"
    if s >= 1e-3:
        return f"{s * 1e3:.3g} ms"
    if s >= 1e-6:
        return f"{s * 1e6:.3g} µs"
    return f"{s * 1e9:.3g} ns"
