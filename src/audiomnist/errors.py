"""Errors a user can act on: the CLI prints them as one line, without a traceback."""

from __future__ import annotations

import os


class AudiomnistError(Exception):
    """A problem with the user's input or setup, with a message that says what to do."""


class AudioError(AudiomnistError):
    """A file that cannot be used as audio; the message names the file and the reason."""

    def __init__(self, path: str | os.PathLike, reason: str):
        self.path = os.fspath(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class ConfigError(AudiomnistError, ValueError):
    """A setting that cannot work (unknown field, value out of range); every config dataclass raises this one type.

    It is a ValueError too, so code that checked values with `except ValueError` keeps working."""
