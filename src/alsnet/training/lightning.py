"""Lightning wrappers: the training recipe of the paper around :class:`~alsnet.model.network.ALSNet`.

The defaults are the paper's (``../shared/ALSNET.md``): binary cross-entropy on logits,
Adam (lr 1e-3, betas 0.9/0.999, eps 1e-7), batch 48 shuffled, reduce-on-plateau of the
validation loss (factor 0.1, patience 5, min delta 1e-4, min lr 1e-10). Early stopping and
checkpoints are callbacks set up in :mod:`alsnet.training.fold`.

Shuffling and random crops are seeded by ``(seed, epoch)`` rather than by a global RNG, so
a run resumed from an epoch checkpoint sees exactly the batches an uninterrupted run sees.
"""

from __future__ import annotations

import lightning as L
import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, Sampler

from alsnet.data.labels import Task
from alsnet.errors import AlsnetError
from alsnet.model.network import ALSNet
from alsnet.training.recipe import Recipe

#: Gains of the gain/polarity augmentation: log-uniform in [1/GAIN_RANGE, GAIN_RANGE].
GAIN_RANGE = 2.0


class WindowDataset(Dataset):
    """Windows held in memory as one float32 tensor; optional seeded random crops and augmentation.

    ``augment="gain-polarity"`` multiplies each training window by a random gain, log-uniform
    in [1/2, 2], and a random sign: a needle's distance to the fibres and the amplifier's gain
    change amplitudes, the electrode's orientation flips polarity, neither changes the disease.
    Every draw is seeded by ``(seed, epoch, window)``, so a resumed run sees the same windows.
    """

    def __init__(self, x: np.ndarray, y: np.ndarray, crop: int | None = None, seed: int = 0,
                 augment: str | None = None):
        self.x = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
        self.y = torch.from_numpy(np.asarray(y))
        self.crop = crop if crop and crop < self.x.shape[-1] else None
        self.seed = seed
        self.augment = augment
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.x[i]
        if self.crop or self.augment:
            rng = np.random.default_rng((self.seed, self.epoch, i))
            if self.crop:
                s = int(rng.integers(0, x.shape[-1] - self.crop + 1))
                x = x[s:s + self.crop]
            if self.augment == "gain-polarity":
                gain = float(np.exp(rng.uniform(-np.log(GAIN_RANGE), np.log(GAIN_RANGE))))
                x = x * (gain if rng.random() < 0.5 else -gain)
        return x.unsqueeze(0), self.y[i]


class EpochSeededSampler(Sampler):
    """A permutation that depends only on (seed, epoch): resumable shuffling.

    With ``weights`` (one per window) it draws as many windows with replacement, each with
    probability proportional to its weight: class- and subject-balanced sampling.
    """

    def __init__(self, dataset: WindowDataset, seed: int, weights: np.ndarray | None = None):
        self.dataset, self.seed, self.epoch = dataset, seed, 0
        self.p = None if weights is None else np.asarray(weights, float) / np.sum(weights)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        self.dataset.epoch = epoch

    def __len__(self) -> int:
        return len(self.dataset)

    def __iter__(self):
        rng = np.random.default_rng((self.seed, self.epoch, 7919))
        n = len(self.dataset)
        if self.p is None:
            return iter(rng.permutation(n).tolist())
        return iter(rng.choice(n, size=n, replace=True, p=self.p).tolist())


def class_subject_weights(y: np.ndarray, subject: np.ndarray) -> np.ndarray:
    """Per-window weights giving every class, and every subject within its class, equal mass."""
    y, subject = np.asarray(y), np.asarray(subject)
    w = np.zeros(len(y))
    classes = np.unique(y)
    for c in classes:
        subs = np.unique(subject[y == c])
        for s in subs:
            m = (y == c) & (subject == s)
            w[m] = 1.0 / (len(classes) * len(subs) * m.sum())
    return w


