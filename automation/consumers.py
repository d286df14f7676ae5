"""The automation:* event handlers."""

from realtime.api import EventConsumer, EventRequest, validate

from .serializers import AutomationIdsSerializer


class AutomationConsumer(EventConsumer):
    prefix = "automation"
    events = {"subscribe": "subscribe", "unsubscribe": "unsubscribe"}

    async def subscribe(self, request: EventRequest) -> dict:
        ids = validate(AutomationIdsSerializer, request.data)["automationIds"]
        for automation_id in ids:
            await request.join(f"automation:{automation_id}")  # private: the policy decides
        return {"automationIds": ids}

    async def unsubscribe(self, request: EventRequest) -> dict:
        ids = validate(AutomationIdsSerializer, request.data)["automationIds"]
        for automation_id in ids:
            await request.leave(f"automation:{automation_id}")
        return {"automationIds": ids}
