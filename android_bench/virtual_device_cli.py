"""``facelm virtual-device``: serve a virtual adb device on loopback."""
from .cli import drive_virtual_device as drive  # noqa: F401
from .cli import register_virtual_device as register  # noqa: F401
