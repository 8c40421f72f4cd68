"""fastgrad.Value: the compiled scalar, its micrograd contract and its gradients.

Expected numbers come from arithmetic done here, micrograd 0.1.0, the
pure-Python reference engine, the float interpreter in conftest.py, or finite
differences; never from fastgrad itself.
"""

import copy
import fractions
import math
import pickle

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

import fastgrad as fg
from fastgrad import Value

# -- construction and attributes ----------------------------------------------


@pytest.mark.parametrize("data, expected", [
    (2.5, 2.5), (3, 3.0), (-7, -7.0), (True, 1.0), (np.float64(1.25), 1.25),
    (np.float32(0.5), 0.5), (np.int64(4), 4.0), (fractions.Fraction(1, 4), 0.25),
    (-0.0, -0.0), (10**20, 1e20),
])
def test_data_is_stored_as_a_float(data, expected):
    v = Value(data)
    assert type(v.data) is float
    assert v.data == expected
    assert math.copysign(1.0, v.data) == math.copysign(1.0, expected)
    assert v.grad == 0.0 and type(v.grad) is float


def test_non_finite_data_is_accepted():
    assert math.isinf(Value(float("inf")).data)
    assert math.isnan(Value(float("nan")).data)


@pytest.mark.parametrize("data, type_name", [
    ("1.0", "str"), (None, "NoneType"), ([1.0], "list"), ((1.0,), "tuple"),
    (1 + 2j, "complex"), ({"x": 1}, "dict"), (object(), "object"),
    (np.array([1.0, 2.0]), "ndarray"),
])
def test_non_number_data_raises_type_error_naming_the_type(data, type_name):
    with pytest.raises(TypeError, match=type_name):
        Value(data)


def test_a_value_is_not_valid_data():
    with pytest.raises(TypeError, match="Value"):
        Value(Value(1.0))


def test_label_defaults_to_empty_and_is_kept():
    assert Value(1.0).label == ""
    v = Value(1.0, label="w1")
    assert v.label == "w1"
    v.label = "renamed"
    assert v.label == "renamed"
    assert "renamed" in repr(v)


def test_data_and_grad_are_settable_floats():
    v = Value(1.0)
    v.data = 4
    assert v.data == 4.0 and type(v.data) is float
    v.grad = 2
    assert v.grad == 2.0 and type(v.grad) is float
    v.data = np.float64(-1.5)
    assert v.data == -1.5
    assert float(v) == -1.5


@pytest.mark.parametrize("attribute", ["data", "grad"])
@pytest.mark.parametrize("bad", ["1.0", None, [1.0], 1j])
def test_setting_data_or_grad_to_a_non_number_raises(attribute, bad):
    v = Value(3.0)
    with pytest.raises(TypeError, match=type(bad).__name__):
        setattr(v, attribute, bad)
    assert v.data == 3.0 and v.grad == 0.0


def test_micrograd_constructor_with_children_and_op():
    a, b = Value(1.0), Value(2.0)
    v = Value(3.0, (a, b), "+")
    assert v._prev == {a, b}
    assert v._op == "+"
    assert v.data == 3.0


def test_leaf_attributes():
    v = Value(1.0)
    assert v._op == "" and v.op == "leaf"
    assert v._prev == set() and v.inputs == ()


# -- operators -----------------------------------------------------------------


def _vals(*xs):
    return [Value(x) for x in xs]


