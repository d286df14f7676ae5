"""A payment automation's transaction: built and signed with stellar-sdk, submitted and tracked
through the transactions app (transaction_submit), so it settles like any other.

The signed envelope is kept on the run before the first submission: a retry after Horizon
failed resubmits the same envelope (Horizon answers DUPLICATE if the first one got through), so
a lost answer can never turn into a second payment.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from django.conf import settings
from stellar_sdk import Account, Asset, Server, StrKey, TransactionBuilder
from stellar_sdk.client.requests_client import RequestsClient
from stellar_sdk.exceptions import BaseHorizonError, BaseRequestError, NotFoundError

from transactions import services as transaction_services
from transactions.errors import HorizonUnavailable, InvalidEnvelope, SubmissionRejected, WalletNotFound
from transactions.horizon import PASSPHRASES

from .custody import custodial_keypair
from .models import AutomationRun

# The network's minimum fee per operation (stroops). Under surge pricing Horizon refuses it at
# submission (tx_insufficient_fee), which ends the run in automation:error, not in a higher bid.
BASE_FEE = 100
# The transaction is valid this long after it is built: longer than the retries take (about
# 15 s), short enough that a stale payment never lands much later than its trigger.
TIMEOUT_SECONDS = 120


class PaymentRetryable(Exception):
    """Horizon could not be reached or answered 5xx/429: worth another try."""


class PaymentRefused(Exception):
    """A permanent failure before the ledger; `code` is the automation:error errorCode."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.code = code


def stellar_asset(name: str) -> Asset:
    if name.upper() in ("XLM", "NATIVE"):
        return Asset.native()
    code, _, issuer = name.partition(":")
    try:
        return Asset(code, issuer)
    except Exception:
        raise PaymentRefused(f"not an asset: {name!r} (XLM or CODE:ISSUER)", "invalid_action") from None


def payment_params(params: dict) -> tuple[str, str, Asset]:
    """(destination, amount with 7 decimals at most, asset) from the action's parameters."""
    destination, asset = str(params.get("destination", "")), stellar_asset(str(params.get("asset", "XLM")))
    if not StrKey.is_valid_ed25519_public_key(destination):
        raise PaymentRefused(f"the destination {destination[:60]!r} is not a Stellar account (G...)", "invalid_action")
    try:
        amount = Decimal(str(params["amount"]))
    except (KeyError, InvalidOperation):
        raise PaymentRefused("the payment has no valid amount", "invalid_action") from None
    if not amount.is_finite() or amount <= 0 or amount != round(amount, 7):
        raise PaymentRefused(f"the amount {params.get('amount')!r} is not a positive Stellar amount (7 decimals at most)", "invalid_action")
    return destination, format(amount, "f"), asset


def account_sequence(public_key: str) -> int:
    """The account's current sequence number from Horizon."""
    client = RequestsClient(num_retries=0, request_timeout=settings.HORIZON_REQUEST_TIMEOUT)
    try:
        return Server(settings.STELLAR_HORIZON_URL, client=client).load_account(public_key).sequence
    except NotFoundError:
        raise PaymentRefused(f"the wallet's account {public_key} does not exist on the network (unfunded)", "source_account_missing") from None
    except BaseHorizonError as exc:
        if exc.status in (429,) or exc.status >= 500:
            raise PaymentRetryable(f"Horizon answered {exc.status} loading the account") from None
        raise PaymentRefused(f"Horizon answered {exc.status} loading the account", "horizon_error") from None
    except (BaseRequestError, ValueError, KeyError) as exc:
        raise PaymentRetryable(f"Horizon unreachable loading the account: {type(exc).__name__}") from None
    finally:
        client.close()


def payment_envelope(*, run: AutomationRun) -> str:
    """The run's signed payment envelope (base64 XDR), built once and kept on the run."""
    if run.result.get("envelopeXdr"):
        return run.result["envelopeXdr"]
    automation = run.automation
    wallet = automation.wallet
    destination, amount, asset = payment_params(automation.action_params or {})
    keypair = custodial_keypair(wallet=wallet)  # CustodyError: refused
    source = Account(wallet.public_key, account_sequence(wallet.public_key))
    envelope = (TransactionBuilder(source, PASSPHRASES[wallet.network], base_fee=BASE_FEE)
                .append_payment_op(destination, asset, amount)
                .add_text_memo(f"automation {str(automation.pk)[:8]}")
                .set_timeout(TIMEOUT_SECONDS)
                .build())
    envelope.sign(keypair)
    xdr = envelope.to_xdr()
    result = {**run.result, "envelopeXdr": xdr, "transactionHash": envelope.hash_hex()}
    # Kept only if no envelope is yet: an attempt that outlived its hold (automation.recovery)
    # and the one that took over may both get here; whichever is second uses the first's, so
    # there is never a second transaction (a second sequence number) for one run.
    if not AutomationRun.objects.filter(pk=run.pk, transaction_hash="").update(result=result, transaction_hash=envelope.hash_hex()):
        run.refresh_from_db(fields=["result", "transaction_hash"])
        return run.result["envelopeXdr"]
    run.result, run.transaction_hash = result, envelope.hash_hex()
    return xdr


def payment_submit(*, run: AutomationRun) -> str:
    """Build (once), sign, submit and track the run's payment; its hash."""
    xdr = payment_envelope(run=run)
    automation = run.automation
    try:
        tracked = transaction_services.transaction_submit(user_id=automation.owner_id, wallet_id=str(automation.wallet_id), envelope_xdr=xdr)
    except HorizonUnavailable as exc:
        raise PaymentRetryable(exc.message) from None
    except SubmissionRejected as exc:
        raise PaymentRefused(exc.message, (exc.details or {}).get("errorCode") or exc.code) from None
    except (InvalidEnvelope, WalletNotFound) as exc:
        raise PaymentRefused(exc.message, exc.code) from None
    return tracked.hash


def payment_track(*, run: AutomationRun) -> str:
    """Track the run's signed payment without submitting it (it may have reached Horizon
    already); the transactions app settles it from Horizon by its hash. Its hash."""
    automation = run.automation
    destination, amount, asset = payment_params(automation.action_params or {})
    tracked = transaction_services.transaction_register(
        user_id=automation.owner_id, wallet_id=str(automation.wallet_id), tx_hash=run.transaction_hash,
        to_address=destination, amount=Decimal(amount), asset=transaction_services.asset_name(asset))
    return tracked.hash
