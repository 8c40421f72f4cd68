"""fastgrad.lower and the compiled scalar Tape: listing, replay, errors, threads, depth.

The oracle for a replay is always an eager graph rebuilt from scratch at the
new leaf values (the eager values are themselves checked against the
reference engine, micrograd and finite differences in test_value.py).
"""

import math
import threading

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

import fastgrad as fg
from fastgrad import Value


def all_nodes(root):
    """Every distinct node below root, inputs first, in a deterministic order.

    Iterative, and it follows `inputs` only, so two graphs built by the same
    program give lists that correspond position by position.
    """
    order, seen = [], {id(root)}
    stack = [(root, iter(root.inputs))]
    while stack:
        node, it = stack[-1]
        for child in it:
            if id(child) not in seen:
                seen.add(id(child))
                stack.append((child, iter(child.inputs)))
                break
        else:
            stack.pop()
            order.append(node)
    return order


def seed_graph():
    x1, x2 = Value(2.0, label="x1"), Value(0.0, label="x2")
    w1, w2 = Value(-3.0, label="w1"), Value(1.0, label="w2")
    b = Value(6.8814, label="b")
    x1w1 = x1 * w1
    x1w1.label = "x1*w1"
    x2w2 = x2 * w2
    x2w2.label = "x2*w2"
    s = x1w1 + x2w2
    s.label = "x1*w1 + x2*w2"
    y = s + b
    y.label = "neuron_out"
    return [x1, x2, w1, w2, b], [x1w1, x2w2, s], y


# -- lowering: arguments, size, listing ----------------------------------------


@pytest.mark.parametrize("root", ["x", None, 1.0, [Value(1.0)], object()])
def test_lower_rejects_non_values(root):
    with pytest.raises(TypeError):
        fg.lower(root)


def test_lower_rejects_values_of_other_engines(RefValue, MgValue):
    with pytest.raises(TypeError):
        fg.lower(RefValue(1.0) * 2)
    with pytest.raises(TypeError):
        fg.lower(MgValue(1.0) * 2)


def test_a_tape_cannot_be_constructed_directly():
    with pytest.raises(TypeError):
        fg.Tape()


def test_len_is_the_instruction_count():
    leaves, inner, y = seed_graph()
    unfused = fg.lower(y, fuse=False)
    assert len(unfused) == 4            # two products, two sums
    fused = fg.lower(y, fuse=True)
    assert 1 <= len(fused) < 4          # the sum of products is fused
    # micrograd's neuron, sum(w*x, b), is exactly one dot instruction
    w = [Value(0.5), Value(-1.0), Value(2.0)]
    x = [Value(1.0), Value(3.0), Value(-2.0)]
    act = sum((wi * xi for wi, xi in zip(w, x)), Value(0.1))
    assert len(fg.lower(act, fuse=True)) == 1
    assert len(fg.lower(act, fuse=False)) == 6
    a = Value(1.0)
    assert len(fg.lower(((a * 2).tanh() - 1).exp(), fuse=False)) == 4


def test_root_and_leaves():
    leaves, inner, y = seed_graph()
    for fuse in (True, False):
        tape = fg.lower(y, fuse=fuse)
        assert tape.root is y
        assert isinstance(tape.leaves, list)
        assert {id(v) for v in tape.leaves} == {id(v) for v in leaves}
        assert len(tape.leaves) == 5


def test_leaves_include_number_constants_and_exclude_unreached_values():
    x, unused = Value(1.0, label="x"), Value(2.0)
    y = x * 3.0 + 1.0
    tape = fg.lower(y)
    assert sorted(v.data for v in tape.leaves) == [1.0, 1.0, 3.0]
    assert all(v is not unused for v in tape.leaves)


@pytest.mark.parametrize("fuse", [True, False])
def test_listing_has_a_line_per_leaf_and_instruction_with_labels(fuse):
    leaves, inner, y = seed_graph()
    tape = fg.lower(y, fuse=fuse)
    listing = str(tape)
    lines = listing.splitlines()
    expected = len(tape.leaves) + len(tape)
    assert len(lines) in (expected, expected + 1)    # an optional header line
    for leaf in leaves:
        assert sum(leaf.label in line for line in lines) >= 1
    assert "neuron_out" in listing
    if fuse:
        assert "dot" in listing
    else:
        for label in ("x1*w1", "x2*w2", "x1*w1 + x2*w2"):
            assert label in listing


