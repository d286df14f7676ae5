"""Keep realtime's `automation:{id}` rooms true to who owns each automation."""

from realtime.api import follow_room_owners

from .models import Automation

follow_room_owners(Automation, "automation")
