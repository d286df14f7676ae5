"""A TCP proxy on loopback that a test can cut, to drop a client's network on purpose."""

from __future__ import annotations

import asyncio


class TcpProxy:
    """Forwards each new connection to the next of `target_ports` in turn (round robin)."""

    def __init__(self, *target_ports: int) -> None:
        self.target_ports = list(target_ports)
        self._next = 0
        self.port = 0
        self.refusing = False
        self.delay = 0.0  # seconds each chunk waits before it is passed on (a slow network)
        self._cut_on: tuple[bytes, int] | None = None  # (what, how many more) until a connection drops
        self._cut_all_on_cut = False  # cut_on's `everything`
        self._lose_reply_to: bytes | None = None
        self._cut_all_on_lost_reply = False  # lose_reply_to's `everything`
        self.replies_lost = 0  # answers lose_reply_to kept from their client
        self._pairs: set[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = set()
        self._server: asyncio.base_events.Server | None = None

    async def start(self) -> TcpProxy:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def upstream_addresses(self) -> set[str]:
        """"host:port" of each open connection's end at the target: how the target (Redis' CLIENT
        LIST, say) names the clients that came through here."""
        return {"%s:%d" % upstream.get_extra_info("sockname")[:2] for _, upstream in self._pairs}

    def cut(self) -> None:
        """Drop every connection now and refuse new ones until `restore`."""
        self.refusing = True
        for client, upstream in list(self._pairs):
            client.transport.abort()
            upstream.transport.abort()
        self._pairs.clear()

    def cut_on(self, what: bytes, nth: int = 1, *, everything: bool = False) -> None:
        """Drop the connection that sends `what` to the target the `nth` time from now, before
        it arrives (Redis going away at that instant); other connections carry on. With
        `everything`, that instant is a `cut`: every connection drops, new ones are refused
        until `restore` (Redis restarting)."""
        self._cut_on, self._cut_all_on_cut = (what, nth), everything

    def lose_reply_to(self, what: bytes, *, everything: bool = False) -> None:
        """The next connection that sends `what` has it done by the target and never hears back:
        it drops when the answer comes (the network gone between a command and its reply). With
        `everything`, that instant is a `cut` (Redis restarting just after it did the command)."""
        self._lose_reply_to, self._cut_all_on_lost_reply = what, everything

    def restore(self) -> None:
        self.refusing = False

    def route_to(self, *target_ports: int) -> None:
        """New connections go to these ports from now on; existing ones stay where they are."""
        self.target_ports, self._next = list(target_ports), 0

    async def stop(self) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.refusing:
            writer.transport.abort()
            return
        port = self.target_ports[self._next % len(self.target_ports)]
        self._next += 1
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", port)
        pair = (writer, up_writer)
        self._pairs.add(pair)
        muted: list[bool] = [False]  # this connection's next answer is lost (lose_reply_to)
        await asyncio.gather(self._pipe(reader, up_writer, upstream=True, muted=muted), self._pipe(up_reader, writer, muted=muted),
                             return_exceptions=True)
        self._pairs.discard(pair)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, upstream: bool = False,
                    muted: list[bool] | None = None) -> None:
        try:
            while data := await reader.read(65536):
                if upstream and self._lose_reply_to is not None and self._lose_reply_to in data:
                    self._lose_reply_to, muted[0] = None, True
                elif not upstream and muted and muted[0]:
                    self.replies_lost += 1
                    if self._cut_all_on_lost_reply:
                        self.cut()
                    return  # the answer: not passed on; the finally drops the client's connection
                if upstream and self._cut_on is not None and self._cut_on[0] in data:
                    what, nth = self._cut_on
                    self._cut_on = (what, nth - data.count(what)) if nth > data.count(what) else None
                    if self._cut_on is None:
                        if self._cut_all_on_cut:
                            self.cut()
                        return  # the finally drops this connection; its reader's pipe ends too
                if self.delay:
                    await asyncio.sleep(self.delay)
                writer.write(data)
                await writer.drain()
        finally:
            writer.transport.abort()