def test_listing_of_every_op_names_it():
    x, z = Value(0.5, label="x"), Value(2.0, label="z")
    y = (((x + z) * z - x) / z) ** 2
    y = (-y) ** z
    y = y.relu().tanh().exp().log().sigmoid()
    listing = str(fg.lower(y, fuse=False))
    for symbol in ("+", "*", "-", "/", "neg", "**", "relu", "tanh", "exp", "log", "sigmoid"):
        assert symbol in listing, symbol


def test_repr_is_one_line():
    leaves, inner, y = seed_graph()
    assert "\n" not in repr(fg.lower(y))


# -- replay ------------------------------------------------------------------------


@pytest.mark.parametrize("fuse", [True, False])
def test_forward_rereads_leaves_and_updates_the_root(fuse):
    leaves, inner, y = seed_graph()
    x1, x2, w1, w2, b = leaves
    tape = fg.lower(y, fuse=fuse)
    assert tape.forward() == y.data
    x1.data, x2.data, w1.data, w2.data, b.data = 1.5, -2.0, 4.0, 0.25, -1.0
    out = tape.forward()
    assert out == (1.5 * 4.0 + -2.0 * 0.25) + -1.0
    assert y.data == out
    assert tape.value(y) == out


def test_unfused_forward_updates_every_intermediate():
    leaves, inner, y = seed_graph()
    x1, x2, w1, w2, b = leaves
    tape = fg.lower(y, fuse=False)
    x1.data, x2.data = 3.0, 5.0
    tape.forward()
    x1w1, x2w2, s = inner
    assert x1w1.data == 3.0 * -3.0
    assert x2w2.data == 5.0 * 1.0
    assert s.data == -9.0 + 5.0


@pytest.mark.parametrize("fuse", [True, False])
def test_value_of_every_node_including_fused_ones(fuse):
    leaves, inner, y = seed_graph()
    x1, x2, w1, w2, b = leaves
    tape = fg.lower(y, fuse=fuse)
    x1.data, x2.data, w1.data, w2.data, b.data = 0.5, 2.0, -1.0, 3.0, 0.125
    tape.forward()
    x1w1, x2w2, s = inner
    assert tape.value(x1w1) == 0.5 * -1.0
    assert tape.value(x2w2) == 2.0 * 3.0
    assert tape.value(s) == -0.5 + 6.0
    assert tape.value(y) == 5.5 + 0.125
    assert tape.value(x2) == 2.0


def test_value_of_a_foreign_node_raises():
    leaves, inner, y = seed_graph()
    tape = fg.lower(y)
    with pytest.raises((ValueError, KeyError)):
        tape.value(Value(1.0))


@pytest.mark.parametrize("fuse", [True, False])
def test_backward_accumulates_into_leaves_and_zero_grad_clears(fuse):
    leaves, inner, y = seed_graph()
    x1, x2, w1, w2, b = leaves
    tape = fg.lower(y, fuse=fuse)
    tape.backward()
    assert [v.grad for v in leaves] == [-3.0, 1.0, 2.0, 0.0, 1.0]
    tape.backward()
    assert [v.grad for v in leaves] == [-6.0, 2.0, 4.0, 0.0, 2.0]
    tape.zero_grad()
    assert [v.grad for v in leaves] == [0.0] * 5
    x1.data = 10.0
    tape.forward()
    tape.backward()
    assert w1.grad == 10.0


def test_backward_uses_the_latest_forward():
    x = Value(1.0)
    y = (x * x).tanh()
    tape = fg.lower(y)
    x.data = 0.3
    tape.forward()
    tape.backward()
    t = math.tanh(0.09)
    assert x.grad == pytest.approx((1 - t * t) * 2 * 0.3, rel=1e-14)


def test_tape_of_a_single_leaf():
    x = Value(3.0, label="x")
    tape = fg.lower(x)
    assert len(tape) == 0
    assert tape.leaves == [x] and tape.root is x
    x.data = 4.0
    assert tape.forward() == 4.0
    tape.backward()
    assert x.grad == 1.0
    assert "x" in str(tape)


def test_a_value_may_be_a_leaf_of_several_tapes():
    x = Value(0.5, label="x")
    t1 = fg.lower(x * x + 1.0)
    t2 = fg.lower(x.exp())
    x.data = 0.75
    assert t1.forward() == 0.75 * 0.75 + 1.0
    assert t2.forward() == math.exp(0.75)
    t1.backward()
    t2.backward()
    assert x.grad == pytest.approx(2 * 0.75 + math.exp(0.75), rel=1e-15)
    t1.zero_grad()
    assert x.grad == 0.0


