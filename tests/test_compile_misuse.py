"""fastgrad.compile against what a user may do between a call and its backward.

Array arguments are copied into the trace when the reverse sweep reads them,
a result refuses its backward once a later call replayed its tape, and a
Tensor argument that requires grad gets its gradient as in eager mode
(a non-leaf passes it on through its own graph).
"""

import threading

import numpy as np
import pytest

import fastgrad as fg
import fastgrad.nn.functional as F


def params(seed=0, shape=(3, 2)):
    rng = np.random.default_rng(seed)
    return fg.tensor(rng.standard_normal(shape), requires_grad=True, label="W")


def loss_of(W):
    """A loss whose gradient in W reads both inputs' data: X through the matmul,
    y through the product."""
    return lambda X, y: ((X @ W).tanh() * y).sum()


def eager_grad(fn, W, *args):
    """W's gradient from the same function run eagerly on fresh copies of args
    (W.grad is left as it was)."""
    keep, W.grad = W.grad, None
    fn(*[fg.tensor(np.array(a)) for a in args]).backward()
    g, W.grad = W.grad, keep
    return g


def finite_difference(value, W, eps=1e-6):
    """d value() / d W by central differences, W.data perturbed in place."""
    grad = np.zeros_like(W.data)
    for i in np.ndindex(W.data.shape):
        keep = W.data[i]
        W.data[i] = keep + eps
        up = value()
        W.data[i] = keep - eps
        down = value()
        W.data[i] = keep
        grad[i] = (up - down) / (2 * eps)
    return grad


# -- inputs changed between a call and its backward ----------------------------------


def _as_numpy(X, y):
    return (X, y), (X, y)


def _as_float32(X, y):
    X, y = X.astype(np.float32), y.astype(np.float32)
    return (X, y), (X, y)


def _as_tensors(X, y):
    tX, ty = fg.tensor(X), fg.tensor(y)
    return (tX, ty), (tX.data, ty.data)


KINDS = {"numpy float64": _as_numpy, "numpy float32": _as_float32, "tensors": _as_tensors}


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_input_mutated_in_place_before_backward_keeps_the_forward_gradient(kind):
    W = params(1)
    if kind == "numpy float32":
        W = fg.tensor(W.data.astype(np.float32), requires_grad=True)
    f = fg.compile(loss_of(W))
    rng = np.random.default_rng(2)
    for step in range(3):                      # the trace, then replays
        X, y = rng.standard_normal((4, 3)), rng.standard_normal((4, 2))
        args, arrays = KINDS[kind](X, y)
        at_forward = [a.copy() for a in arrays]
        loss = f(*args)
        for a in arrays:                       # X[0, 0] = 99, and y too
            a[0, 0] = 99
        W.grad = None
        loss.backward()
        expected = eager_grad(loss_of(W), W, *at_forward)
        rtol = 1e-5 if kind == "numpy float32" else 1e-12
        np.testing.assert_allclose(W.grad, expected, rtol=rtol)
        assert not np.allclose(expected, eager_grad(loss_of(W), W, *arrays))
    assert f.cache_info().traces == 1


def test_batch_buffer_refilled_before_backward_keeps_the_forward_gradient():
    W = params(3)
    f = fg.compile(loss_of(W))
    rng = np.random.default_rng(4)
    batches = [(rng.standard_normal((4, 3)), rng.standard_normal((4, 2))) for _ in range(4)]
    X, y = np.empty((4, 3)), np.empty((4, 2))   # one buffer, refilled each step
    X[...], y[...] = batches[0]
    for k in range(3):
        loss = f(X, y)
        X[...], y[...] = batches[k + 1]        # prefetch the next batch early
        W.grad = None
        loss.backward()
        np.testing.assert_allclose(W.grad, eager_grad(loss_of(W), W, *batches[k]),
                                   rtol=1e-12)


