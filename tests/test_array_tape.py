"""Lowering tensor graphs to an ArrayTape, and replaying it.

The contract: ``fg.lower(root)`` gives a tape whose ``forward()`` reads the
leaves' current ``.data`` (changed in place or replaced by an array of the
same shape), recomputes every intermediate in place and returns the root;
``backward()`` accumulates into the leaves' ``.grad``.  A replay equals
rebuilding the graph eagerly on the new data -- bitwise, since eager ops run
the same compiled kernels.  One tape is not re-entrant (concurrent use
raises); different tapes run in parallel threads.
"""

from __future__ import annotations

import sys
import threading
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fastgrad as fg
import fastgrad.nn.functional as F

F64, F32 = np.dtype(np.float64), np.dtype(np.float32)


def bits(a) -> bytes:
    return np.ascontiguousarray(np.asarray(a)).tobytes()


def same_bits(a, b) -> bool:
    a, b = np.asarray(a), np.asarray(b)
    return a.dtype == b.dtype and a.shape == b.shape and bits(a) == bits(b)


# -- a model that touches every tensor op -------------------------------------------------

def make_data(rng, n, d, h, c, dtype):
    return dict(
        X=rng.standard_normal((n, d)).astype(dtype),
        W1=rng.standard_normal((d, h)).astype(dtype),
        b1=rng.standard_normal(h).astype(dtype),
        W2=rng.standard_normal((h, c)).astype(dtype),
        s=rng.uniform(0.5, 1.5, (1, c)).astype(dtype),
        y=rng.integers(0, c, n),
    )


def make_leaves(data):
    return {k: fg.tensor(v, requires_grad=(k != "X" and k != "y"), label=k)
            for k, v in data.items()}


def model(L):
    """A graph using every tensor op; returns (root, intermediates by name)."""
    X, W1, b1, W2, s, y = (L[k] for k in ("X", "W1", "b1", "W2", "s", "y"))
    pre = X @ W1 + b1                                    # matmul, broadcast add
    h = pre.tanh() * 0.5 + pre.relu() - pre.sigmoid() / 3.0
    logits = (h @ W2) * s ** 1.5 - (h.abs() + 1.0).log().sum(axis=1, keepdims=True)
    logits = logits + (s.exp() ** s).reshape(-1) / 4.0     # pow with a tensor exponent
    t = logits.T[:, ::-1].transpose()                    # transpose, getitem (negative step)
    ce = F.cross_entropy(t, y)                           # fused cross-entropy
    lsm = F.log_softmax(t, axis=0)                       # log_softmax on a moved axis
    reg = (W1 ** 2).mean() + (W2 - 0.1).abs().max(axis=0).sum() + (-b1).max()
    root = ce + lsm[0].mean() * 0.1 + reg * 0.01
    return root, dict(pre=pre, h=h, logits=logits, t=t, ce=ce, lsm=lsm, reg=reg)


DTYPE = st.sampled_from([F64, F32])
DIMS = st.tuples(st.integers(1, 5), st.integers(1, 4), st.integers(1, 4), st.integers(1, 4))


@settings(max_examples=25, deadline=None)
@given(dims=DIMS, dtype=DTYPE, seed=st.integers(0, 2 ** 32 - 1))
def test_replay_equals_eager_rebuild_bitwise(dims, dtype, seed):
    rng = np.random.default_rng(seed)
    n, d, h, c = dims
    leaves = make_leaves(make_data(rng, n, d, h, c, dtype))
    root, mids = model(leaves)
    tape = fg.lower(root)
    new = make_data(rng, n, d, h, c, dtype)
    # half the leaves change in place, half get a new array
    for i, (k, t) in enumerate(leaves.items()):
        if i % 2:
            t.data[...] = new[k]
        else:
            t.data = new[k].copy()
    for t in leaves.values():
        t.grad = None
    assert tape.forward() is root
    tape.backward()

    fresh = make_leaves(new)
    root2, mids2 = model(fresh)
    root2.backward()
    assert same_bits(root.data, root2.data)
    for name in mids:
        assert same_bits(mids[name].data, mids2[name].data), name
        assert same_bits(tape.value(mids[name]), mids2[name].data), name
    for k in leaves:
        if leaves[k].requires_grad:
            assert same_bits(leaves[k].grad, fresh[k].grad), k
        else:
            assert leaves[k].grad is None


