"""Type stubs for fastgrad._scalar_lower (compiled from _scalar_lower.pyx)."""

from fastgrad._tape import Tape
from fastgrad._value import Value

def lower_scalar(root: Value, fuse: bool = True) -> Tape: ...
def eager_backward(root: Value) -> None: ...
