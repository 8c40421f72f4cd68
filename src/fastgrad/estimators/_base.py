"""What MLPClassifier and MLPRegressor share: parameter checks, setup, training, pickling."""

from __future__ import annotations

import numbers
import warnings

import numpy as np

from ._network import _Network
from ._optional import _import_tqdm, _validate_data

# What batch_size="auto" means: min(_AUTO_BATCH, n_samples).
_AUTO_BATCH = 32

_ACTIVATIONS = {"relu": "relu", "tanh": "tanh", "logistic": "sigmoid", "identity": None}
_SOLVERS = ("adam", "sgd")


# -- parameter checking ---------------------------------------------------------------

def _is_int(x) -> bool:
    return isinstance(x, numbers.Integral) and not isinstance(x, bool)


def _is_real(x) -> bool:
    return isinstance(x, numbers.Real) and not isinstance(x, bool) and np.isfinite(x)


def _random_source(random_state):
    """An object with ``uniform`` and ``permutation``: scikit-learn's rules plus Generators."""
    if isinstance(random_state, np.random.Generator):
        return random_state
    from sklearn.utils import check_random_state

    return check_random_state(random_state)


def _draw_seed(rng) -> int:
    if isinstance(rng, np.random.Generator):
        return int(rng.integers(np.iinfo(np.int32).max))
    return int(rng.randint(np.iinfo(np.int32).max))


