"""The automation app's client errors: realtime error classes, rendered for sockets and REST alike."""

from realtime.api import NotFound


class AutomationNotFound(NotFound):
    """No automation of that id is the caller's (absent and foreign look the same: no probing)."""

    default_message = "No such automation"
