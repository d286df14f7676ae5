"""The local Horizon's state (order books, trades, transactions, payments) and its JSON, shaped as Horizon's.

Shapes follow Horizon's API reference (order book, trade, trade aggregation, transaction and
payment objects; collections with `_links` and `_embedded.records`; amounts as strings with 7
decimals; trade prices as {n, d} strings, order-book price_r as integers). Order-book `amount` is
Horizon's: asks in the base asset, bids in the counter asset.
"""

from __future__ import annotations

import hashlib
import itertools
import random
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import ROUND_DOWN, Decimal
from fractions import Fraction

# Circle's USDC issuers (the seed pairs' counter asset) and a base account for made-up trades.
USDC_TESTNET = "GBBD47IF6LWK7P7MDEVSCWR7DPUWV3NY3DTQEVFL4NAT4AQH3ZLLFLA5"
USDC_PUBLIC = "GA5ZSEJYB37JRC5AVCIA5MOP4RHTM335X2KGX3IHOJAPP5RE34K4KZVN"
MAKER = "GCEZWKCA5VLDNRLN3RPRJMRZOX3Z6G5CHCGSNFHEYVXM3XOJMDS674JZ"
TAKER = "GAIH3ULLFQ4DGSECF2AR555KZ4KNDGEKN4AFI4SU2M7B43MGK3QJZNSR"
STROOP = Decimal("0.0000001")
# Horizon's first ledgers on a fresh network are small numbers; a realistic id is large.
FIRST_LEDGER = 51_000_000


def asset_key(asset_type: str | None, code: str | None, issuer: str | None) -> str:
    """"native" or "CODE:ISSUER", the key the world stores books and trades under."""
    if asset_type == "native":
        return "native"
    if not code or not issuer:
        raise ValueError("a credit asset needs a code and an issuer")
    return f"{code}:{issuer}"


def asset_fields(key: str, prefix: str = "") -> dict:
    if key == "native":
        return {f"{prefix}asset_type": "native"}
    code, issuer = key.split(":")
    kind = "credit_alphanum4" if len(code) <= 4 else "credit_alphanum12"
    return {f"{prefix}asset_type": kind, f"{prefix}asset_code": code, f"{prefix}asset_issuer": issuer}


def amount(value: Decimal | float | str) -> str:
    return str(Decimal(str(value)).quantize(STROOP, rounding=ROUND_DOWN))


def ratio(value: Decimal | str) -> tuple[int, int]:
    frac = Fraction(Decimal(str(value))).limit_denominator(10_000_000)
    return frac.numerator, frac.denominator


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Trade:
    token: str
    ledger: int
    at: float
    price: Decimal
    base_amount: Decimal
    base_is_seller: bool


@dataclass
class Market:
    base: str
    counter: str
    bids: list[tuple[Decimal, Decimal]] = field(default_factory=list)  # (price, base amount), best first
    asks: list[tuple[Decimal, Decimal]] = field(default_factory=list)
    trades: list[Trade] = field(default_factory=list)


@dataclass
class Transaction:
    hash: str
    ledger: int
    token: str
    at: float
    source: str
    destination: str
    amount: Decimal
    asset: str
    successful: bool
    memo: str | None
    envelope_xdr: str = "AAAAAgAAAAA="
    # Horizon's result codes: {"transaction": "tx_failed", "operations": ["op_underfunded"]}
    result_codes: dict | None = None


TESTNET_PASSPHRASE = "Test SDF Network ; September 2015"


def payment_envelope(source: str, destination: str, amount_, asset: str, memo: str | None, sequence: int) -> str:
    """A real (unsigned) one-payment transaction envelope, as an account's history holds."""
    from stellar_sdk import Account, Asset, TransactionBuilder

    code, _, issuer = asset.partition(":")
    builder = TransactionBuilder(Account(source, sequence - 1), TESTNET_PASSPHRASE, base_fee=100)
    builder.append_payment_op(destination, Asset.native() if asset == "native" else Asset(code, issuer), amount(amount_))
    if memo:
        builder.add_text_memo(memo)
    return builder.set_timeout(300).build().to_xdr()


def result_xdr(successful: bool, codes: dict | None) -> str:
    """A TransactionResult with Horizon's result codes (payment operations), as XDR."""
    from stellar_sdk import xdr

    codes = codes or ({"transaction": "tx_success", "operations": ["op_success"]} if successful
                      else {"transaction": "tx_failed", "operations": ["op_underfunded"]})
    tx_code = xdr.TransactionResultCode["tx" + codes["transaction"].removeprefix("tx_").upper()]
    results = None
    if tx_code in (xdr.TransactionResultCode.txSUCCESS, xdr.TransactionResultCode.txFAILED):
        results = []
        for op in codes.get("operations") or []:
            payment = xdr.PaymentResult(xdr.PaymentResultCode["PAYMENT_" + op.removeprefix("op_").upper()])
            tr = xdr.OperationResultTr(xdr.OperationType.PAYMENT, payment_result=payment)
            results.append(xdr.OperationResult(xdr.OperationResultCode.opINNER, tr=tr))
    result = xdr.TransactionResult(xdr.Int64(100), xdr.TransactionResultResult(tx_code, results=results), xdr.TransactionResultExt(0))
    return result.to_xdr()