class _BaseMLP:
    """What the classifier and the regressor share (no scikit-learn import here)."""

    _loss_kind = "mse"

    def _check_params(self):
        name = type(self).__name__

        def bad(param, expected):
            value = getattr(self, param)
            raise ValueError(f"{name}: {param} must be {expected}, got {value!r}")

        sizes = self.hidden_layer_sizes
        if not hasattr(sizes, "__iter__"):
            sizes = [sizes]
        sizes = list(sizes)
        if not all(_is_int(s) and s > 0 for s in sizes):
            bad("hidden_layer_sizes", "a positive int or a sequence of positive ints")
        if self.activation not in _ACTIVATIONS:
            bad("activation", f"one of {sorted(_ACTIVATIONS)}")
        if self.solver not in _SOLVERS:
            bad("solver", "'adam' or 'sgd' (fastgrad has no 'lbfgs')")
        if not (_is_real(self.alpha) and self.alpha >= 0):
            bad("alpha", "a number >= 0")
        if not (self.batch_size == "auto" or (_is_int(self.batch_size) and self.batch_size >= 1)):
            bad("batch_size", "'auto' or an int >= 1")
        if not (_is_real(self.learning_rate_init) and self.learning_rate_init > 0):
            bad("learning_rate_init", "a number > 0")
        if not (_is_int(self.max_iter) and self.max_iter >= 1):
            bad("max_iter", "an int >= 1")
        if not (_is_real(self.tol) and self.tol >= 0):
            bad("tol", "a number >= 0")
        if not (_is_real(self.validation_fraction) and 0 < self.validation_fraction < 1):
            bad("validation_fraction", "a number in (0, 1)")
        if not (_is_int(self.n_iter_no_change) and self.n_iter_no_change >= 1):
            bad("n_iter_no_change", "an int >= 1")
        if not (_is_real(self.momentum) and 0 <= self.momentum <= 1):
            bad("momentum", "a number in [0, 1]")
        for p in ("beta_1", "beta_2"):
            if not (_is_real(getattr(self, p)) and 0 <= getattr(self, p) < 1):
                bad(p, "a number in [0, 1)")
        if not (_is_real(self.epsilon) and self.epsilon > 0):
            bad("epsilon", "a number > 0")
        try:
            dtype = np.dtype(self.dtype)
        except TypeError:
            dtype = None
        if dtype not in (np.dtype(np.float32), np.dtype(np.float64)):
            bad("dtype", "'float32' or 'float64'")
        rs = self.random_state
        if not (rs is None or _is_int(rs)
                or isinstance(rs, (np.random.RandomState, np.random.Generator))):
            bad("random_state", "None, an int, a numpy RandomState or a numpy Generator")
        return sizes, dtype

    # -- the network ----------------------------------------------------------------

    def _initialize(self, n_features, n_outputs, rng):
        """A fresh network (Glorot-uniform init, as scikit-learn) and fresh counters."""
        sizes, dtype = self._check_params()
        layer_sizes = [n_features] + sizes + [n_outputs]
        factor = 2.0 if self.activation == "logistic" else 6.0
        net = self._new_network(layer_sizes, dtype)
        for layer in net.layers:
            bound = np.sqrt(factor / (layer.nin + layer.nout))
            # scikit-learn's draw order: a layer's weights, then its biases.
            layer.weight.data[...] = rng.uniform(-bound, bound, (layer.nin, layer.nout))
            layer.bias.data[...] = rng.uniform(-bound, bound, layer.nout)
        self._net = net
        self._random_state = rng
        self.coefs_ = net.coefs
        self.intercepts_ = net.intercepts
        self.n_layers_ = len(layer_sizes)
        self.n_outputs_ = n_outputs
        self.out_activation_ = "softmax" if self._loss_kind == "cross_entropy" else "identity"
        self.n_iter_ = 0
        self.t_ = 0
        self.loss_curve_ = []
        self._no_improvement_count = 0
        if self.early_stopping:
            self.validation_scores_ = []
            self.best_validation_score_ = -np.inf
            self.best_loss_ = None
        else:
            self.validation_scores_ = None
            self.best_validation_score_ = None
            self.best_loss_ = np.inf

    def _new_network(self, layer_sizes, dtype):
        hyper = dict(lr=float(self.learning_rate_init), beta_1=float(self.beta_1),
                     beta_2=float(self.beta_2), epsilon=float(self.epsilon),
                     momentum=float(self.momentum), nesterov=self.nesterovs_momentum)
        return _Network(layer_sizes, _ACTIVATIONS[self.activation], dtype, self.solver,
                        hyper, self._loss_kind, float(self.alpha))

    def _network(self) -> _Network:
        """The live network, rebuilt after unpickling; ``coefs_``/``intercepts_`` win.

        ``coefs_`` and ``intercepts_`` are views of the network's parameters.
        If they were replaced (or the estimator was unpickled), their values
        are copied into the network first, so they stay the model's truth.
        """
        net = self.__dict__.get("_net")
        coefs, intercepts = self.coefs_, self.intercepts_
        if net is None:
            sizes = [coefs[0].shape[0]] + [c.shape[1] for c in coefs]
            net = self._new_network(sizes, np.asarray(coefs[0]).dtype)
            saved = self.__dict__.get("_optimizer_state")
            if saved is not None and saved.get("solver") == net.solver:
                net.optimizer.load_state_dict(saved["state"])
            self._net = net
            self.__dict__.pop("_optimizer_state", None)
        views = net.coefs + net.intercepts
        given = list(coefs) + list(intercepts)
        if any(a is not v for a, v in zip(given, views)) or len(given) != len(views):
            if len(given) != len(views) or any(np.shape(a) != v.shape
                                               for a, v in zip(given, views)):
                raise ValueError(f"{type(self).__name__}: coefs_/intercepts_ do not match "
                                 f"the network's layer sizes {net.sizes}")
            for layer, w, b in zip(net.layers, coefs, intercepts):
                layer.weight.data[...] = w
                layer.bias.data[...] = b
            self.coefs_, self.intercepts_ = net.coefs, net.intercepts
        return net

    def __getstate__(self):
        state = super().__getstate__()
        state = dict(state)
        net = state.pop("_net", None)
        if net is not None:
            state["_optimizer_state"] = {"solver": net.solver,
                                         "state": net.optimizer.state_dict()}
            state["coefs_"] = [np.array(c) for c in net.coefs]
            state["intercepts_"] = [np.array(b) for b in net.intercepts]
        return state

    # -- training -------------------------------------------------------------------

    def _batch_size(self, n_samples):
        if self.batch_size == "auto":
            return min(_AUTO_BATCH, n_samples)
        if self.batch_size > n_samples:
            warnings.warn(f"Got batch_size={self.batch_size} larger than the sample size "
                          f"{n_samples}; using {n_samples}", stacklevel=5)
        return int(np.clip(self.batch_size, 1, n_samples))

    def _split_validation(self, X, Y, rng):
        from sklearn.model_selection import train_test_split

        stratify = None
        if self._loss_kind == "cross_entropy":
            counts = np.bincount(Y)
            if counts[counts > 0].min() >= 2:
                stratify = Y
        X_train, X_val, Y_train, Y_val = train_test_split(
            X, Y, test_size=self.validation_fraction, random_state=_draw_seed(rng),
            stratify=stratify)
        if X_val.shape[0] < 2:
            raise ValueError(f"{type(self).__name__}: the validation set is too small "
                             f"({X_val.shape[0]} samples); increase validation_fraction or "
                             f"the size of the data set")
        return (np.ascontiguousarray(X_train), np.ascontiguousarray(X_val),
                np.ascontiguousarray(Y_train), Y_val)

    def _train(self, X, Y, incremental):
        """Epochs of minibatch steps over X (network dtype) and Y (encoded targets)."""
        net = self._network()
        rng = self._random_state
        early_stopping = self.early_stopping and not incremental
        X_val = Y_val = None
        if early_stopping:
            X, X_val, Y, Y_val = self._split_validation(X, Y, rng)
        n = X.shape[0]
        batch = self._batch_size(n)
        epochs = 1 if incremental else self.max_iter
        bar = None
        if self.verbose and not incremental:
            bar = _import_tqdm()(total=epochs, desc=type(self).__name__, unit="epoch")
        stopped = False
        try:
            for _ in range(epochs):
                order = rng.permutation(n) if self.shuffle else None
                total = 0.0
                for start in range(0, n, batch):
                    if order is None:
                        xb, yb = X[start:start + batch], Y[start:start + batch]
                    else:
                        rows = order[start:start + batch]
                        xb, yb = X[rows], Y[rows]
                    total += net.train_batch(xb, yb) * xb.shape[0]
                loss = total / n
                if not np.isfinite(loss):
                    raise FloatingPointError(
                        f"{type(self).__name__}: the training loss became {loss} in epoch "
                        f"{self.n_iter_ + 1}; lower learning_rate_init or scale the inputs")
                self.n_iter_ += 1
                self.t_ += n
                self.loss_ = loss
                self.loss_curve_.append(loss)
                self._update_no_improvement(early_stopping, net, X_val, Y_val)
                if bar is not None:
                    postfix = {"loss": f"{loss:.4f}"}
                    if early_stopping:
                        postfix["val_score"] = f"{self.validation_scores_[-1]:.4f}"
                    bar.set_postfix(postfix, refresh=False)
                    bar.update(1)
                if not incremental and self._no_improvement_count > self.n_iter_no_change:
                    what = "Validation score" if early_stopping else "Training loss"
                    message = (f"{what} did not improve more than tol={self.tol} for "
                               f"{self.n_iter_no_change} consecutive epochs. Stopping.")
                    if bar is not None:
                        bar.write(message)
                    stopped = True
                    break
        finally:
            if bar is not None:
                bar.close()
        if early_stopping and self._best_params is not None:
            net.restore(self._best_params)
        self._best_params = None
        if not incremental and not stopped:
            from sklearn.exceptions import ConvergenceWarning

            warnings.warn(f"Stochastic Optimizer: Maximum iterations ({self.max_iter}) "
                          f"reached and the optimization hasn't converged yet.",
                          ConvergenceWarning, stacklevel=4)

    def _update_no_improvement(self, early_stopping, net, X_val, Y_val):
        if early_stopping:
            score = self._validation_score(net, X_val, Y_val)
            self.validation_scores_.append(score)
            if score < self.best_validation_score_ + self.tol:
                self._no_improvement_count += 1
            else:
                self._no_improvement_count = 0
            if score > self.best_validation_score_:
                self.best_validation_score_ = score
                self._best_params = net.snapshot()
        else:
            last = self.loss_curve_[-1]
            if last > self.best_loss_ - self.tol:
                self._no_improvement_count += 1
            else:
                self._no_improvement_count = 0
            self.best_loss_ = min(self.best_loss_, last)

    def _fit(self, X, Y, incremental):
        self._best_params = None
        if self.early_stopping and self.validation_scores_ is None:    # warm start
            self.validation_scores_, self.best_validation_score_ = [], -np.inf
        if not self.early_stopping and self.best_loss_ is None:
            self.best_loss_ = np.inf
        self._train(np.ascontiguousarray(X), np.ascontiguousarray(Y), incremental)
        return self

    def _warm(self) -> bool:
        return bool(self.warm_start) and hasattr(self, "coefs_")

    def _outputs(self, X):
        from sklearn.utils.validation import check_is_fitted

        check_is_fitted(self)
        net = self._network()
        X = _validate_data(self, X, reset=False, dtype=net.dtype, order="C")
        return net.forward(X)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = False
        tags.input_tags.allow_nan = False
        return tags


