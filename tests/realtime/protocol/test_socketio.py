"""Socket.IO v5 codec: exact wire strings, refusals, binary assembly and round trips of realtime.protocol.socketio.

Wire strings come from the Socket.IO v5 protocol document and the official test-suite; the codec
sees only the Socket.IO part, so the Engine.IO MESSAGE prefix "4" of e.g. "40" is not here.
"""

from __future__ import annotations

import dataclasses
import json
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from realtime.protocol.errors import DecodeError
from realtime.protocol.socketio import (
    MAX_ACK_ID_DIGITS,
    MAX_ATTACHMENTS,
    MAX_NAMESPACE_LENGTH,
    BinaryAssembler,
    Packet,
    PacketType,
    decode_packet,
    dumps,
    encode_packet,
    has_binary,
    start_packet,
)

T = PacketType
PLACEHOLDER_0 = '{"_placeholder":true,"num":0}'

# --- exact wire strings, both directions -------------------------------------------------------

WIRE = [
    (Packet(T.CONNECT), "0"),
    (Packet(T.CONNECT, "/admin"), "0/admin,"),
    (Packet(T.CONNECT, "/", {"token": "123"}), '0{"token":"123"}'),
    (Packet(T.CONNECT, "/admin", {"token": "123"}), '0/admin,{"token":"123"}'),
    (Packet(T.CONNECT, "/", {"sid": "oSO0OpakMV_3jnilAAAA"}), '0{"sid":"oSO0OpakMV_3jnilAAAA"}'),
    (Packet(T.DISCONNECT), "1"),
    (Packet(T.DISCONNECT, "/admin"), "1/admin,"),
    (Packet(T.EVENT, "/", ["hello", 1]), '2["hello",1]'),
    (Packet(T.EVENT, "/", ["hello"]), '2["hello"]'),
    (Packet(T.EVENT, "/admin", ["project:delete", 123], 456), '2/admin,456["project:delete",123]'),
    (Packet(T.EVENT, "/", ["hello", {"a": [1, None, True, False, "x"]}], 12),
     '212["hello",{"a":[1,null,true,false,"x"]}]'),
    (Packet(T.ACK, "/admin", [], 456), "3/admin,456[]"),
    (Packet(T.ACK, "/", ["ok", 2], 0), '30["ok",2]'),
    (Packet(T.CONNECT_ERROR, "/", {"message": "Not authorized"}), '4{"message":"Not authorized"}'),
    (Packet(T.CONNECT_ERROR, "/admin", {"message": "Not authorized"}), '4/admin,{"message":"Not authorized"}'),
    (Packet(T.CONNECT_ERROR, "/", "Invalid namespace"), '4"Invalid namespace"'),
]


@pytest.mark.parametrize(("packet", "wire"), WIRE)
def test_encode(packet, wire):
    assert encode_packet(packet) == [wire]


@pytest.mark.parametrize(("packet", "wire"), WIRE)
def test_decode(packet, wire):
    decoded = decode_packet(wire)
    assert decoded == packet
    assert type(decoded.type) is PacketType
    assert decoded.attachments == 0
    assert start_packet(decoded) == packet


def test_connect_is_0_not_40():
    # "40" is Engine.IO MESSAGE + Socket.IO CONNECT; the Engine.IO layer strips the "4".
    assert encode_packet(Packet(T.CONNECT)) == ["0"]
    assert decode_packet("0") == Packet(T.CONNECT)
    with pytest.raises(DecodeError):  # "40" here is CONNECT_ERROR "0": not a string or object
        decode_packet("40")


def test_json_is_compact_with_unescaped_unicode():
    packet = Packet(T.EVENT, "/", ["héllo", {"k": "日本語 €", "n": [1, 2]}, "é\u2028"])
    assert encode_packet(packet) == ['2["héllo",{"k":"日本語 €","n":[1,2]},"é\u2028"]']


def test_dumps_matches_json_stringify():
    assert dumps({"a": [1, "ü", None, True]}) == '{"a":[1,"ü",null,true]}'
    assert dumps('quote " and \\ and \n') == '"quote \\" and \\\\ and \\n"'


