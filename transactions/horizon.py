"""The transactions app's Horizon calls (stellar-sdk's ServerAsync on AiohttpClient).

One async implementation: the event loop awaits these; Celery tasks reach them through the
services' async_to_sync wrappers. Horizon's answers come back as its JSON; failures as
HorizonUnavailable (the caller retries) or SubmissionRejected (the transaction is refused).
"""

from __future__ import annotations

import asyncio

from django.conf import settings
from stellar_sdk import Network, ServerAsync
from stellar_sdk.client.aiohttp_client import AiohttpClient
from stellar_sdk.exceptions import BaseHorizonError, BaseRequestError, NotFoundError
from stellar_sdk.xdr import OperationResultCode, TransactionResult, TransactionResultCode

from market.services import MeteredAiohttpClient, retry_after_seconds

# Horizon returns at most 200 records a page (and the history event's limit is capped to it).
PAGE = 200
PASSPHRASES = {"testnet": Network.TESTNET_NETWORK_PASSPHRASE, "public": Network.PUBLIC_NETWORK_PASSPHRASE}


class HorizonUnavailable(Exception):
    """Horizon failed: an HTTP error, a timeout, no connection, or an unreadable answer.
    `rate_limited`: a 429, after which nothing should be asked for `retry_after` seconds (None:
    Horizon did not say)."""

    def __init__(self, message: str, *, rate_limited: bool = False, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.rate_limited, self.retry_after = rate_limited, retry_after


class SubmissionRejected(Exception):
    """Horizon (stellar-core) refused a submitted transaction; `code` is its result code."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.code = code


def _client() -> AiohttpClient:
    """Horizon's limit is per IP: the watcher's requests are counted with the feed's, and their
    rate-limit headers slow the feed too."""
    return MeteredAiohttpClient()


def _unavailable(exc: Exception) -> HorizonUnavailable:
    if isinstance(exc, BaseHorizonError):
        rate_limited = exc.status == 429
        return HorizonUnavailable(f"Horizon answered {exc.status}: {(exc.title or exc.detail or '')[:200]}",
                                  rate_limited=rate_limited, retry_after=_retry_after(exc) if rate_limited else None)
    return HorizonUnavailable(f"Horizon unreachable: {type(exc).__name__}: {str(exc)[:200]}")


def _retry_after(exc: BaseHorizonError) -> float | None:
    """What Horizon's 429 says to wait, read as the market feed reads it."""
    return retry_after_seconds(getattr(exc.args[0] if exc.args else None, "headers", None) or {})


async def fetch_transaction(tx_hash: str) -> dict | None:
    """Horizon's transaction resource, or None when it is in no ledger (404)."""
    client = _client()
    try:
        return await ServerAsync(settings.STELLAR_HORIZON_URL, client=client).transactions().transaction(tx_hash).call()
    except NotFoundError:
        return None
    except (BaseHorizonError, BaseRequestError, asyncio.TimeoutError, ValueError) as exc:
        raise _unavailable(exc) from exc
    finally:
        await client.close()


async def fetch_account_transactions(public_key: str, *, cursor: str | None, desc: bool, limit: int) -> list[dict]:
    """A page of the account's transactions, failed ones included; [] for an unfunded account."""
    client = _client()
    try:
        call = ServerAsync(settings.STELLAR_HORIZON_URL, client=client).transactions().for_account(public_key)
        call = call.include_failed(True).order(desc=desc).limit(limit)
        if cursor:
            call = call.cursor(cursor)
        return (await call.call())["_embedded"]["records"]
    except NotFoundError:
        return []
    except (BaseHorizonError, BaseRequestError, asyncio.TimeoutError, ValueError, KeyError, TypeError) as exc:
        raise _unavailable(exc) from exc
    finally:
        await client.close()


async def submit_async(envelope_xdr: str) -> str:
    """POST /transactions_async; the hash Horizon accepted (PENDING or DUPLICATE)."""
    client = _client()
    try:
        response = await client.post(f"{settings.STELLAR_HORIZON_URL.rstrip('/')}/transactions_async", data={"tx": envelope_xdr})
        body = response.json()
    except (BaseRequestError, asyncio.TimeoutError, ValueError) as exc:
        raise _unavailable(exc) from exc
    finally:
        await client.close()
    status = body.get("tx_status") if isinstance(body, dict) else None
    if status in ("PENDING", "DUPLICATE"):
        return body["hash"]
    if status == "ERROR":
        tx_code, op_codes = result_codes(body.get("errorResultXdr") or body.get("error_result_xdr") or "")
        code = first_failure(tx_code, op_codes)
        raise SubmissionRejected(f"Horizon refused the transaction: {describe(tx_code, op_codes)}", code)
    if response.status_code == 400:
        raise SubmissionRejected(f"Horizon refused the transaction: {str(body.get('detail', body))[:200]}", "tx_malformed")
    raise HorizonUnavailable(f"Horizon answered {response.status_code} {status or ''}".strip())


def result_codes(result_xdr: str) -> tuple[str, list[str]]:
    """Horizon's result codes from a TransactionResult: ("tx_failed", ["op_underfunded"])."""
    try:
        result = TransactionResult.from_xdr(result_xdr).result
    except Exception:
        return "tx_failed", []
    tx_code = "tx_" + result.code.name.removeprefix("tx").lower()
    ops = []
    for op in result.results or []:
        if op.code != OperationResultCode.opINNER:
            ops.append("op_" + op.code.name.removeprefix("op").lower())
            continue
        prefix = op.tr.type.name + "_"
        inner = next((value for name, value in vars(op.tr).items() if name != "type" and value is not None), None)
        name = inner.code.name if inner is not None and hasattr(inner, "code") else "SUCCESS"
        ops.append("op_" + name.removeprefix(prefix).lower())
    if result.code in (TransactionResultCode.txFEE_BUMP_INNER_SUCCESS, TransactionResultCode.txFEE_BUMP_INNER_FAILED):
        inner = result.inner_result_pair.result.result
        tx_code = "tx_" + inner.code.name.removeprefix("tx").lower()
    return tx_code, ops


def first_failure(tx_code: str, op_codes: list[str]) -> str:
    """The errorCode clients get: the first failing operation's code, else the transaction's."""
    return next((code for code in op_codes if code != "op_success"), tx_code)


def describe(tx_code: str, op_codes: list[str]) -> str:
    return tx_code + (f" ({', '.join(op_codes)})" if op_codes else "")
