"""Tracked transactions: register, submit, settle from Horizon, follow wallets, and what is owed to clients.

Every state change is a database write; the events clients get are derived from the rows
(`announced` trails `status`), claimed atomically by whoever emits them, so a crash or a restart
between a change and its emit neither repeats nor loses the event. Horizon calls are async
(transactions.horizon); the sync entry points wrap them with async_to_sync for Celery and views.
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from decimal import Decimal

from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from django.conf import settings
from django.core.cache import cache
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone as dj_timezone
from stellar_sdk import FeeBumpTransactionEnvelope, Keypair, TransactionEnvelope
from stellar_sdk.exceptions import BadSignatureError

from market.services import RATE_LIMIT_DEFAULT_PAUSE

from . import horizon, selectors
from .errors import HorizonUnavailable as HorizonUnavailableError
from .errors import InvalidEnvelope, SubmissionRejected, TransactionNotFound
from .horizon import PASSPHRASES, HorizonUnavailable
from .models import TrackedTransaction, Wallet
from .signals import transaction_settled

logger = logging.getLogger(__name__)

Status = TrackedTransaction.Status
# rooms, event name, payload
Event = tuple[list[str], str, dict]
TIMEOUT_CODE = "tx_timeout"
# A transaction whose time bounds have passed may still sit in the ledger that closed at that
# moment; a ledger and a half (Horizon ingests ~5 s after close) is allowed before calling it.
TIME_BOUNDS_GRACE_SECONDS = 8
# Pages of an account's history one follow pass reads (200 each); more waits for the next pass.
FOLLOW_PAGES = 5


# A follow of one wallet holds its lock at most this long: one request per page, each bounded.
def follow_lock_seconds() -> float:
    return FOLLOW_PAGES * settings.HORIZON_REQUEST_TIMEOUT + 5


def ms(moment: datetime | None) -> int | None:
    return None if moment is None else int(moment.timestamp() * 1000)


def parse_time(value: str | None) -> datetime:
    if not value:
        return dj_timezone.now()
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def asset_name(asset) -> str:
    return "XLM" if asset is None or asset.is_native() else f"{asset.code}:{asset.issuer}"


def amount_number(value: Decimal) -> float:
    return float(round(Decimal(value), 7))


# -- payloads (the seed's fields, numbers as numbers, times in epoch ms) -----------------------
# A transaction is its wallet's owner's *now* (tx.wallet: load it with the row, select_related):
# after a move, its events, its userId and its status are the new owner's, as the wallet's room is.

def rooms_of(tx: TrackedTransaction) -> list[str]:
    return [f"wallet:{tx.wallet_id}", f"user:{tx.wallet.owner_id}"]


def event_of(tx: TrackedTransaction) -> tuple[str, dict]:
    base = {"hash": tx.hash, "userId": tx.wallet.owner_id, "walletId": str(tx.wallet_id)}
    if tx.status == Status.CONFIRMED:
        data = {**base, "confirmedAt": ms(tx.confirmed_at)}
        if tx.ledger is not None:
            data["blockNumber"] = tx.ledger
        return "transaction:confirmed", data
    if tx.status == Status.FAILED:
        return "transaction:failed", {**base, "error": tx.error, "errorCode": tx.error_code, "failedAt": ms(tx.failed_at)}
    return "transaction:pending", {**base, "fromAddress": tx.from_address, "toAddress": tx.to_address,
                                   "amount": amount_number(tx.amount), "asset": tx.asset, "network": tx.network}


def status_of(tx: TrackedTransaction) -> dict:
    """A transaction as `transaction:status` and history entries show it."""
    data = {
        "hash": tx.hash, "userId": tx.wallet.owner_id, "walletId": str(tx.wallet_id), "status": tx.status,
        "fromAddress": tx.from_address, "toAddress": tx.to_address, "amount": amount_number(tx.amount),
        "asset": tx.asset, "network": tx.network, "createdAt": ms(tx.created_at), "source": "server",
    }
    if tx.ledger is not None:
        data["blockNumber"] = tx.ledger
    if tx.status == Status.CONFIRMED:
        data["confirmedAt"] = ms(tx.confirmed_at)
    if tx.status == Status.FAILED:
        data.update(error=tx.error, errorCode=tx.error_code, failedAt=ms(tx.failed_at))
    return data


# -- envelopes ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Movement:
    """Who pays whom what in a transaction (its first payment-like operation)."""

    from_address: str
    to_address: str
    amount: Decimal
    asset: str


def movement_of(envelope) -> Movement:
    tx = envelope.transaction.inner_transaction_envelope.transaction if isinstance(envelope, FeeBumpTransactionEnvelope) else envelope.transaction
    source = tx.source.account_id
    for op in tx.operations:
        destination = getattr(op, "destination", None)
        amount = getattr(op, "amount", None) or getattr(op, "starting_balance", None) or getattr(op, "dest_amount", None)
        if destination is not None and amount is not None:
            asset = getattr(op, "asset", None) or getattr(op, "dest_asset", None)
            return Movement(op.source.account_id if op.source else source, getattr(destination, "account_id", str(destination)),
                            Decimal(str(amount)), asset_name(asset))
    return Movement(source, "", Decimal(0), "XLM")


def decode_envelope(envelope_xdr: str, network: str):
    try:
        try:
            return TransactionEnvelope.from_xdr(envelope_xdr, PASSPHRASES[network])
        except Exception:
            return FeeBumpTransactionEnvelope.from_xdr(envelope_xdr, PASSPHRASES[network])
    except Exception:
        raise InvalidEnvelope("not a transaction envelope (base64 XDR)") from None


def signed_by(envelope, public_key: str) -> bool:
    keypair, tx_hash = Keypair.from_public_key(public_key), envelope.hash()
    for signature in envelope.signatures:
        if signature.signature_hint == keypair.signature_hint():
            try:
                keypair.verify(tx_hash, signature.signature)
                return True
            except BadSignatureError:
                continue
    return False


def movement_of_record(record: dict, network: str) -> Movement:
    try:
        return movement_of(TransactionEnvelope.from_xdr(record["envelope_xdr"], PASSPHRASES[network]))
    except Exception:
        return Movement(record.get("source_account", ""), "", Decimal(0), "XLM")


# -- registering and submitting -----------------------------------------------------------------

def deadline_from(now: datetime, max_time: int = 0) -> datetime:
    deadline = now + timedelta(seconds=settings.TRANSACTION_DEADLINE_SECONDS)
    # Only a max_time before the usual deadline moves it: a later one changes nothing, and one
    # of 2**64 - 1 (no bound, in a signed envelope already on its way to Horizon) is no date.
    if max_time and max_time + TIME_BOUNDS_GRACE_SECONDS < deadline.timestamp():
        deadline = datetime.fromtimestamp(max_time + TIME_BOUNDS_GRACE_SECONDS, timezone.utc)
    return deadline


def _track(*, wallet: Wallet, tx_hash: str, movement: Movement, max_time: int = 0) -> TrackedTransaction:
    now = dj_timezone.now()
    try:
        with transaction.atomic():
            tracked, _ = TrackedTransaction.objects.get_or_create(hash=tx_hash, wallet=wallet, defaults={
                "user_id": wallet.owner_id, "from_address": movement.from_address, "to_address": movement.to_address,
                "amount": movement.amount, "asset": movement.asset, "network": wallet.network,
                "expires_at": deadline_from(now, max_time),
            })
    except IntegrityError:  # registered twice at once: the other one won
        tracked = TrackedTransaction.objects.get(hash=tx_hash, wallet=wallet)
    return tracked


def transaction_register(*, user_id: str, wallet_id: str, tx_hash: str, to_address: str = "",
                         amount: Decimal = Decimal(0), asset: str = "XLM") -> TrackedTransaction:
    """Track a hash the caller submitted from its own wallet (idempotent: once per wallet)."""
    wallet = selectors.wallet_of(wallet_id=wallet_id, user_id=user_id)
    return _track(wallet=wallet, tx_hash=tx_hash, movement=Movement(wallet.public_key, to_address, Decimal(amount), asset))


def transaction_submit(*, user_id: str, wallet_id: str, envelope_xdr: str) -> TrackedTransaction:
    """Check a signed envelope is the caller's wallet's, on its network; submit it; track it."""
    wallet = selectors.wallet_of(wallet_id=wallet_id, user_id=user_id)
    if wallet.network != settings.STELLAR_NETWORK:
        raise InvalidEnvelope(f"wallet {wallet_id} is on {wallet.network}; this server submits to {settings.STELLAR_NETWORK}")
    envelope = decode_envelope(envelope_xdr, wallet.network)
    inner = envelope.transaction.inner_transaction_envelope if isinstance(envelope, FeeBumpTransactionEnvelope) else envelope
    if inner.transaction.source.account_id != wallet.public_key:
        raise InvalidEnvelope(f"the transaction's source account is not wallet {wallet_id}'s ({wallet.public_key})")
    if not signed_by(inner, wallet.public_key):
        # The signature covers the network passphrase: another network's transaction fails here too.
        raise InvalidEnvelope(f"the transaction is not signed by wallet {wallet_id}'s key for the {wallet.network} network")
    bounds = inner.transaction.preconditions.time_bounds if inner.transaction.preconditions else None
    max_time = bounds.max_time if bounds else 0
    if max_time and max_time < time.time():
        raise InvalidEnvelope("the transaction's time bounds have already passed")
    try:
        tx_hash = async_to_sync(horizon.submit_async)(envelope_xdr)
    except horizon.SubmissionRejected as exc:
        raise SubmissionRejected(str(exc), details={"errorCode": exc.code}) from exc
    except HorizonUnavailable as exc:
        raise HorizonUnavailableError(str(exc)) from exc
    return _track(wallet=wallet, tx_hash=tx_hash or envelope.hash_hex(), movement=movement_of(envelope), max_time=max_time)


# -- settling from Horizon ----------------------------------------------------------------------

def _settle(tracked: TrackedTransaction, record: dict) -> None:
    """Apply Horizon's transaction resource to a row (confirmed or failed, with its ledger)."""
    at = parse_time(record.get("created_at"))
    tracked.ledger = record.get("ledger")
    tracked.paging_token = str(record.get("paging_token", ""))
    if record.get("successful"):
        tracked.status, tracked.confirmed_at = Status.CONFIRMED, at
        tracked.failed_at, tracked.error_code, tracked.error = None, "", ""  # a timeout's guess, now wrong
    else:
        tx_code, op_codes = horizon.result_codes(record.get("result_xdr", ""))
        tracked.status, tracked.failed_at = Status.FAILED, at
        tracked.error_code = horizon.first_failure(tx_code, op_codes)
        tracked.error = f"transaction failed: {horizon.describe(tx_code, op_codes)}"