def test_lowering_a_subgraph_of_another_tape():
    x = Value(0.2, label="x")
    inner = (x * 3.0).tanh()
    outer = inner * inner + x
    t_outer = fg.lower(outer, fuse=False)
    t_inner = fg.lower(inner, fuse=False)
    x.data = -0.4
    t = math.tanh(-0.4 * 3.0)
    assert t_outer.forward() == t * t + -0.4
    assert t_inner.forward() == t
    assert t_outer.value(inner) == t
    t_outer.backward()
    assert x.grad == pytest.approx(2 * t * (1 - t * t) * 3.0 + 1.0, rel=1e-14)


def test_lowering_the_same_graph_twice_gives_independent_tapes():
    x = Value(1.0)
    y = (x * 2.0 + 1.0).relu() * x
    fused, unfused = fg.lower(y, fuse=True), fg.lower(y, fuse=False)
    x.data = 2.0
    assert fused.forward() == unfused.forward() == 10.0
    x.data = -1.0
    assert fused.forward() == unfused.forward() == 0.0


def test_tape_outlives_the_names_of_its_graph_and_vice_versa():
    x = Value(2.0)
    tape = fg.lower((x * x).exp())
    x_ref = tape.leaves[0]
    del x
    x_ref.data = 0.5
    assert tape.forward() == math.exp(0.25)
    y = tape.root
    del tape
    assert y.data == math.exp(0.25)
    y.backward()
    assert x_ref.grad == pytest.approx(2 * 0.5 * math.exp(0.25), rel=1e-15)


def test_micrograd_style_hinge_loss_over_a_tape():
    w = [Value(0.3), Value(-0.2)]
    b = Value(0.1)
    X = [(1.0, 2.0), (-1.0, 0.5), (0.5, -1.5)]
    Y = [1.0, -1.0, 1.0]
    losses = [(1 + -yi * (sum((wi * xi for wi, xi in zip(w, x)), b))).relu()
              for x, yi in zip(X, Y)]
    loss = sum(losses) * (1.0 / len(losses))
    tape = fg.lower(loss)
    for _ in range(3):       # a few SGD steps replayed on the tape
        tape.zero_grad()
        tape.forward()
        tape.backward()
        for p in w + [b]:
            p.data -= 0.1 * p.grad
    expected_w = [0.3, -0.2]
    expected_b = 0.1
    for _ in range(3):
        gw, gb = [0.0, 0.0], 0.0
        for x, yi in zip(X, Y):
            margin = 1 - yi * (expected_w[0] * x[0] + expected_w[1] * x[1] + expected_b)
            if margin > 0:
                gw = [gw[0] - yi * x[0] / 3, gw[1] - yi * x[1] / 3]
                gb -= yi / 3
        expected_w = [expected_w[0] - 0.1 * gw[0], expected_w[1] - 0.1 * gw[1]]
        expected_b -= 0.1 * gb
    assert [p.data for p in w] == pytest.approx(expected_w, rel=1e-12)
    assert b.data == pytest.approx(expected_b, rel=1e-12)


# -- non-finite values during replay -------------------------------------------------


def _log_graph():
    x = Value(1.0, label="x")
    lx = x.log()
    lx.label = "logx"
    out = (lx * 2.0).exp()
    out.label = "out"
    return x, lx, out


@pytest.mark.parametrize("fuse", [True, False])
def test_replay_domain_errors_are_silent_without_check(fuse):
    x, lx, out = _log_graph()
    tape = fg.lower(out, fuse=fuse)
    x.data = -1.0
    assert math.isnan(tape.forward())
    assert math.isnan(out.data)
    x.data = 0.0
    assert tape.forward() == 0.0          # exp(2 * -inf)
    assert tape.value(lx) == -math.inf


@pytest.mark.parametrize("fuse", [True, False])
@pytest.mark.parametrize("bad", [-1.0, 0.0])
def test_forward_check_names_the_first_non_finite_instruction(fuse, bad):
    x, lx, out = _log_graph()
    tape = fg.lower(out, fuse=fuse)
    x.data = bad
    with pytest.raises(FloatingPointError) as info:
        tape.forward(check=True)
    message = str(info.value)
    assert "log" in message and "logx" in message
    x.data = 2.0
    assert tape.forward(check=True) == pytest.approx(4.0, rel=1e-15)