_COMMON_PARAMS_DOC = """
    Parameters
    ----------
    hidden_layer_sizes : int or sequence of int, default=(100,)
        Units of each hidden layer.
    activation : {'relu', 'tanh', 'logistic', 'identity'}, default='relu'
        Activation after every hidden layer.
    solver : {'adam', 'sgd'}, default='adam'
        ``fastgrad.optim.Adam`` or ``fastgrad.optim.SGD`` (constant learning rate).
    alpha : float, default=1e-4
        L2 penalty: ``alpha / 2 * sum ||W||^2 / batch_size`` is added to the loss
        (weights only, not biases), as in scikit-learn.
    batch_size : int or 'auto', default='auto'
        Minibatch size; 'auto' is ``min(32, n_samples)``.
    learning_rate_init : float, default=1e-3
        The optimizer's learning rate.
    max_iter : int, default=200
        Epochs (passes over the data).
    shuffle : bool, default=True
        Shuffle the samples every epoch.
    random_state : None, int, numpy RandomState or Generator, default=None
        Controls the initial weights, the shuffling and the validation split.
    tol : float, default=1e-4
        An epoch "improves" when the loss drops (or the validation score rises)
        by more than ``tol``.
    verbose : bool, default=False
        Show a tqdm progress bar of the epochs with the running loss.
    warm_start : bool, default=False
        ``fit`` continues from the previous weights instead of starting afresh.
    momentum : float, default=0.9
        Momentum of the 'sgd' solver.
    nesterovs_momentum : bool, default=True
        Nesterov momentum for the 'sgd' solver.
    early_stopping : bool, default=False
        Hold out ``validation_fraction`` of the data and stop when its score has
        not improved by ``tol`` for ``n_iter_no_change`` epochs; the best
        weights are kept.
    validation_fraction : float, default=0.1
        Share of the training data held out for early stopping.
    beta_1, beta_2, epsilon : float, default=0.9, 0.999, 1e-8
        Adam's hyper-parameters.
    n_iter_no_change : int, default=10
        Epochs without improvement before training stops.
    dtype : {'float64', 'float32'}, default='float64'
        Precision of the network and of the data it is fed.

    Attributes
    ----------
    coefs_, intercepts_ : lists of ndarray
        Weights ``(n_in, n_out)`` and biases of each layer (live views of the
        network's parameters).
    loss_, loss_curve_ : float, list of float
        The last epoch's mean training loss and every epoch's.
    best_loss_ : float or None
        Lowest training loss (None with early stopping).
    validation_scores_, best_validation_score_ : list of float, float or None
        Held-out scores per epoch and the best one (None without early stopping).
    n_iter_ : int
        Epochs run.  ``t_``: samples seen.
    n_features_in_, n_layers_, n_outputs_, out_activation_
        As in scikit-learn.
"""
