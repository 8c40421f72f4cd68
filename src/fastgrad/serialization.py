"""``fastgrad.save`` / ``fastgrad.load``: checkpoints as ``.npz`` files, without pickle.

A checkpoint is a zip archive in numpy's ``.npz`` layout: one ``.npy`` member
per array, plus a metadata member ``__fastgrad__.npy`` holding UTF-8 JSON that
records the format version and the structure of the saved object (dicts,
lists, tuples, scalars, and which member each array is).  So::

    fg.save(model.state_dict(), "model.npz")
    model.load_state_dict(fg.load("model.npz"))
    fg.save({"model": model.state_dict(), "optim": opt.state_dict()}, "ckpt.npz")

``load`` returns exactly what was saved: the same keys in the same order,
the same nesting (dict / OrderedDict / list / tuple), arrays with the same
dtype and shape, Python scalars (None, bool, int, float, complex, str) as
themselves and numpy scalars as numpy scalars of the same dtype.  A
``Tensor`` is saved as its data array and loads as an ``ndarray``.

Nothing is ever unpickled: object arrays cannot be saved, and loading only
parses JSON and ``.npy`` headers.  A file that is truncated, corrupt, not an
``.npz``, or of an unknown format version raises ``ValueError`` saying so; a
missing file raises ``FileNotFoundError``.  The archive is also readable with
``numpy.load(path, allow_pickle=False)`` (array members are named after their
keys where the key allows it).

``save`` writes to a temporary file next to ``path`` and renames it into
place, so an interrupted save never destroys the previous checkpoint.
"""

from __future__ import annotations

import io
import json
import math
import os
import re
import tempfile
import threading
import zipfile
from collections import OrderedDict
from typing import IO, Any, Union

import numpy as np
from numpy.lib import format as npy_format

__all__ = ["save", "load", "FORMAT_VERSION"]

FORMAT_NAME = "fastgrad-checkpoint"
FORMAT_VERSION = 1
_META = "__fastgrad__"
_MEMBER_NAME = re.compile(r"[A-Za-z0-9_.\-]{1,120}\Z")
_umask_lock = threading.Lock()

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


def _encode(obj: Any) -> tuple[list[Any], list[tuple[str, np.ndarray[Any, Any]]]]:
    """The object as a flat node table (JSON-able) and its arrays.

    Node 0 is the root.  Containers list their children by node index, so
    the JSON has a fixed, shallow depth however deep the object is nested,
    and this walk uses an explicit stack (no recursion).
    """
    from fastgrad.tensor import Tensor

    nodes: list[Any] = []
    arrays: list[tuple[str, np.ndarray[Any, Any]]] = []
    names: set[str] = {_META}
    active: set[int] = set()

    def member_name(path: _Path) -> str:
        name = ".".join(str(k) for k in _path_keys(path))
        if not _MEMBER_NAME.match(name) or name in names or name.startswith("arr_"):
            name = f"arr_{len(arrays)}"
        names.add(name)
        return name

    # work items: (obj, path, holder, slot) -- put the new node's index in
    # holder[slot]; or ("exit", id) to leave a container (cycle detection).
    root_holder: list[Any] = [None]
    stack: list[Any] = [(obj, None, root_holder, 0)]
    while stack:
        item = stack.pop()
        if item[0] is _EXIT:
            active.discard(item[1])
            continue
        value, path, holder, slot = item
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
            if id(value) in active:
                raise ValueError(f"save: {_describe_path(path)} contains itself (a "
                                 f"reference cycle)")
            active.add(id(value))
            stack.append((_EXIT, id(value)))
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


_EXIT = object()


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
    """
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
        if expected > info.file_size:
            raise _Corrupt(f"entry {name!r} declares shape {shape} of {dtype} "
                           f"({expected} bytes) but holds {info.file_size} bytes")
        data = fp.read()        # to the end: zipfile checks the CRC there
    if len(data) != expected:
        raise _Corrupt(f"entry {name!r} should hold {expected} bytes of {dtype} data for "
                       f"shape {shape}, found {len(data)}")
    if expected == 0:
        return np.empty(shape, dtype=dtype, order="F" if fortran else "C")
    flat = np.frombuffer(data, dtype=dtype, count=count).copy()
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

    def node(i: Any) -> int:
        if not isinstance(i, int) or isinstance(i, bool) or not 0 < i < len(nodes):
            raise _Corrupt(f"bad node reference {i!r}")
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
                if node(child) <= index:
                    raise _Corrupt(f"node {index} refers back to node {child}")
                items.append(values[child])
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
                if node(child) <= index:
                    raise _Corrupt(f"node {index} refers back to node {child}")
                if key in out:
                    raise _Corrupt(f"duplicate key {key!r} in node {index}")
                out[key] = values[child]
            values[index] = out
        else:
            raise _Corrupt(f"bad node {index} ({kind!r})")

    members = {n[:-4] if n.endswith(".npy") else n for n in zf.namelist()}
    extra = members - used - {_META}
    if extra:
        raise _Corrupt(f"entries {sorted(extra)} are not described by the metadata")
    return values[0]


def load(path: PathLike | IO[bytes]) -> Any:
    """Read a checkpoint written by :func:`save`; returns exactly what was saved.

    ``path`` is a file name or a readable binary file object.  Raises
    ``FileNotFoundError`` when the file does not exist, and ``ValueError``
    when it is not a fastgrad checkpoint: truncated, corrupt, not an
    ``.npz`` archive, missing fastgrad's metadata, or of a format version
    this fastgrad cannot read.  Never unpickles anything.
    """
    if hasattr(path, "read"):
        raw = path.read()
        shown = getattr(path, "name", "<file object>")
    else:
        shown = os.fspath(path)
        with open(shown, "rb") as f:
            raw = f.read()
    if not isinstance(raw, (bytes, bytearray)):
        raise TypeError(f"load: the file object returned {type(raw).__name__}, not bytes "
                        f"(open it in binary mode)")
    prefix = f"load: {shown!r} is not a fastgrad checkpoint"
    if not raw:
        raise ValueError(f"{prefix}: the file is empty")
    try:
        zf = zipfile.ZipFile(io.BytesIO(raw))
    except Exception as exc:
        what = "truncated or corrupt" if raw[:2] == b"PK" else "not an .npz (zip) archive"
        raise ValueError(f"{prefix}: {what} ({exc})") from None
    try:
        with zf:
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
    except _Version as exc:
        raise ValueError(f"load: {shown!r}: {exc}") from None
    except ValueError as exc:
        if str(exc).startswith(prefix):
            raise
        raise ValueError(f"{prefix}: the file is corrupt ({exc})") from None
    except _Corrupt as exc:
        raise ValueError(f"{prefix}: the file is corrupt ({exc})") from None
    except Exception as exc:   # zipfile/zlib/npy-header errors on damaged content
        raise ValueError(f"{prefix}: the file is truncated or corrupt "
                         f"({type(exc).__name__}: {exc})") from None
