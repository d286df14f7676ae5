"""The automation:* event handlers: validate, find the caller's automation, call a service, reply.

subscribe and unsubscribe say `subscribed` / `unsubscribed` {room, timestamp} per room, as every
other subscription does (the seed's events); enable, disable and get_status answer through the ack and with `automation:status` to the socket;
list with `automation:list`. The same serializers and ownership rules as REST: another user's
automation is not_found, as an absent one (the `admin` permission sees all).
"""

from channels.db import database_sync_to_async

from realtime.api import AuthRequired, EventConsumer, EventRequest, RealtimeError, now_ms, validate

from . import selectors, services
from .serializers import (SOCKET_LIST_LIMIT, AutomationIdSerializer, AutomationIdsSerializer,
                          AutomationListRequestSerializer, AutomationSerializer)


def signed_in(request: EventRequest):
    if request.user is None:
        raise AuthRequired("automation events need an authenticated socket: authenticate first")
    return request.user


@database_sync_to_async
def find(*, automation_id: str, user) -> object:
    return selectors.automation_of(automation_id=automation_id, user_id=user.user_id, is_admin=user.is_admin)


@database_sync_to_async
def status_of(automation) -> dict:
    return services.status_of(automation)


@database_sync_to_async
def listing(*, user, wallet_id: str | None) -> dict:
    """The caller's automations (of one of their wallets, if given), newest first, capped."""
    query = selectors.automations_listed(user_id=user.user_id, is_admin=user.is_admin, wallet_id=wallet_id)
    return {"automations": AutomationSerializer(query[:SOCKET_LIST_LIMIT], many=True).data,
            "count": query.count(), "walletId": wallet_id}


class AutomationConsumer(EventConsumer):
    prefix = "automation"
    events = {"subscribe": "subscribe", "unsubscribe": "unsubscribe", "enable": "enable", "disable": "disable",
              "get_status": "get_status", "list": "list"}

    async def subscribe(self, request: EventRequest) -> dict:
        """Each id on its own: the owner's are joined, the others listed as rejected (with
        why); if none is accepted, the whole request fails with the first reason."""
        ids = validate(AutomationIdsSerializer, request.data)["automationIds"]
        accepted, rejected, first_error = [], [], None
        for automation_id in ids:
            room = f"automation:{automation_id}"
            try:
                await request.join(room)  # private: the policy decides
            except RealtimeError as exc:
                first_error = first_error or exc
                rejected.append({"automationId": automation_id, **exc.body()})
            else:
                accepted.append(automation_id)
                await request.emit("subscribed", {"room": room, "timestamp": now_ms()})
        if not accepted:
            raise first_error
        return {"automationIds": accepted, "rejected": rejected}

    async def unsubscribe(self, request: EventRequest) -> dict:
        ids = validate(AutomationIdsSerializer, request.data)["automationIds"]
        for automation_id in ids:
            room = f"automation:{automation_id}"
            await request.leave(room)
            await request.emit("unsubscribed", {"room": room, "timestamp": now_ms()})
        return {"automationIds": ids}

    async def enable(self, request: EventRequest) -> dict:
        automation = await self.owned(request)
        return await self.reply_status(request, await services.automation_aenable(automation=automation))

    async def disable(self, request: EventRequest) -> dict:
        automation = await self.owned(request)
        return await self.reply_status(request, await services.automation_adisable(automation=automation))

    async def get_status(self, request: EventRequest) -> dict:
        return await self.reply_status(request, await self.owned(request))

    async def list(self, request: EventRequest) -> dict:
        wallet_id = validate(AutomationListRequestSerializer, request.data).get("walletId")
        reply = await listing(user=signed_in(request), wallet_id=wallet_id)
        await request.emit("automation:list", reply)
        return reply

    async def owned(self, request: EventRequest):
        """The automation named by {automationId} if the caller may see it (payload checked first)."""
        automation_id = validate(AutomationIdSerializer, request.data)["automationId"]
        return await find(automation_id=automation_id, user=signed_in(request))

    async def reply_status(self, request: EventRequest, automation) -> dict:
        status = await status_of(automation)
        await request.emit("automation:status", status)
        return status