def _settled_on_commit(tracked: TrackedTransaction) -> None:
    """Tell listeners (automation) once the settlement is committed; a listener's fault is logged,
    never the watcher's."""

    def send() -> None:
        for receiver, result in transaction_settled.send_robust(sender=TrackedTransaction, tracked=tracked):
            if isinstance(result, Exception):
                logger.error("transaction_settled receiver %r failed for %s: %r", receiver, tracked.hash, result)

    transaction.on_commit(send)


def pending_settle(*, tx_hash: str, record: dict | None, now: datetime | None = None) -> int:
    """Settle the pending rows of `tx_hash` from Horizon's answer (None: in no ledger yet), or
    time them out past their deadline; how many rows changed."""
    now = now or dj_timezone.now()
    changed = 0
    with transaction.atomic():
        for tracked in TrackedTransaction.objects.select_for_update().filter(hash=tx_hash, status=Status.PENDING):
            if record is not None:
                _settle(tracked, record)
            elif tracked.expires_at is not None and tracked.expires_at <= now:
                tracked.status, tracked.failed_at, tracked.error_code = Status.FAILED, now, TIMEOUT_CODE
                tracked.error = "the transaction was not included in a ledger before its deadline"
            else:
                continue
            tracked.save()
            _settled_on_commit(tracked)
            changed += 1
    return changed