@pytest.mark.parametrize("make, expected", [
    (lambda a, b: a + b, 3.5 + -1.25),
    (lambda a, b: a + 2, 3.5 + 2),
    (lambda a, b: 2 + a, 2 + 3.5),
    (lambda a, b: a - b, 3.5 - -1.25),
    (lambda a, b: a - 2, 3.5 - 2),
    (lambda a, b: 2 - a, 2 - 3.5),
    (lambda a, b: a * b, 3.5 * -1.25),
    (lambda a, b: a * 3, 3.5 * 3),
    (lambda a, b: 3 * a, 3 * 3.5),
    (lambda a, b: a / b, 3.5 / -1.25),
    (lambda a, b: a / 4, 3.5 / 4),
    (lambda a, b: 4 / a, 4 / 3.5),
    (lambda a, b: -a, -3.5),
    (lambda a, b: +a, 3.5),
    (lambda a, b: a ** 2, 3.5 ** 2),
    (lambda a, b: a ** 0.5, math.sqrt(3.5)),
    (lambda a, b: a ** b, 3.5 ** -1.25),
    (lambda a, b: 2 ** a, 2 ** 3.5),
    (lambda a, b: b ** 3, (-1.25) ** 3),
    (lambda a, b: a.relu(), 3.5),
    (lambda a, b: b.relu(), 0.0),
    (lambda a, b: a.tanh(), math.tanh(3.5)),
    (lambda a, b: b.exp(), math.exp(-1.25)),
    (lambda a, b: a.log(), math.log(3.5)),
    (lambda a, b: b.sigmoid(), 1 / (1 + math.exp(1.25))),
], ids=['add', 'add-number', 'radd', 'sub', 'sub-number', 'rsub', 'mul', 'mul-number', 'rmul', 'truediv', 'truediv-number', 'rtruediv', 'neg', 'pos', 'pow-2', 'pow-0.5', 'pow-value', 'rpow', 'pow-3-negative-base', 'relu-positive', 'relu-negative', 'tanh', 'exp', 'log', 'sigmoid'])
def test_operator_values(make, expected):
    a, b = Value(3.5), Value(-1.25)
    out = make(a, b)
    assert isinstance(out, Value)
    assert out.data == pytest.approx(expected, rel=1e-15, abs=0)


def test_reflected_operators_keep_operand_order():
    a = Value(5.0, label="a")
    d = 2 - a
    assert d.op == "sub"
    assert d.inputs[1] is a and d.inputs[0].data == 2.0
    q = 2 / a
    assert q.op == "truediv" and q.inputs[1] is a and q.inputs[0].data == 2.0
    p = 2 ** a
    assert p.op == "pow" and p.inputs[1] is a and p.inputs[0].data == 2.0


def test_pos_returns_the_same_node():
    a = Value(1.0)
    assert +a is a


@pytest.mark.parametrize("make, op, micrograd_op, n_inputs", [
    (lambda a, b: a + b, "add", "+", 2),
    (lambda a, b: a * b, "mul", "*", 2),
    (lambda a, b: a ** 2, "pow_const", "**2", 1),
    (lambda a, b: a ** 0.5, "pow_const", "**0.5", 1),
    (lambda a, b: a ** -1, "pow_const", "**-1", 1),
    (lambda a, b: a.relu(), "relu", "ReLU", 1),
    (lambda a, b: a.tanh(), "tanh", "tanh", 1),
    (lambda a, b: a.exp(), "exp", "exp", 1),
    (lambda a, b: a - b, "sub", "-", 2),
    (lambda a, b: a / b, "truediv", "/", 2),
    (lambda a, b: -a, "neg", "neg", 1),
    (lambda a, b: a ** b, "pow", "**", 2),
    (lambda a, b: a.log(), "log", "log", 1),
    (lambda a, b: a.sigmoid(), "sigmoid", "sigmoid", 1),
], ids=['add', 'mul', 'pow-2', 'pow-0.5', 'pow-minus-1', 'relu', 'tanh', 'exp', 'sub', 'truediv', 'neg', 'pow-value', 'log', 'sigmoid'])
def test_op_names_micrograd_op_strings_and_inputs(make, op, micrograd_op, n_inputs):
    a, b = Value(2.0, label="a"), Value(3.0, label="b")
    out = make(a, b)
    assert out.op == op
    assert out._op == micrograd_op
    assert isinstance(out.inputs, tuple) and len(out.inputs) == n_inputs
    assert out.inputs[0] is a
    if n_inputs == 2:
        assert out.inputs[1] is b
        assert out._prev == {a, b}
    else:
        assert out._prev == {a}


def test_prev_of_a_node_with_the_same_input_twice():
    a = Value(2.0)
    assert (a * a)._prev == {a}
    assert (a * a).inputs == (a, a)


def test_op_strings_match_micrograd(MgValue):
    """The _op strings micrograd 0.1.0 gives the same expressions."""
    cases = [
        lambda V: V(2.0) + V(3.0),
        lambda V: V(2.0) * V(3.0),
        lambda V: V(2.0) ** 2,
        lambda V: V(2.0) ** 3,
        lambda V: V(2.0) ** 0.5,
        lambda V: V(2.0) ** -1,
        lambda V: V(-2.0).relu(),
        lambda V: V(2.0) + 1,
        lambda V: 1 + V(2.0),
        lambda V: 3 * V(2.0),
    ]
    for make in cases:
        assert make(Value)._op == make(MgValue)._op


