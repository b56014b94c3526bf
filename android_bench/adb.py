"""A thin client over the real ``adb`` binary.

Every call has a timeout. Device selection follows adbutils: an explicit serial,
then ``$ANDROID_SERIAL``, then the only attached device; otherwise an error that
lists the candidates. Each unusable state has its own :class:`DeviceError`
subclass so callers (and users) can tell "tap Allow on the phone" from "replug
the cable".

Commands sent to ``adb shell`` are single strings built by the caller; every
path inside them must go through :func:`quote` (``shlex.quote``). Transfers use
``adb push``/``adb pull``, which carry paths in the sync protocol, not a shell.
"""
from __future__ import annotations

import logging
import os
import re
import shlex
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from facelm.errors import DeviceError

log = logging.getLogger(__name__)

quote = shlex.quote


class AdbNotFoundError(DeviceError):
    """The ``adb`` executable is not installed or not on PATH."""


class AdbTimeoutError(DeviceError):
    """An adb call did not finish within its timeout."""


class NoDeviceError(DeviceError):
    """No device is attached."""


class AmbiguousDeviceError(DeviceError):
    """Several devices are attached and none was chosen."""


class DeviceNotFoundError(DeviceError):
    """The requested serial is not attached."""


class DeviceUnauthorizedError(DeviceError):
    """The device has not accepted this computer's adb key."""


class DeviceOfflineError(DeviceError):
    """The device is attached but offline."""


class DeviceNoPermissionsError(DeviceError):
    """The host user may not open the USB device (udev rules)."""


class DeviceLostError(DeviceError):
    """The device disappeared during an operation."""


class StorageFullError(DeviceError):
    """The device ran out of storage while receiving a file."""


class RemoteCommandError(DeviceError):
    """A command on the device failed (non-zero exit)."""

    def __init__(self, message: str, returncode: int | None = None, stderr: str = ""):
        super().__init__(message)
        self.returncode = returncode
        self.stderr = stderr


_STATE_ERRORS = {
    "unauthorized": (DeviceUnauthorizedError,
                     "device {s} is unauthorized: unlock it and accept the 'Allow USB debugging?' dialog "
                     "(or revoke authorisations in Developer options and replug)"),
    "offline": (DeviceOfflineError, "device {s} is offline: replug the cable or run 'adb reconnect'"),
    "no permissions": (DeviceNoPermissionsError,
                       "no permissions for device {s}: add a udev rule for its USB vendor id "
                       "(see docs/android.md) and replug"),
    "authorizing": (DeviceUnauthorizedError, "device {s} is still authorizing: accept the dialog on the phone"),
    "connecting": (DeviceOfflineError, "device {s} is still connecting"),
}


@dataclass(frozen=True)
class DeviceEntry:
    """One line of ``adb devices -l``."""

    serial: str
    state: str
    attrs: dict = field(default_factory=dict)

    @property
    def usable(self) -> bool:
        return self.state == "device"


@dataclass(frozen=True)
class ShellResult:
    """What a shell command returned: exit code (shell protocol v2) and output."""

    returncode: int
    stdout: str
    stderr: str

    def tail(self, lines: int = 20) -> str:
        """Last ``lines`` lines of stderr (or stdout when stderr is empty)."""
        text = self.stderr.strip() or self.stdout.strip()
        return "\n".join(text.splitlines()[-lines:])


def parse_devices(text: str) -> list[DeviceEntry]:
    """Parse ``adb devices -l`` output into entries.

    States with spaces (``no permissions (user x is not in the plugdev group); see
    [http://developer.android.com/tools/device.html]``) are kept as ``no permissions``.
    """
    out = []
    for line in text.splitlines():
        line = line.rstrip()
        if not line or line.startswith("List of devices") or line.startswith("*"):
            continue
        serial, _, rest = line.partition("\t") if "\t" in line else line.partition(" ")
        rest = rest.strip()
        if not serial or not rest:
            continue
        if rest.startswith("no permissions"):
            state, attr_text = "no permissions", re.sub(r"^no permissions(\s*\([^)]*\))?(;\s*see\s*\[[^\]]*\])?", "", rest)
        else:
            state, _, attr_text = rest.partition(" ")
        attrs = dict(kv.split(":", 1) for kv in attr_text.split() if ":" in kv)
        out.append(DeviceEntry(serial.strip(), state, attrs))
    return out


