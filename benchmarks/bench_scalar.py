"""micrograd's demo step, engine against engine, in one interleaved run.

Workload (micrograd's demo notebook): ``MLP(2, [16, 16, 1])`` after
``random.seed(1337)``, 100 two-moons points with labels -1/+1, and the SVM
max-margin loss plus L2 regularisation, built exactly as the notebook builds
it::

    inputs = [list(map(Value, xrow)) for xrow in X]
    scores = list(map(model, inputs))
    losses = [(1 + -yi*scorei).relu() for yi, scorei in zip(y, scores)]
    data_loss = sum(losses) * (1.0 / len(losses))
    reg_loss = alpha * sum((p*p for p in model.parameters()))
    total_loss = data_loss + reg_loss

-- about 65,800 scalar nodes.  One *step* is: build that graph (eager
engines), ``zero_grad``, ``backward``, and an SGD update with lr = 0.1.

Engines (each trains its own copy of the same initial weights):

  micrograd GC on     micrograd 0.1.0, garbage collector on, as users run it
  micrograd GC off    the same with gc.disable() in the timed region
  reference GC off    fastgrad.reference, the pure-Python engine of this repo
  fastgrad eager      fastgrad.micrograd (compiled Value, same Python code);
                      GC off and GC on
  fastgrad replay     the graph built once, lowered with fastgrad.lower, and
                      replayed: forward(); zero_grad(); backward(); data -= lr*grad
                      (also forward-only and backward-only)

Before anything is timed every engine's loss after its first and second step,
and its gradients after the first, must match fastgrad eager's to 1e-9
relative; otherwise the script aborts.  Timing is interleaved round-robin
(the starting engine rotates each round); warm-up steps are never timed;
``gc.collect()`` always runs outside the timed region.

Run (the two OPENBLAS variables are unset for benchmark runs)::

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE PYTHONPATH=src \\
        python benchmarks/bench_scalar.py [--rounds 15] [--quick] [--json PATH]

``--replay-only N`` runs just the replay loop N times (for ``perf stat``);
``--perf`` runs ``perf stat`` on it twice (N = 0 and N = --perf-steps) and
reports the difference per tape instruction.
"""

from __future__ import annotations

import os

# Pin every BLAS / OpenMP pool to one thread before numpy is imported.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import gc  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import random  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from importlib import metadata  # noqa: E402

import numpy as np  # noqa: E402

import fastgrad  # noqa: E402
from fastgrad.micrograd import MLP as FgMLP  # noqa: E402
from fastgrad.micrograd import Value as FgValue  # noqa: E402

LR = 0.1
ALPHA = 1e-4
RTOL = 1e-9
perf_counter = time.perf_counter


# --------------------------------------------------------------------------
# data and the loss (micrograd's demo, verbatim apart from names)

def make_moons_data(n: int, seed: int):
    """100 two-moons points, labels mapped to -1/+1, as Python floats.

    Uses fastgrad.datasets.make_moons when that module exists; otherwise the
    same algorithm as scikit-learn's make_moons, written out with numpy.
    """
    try:
        from fastgrad.datasets import make_moons
    except ImportError:
        make_moons = None
    if make_moons is not None:
        X, y = make_moons(n, noise=0.1, random_state=seed)
        source = "fastgrad.datasets.make_moons"
    else:
        n_out, n_in = n // 2, n - n // 2
        t_out = np.linspace(0, np.pi, n_out)
        t_in = np.linspace(0, np.pi, n_in)
        X = np.vstack([np.append(np.cos(t_out), 1 - np.cos(t_in)),
                       np.append(np.sin(t_out), 1 - np.sin(t_in) - 0.5)]).T
        y = np.hstack([np.zeros(n_out, dtype=np.intp), np.ones(n_in, dtype=np.intp)])
        rng = np.random.RandomState(seed)
        idx = np.arange(n)
        rng.shuffle(idx)
        X, y = X[idx], y[idx]
        X = X + rng.normal(scale=0.1, size=X.shape)
        source = "numpy (scikit-learn's make_moons algorithm; fastgrad.datasets absent)"
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y) * 2 - 1
    # Python floats for every engine (the notebook passes numpy scalars, which
    # makes micrograd slower still; plain floats are the conservative choice).
    return [[float(v) for v in row] for row in X], [float(v) for v in y], source


