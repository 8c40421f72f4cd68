"""Neural-network building blocks on tensors: modules, arenas, functional ops."""

from fastgrad.nn import functional
from fastgrad.nn.arena import TensorArena
from fastgrad.nn.modules import (
    MLP, Identity, Linear, Module, Parameter, ReLU, Sequential, Sigmoid, Tanh,
)

__all__ = ["functional", "Module", "Parameter", "Linear", "MLP", "Sequential", "ReLU",
           "Tanh", "Sigmoid", "Identity", "TensorArena"]