def state_error(serial: str, state: str) -> DeviceError:
    """The error for a device in an unusable ``state``."""
    cls, msg = _STATE_ERRORS.get(state, (DeviceError, "device {s} is in state '%s'" % state))
    return cls(msg.format(s=serial))


def _classify(serial: str | None, stderr: str) -> DeviceError | None:
    """Map adb's own error messages to DeviceError subclasses; None if not adb's."""
    s = serial or "?"
    text = stderr.strip()
    low = text.lower()
    if "no space left on device" in low:
        return StorageFullError(f"device {s} storage is full: {text.splitlines()[-1]}")
    patterns = (
        (r"error: device unauthorized", lambda: state_error(s, "unauthorized")),
        (r"error: device offline", lambda: state_error(s, "offline")),
        (r"insufficient permissions for device|no permissions", lambda: state_error(s, "no permissions")),
        (r"error: device '.*' not found", lambda: DeviceLostError(f"device {s} not found (disconnected?)")),
        (r"error: no devices/emulators found", lambda: DeviceLostError(f"device {s} not found (no devices attached)")),
        (r"error: closed|couldn't read from device|device still connecting|protocol fault|connection reset|"
         r"failed to read|transport .* (closed|disconnected)|error: device .* offline",
         lambda: DeviceLostError(f"lost the connection to device {s}: {text.splitlines()[-1]}")),
    )
    for pattern, make in patterns:
        if re.search(pattern, low):
            return make()
    return None