@pytest.mark.parametrize("fuse", [True, False])
def test_forward_check_catches_a_non_finite_value_that_does_not_reach_the_root(fuse):
    a, b = Value(1.0, label="a"), Value(2.0, label="b")
    q = a / b
    q.label = "quotient"
    y = q.tanh() + 1.0
    tape = fg.lower(y, fuse=fuse)
    b.data = 0.0
    assert tape.forward() == 2.0            # tanh(inf) + 1: the root is finite
    with pytest.raises(FloatingPointError, match="quotient"):
        tape.forward(check=True)


@pytest.mark.parametrize("make, bad, label", [
    (lambda x: x.exp(), 1000.0, "e"),
    (lambda x: x ** 0.5, -4.0, "r"),
    (lambda x: x ** -1, 0.0, "inv"),
    (lambda x: 2.0 ** x, 2000.0, "p"),
    (lambda x: x * 1e308, 10.0, "big"),
], ids=["exp-overflow", "sqrt-negative", "reciprocal-0", "pow-overflow", "mul-overflow"])
def test_forward_check_catches_each_kind_of_domain_error(make, bad, label):
    x = Value(1.0, label="x")
    node = make(x)
    node.label = label
    root = node * 1.0
    tape = fg.lower(root)
    x.data = bad
    tape.forward()                           # silent
    with pytest.raises(FloatingPointError, match=label):
        tape.forward(check=True)


def test_forward_check_reports_a_non_finite_leaf():
    x = Value(1.0, label="x")
    tape = fg.lower(x * 2.0)
    x.data = math.nan
    with pytest.raises(FloatingPointError, match="x"):
        tape.forward(check=True)


# -- properties: replay equals a fresh eager build ------------------------------------


def _perturbed(data, program):
    deltas = data.draw(st.lists(st.floats(-0.5, 0.5, allow_nan=False, allow_subnormal=False),
                                min_size=program.n_leaves, max_size=program.n_leaves))
    return [v + d for v, d in zip(program.values, deltas)]


def _scale(values):
    return 1.0 + max(abs(v) for v in values)


@given(data=st.data(), fuse=st.booleans())
def test_replay_after_changing_leaves_equals_a_fresh_eager_graph(graphs, data, fuse):
    program = data.draw(graphs.programs())
    assume(graphs.evaluate(program) is not None)
    new = _perturbed(data, program)
    floats = graphs.evaluate(program, new)
    assume(floats is not None)

    leaves, nodes = graphs.build(program, Value)
    root = nodes[-1]
    tape = fg.lower(root, fuse=fuse)
    for leaf, v in zip(leaves, new):
        leaf.data = v
    out = tape.forward()
    tape.backward()

    fresh_leaves, fresh_nodes = graphs.build(program, Value, new)
    fresh_root = fresh_nodes[-1]
    fresh_root.backward()

    assert graphs.same_bits(out, fresh_root.data)
    assert graphs.same_bits(root.data, fresh_root.data)
    ours, theirs = all_nodes(root), all_nodes(fresh_root)
    assert len(ours) == len(theirs)
    for k, (node, ref) in enumerate(zip(ours, theirs)):
        assert graphs.same_bits(tape.value(node), ref.data), f"node {k} ({node.op})"
        if not fuse:
            assert graphs.same_bits(node.data, ref.data), f"node {k} ({node.op})"
    scale = _scale(floats)
    gscale = _scale([leaf.grad for leaf in fresh_leaves])
    for k, (leaf, ref) in enumerate(zip(leaves, fresh_leaves)):
        graphs.assert_close(leaf.grad, ref.grad, 1e-12, 1e-13 * gscale * scale, f"grad x{k}")
    if not fuse:
        for k, (node, ref) in enumerate(zip(ours, theirs)):
            if node.inputs:
                graphs.assert_close(node.grad, ref.grad, 1e-12, 1e-13 * gscale * scale,
                                    f"grad of node {k} ({node.op})")

    # Eager backward on the replayed graph agrees too.
    for leaf in leaves:
        leaf.grad = 0.0
    root.backward()
    for k, (leaf, ref) in enumerate(zip(leaves, fresh_leaves)):
        graphs.assert_close(leaf.grad, ref.grad, 1e-12, 1e-13 * gscale * scale, f"grad x{k}")


