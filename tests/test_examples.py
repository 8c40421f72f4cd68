"""The scripts in examples/: each runs (as ``__main__``, with its command line) and
prints the numbers its docstring promises.

Most run in this process through ``runpy`` (fast, and the output is captured);
one test runs two of them as real subprocesses, as a user would.
"""

from __future__ import annotations

import os
import re
import runpy
import subprocess
import sys
from pathlib import Path

import pytest

import fastgrad

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

pytestmark = pytest.mark.skipif(not EXAMPLES.is_dir(), reason="examples/ is not here")


@pytest.fixture
def run(monkeypatch, capsys):
    """run(name, *args) -> stdout of ``python examples/name args...``."""

    def run_example(name, *args):
        path = EXAMPLES / name
        monkeypatch.setattr(sys, "argv", [str(path), *args])
        runpy.run_path(str(path), run_name="__main__")
        return capsys.readouterr().out

    return run_example


def numbers(text):
    return [float(x) for x in re.findall(r"-?\d+(?:\.\d+)?(?:e[-+]?\d+)?", text)]


def line(out, prefix):
    """The one line of out that starts with prefix."""
    found = [ln for ln in out.splitlines() if ln.startswith(prefix)]
    assert len(found) == 1, f"expected one line starting {prefix!r} in:\n{out}"
    return found[0]


def after(out, prefix):
    return numbers(line(out, prefix)[len(prefix):])


# -- the seeds -------------------------------------------------------------------------


def test_seed003_exact_numbers(run):
    out = run("seed003.py")
    assert after(out, "hidden z =") == [60.0, 60.0, 60.0]
    assert after(out, "output y' =") == [180.0]
    assert after(out, "loss L =") == [7200.0]
    assert after(out, "dL/dy' =") == [120.0]
    assert after(out, "grad W2 (layer 2) =") == [7200.0] * 3
    assert after(out, "grad W1 row x1 =") == [4800.0] * 3
    assert after(out, "grad W1 row x2 =") == [9600.0] * 3
    assert "after one SGD step (lr 1e-5):" in out
    assert after(out, "W2 =") == pytest.approx([0.928] * 3, abs=1e-12)
    assert after(out, "W1 row x1 =") == pytest.approx([0.452] * 3, abs=1e-12)
    assert after(out, "W1 row x2 =") == pytest.approx([0.404] * 3, abs=1e-12)


def _check_seed000_numbers(out):
    assert after(out, "y = x1*w1 + x2*w2 + b =") == [0.8814]
    grads = {}
    for name in ("x1", "x2", "w1", "w2", "b"):
        data, grad, numerical, diff = after(out, f"{name:>4} ")
        grads[name] = grad
        assert abs(numerical - grad) < 1e-6 and diff < 1e-6
    assert grads == {"x1": -3.0, "x2": 1.0, "w1": 2.0, "w2": 0.0, "b": 1.0}
    assert after(out, "max |analytic - numerical| =")[0] < 1e-6


def test_seed000_gradients_and_drawing(run):
    out = run("seed000_graph.py")
    _check_seed000_numbers(out)
    try:
        import fastgrad.viz  # noqa: F401
    except ImportError:
        assert "skipping the mermaid drawing" in out
    else:
        assert "graph LR" in out
        for box in ("x1 | data 2.0000 | grad -3.0000", "w1 | data -3.0000 | grad 2.0000",
                    "b | data 6.8814 | grad 1.0000", "y | data 0.8814 | grad 1.0000"):
            assert box in out


def test_seed000_without_viz_skips_the_drawing(run, monkeypatch):
    monkeypatch.setitem(sys.modules, "fastgrad.viz", None)     # as if viz did not exist
    out = run("seed000_graph.py", "--h", "1e-7")
    _check_seed000_numbers(out)
    assert "(fastgrad.viz is not available: skipping the mermaid drawing)" in out
    assert "graph LR" not in out


def test_seed001_matmul_formulas(run):
    out = run("seed001_matmul.py")
    errors = [float(m) for m in re.findall(r"max error .*? (\S+)$", out, flags=re.M)]
    assert len(errors) == 12                        # 3 cases x 4 comparisons
    formula = [e for k, e in enumerate(errors) if k % 4 < 2]
    numerical = [e for k, e in enumerate(errors) if k % 4 >= 2]
    assert max(formula) < 1e-12
    assert max(numerical) < 1e-8
    assert "dL/dx == -W.T: True   dL/dW == -x.T: True" in out
    assert "X (3, 4) @ W (4, 2) -> Y (3, 2)" in out
    assert after(out, "largest error over all cases:")[0] == pytest.approx(max(errors))


