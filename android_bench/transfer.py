"""Files on the device: push once (named by sha256), reuse, clean up unless --keep.

Every file a run places in the device's workdir is first written to a journal there
(:data:`JOURNAL`, one file name a line, plus ``#created`` when the run made the
workdir). A run that is killed leaves its journal behind; the next run on that device and
workdir adopts the listed files and removes them with its own when it finishes, and
removes the workdir if a facelm run created it and it ends up empty. Two bench processes
sharing one device and workdir at the same time are not supported.
"""
from __future__ import annotations

import logging
import posixpath
import re
from pathlib import Path

from .adb import Adb, DeviceError, StorageFullError, quote
from facelm.fileio import sha256_file

log = logging.getLogger(__name__)
_SAFE = re.compile(r"[^A-Za-z0-9._-]+")
#: The journal of pushed/created files, inside the workdir.
JOURNAL = ".facelm-pushed"
_JOURNAL_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,200}")


def remote_name(sha256: str, name: str) -> str:
    """Device file name for content ``sha256``: ``<sha[:16]>-<sanitised name>``."""
    return f"{sha256[:16]}-{_SAFE.sub('_', name)[:80]}"


class RemoteFiles:
    """The files this session placed in ``workdir`` on one device.

    A file is pushed only if the device does not already hold the same bytes
    (checked with ``sha256sum``, or the size where the device has no sha256sum).
    :meth:`cleanup` removes what this object pushed or created, what a killed earlier run
    left in the journal, and the workdir if a facelm run created it and it is empty; with
    ``keep`` nothing is journalled or removed.
    """

    def __init__(self, adb: Adb, serial: str, workdir: str, keep: bool = False, timeout_s: float | None = None):
        self.adb = adb
        self.serial = serial
        self.workdir = workdir.rstrip("/") or "/"
        self.keep = keep
        self.timeout_s = timeout_s
        self.created: list[str] = []
        self.pushed = 0
        self.reused = 0
        self.adopted: list[str] = []
        self._ready = False
        self._own_dir = False

    @property
    def journal(self) -> str:
        return posixpath.join(self.workdir, JOURNAL)

    def ensure_workdir(self) -> None:
        """Create the workdir if needed; adopt the files a killed earlier run journalled there."""
        if self._ready:
            return
        w, j = quote(self.workdir), quote(self.journal)
        if self.keep:
            self.adb.shell(self.serial, f"mkdir -p {w}", timeout_s=self.timeout_s, check=True)
        else:
            res = self.adb.shell(
                self.serial,
                f"if [ -d {w} ]; then :; else mkdir -p {w} && echo '#created' >> {j}; fi && "
                f"{{ cat {j} 2>/dev/null; true; }}",
                timeout_s=self.timeout_s, check=True)
            self._adopt(res.stdout.splitlines())
        self._ready = True

    def _adopt(self, lines: list[str]) -> None:
        for line in (x.strip() for x in lines):
            if line == "#created":
                self._own_dir = True
            elif _JOURNAL_NAME.fullmatch(line) and line != JOURNAL:
                remote = self.remote_path(line)
                if remote not in self.created:
                    self.created.append(remote)
                    self.adopted.append(remote)
                    log.info("removing %s on %s at the end: left by an earlier run", remote, self.serial)

    def _remember(self, remote: str) -> None:
        """Track ``remote`` for cleanup, journalling it on the device first (not with keep)."""
        if remote in self.created:
            return
        name = posixpath.basename(remote)
        if not self.keep and posixpath.dirname(remote) == self.workdir and _JOURNAL_NAME.fullmatch(name):
            self.ensure_workdir()  # names, not paths: the journal stays valid wherever the folder is mounted
            self.adb.shell(self.serial, f"echo {quote(name)} >> {quote(self.journal)}", timeout_s=self.timeout_s,
                           check=True)
        self.created.append(remote)

    def remote_path(self, name: str) -> str:
        return posixpath.join(self.workdir, name)

    def has(self, remote: str, sha256: str, size: int) -> bool:
        """True if ``remote`` exists on the device with this content."""
        q = quote(remote)
        res = self.adb.shell(
            self.serial,
            f"if [ -f {q} ]; then (sha256sum {q} 2>/dev/null || echo nosha -) | head -n 1; wc -c < {q}; "
            f"else echo missing; fi",
            timeout_s=self.timeout_s,
        )
        lines = res.stdout.split()
        if not lines or lines[0] == "missing":
            return False
        digest = lines[0]
        remote_size = lines[-1] if len(lines) >= 3 else None
        if digest == "nosha":
            return remote_size is not None and remote_size.isdigit() and int(remote_size) == size
        return digest.lower() == sha256

    def push(self, local: Path, sha256: str | None = None, name: str | None = None) -> str:
        """Make ``local`` available on the device; return its device path."""
        local = Path(local)
        sha256 = sha256 or sha256_file(local)
        remote = self.remote_path(remote_name(sha256, name or local.name))
        self.ensure_workdir()
        size = local.stat().st_size
        self._remember(remote)  # journalled before the push: a run killed mid-push leaves no orphan
        if self.has(remote, sha256, size):
            self.reused += 1
            log.debug("reusing %s on %s", remote, self.serial)
        else:
            try:
                self.adb.push(self.serial, local, remote)
            except StorageFullError as exc:
                self._rm_quietly(remote)
                raise StorageFullError(
                    f"device {self.serial} ran out of storage while receiving {local.name} "
                    f"({size / 1e6:.1f} MB) into {self.workdir}: free space on the phone "
                    f"(or pass --keep=false to clean earlier runs)") from exc
            self.pushed += 1
        return remote

    def push_bytes(self, data: bytes, name: str, tmpdir: Path) -> str:
        """Push an in-memory buffer (e.g. a raw input tensor) through a host temp file."""
        import hashlib

        digest = hashlib.sha256(data).hexdigest()
        tmp = Path(tmpdir) / remote_name(digest, name)
        tmp.write_bytes(data)
        try:
            return self.push(tmp, digest, name)
        finally:
            tmp.unlink(missing_ok=True)

    def track(self, remote: str) -> str:
        """Remember a file a command will create there, for cleanup."""
        self._remember(remote)
        return remote

    def _rm_quietly(self, remote: str) -> None:
        try:
            self.adb.shell(self.serial, f"rm -f {quote(remote)}", timeout_s=self.timeout_s)
        except DeviceError:
            pass

    def cleanup(self) -> None:
        """Remove every tracked or adopted file and the journal (and the workdir if a facelm run
        created it and it ends up empty), unless ``keep``."""
        if self.keep or not self._ready:
            return
        files = " ".join(quote(p) for p in [*self.created, self.journal])
        rmdir = f"rmdir {quote(self.workdir)} 2>/dev/null; " if self._own_dir else ""
        try:
            self.adb.shell(self.serial, f"rm -f {files}; {rmdir}true", timeout_s=self.timeout_s)
            self.created.clear()
            self._ready = False
        except DeviceError as exc:
            log.warning("could not clean up %s on %s: %s", self.workdir, self.serial, exc)