def test_forward_without_changes_reproduces_the_eager_values():
    rng = np.random.default_rng(0)
    leaves = make_leaves(make_data(rng, 4, 3, 5, 2, F64))
    root, mids = model(leaves)
    before = {k: v.data.copy() for k, v in mids.items()}
    root_before = root.data.copy()
    tape = fg.lower(root)
    tape.forward()
    tape.forward()
    assert same_bits(root.data, root_before)
    for k, v in mids.items():
        assert same_bits(v.data, before[k])


def test_forward_updates_intermediates_in_place():
    x = fg.tensor([1.0, 2.0], requires_grad=True, label="x")
    h = x * 3.0
    y = (h + 1.0).sum()
    tape = fg.lower(y)
    h_array = h.data
    x.data[...] = [10.0, 20.0]
    assert tape.forward() is y
    assert h.data is h_array                  # same array, new contents
    np.testing.assert_array_equal(h.data, [30.0, 60.0])
    np.testing.assert_array_equal(tape.value(h), [30.0, 60.0])
    assert y.item() == 92.0
    np.testing.assert_array_equal(tape.value(x), [10.0, 20.0])


def test_training_loop_on_a_tape_matches_eager_training_bitwise():
    rng = np.random.default_rng(4)
    data = make_data(rng, 6, 3, 5, 3, F64)
    lr = 0.05

    leaves = make_leaves(data)
    root, _ = model(leaves)
    tape = fg.lower(root)
    params = [t for t in leaves.values() if t.requires_grad]
    eager = {k: v.copy() for k, v in data.items()}
    for step in range(15):
        tape.zero_grad()
        tape.forward()
        tape.backward()
        for p in params:
            p.data -= lr * p.grad

        e_leaves = make_leaves(eager)
        e_root, _ = model(e_leaves)
        e_root.backward()
        assert same_bits(root.data, e_root.data), step
        for k, t in e_leaves.items():
            if t.requires_grad:
                eager[k] = t.data - lr * t.grad
    for k, t in leaves.items():
        assert same_bits(t.data, eager[k]), k


# -- construction and listing -------------------------------------------------------------

def test_lower_gives_an_array_tape_with_one_instruction_per_op():
    x = fg.tensor(np.ones((4, 3)), label="X")
    w = fg.tensor(np.ones((3, 2)), requires_grad=True, label="W")
    b = fg.tensor(np.zeros(2), requires_grad=True, label="b")
    y = (x @ w + b).tanh().sum()
    tape = fg.lower(y)
    assert isinstance(tape, fg.ArrayTape)
    assert len(tape) == 4            # matmul, add, tanh, sum


def test_listing_shows_ops_shapes_dtypes_and_labels():
    x = fg.tensor(np.ones((4, 3)), label="inputs")
    w = fg.tensor(np.ones((3, 2), np.float32), requires_grad=True, label="weights")
    y = (x @ w).relu().sum()
    text = str(fg.lower(y))
    for fragment in ("@", "(4, 3)", "(3, 2)", "(4, 2)", "float64", "float32", "relu",
                     "sum", "inputs", "weights"):
        assert fragment in text, fragment
    assert len(text.splitlines()) >= 4
    assert "ArrayTape" in repr(fg.lower(y))


def test_lower_rejects_other_objects():
    with pytest.raises(TypeError):
        fg.lower(np.ones(3))
    with pytest.raises(TypeError):
        fg.lower(3.0)


def test_lowering_a_leaf():
    x = fg.tensor([1.0, 2.0], requires_grad=True)
    tape = fg.lower(x)
    assert len(tape) == 0
    assert tape.forward() is x
    tape.backward(np.array([3.0, 4.0]))
    np.testing.assert_array_equal(x.grad, [3.0, 4.0])


def test_value_of_a_foreign_tensor_is_an_error():
    x = fg.tensor([1.0], requires_grad=True)
    tape = fg.lower(x * 2.0)
    with pytest.raises(ValueError):
        tape.value(fg.tensor([1.0]))


