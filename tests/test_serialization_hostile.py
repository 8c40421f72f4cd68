"""fastgrad.load on hostile files: corrupt, lying, oversized, shared; never pickle."""

import io
import json
import pickle
import zipfile

import numpy as np
import pytest

import fastgrad as fg
from fastgrad import serialization
from fastgrad.serialization import load, save


from checkpoint_helpers import assert_same, optimizer_like_state, roundtrip


# -- every corrupt-file case: ValueError, never a crash or a raw error -------------------


def good_bytes(compress=False):
    buf = io.BytesIO()
    save(optimizer_like_state(), buf, compress=compress)
    return buf.getvalue()


def test_missing_file_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        load(tmp_path / "nope.npz")


@pytest.mark.parametrize("compress", [False, True])
def test_truncated_at_every_length(tmp_path, compress):
    raw = good_bytes(compress)
    path = tmp_path / "t.npz"
    for n in range(len(raw)):
        path.write_bytes(raw[:n])
        with pytest.raises(ValueError, match="not a fastgrad checkpoint") as info:
            load(path)
        assert "truncated" in str(info.value) or "corrupt" in str(info.value) \
            or "empty" in str(info.value) or "not an .npz" in str(info.value)


def test_empty_file(tmp_path):
    (tmp_path / "e.npz").write_bytes(b"")
    with pytest.raises(ValueError, match="empty"):
        load(tmp_path / "e.npz")


@pytest.mark.parametrize("compress", [False, True])
def test_every_single_byte_corruption_is_detected_or_harmless(compress):
    """Flip bits in each byte: either ValueError, or exactly the saved object
    (zip headers have fields nothing reads, e.g. timestamps).  A flipped size
    field may instead declare more than max_bytes."""
    raw = good_bytes(compress)
    expected = optimizer_like_state()
    for pos in range(len(raw)):
        damaged = bytearray(raw)
        damaged[pos] ^= 0x5A
        try:
            got = load(io.BytesIO(bytes(damaged)))
        except ValueError as exc:
            assert ("not a fastgrad checkpoint" in str(exc) or "format version" in str(exc)
                    or "max_bytes" in str(exc))
        else:
            assert_same(got, expected)


def test_random_bytes():
    rng = np.random.default_rng(0)
    for n in [1, 2, 4, 22, 100, 1000, 5000]:
        for _ in range(20):
            with pytest.raises(ValueError, match="not a fastgrad checkpoint"):
                load(io.BytesIO(rng.integers(0, 256, n, dtype=np.uint8).tobytes()))
    # a zip signature followed by junk
    with pytest.raises(ValueError, match="not a fastgrad checkpoint"):
        load(io.BytesIO(b"PK\x03\x04" + bytes(200)))


def test_plain_npy_and_text_files(tmp_path):
    np.save(tmp_path / "a.npy", np.ones(3))
    with pytest.raises(ValueError, match="not an .npz"):
        load(tmp_path / "a.npy")
    (tmp_path / "t.txt").write_text("hello")
    with pytest.raises(ValueError, match="not an .npz"):
        load(tmp_path / "t.txt")


def test_npz_without_metadata(tmp_path):
    np.savez(tmp_path / "plain.npz", weight=np.ones(3))
    with pytest.raises(ValueError, match="metadata"):
        load(tmp_path / "plain.npz")


def test_zip_that_is_not_npz(tmp_path):
    with zipfile.ZipFile(tmp_path / "z.npz", "w") as zf:
        zf.writestr("__fastgrad__.npy", b"not an npy header")
    with pytest.raises(ValueError, match="corrupt"):
        load(tmp_path / "z.npz")


def write_with_metadata(path, meta_text, **arrays):
    np.savez(path, __fastgrad__=np.frombuffer(meta_text.encode(), dtype=np.uint8), **arrays)


