"""Reads of the transactions app: wallets by owner, tracked transactions, what the watcher follows."""

from __future__ import annotations

import time

from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import ValidationError

from market.selectors import sharers_stretch

from .errors import WalletNotFound
from .models import TrackedTransaction, Wallet


def wallet_owner(wallet_id: str) -> str | None:
    """The Supabase user id owning `wallet_id`, or None (named in REALTIME_ROOM_OWNERS)."""
    try:
        return Wallet.objects.filter(pk=wallet_id).values_list("owner_id", flat=True).first()
    except (ValidationError, ValueError):  # not a UUID: no such wallet
        return None


def wallet_of(*, wallet_id: str, user_id: str | None = None) -> Wallet:
    """The wallet (the caller's, when `user_id` is given), else WalletNotFound."""
    try:
        query = Wallet.objects.filter(pk=wallet_id)
        if user_id is not None:
            query = query.filter(owner_id=user_id)
        wallet = query.first()
    except (ValidationError, ValueError):
        wallet = None
    if wallet is None:
        raise WalletNotFound(f"no wallet {wallet_id} of yours")
    return wallet


def user_wallets(*, user_id: str) -> list[Wallet]:
    return list(Wallet.objects.filter(owner_id=user_id))


def tracked_of_user(*, user_id: str, tx_hash: str) -> TrackedTransaction | None:
    """The caller's row of `tx_hash`: one of a wallet the caller owns now (a moved wallet's
    transactions went with it)."""
    return (TrackedTransaction.objects.filter(hash=tx_hash, wallet__owner_id=user_id).select_related("wallet")
            .order_by("-updated_at").first())


def wallet_history(*, wallet: Wallet, limit: int) -> list[TrackedTransaction]:
    return list(TrackedTransaction.objects.filter(wallet=wallet).select_related("wallet").order_by("-created_at")[:limit])


def pending_hashes() -> list[str]:
    return list(TrackedTransaction.objects.filter(status=TrackedTransaction.Status.PENDING)
                .values_list("hash", flat=True).distinct())


def horizon_demand() -> float:
    """Horizon requests per hour the watcher asks for at TRANSACTION_POLL_INTERVAL: one per
    pending hash and one per followed wallet each pass (a second page is rare). The market app
    plans Horizon's shared budget with it (HORIZON_BUDGET_SHARERS)."""
    pending = TrackedTransaction.objects.filter(status=TrackedTransaction.Status.PENDING).values("hash").distinct().count()
    wallets = Wallet.objects.filter(status=Wallet.Status.ACTIVE, network=settings.STELLAR_NETWORK).count()
    return (pending + wallets) * 3600.0 / settings.TRANSACTION_POLL_INTERVAL


def watcher_interval() -> float:
    """Seconds between two watcher passes: TRANSACTION_POLL_INTERVAL, longer when that would
    spend more than the watcher's share of Horizon's budget."""
    return settings.TRANSACTION_POLL_INTERVAL * sharers_stretch()


def followed_wallet_ids() -> list[str]:
    """Every active wallet on this server's network.

    Not only those with subscribers: realtime offers domain apps no room-size query, a socket
    also hears its wallets' events through `user:{id}` (joined on authentication, never through
    this app) and a subscription outlives nothing that tells this app it ended. Following an idle
    wallet costs one Horizon request a pass; missing a listener would cost correctness.
    """
    return [str(pk) for pk in Wallet.objects.filter(status=Wallet.Status.ACTIVE, network=settings.STELLAR_NETWORK)
            .values_list("pk", flat=True)]


# Until when (epoch seconds) the watcher asks Horizon nothing, after a 429.
WATCHER_PAUSE_KEY = "transactions:watcher:paused-until"
# When the next beat tick may ask Horizon (the watcher's interval is longer than the tick's).
WATCHER_NEXT_PASS_KEY = "transactions:watcher:next-pass"


def watcher_paused() -> bool:
    return (cache.get(WATCHER_PAUSE_KEY) or 0) > time.time()
