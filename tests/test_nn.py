"""fastgrad.nn: Module bookkeeping, Linear/MLP/Sequential, state dicts, parameter arenas."""

import math
from collections import OrderedDict

import numpy as np
import pytest

import fastgrad as fg
import fastgrad.nn.functional as F
from fastgrad.nn import (MLP, Identity, Linear, Module, Parameter, ReLU, Sequential, Sigmoid,
                         Tanh)
from fastgrad.nn.arena import arena_of


class Block(Module):
    def __init__(self):
        super().__init__()
        self.a = Linear(2, 3)
        self.act = ReLU()
        self.b = Sequential(Linear(3, 3), Tanh())

    def forward(self, x):
        return self.b(self.act(self.a(x)))


class Net(Module):
    def __init__(self):
        super().__init__()
        self.first = Block()
        self.scale = Parameter(np.ones(1))
        self.head = Linear(3, 1)

    def forward(self, x):
        return self.head(self.first(x)) * self.scale


# -- registration and traversal --------------------------------------------------------


def test_registration_of_parameters_and_submodules():
    class M(Module):
        def __init__(self):
            super().__init__()
            self.w = Parameter(np.zeros(2))
            self.const = fg.tensor(np.ones(2))          # no grad: not a parameter
            self.lin = Linear(2, 2)
            self.number = 3

    m = M()
    assert list(m._parameters) == ["w"]
    assert list(m._modules) == ["lin"]
    assert [n for n, _ in m.named_parameters()] == ["w", "lin.weight", "lin.bias"]
    m.w = None                                           # re-assigning unregisters
    assert [n for n, _ in m.named_parameters()] == ["lin.weight", "lin.bias"]
    del m.lin
    assert m.parameters() == []


def test_assigning_before_super_init_is_a_clear_error():
    class Bad(Module):
        def __init__(self):
            self.w = Parameter(np.zeros(2))
            super().__init__()

    with pytest.raises(AttributeError, match="super"):
        Bad()


def test_named_parameters_order():
    net = Net()
    names = [n for n, _ in net.named_parameters()]
    # as PyTorch: module by module (self, then depth-first), each module's own
    # parameters in registration order
    assert names == ["scale", "first.a.weight", "first.a.bias", "first.b.0.weight",
                     "first.b.0.bias", "head.weight", "head.bias"]
    assert [p for _, p in net.named_parameters()] == net.parameters()
    assert net.parameters()[1] is net.first.a.weight
    assert net.parameters()[-1] is net.head.bias


def test_modules_order_is_self_then_depth_first():
    net = Net()
    mods = list(net.modules())
    expected = [net, net.first, net.first.a, net.first.act, net.first.b, net.first.b[0],
                net.first.b[1], net.head]
    assert len(mods) == len(expected) and all(a is b for a, b in zip(mods, expected))
    assert [n for n, _ in net.named_modules()] == ["", "first", "first.a", "first.act",
                                                   "first.b", "first.b.0", "first.b.1", "head"]
    assert list(net.children()) == [net.first, net.head]


def test_shared_module_and_parameter_counted_once():
    class Tied(Module):
        def __init__(self):
            super().__init__()
            self.enc = Linear(2, 2)
            self.dec = self.enc

    t = Tied()
    assert len(t.parameters()) == 2
    assert len(list(t.modules())) == 2


def test_deep_module_nesting_is_not_recursive():
    class Deep(Module):
        def __init__(self, n):
            super().__init__()
            m = Linear(1, 1)
            for _ in range(n):
                m = Sequential(m)
            self.body = m

    deep = Deep(5000)                      # deeper than Python's recursion limit
    assert len(list(deep.modules())) == 5002
    assert len(deep.parameters()) == 2
    deep.zero_grad()
    assert len(deep.state_dict()) == 2


# -- zero_grad -------------------------------------------------------------------------


def test_zero_grad_in_place():
    net = Net()
    grads = [p.grad for p in net.parameters()]
    for g in grads:
        g[...] = 3.0
    net.zero_grad()
    for p, g in zip(net.parameters(), grads):
        assert p.grad is g
        assert not g.any()


