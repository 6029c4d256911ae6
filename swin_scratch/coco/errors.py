"""The dataset mistakes a user can fix, as error types every layer may raise and every tool prints
as one line (no traceback)."""
from __future__ import annotations


class DatasetNotFoundError(FileNotFoundError):
    """A dataset named in the config is not on disk; the message says where we looked and what to do."""


class DatasetFormatError(ValueError):
    """A dataset file that is not a usable COCO instances file; names the file and the problem."""