def test_xor_is_learned(run):
    out = run("xor.py")
    assert after(out, "2-8-1 ReLU net: max |numpy hand-written - fastgrad| gradient "
                      "difference")[0] < 1e-12
    outputs = {}
    for a, b in [(0, 0), (0, 1), (1, 0), (1, 1)]:
        target, value = after(out, f"xor({a}, {b}) =")
        assert target == a ^ b
        outputs[a, b] = value
    assert all((v > 0.5) == (a ^ b == 1) for (a, b), v in outputs.items())
    assert "XOR learned: True" in out


def test_xor_seed_net_gradients(run):
    """The seed's own 2-2-1 net: fastgrad's gradients are the hand-written ones."""
    out = run("xor.py", "--hidden", "2", "--steps", "1", "--seed", "3")
    assert after(out, "2-2-1 ReLU net: max |numpy hand-written - fastgrad| gradient "
                      "difference")[0] < 1e-12


# -- moons ------------------------------------------------------------------------------


def _final_accuracy(out, steps=100):
    loss, accuracy = after(out, f"step {steps - 1:3d} loss")
    return loss, accuracy


def test_moons_scalar(run):
    out = run("moons.py")
    assert line(out, "337 parameters")
    loss, accuracy = _final_accuracy(out)
    assert accuracy >= 95 and loss < 0.1
    assert "steps in" in out and "tape replay" in out


def test_moons_tensor(run):
    out = run("moons.py", "--tensor")
    assert line(out, "337 parameters")
    assert "<fastgrad.compile of" in out and "1 trace(s)" in out
    loss, accuracy = _final_accuracy(out)
    assert accuracy >= 95 and loss < 0.1
    assert "compiled tensor step" in out


def test_moons_tensor_eager_equals_compiled(run):
    compiled = run("moons.py", "--tensor", "--steps", "30")
    eager = run("moons.py", "--tensor", "--steps", "30", "--eager")
    assert "eager tensors" in eager
    steps = [ln for ln in compiled.splitlines() if ln.startswith("step ")]
    assert steps == [ln for ln in eager.splitlines() if ln.startswith("step ")]


@pytest.mark.parametrize("mode", [[], ["--tensor"]])
def test_moons_plot_writes_a_png(run, tmp_path, mode):
    pytest.importorskip("matplotlib")
    path = tmp_path / "moons.png"
    out = run("moons.py", *mode, "--steps", "20", "--plot", str(path))
    assert f"saved the decision boundary and loss curve to {path}" in out
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert path.stat().st_size > 10_000


def test_moons_plot_without_matplotlib(run, monkeypatch, tmp_path):
    for name in list(sys.modules):
        if name == "matplotlib" or name.startswith("matplotlib."):
            monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(SystemExit) as exit_info:
        run("moons.py", "--tensor", "--plot", str(tmp_path / "x.png"))
    assert "matplotlib" in str(exit_info.value.code)
    assert "pip install" in str(exit_info.value.code)
    assert not (tmp_path / "x.png").exists()


# -- digits -----------------------------------------------------------------------------


@pytest.mark.parametrize("mode", [[], ["--estimator"]])
def test_digits_95_percent(run, mode):
    pytest.importorskip("sklearn")
    out = run("digits.py", *mode)
    assert line(out, "digits: 1348 training and 449 test images, MLP 64-64-10, 30 epochs")
    accuracy = after(out, "test accuracy:")[0]
    assert accuracy >= 0.95
    epochs = [int(ln.split()[1]) for ln in out.splitlines() if ln.startswith("epoch")]
    assert epochs == [1, 6, 11, 16, 21, 26, 30]


# -- as a user runs them ----------------------------------------------------------------


def test_examples_run_as_scripts():
    src = Path(fastgrad.__file__).resolve().parent.parent
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(src)] + [p for p in env.get("PYTHONPATH", "")
                                                      .split(os.pathsep) if p])
    done = subprocess.run([sys.executable, str(EXAMPLES / "seed003.py")], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "loss L = 7200" in done.stdout and "W2 = [0.928, 0.928, 0.928]" in done.stdout
    done = subprocess.run([sys.executable, str(EXAMPLES / "moons.py"), "--tensor", "--steps",
                           "5"], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "step   4 loss" in done.stdout
