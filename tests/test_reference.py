"""Tests for fastgrad.reference, the pure-Python oracle engine.

Expected numbers come from micrograd 0.1.0 (run side by side), from its README,
from central finite differences, or from closed forms written out here; never
from the code under test.
"""

import gc
import math
import random

import pytest

from fastgrad.reference import MLP, Layer, Module, Neuron, Value


def close(a, b, rel=1e-9, abs_=1e-12):
    return math.isclose(a, b, rel_tol=rel, abs_tol=abs_)


# -- micrograd's README example ----------------------------------------------


def readme_example(V):
    a = V(-4.0)
    b = V(2.0)
    c = a + b
    d = a * b + b**3
    c += c + 1
    c += 1 + c + (-a)
    d += d * 2 + (b + a).relu()
    d += 3 * d + (b - a).relu()
    e = c - d
    f = e**2
    g = f / 2.0
    g += 10.0 / f
    g.backward()
    return a, b, g


def test_readme_example_published_numbers():
    a, b, g = readme_example(Value)
    assert g.data == pytest.approx(24.7041, abs=1e-4)
    assert a.grad == pytest.approx(138.8338, abs=1e-4)
    assert b.grad == pytest.approx(645.5773, abs=1e-4)


def test_readme_example_matches_micrograd():
    engine = pytest.importorskip("micrograd.engine")
    a, b, g = readme_example(Value)
    ma, mb, mg = readme_example(engine.Value)
    assert close(g.data, mg.data)
    assert close(a.grad, ma.grad)
    assert close(b.grad, mb.grad)


# -- random expressions against micrograd --------------------------------------


PROGRAM_OPS = {
    "add": lambda a, b, c: a + b, "sub": lambda a, b, c: a - b,
    "mul": lambda a, b, c: a * b, "div": lambda a, b, c: a / b,
    "pow2": lambda a, b, c: a**2, "pow3": lambda a, b, c: a**3,
    "powm1": lambda a, b, c: a**-1, "neg": lambda a, b, c: -a,
    "relu": lambda a, b, c: a.relu(), "radd": lambda a, b, c: c + a,
    "rsub": lambda a, b, c: c - a, "rmul": lambda a, b, c: c * a,
    "rdiv": lambda a, b, c: c / a, "addc": lambda a, b, c: a + c,
    "subc": lambda a, b, c: a - c, "mulc": lambda a, b, c: a * c,
    "divc": lambda a, b, c: a / c,
}


def random_program(seed, n_leaves=4, n_ops=25):
    """A random straight-line program over ops micrograd 0.1.0 supports."""
    rng = random.Random(seed)
    leaves = [rng.uniform(-2, 2) for _ in range(n_leaves)]
    ops = []
    for k in range(n_ops):
        i, j = rng.randrange(n_leaves + k), rng.randrange(n_leaves + k)
        ops.append((rng.choice(sorted(PROGRAM_OPS)), i, j, rng.choice([-1.5, 0.5, 2.0, 3.0])))
    return leaves, ops


def run_program(V, leaves, ops):
    nodes = [V(x) for x in leaves]
    for op, i, j, c in ops:
        a, b = nodes[i], nodes[j]
        # keep values moderate and away from poles so both engines are tame
        if op in ("div", "powm1", "rdiv") and abs((b if op == "div" else a).data) < 0.5:
            op = "add"
        if op in ("pow2", "pow3", "mul") and abs(a.data) * max(1.0, abs(b.data)) > 20:
            op = "neg"
        nodes.append(PROGRAM_OPS[op](a, b, c))
    root = nodes[-1]
    for node in nodes[len(leaves):-1]:
        root = root + node  # every node reaches the root
    root.backward()
    return nodes[: len(leaves)], root


@pytest.mark.parametrize("seed", range(40))
def test_random_expressions_match_micrograd(seed):
    engine = pytest.importorskip("micrograd.engine")
    leaves, ops = random_program(seed)
    ours, our_root = run_program(Value, leaves, ops)
    theirs, their_root = run_program(engine.Value, leaves, ops)
    assert close(our_root.data, their_root.data, rel=1e-9, abs_=1e-9)
    for mine, ref in zip(ours, theirs):
        assert close(mine.grad, ref.grad, rel=1e-8, abs_=1e-9)


