"""A device-side adb transport over loopback TCP, serving a sandbox.

The real ``adb`` client reaches it with ``adb connect 127.0.0.1:PORT``. What it
implements (see AOSP ``packages/modules/adb/protocol.txt``):

* CNXN handshake, answering with protocol version 0x01000001 and a banner that
  advertises only the features implemented here (``shell_v2``,
  ``fixed_push_mkdir``). AUTH is skipped unless the ``unauthorized`` fault is on, or
  ``authorized_keys`` is given: then only a host whose adb key (``~/.android/adbkey``)
  signs the device's random token is let in, as a real phone does after "Always allow".
* OPEN / OKAY / WRTE / CLSE streams with adb's one-write-in-flight flow control.
* Services ``shell,v2[,raw|,pty]:CMD``, ``shell:CMD``, ``exec:CMD``, ``sync:``
  (see :mod:`.sync`) and ``tcp:PORT`` / ``tcp:HOST:PORT`` (for ``adb forward``).

Commands run under ``/bin/sh`` in the sandbox, with device paths
(``/data``, ``/sys``, ``/proc``, ``/sdcard``) rewritten to the sandbox root. This is
a development tool: like a real adbd it executes what the host sends, so it only
ever listens on a loopback address.

Isolation (issue 12): every shell command runs in a private user and mount namespace
made by bubblewrap (``bwrap``; Debian package ``bubblewrap``). Its file system is an
empty tmpfs holding only the sandbox (read-write, at its host path), the stand-ins'
runtime mapped read-only (``/usr``, the Python installation and virtualenv, the facelm
sources, the aarch64 root of an arm64 device, and the CPU descriptions ``/proc/cpuinfo`` and
``/sys/devices/system/cpu`` that LiteRT's kernel selection reads) and a private ``/dev`` and ``/tmp``. So a
command cannot read host files such as ``/etc/passwd`` nor write any host path outside
the sandbox (``mkdir -p /some/host/path`` lands in the namespace's tmpfs). Push and pull
(:mod:`.sync`, through :mod:`.paths`) refuse paths whose real path leaves the sandbox (symlinks). What the
namespace does not hide: the network (the stand-in tvm_rpc serves on a loopback port the
host forwards to) and other processes (no pid namespace: background servers must outlive
the command that starts them). Where no namespace can be made, the device refuses to
start unless ``unsafe_host_shell=True`` (commands then run as the user on this machine).
"""
from __future__ import annotations

import logging
import os
import queue
import re
import shlex
import shutil
import signal
import sys
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from facelm.errors import ConfigError, DeviceError

from . import protocol as P
from .paths import MAPPED_ROOTS
from .profile import (REMOTE_TMP, DeviceProfile, build_sandbox, install_benchmark_model, install_tvm_rpc,
                      profile_for_arch, sandbox_env)
from .sync import serve_sync

log = logging.getLogger(__name__)

FEATURES = ("shell_v2", "fixed_push_mkdir")
_PATH_RE = re.compile(r"(?<![\w./~-])/(" + "|".join(MAPPED_ROOTS) + r")(?=/|\s|$|['\";:,)|&<>])")


@dataclass
class Faults:
    """Switches that make the virtual device misbehave, for tests. Thread-safe to flip.

    drop_after_bytes: close the transport once this many bytes crossed it (both
        directions, counted per connection); fires once, then resets to None.
    slow_bytes_per_s: throttle what the device sends to this rate.
    latency_s: extra delay before each message the device sends.
    storage_full: every push fails with "No space left on device".
    quota_bytes: pushes that would make /data hold more than this fail the same way.
    unauthorized: answer CNXN with AUTH and never accept the host's key.
    offline: accept TCP but never answer CNXN.
    crash: make the stand-in benchmark_model crash: "segv", "abort" or "exit".
    """

    drop_after_bytes: int | None = None
    slow_bytes_per_s: float | None = None
    latency_s: float = 0.0
    storage_full: bool = False
    quota_bytes: int | None = None
    unauthorized: bool = False
    offline: bool = False
    crash: str | None = None