@pytest.mark.parametrize("exponent", [2, 3, -1, 0, 0.5, -0.25, 1e-05, 2.0, -1.0, 0.0, 1e-300])
def test_op_string_of_a_number_exponent_matches_micrograd(MgValue, exponent):
    """micrograd writes the exponent as given (f'**{other}'): `v ** 2.0` is '**2.0'."""
    assert (Value(3.0) ** exponent)._op == (MgValue(3.0) ** exponent)._op == f"**{exponent}"


@pytest.mark.parametrize("exponent", [math.inf, -math.inf, math.nan])
def test_op_string_of_a_non_finite_number_exponent(exponent):
    """Reading `_op` must not raise for any node that could be built."""
    node = Value(0.5) ** exponent
    assert node.op == "pow_const"
    assert node._op == f"**{exponent}"


@pytest.mark.parametrize("roundtrip", [
    copy.copy, copy.deepcopy, lambda v: pickle.loads(pickle.dumps(v))], ids=["copy", "deepcopy", "pickle"])
def test_a_leaf_can_be_copied_and_pickled(roundtrip):
    v = Value(1.5, label="w")
    v.grad = 0.25
    w = roundtrip(v)
    assert w is not v
    assert (w.data, w.grad, w.label) == (1.5, 0.25, "w")
    w.data = 2.0
    assert v.data == 1.5


def test_an_op_node_copies_with_its_inputs():
    a = Value(2.0, label="a")
    y = (a * 3.0).tanh()
    z = copy.deepcopy(y)
    assert z.data == y.data and z.op == "tanh"
    (inner,) = z._prev
    assert inner.op == "mul" and inner is not next(iter(y._prev))
    z.backward()
    assert a.grad == 0.0  # the copy shares nothing with the original


@pytest.mark.parametrize("make", [
    lambda: Value(1.0) + "a",
    lambda: "a" + Value(1.0),
    lambda: Value(1.0) - "a",
    lambda: "a" - Value(1.0),
    lambda: Value(1.0) * None,
    lambda: None * Value(1.0),
    lambda: Value(1.0) / "2",
    lambda: "2" / Value(1.0),
    lambda: Value(2.0) ** "a",
    lambda: "a" ** Value(2.0),
    lambda: pow(Value(2.0), 2, 5),
    lambda: Value(1.0) * [1.0],
    lambda: Value(1.0) + 1j,
], ids=['value+str', 'str+value', 'value-str', 'str-value', 'value*None', 'None*value', 'value/str', 'str/value', 'value**str', 'str**value', 'pow-modulo', 'value*list', 'value+complex'])
def test_unsupported_operands_raise_type_error(make):
    with pytest.raises(TypeError):
        make()


# -- eager domain errors ---------------------------------------------------------


@pytest.mark.parametrize("make, error, words", [
    (lambda: Value(0.0, label="z").log(), ValueError, ["log", "z"]),
    (lambda: Value(-1.0, label="minus_one").log(), ValueError, ["log", "minus_one"]),
    (lambda: Value(1.0, label="num") / 0, ZeroDivisionError, ["truediv", "num"]),
    (lambda: Value(1.0, label="num") / Value(0.0, label="den"), ZeroDivisionError,
     ["truediv", "num", "den"]),
    (lambda: 1.0 / Value(0.0, label="den"), ZeroDivisionError, ["truediv", "den"]),
    (lambda: Value(0.0, label="base") ** -1, ZeroDivisionError, ["pow", "base"]),
    (lambda: Value(0.0, label="base") ** -0.5, ZeroDivisionError, ["pow", "base"]),
    (lambda: Value(0.0, label="base") ** Value(-2.0, label="ex"), ZeroDivisionError,
     ["pow", "base", "ex"]),
    (lambda: Value(-8.0, label="base") ** (1 / 3), ValueError, ["pow", "base"]),
    (lambda: Value(-8.0, label="base") ** Value(0.5, label="ex"), ValueError,
     ["pow", "base", "ex"]),
    (lambda: Value(1000.0, label="big").exp(), OverflowError, ["exp", "big"]),
    (lambda: Value(10.0, label="ten") ** 400, OverflowError, ["pow", "ten"]),
], ids=['log-0', 'log-negative', 'div-by-number-0', 'div-by-value-0', 'rdiv-by-0', 'pow-0-to-minus-1', 'pow-0-to-minus-half', 'pow-0-to-negative-value', 'pow-negative-to-third', 'pow-negative-to-half-value', 'exp-overflow', 'pow-overflow'])
def test_eager_domain_errors_name_the_op_and_the_labels(make, error, words):
    with pytest.raises(error) as info:
        make()
    message = str(info.value)
    for word in words:
        assert word in message, f"{word!r} not in {message!r}"