# -- every op against central finite differences -------------------------------

UNARY = {
    "neg": (lambda a: -a, [-1.3, 0.7]),
    "relu": (lambda a: a.relu(), [-0.8, 1.7]),
    "tanh": (lambda a: a.tanh(), [-1.1, 0.0, 0.6]),
    "exp": (lambda a: a.exp(), [-2.0, 0.3, 1.5]),
    "log": (lambda a: a.log(), [0.2, 1.0, 3.5]),
    "sigmoid": (lambda a: a.sigmoid(), [-4.0, -0.5, 0.0, 0.5, 4.0]),
    "pow2": (lambda a: a**2, [-1.2, 0.9]),
    "pow3": (lambda a: a**3, [-0.7, 1.1]),
    "pow_half": (lambda a: a**0.5, [0.3, 2.0]),
    "pow_neg": (lambda a: a**-2, [-1.4, 0.8]),
    "pow_zero": (lambda a: a**0, [-1.0, 2.0]),
    "radd": (lambda a: 2.5 + a, [0.4]),
    "rsub": (lambda a: 2.5 - a, [0.4]),
    "rmul": (lambda a: 2.5 * a, [0.4]),
    "rdiv": (lambda a: 2.5 / a, [-0.6, 0.4]),
    "rpow": (lambda a: 2.5**a, [-0.6, 1.4]),
}

BINARY = {
    "add": (lambda a, b: a + b, [(0.3, -1.2)]),
    "sub": (lambda a, b: a - b, [(0.3, -1.2)]),
    "mul": (lambda a, b: a * b, [(0.3, -1.2), (-2.0, 0.5)]),
    "div": (lambda a, b: a / b, [(0.3, -1.2), (-2.0, 0.5)]),
    "pow": (lambda a, b: a**b, [(1.7, 0.6), (0.4, -1.3), (2.0, 3.0)]),
    "pow_neg_base_int": (lambda a, b: a**b, [(-1.5, 3.0)]),
    "same_node": (lambda a, b: a * a + a / (b * b), [(0.9, 1.3)]),
}


def finite_difference(f, xs, k, h=1e-6):
    up = list(xs)
    down = list(xs)
    up[k] += h
    down[k] -= h
    return (f(*map(Value, up)).data - f(*map(Value, down)).data) / (2 * h)


@pytest.mark.parametrize("name", sorted(UNARY))
def test_unary_gradients_match_finite_differences(name):
    f, points = UNARY[name]
    for x in points:
        a = Value(x)
        f(a).backward()
        assert close(a.grad, finite_difference(f, [x], 0), rel=1e-6, abs_=1e-7), x


@pytest.mark.parametrize("name", sorted(BINARY))
def test_binary_gradients_match_finite_differences(name):
    f, points = BINARY[name]
    for xs in points:
        a, b = Value(xs[0]), Value(xs[1])
        f(a, b).backward()
        if name == "pow_neg_base_int":
            # d/db of a**b is undefined for a < 0; only check the base
            grads = [a.grad]
        else:
            grads = [a.grad, b.grad]
        for k, grad in enumerate(grads):
            assert close(grad, finite_difference(f, xs, k), rel=1e-6, abs_=1e-7), (xs, k)


def test_forward_values_against_closed_forms():
    assert Value(0.3).sigmoid().data == pytest.approx(1 / (1 + math.exp(-0.3)))
    assert Value(-0.3).sigmoid().data == pytest.approx(1 / (1 + math.exp(0.3)))
    assert Value(-1000.0).sigmoid().data == 0.0  # no overflow
    assert Value(1000.0).sigmoid().data == 1.0
    assert Value(7.0).__sub__(Value(2.0)).data == 5.0
    # true division: 3 / 10 is 0.3, while 3 * 10**-1 rounds to 0.30000000000000004
    assert (Value(3.0) / 10.0).data == 0.3
    assert (7.0 / Value(10.0)).data == 0.7
    a, b = Value(0.1), Value(0.3)
    diff = a - b
    assert diff.data == 0.1 - 0.3 and diff._op == "-" and diff._prev == {a, b}
    assert (2.0 ** Value(3.0)).data == 8.0
    assert Value(-2.0).relu().data == 0.0 and Value(2.5).relu().data == 2.5


