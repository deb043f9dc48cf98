"""The project's own exception type.

Every problem a user can cause (a bad file, a wrong option, a corrupt checkpoint) is raised
as :class:`AlsnetError` with a message a person can act on, naming the file where there is
one. The CLI turns it into one line on stderr and a non-zero exit; nothing else is caught.
"""

from __future__ import annotations

import os


class AlsnetError(Exception):
    """A problem with the user's input, reported as one line.

    Parameters
    ----------
    message : str
        What is wrong, in words a user can act on.
    path : str or os.PathLike, optional
        The file concerned; it is prefixed to the message.
    """

    def __init__(self, message: str, path: str | os.PathLike | None = None):
        self.path = None if path is None else os.fspath(path)
        self.problem = message
        super().__init__(f"{self.path}: {message}" if self.path else message)


class InputError(AlsnetError):
    """A recording that cannot be read or used."""


class CheckpointError(AlsnetError):
    """A model file that cannot be trusted or loaded."""


class UsageError(AlsnetError):
    """A command-line option with a value that cannot be used (exit code 2, as argparse's)."""
