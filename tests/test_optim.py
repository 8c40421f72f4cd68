"""fastgrad.optim: SGD, Adam, AdamW against torch.optim and the closed-form updates."""

import random

import numpy as np
import pytest

import fastgrad as fg
from fastgrad.serialization import load, save

SHAPES = [(3, 4), (4,), (4, 2), (1,)]


def make_problem(seed=0, steps=6, dtype=np.float64):
    rng = np.random.default_rng(seed)
    init = [rng.standard_normal(s).astype(dtype) for s in SHAPES]
    grads = [[rng.standard_normal(s).astype(dtype) for s in SHAPES] for _ in range(steps)]
    return init, grads


def run_fastgrad(cls, init, grads, **kw):
    params = [fg.tensor(a.copy(), requires_grad=True) for a in init]
    opt = cls(params, **kw)
    history = []
    for step_grads in grads:
        for p, g in zip(params, step_grads):
            p.grad[...] = g
        opt.step()
        history.append([p.data.copy() for p in params])
    return history


# -- reference implementations written from the update rules (torch.optim docs) ----------


def sgd_reference(init, grads, lr, momentum=0.0, dampening=0.0, weight_decay=0.0,
                  nesterov=False):
    params = [a.copy() for a in init]
    bufs = [None] * len(params)
    history = []
    for step_grads in grads:
        for i, g in enumerate(step_grads):
            d = g + weight_decay * params[i] if weight_decay else g.copy()
            if momentum:
                bufs[i] = d.copy() if bufs[i] is None else momentum * bufs[i] + (1 - dampening) * d
                d = d + momentum * bufs[i] if nesterov else bufs[i]
            params[i] = params[i] - lr * d
        history.append([p.copy() for p in params])
    return history


def adam_reference(init, grads, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
                   decoupled=False):
    b1, b2 = betas
    params = [a.copy() for a in init]
    m = [np.zeros_like(a) for a in init]
    v = [np.zeros_like(a) for a in init]
    history = []
    for t, step_grads in enumerate(grads, start=1):
        for i, g in enumerate(step_grads):
            if weight_decay and decoupled:
                params[i] = params[i] * (1 - lr * weight_decay)
            elif weight_decay:
                g = g + weight_decay * params[i]
            m[i] = b1 * m[i] + (1 - b1) * g
            v[i] = b2 * v[i] + (1 - b2) * g * g
            m_hat = m[i] / (1 - b1 ** t)
            v_hat = v[i] / (1 - b2 ** t)
            params[i] = params[i] - lr * m_hat / (np.sqrt(v_hat) + eps)
        history.append([p.copy() for p in params])
    return history


def assert_histories_close(got, expected, rtol, atol=0.0):
    assert len(got) == len(expected)
    for step, (g_step, e_step) in enumerate(zip(got, expected)):
        for i, (g, e) in enumerate(zip(g_step, e_step)):
            np.testing.assert_allclose(g, e, rtol=rtol, atol=atol,
                                       err_msg=f"step {step + 1}, parameter {i}")


SGD_CONFIGS = [
    dict(lr=0.1),
    dict(lr=0.1, momentum=0.9),
    dict(lr=0.05, momentum=0.9, dampening=0.3),
    dict(lr=0.1, momentum=0.9, nesterov=True),
    dict(lr=0.1, momentum=0.8, weight_decay=0.01),
    dict(lr=0.1, weight_decay=0.1),
    dict(lr=0.02, momentum=0.5, weight_decay=0.05, nesterov=True),
]
ADAM_CONFIGS = [
    dict(lr=0.01),
    dict(lr=0.01, betas=(0.8, 0.9), eps=1e-6),
    dict(lr=0.003, weight_decay=0.1),
    dict(lr=0.1, betas=(0.0, 0.5)),
]


# -- closed forms / references (no torch needed) -----------------------------------------


