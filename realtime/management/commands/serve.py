"""`manage.py serve`: run daphne on WEBSOCKET_HOST:WEBSOCKET_PORT (settings), serving galaxy.asgi."""

from daphne.cli import CommandLineInterface
from daphne.server import Server
from django.conf import settings
from django.core.management.base import BaseCommand
from django.utils.module_loading import import_string


def start_process() -> None:
    """Start the process's own work (realtime.lifecycle: the in-process watcher, feed, engine and
    sweeps) as the reactor starts. daphne sends no ASGI lifespan events, so otherwise it began
    with the first request: a restarted embedded server nobody had reached yet followed no
    wallet, evaluated no automation and took back none of the runs its predecessor left."""
    lifecycle = getattr(import_string(settings.ASGI_APPLICATION), "lifecycle", None)
    if lifecycle is not None:
        lifecycle.start()


class StartingServer(Server):
    def run(self):
        from twisted.internet import reactor  # daphne's asyncio reactor, installed by daphne.server

        reactor.callWhenRunning(start_process)  # in the running event loop, as a request would be
        super().run()


class Command(BaseCommand):
    help = "Serve the Galaxy WebSocket API with daphne on WEBSOCKET_HOST:WEBSOCKET_PORT."

    def handle(self, **options):
        self.stdout.write(f"Galaxy WebSocket API on http://{settings.WEBSOCKET_HOST}:{settings.WEBSOCKET_PORT} (socket.io at /socket.io/)")
        cli = CommandLineInterface()
        cli.server_class = StartingServer
        cli.run(["-b", settings.WEBSOCKET_HOST, "-p", str(settings.WEBSOCKET_PORT), settings.ASGI_APPLICATION.replace(".application", ":application")])
