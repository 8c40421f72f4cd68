"""``fastgrad.save`` / ``fastgrad.load``: checkpoints as ``.npz`` files, without pickle.

A checkpoint is a zip archive in numpy's ``.npz`` layout: one ``.npy`` member
per array, plus a metadata member ``__fastgrad__.npy`` holding UTF-8 JSON that
records the format version and the structure of the saved object (dicts,
lists, tuples, scalars, and which member each array is).  So::

    fg.save(model.state_dict(), "model.npz")
    model.load_state_dict(fg.load("model.npz"))
    fg.save({"model": model.state_dict(), "optim": opt.state_dict()}, "ckpt.npz")

``load`` returns exactly what was saved: the same keys in the same order,
the same nesting (dict / OrderedDict / list / tuple, to any depth), arrays
with the same dtype and shape, Python scalars (None, bool, int, float,
complex, str) as themselves and numpy scalars as numpy scalars of the same
dtype.  A ``Tensor`` is saved as its data array and loads as an ``ndarray``.

The saved structure is a tree.  A container that appears more than once in
the object is written out once per appearance and loads as separate copies;
a reference cycle is a ``ValueError``, and so is sharing that would expand
the object by more than ``MAX_SHARED_COPIES`` items (e.g. lists built by
repeated doubling, ``x = [x, x]``), which would otherwise take exponential
time and space.  ``load`` likewise refuses a file whose structure refers to
one node twice.

Nothing is ever unpickled: object arrays cannot be saved, and loading only
parses JSON and ``.npy`` headers.  Before decompressing anything ``load``
checks the sizes the archive declares against ``max_bytes`` (4 GiB by
default), and it never decompresses past a member's declared size, so a
small "zip bomb" cannot exhaust memory.  A file that is truncated, corrupt,
not an ``.npz``, has duplicate member names, or is of an unknown format
version raises ``ValueError`` saying so; a missing file raises
``FileNotFoundError``.  The archive is also readable with
``numpy.load(path, allow_pickle=False)`` (array members are named after their
keys where the key allows it).

``save`` writes to a temporary file next to ``path`` and renames it into
place, so an interrupted save never destroys the previous checkpoint.
"""

from __future__ import annotations

import io
import json
import math
import operator
import os
import re
import tempfile
import threading
import zipfile
from collections import OrderedDict
from typing import IO, Any, Union

import numpy as np
from numpy.lib import format as npy_format

__all__ = ["save", "load", "FORMAT_VERSION", "DEFAULT_MAX_BYTES", "MAX_SHARED_COPIES"]

FORMAT_NAME = "fastgrad-checkpoint"
FORMAT_VERSION = 1
_META = "__fastgrad__"
_MEMBER_NAME = re.compile(r"[A-Za-z0-9_.\-]{1,120}\Z")
_umask_lock = threading.Lock()

#: ``load``'s default bound on the bytes a checkpoint may decompress to.
DEFAULT_MAX_BYTES = 4 * 2**30
#: The metadata may declare at most ``max_bytes // _META_SHARE`` bytes: parsed
#: JSON takes up to ~20-30 times its text's size in memory.
_META_SHARE = 32
#: Members are decompressed this many bytes at a time (bounds zlib's output).
_CHUNK = 1 << 20
#: How many items ``save`` may add by writing shared containers out again.
MAX_SHARED_COPIES = 1_000_000

# A location in the saved object: None (the root) or (parent path, key).
_Path = Union[None, tuple[Any, Union[str, int]]]
PathLike = Union[str, bytes, "os.PathLike[str]", "os.PathLike[bytes]"]


# -- encoding -------------------------------------------------------------------

def _path_keys(path: _Path) -> list[str | int]:
    """The keys of a linked path ``(parent_path, key)`` (None is the root)."""
    keys: list[str | int] = []
    while path is not None:
        path, key = path
        keys.append(key)
    return keys[::-1]


def _describe_path(path: _Path) -> str:
    keys = _path_keys(path)
    return "obj" + "".join(f"[{k!r}]" for k in keys) if keys else "the object"


def _as_array(value: Any, path: _Path) -> np.ndarray[Any, Any]:
    arr = np.asarray(value)
    if arr.dtype.hasobject:
        raise TypeError(f"save: {_describe_path(path)} is an array of dtype {arr.dtype}; "
                        f"arrays of Python objects cannot be saved without pickle (convert "
                        f"it to a numeric dtype)")
    return arr