def test_input_given_as_keyword_mutated_before_backward_keeps_the_forward_gradient():
    W = params(5)
    f = fg.compile(lambda X, *, y: loss_of(W)(X, y))
    rng = np.random.default_rng(6)
    X, y = rng.standard_normal((4, 3)), rng.standard_normal((4, 2))
    y0 = y.copy()
    f(X, y=y)
    loss = f(X, y=y)
    y *= -3.0
    W.grad = None
    loss.backward()
    np.testing.assert_allclose(W.grad, eager_grad(loss_of(W), W, X, y0), rtol=1e-12)


@pytest.mark.parametrize("dtype", [np.float64, np.int64])
def test_input_reaching_the_matmul_through_a_reshape_mutated_before_backward(dtype):
    W = params(24)
    fn = lambda x: ((x.reshape(4, 3) @ W) ** 2).sum()   # noqa: E731
    f = fg.compile(fn)
    x = np.arange(12).astype(dtype)            # int64: through a cast as well
    f(x)
    loss = f(x)
    x0 = x.copy()
    x[...] = 5
    W.grad = None
    loss.backward()
    np.testing.assert_allclose(W.grad, eager_grad(fn, W, x0), rtol=1e-12)


def test_input_resized_before_backward_is_not_read():
    W = params(7)
    f = fg.compile(loss_of(W))
    rng = np.random.default_rng(8)
    X, y = rng.standard_normal((4, 3)), rng.standard_normal((4, 2))
    X0 = X.copy()
    f(X, y)
    loss = f(X, y)
    X.resize((50_000, 3), refcheck=False)      # moves (and frees) X's old data
    X[...] = 7.0
    W.grad = None
    loss.backward()
    np.testing.assert_allclose(W.grad, eager_grad(loss_of(W), W, X0, y), rtol=1e-12)


def test_cross_entropy_targets_mutated_before_backward_keep_the_forward_gradient():
    np.random.seed(9)
    model = fg.nn.MLP(3, [4, 3])
    f = fg.compile(lambda X, t: F.cross_entropy(model(X), t))
    rng = np.random.default_rng(10)
    X, t = rng.standard_normal((5, 3)), rng.integers(0, 3, 5)
    t0 = t.copy()
    f(X, t)
    loss = f(X, t)
    t[...] = (t0 + 1) % 3                      # other, valid targets
    model.zero_grad()
    loss.backward()
    got = [p.grad.copy() for p in model.parameters()]
    model.zero_grad()
    F.cross_entropy(model(fg.tensor(X)), fg.tensor(t0)).backward()
    for g, p in zip(got, model.parameters()):
        np.testing.assert_allclose(g, p.grad, rtol=1e-12, atol=1e-15)


def test_grad_input_mutated_in_place_before_backward_keeps_the_forward_gradient():
    c = np.array([1.0, -2.0, 3.0])
    f = fg.compile(lambda x: (x * x * c).sum())
    x = fg.tensor([1.0, 2.0, 3.0], requires_grad=True)
    f(x)
    x.grad = None
    loss = f(x)
    x.data[...] = 7.0
    loss.backward()
    np.testing.assert_array_equal(x.grad, 2 * c * np.array([1.0, 2.0, 3.0]))


def test_grad_input_set_to_none_between_call_and_backward_still_gets_its_gradient():
    f = fg.compile(lambda x: (x ** 3).sum())
    x = fg.tensor([1.0, 2.0], requires_grad=True)
    for _ in range(3):
        loss = f(x)
        x.grad = None                          # e.g. opt.zero_grad(set_to_none)
        loss.backward()
        np.testing.assert_array_equal(x.grad, [3.0, 12.0])


def test_grad_input_reshaped_before_backward_raises_naming_the_input():
    def step(scale, x):
        return (x * x).sum() * scale

    f = fg.compile(step)
    x = fg.tensor([1.0, 2.0], requires_grad=True)
    loss = f(2.0, x)
    x.data = np.zeros(3)                       # another shape: a new array
    with pytest.raises(RuntimeError,
                       match=r"input 1 \('x'\) of .*step changed since the forward of this "
                             r"call: its data now has shape \(3,\)"):
        loss.backward()
    assert not x.grad.any()                    # nothing was accumulated


