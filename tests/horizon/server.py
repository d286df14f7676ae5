"""The local Horizon's HTTP server (aiohttp): Horizon's endpoints, its headers and errors, SSE, and
a control API under /_control/ with which a test scripts it.

Control API (JSON bodies; assets as "native" or "CODE:ISSUER"):
- POST /_control/trade {base, counter, price, amount, base_is_seller}        -> the trade record
- POST /_control/orderbook {base, counter, bids: [[p, a]], asks: [[p, a]]}   (amounts in base)
- POST /_control/fail {count, status=500, retry_after?, mode: status|timeout|malformed, delay=5, path?, match?}
- POST /_control/ratelimit {limit}     requests per hour before Horizon answers 429 by itself
- POST /_control/transaction {source, destination, amount, asset?, successful?, memo?, hash?, result_codes?, at?}
                                       a transaction in the next ledger (result_codes: Horizon's
                                       {transaction: "tx_failed", operations: ["op_underfunded"]};
                                       at: its close time, epoch seconds, now by default)
- POST /_control/include {hash, successful?, result_codes?}  a transaction received by
                                       POST /transactions_async enters the next ledger
- POST /_control/submission {status, result_codes?}  the next transactions_async answers ERROR
                                       (400, result codes), DUPLICATE (409) or TRY_AGAIN_LATER (503)
- GET  /_control/submitted             {hash: envelope} received and not yet in a ledger
- POST /_control/account {account, sequence?, balance?}  a funded account (GET /accounts/{id});
                                       transactions_async then checks its sequence number
                                       (tx_bad_seq) and signature (tx_bad_auth), as stellar-core does
- POST /_control/reset                 forget everything (markets, failures, counters)
- GET  /_control/requests              {path: count} of Horizon requests served (not control ones)
"""

from __future__ import annotations

import asyncio
import json
import random
import threading
import time
from collections import Counter
from dataclasses import dataclass

from aiohttp import web

from .world import World, asset_key

# Horizon's default: 3600 requests per hour per IP, in a window that starts with the first request.
DEFAULT_RATE_LIMIT = 3600
RATE_WINDOW_SECONDS = 3600
# Horizon caps `limit` at 200 on every collection and defaults it to 10 (order book: 20).
MAX_LIMIT = 200
# An SSE stream with nothing to say still sends a comment this often, as Horizon does, so
# clients and proxies do not take a quiet market for a dead connection.
SSE_KEEPALIVE_SECONDS = 5.0
PROBLEM = "application/problem+json; charset=utf-8"


@dataclass
class Failure:
    count: int
    status: int = 500
    mode: str = "status"  # status | timeout | malformed
    retry_after: int | None = None
    delay: float = 5.0
    path: str | None = None  # only requests whose path starts with this
    match: str | None = None  # only requests whose path and query contain this (e.g. an asset code)


def problem(status: int, title: str, detail: str, kind: str, headers: dict | None = None) -> web.Response:
    body = {"type": f"https://stellar.org/horizon-errors/{kind}", "title": title, "status": status, "detail": detail}
    return web.Response(status=status, text=json.dumps(body), content_type=None, headers={"Content-Type": PROBLEM, **(headers or {})})


def asset_param(query, prefix: str) -> str:
    try:
        return asset_key(query.get(f"{prefix}_asset_type"), query.get(f"{prefix}_asset_code"), query.get(f"{prefix}_asset_issuer"))
    except ValueError as exc:
        raise web.HTTPBadRequest(text=json.dumps({"type": "https://stellar.org/horizon-errors/bad_request",
                                                  "title": "Bad Request", "status": 400, "detail": str(exc)}),
                                 content_type="application/json") from None


def limit_param(query, default: int = 10) -> int:
    try:
        return max(1, min(MAX_LIMIT, int(query.get("limit", default))))
    except ValueError:
        return default