@pytest.mark.parametrize("make, expected", [
    (lambda: Value(0.0) ** 0, 1.0),
    (lambda: Value(0.0) ** 2, 0.0),
    (lambda: Value(-8.0) ** 3, -512.0),
    (lambda: Value(-8.0) ** 2.0, 64.0),
    (lambda: Value(-2.0) ** Value(2.0), 4.0),
    (lambda: Value(0.0) ** Value(2.0), 0.0),
    (lambda: Value(-1000.0).exp(), 0.0),
    (lambda: Value(709.0).exp(), math.exp(709.0)),
    (lambda: Value(1000.0).sigmoid(), 1.0),
    (lambda: Value(-1000.0).sigmoid(), 0.0),
    (lambda: Value(1000.0).tanh(), 1.0),
    (lambda: Value(5e-324).log(), math.log(5e-324)),
    (lambda: Value(0.0) / Value(3.0), 0.0),
], ids=['0**0', '0**2', 'neg**3', 'neg**2.0', 'neg**value-2', '0**value-2', 'exp-underflow', 'exp-709', 'sigmoid-1000', 'sigmoid-minus-1000', 'tanh-1000', 'log-subnormal', '0-div-3'])
def test_edge_cases_that_are_not_errors(make, expected):
    assert make().data == expected


def test_a_failed_op_leaves_its_operands_usable():
    x = Value(0.0, label="x")
    with pytest.raises(ValueError):
        x.log()
    y = x * 2 + 1
    y.backward()
    assert y.data == 1.0 and x.grad == 2.0


# -- backward semantics ---------------------------------------------------------


def test_root_grad_is_one_and_chain_rule_on_a_small_graph():
    a, b = Value(2.0, label="a"), Value(-3.0, label="b")
    c = a * b          # -6
    d = c + a          # -4
    e = d.relu()       # 0 -> no gradient flows
    f = d * d          # 16
    y = f + e
    y.backward()
    assert y.grad == 1.0
    assert f.grad == 1.0 and e.grad == 1.0
    assert d.grad == 2 * d.data  # relu closed: only d*d contributes
    # dy/da = 2d * (b + 1), dy/db = 2d * a
    assert a.grad == 2 * -4.0 * (-3.0 + 1)
    assert b.grad == 2 * -4.0 * 2.0


def test_shared_subexpression_counts_each_path_once():
    a = Value(3.0)
    b = a * a
    c = b + b
    c.backward()
    assert c.data == 18.0
    assert b.grad == 2.0
    assert a.grad == 4 * 3.0


def test_same_input_twice():
    a = Value(1.5)
    (a + a).backward()
    assert a.grad == 2.0
    a.grad = 0.0
    (a * a).backward()
    assert a.grad == 3.0
    a.grad = 0.0
    (a - a).backward()
    assert a.grad == 0.0
    a.grad = 0.0
    (a ** a).backward()
    assert a.grad == pytest.approx(1.5 ** 1.5 * (math.log(1.5) + 1), rel=1e-14)


def test_backward_twice_doubles_leaf_grads_exactly_and_keeps_intermediates():
    x1, x2 = Value(0.7, label="x1"), Value(-1.3, label="x2")
    h = (x1 * x2 + x1.exp()).tanh()
    y = h * h + x2.sigmoid() / (x1 * x1 + 1)
    y.backward()
    g1, g2, gh = x1.grad, x2.grad, h.grad
    y.backward()
    assert x1.grad == 2 * g1
    assert x2.grad == 2 * g2
    assert h.grad == gh
    assert y.grad == 1.0


def test_intermediate_grads_restart_from_zero_for_each_root():
    x = Value(2.0)
    y = x * 3.0
    z = y * 5.0
    z.backward()
    assert y.grad == 5.0 and x.grad == 15.0
    y.backward()          # y is now the root
    assert y.grad == 1.0 and x.grad == 15.0 + 3.0
    z.backward()          # y.grad restarts: 5, not 6
    assert y.grad == 5.0 and x.grad == 18.0 + 15.0


