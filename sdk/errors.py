"""The facelm exception hierarchy.

Every error a user can cause is a :class:`FacelmError`. The CLI catches the base
class, prints one line naming the problem and exits with code 2.
"""


class FacelmError(Exception):
    """Base class of every error facelm raises on purpose."""


class ConfigError(FacelmError):
    """A configuration (YAML, strategy string, option) is invalid."""


class InputError(FacelmError):
    """Input data (arrays, images, files, landmarks) is invalid."""


class ConversionError(FacelmError):
    """A model could not be exported, converted or verified."""


class DeviceError(FacelmError):
    """A device (adb, phone, virtual device) failed or is unusable."""