@pytest.mark.parametrize("meta", [
    "{not json",
    "[]",
    '{"format": "something-else", "version": 1, "nodes": [["value", 1]]}',
    '{"format": "fastgrad-checkpoint", "version": 1}',
    '{"format": "fastgrad-checkpoint", "version": 1, "nodes": []}',
    '{"format": "fastgrad-checkpoint", "version": 1, "nodes": [["array", "missing"]]}',
    '{"format": "fastgrad-checkpoint", "version": 1, "nodes": [["list", [0]]]}',
    '{"format": "fastgrad-checkpoint", "version": 1, "nodes": [["list", [7]]]}',
    '{"format": "fastgrad-checkpoint", "version": 1, "nodes": [["bogus", 1]]}',
    '{"format": "fastgrad-checkpoint", "version": 1, "nodes": [["float", "abc"]]}',
    '{"format": "fastgrad-checkpoint", "version": "1", "nodes": [["value", 1]]}',
    "[" * 100_000 + "]" * 100_000,
])
def test_corrupt_metadata(tmp_path, meta):
    write_with_metadata(tmp_path / "m.npz", meta)
    with pytest.raises(ValueError, match="not a fastgrad checkpoint"):
        load(tmp_path / "m.npz")


def test_member_not_described_by_metadata(tmp_path):
    write_with_metadata(
        tmp_path / "m.npz",
        '{"format": "fastgrad-checkpoint", "version": 1, "nodes": [["value", 1]]}',
        stowaway=np.ones(2))
    with pytest.raises(ValueError, match="stowaway"):
        load(tmp_path / "m.npz")


def test_newer_format_version(tmp_path, monkeypatch):
    monkeypatch.setattr(serialization, "FORMAT_VERSION", serialization.FORMAT_VERSION + 1)
    save({"a": np.ones(2)}, tmp_path / "new.npz")
    monkeypatch.undo()
    with pytest.raises(ValueError, match="version") as info:
        load(tmp_path / "new.npz")
    assert str(serialization.FORMAT_VERSION + 1) in str(info.value)


def test_older_unknown_format_version(tmp_path):
    write_with_metadata(tmp_path / "old.npz",
                        '{"format": "fastgrad-checkpoint", "version": 0, "nodes": [["value", 1]]}')
    with pytest.raises(ValueError, match="version 0"):
        load(tmp_path / "old.npz")


def test_array_header_larger_than_its_data(tmp_path):
    """A (CRC-valid) member whose header claims a huge shape is refused before
    anything is allocated."""
    from numpy.lib import format as npy_format

    member = io.BytesIO()
    npy_format.write_array_header_1_0(
        member, {"descr": "<f8", "fortran_order": False, "shape": (10 ** 12,)})
    member.write(np.ones(1).tobytes())
    meta = json.dumps({"format": "fastgrad-checkpoint", "version": 1,
                       "nodes": [["dict", [["s", "a", 1]]], ["array", "a"]]})
    meta_member = io.BytesIO()
    npy_format.write_array(meta_member, np.frombuffer(meta.encode(), np.uint8))
    with zipfile.ZipFile(tmp_path / "h.npz", "w") as zf:
        zf.writestr("__fastgrad__.npy", meta_member.getvalue())
        zf.writestr("a.npy", member.getvalue())
    with pytest.raises(ValueError, match="not a fastgrad checkpoint"):
        load(tmp_path / "h.npz")


# -- loading never runs code --------------------------------------------------------


class _Payload:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_pickle_file_is_not_unpickled(tmp_path):
    marker = tmp_path / "pwned"
    (tmp_path / "p.npz").write_bytes(pickle.dumps({"x": _Payload(marker)}))
    with pytest.raises(ValueError, match="not a fastgrad checkpoint"):
        load(tmp_path / "p.npz")
    assert not marker.exists()


def test_object_array_member_is_not_unpickled(tmp_path):
    marker = tmp_path / "pwned"
    payload = np.empty(1, dtype=object)
    payload[0] = _Payload(marker)
    meta = json.dumps({"format": "fastgrad-checkpoint", "version": 1,
                       "nodes": [["dict", [["s", "x", 1]]], ["array", "x"]]})
    np.savez(tmp_path / "o.npz", __fastgrad__=np.frombuffer(meta.encode(), np.uint8),
             x=payload)
    with pytest.raises(ValueError, match="pickle"):
        load(tmp_path / "o.npz")
    assert not marker.exists()