class LocalHorizon:
    """The application and its scripted behaviour; `world` holds the data."""

    def __init__(self, *, live: bool = False, seed: int = 7) -> None:
        self.world = World()
        self.rng = random.Random(seed)
        self.failures: list[Failure] = []
        self.submission_answers: list[dict] = []  # scripted answers of the next transactions_async
        self.requests: Counter = Counter()
        self.rate_limit = DEFAULT_RATE_LIMIT
        self.window_start = time.time()
        self.window_used = 0
        self.live = live
        self.changed = asyncio.Event()
        self.app = web.Application(middlewares=[self.horizon_middleware])
        self.app.add_routes([
            web.get("/", self.root),
            web.get("/order_book", self.order_book),
            web.get("/trades", self.trades),
            web.get("/trade_aggregations", self.trade_aggregations),
            web.get("/transactions/{hash}", self.transaction),
            web.get("/accounts/{account}", self.account),
            web.get("/accounts/{account}/transactions", self.account_transactions),
            web.get("/accounts/{account}/payments", self.account_payments),
            web.post("/transactions_async", self.submit_async),
            web.post("/_control/trade", self.control_trade),
            web.post("/_control/orderbook", self.control_orderbook),
            web.post("/_control/fail", self.control_fail),
            web.post("/_control/ratelimit", self.control_ratelimit),
            web.post("/_control/transaction", self.control_transaction),
            web.post("/_control/reset", self.control_reset),
            web.post("/_control/include", self.control_include),
            web.post("/_control/submission", self.control_submission),
            web.get("/_control/submitted", self.control_submitted),
            web.post("/_control/account", self.control_account),
            web.get("/_control/requests", self.control_requests),
        ])
        if live:
            self.world.seed_demo_markets(self.rng)
            self.app.on_startup.append(self._start_live)

    # -- behaviour common to every Horizon request -------------------------------------------

    @web.middleware
    async def horizon_middleware(self, request: web.Request, handler):
        if request.path.startswith("/_control/"):
            response = await handler(request)
            self.notify()
            return response
        self.world.base_url = f"{request.scheme}://{request.host}"
        self.requests[request.path] += 1
        now = time.time()
        if now - self.window_start >= RATE_WINDOW_SECONDS:
            self.window_start, self.window_used = now, 0
        self.window_used += 1
        remaining = max(0, self.rate_limit - self.window_used)
        reset = int(self.window_start + RATE_WINDOW_SECONDS - now)
        headers = {"X-RateLimit-Limit": str(self.rate_limit), "X-RateLimit-Remaining": str(remaining), "X-RateLimit-Reset": str(reset)}
        failure = self._take_failure(request.path, request.path_qs)
        if failure is not None:
            response = await self._fail(failure, headers)
        elif self.window_used > self.rate_limit:
            response = problem(429, "Rate Limit Exceeded", "The rate limit for the requesting IP address is over its allowed limit.",
                               "rate_limit_exceeded", {**headers, "Retry-After": str(reset)})
        else:
            try:
                response = await handler(request)
            except web.HTTPException as exc:
                response = exc
        if not response.prepared:
            response.headers.update({k: v for k, v in headers.items() if k not in response.headers})
            response.headers.setdefault("Cache-Control", "no-cache, no-store, max-age=0")
            response.headers.setdefault("Latest-Ledger", str(self.world.ledger))
        return response

    def _take_failure(self, path: str, path_qs: str) -> Failure | None:
        for failure in self.failures:
            if failure.count > 0 and (failure.path is None or path.startswith(failure.path)) and (failure.match is None or failure.match in path_qs):
                failure.count -= 1
                if failure.count == 0:
                    self.failures.remove(failure)
                return failure
        return None

    async def _fail(self, failure: Failure, headers: dict) -> web.StreamResponse:
        if failure.mode == "timeout":
            await asyncio.sleep(failure.delay)
            return problem(504, "Timeout", "Your request timed out before completing.", "timeout", headers)
        if failure.mode == "malformed":
            return web.Response(status=200, text='{"_links": {"self": {"href": "', content_type="application/hal+json", headers=headers)
        if failure.status == 429:
            extra = {"Retry-After": str(failure.retry_after)} if failure.retry_after is not None else {}
            return problem(429, "Rate Limit Exceeded", "The rate limit for the requesting IP address is over its allowed limit.",
                           "rate_limit_exceeded", {**headers, "X-RateLimit-Remaining": "0", **extra})
        if failure.status == 503:
            return problem(503, "Service Unavailable", "The server is currently unable to handle the request.", "service_unavailable", headers)
        return problem(failure.status, "Internal Server Error", "An error occurred while processing this request.", "server_error", headers)

    def notify(self) -> None:
        """Wake SSE streams: something changed."""
        self.changed.set()
        self.changed = asyncio.Event()

    def hal(self, body: dict, status: int = 200) -> web.Response:
        return web.Response(status=status, text=json.dumps(body), content_type="application/hal+json")

    def wants_stream(self, request: web.Request) -> bool:
        return "text/event-stream" in request.headers.get("Accept", "")

    async def _start_live(self, app) -> None:
        async def run():
            while True:
                await asyncio.sleep(1.0)
                self.world.live_step(self.rng)
                self.notify()

        app["live"] = asyncio.ensure_future(run())

    # -- Horizon endpoints -------------------------------------------------------------------

    async def root(self, request):
        return self.hal({"_links": {"order_book": self.world.link("/order_book{?selling_asset_type,selling_asset_code,selling_asset_issuer,buying_asset_type,buying_asset_code,buying_asset_issuer,limit}", True)},
                         "horizon_version": "local-test", "core_version": "local-test", "network_passphrase": "Test SDF Network ; September 2015",
                         "history_latest_ledger": self.world.ledger, "current_protocol_version": 22})

    async def order_book(self, request):
        selling, buying = asset_param(request.query, "selling"), asset_param(request.query, "buying")
        limit = limit_param(request.query, 20)
        if self.wants_stream(request):
            return await self._stream(request, lambda after: ([(None, self.world.order_book_json(selling, buying, limit))], after))
        return self.hal(self.world.order_book_json(selling, buying, limit))

    def _trade_page(self, request) -> tuple[list[dict], str]:
        query = request.query
        base, counter = asset_param(query, "base"), asset_param(query, "counter")
        order = query.get("order", "asc")
        rows = self.world.trades_after(base, counter, query.get("cursor"), order, limit_param(query))
        return [self.world.trade_json(market, trade) for market, trade in rows], order

    async def trades(self, request):
        if self.wants_stream(request):
            base, counter = asset_param(request.query, "base"), asset_param(request.query, "counter")
            cursor = request.headers.get("Last-Event-ID") or request.query.get("cursor") or "now"
            if cursor == "now":
                market = self.world.markets.get((base, counter))
                cursor = market.trades[-1].token if market and market.trades else "0-0"

            def page(after):
                rows = self.world.trades_after(base, counter, after, "asc", MAX_LIMIT)
                records = [(t.token, self.world.trade_json(m, t)) for m, t in rows]
                return records, (records[-1][0] if records else after)

            return await self._stream(request, page, cursor)
        records, order = self._trade_page(request)
        query = "&".join(f"{k}={v}" for k, v in request.query.items())
        last = records[-1]["paging_token"] if records else request.query.get("cursor", "")
        first = records[0]["paging_token"] if records else request.query.get("cursor", "")
        flip = "desc" if order == "asc" else "asc"
        return self.hal(self.world.collection("/trades", query, records, f"cursor={last}&order={order}", f"cursor={first}&order={flip}"))

    async def trade_aggregations(self, request):
        query = request.query
        base, counter = asset_param(query, "base"), asset_param(query, "counter")
        try:
            resolution = int(query["resolution"])
            start, end = int(query.get("start_time", 0)), int(query.get("end_time", int(time.time() * 1000)))
        except (KeyError, ValueError):
            return problem(400, "Bad Request", "resolution, start_time and end_time must be integers", "bad_request")
        if resolution not in (60000, 300000, 900000, 3600000, 86400000, 604800000):
            return problem(400, "Bad Request", "resolution is invalid", "bad_request")
        records = self.world.aggregations_json(base, counter, start, end, resolution, limit_param(query, 200))
        q = "&".join(f"{k}={v}" for k, v in query.items())
        return self.hal(self.world.collection("/trade_aggregations", q, records, q, q))

    async def transaction(self, request):
        tx = self.world.transactions.get(request.match_info["hash"])
        if tx is None:
            return problem(404, "Resource Missing", "The resource at the url requested was not found.", "not_found")
        return self.hal(self.world.transaction_json(tx))

    async def account(self, request):
        account = request.match_info["account"]
        if account not in self.world.accounts:
            return problem(404, "Resource Missing", "The resource at the url requested was not found.", "not_found")
        return self.hal(self.world.account_json(account))

    def _account_rows(self, request) -> list:
        """The account's transactions, as Horizon pages them: `cursor` (a paging token, "now"),
        `order`, `limit`, and failed ones only with include_failed=true."""
        account, query = request.match_info["account"], request.query
        rows = [tx for tx in self.world.transactions.values() if account in (tx.source, tx.destination)]
        if query.get("include_failed", "false").lower() != "true":
            rows = [tx for tx in rows if tx.successful]
        desc = query.get("order", "asc") == "desc"
        cursor = query.get("cursor")
        if cursor == "now":
            rows = [] if not desc else rows
        elif cursor:
            try:
                key = int(cursor.split("-")[0])
            except ValueError:
                raise web.HTTPBadRequest(text=json.dumps({"type": "https://stellar.org/horizon-errors/bad_request",
                                                          "title": "Bad Request", "status": 400, "detail": "invalid cursor"}),
                                         content_type="application/json") from None
            rows = [tx for tx in rows if (int(tx.token.split("-")[0]) < key if desc else int(tx.token.split("-")[0]) > key)]
        if desc:
            rows.reverse()
        return rows[: limit_param(query)]

    async def account_transactions(self, request):
        rows = [self.world.transaction_json(tx) for tx in self._account_rows(request)]
        path = request.path
        return self.hal(self.world.collection(path, request.query_string, rows, request.query_string, request.query_string))

    async def account_payments(self, request):
        rows = [self.world.payment_json(tx) for tx in self._account_rows(request)]
        return self.hal(self.world.collection(request.path, request.query_string, rows, request.query_string, request.query_string))

    async def submit_async(self, request):
        """Horizon's async submission: decode, remember as received (in no ledger until
        /_control/include), answer PENDING with the real hash, or a scripted answer."""
        from stellar_sdk import TransactionEnvelope

        from .world import TESTNET_PASSPHRASE, result_xdr

        form = await request.post()
        xdr = form.get("tx")
        if not xdr:
            return problem(400, "Transaction Malformed", "tx is required", "transaction_malformed")
        try:
            envelope = TransactionEnvelope.from_xdr(str(xdr), TESTNET_PASSPHRASE)
        except Exception:
            return problem(400, "Transaction Malformed", "Horizon could not decode the transaction envelope", "transaction_malformed")
        tx_hash = envelope.hash_hex()
        if self.submission_answers:
            answer = self.submission_answers.pop(0)
            status = {"ERROR": 400, "DUPLICATE": 409, "TRY_AGAIN_LATER": 503}[answer["status"]]
            body = {"tx_status": answer["status"], "hash": tx_hash}
            if answer["status"] == "ERROR":
                body["errorResultXdr"] = result_xdr(False, answer.get("result_codes"))
            return web.Response(status=status, text=json.dumps(body), content_type="application/json")
        tx = envelope.transaction
        if tx_hash in self.world.submitted or tx_hash in self.world.transactions:
            # Seen before (a client retrying after a lost answer): core reports it, nothing changes.
            return web.Response(status=409, text=json.dumps({"tx_status": "DUPLICATE", "hash": tx_hash}), content_type="application/json")
        refusal = self._core_refusal(envelope)
        if refusal is not None:
            body = {"tx_status": "ERROR", "hash": tx_hash, "errorResultXdr": result_xdr(False, {"transaction": refusal})}
            return web.Response(status=400, text=json.dumps(body), content_type="application/json")
        op = tx.operations[0] if tx.operations else None
        asset = getattr(op, "asset", None)
        self.world.submitted[tx_hash] = {
            "xdr": str(xdr), "source": tx.source.account_id,
            "destination": getattr(getattr(op, "destination", None), "account_id", "") if op else "",
            "amount": str(getattr(op, "amount", "0")), "memo": getattr(tx.memo, "memo_text", b"").decode() if hasattr(tx.memo, "memo_text") else None,
            "asset": "native" if asset is None or asset.is_native() else f"{asset.code}:{asset.issuer}",
            "sequence": tx.sequence,
        }
        return web.Response(status=201, text=json.dumps({"tx_status": "PENDING", "hash": tx_hash}), content_type="application/json")

    def _core_refusal(self, envelope) -> str | None:
        """What stellar-core checks of a funded source account: the next sequence number and a
        valid signature of its key (accounts never funded through the control API are not checked)."""
        from stellar_sdk import Keypair
        from stellar_sdk.exceptions import BadSignatureError

        source = envelope.transaction.source.account_id
        account = self.world.accounts.get(source)
        if account is None:
            return None
        if envelope.transaction.sequence != account["sequence"] + 1:
            return "tx_bad_seq"
        keypair, signed = Keypair.from_public_key(source), False
        for signature in envelope.signatures:
            try:
                keypair.verify(envelope.hash(), signature.signature)
                signed = True
            except BadSignatureError:
                continue
        return None if signed else "tx_bad_auth"

    async def _stream(self, request, page, cursor=None) -> web.StreamResponse:
        """Horizon's SSE: a `retry` and a "hello", then one event per record (id = paging token)."""
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache", "Connection": "keep-alive"})
        await response.prepare(request)
        await response.write(b'retry: 1000\nevent: open\ndata: "hello"\n\n')
        last_sent = None
        while True:
            changed = self.changed
            records, cursor = page(cursor)
            for event_id, record in records:
                body = json.dumps(record)
                if event_id is None and body == last_sent:
                    continue  # the order-book stream sends a book only when it changed
                last_sent = body
                head = f"id: {event_id}\n" if event_id else ""
                await response.write(f"{head}data: {body}\n\n".encode())
            try:
                await asyncio.wait_for(changed.wait(), SSE_KEEPALIVE_SECONDS)
            except asyncio.TimeoutError:
                await response.write(b": keepalive\n\n")

    # -- control API ---------------------------------------------------------------------------

    async def control_trade(self, request):
        body = await request.json()
        trade = self.world.add_trade(body["base"], body["counter"], body["price"], body["amount"], bool(body.get("base_is_seller", True)))
        return web.json_response(self.world.trade_json(self.world.market(body["base"], body["counter"]), trade))

    async def control_orderbook(self, request):
        body = await request.json()
        self.world.set_book(body["base"], body["counter"], body.get("bids", []), body.get("asks", []))
        return web.json_response({"ok": True})

    async def control_fail(self, request):
        body = await request.json()
        self.failures.append(Failure(int(body.get("count", 1)), int(body.get("status", 500)), body.get("mode", "status"),
                                     body.get("retry_after"), float(body.get("delay", 5.0)), body.get("path"), body.get("match")))
        return web.json_response({"ok": True})

    async def control_ratelimit(self, request):
        body = await request.json()
        self.rate_limit = int(body["limit"])
        self.window_start, self.window_used = time.time(), 0
        return web.json_response({"ok": True})

    async def control_transaction(self, request):
        body = await request.json()
        tx = self.world.add_transaction(body["source"], body["destination"], body["amount"], body.get("asset", "native"),
                                        bool(body.get("successful", True)), body.get("memo"), body.get("hash"),
                                        result_codes=body.get("result_codes"), at=body.get("at"))
        return web.json_response(self.world.transaction_json(tx))

    async def control_include(self, request):
        body = await request.json()
        if body["hash"] not in self.world.submitted:
            return web.json_response({"error": "not submitted"}, status=404)
        tx = self.world.include_submitted(body["hash"], bool(body.get("successful", True)), body.get("result_codes"))
        return web.json_response(self.world.transaction_json(tx))

    async def control_submission(self, request):
        self.submission_answers.append(await request.json())
        return web.json_response({"ok": True})

    async def control_account(self, request):
        body = await request.json()
        row = self.world.fund_account(body["account"], body.get("sequence"), body.get("balance", "10000"))
        return web.json_response({"account": body["account"], "sequence": str(row["sequence"])})

    async def control_submitted(self, request):
        return web.json_response(self.world.submitted)

    async def control_reset(self, request):
        self.world = World()
        self.failures.clear()
        self.submission_answers.clear()
        self.requests.clear()
        self.rate_limit, self.window_start, self.window_used = DEFAULT_RATE_LIMIT, time.time(), 0
        return web.json_response({"ok": True})

    async def control_requests(self, request):
        return web.json_response(dict(self.requests))


