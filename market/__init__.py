"""Market data: pairs, the Horizon market feed, and the market:* events."""
