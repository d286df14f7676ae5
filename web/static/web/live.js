// The live page's client: one socket.io connection, the pair's rooms, and the signed-in user's room.
// `io` is the socket.io-client bundle the server serves at /socket.io/socket.io.min.js.

const pair = document.body.dataset.pair;
const $ = (id) => document.getElementById(id);
const MAX_POINTS = 300; // chart points kept: five minutes of one-second updates
const MAX_TAPE = 50; // trades and activity lines kept
const BOOK_LEVELS = 10; // levels shown per side (the server sends up to MARKET_ORDERBOOK_DEPTH)
const TOKEN_KEY = "galaxy.token"; // sessionStorage: the pasted token survives switching pairs

// Same origin; polling first, then the upgrade to WebSocket, as any Socket.IO v4 client does.
const socket = io({ reconnectionDelayMax: 5000 });
window.galaxySocket = socket; // for the browser console (and the tests)

function el(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined) node.textContent = text; // never innerHTML: data is text
  if (className) node.className = className;
  return node;
}

function fmt(value, digits = 7) {
  const n = Number(value);
  return Number.isFinite(n) ? n.toLocaleString("en-US", { maximumFractionDigits: digits }) : "?";
}

function clock(ms) {
  const date = new Date(typeof ms === "number" ? ms : Date.parse(ms));
  return Number.isNaN(date.getTime()) ? "?" : date.toLocaleTimeString("en-GB");
}

function notice(text) {
  const node = $("notice");
  node.textContent = text;
  node.hidden = !text;
}

function prependCapped(list, item) {
  list.prepend(item);
  while (list.children.length > MAX_TAPE) list.lastElementChild.remove();
}

// -- connection state: transport, connected / reconnecting / recovered -----------------------

function setState(state, detail) {
  const node = $("conn-state");
  node.dataset.state = state;
  node.textContent = detail ? `${state} (${detail})` : state;
}

function showTransport() {
  $("transport").textContent = socket.io.engine?.transport?.name ?? "none";
}

socket.on("connect", () => {
  setState(socket.recovered ? "recovered" : "connected");
  $("socket-id").textContent = socket.id;
  showTransport();
  socket.io.engine.on("upgrade", showTransport); // a new engine for each reconnection
  // Recovered: the server gave back our rooms, user and every missed event. Otherwise: join again.
  if (!socket.recovered) joinRooms();
});
socket.on("disconnect", (reason) => {
  setState(socket.active ? "reconnecting" : "disconnected", reason);
  $("transport").textContent = "none";
});
socket.on("connect_error", (error) => setState(socket.active ? "reconnecting" : "disconnected", error.message));
socket.io.on("reconnect_attempt", (attempt) => setState("reconnecting", `attempt ${attempt}`));
socket.on("error", ({ event, code, message }) => notice(`${event}: ${code}: ${message}`));

function replyCheck(what) {
  return (reply) => { if (reply && !reply.ok) notice(`${what}: ${reply.error.code}: ${reply.error.message}`); };
}

function joinRooms() {
  socket.emit("market:subscribe", { pairs: [pair] }, replyCheck("market:subscribe"));
  socket.emit("market:subscribe_orderbook", { pair }, replyCheck("market:subscribe_orderbook"));
  socket.emit("subscribe", { room: "system:notifications" }, replyCheck("subscribe system:notifications"));
  if (token) socket.emit("authenticate", { token });
}

// -- price, 24 h figures and the chart ---------------------------------------------------------

const points = [];
let lastSequence = null;

function showPrice(data) {
  $("price").textContent = `${fmt(data.price)} ${pair.split("_")[1]}`;
  const change = Number(data.change24h) * 100;
  const arrow = change > 0 ? "▲ up" : change < 0 ? "▼ down" : "= flat";
  $("change").textContent = `${arrow} ${Math.abs(change).toFixed(2)} %`;
  $("volume").textContent = `${fmt(data.volume, 2)} ${pair.split("_")[0]}`;
  $("updated").textContent = clock(data.timestamp ?? Date.now());
}

function drawChart() {
  const min = Math.min(...points), max = Math.max(...points), span = max - min;
  const step = points.length > 1 ? 300 / (points.length - 1) : 300;
  const y = (p) => (span ? 95 - ((p - min) / span) * 90 : 50).toFixed(1); // all equal: mid-height
  const xy = points.map((p, i) => `${(i * step).toFixed(1)},${y(p)}`);
  if (points.length === 1) xy.push(`300,${xy[0].split(",")[1]}`); // one price: a flat line
  $("chart-line").setAttribute("points", xy.join(" "));
  const chart = $("chart");
  chart.dataset.points = String(points.length);
  const summary = `${points.length} update${points.length === 1 ? "" : "s"}, low ${fmt(min)}, high ${fmt(max)}, last ${fmt(points.at(-1))}`;
  chart.setAttribute("aria-label", `price chart: ${summary}`);
  $("chart-range").textContent = summary;
}

// Room events end with their recovery offset: (data, offset). Only the data matters here.
socket.on("market:price_update", (data) => {
  if (data.pair !== pair) return;
  showPrice(data);
  // The price sent at subscribe time can race a broadcast of the same state: same sequence.
  if (data.sequence !== undefined && data.sequence === lastSequence) return;
  lastSequence = data.sequence;
  points.push(Number(data.price));
  if (points.length > MAX_POINTS) points.shift();
  drawChart();
});

