"""The implementation of MLPRegressor (half the mean squared error on 1-D or 2-D targets)."""

from __future__ import annotations

import numpy as np

from ._base import _COMMON_PARAMS_DOC, _BaseMLP, _random_source
from ._classifier import _MLPClassifier
from ._optional import _validate_data


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
