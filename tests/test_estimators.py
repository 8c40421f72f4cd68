"""fastgrad.estimators: scikit-learn's MLPClassifier/MLPRegressor interface on fastgrad.

scikit-learn is an optional extra: the tests of the ImportError messages run
without it; everything else is skipped when it is missing.
"""

from __future__ import annotations

import importlib.util
import pickle
import sys
import warnings

import numpy as np
import pytest

try:
    import sklearn  # noqa: F401
    HAVE_SKLEARN = True
except ImportError:
    HAVE_SKLEARN = False

needs_sklearn = pytest.mark.skipif(not HAVE_SKLEARN, reason="scikit-learn is not installed")
quiet = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning") \
    if HAVE_SKLEARN else pytest.mark.skip(reason="scikit-learn is not installed")

if HAVE_SKLEARN:
    from sklearn.base import clone, is_classifier, is_regressor
    from sklearn.exceptions import ConvergenceWarning, NotFittedError
    from sklearn.model_selection import GridSearchCV, train_test_split
    from sklearn.neural_network import MLPClassifier as SkMLPClassifier
    from sklearn.pipeline import Pipeline, make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.utils.estimator_checks import parametrize_with_checks

    from fastgrad.estimators import MLPClassifier, MLPRegressor


def blobs(n=240, seed=0):
    """Three well-separated gaussian blobs in 4-D, labels 0..2."""
    rng = np.random.default_rng(seed)
    centers = np.array([[3.0, 0, 0, 0], [0, 3.0, 0, 0], [0, 0, 3.0, 0]])
    y = np.arange(n) % 3
    X = centers[y] + rng.standard_normal((n, 4)) * 0.7
    return X, y


def digits_split():
    from fastgrad.datasets import load_digits

    X, y = load_digits()
    return train_test_split(X / 16.0, y, test_size=0.25, random_state=0, stratify=y)


# -- optional dependencies -------------------------------------------------------------


def _hide(monkeypatch, package):
    """Make `import package` (and its submodules) raise ImportError."""
    for name in list(sys.modules):
        if name == package or name.startswith(package + "."):
            monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, package, None)


def _fresh_estimators_module():
    """A private copy of fastgrad/estimators.py (no classes built yet)."""
    import fastgrad.estimators as module

    spec = importlib.util.spec_from_file_location("_estimators_copy", module.__file__)
    copy = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(copy)
    return copy


def test_without_sklearn_the_module_imports_and_using_it_says_what_to_install(monkeypatch):
    _hide(monkeypatch, "sklearn")
    module = _fresh_estimators_module()            # importing needs no scikit-learn
    for name in ("MLPClassifier", "MLPRegressor"):
        with pytest.raises(ImportError, match=r"scikit-learn.*pip install fastgrad\[sklearn\]"):
            getattr(module, name)
    monkeypatch.setitem(sys.modules, module.__name__, module)
    with pytest.raises(ImportError, match=r"pip install fastgrad\[sklearn\]"):
        exec(f"from {module.__name__} import MLPClassifier", {})
    with pytest.raises(AttributeError):
        module.NoSuchThing


@needs_sklearn
@quiet
def test_verbose_without_tqdm_says_what_to_install(monkeypatch):
    X, y = blobs(60)
    _hide(monkeypatch, "tqdm")
    MLPClassifier((4,), max_iter=2, random_state=0).fit(X, y)      # fine without verbose
    with pytest.raises(ImportError, match=r"tqdm.*pip install fastgrad\[sklearn\]"):
        MLPClassifier((4,), max_iter=2, random_state=0, verbose=True).fit(X, y)


@needs_sklearn
@quiet
def test_verbose_shows_a_progress_bar_with_the_loss(capsys):
    pytest.importorskip("tqdm")
    X, y = blobs(60)
    clf = MLPClassifier((4,), max_iter=3, random_state=0, verbose=True).fit(X, y)
    err = capsys.readouterr().err
    assert "MLPClassifier" in err and "3/3" in err and "epoch" in err
    assert f"loss={clf.loss_curve_[-1]:.4f}" in err


# -- the scikit-learn checks -------------------------------------------------------------

# No check is waived: every check scikit-learn runs on these estimators
# passes.  (Checks that need pandas or SCIPY_ARRAY_API skip themselves when
# those are missing.)
WAIVED: dict = {}

