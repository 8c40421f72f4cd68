"""fastgrad.optim: parameters are updated where they live.

An optimizer over some of a model's parameters must not move them out of the
model's arena: arrays handed out earlier (``p.data``,
``model.parameters_data()``) keep reaching the parameters, and two
optimizers over overlapping subsets never fight over them.
"""

import random

import numpy as np
import pytest

import fastgrad as fg


# -- optimizers over a subset keep parameters where they live (no stale views) ------------


def test_value_optimizer_over_subset_keeps_parameters_data_view_valid():
    """Item 7: writes to an earlier parameters_data() view must reach the Values."""
    from fastgrad.micrograd import MLP

    random.seed(20)
    model = MLP(2, [3, 1])
    params = model.parameters()
    data = model.parameters_data()
    opt = fg.optim.SGD(params[:3], lr=0.1)
    data[:] = np.arange(len(params), dtype=float)
    assert [p.data for p in params] == list(np.arange(len(params), dtype=float))
    for p in params:
        p.grad = 1.0
    opt.step()
    assert data[0] == 0.0 - 0.1 and data[3] == 3.0      # the view sees the step
    assert params[0].data == data[0]
    model.parameters_grad()[:] = 0.0
    assert all(p.grad == 0.0 for p in params)


def test_value_optimizer_over_scattered_subset_keeps_views_valid():
    from fastgrad.micrograd import MLP

    random.seed(21)
    model = MLP(2, [3, 1])
    params = model.parameters()
    data = model.parameters_data()
    chosen = [params[4], params[0], params[7]]            # out of arena order
    opt = fg.optim.Adam(chosen, lr=0.1)
    before = data.copy()
    for p in params:
        p.grad = 1.0
    opt.step()
    changed = {0, 4, 7}
    for i, p in enumerate(params):
        assert p.data == data[i]
        assert (data[i] != before[i]) == (i in changed)
    data[4] = 42.0
    assert params[4].data == 42.0


def test_tensor_optimizer_over_subset_keeps_data_views_valid():
    """The tensor analogue: p.data taken from a module stays p's array."""
    np.random.seed(22)
    model = fg.nn.MLP(2, [3, 1])
    params = model.parameters()
    views = [p.data for p in params]
    opt = fg.optim.SGD(params[:1], lr=0.1)
    views[0][...] = 5.0
    np.testing.assert_array_equal(params[0].data, 5.0)
    assert all(p.data is v for p, v in zip(params, views))
    params[0].grad[...] = 1.0
    opt.step()
    np.testing.assert_allclose(views[0], 4.9)


def test_tensor_optimizer_over_scattered_subset_steps_the_right_parameters():
    np.random.seed(23)
    model = fg.nn.MLP(2, [3, 1])
    params = model.parameters()          # weight0, bias0, weight1, bias1
    views = [p.data for p in params]
    weights = [params[2], params[0]]     # not back to back in the arena, out of order
    opt = fg.optim.SGD(weights, lr=0.5, momentum=0.9)
    before = [v.copy() for v in views]
    for p in params:
        p.grad[...] = 1.0
    opt.step()
    for i, (v, b) in enumerate(zip(views, before)):
        assert params[i].data is v
        np.testing.assert_allclose(v, b - 0.5 if i in (0, 2) else b)


def test_two_optimizers_over_overlapping_subsets_do_not_move_parameters():
    np.random.seed(24)
    model = fg.nn.MLP(2, [3, 1])
    params = model.parameters()
    views = [p.data for p in params]
    a = fg.optim.SGD(params[:2], lr=0.1)
    b = fg.optim.SGD(params[1:], lr=0.1)
    before = [v.copy() for v in views]
    for _ in range(2):
        for p in params:
            p.grad[...] = 1.0
        a.step()
        b.step()
    assert all(p.data is v for p, v in zip(params, views))
    steps = [2, 4, 2, 2]                  # params[1] is in both optimizers
    for v, b0, n in zip(views, before, steps):
        np.testing.assert_allclose(v, b0 - 0.1 * n)
    assert model._arena_covers_parameters()


