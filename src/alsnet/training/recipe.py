"""The training recipe: the one source of training defaults (the paper's), and its deviations.

``RunConfig`` is the base of both experiment dataclasses: the fields they share, saved in
``config.json``.

The command line takes its defaults and help from the fields here (``metadata["cli"]``), so
a default is decided once. This module imports no torch, so ``alsnet --help`` stays fast.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

from alsnet.data.labels import DEFAULT_TASK
from alsnet.errors import AlsnetError


@dataclass
class Recipe:
    """Training settings; the defaults are the paper's."""

    lr: float = field(default=1e-3, metadata={"cli": "--lr", "help": "Adam learning rate"})
    betas: tuple[float, float] = (0.9, 0.999)
    adam_eps: float = 1e-7
    batch_size: int = field(default=48, metadata={"cli": "--batch-size", "help": "batch size"})
    max_epochs: int = field(default=100, metadata={"cli": "--max-epochs", "help": "at most this many epochs"})
    plateau_factor: float = 0.1
    plateau_patience: int = field(default=5, metadata={"cli": "--plateau-patience",
                                                        "help": "reduce-LR-on-plateau patience in epochs"})
    plateau_min_delta: float = 1e-4
    min_lr: float = 1e-10
    early_stopping_patience: int = field(default=25, metadata={"cli": "--patience",
                                                               "help": "early-stopping patience in epochs"})
    #: Length in seconds of random training crops; None trains on whole windows (paper).
    train_crop: float | None = field(default=None, metadata={
        "cli": "--train-crop", "type": float, "metavar": "SECONDS",
        "help": "train on random crops of this length (a named deviation from the paper; validation and "
                "test always use whole 1-s windows)"})
    #: Use alsnet.engine.backends.train_forward (same function, faster) where available.
    fast: bool = field(default=True, metadata={"cli": "--no-fast", "action": "store_false",
                                               "help": "use the plain eager model for training steps"})
    #: With crops: whole training windows used to re-estimate the BatchNorm statistics.
    recalibration_windows: int = 192
    #: None: unweighted loss (paper). "balanced": each class weighted by n / (k * n_class)
    #: of the fold's training windows, in the training and the validation loss.
    class_weight: str | None = field(default=None, metadata={
        "cli": "--class-weight", "choices": ["balanced"],
        "help": "weight the loss by inverse class frequency of the training windows"})
    #: Declared variants (docs/results.md): None is the paper's recipe.
    augment: str | None = field(default=None, metadata={
        "cli": "--augment", "choices": ["gain-polarity"],
        "help": "random gain (log-uniform 0.5-2) and polarity of each training window"})
    sampling: str | None = field(default=None, metadata={
        "cli": "--sampling", "choices": ["class-subject-balanced"],
        "help": "draw training windows so that every class, and every subject within it, weighs the same"})

    def __post_init__(self) -> None:
        if self.class_weight not in (None, "balanced"):
            raise AlsnetError(f"class_weight must be 'balanced' or None, got {self.class_weight!r}")
        if self.augment not in (None, "gain-polarity"):
            raise AlsnetError(f"augment must be 'gain-polarity' or None, got {self.augment!r}")
        if self.sampling not in (None, "class-subject-balanced"):
            raise AlsnetError(f"sampling must be 'class-subject-balanced' or None, got {self.sampling!r}")

    def deviations(self) -> list[str]:
        """Named departures from the paper's recipe, reported next to every number."""
        ref = Recipe()
        out = []
        for k in ("lr", "batch_size", "max_epochs", "plateau_factor", "plateau_patience",
                  "early_stopping_patience"):
            if getattr(self, k) != getattr(ref, k):
                out.append(f"{k}={getattr(self, k)} (paper {getattr(ref, k)})")
        if self.train_crop is not None:
            out.append(f"train_crop={self.train_crop:g} s random crops for training "
                       f"(paper: whole 1-s windows; validation and test use whole windows; BatchNorm "
                       f"statistics are re-estimated on {self.recalibration_windows} whole training "
                       f"windows before each validation)")
        if self.augment is not None:
            out.append(f"augment={self.augment}: each training window scaled by a random gain (log-uniform "
                       f"0.5-2) and sign (paper: no augmentation)")
        if self.sampling is not None:
            out.append(f"sampling={self.sampling}: training windows drawn with replacement, each class and each "
                       f"subject within it with equal mass (paper: shuffled windows)")
        if self.class_weight is not None:
            out.append(f"class_weight={self.class_weight}: loss weighted by n / (k * n_class) of the "
                       f"training windows (paper: unweighted)")
        return out

    def to_dict(self) -> dict:
        d = asdict(self)
        d["betas"] = list(self.betas)
        return d


@dataclass
class RunConfig:
    """The fields every experiment shares (``Experiment``, ``NestedExperiment``), and JSON-ready
    dicts and back. A saved ``config.json`` is read by field name, so the order is free."""

    data: str
    out: str
    task: str = DEFAULT_TASK
    model: str = "alsnet"
    seed: int = 0
    recipe: Recipe = field(default_factory=Recipe)
    invalid: str = "drop"
    eval_backend: str = "auto"
    n_boot: int = 1000
    trainer: dict = field(default_factory=lambda: {"accelerator": "cpu", "devices": 1})
    #: Reader options for every file (fs, scale, channel); a labels.csv row's own columns win.
    read: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["recipe"] = self.recipe.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict):  # noqa: ANN206 - returns cls
        d = dict(d)
        r = dict(d.pop("recipe"))
        r["betas"] = tuple(r["betas"])
        return cls(recipe=Recipe(**r), **{k: v for k, v in d.items() if k in cls.__dataclass_fields__})


def cli_options() -> list[tuple[str, dict]]:
    """``(flag, argparse keyword arguments)`` of every recipe field the command line exposes.

    The default and the help (ending with the paper's value) come from the field itself.
    """
    out = []
    for f in fields(Recipe):
        meta = dict(f.metadata)
        if "cli" not in meta:
            continue
        flag = meta.pop("cli")
        paper = "paper: whole windows" if f.default is None else f"paper {f.default}"
        paper = {"class_weight": "paper: unweighted", "fast": "same function and gradients; default: fast",
                 "augment": "paper: none", "sampling": "paper: shuffled windows"}.get(
            f.name, paper)
        kw = {"dest": f.name, "default": f.default, "help": f"{meta.pop('help')} ({paper})"}
        if meta.get("action") is None and "type" not in meta and "choices" not in meta:
            kw["type"] = type(f.default)
            kw["metavar"] = "N" if kw["type"] is int else "X"
        kw.update(meta)
        out.append((flag, kw))
    return out


__all__ = ["Recipe", "RunConfig", "cli_options"]