if HAVE_SKLEARN:
    @quiet
    @parametrize_with_checks([MLPClassifier(), MLPRegressor()],
                             expected_failed_checks=lambda est: WAIVED)
    def test_sklearn_check_estimator(estimator, check):
        check(estimator)


@needs_sklearn
def test_public_classes_are_sklearn_estimators():
    assert is_classifier(MLPClassifier()) and is_regressor(MLPRegressor())
    params = MLPClassifier().get_params()
    for name, default in [("hidden_layer_sizes", (100,)), ("activation", "relu"),
                          ("solver", "adam"), ("alpha", 1e-4), ("batch_size", "auto"),
                          ("learning_rate_init", 1e-3), ("max_iter", 200), ("shuffle", True),
                          ("random_state", None), ("tol", 1e-4), ("early_stopping", False),
                          ("validation_fraction", 0.1), ("n_iter_no_change", 10),
                          ("momentum", 0.9), ("beta_1", 0.9), ("beta_2", 0.999),
                          ("epsilon", 1e-8), ("verbose", False), ("dtype", "float64")]:
        assert params[name] == default, name
    assert MLPRegressor().get_params() == params
    assert MLPClassifier.__module__ == "fastgrad.estimators"


@needs_sklearn
def test_init_only_stores_hyper_parameters_and_fit_validates_them():
    X, y = blobs(30)
    for bad in [dict(activation="softplus"), dict(solver="lbfgs"), dict(alpha=-1.0),
                dict(batch_size=0), dict(hidden_layer_sizes=(4, 0)), dict(max_iter=0),
                dict(learning_rate_init=0.0), dict(validation_fraction=1.0),
                dict(dtype="int32"), dict(beta_1=1.0), dict(random_state="seed")]:
        clf = MLPClassifier(**bad)                       # no validation in __init__
        assert clf.get_params()[next(iter(bad))] == next(iter(bad.values()))
        with pytest.raises(ValueError, match=next(iter(bad))):
            clf.fit(X, y)


# -- the scikit-learn tools -----------------------------------------------------------------


@needs_sklearn
@quiet
def test_pipeline_and_clone():
    X, y = blobs()
    X = X * 50 + 7                                        # needs the scaler
    pipe = make_pipeline(StandardScaler(), MLPClassifier((16,), max_iter=30, random_state=0))
    assert isinstance(pipe, Pipeline)
    pipe.fit(X[:180], y[:180])
    assert pipe.score(X[180:], y[180:]) > 0.95

    fitted = pipe[-1]
    twin = clone(fitted)
    assert twin.get_params() == fitted.get_params()
    assert not hasattr(twin, "coefs_")
    with pytest.raises(NotFittedError):
        twin.predict(X)
    # Same int random_state, same data: the same model, bit for bit.
    again = clone(pipe).fit(X[:180], y[:180])
    np.testing.assert_array_equal(again.predict_proba(X), pipe.predict_proba(X))
    assert again[-1].loss_curve_ == fitted.loss_curve_


@needs_sklearn
@quiet
def test_grid_search():
    X, y = blobs(150)
    search = GridSearchCV(MLPClassifier(max_iter=10, random_state=0),
                          {"hidden_layer_sizes": [(2,), (16,)],
                           "learning_rate_init": [1e-5, 1e-2]}, cv=3)
    search.fit(X, y)
    assert len(search.cv_results_["params"]) == 4
    assert search.best_params_["learning_rate_init"] == 1e-2   # 1e-5 barely moves
    assert search.best_score_ > 0.9
    assert search.best_estimator_.n_features_in_ == 4


# -- learning -----------------------------------------------------------------------------


@needs_sklearn
@quiet
@pytest.mark.parametrize("seed", [0, 1])
def test_digits_95_percent_within_30_epochs(seed):
    X_train, X_test, y_train, y_test = digits_split()
    clf = MLPClassifier(hidden_layer_sizes=(64,), max_iter=30, random_state=seed)
    clf.fit(X_train, y_train)
    assert clf.n_iter_ <= 30 and len(clf.loss_curve_) == clf.n_iter_
    assert clf.score(X_test, y_test) >= 0.95
    assert list(clf.classes_) == list(range(10)) and clf.n_features_in_ == 64
    assert [c.shape for c in clf.coefs_] == [(64, 64), (64, 10)]
    assert [b.shape for b in clf.intercepts_] == [(64,), (10,)]
    proba = clf.predict_proba(X_test)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    np.testing.assert_array_equal(clf.classes_[proba.argmax(axis=1)], clf.predict(X_test))
    np.testing.assert_allclose(np.exp(clf.predict_log_proba(X_test)), proba)