class WindowDataModule(L.LightningDataModule):
    """Train/validation windows in memory."""

    def __init__(self, x_train, y_train, x_val, y_val, *, batch_size: int, crop: int | None, seed: int,
                 augment: str | None = None, sampling: str | None = None, subject_train=None):
        super().__init__()
        self.train_set = WindowDataset(x_train, y_train, crop=crop, seed=seed, augment=augment)
        self.val_set = WindowDataset(x_val, y_val)
        self.batch_size, self.seed = batch_size, seed
        self.weights = None
        if sampling == "class-subject-balanced":
            if subject_train is None:
                raise AlsnetError("class-subject-balanced sampling needs the training windows' subjects")
            self.weights = class_subject_weights(y_train, subject_train)

    def train_dataloader(self) -> DataLoader:
        sampler = EpochSeededSampler(self.train_set, self.seed, self.weights)
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            from torch.utils.data.distributed import DistributedSampler

            sampler = DistributedSampler(self.train_set, shuffle=True, seed=self.seed)
        # A last batch of one window cannot be batch-normalised in training mode (PyTorch
        # refuses; Keras would divide by a zero variance): drop it, and only then.
        drop_last = len(sampler) % self.batch_size == 1
        return DataLoader(self.train_set, batch_size=self.batch_size, sampler=sampler, num_workers=0,
                          drop_last=drop_last)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(self.val_set, batch_size=max(self.batch_size, 32), shuffle=False, num_workers=0)