def test_zero_grad_after_grads_replaced():
    net = Linear(2, 2)
    net.weight.grad = np.ones((2, 2))
    net.bias.grad = None
    net.zero_grad()
    np.testing.assert_array_equal(net.weight.grad, 0)
    np.testing.assert_array_equal(net.bias.grad, 0)


def test_zero_grad_set_to_none():
    net = Net()
    net.zero_grad(set_to_none=True)
    assert all(p.grad is None for p in net.parameters())
    net(fg.tensor(np.ones((1, 2)))).sum().backward()
    assert all(p.grad is not None and p.grad.shape == p.shape for p in net.parameters())


def test_backward_accumulates_and_zero_grad_resets():
    np.random.seed(0)
    lin = Linear(2, 1)
    x = fg.tensor([[1.0, 2.0]])
    lin(x).sum().backward()
    lin(x).sum().backward()
    np.testing.assert_array_equal(lin.weight.grad, [[2.0], [4.0]])
    lin.zero_grad()
    lin(x).sum().backward()
    np.testing.assert_array_equal(lin.weight.grad, [[1.0], [2.0]])


def test_zero_grad_covers_parameters_added_after_construction():
    lin = Linear(2, 3)
    lin.extra = Parameter(np.ones(2))
    lin.extra.grad = np.ones(2)
    lin.zero_grad()
    np.testing.assert_array_equal(lin.extra.grad, 0)


# -- state dicts -----------------------------------------------------------------------


def test_state_dict_keys_values_and_copies():
    net = Net()
    sd = net.state_dict()
    assert isinstance(sd, OrderedDict)
    assert list(sd) == [n for n, _ in net.named_parameters()]
    for (_, p), arr in zip(net.named_parameters(), sd.values()):
        np.testing.assert_array_equal(arr, p.data)
        assert not np.shares_memory(arr, p.data)
    sd["scale"][...] = 42.0
    assert net.scale.data[0] == 1.0


def test_state_dict_round_trip_in_place():
    np.random.seed(1)
    a = Net()
    np.random.seed(2)
    b = Net()
    arrays = [p.data for p in b.parameters()]
    b.load_state_dict(a.state_dict())
    for p, q, arr in zip(a.parameters(), b.parameters(), arrays):
        np.testing.assert_array_equal(p.data, q.data)
        assert q.data is arr                 # copied in place: arenas and tapes stay valid
    x = fg.tensor(np.random.default_rng(0).standard_normal((4, 2)))
    np.testing.assert_array_equal(a(x).data, b(x).data)


def test_load_state_dict_into_a_compiled_model():
    np.random.seed(3)
    a = MLP(2, [4, 1])
    np.random.seed(4)
    b = MLP(2, [4, 1])
    step = fg.compile(lambda x: b(x).sum())
    x = np.random.default_rng(1).standard_normal((5, 2))
    before = step(x).item()
    b.load_state_dict(a.state_dict())
    after = step(x).item()
    assert after != before
    assert after == a(fg.tensor(x)).sum().item()


def test_load_state_dict_missing_key():
    net = MLP(2, [3, 1])
    sd = net.state_dict()
    del sd["2.bias"]
    with pytest.raises(ValueError, match=r"2\.bias"):
        net.load_state_dict(sd)


def test_load_state_dict_unexpected_key():
    net = MLP(2, [3, 1])
    sd = net.state_dict()
    sd["2.extra"] = np.zeros(1)
    with pytest.raises(ValueError, match=r"2\.extra"):
        net.load_state_dict(sd)


def test_load_state_dict_shape_mismatch_names_key_and_both_shapes():
    net = MLP(2, [3, 1])
    sd = net.state_dict()
    sd["0.weight"] = np.zeros((3, 2))
    with pytest.raises(ValueError) as info:
        net.load_state_dict(sd)
    msg = str(info.value)
    assert "0.weight" in msg and "(3, 2)" in msg and "(2, 3)" in msg