@given(data=st.data())
def test_fused_and_unfused_tapes_agree(graphs, data):
    program = data.draw(graphs.programs())
    assume(graphs.evaluate(program) is not None)
    new = _perturbed(data, program)
    floats = graphs.evaluate(program, new)
    assume(floats is not None)

    leaves_f, nodes_f = graphs.build(program, Value)
    leaves_u, nodes_u = graphs.build(program, Value)
    fused = fg.lower(nodes_f[-1], fuse=True)
    unfused = fg.lower(nodes_u[-1], fuse=False)
    assert len(unfused) == sum(1 for n in all_nodes(nodes_u[-1]) if n.inputs)
    assert len(fused) <= len(unfused)
    for leaf_f, leaf_u, v in zip(leaves_f, leaves_u, new):
        leaf_f.data = leaf_u.data = v
    assert graphs.same_bits(fused.forward(), unfused.forward())
    for node_f, node_u in zip(all_nodes(nodes_f[-1]), all_nodes(nodes_u[-1])):
        assert graphs.same_bits(fused.value(node_f), unfused.value(node_u))
    fused.backward()
    unfused.backward()
    scale = _scale(floats)
    gscale = _scale([leaf.grad for leaf in leaves_u])
    for k, (a, b) in enumerate(zip(leaves_f, leaves_u)):
        graphs.assert_close(a.grad, b.grad, 1e-12, 1e-13 * gscale * scale, f"grad x{k}")


@given(data=st.data(), fuse=st.booleans())
def test_tape_backward_twice_doubles_leaf_grads_exactly(graphs, data, fuse):
    program = data.draw(graphs.programs())
    assume(graphs.evaluate(program) is not None)
    leaves, nodes = graphs.build(program, Value)
    tape = fg.lower(nodes[-1], fuse=fuse)
    tape.backward()
    first = [leaf.grad for leaf in leaves]
    tape.backward()
    assert [leaf.grad for leaf in leaves] == [2 * g for g in first]


# -- threads --------------------------------------------------------------------------


def wide_graph(n_leaves, seed):
    """~6 nodes per leaf, summed as a balanced tree (shallow: depth ~ log2 n)."""
    import random

    rng = random.Random(seed)
    leaves = [Value(rng.uniform(-1, 1), label=f"x{k}") for k in range(n_leaves)]
    terms = [(x * rng.uniform(-1, 1) + 0.25).tanh() for x in leaves]
    while len(terms) > 1:
        terms = [terms[k] + terms[k + 1] if k + 1 < len(terms) else terms[k]
                 for k in range(0, len(terms), 2)]
    return leaves, terms[0]


def test_two_tapes_in_two_threads_match_sequential_results():
    graphs_ = [wide_graph(8000, seed) for seed in (1, 2)]
    tapes = [fg.lower(root) for _, root in graphs_]
    expected = []
    for (leaves, _), tape in zip(graphs_, tapes):
        tape.zero_grad()
        value = tape.forward()
        tape.backward()
        expected.append((value, [leaf.grad for leaf in leaves]))

    barrier = threading.Barrier(2)
    results = [None, None]
    errors = []

    def work(k):
        leaves, _ = graphs_[k]
        tape = tapes[k]
        try:
            barrier.wait()
            seen = []
            for _ in range(30):
                tape.zero_grad()
                value = tape.forward()
                tape.backward()
                seen.append((value, [leaf.grad for leaf in leaves]))
            results[k] = seen
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    for k in range(2):
        for value, grads in results[k]:
            assert value == expected[k][0]
            assert grads == expected[k][1]


@pytest.fixture(scope="module")
def big_tape():
    leaves, root = wide_graph(34000, seed=3)      # ~200k nodes
    expected = root.data
    root.backward()
    grads = [leaf.grad for leaf in leaves]
    for leaf in leaves:
        leaf.grad = 0.0
    tape = fg.lower(root, fuse=False)
    assert len(tape.leaves) + len(tape) > 150_000
    return tape, leaves, expected, grads


