"""README's event catalogue against the code, both ways: no undocumented event, no stale row.

Client → server: the names the running server's router accepts (built as galaxy.asgi builds
it, in a subprocess: the test process never configures Django). Server → client: every event
name the sources emit, found in their syntax trees (see `emitted_events`).
"""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys

from tests.servers import BASE_ENV, ROOT

# Issue 6 (automations) is being built beside this: the seed's automation events are documented
# already and not yet in the code. ONLY these may be documented without code; empty both sets
# when issue 6 merges (a name here that the code now has fails the test, so they cannot linger).
PENDING_CLIENT_EVENTS: set[str] = set()
PENDING_SERVER_EVENTS: set[str] = set()

SOURCES = ["realtime", "market", "transactions", "automation", "web", "galaxy"]
# A literal lower-case `prefix:word` in the sources is an event name; the one literal room is
# system:notifications (every other room carries a pair or an id built at run time).
EVENT_LITERAL = re.compile(r"(?:market|transaction|automation|system):[a-z]+(?:_[a-z]+)*")
LITERAL_ROOMS = {"system:notifications"}

ROUTES = """
import django, json, os
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "galaxy.settings")
django.setup()
from realtime.app import build_engine
print(json.dumps(build_engine().handler.namespaces["/"].router.events))
"""


def catalogue_tables() -> tuple[set[str], set[str]]:
    """(client → server names, server → client names) from README's Event catalogue."""
    text = (ROOT / "README.md").read_text()
    section = text.split("\n## Event catalogue\n", 1)[1].split("\n## ", 1)[0]
    client = table_names(section.split("\n### Client → server\n", 1)[1].split("\n### ", 1)[0])
    server = table_names(section.split("\n### Server → client\n", 1)[1].split("\n### ", 1)[0])
    return client, server


def table_names(block: str) -> set[str]:
    """Event names in the first column of a markdown table: every `code` span there (a row may
    name two, as `subscribed` / `unsubscribed`)."""
    names = set()
    rows = [line for line in block.splitlines() if line.startswith("|")][2:]  # past header and rule
    for row in rows:
        first = re.split(r"(?<!\\)\|", row)[1]
        found = re.findall(r"`([^`]+)`", first)
        assert found, f"a catalogue row without an event name: {row}"
        names.update(found)
    return names


def registered_client_events() -> set[str]:
    result = subprocess.run([sys.executable, "-c", ROUTES], cwd=ROOT, capture_output=True, text=True, timeout=120,
                            env={"PATH": "/usr/bin:/bin", **BASE_ENV, "REDIS_URL": ""})
    assert result.returncode == 0, result.stderr
    return set(json.loads(result.stdout.strip().splitlines()[-1]))


def python_files():
    for top in SOURCES:
        for path in sorted((ROOT / top).rglob("*.py")):
            if "migrations" not in path.parts and "node_modules" not in path.parts:
                yield path


def emitted_events() -> tuple[set[str], set[str]]:
    """(names passed literally to an emit call, other event-shaped literals).

    Emit calls: `socket.emit(EVENT, ...)`/`request.emit(EVENT, ...)`, `encode_event(EVENT, ...)`
    and `emit(ROOM, EVENT, ...)`/`emit_sync(ROOM, EVENT, ...)`. Domain services build their
    events as data (`(room, "market:trade", {...})`) for tasks to emit, so every other literal
    shaped like an event name counts as emitted too.
    """
    by_call, literals = set(), set()
    for path in python_files():
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                func = node.func
                name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
                index = {"encode_event": 0, "emit_sync": 1}.get(name)
                if name == "emit":
                    index = 0 if isinstance(func, ast.Attribute) else 1
                if index is not None and len(node.args) > index:
                    arg = node.args[index]
                    if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                        by_call.add(arg.value)
            elif isinstance(node, ast.Constant) and isinstance(node.value, str) and EVENT_LITERAL.fullmatch(node.value):
                literals.add(node.value)
    return by_call, literals - LITERAL_ROOMS


def test_the_catalogue_lists_every_event_the_server_accepts_and_no_other():
    documented, _ = catalogue_tables()
    registered = registered_client_events()
    assert registered - documented == set(), "client events the server accepts but README's catalogue does not list"
    assert not PENDING_CLIENT_EVENTS & registered, \
        f"now in the code: remove {sorted(PENDING_CLIENT_EVENTS & registered)} from PENDING_CLIENT_EVENTS"
    assert documented - registered - PENDING_CLIENT_EVENTS == set(), "catalogue rows for client events the server does not accept"


def test_the_catalogue_lists_every_event_the_server_emits_and_no_other():
    client_documented, documented = catalogue_tables()
    by_call, literals = emitted_events()
    # A literal naming a client event (e.g. in an error message) is not an emit, unless an emit call names it.
    emitted = by_call | (literals - registered_client_events())
    assert emitted - documented == set(), "events the code emits but README's catalogue does not list"
    assert not PENDING_SERVER_EVENTS & emitted, \
        f"now in the code: remove {sorted(PENDING_SERVER_EVENTS & emitted)} from PENDING_SERVER_EVENTS"
    assert documented - emitted - PENDING_SERVER_EVENTS == set(), "catalogue rows for events the code never emits"


def test_the_scan_sees_the_known_emitters():
    """The scanner itself: each way the code emits is found (so an empty scan cannot pass)."""
    by_call, literals = emitted_events()
    assert {"connected", "pong", "error", "ping", "subscribed", "transaction:status", "market:snapshot"} <= by_call
    assert {"market:trade", "transaction:pending", "system:notification"} <= literals
    assert "system:notifications" not in literals
