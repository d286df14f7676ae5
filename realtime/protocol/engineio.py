"""Engine.IO v4 packets and polling payloads as data: encode and decode, nothing else.

Spec: https://socket.io/docs/v4/engine-io-protocol/ (docs/engine.io-protocol/v4-current.md).

A packet on the wire is one type digit followed by its data:

    <type digit>[<data>]        text packet, e.g. "4hello", "2", "3probe"
    <raw bytes>                 a binary message (WebSocket binary frame; type 4 implied)
    b<base64>                   a binary message inside a polling payload

A polling payload joins packets with the record separator "\\x1e" and is always text.
"""

from __future__ import annotations

import base64
import binascii
import enum
from dataclasses import dataclass

from .errors import DecodeError

RECORD_SEPARATOR = "\x1e"

# Node's engine.io does not cap packets per payload; maxHttpBufferSize bounds the body, and this
# bounds the work one body can cause (a 1 MB body of one-byte packets would be 500k packets).
MAX_PACKETS_PER_PAYLOAD = 16_000


class PacketType(enum.IntEnum):
    OPEN = 0
    CLOSE = 1
    PING = 2
    PONG = 3
    MESSAGE = 4
    UPGRADE = 5
    NOOP = 6


class ErrorCode(enum.IntEnum):
    """The error codes of the Engine.IO server's HTTP 400 bodies, as Node's engine.io sends them."""

    UNKNOWN_TRANSPORT = 0
    UNKNOWN_SID = 1
    BAD_HANDSHAKE_METHOD = 2
    BAD_REQUEST = 3
    FORBIDDEN = 4
    UNSUPPORTED_PROTOCOL_VERSION = 5

    @property
    def message(self) -> str:
        return _ERROR_MESSAGES[self]


_ERROR_MESSAGES = {
    ErrorCode.UNKNOWN_TRANSPORT: "Transport unknown",
    ErrorCode.UNKNOWN_SID: "Session ID unknown",
    ErrorCode.BAD_HANDSHAKE_METHOD: "Bad handshake method",
    ErrorCode.BAD_REQUEST: "Bad request",
    ErrorCode.FORBIDDEN: "Forbidden",
    ErrorCode.UNSUPPORTED_PROTOCOL_VERSION: "Unsupported protocol version",
}


@dataclass(frozen=True, slots=True)
class Packet:
    type: PacketType
    data: str | bytes = ""

    @property
    def binary(self) -> bool:
        return isinstance(self.data, bytes)


def encode_packet(packet: Packet) -> str | bytes:
    """One packet as one WebSocket frame: bytes for a binary message, text otherwise."""
    if isinstance(packet.data, bytes):
        if packet.type != PacketType.MESSAGE:
            raise ValueError("only MESSAGE packets carry binary data")
        return packet.data
    return f"{packet.type}{packet.data}"


def decode_packet(raw: str | bytes) -> Packet:
    """One WebSocket frame (or one payload segment, already split) as a packet."""
    if isinstance(raw, (bytes, bytearray, memoryview)):
        return Packet(PacketType.MESSAGE, bytes(raw))
    if not isinstance(raw, str) or not raw:
        raise DecodeError("empty packet")
    type_char = raw[0]
    if not ("0" <= type_char <= "6"):
        raise DecodeError(f"unknown packet type {type_char!r}")
    return Packet(PacketType(int(type_char)), raw[1:])


def encode_payload(packets: list[Packet]) -> str:
    """Packets for one polling response body."""
    return RECORD_SEPARATOR.join(_encode_payload_part(p) for p in packets)


def _encode_payload_part(packet: Packet) -> str:
    if isinstance(packet.data, bytes):
        if packet.type != PacketType.MESSAGE:
            raise ValueError("only MESSAGE packets carry binary data")
        return "b" + base64.b64encode(packet.data).decode("ascii")
    return f"{packet.type}{packet.data}"


def decode_payload(body: str) -> list[Packet]:
    """A polling request body as packets; any malformed segment fails the whole body."""
    if not isinstance(body, str) or not body:
        raise DecodeError("empty payload")
    parts = body.split(RECORD_SEPARATOR, MAX_PACKETS_PER_PAYLOAD)
    if len(parts) > MAX_PACKETS_PER_PAYLOAD:
        raise DecodeError(f"more than {MAX_PACKETS_PER_PAYLOAD} packets in one payload")
    return [_decode_payload_part(part) for part in parts]


def _decode_payload_part(part: str) -> Packet:
    if part.startswith("b"):
        try:
            return Packet(PacketType.MESSAGE, base64.b64decode(part[1:], validate=True))
        except (binascii.Error, ValueError) as exc:
            raise DecodeError("invalid base64 in binary packet") from exc
    return decode_packet(part)
