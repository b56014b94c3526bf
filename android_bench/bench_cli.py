"""``facelm bench`` and ``facelm bench report``."""
from .cli import drive_bench as drive  # noqa: F401
from .cli import register_bench as register  # noqa: F401
