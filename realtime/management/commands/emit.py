"""`manage.py emit ROOM EVENT JSON`: send one event to a room through the emit API.

For operators (a `system:notifications` message) and for checking a deployment end to end: it
runs in its own process, as a Celery worker does, so it only reaches the server processes
through a shared channel layer (REDIS_URL).
"""

import json

from django.core.management.base import BaseCommand, CommandError

from realtime.emit import emit_sync
from realtime.errors import RealtimeError


class Command(BaseCommand):
    help = "Emit EVENT with JSON data to ROOM through the channel layer."

    def add_arguments(self, parser):
        parser.add_argument("room")
        parser.add_argument("event")
        parser.add_argument("data", help="the event's data as JSON")

    def handle(self, room, event, data, **options):
        try:
            payload = json.loads(data)
        except json.JSONDecodeError as exc:
            raise CommandError(f"data is not JSON: {exc}") from exc
        try:
            emit_sync(room, event, payload)
        except RealtimeError as exc:
            raise CommandError(exc.message) from exc
        self.stdout.write(f"emitted {event} to {room}")