class Adb:
    """Runs the real ``adb`` client.

    Args:
        adb_path: the executable (default: ``adb`` on PATH).
        server_port: the adb server port (``adb -P``); default: adb's own (5037 or
            ``$ANDROID_ADB_SERVER_PORT``). Tests use a private port.
        timeout_s: default timeout of every call.
        env: extra environment for the client (and the server it starts).
    """

    def __init__(self, adb_path: str | None = None, server_port: int | None = None,
                 timeout_s: float = 30.0, env: dict[str, str] | None = None):
        found = adb_path or shutil.which("adb")
        if not found or not (Path(found).exists() or shutil.which(found)):
            raise AdbNotFoundError(
                "adb not found: install Android platform-tools (Debian/Ubuntu: 'apt-get install adb') "
                "or pass its path"
            )
        self.adb_path = found
        self.server_port = server_port
        self.timeout_s = float(timeout_s)
        self.env = {**os.environ, **(env or {})}

    # -- plumbing --------------------------------------------------------------
    def _argv(self, args: Sequence[str], serial: str | None = None) -> list[str]:
        argv = [self.adb_path]
        if self.server_port is not None:
            argv += ["-P", str(self.server_port)]
        if serial:
            argv += ["-s", serial]
        return argv + list(args)

    def run(self, args: Sequence[str], serial: str | None = None, timeout_s: float | None = None,
            check: bool = True) -> subprocess.CompletedProcess:
        """Run one adb command; raise a DeviceError subclass on adb-level failure."""
        argv = self._argv(args, serial)
        timeout = self.timeout_s if timeout_s is None else timeout_s
        log.debug("adb: %s", " ".join(quote(a) for a in argv))
        try:
            proc = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout, env=self.env)
        except subprocess.TimeoutExpired:
            raise AdbTimeoutError(f"adb {' '.join(args[:2])} timed out after {timeout:g} s"
                                  + (f" on device {serial}" if serial else "")) from None
        except OSError as exc:
            raise AdbNotFoundError(f"cannot run {self.adb_path}: {exc.strerror}") from None
        proc.stdout = proc.stdout.decode("utf-8", "replace")
        proc.stderr = proc.stderr.decode("utf-8", "replace")
        if check and proc.returncode != 0:
            err = _classify(serial, proc.stderr + "\n" + proc.stdout)
            if err is not None:
                raise err
            raise DeviceError(f"adb {' '.join(args[:2])} failed (exit {proc.returncode}): "
                              f"{(proc.stderr or proc.stdout).strip()[-500:]}")
        return proc

    # -- server and discovery --------------------------------------------------
    def start_server(self) -> None:
        """Start the adb server if it is not running."""
        self.run(["start-server"], timeout_s=max(self.timeout_s, 20.0))

    def kill_server(self) -> None:
        self.run(["kill-server"], check=False)

    def devices(self) -> list[DeviceEntry]:
        """All attached devices, whatever their state (starts the server if needed)."""
        return parse_devices(self.run(["devices", "-l"]).stdout)

    def connect(self, address: str, timeout_s: float | None = None) -> str:
        """``adb connect HOST:PORT``; return the serial. Raises on failure or no authorisation."""
        out = self.run(["connect", address], timeout_s=timeout_s).stdout.strip()
        if out.startswith(("connected to", "already connected to")):
            return address
        if "failed to authenticate" in out:
            raise DeviceUnauthorizedError(f"device {address} is unauthorized: accept the dialog on the device")
        raise DeviceError(f"adb connect {address}: {out or 'failed'}")

    def disconnect(self, address: str) -> None:
        self.run(["disconnect", address], check=False)

    def select(self, serial: str | None = None) -> str:
        """Choose a device: ``serial``, then ``$ANDROID_SERIAL``, then the only one.

        Raises a DeviceError subclass naming the candidates or the bad state.
        """
        entries = self.devices()
        wanted = serial or self.env.get("ANDROID_SERIAL") or None
        if wanted:
            for e in entries:
                if e.serial == wanted:
                    if not e.usable:
                        raise state_error(e.serial, e.state)
                    return e.serial
            listing = ", ".join(f"{e.serial} ({e.state})" for e in entries) or "none"
            source = "--serial" if serial else "$ANDROID_SERIAL"
            raise DeviceNotFoundError(f"device {wanted} ({source}) is not attached; attached: {listing}")
        if not entries:
            raise NoDeviceError("no device attached (check the cable, USB debugging, and 'adb devices')")
        if len(entries) == 1:
            e = entries[0]
            if not e.usable:
                raise state_error(e.serial, e.state)
            return e.serial
        listing = ", ".join(f"{e.serial} ({e.state})" for e in entries)
        raise AmbiguousDeviceError(f"{len(entries)} devices attached, choose one with --serial or $ANDROID_SERIAL: {listing}")

    def get_state(self, serial: str) -> str:
        """The device's state as ``adb devices`` shows it, or 'missing'."""
        for e in self.devices():
            if e.serial == serial:
                return e.state
        return "missing"

    # -- device operations -----------------------------------------------------
    def shell(self, serial: str, command: str, timeout_s: float | None = None, check: bool = False) -> ShellResult:
        """Run ``command`` (one string, paths already quoted) on the device.

        Returns the exit status carried by shell protocol v2. adb-level failures
        (device gone, unauthorized, timeout) raise; a non-zero exit of the command
        raises :class:`RemoteCommandError` only when ``check``.
        """
        proc = self.run(["shell", command], serial=serial, timeout_s=timeout_s, check=False)
        if proc.returncode != 0:
            err = _classify(serial, _adb_lines(proc.stderr))
            if err is not None and not isinstance(err, StorageFullError):
                raise err
        res = ShellResult(proc.returncode, proc.stdout, proc.stderr)
        if check and res.returncode != 0:
            raise RemoteCommandError(
                f"command failed on {serial} (exit {res.returncode}): {command[:120]}\n{res.tail(10)}",
                res.returncode, res.stderr)
        return res

    def push(self, serial: str, local: Path, remote: str, timeout_s: float | None = None) -> None:
        """Copy a host file to the device. The timeout grows with the size (>= 1 MB/s)."""
        size = Path(local).stat().st_size
        timeout = timeout_s if timeout_s is not None else self.timeout_s + size / 1e6
        self.run(["push", str(local), remote], serial=serial, timeout_s=timeout)

    def pull(self, serial: str, remote: str, local: Path, timeout_s: float | None = None) -> None:
        """Copy a device file to the host (written to a temp name, then renamed)."""
        local = Path(local)
        tmp = local.with_name(local.name + ".part")
        try:
            self.run(["pull", remote, str(tmp)], serial=serial, timeout_s=timeout_s)
            os.replace(tmp, local)
        finally:
            if tmp.exists():
                tmp.unlink()

    def forward(self, serial: str, local: str, remote: str) -> None:
        """``adb forward LOCAL REMOTE`` (e.g. ``tcp:9090 tcp:9090``)."""
        self.run(["forward", local, remote], serial=serial)

    def forward_remove(self, serial: str, local: str) -> None:
        self.run(["forward", "--remove", local], serial=serial, check=False)


def _adb_lines(stderr: str) -> str:
    """The lines of stderr that the adb client itself wrote (``error: ...``/``adb: ...``).

    A command's own stderr may contain anything; only adb's messages classify.
    """
    return "\n".join(l for l in stderr.splitlines() if l.startswith(("error:", "adb: error", "adb: ")))
