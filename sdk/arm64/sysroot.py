"""Build the aarch64 runtime (Python 3.11, numpy, LiteRT, TVM runtime) that runs under qemu-user.

Layout of a built root (default ``~/.cache/facelm/arm64``; ``FACELM_ARM64_ROOT`` overrides)::

    ROOT/usr, ROOT/lib, ...     Debian 12 arm64 packages unpacked with ``dpkg -x``
    ROOT/site/                  aarch64 wheels (numpy, ai-edge-litert, tvm, tvm_ffi, ...)
    ROOT/facelm-arm64.json      the stamp: the spec it was built from and what is inside

The root is built in a temporary sibling folder and renamed onto ROOT only when every
step succeeded (:func:`facelm.fileio.atomic_dir`), so an interrupted build never leaves a half root that looks complete.
A root whose stamp matches the current spec is reused as is (idempotent, cached).

No chroot, no binfmt and no root privileges are needed to *run* it
(``qemu-aarch64 -L ROOT ROOT/usr/bin/python3.11``); building it needs apt's arm64 package
lists, which ``dpkg --add-architecture arm64 && apt-get update`` provides (as root).
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

from facelm.fileio import atomic_dir

from .root import PYTHON_VERSION, SITE_DIR, Arm64Error, Arm64Root, check_tools, default_root
from .run import run_python

log = logging.getLogger(__name__)

#: Debian arm64 packages giving a working python3.11 with its stdlib extension modules and
#: the C++ runtime that LiteRT and TVM link against.
DEBIAN_PACKAGES: tuple[str, ...] = (
    "libc6", "libpython3.11-minimal", "libpython3.11-stdlib", "python3.11-minimal", "libpython3.11",
    "libexpat1", "zlib1g", "libssl3", "libffi8", "libbz2-1.0", "liblzma5", "libsqlite3-0", "libstdc++6",
    "libgcc-s1", "libuuid1", "libncursesw6", "libtinfo6", "libreadline8", "libcrypt1", "libnsl2",
    "libtirpc3", "libdb5.3", "libgssapi-krb5-2", "libkrb5-3", "libk5crypto3", "libcom-err2",
    "libkrb5support0", "libkeyutils1",
)
#: Wheels installed with pip's resolver (``--only-binary=:all:`` for the aarch64 tags below).
#: Pins match the host side (pyproject.toml) so host and aarch64 numerics use the same kernels.
PIP_WHEELS: tuple[str, ...] = ("numpy==1.26.4", "ai-edge-litert==2.1.0", "ml_dtypes==0.5.1", "typing_extensions")
#: Wheels pip refuses to install for another machine (py3-none-manylinux): downloaded and unzipped.
UNZIP_WHEELS: tuple[str, ...] = ("apache-tvm==0.27.0.post1", "apache-tvm-ffi==0.1.14.post1")
#: Every manylinux aarch64 tag: with one tag pip finds nothing.
PLATFORM_TAGS: tuple[str, ...] = ("manylinux2014_aarch64",) + tuple(
    f"manylinux_2_{m}_aarch64" for m in range(17, 35))
#: Bump when the build procedure changes in a way the spec above does not show.
BUILD_REVISION = 2
STAMP_NAME = "facelm-arm64.json"

BUILD_TOOLS: dict[str, str] = {"dpkg": "dpkg", "apt-get": "apt"}


def spec() -> dict:
    """What a root is built from; a root whose stamp carries the same spec is up to date."""
    return {"revision": BUILD_REVISION, "python": PYTHON_VERSION, "debian_packages": list(DEBIAN_PACKAGES),
            "pip_wheels": list(PIP_WHEELS), "unzip_wheels": list(UNZIP_WHEELS)}


def load(root: str | os.PathLike | None = None) -> Arm64Root | None:
    """The root at ``root`` (default :func:`default_root`) if built from the current spec, else None."""
    path = Path(root).expanduser() if root is not None else default_root()
    try:
        stamp = json.loads((path / STAMP_NAME).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(stamp, dict) or stamp.get("spec") != spec():
        return None
    r = Arm64Root(path.resolve(), stamp)
    return r if r.python.is_file() else None


def setup(root: str | os.PathLike | None = None, progress: bool = True) -> Arm64Root:
    """Build (or reuse) the aarch64 runtime at ``root`` and return it.

    Idempotent: a root whose stamp matches :func:`spec` is returned without work. Otherwise
    everything is built in ``ROOT.tmp-*`` next to it and renamed onto ROOT at the end.
    Network: Debian's apt mirror and PyPI only. Takes a few minutes once.

    Raises :class:`Arm64Error` naming the missing apt packages when qemu or the cross
    compilers are absent, or the step that failed.
    """
    check_tools()
    dest = Path(root).expanduser() if root is not None else default_root()
    existing = load(dest)
    if existing is not None:
        _say(progress, f"arm64 root up to date: {existing.path}")
        return existing
    check_tools(BUILD_TOOLS)
    t0 = time.monotonic()
    with atomic_dir(dest, force=True, what="arm64 root") as tmp:
        _say(progress, f"building arm64 root in {tmp}")
        debs = _unpack_debian(tmp, progress)
        wheels = _install_wheels(tmp / SITE_DIR, progress)
        _precompile(tmp, dest, progress)
        stamp = {"spec": spec(), "debian": debs, "wheels": wheels,
                 "built_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "build_seconds": round(time.monotonic() - t0, 1)}
        _smoke_test(Arm64Root(tmp, stamp))
        (tmp / STAMP_NAME).write_text(json.dumps(stamp, indent=1) + "\n")
    _say(progress, f"arm64 root ready in {time.monotonic() - t0:.0f} s: {dest}")
    return Arm64Root(dest.resolve(), stamp)


def _say(progress: bool, msg: str) -> None:
    if progress:
        print(f"facelm arm64: {msg}", file=sys.stderr, flush=True)
    else:
        log.info(msg)


def _run(cmd: list[str], what: str, cwd: Path | None = None, timeout: float = 1800) -> str:
    try:
        res = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise Arm64Error(f"{what}: timed out after {timeout:.0f} s ({' '.join(cmd[:4])} ...)") from None
    if res.returncode != 0:
        tail = (res.stderr or res.stdout).strip().splitlines()[-5:]
        raise Arm64Error(f"{what} failed (exit {res.returncode}): {' | '.join(tail)}")
    return res.stdout


def _arm64_lists_ready() -> bool:
    res = subprocess.run(["apt-cache", "policy", f"python{PYTHON_VERSION}-minimal:arm64"],
                         capture_output=True, text=True)
    return res.returncode == 0 and "Candidate:" in res.stdout and "Candidate: (none)" not in res.stdout


def _ensure_arm64_lists(progress: bool) -> None:
    if _arm64_lists_ready():
        return
    if os.geteuid() != 0:
        raise Arm64Error("apt has no arm64 package lists: run as root "
                         "`dpkg --add-architecture arm64 && apt-get update`, then retry")
    foreign = _run(["dpkg", "--print-foreign-architectures"], "dpkg --print-foreign-architectures").split()
    if "arm64" not in foreign:
        _say(progress, "dpkg --add-architecture arm64")
        _run(["dpkg", "--add-architecture", "arm64"], "dpkg --add-architecture arm64")
    _say(progress, "apt-get update (arm64 lists)")
    _run(["apt-get", "update", "-qq"], "apt-get update", timeout=900)
    if not _arm64_lists_ready():
        raise Arm64Error(f"apt still has no python{PYTHON_VERSION}-minimal:arm64 after apt-get update "
                         "(is the Debian 12 arm64 archive reachable?)")


def _unpack_debian(tmp: Path, progress: bool) -> dict[str, str]:
    """Download DEBIAN_PACKAGES for arm64 and ``dpkg -x`` them into ``tmp``; return {deb file: sha-less name}."""
    _ensure_arm64_lists(progress)
    debdir = tmp / ".debs"
    debdir.mkdir()
    _say(progress, f"apt-get download {len(DEBIAN_PACKAGES)} arm64 packages")
    _run(["apt-get", "download", "-qq", *[f"{p}:arm64" for p in DEBIAN_PACKAGES]], "apt-get download", cwd=debdir)
    debs = sorted(debdir.glob("*.deb"))
    if len(debs) != len(DEBIAN_PACKAGES):
        raise Arm64Error(f"apt-get download gave {len(debs)} .deb files for {len(DEBIAN_PACKAGES)} packages")
    versions = {}
    for deb in debs:
        _run(["dpkg", "-x", str(deb), str(tmp)], f"dpkg -x {deb.name}")
        name, version = deb.name.split("_")[:2]
        versions[name] = version.replace("%3a", ":")
    shutil.rmtree(debdir)
    return versions


def _install_wheels(site: Path, progress: bool) -> list[str]:
    """pip-install PIP_WHEELS and unzip UNZIP_WHEELS (aarch64, cp311) into ``site``; return the wheel files."""
    site.mkdir(parents=True)
    plat: list[str] = []
    for tag in PLATFORM_TAGS:
        plat += ["--platform", tag]
    common = ["--only-binary=:all:", "--python-version", PYTHON_VERSION, "--implementation", "cp",
              "--abi", "cp311", "--abi", "abi3", "--abi", "none", *plat,
              "--disable-pip-version-check", "--no-input", "-q"]
    pip = [sys.executable, "-m", "pip"]
    _say(progress, f"pip install --target (aarch64): {' '.join(PIP_WHEELS)}")
    _run([*pip, "install", "--target", str(site), "--no-compile", *common, *PIP_WHEELS], "pip install (aarch64 wheels)")
    dl = site.parent / ".wheels"
    dl.mkdir()
    _say(progress, f"pip download (aarch64): {' '.join(UNZIP_WHEELS)}")
    _run([*pip, "download", "--no-deps", "--dest", str(dl), *common, *UNZIP_WHEELS], "pip download (aarch64 TVM)")
    files = sorted(p.name for p in dl.glob("*.whl"))
    if len(files) != len(UNZIP_WHEELS):
        raise Arm64Error(f"pip download gave {files} for {list(UNZIP_WHEELS)}")
    for whl in sorted(dl.glob("*.whl")):
        with zipfile.ZipFile(whl) as zf:
            zf.extractall(site)
        _restore_modes(whl, site)
    shutil.rmtree(dl)
    installed = sorted(p.name for p in site.glob("*.dist-info"))
    return installed + files


def _precompile(tmp: Path, dest: Path, progress: bool) -> None:
    """Write the .pyc files Debian's postinst and pip would have written, with the host's python.

    Python 3.11 bytecode is the same on every machine (host and guest share the magic
    number; checked by the smoke test's imports), and compiling natively takes seconds where
    the emulated python would recompile the stdlib, numpy and TVM from source on every run
    (numpy's import: 18 s without, 8 s with). Recorded paths name the final root.
    """
    import compileall


    if sys.version_info[:2] != tuple(int(v) for v in PYTHON_VERSION.split(".")):
        _say(progress, f"host python is not {PYTHON_VERSION}: skipping bytecode precompilation")
        return
    _say(progress, "precompiling bytecode (host python)")
    for d in (tmp / "usr" / "lib" / f"python{PYTHON_VERSION}", tmp / SITE_DIR):
        # quiet=2: a few bundled test files are not valid 3.11 source; they are never imported
        compileall.compile_dir(str(d), quiet=2, workers=os.cpu_count() or 1, stripdir=str(tmp),
                               prependdir=str(dest))


def _restore_modes(whl: Path, site: Path) -> None:
    """zipfile drops the executable bits wheels record; shared objects must stay loadable."""
    with zipfile.ZipFile(whl) as zf:
        for info in zf.infolist():
            mode = (info.external_attr >> 16) & 0o777
            if mode:
                os.chmod(site / info.filename, mode)


def _smoke_test(root: Arm64Root) -> None:
    """Import everything the helpers need on the emulated side, and check the machine is aarch64."""
    out = run_python(root, ["-c", "import platform, numpy, ai_edge_litert.interpreter, tvm, tvm.relax; "
                                  "print(platform.machine(), numpy.__version__, tvm.__version__)"], timeout=900)
    if not out.split() or out.split()[0] != "aarch64":
        raise Arm64Error(f"the arm64 python does not report aarch64: {out.strip()!r}")