def test_shape_mismatch_is_an_error_even_when_not_strict():
    net = MLP(2, [3, 1])
    with pytest.raises(ValueError, match=r"0\.bias"):
        net.load_state_dict({"0.bias": np.zeros(4)}, strict=False)


def test_load_state_dict_changes_nothing_unless_everything_fits():
    net = MLP(2, [3, 1])
    before = net.state_dict()
    sd = {k: np.full(v.shape, 7.0) for k, v in before.items()}
    sd["2.bias"] = np.zeros(5)                     # the last entry is bad
    with pytest.raises(ValueError):
        net.load_state_dict(sd)
    for k, v in net.state_dict().items():
        np.testing.assert_array_equal(v, before[k])


def test_load_state_dict_not_strict():
    net = MLP(2, [3, 1])
    before = net.state_dict()
    net.load_state_dict({"0.bias": np.full(3, 5.0), "junk": np.ones(1)}, strict=False)
    np.testing.assert_array_equal(net[0].bias.data, 5.0)
    np.testing.assert_array_equal(net[0].weight.data, before["0.weight"])


def test_load_state_dict_keeps_parameter_dtype():
    net = MLP(2, [3, 1], dtype="float32")
    sd = {k: v.astype(np.float64) for k, v in net.state_dict().items()}
    net.load_state_dict(sd)
    assert all(p.dtype == np.float32 for p in net.parameters())


# -- modes and repr --------------------------------------------------------------------


def test_train_eval_flags():
    net = Net()
    assert all(m.training for m in net.modules())
    assert net.eval() is net
    assert not any(m.training for m in net.modules())
    net.first.train()
    assert net.first.a.training and not net.training
    net.train()
    assert all(m.training for m in net.modules())


def test_repr():
    r = repr(MLP(2, [16, 1]))
    assert r.splitlines() == ["MLP(",
                              "  (0): Linear(2, 16, bias=True, dtype=float64)",
                              "  (1): ReLU()",
                              "  (2): Linear(16, 1, bias=True, dtype=float64)",
                              ")"]
    nested = repr(Net())
    assert "  (first): Block(\n    (a): Linear(2, 3" in nested
    assert "      (0): Linear(3, 3" in nested
    assert repr(Linear(3, 4, bias=False, dtype="float32")) == \
        "Linear(3, 4, bias=False, dtype=float32)"


def test_forward_not_defined():
    class NoForward(Module):
        pass

    with pytest.raises(NotImplementedError):
        NoForward()(1)


# -- Linear ----------------------------------------------------------------------------