# ----------------------------------------------------------------- adb key handshake
#: DER prefix of a SHA-1 DigestInfo: adb signs the 20-byte token as if it were a SHA-1 digest.
_SHA1_DIGEST_INFO = bytes.fromhex("3021300906052b0e03021a05000414")
TOKEN_SIZE = 20


def parse_adb_public_key(text: str) -> tuple[int, int]:
    """``adbkey.pub`` (base64 of adb's RSAPublicKey struct, then `` user@host``) -> (n, e).

    The struct (little-endian uint32s): ``len`` (modulus words), ``n0inv``, ``modulus[len]``,
    ``rr[len]``, ``exponent``.
    """
    import base64
    import binascii
    import struct

    try:
        raw = base64.b64decode(text.strip().split()[0])
        (words,) = struct.unpack_from("<I", raw, 0)
        n = int.from_bytes(raw[8:8 + 4 * words], "little")
        (e,) = struct.unpack_from("<I", raw, 8 + 8 * words)
    except (IndexError, ValueError, struct.error, binascii.Error):
        raise ConfigError("not an adb public key (adbkey.pub)") from None
    if words < 16 or n == 0 or e < 3:
        raise ConfigError("not an adb public key (adbkey.pub)")
    return n, e


def verify_adb_signature(token: bytes, signature: bytes, key: tuple[int, int]) -> bool:
    """True when ``signature`` is the RSA PKCS#1 v1.5 signature of ``token`` by ``key`` (n, e)."""
    n, e = key
    k = (n.bit_length() + 7) // 8
    if len(signature) != k:
        return False
    s = int.from_bytes(signature, "big")
    if s >= n:
        return False
    em = pow(s, e, n).to_bytes(k, "big")
    t = _SHA1_DIGEST_INFO + token
    return em == b"\x00\x01" + b"\xff" * (k - len(t) - 3) + b"\x00" + t


# --------------------------------------------------------------------------- the jail
#: Host paths a jailed command sees read-only besides the sandbox (those that exist).
_SYSTEM_RO = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
#: Read-only CPU descriptions (no host files): the stand-ins' LiteRT/XNNPACK pick their kernels from them.
_CPU_INFO = ("/proc/cpuinfo", "/sys/devices/system/cpu")
_jail_probe: dict[tuple, str | None] = {}


def runtime_paths(arm64_root=None) -> list[str]:
    """What the stand-ins need to run, mapped read-only: the Python installation and its
    virtualenv, the facelm sources, and the aarch64 root of an arm64 device."""
    import facelm

    paths = {sys.prefix, sys.base_prefix, sys.exec_prefix, os.path.dirname(os.path.realpath(sys.executable)),
             str(Path(facelm.__file__).resolve().parents[1]), str(Path(__file__).resolve().parents[2])}
    if arm64_root is not None:
        paths.add(str(Path(arm64_root.path).resolve()))
    # nested paths are covered by their parent; /usr is mapped anyway
    out: list[str] = []
    for p in sorted(paths, key=len):
        if p and os.path.exists(p) and not any(p == q or p.startswith(q.rstrip("/") + "/") for q in (*out, "/usr")):
            out.append(p)
    return out


def jail_argv(root: Path, cwd: Path, runtime: list[str]) -> list[str]:
    """The ``bwrap`` prefix that runs a command in the sandbox's private namespaces."""
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        raise DeviceError("bwrap not found")
    argv = [bwrap, "--unshare-user", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try",
            "--die-with-parent", "--dev", "/dev", "--tmpfs", "/tmp"]
    for p in _SYSTEM_RO:
        if os.path.islink(p):  # merged /usr: /bin -> usr/bin
            argv += ["--symlink", os.readlink(p), p]
        elif os.path.isdir(p):
            argv += ["--ro-bind", p, p]
    for p in runtime:
        argv += ["--ro-bind", p, p]
    # no private pid namespace (and so no /proc): its init would kill a daemon such as tvm_rpc as soon as
    # the adb shell that started it exits; the stand-ins read their peak memory with getrusage instead
    for p in _CPU_INFO:  # CPU detection of the stand-ins' kernels (XNNPACK): host numerics, as before
        argv += ["--ro-bind-try", p, p]
    real_root = os.path.realpath(root)
    argv += ["--bind", real_root, real_root]
    if str(root) != real_root:
        argv += ["--symlink", real_root, str(root)]
    argv += ["--chdir", str(cwd)]
    return argv


