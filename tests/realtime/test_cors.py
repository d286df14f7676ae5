"""The Origin policy: listed origins, any with "*", no Origin (not a browser), and same-origin pages."""

from realtime.cors import CorsPolicy

POLICY = CorsPolicy(frozenset({"http://localhost:3000"}), allow_credentials=True)


def test_listed_and_missing_origins_pass_others_do_not():
    assert POLICY.allows("http://localhost:3000")
    assert POLICY.allows(None)
    assert not POLICY.allows("http://evil.example")
    assert CorsPolicy(frozenset({"*"}), False).allows("http://evil.example")


def test_a_page_of_this_server_is_same_origin_whatever_the_scheme_in_front():
    assert POLICY.allows("http://127.0.0.1:3001", "127.0.0.1:3001")
    assert POLICY.allows("https://api.example.com", "api.example.com")  # TLS ended at a proxy
    assert POLICY.allows("http://API.example.com", "api.example.com")


def test_same_host_other_port_or_other_host_is_cross_origin():
    assert not POLICY.allows("http://127.0.0.1:3000", "127.0.0.1:3001")
    assert not POLICY.allows("http://evil.example", "api.example.com")
    assert not POLICY.allows("http://api.example.com.evil.example", "api.example.com")
