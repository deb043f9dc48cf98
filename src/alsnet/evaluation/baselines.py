"""Classical baselines: hand-crafted window features + SVM, random forest or kNN.

They stand in for the feature pipelines the ALSNet paper compares against, evaluated under
exactly the same splits and metrics as the network, so that the comparison is fair.

Every baseline is a scikit-learn :class:`~sklearn.pipeline.Pipeline`:

1. ``log``: ``log10(1 + x)`` of the amplitude features (:data:`~alsnet.evaluation.features.LOG_SCALE_FEATURES`),
   which span orders of magnitude between quiet and active recordings;
2. ``scale``: :class:`~sklearn.preprocessing.StandardScaler` (fitted on training windows
   only, like everything else);
3. ``clf``:

   * ``svm``: ``SVC(kernel="rbf", C=1, gamma="scale", class_weight="balanced")`` with
     Platt-scaled probabilities (``CalibratedClassifierCV(method="sigmoid", cv=5,
     ensemble=False)``, i.e. what ``SVC(probability=True)`` did before its deprecation);
   * ``rf``: ``RandomForestClassifier(n_estimators=300, min_samples_leaf=2,
     class_weight="balanced", n_jobs=1)`` (one job: the machine's cores are shared);
   * ``knn``: ``KNeighborsClassifier(n_neighbors=15, weights="distance")`` — kNN as in the
     paper's comparison methods; 15 neighbours give usable probabilities.

Class weighting balances the (mildly) unequal classes; kNN has no such option.
"""

from __future__ import annotations

import numpy as np
from sklearn.calibration import CalibratedClassifierCV
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import RandomForestClassifier
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler
from sklearn.svm import SVC

from alsnet.errors import AlsnetError
from alsnet.evaluation.features import LOG_SCALE_FEATURES, feature_names, window_features

BASELINES: tuple[str, ...] = ("svm", "rf", "knn")


def _log1p_abs(a: np.ndarray) -> np.ndarray:
    # log10(1 + |x|) stays defined if a feature is ever 0; a module-level function (not a
    # lambda) keeps fitted pipelines picklable.
    return np.log10(1 + np.abs(a))


def _log_amplitudes() -> ColumnTransformer:
    names = feature_names()
    idx = [names.index(n) for n in LOG_SCALE_FEATURES]
    return ColumnTransformer([("log", FunctionTransformer(_log1p_abs), idx)], remainder="passthrough")


#: Default hyperparameters of each baseline (those of the plain protocols).
DEFAULTS = {"svm": {"C": 1.0, "class_weight": "balanced"},
            "rf": {"min_samples_leaf": 2, "class_weight": "balanced"},
            "knn": {"n_neighbors": 15}}

#: Hyperparameter grids searched by the nested protocol's inner cross-validation
#: (:mod:`alsnet.training.nested`), class weighting included, chosen by the same criterion as
#: ALSNet's epoch (:mod:`alsnet.evaluation.selection`). kNN has no class weighting.
GRIDS = {
    "svm": [{"C": c, "class_weight": w} for w in (None, "balanced") for c in (0.1, 1.0, 10.0)],
    "rf": [{"min_samples_leaf": m, "class_weight": w} for w in (None, "balanced") for m in (2, 10, 50)],
    "knn": [{"n_neighbors": n} for n in (5, 15, 45)],
}


