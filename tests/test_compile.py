"""fastgrad.compile: trace once per input signature, replay; data-dependent reads refused."""

import os
import time

import numpy as np
import pytest

import fastgrad as fg
import fastgrad.nn.functional as F


def moons(n=100, seed=1):
    rng = np.random.default_rng(seed)
    t = rng.uniform(0, np.pi, n)
    side = rng.integers(0, 2, n)
    X = np.c_[np.cos(t) + side, np.sin(t) * (1 - 2 * side) + 0.3 * side]
    X += 0.1 * rng.standard_normal(X.shape)
    return X, 2.0 * side - 1.0


def svm_loss(model, X, y, alpha=1e-4):
    """The micrograd demo's loss: hinge + L2."""
    scores = model(X).reshape(-1)
    reg = sum((p * p).sum() for p in model.parameters())
    return F.hinge_loss(scores, y) + alpha * reg


def make_model(seed, nouts=(16, 16, 1), dtype="float64"):
    np.random.seed(seed)
    return fg.nn.MLP(2, list(nouts), dtype=dtype)


# -- compiled == eager ----------------------------------------------------------------


def test_compiled_step_equals_eager_step():
    X, y = moons()
    model = make_model(0)
    step = fg.compile(lambda X, y: svm_loss(model, X, y))

    loss = step(X, y)
    model.zero_grad()
    loss.backward()
    compiled_value = loss.item()
    compiled_grads = [p.grad.copy() for p in model.parameters()]

    model.zero_grad()
    eager = svm_loss(model, fg.tensor(X), fg.tensor(y))
    eager.backward()
    assert compiled_value == eager.item()                       # bitwise
    for g, p in zip(compiled_grads, model.parameters()):
        np.testing.assert_allclose(g, p.grad, rtol=1e-13, atol=1e-16)


def test_compiled_training_equals_eager_training():
    """Two identical models, one trained compiled, one eager: same losses each step
    (the compiled replay sees the optimizer's updates)."""
    X, y = moons()
    a, b = make_model(1), make_model(1)
    opt_a = fg.optim.SGD(a.parameters(), lr=0.1, momentum=0.9)
    opt_b = fg.optim.SGD(b.parameters(), lr=0.1, momentum=0.9)
    step = fg.compile(lambda X, y: svm_loss(a, X, y))
    tX, ty = fg.tensor(X), fg.tensor(y)
    losses = []
    for _ in range(20):
        loss = step(X, y)
        opt_a.zero_grad()
        loss.backward()
        opt_a.step()
        eager = svm_loss(b, tX, ty)
        opt_b.zero_grad()
        eager.backward()
        opt_b.step()
        assert loss.item() == eager.item()
        losses.append(loss.item())
        for p, q in zip(a.parameters(), b.parameters()):
            np.testing.assert_allclose(p.data, q.data, rtol=1e-12, atol=1e-15)
    assert losses[-1] < losses[0]
    assert step.cache_info().traces == 1 and step.cache_info().hits == 19


def test_replay_sees_in_place_and_assigned_data():
    np.random.seed(2)
    lin = fg.nn.Linear(3, 1)
    f = fg.compile(lambda x: lin(x).sum())
    x = np.arange(6.0).reshape(2, 3)

    def expected():
        return (x @ lin.weight.data + lin.bias.data).sum()

    np.testing.assert_allclose(f(x).item(), expected(), rtol=1e-14)
    lin.weight.data[...] = 0.25                         # in place
    np.testing.assert_allclose(f(x).item(), expected(), rtol=1e-14)
    lin.bias.data = np.array([10.0])                    # assignment
    np.testing.assert_allclose(f(x).item(), expected(), rtol=1e-14)
    lin.load_state_dict({"weight": np.ones((3, 1)), "bias": np.zeros(1)})
    assert f(x).item() == x.sum()
    assert f.cache_info().traces == 1


def test_replay_with_new_data_same_shape():
    f = fg.compile(lambda a, b: (a * b + a.exp()).sum())
    rng = np.random.default_rng(0)
    for _ in range(5):
        a, b = rng.standard_normal((3, 4)), rng.standard_normal((3, 4))
        np.testing.assert_allclose(f(a, b).item(), (a * b + np.exp(a)).sum(), rtol=1e-13)
    assert f.cache_info() == (1, 4, 1)


def test_intermediate_results_are_not_frozen():
    """A value computed inside is recomputed on replay (no constant folding of inputs)."""
    f = fg.compile(lambda x: (x.sum() * x).sum())
    for v in [1.0, 2.0, 3.0]:
        x = np.full(4, v)
        assert f(x).item() == (x.sum() * x).sum()