class World:
    """Everything the local Horizon serves; the control API and live mode change it."""

    def __init__(self, base_url: str = "http://127.0.0.1") -> None:
        self.base_url = base_url
        self.markets: dict[tuple[str, str], Market] = {}
        self.transactions: dict[str, Transaction] = {}
        self.submitted: dict[str, dict] = {}  # received by transactions_async, in no ledger yet
        self.accounts: dict[str, dict] = {}  # funded accounts: {"sequence": int, "balance": Decimal}
        self.ledger = FIRST_LEDGER
        self._ops = itertools.count(1)
        self.version = 0  # bumped on every change, for SSE streams to wait on

    # -- changes ---------------------------------------------------------------------------

    def market(self, base: str, counter: str) -> Market:
        return self.markets.setdefault((base, counter), Market(base, counter))

    def next_token(self) -> tuple[int, str]:
        self.ledger += 1
        # Horizon's paging tokens are TOID-based: ledger << 32 | operation order, then "-index".
        return self.ledger, f"{(self.ledger << 32) | next(self._ops)}-0"

    def add_trade(self, base: str, counter: str, price, base_amount, base_is_seller: bool, at: float | None = None) -> Trade:
        ledger, token = self.next_token()
        trade = Trade(token, ledger, time.time() if at is None else at, Decimal(str(price)), Decimal(str(base_amount)), base_is_seller)
        self.market(base, counter).trades.append(trade)
        self.version += 1
        return trade

    def set_book(self, base: str, counter: str, bids, asks) -> None:
        market = self.market(base, counter)
        market.bids = sorted(((Decimal(str(p)), Decimal(str(a))) for p, a in bids), key=lambda level: -level[0])
        market.asks = sorted(((Decimal(str(p)), Decimal(str(a))) for p, a in asks), key=lambda level: level[0])
        self.version += 1

    def add_transaction(self, source: str, destination: str, amount_, asset: str = "native",
                        successful: bool = True, memo: str | None = None, tx_hash: str | None = None,
                        envelope_xdr: str | None = None, result_codes: dict | None = None, at: float | None = None) -> Transaction:
        """A transaction in the next ledger, closed `at` (epoch seconds; now by default): a real
        envelope (unless given) and its real hash."""
        ledger, token = self.next_token()
        if envelope_xdr is None:
            try:
                envelope_xdr = payment_envelope(source, destination, amount_, asset, memo, ledger * 1000)
            except Exception:  # not real keys: a placeholder envelope, as before
                envelope_xdr = "AAAAAgAAAAA="
        if tx_hash is None:
            from stellar_sdk import TransactionEnvelope

            try:
                tx_hash = TransactionEnvelope.from_xdr(envelope_xdr, TESTNET_PASSPHRASE).hash_hex()
            except Exception:
                tx_hash = hashlib.sha256(f"{token}{source}{destination}".encode()).hexdigest()
        tx = Transaction(tx_hash, ledger, token, time.time() if at is None else at, source, destination, Decimal(str(amount_)), asset, successful, memo,
                         envelope_xdr, result_codes)
        self.transactions[tx_hash] = tx
        self.version += 1
        return tx

    def fund_account(self, account: str, sequence: int | None = None, balance="10000") -> dict:
        """An account on the ledger (created in the next ledger: its sequence starts there)."""
        ledger, _ = self.next_token()
        self.accounts[account] = {"sequence": ledger << 32 if sequence is None else int(sequence), "balance": Decimal(str(balance))}
        self.version += 1
        return self.accounts[account]

    def include_submitted(self, tx_hash: str, successful: bool = True, result_codes: dict | None = None) -> Transaction:
        """A transaction received by transactions_async enters the next ledger (its source
        account's sequence number is consumed, successful or not, as on Stellar)."""
        envelope = self.submitted.pop(tx_hash)
        if envelope["source"] in self.accounts and envelope.get("sequence") is not None:
            self.accounts[envelope["source"]]["sequence"] = envelope["sequence"]
        return self.add_transaction(envelope["source"], envelope["destination"], envelope["amount"], envelope["asset"],
                                    successful, envelope["memo"], tx_hash, envelope["xdr"], result_codes)

    def seed_demo_markets(self, rng: random.Random) -> None:
        """XLM/USDC on both networks' USDC: a book around 0.12 and a day of trades."""
        for issuer in (USDC_TESTNET, USDC_PUBLIC):
            counter = f"USDC:{issuer}"
            mid = Decimal("0.1200")
            now = time.time()
            for i in range(24):
                price = mid * (1 + Decimal(rng.uniform(-0.02, 0.02)))
                self.add_trade("native", counter, price.quantize(Decimal("0.0000001")), Decimal(rng.randint(50, 5000)),
                               rng.random() < 0.5, at=now - (24 - i) * 3500)
            self.move_book("native", counter, mid, rng)

    def move_book(self, base: str, counter: str, mid: Decimal, rng: random.Random, depth: int = 25) -> None:
        step = mid * Decimal("0.0005")
        bids = [((mid - step * (i + 1)).quantize(STROOP), Decimal(rng.randint(100, 20000))) for i in range(depth)]
        asks = [((mid + step * (i + 1)).quantize(STROOP), Decimal(rng.randint(100, 20000))) for i in range(depth)]
        self.set_book(base, counter, bids, asks)

    def live_step(self, rng: random.Random) -> None:
        """One tick of the demo: every market trades once near its mid and its book follows."""
        for market in list(self.markets.values()):
            last = market.trades[-1].price if market.trades else Decimal("1")
            price = (last * (1 + Decimal(rng.uniform(-0.004, 0.004)))).quantize(STROOP)
            self.add_trade(market.base, market.counter, price, Decimal(rng.randint(10, 3000)), rng.random() < 0.5)
            self.move_book(market.base, market.counter, price, rng)

    # -- JSON ------------------------------------------------------------------------------

    def link(self, path: str, templated: bool = False) -> dict:
        link = {"href": f"{self.base_url}{path}"}
        if templated:
            link["templated"] = True
        return link

    def collection(self, path: str, query: str, records: list[dict], next_query: str, prev_query: str) -> dict:
        return {
            "_links": {
                "self": self.link(f"{path}?{query}"),
                "next": self.link(f"{path}?{next_query}"),
                "prev": self.link(f"{path}?{prev_query}"),
            },
            "_embedded": {"records": records},
        }

    def order_book_json(self, selling: str, buying: str, limit: int) -> dict:
        market = self.markets.get((selling, buying)) or Market(selling, buying)

        def level(price: Decimal, amount_: Decimal) -> dict:
            n, d = ratio(price)
            return {"price_r": {"n": n, "d": d}, "price": amount(price), "amount": amount(amount_)}

        return {
            "bids": [level(p, a * p) for p, a in market.bids[:limit]],  # bids: amount of counter
            "asks": [level(p, a) for p, a in market.asks[:limit]],  # asks: amount of base
            "base": asset_fields(selling),
            "counter": asset_fields(buying),
        }

    def trade_json(self, market: Market, trade: Trade) -> dict:
        n, d = ratio(trade.price)
        offer = str(int(trade.token.split("-")[0]) % 1_000_000_000)
        seller, buyer = (MAKER, TAKER) if trade.base_is_seller else (TAKER, MAKER)
        return {
            "_links": {
                "self": {"href": ""},
                "base": self.link(f"/accounts/{seller}"),
                "counter": self.link(f"/accounts/{buyer}"),
                "operation": self.link(f"/operations/{trade.token.split('-')[0]}"),
            },
            "id": trade.token,
            "paging_token": trade.token,
            "ledger_close_time": iso(trade.at),
            "trade_type": "orderbook",
            "base_offer_id": offer,
            "base_account": seller,
            "base_amount": amount(trade.base_amount),
            **asset_fields(market.base, "base_"),
            "counter_offer_id": str(int(offer) + 1),
            "counter_account": buyer,
            "counter_amount": amount(trade.base_amount * trade.price),
            **asset_fields(market.counter, "counter_"),
            "base_is_seller": trade.base_is_seller,
            "price": {"n": str(n), "d": str(d)},
        }

    def trades_after(self, base: str, counter: str, cursor: str | None, order: str, limit: int) -> list[tuple[Market, Trade]]:
        market = self.markets.get((base, counter))
        if market is None:
            return []
        trades = list(market.trades)
        if order == "desc":
            trades.reverse()
        if cursor == "now":
            return []
        if cursor:
            key = token_key(cursor)
            trades = [t for t in trades if (token_key(t.token) > key if order == "asc" else token_key(t.token) < key)]
        return [(market, t) for t in trades[:limit]]

    def aggregations_json(self, base: str, counter: str, start: int, end: int, resolution: int, limit: int) -> list[dict]:
        market = self.markets.get((base, counter))
        buckets: dict[int, list[Trade]] = {}
        for trade in (market.trades if market else []):
            at_ms = int(trade.at * 1000)
            if start <= at_ms < end:
                buckets.setdefault(at_ms - at_ms % resolution, []).append(trade)
        records = []
        for ts in sorted(buckets)[:limit]:
            trades = buckets[ts]
            prices = [t.price for t in trades]
            base_volume = sum(t.base_amount for t in trades)
            counter_volume = sum(t.base_amount * t.price for t in trades)

            def r(value: Decimal) -> dict:
                n, d = ratio(value)
                return {"n": str(n), "d": str(d)}

            records.append({
                "timestamp": str(ts),
                "trade_count": str(len(trades)),
                "base_volume": amount(base_volume),
                "counter_volume": amount(counter_volume),
                "avg": amount(counter_volume / base_volume),
                "high": amount(max(prices)), "high_r": r(max(prices)),
                "low": amount(min(prices)), "low_r": r(min(prices)),
                "open": amount(prices[0]), "open_r": r(prices[0]),
                "close": amount(prices[-1]), "close_r": r(prices[-1]),
            })
        return records

    def account_json(self, account: str) -> dict:
        """Horizon's account resource (the fields stellar-sdk's load_account and wallets read)."""
        row = self.accounts[account]
        path = f"/accounts/{account}"
        return {
            "_links": {"self": self.link(path), "transactions": self.link(f"{path}/transactions{{?cursor,limit,order}}", True),
                       "payments": self.link(f"{path}/payments{{?cursor,limit,order}}", True)},
            "id": account, "account_id": account, "sequence": str(row["sequence"]), "sequence_ledger": self.ledger,
            "subentry_count": 0, "last_modified_ledger": self.ledger,
            "thresholds": {"low_threshold": 0, "med_threshold": 0, "high_threshold": 0},
            "flags": {"auth_required": False, "auth_revocable": False, "auth_immutable": False, "auth_clawback_enabled": False},
            "balances": [{"balance": amount(row["balance"]), "buying_liabilities": "0.0000000", "selling_liabilities": "0.0000000",
                          "asset_type": "native"}],
            "signers": [{"weight": 1, "key": account, "type": "ed25519_public_key"}],
            "num_sponsoring": 0, "num_sponsored": 0, "paging_token": account, "data": {},
        }

    def transaction_json(self, tx: Transaction) -> dict:
        path = f"/transactions/{tx.hash}"
        return {
            "_links": {
                "self": self.link(path),
                "account": self.link(f"/accounts/{tx.source}"),
                "ledger": self.link(f"/ledgers/{tx.ledger}"),
                "operations": self.link(f"{path}/operations{{?cursor,limit,order}}", templated=True),
                "effects": self.link(f"{path}/effects{{?cursor,limit,order}}", templated=True),
                "precedes": self.link(f"/transactions?order=asc&cursor={tx.token}"),
                "succeeds": self.link(f"/transactions?order=desc&cursor={tx.token}"),
                "transaction": self.link(path),
            },
            "id": tx.hash,
            "paging_token": tx.token.split("-")[0],
            "successful": tx.successful,
            "hash": tx.hash,
            "ledger": tx.ledger,
            "created_at": iso(tx.at),
            "source_account": tx.source,
            "source_account_sequence": str(tx.ledger * 1000),
            "fee_account": tx.source,
            "fee_charged": "100",
            "max_fee": "100",
            "operation_count": 1,
            "envelope_xdr": tx.envelope_xdr,
            "result_xdr": result_xdr(tx.successful, tx.result_codes),
            "fee_meta_xdr": "AAAAAgAAAAA=",
            "memo_type": "text" if tx.memo else "none",
            **({"memo": tx.memo} if tx.memo else {}),
            "signatures": ["c2lnbmF0dXJl"],
            "preconditions": {"timebounds": {"min_time": "0"}},
        }

    def payment_json(self, tx: Transaction) -> dict:
        token = tx.token.split("-")[0]
        asset = {"asset_type": "native"} if tx.asset == "native" else asset_fields(tx.asset)
        return {
            "_links": {
                "self": self.link(f"/operations/{token}"),
                "transaction": self.link(f"/transactions/{tx.hash}"),
                "effects": self.link(f"/operations/{token}/effects"),
                "succeeds": self.link(f"/effects?order=desc&cursor={token}"),
                "precedes": self.link(f"/effects?order=asc&cursor={token}"),
            },
            "id": token,
            "paging_token": token,
            "transaction_successful": tx.successful,
            "source_account": tx.source,
            "type": "payment",
            "type_i": 1,
            "created_at": iso(tx.at),
            "transaction_hash": tx.hash,
            **asset,
            "from": tx.source,
            "to": tx.destination,
            "amount": amount(tx.amount),
        }


def token_key(token: str) -> tuple[int, int]:
    head, _, tail = token.partition("-")
    return int(head), int(tail or 0)
