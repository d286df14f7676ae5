"""Wallets, tracked transactions, the Horizon watcher, and the transaction:* events."""
