"""fastgrad.micrograd: micrograd's API on the compiled Value, with a parameter arena."""

import math
import random

import numpy as np
import pytest

import fastgrad as fg
from fastgrad.micrograd import MLP, Layer, Module, Neuron, ParameterArena, Value

micrograd_engine = pytest.importorskip("micrograd.engine")
micrograd_nn = pytest.importorskip("micrograd.nn")


def moons_like(n=24, seed=0):
    rng = np.random.default_rng(seed)
    t = rng.uniform(0, np.pi, n)
    side = rng.integers(0, 2, n)
    X = np.c_[np.cos(t) + side, np.sin(t) * (1 - 2 * side) + 0.3 * side]
    y = 2.0 * side - 1.0
    return X, y


def demo_loss(model, X, y, value_type, alpha=1e-4):
    """micrograd's demo loss, written exactly as its notebook does."""
    inputs = [list(map(value_type, row.tolist())) for row in X]
    scores = list(map(model, inputs))
    losses = [(1 + -yi * scorei).relu() for yi, scorei in zip(y.tolist(), scores)]
    data_loss = sum(losses) * (1.0 / len(losses))
    reg_loss = alpha * sum(p * p for p in model.parameters())
    return data_loss + reg_loss, scores


def test_same_weights_as_micrograd_after_same_seed():
    random.seed(7)
    ours = MLP(3, [4, 4, 1])
    random.seed(7)
    theirs = micrograd_nn.MLP(3, [4, 4, 1])
    assert [p.data for p in ours.parameters()] == [p.data for p in theirs.parameters()]
    assert repr(ours) == repr(theirs)
    assert len(ours.parameters()) == 3 * 4 + 4 + 4 * 4 + 4 + 4 + 1


def test_neuron_and_layer_signatures():
    random.seed(0)
    n = Neuron(3, nonlin=False)
    assert repr(n) == "LinearNeuron(3)"
    layer = Layer(2, 1, nonlin=False)
    out = layer([1.0, 2.0])
    assert isinstance(out, Value)  # one neuron: a Value, not a list
    layer2 = Layer(2, 3)
    assert len(layer2([1.0, 2.0])) == 3


def test_training_matches_micrograd_step_for_step():
    X, y = moons_like()
    random.seed(1337)
    ours = MLP(2, [8, 8, 1])
    random.seed(1337)
    theirs = micrograd_nn.MLP(2, [8, 8, 1])
    for k in range(3):
        loss_o, _ = demo_loss(ours, X, y, Value)
        loss_t, _ = demo_loss(theirs, X, y, micrograd_engine.Value)
        if k == 0:
            # Same weights, same expression shape: the forward pass rounds
            # exactly as micrograd's.
            assert loss_o.data == loss_t.data
        else:
            # Gradients agree to rounding only (the order in which a shared
            # node's contributions are summed differs), so after an update
            # the weights, and the loss, agree to rounding.
            assert loss_o.data == pytest.approx(loss_t.data, rel=1e-12)
        ours.zero_grad()
        theirs.zero_grad()
        loss_o.backward()
        loss_t.backward()
        for po, pt in zip(ours.parameters(), theirs.parameters()):
            assert po.grad == pytest.approx(pt.grad, rel=1e-12, abs=1e-15)
        lr = 1.0 - 0.9 * k / 100
        for p in theirs.parameters():
            p.data -= lr * p.grad
        data = ours.parameters_data()
        data -= lr * ours.parameters_grad()
        for po, pt in zip(ours.parameters(), theirs.parameters()):
            assert po.data == pytest.approx(pt.data, rel=1e-12, abs=1e-14)


def test_tape_replay_training_equals_eager_training():
    X, y = moons_like(seed=3)
    random.seed(5)
    eager = MLP(2, [6, 1])
    random.seed(5)
    replayed = MLP(2, [6, 1])
    loss_r, scores_r = demo_loss(replayed, X, y, Value)
    tape = fg.lower(loss_r)
    data_r, grad_r = replayed.parameters_data(), replayed.parameters_grad()
    data_e, grad_e = eager.parameters_data(), eager.parameters_grad()
    for k in range(5):
        loss_e, scores_e = demo_loss(eager, X, y, Value)
        eager.zero_grad()
        loss_e.backward()
        value = tape.forward()
        replayed.zero_grad()
        tape.backward()
        assert value == loss_e.data
        assert loss_r.data == loss_e.data
        # Scores are intermediates with their own instruction: they follow the tape.
        assert [s.data for s in scores_r] == [s.data for s in scores_e]
        np.testing.assert_allclose(grad_r, grad_e, rtol=1e-12, atol=1e-15)
        data_e -= 0.1 * grad_e
        data_r -= 0.1 * grad_r


