"""fastgrad.bench: ``python -m fastgrad.bench --quick --workloads w1,w2,scalar`` end to end.

No assertion on time: the table must have a row per engine that can run
here, every such row must have passed the loss cross-check, and engines
whose library is missing must be listed as skipped with a pip command.
The scalar workload's derived figures must be computed from the samples
of the same run.  Plus fast in-process checks of the harness's
cross-check, its timing of a step's parts, and statistics.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

import fastgrad
from fastgrad.bench import harness, threads
from fastgrad.bench.cli import DEFAULT_WORKLOADS, parse_args

HAS = {name: importlib.util.find_spec(name) is not None
       for name in ("micrograd", "torch", "jax")}

# workload -> [(engine key, label, library it needs or None)], in table order
EXPECTED = {
    "w1": [("micrograd_gc_on", "micrograd 0.1.0, GC on", "micrograd"),
           ("micrograd_gc_off", "micrograd 0.1.0, GC off", "micrograd"),
           ("reference", "fastgrad.reference (pure Python), GC off", None),
           ("fastgrad_eager", "fastgrad eager scalar (fastgrad.micrograd)", None),
           ("fastgrad_replay", "fastgrad scalar tape replay", None),
           ("fastgrad_compiled", "**fastgrad tensor compiled (@fg.compile + SGD)**", None),
           ("numpy", "numpy hand-written (forward, backward, update)", None),
           ("torch", "PyTorch eager (autograd + torch.optim.SGD)", "torch"),
           ("jax", "JAX jit (value_and_grad + SGD update)", "jax")],
    "w2": [("fastgrad_compiled", "**fastgrad tensor compiled (@fg.compile + SGD)**", None),
           ("fastgrad_scalar", "fastgrad scalar (Values, tape replay)", None),
           ("numpy", "numpy hand-written (forward, backward, update)", None),
           ("torch", "PyTorch eager (autograd + torch.optim.SGD)", "torch"),
           ("jax", "JAX jit (value_and_grad + SGD update)", "jax")],
    "scalar": [("micrograd_gc_on", "micrograd 0.1.0, GC on", "micrograd"),
               ("micrograd_gc_off", "micrograd 0.1.0, GC off", "micrograd"),
               ("reference", "fastgrad.reference (pure Python), GC off", None),
               ("fastgrad_eager_gc_off",
                "fastgrad eager scalar (fastgrad.micrograd), GC off", None),
               ("fastgrad_eager", "fastgrad eager scalar (fastgrad.micrograd), GC on", None),
               ("fastgrad_replay", "**fastgrad scalar tape replay**", None),
               ("fastgrad_replay_forward", "fastgrad scalar tape replay: forward only", None),
               ("fastgrad_replay_backward", "fastgrad scalar tape replay: backward only",
                None)],
}
# The scalar workload's engines that time their steps in parts.
EAGER_SCALAR = ("micrograd_gc_on", "micrograd_gc_off", "reference", "fastgrad_eager_gc_off",
                "fastgrad_eager")
PIP = {"micrograd": "pip install micrograd==0.1.0", "torch": "pip install torch",
       "jax": "pip install jax"}


def _table_rows(stdout: str, workload: str) -> dict[str, list[str]]:
    """label -> cells of the markdown table under '### <workload>:'."""
    lines = stdout.splitlines()
    start = next(i for i, ln in enumerate(lines) if ln.startswith(f"### {workload}:"))
    rows = {}
    for ln in lines[start + 3:]:          # heading, blank, header, separator
        if not ln.startswith("|"):
            break
        if ln.startswith("|---"):
            continue
        cells = [c.strip() for c in ln.strip("|").split("|")]
        rows[cells[0]] = cells
    return rows


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "quick.json"
    src = Path(fastgrad.__file__).resolve().parent.parent
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(src)] + [p for p in env.get("PYTHONPATH", "")
                                                      .split(os.pathsep) if p])
    done = subprocess.run(
        [sys.executable, "-m", "fastgrad.bench", "--quick", "--workloads", "w1,w2,scalar",
         "--json", str(out)], env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout, json.loads(out.read_text())


def test_quick_run_has_a_row_per_engine_and_every_check_passed(quick_run):
    stdout, data = quick_run
    assert "MISMATCH" not in stdout
    for workload, engines in EXPECTED.items():
        rows = _table_rows(stdout, workload)
        assert len(rows) == len(engines), (workload, list(rows))
        statuses = data["workloads"][workload]["engines"]
        for key, label, needs in engines:
            cells = rows[label]
            available = needs is None or HAS[needs]
            if available:
                assert cells[-1].startswith("ok"), (workload, label, cells[-1])
                assert statuses[key]["status"] == "ok"
                assert statuses[key]["seconds_per_unit"]["median"] > 0
                assert cells[4] != "—"   # × fastgrad
            else:
                assert cells[-1].startswith("skipped") and PIP[needs] in cells[-1]
                assert statuses[key]["status"] == "skipped"
                assert statuses[key]["install"] == PIP[needs]


def test_quick_run_reports_machine_threads_and_targets(quick_run):
    stdout, data = quick_run
    assert "- machine:" in stdout and "- BLAS:" in stdout
    assert "OPENBLAS_NUM_THREADS=1" in stdout
    assert "fastgrad (scipy.linalg.cython_blas)" in stdout
    assert data["machine"]["threads"]["variables"]["OPENBLAS_NUM_THREADS"] == "1"
    targets = {(t["workload"], t["target"]) for t in data["targets"] if t["value"] is not None}
    assert ("w2", "W2 compiled step <= 0.6x numpy hand-written") in targets
    if HAS["micrograd"]:
        assert any(wl == "w1" and "micrograd GC off" in what for wl, what in targets)
    # Nothing machine-specific in what the report writes.
    text = json.dumps(data)
    assert "/tmp/" not in text and "/root/" not in text and "/home/" not in text


def _available(key):
    needs = {k: n for k, _, n in EXPECTED["scalar"]}[key]
    return needs is None or HAS[needs]


def test_scalar_workload_times_the_parts_of_every_eager_step(quick_run):
    stdout, data = quick_run
    engines = data["workloads"]["scalar"]["engines"]
    parts = ["build graph", "zero_grad + backward", "update"]
    for key, e in engines.items():
        if key in EAGER_SCALAR and _available(key):
            assert list(e["parts"]) == parts, key
            # one part sample per timed round, from the same batches as the samples
            assert [p["round"] for p in e["part_samples"]] == [s["round"] for s in e["samples"]]
            for name in parts:
                assert e["parts"][name] == statistics.median(
                    p["seconds"][name] for p in e["part_samples"])
            for p, s in zip(e["part_samples"], e["samples"]):
                assert sum(p["seconds"].values()) <= s["seconds"]
        else:
            assert e["parts"] is None and e["part_samples"] == [], key
    # w1 runs the same engine classes without timing parts.
    assert all(e["parts"] is None for e in data["workloads"]["w1"]["engines"].values())
    section = stdout[stdout.index("### scalar:"):]
    assert "| eager step, median per part | build graph | zero_grad + backward | update |" \
        in section
    for key, label, _ in EXPECTED["scalar"]:
        if key in EAGER_SCALAR and _available(key):
            assert f"\n| {label} | " in section


def test_scalar_figures_are_computed_from_the_same_runs_medians(quick_run):
    stdout, data = quick_run
    scalar = data["workloads"]["scalar"]
    engines, fig = scalar["engines"], scalar["figures"]
    median = {k: e["seconds_per_unit"]["median"] for k, e in engines.items()
              if e["status"] == "ok"}
    tape = engines["fastgrad_replay"]["facts"]
    assert fig["tape"] == tape
    # The instruction and node counts are the tape's own.
    shown = re.match(r"<Tape: (\d+) instructions.* (\d+) graph nodes", tape["tape"])
    assert (int(shown[1]), int(shown[2])) == (tape["instructions"], tape["graph_nodes"])
    assert tape["graph_nodes"] > tape["instructions"] > 0      # dots fold many nodes
    sweeps = {"step": "fastgrad_replay", "forward": "fastgrad_replay_forward",
              "backward": "fastgrad_replay_backward"}
    for name, key in sweeps.items():
        assert fig["per_instruction_s"][name] == median[key] / tape["instructions"]
        assert fig["per_node_s"][name] == median[key] / tape["graph_nodes"]
    assert fig["step_minus_sweeps_s"] == (median["fastgrad_replay"]
                                          - median["fastgrad_replay_forward"]
                                          - median["fastgrad_replay_backward"])
    assert f"- replay per tape instruction ({tape['instructions']} tape instructions): step " \
        in stdout
    # Every speed-up: ratio of this run's medians, and the per-round ratios of its samples.
    expected = 5 if HAS["micrograd"] else 0
    assert len(fig["ratios"]) == expected
    for x in fig["ratios"]:
        num, den = engines[x["numerator"]], engines[x["denominator"]]
        assert x["of_medians"] == median[x["numerator"]] / median[x["denominator"]]
        den_by_round = {s["round"]: s["seconds"] for s in den["samples"]}
        rounds = [s["seconds"] / den_by_round[s["round"]] for s in num["samples"]]
        assert len(rounds) == data["settings"]["rounds"]
        assert x["per_round"] == {"median": statistics.median(rounds), "min": min(rounds),
                                  "max": max(rounds)}
        assert f"| {x['name']} | " in stdout
    assert set(fig["drift"]) == set(median)
    # A sweep alone is not a step: no speed-up over micrograd's step in its row.
    rows = _table_rows(stdout, "scalar")
    for key, label, _ in EXPECTED["scalar"]:
        versus = rows[label][5]
        if key in ("fastgrad_replay_forward", "fastgrad_replay_backward"):
            assert versus == "—", (label, versus)
        elif HAS["micrograd"] and _available(key):
            assert versus.endswith("×"), (label, versus)


def test_scalar_workload_runs_only_when_named():
    assert "scalar" not in parse_args([]).workloads
    assert parse_args([]).workloads == list(DEFAULT_WORKLOADS)
    assert parse_args(["--workloads", "scalar"]).workloads == ["scalar"]


# -- the harness, in process -------------------------------------------------------------


class _Fake(harness.Engine):
    def __init__(self, key, losses, workload=None):
        super().__init__(workload)
        self.key = self.label = key
        self.family = "test"
        self._losses = iter(losses)
        self.calls = 0

    def setup(self):
        pass

    def step(self):
        self.calls += 1
        return next(self._losses, 0.0)


def _run(engines, dtype="float64"):
    return harness.run_workload(engines, "base", dtype, rounds=2, batch_s=1e-4,
                                warmup_s=1e-5)


def test_cross_check_catches_a_wrong_loss_and_a_wrong_update():
    base = _Fake("base", [2.0, 1.0] + [0.5] * 10**6)
    same = _Fake("same", [2.0, 1.0] + [0.5] * 10**6)
    wrong_loss = _Fake("wrong_loss", [2.1, 1.0] + [0.5] * 10**6)
    results = {r.engine.key: r for r in _run([base, same, wrong_loss])}
    assert results["same"].status == "ok" and results["same"].samples
    assert results["wrong_loss"].status == "mismatch"
    assert "MISMATCH" in results["wrong_loss"].message
    assert not results["wrong_loss"].samples          # a mismatching engine is not timed
    assert results["base"].stats["ratio"] == 1.0

    # float32: a loss within 1e-4 whose first update moved it twice as far.
    base = _Fake("base", [1000.0, 999.8] + [0.5] * 10**6)
    wrong_step = _Fake("wrong_step", [1000.0, 999.85] + [0.5] * 10**6)
    results = _run([base, wrong_step], dtype="float32")
    assert results[1].status == "mismatch" and "first update" in results[1].message


def test_engine_that_does_not_update_is_checked_on_its_first_loss():
    class Sweep(_Fake):
        updates = False

    base = _Fake("base", [2.0, 1.0] + [0.5] * 10**6)
    forward = Sweep("forward", [2.0] * 10**6)             # same weights, same loss
    wrong = Sweep("wrong", [2.5] * 10**6)
    results = {r.engine.key: r for r in _run([base, forward, wrong])}
    assert results["forward"].status == "ok" and results["forward"].samples
    assert results["wrong"].status == "mismatch"
    # An updating engine whose loss does not move is still caught.
    results = _run([_Fake("base", [2.0, 1.0] + [0.5] * 10**6),
                    _Fake("stuck", [2.0] * 10**6)])
    assert results[1].status == "mismatch"


def test_parts_are_recorded_per_timed_round():
    class Parted(_Fake):
        parts = ("a", "b")

        def run(self, n):
            elapsed = super().run(n)
            self.part_seconds = [0.25 * elapsed, 0.5 * elapsed]
            return elapsed

    base = Parted("base", [1.0] * 10**6)
    plain = _Fake("plain", [1.0] * 10**6)
    results = _run([base, plain])
    r = results[0]
    assert [k for k, _ in r.part_samples] == [k for k, _ in r.samples] == [0, 1]
    for (_, parts), (_, s) in zip(r.part_samples, r.samples):
        assert parts == pytest.approx([0.25 * s, 0.5 * s])
    assert r.part_stats == {"a": statistics.median(p[0] for _, p in r.part_samples),
                            "b": statistics.median(p[1] for _, p in r.part_samples)}
    assert results[1].part_samples == [] and results[1].part_stats == {}


def test_missing_library_is_a_skipped_row():
    class Missing(_Fake):
        def setup(self):
            raise harness.Skip("FooLib is not installed", "pip install foolib")

    results = _run([_Fake("base", [1.0] * 10**5), Missing("foo", [])])
    assert results[1].status == "skipped" and results[1].install == "pip install foolib"


def test_summary_statistics():
    s = harness.summarize([3.0, 1.0, 2.0, 4.0, 100.0])
    assert s["median"] == 3.0 and s["min"] == 1.0 and s["max"] == 100.0
    assert s["q1"] == 2.0 and s["q3"] == 4.0 and s["n"] == 5


def test_thread_environment_and_arguments():
    env = threads.wanted_environment(1, {"XLA_FLAGS": "--xla_dump_to=x"})
    assert env["OPENBLAS_NUM_THREADS"] == env["OMP_NUM_THREADS"] == "1"
    assert "--xla_dump_to=x" in env["XLA_FLAGS"]
    assert "--xla_cpu_multi_thread_eigen=false" in env["XLA_FLAGS"]
    assert "XLA_FLAGS" not in threads.wanted_environment(2, {})
    args = parse_args(["--quick", "--workloads", "w1,ops", "--engines", "numpy,torch"])
    assert args.workloads == ["w1", "ops"] and args.engines == ["numpy", "torch"]
    with pytest.raises(SystemExit):
        parse_args(["--workloads", "w9"])
