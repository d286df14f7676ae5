"""The Engine.IO session's lifecycle: one state enum and the table of moves between states.

A session starts on one transport and may move once from long-polling to WebSocket (probe,
then upgrade). `advance` is the only way to change state, so a session can never be, say,
upgrading and closed at once; the engine performs the I/O each move calls for.
"""

from __future__ import annotations

import enum


class State(enum.Enum):
    POLLING = "polling"  # open, frames go out through long-poll GET responses
    UPGRADING = "upgrading"  # open on polling, a WebSocket answered the probe
    WEBSOCKET = "websocket"  # open, frames go out on the WebSocket
    CLOSED = "closed"


class Move(enum.Enum):
    PROBE = "probe"  # "2probe" arrived on a new WebSocket for this sid
    UPGRADE = "upgrade"  # "5" arrived on that WebSocket
    ABANDON_UPGRADE = "abandon_upgrade"  # the probing WebSocket went away or misbehaved
    CLOSE = "close"


class IllegalMove(Exception):
    """A move the current state does not allow (e.g. a second probe)."""


TRANSITIONS: dict[tuple[State, Move], State] = {
    (State.POLLING, Move.PROBE): State.UPGRADING,
    (State.UPGRADING, Move.UPGRADE): State.WEBSOCKET,
    (State.UPGRADING, Move.ABANDON_UPGRADE): State.POLLING,
    (State.POLLING, Move.CLOSE): State.CLOSED,
    (State.UPGRADING, Move.CLOSE): State.CLOSED,
    (State.WEBSOCKET, Move.CLOSE): State.CLOSED,
}


def advance(state: State, move: Move) -> State:
    try:
        return TRANSITIONS[(state, move)]
    except KeyError:
        raise IllegalMove(f"{move.value} is not allowed in state {state.value}") from None
