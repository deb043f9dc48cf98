"""Labels: the one place where classes, tasks and their integer codes are decided.

The N2001 file name carries the class letter (A ALS, C control, M myopathy). A task maps
those classes to the model's outputs; a recording whose class is not part of a task (a
myopathy recording in ``als-vs-normal``) is left out of it.
"""

from __future__ import annotations

from dataclasses import dataclass

from alsnet.errors import AlsnetError

#: Class names used everywhere (files, JSON, figures).
CLASSES: tuple[str, ...] = ("normal", "als", "myopathy")
#: N2001 file-name letters.
LETTER_TO_CLASS: dict[str, str] = {"A": "als", "C": "normal", "M": "myopathy"}
CLASS_TO_LETTER: dict[str, str] = {v: k for k, v in LETTER_TO_CLASS.items()}


@dataclass(frozen=True)
class Task:
    """A classification task.

    ``classes`` are the output classes in output order; ``members`` maps each output class
    to the recording classes it covers (``rest`` in ``als-vs-rest`` covers normal and
    myopathy). A binary task has one logit: P(positive) with ``positive = classes[1]``.
    """

    name: str
    classes: tuple[str, ...]
    members: dict[str, tuple[str, ...]]

    @property
    def n_outputs(self) -> int:
        """Model outputs: 1 logit for a binary task, one per class otherwise."""
        return 1 if len(self.classes) == 2 else len(self.classes)

    @property
    def binary(self) -> bool:
        return len(self.classes) == 2

    @property
    def positive(self) -> str:
        return self.classes[1]

    def code(self, recording_class: str) -> int | None:
        """Integer target of a recording class, or None if the task leaves it out."""
        for i, c in enumerate(self.classes):
            if recording_class in self.members[c]:
                return i
        return None

    def to_dict(self) -> dict:
        return {"name": self.name, "classes": list(self.classes),
                "members": {k: list(v) for k, v in self.members.items()}}


TASKS: dict[str, Task] = {
    "als-vs-normal": Task("als-vs-normal", ("normal", "als"),
                          {"normal": ("normal",), "als": ("als",)}),
    "three-class": Task("three-class", ("normal", "als", "myopathy"),
                        {"normal": ("normal",), "als": ("als",), "myopathy": ("myopathy",)}),
    "als-vs-rest": Task("als-vs-rest", ("rest", "als"),
                        {"rest": ("normal", "myopathy"), "als": ("als",)}),
}

#: The paper's task, the default of every command and experiment.
DEFAULT_TASK = "als-vs-normal"


def get_task(name: str) -> Task:
    try:
        return TASKS[name]
    except KeyError:
        raise AlsnetError(f"unknown task {name!r}; choose from {', '.join(TASKS)}") from None


def class_from_diagnosis(text: str) -> str | None:
    """Class implied by an N2001 ``#diagnosis`` comment, or None if it says nothing known."""
    t = text.lower()
    if "als" in t.split() or "amyotrophic" in t or t.strip().endswith("als"):
        return "als"
    if "healt" in t or "control" in t or "normal" in t:  # N2001 spells it "healty"
        return "normal"
    if any(w in t for w in ("myopath", "myositis", "dystroph")):
        return "myopathy"
    return None