# -- signatures and retracing ---------------------------------------------------------------


def test_retrace_on_new_shape_and_dtype():
    f = fg.compile(lambda x: (x * x).sum())
    assert f(np.ones(3)).item() == 3.0
    assert f(np.ones(3)).item() == 3.0
    assert f.cache_info().traces == 1
    assert f(np.ones(5)).item() == 5.0                         # new shape
    assert f.cache_info().traces == 2
    r = f(np.ones(5, dtype=np.float32))                         # new dtype
    assert r.dtype == np.float32 and r.item() == 5.0
    assert f.cache_info().traces == 3
    assert f(np.ones((5, 1))).item() == 5.0                     # new rank
    info = f.cache_info()
    assert info.traces == 4 and info.hits == 1 and info.misses == 4
    assert f(np.ones(3)).item() == 3.0 and f.cache_info().traces == 4    # old trace reused


def test_cache_clear():
    f = fg.compile(lambda x: x.sum())
    f(np.ones(2))
    f.cache_clear()
    assert f.cache_info().traces == 0
    assert f(np.full(2, 2.0)).item() == 4.0


def test_inputs_as_tensor_numpy_and_nested_lists():
    f = fg.compile(lambda x: (x * 2.0).sum())
    data = [[1.0, 2.0], [3.0, 4.0]]
    assert f(data).item() == 20.0
    assert f(np.array(data)).item() == 20.0
    assert f(fg.tensor(data)).item() == 20.0
    assert f([[0.5, 0.5], [0.5, 0.5]]).item() == 4.0
    assert f(np.asfortranarray(np.array(data))).item() == 20.0      # non-contiguous
    assert f(np.array(data)[:, ::-1]).item() == 20.0


def test_integer_targets_stay_integer():
    seen = []

    def loss_fn(logits, targets):
        seen.append((logits.dtype, targets.dtype))
        return F.cross_entropy(logits, targets)

    f = fg.compile(loss_fn)
    logits = np.array([[2.0, 0.5, -1.0], [0.1, 0.2, 3.0]])
    targets = [0, 2]

    def expected(t):
        z = logits - logits.max(1, keepdims=True)
        logp = z - np.log(np.exp(z).sum(1, keepdims=True))
        return -logp[np.arange(2), t].mean()

    np.testing.assert_allclose(f(logits, targets).item(), expected(targets), rtol=1e-14)
    np.testing.assert_allclose(f(logits, np.array([1, 1], dtype=np.int32)).item(),
                               expected([1, 1]), rtol=1e-14)
    np.testing.assert_allclose(f(logits, fg.tensor([2, 0])).item(), expected([2, 0]),
                               rtol=1e-14)
    assert seen == [(np.float64, np.int64)]       # traced once; targets int64
    with pytest.raises(IndexError, match="out of range"):
        f(logits, [0, 3])


def test_constant_arguments_are_part_of_the_signature():
    f = fg.compile(lambda x, scale, reduce="sum": getattr(x * scale, reduce)())
    x = np.arange(4.0)
    assert f(x, 2.0).item() == 12.0
    assert f(x, 3.0).item() == 18.0
    assert f(x, 3.0, reduce="mean").item() == 4.5
    assert f.cache_info().traces == 3
    assert f(x * 2, 2.0).item() == 24.0 and f.cache_info().traces == 3


def test_keyword_array_arguments():
    f = fg.compile(lambda x, *, w: (x * w).sum())
    assert f(np.ones(3), w=np.arange(3.0)).item() == 3.0
    assert f(np.ones(3), w=np.full(3, 2.0)).item() == 6.0
    assert f.cache_info().traces == 1


def test_no_array_arguments_reads_captured_parameters():
    w = fg.tensor(np.arange(3.0), requires_grad=True)
    f = fg.compile(lambda: (w * w).sum())
    assert f().item() == 5.0
    w.data[...] = 1.0
    assert f().item() == 3.0
    f().backward()
    np.testing.assert_array_equal(w.grad, [2.0, 2.0, 2.0])


# -- outputs ------------------------------------------------------------------------------