def _check_sharing(obj: Any) -> None:
    """Refuse cycles, and sharing that would blow the saved tree up.

    Walks each distinct container once (an explicit stack, no recursion) and
    computes how many items the tree that ``_encode`` writes would have, with
    every shared container written out once per appearance.  Linear in the
    number of distinct containers and their items, however deep or shared.
    """
    containers = (dict, list, tuple)
    if not isinstance(obj, containers):
        return
    expanded: dict[int, int] = {}      # id -> items in its written-out subtree
    where: dict[int, _Path] = {}       # id -> where it first appears
    active: set[int] = set()
    distinct = 1                       # items if nothing were shared (the root)
    shared: tuple[_Path, _Path] | None = None
    stack: list[Any] = [(False, obj, None)]
    while stack:
        leaving, value, path = stack.pop()
        key = id(value)
        if leaving:
            active.discard(key)
            items = value.values() if isinstance(value, dict) else value
            expanded[key] = 1 + sum(expanded[id(v)] if isinstance(v, containers) else 1
                                    for v in items)
            distinct += len(value)
        elif key in active:
            raise ValueError(f"save: {_describe_path(path)} contains itself (a reference "
                             f"cycle); a checkpoint holds a tree")
        elif key in expanded:
            if shared is None:
                shared = (path, where[key])
        else:
            active.add(key)
            where[key] = path
            stack.append((True, value, path))
            pairs = list(value.items() if isinstance(value, dict) else enumerate(value))
            stack.extend((False, v, (path, k)) for k, v in reversed(pairs)
                         if isinstance(v, containers))
    total = expanded[id(obj)]
    if total - distinct > MAX_SHARED_COPIES and shared is not None:
        raise ValueError(
            f"save: {_describe_path(shared[0])} is the same object as "
            f"{_describe_path(shared[1])}; a checkpoint stores a tree, so shared containers "
            f"are written out once per appearance, and this object would expand to {total} "
            f"items ({total - distinct} more than it holds, more than the "
            f"{MAX_SHARED_COPIES} allowed); save a structure without shared lists, dicts "
            f"or tuples")


def _encode(obj: Any) -> tuple[list[Any], list[tuple[str, np.ndarray[Any, Any]]]]:
    """The object as a flat node table (JSON-able) and its arrays.

    Node 0 is the root.  Containers list their children by node index, so
    the JSON has a fixed, shallow depth however deep the object is nested,
    and this walk uses an explicit stack (no recursion).  A shared container
    is written once per appearance; call ``_check_sharing`` first, which
    bounds the work that takes and refuses cycles.
    """
    from fastgrad.tensor import Tensor

    nodes: list[Any] = []
    arrays: list[tuple[str, np.ndarray[Any, Any]]] = []
    names: set[str] = {_META}

    def member_name(path: _Path) -> str:
        name = ".".join(str(k) for k in _path_keys(path))
        if not _MEMBER_NAME.match(name) or name in names or name.startswith("arr_"):
            name = f"arr_{len(arrays)}"
        names.add(name)
        return name

    # work items: (obj, path, holder, slot) -- put the new node's index in
    # holder[slot].
    root_holder: list[Any] = [None]
    stack: list[Any] = [(obj, None, root_holder, 0)]
    while stack:
        value, path, holder, slot = stack.pop()
        index = len(nodes)
        holder[slot] = index
        if value is None or isinstance(value, (bool, str)):
            nodes.append(["value", value])
        elif isinstance(value, int) and not isinstance(value, np.generic):
            nodes.append(["value", int(value)])
        elif isinstance(value, float) and not isinstance(value, np.generic):
            nodes.append(["float", _float_text(float(value))])
        elif isinstance(value, complex) and not isinstance(value, np.generic):
            nodes.append(["complex", _float_text(value.real), _float_text(value.imag)])
        elif isinstance(value, np.generic):
            arr = _as_array(value, path)
            name = member_name(path)
            arrays.append((name, arr))
            nodes.append(["scalar", name])
        elif isinstance(value, (np.ndarray, Tensor)):
            arr = _as_array(value._data if isinstance(value, Tensor) else value, path)
            name = member_name(path)
            arrays.append((name, arr))
            nodes.append(["array", name])
        elif isinstance(value, (dict, list, tuple)):
            if isinstance(value, dict):
                kind = "odict" if isinstance(value, OrderedDict) else "dict"
                entries: list[list[Any]] = []
                for key in value:
                    if isinstance(key, str):
                        entries.append(["s", key, None])
                    elif isinstance(key, int) and not isinstance(key, bool):
                        entries.append(["i", int(key), None])
                    else:
                        raise TypeError(f"save: {_describe_path(path)} has a key {key!r} of "
                                        f"type {type(key).__name__}; keys must be str or "
                                        f"int")
                nodes.append([kind, entries])
                children: list[Any] = [(value[entry[1]], (path, entry[1]), entry, 2)
                                       for entry in entries]
            else:
                kind = "tuple" if isinstance(value, tuple) else "list"
                slots: list[Any] = [None] * len(value)
                nodes.append([kind, slots])
                children = [(v, (path, i), slots, i) for i, v in enumerate(value)]
            stack.extend(reversed(children))
        else:
            raise TypeError(f"save: {_describe_path(path)} is a {type(value).__name__}; a "
                            f"checkpoint holds dicts, lists, tuples, arrays, Tensors and "
                            f"numbers/strings/None (no pickle)")
    return nodes, arrays


