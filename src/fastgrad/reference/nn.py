"""Neural-network building blocks over the pure-Python :class:`Value`.

Constructor signatures, weight drawing order and ``repr`` strings follow
micrograd 0.1.0, so after the same ``random.seed`` both libraries build
networks with identical weights.
"""

from __future__ import annotations

import random
from typing import Any, List, Sequence, Union

from fastgrad.reference.engine import Value

__all__ = ["Module", "Neuron", "Layer", "MLP"]


class Module:
    """Base class: something that owns a list of parameters."""

    def zero_grad(self) -> None:
        """Set the gradient of every parameter to zero."""
        for parameter in self.parameters():
            parameter.grad = 0.0

    def parameters(self) -> List[Value]:
        """All trainable Values of this module, in a fixed order."""
        return []


class Neuron(Module):
    """``sum(w_i * x_i) + b``, followed by ReLU when ``nonlin`` is true.

    The ``nin`` weights are drawn in order from ``random.uniform(-1, 1)``;
    the bias starts at 0.
    """

    def __init__(self, nin: int, nonlin: bool = True) -> None:
        self.w = [Value(random.uniform(-1, 1)) for _ in range(nin)]
        self.b = Value(0)
        self.nonlin = nonlin

    def __call__(self, x: Sequence[Any]) -> Value:
        activation = sum((wi * xi for wi, xi in zip(self.w, x)), self.b)
        return activation.relu() if self.nonlin else activation

    def parameters(self) -> List[Value]:
        return self.w + [self.b]

    def __repr__(self) -> str:
        kind = "ReLU" if self.nonlin else "Linear"
        return f"{kind}Neuron({len(self.w)})"


class Layer(Module):
    """``nout`` neurons reading the same ``nin`` inputs."""

    def __init__(self, nin: int, nout: int, **kwargs: Any) -> None:
        self.neurons = [Neuron(nin, **kwargs) for _ in range(nout)]

    def __call__(self, x: Sequence[Any]) -> Union[Value, List[Value]]:
        outputs = [neuron(x) for neuron in self.neurons]
        return outputs[0] if len(outputs) == 1 else outputs

    def parameters(self) -> List[Value]:
        return [p for neuron in self.neurons for p in neuron.parameters()]

    def __repr__(self) -> str:
        return f"Layer of [{', '.join(str(n) for n in self.neurons)}]"


class MLP(Module):
    """Layers of sizes ``nouts`` on ``nin`` inputs; ReLU everywhere but the last."""

    def __init__(self, nin: int, nouts: List[int]) -> None:
        sizes = [nin] + list(nouts)
        last = len(nouts) - 1
        self.layers = [
            Layer(sizes[i], sizes[i + 1], nonlin=(i != last)) for i in range(len(nouts))
        ]

    def __call__(self, x: Any) -> Any:
        for layer in self.layers:
            x = layer(x)
        return x

    def parameters(self) -> List[Value]:
        return [p for layer in self.layers for p in layer.parameters()]

    def __repr__(self) -> str:
        return f"MLP of [{', '.join(str(layer) for layer in self.layers)}]"
