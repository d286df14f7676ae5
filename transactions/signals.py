"""Keep realtime's `wallet:{id}` rooms true to who owns each wallet; and the signal other apps
hear a tracked transaction settle by."""

from django.dispatch import Signal

from realtime.api import follow_room_owners

from .models import Wallet

# Sent after commit when a tracked transaction leaves `pending` (confirmed, failed on the
# ledger, or timed out): argument `tracked`, the TrackedTransaction row as saved.
transaction_settled = Signal()

follow_room_owners(Wallet, "wallet")