async def pending_acheck(*, tx_hash: str) -> int:
    """Ask Horizon about one pending hash and settle it; raises HorizonUnavailable."""
    record = await horizon.fetch_transaction(tx_hash)
    return await database_sync_to_async(pending_settle)(tx_hash=tx_hash, record=record)


def watcher_claim_pass(*, now: float | None = None) -> bool:
    """Whether this beat tick asks Horizon (claimed: the next tick asks only once the watcher's
    interval has passed, so a stretched watcher spends less than its share). Beat ticks every
    TRANSACTION_POLL_INTERVAL; a tenth of a tick of slack keeps an unstretched watcher on
    every tick despite the ticks' jitter."""
    now = time.time() if now is None else now
    if (cache.get(selectors.WATCHER_NEXT_PASS_KEY) or 0) > now:
        return False
    interval = selectors.watcher_interval()
    cache.set(selectors.WATCHER_NEXT_PASS_KEY, now + interval - settings.TRANSACTION_POLL_INTERVAL / 10, int(interval) + 60)
    return True


def watcher_pause(*, exc: HorizonUnavailable) -> float:
    """After Horizon's 429, every watcher (each process, each Celery task) asks it nothing for
    its Retry-After; how many seconds."""
    seconds = exc.retry_after if exc.retry_after is not None else RATE_LIMIT_DEFAULT_PAUSE  # the feed's
    cache.set(selectors.WATCHER_PAUSE_KEY, time.time() + seconds, int(seconds) + 1)
    logger.warning("transactions: Horizon rate-limited the watcher (%s); pausing %.0f s", exc, seconds)
    return seconds