def test_dumps_escapes_lone_surrogates_as_json_stringify_does():
    # A client may send "\ud800" (valid JSON, a lone surrogate once decoded); echoed back in an
    # error event it must still be sendable as UTF-8, and read back as what was sent.
    assert dumps(["\ud800", "a\udfffb", "😀"]) == '["\\ud800","a\\udfffb","😀"]'


@given(st.lists(st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=0x10FFFF, exclude_categories=()))))
def test_dumps_is_always_utf8_and_reads_back_as_escaped_json_does(texts):
    text = dumps(texts)
    text.encode("utf-8")
    assert json.loads(text) == json.loads(json.dumps(texts))  # (two surrogates in a row read back as one pair)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_dumps_refuses_non_finite_floats(value):
    with pytest.raises(ValueError):
        dumps([value])


def test_packet_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        Packet(T.EVENT, "/", ["x"]).id = 1  # type: ignore[misc]


# --- binary packets ----------------------------------------------------------------------------


def test_event_with_bytes_encodes_as_binary_event():
    parts = encode_packet(Packet(T.EVENT, "/", ["hello", b"\x01\x02\x03"]))
    assert parts == [f'51-["hello",{PLACEHOLDER_0}]', b"\x01\x02\x03"]


def test_ack_with_bytes_encodes_as_binary_ack():
    parts = encode_packet(Packet(T.ACK, "/admin", [b"\x01\x02"], 456))
    assert parts == [f"61-/admin,456[{PLACEHOLDER_0}]", b"\x01\x02"]


def test_several_attachments_are_numbered_in_document_order():
    data = ["upload", {"a": b"A", "b": [b"B", {"c": bytearray(b"C")}]}, memoryview(b"D")]
    parts = encode_packet(Packet(T.EVENT, "/files", data, 7))
    assert parts == [
        '54-/files,7["upload",{"a":{"_placeholder":true,"num":0},'
        '"b":[{"_placeholder":true,"num":1},{"c":{"_placeholder":true,"num":2}}]},'
        '{"_placeholder":true,"num":3}]',
        b"A", b"B", b"C", b"D",
    ]
    assert all(type(p) is bytes for p in parts[1:])


def test_decode_binary_event_then_assemble():
    decoded = decode_packet(f'51-["hello",{PLACEHOLDER_0}]')
    assert decoded.type == T.BINARY_EVENT
    assert decoded.attachments == 1
    assert decoded.data == ["hello", {"_placeholder": True, "num": 0}]
    assembler = start_packet(decoded)
    assert isinstance(assembler, BinaryAssembler)
    whole = assembler.add(b"\x01\x02\x03")
    assert whole == Packet(T.BINARY_EVENT, "/", ["hello", b"\x01\x02\x03"])


def test_decode_binary_ack_then_assemble():
    decoded = decode_packet(f"61-/admin,456[{PLACEHOLDER_0}]")
    assert (decoded.type, decoded.namespace, decoded.id, decoded.attachments) == (T.BINARY_ACK, "/admin", 456, 1)
    assembler = start_packet(decoded)
    assert isinstance(assembler, BinaryAssembler)
    assert assembler.add(b"\xff") == Packet(T.BINARY_ACK, "/admin", [b"\xff"], 456)


def test_assembler_refuses_attachments_beyond_their_bound_in_all():
    text = '52-["e",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]'
    assembler = start_packet(decode_packet(text), max_attachment_bytes=10)
    assert assembler.add(b"x" * 6) is None
    with pytest.raises(DecodeError, match="more than 10 bytes"):
        assembler.add(b"x" * 5)
    at_the_bound = start_packet(decode_packet(text), max_attachment_bytes=10)
    at_the_bound.add(b"x" * 5)
    assert at_the_bound.add(b"x" * 5).data == ["e", b"x" * 5, b"x" * 5]


def test_assembler_returns_none_until_the_last_attachment():
    text = '53-["e",{"_placeholder":true,"num":2},[{"_placeholder":true,"num":0}],{"k":{"_placeholder":true,"num":1}}]'
    assembler = start_packet(decode_packet(text))
    assert isinstance(assembler, BinaryAssembler)
    assert assembler.add(b"zero") is None
    assert assembler.add(b"one") is None
    whole = assembler.add(b"two")
    assert whole == Packet(T.BINARY_EVENT, "/", ["e", b"two", [b"zero"], {"k": b"one"}])
    assert whole.attachments == 0