def test_deep_chain_lowers_and_replays():
    n = sys.getrecursionlimit() * 3
    x = fg.tensor([1.0, -1.0], requires_grad=True)
    y = x
    for _ in range(n):
        y = y + 1.0
    root = y.sum()
    tape = fg.lower(root)
    assert len(tape) == n + 1
    x.data[...] = [0.0, 0.0]
    tape.forward()
    assert root.item() == 2.0 * n
    tape.backward()
    np.testing.assert_array_equal(x.grad, [1.0, 1.0])


def test_no_grad_results_are_constants_on_the_tape():
    x = fg.tensor([1.0, 2.0], requires_grad=True)
    with fg.no_grad():
        c = x * 10.0
    y = (x * c).sum()
    tape = fg.lower(y)
    x.data[...] = [3.0, 4.0]
    tape.forward()
    np.testing.assert_array_equal(c.data, [10.0, 20.0])   # frozen
    assert y.item() == 3.0 * 10.0 + 4.0 * 20.0
    tape.backward()
    np.testing.assert_array_equal(x.grad, [10.0, 20.0])


# -- leaves that change -------------------------------------------------------------------------

def test_changed_leaf_shape_is_a_value_error_at_forward():
    x = fg.tensor(np.ones((2, 3)), requires_grad=True, label="inputs")
    y = (x * 2.0).sum()
    tape = fg.lower(y)
    x.data = np.ones((3, 3))
    with pytest.raises(ValueError, match="inputs"):
        tape.forward()
    with pytest.raises(ValueError):
        tape.backward()
    x.data = np.full((2, 3), 2.0)
    tape.forward()
    assert y.item() == 24.0


def test_assigning_another_dtype_is_converted():
    x = fg.tensor(np.ones(3), requires_grad=True)
    y = (x * 2.0).sum()
    tape = fg.lower(y)
    x.data = np.array([1.0, 2.0, 3.0], dtype=np.float32)
    assert x.dtype == F64
    tape.forward()
    assert y.item() == 12.0


def test_int_leaf_replay():
    i = fg.tensor([1, 2, 3])
    w = fg.tensor([0.5, 0.5, 0.5], requires_grad=True)
    y = (i * w).sum()
    tape = fg.lower(y)
    i.data[...] = [4, 5, 6]
    tape.forward()
    assert y.item() == 7.5
    tape.backward()
    np.testing.assert_array_equal(w.grad, [4.0, 5.0, 6.0])


# -- check=True --------------------------------------------------------------------------------

def test_forward_check():
    x = fg.tensor([1.0, 2.0], requires_grad=True, label="x")
    h = x * 2.0
    lg = h.log()
    lg.label = "logh"
    y = (lg * 3.0).sum()
    tape = fg.lower(y)
    tape.forward(check=True)                     # all finite: no error
    x.data[...] = [-1.0, 2.0]
    with pytest.raises(FloatingPointError, match="log") as info:
        tape.forward(check=True)
    assert "logh" in str(info.value)
    tape.forward()                               # check=False: no error, nan propagates
    assert np.isnan(y.item())


def test_forward_check_reports_the_first_bad_instruction_only():
    x = fg.tensor([1.0], requires_grad=True)
    e = (x * 1000.0).exp()       # inf here first
    e.label = "first"
    z = e.tanh() - e             # later instructions are also non-finite
    z.label = "later"
    tape = fg.lower(z.sum())
    with pytest.raises(FloatingPointError) as info:
        tape.forward(check=True)
    msg = str(info.value)
    assert "exp" in msg and "first" in msg and "later" not in msg


def test_forward_check_float32():
    x = fg.tensor(np.array([100.0], np.float32), requires_grad=True)
    tape = fg.lower(x.exp().sum())          # exp(100) overflows float32
    with pytest.raises(FloatingPointError):
        tape.forward(check=True)


# -- backward on a tape ---------------------------------------------------------------------------

