"""The Socket.IO server on Channels; it knows nothing of markets, wallets or automations."""
