"""The market app's client errors: realtime error classes, so the namespace renders them."""

from realtime.api import NotFound, RealtimeError


class PairNotFound(NotFound):
    """No pair of that name exists on this server's network."""


class PairUnavailable(RealtimeError):
    """The pair exists but is disabled or not configured (an operator has to act)."""

    code = "pair_unavailable"
    default_message = "This pair is not available"


class MarketDataUnavailable(RealtimeError):
    """Horizon could not be reached for a snapshot the server did not have yet."""

    code = "market_data_unavailable"
    default_message = "Market data is not available right now; try again shortly"
