"""JAX: one jitted function per workload, ``value_and_grad`` plus the SGD update.

::

    @jax.jit
    def update(params, *inputs):
        loss, grads = jax.value_and_grad(loss_fn)(params, *inputs)
        return loss, tree_map(lambda p, g: p - lr * g, params, grads)

The first call traces and compiles; the table reports it as "first call",
apart from the steady-state time.  JAX dispatches asynchronously, so every
timed batch ends with ``block_until_ready``.  float64 workloads need
``jax_enable_x64``, which this module turns on.  For one thread the harness
sets ``XLA_FLAGS=--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1``
before JAX is imported.
"""

from __future__ import annotations

from fastgrad.bench.harness import Engine, Skip

__all__ = ["JaxW1", "JaxW2", "JaxW3", "JaxW4", "jax_or_skip"]

JAX_PIP = "pip install jax"


def jax_or_skip():
    try:
        import jax
        import jax.numpy as jnp
    except ImportError:
        raise Skip("JAX is not installed", JAX_PIP) from None
    jax.config.update("jax_enable_x64", True)
    return jax, jnp


class _Jax(Engine):
    key, family = "jax", "jax"
    label = "JAX jit (value_and_grad + SGD update)"
    show_first_call = True
    note = "JAX first call = trace + XLA compile + the first step"

    def params(self, jnp):
        return tuple(tuple(jnp.asarray(a) for a in layer) for layer in self.w.weights())

    def inputs(self, jnp):
        raise NotImplementedError

    def loss_fn(self, jax, jnp):
        raise NotImplementedError

    def setup(self):
        jax, jnp = jax_or_skip()
        self.jax = jax
        loss_fn = self.loss_fn(jax, jnp)
        lr = self.w.lr
        tree_map = jax.tree_util.tree_map

        @jax.jit
        def update(params, *inputs):
            loss, grads = jax.value_and_grad(loss_fn)(params, *inputs)
            return loss, tree_map(lambda p, g: p - lr * g, params, grads)

        self.update = update
        self.state = self.params(jnp)
        self.args = self.inputs(jnp)
        self.loss = None

    def step(self):
        self.loss, self.state = self.update(self.state, *self.args)
        return self.loss

    def sync(self):
        self.jax.block_until_ready(self.state)

    def loss_value(self, out):
        return float(out)


def _mlp(jax, jnp, params, X):
    (W1, b1), (W2, b2), (W3, b3) = params
    h = jax.nn.relu(X @ W1 + b1)
    h = jax.nn.relu(h @ W2 + b2)
    return h @ W3 + b3


class JaxW1(_Jax):
    def inputs(self, jnp):
        return jnp.asarray(self.w.data["X"]), jnp.asarray(self.w.data["y"])

    def loss_fn(self, jax, jnp):
        alpha = self.w.data["alpha"]

        def svm_loss(params, X, y):
            scores = _mlp(jax, jnp, params, X).reshape(-1)
            data_loss = jnp.mean(jax.nn.relu(1 - y * scores))
            reg_loss = alpha * sum(jnp.sum(p * p) for layer in params for p in layer)
            return data_loss + reg_loss

        return svm_loss


class JaxW2(_Jax):
    def params(self, jnp):
        return (jnp.asarray(self.w.data["W1"]), jnp.asarray(self.w.data["W2"]))

    def inputs(self, jnp):
        return jnp.asarray(self.w.data["x"]), jnp.asarray(self.w.data["t"])

    def loss_fn(self, jax, jnp):
        def half_squared_error(params, x, t):
            W1, W2 = params
            y = x @ W1 @ W2
            return jnp.sum((y - t) ** 2) * 0.5

        return half_squared_error


class JaxW3(_Jax):
    def inputs(self, jnp):
        return jnp.asarray(self.w.data["X"]), jnp.asarray(self.w.data["y"])

    def loss_fn(self, jax, jnp):
        def cross_entropy(params, X, y):
            logp = jax.nn.log_softmax(_mlp(jax, jnp, params, X), axis=1)
            return -jnp.mean(jnp.take_along_axis(logp, y[:, None], axis=1))

        return cross_entropy


class JaxW4(_Jax):
    def inputs(self, jnp):
        return jnp.asarray(self.w.data["X"]), jnp.asarray(self.w.data["T"])

    def loss_fn(self, jax, jnp):
        def mse(params, X, T):
            return jnp.mean((_mlp(jax, jnp, params, X) - T) ** 2)

        return mse
