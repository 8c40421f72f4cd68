"""fastgrad.bench: ``python -m fastgrad.bench --quick --workloads w1,w2`` end to end.

No assertion on time: the table must have a row per engine that can run
here, every such row must have passed the loss cross-check, and engines
whose library is missing must be listed as skipped with a pip command.
Plus fast in-process checks of the harness's cross-check and statistics.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import fastgrad
from fastgrad.bench import harness, threads
from fastgrad.bench.cli import parse_args

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
}
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
        [sys.executable, "-m", "fastgrad.bench", "--quick", "--workloads", "w1,w2",
         "--json", str(out)], env=env, capture_output=True, text=True, timeout=150)
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
                assert cells[-3 if workload != "w1" else -4] != "—"   # × fastgrad
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