def test_tape_backward_seed_rules():
    x = fg.tensor([1.0, 2.0], requires_grad=True)
    vec = fg.lower(x * 3.0)
    with pytest.raises(RuntimeError, match="one element"):
        vec.backward()
    with pytest.raises(ValueError):
        vec.backward(np.ones(3))
    vec.backward(np.array([1.0, -1.0]))
    np.testing.assert_array_equal(x.grad, [3.0, -3.0])
    x.grad = None
    scalar = fg.lower((x * 3.0).sum())
    scalar.backward()
    np.testing.assert_array_equal(x.grad, [3.0, 3.0])
    scalar.backward(2.0)
    np.testing.assert_array_equal(x.grad, [9.0, 9.0])


def test_tape_backward_twice_doubles_and_intermediates_restart():
    rng = np.random.default_rng(7)
    x = fg.tensor(rng.standard_normal((3, 4)), requires_grad=True)
    w = fg.tensor(rng.standard_normal((4, 2)), requires_grad=True)
    h = x @ w                      # the intermediate is used twice; each leaf once
    y = (h * h.tanh() + h).sum()
    tape = fg.lower(y)
    tape.backward()
    gx, gw = x.grad.copy(), w.grad.copy()
    tape.backward()
    np.testing.assert_array_equal(x.grad, 2 * gx)
    np.testing.assert_array_equal(w.grad, 2 * gw)
    tape.zero_grad()
    np.testing.assert_array_equal(x.grad, np.zeros_like(gx))
    tape.backward()
    np.testing.assert_array_equal(x.grad, gx)
    np.testing.assert_array_equal(w.grad, gw)
    x.grad = None                  # restarts from zero
    tape.backward()
    np.testing.assert_array_equal(x.grad, gx)


def test_tape_backward_into_a_bad_grad_array_is_an_error():
    x = fg.tensor([1.0, 2.0], requires_grad=True)
    tape = fg.lower((x * 3.0).sum())
    x.grad = np.zeros(3)
    with pytest.raises(ValueError):
        tape.backward()
    x.grad = np.zeros(2, dtype=np.float32)
    with pytest.raises(ValueError):
        tape.backward()


def test_leaves_without_requires_grad_get_no_grad():
    x = fg.tensor([1.0, 2.0])
    w = fg.tensor([3.0, 4.0], requires_grad=True)
    tape = fg.lower((x * w).sum())
    tape.backward()
    assert x.grad is None
    np.testing.assert_array_equal(w.grad, [1.0, 2.0])


def test_a_leaf_in_two_tapes_accumulates_from_both():
    w = fg.tensor([1.0, 2.0], requires_grad=True)
    t1 = fg.lower((w * 2.0).sum())
    t2 = fg.lower((w * w).sum())
    t1.backward()
    t2.backward()
    np.testing.assert_array_equal(w.grad, [4.0, 6.0])


def test_tape_still_updates_root_after_eager_backward():
    # regression: Tensor.backward() used to re-lower the graph and move the nodes'
    # .data into its throw-away tape, so the first tape's forward() went unseen
    x = fg.tensor([1.0, 2.0, 3.0], requires_grad=True)
    y = x * 2.0
    loss = y.sum()
    tape = fg.lower(loss)
    loss.backward()
    x.data[...] = [10.0, 20.0, 30.0]
    root = tape.forward()
    assert root.item() == 120.0
    np.testing.assert_array_equal(y.data, [20.0, 40.0, 60.0])
    np.testing.assert_array_equal(tape.value(y), [20.0, 40.0, 60.0])
    np.testing.assert_array_equal(x.grad, [2.0, 2.0, 2.0])


def test_eager_backward_after_a_replay_uses_the_replayed_values():
    x = fg.tensor([1.0, 2.0], requires_grad=True)
    y = (x * x).sum()
    tape = fg.lower(y)
    x.data[...] = [3.0, 4.0]
    tape.forward()
    y.backward()
    np.testing.assert_array_equal(x.grad, [6.0, 8.0])


def test_lowering_the_same_graph_twice_keeps_the_first_tape_visible():
    x = fg.tensor([1.0, 2.0, 3.0], requires_grad=True)
    y = x * 2.0
    loss = y.sum()
    tape = fg.lower(loss)
    fg.lower(loss)                     # a second tape over the same nodes
    x.data[...] = [10.0, 20.0, 30.0]
    assert tape.forward().item() == 120.0