# -- following wallets --------------------------------------------------------------------------

class CursorMoved(Exception):
    """Another process advanced the wallet's cursor meanwhile: this page is theirs to record."""


def wallet_record_page(*, wallet_id: str, since: str, records: list[dict]) -> str:
    """Record a page of the account's transactions (oldest first) and move the cursor past it, in
    one database transaction; the new cursor. New transactions become rows already settled; a
    pending row of ours is settled, and so is one we timed out that reached a ledger after all;
    a row Horizon settled is left (its event went out)."""
    if not records:
        return since
    with transaction.atomic():
        wallet = Wallet.objects.select_for_update().get(pk=wallet_id)
        if wallet.cursor != since:
            raise CursorMoved(wallet_id)
        for record in records:
            tracked = TrackedTransaction.objects.select_for_update().filter(hash=record["hash"], wallet=wallet).first()
            if tracked is None:
                movement = movement_of_record(record, wallet.network)
                tracked = TrackedTransaction(hash=record["hash"], wallet=wallet, user_id=wallet.owner_id, network=wallet.network,
                                             from_address=movement.from_address, to_address=movement.to_address,
                                             amount=movement.amount, asset=movement.asset)
            elif tracked.status != Status.PENDING and not (tracked.error_code == TIMEOUT_CODE and tracked.ledger is None):
                continue  # settled by Horizon, its event out; a timeout was only our guess: corrected
            elif tracked.status == Status.FAILED:
                tracked.announced = ""  # owed again, failed or not: the ledger's verdict replaces our guess
            _settle(tracked, record)
            tracked.save()
            _settled_on_commit(tracked)
        wallet.cursor = str(records[-1]["paging_token"])
        wallet.save(update_fields=["cursor"])
    return wallet.cursor


def _wallet_lock(wallet_id: str) -> str | None:
    token = uuid.uuid4().hex
    return token if cache.add(f"transactions:follow:{wallet_id}", token, follow_lock_seconds()) else None


def _wallet_unlock(wallet_id: str, token: str) -> None:
    if cache.get(f"transactions:follow:{wallet_id}") == token:
        cache.delete(f"transactions:follow:{wallet_id}")


def _wallet_start(wallet_id: str, token: str) -> str:
    """A first look at the account: its latest transaction is where following starts (history
    is not news); "0" for an account with none yet (everything after is)."""
    Wallet.objects.filter(pk=wallet_id, cursor="").update(cursor=token or "0")
    return Wallet.objects.values_list("cursor", flat=True).get(pk=wallet_id)


async def wallet_afollow(*, wallet_id: str) -> int | None:
    """Read the account's new transactions after its cursor; rows recorded, or None when another
    process is following it right now. Raises HorizonUnavailable."""
    token = await database_sync_to_async(_wallet_lock)(wallet_id)
    if token is None:
        return None
    try:
        wallet = await Wallet.objects.aget(pk=wallet_id)
        cursor = wallet.cursor
        if not cursor:
            latest = await horizon.fetch_account_transactions(wallet.public_key, cursor=None, desc=True, limit=1)
            await database_sync_to_async(_wallet_start)(wallet_id, str(latest[0]["paging_token"]) if latest else "")
            return 0
        recorded = 0
        for _ in range(FOLLOW_PAGES):
            records = await horizon.fetch_account_transactions(wallet.public_key, cursor=cursor, desc=False, limit=horizon.PAGE)
            try:
                cursor = await database_sync_to_async(wallet_record_page)(wallet_id=wallet_id, since=cursor, records=records)
            except CursorMoved:
                return recorded
            recorded += len(records)
            if len(records) < horizon.PAGE:
                break
        return recorded
    finally:
        await database_sync_to_async(_wallet_unlock)(wallet_id, token)


