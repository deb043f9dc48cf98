"""Training one fold: ALSNet through Lightning, or a classical baseline through scikit-learn.

Both return the same thing, a predictions table for the fold's test windows (see
:mod:`alsnet.evaluation.metrics`), so one evaluation path scores every model.
"""

from __future__ import annotations

import csv
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from alsnet.data.dataset import WindowSet
from alsnet.data.domain import windowset_domain
from alsnet.data.labels import Task
from alsnet.data.windows import MODEL_FS, WINDOW_SAMPLES
from alsnet.errors import AlsnetError
from alsnet.files import atomic_write_text
from alsnet.model.checkpoint import save_model
from alsnet.model.network import ALSNet
from alsnet.model.outputs import probabilities
from alsnet.training.lightning import ALSNetModule, WindowDataModule
from alsnet.training.recipe import Recipe
from alsnet.training.runs import is_rank_zero
from alsnet.training.splits import Fold

MODELS = ("alsnet", "svm", "rf", "knn")


def predictions_frame(ws: WindowSet, idx: np.ndarray, proba: np.ndarray, task: Task, fold: str) -> pd.DataFrame:
    """The predictions table: one row per window, a ``p_<class>`` column per task class."""
    df = pd.DataFrame({
        "record": ws.record[idx], "subject": ws.subject[idx], "window": ws.index[idx],
        "start": ws.start[idx], "label": ws.label[idx], "y_true": ws.y[idx], "fold": fold,
    })
    for k, c in enumerate(task.classes):
        df[f"p_{c}"] = proba[:, k].astype(np.float64)
    return df