def make_baseline(name: str, seed: int = 0, params: dict | None = None) -> Pipeline:
    """An unfitted baseline pipeline (features in, class probabilities out).

    Parameters
    ----------
    name : str
        One of :data:`BASELINES`.
    seed : int
        Random state of the classifier (SVC's Platt scaling, the forest's trees).
    params : dict, optional
        Hyperparameters overriding :data:`DEFAULTS` (``C``, ``min_samples_leaf``,
        ``n_neighbors``, ``class_weight``).
    """
    if name not in DEFAULTS:
        raise AlsnetError(f"unknown baseline {name!r}; choose from {', '.join(BASELINES)}")
    p = {**DEFAULTS[name], **(params or {})}
    if name == "svm":
        # Platt scaling on 5-fold cross-validated decision values, one final SVC (what
        # SVC(probability=True) did; that option is deprecated since scikit-learn 1.9).
        clf = CalibratedClassifierCV(SVC(kernel="rbf", C=p["C"], gamma="scale", class_weight=p["class_weight"],
                                         random_state=seed),
                                     method="sigmoid", cv=5, ensemble=False)
    elif name == "rf":
        clf = RandomForestClassifier(n_estimators=300, min_samples_leaf=p["min_samples_leaf"],
                                     class_weight=p["class_weight"], n_jobs=1, random_state=seed)
    else:
        clf = KNeighborsClassifier(n_neighbors=p["n_neighbors"], weights="distance")
    return Pipeline([("log", _log_amplitudes()), ("scale", StandardScaler()), ("clf", clf)])


def fit_predict_features(name: str, f_train: np.ndarray, y_train: np.ndarray, f_test: np.ndarray,
                         seed: int = 0, *, n_classes: int | None = None, params: dict | None = None) -> np.ndarray:
    """Fit a baseline on feature rows and return test probabilities ``(n_test, n_classes)``.

    Use this to compute :func:`~alsnet.evaluation.features.window_features` once for a whole data set
    and reuse it across folds; columns follow class codes ``0 … n_classes-1`` (a class absent
    from training gets probability 0).
    """
    y_train = np.asarray(y_train).astype(np.int64)
    if len(f_train) != len(y_train):
        raise AlsnetError(f"{len(f_train)} training windows but {len(y_train)} labels")
    if n_classes is None:
        n_classes = int(y_train.max()) + 1
    present = np.unique(y_train)
    if len(present) < 2:
        raise AlsnetError("a baseline needs at least two classes among the training windows")
    if present.max() >= n_classes:
        raise AlsnetError(f"training labels exceed n_classes={n_classes}")
    model = make_baseline(name, seed, params)
    # kNN cannot ask for more neighbours than there are training windows.
    if name == "knn":
        model.set_params(clf__n_neighbors=min(model.get_params()["clf__n_neighbors"], len(y_train)))
    model.fit(f_train, y_train)
    proba = np.zeros((len(f_test), n_classes))
    if len(f_test):
        proba[:, model.classes_] = model.predict_proba(f_test)
    return proba


def fit_predict(name: str, x_train_windows: np.ndarray, y_train: np.ndarray,
                x_test_windows: np.ndarray, fs: float, seed: int = 0, *,
                n_classes: int | None = None) -> np.ndarray:
    """Features of raw windows, fit a baseline, return test probabilities.

    Parameters
    ----------
    name : str
        One of :data:`BASELINES`.
    x_train_windows, x_test_windows : ndarray
        ``(n, T)`` raw windows in µV.
    y_train : ndarray
        Integer class codes of the training windows.
    fs : float
        Sampling rate of the windows (Hz).
    seed : int
        Random state of the classifier.
    n_classes : int, optional
        Number of task classes (``len(task.classes)``); default ``max(y_train) + 1``.

    Returns
    -------
    ndarray
        ``(n_test, n_classes)`` probabilities, columns in class-code (task) order.
    """
    if name not in BASELINES:
        raise AlsnetError(f"unknown baseline {name!r}; choose from {', '.join(BASELINES)}")
    f_train = window_features(x_train_windows, fs)
    f_test = window_features(x_test_windows, fs) if len(x_test_windows) else np.zeros((0, f_train.shape[1]))
    return fit_predict_features(name, f_train, y_train, f_test, seed, n_classes=n_classes)


__all__ = ["BASELINES", "DEFAULTS", "GRIDS", "make_baseline", "fit_predict", "fit_predict_features"]
