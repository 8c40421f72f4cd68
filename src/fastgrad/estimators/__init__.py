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

# This file holds the public surface: the scikit-learn classes are built
# from the implementations in _classifier / _regressor on first use, so that
# importing it never imports scikit-learn.  The imports are absolute so the
# file also works when executed on its own (the tests load a private copy).

from __future__ import annotations

from fastgrad.estimators._classifier import _MLPClassifier
from fastgrad.estimators._optional import INSTALL_HINT, _import_sklearn  # noqa: F401
from fastgrad.estimators._regressor import _MLPRegressor

__all__ = ["MLPClassifier", "MLPRegressor"]


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
