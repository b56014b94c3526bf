"""``facelm devices``: list attached devices (and their facts)."""
from .cli import drive_devices as drive  # noqa: F401
from .cli import register_devices as register  # noqa: F401