@needs_sklearn
@quiet
def test_digits_is_scikit_learns_data():
    from sklearn.datasets import load_digits as sk_load_digits

    from fastgrad.datasets import load_digits

    X, y = load_digits()
    bunch = sk_load_digits()
    assert X.dtype == np.float64 and y.dtype == np.int64
    np.testing.assert_array_equal(X, bunch.data)
    np.testing.assert_array_equal(y, bunch.target)


@needs_sklearn
@quiet
def test_sgd_solver_and_float32_learn():
    X_train, X_test, y_train, y_test = digits_split()
    sgd = MLPClassifier((32,), solver="sgd", learning_rate_init=0.05, max_iter=15,
                        random_state=0).fit(X_train, y_train)
    assert sgd.score(X_test, y_test) > 0.93
    f32 = MLPClassifier((32,), max_iter=15, dtype="float32", random_state=0)
    f32.fit(X_train, y_train)
    assert f32.coefs_[0].dtype == np.float32
    assert f32.score(X_test, y_test) > 0.93


@needs_sklearn
@quiet
def test_regression_on_a_simple_function():
    rng = np.random.RandomState(0)
    X = rng.uniform(-2, 2, (400, 1))
    f = lambda X: 2 * np.sin(X[:, 0]) + 0.5 * X[:, 0]          # noqa: E731
    X_test = np.linspace(-1.9, 1.9, 50).reshape(-1, 1)
    reg = MLPRegressor((32, 32), activation="tanh", max_iter=100, random_state=0)
    reg.fit(X, f(X))
    pred = reg.predict(X_test)
    assert pred.shape == (50,)
    assert np.abs(pred - f(X_test)).max() < 0.25          # the targets span [-2.8, 2.8]
    assert reg.score(X_test, f(X_test)) > 0.99
    # Two outputs at once: y of shape (n, 2) -> predictions of shape (n, 2).
    Y = np.column_stack([f(X), -f(X) + 1])
    multi = MLPRegressor((32, 32), activation="tanh", max_iter=100, random_state=0).fit(X, Y)
    assert multi.predict(X_test).shape == (50, 2) and multi.n_outputs_ == 2
    assert multi.score(X_test, np.column_stack([f(X_test), -f(X_test) + 1])) > 0.99


@needs_sklearn
@quiet
def test_loss_is_sklearns_loss_with_the_l2_penalty():
    """Epoch 1's reported loss is the mean over batches of the data loss + alpha/2 |W|^2 / n."""
    X, y = blobs(40)
    clf = MLPClassifier((5,), alpha=0.5, batch_size=40, max_iter=1, shuffle=False,
                        learning_rate_init=1e-12, random_state=0).fit(X, y)
    # With a negligible step the weights after one epoch are the initial ones.
    logits = np.maximum(X @ clf.coefs_[0] + clf.intercepts_[0], 0) @ clf.coefs_[1] \
        + clf.intercepts_[1]
    logp = logits - logits.max(axis=1, keepdims=True)
    logp -= np.log(np.exp(logp).sum(axis=1, keepdims=True))
    data_loss = -logp[np.arange(40), y].mean()
    penalty = 0.5 * 0.5 * sum((c ** 2).sum() for c in clf.coefs_) / 40
    assert clf.loss_curve_[0] == pytest.approx(data_loss + penalty, rel=1e-9)


# -- partial_fit, warm_start, early stopping ---------------------------------------------