def test_pow_special_gradients():
    a = Value(0.0)
    (a**0).backward()
    assert a.grad == 0.0  # derivative of a**0 is exactly 0, even at a == 0
    a, b = Value(0.0), Value(2.0)
    out = a**b
    out.backward()
    assert out.data == 0.0 and a.grad == 0.0 and b.grad == 0.0
    a, b = Value(0.0), Value(0.0)
    out = a**b
    out.backward()
    assert out.data == 1.0 and a.grad == 0.0 and b.grad == 0.0
    a = Value(3.0)
    (a**1).backward()
    assert a.grad == 1.0
    a = Value(0.0)
    (a**0.5).backward()
    assert a.grad == math.inf  # d sqrt(a)/da -> +inf at 0; no exception
    a = Value(1e-300)
    (a**-1).backward()
    assert a.grad == -math.inf  # -1/a**2 = -1e600 is beyond float range


def test_relu_gradient_only_where_output_positive():
    for x, expected in [(-1.0, 0.0), (0.0, 0.0), (2.0, 1.0)]:
        a = Value(x)
        a.relu().backward()
        assert a.grad == expected


# -- graph structure, labels, repr ---------------------------------------------


def test_node_bookkeeping():
    a = Value(2.0, label="a")
    b = Value(3)
    assert isinstance(b.data, float) and b.grad == 0.0 and isinstance(b.grad, float)
    c = a * b
    assert c._op == "*" and c._prev == {a, b} and a._prev == set() and a._op == ""
    assert a.label == "a" and c.label == ""
    assert (a**2)._op == "**2"
    assert (a**b)._prev == {a, b}
    assert repr(Value(1.5)) == "Value(data=1.5, grad=0.0)"


# -- backward semantics ------------------------------------------------------------


def test_deep_chain_has_no_recursion_limit():
    n = 200_000
    # CPython's cyclic GC is slow on very long chains; it is not what is tested
    gc.disable()
    try:
        x = Value(1.0)
        y = x
        for _ in range(n):
            y = y * 1.0 + 0.5
        y.backward()
        assert x.grad == 1.0
        assert y.data == 1.0 + 0.5 * n
    finally:
        del x, y
        gc.enable()
        gc.collect()


def test_backward_twice_doubles_leaf_grads_exactly():
    a, b = Value(1.3), Value(-0.7)
    mid = (a * b).tanh()
    out = mid * a + b.exp()
    out.backward()
    first = (a.grad, b.grad, mid.grad, out.grad)
    out.backward()
    assert (a.grad, b.grad) == (2 * first[0], 2 * first[1])
    assert (mid.grad, out.grad) == (first[2], first[3]) == (first[2], 1.0)


def test_backward_on_a_leaf_accumulates():
    a = Value(3.0)
    a.backward()
    a.backward()
    assert a.grad == 2.0


def test_backward_after_zero_grad_restarts():
    model = MLP(2, [3, 1])
    out = model([0.5, -1.0]) * 2.0
    out.backward()
    grads = [p.grad for p in model.parameters()]
    model.zero_grad()
    assert all(p.grad == 0 for p in model.parameters())
    out.backward()
    assert [p.grad for p in model.parameters()] == grads


# -- errors ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "make, error, words",
    [
        (lambda: Value(0.0).log(), ValueError, "log"),
        (lambda: Value(-2.0).log(), ValueError, "log"),
        (lambda: Value(1.0) / 0.0, ZeroDivisionError, "div"),
        (lambda: 1.0 / Value(0.0), ZeroDivisionError, "div"),
        (lambda: Value(1.0) / Value(0), ZeroDivisionError, "div"),
        (lambda: Value(0.0) ** -1, ZeroDivisionError, "pow"),
        (lambda: Value(0.0) ** Value(-0.5), ZeroDivisionError, "pow"),
        (lambda: Value(-8.0) ** (1 / 3), ValueError, "pow"),
        (lambda: (-8.0) ** Value(0.5), ValueError, "pow"),
        (lambda: Value(1000.0).exp(), OverflowError, "exp"),
        (lambda: Value(10.0) ** 400, OverflowError, "pow"),
        (lambda: Value(1e200) ** Value(2.0), OverflowError, "pow"),
        (lambda: Value("3"), TypeError, "str"),
        (lambda: Value(None), TypeError, "NoneType"),
        (lambda: Value(1 + 2j), TypeError, "complex"),
        (lambda: Value(1.0) + "a", TypeError, "str"),
        (lambda: Value(2.0) - [1], TypeError, "list"),
        (lambda: Value(2.0) ** "x", TypeError, "str"),
    ],
)
def test_domain_and_type_errors(make, error, words):
    with pytest.raises(error, match=words):
        make()


