"""Tape statistics (``tape.stats()``): what a lowered program holds and costs.

Counts come from the tape's own program (``tape._program()``), so they are
exact; the FLOP figures are estimates:

* scalar tapes: 1 per instruction, 2 per ``x*y`` term of a ``dot`` (1 for a
  plain addend);
* tensor tapes: 1 per output element for elementwise ops, 1 per input
  element for ``sum``/``max``, ``2·m·n·k`` per (batched) matmul, 5 per
  element for ``log_softmax``/``cross_entropy`` logits, 0 for data movement
  (``reshape``, ``transpose``, ``getitem``, ``cast``);
* backward ≈ 2 × forward (each input's gradient costs about a forward's worth).
"""

from __future__ import annotations

from math import prod

__all__ = ["tape_stats", "TapeStats"]

_MOVES = {"reshape", "transpose", "getitem", "cast"}
_SOFTMAX = {"log_softmax", "cross_entropy"}


def _bytes(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"  # pragma: no cover


def _count(n: float) -> str:
    for scale, suffix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if n >= scale:
            return f"{n / scale:.3g}{suffix}"
    return str(int(n))


class TapeStats(dict):
    """A dict of tape statistics with a readable ``str``.

    Keys: ``kind`` ('scalar' or 'tensor'), ``instructions``, ``ops`` (op name
    -> count), ``slots``, ``leaves``, ``nodes`` (graph nodes lowered),
    ``value_bytes``, ``grad_bytes``, ``flops_forward``, ``flops_backward``,
    and for scalar tapes ``dot_terms`` (terms folded into dot instructions).
    """

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def __str__(self) -> str:
        ops = ", ".join(f"{op} {n}" for op, n in self["ops"].items()) or "none"
        lines = [
            f"{self['kind']} tape: {self['instructions']} instructions, {self['slots']} slots "
            f"({self['leaves']} leaves), {self['nodes']} graph nodes",
            f"  ops: {ops}",
            f"  buffers: values {_bytes(self['value_bytes'])}, "
            f"grads {_bytes(self['grad_bytes'])}",
            f"  FLOPs (estimate): forward {_count(self['flops_forward'])}, "
            f"backward {_count(self['flops_backward'])}",
        ]
        if "dot_terms" in self:
            lines[1] += f" ({self['dot_terms']} terms in dots)"
        return "\n".join(lines)

    def __repr__(self) -> str:
        return (f"<TapeStats {self['kind']}: {self['instructions']} instructions, "
                f"{self['slots']} slots, {self['value_bytes'] + self['grad_bytes']} bytes, "
                f"~{_count(self['flops_forward'])} FLOPs forward>")


def _tensor_flops(ins: dict) -> int:
    op, meta = ins["op"], ins["meta"]
    if op == "matmul":              # batch, rows, cols, inner, ...
        return 2 * meta[0] * meta[1] * meta[2] * meta[3]
    if op in _MOVES:
        return 0
    if op in ("sum", "max"):
        return max(int(ins["inputs"][0].size), 1)
    if op in _SOFTMAX:
        return 5 * int(ins["inputs"][0].size)
    return int(prod(ins["shape"]))


def tape_stats(tape) -> TapeStats:
    """Statistics of a Tape or ArrayTape (see the module docstring)."""
    prog = tape._program()
    ops: dict[str, int] = {}
    flops = 0
    terms = 0
    scalar = prog["kind"] == "scalar"
    for ins in prog["instructions"]:
        op = ins["op"]
        ops[op] = ops.get(op, 0) + 1
        if not scalar:
            flops += _tensor_flops(ins)
        elif op == "dot":
            pairs = ins["pairs"]
            terms += len(pairs)
            flops += sum(1 if y == prog["one_slot"] else 2 for _, y in pairs)
        else:
            flops += 1
    stats = TapeStats(
        kind=prog["kind"], instructions=len(prog["instructions"]),
        ops=dict(sorted(ops.items(), key=lambda t: (-t[1], t[0]))),
        slots=prog["n_slots"], leaves=prog["n_leaves"], nodes=prog["n_nodes"],
        value_bytes=int(prog["value_bytes"]), grad_bytes=int(prog["grad_bytes"]),
        flops_forward=flops, flops_backward=2 * flops,
    )
    if scalar:
        stats["dot_terms"] = terms
    return stats