def _probe_jail(argv: list[str]) -> str | None:
    """None when ``argv`` can run a command, else why not (cached per argument list)."""
    key = tuple(argv)
    if key not in _jail_probe:
        try:
            res = subprocess.run([*argv, "/bin/sh", "-c", "true"], capture_output=True, text=True, timeout=30)
            _jail_probe[key] = None if res.returncode == 0 else (res.stderr.strip() or f"exit {res.returncode}")
        except (OSError, subprocess.TimeoutExpired) as exc:
            _jail_probe[key] = str(exc)
    return _jail_probe[key]


def rewrite_command(root: Path, command: str) -> str:
    """Rewrite device paths in a shell command to sandbox paths."""
    prefix = str(root)
    return _PATH_RE.sub(lambda m: prefix + "/" + m.group(1), command)


class Stream:
    """One adb stream (a local id paired with the host's remote id)."""

    def __init__(self, conn: "Connection", local_id: int, remote_id: int):
        self.conn = conn
        self.local_id = local_id
        self.remote_id = remote_id
        self.inbox: "queue.Queue[bytes | None]" = queue.Queue()
        self._ready = threading.Event()
        self._ready.set()
        self._write_lock = threading.Lock()
        self.closed = threading.Event()
        self._buf = bytearray()
        self._eof = False

    # -- lifecycle -------------------------------------------------------------
    def accept(self) -> None:
        """Answer the host's OPEN with OKAY."""
        self.conn.send(P.Message(P.A_OKAY, self.local_id, self.remote_id))

    def refuse(self) -> None:
        """Answer the host's OPEN with CLSE(0, remote): the service is refused."""
        self.closed.set()
        self.conn.forget(self.local_id)
        self.conn.send(P.Message(P.A_CLSE, 0, self.remote_id))

    def close(self) -> None:
        """Close our end (sends CLSE once)."""
        if self.closed.is_set():
            return
        self.closed.set()
        self._ready.set()
        self.conn.forget(self.local_id)
        self.conn.send(P.Message(P.A_CLSE, self.local_id, self.remote_id))

    def remote_closed(self) -> None:
        self.closed.set()
        self._ready.set()
        self.inbox.put(None)

    # -- host -> device --------------------------------------------------------
    def feed(self, data: bytes) -> None:
        self.inbox.put(data)

    def acked(self) -> None:
        self._ready.set()

    def read(self) -> bytes | None:
        """Next chunk the host wrote, or None at end of stream."""
        if self._buf:
            out = bytes(self._buf)
            self._buf.clear()
            return out
        if self._eof:
            return None
        item = self.inbox.get()
        if item is None:
            self._eof = True
        return item

    def read_exact(self, n: int) -> bytes | None:
        """Exactly ``n`` bytes, or None if the stream ended first."""
        while len(self._buf) < n:
            if self._eof:
                return None
            item = self.inbox.get()
            if item is None:
                self._eof = True
                return None
            self._buf += item
        out = bytes(self._buf[:n])
        del self._buf[:n]
        return out

    # -- device -> host --------------------------------------------------------
    def write(self, data: bytes) -> bool:
        """Send ``data`` as WRTE messages, one in flight at a time. False if closed."""
        view = memoryview(data)
        with self._write_lock:
            while view:
                while not self._ready.wait(0.5):
                    if self.conn.dead.is_set():
                        return False
                if self.closed.is_set() or self.conn.dead.is_set():
                    return False
                chunk = bytes(view[: self.conn.max_payload])
                view = view[len(chunk):]
                self._ready.clear()
                self.conn.send(P.Message(P.A_WRTE, self.local_id, self.remote_id, chunk))
        return True