class ALSNetModule(L.LightningModule):
    """ALSNet with the paper's loss, optimiser and learning-rate schedule."""

    def __init__(self, task: Task, recipe: Recipe, class_weights: torch.Tensor | None = None):
        super().__init__()
        self.task = task
        self.recipe = recipe
        self.model = ALSNet(n_chans=1, n_outputs=task.n_outputs)
        if class_weights is not None:
            class_weights = torch.as_tensor(class_weights, dtype=torch.float32)
            if class_weights.shape != (len(task.classes),):
                raise ValueError(f"need {len(task.classes)} class weights, got {tuple(class_weights.shape)}")
        self.class_weights = class_weights
        self.loss_fn = nn.BCEWithLogitsLoss(reduction="none") if task.binary else nn.CrossEntropyLoss(
            weight=class_weights)
        self._fast = None
        self._val_engine = None
        if recipe.fast:
            from alsnet.engine.backends import train_forward

            self._fast = train_forward
        self.save_hyperparameters({"task": task.name, "recipe": recipe.to_dict()})

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._fast is not None:
            return self._fast(self.model, x)
        return self.model(x)

    def _loss(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if self.task.binary:
            per = self.loss_fn(logits[:, 0], y.float())
            if self.class_weights is None:
                return per.mean()
            w = self.class_weights.to(per.device)[y.long()]
            return (per * w).sum() / w.sum()  # the weighted mean, as CrossEntropyLoss(weight=...)
        return self.loss_fn(logits, y.long())

    def _correct(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        pred = (logits[:, 0] > 0).long() if self.task.binary else logits.argmax(-1)
        return (pred == y).float()

    def on_train_epoch_start(self) -> None:
        loader = self.trainer.train_dataloader
        sampler = getattr(loader, "sampler", None)
        if hasattr(sampler, "set_epoch"):
            sampler.set_epoch(self.current_epoch)
        ds = getattr(loader, "dataset", None)
        if isinstance(ds, WindowDataset):
            ds.epoch = self.current_epoch

    @torch.no_grad()
    def recalibrate_bn(self, x: torch.Tensor, batch: int = 32) -> None:
        """Re-estimate every BatchNorm's statistics on whole windows ``x`` (N, T).

        Two reasons, both only when training on crops: the max over a short crop is smaller
        than over a whole window, so the dense BatchNorm's statistics gathered on crops do
        not fit whole windows; and with the reference momentum (0.01) a short run has not
        yet moved the running statistics far from their initial values. This is "precise
        BatchNorm" (Wu & Johnson, 2021): the average of per-batch statistics over whole
        windows in one pass, with each batch normalised by its own statistics as in training.
        """
        was_training = self.model.training
        bns = [m for m in self.model.modules() if isinstance(m, nn.BatchNorm1d)]
        momenta = [bn.momentum for bn in bns]
        for bn in bns:
            bn.reset_running_stats()
            bn.momentum = None  # cumulative average over the pass
        self.model.train()
        try:
            for i in range(0, len(x), batch):
                xb = x[i:i + batch]
                if len(xb) < 2:
                    break
                self(xb.unsqueeze(1))  # the fast path when training uses it (no gradients here)
        finally:
            for bn, m in zip(bns, momenta):
                bn.momentum = m
            self.model.train(was_training)

    def _recalibrate_if_cropping(self) -> None:
        if not self.recipe.train_crop or self.trainer.sanity_checking:
            return
        dm = self.trainer.datamodule
        if dm is None:
            return
        x = dm.train_set.x
        n = min(self.recipe.recalibration_windows, len(x))
        idx = np.random.default_rng((dm.seed, self.current_epoch, 104729)).choice(len(x), n, replace=False)
        self.recalibrate_bn(x[np.sort(idx)])

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        x, y = batch
        logits = self(x)
        loss = self._loss(logits, y)
        self.log("train_loss", loss, on_step=False, on_epoch=True, prog_bar=True, batch_size=len(y), sync_dist=True)
        self.log("train_accuracy", self._correct(logits.detach(), y).mean(), on_step=False, on_epoch=True,
                 batch_size=len(y), sync_dist=True)
        return loss

    def _val_logits(self, x: torch.Tensor) -> torch.Tensor:
        if self._val_engine is not None:
            return torch.from_numpy(self._val_engine.logits(x))
        return self(x)

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        x, y = batch
        logits = self._val_logits(x)
        loss = self._loss(logits, y)
        self._val_sum = self._val_sum + loss.detach().cpu() * len(y)
        self._val_n += len(y)
        self.log("val_loss", loss, prog_bar=True, batch_size=len(y), sync_dist=True)
        self.log("val_accuracy", self._correct(logits, y).mean(), prog_bar=True, batch_size=len(y), sync_dist=True)
        return logits  # read by callbacks that keep every epoch's validation logits

    def configure_optimizers(self) -> torch.optim.Optimizer:
        r = self.recipe
        opt = torch.optim.Adam(self.model.parameters(), lr=r.lr, betas=tuple(r.betas), eps=r.adam_eps)
        # The plateau schedule is stepped by hand right after validation, so the epoch
        # checkpoint (written when validation ends) already holds this epoch's step: a
        # resumed run follows the same learning-rate path as an uninterrupted one.
        self.plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(
            opt, mode="min", factor=r.plateau_factor, patience=r.plateau_patience,
            threshold=r.plateau_min_delta, threshold_mode="abs", min_lr=r.min_lr)
        return opt

    def on_validation_epoch_start(self) -> None:
        self._val_sum = torch.zeros(())
        self._val_n = 0
        self._recalibrate_if_cropping()
        self._val_engine = self._make_val_engine()

    def _make_val_engine(self):
        """Validation on CPU in float32 scores through the inference engine (BatchNorm folded,
        Winograd kernels): the eval-mode logits to float32 rounding, in half the time of
        train_forward. Built after the BatchNorm re-estimation, from this epoch's weights."""
        trainer = getattr(self, "_trainer", None)
        if self._fast is None or self.device.type != "cpu" or (
                trainer is not None and str(trainer.precision) not in ("32-true", "32")):
            return None
        from alsnet.engine.backends import InferenceEngine

        # "auto" is the kernels where they built, else the folded network (the kernels' loader
        # has already said why, once): nothing to catch here
        return InferenceEngine(self.model, "auto")

    def on_validation_epoch_end(self) -> None:
        self._val_engine = None  # its weights are this epoch's
        if self.trainer.sanity_checking or self._val_n == 0 or getattr(self, "plateau", None) is None:
            return
        if getattr(self, "_plateau_state", None) is not None:
            self.plateau.load_state_dict(self._plateau_state)
            self._plateau_state = None
        self.plateau.step(float(self._val_sum) / self._val_n)

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        if getattr(self, "plateau", None) is not None:
            checkpoint["alsnet_plateau"] = self.plateau.state_dict()

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        self._plateau_state = checkpoint.get("alsnet_plateau")
