"""fastgrad.save / fastgrad.load: .npz checkpoints with a format version, never pickle."""

import io
import math
import os
from collections import OrderedDict

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import fastgrad as fg
from fastgrad import serialization
from fastgrad.serialization import load, save


from checkpoint_helpers import assert_same, optimizer_like_state, roundtrip


# -- round trips -------------------------------------------------------------------------


def test_exported_as_fg_save_and_load():
    assert fg.save is serialization.save
    assert fg.load is serialization.load


def test_state_dict_round_trip(tmp_path):
    np.random.seed(0)
    model = fg.nn.MLP(3, [4, 2])
    sd = model.state_dict()
    back = roundtrip(sd, tmp_path)
    assert_same(back, sd)
    assert set(back) == set(sd)
    assert serialization._META not in back


def test_optimizer_state_round_trip(tmp_path):
    state = optimizer_like_state()
    back = roundtrip(state, tmp_path)
    assert_same(back, state)
    assert isinstance(back["defaults"]["betas"], tuple)   # not turned into a list
    assert isinstance(back["step"], int)


def test_real_optimizer_state_dict_round_trip(tmp_path):
    np.random.seed(1)
    model = fg.nn.MLP(2, [3, 1])
    opt = fg.optim.Adam(model.parameters(), lr=0.01)
    for p in model.parameters():
        p.grad[...] = 1.0
    opt.step()
    state = opt.state_dict()
    assert_same(roundtrip(state, tmp_path), state)


def test_nested_checkpoint_round_trip(tmp_path):
    np.random.seed(2)
    model = fg.nn.Linear(2, 2)
    ckpt = {"model": model.state_dict(), "optim": optimizer_like_state(), "epoch": 3,
            "history": [0.5, 0.25, float("nan")], "note": "héllo ✓"}
    assert_same(roundtrip(ckpt, tmp_path), ckpt)


@pytest.mark.parametrize("dtype", ["float64", "float32", "float16", "int64", "int32", "int8",
                                   "uint8", "uint64", "bool", "complex128", ">f8", "<i2"])
def test_array_dtypes_preserved(tmp_path, dtype):
    arr = (np.arange(12) % 3).astype(dtype).reshape(3, 4)
    back = roundtrip({"a": arr}, tmp_path)
    assert_same(back, {"a": arr})


@pytest.mark.parametrize("shape", [(), (0,), (0, 3), (1,), (2, 3, 4), (1, 1, 1, 1, 1)])
def test_array_shapes_preserved(tmp_path, shape):
    arr = np.arange(math.prod(shape), dtype=np.float64).reshape(shape)
    assert_same(roundtrip({"a": arr}, tmp_path), {"a": arr})


def test_non_contiguous_and_fortran_arrays(tmp_path):
    base = np.arange(24.0).reshape(4, 6)
    obj = {"view": base[::2, 1::2], "T": base.T, "F": np.asfortranarray(base)}
    back = roundtrip(obj, tmp_path)
    for k in obj:
        np.testing.assert_array_equal(back[k], obj[k])
        assert back[k].dtype == obj[k].dtype and back[k].shape == obj[k].shape


def test_loaded_arrays_are_writable_copies(tmp_path):
    back = roundtrip({"a": np.zeros(3)}, tmp_path)
    back["a"][0] = 1.0          # not a read-only view of the file's bytes
    assert back["a"][0] == 1.0


def test_python_and_numpy_scalars(tmp_path):
    obj = {"int": 3, "big": 2 ** 100, "neg": -7, "float": 0.1, "negzero": -0.0,
           "inf": float("inf"), "nan": float("nan"), "bool": True, "false": False,
           "none": None, "str": "a\"b\\c\n", "complex": 1.5 - 2j,
           "f32": np.float32(1.25), "i64": np.int64(-4), "u8": np.uint8(200),
           "npbool": np.bool_(True), "f64": np.float64(2.5)}
    back = roundtrip(obj, tmp_path)
    assert_same(back, obj)
    assert type(back["bool"]) is bool and type(back["int"]) is int


def test_containers_and_key_types(tmp_path):
    obj = OrderedDict([("b", 1), ("a", [1, (2, [3, ()]), {}]), ("empty", [])])
    back = roundtrip(obj, tmp_path)
    assert_same(back, obj)
    int_keys = {0: np.ones(2), 1: {"momentum_buffer": np.zeros(2)}, -5: "x"}
    assert_same(roundtrip(int_keys, tmp_path), int_keys)
    assert_same(roundtrip([np.ones(1), 2], tmp_path), [np.ones(1), 2])
    assert_same(roundtrip(np.arange(3), tmp_path), np.arange(3))


def test_key_order_and_tricky_keys(tmp_path):
    keys = ["z", "a", "0.weight", "arr_0", "__fastgrad__", "a/b", "", "x" * 300, "é"]
    obj = {k: np.full(2, i, dtype=np.int64) for i, k in enumerate(keys)}
    back = roundtrip(obj, tmp_path)
    assert_same(back, obj)


def test_tensor_saved_as_its_data(tmp_path):
    t = fg.tensor(np.arange(4.0).reshape(2, 2), requires_grad=True)
    back = roundtrip({"t": t}, tmp_path)
    assert isinstance(back["t"], np.ndarray)
    np.testing.assert_array_equal(back["t"], t.data)