def test_backward_of_a_leaf():
    x = Value(4.0)
    x.backward()
    assert x.grad == 1.0


def test_unreached_leaves_keep_their_grad():
    x, other = Value(1.0), Value(2.0)
    other.grad = 7.0
    (x * 2).backward()
    assert other.grad == 7.0


def test_grads_reflect_data_changed_before_backward():
    """Backward uses the nodes' data as it is now (micrograd does the same)."""
    a, b = Value(2.0), Value(3.0)
    y = a * b
    b.data = 10.0
    y.backward()
    assert a.grad == 10.0


def test_micrograd_readme_example_eager():
    a = Value(-4.0)
    b = Value(2.0)
    c = a + b
    d = a * b + b ** 3
    c += c + 1
    c += 1 + c + (-a)
    d += d * 2 + (b + a).relu()
    d += 3 * d + (b - a).relu()
    e = c - d
    f = e ** 2
    g = f / 2.0
    g += 10.0 / f
    assert g.data == pytest.approx(24.7041, abs=1e-4)
    g.backward()
    assert a.grad == pytest.approx(138.8338, abs=1e-4)
    assert b.grad == pytest.approx(645.5773, abs=1e-4)


def _readme(V, a0=-4.0, b0=2.0):
    """micrograd's README expression, built with the Value class V."""
    a = V(a0)
    b = V(b0)
    c = a + b
    d = a * b + b ** 3
    c += c + 1
    c += 1 + c + (-a)
    d += d * 2 + (b + a).relu()
    d += 3 * d + (b - a).relu()
    e = c - d
    f = e ** 2
    g = f / 2.0
    g += 10.0 / f
    return a, b, g


def test_micrograd_readme_example_matches_micrograd(MgValue):
    a, b, g = _readme(Value)
    ma, mb, mg = _readme(MgValue)
    g.backward()
    mg.backward()
    assert g.data == pytest.approx(mg.data, rel=1e-12)
    assert a.grad == pytest.approx(ma.grad, rel=1e-12)
    assert b.grad == pytest.approx(mb.grad, rel=1e-12)


def test_micrograd_readme_example_through_a_tape():
    for fuse in (True, False):
        a, b, g = _readme(Value)
        tape = fg.lower(g, fuse=fuse)
        assert tape.forward() == pytest.approx(24.7041, abs=1e-4)
        tape.backward()
        assert a.grad == pytest.approx(138.8338, abs=1e-4)
        assert b.grad == pytest.approx(645.5773, abs=1e-4)
        # replay at another point equals a fresh eager build there
        a.data, b.data = -3.0, 2.5
        tape.zero_grad()
        value = tape.forward()
        tape.backward()
        fresh_a, fresh_b, fresh_g = _readme(Value, -3.0, 2.5)
        fresh_g.backward()
        assert value == fresh_g.data
        assert a.grad == pytest.approx(fresh_a.grad, rel=1e-12)
        assert b.grad == pytest.approx(fresh_b.grad, rel=1e-12)


# -- properties on random expression graphs ---------------------------------------


def _scale(values):
    return 1.0 + max(abs(v) for v in values)


@given(data=st.data())
def test_random_graphs_match_the_reference_engine(graphs, RefValue, data):
    program = data.draw(graphs.programs())
    floats = graphs.evaluate(program)
    assume(floats is not None)
    scale = _scale(floats)
    assume(graphs.relu_margin(program, floats) > 1e-12 * scale)

    leaves, nodes = graphs.build(program, Value)
    ref_leaves, ref_nodes = graphs.build(program, RefValue)
    for k, (node, ref) in enumerate(zip(nodes, ref_nodes)):
        graphs.assert_close(node.data, ref.data, 1e-10, 1e-12 * scale, f"node {k}")
    nodes[-1].backward()
    ref_nodes[-1].backward()
    gscale = _scale([r.grad for r in ref_leaves])
    for k, (leaf, ref) in enumerate(zip(leaves, ref_leaves)):
        graphs.assert_close(leaf.grad, ref.grad, 1e-10, 1e-12 * gscale * scale, f"grad x{k}")