class Connection:
    """One host connection: handshake, message loop and the open streams."""

    def __init__(self, device: "VirtualDevice", sock: socket.socket):
        self.device = device
        self.sock = sock
        self.max_payload = 4096
        self.peer_version = P.A_VERSION_MIN
        self.online = False
        self.dead = threading.Event()
        self.streams: dict[int, Stream] = {}
        self._next_id = 1
        self._send_lock = threading.Lock()
        self._bytes = 0
        self._token = b""

    # -- low level -------------------------------------------------------------
    def _count(self, n: int) -> None:
        self._bytes += n
        faults = self.device.faults
        limit = faults.drop_after_bytes
        if limit is not None and self._bytes >= limit:
            faults.drop_after_bytes = None
            log.info("fault: dropping the connection after %d bytes", self._bytes)
            self.kill()
            raise ConnectionAbortedError("fault: connection dropped")

    def send(self, msg: P.Message) -> None:
        data = P.pack(msg)
        faults = self.device.faults
        if faults.latency_s:
            time.sleep(faults.latency_s)
        if faults.slow_bytes_per_s:
            time.sleep(len(data) / faults.slow_bytes_per_s)
        with self._send_lock:
            if self.dead.is_set():
                return
            try:
                self._count(len(data))
                self.sock.sendall(data)
            except OSError:
                self.kill()

    def _recv_exact(self, n: int) -> bytes:
        buf = bytearray()
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise ConnectionResetError("host closed the connection")
            buf += chunk
        self._count(n)
        return bytes(buf)

    def recv(self) -> P.Message:
        command, arg0, arg1, length, check = P.unpack_header(self._recv_exact(P.HEADER.size))
        data = self._recv_exact(length) if length else b""
        if self.peer_version < P.A_VERSION_SKIP_CHECKSUM and command != P.A_CNXN and check != P.checksum(data):
            raise P.ProtocolError("bad payload checksum")
        return P.Message(command, arg0, arg1, data)

    def kill(self) -> None:
        if self.dead.is_set():
            return
        self.dead.set()
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        for stream in list(self.streams.values()):
            stream.remote_closed()

    def forget(self, local_id: int) -> None:
        self.streams.pop(local_id, None)

    # -- message loop ----------------------------------------------------------
    def run(self) -> None:
        try:
            while not self.dead.is_set():
                self._handle(self.recv())
        except (OSError, P.ProtocolError) as exc:
            log.debug("connection ended: %s", exc)
        finally:
            self.kill()

    def _handle(self, msg: P.Message) -> None:
        faults = self.device.faults
        if msg.command == P.A_CNXN:
            self.peer_version = msg.arg0
            self.max_payload = max(256, min(msg.arg1 or 4096, P.MAX_PAYLOAD))
            log.debug("host CNXN version=0x%08x maxdata=%d banner=%r", msg.arg0, msg.arg1, msg.data)
            self.device.host_hellos.append((msg.arg0, msg.arg1, msg.data))
            if faults.offline:
                return
            if faults.unauthorized or self.device.authorized_keys:
                self._token = os.urandom(TOKEN_SIZE)
                self.send(P.Message(P.A_AUTH, P.AUTH_TOKEN, 0, self._token))
                return
            self._go_online()
        elif msg.command == P.A_AUTH:
            # A signature by an authorized key lets the host in; anything else gets a fresh
            # token. The public key the host offers last is ignored (a real phone would now
            # show the "Allow USB debugging?" dialog).
            if msg.arg0 == P.AUTH_SIGNATURE:
                if (not faults.unauthorized and self._token and not self.online
                        and any(verify_adb_signature(self._token, msg.data, k) for k in self.device.authorized_keys)):
                    self._go_online()
                    return
                self._token = os.urandom(TOKEN_SIZE)
                self.send(P.Message(P.A_AUTH, P.AUTH_TOKEN, 0, self._token))
        elif not self.online:
            log.debug("ignoring %s before the handshake", msg.name)
        elif msg.command == P.A_OPEN:
            self._open(msg)
        elif msg.command == P.A_OKAY:
            stream = self.streams.get(msg.arg1)
            if stream is not None:
                stream.acked()
        elif msg.command == P.A_WRTE:
            stream = self.streams.get(msg.arg1)
            if stream is None:
                self.send(P.Message(P.A_CLSE, 0, msg.arg0))
                return
            stream.feed(msg.data)
            self.send(P.Message(P.A_OKAY, stream.local_id, stream.remote_id))
        elif msg.command == P.A_CLSE:
            stream = self.streams.pop(msg.arg1, None)
            if stream is not None:
                stream.remote_closed()
        else:
            log.debug("ignoring %s", msg.name)

    def _go_online(self) -> None:
        banner = P.connect_banner(self.device.profile.props, FEATURES)
        self.send(P.Message(P.A_CNXN, P.A_VERSION, P.MAX_PAYLOAD, banner))
        self.online = True

    def _open(self, msg: P.Message) -> None:
        service = msg.data.rstrip(b"\0").decode("utf-8", "replace")
        local_id = self._next_id
        self._next_id += 1
        stream = Stream(self, local_id, msg.arg0)
        self.streams[local_id] = stream
        log.debug("OPEN %r -> stream %d", service, local_id)
        threading.Thread(
            target=self.device.serve_stream, args=(stream, service), daemon=True, name=f"vd-{service[:16]}"
        ).start()