@needs_sklearn
@quiet
def test_partial_fit_classifier():
    X, y = blobs(300)
    clf = MLPClassifier((16,), random_state=0)
    with pytest.raises(ValueError, match="classes must be passed"):
        clf.partial_fit(X[:50], y[:50])
    # The first batch lacks class 2: classes= names every label up front.
    first = y[:60] != 2
    clf.partial_fit(X[:60][first], y[:60][first], classes=[0, 1, 2])
    assert list(clf.classes_) == [0, 1, 2] and clf.n_iter_ == 1
    for k in range(1, 40):
        clf.partial_fit(X[:200], y[:200])
    assert clf.n_iter_ == 40 and len(clf.loss_curve_) == 40
    assert clf.loss_curve_[-1] < clf.loss_curve_[1]
    assert clf.score(X[200:], y[200:]) > 0.95
    with pytest.raises(ValueError, match="not the same"):
        clf.partial_fit(X[:10], y[:10], classes=[0, 1, 2, 3])
    with pytest.raises(ValueError, match="labels not in classes_"):
        clf.partial_fit(X[:3], np.array([0, 1, 5]))
    with pytest.raises(ValueError, match="features"):
        clf.partial_fit(X[:10, :3], y[:10])
    with pytest.raises(ValueError, match="early_stopping"):
        MLPClassifier(early_stopping=True).partial_fit(X, y, classes=[0, 1, 2])


@needs_sklearn
@quiet
def test_partial_fit_regressor_and_warm_start():
    rng = np.random.RandomState(1)
    X = rng.uniform(-1, 1, (200, 3))
    y = X @ np.array([1.0, -2.0, 0.5]) + 0.3
    reg = MLPRegressor((16,), random_state=0, learning_rate_init=1e-2)
    for _ in range(30):
        reg.partial_fit(X, y)
    assert reg.n_iter_ == 30 and reg.score(X, y) > 0.98

    warm = MLPRegressor((16,), max_iter=5, warm_start=True, random_state=0).fit(X, y)
    coefs = [c.copy() for c in warm.coefs_]
    warm.fit(X, y)                                   # continues from the same weights
    assert warm.n_iter_ == 10 and len(warm.loss_curve_) == 10
    assert not all(np.array_equal(a, b) for a, b in zip(coefs, warm.coefs_))
    # The second fit starts where the first stopped, not from a fresh network.
    assert warm.loss_curve_[5] < warm.loss_curve_[4] < warm.loss_curve_[0]
    fresh = MLPRegressor((16,), max_iter=5, random_state=0).fit(X, y)
    assert fresh.loss_curve_ == warm.loss_curve_[:5]


@needs_sklearn
def test_stopping_rules_match_sklearn():
    """tol too large to ever be met: both libraries stop after n_iter_no_change + 2 epochs."""
    X, y = blobs(100)
    for kw in [dict(tol=1e9), dict(tol=2.0, early_stopping=True)]:
        ours = MLPClassifier((4,), n_iter_no_change=3, max_iter=50, random_state=0, **kw)
        theirs = SkMLPClassifier((4,), n_iter_no_change=3, max_iter=50, random_state=0, **kw)
        with warnings.catch_warnings():
            warnings.simplefilter("error", ConvergenceWarning)   # they stop, not run out
            ours.fit(X, y)
            theirs.fit(X, y)
        assert ours.n_iter_ == theirs.n_iter_ == 5


@needs_sklearn
@quiet
def test_early_stopping_keeps_the_best_weights(monkeypatch):
    import sklearn.model_selection

    from fastgrad.datasets import load_digits

    X, y = load_digits()
    X, y = X[:600] / 16.0, y[:600]
    held_out = {}
    real_split = sklearn.model_selection.train_test_split

    def spy(*args, **kwargs):
        out = real_split(*args, **kwargs)
        held_out["X"], held_out["y"] = out[1], out[3]
        return out

    monkeypatch.setattr(sklearn.model_selection, "train_test_split", spy)
    clf = MLPClassifier((32,), early_stopping=True, learning_rate_init=0.03,
                        n_iter_no_change=3, max_iter=50, random_state=2).fit(X, y)
    scores = clf.validation_scores_
    assert clf.n_iter_ < 50 and len(scores) == clf.n_iter_ == len(clf.loss_curve_)
    assert clf.best_loss_ is None and clf.best_validation_score_ == max(scores)
    assert scores[-1] < clf.best_validation_score_          # the last epoch was worse...
    assert len(held_out["X"]) == 60                         # validation_fraction=0.1
    restored = np.mean(clf.predict(held_out["X"]) == clf.classes_[held_out["y"]])
    assert restored == clf.best_validation_score_            # ...and the best one is kept

    plain = MLPClassifier((8,), max_iter=5, random_state=0).fit(X, y)
    assert plain.validation_scores_ is None and plain.best_validation_score_ is None
    assert plain.best_loss_ == min(plain.loss_curve_)