@given(data=st.data())
def test_random_graphs_match_micrograd(graphs, MgValue, data):
    program = data.draw(graphs.programs(steps=graphs.MICROGRAD_STEPS))
    floats = graphs.evaluate(program)
    assume(floats is not None)
    scale = _scale(floats)
    # micrograd divides as a * b**-1, so values differ in the last bits:
    # keep relu inputs clear of 0 so both take the same branch.
    assume(graphs.relu_margin(program, floats) > 1e-9 * scale)

    leaves, nodes = graphs.build(program, Value)
    mg_leaves, mg_nodes = graphs.build(program, MgValue, labels=False)
    for k, (node, mg) in enumerate(zip(nodes, mg_nodes)):
        graphs.assert_close(node.data, mg.data, 1e-9, 1e-11 * scale, f"node {k}")
    try:
        mg_nodes[-1].backward()
    except ZeroDivisionError:
        # micrograd's d/da a**0 is 0 * a**-1, which raises at a == 0.
        assume(False)
    nodes[-1].backward()
    gscale = _scale([m.grad for m in mg_leaves])
    for k, (leaf, mg) in enumerate(zip(leaves, mg_leaves)):
        graphs.assert_close(leaf.grad, mg.grad, 1e-9, 1e-11 * gscale * scale, f"grad x{k}")


@given(data=st.data())
def test_random_graph_gradients_match_central_differences(graphs, data):
    program = data.draw(graphs.programs())
    floats = graphs.evaluate(program, limit=100.0)
    assume(floats is not None)
    h = 1e-6
    pattern = graphs.relu_pattern(program, floats)
    values = list(program.values)

    def f(xs):
        out = graphs.evaluate(program, xs, limit=1e3)
        assert out is not None
        # finite differences are only valid on one smooth piece
        assume(graphs.relu_pattern(program, out) == pattern)
        return out[-1]

    leaves, nodes = graphs.build(program, Value)
    nodes[-1].backward()
    scale = _scale(floats)
    for k, leaf in enumerate(leaves):
        estimate = graphs.central_difference(f, values, k, h)
        graphs.assert_close(leaf.grad, estimate, 1e-4, 1e-6 * scale, f"grad x{k}")


@given(data=st.data())
def test_random_graphs_backward_twice_doubles_leaf_grads(graphs, data):
    program = data.draw(graphs.programs())
    assume(graphs.evaluate(program) is not None)
    leaves, nodes = graphs.build(program, Value)
    nodes[-1].backward()
    first = [leaf.grad for leaf in leaves]
    inner = [n.grad for n in nodes[program.n_leaves:]]
    nodes[-1].backward()
    assert [leaf.grad for leaf in leaves] == [2 * g for g in first]
    assert [n.grad for n in nodes[program.n_leaves:]] == inner


# -- freeing deep graphs ------------------------------------------------------------
#
# These run in a fresh interpreter: the failure they guard against is a crash.


def _crash_report(proc):
    return (f"exit status {proc.returncode}\n--- stdout\n{proc.stdout[-2000:]}"
            f"\n--- stderr\n{proc.stderr[-3000:]}")


def test_deep_unary_chain_builds_backpropagates_and_frees(run_isolated):
    proc = run_isolated("""
        import fastgrad as fg
        x = fg.Value(1.5, label="x")
        y = x
        for _ in range(10**6):
            y = -y
        assert y.data == 1.5, y.data
        y.backward()
        assert x.grad == 1.0, x.grad
        del y
        z = x * 2.0      # the interpreter is still healthy
        assert z.data == 3.0
        print("ok")
    """)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", _crash_report(proc)


def test_freeing_deep_chains_repeatedly_does_not_corrupt_memory(run_isolated):
    """Build and free a 200k-node chain three times (any deep chain, really).

    Each free goes through the deallocation trashcan; the interpreter must
    survive and keep working afterwards.
    """
    proc = run_isolated("""
        import fastgrad as fg
        for _ in range(3):
            y = fg.Value(1.0)
            for _ in range(200_000):
                y = -y
            del y
        print("ok")
    """)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", _crash_report(proc)


def test_freeing_a_deep_chain_leaves_the_heap_intact(run_isolated):
    """With CPython's debug allocator, a write outside a Value's block is caught at free."""
    proc = run_isolated("""
        import fastgrad as fg
        y = fg.Value(1.0)
        for _ in range(140_000):
            y = -y
        del y
        print("ok")
    """, PYTHONMALLOC="debug")
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", _crash_report(proc)