def test_subset_optimizer_follows_parameters_when_the_model_repacks():
    from fastgrad.micrograd import MLP

    random.seed(25)
    model = MLP(2, [3, 1])
    params = model.parameters()
    opt = fg.optim.SGD(params[:2], lr=0.1)
    model.pack()                          # the parameters move to a new arena
    data = model.parameters_data()
    params[0].grad = 1.0
    d0 = params[0].data
    opt.step()
    assert params[0].data == d0 - 0.1 == data[0]


@pytest.mark.parametrize("make", [
    lambda ps: fg.optim.SGD(ps, lr=0.1, momentum=0.9),
    lambda ps: fg.optim.Adam(ps, lr=0.1),
])
def test_optimizer_over_every_other_value_matches_one_over_fresh_values(make):
    """Many scattered pieces (the gathered path): the same updates as packed Values."""
    from fastgrad.micrograd import MLP, Value

    random.seed(26)
    model = MLP(2, [16, 16, 1])
    params = model.parameters()
    chosen = params[::2]
    fresh = [Value(p.data) for p in chosen]
    opt, ref = make(chosen), make(fresh)
    untouched = [p.data for p in params[1::2]]
    for step in range(3):
        for k, (p, q) in enumerate(zip(chosen, fresh)):
            p.grad = q.grad = 0.01 * (k % 7) - 0.02 * step
        opt.step()
        ref.step()
    assert [p.data for p in chosen] == [q.data for q in fresh]
    assert [p.data for p in params[1::2]] == untouched
    np.testing.assert_array_equal(model.parameters_data()[::2], [q.data for q in fresh])


def test_subset_optimizer_with_a_missing_grad_matches_fresh_tensors():
    np.random.seed(27)
    model = fg.nn.MLP(3, [4, 4, 2])
    params = model.parameters()
    chosen = [params[4], params[0], params[2]]
    fresh = [fg.tensor(p.data.copy(), requires_grad=True) for p in chosen]
    opt = fg.optim.SGD(chosen, lr=0.1, momentum=0.9, weight_decay=0.1)
    ref = fg.optim.SGD(fresh, lr=0.1, momentum=0.9, weight_decay=0.1)
    rng = np.random.default_rng(0)
    for step in range(3):
        for k, (p, q) in enumerate(zip(chosen, fresh)):
            if step == 1 and k == 1:
                p.grad = q.grad = None
            else:
                g = rng.standard_normal(p.shape)
                p.grad, q.grad = g.copy(), g.copy()
        opt.step()
        ref.step()
    for p, q in zip(chosen, fresh):
        np.testing.assert_array_equal(p.data, q.data)
    assert model._arena_covers_parameters()


def test_subset_optimizer_zero_grad_touches_only_its_parameters():
    np.random.seed(28)
    model = fg.nn.MLP(2, [3, 1])
    params = model.parameters()
    for p in params:
        p.grad[...] = 1.0
    fg.optim.SGD([params[3], params[0]], lr=0.1).zero_grad()
    assert [float(p.grad.sum() != 0) for p in params] == [0.0, 1.0, 1.0, 0.0]


def test_tensor_optimizer_follows_parameters_when_the_module_repacks():
    np.random.seed(30)
    model = fg.nn.MLP(2, [3, 1])
    params = model.parameters()
    opt = fg.optim.SGD(params[2:], lr=0.1, momentum=0.5)
    for p in params:
        p.grad[...] = 1.0
    opt.step()                                # momentum buffer = 1
    model.pack()                              # every parameter moves to a new arena
    views = [p.data for p in params]
    before = [v.copy() for v in views]
    for p in params:
        p.grad[...] = 1.0
    opt.step()                                # buffer 0.5 * 1 + 1 = 1.5
    assert all(p.data is v for p, v in zip(params, views))
    for i, (v, b) in enumerate(zip(views, before)):
        np.testing.assert_allclose(v, b - 0.15 if i >= 2 else b)
