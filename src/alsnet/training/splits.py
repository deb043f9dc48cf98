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
from sklearn.model_selection import GroupShuffleSplit, LeaveOneGroupOut, StratifiedGroupKFold, train_test_split

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
    rng = np.random.default_rng(seed)
    subj = np.unique(groups[idx])
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
