"""Splits: the one place where train / validation / test partitions are decided.

Three protocols:

``paper``
    The ALSNet paper's split: 20% of *windows* at random for test, then 20% of the rest
    for validation (stratified by class, seeded). Windows of one recording, and so of one
    person, sit on both sides: it measures recognition of seen recordings, not diagnosis of
    new people, and every number it produces is labelled so (:data:`LEAKY_LABEL`).
``loso``
    Leave one subject out: one fold per subject.
``group-kfold``
    K folds stratified by class and grouped by subject (``StratifiedGroupKFold``).
``subject-holdout``
    One subject-wise split: about 20% of the subjects of each class (at least one) for test.
    Quick, for demonstrations and large data sets; cross-validation is the better estimate.

In the subject-wise protocols, validation windows (for early stopping and the learning-rate
schedule) come from whole *training* subjects of each fold, never from the test subject.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from alsnet.errors import AlsnetError

PROTOCOLS = ("paper", "loso", "group-kfold", "subject-holdout")
LEAKY_LABEL = "segment-level random split: windows of the same recording are in train and test"
HONEST_LABEL = "subject-wise split: no subject is in both train and test"
#: The paper's fractions.
TEST_FRACTION = 0.2
VAL_FRACTION = 0.2


@dataclass(frozen=True)
class Fold:
    """Indices into a :class:`~alsnet.data.dataset.WindowSet` for one fold."""

    name: str
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray


def protocol_label(protocol: str) -> str:
    """The words that must stand next to every number this protocol produces."""
    return LEAKY_LABEL if protocol == "paper" else HONEST_LABEL


def describe(protocol: str, *, seed: int, folds: int | None = None) -> dict:
    """The split as recorded in every result file and saved model."""
    d = {"protocol": protocol, "seed": seed, "label": protocol_label(protocol),
         "shares_recordings_between_train_and_test": protocol == "paper",
         "test_fraction": TEST_FRACTION if protocol == "paper" else None,
         "val_fraction": VAL_FRACTION}
    if protocol == "group-kfold":
        d["folds"] = folds
    return d


def split_validation(idx: np.ndarray, y: np.ndarray, groups: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Split training indices into train/val by whole subjects, keeping every class in both."""
    from sklearn.model_selection import GroupShuffleSplit

    rng = np.random.default_rng(seed)
    # Choose about VAL_FRACTION of the subjects of each class (at least one when the class
    # has two or more), so validation loss sees every class.
    val_subj = []
    for c in np.unique(y[idx]):
        s_c = np.unique(groups[idx][y[idx] == c])
        if len(s_c) >= 2:
            k = max(1, int(round(VAL_FRACTION * len(s_c))))
            val_subj += list(rng.choice(s_c, size=k, replace=False))
    if not val_subj:  # too few subjects: fall back to a subject-grouped random cut
        gss = GroupShuffleSplit(n_splits=1, test_size=VAL_FRACTION, random_state=seed)
        tr, va = next(gss.split(idx, y[idx], groups[idx]))
        return idx[tr], idx[va]
    is_val = np.isin(groups[idx], val_subj)
    if is_val.all() or not is_val.any():
        raise AlsnetError("cannot hold out validation subjects: too few training subjects")
    return idx[~is_val], idx[is_val]


def make_folds(protocol: str, y: np.ndarray, groups: np.ndarray, *, seed: int = 0,
               folds: int = 5) -> list[Fold]:
    """Folds of a protocol for window targets ``y`` and subject ``groups``."""
    from sklearn.model_selection import LeaveOneGroupOut, StratifiedGroupKFold, train_test_split

    y = np.asarray(y)
    groups = np.asarray(groups)
    n = len(y)
    all_idx = np.arange(n)
    if protocol == "paper":
        trval, test = train_test_split(all_idx, test_size=TEST_FRACTION, random_state=seed, stratify=y)
        train, val = train_test_split(trval, test_size=VAL_FRACTION, random_state=seed, stratify=y[trval])
        return [Fold("paper", np.sort(train), np.sort(val), np.sort(test))]
    if protocol == "loso":
        splitter = LeaveOneGroupOut()
        splits = list(splitter.split(all_idx, y, groups))
    elif protocol == "subject-holdout":
        rng = np.random.default_rng(seed)
        test_subj = []
        for c in np.unique(y):
            s_c = np.unique(groups[y == c])
            if len(s_c) < 2:
                raise AlsnetError(f"subject-holdout needs at least 2 subjects of class {c}")
            k = max(1, int(round(TEST_FRACTION * len(s_c))))
            test_subj += list(rng.choice(s_c, size=k, replace=False))
        is_test = np.isin(groups, test_subj)
        splits = [(all_idx[~is_test], all_idx[is_test])]
    elif protocol == "group-kfold":
        n_subj = len(np.unique(groups))
        if folds < 2 or folds > n_subj:
            raise AlsnetError(f"--folds must be between 2 and the number of subjects ({n_subj}), got {folds}")
        splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
        splits = list(splitter.split(all_idx, y, groups))
    else:
        raise AlsnetError(f"unknown protocol {protocol!r}; choose from {', '.join(PROTOCOLS)}")
    out = []
    for k, (trval, test) in enumerate(splits):
        train, val = split_validation(trval, y, groups, seed + k)
        name = f"subject-{groups[test][0]}" if protocol == "loso" else f"fold-{k}"
        out.append(Fold(name, np.sort(train), np.sort(val), np.sort(test)))
    return out


