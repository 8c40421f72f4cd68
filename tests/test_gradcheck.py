"""fastgrad.gradcheck: finite-difference checks that name the op to blame."""

from __future__ import annotations

import numpy as np
import pytest

import fastgrad as fg
import fastgrad.nn.functional as F
from fastgrad.gradcheck import (
    LOCAL_BACKWARD, GradcheckError, check_instructions, gradcheck, inject_backward,
    instruction_calls,
)
from fastgrad.ops import OPS

V = fg.Value
rng = np.random.default_rng(7)


def T(*shape, low=-1.0, high=1.0, label=None, dtype=np.float64):
    return fg.tensor(rng.uniform(low, high, shape).astype(dtype), requires_grad=True,
                     label=label)


# -- every op passes -------------------------------------------------------------------

SCALAR_CASES = {
    "add": (lambda a, b: a + b, (0.3, -1.2)),
    "radd": (lambda a, b: 2.5 + a, (0.3, -1.2)),
    "sub": (lambda a, b: a - b, (0.3, -1.2)),
    "rsub": (lambda a, b: 1.0 - b * a, (0.3, -1.2)),
    "mul": (lambda a, b: a * b, (0.3, -1.2)),
    "truediv": (lambda a, b: a / b, (0.3, -1.2)),
    "rtruediv": (lambda a, b: 2.0 / b, (0.3, -1.2)),
    "neg": (lambda a, b: -a * b, (0.3, -1.2)),
    "pow_const": (lambda a, b: a ** 3 + b ** -2 + a ** 0.5, (0.3, -1.2)),
    "pow": (lambda a, b: a ** b, (1.7, -1.2)),
    "rpow": (lambda a, b: 2.0 ** a, (0.3, -1.2)),
    "relu": (lambda a, b: (a * b).relu() + a.relu(), (0.3, -1.2)),
    "tanh": (lambda a, b: (a * b).tanh(), (0.3, -1.2)),
    "exp": (lambda a, b: (a * b).exp(), (0.3, -1.2)),
    "log": (lambda a, b: (a * a + b * b).log(), (0.3, -1.2)),
    "sigmoid": (lambda a, b: (a - b).sigmoid(), (0.3, -1.2)),
    "dot": (lambda a, b: a * b + b * b + a + 1.5 * a, (0.3, -1.2)),   # fused to a dot
    "shared": (lambda a, b: (a * a + a).tanh() * (a + b), (0.3, -1.2)),
}


@pytest.mark.parametrize("name", sorted(SCALAR_CASES))
def test_scalar_ops_pass(name):
    fn, (a, b) = SCALAR_CASES[name]
    assert gradcheck(fn, V(a, label="a"), V(b, label="b")) is True


def _x():
    return T(3, 4, label="x")


TENSOR_CASES = {
    "add_broadcast": (lambda x, b: x + b, lambda: (_x(), T(4, label="b"))),
    "sub": (lambda x, y: x - y, lambda: (_x(), _x())),
    "mul_broadcast": (lambda x, c: x * c, lambda: (_x(), T(3, 1))),
    "truediv": (lambda x, y: x / y, lambda: (_x(), T(3, 4, low=0.5, high=2.0))),
    "pow": (lambda x, y: x ** y, lambda: (T(3, 4, low=0.5, high=2.0), _x())),
    "pow_const": (lambda x: x ** 3 - x ** 2.0, lambda: (_x(),)),
    "neg": (lambda x: -x, lambda: (_x(),)),
    "relu": (lambda x: x.relu(), lambda: (T(3, 4, low=0.1, high=1.0) * 1.0 - 0.55,)),
    "tanh": (lambda x: x.tanh(), lambda: (_x(),)),
    "exp": (lambda x: x.exp(), lambda: (_x(),)),
    "log": (lambda x: x.log(), lambda: (T(3, 4, low=0.5, high=2.0),)),
    "sigmoid": (lambda x: x.sigmoid(), lambda: (_x(),)),
    "abs": (lambda x: x.abs(), lambda: (T(5, low=0.2, high=1.0) * np.array([1, -1, 1, -1, 1.0]),)),
    "matmul": (lambda x, w: x @ w, lambda: (_x(), T(4, 2))),
    "matmul_vector": (lambda v, w: v @ w, lambda: (T(4), T(4, 2))),
    "matmul_batched": (lambda x, w: x @ w, lambda: (T(2, 3, 4), T(2, 4, 5))),
    "sum_axis": (lambda x: x.sum(axis=0), lambda: (_x(),)),
    "sum_keepdims": (lambda x: x.sum(axis=1, keepdims=True) * x, lambda: (_x(),)),
    "mean": (lambda x: x.mean(), lambda: (_x(),)),
    "max": (lambda x: x.max(axis=1), lambda: (_x(),)),
    "reshape": (lambda x: x.reshape(2, 6).tanh(), lambda: (_x(),)),
    "transpose": (lambda x: x.T @ x, lambda: (_x(),)),
    "getitem": (lambda x: x[1:, ::2] * 2.0, lambda: (_x(),)),
    "log_softmax": (lambda x: F.log_softmax(x), lambda: (_x(),)),
    "softmax_axis0": (lambda x: F.softmax(x, axis=0), lambda: (_x(),)),
    "cross_entropy": (lambda x, t: F.cross_entropy(x, t),
                      lambda: (_x(), fg.tensor([0, 3, 1]))),
    "mse": (lambda x, y: F.mse_loss(x, y), lambda: (_x(), _x())),
    "bce_logits": (lambda x, y: F.binary_cross_entropy_with_logits(x, y),
                   lambda: (_x(), fg.tensor(rng.uniform(0, 1, (3, 4))))),
    "mlp": (lambda x, w1, w2: ((x @ w1).tanh() @ w2).sum(), lambda: (_x(), T(4, 5), T(5, 1))),
}