def test_metadata_is_not_among_the_keys(tmp_path):
    sd = {"a": np.ones(1), "b": {"c": 2}}
    back = roundtrip(sd, tmp_path)
    assert set(back) == {"a", "b"}


# -- hostile archives: bombs, lying sizes, duplicate names ------------------------------

from numpy.lib import format as npy_format  # noqa: E402


def npy_header(dtype, shape):
    buf = io.BytesIO()
    npy_format.write_array_header_1_0(
        buf, {"descr": np.dtype(dtype).str, "fortran_order": False, "shape": shape})
    return buf.getvalue()


def meta_member(nodes):
    text = json.dumps({"format": "fastgrad-checkpoint", "version": 1, "nodes": nodes})
    buf = io.BytesIO()
    npy_format.write_array(buf, np.frombuffer(text.encode(), np.uint8))
    return buf.getvalue()


ONE_ARRAY = [["dict", [["s", "a", 1]]], ["array", "a"]]


def write_zeros_member(zf, name, header, n_mib):
    """A deflated member: ``header`` then n_mib MiB of zeros, written 1 MiB at a time."""
    zeros = bytes(2 ** 20)
    with zf.open(name, "w") as member:
        member.write(header)
        for _ in range(n_mib):
            member.write(zeros)


def patch_declared_size(raw, name, size):
    """The archive with the uncompressed size its central directory declares for
    ``name`` overwritten (what zipfile trusts); the data is left as it is."""
    raw = bytearray(raw)
    pos = raw.find(b"PK\x01\x02")
    while pos >= 0:
        length = int.from_bytes(raw[pos + 28:pos + 30], "little")
        if raw[pos + 46:pos + 46 + length] == name.encode():
            raw[pos + 24:pos + 28] = size.to_bytes(4, "little")
            return bytes(raw)
        pos = raw.find(b"PK\x01\x02", pos + 4)
    raise AssertionError(f"no central directory entry for {name}")


def peak_traced_bytes(fn):
    """(result or exception, peak bytes Python and numpy allocated during fn())."""
    import tracemalloc

    tracemalloc.start()
    try:
        try:
            out = fn()
        except Exception as exc:        # noqa: BLE001 -- returned for the caller to check
            out = exc
        return out, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_load_max_bytes_defaults_to_4_gib():
    import inspect

    assert inspect.signature(fg.load).parameters["max_bytes"].default == 4 * 2 ** 30


def test_load_rejects_zip_bomb(tmp_path):
    """16 MiB of zeros deflate to ~16 KB; with max_bytes=1 MiB nothing is inflated."""
    path = tmp_path / "bomb.npz"
    header = npy_header(np.uint8, (16 * 2 ** 20,))
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("__fastgrad__.npy", meta_member(ONE_ARRAY))
        write_zeros_member(zf, "a.npy", header, 16)
    assert path.stat().st_size < 2 ** 20 // 8
    with zipfile.ZipFile(path) as zf:
        declared = sum(info.file_size for info in zf.infolist())
        member_size = zf.getinfo("a.npy").file_size
    err, peak = peak_traced_bytes(lambda: load(path, max_bytes=2 ** 20))
    assert isinstance(err, ValueError), err
    msg = str(err)
    assert "bomb.npz" in msg and "'a.npy'" in msg
    assert str(declared) in msg and str(member_size) in msg
    assert "max_bytes=1048576" in msg and "max_bytes=..." in msg
    assert peak < 2 ** 20
    # the limit can be raised for a file one trusts
    back = load(path, max_bytes=32 * 2 ** 20)
    assert back["a"].shape == (16 * 2 ** 20,) and not back["a"].any()