def test_binary_event_with_zero_attachments_is_complete_at_once():
    packet = start_packet(decode_packet('50-["hello",{"_placeholder":false,"num":0}]'))
    assert packet == Packet(T.BINARY_EVENT, "/", ["hello", {"_placeholder": False, "num": 0}])


def test_placeholder_like_dicts_with_other_keys_are_left_alone():
    text = '51-["e",{"_placeholder":true,"num":0,"x":1},{"_placeholder":true},{"_placeholder":1,"num":0},' + PLACEHOLDER_0 + "]"
    whole = start_packet(decode_packet(text)).add(b"A")
    assert whole.data == ["e", {"_placeholder": True, "num": 0, "x": 1}, {"_placeholder": True},
                          {"_placeholder": 1, "num": 0}, b"A"]


@pytest.mark.parametrize(
    "text",
    [
        '51-["e",{"_placeholder":true,"num":1}]',  # only attachment 0 exists
        '51-["e",{"_placeholder":true,"num":-1}]',
        '51-["e",{"_placeholder":true,"num":"0"}]',
        '51-["e",{"_placeholder":true,"num":true}]',
        '51-["e",{"_placeholder":true,"num":0.0}]',
        '51-["e",{"_placeholder":true,"num":null}]',
        '61-5[{"_placeholder":true,"num":7}]',
    ],
)
def test_placeholder_out_of_range_fails_assembly(text):
    assembler = start_packet(decode_packet(text))
    with pytest.raises(DecodeError):
        assembler.add(b"A")


def test_placeholder_with_no_attachments_fails():
    with pytest.raises(DecodeError):
        start_packet(decode_packet(f'50-["e",{PLACEHOLDER_0}]'))


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (None, False), (1, False), ("bytes", False), ([], False), ({}, False),
        (b"", True), (bytearray(b"x"), True), (memoryview(b"x"), True),
        (["a", [{"b": b"x"}]], True), ({"a": ({"b": 1},)}, False), (("t", b"x"), True),
    ],
)
def test_has_binary(data, expected):
    assert has_binary(data) is expected


# --- refusals ----------------------------------------------------------------------------------

REFUSED = [
    # empty / unknown type
    "",
    "7",
    "7[]",
    "9",
    "a",
    "/",
    "-",
    " 0",
    "٢[\"x\"]",  # an Arabic-Indic digit is not a type
    # EVENT data must be a non-empty array whose first element is a string
    "2",
    "2{}",
    "2[]",
    "2[1]",
    "2[null]",
    '2"hello"',
    "2/admin,",
    "2/admin,5",
    # garbage where an ack id or JSON is expected
    '2abc["x"]',
    '21a["x"]',
    '2["x"',
    '2["x"]]',
    "2['x']",
    '2/admin["x"]',  # no comma: the namespace swallows the data
    # NaN / Infinity are not JSON
    '2["x",NaN]',
    '2["x",Infinity]',
    '2["x",-Infinity]',
    '0{"a":NaN}',
    '30[Infinity]',
    # ack ids
    "2" + "1" * (MAX_ACK_ID_DIGITS + 1) + '["x"]',
    "3" + "9" * (MAX_ACK_ID_DIGITS + 1) + "[]",
    "3[]",  # ACK without an id
    "3/admin,[]",
    "3",
    "35",  # ACK without data
    "35{}",  # ACK data must be an array
    "0/admin,5",  # CONNECT takes no ack id
    "15",
    '45{"message":"x"}',
    # DISCONNECT with data
    "1{}",
    "1/admin,{}",
    "1[]",
    "1null",  # explicit null is data (socket.io-parser: payload === undefined)
    "1/admin,null",
    # CONNECT data must be an object
    "0[]",
    '0"abc"',
    "0[1]",
    "0null",  # null is not an object (socket.io-parser: isObject(null) is false)
    "0/admin,null",
    "0true",
    "0/admin,[]",
    # CONNECT_ERROR needs a message (string or object)
    "4",
    "4/admin,",
    "4[]",
    "4null",
    "41",
    # attachment counts
    '5["x"]',  # missing
    '5-["x"]',  # empty
    '5a-["x"]',
    '5+1-["x"]',
    '5 1-["x"]',
    '5١-["x"]',  # non-ASCII digit
    '5²-["x"]',  # isdigit() but not a decimal digit
    f'5{MAX_ATTACHMENTS + 1}-["x"]',
    '512345-["x"]',
    "6-5[]",
    "65[]",
    # namespace longer than the cap
    "0/" + "a" * MAX_NAMESPACE_LENGTH + ",",
    # not text
    None,
    b'2["x"]',
    2,
]


