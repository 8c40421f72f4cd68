"""Type stubs for fastgrad._atape (compiled from _atape.pyx): the tensor ArrayTape."""

from collections.abc import Sequence
from typing import Any, final

import numpy as np
from numpy.typing import ArrayLike, NDArray

from fastgrad.tensor import Tensor

__all__ = ["ArrayTape", "eager_forward", "DTYPE_CODES"]

# Re-exported from the instruction executor.
from fastgrad._instr import DTYPE_CODES as DTYPE_CODES
from fastgrad._instr import eager_forward as eager_forward

@final
class ArrayTape:
    """A lowered tensor graph (built by ``fastgrad.lower``; see fastgrad.tensor)."""

    @property
    def root(self) -> Tensor: ...
    nodes: list[Tensor]
    node_slot: dict[int, int]
    instr_node: list[Tensor]
    def forward(self, check: bool = False) -> Tensor: ...
    def backward(self, grad: Tensor | ArrayLike | None = None) -> None: ...
    def zero_grad(self) -> None: ...
    def __len__(self) -> int: ...
    @property
    def leaves(self) -> list[Tensor]: ...
    def stats(self) -> dict[str, Any]: ...
    def value(self, node: Tensor) -> NDArray[Any]: ...
    def nbytes(self) -> int: ...
    # Private to fastgrad: lower.lower_tensor fills the program once; tools
    # (viz, explain, stats) and tests read it.
    def _build(
        self,
        instrs: Sequence[tuple[int, int, int, int, int, int, int, float, int]],
        meta: Sequence[int],
        slot_values: Sequence[NDArray[Any] | None],
        slot_grads: Sequence[NDArray[Any] | None],
        slot_bytes: Sequence[int],
        leaf_slots: Sequence[int],
        leaf_tensors: Sequence[Tensor],
        leaf_needs_grad: Sequence[bool],
        buffers: tuple[Any, ...],      # the owned arrays, kept alive by the tape
        root: Tensor,
        root_slot: int,
        skip_zero: Sequence[bool],
    ) -> None: ...
    def _program(self) -> dict[str, Any]: ...

def array_key(x: object) -> tuple[tuple[int, ...], int] | None: ...
def copy_into(dst: NDArray[Any], src: NDArray[Any]) -> None: ...
