"""The transaction:* event handlers."""

from realtime.api import EventConsumer, EventRequest, now_ms, validate

from .serializers import WalletSerializer


class TransactionConsumer(EventConsumer):
    prefix = "transaction"
    events = {"subscribe": "subscribe", "unsubscribe": "unsubscribe"}

    async def subscribe(self, request: EventRequest) -> dict:
        room = f"wallet:{validate(WalletSerializer, request.data)['walletId']}"
        await request.join(room)  # a private room: the room-access policy decides
        reply = {"room": room, "timestamp": now_ms()}
        await request.emit("subscribed", reply)
        return reply

    async def unsubscribe(self, request: EventRequest) -> dict:
        room = f"wallet:{validate(WalletSerializer, request.data)['walletId']}"
        await request.leave(room)
        reply = {"room": room, "timestamp": now_ms()}
        await request.emit("unsubscribed", reply)
        return reply
