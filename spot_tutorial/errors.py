"""Errors that mean "the user asked for something wrong", as opposed to a bug in the library.

The `spot` command prints these as one line and exits with status 1; every other exception
keeps its traceback, so an internal error is never disguised as a user mistake. Each class
also derives from ``ValueError``, so code that caught ``ValueError`` before keeps working.

    SpotUserError       base class: catch this to handle every user mistake
    ├── ConfigError     a SPOTConfig field (or a combination of fields) is not allowed
    ├── InputError      images or arguments handed to the model are not what it takes
    ├── DatasetError    a dataset folder, file or option is wrong (for spot_tutorial.data)
    └── CheckpointError a checkpoint cannot be read or does not fit the model
"""

from __future__ import annotations


class SpotUserError(ValueError):
    """A mistake of the user (bad option, file or input), reported without a traceback."""


class ConfigError(SpotUserError):
    """A SPOTConfig value or combination of values is not allowed."""


class InputError(SpotUserError):
    """Images or arguments passed to the model are not in the form it takes."""


class DatasetError(SpotUserError):
    """A dataset folder, file or option is wrong."""


class CheckpointError(SpotUserError):
    """A checkpoint cannot be read, or does not fit the model it is loaded into."""