def test_grad_input_no_longer_requiring_grad_before_backward_raises():
    f = fg.compile(lambda x: (x * x).sum())
    x = fg.tensor([1.0, 2.0], requires_grad=True)
    loss = f(x=x)
    x.requires_grad = False
    with pytest.raises(RuntimeError,
                       match=r"input 'x' of .* changed since the forward of this call: "
                             r"it no longer requires grad"):
        loss.backward()


# -- a result whose tape a later call replayed ------------------------------------------


def test_backward_of_a_result_replayed_by_a_later_call_raises():
    W = params(11)
    f = fg.compile(loss_of(W))
    rng = np.random.default_rng(12)
    X1, X2, y = rng.standard_normal((4, 3)), rng.standard_normal((4, 3)), np.ones((4, 2))
    first = f(X1, y)
    second = f(X2, y)
    assert first is not second
    W.grad = None
    with pytest.raises(RuntimeError, match="replayed by a later call.*call backward "
                                           "before the next call"):
        first.backward()
    assert W.grad is None or not W.grad.any()  # nothing was accumulated
    second.backward()
    np.testing.assert_allclose(W.grad, eager_grad(loss_of(W), W, X2, y), rtol=1e-12)


def test_results_of_two_signatures_keep_their_own_backward():
    W = params(13)
    f = fg.compile(loss_of(W))
    rng = np.random.default_rng(14)
    Xa, ya = rng.standard_normal((4, 3)), rng.standard_normal((4, 2))
    Xb, yb = rng.standard_normal((6, 3)), rng.standard_normal((6, 2))
    a = f(Xa, ya)
    b = f(Xb, yb)                              # another signature: another tape
    W.grad = None
    a.backward()
    np.testing.assert_allclose(W.grad, eager_grad(loss_of(W), W, Xa, ya), rtol=1e-12)
    W.grad = None
    b.backward()
    np.testing.assert_allclose(W.grad, eager_grad(loss_of(W), W, Xb, yb), rtol=1e-12)


def test_failed_replay_invalidates_earlier_results():
    np.random.seed(15)
    model = fg.nn.MLP(3, [3])
    f = fg.compile(lambda X, t: F.cross_entropy(model(X), t))
    X = np.ones((2, 3))
    loss = f(X, np.array([0, 1]))
    with pytest.raises(IndexError, match="out of range"):
        f(X, np.array([0, 5]))
    with pytest.raises(RuntimeError, match="replayed by a later call"):
        loss.backward()


def test_each_call_returns_new_result_tensors_of_the_same_container_type():
    f = fg.compile(lambda x: ((x * 2.0).sum(), x * 3.0))
    g = fg.compile(lambda x: [(x * 2.0).sum(), x * 3.0])
    x = np.arange(3.0)
    a, b = f(x), f(x)
    assert type(a) is tuple and type(g(x)) is list
    assert a[0] is not b[0] and a[1] is not b[1]
    assert a[0].item() == 6.0 and np.array_equal(b[1].data, 3.0 * x)
    b[0].backward()                            # the latest call's result still works


# -- non-leaf tensor arguments ---------------------------------------------------------


GRAPHS = {
    # name: (arguments built from W0, the compiled function)
    "scaled": (lambda W0: (W0 * 2.0,), lambda h: (h * h).sum()),
    "matmul": (lambda W0: (np.arange(6.0).reshape(2, 3) @ W0,),
               lambda h: (h.tanh() * h).sum()),
    "chain": (lambda W0: ((W0 * W0).tanh() + W0,), lambda h: (h.exp() * 0.5).mean()),
    "two sharing W0": (lambda W0: (W0 * 2.0, W0.sigmoid()),
                       lambda h, k: ((h * k).sum() + (k * k).sum())),
    "same twice": (lambda W0: ((W0 + 1.0).tanh(),) * 2, lambda h, k: (h * k * h).sum()),
    "leaf and non-leaf": (lambda W0: (W0, W0 * W0), lambda w, h: (w * h + h).sum()),
}