// -- order book --------------------------------------------------------------------------------

function showSide(id, levels) {
  const table = $(id);
  const rows = levels.slice(0, BOOK_LEVELS);
  const most = Math.max(0, ...rows.map(([, amount]) => Number(amount))) || 1;
  table.tBodies[0].replaceChildren(...rows.map(([price, amount]) => {
    const row = el("tr");
    const bar = el("td", fmt(amount, 2), "amount");
    bar.style.backgroundSize = `${((Number(amount) / most) * 100).toFixed(1)}% 100%`;
    row.append(el("td", fmt(price)), bar);
    return row;
  }));
  table.dataset.levels = String(rows.length);
  table.dataset.best = rows.length ? String(rows[0][0]) : "";
}

socket.on("market:orderbook_update", (data) => {
  if (data.pair !== pair) return;
  showSide("bids", data.bids);
  showSide("asks", data.asks);
});

// -- trades tape -------------------------------------------------------------------------------

socket.on("market:trade", (trade) => {
  if (trade.pair !== pair || document.querySelector(`#trades li[data-id="${CSS.escape(trade.id)}"]`)) return;
  const item = el("li");
  item.dataset.id = trade.id;
  item.append(el("span", trade.side.toUpperCase(), "side"),
    ` ${fmt(trade.volume, 2)} at ${fmt(trade.price)} · ${clock(trade.tradedAt)}`);
  prependCapped($("trades"), item);
  $("trades-empty").hidden = true;
});

// -- system notifications (operators: REST POST /api/system/notifications or the Django admin) --

const MAX_NOTIFICATIONS = 5; // the latest few stay in view; older ones are news no longer

socket.on("system:notification", ({ id, level, title, message, timestamp }) => {
  const list = $("notifications");
  if (list.querySelector(`li[data-id="${CSS.escape(String(id))}"]`)) return; // recovery may replay it
  const item = el("li", undefined, `level-${level}`);
  item.dataset.id = id;
  item.dataset.level = level;
  // The level is a word, not only a colour: "CRITICAL", "WARNING", "INFO".
  item.append(el("strong", String(level).toUpperCase()), ` ${clock(timestamp)} · `);
  if (title) item.append(el("strong", title), ": ");
  item.append(message);
  list.prepend(item);
  while (list.children.length > MAX_NOTIFICATIONS) list.lastElementChild.remove();
  list.dataset.count = String(Number(list.dataset.count) + 1);
});

// -- the signed-in user's wallets and automations ----------------------------------------------

const short = (text) => (text && text.length > 14 ? `${text.slice(0, 6)}…${text.slice(-6)}` : text ?? "?");
const ACTIVITY = {
  "transaction:pending": (d) => `${fmt(d.amount)} ${d.asset} from ${short(d.fromAddress)} to ${short(d.toAddress)}, tx ${short(d.hash)}`,
  "transaction:confirmed": (d) => `tx ${short(d.hash)}${d.blockNumber ? ` in ledger ${d.blockNumber}` : ""}`,
  "transaction:failed": (d) => `tx ${short(d.hash)}: ${d.error}${d.errorCode ? ` (${d.errorCode})` : ""}`,
  "automation:triggered": (d) => `automation ${short(d.automationId)}: ${d.triggerCondition}`,
  "automation:executed": (d) => `automation ${short(d.automationId)}: ${d.result}${d.transactionHash ? `, tx ${short(d.transactionHash)}` : ""}${d.error ? `: ${d.error}` : ""}`,
  "automation:error": (d) => `automation ${short(d.automationId)}: ${d.error} (${d.errorCode})`,
};

for (const [event, describe] of Object.entries(ACTIVITY)) {
  socket.on(event, (data) => {
    const item = el("li");
    item.dataset.event = event;
    item.append(el("strong", event.replace(":", " ").replace("_", " ").toUpperCase()), ` ${clock(Date.now())} · ${describe(data)}`);
    prependCapped($("activity"), item);
  });
}

function authState(state, text) {
  const node = $("auth-state");
  node.dataset.state = state;
  node.textContent = text;
}

socket.on("authenticated", ({ userId, userEmail, permissions }) => {
  authState("authenticated", `Signed in as ${userEmail || userId}${permissions?.length ? ` (${permissions.join(", ")})` : ""}: your wallets' transactions and your automations' events appear below.`);
});
socket.on("auth_error", ({ error }) => authState("error", `Not signed in: ${error}.`));

// A token from the URL fragment (never sent to the server: #token=...), else this tab's last one.
let token = sessionStorage.getItem(TOKEN_KEY) || "";
const fromHash = new URLSearchParams(location.hash.slice(1)).get("token");
if (fromHash) {
  token = fromHash;
  sessionStorage.setItem(TOKEN_KEY, token);
  history.replaceState(null, "", location.pathname + location.search);
}

$("token-form").addEventListener("submit", (event) => {
  event.preventDefault();
  token = $("token").value.trim();
  $("token").value = "";
  if (!token) return;
  sessionStorage.setItem(TOKEN_KEY, token);
  authState("pending", "Signing in…");
  socket.emit("authenticate", { token });
});

$("pair").addEventListener("change", (event) => event.target.form.submit());