def build_loss(model, Value, X, y, alpha=ALPHA):
    inputs = [list(map(Value, xrow)) for xrow in X]
    scores = list(map(model, inputs))
    losses = [(1 + -yi * scorei).relu() for yi, scorei in zip(y, scores)]
    data_loss = sum(losses) * (1.0 / len(losses))
    reg_loss = alpha * sum((p * p for p in model.parameters()))
    total_loss = data_loss + reg_loss
    return total_loss


def count_nodes(root) -> int:
    """Distinct nodes below root (iterative walk over ``_prev``)."""
    seen = {id(root)}
    stack = [root]
    while stack:
        v = stack.pop()
        for c in v._prev:
            if id(c) not in seen:
                seen.add(id(c))
                stack.append(c)
    return len(seen)


# --------------------------------------------------------------------------
# engines

class EagerEngine:
    """An engine that rebuilds the graph every step (micrograd's way)."""

    kind = "eager"

    def __init__(self, key, label, Value, MLP, X, y, seed, gc_off, numpy_update=False):
        self.key, self.label, self.Value = key, label, Value
        self.X, self.y, self.gc_off = X, y, gc_off
        random.seed(seed)
        self.model = MLP(2, [16, 16, 1])
        self.params = self.model.parameters()
        self.numpy_update = numpy_update
        if numpy_update:
            self.data = self.model.parameters_data()
            self.grad = self.model.parameters_grad()
        self.last_loss = None

    def step(self):
        """One step; returns (loss, build s, zero_grad+backward s, update s)."""
        t0 = perf_counter()
        loss = build_loss(self.model, self.Value, self.X, self.y)
        # Rebinding drops the previous step's graph here, inside the timed
        # region, as ``total_loss = ...`` does in a training loop (fastgrad
        # frees it by reference counting now; micrograd's cyclic graph waits
        # for the collector, which is off in the GC-off rows).
        self.last_loss = loss
        t1 = perf_counter()
        self.model.zero_grad()
        loss.backward()
        t2 = perf_counter()
        if self.numpy_update:
            self.data -= LR * self.grad
        else:
            for p in self.params:
                p.data -= LR * p.grad
        t3 = perf_counter()
        return loss.data, t1 - t0, t2 - t1, t3 - t2

    def grads(self):
        return np.array([float(p.grad) for p in self.params])


class ReplayEngine:
    """Build once, lower, then replay the tape."""

    kind = "replay"
    gc_off = False  # replay allocates nothing the collector tracks

    def __init__(self, X, y, seed):
        self.key, self.label = "replay_step", "fastgrad replay"
        random.seed(seed)
        self.model = FgMLP(2, [16, 16, 1])
        self.params = self.model.parameters()
        self.data = self.model.parameters_data()
        self.grad = self.model.parameters_grad()
        t0 = perf_counter()
        self.loss = build_loss(self.model, FgValue, X, y)
        t1 = perf_counter()
        self.tape = fastgrad.lower(self.loss)
        t2 = perf_counter()
        self.build_s, self.lower_s = t1 - t0, t2 - t1

    def step(self):
        value = self.tape.forward()
        self.model.zero_grad()
        self.tape.backward()
        self.data -= LR * self.grad
        return value

    def run_steps(self, n):
        tape, model, data, grad = self.tape, self.model, self.data, self.grad
        forward, backward, zero_grad = tape.forward, tape.backward, model.zero_grad
        t0 = perf_counter()
        for _ in range(n):
            forward()
            zero_grad()
            backward()
            data -= LR * grad
        return perf_counter() - t0

    def run_forward(self, n):
        forward = self.tape.forward
        t0 = perf_counter()
        for _ in range(n):
            forward()
        return perf_counter() - t0

    def run_backward(self, n):
        backward = self.tape.backward
        t0 = perf_counter()
        for _ in range(n):
            backward()
        return perf_counter() - t0

    def grads(self):
        return self.grad.copy()


def try_reference():
    try:
        from fastgrad.reference import MLP, Value
    except ImportError as exc:
        return None, f"not importable ({exc})"
    return (Value, MLP), "fastgrad.reference"


# --------------------------------------------------------------------------
# correctness gate

def rel_err(a, b):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    scale = max(float(np.max(np.abs(b))), 1e-300)
    return float(np.max(np.abs(a - b))) / scale