def test_linear_shapes_and_forward_against_numpy():
    np.random.seed(5)
    lin = Linear(4, 3)
    assert lin.weight.shape == (4, 3) and lin.bias.shape == (3,)
    x = np.random.default_rng(2).standard_normal((5, 4))
    expected = x @ lin.weight.data + lin.bias.data
    np.testing.assert_allclose(lin(fg.tensor(x)).data, expected, rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(lin(x).data, expected, rtol=1e-14, atol=1e-15)   # ndarray in
    np.testing.assert_allclose(lin(fg.tensor(x[0])).data, expected[0], rtol=1e-14,
                               atol=1e-15)


def test_linear_gradients_against_numpy():
    np.random.seed(6)
    lin = Linear(3, 2)
    x = np.random.default_rng(3).standard_normal((4, 3))
    upstream = np.random.default_rng(4).standard_normal((4, 2))
    lin(fg.tensor(x)).backward(upstream)
    np.testing.assert_allclose(lin.weight.grad, x.T @ upstream, rtol=1e-13)
    np.testing.assert_allclose(lin.bias.grad, upstream.sum(axis=0), rtol=1e-13)


def test_linear_without_bias():
    lin = Linear(3, 2, bias=False)
    assert lin.bias is None and len(lin.parameters()) == 1
    x = np.ones((1, 3))
    np.testing.assert_allclose(lin(fg.tensor(x)).data, x @ lin.weight.data, rtol=1e-15)


def test_linear_bad_arguments():
    with pytest.raises(ValueError):
        Linear(-1, 2)
    with pytest.raises(TypeError):
        Linear(2, 2, dtype="int64")


@pytest.mark.parametrize("nin,nout", [(1, 1), (3, 400), (100, 300)])
def test_kaiming_uniform_bounds(nin, nout):
    np.random.seed(7)
    lin = Linear(nin, nout)
    bound = 1.0 / math.sqrt(nin)
    for p in (lin.weight.data, lin.bias.data):
        assert np.all(np.abs(p) <= bound)
    w = lin.weight.data.ravel()
    if w.size >= 1000:
        # U(-b, b): mean 0, variance b^2 / 3, values reaching both ends
        assert abs(w.mean()) < 4 * bound / math.sqrt(3 * w.size)
        assert abs(w.var() / (bound ** 2 / 3) - 1) < 0.1
        assert w.max() > 0.99 * bound and w.min() < -0.99 * bound


def test_reproducible_with_numpy_seed_and_manual_seed():
    np.random.seed(11)
    a = MLP(3, [8, 2])
    np.random.seed(11)
    b = MLP(3, [8, 2])
    fg.manual_seed(11)
    c = MLP(3, [8, 2])
    np.random.seed(12)
    d = MLP(3, [8, 2])
    for p, q, r in zip(a.parameters(), b.parameters(), c.parameters()):
        np.testing.assert_array_equal(p.data, q.data)
        np.testing.assert_array_equal(p.data, r.data)
    assert not np.array_equal(a[0].weight.data, d[0].weight.data)


def test_reproducible_with_a_generator_without_touching_global_state():
    np.random.seed(0)
    state = np.random.get_state()[1].copy()
    a = MLP(3, [8, 2], generator=np.random.default_rng(5))
    b = MLP(3, [8, 2], generator=np.random.default_rng(5))
    np.testing.assert_array_equal(np.random.get_state()[1], state)
    for p, q in zip(a.parameters(), b.parameters()):
        np.testing.assert_array_equal(p.data, q.data)
    lin = Linear(2, 2, generator=np.random.default_rng(6))
    assert np.all(np.abs(lin.weight.data) <= 1 / math.sqrt(2))


# -- MLP / Sequential ------------------------------------------------------------------


@pytest.mark.parametrize("activation,cls,fn", [
    ("relu", ReLU, lambda z: np.maximum(z, 0)),
    ("tanh", Tanh, np.tanh),
    ("sigmoid", Sigmoid, lambda z: 1 / (1 + np.exp(-z))),
    (None, None, lambda z: z),
])
def test_mlp_structure_and_forward(activation, cls, fn):
    np.random.seed(8)
    model = MLP(3, [5, 4, 2], activation=activation)
    kinds = [type(m) for m in model]
    if cls is None:
        assert kinds == [Linear, Linear, Linear]
    else:
        assert kinds == [Linear, cls, Linear, cls, Linear]        # last layer linear
    layers = [m for m in model if isinstance(m, Linear)]
    assert [(l.nin, l.nout) for l in layers] == [(3, 5), (5, 4), (4, 2)]
    x = np.random.default_rng(5).standard_normal((6, 3))
    h = x
    for i, l in enumerate(layers):
        h = h @ l.weight.data + l.bias.data
        if i < len(layers) - 1:
            h = fn(h)
    np.testing.assert_allclose(model(fg.tensor(x)).data, h, rtol=1e-12, atol=1e-14)


def test_mlp_bad_arguments():
    with pytest.raises(ValueError, match="activation"):
        MLP(2, [3], activation="gelu")
    with pytest.raises(ValueError):
        MLP(2, [])


def test_sequential_indexing_and_type_check():
    s = Sequential(Linear(2, 2), ReLU(), Identity())
    assert len(s) == 3 and isinstance(s[1], ReLU) and isinstance(s[-1], Identity)
    assert [type(m) for m in s] == [Linear, ReLU, Identity]
    with pytest.raises(TypeError):
        Sequential(Linear(2, 2), lambda x: x)


def test_activation_modules_match_functional():
    x = fg.tensor(np.linspace(-3, 3, 7))
    np.testing.assert_array_equal(ReLU()(x).data, F.relu(x).data)
    np.testing.assert_array_equal(Tanh()(x).data, F.tanh(x).data)
    np.testing.assert_array_equal(Sigmoid()(x).data, F.sigmoid(x).data)
    assert Identity()(x) is x


# -- arenas ----------------------------------------------------------------------------


def test_parameters_are_views_into_one_arena():
    net = Net()
    params = net.parameters()
    arena = arena_of(params)
    assert arena is not None
    assert list(arena.data) == [np.dtype(np.float64)]
    data, grad = arena.data[np.dtype(np.float64)], arena.grad[np.dtype(np.float64)]
    assert data.size == sum(p.size for p in params)
    for p in params:
        assert np.shares_memory(p.data, data) and np.shares_memory(p.grad, grad)
    # contiguous, in parameter order, no gaps
    offsets = [p.data.__array_interface__["data"][0] for p in params]
    base = data.__array_interface__["data"][0]
    expected = base + np.cumsum([0] + [p.size * 8 for p in params[:-1]])
    assert offsets == expected.tolist()


def test_writes_through_the_arena_are_seen_by_the_parameters():
    net = MLP(2, [3, 1])
    arena = arena_of(net.parameters())
    buf = arena.data[np.dtype(np.float64)]
    buf[...] = 0.5
    assert all(np.all(p.data == 0.5) for p in net.parameters())


def test_one_arena_per_dtype():
    class Mixed(Module):
        def __init__(self):
            super().__init__()
            self.a = Linear(2, 3, dtype="float32")
            self.b = Linear(3, 1, dtype="float64")

    m = Mixed()
    arena = arena_of(m.parameters())
    assert set(arena.data) == {np.dtype(np.float32), np.dtype(np.float64)}
    for p in m.parameters():
        assert np.shares_memory(p.data, arena.data[p.dtype])
        assert not np.shares_memory(p.data, arena.data[
            np.dtype(np.float64 if p.dtype == np.float32 else np.float32)])
    assert arena.data[np.dtype(np.float32)].size == 2 * 3 + 3
    assert arena.data[np.dtype(np.float64)].size == 3 + 1


def test_backward_writes_into_the_grad_arena():
    np.random.seed(9)
    net = MLP(2, [3, 1])
    net(fg.tensor(np.ones((4, 2)))).sum().backward()
    grad = arena_of(net.parameters()).grad[np.dtype(np.float64)]
    assert grad.any()
    assert np.array_equal(grad, np.concatenate([p.grad.ravel() for p in net.parameters()]))


# -- float32 end to end ------------------------------------------------------------------


def test_float32_model_end_to_end():
    np.random.seed(10)
    model = MLP(2, [16, 3], dtype="float32")
    assert all(p.dtype == np.float32 for p in model.parameters())
    rng = np.random.default_rng(6)
    X = rng.standard_normal((64, 2)).astype(np.float32)
    y = (X[:, 0] > 0).astype(np.int64) + (X[:, 1] > 0)
    opt = fg.optim.SGD(model.parameters(), lr=0.5, momentum=0.9)

    @fg.compile
    def step(X, y):
        return F.cross_entropy(model(X), y)

    first = None
    for _ in range(100):
        loss = step(X, y)
        assert loss.dtype == np.float32
        first = loss.item() if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert all(p.dtype == np.float32 and p.grad.dtype == np.float32
               for p in model.parameters())
    assert loss.item() < 0.5 * first
    # against a float64 numpy evaluation of the same weights
    h = np.maximum(X.astype(np.float64) @ model[0].weight.data + model[0].bias.data, 0)
    logits = h @ model[2].weight.data + model[2].bias.data
    logp = logits - logits.max(1, keepdims=True)
    logp -= np.log(np.exp(logp).sum(1, keepdims=True))
    expected = -logp[np.arange(64), y].mean()
    assert abs(step(X, y).item() - expected) < 1e-5
