"""fastgrad._stats: tape statistics, checked against hand counts."""

from __future__ import annotations

import numpy as np
import pytest

import fastgrad as fg
from fastgrad._stats import TapeStats, tape_stats

V = fg.Value


def seed_graph():
    x1, x2 = V(2.0, label="x1"), V(0.0, label="x2")
    w1, w2 = V(-3.0, label="w1"), V(1.0, label="w2")
    b = V(6.8814, label="b")
    return x1 * w1 + x2 * w2 + b


def test_seed_graph_fused():
    # x1*w1 stays a mul (the dot's initial value); x2*w2 and b fold into one dot:
    # %7 = dot %6 + %2*%3 + %4.  Slots: 5 leaves, the constant 1.0, %6, %7.
    s = fg.lower(seed_graph()).stats()
    assert isinstance(s, TapeStats) and isinstance(s, dict)
    assert s["kind"] == "scalar"
    assert s["instructions"] == 2
    assert s["ops"] == {"dot": 1, "mul": 1}
    assert (s["slots"], s["leaves"], s["nodes"]) == (8, 5, 9)
    assert (s["value_bytes"], s["grad_bytes"]) == (64, 64)
    assert s["dot_terms"] == 2
    # mul 1; dot: x2*w2 is 2 (multiply, add), b is 1 (add)
    assert (s["flops_forward"], s["flops_backward"]) == (4, 8)


def test_seed_graph_unfused():
    s = tape_stats(fg.lower(seed_graph(), fuse=False))
    assert s["ops"] == {"add": 2, "mul": 2}
    assert (s["instructions"], s["slots"], s["leaves"], s["nodes"]) == (4, 10, 5, 9)
    assert (s["value_bytes"], s["flops_forward"], s["flops_backward"]) == (80, 4, 8)
    assert s["dot_terms"] == 0


def test_scalar_neuron():
    xs = [V(float(i)) for i in range(10)]
    ws = [V(0.1 * i) for i in range(10)]
    out = sum((w * x for w, x in zip(ws, xs)), V(0.5)).tanh()
    s = fg.lower(out).stats()
    assert s["ops"] == {"dot": 1, "tanh": 1}
    assert s["dot_terms"] == 10
    assert s["flops_forward"] == 2 * 10 + 1


def test_tensor_tape():
    X = fg.tensor(np.ones((2, 3)), requires_grad=True, label="X")
    W = fg.tensor(np.ones((3, 2)), requires_grad=True, label="W")
    tape = fg.lower((X @ W).tanh().sum())
    s = tape.stats()
    assert s["kind"] == "tensor" and "dot_terms" not in s
    assert s["ops"] == {"matmul": 1, "sum": 1, "tanh": 1}
    assert (s["instructions"], s["slots"], s["leaves"], s["nodes"]) == (3, 5, 2, 5)
    assert s["value_bytes"] == (4 + 4 + 1) * 8          # the intermediates' values
    assert s["grad_bytes"] == tape._program()["grad_bytes"] >= (4 + 4 + 1) * 8
    # matmul 2*m*n*k = 2*2*2*3; tanh 4 elements; sum 4 inputs
    assert (s["flops_forward"], s["flops_backward"]) == (24 + 4 + 4, 64)


def test_float32_halves_the_bytes():
    X = fg.tensor(np.ones((4, 5), dtype=np.float32), requires_grad=True)
    s = fg.lower((X * X).sum()).stats()
    assert s["value_bytes"] == (20 + 1) * 4


def test_data_movement_costs_no_flops_and_batched_matmul_counts_every_batch():
    A = fg.tensor(np.ones((4, 3, 5)), requires_grad=True)
    B = fg.tensor(np.ones((4, 5, 2)), requires_grad=True)
    s = fg.lower((A @ B).reshape(4, 6).transpose()[1:3].sum()).stats()
    assert s["ops"]["matmul"] == 1
    assert s["flops_forward"] == 2 * 4 * 3 * 2 * 5 + 2 * 4      # reshape/T/[] are free


def test_readable_str_and_compact_repr():
    s = fg.lower(seed_graph()).stats()
    text = str(s)
    assert text.splitlines()[0] == "scalar tape: 2 instructions, 8 slots (5 leaves), 9 graph nodes"
    assert "ops: dot 1, mul 1 (2 terms in dots)" in text
    assert "buffers: values 64 B, grads 64 B" in text
    assert "FLOPs (estimate): forward 4, backward 8" in text
    assert "\n" not in repr(s) and repr(s).startswith("<TapeStats scalar: 2 instructions")
    assert s.instructions == 2
    with pytest.raises(AttributeError):
        s.nope


def test_large_numbers_are_abbreviated():
    A = fg.tensor(np.ones((300, 400)), requires_grad=True)
    B = fg.tensor(np.ones((400, 500)), requires_grad=True)
    text = str(fg.lower((A @ B).sum()).stats())
    assert "forward 120M" in text and "MiB" in text


def test_empty_program():
    s = fg.lower(V(1.0)).stats()
    assert (s["instructions"], s["ops"], s["flops_forward"]) == (0, {}, 0)
    assert "ops: none" in str(s)
