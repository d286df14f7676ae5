"""notification_send: record an operator's message, then emit it to `system:notifications`."""

from __future__ import annotations

import logging

from realtime.emit import EmitFailed, emit_sync

from .models import SystemNotification

ROOM = "system:notifications"
EVENT = "system:notification"
logger = logging.getLogger(__name__)
# A view or admin request waits this long for a passing channel-layer fault before it reports
# failure: long enough for a Redis failover blip, short enough for an operator's browser.
EMIT_RETRY_SECONDS = 3.0


def notification_payload(notification: SystemNotification) -> dict:
    return {
        "id": str(notification.id),
        "level": notification.level,
        "title": notification.title or None,
        "message": notification.message,
        "timestamp": notification.timestamp_ms,
    }


def notification_send(*, message: str, level: str, title: str = "", sender: str, via: str) -> SystemNotification:
    """Saved first (the log records attempts too), then emitted. The row's `delivered` says
    whether it reached the channel layer; the caller tells its operator when it did not."""
    notification = SystemNotification.objects.create(message=message, level=level, title=title or "", sender=sender, via=via)
    try:
        emit_sync(ROOM, EVENT, notification_payload(notification), retry_for=EMIT_RETRY_SECONDS)
    except EmitFailed:
        logger.exception("system notification %s not emitted", notification.id)
        return notification
    notification.delivered = True
    notification.save(update_fields=["delivered"])
    return notification