# --------------------------------------------------------------------------- nested

#: Outer protocols of a nested evaluation, and the inner one.
NESTED_OUTER = ("group-kfold", "loso", "none")
INNER_PROTOCOL = "stratified group k-fold over the outer fold's training subjects"


@dataclass(frozen=True)
class NestedFold:
    """One outer fold of a nested evaluation: test indices and the inner folds of its training side.

    Each inner fold is ``(name, train, val)``: ``val`` holds whole subjects of the outer
    training side (the inner out-of-fold subjects), never an outer test subject.
    """

    name: str
    train: np.ndarray
    test: np.ndarray
    inner: tuple[tuple[str, np.ndarray, np.ndarray], ...]


def _subject_folds(idx: np.ndarray, y: np.ndarray, groups: np.ndarray, k: int, seed: int):
    """``StratifiedGroupKFold`` over the subjects of ``idx``, every fold's training side with every class."""
    from sklearn.model_selection import StratifiedGroupKFold

    n_subj = len(np.unique(groups[idx]))
    if k < 2 or k > n_subj:
        raise AlsnetError(f"need between 2 and {n_subj} subject-wise folds, got {k}")
    sgkf = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
    try:
        pairs = list(sgkf.split(idx, y[idx], groups[idx]))
    except ValueError as e:  # scikit-learn's "n_splits=5 cannot be greater than ...": too few windows
        raise AlsnetError(f"cannot make {k} subject-wise folds of these subjects: {e}") from None
    out = []
    for tr, te in pairs:
        if len(np.unique(y[idx][tr])) < len(np.unique(y[idx])):
            raise AlsnetError(f"a {k}-fold subject split leaves a class out of training: too few subjects "
                              f"per class for k={k}")
        out.append((np.sort(idx[tr]), np.sort(idx[te])))
    return out


def make_nested_folds(y: np.ndarray, groups: np.ndarray, *, outer: str = "group-kfold", outer_k: int = 5,
                      inner_k: int = 3, seed: int = 0) -> list[NestedFold]:
    """Outer subject-wise folds, each with an inner subject-wise k-fold of its training subjects.

    ``outer`` is ``group-kfold`` (``StratifiedGroupKFold`` with ``outer_k`` folds), ``loso``, or
    ``none`` (one fold named ``all-subjects`` with every subject on the training side and no
    test: the selection procedure applied to all the data, as a bundled model is built);
    the inner split is always a ``StratifiedGroupKFold`` with ``inner_k`` folds, seeded by
    ``seed`` and the outer fold's number.
    """
    from sklearn.model_selection import LeaveOneGroupOut

    y, groups = np.asarray(y), np.asarray(groups)
    all_idx = np.arange(len(y))
    if outer == "none":  # the procedure itself on every subject: what a bundled model is built by
        pairs = [(all_idx, np.zeros(0, dtype=np.int64))]
    elif outer == "loso":
        pairs = [(np.sort(tr), np.sort(te)) for tr, te in LeaveOneGroupOut().split(all_idx, y, groups)]
    elif outer == "group-kfold":
        pairs = _subject_folds(all_idx, y, groups, outer_k, seed)
    else:
        raise AlsnetError(f"unknown outer protocol {outer!r}; choose from {', '.join(NESTED_OUTER)}")
    folds = []
    for o, (train, test) in enumerate(pairs):
        name = {"loso": f"subject-{groups[test][0]}" if len(test) else "", "none": "all-subjects"}.get(outer,
                                                                                                   f"outer-{o}")
        inner = tuple((f"inner-{i}", tr, va)
                      for i, (tr, va) in enumerate(_subject_folds(train, y, groups, inner_k, seed * 1000 + o + 1)))
        folds.append(NestedFold(name, train, test, inner))
    return folds


def describe_nested(outer: str, outer_k: int, inner_k: int, seed: int) -> dict:
    """The nested split as recorded in every result file."""
    return {"protocol": f"nested-{outer}", "outer": outer, "outer_k": outer_k if outer == "group-kfold" else None,
            "inner": INNER_PROTOCOL, "inner_k": inner_k, "seed": seed, "label": HONEST_LABEL,
            "shares_recordings_between_train_and_test": False}