def test_error_names_the_label():
    with pytest.raises(ValueError, match="'x'"):
        Value(-1.0, label="x").log()


# -- nn ------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 1337])
def test_mlp_weights_and_outputs_match_micrograd(seed):
    mnn = pytest.importorskip("micrograd.nn")
    random.seed(seed)
    ours = MLP(3, [4, 4, 1])
    random.seed(seed)
    theirs = mnn.MLP(3, [4, 4, 1])
    assert [p.data for p in ours.parameters()] == [p.data for p in theirs.parameters()]
    assert repr(ours) == repr(theirs)
    x = [0.5, -1.25, 2.0]
    assert ours(x).data == pytest.approx(theirs(x).data, abs=1e-12)


def test_neuron_and_layer_match_micrograd():
    mnn = pytest.importorskip("micrograd.nn")
    random.seed(7)
    n, layer = Neuron(3, nonlin=False), Layer(2, 3)
    random.seed(7)
    mn, ml = mnn.Neuron(3, nonlin=False), mnn.Layer(2, 3)
    assert [p.data for p in n.parameters()] == [p.data for p in mn.parameters()]
    assert [p.data for p in layer.parameters()] == [p.data for p in ml.parameters()]
    assert (repr(n), repr(layer)) == (repr(mn), repr(ml)) == (
        "LinearNeuron(3)",
        "Layer of [ReLUNeuron(2), ReLUNeuron(2), ReLUNeuron(2)]",
    )
    assert isinstance(layer([1.0, 2.0]), list) and len(layer([1.0, 2.0])) == 3
    assert isinstance(Layer(2, 1)([1.0, 2.0]), Value)
    assert Module().parameters() == []


def demo_loss(V, model, X, y):
    """The loss of micrograd's demo notebook: SVM max-margin + L2."""
    inputs = [list(map(V, row)) for row in X]
    scores = list(map(model, inputs))
    losses = [(1 + -yi * si).relu() for yi, si in zip(y, scores)]
    data_loss = sum(losses) * (1.0 / len(losses))
    reg_loss = 1e-4 * sum(p * p for p in model.parameters())
    return data_loss + reg_loss


def test_one_sgd_step_matches_micrograd():
    engine = pytest.importorskip("micrograd.engine")
    mnn = pytest.importorskip("micrograd.nn")
    from fastgrad.datasets import make_moons

    X, y = make_moons(12, noise=0.1, random_state=1337)
    X, y = X.tolist(), (2 * y - 1).tolist()
    random.seed(1337)
    ours = MLP(2, [16, 16, 1])
    random.seed(1337)
    theirs = mnn.MLP(2, [16, 16, 1])
    for model, V in ((ours, Value), (theirs, engine.Value)):
        loss = demo_loss(V, model, X, y)
        model.zero_grad()
        loss.backward()
        for p in model.parameters():
            p.data -= 1.0 * p.grad  # the demo's first learning rate
    our_loss, their_loss = demo_loss(Value, ours, X, y), demo_loss(engine.Value, theirs, X, y)
    assert our_loss.data == pytest.approx(their_loss.data, abs=1e-12)
    for p, q in zip(ours.parameters(), theirs.parameters()):
        assert p.data == pytest.approx(q.data, abs=1e-12)
    assert any(p.grad != 0 for p in ours.parameters())


def test_reference_imports_only_the_standard_library():
    import ast
    import pathlib

    import fastgrad.reference as ref

    for path in pathlib.Path(ref.__file__).parent.glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                assert top in {"__future__", "math", "random", "numbers", "typing"} or (
                    name.startswith("fastgrad.reference")
                ), (path.name, name)