@pytest.mark.parametrize("text", REFUSED)
def test_decode_refuses(text):
    with pytest.raises(DecodeError):
        decode_packet(text)


def test_attachment_count_at_max_is_accepted():
    packet = decode_packet(f'5{MAX_ATTACHMENTS}-["x"]')
    assert packet.attachments == MAX_ATTACHMENTS


def test_ack_id_at_max_digits_is_accepted():
    packet = decode_packet("2" + "9" * MAX_ACK_ID_DIGITS + '["x"]')
    assert packet.id == int("9" * MAX_ACK_ID_DIGITS)


def test_namespace_at_max_length_is_accepted():
    namespace = "/" + "a" * (MAX_NAMESPACE_LENGTH - 1)
    assert decode_packet(f"0{namespace},") == Packet(T.CONNECT, namespace)


def test_namespace_without_comma_runs_to_the_end():
    assert decode_packet("0/admin") == Packet(T.CONNECT, "/admin")


def test_ack_id_with_leading_zeros():
    assert decode_packet('2007["x"]').id == 7


def test_huge_json_integer_is_a_decode_error():
    # Python refuses to parse integers of more than 4300 digits; that must surface as DecodeError.
    with pytest.raises(DecodeError):
        decode_packet('2["x",' + "1" * 5000 + "]")


@pytest.mark.parametrize("literal", ["1e400", "-1e400", "1E999"])
def test_overflowing_number_is_refused_or_survives_a_round_trip(literal):
    # JSON numbers that overflow a double parse to +/-inf, which the codec's own encoder refuses
    # ("NaN/Infinity are not JSON"). Whatever the decoder accepts must be encodable again.
    try:
        packet = decode_packet(f'2["x",{literal}]')
    except DecodeError:
        return
    assert decode_packet(encode_packet(packet)[0]) == packet


# Nesting depths from shallow to past the interpreter's recursion limit: somewhere in this range
# the JSON parser gives up (DecodeError); at no depth may any other exception escape.
DEPTHS = range(25, sys.getrecursionlimit() + 100, 25)


def _nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def test_deeply_nested_binary_event_fails_only_with_decode_error():
    failures = []
    for depth in DEPTHS:
        try:
            result = start_packet(decode_packet(f'50-["x",{_nested(depth)}]'))
            assert isinstance(result, Packet)
        except DecodeError:
            pass
        except Exception as exc:  # noqa: BLE001 - recording the escaped exception is the point
            failures.append((depth, type(exc).__name__))
    assert not failures, f"non-DecodeError at nesting depth(s) {failures}"


def test_deeply_nested_binary_event_assembly_fails_only_with_decode_error():
    failures = []
    for depth in DEPTHS:
        try:
            assembler = start_packet(decode_packet(f'51-["x",{PLACEHOLDER_0},{_nested(depth)}]'))
            assert isinstance(assembler, BinaryAssembler)
            assembler.add(b"A")
        except DecodeError:
            pass
        except Exception as exc:  # noqa: BLE001
            failures.append((depth, type(exc).__name__))
    assert not failures, f"non-DecodeError at nesting depth(s) {failures}"


def test_deeply_nested_event_that_decodes_can_be_encoded_again():
    failures = []
    for depth in DEPTHS:
        try:
            packet = decode_packet(f'2["x",{_nested(depth)}]')
        except DecodeError:
            continue
        try:
            assert decode_packet(encode_packet(packet)[0]) == packet
        except Exception as exc:  # noqa: BLE001
            failures.append((depth, type(exc).__name__))
    assert not failures, f"decoded packet not re-encodable at nesting depth(s) {failures}"


# --- properties --------------------------------------------------------------------------------

MAX_SAFE_INTEGER = 2**53


