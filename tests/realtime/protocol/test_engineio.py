"""Engine.IO v4 codec: exact wire strings, refusals, and round-trip properties of realtime.protocol.engineio."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from realtime.protocol.engineio import (
    MAX_PACKETS_PER_PAYLOAD,
    RECORD_SEPARATOR,
    ErrorCode,
    Packet,
    PacketType,
    decode_packet,
    decode_payload,
    encode_packet,
    encode_payload,
)
from realtime.protocol.errors import DecodeError

MESSAGE = PacketType.MESSAGE

# --- single packets: exact wire strings ---------------------------------------------------------

WIRE_PACKETS = [
    (Packet(PacketType.OPEN, '{"sid":"lv_VI97HAXpY6yYWAAAC","upgrades":["websocket"]}'),
     '0{"sid":"lv_VI97HAXpY6yYWAAAC","upgrades":["websocket"]}'),
    (Packet(PacketType.CLOSE), "1"),
    (Packet(PacketType.PING), "2"),
    (Packet(PacketType.PONG), "3"),
    (Packet(PacketType.PING, "probe"), "2probe"),
    (Packet(PacketType.PONG, "probe"), "3probe"),
    (Packet(MESSAGE, "hello"), "4hello"),
    (Packet(MESSAGE, ""), "4"),
    (Packet(MESSAGE, "€ 日本"), "4€ 日本"),
    (Packet(MESSAGE, '2["hello",1]'), '42["hello",1]'),
    (Packet(PacketType.UPGRADE), "5"),
    (Packet(PacketType.NOOP), "6"),
]


@pytest.mark.parametrize(("packet", "wire"), WIRE_PACKETS)
def test_encode_packet_text(packet, wire):
    assert encode_packet(packet) == wire


@pytest.mark.parametrize(("packet", "wire"), WIRE_PACKETS)
def test_decode_packet_text(packet, wire):
    decoded = decode_packet(wire)
    assert decoded == packet
    assert type(decoded.type) is PacketType
    assert type(decoded.data) is str
    assert not decoded.binary


def test_encode_binary_message_is_the_raw_bytes():
    assert encode_packet(Packet(MESSAGE, b"\x01\x02\x03\x04")) == b"\x01\x02\x03\x04"
    assert encode_packet(Packet(MESSAGE, b"")) == b""


@pytest.mark.parametrize("raw", [b"\x01\x02\x03\x04", bytearray(b"\x01\x02\x03\x04"),
                                 memoryview(b"\x01\x02\x03\x04")])
def test_decode_binary_frame_is_a_binary_message(raw):
    decoded = decode_packet(raw)
    assert decoded == Packet(MESSAGE, b"\x01\x02\x03\x04")
    assert type(decoded.data) is bytes
    assert decoded.binary


def test_decode_empty_binary_frame_is_an_empty_binary_message():
    assert decode_packet(b"") == Packet(MESSAGE, b"")


def test_only_message_packets_carry_binary():
    with pytest.raises(ValueError):
        encode_packet(Packet(PacketType.PING, b"\x01"))


@pytest.mark.parametrize("wire", ["", "7", "9hello", "a", "-1", " 4hello", "bAQIDBA==", "\x1e", "٤hello"])
def test_decode_packet_refuses(wire):
    with pytest.raises(DecodeError):
        decode_packet(wire)


@pytest.mark.parametrize("raw", [None, 4, 4.0, ["4hello"]])
def test_decode_packet_refuses_non_text(raw):
    with pytest.raises(DecodeError):
        decode_packet(raw)


def test_packet_is_frozen():
    packet = Packet(MESSAGE, "hello")
    with pytest.raises(dataclasses.FrozenInstanceError):
        packet.data = "bye"  # type: ignore[misc]


# --- polling payloads --------------------------------------------------------------------------

WIRE_PAYLOADS = [
    ([Packet(MESSAGE, "hello")], "4hello"),
    ([Packet(MESSAGE, "hello"), Packet(MESSAGE, "€")], "4hello\x1e4€"),
    ([Packet(MESSAGE, "hello"), Packet(MESSAGE, b"\x01\x02\x03\x04")], "4hello\x1ebAQIDBA=="),
    ([Packet(MESSAGE, b"")], "b"),
    ([Packet(PacketType.PING), Packet(PacketType.NOOP)], "2\x1e6"),
    ([Packet(PacketType.CLOSE)], "1"),
    ([Packet(MESSAGE, "")], "4"),
]


@pytest.mark.parametrize(("packets", "wire"), WIRE_PAYLOADS)
def test_encode_payload(packets, wire):
    assert encode_payload(packets) == wire


@pytest.mark.parametrize(("packets", "wire"), WIRE_PAYLOADS)
def test_decode_payload(packets, wire):
    assert decode_payload(wire) == packets


def test_record_separator_is_0x1e():
    assert RECORD_SEPARATOR == "\x1e"


def test_encode_empty_payload():
    assert encode_payload([]) == ""


@pytest.mark.parametrize(
    "body",
    [
        "",  # empty body
        "\x1e",  # two empty packets
        "4hello\x1e",  # trailing separator: an empty packet
        "\x1e4hello",
        "4a\x1e\x1e4b",
        "7",  # unknown type
        "4hello\x1e9",
        "x",
        "b!!!",  # not base64
        "bAQIDB",  # bad padding
        "bAQIDBA=",
        "bAQID\nBA==",  # whitespace is not ignored
        "bAQI DBA==",
        "b€",  # non-ASCII in base64
        "4hello\x1ebAQIDBA",
    ],
)
def test_decode_payload_refuses(body):
    with pytest.raises(DecodeError):
        decode_payload(body)


@pytest.mark.parametrize("body", [None, b"4hello", bytearray(b"4hello"), 4, ["4hello"]])
def test_decode_payload_refuses_non_text(body):
    with pytest.raises(DecodeError):
        decode_payload(body)


def test_decode_payload_accepts_max_packets():
    body = RECORD_SEPARATOR.join(["6"] * MAX_PACKETS_PER_PAYLOAD)
    assert decode_payload(body) == [Packet(PacketType.NOOP)] * MAX_PACKETS_PER_PAYLOAD


def test_decode_payload_refuses_one_packet_over_max():
    body = RECORD_SEPARATOR.join(["6"] * (MAX_PACKETS_PER_PAYLOAD + 1))
    with pytest.raises(DecodeError):
        decode_payload(body)


def test_decode_payload_refuses_a_flood_of_separators():
    with pytest.raises(DecodeError):
        decode_payload(RECORD_SEPARATOR * (10 * MAX_PACKETS_PER_PAYLOAD))


def test_encode_payload_refuses_binary_non_message_like_encode_packet():
    # encode_packet refuses binary data on a non-MESSAGE packet; the payload encoder must not
    # silently turn the same packet into a MESSAGE ("b..." always decodes as MESSAGE).
    packet = Packet(PacketType.PING, b"\x01")
    with pytest.raises(ValueError):
        encode_packet(packet)
    with pytest.raises(ValueError):
        encode_payload([packet])


# --- error codes -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "value", "message"),
    [
        (ErrorCode.UNKNOWN_TRANSPORT, 0, "Transport unknown"),
        (ErrorCode.UNKNOWN_SID, 1, "Session ID unknown"),
        (ErrorCode.BAD_HANDSHAKE_METHOD, 2, "Bad handshake method"),
        (ErrorCode.BAD_REQUEST, 3, "Bad request"),
        (ErrorCode.FORBIDDEN, 4, "Forbidden"),
        (ErrorCode.UNSUPPORTED_PROTOCOL_VERSION, 5, "Unsupported protocol version"),
    ],
)
def test_error_codes_match_node_engine_io(code, value, message):
    assert int(code) == value
    assert code.message == message


def test_every_error_code_has_a_message():
    assert len(ErrorCode) == 6
    assert all(code.message for code in ErrorCode)


# --- properties --------------------------------------------------------------------------------

# The record separator cannot appear inside a packet of a payload (Engine.IO does not escape it).
payload_text = st.text(st.characters(blacklist_characters=RECORD_SEPARATOR, blacklist_categories=("Cs",)))

text_packets = st.builds(Packet, st.sampled_from(PacketType), st.text())
binary_packets = st.builds(Packet, st.just(MESSAGE), st.binary())
payload_packets = st.one_of(
    st.builds(Packet, st.sampled_from(PacketType), payload_text),
    binary_packets,
)


@settings(max_examples=300)
@given(st.one_of(text_packets, binary_packets))
def test_packet_round_trip(packet):
    wire = encode_packet(packet)
    assert isinstance(wire, bytes) is packet.binary
    assert decode_packet(wire) == packet


@settings(max_examples=300)
@given(st.lists(payload_packets, min_size=1, max_size=20))
def test_payload_round_trip(packets):
    body = encode_payload(packets)
    assert isinstance(body, str)
    assert decode_payload(body) == packets


@settings(max_examples=300)
@given(st.lists(payload_packets, min_size=1, max_size=20))
def test_payload_is_its_packets_joined(packets):
    # In a payload a text packet is written exactly as on a WebSocket.
    body = encode_payload(packets)
    assert len(body.split(RECORD_SEPARATOR)) == len(packets)
    for part, packet in zip(body.split(RECORD_SEPARATOR), packets):
        if not packet.binary:
            assert part == encode_packet(packet)


fuzz_text = st.one_of(
    st.text(),
    st.text(alphabet="0123456789b\x1e=+/AQIDBahello€"),
)


@settings(max_examples=500)
@given(st.one_of(fuzz_text, st.binary()))
def test_decode_packet_raises_only_decode_error(raw):
    try:
        packet = decode_packet(raw)
    except DecodeError:
        return
    assert isinstance(packet, Packet)
    assert isinstance(packet.type, PacketType)


@settings(max_examples=500)
@given(st.one_of(fuzz_text, st.binary()))
def test_decode_payload_raises_only_decode_error(body):
    try:
        packets = decode_payload(body)
    except DecodeError:
        return
    assert packets
    assert len(packets) <= MAX_PACKETS_PER_PAYLOAD
    assert all(isinstance(p, Packet) for p in packets)
