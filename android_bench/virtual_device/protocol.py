"""The adb transport's wire format, as the device side sees it.

Every message is a 24-byte little-endian header of six uint32 fields followed by
``data_length`` payload bytes (AOSP ``packages/modules/adb/protocol.txt``)::

    command, arg0, arg1, data_length, data_check, magic (= command ^ 0xffffffff)

``data_check`` is the byte sum of the payload. Peers that announce version
``0x01000001`` (``A_VERSION_SKIP_CHECKSUM``) or later neither send nor check it;
older peers (``0x01000000``) require it. We always fill it in, which is valid for
both, and we only verify it when the peer announced the old version.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass

HEADER = struct.Struct("<6I")

A_SYNC = 0x434E5953
A_CNXN = 0x4E584E43
A_AUTH = 0x48545541
A_OPEN = 0x4E45504F
A_OKAY = 0x59414B4F
A_CLSE = 0x45534C43
A_WRTE = 0x45545257
A_STLS = 0x534C5453

A_VERSION_MIN = 0x01000000
A_VERSION_SKIP_CHECKSUM = 0x01000001
A_VERSION = A_VERSION_SKIP_CHECKSUM

# AUTH arg0 values.
AUTH_TOKEN = 1
AUTH_SIGNATURE = 2
AUTH_RSAPUBLICKEY = 3

MAX_PAYLOAD = 256 * 1024
MAX_HEADER_PAYLOAD = 16 * 1024 * 1024  # sanity bound on a peer's data_length

NAMES = {
    A_SYNC: "SYNC", A_CNXN: "CNXN", A_AUTH: "AUTH", A_OPEN: "OPEN",
    A_OKAY: "OKAY", A_CLSE: "CLSE", A_WRTE: "WRTE", A_STLS: "STLS",
}


class ProtocolError(Exception):
    """The peer sent something that is not a valid adb message."""


@dataclass(frozen=True)
class Message:
    """One adb message: a command word, two arguments and a payload."""

    command: int
    arg0: int
    arg1: int
    data: bytes = b""

    @property
    def name(self) -> str:
        return NAMES.get(self.command, f"0x{self.command:08x}")


def checksum(data: bytes) -> int:
    """Return the adb payload checksum: the unsigned byte sum modulo 2**32."""
    return sum(data) & 0xFFFFFFFF


def pack(msg: Message) -> bytes:
    """Serialise ``msg`` to header + payload bytes."""
    header = HEADER.pack(
        msg.command, msg.arg0 & 0xFFFFFFFF, msg.arg1 & 0xFFFFFFFF, len(msg.data),
        checksum(msg.data), msg.command ^ 0xFFFFFFFF,
    )
    return header + msg.data


def unpack_header(raw: bytes) -> tuple[int, int, int, int, int]:
    """Parse a 24-byte header; return (command, arg0, arg1, length, check).

    Raises :class:`ProtocolError` on a bad magic or an absurd length.
    """
    if len(raw) != HEADER.size:
        raise ProtocolError(f"short header ({len(raw)} bytes)")
    command, arg0, arg1, length, check, magic = HEADER.unpack(raw)
    if magic != command ^ 0xFFFFFFFF:
        raise ProtocolError(f"bad magic 0x{magic:08x} for command 0x{command:08x}")
    if length > MAX_HEADER_PAYLOAD:
        raise ProtocolError(f"payload length {length} too large")
    return command, arg0, arg1, length, check


def connect_banner(props: dict[str, str], features: tuple[str, ...], kind: str = "device") -> bytes:
    """Build the CNXN payload ``device::ro.product.name=..;..;features=a,b``."""
    keys = ("ro.product.name", "ro.product.model", "ro.product.device")
    parts = [f"{k}={props.get(k, '')}" for k in keys]
    parts.append("features=" + ",".join(features))
    return f"{kind}::{';'.join(parts)}".encode()


# --- shell protocol v2 (``shell,v2:`` services) -------------------------------
SHELL_STDIN = 0
SHELL_STDOUT = 1
SHELL_STDERR = 2
SHELL_EXIT = 3
SHELL_CLOSE_STDIN = 4
SHELL_WINDOW_SIZE = 5
SHELL_HEADER = struct.Struct("<BI")


def shell_packet(kind: int, data: bytes) -> bytes:
    """Frame one shell-v2 packet: 1-byte id, uint32 length, payload."""
    return SHELL_HEADER.pack(kind, len(data)) + data
