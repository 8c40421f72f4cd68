"""Neural-network building blocks on tensors."""

from fastgrad.nn import functional

__all__ = ["functional"]
