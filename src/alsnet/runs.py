"""Run folders: what every training or evaluation run writes, and how it is written.

``RUN_DIR/`` holds ``config.json`` (window, rate, labels, split, seed, recipe, versions),
``history.csv`` (per-epoch log), ``predictions.csv`` (one row per test window),
``metrics.json``, ``figures/``, the weights (``model.safetensors`` + ``model.json`` card,
or one pair per fold under ``folds/NAME/``). Files are written to a temporary name and
renamed, so a killed run never leaves half a file; an existing run is never overwritten
without ``force``.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import sys
from pathlib import Path

import numpy as np

from alsnet.checkpoint import atomic_write_text
from alsnet.errors import AlsnetError


def is_rank_zero() -> bool:
    """False in the extra processes that Lightning's DDP launcher starts."""
    return os.environ.get("LOCAL_RANK", "0") == "0" and os.environ.get("NODE_RANK", "0") == "0" \
        and os.environ.get("RANK", "0") == "0"


def versions() -> dict:
    import lightning
    import scipy
    import sklearn
    import torch

    from alsnet import __version__

    return {"alsnet": __version__, "python": sys.version.split()[0], "torch": torch.__version__,
            "lightning": lightning.__version__, "numpy": np.__version__, "scipy": scipy.__version__,
            "scikit-learn": sklearn.__version__, "platform": platform.platform(),
            "cpu": platform.processor() or platform.machine(), "cpu_count": os.cpu_count()}


def prepare_run_dir(path: str | os.PathLike, *, force: bool = False, resume: bool = False) -> Path:
    """Create ``path`` for a new run; refuse to overwrite an existing one without ``force``."""
    run = Path(path)
    if resume:
        if not (run / "config.json").is_file():
            raise AlsnetError("nothing to resume: no config.json", run)
        return run
    if run.exists() and any(run.iterdir()) and is_rank_zero():
        if not force:
            raise AlsnetError("run folder exists and is not empty; use --force to overwrite "
                              "or --resume to continue it", run)
        shutil.rmtree(run)
    run.mkdir(parents=True, exist_ok=True)
    return run


def _default(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return None if not np.isfinite(o) else float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def _clean(o):
    """NaN and inf become null: JSON has no NaN, and 'undefined' is what they mean here."""
    if isinstance(o, float) and not np.isfinite(o):
        return None
    if isinstance(o, dict):
        return {k: _clean(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_clean(v) for v in o]
    if isinstance(o, np.ndarray):
        return _clean(o.tolist())
    if isinstance(o, np.floating):
        return _clean(float(o))
    return o


def write_json(path: str | os.PathLike, obj) -> None:
    text = json.dumps(_clean(obj), indent=2, default=_default, allow_nan=False)
    atomic_write_text(path, text + "\n")


def read_json(path: str | os.PathLike) -> dict:
    p = Path(path)
    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise AlsnetError("file not found", p) from None
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise AlsnetError(f"not valid JSON ({e})", p) from None


def write_csv(path: str | os.PathLike, df) -> None:
    atomic_write_text(path, df.to_csv(index=False))
