"""Room names: the grammar, is_public, and the injective room→Channels-group map of realtime.rooms."""

from __future__ import annotations

import re

import pytest
from channels.layers import BaseChannelLayer
from hypothesis import given, settings
from hypothesis import strategies as st

from realtime.errors import InvalidRoom
from realtime.rooms import PRIVATE_GROUP_PREFIXES, ROOM_GRAMMAR, group_to_room, is_public, room_to_group, validate_room

UUID = "3f2b8c1e-9d4a-4b7e-8f21-0c5d6e7a8b90"
STELLAR_KEY = "GCEZWKCA5VLDNRLN3RPRJMRZOX3Z6G5CHCGSNFHEYVXM3XOJMDS674JZ"  # 56 characters
GROUP_NAME = re.compile(r"[a-zA-Z0-9_.-]{1,99}")

VALID = [
    "market:XLM_USDC",
    "market:BTC_USDC",
    "market:A_B",
    "market:ABCDEFGHIJKL_123456789012",  # 12 + 12
    "system:notifications",
    f"user:{UUID}",
    f"user:{UUID.upper()}",
    f"wallet:{STELLAR_KEY}",
    "wallet:42",
    f"automation:{UUID}",
    "automation:" + "a" * 64,
]
INVALID = [
    "",
    "market:",
    "market",
    "market:XLM",
    "market:XLM_",
    "market:_USDC",
    "market:xlm_usdc",
    "market:XLM_usdc",
    "market:XLM-USDC",
    "market:XLM_USDC_EUR",
    "market:ABCDEFGHIJKLM_USDC",  # 13-character asset
    "market:XLM_ABCDEFGHIJKLM",
    "foo:bar",
    "system:",
    "system:other",
    "system:Notifications",
    "user:",
    "wallet:",
    "automation:",
    "user:" + "a" * 65,  # id longer than 64
    "wallet:" + "1" * 65,
    "automation:" + "f" * 65,
    "user:abc_def",
    "user:abc.def",
    "user:abc:def",
    "user:a b",
    "USER:abc",
    " market:XLM_USDC",
    "market:XLM_USDC ",
    "market:XLM_USDC\n",
    "user:abc\n",
    "user:ü",
    "user:日本",
    "user:١٢٣",  # Arabic-Indic digits
    "market:ＸLM_USDC",  # fullwidth X
    "wallet:abc\u200b",
    "room.market.XLM_USDC",
]


@pytest.mark.parametrize("room", VALID)
def test_valid_room(room):
    assert validate_room(room) == room


@pytest.mark.parametrize("room", INVALID)
def test_invalid_room(room):
    with pytest.raises(InvalidRoom) as info:
        validate_room(room)
    assert info.value.code == "invalid_room"


@pytest.mark.parametrize("room", [None, 1, 1.5, b"market:XLM_USDC", ["market:XLM_USDC"], {"room": "x"}, object()])
def test_non_string_room(room):
    with pytest.raises(InvalidRoom) as info:
        validate_room(room)
    assert info.value.code == "invalid_room"


@pytest.mark.parametrize("room", INVALID + [None, b"market:XLM_USDC"])
def test_room_to_group_refuses_invalid_rooms(room):
    with pytest.raises(InvalidRoom):
        room_to_group(room)


@pytest.mark.parametrize(
    ("room", "public"),
    [
        ("market:XLM_USDC", True),
        ("market:BTC_USDC", True),
        ("system:notifications", True),
        (f"user:{UUID}", False),
        (f"wallet:{STELLAR_KEY}", False),
        (f"automation:{UUID}", False),
    ],
)
def test_is_public(room, public):
    assert is_public(room) is public


@pytest.mark.parametrize(
    ("room", "group"),
    [
        ("market:XLM_USDC", "room.market.XLM_USDC"),
        ("system:notifications", "room.system.notifications"),
        (f"user:{UUID}", f"room.user.{UUID}"),
        ("wallet:42", "room.wallet.42"),
    ],
)
def test_room_to_group_pinned(room, group):
    assert room_to_group(room) == group
    assert group_to_room(group) == room


def test_longest_room_makes_a_valid_group():
    group = room_to_group("automation:" + "-" * 64)
    assert GROUP_NAME.fullmatch(group)
    assert len(group) < BaseChannelLayer.MAX_NAME_LENGTH


rooms = st.from_regex(ROOM_GRAMMAR, fullmatch=True)
_layer = BaseChannelLayer()


@settings(max_examples=250)
@given(rooms)
def test_generated_room_is_valid(room):
    assert validate_room(room) == room


@settings(max_examples=250)
@given(rooms)
def test_group_is_a_valid_channels_group_name(room):
    group = room_to_group(room)
    assert GROUP_NAME.fullmatch(group), group
    assert _layer.require_valid_group_name(group)


@settings(max_examples=250)
@given(rooms)
def test_group_to_room_inverts_room_to_group(room):
    assert group_to_room(room_to_group(room)) == room


@settings(max_examples=200)
@given(rooms, rooms)
def test_room_to_group_is_injective(a, b):
    if a != b:
        assert room_to_group(a) != room_to_group(b)


@settings(max_examples=200)
@given(rooms)
def test_is_public_follows_the_prefix(room):
    assert is_public(room) is (room.split(":", 1)[0] in ("market", "system"))


@settings(max_examples=250)
@given(rooms)
def test_a_rooms_group_is_heard_through_the_private_pattern_exactly_when_the_room_is_private(room):
    """A private kind added to the grammar but not to PRIVATE_GROUP_PREFIXES would still work,
    one SUBSCRIBE per room, the cost the pattern removed (pubsub_layer); a public room's group
    under a private prefix would be heard by every process."""
    assert room_to_group(room).startswith(PRIVATE_GROUP_PREFIXES) is (not is_public(room))