def _float_text(x: float) -> str:
    """A float as text that round-trips exactly (repr), nan/inf included."""
    return repr(float(x))


def _open_target(path: PathLike | IO[bytes]) -> tuple[IO[bytes], str | None, str | None]:
    """(file object, final path or None, temporary path or None)."""
    if hasattr(path, "write"):
        return path, None, None  # type: ignore[return-value]
    final = os.fsdecode(os.fspath(path))
    directory = os.path.dirname(os.path.abspath(final))
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(final) + ".", suffix=".tmp",
                               dir=directory)
    try:
        with _umask_lock:
            mask = os.umask(0)
            os.umask(mask)
        os.chmod(tmp, 0o666 & ~mask)
    except OSError:
        pass
    return os.fdopen(fd, "wb"), final, tmp


def save(obj: Any, path: PathLike | IO[bytes], compress: bool = False) -> None:
    """Write ``obj`` (a state dict, optimizer state, or a nest of them) to ``path``.

    ``obj`` may nest dicts (str or int keys), lists and tuples of numpy
    arrays, Tensors (saved as their data), numpy scalars, and Python None,
    bool, int, float, complex and str.  ``path`` is written exactly as given
    (no ``.npz`` is appended); it may also be a writable binary file object.
    ``compress=True`` deflates the members.  Raises ``TypeError`` for
    anything else (object arrays included: nothing is pickled).

    Nesting may be arbitrarily deep.  A container that appears more than
    once is written out once per appearance (it loads as separate copies);
    ``ValueError`` for a reference cycle, or for sharing that would add more
    than ``MAX_SHARED_COPIES`` items that way.
    """
    _check_sharing(obj)
    nodes, arrays = _encode(obj)
    meta = {"format": FORMAT_NAME, "version": FORMAT_VERSION, "nodes": nodes}
    text = json.dumps(meta, ensure_ascii=True, separators=(",", ":"), allow_nan=False)
    meta_array = np.frombuffer(text.encode("ascii"), dtype=np.uint8)
    compression = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED

    f, final, tmp = _open_target(path)
    try:
        with zipfile.ZipFile(f, "w", compression=compression, allowZip64=True) as zf:
            for name, arr in [(_META, meta_array)] + arrays:
                with zf.open(name + ".npy", "w", force_zip64=True) as member:
                    npy_format.write_array(member, arr, allow_pickle=False)
        if final is not None and tmp is not None:
            f.flush()
            os.fsync(f.fileno())
            f.close()
            os.replace(tmp, final)
            tmp = None
    finally:
        if final is not None:
            if not f.closed:
                f.close()
            if tmp is not None:
                try:
                    os.unlink(tmp)
                except OSError:
                    pass


# -- decoding -------------------------------------------------------------------

class _Corrupt(Exception):
    """Internal: the file's content is not a valid checkpoint."""


class _Version(Exception):
    """Internal: a well-formed checkpoint of a format version we cannot read."""


class _TooLarge(Exception):
    """Internal: the archive declares more than ``max_bytes``."""


