"""Engine.IO session lifecycle: every allowed move of realtime.session, and every other one refused."""

from __future__ import annotations

import itertools

import pytest

from realtime.session import TRANSITIONS, IllegalMove, Move, State, advance

# The lifecycle written out here, independently of the module's table: polling may probe a
# WebSocket once, the probe either upgrades or is abandoned, and any open state may close.
ALLOWED = {
    (State.POLLING, Move.PROBE): State.UPGRADING,
    (State.UPGRADING, Move.UPGRADE): State.WEBSOCKET,
    (State.UPGRADING, Move.ABANDON_UPGRADE): State.POLLING,
    (State.POLLING, Move.CLOSE): State.CLOSED,
    (State.UPGRADING, Move.CLOSE): State.CLOSED,
    (State.WEBSOCKET, Move.CLOSE): State.CLOSED,
}
EVERY_PAIR = list(itertools.product(State, Move))
REFUSED = [pair for pair in EVERY_PAIR if pair not in ALLOWED]


@pytest.mark.parametrize(("state", "move"), list(ALLOWED), ids=lambda x: x.value)
def test_allowed_move(state, move):
    assert advance(state, move) is ALLOWED[(state, move)]


@pytest.mark.parametrize(("state", "move"), REFUSED, ids=lambda x: x.value)
def test_every_other_move_is_illegal(state, move):
    with pytest.raises(IllegalMove) as info:
        advance(state, move)
    assert move.value in str(info.value)
    assert state.value in str(info.value)


def test_table_is_exactly_the_lifecycle():
    assert TRANSITIONS == ALLOWED


def test_closed_is_terminal():
    for move in Move:
        with pytest.raises(IllegalMove):
            advance(State.CLOSED, move)


def test_second_probe_is_illegal():
    state = advance(State.POLLING, Move.PROBE)
    with pytest.raises(IllegalMove):
        advance(state, Move.PROBE)


def test_websocket_never_goes_back_to_polling():
    state = advance(advance(State.POLLING, Move.PROBE), Move.UPGRADE)
    assert state is State.WEBSOCKET
    for move in (Move.PROBE, Move.UPGRADE, Move.ABANDON_UPGRADE):
        with pytest.raises(IllegalMove):
            advance(state, move)


def test_abandoned_upgrade_may_probe_again():
    state = advance(advance(State.POLLING, Move.PROBE), Move.ABANDON_UPGRADE)
    assert state is State.POLLING
    assert advance(state, Move.PROBE) is State.UPGRADING


def test_illegal_move_is_not_a_key_error():
    with pytest.raises(IllegalMove) as info:
        advance(State.CLOSED, Move.CLOSE)
    assert not isinstance(info.value, KeyError)