def test_arena_is_the_parameters_home():
    random.seed(1)
    model = MLP(2, [3, 1])
    params = model.parameters()
    data, grad = model.parameters_data(), model.parameters_grad()
    assert data.shape == grad.shape == (len(params),)
    assert data.dtype == np.float64 and data.flags.c_contiguous
    data[0] = 42.0
    assert params[0].data == 42.0
    params[1].data = -7.5
    assert data[1] == -7.5
    params[2].grad = 3.0
    assert grad[2] == 3.0
    model.zero_grad()
    assert not grad.any()
    assert all(p.grad == 0.0 for p in params)


def test_submodules_share_the_parent_arena():
    random.seed(2)
    model = MLP(2, [3, 2])
    layer = model.layers[1]
    sub = layer.parameters_data()
    assert np.shares_memory(sub, model.parameters_data())
    sub[:] = 0.5
    assert all(p.data == 0.5 for p in layer.parameters())
    for p in model.parameters():
        p.grad = 1.0
    layer.zero_grad()
    assert all(p.grad == 0.0 for p in layer.parameters())
    assert all(p.grad == 1.0 for p in model.layers[0].parameters())


def test_custom_module_packs_on_first_use_and_retires_old_arenas():
    class Net(Module):
        def __init__(self):
            self.a = Layer(2, 2)
            self.b = Neuron(2, nonlin=False)

        def __call__(self, x):
            return self.b(self.a(x))

        def parameters(self):
            return self.a.parameters() + self.b.parameters()

    random.seed(3)
    net = Net()
    data = net.parameters_data()
    assert data.shape == (9,)
    data[:] = np.arange(9.0)
    assert [p.data for p in net.parameters()] == list(np.arange(9.0))
    # The layer's own arena no longer holds its parameters: it must not be
    # used (zero_grad falls back to the parameters themselves).
    for p in net.parameters():
        p.grad = 2.0
    net.a.zero_grad()
    assert all(p.grad == 0.0 for p in net.a.parameters())
    assert all(p.grad == 2.0 for p in net.b.parameters())


def test_arena_update_seen_by_existing_tape():
    random.seed(4)
    n = Neuron(2, nonlin=False)
    x = [Value(1.0), Value(2.0)]
    out = n(x)
    tape = fg.lower(out)
    n.parameters_data()[:] = [1.0, 10.0, 100.0]  # w0, w1, b
    assert tape.forward() == 1.0 * 1.0 + 10.0 * 2.0 + 100.0


def test_arena_rejects_bad_parameters():
    with pytest.raises(TypeError, match="not a Value"):
        ParameterArena([Value(1.0), 2.0])
    v = Value(1.0)
    with pytest.raises(ValueError, match="twice"):
        ParameterArena([v, v])
    w = Value(1.0) + 1
    with pytest.raises(ValueError, match="only a leaf"):
        ParameterArena([w])


def test_module_without_parameters():
    m = Module()
    assert m.parameters() == []
    m.zero_grad()
    assert m.parameters_data().shape == (0,)


def test_model_is_freed():
    import gc
    import weakref

    random.seed(0)
    model = MLP(2, [4, 1])
    ref = weakref.ref(model)
    arena_buffer = weakref.ref(model._arena.buffer) if hasattr(model._arena.buffer, "__weakref__") else None
    del model
    gc.collect()
    assert ref() is None
    # numpy arrays do not support weak references on every version; when
    # they do, the arena's buffer must go with the model.
    if arena_buffer is not None:
        assert arena_buffer() is None


def test_exports():
    import fastgrad.micrograd as m

    assert m.Value is fg.Value
    assert set(m.__all__) >= {"Value", "Module", "Neuron", "Layer", "MLP"}
    assert math.isclose(Value(2.0).tanh().data, math.tanh(2.0))