@pytest.mark.parametrize("name", sorted(TENSOR_CASES))
def test_tensor_ops_pass(name):
    fn, make = TENSOR_CASES[name]
    inputs = make()
    assert gradcheck(fn, *inputs) is True


def _ops_used(root):
    return {c.op for c in instruction_calls(fg.lower(root))}


def test_the_cases_cover_every_op():
    used = set()
    for fn, (a, b) in SCALAR_CASES.values():
        used |= _ops_used(fn(V(a), V(b)))
    for fn, make in TENSOR_CASES.values():
        used |= _ops_used(fn(*make()))
    cast_graph = T(3, dtype=np.float32) * T(3)          # float32 promoted: a cast
    used |= _ops_used(cast_graph.sum())
    # The elementwise rows are each checked by test_op_table.py.
    assert {op.name for op in OPS if op.name != "leaf" and not op.elementwise} <= used


def test_every_instruction_checks_out_on_its_own():
    for fn, make in TENSOR_CASES.values():
        out = fn(*make())
        assert check_instructions(out) == []
    x32 = T(3, 4, dtype=np.float32)
    assert check_instructions((x32 * T(3, 4)).tanh().sum()) == []      # cast f32 -> f64
    a, b = V(0.3), V(-1.2)
    for fn, _ in SCALAR_CASES.values():
        assert check_instructions(fn(a, b)) == []


def test_float32_inputs_are_checked_in_float64():
    x = T(3, 4, dtype=np.float32, label="x")
    w = T(4, 2, dtype=np.float32, label="w")
    seen = []

    def fn(x, w):
        seen.append((x.dtype, w.dtype))
        return (x @ w).tanh()

    assert gradcheck(fn, x, w)
    assert seen and all(dx == np.float64 and dw == np.float64 for dx, dw in seen)
    assert x.dtype == np.float32 and x.grad is None        # the inputs are not touched


def test_inputs_are_left_alone():
    a, b = V(0.3, label="a"), V(0.5, label="b")
    x = T(3, label="x")
    before = x.data.copy()
    gradcheck(lambda a, b: (a * b).tanh(), a, b)
    gradcheck(lambda x: (x * x).sum(), x)
    assert (a.grad, a.data, b.grad) == (0.0, 0.3, 0.0) and x.grad is None
    np.testing.assert_array_equal(x.data, before)


def test_non_scalar_outputs_use_a_projection():
    assert gradcheck(lambda x: x * x, _x())


def test_constant_tensors_and_other_arguments_pass_through():
    c = fg.tensor([1.0, 2.0, 3.0, 4.0])           # no requires_grad: not checked
    assert gradcheck(lambda x, c, k: (x * c).sum() * k, _x(), c, 3.0)


def test_works_inside_no_grad():
    with fg.no_grad():
        assert gradcheck(lambda x: (x * x).sum(), _x())


# -- failures name the bad op -------------------------------------------------------------

def wrong_tanh(call, upstream):
    """tanh's derivative off by a factor 2: the injected fault."""
    (a,) = call.inputs
    return [2.0 * upstream * (1.0 - np.tanh(a) ** 2)]


def test_injected_scalar_fault_names_the_op():
    a, b = V(0.3, label="a"), V(-1.2, label="b")

    def fn(a, b):
        h = (a * b + a).tanh()
        h.label = "h"
        return h * b + a.exp()

    with inject_backward("tanh", wrong_tanh):
        with pytest.raises(GradcheckError) as info:
            gradcheck(fn, a, b)
    err = info.value
    assert isinstance(err, AssertionError)
    assert err.culprit is not None and err.culprit.op == "tanh"
    text = str(err)
    assert "input 0 'a': analytic" in text and "input 1 'b'" in text
    # a*b + a is fused into one dot instruction (0); tanh is instruction 1
    assert "instruction 1: tanh 'h' = -0.0599281 from (-0.06): d/da: analytic 1.99282, " \
           "numeric 0.996409" in text
    assert LOCAL_BACKWARD == {}                 # restored
    assert gradcheck(fn, a, b)                  # and fine again


