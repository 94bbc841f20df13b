"""Errors that are the user's to fix.

Anything raised as `UserError` (or a subclass) reaches the user as one line on stderr and exit
code 2 from the CLI — never a traceback. Everything else is a bug and keeps its traceback.
"""


class UserError(Exception):
    """Bad input from the user (a path, a config key, a video, a checkpoint)."""


class ConfigError(UserError):
    """Unknown config key, wrong type or unreadable YAML."""


class VideoError(UserError):
    """A clip that cannot be read as video."""


class CheckpointError(UserError):
    """A missing, truncated, corrupt or mismatched checkpoint / pack."""


class NotBuiltError(UserError):
    """A verb or module that exists in the interface but is not built yet."""