def test_a_second_tape_sharing_an_intermediate_keeps_the_first_tape_visible():
    x = fg.tensor([1.0, 2.0, 3.0], requires_grad=True)
    logits = x * 2.0
    loss = logits.sum()
    tape = fg.lower(loss)
    fg.lower(logits.max())             # e.g. a metric over the same logits
    x.data[...] = [10.0, 20.0, 30.0]
    tape.forward()
    assert loss.item() == 120.0
    np.testing.assert_array_equal(tape.value(logits), [20.0, 40.0, 60.0])


# -- threads ------------------------------------------------------------------------------------

@pytest.fixture
def one_blas_thread():
    """Keep scipy's OpenBLAS to one thread when threadpoolctl is installed: on a small,
    busy machine its thread pool makes small GEMMs an order of magnitude slower, and
    two tapes in two threads slower still (correctness is unaffected)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        yield
        return
    with threadpool_limits(1, user_api="blas"):
        yield


def _heavy_graph(seed, n=300, depth=6):
    rng = np.random.default_rng(seed)
    x = fg.tensor(rng.standard_normal((n, n)) / np.sqrt(n), requires_grad=True)
    w = fg.tensor(rng.standard_normal((n, n)) / np.sqrt(n), requires_grad=True)
    h = x
    for _ in range(depth):
        h = (h @ w).tanh()
    return x, w, h.sum()


def test_same_tape_from_two_threads_raises_and_never_corrupts(one_blas_thread):
    x, w, root = _heavy_graph(0)
    tape = fg.lower(root)
    tape.forward()
    expected = root.data.copy()
    tape.backward()
    expected_gw = w.grad.copy()

    start = time.perf_counter()
    tape.forward()
    duration = time.perf_counter() - start

    collisions = 0
    for attempt in range(20):
        inside = threading.Event()
        errors = []

        def worker():
            inside.set()
            try:
                tape.forward()
            except RuntimeError as exc:      # lost the race the other way
                errors.append(exc)

        th = threading.Thread(target=worker)
        th.start()
        inside.wait()
        time.sleep(min(duration / 4, 0.01))
        try:
            tape.forward()
        except RuntimeError as exc:
            errors.append(exc)
        th.join()
        for exc in errors:
            assert "thread" in str(exc) or "re-entrant" in str(exc)
        collisions += len(errors)
        assert len(errors) <= 1
        assert same_bits(root.data, expected)   # whoever ran computed the right thing
        if collisions:
            break
    assert collisions > 0, "no concurrent use was ever detected"

    # forward vs backward at the same time is also refused
    inside = threading.Event()
    errors = []

    def fwd():
        inside.set()
        try:
            tape.forward()
        except RuntimeError as exc:
            errors.append(exc)

    th = threading.Thread(target=fwd)
    th.start()
    inside.wait()
    time.sleep(min(duration / 4, 0.01))
    w.grad = None
    try:
        tape.backward()
    except RuntimeError as exc:
        errors.append(exc)
    th.join()
    # the tape still works and gives the right answers
    w.grad = None
    tape.forward()
    tape.backward()
    assert same_bits(root.data, expected)
    assert same_bits(w.grad, expected_gw)


def test_two_tapes_in_two_threads_give_correct_results(one_blas_thread):
    graphs = [_heavy_graph(seed, n=64, depth=4) for seed in (1, 2)]
    tapes = [fg.lower(root) for _, _, root in graphs]
    expected = []
    for (x, w, root), tape in zip(graphs, tapes):
        tape.forward()
        tape.backward()
        expected.append((root.data.copy(), x.grad.copy(), w.grad.copy()))
        x.grad = w.grad = None

    results = [None, None]
    failures = []

    def run(k):
        x, w, root = graphs[k]
        tape = tapes[k]
        try:
            for _ in range(10):           # an even number of sign flips
                x.data *= -1.0
                x.grad = w.grad = None
                tape.forward()
                tape.backward()
            results[k] = (root.data.copy(), x.grad.copy(), w.grad.copy())
        except Exception as exc:  # pragma: no cover - reported below
            failures.append(exc)

    threads = [threading.Thread(target=run, args=(k,)) for k in range(2)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not failures
    for got, want in zip(results, expected):
        for g, e in zip(got, want):
            assert same_bits(g, e)