class VirtualDevice:
    """A virtual Android device reachable by ``adb connect HOST:PORT``.

    Args:
        root: sandbox directory (created); device paths map under it.
        profile: what the device reports (default: SD845-like).
        host, port: where to listen; port 0 picks a free port. Loopback only.
        faults: fault switches (mutable at run time).
        arch: ``"host"`` (stand-ins run as host processes) or ``"arm64"``: benchmark_model and
            tvm_rpc run as aarch64 processes under qemu-user with the root of
            :func:`facelm.arm64.setup` (``arm64_root``, default: the built default root),
            and the device reports arm64-v8a and ``ro.facelm.emulated``. Emulated
            numerics are aarch64 numerics; emulated timings are not phone timings.
        unsafe_host_shell: run shell commands directly on this machine, as the user who
            started the device, when no namespace can be made (see the module docstring).
            Without it, such a device refuses to start.
        authorized_keys: adb public keys (``adbkey.pub`` files or their text) allowed to
            connect; empty (default): any local process may connect, as before.
    """

    def __init__(self, root: Path, profile: DeviceProfile | None = None, host: str = "127.0.0.1",
                 port: int = 0, faults: Faults | None = None, arch: str = "host", arm64_root=None,
                 unsafe_host_shell: bool = False, authorized_keys: tuple = ()):
        if host not in ("127.0.0.1", "localhost", "::1"):
            raise ConfigError(f"the virtual device only listens on loopback, not {host!r}")
        self.arch = arch
        self.profile = profile_for_arch(profile or DeviceProfile(), arch)
        if arch == "arm64" and arm64_root is None:
            arm64_root = _built_arm64_root()
        self.root = build_sandbox(Path(root), self.profile)
        self.unsafe_host_shell = unsafe_host_shell
        self.authorized_keys = [parse_adb_public_key(Path(k).read_text() if isinstance(k, Path) or (
            isinstance(k, str) and os.path.isfile(k)) else str(k)) for k in authorized_keys]
        self._runtime = runtime_paths(arm64_root)
        self.jail: list[str] | None = None  # the bwrap prefix, set by start()
        self.benchmark_model_path = install_benchmark_model(self.root, arm64_root=arm64_root)
        self.tvm_rpc_path = install_tvm_rpc(self.root, arm64_root=arm64_root)
        self.faults = faults or Faults()
        self.host = host
        self._requested_port = port
        self._listener: socket.socket | None = None
        self._threads: list[threading.Thread] = []
        self._conns: list[Connection] = []
        self._procs: set[subprocess.Popen] = set()
        self.host_hellos: list[tuple[int, int, bytes]] = []  # (version, maxdata, banner) of each CNXN seen
        self._groups: set[int] = set()  # process groups of every command (background jobs outlive the shell)
        self._stop = threading.Event()

    # -- lifecycle -------------------------------------------------------------
    @property
    def port(self) -> int:
        if self._listener is None:
            raise DeviceError("virtual device is not started")
        return self._listener.getsockname()[1]

    @property
    def serial(self) -> str:
        """The serial adb shows after ``adb connect``."""
        return f"{self.host}:{self.port}"

    def _make_jail(self) -> None:
        tmp = self.root / REMOTE_TMP.lstrip("/")
        why = None
        try:
            argv = jail_argv(self.root, tmp, self._runtime)
            why = _probe_jail(argv)
        except DeviceError as exc:
            argv, why = None, str(exc)
        if why is None:
            self.jail = argv
        elif self.unsafe_host_shell:
            log.warning("virtual device: no namespace (%s); shell commands run unconfined on this machine "
                        "(--unsafe-host-shell)", why)
            self.jail = None
        else:
            raise DeviceError(
                f"the virtual device cannot confine its shell to the sandbox: bwrap (bubblewrap) failed: {why}. "
                "Install bubblewrap (apt-get install bubblewrap) and allow unprivileged user namespaces, or start "
                "it with --unsafe-host-shell (commands then run as you, with access to this machine's files)")

    def start(self) -> "VirtualDevice":
        """Listen and serve in background threads; return self.

        Raises:
            DeviceError: the port is taken, or no namespace can be made and
                ``unsafe_host_shell`` is off.
        """
        self._make_jail()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host, self._requested_port))
        except OSError as exc:
            sock.close()
            raise DeviceError(f"cannot listen on {self.host}:{self._requested_port}: {exc.strerror}") from None
        sock.listen(8)
        sock.settimeout(0.2)
        self._listener = sock
        t = threading.Thread(target=self._accept_loop, daemon=True, name="vd-accept")
        t.start()
        self._threads.append(t)
        return self

    def stop(self) -> None:
        """Close every connection, kill running commands and stop listening."""
        self._stop.set()
        for conn in list(self._conns):
            conn.kill()
        for proc in list(self._procs):
            _kill_group(proc)
        for pgid in list(self._groups):
            try:
                os.killpg(pgid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        if self._listener is not None:
            self._listener.close()
        for t in self._threads:
            t.join(timeout=2)

    def __enter__(self) -> "VirtualDevice":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def serve_forever(self) -> None:
        """Block until interrupted."""
        try:
            while not self._stop.wait(0.5):
                pass
        finally:
            self.stop()

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                sock, _ = self._listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            sock.settimeout(None)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn = Connection(self, sock)
            self._conns = [c for c in self._conns if not c.dead.is_set()] + [conn]
            threading.Thread(target=conn.run, daemon=True, name="vd-conn").start()

    # -- services --------------------------------------------------------------
    def serve_stream(self, stream: Stream, service: str) -> None:
        """Dispatch one OPENed service."""
        try:
            if service.startswith("shell"):
                head, _, command = service.partition(":")
                options = head.split(",")[1:]
                self._shell(stream, command, v2="v2" in options)
            elif service.startswith("exec:"):
                self._shell(stream, service[5:], v2=False)
            elif service.startswith("sync:"):
                stream.accept()
                serve_sync(self, stream)
                stream.close()
            elif service.startswith("tcp:"):
                self._tcp(stream, service[4:])
            else:
                log.debug("refusing service %r", service)
                stream.refuse()
        except Exception:  # a service bug must not take the transport down
            log.exception("service %r failed", service)
            stream.close()

    def _shell(self, stream: Stream, command: str, v2: bool) -> None:
        tmp = self.root / REMOTE_TMP.lstrip("/")
        env = sandbox_env(self.root)
        if self.faults.crash:
            env["FACELM_VD_CRASH"] = self.faults.crash
        argv = ["/bin/sh", "-c", rewrite_command(self.root, command)] if command.strip() else ["/bin/sh"]
        if self.jail is not None:
            argv = [*self.jail, *argv]
        try:
            proc = subprocess.Popen(
                argv, cwd=tmp, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                stderr=subprocess.PIPE if v2 else subprocess.STDOUT, start_new_session=True,
            )
        except OSError:
            stream.refuse()
            return
        self._procs.add(proc)
        self._groups.add(proc.pid)
        stream.accept()

        def pump(pipe, kind: int) -> None:
            for chunk in iter(lambda: pipe.read1(65536), b""):
                stream.write(P.shell_packet(kind, chunk) if v2 else chunk)
            pipe.close()

        pumps = [threading.Thread(target=pump, args=(proc.stdout, P.SHELL_STDOUT), daemon=True)]
        if v2:
            pumps.append(threading.Thread(target=pump, args=(proc.stderr, P.SHELL_STDERR), daemon=True))
        for t in pumps:
            t.start()
        threading.Thread(target=self._shell_stdin, args=(stream, proc, v2), daemon=True).start()
        rc = proc.wait()
        for t in pumps:
            t.join()
        self._procs.discard(proc)
        if rc < 0:  # killed by a signal: report it the way sh does
            rc = 128 - rc
        if v2 and not stream.closed.is_set():
            stream.write(P.shell_packet(P.SHELL_EXIT, bytes([rc & 0xFF])))
        stream.close()

    def _shell_stdin(self, stream: Stream, proc: subprocess.Popen, v2: bool) -> None:
        """Feed host stdin to the process; kill it when the host closes the stream."""
        try:
            while True:
                if v2:
                    header = stream.read_exact(P.SHELL_HEADER.size)
                    if header is None:
                        break
                    kind, length = P.SHELL_HEADER.unpack(header)
                    data = stream.read_exact(length) if length else b""
                    if data is None:
                        break
                    if kind == P.SHELL_STDIN and data:
                        proc.stdin.write(data)
                        proc.stdin.flush()
                    elif kind == P.SHELL_CLOSE_STDIN:
                        proc.stdin.close()
                else:
                    data = stream.read()
                    if data is None:
                        break
                    proc.stdin.write(data)
                    proc.stdin.flush()
        except (OSError, ValueError):
            pass
        if proc.poll() is None and stream.closed.is_set():
            _kill_group(proc)  # host hung up (adb client killed, timeout): stop the command

    def _tcp(self, stream: Stream, target: str) -> None:
        host, _, port_s = target.rpartition(":")
        try:
            port = int(port_s)
            sock = socket.create_connection((host or "127.0.0.1", port), timeout=5)
        except (ValueError, OSError):
            stream.refuse()
            return
        sock.settimeout(None)
        stream.accept()

        def to_host() -> None:
            try:
                for chunk in iter(lambda: sock.recv(65536), b""):
                    if not stream.write(chunk):
                        break
            except OSError:
                pass
            stream.close()

        t = threading.Thread(target=to_host, daemon=True)
        t.start()
        try:
            while (data := stream.read()) is not None:
                sock.sendall(data)
        except OSError:
            pass
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        sock.close()
        t.join(timeout=5)
        stream.close()


def _built_arm64_root():
    """The built default aarch64 root, or a DeviceError naming the command that builds it."""
    from facelm import arm64

    arm64.check_tools({"qemu-aarch64": arm64.TOOL_PACKAGES["qemu-aarch64"]})
    root = arm64.load()
    if root is None:
        raise DeviceError(f"no aarch64 root at {arm64.default_root()}: build it with `facelm arm64 setup` "
                          "(or `make arm64`)")
    return root


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
