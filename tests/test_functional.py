"""fastgrad.nn.functional: activations and losses.

Values against numpy references written here from the textbook formulas (in
their numerically stable forms), gradients against closed forms, central
finite differences and PyTorch (when installed), and every bad input.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import fastgrad as fg
import fastgrad.nn.functional as F

F64, F32 = np.dtype(np.float64), np.dtype(np.float32)
DTYPES = [F64, F32]
VTOL = {F64: dict(rtol=1e-12, atol=1e-12), F32: dict(rtol=1e-5, atol=1e-6)}
GTOL = {F64: dict(rtol=1e-4, atol=1e-6), F32: dict(rtol=1e-4, atol=1e-5)}
TTOL = {F64: dict(rtol=1e-10, atol=1e-12), F32: dict(rtol=1e-4, atol=1e-5)}

LOGIT = st.floats(-5.0, 5.0, allow_nan=False, allow_subnormal=False)
SHAPES = hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=4)
REDUCTIONS = ["mean", "sum", "none"]


# -- numpy references --------------------------------------------------------------

def np_log_softmax(x, axis=-1):
    m = np.max(x, axis=axis, keepdims=True)
    z = x - m
    return z - np.log(np.sum(np.exp(z), axis=axis, keepdims=True))


def np_softmax(x, axis=-1):
    return np.exp(np_log_softmax(x, axis))


def np_reduce(loss, reduction):
    return {"mean": np.mean, "sum": np.sum, "none": lambda v: v}[reduction](loss)


def np_cross_entropy(logits, targets, reduction="mean"):
    lp = np_log_softmax(logits, axis=1)
    return np_reduce(-lp[np.arange(len(targets)), targets], reduction)


def np_mse(p, t, reduction="mean"):
    return np_reduce((p - t) ** 2, reduction)


def np_hinge(s, t, margin=1.0, reduction="mean"):
    return np_reduce(np.maximum(0.0, margin - t * s), reduction)


def np_bce_logits(x, t, reduction="mean"):
    # log(1 + e^-|x|) + max(x, 0) - x t: the stable form of -t log σ - (1-t) log(1-σ)
    return np_reduce(np.log1p(np.exp(-np.abs(x))) + np.maximum(x, 0.0) - x * t, reduction)


def np_sigmoid(x):
    return 0.5 * (1.0 + np.tanh(0.5 * x))      # no overflow for large |x|


# -- helpers ---------------------------------------------------------------------------

def finite_difference(f, x, G, eps=1e-6):
    x = np.array(x, dtype=np.float64)
    g = np.zeros_like(x)
    for idx in np.ndindex(x.shape):
        up, down = x.copy(), x.copy()
        up[idx] += eps
        down[idx] -= eps
        g[idx] = np.sum((np.asarray(f(up)) - np.asarray(f(down))) * G) / (2 * eps)
    return g


def upstream(shape, seed=0):
    return np.random.default_rng(seed).uniform(-1.0, 1.0, size=shape)


def close(actual, expected, tol, what=""):
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape, f"{what}: {actual.shape} != {expected.shape}"
    np.testing.assert_allclose(actual.astype(np.float64), expected.astype(np.float64),
                               err_msg=what, **tol)


def check(fg_fn, np_fn, x, dtype):
    """Values vs numpy and the gradient wrt x vs central differences."""
    t = fg.tensor(x.astype(dtype), requires_grad=True)
    exact = t.data.astype(np.float64)
    out = fg_fn(t)
    assert out.dtype == dtype
    close(out.data, np_fn(exact), VTOL[dtype], "value")
    G = upstream(out.shape)
    out.backward(G.astype(dtype))
    close(t.grad, finite_difference(np_fn, exact, G), GTOL[dtype], "grad")


def check_torch(fg_fn, torch_fn, x, dtype, torch):
    t = fg.tensor(x.astype(dtype), requires_grad=True)
    tt = torch.tensor(x.astype(dtype), requires_grad=True)
    out, tout = fg_fn(t), torch_fn(tt)
    close(out.data, tout.detach().numpy(), TTOL[dtype], "value vs torch")
    G = upstream(out.shape).astype(dtype)
    out.backward(G)
    tout.backward(torch.tensor(G))
    close(t.grad, tt.grad.numpy(), TTOL[dtype], "grad vs torch")


# -- activations ----------------------------------------------------------------------

ACTIVATIONS = {
    "relu": (F.relu, lambda x: np.maximum(x, 0.0)),
    "tanh": (F.tanh, np.tanh),
    "sigmoid": (F.sigmoid, np_sigmoid),
}
AWAY_FROM_ZERO = st.one_of(st.floats(-5.0, -0.1), st.floats(0.1, 5.0))


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("name", list(ACTIVATIONS))
@settings(max_examples=20, deadline=None)
@given(x=SHAPES.flatmap(lambda s: hnp.arrays(np.float64, s, elements=AWAY_FROM_ZERO)))
def test_activations(name, dtype, x):
    fn, ref = ACTIVATIONS[name]
    check(fn, ref, x, dtype)


@pytest.mark.parametrize("name", list(ACTIVATIONS))
def test_activations_accept_arrays_and_match_torch(name):
    torch = pytest.importorskip("torch")
    fn, ref = ACTIVATIONS[name]
    x = np.linspace(-3, 3, 7)
    np.testing.assert_allclose(fn(x).data, ref(x), rtol=1e-15)
    for dtype in DTYPES:
        check_torch(fn, getattr(torch, name), x.reshape(7, 1), dtype, torch)


# -- softmax family -----------------------------------------------------------------------

@st.composite
def softmax_case(draw):
    shape = draw(SHAPES)
    axis = draw(st.integers(-len(shape), len(shape) - 1))
    x = draw(hnp.arrays(np.float64, shape, elements=LOGIT))
    return x, axis


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
@settings(max_examples=30, deadline=None)
@given(case=softmax_case())
def test_softmax_family(name, dtype, case):
    x, axis = case
    fn = getattr(F, name)
    ref = np_softmax if name == "softmax" else np_log_softmax
    check(lambda t: fn(t, axis=axis), lambda a: ref(a, axis), x, dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
@settings(max_examples=10, deadline=None)
@given(case=softmax_case())
def test_softmax_family_vs_torch(name, dtype, case):
    torch = pytest.importorskip("torch")
    x, axis = case
    fn, tfn = getattr(F, name), getattr(torch, name)
    check_torch(lambda t: fn(t, axis=axis), lambda t: tfn(t, dim=axis), x, dtype, torch)


def test_softmax_rows_sum_to_one_and_default_axis_is_last():
    x = np.random.default_rng(0).standard_normal((3, 4, 5))
    s = F.softmax(fg.tensor(x))
    np.testing.assert_allclose(s.data.sum(axis=-1), 1.0, rtol=1e-14)
    np.testing.assert_allclose(F.softmax(fg.tensor(x), axis=1).data.sum(axis=1), 1.0,
                               rtol=1e-14)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_softmax_family_is_stable_for_large_logits(dtype):
    x = fg.tensor(np.array([[1000.0, 0.0, -1000.0], [1000.0, 1000.0, 999.0]], dtype=dtype),
                  requires_grad=True)
    lp = F.log_softmax(x)
    assert np.isfinite(lp.data[1]).all() and np.isfinite(lp.data[0, :2]).all()
    np.testing.assert_allclose(lp.data[0], [0.0, -1000.0, -2000.0], rtol=1e-6)
    np.testing.assert_allclose(lp.data[1], np_log_softmax(np.array([1.0, 1.0, 0.0])),
                               rtol=1e-6)
    s = F.softmax(x)
    np.testing.assert_allclose(s.data[0], [1.0, 0.0, 0.0], atol=1e-30)
    assert not np.isnan(s.data).any()
    (s * fg.tensor(np.array([[1.0, 2.0, 3.0]] * 2, dtype=dtype))).sum().backward()
    assert np.isfinite(x.grad).all()


def test_log_softmax_of_zero_dim_is_an_error():
    with pytest.raises(ValueError):
        F.log_softmax(fg.tensor(1.0))


# -- cross-entropy -----------------------------------------------------------------------------

@st.composite
def ce_case(draw):
    n = draw(st.integers(1, 5))
    c = draw(st.integers(1, 5))
    logits = draw(hnp.arrays(np.float64, (n, c), elements=LOGIT))
    targets = np.array(draw(st.lists(st.integers(0, c - 1), min_size=n, max_size=n)),
                       dtype=np.int64)
    return logits, targets


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@settings(max_examples=30, deadline=None)
@given(case=ce_case())
def test_cross_entropy(reduction, dtype, case):
    logits, targets = case
    check(lambda t: F.cross_entropy(t, targets, reduction=reduction),
          lambda a: np_cross_entropy(a, targets, reduction), logits, dtype)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_cross_entropy_gradient_closed_form(reduction):
    rng = np.random.default_rng(3)
    logits = rng.standard_normal((6, 4))
    targets = np.array([0, 3, 1, 1, 2, 0])
    x = fg.tensor(logits, requires_grad=True)
    loss = F.cross_entropy(x, targets, reduction=reduction)
    G = np.ones(loss.shape)
    loss.backward(G)
    onehot = np.eye(4)[targets]
    expected = np_softmax(logits, 1) - onehot
    if reduction == "mean":
        expected /= 6
    np.testing.assert_allclose(x.grad, expected, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@settings(max_examples=10, deadline=None)
@given(case=ce_case())
def test_cross_entropy_vs_torch(reduction, dtype, case):
    torch = pytest.importorskip("torch")
    logits, targets = case
    tt = torch.tensor(targets)
    check_torch(lambda t: F.cross_entropy(t, targets, reduction=reduction),
                lambda t: torch.nn.functional.cross_entropy(t, tt, reduction=reduction),
                logits, dtype, torch)


@pytest.mark.parametrize("targets", [
    fg.tensor([2, 0]), np.array([2, 0]), np.array([2, 0], dtype=np.int32), [2, 0],
    np.array([2, 0], dtype=np.uint8),
], ids=["tensor", "int64-array", "int32-array", "list", "uint8-array"])
def test_cross_entropy_target_forms(targets):
    logits = np.array([[0.5, -1.0, 2.0], [1.0, 0.0, 0.0]])
    loss = F.cross_entropy(fg.tensor(logits), targets)
    np.testing.assert_allclose(loss.item(), np_cross_entropy(logits, np.array([2, 0])),
                               rtol=1e-14)


def test_cross_entropy_is_stable_for_large_logits():
    x = fg.tensor([[1000.0, 0.0], [0.0, 1000.0]], requires_grad=True)
    loss = F.cross_entropy(x, [0, 0], reduction="none")
    np.testing.assert_allclose(loss.data, [0.0, 1000.0], atol=1e-12)
    loss.sum().backward()
    np.testing.assert_allclose(x.grad, [[0.0, 0.0], [-1.0, 1.0]], atol=1e-12)


def test_cross_entropy_keeps_float32():
    x = fg.tensor(np.zeros((2, 3), np.float32), requires_grad=True)
    loss = F.cross_entropy(x, [0, 1])
    assert loss.dtype == F32
    np.testing.assert_allclose(loss.item(), np.log(3.0), rtol=1e-6)


def test_cross_entropy_of_empty_batch():
    x = fg.tensor(np.zeros((0, 3)), requires_grad=True)
    assert F.cross_entropy(x, np.zeros(0, np.int64), reduction="sum").item() == 0.0
    assert F.cross_entropy(x, np.zeros(0, np.int64), reduction="none").shape == (0,)


@pytest.fixture
def no_kernels(monkeypatch):
    """Fail if cross_entropy reaches its kernel (validation must come first)."""
    def refuse(*args, **kwargs):
        raise AssertionError("a kernel ran before the targets were validated")

    import fastgrad.tensor as tensor_module

    monkeypatch.setattr(tensor_module, "eager_forward", refuse, raising=False)
    monkeypatch.setattr(F, "_apply", refuse, raising=False)


@pytest.mark.parametrize("bad", [[0, 3], [-1, 0], [5, 7], np.array([0, 100])],
                         ids=["equal-to-classes", "negative", "both", "array"])
def test_cross_entropy_out_of_range_targets_raise_index_error_first(bad, no_kernels):
    x = fg.tensor(np.zeros((2, 3)), requires_grad=True)
    with pytest.raises(IndexError):
        F.cross_entropy(x, bad)
    with pytest.raises(IndexError):
        F.cross_entropy(x, fg.tensor(bad))


@pytest.mark.parametrize("bad", [np.array([0.0, 1.0]), fg.tensor([0.0, 1.0]), [0.0, 1.0],
                                 np.array([0.0, 1.0], np.float32)],
                         ids=["array", "tensor", "list", "float32"])
def test_cross_entropy_float_targets_raise_value_error_first(bad, no_kernels):
    x = fg.tensor(np.zeros((2, 3)), requires_grad=True)
    with pytest.raises(ValueError):
        F.cross_entropy(x, bad)


def test_cross_entropy_shape_and_reduction_errors():
    x = fg.tensor(np.zeros((2, 3)), requires_grad=True)
    with pytest.raises(ValueError):
        F.cross_entropy(x, [0, 1], reduction="avg")
    with pytest.raises(ValueError):
        F.cross_entropy(x, [0, 1, 2])               # wrong batch
    with pytest.raises(ValueError):
        F.cross_entropy(fg.tensor(np.zeros(3)), [0])  # 1-D logits
    with pytest.raises(ValueError):
        F.cross_entropy(x, [[0], [1]])              # 2-D targets


def test_cross_entropy_on_a_tape_checks_targets_at_replay():
    x = fg.tensor(np.zeros((2, 3)), requires_grad=True)
    targets = fg.tensor([0, 2])
    loss = F.cross_entropy(x, targets)
    tape = fg.lower(loss)
    targets.data[1] = 3
    with pytest.raises(IndexError):
        tape.forward()
    targets.data[1] = -2
    with pytest.raises(IndexError):
        tape.forward()
    targets.data[1] = 1
    tape.forward()
    np.testing.assert_allclose(loss.item(), np.log(3.0), rtol=1e-14)


# -- regression and margin losses --------------------------------------------------------------

@st.composite
def pair_case(draw, target_elements=LOGIT, score_elements=LOGIT):
    shape = draw(SHAPES)
    s = draw(hnp.arrays(np.float64, shape, elements=score_elements))
    t = draw(hnp.arrays(np.float64, shape, elements=target_elements))
    return s, t


SIGNS = st.sampled_from([-1.0, 1.0])
PROB = st.floats(0.0, 1.0)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@settings(max_examples=20, deadline=None)
@given(case=pair_case())
def test_mse_loss(reduction, dtype, case):
    p, t = case
    target = fg.tensor(t.astype(dtype))
    check(lambda x: F.mse_loss(x, target, reduction=reduction),
          lambda a: np_mse(a, t.astype(dtype).astype(np.float64), reduction), p, dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@settings(max_examples=20, deadline=None)
@given(case=pair_case(target_elements=SIGNS), margin=st.sampled_from([1.0, 0.5, 2.0]))
def test_hinge_loss(reduction, dtype, case, margin):
    s, t = case
    # keep the scores off the kink margin - t*s == 0, where the loss is not differentiable
    s = np.where(np.abs(margin - t * s) < 0.05, s + 0.1, s)
    target = fg.tensor(t.astype(dtype))
    check(lambda x: F.hinge_loss(x, target, margin=margin, reduction=reduction),
          lambda a: np_hinge(a, t, margin, reduction), s, dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@settings(max_examples=20, deadline=None)
@given(case=pair_case(target_elements=PROB, score_elements=AWAY_FROM_ZERO))
def test_binary_cross_entropy_with_logits(reduction, dtype, case):
    x, t = case
    target = fg.tensor(t.astype(dtype))
    check(lambda a: F.binary_cross_entropy_with_logits(a, target, reduction=reduction),
          lambda a: np_bce_logits(a, t.astype(dtype).astype(np.float64), reduction), x, dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_losses_vs_torch(reduction, dtype):
    torch = pytest.importorskip("torch")
    tf = torch.nn.functional
    rng = np.random.default_rng(5)
    p = rng.standard_normal((4, 3))
    t = rng.standard_normal((4, 3)).astype(dtype)
    tt = torch.tensor(t)
    check_torch(lambda a: F.mse_loss(a, fg.tensor(t), reduction=reduction),
                lambda a: tf.mse_loss(a, tt, reduction=reduction), p, dtype, torch)
    probs = rng.uniform(0, 1, (4, 3)).astype(dtype)
    check_torch(lambda a: F.binary_cross_entropy_with_logits(a, fg.tensor(probs),
                                                             reduction=reduction),
                lambda a: tf.binary_cross_entropy_with_logits(a, torch.tensor(probs),
                                                              reduction=reduction),
                p * 3, dtype, torch)
    signs = np.where(rng.standard_normal((4, 3)) > 0, 1.0, -1.0).astype(dtype)
    ts = torch.tensor(signs)

    def torch_hinge(a):
        loss = torch.clamp(1.0 - ts * a, min=0.0)
        return {"mean": loss.mean, "sum": loss.sum, "none": lambda: loss}[reduction]()

    check_torch(lambda a: F.hinge_loss(a, fg.tensor(signs), reduction=reduction),
                torch_hinge, p, dtype, torch)


def test_mse_loss_gradient_closed_form_and_target_forms():
    p = np.array([[1.0, 2.0], [3.0, 5.0]])
    t = np.array([[0.0, 2.0], [4.0, 1.0]])
    for target in (t, fg.tensor(t), t.tolist()):
        x = fg.tensor(p, requires_grad=True)
        loss = F.mse_loss(x, target)
        assert loss.item() == np.mean((p - t) ** 2)
        loss.backward()
        np.testing.assert_allclose(x.grad, 2 * (p - t) / 4, rtol=1e-15)


def test_hinge_loss_closed_form():
    s = fg.tensor([2.0, 0.5, -0.5, -3.0], requires_grad=True)
    t = fg.tensor([1.0, 1.0, 1.0, -1.0])
    loss = F.hinge_loss(s, t, reduction="sum")
    assert loss.item() == 0.0 + 0.5 + 1.5 + 0.0
    loss.backward()
    np.testing.assert_array_equal(s.grad, [0.0, -1.0, -1.0, 0.0])
    assert F.hinge_loss(s, t, margin=3.0, reduction="sum").item() == 1.0 + 2.5 + 3.5 + 0.0
    # int targets in {-1, 1} work too
    assert F.hinge_loss(s, fg.tensor([1, 1, 1, -1]), reduction="sum").item() == 2.0


def test_bce_with_logits_closed_form_and_stability():
    x = fg.tensor([-1000.0, -2.0, 0.5, 1000.0], requires_grad=True)
    t = np.array([0.0, 1.0, 0.25, 1.0])
    loss = F.binary_cross_entropy_with_logits(x, t, reduction="none")
    assert np.isfinite(loss.data).all()
    np.testing.assert_allclose(loss.data, np_bce_logits(x.data, t, "none"), rtol=1e-14)
    loss.sum().backward()
    np.testing.assert_allclose(x.grad, np_sigmoid(x.data) - t, rtol=1e-12, atol=1e-15)


def test_bce_with_logits_gradient_at_zero_logit():
    # regression: relu(x) - x t + log(1 + e^-|x|) with relu'(0) = abs'(0) = 0 gave
    # -t at x == 0 instead of sigmoid(0) - t; zero logits are what a zero-initialised
    # classifier produces on its first step
    x = fg.tensor([0.0, 0.0], requires_grad=True)
    F.binary_cross_entropy_with_logits(x, [1.0, 0.0], reduction="sum").backward()
    np.testing.assert_allclose(x.grad, [-0.5, 0.5], rtol=1e-15)


@pytest.mark.parametrize("loss", [F.mse_loss, F.hinge_loss, F.binary_cross_entropy_with_logits])
def test_loss_errors(loss):
    x = fg.tensor(np.zeros((2, 3)), requires_grad=True)
    with pytest.raises(ValueError):
        loss(x, np.ones((2, 3)), reduction="avg")
    with pytest.raises(ValueError, match=r"\(2, 3\).*\(3,\)"):
        loss(x, np.ones(3))           # no silent broadcasting of targets
    with pytest.raises(ValueError):
        loss(x, np.ones((3, 2)))


@pytest.mark.parametrize("loss", [F.mse_loss, F.hinge_loss, F.binary_cross_entropy_with_logits])
def test_losses_keep_float32(loss):
    x = fg.tensor(np.ones((2, 2), np.float32), requires_grad=True)
    out = loss(x, fg.tensor(np.ones((2, 2), np.float32)))
    assert out.dtype == F32
    out.backward()
    assert x.grad.dtype == F32


def test_losses_replay_on_a_tape():
    rng = np.random.default_rng(2)
    w = fg.tensor(rng.standard_normal((3, 4)), requires_grad=True)
    x = fg.tensor(rng.standard_normal((5, 3)))
    y = np.array([0, 1, 3, 2, 1])
    logits = x @ w
    loss = (F.cross_entropy(logits, y) + F.mse_loss(F.softmax(logits), np.eye(4)[y])
            + F.binary_cross_entropy_with_logits(logits, np.eye(4)[y])
            + F.hinge_loss(logits, 2 * np.eye(4)[y] - 1))
    tape = fg.lower(loss)
    x.data[...] = rng.standard_normal((5, 3))
    w.grad = None
    tape.forward()
    tape.backward()
    w2 = fg.tensor(w.data, requires_grad=True)
    logits2 = fg.tensor(x.data) @ w2
    loss2 = (F.cross_entropy(logits2, y) + F.mse_loss(F.softmax(logits2), np.eye(4)[y])
             + F.binary_cross_entropy_with_logits(logits2, np.eye(4)[y])
             + F.hinge_loss(logits2, 2 * np.eye(4)[y] - 1))
    loss2.backward()
    assert loss.data.tobytes() == loss2.data.tobytes()
    assert w.grad.tobytes() == w2.grad.tobytes()
