"""An open session keeps only the handshake headers it reads again (Authorization)."""

from realtime.transports.handshake import session_headers


def test_a_session_keeps_authorization_and_nothing_else_of_its_handshake():
    scope = {"headers": [(b"host", b"h"), (b"cookie", b"a=1"), (b"authorization", b"Bearer t"),
                         (b"user-agent", b"ua"), (b"origin", b"http://h")]}
    assert session_headers(scope) == [(b"authorization", b"Bearer t")]
    assert session_headers({"headers": [(b"cookie", b"a=1")]}) == []
    assert session_headers({}) == []
