"""The implementation of MLPClassifier (softmax cross-entropy on encoded class labels)."""

from __future__ import annotations

import numpy as np

from ._base import _COMMON_PARAMS_DOC, _BaseMLP, _random_source
from ._optional import _validate_data


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