@pytest.mark.parametrize("kw", SGD_CONFIGS)
def test_sgd_matches_update_rule(kw):
    init, grads = make_problem()
    assert_histories_close(run_fastgrad(fg.optim.SGD, init, grads, **kw),
                           sgd_reference(init, grads, **kw), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("kw", ADAM_CONFIGS)
def test_adam_matches_update_rule(kw):
    init, grads = make_problem(1)
    assert_histories_close(run_fastgrad(fg.optim.Adam, init, grads, **kw),
                           adam_reference(init, grads, **kw), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("kw", ADAM_CONFIGS + [dict(lr=0.01, weight_decay=0.5)])
def test_adamw_matches_update_rule(kw):
    init, grads = make_problem(2)
    kw = dict(kw)
    kw.setdefault("weight_decay", 1e-2)      # AdamW's default, as in PyTorch
    assert_histories_close(run_fastgrad(fg.optim.AdamW, init, grads, **kw),
                           adam_reference(init, grads, decoupled=True, **kw),
                           rtol=1e-12, atol=1e-14)


def test_adamw_default_weight_decay_is_1e_2():
    p = fg.tensor(np.ones(2), requires_grad=True)
    assert fg.optim.AdamW([p]).defaults["weight_decay"] == 1e-2
    assert fg.optim.Adam([p]).defaults["weight_decay"] == 0.0


def test_plain_sgd_closed_form():
    rng = np.random.default_rng(3)
    W = fg.tensor(rng.standard_normal((3, 2)), requires_grad=True)
    b = fg.tensor(rng.standard_normal(2), requires_grad=True)
    gW, gb = rng.standard_normal((3, 2)), rng.standard_normal(2)
    W0, b0 = W.data.copy(), b.data.copy()
    W.grad, b.grad = gW.copy(), gb.copy()
    fg.optim.SGD([W, b], lr=0.25).step()
    np.testing.assert_array_equal(W.data, W0 - 0.25 * gW)
    np.testing.assert_array_equal(b.data, b0 - 0.25 * gb)


def test_first_adam_step_moves_by_lr_times_sign():
    rng = np.random.default_rng(4)
    p = fg.tensor(rng.standard_normal(50), requires_grad=True)
    g = rng.standard_normal(50) * 10 ** rng.uniform(-3, 3, 50)
    p0 = p.data.copy()
    p.grad = g.copy()
    fg.optim.Adam([p], lr=0.01).step()
    # m_hat = g, v_hat = g^2: the step is lr * g / (|g| + eps), ~ lr * sign(g)
    np.testing.assert_allclose(p.data - p0, -0.01 * g / (np.abs(g) + 1e-8), rtol=1e-10)
    np.testing.assert_allclose(p.data - p0, -0.01 * np.sign(g), rtol=1e-8 / np.abs(g).min())


def test_seed003_sgd_step():
    """Seed 003: a 2-3-1 linear net, x = (40, 80), target 60, L = (y - t)^2 / 2."""
    x = fg.tensor([[40.0, 80.0]])
    W1 = fg.tensor(np.full((2, 3), 0.5), requires_grad=True)
    W2 = fg.tensor(np.full((3, 1), 1.0), requires_grad=True)
    loss = 0.5 * ((x @ W1 @ W2 - 60.0) ** 2).sum()
    assert loss.item() == 7200.0
    loss.backward()
    np.testing.assert_array_equal(W2.grad, np.full((3, 1), 7200.0))
    np.testing.assert_array_equal(W1.grad, [[4800.0] * 3, [9600.0] * 3])
    opt = fg.optim.SGD([W1, W2], lr=1e-5)
    opt.step()
    np.testing.assert_allclose(W2.data, np.full((3, 1), 0.928), rtol=1e-14)
    np.testing.assert_allclose(W1.data, [[0.452] * 3, [0.404] * 3], rtol=1e-14)


def test_float32_parameters_stay_float32():
    init, grads = make_problem(5, dtype=np.float32)
    for cls, kw in [(fg.optim.SGD, dict(lr=0.1, momentum=0.9)), (fg.optim.Adam, dict(lr=0.01))]:
        history = run_fastgrad(cls, init, grads, **kw)
        assert all(a.dtype == np.float32 for a in history[-1])
    hist = run_fastgrad(fg.optim.SGD, init, grads, lr=0.1, momentum=0.9)
    ref = sgd_reference([a.astype(np.float64) for a in init],
                        [[g.astype(np.float64) for g in s] for s in grads], lr=0.1, momentum=0.9)
    assert_histories_close(hist, ref, rtol=1e-5, atol=1e-6)


def test_mixed_dtype_parameters():
    rng = np.random.default_rng(6)
    a = fg.tensor(rng.standard_normal(3).astype(np.float32), requires_grad=True)
    b = fg.tensor(rng.standard_normal(4), requires_grad=True)
    a0, b0 = a.data.copy(), b.data.copy()
    ga, gb = rng.standard_normal(3).astype(np.float32), rng.standard_normal(4)
    a.grad, b.grad = ga.copy(), gb.copy()
    fg.optim.SGD([a, b], lr=0.5).step()
    assert a.dtype == np.float32 and b.dtype == np.float64
    np.testing.assert_allclose(a.data, a0 - np.float32(0.5) * ga, rtol=1e-6)
    np.testing.assert_array_equal(b.data, b0 - 0.5 * gb)


# -- PyTorch, step for step ----------------------------------------------------------------


def run_torch(torch, cls, init, grads, **kw):
    params = [torch.tensor(a.copy(), requires_grad=True) for a in init]
    opt = cls(params, **kw)
    history = []
    for step_grads in grads:
        for p, g in zip(params, step_grads):
            p.grad = torch.tensor(g.copy())
        opt.step()
        history.append([p.detach().numpy().copy() for p in params])
    return history


@pytest.mark.parametrize("kw", SGD_CONFIGS)
def test_sgd_matches_torch(kw):
    torch = pytest.importorskip("torch")
    init, grads = make_problem(7)
    assert_histories_close(run_fastgrad(fg.optim.SGD, init, grads, **kw),
                           run_torch(torch, torch.optim.SGD, init, grads, **kw), rtol=1e-10)


@pytest.mark.parametrize("kw", ADAM_CONFIGS)
@pytest.mark.parametrize("name", ["Adam", "AdamW"])
def test_adam_matches_torch(kw, name):
    torch = pytest.importorskip("torch")
    init, grads = make_problem(8)
    assert_histories_close(run_fastgrad(getattr(fg.optim, name), init, grads, **kw),
                           run_torch(torch, getattr(torch.optim, name), init, grads, **kw),
                           rtol=1e-10)


def test_training_a_module_matches_torch():
    """Compiled MLP + SGD(momentum) vs the same net in torch, 8 steps."""
    torch = pytest.importorskip("torch")
    import fastgrad.nn.functional as F

    np.random.seed(9)
    model = fg.nn.MLP(3, [5, 1], activation="tanh")
    rng = np.random.default_rng(9)
    X, y = rng.standard_normal((16, 3)), rng.standard_normal(16)
    tparams = [torch.tensor(p.data.copy(), requires_grad=True) for p in model.parameters()]
    opt = fg.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-3)
    topt = torch.optim.SGD(tparams, lr=0.1, momentum=0.9, weight_decay=1e-3)

    @fg.compile
    def step(X, y):
        return F.mse_loss(model(X).reshape(-1), y)

    tX, ty = torch.tensor(X), torch.tensor(y)
    for _ in range(8):
        loss = step(X, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        W1, b1, W2, b2 = tparams
        tloss = (((torch.tanh(tX @ W1 + b1) @ W2 + b2).reshape(-1) - ty) ** 2).mean()
        topt.zero_grad()
        tloss.backward()
        topt.step()
        np.testing.assert_allclose(loss.item(), tloss.item(), rtol=1e-12)
    for p, q in zip(model.parameters(), tparams):
        np.testing.assert_allclose(p.data, q.detach().numpy(), rtol=1e-10, atol=1e-14)


# -- micrograd Values -------------------------------------------------------------------


def micrograd_model_with_grads(seed=0):
    from fastgrad.micrograd import MLP, Value

    random.seed(seed)
    model = MLP(2, [4, 4, 1])
    x = [Value(0.5), Value(-1.5)]
    out = model(x)
    (out * out).backward()
    return model


def test_sgd_on_micrograd_values_equals_manual_update():
    model = micrograd_model_with_grads()
    params = model.parameters()
    before = [(p.data, p.grad) for p in params]
    assert any(g != 0 for _, g in before)
    fg.optim.SGD(params, lr=0.05).step()
    for p, (d, g) in zip(params, before):
        assert p.data == d - 0.05 * g       # the same double as micrograd's update


def test_optimizer_zero_grad_on_values():
    model = micrograd_model_with_grads(1)
    opt = fg.optim.SGD(model.parameters(), lr=0.1)
    opt.zero_grad()
    assert all(p.grad == 0 for p in model.parameters())


def test_adam_on_micrograd_values_matches_reference():
    model = micrograd_model_with_grads(2)
    params = model.parameters()
    init = [np.array([p.data]) for p in params]
    grads = [[np.array([p.grad]) for p in params]]
    fg.optim.Adam(params, lr=0.01).step()
    expected = adam_reference(init, grads, lr=0.01)[0]
    np.testing.assert_allclose([p.data for p in params], np.concatenate(expected),
                               rtol=1e-12, atol=1e-15)


def test_micrograd_values_train():
    from fastgrad.micrograd import MLP, Value

    random.seed(3)
    model = MLP(2, [8, 1])
    xs = [[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]]
    ys = [-1.0, 1.0, 1.0, -1.0]
    opt = fg.optim.Adam(model.parameters(), lr=0.05)

    def loss_value():
        return sum(((model([Value(a) for a in x]) - y) ** 2 for x, y in zip(xs, ys)),
                   Value(0.0))

    first = loss_value().data
    for _ in range(150):
        loss = loss_value()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss_value().data < 0.25 * first


# -- gradients set elsewhere ------------------------------------------------------------


def test_step_uses_a_replaced_grad_array():
    np.random.seed(10)
    model = fg.nn.Linear(3, 2)
    opt = fg.optim.SGD(model.parameters(), lr=0.5)
    w0, b0 = model.weight.data.copy(), model.bias.data.copy()
    g = np.arange(6.0).reshape(3, 2)
    model.weight.grad = g.copy()          # a new array, not the arena's view
    model.bias.grad[...] = 1.0
    opt.step()
    np.testing.assert_array_equal(model.weight.data, w0 - 0.5 * g)
    np.testing.assert_array_equal(model.bias.data, b0 - 0.5)
    np.testing.assert_array_equal(model.weight.grad, g)


def test_step_with_grad_none_plain_sgd_leaves_the_parameter():
    np.random.seed(11)
    model = fg.nn.Linear(3, 2)
    opt = fg.optim.SGD(model.parameters(), lr=0.5)
    w0, b0 = model.weight.data.copy(), model.bias.data.copy()
    model.weight.grad = None
    model.bias.grad[...] = 2.0
    opt.step()
    np.testing.assert_array_equal(model.weight.data, w0)
    np.testing.assert_array_equal(model.bias.data, b0 - 1.0)


def test_zero_grad_set_to_none_then_backward_then_step():
    np.random.seed(12)
    model = fg.nn.Linear(2, 1)
    opt = fg.optim.SGD(model.parameters(), lr=0.1)
    x = np.array([[1.0, 2.0]])
    opt.zero_grad(set_to_none=True)
    assert all(p.grad is None for p in model.parameters())
    w0, b0 = model.weight.data.copy(), model.bias.data.copy()
    model(fg.tensor(x)).sum().backward()      # d/dW = x^T, d/db = 1
    opt.step()
    np.testing.assert_allclose(model.weight.data, w0 - 0.1 * x.T, rtol=1e-15)
    np.testing.assert_allclose(model.bias.data, b0 - 0.1, rtol=1e-15)


def test_grad_none_is_skipped_like_torch():
    """torch.optim skips a parameter whose grad is None (no momentum, no decay)."""
    torch = pytest.importorskip("torch")
    init, grads = make_problem(13, steps=3)
    params = [fg.tensor(a.copy(), requires_grad=True) for a in init]
    tparams = [torch.tensor(a.copy(), requires_grad=True) for a in init]
    opt = fg.optim.SGD(params, lr=0.1, momentum=0.9, weight_decay=0.1)
    topt = torch.optim.SGD(tparams, lr=0.1, momentum=0.9, weight_decay=0.1)
    for k, step_grads in enumerate(grads):
        for i, (p, q, g) in enumerate(zip(params, tparams, step_grads)):
            if k == 2 and i == 0:
                p.grad, q.grad = None, None
            else:
                p.grad = g.copy()
                q.grad = torch.tensor(g.copy())
        opt.step()
        topt.step()
    for p, q in zip(params, tparams):
        np.testing.assert_allclose(p.data, q.detach().numpy(), rtol=1e-10)


# -- state ----------------------------------------------------------------------------


@pytest.mark.parametrize("make", [
    lambda ps: fg.optim.SGD(ps, lr=0.1, momentum=0.9, nesterov=True),
    lambda ps: fg.optim.Adam(ps, lr=0.01, betas=(0.8, 0.95)),
    lambda ps: fg.optim.AdamW(ps, lr=0.01),
])
@pytest.mark.parametrize("through_file", [False, True])
def test_state_dict_round_trip_resumes_exactly(make, through_file, tmp_path):
    init, grads = make_problem(14, steps=6)
    # uninterrupted
    full = run_fastgrad(lambda ps, **kw: make(ps), init, grads)
    # 3 steps, checkpoint, new params/optimizer, 3 more steps
    params = [fg.tensor(a.copy(), requires_grad=True) for a in init]
    opt = make(params)
    for step_grads in grads[:3]:
        for p, g in zip(params, step_grads):
            p.grad[...] = g
        opt.step()
    state = opt.state_dict()
    data = [p.data.copy() for p in params]
    if through_file:
        save({"optim": state, "params": data}, tmp_path / "ckpt.npz")
        loaded = load(tmp_path / "ckpt.npz")
        state, data = loaded["optim"], loaded["params"]
    params2 = [fg.tensor(d, requires_grad=True) for d in data]
    opt2 = make(params2)
    opt2.load_state_dict(state)
    assert opt2.state_dict()["step"] == 3
    for step_grads in grads[3:]:
        for p, g in zip(params2, step_grads):
            p.grad[...] = g
        opt2.step()
    for p, e in zip(params2, full[-1]):
        np.testing.assert_array_equal(p.data, e)


def test_state_dict_is_a_copy_and_has_the_documented_shape():
    p = fg.tensor(np.ones(3), requires_grad=True)
    opt = fg.optim.Adam([p], lr=0.1)
    p.grad[...] = 1.0
    opt.step()
    state = opt.state_dict()
    assert set(state) == {"defaults", "step", "exp_avg", "exp_avg_sq"}
    assert state["step"] == 1 and state["defaults"]["lr"] == 0.1
    snapshot = [a.copy() for a in state["exp_avg"]]
    opt.step()
    for a, b in zip(state["exp_avg"], snapshot):
        np.testing.assert_array_equal(a, b)


def test_load_state_dict_rejects_mismatches():
    p = fg.tensor(np.ones(3), requires_grad=True)
    q = fg.tensor(np.ones(4), requires_grad=True)
    state = fg.optim.SGD([p], lr=0.1, momentum=0.9).state_dict()
    with pytest.raises(ValueError):
        fg.optim.SGD([q], lr=0.1, momentum=0.9).load_state_dict(state)
    with pytest.raises(ValueError):
        fg.optim.SGD([p], lr=0.1).load_state_dict({"exp_avg": []})


# -- construction errors ----------------------------------------------------------------


@pytest.mark.parametrize("make", [
    lambda ps: fg.optim.SGD(ps, lr=-0.1),
    lambda ps: fg.optim.SGD(ps, lr=0.1, momentum=-0.5),
    lambda ps: fg.optim.SGD(ps, lr=0.1, weight_decay=-1.0),
    lambda ps: fg.optim.SGD(ps, lr=0.1, nesterov=True),
    lambda ps: fg.optim.SGD(ps, lr=0.1, momentum=0.9, dampening=0.5, nesterov=True),
    lambda ps: fg.optim.Adam(ps, lr=-1.0),
    lambda ps: fg.optim.Adam(ps, eps=-1e-8),
    lambda ps: fg.optim.Adam(ps, betas=(1.0, 0.999)),
    lambda ps: fg.optim.Adam(ps, betas=(0.9, 1.5)),
    lambda ps: fg.optim.Adam(ps, betas=(-0.1, 0.999)),
    lambda ps: fg.optim.Adam(ps, weight_decay=-0.1),
    lambda ps: fg.optim.AdamW(ps, lr=-1.0),
])
def test_bad_hyper_parameters(make):
    with pytest.raises(ValueError):
        make([fg.tensor(np.ones(2), requires_grad=True)])


@pytest.mark.parametrize("cls", ["SGD", "Adam"])
def test_nan_learning_rate_is_rejected(cls):
    with pytest.raises(ValueError):
        getattr(fg.optim, cls)([fg.tensor(np.ones(2), requires_grad=True)], lr=float("nan"))


@pytest.mark.parametrize("cls", [fg.optim.SGD, fg.optim.Adam, fg.optim.AdamW])
def test_empty_parameter_list(cls):
    with pytest.raises(ValueError, match="empty"):
        cls([], lr=0.1)
    with pytest.raises(ValueError, match="empty"):
        cls(iter([]), lr=0.1)


def test_parameter_that_does_not_require_grad():
    with pytest.raises(ValueError, match="require"):
        fg.optim.SGD([fg.tensor(np.ones(2))], lr=0.1)


def test_mixed_values_and_tensors_are_refused():
    from fastgrad.micrograd import Value

    with pytest.raises(TypeError):
        fg.optim.SGD([Value(1.0), fg.tensor(np.ones(2), requires_grad=True)], lr=0.1)


def test_accepts_a_generator_of_parameters():
    np.random.seed(15)
    model = fg.nn.Linear(2, 2)
    opt = fg.optim.SGD((p for p in model.parameters()), lr=0.1)
    assert len(opt.params) == 2


# -- the fused step keeps the parameters' identity (compiled tapes stay valid) --------------


def test_step_updates_in_place():
    np.random.seed(16)
    model = fg.nn.MLP(2, [3, 1])
    arrays = [p.data for p in model.parameters()]
    opt = fg.optim.Adam(model.parameters(), lr=0.1)
    for p in model.parameters():
        p.grad[...] = 1.0
    opt.step()
    assert all(p.data is a for p, a in zip(model.parameters(), arrays))


def test_step_sees_assigned_data():
    """``p.data = array`` replaces the live array: the next step must update it."""
    np.random.seed(17)
    model = fg.nn.Linear(3, 2)
    opt = fg.optim.SGD(model.parameters(), lr=0.1)
    model.weight.data = np.zeros((3, 2))
    model.weight.grad[...] = 1.0
    model.bias.grad[...] = 0.0
    opt.step()
    np.testing.assert_allclose(model.weight.data, np.full((3, 2), -0.1))


def test_optimizer_survives_another_optimizer_over_the_same_parameters():
    np.random.seed(18)
    model = fg.nn.MLP(2, [3, 1])
    params = model.parameters()
    first = fg.optim.SGD(params[:2], lr=0.1)      # e.g. a separate lr for layer 0
    fg.optim.SGD(params, lr=0.01)
    w0 = params[0].data.copy()
    params[0].grad = np.ones(params[0].shape)
    first.step()
    np.testing.assert_allclose(params[0].data, w0 - 0.1)


def test_value_optimizer_survives_model_repack():
    from fastgrad.micrograd import MLP

    random.seed(19)
    model = MLP(2, [3, 1])
    params = model.parameters()
    opt = fg.optim.SGD(params[:3], lr=0.1)
    model.parameters_data()                       # the documented bulk-access API
    d0 = params[0].data
    params[0].grad = 1.0
    opt.step()
    assert params[0].data == d0 - 0.1
