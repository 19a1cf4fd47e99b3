"""User-facing errors.

A `SemguardError` carries one clear sentence: what is wrong (naming the file or key)
and what to do. The CLI prints it as one line and exits non-zero; `--debug` shows the
traceback. Anything else that escapes is a bug in semguard.
"""


class SemguardError(Exception):
    """An error caused by the user's input (files, configs, arguments), with its fix."""


class ConfigError(SemguardError):
    """A config file or override is malformed, unknown or of the wrong type."""


class DataError(SemguardError):
    """A data set on disk is missing, corrupt or inconsistent."""


class WeightsMissingError(SemguardError):
    """A pretrained weight file is absent from the cache; the message says where to put it."""