def _is_placeholder_shaped(value: dict) -> bool:
    # {"_placeholder": true, "num": ...} is what a binary value looks like on the wire, so such a
    # dict cannot be told apart from an attachment: ambiguous by protocol design.
    return set(value) == {"_placeholder", "num"} and value["_placeholder"] is True


json_leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-MAX_SAFE_INTEGER, MAX_SAFE_INTEGER),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(),
    st.binary(max_size=16),
)
dict_keys = st.one_of(st.sampled_from(["_placeholder", "num", ""]), st.text(max_size=8))
json_values = st.recursive(
    json_leaves,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(dict_keys, children, max_size=4).filter(lambda d: not _is_placeholder_shaped(d)),
    ),
    max_leaves=12,
)
namespaces = st.one_of(
    st.just("/"),
    st.text(st.characters(blacklist_characters=",", blacklist_categories=("Cs",)),
            max_size=MAX_NAMESPACE_LENGTH - 1).map(lambda s: "/" + s),
)
ack_ids = st.integers(0, MAX_SAFE_INTEGER)

event_packets = st.builds(
    lambda ns, name, args, ack: Packet(T.EVENT, ns, [name, *args], ack),
    namespaces, st.text(), st.lists(json_values, max_size=4), st.none() | ack_ids,
)
ack_packets = st.builds(
    lambda ns, args, ack: Packet(T.ACK, ns, args, ack),
    namespaces, st.lists(json_values, max_size=4), ack_ids,
)


def _strict(value):
    """A comparable form that tells True from 1 and 1.0 from 1 (plain == does not)."""
    if isinstance(value, list):
        return ("list", [_strict(v) for v in value])
    if isinstance(value, dict):
        return ("dict", [(k, _strict(v)) for k, v in value.items()])
    return (type(value).__name__, value)


def _transmit(packet: Packet) -> Packet:
    """Encode, then decode the way the server receives it: text, then the attachments one by one."""
    text, *attachments = encode_packet(packet)
    assert isinstance(text, str)
    assert all(type(a) is bytes for a in attachments)
    started = start_packet(decode_packet(text))
    if not attachments:
        assert isinstance(started, Packet)
        return started
    assert isinstance(started, BinaryAssembler)
    for attachment in attachments[:-1]:
        assert started.add(attachment) is None
    whole = started.add(attachments[-1])
    assert whole is not None
    return whole


@settings(max_examples=300)
@given(st.one_of(event_packets, ack_packets))
def test_round_trip(packet):
    received = _transmit(packet)
    expected_type = packet.type
    if has_binary(packet.data):
        expected_type = T.BINARY_EVENT if packet.type == T.EVENT else T.BINARY_ACK
    assert received.type == expected_type
    assert received.namespace == packet.namespace
    assert received.id == packet.id
    assert _strict(received.data) == _strict(packet.data)


@settings(max_examples=200)
@given(st.one_of(event_packets, ack_packets))
def test_attachment_count_matches_the_binary_values(packet):
    text, *attachments = encode_packet(packet)
    if attachments:
        assert text.startswith(f"{int(packet.type) + 3}{len(attachments)}-")
        assert decode_packet(text).attachments == len(attachments)
    else:
        assert text[0] == str(int(packet.type))


wire_alphabet = st.sampled_from(list('0123456789-/,[]{}":_placeholdertruenum aNIfy.e\\'))
fuzz_text = st.one_of(
    st.text(),
    st.text(wire_alphabet),
    st.tuples(st.sampled_from("0123456"), st.text(wire_alphabet)).map("".join),
    st.tuples(st.sampled_from(["51-", "61-", "52-", "50-", "5", "6"]), st.text(wire_alphabet)).map("".join),
)


@settings(max_examples=500)
@given(fuzz_text)
def test_decode_raises_only_decode_error(text):
    try:
        packet = decode_packet(text)
    except DecodeError:
        return
    assert isinstance(packet, Packet)
    assert isinstance(packet.type, PacketType)


@settings(max_examples=500)
@given(fuzz_text)
def test_decode_and_assemble_raise_only_decode_error(text):
    try:
        started = start_packet(decode_packet(text))
        while isinstance(started, BinaryAssembler):
            result = started.add(b"attachment")
            if result is not None:
                started = result
    except DecodeError:
        return
    assert isinstance(started, Packet)