@pytest.mark.parametrize("name", sorted(GRAPHS))
def test_non_leaf_argument_propagates_the_gradient_as_eager_mode(name):
    build, fn = GRAPHS[name]
    W0 = params(16)
    f = fg.compile(fn)
    for step in range(3):                      # the trace, then replays
        W0.data[...] += 0.1 * step
        W0.grad = None
        fn(*build(W0)).backward()
        eager = W0.grad.copy()
        W0.grad = None
        f(*build(W0)).backward()
        np.testing.assert_allclose(W0.grad, eager, rtol=1e-12, atol=1e-15)
        with fg.no_grad():
            numeric = finite_difference(lambda: fn(*build(W0)).item(), W0)
        np.testing.assert_allclose(W0.grad, numeric, rtol=1e-6, atol=1e-8)
    assert f.cache_info().traces == 1


def test_non_leaf_argument_with_captured_parameters():
    W0, V = params(17), params(18, shape=(2, 2))
    fn = lambda h: ((h @ V).relu() * h.sum()).sum()   # noqa: E731
    f = fg.compile(fn)
    for _ in range(2):
        W0.grad = V.grad = None
        fn(W0 * 3.0).backward()
        eager = W0.grad.copy(), V.grad.copy()
        W0.grad = V.grad = None
        f(W0 * 3.0).backward()
        np.testing.assert_allclose(W0.grad, eager[0], rtol=1e-12)
        np.testing.assert_allclose(V.grad, eager[1], rtol=1e-12)


def test_non_leaf_argument_of_a_non_scalar_result():
    W0 = params(19)
    f = fg.compile(lambda h: h.tanh() * 2.0)
    seed = np.arange(6.0).reshape(3, 2)
    W0.grad = None
    ((W0 * W0).tanh() * 2.0).backward(seed)
    eager = W0.grad.copy()
    W0.grad = None
    f(W0 * W0).backward(seed)
    np.testing.assert_allclose(W0.grad, eager, rtol=1e-12)


def test_output_of_one_compiled_function_passed_into_another():
    W0 = params(20)
    inner = fg.compile(lambda w: (w * w).tanh())
    outer = fg.compile(lambda h: (h * h).sum())
    for _ in range(3):
        W0.data[...] *= 1.1
        W0.grad = None
        outer(inner(W0)).backward()
        expected = W0.grad.copy()
        W0.grad = None
        h = (W0 * W0).tanh()
        (h * h).sum().backward()
        np.testing.assert_allclose(expected, W0.grad, rtol=1e-12)
    assert inner.cache_info().traces == 1 and outer.cache_info().traces == 1


def test_non_leaf_argument_without_grad_stays_without_grad():
    W0 = params(21)
    f = fg.compile(lambda h: (h * h).sum())
    with fg.no_grad():
        h = W0 * 2.0
    assert not h.requires_grad
    f(h).backward()
    assert W0.grad is None


def test_result_passed_back_into_its_own_replayed_tape_raises_before_accumulating():
    W0, V = params(22, shape=(2,)), params(23, shape=(2,))
    f = fg.compile(lambda x: (x * x * V).tanh())
    y = f(W0)
    z = f(y)                                   # same signature: replays y's tape
    V.grad = None
    with pytest.raises(RuntimeError, match=r"input 0 \('x'\) of .* is a result of .* whose "
                                           r"tape has been replayed by a later call"):
        z.backward(np.ones(2))
    assert V.grad is None or not V.grad.any()


# -- threads -----------------------------------------------------------------------------


