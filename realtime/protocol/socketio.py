"""Socket.IO v5 packets as data: encode, decode, and binary attachment assembly.

Spec: https://socket.io/docs/v4/socket-io-protocol/ (docs/socket.io-protocol/v5-current.md).

A packet is the text of one Engine.IO MESSAGE, fields in this order:

    <type>                      one digit, see PacketType
    [<attachments>-]            BINARY_EVENT / BINARY_ACK only: how many binary messages follow
    [<namespace>,]              present unless the namespace is "/"
    [<ack id>]                  digits; EVENT asks for an ack, ACK answers that id
    [<JSON data>]               CONNECT: auth object; CONNECT_ERROR: {"message"}; EVENT: [name, *args]

Binary values inside data are replaced by {"_placeholder": true, "num": i} and sent as the
following i-th Engine.IO binary messages; `BinaryAssembler` puts them back one at a time.
"""

from __future__ import annotations

import enum
import json
import re
from dataclasses import dataclass, field
from typing import Any

from .errors import DecodeError

# Ack ids are JavaScript integers on the client side; 2**53 has 16 digits.
MAX_ACK_ID_DIGITS = 16
# Each attachment is its own Engine.IO message bounded by maxHttpBufferSize; this bounds how many
# a client can make us wait for (Node leaves it unbounded).
MAX_ATTACHMENTS = 1_000
MAX_NAMESPACE_LENGTH = 256
# JSON nesting a client may send. Real payloads nest a few levels; the binary helpers recurse
# per level, so an unbounded depth would let ~1 KB of brackets exhaust the Python stack.
MAX_DEPTH = 32
_MISSING = object()


class PacketType(enum.IntEnum):
    CONNECT = 0
    DISCONNECT = 1
    EVENT = 2
    ACK = 3
    CONNECT_ERROR = 4
    BINARY_EVENT = 5
    BINARY_ACK = 6


@dataclass(frozen=True, slots=True)
class Packet:
    type: PacketType
    namespace: str = "/"
    data: Any = None
    id: int | None = None
    # Set by the decoder for binary packets still waiting for their attachments.
    attachments: int = field(default=0, compare=False)


def _reject_constant(name: str) -> Any:
    raise DecodeError(f"{name} is not JSON")


def _parse_float(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise DecodeError(f"{text} does not fit a double")
    return value


# Made once: json.loads and json.dumps given options build their decoder or C encoder again on
# every call, half of what a small packet's JSON costs.
_DECODER = json.JSONDecoder(parse_constant=_reject_constant, parse_float=_parse_float)


def _loads(text: str) -> Any:
    try:
        data = _DECODER.decode(text)
    except (ValueError, RecursionError) as exc:
        raise DecodeError("invalid JSON") from exc
    _check_depth(data)
    return data


def _check_depth(data: Any) -> None:
    """Iteratively, so the check itself cannot overflow the stack."""
    stack = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, (list, dict)):
            if depth > MAX_DEPTH:
                raise DecodeError(f"JSON nested deeper than {MAX_DEPTH} levels")
            children = value.values() if isinstance(value, dict) else value
            stack.extend((child, depth + 1) for child in children)


# A surrogate code point in a str is a lone one (a client's "\ud800" decodes to one): UTF-8
# cannot carry it, so a frame holding one could not be sent at all.
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def _not_json(value: Any) -> Any:
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


# json.dumps(data, separators=(",", ":"), ensure_ascii=False, allow_nan=False), its C encoder made
# once. Without the circular check (markers None): a cycle is RecursionError, not ValueError;
# payloads are trees (decoded JSON, or built by handlers).
_ENCODER = json.encoder.c_make_encoder and json.encoder.c_make_encoder(
    None, _not_json, json.encoder.encode_basestring, None, ":", ",", False, False, False)