def test_tuple_output_both_update_and_backward_works():
    model = make_model(3, nouts=(4, 3))
    f = fg.compile(lambda X, y: (lambda logits: (F.cross_entropy(logits, y), logits))(model(X)))
    rng = np.random.default_rng(1)
    for _ in range(3):
        X, y = rng.standard_normal((5, 2)), rng.integers(0, 3, 5)
        loss, logits = f(X, y)
        h = np.maximum(X @ model[0].weight.data + model[0].bias.data, 0)
        expected_logits = h @ model[2].weight.data + model[2].bias.data
        np.testing.assert_allclose(logits.data, expected_logits, rtol=1e-13, atol=1e-15)
        z = expected_logits - expected_logits.max(1, keepdims=True)
        logp = z - np.log(np.exp(z).sum(1, keepdims=True))
        np.testing.assert_allclose(loss.item(), -logp[np.arange(5), y].mean(), rtol=1e-13)
        model.zero_grad()
        loss.backward()
        # d loss / d bias of the last layer = mean over rows of softmax - onehot
        p = np.exp(logp)
        p[np.arange(5), y] -= 1
        np.testing.assert_allclose(model[2].bias.grad, p.mean(0), rtol=1e-12, atol=1e-15)
    assert f.cache_info().traces == 1


def test_returning_a_non_tensor_is_a_type_error():
    with pytest.raises(TypeError, match="Tensor"):
        fg.compile(lambda x: 3.0)(np.ones(2))


def test_non_scalar_output_needs_a_grad_for_backward():
    x = fg.tensor(np.arange(3.0), requires_grad=True)
    f = fg.compile(lambda x: x * x)
    out = f(x)
    with pytest.raises(RuntimeError, match="grad"):
        out.backward()
    out.backward(np.ones(3))
    np.testing.assert_array_equal(x.grad, [0.0, 2.0, 4.0])


# -- gradients into inputs --------------------------------------------------------------


def test_gradient_flows_into_a_tensor_input():
    c = np.array([1.0, -2.0, 3.0])
    f = fg.compile(lambda x: (x * x * c).sum())
    x = fg.tensor([1.0, 2.0, 3.0], requires_grad=True)
    f(x).backward()
    np.testing.assert_array_equal(x.grad, 2 * c * x.data)
    # replay with another tensor: its own grad; the first one's is untouched
    x2 = fg.tensor([0.5, 0.5, 0.5], requires_grad=True)
    f(x2).backward()
    np.testing.assert_array_equal(x2.grad, 2 * c * 0.5)
    np.testing.assert_array_equal(x.grad, 2 * c * x.data)
    # accumulation into the same input, as in eager mode
    f(x2).backward()
    np.testing.assert_array_equal(x2.grad, 2 * 2 * c * 0.5)
    # a plain array input gets no gradient and needs none
    f(np.ones(3))
    assert f.cache_info().traces == 2       # requires_grad is part of the signature


def test_gradient_into_input_after_grad_set_to_none():
    f = fg.compile(lambda x: (x ** 3).sum())
    x = fg.tensor([1.0, 2.0], requires_grad=True)
    f(x).backward()
    x.grad = None
    f(x).backward()
    np.testing.assert_array_equal(x.grad, [3.0, 12.0])


# -- data-dependent Python is refused while tracing ---------------------------------------


def _while_loop(t):
    n = 0
    while t.sum() > n:              # a data-dependent loop bound
        n += 1
    return n


DATA_DEPENDENT = {
    "bool": lambda t: bool(t.sum()),
    "float": lambda t: float(t.sum()),
    "int": lambda t: int(t.sum()),
    "item": lambda t: t.sum().item(),
    "if": lambda t: 1 if t.sum() > 0 else 0,
    "while": lambda t: _while_loop(t),
    "np.asarray": lambda t: np.asarray(t),
    "numpy": lambda t: t.numpy(),
    "np.exp": lambda t: np.exp(t),
    "compare": lambda t: t <= 1.0,
}


@pytest.mark.parametrize("name", sorted(DATA_DEPENDENT))
def test_data_dependent_construct_raises_tracing_error(name):
    construct = DATA_DEPENDENT[name]

    def fn(x):
        construct(x)
        return x.sum()

    f = fg.compile(fn)
    with pytest.raises(fg.TracingError) as info:
        f(np.ones(3))
    msg = str(info.value)
    assert "compile" in msg and "trac" in msg
    assert "fn" in msg                      # names the compiled function
    assert f.cache_info().traces == 0       # nothing half-traced is kept
    # outside compile the same construct is fine, and tracing state was reset
    construct(fg.tensor(np.ones(3)))


def test_tracing_error_is_a_runtime_error_exported_at_top_level():
    assert issubclass(fg.TracingError, RuntimeError)
    from fastgrad.compile import TracingError
    assert TracingError is fg.TracingError


def test_user_exception_keeps_its_type():
    class Mine(Exception):
        pass

    def boom(x):
        raise Mine("from user code")

    with pytest.raises(Mine, match="from user code"):
        fg.compile(boom)(np.ones(2))

    def lookup(x):
        return {}["missing"]

    with pytest.raises(KeyError):
        fg.compile(lookup)(np.ones(2))


