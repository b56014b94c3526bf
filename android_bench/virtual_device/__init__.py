"""A virtual Android device speaking the adb transport on loopback TCP (for tests and dry runs)."""
from .profile import CpuCluster, DeviceProfile
from .server import Faults, VirtualDevice

__all__ = ["CpuCluster", "DeviceProfile", "Faults", "VirtualDevice"]
