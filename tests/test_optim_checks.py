"""fastgrad.optim: hyper-parameters, load_state_dict and assigned gradients are checked.

The constructor and load_state_dict share one check per optimizer, so a
checkpoint can never hold what the constructor refuses; load_state_dict
validates everything before it changes anything.
"""

import numpy as np
import pytest

import fastgrad as fg


# -- hyper-parameters: one check for the constructor and load_state_dict ------------------

def _p():
    return fg.tensor(np.ones(3), requires_grad=True)


@pytest.mark.parametrize("make,error", [
    (lambda ps: fg.optim.SGD(ps, lr=float("inf")), ValueError),
    (lambda ps: fg.optim.SGD(ps, lr=0.1, momentum=float("inf")), ValueError),
    (lambda ps: fg.optim.SGD(ps, lr=0.1, weight_decay=float("nan")), ValueError),
    (lambda ps: fg.optim.SGD(ps, lr=1j), TypeError),
    (lambda ps: fg.optim.SGD(ps, lr="0.1"), TypeError),
    (lambda ps: fg.optim.SGD(ps, lr=True), TypeError),
    (lambda ps: fg.optim.SGD(ps, lr=0.1, nesterov=1), TypeError),
    (lambda ps: fg.optim.Adam(ps, eps=float("inf")), ValueError),
    (lambda ps: fg.optim.Adam(ps, betas=0.9), TypeError),
    (lambda ps: fg.optim.Adam(ps, betas=(0.9, 0.99, 0.999)), TypeError),
    (lambda ps: fg.optim.Adam(ps, betas=(0.9, float("nan"))), ValueError),
    (lambda ps: fg.optim.Adam(ps, betas=(0.9, 1j)), TypeError),
    (lambda ps: fg.optim.AdamW(ps, weight_decay=float("inf")), ValueError),
])
def test_constructor_rejects_non_finite_or_non_real_hyper_parameters(make, error):
    with pytest.raises(error):
        make([_p()])


def test_lr_setter_rejects_what_the_constructor_rejects():
    opt = fg.optim.SGD([_p()], lr=0.1)
    for bad, error in ((float("nan"), ValueError), (-1.0, ValueError),
                       (float("inf"), ValueError), ("0.1", TypeError)):
        with pytest.raises(error, match="learning rate"):
            opt.lr = bad
    assert opt.lr == 0.1


def test_constructor_rejects_repeated_parameter():
    p = _p()
    with pytest.raises(ValueError, match="parameter 1 is parameter 0 again"):
        fg.optim.SGD([p, p], lr=0.1)


def test_constructor_rejects_a_single_tensor():
    with pytest.raises(TypeError, match=r"write \[p\]"):
        fg.optim.SGD(_p(), lr=0.1)


def test_constructor_rejects_non_leaf_parameter():
    p = _p()
    with pytest.raises(ValueError, match="leaf"):
        fg.optim.SGD([p * 2.0], lr=0.1)


# -- load_state_dict validates as strictly as the constructor, and atomically --------------

def _trained(cls, **kw):
    p = fg.tensor(np.array([1.0, -2.0, 3.0]), requires_grad=True)
    opt = cls([p], **kw)
    p.grad[...] = [0.5, -1.0, 2.0]
    opt.step()
    return opt


def _snapshot(opt):
    sd = opt.state_dict()
    return {k: ([a.copy() for a in v] if isinstance(v, list) else v) for k, v in sd.items()}


def _assert_unchanged(opt, before):
    after = opt.state_dict()
    assert set(after) == set(before)
    for k, v in before.items():
        if isinstance(v, list):
            assert len(after[k]) == len(v)
            for a, b in zip(after[k], v):
                np.testing.assert_array_equal(a, b)
        else:
            assert after[k] == v


@pytest.mark.parametrize("change,error,match", [
    (dict(lr=float("nan")), ValueError, "learning rate"),
    (dict(lr=-1.0), ValueError, "learning rate"),
    (dict(lr=1j), TypeError, "learning rate"),
    (dict(betas=(1.0, 1.0)), ValueError, "betas"),
    (dict(betas=(0.9,)), TypeError, "betas"),
    (dict(eps=-1.0), ValueError, "eps"),
    (dict(weight_decay=float("inf")), ValueError, "weight_decay"),
    (dict(momentum=0.9), ValueError, "unknown keys"),
])
def test_adam_load_state_dict_rejects_bad_defaults(change, error, match):
    opt = _trained(fg.optim.Adam, lr=0.1)
    before = _snapshot(opt)
    state = opt.state_dict()
    state["defaults"] = dict(state["defaults"], **change)
    with pytest.raises(error, match=match) as info:
        opt.load_state_dict(state)
    assert "Adam.load_state_dict" in str(info.value)
    _assert_unchanged(opt, before)


@pytest.mark.parametrize("change,error,match", [
    (dict(nesterov=True, momentum=0.0), ValueError, "Nesterov"),
    (dict(momentum=-0.5), ValueError, "momentum"),
    (dict(nesterov="yes"), TypeError, "nesterov"),
])
def test_sgd_load_state_dict_rejects_bad_defaults(change, error, match):
    opt = _trained(fg.optim.SGD, lr=0.1, momentum=0.9)
    before = _snapshot(opt)
    state = opt.state_dict()
    state["defaults"] = dict(state["defaults"], **change)
    with pytest.raises(error, match=match):
        opt.load_state_dict(state)
    _assert_unchanged(opt, before)


