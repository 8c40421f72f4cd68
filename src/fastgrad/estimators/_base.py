"""scikit-learn estimators trained by fastgrad: ``MLPClassifier`` and ``MLPRegressor``.

They take scikit-learn's own parameter names (``hidden_layer_sizes``,
``activation``, ``solver``, ``alpha``, ``batch_size``, ``learning_rate_init``,
``max_iter``, ``early_stopping``, ...) and follow its conventions, so they
drop into ``Pipeline``, ``clone``, ``GridSearchCV`` and ``cross_val_score``::

    from fastgrad.estimators import MLPClassifier
    clf = MLPClassifier(hidden_layer_sizes=(64,), max_iter=30, random_state=0)
    clf.fit(X_train, y_train).score(X_test, y_test)

Training is fastgrad's: the network is a ``fastgrad.nn.MLP`` (its
parameters in one arena), the loss (softmax cross-entropy, or half the mean
squared error, plus the L2 penalty) is one ``fastgrad.compile``-d step per
batch shape, and ``fastgrad.optim.Adam`` / ``SGD`` update all parameters in
one kernel call per batch.

scikit-learn and tqdm are optional (``pip install fastgrad[sklearn]``):
``import fastgrad.estimators`` always works; using the estimators needs
scikit-learn, and ``verbose=True`` needs tqdm.

Differences from ``sklearn.neural_network``:

- ``batch_size="auto"`` means ``min(32, n_samples)`` (scikit-learn:
  ``min(200, n_samples)``).  With scikit-learn's 200 a digits classifier
  gets too few Adam steps in 30 epochs to pass 95 % accuracy (scikit-learn's
  own ``MLPClassifier((64,), max_iter=30)`` scores 0.93-0.95 there).
- Solvers ``"adam"`` and ``"sgd"`` (constant learning rate); no ``"lbfgs"``,
  no ``learning_rate`` schedules, no ``sample_weight``, no sparse input.
- Classification is single-label; the output layer always has one unit per
  class with a softmax (scikit-learn uses one logistic unit for two classes).
- ``dtype`` (``"float64"`` or ``"float32"``) selects the network's precision.
- A diverging run (non-finite loss) raises ``FloatingPointError``.
"""

from __future__ import annotations

import numbers
import warnings

import numpy as np

__all__ = ["MLPClassifier", "MLPRegressor"]

INSTALL_HINT = "pip install fastgrad[sklearn]"

# What batch_size="auto" means: min(_AUTO_BATCH, n_samples).
_AUTO_BATCH = 32

_ACTIVATIONS = {"relu": "relu", "tanh": "tanh", "logistic": "sigmoid", "identity": None}
_SOLVERS = ("adam", "sgd")


# -- optional dependencies -----------------------------------------------------------

def _import_sklearn(what: str = "fastgrad.estimators"):
    try:
        from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
    except ImportError as exc:
        raise ImportError(f"{what} needs scikit-learn, which is not installed: "
                          f"{INSTALL_HINT}") from exc
    return BaseEstimator, ClassifierMixin, RegressorMixin


def _import_tqdm():
    try:
        from tqdm.auto import tqdm
    except ImportError as exc:
        raise ImportError(f"verbose=True shows a tqdm progress bar, but tqdm is not "
                          f"installed: {INSTALL_HINT}") from exc
    return tqdm


def _validate_data(estimator, X, y="no_validation", **kwargs):
    """scikit-learn's validate_data (>= 1.6), or the older method."""
    try:
        from sklearn.utils.validation import validate_data
    except ImportError:                                   # scikit-learn < 1.6
        return estimator._validate_data(X, y, **kwargs)
    return validate_data(estimator, X, y, **kwargs)


# -- the network and its compiled training step ----------------------------------------