def test_shape_error_while_tracing_is_a_value_error_naming_both_shapes():
    f = fg.compile(lambda a, b: (a + b).sum())
    with pytest.raises(ValueError) as info:
        f(np.ones((2, 3)), np.ones((4, 5)))
    assert "(2, 3)" in str(info.value) and "(4, 5)" in str(info.value)
    assert f(np.ones((2, 3)), np.ones(3)).item() == 12.0       # still usable


def test_wrong_input_shape_for_a_model_names_both_shapes():
    model = make_model(4, nouts=(5, 1))
    f = fg.compile(lambda X: model(X).sum())
    f(np.ones((3, 2)))
    for bad in [np.ones((3, 7)), np.ones(3), np.ones((3, 2, 1))]:
        with pytest.raises(ValueError) as info:
            f(bad)
        assert str(bad.shape) in str(info.value)
        assert "(2, 5)" in str(info.value)          # the weight it must align with


def test_nested_compiled_functions_inline():
    inner = fg.compile(lambda x: (x * x).sum())
    outer = fg.compile(lambda x: inner(x) * 2.0)
    assert outer(np.arange(3.0)).item() == 10.0
    assert outer(np.ones(3)).item() == 6.0
    assert inner.cache_info().traces == 0


def test_decorator_forms_and_repr():
    @fg.compile
    def step(x):
        """doc"""
        return x.sum()

    assert step.__doc__ == "doc" and step.__name__ == "step"
    assert "step" in repr(step)
    with pytest.raises(TypeError):
        fg.compile(42)


# -- the micrograd-demo model --------------------------------------------------------------


def test_first_call_of_the_demo_model_traces_and_lowers():
    """MLP 2-16-16-1 on 100 points: the first call traces and lowers (its time is
    reported, not asserted); later calls replay."""
    X, y = moons(100)
    model = make_model(5)
    step = fg.compile(lambda X, y: svm_loss(model, X, y))
    start = time.perf_counter()
    loss = step(X, y)
    elapsed_ms = 1e3 * (time.perf_counter() - start)
    print(f"first call (trace + lower) of the 2-16-16-1 demo model: {elapsed_ms:.2f} ms")
    assert step.cache_info().traces == 1
    assert np.isfinite(loss.item())
    loss.backward()
    assert all(p.grad.any() for p in model.parameters())


def test_demo_model_learns_the_moons():
    X, y = moons(100)
    model = make_model(6)
    opt = fg.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    step = fg.compile(lambda X, y: svm_loss(model, X, y))
    for _ in range(300):
        loss = step(X, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    scores = model(fg.tensor(X)).data.reshape(-1)
    assert ((scores > 0) == (y > 0)).mean() >= 0.95


def _rss_bytes():
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        import resource

        scale = 1 if os.uname().sysname == "Darwin" else 1024
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


def test_rss_stays_flat_over_replayed_steps():
    X, y = moons(100)
    model = make_model(7)
    opt = fg.optim.SGD(model.parameters(), lr=0.05)
    step = fg.compile(lambda X, y: svm_loss(model, X, y))

    def train(n):
        for _ in range(n):
            loss = step(X, y)
            opt.zero_grad()
            loss.backward()
            opt.step()

    train(1000)                                   # warm up allocator and caches
    before = _rss_bytes()
    train(20_000)
    growth = _rss_bytes() - before
    print(f"RSS growth over 20000 replayed steps: {growth / 1024:.0f} KiB")
    assert growth < 2 * 1024 * 1024
    assert step.cache_info().traces == 1


def test_unhashable_constant_argument_is_refused():
    # A dict cannot be part of a signature by value, and keying it by id()
    # would replay a stale trace once a new dict reuses a freed id.
    f = fg.compile(lambda x, cfg: (x * cfg["alpha"]).sum())
    with pytest.raises(TypeError, match="hashable"):
        f(np.ones(2), {"alpha": 0.1})


def test_hashable_constants_are_part_of_the_signature():
    f = fg.compile(lambda x, alpha: (x * alpha).sum())
    x = np.ones(2)
    assert f(x, 0.1).item() == 0.2
    assert f(x, 0.5).item() == 1.0
    assert f.cache_info().traces == 2


def test_trace_cache_is_bounded():
    f = fg.compile(max_traces=3)(lambda x, alpha: (x * alpha).sum())
    for k in range(10):
        assert f(np.ones(2), float(k)).item() == 2.0 * k
    assert f.cache_info().traces == 3
    assert f(np.ones(2), 9.0).item() == 18.0     # the newest is still cached