def test_injected_tensor_fault_names_op_label_and_shapes():
    x, w, v = _x(), T(4, 2, label="w"), T(2, 1, label="v")

    def fn(x, w, v):
        y = x @ w
        y.label = "y"
        return (y.tanh() @ v).sum()

    def wrong_matmul(call, g):
        a, b = call.inputs
        return [g @ b.T, 0.5 * a.T @ g]          # dB off by a factor 2

    with inject_backward("matmul", wrong_matmul):
        with pytest.raises(GradcheckError) as info:
            gradcheck(fn, x, w, v)
    err = info.value
    assert err.culprit.op == "matmul" and err.culprit.operand == 1
    assert "instruction 0: matmul 'y' -> (3, 2) float64, from (3, 4) float64, (4, 2) float64" \
        in str(err)
    assert {f["input"] for f in err.failures} == {1, 2}      # w and v are wrong, x is fine


def test_the_first_bad_instruction_is_named():
    def bad_exp(call, g):
        return [3.0 * g * np.exp(call.inputs[0])]

    x = _x()
    with inject_backward("tanh", wrong_tanh), inject_backward("exp", bad_exp):
        with pytest.raises(GradcheckError) as info:
            gradcheck(lambda x: (x.exp() * 0.1).tanh().sum(), x)
        assert info.value.culprit.op == "exp"
        with pytest.raises(GradcheckError) as info:
            gradcheck(lambda x: x.tanh().exp().sum(), x)
        assert info.value.culprit.op == "tanh"


def test_monkeypatching_the_registry_works_too(monkeypatch):
    monkeypatch.setitem(LOCAL_BACKWARD, "sigmoid", lambda call, g: [0.0 * g])
    with pytest.raises(GradcheckError) as info:
        gradcheck(lambda a: a.sigmoid() * a, V(0.4, label="a"))
    assert info.value.culprit.op == "sigmoid"


def test_a_correct_override_composes_to_the_right_gradients():
    right = lambda call, g: [g * (1.0 - np.tanh(call.inputs[0]) ** 2)]  # noqa: E731
    with inject_backward("tanh", right):
        assert gradcheck(lambda x, w: (x @ w).tanh().sum(), _x(), T(4, 3))
        assert gradcheck(lambda a: (a * a).tanh() * a + a, V(0.7))


def test_a_value_used_as_a_constant_is_diagnosed():
    a = V(0.3, label="a")
    with pytest.raises(GradcheckError) as info:
        gradcheck(lambda a: a * V(a.data), a)        # the second factor has no derivative
    err = info.value
    assert err.culprit is None
    assert "Every instruction's backward agrees" in str(err)
    assert "1 leaf that is not a checked input" in str(err)
    assert err.failures == [{"input": 0, "label": "a", "index": None, "analytic": 0.3,
                             "numeric": pytest.approx(0.6), "name": "input 0 'a'"}]


def test_kinks_are_reported_as_such():
    with pytest.raises(GradcheckError) as info:
        gradcheck(lambda a: a.relu(), V(0.0, label="a"))
    assert info.value.culprit.kink
    assert "non-differentiable point" in str(info.value)


def test_raise_exception_false():
    with inject_backward("tanh", wrong_tanh):
        assert gradcheck(lambda a: a.tanh(), V(0.2), raise_exception=False) is False


def test_report_lists_at_most_ten_entries():
    with inject_backward("tanh", wrong_tanh):
        with pytest.raises(GradcheckError) as info:
            gradcheck(lambda x: x.tanh(), T(6, 5))
    assert len(info.value.failures) == 30
    assert "… 20 more" in str(info.value)


def test_bad_arguments():
    with pytest.raises(ValueError, match="nothing to check"):
        gradcheck(lambda x: x, fg.tensor([1.0]))
    with pytest.raises(TypeError, match="must return a Value or a float Tensor"):
        gradcheck(lambda a: a.data, V(1.0))
    with pytest.raises(ValueError, match="unknown op"):
        with inject_backward("nope", wrong_tanh):
            pass


def test_hooks_are_reachable_from_the_function():
    assert gradcheck.inject_backward is inject_backward
    assert gradcheck.GradcheckError is GradcheckError
    assert gradcheck.LOCAL_BACKWARD is LOCAL_BACKWARD


def test_seed000_one_sided_difference_idea():
    """Seed 000: (f(a + h) - f(a)) / h approaches the derivative; gradcheck uses the
    central version, whose error shrinks like h² instead of h."""
    f = lambda a: (a * a * 3.0 - a * 4.0 + 5.0)  # noqa: E731  f'(a) = 6a - 4
    a = 3.0
    for h in (1e-2, 1e-4):
        one_sided = (f(V(a + h)).data - f(V(a)).data) / h
        central = (f(V(a + h)).data - f(V(a - h)).data) / (2 * h)
        assert abs(central - 14.0) < abs(one_sided - 14.0)
    assert gradcheck(f, V(a))