def test_load_rejects_declared_size_over_default_limit(tmp_path):
    """Two members declaring 3 GiB each: refused with the default max_bytes,
    before anything is decompressed."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("__fastgrad__.npy", meta_member(
            [["list", [1, 2]], ["array", "a"], ["array", "b"]]))
        zf.writestr("a.npy", npy_header(np.uint8, (4,)) + bytes(4))
        zf.writestr("b.npy", npy_header(np.uint8, (4,)) + bytes(4))
    raw = patch_declared_size(buf.getvalue(), "a.npy", 3 * 2 ** 30)
    raw = patch_declared_size(raw, "b.npy", 3 * 2 ** 30)
    (tmp_path / "big.npz").write_bytes(raw)
    with pytest.raises(ValueError, match=r"max_bytes=4294967296") as info:
        load(tmp_path / "big.npz")
    assert str(3 * 2 ** 30) in str(info.value)


def test_load_rejects_member_larger_than_declared(tmp_path):
    """A member whose data is 64 MiB but whose directory entry declares a few
    bytes: never inflated past the declared size (bounded memory), and the
    mismatch (a CRC error) is reported."""
    header = npy_header(np.uint8, (10,))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("__fastgrad__.npy", meta_member(ONE_ARRAY))
        write_zeros_member(zf, "a.npy", header, 64)
    (tmp_path / "lie.npz").write_bytes(
        patch_declared_size(buf.getvalue(), "a.npy", len(header) + 10))
    err, peak = peak_traced_bytes(lambda: load(tmp_path / "lie.npz"))
    assert isinstance(err, ValueError) and "not a fastgrad checkpoint" in str(err), err
    assert peak < 16 * 2 ** 20


def test_load_rejects_member_larger_than_its_npy_header(tmp_path):
    """The .npy header says 10 bytes, the member (honestly declared, within
    max_bytes) holds 64 MiB: only the header's size plus one byte is inflated."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("__fastgrad__.npy", meta_member(ONE_ARRAY))
        write_zeros_member(zf, "a.npy", npy_header(np.uint8, (10,)), 64)
    (tmp_path / "long.npz").write_bytes(buf.getvalue())
    err, peak = peak_traced_bytes(lambda: load(tmp_path / "long.npz"))
    assert isinstance(err, ValueError), err
    assert "'a.npy' holds more than the 10 bytes" in str(err)
    assert peak < 16 * 2 ** 20


def test_load_member_smaller_than_declared_allocates_only_what_arrives(tmp_path):
    """A member declaring 512 MiB (and an .npy header to match) that holds 10 bytes."""
    size = 512 * 2 ** 20
    header = npy_header(np.uint8, (size - 128,))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("__fastgrad__.npy", meta_member(ONE_ARRAY))
        zf.writestr("a.npy", header + bytes(10))
    (tmp_path / "short.npz").write_bytes(patch_declared_size(buf.getvalue(), "a.npy", size))
    err, peak = peak_traced_bytes(lambda: load(tmp_path / "short.npz"))
    assert isinstance(err, ValueError) and "not a fastgrad checkpoint" in str(err), err
    assert peak < 16 * 2 ** 20


def test_load_rejects_oversized_metadata(tmp_path):
    """The JSON metadata is bounded by max_bytes // 32 (parsed JSON is many times
    larger than its text)."""
    path = tmp_path / "m.npz"
    save({f"k{i}": i for i in range(2000)}, path)
    with zipfile.ZipFile(path) as zf:
        declared = sum(info.file_size for info in zf.infolist())
        meta_size = zf.getinfo("__fastgrad__.npy").file_size
    with pytest.raises(ValueError, match="metadata") as info:
        load(path, max_bytes=declared)       # the total fits, the metadata does not
    assert str(meta_size) in str(info.value) and f"max_bytes={declared}" in str(info.value)
    assert load(path, max_bytes=32 * meta_size)["k1999"] == 1999


def test_load_rejects_file_object_larger_than_max_bytes(tmp_path):
    """A file object is read into memory first, so its length counts too."""
    buf = io.BytesIO()
    state = {"a": np.arange(10_000.0)}
    save(state, buf)
    raw = buf.getvalue()
    with zipfile.ZipFile(io.BytesIO(raw)) as zf:
        declared = sum(info.file_size for info in zf.infolist())
    assert declared < len(raw)
    (tmp_path / "f.npz").write_bytes(raw)
    assert_same(load(tmp_path / "f.npz", max_bytes=declared), state)
    with pytest.raises(ValueError, match="file object holds more than max_bytes"):
        load(io.BytesIO(raw), max_bytes=declared)
    assert_same(load(io.BytesIO(raw), max_bytes=len(raw)), state)