@needs_sklearn
def test_convergence_warning_when_max_iter_is_reached():
    X, y = blobs(60)
    with pytest.warns(ConvergenceWarning, match="Maximum iterations \\(2\\)"):
        MLPClassifier((4,), max_iter=2, random_state=0).fit(X, y)


# -- state: random_state, pickling, coefs_ ----------------------------------------------------


@needs_sklearn
@quiet
def test_random_state_kinds():
    X, y = blobs(90)
    before = np.random.get_state()[1].copy()
    a = MLPClassifier((8,), max_iter=3, random_state=3).fit(X, y)
    b = MLPClassifier((8,), max_iter=3, random_state=3).fit(X, y)
    np.testing.assert_array_equal(np.random.get_state()[1], before)   # global state untouched
    assert a.loss_curve_ == b.loss_curve_
    c = MLPClassifier((8,), max_iter=3, random_state=4).fit(X, y)
    assert not np.array_equal(a.coefs_[0], c.coefs_[0])
    # A RandomState instance gives what the int seed gives (scikit-learn's rule).
    d = MLPClassifier((8,), max_iter=3, random_state=np.random.RandomState(3)).fit(X, y)
    assert d.loss_curve_ == a.loss_curve_
    # A Generator works too, and equal Generators give equal models.
    e = MLPClassifier((8,), max_iter=3, random_state=np.random.default_rng(5)).fit(X, y)
    f = MLPClassifier((8,), max_iter=3, random_state=np.random.default_rng(5)).fit(X, y)
    assert e.loss_curve_ == f.loss_curve_
    # None draws from numpy's global state.
    np.random.seed(7)
    g = MLPClassifier((8,), max_iter=3).fit(X, y)
    np.random.seed(7)
    h = MLPClassifier((8,), max_iter=3).fit(X, y)
    assert g.loss_curve_ == h.loss_curve_


@needs_sklearn
@quiet
def test_pickle_keeps_predictions_and_the_optimizer_state():
    X, y = blobs(120)
    clf = MLPClassifier((8,), max_iter=5, random_state=0).fit(X, y)
    copy = pickle.loads(pickle.dumps(clf))
    np.testing.assert_array_equal(copy.predict_proba(X), clf.predict_proba(X))
    # Training on from the copy is training on from the original: same Adam
    # moments, same shuffling state.
    clf.partial_fit(X, y)
    copy.partial_fit(X, y)
    for a, b in zip(clf.coefs_ + clf.intercepts_, copy.coefs_ + copy.intercepts_):
        np.testing.assert_array_equal(a, b)
    assert copy.loss_curve_ == clf.loss_curve_


@needs_sklearn
@quiet
def test_coefs_are_the_model():
    X, y = blobs(60)
    clf = MLPClassifier((6,), max_iter=3, random_state=0).fit(X, y)
    clf.coefs_[1][...] = 0.0                         # in place, as in scikit-learn
    clf.intercepts_[1][...] = [0.0, 5.0, 0.0]
    assert set(clf.predict(X)) == {1}
    clf.coefs_ = [np.zeros_like(c) for c in clf.coefs_]      # replaced
    clf.intercepts_ = [np.zeros_like(b) for b in clf.intercepts_]
    np.testing.assert_allclose(clf.predict_proba(X), 1 / 3)


@needs_sklearn
@quiet
def test_string_labels_and_predict_shapes():
    X, y = blobs(90)
    names = np.array(["cat", "dog", "emu"])[y]
    clf = MLPClassifier((8,), max_iter=30, learning_rate_init=1e-2, random_state=0)
    clf.fit(X, names)
    assert list(clf.classes_) == ["cat", "dog", "emu"]
    assert clf.score(X, names) > 0.95
    # The same model as with the integer labels 0, 1, 2 (classes_ sorted).
    ints = clone(clf).fit(X, y)
    assert clf.predict(X).tolist() == np.array(["cat", "dog", "emu"])[ints.predict(X)].tolist()
    assert clf.predict_proba(X[:5]).shape == (5, 3)
    with pytest.raises(ValueError, match="features"):
        clf.predict(X[:, :2])
    with pytest.raises(ValueError, match="Unknown label type"):
        MLPClassifier().fit(X, X[:, 0])
