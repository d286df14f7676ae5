"""The transactions app's client errors: realtime error classes, rendered for sockets and REST alike."""

from realtime.api import NotFound, RealtimeError


class WalletNotFound(NotFound):
    """No wallet of that id is the caller's (absent and foreign look the same: no probing)."""

    default_message = "No such wallet"


class TransactionNotFound(NotFound):
    """No transaction of that hash involves one of the caller's wallets."""

    default_message = "No such transaction"


class InvalidEnvelope(RealtimeError):
    """The signed envelope is unreadable, not the wallet's, not signed by it, or for another network."""

    code = "invalid_envelope"
    default_message = "The transaction envelope is not acceptable"


class SubmissionRejected(RealtimeError):
    """Horizon refused the transaction; `details` carries its result code."""

    code = "submission_rejected"
    default_message = "Horizon refused the transaction"


class HorizonUnavailable(RealtimeError):
    code = "horizon_unavailable"
    default_message = "Horizon cannot be reached right now; try again shortly"
