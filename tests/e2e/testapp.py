"""The product's ASGI application plus two test-only fixtures (and one knob), for the end-to-end tests.

- POST /__test__/emit {room or rooms, event, data}: calls the real emit API inside the server process,
  so a test can emit "from outside the connection" on the in-memory layer too.
- namespace /echo: acks every event with its arguments and emits them back, for binary and
  custom-namespace round trips through the product's own server.
"""

import json
import os

import realtime.namespace
from galaxy.asgi import application as product_application
from galaxy.asgi import engine
from realtime.emit import emit
from realtime.server import Namespace


class EchoNamespace(Namespace):
    async def on_event(self, socket, event, args, ack):
        if ack is not None:
            await ack(*args)
        await socket.emit(event, *args)


engine.handler.namespaces["/echo"] = EchoNamespace()
# A test that waits for a room re-check to give up (a store away for good) waits seconds, not a minute.
realtime.namespace.RECHECK_GIVE_UP_SECONDS = float(os.environ.get("E2E_RECHECK_GIVE_UP_SECONDS", realtime.namespace.RECHECK_GIVE_UP_SECONDS))


async def application(scope, receive, send):
    if scope["type"] == "http" and scope["path"] == "/__test__/emit":
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        request = json.loads(body)
        await emit(request.get("rooms") or request["room"], request["event"], request["data"])
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"ok"})
        return
    await product_application(scope, receive, send)
