"""The server process's start and graceful stop, for daphne and for uvicorn alike.

On SIGTERM (or ASGI lifespan shutdown) a node stops taking new sessions, saves every socket for
connection state recovery, and closes their transports so clients reconnect at once, landing
on another node behind the load balancer and recovering there; then the process exits.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal

from asgiref.sync import markcoroutinefunction

logger = logging.getLogger(__name__)

# Saving state is one Redis write per socket and closing is one frame: 10,000 sockets take
# well under this. Orchestrators commonly allow 30 s between SIGTERM and SIGKILL.
SHUTDOWN_GRACE_SECONDS = 10


class Lifecycle:
    def __init__(self, engine, on_start=(), on_stop=(), cleanups=(), cleanup_interval: float = 300.0) -> None:
        self.engine = engine
        self.on_start = list(on_start)
        self.on_stop = list(on_stop)  # coroutine functions, run once the sessions are closed
        self.cleanups = list(cleanups)  # callables returning how many things they removed
        self.cleanup_interval = cleanup_interval  # ROOM_CLEANUP_INTERVAL
        self.started = False
        self.draining = False

    def start(self) -> None:
        """Once per process: at ASGI lifespan startup (uvicorn), as `manage.py serve` starts
        daphne (which has no lifespan events), or else at its first request."""
        if self.started:
            return
        self.started = True
        for hook in self.on_start:
            hook()
        if self.cleanups:
            asyncio.ensure_future(self._sweep_forever())
        try:
            asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, self._sigterm)
        except (NotImplementedError, RuntimeError):  # not the main thread, or no signals here
            logger.warning("no SIGTERM handler: graceful shutdown unavailable")

    async def _sweep_forever(self) -> None:
        """Every ROOM_CLEANUP_INTERVAL: expired sessions, idle limit keys (rooms clean up as
        their last socket leaves)."""
        while not self.draining:
            await asyncio.sleep(self.cleanup_interval)
            for cleanup in self.cleanups:
                try:
                    removed = cleanup()
                except Exception:
                    logger.exception("cleanup %r failed", cleanup)
                    continue
                if removed:
                    logger.info("cleanup %s removed %d", getattr(cleanup, "__qualname__", cleanup), removed)

    def _sigterm(self) -> None:
        asyncio.ensure_future(self._stop_process())

    async def _stop_process(self) -> None:
        await self.drain()
        # Hand over to the server's own shutdown (daphne's Twisted handler, or the default).
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        asyncio.get_running_loop().remove_signal_handler(signal.SIGTERM)
        # A process that inherited an ignored SIGINT (a background job of a script) has no
        # SIGINT handler of daphne's and would stay up, answering 503: it ends as SIGTERM's
        # default ends it, its sessions already saved and closed.
        sigint_ignored = signal.getsignal(signal.SIGINT) is signal.SIG_IGN
        os.kill(os.getpid(), signal.SIGTERM if sigint_ignored else signal.SIGINT)

    async def drain(self) -> None:
        """Refuse new sessions, save and close every open one, within the grace period."""
        if self.draining:
            return
        self.draining = True
        sessions = list(self.engine.sessions.values())
        logger.info("shutting down: closing %d sessions for recovery elsewhere", len(sessions))
        closing = [session.close("server shutting down", reconnect=True) for session in sessions]
        try:
            await asyncio.wait_for(asyncio.gather(*closing, return_exceptions=True), SHUTDOWN_GRACE_SECONDS)
        except asyncio.TimeoutError:
            logger.warning("shutdown grace period over with sessions still closing")
        for hook in self.on_stop:
            try:
                await hook()
            except Exception:
                logger.exception("stop hook %r failed", hook)
        await asyncio.sleep(0.2)  # let the close frames leave before the process does


class LifecycleMiddleware:
    """ASGI wrapper: starts the process on its first request, answers lifespan events, and
    refuses new work while draining (HTTP 503, WebSocket closed) so balancers move on."""

    def __init__(self, app, lifecycle: Lifecycle) -> None:
        self.app = app
        self.lifecycle = lifecycle

    @markcoroutinefunction  # an ASGI app to servers, though it returns the coroutine to await
    def __call__(self, scope, receive, send):
        # It hands back the app's coroutine rather than awaiting it: a WebSocket's ASGI call
        # lasts as long as its connection, and would hold a frame of this wrapper as long.
        if scope["type"] == "lifespan":
            return self._lifespan(receive, send)
        self.lifecycle.start()
        if self.lifecycle.draining:
            return self._refuse(scope, send)
        return self.app(scope, receive, send)

    @staticmethod
    async def _refuse(scope, send) -> None:
        if scope["type"] == "websocket":
            return await send({"type": "websocket.close", "code": 1012})  # service restart
        await send({"type": "http.response.start", "status": 503, "headers": [(b"content-type", b"application/json"), (b"retry-after", b"1")]})
        await send({"type": "http.response.body", "body": b'{"status":"shutting down"}'})

    async def _lifespan(self, receive, send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self.lifecycle.start()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.lifecycle.drain()
                await send({"type": "lifespan.shutdown.complete"})
                return