@pytest.mark.parametrize("bad, exc", [(-1, ValueError), (1.5, TypeError), ("4GiB", TypeError),
                                      (True, TypeError), (None, TypeError)])
def test_load_rejects_bad_max_bytes(tmp_path, bad, exc):
    save({"a": 1}, tmp_path / "c.npz")
    with pytest.raises(exc, match="max_bytes"):
        load(tmp_path / "c.npz", max_bytes=bad)


def test_load_accepts_numpy_int_max_bytes(tmp_path):
    save({"a": 1}, tmp_path / "c.npz")
    assert load(tmp_path / "c.npz", max_bytes=np.int64(10 ** 6)) == {"a": 1}


@pytest.mark.parametrize("name", ["a.npy", "__fastgrad__.npy"])
def test_load_rejects_duplicate_member(tmp_path, name):
    path = tmp_path / "dup.npz"
    with pytest.warns(UserWarning, match="Duplicate name"):
        with zipfile.ZipFile(path, "w") as zf:
            zf.writestr("__fastgrad__.npy", meta_member(ONE_ARRAY))
            zf.writestr("a.npy", npy_header(np.float64, (1,)) + np.ones(1).tobytes())
            dup = meta_member(ONE_ARRAY) if name == "__fastgrad__.npy" else \
                npy_header(np.float64, (1,)) + np.zeros(1).tobytes()
            zf.writestr(name, dup)
    with pytest.raises(ValueError, match="more than once") as info:
        load(path)
    assert repr(name) in str(info.value)


def test_load_rejects_member_without_npy_suffix(tmp_path):
    """'x' next to 'x.npy' is a member the metadata does not describe."""
    path = tmp_path / "x.npz"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("__fastgrad__.npy", meta_member(ONE_ARRAY))
        zf.writestr("a.npy", npy_header(np.float64, (1,)) + np.ones(1).tobytes())
        zf.writestr("a", b"stowaway")
    with pytest.raises(ValueError, match=r"\['a'\]"):
        load(path)


def test_load_rejects_unsupported_compression(tmp_path):
    """bzip2/lzma members inflate without an output bound in zipfile: refused."""
    path = tmp_path / "bz.npz"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("__fastgrad__.npy", meta_member(ONE_ARRAY))
        zf.writestr("a.npy", npy_header(np.float64, (1,)) + np.ones(1).tobytes(),
                    compress_type=zipfile.ZIP_BZIP2)
    with pytest.raises(ValueError, match=r"'a.npy' uses zip compression method 12"):
        load(path)


@pytest.mark.parametrize("nodes", [
    [["list", [1, 1]], ["value", 0]],
    [["dict", [["s", "a", 1], ["s", "b", 1]]], ["value", 0]],
    [["list", [1, 2]], ["tuple", [2]], ["value", 0]],
    # 40 levels of [x, x]: a tree of 2**40 leaves in a few hundred bytes
    [["list", [i + 1, i + 1]] for i in range(40)] + [["value", 0]],
])
def test_load_rejects_shared_structure(tmp_path, nodes):
    write_with_metadata(tmp_path / "dag.npz", json.dumps(
        {"format": "fastgrad-checkpoint", "version": 1, "nodes": nodes}))
    with pytest.raises(ValueError, match="shared structure"):
        load(tmp_path / "dag.npz")


def test_load_rejects_shared_array_node(tmp_path):
    write_with_metadata(tmp_path / "dag.npz", json.dumps(
        {"format": "fastgrad-checkpoint", "version": 1,
         "nodes": [["list", [1, 1]], ["array", "a"]]}), a=np.ones(2))
    with pytest.raises(ValueError, match="shared structure"):
        load(tmp_path / "dag.npz")


def test_load_rejects_unreferenced_node(tmp_path):
    write_with_metadata(tmp_path / "orphan.npz", json.dumps(
        {"format": "fastgrad-checkpoint", "version": 1,
         "nodes": [["list", [2]], ["value", 1], ["value", 2]]}))
    with pytest.raises(ValueError, match="node 1 is not part of the structure"):
        load(tmp_path / "orphan.npz")


# -- save: shared sub-structure and cycles ------------------------------------------------