# -- what is owed to clients --------------------------------------------------------------------

@dataclass(frozen=True)
class Claim:
    """A claimed event's row, the status it announces, and its lease (which also tells this
    claim from a later one of the same row, once this one lapsed)."""

    pk: int
    status: str
    until: datetime
    event_id: str  # the event's id in realtime's log (event_id_of)


def event_id_of(tx: TrackedTransaction) -> str:
    """What the owed event announces: this row reaching its status, at its settlement's time (a
    tx_timeout guess and the ledger's verdict that corrects it are two events), to its wallet's
    owner. Every emit of it, whoever claims it and however often it is given back, is one event in
    the log (realtime's append is once per id, for recovery.APPENDED_MS): an emit logged before its
    publish failed is delivered from the log, and the next pass's emit of it is not a second copy.
    The owner is in it because a repeat claimed after the wallet moved goes to other rooms: under
    the first emit's offset it would reach the new owner from no log entry of theirs, and a server
    that delivered that offset to the old owner would drop it."""
    settled = tx.confirmed_at if tx.status == Status.CONFIRMED else tx.failed_at if tx.status == Status.FAILED else None
    return f"transactions:{tx.wallet_id}:{tx.hash}:{ms(tx.created_at)}:{tx.status}:{ms(settled) or ''}:{tx.wallet.owner_id}"


def _claimable(now: datetime):
    """Rows owing an event that no live claim holds."""
    return (TrackedTransaction.objects.exclude(announced=F("status")).select_related("wallet")
            .filter(Q(announcing_until__isnull=True) | Q(announcing_until__lte=now)))


def _claim(tracked: TrackedTransaction, now: datetime) -> list[tuple[Claim, Event]]:
    """A conditional update (two processes never hold one claim) that commits before the emit:
    the emit, a network call, must not hold a row lock. The claim lapses after
    TRANSACTION_ANNOUNCE_LEASE_SECONDS if its holder dies before announcement_done."""
    until = now + timedelta(seconds=settings.TRANSACTION_ANNOUNCE_LEASE_SECONDS)
    if _claimable(now).filter(pk=tracked.pk, status=tracked.status).update(announcing_until=until):
        name, data = event_of(tracked)
        return [(Claim(tracked.pk, tracked.status, until, event_id_of(tracked)), (rooms_of(tracked), name, data))]
    return []


def announcements_claim(*, limit: int = 500) -> list[tuple[Claim, Event]]:
    """Claim the events owed (rows whose status was not announced yet), oldest change first:
    [(claim, event)]. The caller emits, then calls announcement_done (or announcement_release
    when its emit failed)."""
    now = dj_timezone.now()
    return [claim for tracked in _claimable(now).order_by("updated_at")[:limit] for claim in _claim(tracked, now)]


def tracked_announce_now(tracked: TrackedTransaction) -> list[tuple[Claim, Event]]:
    """Claim one row's owed event (a view emits its `pending` at once, not a poll later)."""
    return _claim(tracked, dj_timezone.now())


def announcement_done(claim: Claim) -> None:
    """The claimed event went out: its status is announced, the claim ends. (A claim that
    lapsed meanwhile and was taken again is the new holder's to end: its event was emitted twice,
    under one offset: event_id_of.)"""
    TrackedTransaction.objects.filter(pk=claim.pk, announcing_until=claim.until).update(announced=claim.status, announcing_until=None)


def announcement_release(claim: Claim) -> None:
    """Give a claim back after its emit failed, so the next pass emits it (not another's claim)."""
    TrackedTransaction.objects.filter(pk=claim.pk, announcing_until=claim.until).update(announcing_until=None)


# -- reads for clients that need Horizon ---------------------------------------------------------