def score_windows(model: ALSNet, x: np.ndarray, *, backend: str = "auto", batch: int = 32,
                  temperature: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """(logits, probabilities) of windows ``x`` (n, T), through the fastest faithful path.

    A model on an accelerator (a GPU run) is scored where it is, in eval mode; on the CPU
    through :class:`~alsnet.engine.backends.InferenceEngine`.
    """
    model.eval()
    device = next(model.parameters()).device
    if device.type != "cpu":
        def run(xb: np.ndarray) -> np.ndarray:
            with torch.no_grad():
                return model(torch.from_numpy(np.ascontiguousarray(xb, np.float32))[:, None].to(device)).cpu().numpy()
    else:
        from alsnet.engine.backends import InferenceEngine

        run = InferenceEngine(model, backend=backend).logits
    out = [np.asarray(run(x[i:i + batch]), dtype=np.float32) for i in range(0, len(x), batch)]
    logits = np.concatenate(out) if out else np.zeros((0, model.n_outputs), np.float32)
    return logits, probabilities(logits, temperature)


class HistoryWriter:
    """Per-epoch log (``history.csv``), rewritten atomically at each epoch end."""

    FIELDS = ["fold", "epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "lr", "seconds"]

    def __init__(self, path: Path, fold: str):
        self.path, self.fold = path, fold
        self.rows: list[dict] = []
        if path.is_file():
            with path.open(newline="") as f:
                self.rows = list(csv.DictReader(f))

    def callback(self):
        import lightning as L

        writer = self

        class _History(L.Callback):
            def on_train_epoch_start(self, trainer, pl_module):
                self.t0 = time.perf_counter()

            def on_train_epoch_end(self, trainer, pl_module):
                if not trainer.is_global_zero:
                    return
                m = {k: float(v) for k, v in trainer.callback_metrics.items()}
                e = trainer.current_epoch
                writer.rows = [r for r in writer.rows if int(r["epoch"]) < e]
                writer.rows.append({
                    "fold": writer.fold, "epoch": e, "train_loss": m.get("train_loss"),
                    "train_accuracy": m.get("train_accuracy"), "val_loss": m.get("val_loss"),
                    "val_accuracy": m.get("val_accuracy"),
                    "lr": trainer.optimizers[0].param_groups[0]["lr"],
                    "seconds": round(time.perf_counter() - getattr(self, "t0", time.perf_counter()), 3)})
                writer.flush()

        return _History()

    def flush(self) -> None:
        lines = [",".join(self.FIELDS)]
        for r in self.rows:
            lines.append(",".join("" if r.get(k) is None else str(r.get(k)) for k in self.FIELDS))
        atomic_write_text(self.path, "\n".join(lines) + "\n")


def quiet_lightning() -> None:
    """Keep Lightning's banners (GPU/TPU availability, tips) out of the user's terminal."""
    import logging
    import warnings

    for name in ("lightning.pytorch", "lightning.fabric", "lightning"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=".*LeafSpec.*")
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    warnings.filterwarnings("ignore", message=".*litlogger.*")


def balanced_class_weights(y: np.ndarray, n_classes: int) -> np.ndarray:
    """``n / (k * n_c)`` per class (scikit-learn's "balanced"), from the training labels."""
    from sklearn.utils.class_weight import compute_class_weight

    y = np.asarray(y).astype(np.int64)
    present = np.unique(y)
    if len(present) != n_classes:
        raise AlsnetError(f"class_weight=balanced needs training windows of all {n_classes} classes, "
                          f"got {len(present)}")
    return compute_class_weight("balanced", classes=np.arange(n_classes), y=y).astype(np.float32)


def train_alsnet_fold(ws: WindowSet, fold: Fold, task: Task, recipe: Recipe, fold_dir: Path, *,
                      seed: int, trainer_kw: dict, progress: bool, eval_backend: str = "auto",
                      card: dict | None = None, extra_callbacks: list | None = None,
                      score_test: bool = True) -> pd.DataFrame | None:
    """Train ALSNet on one fold and score its test windows (None on non-zero DDP ranks).

    ``extra_callbacks`` are added to the Lightning trainer (the nested protocol's per-epoch
    logger); with ``score_test=False`` the fold has no test windows to score and None is returned.
    """
    import lightning as L
    from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint

    from alsnet.engine.backends import describe as describe_backend

    quiet_lightning()
    if recipe.fast and trainer_kw.get("accelerator", "cpu") == "cpu":
        from alsnet.engine.backends import keep_freed_memory

        keep_freed_memory()
    fold_dir.mkdir(parents=True, exist_ok=True)
    L.seed_everything(seed, workers=True, verbose=False)
    weights = balanced_class_weights(ws.y[fold.train], len(task.classes)) if recipe.class_weight else None
    module = ALSNetModule(task, recipe, class_weights=weights)
    crop = int(round(recipe.train_crop * MODEL_FS)) if recipe.train_crop else None
    dm = WindowDataModule(ws.x[fold.train], ws.y[fold.train], ws.x[fold.val], ws.y[fold.val],
                          batch_size=recipe.batch_size, crop=crop, seed=seed, augment=recipe.augment,
                          sampling=recipe.sampling, subject_train=ws.subject[fold.train])
    ckpt_dir = fold_dir / "checkpoints"
    history = HistoryWriter(fold_dir / "history.csv", fold.name)
    best = ModelCheckpoint(dirpath=ckpt_dir, filename="best", monitor="val_loss", mode="min",
                           save_top_k=1, enable_version_counter=False)
    # last.ckpt after every epoch (Lightning's save_last only copies it when "best" is saved):
    # an interrupted fold resumes from its latest epoch, not from its best one
    latest = ModelCheckpoint(dirpath=ckpt_dir, filename="last", monitor=None, save_top_k=1,
                             every_n_epochs=1, enable_version_counter=False)
    callbacks = [best, latest, EarlyStopping(monitor="val_loss", mode="min", patience=recipe.early_stopping_patience),
                 history.callback(), *(extra_callbacks or [])]
    trainer = L.Trainer(max_epochs=recipe.max_epochs, callbacks=callbacks, logger=False,
                        enable_progress_bar=progress, enable_model_summary=False,
                        use_distributed_sampler=False, num_sanity_val_steps=0,
                        default_root_dir=str(fold_dir), **trainer_kw)
    last = ckpt_dir / "last.ckpt"
    trainer.fit(module, dm, ckpt_path=str(last) if last.is_file() else None)
    if not trainer.is_global_zero or not is_rank_zero():
        return None
    best_path = best.best_model_path or str(last)
    state = torch.load(best_path, map_location="cpu", weights_only=True)["state_dict"]
    module.load_state_dict(state)
    model = module.model.eval()
    # Temperature scaling on the validation windows (calibration; labels unchanged).
    val_logits, _ = score_windows(model, ws.x[fold.val], backend=eval_backend)
    calib = fit_calibration(val_logits, ws.y[fold.val])
    if score_test:
        # the probabilities the saved model's card gives (its temperature): what `predict` reports
        logits, proba = score_windows(model, ws.x[fold.test], backend=eval_backend,
                                      temperature=calib["temperature"])
    else:
        logits = np.zeros((0, model.n_outputs), np.float32)
    save_model(fold_dir / "model", model, {
        "task": task.name, "calibration": calib,
        "best_epoch": _best_epoch(history.rows), "best_val_loss": float(best.best_model_score)
        if best.best_model_score is not None else None,
        "backend": describe_backend(eval_backend, recipe.fast),
        # what the model has seen, for out-of-domain warnings (a caller's card may measure more)
        "domain": windowset_domain(ws.x[fold.train], ws.record[fold.train]), **(card or {})})
    np.savez_compressed(fold_dir / "calibration.npz", val_logits=val_logits, val_y=ws.y[fold.val],
                        test_logits=logits, test_y=ws.y[fold.test], temperature=calib["temperature"])
    return predictions_frame(ws, fold.test, proba, task, fold.name) if score_test else None


def _best_epoch(rows: list[dict]) -> int | None:
    vals = [(float(r["val_loss"]), int(r["epoch"])) for r in rows if r.get("val_loss") not in (None, "")]
    return min(vals)[1] if vals else None


def fit_calibration(logits: np.ndarray, y: np.ndarray) -> dict:
    """Temperature fitted on validation logits, with ECE before and after."""
    from alsnet.evaluation.calibration import apply_temperature, expected_calibration_error, fit_temperature

    if len(np.unique(y)) < 2:
        return {"temperature": 1.0, "method": "none (validation has one class)"}
    t = float(fit_temperature(logits, y))
    if not 0.02 < t < 50.0:
        # On perfectly separated validation windows the likelihood keeps improving as the
        # temperature goes to zero: no calibration can be learnt from them.
        return {"temperature": 1.0, "method": f"none (fit ran to its bound, T={t:.3g}: "
                                              "validation windows perfectly separated)"}
    return {"temperature": t, "method": "temperature scaling on validation windows",
            "ece_before": float(expected_calibration_error(apply_temperature(logits, 1.0), y)),
            "ece_after": float(expected_calibration_error(apply_temperature(logits, t), y))}


def train_baseline_fold(ws: WindowSet, fold: Fold, task: Task, name: str, *, seed: int,
                        features: np.ndarray | None = None) -> pd.DataFrame:
    """Fit a classical baseline on the fold's training + validation windows; score its test windows.

    ``features`` are the windows' hand-crafted features, computed once for all folds.
    """
    from alsnet.evaluation.baselines import fit_predict_features
    from alsnet.evaluation.features import window_features

    f = window_features(ws.x, MODEL_FS) if features is None else features
    train = np.concatenate([fold.train, fold.val])
    proba = fit_predict_features(name, f[train], ws.y[train], f[fold.test], seed=seed,
                                 n_classes=len(task.classes))
    return predictions_frame(ws, fold.test, np.asarray(proba), task, fold.name)


def default_threads(jobs: int = 1) -> int:
    return max(1, (os.cpu_count() or 1) // max(1, jobs))


__all__ = ["MODELS", "predictions_frame", "score_windows", "train_alsnet_fold", "train_baseline_fold",
           "WINDOW_SAMPLES"]
