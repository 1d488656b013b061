"""The tool's own exception types.

Errors a user can cause (a bad study file, a missing dataset, an unreachable database) derive from
``EcasweepError``; the CLI catches it once and prints one line with exit code 2. Everything else is
a bug and keeps its traceback.
"""

from __future__ import annotations


class EcasweepError(Exception):
    """A problem the user can fix; its message says what and how."""


class ConfigError(EcasweepError, ValueError):
    """An invalid value in a trial configuration; the message names the field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


class DataError(EcasweepError):
    """A dataset that cannot be found or read."""


class SpecError(EcasweepError, ValueError):
    """An invalid study file or override; the message names the file and the key."""


class StorageError(EcasweepError):
    """A storage URL that cannot be opened, or a study that is not in it."""


class DeviceError(EcasweepError):
    """A device that does not exist on this machine."""


class TrialError(Exception):
    """A trial that stopped for a reason recorded with it (not a user error)."""


class NonFiniteLossError(TrialError):
    """The training loss became NaN or infinite; carries where it happened."""

    def __init__(self, epoch: int, step: int, loss: float) -> None:
        super().__init__(f"non-finite loss {loss} at epoch {epoch}, step {step}")
        self.epoch, self.step, self.loss = epoch, step, loss

    def __reduce__(self):
        return type(self), (self.epoch, self.step, self.loss)