def test_deeply_nested_structure(tmp_path):
    deep = leaf = []
    for _ in range(20_000):
        nxt = []
        leaf.append(nxt)
        leaf = nxt
    leaf.append(np.ones(2))
    back = roundtrip(deep, tmp_path)
    depth = 0
    while back and isinstance(back[0], list):
        back = back[0]
        depth += 1
    assert depth == 20_000
    np.testing.assert_array_equal(back[0], np.ones(2))


def test_path_is_written_exactly_as_given(tmp_path):
    path = tmp_path / "model.ckpt"
    save({"a": np.ones(2)}, str(path))
    assert path.exists() and not (tmp_path / "model.ckpt.npz").exists()
    assert_same(load(str(path)), {"a": np.ones(2)})
    assert_same(load(path), {"a": np.ones(2)})       # pathlib too


def test_file_objects(tmp_path):
    buf = io.BytesIO()
    save({"a": np.arange(3)}, buf)
    buf.seek(0)
    assert_same(load(buf), {"a": np.arange(3)})
    with open(tmp_path / "f.npz", "wb") as f:
        save({"b": 1.0}, f)
    with open(tmp_path / "f.npz", "rb") as f:
        assert load(f) == {"b": 1.0}


def test_compressed_round_trip(tmp_path):
    state = optimizer_like_state()
    save(state, tmp_path / "c.npz", compress=True)
    assert_same(load(tmp_path / "c.npz"), state)


def test_overwrite_and_no_temporary_files_left(tmp_path):
    path = tmp_path / "ckpt.npz"
    save({"a": np.zeros(2)}, path)
    save({"a": np.ones(3)}, path)
    assert_same(load(path), {"a": np.ones(3)})
    assert sorted(os.listdir(tmp_path)) == ["ckpt.npz"]


def test_failed_save_keeps_previous_checkpoint(tmp_path):
    path = tmp_path / "ckpt.npz"
    save({"a": np.ones(2)}, path)
    with pytest.raises(TypeError):
        save({"a": np.ones(2), "bad": object()}, path)
    assert_same(load(path), {"a": np.ones(2)})
    assert sorted(os.listdir(tmp_path)) == ["ckpt.npz"]


def test_readable_with_numpy_without_pickle(tmp_path):
    np.random.seed(3)
    sd = fg.nn.MLP(2, [3, 1]).state_dict()
    save(sd, tmp_path / "m.npz")
    with np.load(tmp_path / "m.npz", allow_pickle=False) as z:
        for name, arr in sd.items():
            np.testing.assert_array_equal(z[name], arr)


def test_model_round_trip_through_file(tmp_path):
    np.random.seed(4)
    a = fg.nn.MLP(3, [5, 2])
    np.random.seed(5)
    b = fg.nn.MLP(3, [5, 2])
    save(a.state_dict(), tmp_path / "a.npz")
    b.load_state_dict(load(tmp_path / "a.npz"))
    x = np.random.default_rng(0).standard_normal((4, 3))
    np.testing.assert_array_equal(a(fg.tensor(x)).data, b(fg.tensor(x)).data)


# -- property: whatever is saved comes back ---------------------------------------------

_arrays = st.builds(
    lambda dt, shape, seed: np.random.default_rng(seed).integers(-50, 50, shape).astype(dt),
    st.sampled_from(["float64", "float32", "int64", "int8", "bool", "uint16"]),
    st.lists(st.integers(0, 3), max_size=3).map(tuple), st.integers(0, 2 ** 16))
_scalars = st.one_of(st.none(), st.booleans(), st.integers(-2 ** 70, 2 ** 70),
                     st.floats(allow_nan=True), st.text(max_size=8),
                     st.floats(allow_nan=False).map(np.float64),
                     st.integers(-100, 100).map(np.int32))
_keys = st.one_of(st.text(max_size=6), st.integers(-5, 5))
_trees = st.recursive(
    st.one_of(_scalars, _arrays),
    lambda children: st.one_of(st.lists(children, max_size=4),
                               st.lists(children, max_size=3).map(tuple),
                               st.dictionaries(_keys, children, max_size=4)),
    max_leaves=12)


@given(_trees)
def test_any_supported_tree_round_trips(tree):
    buf = io.BytesIO()
    save(tree, buf)
    buf.seek(0)
    assert_same(load(buf), tree)


# -- what cannot be saved ---------------------------------------------------------------


def test_object_arrays_cannot_be_saved(tmp_path):
    with pytest.raises((TypeError, ValueError), match="object"):
        save({"o": np.array([1, "a", None], dtype=object)}, tmp_path / "o.npz")
    assert not (tmp_path / "o.npz").exists()


@pytest.mark.parametrize("bad", [object(), {1, 2}, b"bytes", np.dtype("f8"), len])
def test_unsupported_values_raise_type_error_naming_the_key(tmp_path, bad):
    with pytest.raises(TypeError, match=r"\['weights'\]\[1\]"):
        save({"weights": [np.ones(1), bad]}, tmp_path / "x.npz")


def test_unsupported_keys(tmp_path):
    with pytest.raises(TypeError, match="key"):
        save({(1, 2): np.ones(1)}, tmp_path / "x.npz")
    with pytest.raises(TypeError, match="key"):
        save({True: np.ones(1)}, tmp_path / "x.npz")


def test_reference_cycle_is_refused(tmp_path):
    d = {"a": []}
    d["a"].append(d)
    with pytest.raises(ValueError, match="cycle"):
        save(d, tmp_path / "x.npz")