def _hammer(call, max_iterations=200):
    """Call `call` from two threads at once until one gets RuntimeError."""
    stop = threading.Event()
    barrier = threading.Barrier(2)
    outcomes = [[], []]

    def work(k):
        barrier.wait()
        for _ in range(max_iterations):
            if stop.is_set():
                break
            try:
                outcomes[k].append(("ok", call()))
            except RuntimeError as exc:
                outcomes[k].append(("busy", exc))
                stop.set()
            except BaseException as exc:  # noqa: BLE001 - reported by the test
                outcomes[k].append(("error", exc))
                stop.set()

    threads = [threading.Thread(target=work, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return outcomes[0] + outcomes[1]


def test_one_tape_used_from_two_threads_raises_and_never_corrupts(big_tape):
    tape, leaves, expected, grads = big_tape
    outcomes = _hammer(tape.forward)
    kinds = [kind for kind, _ in outcomes]
    assert "error" not in kinds, outcomes
    assert "busy" in kinds, "no RuntimeError in 200 concurrent forward() calls"
    for kind, result in outcomes:
        if kind == "ok":
            assert result == expected
    assert tape.forward() == expected
    assert tape.root.data == expected


def test_one_tape_backward_from_two_threads_raises_and_never_corrupts(big_tape):
    tape, leaves, expected, grads = big_tape
    tape.forward()
    tape.zero_grad()
    outcomes = _hammer(tape.backward)
    kinds = [kind for kind, _ in outcomes]
    assert "error" not in kinds, outcomes
    assert "busy" in kinds, "no RuntimeError in 200 concurrent backward() calls"
    calls = kinds.count("ok")
    for leaf, g in zip(leaves[:200], grads[:200]):
        assert leaf.grad == pytest.approx(calls * g, rel=1e-12, abs=1e-300)
    tape.zero_grad()
    tape.backward()
    assert [leaf.grad for leaf in leaves] == pytest.approx(grads, rel=1e-12)


def test_the_busy_error_says_what_happened(big_tape):
    tape, *_ = big_tape
    outcomes = _hammer(tape.forward)
    messages = [str(exc) for kind, exc in outcomes if kind == "busy"]
    assert messages and all("thread" in m.lower() for m in messages)


# -- deep chains (each in a fresh interpreter: the failure mode is a crash) -------------


def _crash_report(proc):
    return (f"exit status {proc.returncode}\n--- stdout\n{proc.stdout[-2000:]}"
            f"\n--- stderr\n{proc.stderr[-3000:]}")


def test_deep_add_chain_eager_and_on_tapes(run_isolated):
    proc = run_isolated("""
        import gc
        import fastgrad as fg
        n = 500_000                     # 10**6 + 1 nodes: n adds and n constants
        x = fg.Value(0.5, label="x")
        y = x
        for _ in range(n):
            y = y + 1.0
        assert y.data == n + 0.5, y.data
        y.backward()
        assert x.grad == 1.0, x.grad
        for fuse in (True, False):
            tape = fg.lower(y, fuse=fuse)
            assert len(tape.leaves) == n + 1
            x.data = 2.0
            assert tape.forward() == n + 2.0
            assert y.data == n + 2.0
            tape.zero_grad()
            tape.backward()
            assert x.grad == 1.0 and tape.leaves[-1].grad == 1.0
            x.data = 0.5
            del tape
        del y
        gc.collect()
        z = (x * 2.0).tanh()            # the interpreter is still healthy
        print("ok")
    """)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", _crash_report(proc)


def test_deep_multiply_chain_eager_and_on_tapes(run_isolated):
    proc = run_isolated("""
        import math
        import fastgrad as fg
        n = 250_000                     # 10**6 + 1 nodes
        c = 1.0000001
        x = fg.Value(1.0, label="x")
        y = x
        for _ in range(n):
            y = y * c + 0.0
        expected, slope = 1.0, 1.0
        for _ in range(n):
            expected = expected * c + 0.0
            slope = c * slope
        assert math.isclose(y.data, expected, rel_tol=1e-12), (y.data, expected)
        y.backward()
        assert math.isclose(x.grad, slope, rel_tol=1e-12), (x.grad, slope)
        for fuse in (True, False):
            tape = fg.lower(y, fuse=fuse)
            x.data = 2.0
            assert math.isclose(tape.forward(), 2.0 * expected, rel_tol=1e-12)
            tape.zero_grad()
            tape.backward()
            assert math.isclose(x.grad, slope, rel_tol=1e-12)
            x.data = 1.0
            del tape
        del y
        print("ok")
    """)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", _crash_report(proc)


def test_deep_chain_of_unary_functions_on_a_tape(run_isolated):
    proc = run_isolated("""
        import math
        import fastgrad as fg
        n = 10**6
        x = fg.Value(0.3, label="x")
        y = x
        for _ in range(n // 2):
            y = (-y).sigmoid()
        tape = fg.lower(y)
        x.data = 0.1
        value = tape.forward(check=True)
        v = 0.1
        for _ in range(n // 2):
            v = 1.0 / (1.0 + math.exp(v))
        assert math.isclose(value, v, rel_tol=1e-12), (value, v)
        tape.backward()
        assert math.isfinite(x.grad)
        del tape, y
        print("ok")
    """)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", _crash_report(proc)
