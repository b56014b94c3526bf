"""A tamper check for a lone ``.tflite``: its sha256, embedded in its own facelm metadata.

A folder's ``manifest.json`` records each artifact's sha256; a ``.tflite`` copied out of
its folder has only its embedded metadata (:data:`facelm.runtime.tflite.METADATA_NAME`).
:func:`seal_tflite` writes the file's own digest into that metadata's JSON under
:data:`SEAL_KEY`; :func:`check_tflite_seal` recomputes it.

The digest: sha256 of the whole file with the 64 hex digits of the seal replaced by
``"0" * 64``. It covers every byte (weights, graph, the rest of the metadata) except the
digest itself. It detects corruption and careless edits, not a deliberate forgery (anyone
can recompute it; a keyed signature would be needed for that).

Light: hashlib only (no numpy, LiteRT or TensorFlow).
"""
from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

from facelm.errors import InputError

#: The key in the embedded JSON (written with ``sort_keys`` and compact separators).
SEAL_KEY = "body_sha256"
#: The placeholder :func:`facelm.converters.tflite.embed_metadata` writes before sealing.
SEAL_PLACEHOLDER = "0" * 64
_SEAL_RE = re.compile(rb'"' + SEAL_KEY.encode() + rb'":"([0-9a-f]{64})"')


def _find(data: bytes, path: Path) -> re.Match | None:
    found = list(_SEAL_RE.finditer(data))
    if len(found) > 1:
        raise InputError(f"{path}: {len(found)} embedded {SEAL_KEY} seals; a facelm .tflite has one")
    return found[0] if found else None


def _digest(data: bytes, m: re.Match) -> str:
    return hashlib.sha256(data[:m.start(1)] + SEAL_PLACEHOLDER.encode() + data[m.end(1):]).hexdigest()


def seal_tflite(path: str | os.PathLike) -> str:
    """Replace the placeholder seal in ``path``'s embedded metadata by the file's digest.

    ``path`` must already carry ``"body_sha256": "000…0"`` (64 zeros) in its facelm
    metadata JSON (see the module docstring). Written to a temp file and renamed.
    Returns the digest.

    Raises:
        InputError: no placeholder (or more than one seal) in the file.
    """
    from facelm.fileio import atomic_path

    path = Path(path)
    data = path.read_bytes()
    m = _find(data, path)
    if m is None or m.group(1) != SEAL_PLACEHOLDER.encode():
        raise InputError(f"{path}: no {SEAL_KEY} placeholder in the embedded metadata to seal")
    digest = _digest(data, m)
    with atomic_path(path, suffix=".tflite") as tmp:
        Path(tmp).write_bytes(data[:m.start(1)] + digest.encode() + data[m.end(1):])
    return digest


def check_tflite_seal(path: str | os.PathLike) -> str | None:
    """Verify the embedded seal of ``path``.

    Returns:
        the digest when the file carries a seal that matches, ``None`` when it carries
        none (a third-party model, or one converted before seals existed).
    Raises:
        InputError: the seal does not match: the file changed after conversion.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror or exc}") from None
    m = _find(data, path)
    if m is None:
        return None
    recorded = m.group(1).decode()
    actual = _digest(data, m)
    if recorded != actual:
        raise InputError(f"{path} was modified after conversion: its embedded {SEAL_KEY} is {recorded}, "
                         f"the file hashes to {actual}")
    return actual