# Requests per hour the tests' Horizon allows: Horizon's real 3600/h is what the market feed and
# the watchers plan for, and honouring X-RateLimit-Remaining they would crawl through a test run.
TEST_RATE_LIMIT = 10_000_000


class HorizonThread:
    """The local Horizon on a loopback port in a background thread, for the tests."""

    def __init__(self, port: int = 0, *, live: bool = False, rate_limit: int | None = None) -> None:
        self.port = port
        self.live = live
        self.rate_limit = rate_limit  # None: Horizon's own default
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="local-horizon", daemon=True)
        self.horizon: LocalHorizon | None = None
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> HorizonThread:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(10)
        return self

    async def _start(self) -> None:
        self.horizon = LocalHorizon(live=self.live)
        if self.rate_limit is not None:
            self.horizon.rate_limit = self.rate_limit
        self._runner = web.AppRunner(self.horizon.app, shutdown_timeout=0.5, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]

    def requests_served(self) -> dict:
        """{path: count} of the Horizon requests served so far (as GET /_control/requests)."""
        return asyncio.run_coroutine_threadsafe(self._requests_served(), self.loop).result(10)

    async def _requests_served(self) -> dict:
        return dict(self.horizon.requests)  # copied on Horizon's own loop, where it changes

    async def served(self, path: str, *, more_than: int = 0, timeout: float = 30) -> None:
        """Until Horizon has counted more than `more_than` requests for `path`. A request is
        counted before it is answered, in the same step: once counted, its answer is fixed, and
        what the test changes now is not in it."""
        deadline = time.monotonic() + timeout
        while (await asyncio.to_thread(self.requests_served)).get(path, 0) <= more_than:
            assert time.monotonic() < deadline, f"nobody asked Horizon for {path} in {timeout} s"
            await asyncio.sleep(0.1)

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


async def serve(host: str, port: int, *, live: bool) -> None:
    horizon = LocalHorizon(live=live)
    runner = web.AppRunner(horizon.app)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    print(f"local Horizon on http://{host}:{port} ({'live demo markets' if live else 'empty; script it via /_control/'})", flush=True)
    await asyncio.Event().wait()
