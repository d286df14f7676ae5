"""The transaction:* event handlers: validate, authorise through the one room policy, call a service, reply.

As every handler: the payload is validated first (invalid_payload), then the user (auth_required).
"""

from realtime.api import AuthRequired, EventConsumer, EventRequest, now_ms, validate

from . import services, tasks
from .serializers import HistorySerializer, StatusSerializer, WalletSerializer


def signed_in(request: EventRequest):
    if request.user is None:
        raise AuthRequired("transaction events need an authenticated socket: authenticate first")
    return request.user


class TransactionConsumer(EventConsumer):
    prefix = "transaction"
    events = {"subscribe": "subscribe", "unsubscribe": "unsubscribe", "get_status": "get_status", "get_history": "get_history"}

    async def subscribe(self, request: EventRequest) -> dict:
        tasks.ensure_watcher_running()
        room = f"wallet:{validate(WalletSerializer, request.data)['walletId']}"
        await request.join(room)  # a private room: the room-access policy decides (anonymous: auth_required)
        reply = {"room": room, "timestamp": now_ms()}
        await request.emit("subscribed", reply)
        return reply

    async def unsubscribe(self, request: EventRequest) -> dict:
        room = f"wallet:{validate(WalletSerializer, request.data)['walletId']}"
        signed_in(request)
        await request.leave(room)  # leaving needs no ownership: a wallet that changed hands can be left
        reply = {"room": room, "timestamp": now_ms()}
        await request.emit("unsubscribed", reply)
        return reply

    async def get_status(self, request: EventRequest) -> dict:
        tasks.ensure_watcher_running()
        tx_hash = validate(StatusSerializer, request.data)["hash"]
        status = await services.transaction_astatus(user_id=signed_in(request).user_id, tx_hash=tx_hash)
        await request.emit("transaction:status", status)
        return status

    async def get_history(self, request: EventRequest) -> dict:
        tasks.ensure_watcher_running()
        query = validate(HistorySerializer, request.data)
        signed_in(request)
        await request.authorize(f"wallet:{query['walletId']}")  # owner (or admin) only
        history = await services.wallet_ahistory(wallet_id=query["walletId"], limit=query["limit"])
        await request.emit("transaction:history", history)
        return history
