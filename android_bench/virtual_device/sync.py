"""The ``sync:`` service (file transfer), version 1 of AOSP's SYNC.TXT.

Requests are an 8-byte header (4-byte ASCII id, uint32 little-endian length)
followed by ``length`` bytes:

* ``STAT path`` -> ``STAT`` mode size mtime (all zero when the path is missing);
* ``LIST path`` -> ``DENT`` mode size mtime namelen name ... then ``DONE`` + 16 zero bytes;
* ``SEND path,mode`` then ``DATA`` chunks (<= 64 KiB) and ``DONE mtime``
  -> ``OKAY`` 0, or ``FAIL`` len message;
* ``RECV path`` -> ``DATA`` chunks then ``DONE`` 0, or ``FAIL``;
* ``QUIT`` ends the service.
"""
from __future__ import annotations

import errno
import os
import stat
import struct
from pathlib import Path
from typing import Any, Protocol

from .paths import confined, device_path

REQ = struct.Struct("<4sI")
STAT_V1 = struct.Struct("<4sIII")
DENT = struct.Struct("<4sIIII")
SYNC_DATA_MAX = 64 * 1024


class Stream(Protocol):
    """What the service needs of an adb stream (:class:`.server.Stream` is one)."""

    def read_exact(self, n: int) -> bytes | None: ...

    def write(self, data: bytes) -> bool: ...


class VirtualDevice(Protocol):
    """What the service needs of the device (:class:`.server.VirtualDevice` is one)."""

    root: Path
    faults: Any  # .server.Faults: storage_full, quota_bytes


def _fail(stream: "Stream", message: str) -> None:
    data = message.encode()
    stream.write(REQ.pack(b"FAIL", len(data)) + data)


def _data_usage(root: Path) -> int:
    total = 0
    for dirpath, _, files in os.walk(root / "data"):
        for name in files:
            try:
                total += os.lstat(os.path.join(dirpath, name)).st_size
            except OSError:
                pass
    return total


def serve_sync(device: "VirtualDevice", stream: "Stream") -> None:
    """Serve sync requests on ``stream`` until QUIT or the host hangs up."""
    while True:
        header = stream.read_exact(REQ.size)
        if header is None:
            return
        ident, length = REQ.unpack(header)
        if ident == b"QUIT":
            return
        arg = stream.read_exact(length) if length else b""
        if arg is None:
            return
        path = arg.decode("utf-8", "replace")
        if ident == b"STAT":
            _stat(device, stream, path)
        elif ident == b"LIST":
            _list(device, stream, path)
        elif ident == b"SEND":
            if not _send(device, stream, path):
                return
        elif ident == b"RECV":
            _recv(device, stream, path)
        else:
            _fail(stream, f"unknown sync request {ident!r}")
            return


def _local(device: "VirtualDevice", remote: str) -> Path | None:
    """The sandbox path of ``remote``, or None when outside the mapped roots or when its real
    path leaves the sandbox (a symlink made on the device pointing at a host file)."""
    local = device_path(device.root, remote)
    if local is None or not confined(device.root, local):
        return None
    return local


def _stat(device: "VirtualDevice", stream: "Stream", remote: str) -> None:
    local = _local(device, remote)
    try:
        st = os.lstat(local) if local is not None else None
    except OSError:
        st = None
    if st is None:
        stream.write(STAT_V1.pack(b"STAT", 0, 0, 0))
    else:
        stream.write(STAT_V1.pack(b"STAT", st.st_mode & 0xFFFFFFFF, st.st_size & 0xFFFFFFFF, int(st.st_mtime)))


def _list(device: "VirtualDevice", stream: "Stream", remote: str) -> None:
    local = _local(device, remote)
    out = bytearray()
    if local is not None and local.is_dir():
        for entry in sorted(os.scandir(local), key=lambda e: e.name):
            st = entry.stat(follow_symlinks=False)
            name = entry.name.encode()
            out += DENT.pack(b"DENT", st.st_mode & 0xFFFFFFFF, st.st_size & 0xFFFFFFFF, int(st.st_mtime), len(name)) + name
    out += DENT.pack(b"DONE", 0, 0, 0, 0)
    stream.write(bytes(out))


def _send(device: "VirtualDevice", stream: "Stream", spec: str) -> bool:
    """Receive one file. Returns False if the stream ended mid-transfer."""
    remote, _, mode_s = spec.rpartition(",")
    if not remote:
        remote, mode_s = spec, "33188"
    try:
        mode = int(mode_s) & 0o7777 or 0o644
    except ValueError:
        mode = 0o644
    local = device_path(device.root, remote)
    error = None
    if local is None or not confined(device.root, local):  # also a symlinked parent leaving the sandbox
        error = f"couldn't create file: Permission denied ({remote})"
    faults = device.faults
    usage = _data_usage(device.root) if faults.quota_bytes is not None else 0
    tmp = None
    fh = None
    if error is None:
        try:
            local.parent.mkdir(parents=True, exist_ok=True)
            if not confined(device.root, local.parent):
                raise PermissionError(errno.EACCES, "Permission denied")
            tmp = local.with_name(f".{local.name}.vdpart")
            fh = os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600), "wb")
        except OSError as exc:
            error = f"couldn't create file: {exc.strerror}"
    received = 0
    while True:
        header = stream.read_exact(REQ.size)
        if header is None:
            _abort(fh, tmp)
            return False
        ident, length = REQ.unpack(header)
        if ident == b"DATA":
            chunk = stream.read_exact(length)
            if chunk is None:
                _abort(fh, tmp)
                return False
            received += len(chunk)
            if error is None and (faults.storage_full or
                                  (faults.quota_bytes is not None and usage + received > faults.quota_bytes)):
                error = os.strerror(errno.ENOSPC)
            if error is None:
                fh.write(chunk)
        elif ident == b"DONE":
            mtime = length
            break
        else:
            error = error or f"invalid data message {ident!r}"
            break
    if error is not None:
        _abort(fh, tmp)
        _fail(stream, error)
        return True
    fh.close()
    os.chmod(tmp, mode)
    os.replace(tmp, local)
    if mtime:
        os.utime(local, (mtime, mtime))
    stream.write(REQ.pack(b"OKAY", 0))
    return True


def _abort(fh, tmp: Path | None) -> None:
    if fh is not None:
        fh.close()
    if tmp is not None:
        try:
            tmp.unlink()
        except OSError:
            pass


def _recv(device: "VirtualDevice", stream: "Stream", remote: str) -> None:
    local = _local(device, remote)
    if local is None:
        _fail(stream, os.strerror(errno.EACCES))
        return
    try:
        fh = os.fdopen(os.open(local, os.O_RDONLY | os.O_NOFOLLOW), "rb")
    except OSError as exc:
        _fail(stream, exc.strerror or "cannot open")
        return
    with fh:
        while chunk := fh.read(SYNC_DATA_MAX):
            if not stream.write(REQ.pack(b"DATA", len(chunk)) + chunk):
                return
    stream.write(REQ.pack(b"DONE", 0))
