"""Reading the "processed EMGLab" pickles that circulate with the ALSNet paper (Kaggle).

The paper's authors distribute their windows as pandas pickles (``X_train.pkl``,
``y_train.pkl``, ``X_test.pkl``, ``y_test.pkl``, ...). Unpickling a file runs whatever code
the file asks for, so alsnet refuses to open one unless the caller says it trusts the
file's source (``trust_pickle=True``, ``--trust-pickle`` on the command line); even then it
warns. Prefer the WFDB recordings (:mod:`alsnet.data.io`): they carry subject identity, which
the pickled windows do not, and they cannot run code.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np

from alsnet.errors import InputError

#: File names of the Kaggle upload, in the order :func:`read_kaggle_split` looks for them.
KAGGLE_FILES = ("X_train", "y_train", "X_val", "y_val", "X_test", "y_test")
PICKLE_SUFFIXES = (".pkl", ".pickle", ".pck")


class PickleTrustWarning(UserWarning):
    """A pickle was unpickled because the caller trusted it."""


def read_kaggle_pickle(path: str | os.PathLike, trust_pickle: bool = False) -> np.ndarray:
    """One pickled table of windows (``X_*``, 2-D float32) or labels (``y_*``, 1-D).

    Parameters
    ----------
    path : str or PathLike
        A ``.pkl`` file written by ``pandas.to_pickle`` (DataFrame, Series or array).
    trust_pickle : bool
        Unpickling runs code from the file. Without ``True`` the file is refused
        (:class:`~alsnet.errors.InputError`) before a byte of it is read.

    Returns
    -------
    ndarray
        Windows as ``(n_windows, n_samples)`` float32, or labels as a 1-D array.
    """
    p = Path(path)
    if not p.is_file():
        raise InputError("file not found" if not p.exists() else "not a regular file", p)
    if not trust_pickle:
        raise InputError("refusing to unpickle: unpickling runs code from the file, so a "
                         "malicious pickle can do anything your account can; if you trust its "
                         "source, pass --trust-pickle (trust_pickle=True)", p)
    warnings.warn(f"{p}: unpickling a file you trusted (--trust-pickle); it can run code",
                  PickleTrustWarning, stacklevel=2)
    import pandas as pd

    try:
        obj = pd.read_pickle(p)
    except Exception as e:  # a trusted but broken pickle: any error type is possible
        raise InputError(f"cannot unpickle ({type(e).__name__}: {e})", p) from None
    return _to_array(obj, p)


def _to_array(obj, path: Path) -> np.ndarray:
    values = getattr(obj, "values", obj)  # DataFrame / Series -> ndarray
    try:
        x = np.asarray(values)
    except Exception as e:
        raise InputError(f"pickle holds {type(obj).__name__}, not a table ({e})", path) from None
    if x.ndim == 2 and 1 in x.shape and x.shape[0] != 1:
        x = x.reshape(-1)  # a one-column label frame
    if x.ndim == 1:
        if x.dtype == object:
            x = x.astype(str)
        return x
    if x.ndim != 2:
        raise InputError(f"expected windows (2-D) or labels (1-D), got shape {x.shape}", path)
    try:
        return np.ascontiguousarray(x, dtype=np.float32)
    except (TypeError, ValueError):
        raise InputError(f"windows must be numbers, got dtype {x.dtype}", path) from None


def read_kaggle_split(folder: str | os.PathLike, trust_pickle: bool = False) -> dict[str, np.ndarray]:
    """Every ``X_*``/``y_*`` pickle in ``folder`` (``{"X_train": ..., "y_train": ...}``).

    Checks that each ``X`` has as many rows as its ``y``.
    """
    folder = Path(folder)
    out = {}
    for name in KAGGLE_FILES:
        for suffix in PICKLE_SUFFIXES:
            if (folder / (name + suffix)).is_file():
                out[name] = read_kaggle_pickle(folder / (name + suffix), trust_pickle)
                break
    if not out:
        raise InputError(f"no {'/'.join(KAGGLE_FILES)} pickles found", folder)
    for part in ("train", "val", "test"):
        x, y = out.get(f"X_{part}"), out.get(f"y_{part}")
        if x is not None and y is not None and len(x) != len(y):
            raise InputError(f"X_{part} has {len(x)} windows but y_{part} has {len(y)} labels", folder)
    return out