def dumps(data: Any) -> str:
    """JSON as JavaScript's JSON.stringify writes it (compact, unescaped Unicode, lone
    surrogates escaped as ES2019's well-formed JSON.stringify does)."""
    if _ENCODER is None:  # a Python without the _json accelerator
        text = json.dumps(data, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    else:
        text = "".join(_ENCODER(data, 0))
    if text.isascii():
        return text
    return _LONE_SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def encode_packet(packet: Packet) -> list[str | bytes]:
    """The packet as Engine.IO message payloads: its text, then any binary attachments."""
    attachments: list[bytes] = []
    text = None
    if packet.data is not None:
        try:  # binary-free, as nearly every packet is: one pass, json's C encoder's
            text = dumps(packet.data)
        except TypeError:  # bytes somewhere (or something JSON cannot hold: raised again below)
            text = dumps(_deconstruct(packet.data, attachments))
    ptype = packet.type
    if attachments:
        if ptype == PacketType.EVENT:
            ptype = PacketType.BINARY_EVENT
        elif ptype == PacketType.ACK:
            ptype = PacketType.BINARY_ACK
    parts = [str(int(ptype))]
    if ptype in (PacketType.BINARY_EVENT, PacketType.BINARY_ACK):
        parts.append(f"{len(attachments)}-")
    if packet.namespace != "/":
        parts.append(packet.namespace + ",")
    if packet.id is not None:
        parts.append(str(packet.id))
    if text is not None:
        parts.append(text)
    return ["".join(parts), *attachments]


def decode_packet(text: str) -> Packet:
    """One text Engine.IO message as a packet (binary ones still carry placeholders)."""
    if not isinstance(text, str) or not text:
        raise DecodeError("empty packet")
    if not ("0" <= text[0] <= "6"):
        raise DecodeError(f"unknown packet type {text[0]!r}")
    ptype = PacketType(int(text[0]))
    i = 1
    attachments = 0
    if ptype in (PacketType.BINARY_EVENT, PacketType.BINARY_ACK):
        dash = text.find("-", i)
        digits = text[i:dash] if dash != -1 else ""
        if not digits.isdigit() or not digits.isascii() or len(digits) > 4:
            raise DecodeError("invalid attachment count")
        attachments = int(digits)
        if attachments > MAX_ATTACHMENTS:
            raise DecodeError(f"more than {MAX_ATTACHMENTS} attachments")
        i = dash + 1
    namespace = "/"
    if i < len(text) and text[i] == "/":
        comma = text.find(",", i)
        end = comma if comma != -1 else len(text)
        namespace = text[i:end]
        if len(namespace) > MAX_NAMESPACE_LENGTH:
            raise DecodeError("namespace too long")
        i = end + 1 if comma != -1 else end
    start = i
    while i < len(text) and "0" <= text[i] <= "9":
        i += 1
    ack_id = None
    if i > start:
        if i - start > MAX_ACK_ID_DIGITS:
            raise DecodeError("ack id too long")
        ack_id = int(text[start:i])
    data = _loads(text[i:]) if i < len(text) else _MISSING
    _check_payload(ptype, data, ack_id)
    return Packet(ptype, namespace, None if data is _MISSING else data, ack_id, attachments)


def _check_payload(ptype: PacketType, data: Any, ack_id: int | None) -> None:
    """The shape rules of socket.io-parser's isPayloadValid, plus an id on every ACK.

    `data` is _MISSING when the packet has none, which is not the same as JSON null.
    """
    if ptype == PacketType.CONNECT:
        ok = data is _MISSING or isinstance(data, dict)
    elif ptype == PacketType.DISCONNECT:
        ok = data is _MISSING
    elif ptype == PacketType.CONNECT_ERROR:
        ok = isinstance(data, (str, dict))
    elif ptype in (PacketType.EVENT, PacketType.BINARY_EVENT):
        ok = isinstance(data, list) and bool(data) and isinstance(data[0], str)
    else:  # ACK, BINARY_ACK
        ok = isinstance(data, list) and ack_id is not None
    if not ok:
        raise DecodeError(f"invalid payload for {ptype.name}")
    if ack_id is not None and ptype in _NO_ACK_ID:
        raise DecodeError(f"{ptype.name} takes no ack id")


_NO_ACK_ID = (PacketType.CONNECT, PacketType.DISCONNECT, PacketType.CONNECT_ERROR)


def _deconstruct(data: Any, attachments: list[bytes]) -> Any:
    if isinstance(data, (bytes, bytearray, memoryview)):
        attachments.append(bytes(data))
        return {"_placeholder": True, "num": len(attachments) - 1}
    if isinstance(data, (list, tuple)):
        return [_deconstruct(item, attachments) for item in data]
    if isinstance(data, dict):
        return {key: _deconstruct(value, attachments) for key, value in data.items()}
    return data


def _reconstruct(data: Any, attachments: list[bytes]) -> Any:
    if isinstance(data, dict):
        if data.get("_placeholder") is True and set(data) == {"_placeholder", "num"}:
            num = data["num"]
            if type(num) is not int or not 0 <= num < len(attachments):
                raise DecodeError("attachment placeholder out of range")
            return attachments[num]
        return {key: _reconstruct(value, attachments) for key, value in data.items()}
    if isinstance(data, list):
        return [_reconstruct(item, attachments) for item in data]
    return data


def has_binary(data: Any) -> bool:
    if isinstance(data, (bytes, bytearray, memoryview)):
        return True
    if isinstance(data, (list, tuple)):
        return any(has_binary(item) for item in data)
    if isinstance(data, dict):
        return any(has_binary(value) for value in data.values())
    return False


class BinaryAssembler:
    """Collects a binary packet's attachments; `add` returns the whole packet after the last one.

    Each attachment is one Engine.IO message, so within maxHttpBufferSize; their sum is bounded
    too (`max_bytes`), or a packet announcing 1,000 of them could hold a gigabyte per connection.
    """

    def __init__(self, packet: Packet, max_bytes: int | None = None) -> None:
        self.packet = packet
        self.max_bytes = max_bytes
        self._buffers: list[bytes] = []
        self._size = 0

    def add(self, attachment: bytes) -> Packet | None:
        self._size += len(attachment)
        if self.max_bytes is not None and self._size > self.max_bytes:
            raise DecodeError(f"attachments of more than {self.max_bytes} bytes in all")
        self._buffers.append(attachment)
        if len(self._buffers) < self.packet.attachments:
            return None
        data = _reconstruct(self.packet.data, self._buffers)
        return Packet(self.packet.type, self.packet.namespace, data, self.packet.id)


def start_packet(packet: Packet, max_attachment_bytes: int | None = None) -> Packet | BinaryAssembler:
    """A decoded packet that is complete, or an assembler waiting for its attachments (at most
    `max_attachment_bytes` of them in all; None: no bound)."""
    if packet.type in (PacketType.BINARY_EVENT, PacketType.BINARY_ACK):
        if packet.attachments == 0:
            return Packet(packet.type, packet.namespace, _reconstruct(packet.data, []), packet.id)
        return BinaryAssembler(packet, max_attachment_bytes)
    return packet