class _Network:
    """The live fastgrad objects behind a fitted estimator (never pickled)."""

    def __init__(self, sizes, activation, dtype, solver, hyper, loss_kind, alpha):
        import fastgrad as fg

        self.sizes = tuple(sizes)
        self.dtype = np.dtype(dtype)
        # Initial values are overwritten by the estimator's own draws; a fixed
        # generator keeps numpy's global random state untouched.
        self.module = fg.nn.MLP(sizes[0], list(sizes[1:]), activation=activation,
                                dtype=self.dtype, generator=np.random.default_rng(0))
        self.layers = [m for m in self.module.modules() if isinstance(m, fg.nn.Linear)]
        self.params = [t for layer in self.layers for t in (layer.weight, layer.bias)]
        self.solver = solver
        if solver == "adam":
            self.optimizer = fg.optim.Adam(self.params, lr=hyper["lr"],
                                           betas=(hyper["beta_1"], hyper["beta_2"]),
                                           eps=hyper["epsilon"])
        else:
            momentum = hyper["momentum"]
            self.optimizer = fg.optim.SGD(self.params, lr=hyper["lr"], momentum=momentum,
                                          nesterov=bool(hyper["nesterov"]) and momentum > 0)
        self.step = _compiled_step(self.module, [layer.weight for layer in self.layers],
                                   loss_kind, alpha)

    @property
    def coefs(self):
        return [layer.weight.data for layer in self.layers]

    @property
    def intercepts(self):
        return [layer.bias.data for layer in self.layers]

    def snapshot(self):
        return [p.data.copy() for p in self.params]

    def restore(self, arrays):
        for p, a in zip(self.params, arrays):
            p.data[...] = a

    def forward(self, X):
        """The network's outputs for X (a 2-D array of the network's dtype)."""
        import fastgrad as fg

        with fg.no_grad():
            return self.module(X).data

    def train_batch(self, xb, yb) -> float:
        loss = self.step(xb, yb)
        value = float(loss.item())
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        if self.step.cache_info().traces > 16:      # many partial_fit batch sizes
            self.step.cache_clear()
        return value


def _compiled_step(module, weights, loss_kind, alpha):
    """loss(xb, yb) = data loss + alpha/2 * sum ||W||^2 / batch (scikit-learn's loss)."""
    import fastgrad as fg
    import fastgrad.nn.functional as F

    @fg.compile
    def step(xb, yb):
        out = module(xb)
        if loss_kind == "cross_entropy":
            loss = F.cross_entropy(out, yb)
        else:
            loss = F.mse_loss(out, yb) * 0.5
        if alpha > 0:
            penalty = (weights[0] * weights[0]).sum()
            for w in weights[1:]:
                penalty = penalty + (w * w).sum()
            loss = loss + penalty * (0.5 * alpha / xb.shape[0])
        return loss

    return step


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


class _MLPClassifier(_BaseMLP):
    __doc__ = ("""Multi-layer perceptron classifier trained by fastgrad (softmax
    cross-entropy), with scikit-learn's interface.

    ``classes_`` holds the class labels; ``predict_proba`` the softmax of the
    network's outputs, one column per class.
    """ + _COMMON_PARAMS_DOC)

    _loss_kind = "cross_entropy"

    def __init__(self, hidden_layer_sizes=(100,), activation="relu", *, solver="adam",
                 alpha=1e-4, batch_size="auto", learning_rate_init=1e-3, max_iter=200,
                 shuffle=True, random_state=None, tol=1e-4, verbose=False,
                 warm_start=False, momentum=0.9, nesterovs_momentum=True,
                 early_stopping=False, validation_fraction=0.1, beta_1=0.9, beta_2=0.999,
                 epsilon=1e-8, n_iter_no_change=10, dtype="float64"):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate_init = learning_rate_init
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change
        self.dtype = dtype

    def _targets(self, X, y, reset):
        from sklearn.utils.multiclass import check_classification_targets

        _, dtype = self._check_params()
        X, y = _validate_data(self, X, y, reset=reset, dtype=dtype)
        check_classification_targets(y)
        return X, y

    def _encode(self, y):
        index = np.searchsorted(self.classes_, y)
        index = np.clip(index, 0, len(self.classes_) - 1)
        unseen = self.classes_[index] != y
        if np.any(unseen):
            raise ValueError(f"{type(self).__name__}: y contains labels not in classes_ "
                             f"{list(self.classes_)}: {list(np.unique(np.asarray(y)[unseen]))}")
        return index.astype(np.int64)

    def fit(self, X, y):
        """Train on X (n_samples, n_features) and class labels y (n_samples,)."""
        warm = self._warm()
        X, y = self._targets(X, y, reset=not warm)
        classes = np.unique(y)
        if warm:
            if not np.array_equal(classes, self.classes_):
                raise ValueError(f"{type(self).__name__}: warm_start needs y to have the "
                                 f"classes of the previous fit {list(self.classes_)}, got "
                                 f"{list(classes)}")
        else:
            self.classes_ = classes
            self._initialize(X.shape[1], len(classes), _random_source(self.random_state))
        return self._fit(X, self._encode(y), incremental=False)

    def partial_fit(self, X, y, classes=None):
        """One epoch over (X, y); ``classes`` (every label) is required on the first call."""
        if self.early_stopping:
            raise ValueError(f"{type(self).__name__}: partial_fit does not support "
                             f"early_stopping=True")
        first = not hasattr(self, "classes_")
        if first and classes is None:
            raise ValueError(f"{type(self).__name__}: classes must be passed on the first "
                             f"call to partial_fit")
        if classes is not None:
            classes = np.unique(np.asarray(classes))
            if not first and not np.array_equal(classes, self.classes_):
                raise ValueError(f"{type(self).__name__}: classes={list(classes)} is not the "
                                 f"same as on the first call to partial_fit, which was "
                                 f"{list(self.classes_)}")
        X, y = self._targets(X, y, reset=first)
        if first:
            self.classes_ = classes
            self._initialize(X.shape[1], len(classes), _random_source(self.random_state))
        return self._fit(X, self._encode(y), incremental=True)

    def _validation_score(self, net, X_val, Y_val):
        return float(np.mean(np.argmax(net.forward(X_val), axis=1) == Y_val))

    def predict(self, X):
        """The most probable class of each row of X."""
        outputs = self._outputs(X)
        return self.classes_[np.argmax(outputs, axis=1)]

    def predict_log_proba(self, X):
        """Log class probabilities, one column per entry of ``classes_``."""
        import fastgrad as fg
        import fastgrad.nn.functional as F

        with fg.no_grad():
            return F.log_softmax(fg.tensor(self._outputs(X)), axis=1).data

    def predict_proba(self, X):
        """Class probabilities, one column per entry of ``classes_``."""
        return np.exp(self.predict_log_proba(X))


