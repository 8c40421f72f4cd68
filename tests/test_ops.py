"""fastgrad.ops: the op table, and every op checked on its own.

For each op of the table: it is reachable from Value, its value is the
textbook function (computed here with :mod:`math`), its local derivatives
are the textbook ones and agree with central finite differences, and a tape
replays it (fused and unfused) exactly as the eager op computes it.
"""

import math

import pytest

import fastgrad as fg
from fastgrad import Value, ops

OPS = ops.OPS
NAMES = [op.name for op in OPS]
# The ops a scalar Value builds (the public contract: + - * / ** with a number
# or a Value exponent, unary -, relu, tanh, exp, log, sigmoid).  The rest of
# the table is tensor ops, tested with tensors.
SCALAR_OPS = {"add", "mul", "sub", "truediv", "neg", "pow_const", "pow", "relu", "tanh",
              "exp", "log", "sigmoid"}

# -- the table ---------------------------------------------------------------------


def test_names_and_opcodes_are_unique():
    assert len(set(NAMES)) == len(NAMES)
    codes = [op.opcode for op in OPS]
    assert len(set(codes)) == len(codes)
    assert all(isinstance(c, int) and c >= 0 for c in codes)


def test_lookup_tables_agree_with_the_table():
    assert ops.BY_NAME == {op.name: op for op in OPS}
    assert ops.BY_OPCODE == {op.opcode: op for op in OPS}


def test_every_row_is_complete():
    for op in OPS:
        assert op.name.isidentifier()
        assert op.arity in (-1, 0, 1, 2)
        assert op.symbol
        if op.name != "leaf":
            assert op.derivative, op.name
    assert ops.BY_NAME["leaf"].arity == 0
    assert ops.BY_NAME["dot"].arity == -1


def test_opcode_enum_source_lists_every_op():
    source = ops.opcode_enum_source()
    for op in OPS:
        assert f"OP_{op.name.upper()} = {op.opcode}" in source
    assert f"OP_COUNT = {max(op.opcode for op in OPS) + 1}" in source


# -- each op from Value -----------------------------------------------------------------
#
# name -> (build from inputs, value from floats, partial derivatives from
# floats, points where it is smooth).  Adding an op to the table without a row
# here fails test_every_scalar_op_is_in_the_table_and_has_a_case.


def _sig(x):
    return 1.0 / (1.0 + math.exp(-x))


CASES = {
    "add": (lambda a, b: a + b, lambda a, b: a + b, lambda a, b: (1.0, 1.0),
            [(1.5, -2.25), (0.0, 3.0), (-1e3, 1e-3)]),
    "mul": (lambda a, b: a * b, lambda a, b: a * b, lambda a, b: (b, a),
            [(1.5, -2.25), (0.0, 3.0), (-4.0, -0.5)]),
    "sub": (lambda a, b: a - b, lambda a, b: a - b, lambda a, b: (1.0, -1.0),
            [(1.5, -2.25), (3.0, 3.0)]),
    "truediv": (lambda a, b: a / b, lambda a, b: a / b, lambda a, b: (1 / b, -a / b ** 2),
                [(1.5, -2.25), (0.0, 3.0), (-4.0, 0.5)]),
    "neg": (lambda a: -a, lambda a: -a, lambda a: (-1.0,), [(1.5,), (-2.0,), (0.0,)]),
    "pow_const": (lambda a: a ** 2.5, lambda a: a ** 2.5, lambda a: (2.5 * a ** 1.5,),
                  [(1.5,), (0.25,), (3.0,)]),
    "pow": (lambda a, b: a ** b, lambda a, b: a ** b,
            lambda a, b: (b * a ** (b - 1), a ** b * math.log(a)),
            [(1.5, -2.25), (0.5, 3.0), (2.0, 0.5)]),
    "relu": (lambda a: a.relu(), lambda a: max(a, 0.0), lambda a: (1.0 if a > 0 else 0.0,),
             [(1.5,), (-2.0,), (1e-3,), (-1e-3,)]),
    "tanh": (lambda a: a.tanh(), math.tanh, lambda a: (1 - math.tanh(a) ** 2,),
             [(0.5,), (-1.25,), (0.0,), (3.0,)]),
    "exp": (lambda a: a.exp(), math.exp, lambda a: (math.exp(a),),
            [(0.5,), (-1.25,), (0.0,), (5.0,)]),
    "log": (lambda a: a.log(), math.log, lambda a: (1 / a,), [(0.5,), (1.0,), (20.0,)]),
    "sigmoid": (lambda a: a.sigmoid(), _sig, lambda a: (_sig(a) * (1 - _sig(a)),),
                [(0.5,), (-1.25,), (0.0,), (8.0,), (-8.0,)]),
}

# More exponents for pow by a number, on both sides of 0 where defined.
POW_CONST_CASES = [(-3.0, 2), (-1.5, 3), (2.0, -1), (0.5, -2.5), (4.0, 0.5), (-2.0, 0), (0.0, 2),
                   (0.0, 0), (1.5, 1)]


def test_every_scalar_op_is_in_the_table_and_has_a_case():
    assert SCALAR_OPS | {"leaf", "dot"} <= set(NAMES)
    assert set(CASES) == SCALAR_OPS