def _check_archive(zf: zipfile.ZipFile, max_bytes: int) -> None:
    """Names, compression methods and declared sizes, before decompressing anything."""
    infos = zf.infolist()
    names: set[str] = set()
    for info in infos:
        if info.filename in names:
            raise _Corrupt(f"entry {info.filename!r} appears more than once in the archive")
        names.add(info.filename)
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise _Corrupt(f"entry {info.filename!r} uses zip compression method "
                           f"{info.compress_type} (a checkpoint's entries are stored or "
                           f"deflated)")
    how = "if you trust the file, raise the limit: fastgrad.load(path, max_bytes=...)"
    total = sum(info.file_size for info in infos)
    if total > max_bytes:
        largest = max(infos, key=lambda info: info.file_size)
        raise _TooLarge(f"its entries declare {total} bytes uncompressed (the largest, "
                        f"{largest.filename!r}, {largest.file_size} bytes), more than "
                        f"max_bytes={max_bytes}; {how}")
    meta = zf.NameToInfo.get(_META + ".npy")
    if meta is not None and meta.file_size > max_bytes // _META_SHARE:
        raise _TooLarge(f"its metadata entry {meta.filename!r} declares {meta.file_size} "
                        f"bytes, more than max_bytes // {_META_SHARE} = "
                        f"{max_bytes // _META_SHARE} (max_bytes={max_bytes}; parsed JSON "
                        f"takes many times its size in memory); {how}")


def _read_member(zf: zipfile.ZipFile, name: str) -> np.ndarray[Any, Any]:
    """One ``.npy`` member, validated before anything is allocated."""
    try:
        info = zf.getinfo(name)
    except KeyError:
        raise _Corrupt(f"entry {name!r} is missing") from None
    with zf.open(info) as fp:
        version = npy_format.read_magic(fp)
        if version == (1, 0):
            shape, fortran, dtype = npy_format.read_array_header_1_0(fp)
        elif version == (2, 0):
            shape, fortran, dtype = npy_format.read_array_header_2_0(fp)
        else:
            raise _Corrupt(f"entry {name!r} has unsupported .npy version {version}")
        if dtype.hasobject:
            raise _Corrupt(f"entry {name!r} holds Python objects (dtype {dtype}), which "
                           f"would need pickle")
        count = math.prod(shape)
        expected = count * dtype.itemsize
        if dtype.itemsize == 0 and count and np.empty(0, dtype).itemsize != 0:
            raise _Corrupt(f"entry {name!r} has dtype {dtype} of size 0, which numpy would "
                           f"allocate at size {np.empty(0, dtype).itemsize} for shape {shape}")
        if expected > info.file_size:
            raise _Corrupt(f"entry {name!r} declares shape {shape} of {dtype} "
                           f"({expected} bytes) but holds {info.file_size} bytes")
        # Bounded reads: zipfile never returns more than the declared size,
        # and each read decompresses at most _CHUNK bytes, so memory follows
        # the data that really arrives, never a member's claim; the one
        # growing buffer becomes the array (peak about the data's size).
        data = bytearray()
        while len(data) < expected:
            chunk = fp.read(min(_CHUNK, expected - len(data)))
            if not chunk:
                break
            data += chunk
        if len(data) != expected:
            raise _Corrupt(f"entry {name!r} should hold {expected} bytes of {dtype} data "
                           f"for shape {shape}, found {len(data)}")
        if fp.read(1):          # reaching the end also makes zipfile check the CRC
            raise _Corrupt(f"entry {name!r} holds more than the {expected} bytes of {dtype} "
                           f"data that shape {shape} needs")
    if expected == 0:
        return np.empty(shape, dtype=dtype, order="F" if fortran else "C")
    flat = np.frombuffer(data, dtype=dtype, count=count)     # writable: a bytearray
    if not flat.flags.aligned:
        flat = flat.copy()
    return flat.reshape(shape, order="F" if fortran else "C")


def _parse_float(text: Any) -> float:
    if not isinstance(text, str):
        raise _Corrupt("a float is not stored as text")
    try:
        return float(text)
    except ValueError:
        raise _Corrupt(f"bad float {text!r}") from None