def test_load_state_dict_names_a_missing_state_key():
    """A missing exp_avg_sq used to fail at the next step with a bare KeyError."""
    opt = _trained(fg.optim.Adam, lr=0.1)
    before = _snapshot(opt)
    state = opt.state_dict()
    del state["exp_avg_sq"]
    with pytest.raises(ValueError, match="missing keys \\['exp_avg_sq'\\]"):
        opt.load_state_dict(state)
    _assert_unchanged(opt, before)
    opt.step()                                       # still usable


@pytest.mark.parametrize("where", ["top", "defaults"])
def test_load_state_dict_names_an_unknown_key(where):
    opt = _trained(fg.optim.SGD, lr=0.1)
    state = opt.state_dict()
    if where == "top":
        state["exp_avg"] = state["momentum_buffer"]
    else:
        state["defaults"]["betas"] = (0.9, 0.99)
    with pytest.raises(ValueError, match="unknown keys"):
        opt.load_state_dict(state)


@pytest.mark.parametrize("bad,error,match", [
    (lambda a: a.astype(complex), TypeError, "dtype complex128"),
    (lambda a: a.astype(object), TypeError, "dtype object"),
    (lambda a: a.astype(np.float32), TypeError, "dtype float32"),
    (lambda a: a[:2], ValueError, r"shape \(2,\)"),
    (lambda a: a.reshape(1, 3), ValueError, r"shape \(1, 3\)"),
    (lambda a: np.where(np.arange(3) == 1, np.nan, a), ValueError, "nan at index 1"),
    (lambda a: np.where(np.arange(3) == 2, np.inf, a), ValueError, "inf at index 2"),
    (lambda a: a.tolist(), TypeError, "numpy array"),
])
@pytest.mark.parametrize("key", ["exp_avg", "exp_avg_sq"])
def test_adam_load_state_dict_rejects_bad_state_arrays(bad, error, match, key):
    opt = _trained(fg.optim.Adam, lr=0.1)
    before = _snapshot(opt)
    state = opt.state_dict()
    state[key] = [bad(state[key][0])]
    with pytest.raises(error, match=match) as info:
        opt.load_state_dict(state)
    assert f"'{key}'[0]" in str(info.value)
    _assert_unchanged(opt, before)


def test_adam_load_state_dict_rejects_negative_second_moment():
    opt = _trained(fg.optim.Adam, lr=0.1)
    state = opt.state_dict()
    state["exp_avg_sq"][0][1] = -1.0
    with pytest.raises(ValueError, match=">= 0"):
        opt.load_state_dict(state)
    state = opt.state_dict()
    state["exp_avg"][0][1] = -1.0                    # a first moment may be negative
    opt.load_state_dict(state)


@pytest.mark.parametrize("value,error", [
    (np.zeros(3), TypeError), ([np.zeros(3), np.zeros(3)], ValueError), ("buf", TypeError),
])
def test_load_state_dict_rejects_wrongly_shaped_state_lists(value, error):
    opt = _trained(fg.optim.SGD, lr=0.1, momentum=0.9)
    state = opt.state_dict()
    state["momentum_buffer"] = value
    with pytest.raises(error, match="momentum_buffer"):
        opt.load_state_dict(state)


@pytest.mark.parametrize("step,error", [(-1, ValueError), (1.5, TypeError), (True, TypeError),
                                        ("3", TypeError)])
def test_load_state_dict_rejects_bad_step(step, error):
    opt = _trained(fg.optim.Adam, lr=0.1)
    state = opt.state_dict()
    state["step"] = step
    with pytest.raises(error, match="'step'"):
        opt.load_state_dict(state)


@pytest.mark.parametrize("state", [None, [("step", 1)], "state"])
def test_load_state_dict_rejects_non_mapping(state):
    with pytest.raises(TypeError, match="mapping"):
        _trained(fg.optim.SGD, lr=0.1).load_state_dict(state)


def test_load_state_dict_round_trip_on_a_scattered_subset():
    """State follows the optimizer's parameter order, whatever the arena layout."""
    np.random.seed(29)
    model = fg.nn.MLP(2, [3, 3, 1])
    params = model.parameters()
    chosen = [params[4], params[0]]
    opt = fg.optim.Adam(chosen, lr=0.1)
    for p in params:
        p.grad[...] = 0.5
    opt.step()
    fresh = [fg.tensor(p.data.copy(), requires_grad=True) for p in chosen]
    ref = fg.optim.Adam(fresh, lr=0.1)
    ref.load_state_dict(opt.state_dict())
    for p, q in zip(chosen, fresh):
        p.grad[...] = q.grad[...] = -0.25
    opt.step()
    ref.step()
    for p, q in zip(chosen, fresh):
        np.testing.assert_array_equal(p.data, q.data)


@pytest.mark.parametrize("grad,error", [
    (np.ones(3, complex), TypeError), (np.ones(3, object), TypeError), ("grad", TypeError),
    (np.ones(4), ValueError), (np.ones((3, 1)), ValueError), (np.ones(1), ValueError),
    ([1.0, 1.0, 1.0], TypeError),
], ids=["complex", "object", "str", "longer", "2-d", "broadcastable", "list"])
def test_step_rejects_a_bad_assigned_grad(grad, error):
    p = _p()
    opt = fg.optim.SGD([p], lr=0.1)
    p.grad = grad
    with pytest.raises(error, match="parameter 0's grad"):
        opt.step()
    np.testing.assert_array_equal(p.data, 1.0)


def test_constructor_rejects_non_leaf_value():
    from fastgrad.micrograd import Value

    a = Value(1.0)
    with pytest.raises(ValueError, match="parameter 1 .* not a leaf Value"):
        fg.optim.SGD([a, a * 2.0], lr=0.1)