def test_leaf_is_a_value_and_dot_exists_only_on_a_tape():
    assert Value(1.0).op == "leaf"
    w, x = [Value(0.5), Value(2.0)], [Value(-1.0), Value(3.0)]
    act = sum((wi * xi for wi, xi in zip(w, x)), Value(0.25))
    assert "dot" not in {n.op for n in (act, *act.inputs)}
    assert "dot" in str(fg.lower(act, fuse=True))
    assert "dot" not in str(fg.lower(act, fuse=False))


def _cases():
    for name, (build, value, partials, points) in CASES.items():
        for point in points:
            yield pytest.param(name, point, id=f"{name}{point}")


@pytest.mark.parametrize("name, point", list(_cases()))
def test_op_is_reachable_and_its_node_matches_the_table(name, point):
    build = CASES[name][0]
    leaves = [Value(p, label=f"in{k}") for k, p in enumerate(point)]
    node = build(*leaves)
    op = ops.BY_NAME[name]
    assert node.op == name
    assert len(node.inputs) == op.arity
    assert list(node.inputs) == leaves
    if op.micrograd is not None and "{" not in op.micrograd:
        assert node._op == op.micrograd


@pytest.mark.parametrize("name, point", list(_cases()))
def test_op_value_matches_the_math(name, point):
    build, value = CASES[name][0], CASES[name][1]
    node = build(*[Value(p) for p in point])
    assert node.data == pytest.approx(value(*point), rel=1e-14, abs=1e-300)


@pytest.mark.parametrize("name, point", list(_cases()))
def test_op_gradient_matches_the_math_and_finite_differences(name, point):
    build, value, partials = CASES[name][:3]
    leaves = [Value(p) for p in point]
    build(*leaves).backward()
    expected = partials(*point)
    h = 1e-6
    for k, leaf in enumerate(leaves):
        assert leaf.grad == pytest.approx(expected[k], rel=1e-13, abs=1e-300), f"d/d input {k}"
        up, down = list(point), list(point)
        up[k] += h
        down[k] -= h
        estimate = (value(*up) - value(*down)) / (2 * h)
        assert leaf.grad == pytest.approx(estimate, rel=1e-6, abs=1e-8), f"d/d input {k} (FD)"


@pytest.mark.parametrize("name, point", list(_cases()))
@pytest.mark.parametrize("fuse", [True, False])
def test_op_replayed_on_a_tape(name, point, fuse):
    """A tape lowered at one point and replayed at another equals the eager op there."""
    build = CASES[name][0]
    start = [p + 0.5 if name not in ("log", "pow") else p * 2 for p in point]
    leaves = [Value(p) for p in start]
    tape = fg.lower(build(*leaves) * 1.0 + 0.0, fuse=fuse)
    for leaf, p in zip(leaves, point):
        leaf.data = p
    fresh = [Value(p) for p in point]
    out = build(*fresh) * 1.0 + 0.0
    out.backward()
    assert tape.forward(check=True) == out.data
    tape.backward()
    for leaf, ref in zip(leaves, fresh):
        assert leaf.grad == ref.grad


@pytest.mark.parametrize("base, exponent", POW_CONST_CASES)
def test_pow_by_a_number(base, exponent):
    x = Value(base)
    y = x ** exponent
    assert y.op == "pow_const"
    assert y.data == pytest.approx(float(base) ** exponent, rel=1e-15)
    y.backward()
    expected = 0.0 if exponent == 0 else exponent * float(base) ** (exponent - 1)
    assert x.grad == pytest.approx(expected, rel=1e-14)


@pytest.mark.parametrize("base, exponent", [(0.0, 2.0), (0.0, 0.5), (0.0, 0.0)])
def test_pow_exponent_gradient_at_a_zero_base_is_zero(base, exponent):
    """d/db a**b = a**b ln a tends to 0 as a -> 0+ for b >= 0 (PyTorch's choice too)."""
    b = Value(exponent)
    y = Value(base) ** b
    y.backward()
    assert b.grad == 0.0


def test_relu_keeps_negative_zero_and_has_no_gradient_at_zero():
    for start in (0.0, -0.0):
        x = Value(start)
        y = x.relu()
        assert y.data == 0.0
        y.backward()
        assert x.grad == 0.0
    assert math.copysign(1.0, Value(-0.0).relu().data) == -1.0   # as micrograd


def test_relu_matches_micrograd_at_the_kink(MgValue):
    for start in (0.0, -0.0, -1.0, 2.0):
        ours, theirs = Value(start).relu(), MgValue(start).relu()
        assert ours.data == theirs.data
        ours.backward()
        theirs.backward()
        assert ours.grad == theirs.grad


def test_sigmoid_and_tanh_saturate_without_overflow():
    for x in (-800.0, 800.0):
        v = Value(x)
        s = v.sigmoid()
        assert s.data == (0.0 if x < 0 else 1.0)
        s.backward()
        assert v.grad == 0.0
        t = Value(x).tanh()
        assert t.data == math.copysign(1.0, x)


@pytest.mark.parametrize("name", sorted(SCALAR_OPS | {"dot"}))
def test_listing_uses_the_table_symbol(name):
    if name == "dot":
        w, x = [Value(0.5), Value(2.0)], [Value(-1.0), Value(3.0)]
        root = sum((wi * xi for wi, xi in zip(w, x)), Value(0.25))
        tape = fg.lower(root, fuse=True)
    else:
        build, _, _, points = CASES[name]
        tape = fg.lower(build(*[Value(p) for p in points[0]]), fuse=False)
    instruction_lines = str(tape).splitlines()[-len(tape):]
    assert any(ops.BY_NAME[name].symbol in line for line in instruction_lines)