def _decode(meta: Any, zf: zipfile.ZipFile) -> Any:
    if not isinstance(meta, dict) or meta.get("format") != FORMAT_NAME:
        raise _Corrupt("the metadata entry is not fastgrad's")
    version = meta.get("version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise _Corrupt(f"the format version {version!r} is not an integer")
    if version > FORMAT_VERSION:
        raise _Version(f"format version {version} is newer than this fastgrad can read "
                         f"(version {FORMAT_VERSION}); upgrade fastgrad to load it")
    if version != FORMAT_VERSION:
        raise _Version(f"unknown format version {version} (this fastgrad reads version "
                         f"{FORMAT_VERSION})")
    nodes = meta.get("nodes")
    if not isinstance(nodes, list) or not nodes:
        raise _Corrupt("the metadata has no structure")

    # The structure is a tree: every node but the root has exactly one
    # parent, which comes before it in the table.  A node referred to twice
    # (shared structure: a DAG of n nodes can stand for a tree of 2**n) or
    # by nothing is refused.
    parent = [-1] * len(nodes)

    def child_of(index: int, i: Any) -> int:
        if not isinstance(i, int) or isinstance(i, bool) or not 0 < i < len(nodes):
            raise _Corrupt(f"bad node reference {i!r}")
        if i <= index:
            raise _Corrupt(f"node {index} refers back to node {i}")
        if parent[i] >= 0:
            raise _Corrupt(f"node {i} is referred to by both node {parent[i]} and node "
                           f"{index} (shared structure; a checkpoint is a tree)")
        parent[i] = index
        return i

    used: set[str] = set()
    values: list[Any] = [None] * len(nodes)
    # Children always come after their parent in the table (the encoder's
    # preorder), so building from the end fills every child first.
    for index in range(len(nodes) - 1, -1, -1):
        entry = nodes[index]
        if not isinstance(entry, list) or not entry or not isinstance(entry[0], str):
            raise _Corrupt(f"bad node {index}")
        kind = entry[0]
        if kind == "value" and len(entry) == 2:
            v = entry[1]
            if not (v is None or isinstance(v, (bool, int, str))):
                raise _Corrupt(f"bad value in node {index}")
            values[index] = v
        elif kind == "float" and len(entry) == 2:
            values[index] = _parse_float(entry[1])
        elif kind == "complex" and len(entry) == 3:
            values[index] = complex(_parse_float(entry[1]), _parse_float(entry[2]))
        elif kind in ("array", "scalar") and len(entry) == 2 and isinstance(entry[1], str):
            name = entry[1]
            if name in used or name == _META:
                raise _Corrupt(f"entry {name!r} is used twice")
            used.add(name)
            arr = _read_member(zf, name + ".npy")
            if kind == "scalar":
                if arr.shape != ():
                    raise _Corrupt(f"scalar entry {name!r} has shape {arr.shape}")
                values[index] = arr[()]
            else:
                values[index] = arr
        elif kind in ("list", "tuple") and len(entry) == 2 and isinstance(entry[1], list):
            items = []
            for child in entry[1]:
                items.append(values[child_of(index, child)])
            values[index] = tuple(items) if kind == "tuple" else items
        elif kind in ("dict", "odict") and len(entry) == 2 and isinstance(entry[1], list):
            out: dict[Any, Any] = OrderedDict() if kind == "odict" else {}
            for item in entry[1]:
                if not (isinstance(item, list) and len(item) == 3):
                    raise _Corrupt(f"bad dict item in node {index}")
                tag, key, child = item
                if not ((tag == "s" and isinstance(key, str)) or
                        (tag == "i" and isinstance(key, int) and not isinstance(key, bool))):
                    raise _Corrupt(f"bad dict key in node {index}")
                child_of(index, child)
                if key in out:
                    raise _Corrupt(f"duplicate key {key!r} in node {index}")
                out[key] = values[child]
            values[index] = out
        else:
            raise _Corrupt(f"bad node {index} ({kind!r})")

    orphan = next((i for i in range(1, len(nodes)) if parent[i] < 0), None)
    if orphan is not None:
        raise _Corrupt(f"node {orphan} is not part of the structure (nothing refers to it)")
    extra = set(zf.namelist()) - {name + ".npy" for name in used} - {_META + ".npy"}
    if extra:
        raise _Corrupt(f"entries {sorted(extra)} are not described by the metadata")
    return values[0]


def _max_bytes(max_bytes: Any) -> int:
    try:
        if isinstance(max_bytes, bool):
            raise TypeError
        limit = operator.index(max_bytes)
    except TypeError:
        raise TypeError(f"load: max_bytes must be an int, got {max_bytes!r} of type "
                        f"{type(max_bytes).__name__}") from None
    if limit < 0:
        raise ValueError(f"load: max_bytes must be >= 0, got {limit}")
    return limit


def _read_stream(f: IO[bytes], limit: int, shown: Any) -> bytes:
    """A file object's remaining bytes, refusing more than ``limit``."""
    chunks: list[bytes] = []
    got = 0
    while got <= limit:
        chunk = f.read(min(_CHUNK, limit + 1 - got))
        if not isinstance(chunk, (bytes, bytearray)):
            raise TypeError(f"load: the file object returned {type(chunk).__name__}, not "
                            f"bytes (open it in binary mode)")
        if not chunk:
            break
        chunks.append(bytes(chunk))
        got += len(chunk)
    if got > limit:
        raise ValueError(f"load: {shown!r}: the file object holds more than "
                         f"max_bytes={limit} bytes (a file object is read into memory "
                         f"first); if you trust the file, raise the limit: "
                         f"fastgrad.load(f, max_bytes=...)")
    return b"".join(chunks)


def load(path: PathLike | IO[bytes], max_bytes: int = DEFAULT_MAX_BYTES) -> Any:
    """Read a checkpoint written by :func:`save`; returns exactly what was saved.

    ``path`` is a file name or a readable binary file object (read into
    memory from its current position).  ``max_bytes`` (default 4 GiB)
    bounds what the file may make ``load`` allocate: before decompressing
    anything, the sizes its entries declare must add up to at most
    ``max_bytes``, the JSON metadata entry to at most ``max_bytes // 32``,
    and a file object's length to at most ``max_bytes``; no entry is ever
    decompressed past its declared size.  Raise it to load a larger
    checkpoint you trust.

    Raises ``FileNotFoundError`` when the file does not exist, and
    ``ValueError`` when it exceeds ``max_bytes`` or is not a fastgrad
    checkpoint: truncated, corrupt, not an ``.npz`` archive, with duplicate
    entry names, missing fastgrad's metadata, with shared (non-tree)
    structure, or of a format version this fastgrad cannot read.  Never
    unpickles anything.
    """
    limit = _max_bytes(max_bytes)
    if hasattr(path, "read"):
        shown = getattr(path, "name", "<file object>")
        raw = _read_stream(path, limit, shown)   # type: ignore[arg-type]
        return _load_zip(io.BytesIO(raw), shown, limit)
    shown = os.fspath(path)
    with open(shown, "rb") as f:
        return _load_zip(f, shown, limit)


def _load_zip(f: IO[bytes], shown: Any, limit: int) -> Any:
    prefix = f"load: {shown!r} is not a fastgrad checkpoint"
    head = f.read(2)
    if not head:
        raise ValueError(f"{prefix}: the file is empty")
    f.seek(0)
    try:
        zf = zipfile.ZipFile(f)
    except Exception as exc:
        what = "truncated or corrupt" if head == b"PK" else "not an .npz (zip) archive"
        raise ValueError(f"{prefix}: {what} ({exc})") from None
    try:
        with zf:
            _check_archive(zf, limit)
            try:
                meta_array = _read_member(zf, _META + ".npy")
            except _Corrupt:
                if _META + ".npy" not in zf.namelist():
                    raise ValueError(
                        f"{prefix}: it has no {_META!r} metadata entry (a plain numpy "
                        f".npz? read it with numpy.load(path, allow_pickle=False))") from None
                raise
            if meta_array.dtype != np.uint8 or meta_array.ndim != 1:
                raise _Corrupt("the metadata entry is not UTF-8 text")
            try:
                meta = json.loads(meta_array.tobytes().decode("utf-8"))
            except (UnicodeDecodeError, ValueError, RecursionError) as exc:
                raise _Corrupt(f"the metadata is not valid JSON ({exc})") from None
            return _decode(meta, zf)
    except (_Version, _TooLarge) as exc:
        raise ValueError(f"load: {shown!r}: {exc}") from None
    except MemoryError:
        raise
    except ValueError as exc:
        if str(exc).startswith(prefix):
            raise
        raise ValueError(f"{prefix}: the file is corrupt ({exc})") from None
    except _Corrupt as exc:
        raise ValueError(f"{prefix}: the file is corrupt ({exc})") from None
    except Exception as exc:   # zipfile/zlib/npy-header errors on damaged content
        raise ValueError(f"{prefix}: the file is truncated or corrupt "
                         f"({type(exc).__name__}: {exc})") from None
