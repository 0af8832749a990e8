"""User-facing errors: one line naming the problem, one hint naming the fix.

The CLI prints `error: <message> — <hint>` without a traceback and exits 2. Bugs still raise normally.
"""


class UserError(Exception):
    """Bad input from the user (missing file, wrong shape, unknown preset, ...)."""

    def __init__(self, message: str, hint: str = ""):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} — {self.hint}" if self.hint else self.message


class ConfigError(UserError):
    """A config value or preset name that cannot be used."""


class DataError(UserError):
    """A missing, malformed or corrupt data file (corpus, shard, JSONL)."""


class ModelNotFound(UserError):
    """A model spec that resolves to nothing loadable."""


class ResumeMismatch(UserError):
    """--resume into a run directory whose saved config differs from the requested one."""


class NonFiniteLoss(UserError):
    """Training produced NaN/inf loss."""