def test_save_writes_shared_containers_as_copies(tmp_path):
    betas = (0.9, 0.999)
    sub = {"w": np.arange(3.0)}
    obj = {"a": betas, "b": betas, "c": sub, "d": [sub, sub], "e": [(), ()]}
    back = roundtrip(obj, tmp_path)
    expected = {"a": betas, "b": betas, "c": sub, "d": [sub, sub], "e": [(), ()]}
    assert_same(back, expected)
    assert back["c"] is not back["d"][0] and back["d"][0] is not back["d"][1]
    back["c"]["w"][0] = 7.0                 # independent copies
    assert back["d"][0]["w"][0] == 0.0


def test_save_rejects_exponentially_shared_structure(tmp_path):
    """x = [x, x] forty times is 3 * 2**40 - 1 items written out: refused at once."""
    x = [np.zeros(1)]
    for _ in range(40):
        x = [x, x]
    with pytest.raises(ValueError, match=r"\[1\] is the same object as obj\[0\]") as info:
        save(x, tmp_path / "x.npz")
    assert f"expand to {3 * 2 ** 40 - 1} items" in str(info.value)
    assert not (tmp_path / "x.npz").exists()


def test_save_rejects_sharing_beyond_max_shared_copies(tmp_path, monkeypatch):
    monkeypatch.setattr(serialization, "MAX_SHARED_COPIES", 1000)
    x = [0]
    for _ in range(8):                       # 3 * 2**8 - 1 = 767 items written, 18 distinct
        x = [x, x]
    save(x, tmp_path / "ok.npz")
    assert_same(load(tmp_path / "ok.npz"), x)
    x = [x, x]                               # 1535 written, 20 distinct: > 1000 extra
    with pytest.raises(ValueError, match="shared"):
        save(x, tmp_path / "no.npz")
    shared = [list(range(600))] * 2          # one copy of 601 items: allowed
    save(shared, tmp_path / "ok2.npz")
    assert_same(load(tmp_path / "ok2.npz"), shared)
    with pytest.raises(ValueError, match="more than the 1000 allowed"):
        save([list(range(600))] * 3, tmp_path / "no2.npz")


@pytest.mark.parametrize("make", ["list", "dict", "tuple"])
def test_save_rejects_deep_reference_cycle(tmp_path, make):
    head = cur = []
    for _ in range(50_000):
        nxt = []
        cur.append(nxt if make == "list" else {"k": nxt} if make == "dict" else (nxt,))
        cur = nxt
    cur.append(head)
    with pytest.raises(ValueError, match="reference cycle"):
        save(head, tmp_path / "c.npz")


def test_load_peak_memory_is_about_the_data_size(tmp_path):
    """A checkpoint (or bomb) within max_bytes costs about its data once, not twice."""
    size = 16 * 2 ** 20
    save({"a": np.zeros(size, dtype=np.uint8)}, tmp_path / "z.npz", compress=True)
    back, peak = peak_traced_bytes(lambda: load(tmp_path / "z.npz"))
    assert back["a"].shape == (size,) and not back["a"].any()
    back["a"][0] = 1                         # writable
    assert peak < 1.5 * size


@pytest.mark.parametrize("descr", ["|S0", "<U0"])
def test_load_rejects_zero_size_string_dtype(tmp_path, descr):
    """'|S0' declares 0 bytes of data, but numpy would allocate it as 'S1'
    (one byte per element: 10**12 here)."""
    member = io.BytesIO()
    npy_format.write_array_header_1_0(
        member, {"descr": descr, "fortran_order": False, "shape": (10 ** 12,)})
    path = tmp_path / "s0.npz"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("__fastgrad__.npy", meta_member(ONE_ARRAY))
        zf.writestr("a.npy", member.getvalue())
    err, peak = peak_traced_bytes(lambda: load(path))
    assert isinstance(err, ValueError) and "size 0" in str(err), err
    assert peak < 2 ** 20


def test_zero_size_void_arrays_round_trip(tmp_path):
    arr = np.empty((3, 2), dtype="V0")
    back = roundtrip({"v": arr}, tmp_path)
    assert back["v"].dtype == arr.dtype and back["v"].shape == arr.shape
