"""The automation:* event handlers."""

from realtime.api import EventConsumer, EventRequest, RealtimeError, validate

from .serializers import AutomationIdsSerializer


class AutomationConsumer(EventConsumer):
    prefix = "automation"
    events = {"subscribe": "subscribe", "unsubscribe": "unsubscribe"}

    async def subscribe(self, request: EventRequest) -> dict:
        """Each id on its own: the owner's are joined, the others listed as rejected (with
        why); if none is accepted, the whole request fails with the first reason."""
        ids = validate(AutomationIdsSerializer, request.data)["automationIds"]
        accepted, rejected, first_error = [], [], None
        for automation_id in ids:
            try:
                await request.join(f"automation:{automation_id}")  # private: the policy decides
            except RealtimeError as exc:
                first_error = first_error or exc
                rejected.append({"automationId": automation_id, **exc.body()})
            else:
                accepted.append(automation_id)
        if not accepted:
            raise first_error
        return {"automationIds": accepted, "rejected": rejected}

    async def unsubscribe(self, request: EventRequest) -> dict:
        ids = validate(AutomationIdsSerializer, request.data)["automationIds"]
        for automation_id in ids:
            await request.leave(f"automation:{automation_id}")
        return {"automationIds": ids}