def test_call_while_a_backward_of_the_same_trace_runs_in_another_thread_raises():
    entered, release = threading.Event(), threading.Event()

    class Waiting(fg.Tensor):
        """A non-leaf whose backward pauses: the compiled backward is mid-way."""
        __slots__ = ()

        def backward(self, grad=None):
            entered.set()
            release.wait(10)
            super().backward(grad)

    W0 = params(25)
    f = fg.compile(lambda h: (h * h).sum())
    h = W0 * 2.0
    h.__class__ = Waiting
    loss = f(h)
    errors = []

    def run():
        try:
            loss.backward()
        except Exception as exc:            # reported below
            errors.append(exc)

    worker = threading.Thread(target=run)
    worker.start()
    try:
        assert entered.wait(10)
        with pytest.raises(RuntimeError, match="already running with this signature"):
            f(W0 * 3.0)
    finally:
        release.set()
        worker.join(10)
    assert not errors
    np.testing.assert_allclose(W0.grad, 8.0 * W0.data, rtol=1e-12)
    f(W0 * 3.0).backward()                  # free again once the backward is done


# -- a compiled result inside a further eager graph ----------------------------------------

def _f_and_params(seed=5):
    rng = np.random.default_rng(seed)
    W = fg.tensor(rng.standard_normal((3, 2)), requires_grad=True, label="W")

    def body(X):
        return ((X @ W).tanh() ** 2).sum()

    return W, body, fg.compile(body), rng


def test_compiled_result_used_in_an_eager_expression_backpropagates_as_eager():
    W, body, f, rng = _f_and_params()
    X = rng.standard_normal((4, 3))
    f(X)                                        # trace
    loss = f(X) * 3.0 + (W * W).sum()
    W.grad = None
    loss.backward()
    compiled = W.grad.copy()
    W.grad = None
    (body(fg.tensor(X)) * 3.0 + (W * W).sum()).backward()
    np.testing.assert_allclose(compiled, W.grad, rtol=1e-12)
    # central differences
    w0 = W.data.copy()

    def value(w):
        return float(3.0 * (np.tanh(X @ w) ** 2).sum() + (w * w).sum())

    numeric = np.zeros_like(w0)
    for idx in np.ndindex(*w0.shape):
        up, down = w0.copy(), w0.copy()
        up[idx] += 1e-6
        down[idx] -= 1e-6
        numeric[idx] = (value(up) - value(down)) / 2e-6
    np.testing.assert_allclose(compiled, numeric, rtol=1e-6, atol=1e-8)


def test_two_calls_of_one_trace_in_one_eager_graph_raise_instead_of_mixing_values():
    W, body, f, rng = _f_and_params()
    r1 = f(rng.standard_normal((4, 3)))
    r2 = f(rng.standard_normal((4, 3)))
    with pytest.raises(RuntimeError, match="replayed by a later call"):
        (r1 + r2).backward()


def test_compiled_result_of_a_non_leaf_argument_inside_an_eager_graph():
    W, body, f, rng = _f_and_params()
    X0 = fg.tensor(rng.standard_normal((4, 3)), requires_grad=True)
    h = X0 * 2.0
    f(h)                                        # trace
    (f(h) * 0.5).backward()
    compiled = (W.grad.copy(), X0.grad.copy())
    W.grad = X0.grad = None
    (body(X0 * 2.0) * 0.5).backward()
    np.testing.assert_allclose(compiled[0], W.grad, rtol=1e-12)
    np.testing.assert_allclose(compiled[1], X0.grad, rtol=1e-12)


def test_second_result_backward_after_a_later_call_raises():
    rng = np.random.default_rng(6)
    W = fg.tensor(rng.standard_normal((3, 2)), requires_grad=True)

    @fg.compile
    def f(X):
        h = X @ W
        return (h * h).sum(), h.tanh().sum()

    X1 = rng.standard_normal((4, 3))
    f(X1)
    loss, other = f(X1)
    W.grad = None
    other.backward()
    expected = X1.T @ (1 - np.tanh(X1 @ W.data) ** 2)
    np.testing.assert_allclose(W.grad, expected, rtol=1e-12)
    loss2, other2 = f(rng.standard_normal((4, 3)))
    with pytest.raises(RuntimeError, match="replayed by a later call"):
        other.backward()
    with pytest.raises(RuntimeError, match="replayed by a later call"):
        (other * 2.0).backward()