def record_status(record: dict, *, wallet: Wallet) -> dict:
    """Horizon's transaction resource as a status/history entry of `wallet`."""
    movement = movement_of_record(record, wallet.network)
    at = ms(parse_time(record.get("created_at")))
    data = {
        "hash": record["hash"], "userId": wallet.owner_id, "walletId": str(wallet.pk),
        "status": Status.CONFIRMED if record.get("successful") else Status.FAILED,
        "fromAddress": movement.from_address, "toAddress": movement.to_address, "amount": amount_number(movement.amount),
        "asset": movement.asset, "network": wallet.network, "createdAt": at, "blockNumber": record.get("ledger"), "source": "horizon",
    }
    if record.get("successful"):
        data["confirmedAt"] = at
    else:
        tx_code, op_codes = horizon.result_codes(record.get("result_xdr", ""))
        data.update(error=f"transaction failed: {horizon.describe(tx_code, op_codes)}",
                    errorCode=horizon.first_failure(tx_code, op_codes), failedAt=at)
    return data


def _involved_wallet(record: dict, wallets: list[Wallet]) -> Wallet | None:
    keys = {w.public_key: w for w in wallets if w.network == settings.STELLAR_NETWORK}
    if record.get("source_account") in keys:
        return keys[record["source_account"]]
    movement = movement_of_record(record, settings.STELLAR_NETWORK)
    return keys.get(movement.to_address) or keys.get(movement.from_address)


async def transaction_astatus(*, user_id: str, tx_hash: str) -> dict:
    """The status of a transaction of one of the caller's wallets: the database's, else Horizon's."""
    tracked = await database_sync_to_async(selectors.tracked_of_user)(user_id=user_id, tx_hash=tx_hash)
    if tracked is not None:
        return status_of(tracked)
    wallets = await database_sync_to_async(selectors.user_wallets)(user_id=user_id)
    if not wallets:
        raise TransactionNotFound(f"no transaction {tx_hash} of your wallets")
    try:
        record = await horizon.fetch_transaction(tx_hash)
    except HorizonUnavailable as exc:
        raise HorizonUnavailableError() from exc
    wallet = _involved_wallet(record, wallets) if record else None
    if wallet is None:  # unknown, or someone else's: the same answer
        raise TransactionNotFound(f"no transaction {tx_hash} of your wallets")
    return record_status(record, wallet=wallet)


async def wallet_ahistory(*, wallet_id: str, limit: int) -> dict:
    """The wallet's transactions, newest first: tracked ones merged with Horizon's account history
    (the tracked row wins for a hash in both). Horizon down: the database's alone, `partial`."""
    wallet = await database_sync_to_async(selectors.wallet_of)(wallet_id=wallet_id)
    tracked = await database_sync_to_async(selectors.wallet_history)(wallet=wallet, limit=limit)
    partial = False
    records: list[dict] = []
    if wallet.network == settings.STELLAR_NETWORK:
        try:
            records = await horizon.fetch_account_transactions(wallet.public_key, cursor=None, desc=True, limit=min(limit, horizon.PAGE))
        except HorizonUnavailable as exc:
            logger.warning("history of wallet %s from the database only: %s", wallet_id, exc)
            partial = True
    known = {tx.hash for tx in tracked}
    merged = [(status_of(tx), tx.paging_token) for tx in tracked] + [
        (record_status(r, wallet=wallet), str(r.get("paging_token", ""))) for r in records if r.get("hash") not in known]
    merged.sort(key=_newest_first, reverse=True)
    return {"walletId": str(wallet.pk), "transactions": [entry for entry, _ in merged[:limit]], "partial": partial}


def _newest_first(entry_and_token: tuple[dict, str]) -> tuple[int, int]:
    """When it settled (or was registered), then its paging token: Horizon's times are whole
    seconds, and every transaction of a ledger has the ledger's close time, so the token (the
    ledger's own order) tells those apart; one still pending has none and sorts first of its ms."""
    entry, token = entry_and_token
    at = entry.get("confirmedAt") or entry.get("failedAt") or entry["createdAt"] or 0
    order = token.partition("-")[0]  # a TOID, "-n" after it where Horizon pages operations of one
    return at, int(order) if order.isdigit() else 1 << 63