class _MLPRegressor(_BaseMLP):
    __doc__ = ("""Multi-layer perceptron regressor trained by fastgrad (half the mean
    squared error), with scikit-learn's interface.

    ``y`` may be 1-D or 2-D (several outputs); ``predict`` returns the same rank.
    """ + _COMMON_PARAMS_DOC)

    _loss_kind = "mse"

    __init__ = _MLPClassifier.__init__

    def _targets(self, X, y, reset):
        _, dtype = self._check_params()
        X, y = _validate_data(self, X, y, reset=reset, dtype=dtype, multi_output=True,
                              y_numeric=True)
        Y = np.asarray(y, dtype=dtype)
        if Y.ndim == 1:
            Y = Y.reshape(-1, 1)
        return X, y, Y

    def _start(self, X, y, Y):
        self._y_1d = np.ndim(y) == 1
        self._initialize(X.shape[1], Y.shape[1], _random_source(self.random_state))

    def _check_outputs(self, Y):
        if Y.shape[1] != self.n_outputs_:
            raise ValueError(f"{type(self).__name__}: y has {Y.shape[1]} outputs but the "
                             f"model was fitted with {self.n_outputs_}")

    def fit(self, X, y):
        """Train on X (n_samples, n_features) and targets y (n_samples,) or (n_samples, n_outputs)."""
        warm = self._warm()
        X, y, Y = self._targets(X, y, reset=not warm)
        if warm:
            self._check_outputs(Y)
        else:
            self._start(X, y, Y)
        return self._fit(X, Y, incremental=False)

    def partial_fit(self, X, y):
        """One epoch over (X, y), continuing from the current weights."""
        if self.early_stopping:
            raise ValueError(f"{type(self).__name__}: partial_fit does not support "
                             f"early_stopping=True")
        first = not hasattr(self, "coefs_")
        X, y, Y = self._targets(X, y, reset=first)
        if first:
            self._start(X, y, Y)
        else:
            self._check_outputs(Y)
        return self._fit(X, Y, incremental=True)

    def _validation_score(self, net, X_val, Y_val):
        from sklearn.metrics import r2_score

        return float(r2_score(Y_val, net.forward(X_val)))

    def predict(self, X):
        """The network's outputs: shape (n_samples,) or (n_samples, n_outputs) like y."""
        out = self._outputs(X)
        return out.ravel() if self._y_1d else out

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        tags.target_tags.single_output = True
        return tags


# -- the public classes, built when first used -----------------------------------------

def _build(name: str):
    BaseEstimator, ClassifierMixin, RegressorMixin = _import_sklearn(
        f"fastgrad.estimators.{name}")
    impl, mixin = {"MLPClassifier": (_MLPClassifier, ClassifierMixin),
                   "MLPRegressor": (_MLPRegressor, RegressorMixin)}[name]
    cls = type(name, (mixin, impl, BaseEstimator),
               {"__module__": __name__, "__qualname__": name, "__doc__": impl.__doc__})
    globals()[name] = cls
    return cls


def __getattr__(name: str):
    if name in __all__:
        return _build(name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))
