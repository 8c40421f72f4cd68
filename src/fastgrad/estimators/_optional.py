"""Imports of the optional dependencies (scikit-learn, tqdm), failing with an install hint."""

from __future__ import annotations

INSTALL_HINT = "pip install fastgrad[sklearn]"


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
