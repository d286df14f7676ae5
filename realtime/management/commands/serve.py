"""`manage.py serve`: run daphne on WEBSOCKET_HOST:WEBSOCKET_PORT (settings), serving galaxy.asgi."""

from daphne.cli import CommandLineInterface
from django.conf import settings
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Serve the Galaxy WebSocket API with daphne on WEBSOCKET_HOST:WEBSOCKET_PORT."

    def handle(self, **options):
        self.stdout.write(f"Galaxy WebSocket API on http://{settings.WEBSOCKET_HOST}:{settings.WEBSOCKET_PORT} (socket.io at /socket.io/)")
        CommandLineInterface().run(
            ["-b", settings.WEBSOCKET_HOST, "-p", str(settings.WEBSOCKET_PORT), settings.ASGI_APPLICATION.replace(".application", ":application")]
        )