def check_agreement(eager_engines, replay, ref_key):
    """Two steps of every engine; losses and first-step grads must agree."""
    results = {}
    for eng in eager_engines:
        gc.collect()
        l1 = eng.step()[0]
        g1 = eng.grads()
        l2 = eng.step()[0]
        results[eng.key] = (float(l1), float(l2), g1)
        gc.collect()
    r1 = replay.step()
    g1 = replay.grads()
    r2 = replay.step()
    results[replay.key] = (float(r1), float(r2), g1)
    base = results[ref_key]
    lines, failed = [], []
    for key, (l1, l2, g) in results.items():
        e1, e2, eg = rel_err(l1, base[0]), rel_err(l2, base[1]), rel_err(g, base[2])
        ok = max(e1, e2, eg) <= RTOL
        lines.append(f"  {key:22s} loss1 {l1:.15f}  loss2 {l2:.15f}  "
                     f"rel.err loss {max(e1, e2):.1e} grad {eg:.1e}  {'ok' if ok else 'MISMATCH'}")
        if not ok:
            failed.append(key)
    return lines, failed


# --------------------------------------------------------------------------
# statistics

def summarize(samples):
    xs = sorted(s for _, s in samples)
    q = statistics.quantiles(xs, n=4) if len(xs) >= 2 else [xs[0]] * 3
    med = statistics.median(xs)
    return {"median": med, "min": xs[0], "max": xs[-1], "n": len(xs),
            "iqr_rel": (q[2] - q[0]) / med if med else 0.0}


def per_round_ratios(num, den):
    """Median over rounds of (num's median in round r / den's median in round r)."""
    rounds = sorted({r for r, _ in num} & {r for r, _ in den})
    ratios = []
    for r in rounds:
        a = statistics.median(s for rr, s in num if rr == r)
        b = statistics.median(s for rr, s in den if rr == r)
        ratios.append(a / b)
    if not ratios:
        return None
    return {"median": statistics.median(ratios), "min": min(ratios), "max": max(ratios)}


def fmt_time(s):
    if s >= 1.0:
        return f"{s:.3f} s"
    if s >= 1e-3:
        return f"{s * 1e3:.2f} ms"
    return f"{s * 1e6:.1f} us"


# --------------------------------------------------------------------------
# machine description

def load_avg():
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "unknown"


def machine_info():
    cpu = "unknown"
    mhz = None
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name") and cpu == "unknown":
                    cpu = line.split(":", 1)[1].strip()
                elif line.startswith("cpu MHz") and mhz is None:
                    mhz = float(line.split(":", 1)[1])
    except OSError:
        pass
    try:
        from threadpoolctl import threadpool_info
        pools = [{k: p.get(k) for k in ("user_api", "internal_api", "prefix", "version",
                                         "architecture", "threading_layer", "num_threads")}
                 for p in threadpool_info()]
    except ImportError:
        pools = []
    try:
        mg_version = metadata.version("micrograd")
    except metadata.PackageNotFoundError:
        mg_version = "?"
    return {
        "cpu": cpu, "cpu_mhz": mhz, "logical_cpus": os.cpu_count(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "system": f"{platform.system()} {platform.machine()}",
        "numpy": np.__version__, "fastgrad": fastgrad.__version__,
        "micrograd": mg_version, "gc_threshold": gc.get_threshold(),
        "env": {v: os.environ.get(v, "unset") for v in
                ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS",
                 "OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")},
        "blas": pools,
    }


# --------------------------------------------------------------------------
# perf stat on the replay loop alone

def replay_only(n, seed):
    X, y, _ = make_moons_data(100, seed)
    eng = ReplayEngine(X, y, seed)
    eng.run_steps(n)
    print(f"replayed {n} steps of a {len(eng.tape)}-instruction tape")


def perf_stat(steps, seed):
    """perf stat the replay loop at N = 0 and N = steps; report the difference."""
    events = "instructions,cycles,task-clock"
    out = {}
    for n in (0, steps):
        cmd = ["perf", "stat", "-x", ",", "-e", events, sys.executable, __file__,
               "--replay-only", str(n), "--seed", str(seed)]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return {"error": f"perf stat could not run: {exc}"}
        counts = {}
        for line in proc.stderr.splitlines():
            parts = line.split(",")
            if len(parts) >= 3 and parts[2]:
                name = parts[2].split(":")[0]
                try:
                    counts[name] = float(parts[0])
                except ValueError:
                    counts[name] = parts[0]  # "<not supported>" / "<not counted>"
        out[n] = counts
    return out


# --------------------------------------------------------------------------

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--quick", action="store_true",
                    help="3 rounds, fewer steps per round (a smoke test)")
    ap.add_argument("--json", metavar="PATH", help="write all samples and stats here")
    ap.add_argument("--seed", type=int, default=1337)
    ap.add_argument("--replay-only", type=int, metavar="N", help=argparse.SUPPRESS)
    ap.add_argument("--perf", action="store_true",
                    help="also run perf stat on the replay loop alone")
    ap.add_argument("--perf-steps", type=int, default=20000)
    args = ap.parse_args(argv)

    if args.replay_only is not None:
        replay_only(args.replay_only, args.seed)
        return 0

    rounds = 3 if args.quick and args.rounds == 15 else args.rounds
    # (warm-up steps, timed steps) per round for the eager engines
    plan = {
        # GC on costs ~1.5-3 s a step: one warm-up step (the first step after
        # a collection is the cheapest) and one timed step per round.
        "micrograd_gc_on": (1, 1),
        "micrograd_gc_off": (1, 1) if args.quick else (1, 3),
        "reference_gc_off": (1, 1) if args.quick else (1, 3),
        "fastgrad_eager_gc_off": (2, 4) if args.quick else (2, 10),
        "fastgrad_eager_gc_on": (2, 4) if args.quick else (2, 10),
    }
    replay_batch, replay_batches = (100, 3) if args.quick else (200, 5)

    info = machine_info()
    print("# fastgrad scalar benchmark: micrograd's demo step (MLP 2-16-16-1, 100 moons)")
    print()
    print(f"cpu:     {info['cpu']} ({info['logical_cpus']} logical CPUs, "
          f"{info['cpu_mhz']:.0f} MHz reported)" if info["cpu_mhz"] else f"cpu: {info['cpu']}")
    print(f"system:  {info['system']}")
    print(f"python:  {info['python']}   numpy {info['numpy']}   "
          f"micrograd {info['micrograd']}   fastgrad {info['fastgrad']}")
    print(f"gc:      threshold {info['gc_threshold']}")
    print(f"load:    {load_avg()} (1/5/15-min load average at start)")
    print("env:     " + "  ".join(f"{k}={v}" for k, v in info["env"].items()))
    for p in info["blas"]:
        print(f"blas:    {p['internal_api']} {p['version']} ({p['prefix']}), "
              f"architecture {p['architecture']}, threading {p['threading_layer']}, "
              f"num_threads {p['num_threads']}")
    if not info["blas"]:
        print("blas:    (threadpoolctl reports no BLAS loaded)")

    X, y, source = make_moons_data(100, args.seed)
    print(f"data:    100 moons from {source}, random_state={args.seed}")

    # ---- engines (each seeded identically before its model is built)
    from micrograd.engine import Value as MgValue
    from micrograd.nn import MLP as MgMLP
    eager = [
        EagerEngine("micrograd_gc_on", "micrograd, GC on", MgValue, MgMLP, X, y, args.seed, False),
        EagerEngine("micrograd_gc_off", "micrograd, GC off", MgValue, MgMLP, X, y, args.seed, True),
    ]
    ref, ref_note = try_reference()
    if ref is not None:
        eager.append(EagerEngine("reference_gc_off", "fastgrad.reference, GC off",
                                 ref[0], ref[1], X, y, args.seed, True))
    eager += [
        EagerEngine("fastgrad_eager_gc_off", "fastgrad eager, GC off",
                    FgValue, FgMLP, X, y, args.seed, True, numpy_update=True),
        EagerEngine("fastgrad_eager_gc_on", "fastgrad eager, GC on",
                    FgValue, FgMLP, X, y, args.seed, False, numpy_update=True),
    ]
    replay = ReplayEngine(X, y, args.seed)
    print(f"reference engine: {ref_note}")

    # ---- graph size
    n_nodes_fg = count_nodes(replay.loss)
    mg_loss = build_loss(eager[0].model, MgValue, X, y)
    n_nodes_mg = count_nodes(mg_loss)
    del mg_loss
    gc.collect()
    n_instr = len(replay.tape)
    print(f"graph:   {n_nodes_fg} nodes (fastgrad), {n_nodes_mg} nodes (micrograd); "
          f"{len(replay.params)} parameters")
    print(f"tape:    {replay.tape!r}")
    print(f"         built eagerly in {fmt_time(replay.build_s)}, "
          f"lowered in {fmt_time(replay.lower_s)} (once)")
    if n_nodes_fg != n_nodes_mg:
        sys.exit(f"ABORT: fastgrad's graph has {n_nodes_fg} nodes, micrograd's {n_nodes_mg}")

    # ---- correctness gate
    print()
    print(f"correctness (two steps each, vs fastgrad eager GC off; tolerance {RTOL:g} relative):")
    lines, failed = check_agreement(eager, replay, "fastgrad_eager_gc_off")
    print("\n".join(lines))
    if failed:
        print(f"\nABORT: {', '.join(failed)} disagree with fastgrad eager", file=sys.stderr)
        sys.exit(2)

    # ---- interleaved timing
    samples = {e.key: [] for e in eager}
    phases = {e.key: [] for e in eager}
    for k in ("replay_step", "replay_forward", "replay_backward"):
        samples[k] = []
    blocks = eager + [replay]
    t_start = perf_counter()
    for r in range(rounds):
        order = blocks[r % len(blocks):] + blocks[:r % len(blocks)]
        for eng in order:
            gc.collect()
            if eng.gc_off:
                gc.disable()
            try:
                if eng.kind == "eager":
                    warm, timed = plan[eng.key]
                    for _ in range(warm):
                        eng.step()
                    for _ in range(timed):
                        _, b, bw, u = eng.step()
                        samples[eng.key].append((r, b + bw + u))
                        phases[eng.key].append((b, bw, u))
                else:
                    eng.run_steps(20)
                    eng.run_forward(20)
                    eng.run_backward(20)
                    for _ in range(replay_batches):
                        samples["replay_step"].append(
                            (r, eng.run_steps(replay_batch) / replay_batch))
                        samples["replay_forward"].append(
                            (r, eng.run_forward(replay_batch) / replay_batch))
                        samples["replay_backward"].append(
                            (r, eng.run_backward(replay_batch) / replay_batch))
            finally:
                gc.enable()
            eng.last_loss = None
            gc.collect()
    elapsed = perf_counter() - t_start

    stats = {k: summarize(v) for k, v in samples.items() if v}
    rep = stats["replay_step"]["median"]
    eag = stats["fastgrad_eager_gc_off"]["median"]
    labels = {e.key: e.label for e in eager}
    labels.update(replay_step="fastgrad replay: step",
                  replay_forward="fastgrad replay: forward only",
                  replay_backward="fastgrad replay: backward only")

    print()
    print(f"timing: {rounds} interleaved rounds in {elapsed:.0f} s (load average now "
          f"{load_avg()}); per engine and round: "
          + ", ".join(f"{k} {w}+{t}" for k, (w, t) in plan.items() if k in samples)
          + f" (warm-up+timed steps); replay {replay_batches} batches of {replay_batch} steps "
          "after 20 warm-up steps")
    print()
    print("| engine | median / step | min | spread (IQR) | n | / replay | / eager (GC off) |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for key in list(labels):
        if key not in stats:
            continue
        s = stats[key]
        print(f"| {labels[key]} | {fmt_time(s['median'])} | {fmt_time(s['min'])} | "
              f"{s['iqr_rel'] * 100:.1f}% | {s['n']} | {s['median'] / rep:,.1f}x | "
              f"{s['median'] / eag:,.2f}x |")
    if ref is None:
        print(f"| fastgrad.reference | n/a: {ref_note} | | | | | |")

    print()
    print("eager step phases (median): build graph / zero_grad+backward / update")
    for e in eager:
        ph = phases[e.key]
        b, bw, u = (statistics.median(p[i] for p in ph) for i in range(3))
        print(f"  {e.label:28s} {fmt_time(b):>10s} / {fmt_time(bw):>10s} / {fmt_time(u):>10s}")

    print()
    print("drift within the run (median step in round 1 -> rounds 2-5 -> last 5 rounds):")
    for key in list(labels):
        if key not in samples or not samples[key]:
            continue
        by_round = {}
        for r, t in samples[key]:
            by_round.setdefault(r, []).append(t)
        parts = []
        for lo, hi in ((0, 1), (1, 5), (max(rounds - 5, 0), rounds)):
            xs = [t for r in range(lo, hi) for t in by_round.get(r, [])]
            parts.append(fmt_time(statistics.median(xs)) if xs else "-")
        print(f"  {labels[key]:32s} " + " -> ".join(parts))

    fwd, bwd = stats["replay_forward"]["median"], stats["replay_backward"]["median"]
    print()
    print(f"replay per tape instruction ({n_instr} instructions): step "
          f"{rep / n_instr * 1e9:.1f} ns, forward {fwd / n_instr * 1e9:.1f} ns, "
          f"backward {bwd / n_instr * 1e9:.1f} ns")
    print(f"replay per graph node ({n_nodes_fg} nodes): step {rep / n_nodes_fg * 1e9:.2f} ns, "
          f"forward {fwd / n_nodes_fg * 1e9:.2f} ns, backward {bwd / n_nodes_fg * 1e9:.2f} ns")
    print(f"replay step minus forward minus backward (zero_grad + numpy update + "
          f"Python loop): {fmt_time(rep - fwd - bwd)}")

    headline = [
        ("micrograd GC off / fastgrad replay", "micrograd_gc_off", "replay_step", 1000),
        ("micrograd GC off / fastgrad eager GC off", "micrograd_gc_off",
         "fastgrad_eager_gc_off", 25),
        ("micrograd GC on  / fastgrad replay", "micrograd_gc_on", "replay_step", 1000),
        ("micrograd GC on  / fastgrad eager GC on", "micrograd_gc_on",
         "fastgrad_eager_gc_on", 25),
        ("micrograd GC on  / fastgrad eager GC off", "micrograd_gc_on",
         "fastgrad_eager_gc_off", 25),
    ]
    print()
    print("headline ratios (ratio of medians; per-round ratio median [min-max]):")
    head_json = {}
    for name, num, den, target in headline:
        ratio = stats[num]["median"] / stats[den]["median"]
        pr = per_round_ratios(samples[num], samples[den])
        verdict = "meets" if ratio >= target else "MISSES"
        print(f"  {name}: {ratio:,.1f}x   per round {pr['median']:,.1f}x "
              f"[{pr['min']:,.1f}-{pr['max']:,.1f}]   target >= {target}x: {verdict}")
        head_json[name] = {"ratio": ratio, "per_round": pr, "target": target}

    perf = None
    if args.perf:
        print()
        perf = perf_stat(args.perf_steps, args.seed)
        print(f"perf stat, replay loop alone ({args.perf_steps} steps minus 0 steps):")
        if "error" in perf:
            print(f"  {perf['error']}")
        else:
            a, b = perf[0], perf[args.perf_steps]
            for ev in ("instructions", "cycles", "task-clock"):
                va, vb = a.get(ev), b.get(ev)
                if isinstance(va, float) and isinstance(vb, float):
                    per = (vb - va) / args.perf_steps / n_instr
                    if ev == "task-clock":
                        print(f"  task-clock: {per * 1e6:.2f} ns per tape instruction")
                        if info["cpu_mhz"] and not isinstance(b.get("cycles"), float):
                            print(f"  cycles (estimated: task-clock x {info['cpu_mhz']:.0f} MHz "
                                  f"reported clock): {per * 1e6 * info['cpu_mhz'] / 1e3:.1f} "
                                  "per tape instruction")
                    else:
                        print(f"  {ev}: {per:.2f} per tape instruction")
                else:
                    print(f"  {ev}: {vb if vb is not None else 'not reported'}")

    if args.json:
        payload = {
            "machine": info, "data_source": source, "rounds": rounds, "plan": plan,
            "replay_batch": replay_batch, "replay_batches": replay_batches,
            "graph_nodes": n_nodes_fg, "tape_instructions": n_instr,
            "parameters": len(replay.params), "reference": ref_note,
            "stats": stats, "headline": head_json,
            "samples": {k: v for k, v in samples.items()},
            "phases": {k: v for k, v in phases.items()}, "perf": perf,
        }
        with open(args.json, "w") as f:
            json.dump(payload, f, indent=1)
        print(f"\nwrote {os.path.basename(args.json)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
