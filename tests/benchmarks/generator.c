// The benchmark's WebSocket load generator: N raw clients speaking Engine.IO v4 / Socket.IO v5
// text frames over WebSocket, on one epoll loop.
//
// In C because the generator must not be what a run measures: the Node one it replaced (raw `ws`)
// filled its core at ~200,000-320,000 msg/s, where a Galaxy process had CPU to spare. Here a
// message costs the kernel's read, a frame header and two number scans (node/generator.mjs stays
// for --transport polling).
//
// Talks to the harness (tests/benchmarks/__main__.py) over stdin/stdout. Input lines:
//   HOST PORT PATH ROOM N ANONYMOUS(0|1)
//   N tokens, one per line (none when ANONYMOUS is 1)
//   stop K            (later: wait until each client has K updates, or DRAIN_MS passed)
// Output lines, JSON, the same as node/generator.mjs':
//   {"event": "ready", ...} once every client is connected and subscribed (or failed)
//   {"event": "report", ...} after "stop K"; then it closes every socket and exits.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

// Connections opening at once (as node/generator.mjs: daphne's listen backlog is 50).
#define IN_FLIGHT 50
#define DRAIN_MS 5000.0
#define UPDATE_PREFIX "42[\"market:price_update\","
#define STDIN_TAG ((uint64_t)-1)

enum state { IDLE, HANDSHAKE, OPEN, CLOSED };

struct client {
  int fd;
  enum state state;
  int finished; // its connect phase ended (subscribed or failed)
  int32_t last_seq;
  uint32_t received;
  char *buf;
  size_t len, cap;
};

static struct client *clients;
static char **tokens;
static int n, anonymous, started, finished_count, subscribed, failed;
static long duplicates, authenticated;
static double first_ts = 1e300, last_rx;
static double *latencies;
static size_t latency_count, latency_cap;
static char host[256], path[1024], room[256];
static int port, epfd;

static double now_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_REALTIME, &t);
  return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

static void die(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  exit(1);
}

static void finish(int i, int ok) {
  struct client *c = &clients[i];
  if (c->finished) return;
  c->finished = 1;
  finished_count++;
  if (ok) subscribed++;
  else failed++;
}

static void drop(int i, const char *why) {
  struct client *c = &clients[i];
  if (!c->finished) fprintf(stderr, "client %d: %s\n", i, why);
  finish(i, 0);
  if (c->fd >= 0) {
    close(c->fd);
    c->fd = -1;
  }
  c->state = CLOSED;
}

// A masked client frame (RFC 6455 5.3: clients mask; the key's value is the client's choice).
static void send_frame(int i, int opcode, const char *text, size_t len) {
  static const unsigned char key[4] = {0x37, 0xfa, 0x21, 0x3d};
  unsigned char frame[16 + 4096];
  size_t h = 0;
  if (len > 4096) die("frame too long\n");
  frame[h++] = 0x80 | opcode;
  if (len < 126) frame[h++] = 0x80 | len;
  else {
    frame[h++] = 0x80 | 126;
    frame[h++] = len >> 8;
    frame[h++] = len & 0xff;
  }
  memcpy(frame + h, key, 4);
  h += 4;
  for (size_t k = 0; k < len; k++) frame[h + k] = text[k] ^ key[k & 3];
  // Tiny frames into an empty send buffer: a short write means the connection is gone.
  if (write(clients[i].fd, frame, h + len) != (ssize_t)(h + len)) drop(i, "write failed");
}

static void send_text(int i, const char *text, size_t len) { send_frame(i, 1, text, len); }

static void record_latency(double ms) {
  if (latency_count == latency_cap) {
    latency_cap = latency_cap ? latency_cap * 2 : 1 << 20;
    latencies = realloc(latencies, latency_cap * sizeof *latencies);
    if (!latencies) die("out of memory\n");
  }
  latencies[latency_count++] = ms;
}

// The number after "key": in a packet of len bytes, or NAN.
static double number_after(const char *p, size_t len, const char *key) {
  const char *hit = memmem(p, len, key, strlen(key));
  return hit ? strtod(hit + strlen(key), NULL) : __builtin_nan("");
}

static int starts(const char *p, size_t len, const char *prefix) {
  size_t k = strlen(prefix);
  return len >= k && memcmp(p, prefix, k) == 0;
}

// One Engine.IO packet (a text frame's payload; nul-terminated by the caller).
static void packet(int i, char *p, size_t len) {
  struct client *c = &clients[i];
  if (starts(p, len, UPDATE_PREFIX)) {
    double seq = number_after(p, len, "\"seq\":"), ts = number_after(p, len, "\"ts\":");
    if (seq <= c->last_seq) duplicates++;
    else {
      double now = now_ms();
      c->last_seq = (int32_t)seq;
      c->received++;
      record_latency(now - ts);
      if (ts < first_ts) first_ts = ts;
      last_rx = now;
    }
  } else if (len == 1 && p[0] == '2') {
    send_text(i, "3", 1); // Engine.IO ping -> pong
  } else if (len > 0 && p[0] == '0') {
    char connect[4096];
    int k = anonymous ? snprintf(connect, sizeof connect, "40")
                      : snprintf(connect, sizeof connect, "40{\"token\":\"%s\"}", tokens[i]);
    send_text(i, connect, k); // Engine.IO open -> Socket.IO CONNECT
  } else if (starts(p, len, "40")) {
    char sub[512];
    int k = snprintf(sub, sizeof sub, "42[\"subscribe\",{\"room\":\"%s\"}]", room);
    send_text(i, sub, k);
  } else if (starts(p, len, "42[\"authenticated\"")) {
    authenticated++;
  } else if (starts(p, len, "42[\"subscribed\"")) {
    finish(i, 1);
  } else if (starts(p, len, "44") || starts(p, len, "42[\"error\"") || starts(p, len, "42[\"auth_error\"")) {
    fprintf(stderr, "client %d: %.200s\n", i, p);
    finish(i, 0);
  }
}

// Every whole frame in the client's buffer; returns bytes consumed.
static size_t frames(int i) {
  struct client *c = &clients[i];
  size_t at = 0;
  while (c->state == OPEN) {
    unsigned char *b = (unsigned char *)c->buf + at;
    size_t avail = c->len - at, h = 2;
    if (avail < 2) break;
    uint64_t plen = b[1] & 0x7f;
    if (plen == 126) {
      if (avail < 4) break;
      plen = (b[2] << 8) | b[3];
      h = 4;
    } else if (plen == 127) {
      if (avail < 10) break;
      plen = 0;
      for (int k = 2; k < 10; k++) plen = (plen << 8) | b[k];
      h = 10;
    }
    if (b[1] & 0x80) { drop(i, "masked frame from the server"); break; }
    if (avail < h + plen) break;
    int opcode = b[0] & 0x0f;
    if (!(b[0] & 0x80)) { drop(i, "fragmented frame (not expected from a server here)"); break; }
    char *payload = (char *)b + h;
    if (opcode == 1) {
      char saved = payload[plen];
      payload[plen] = 0; // the buffer always has a spare byte (see on_readable)
      packet(i, payload, plen);
      payload[plen] = saved;
    } else if (opcode == 8) {
      drop(i, "closed by the server");
      break;
    } else if (opcode == 9 && plen <= 125) {
      send_frame(i, 10, payload, plen); // daphne pings WebSocket clients, as browsers answer
    }
    at += h + plen;
  }
  return at;
}

static void on_readable(int i) {
  struct client *c = &clients[i];
  for (;;) {
    if (c->cap - c->len < 4096 + 1) {
      c->cap = c->cap ? c->cap * 2 : 8192;
      c->buf = realloc(c->buf, c->cap);
      if (!c->buf) die("out of memory\n");
    }
    size_t room_left = c->cap - c->len - 1;
    ssize_t got = read(c->fd, c->buf + c->len, room_left);
    if (got == 0) { drop(i, "connection closed"); return; }
    if (got < 0) {
      if (errno == EAGAIN) return;
      drop(i, strerror(errno));
      return;
    }
    c->len += got;
    if (c->state == HANDSHAKE) {
      c->buf[c->len] = 0;
      char *end = strstr(c->buf, "\r\n\r\n");
      if (!end) continue;
      if (strncmp(c->buf, "HTTP/1.1 101", 12) != 0) { drop(i, "upgrade refused"); return; }
      size_t head = end + 4 - c->buf;
      memmove(c->buf, c->buf + head, c->len - head); // the OPEN packet may come in the same read
      c->len -= head;
      c->state = OPEN;
    }
    size_t used = frames(i);
    if (c->state != OPEN) return;
    memmove(c->buf, c->buf + used, c->len - used);
    c->len -= used;
    // A read that did not fill the buffer took everything there was: epoll says when there is
    // more (a second read to see EAGAIN was a third of the generator's system calls).
    if ((size_t)got < room_left) return;
  }
}

static void open_next(void) {
  if (started >= n) return;
  int i = started++;
  struct client *c = &clients[i];
  c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  if (c->fd < 0) { drop(i, strerror(errno)); return; }
  int one = 1;
  setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(port)};
  inet_pton(AF_INET, host, &addr.sin_addr);
  if (connect(c->fd, (struct sockaddr *)&addr, sizeof addr) < 0 && errno != EINPROGRESS) {
    drop(i, strerror(errno));
    return;
  }
  c->state = IDLE;
  struct epoll_event ev = {.events = EPOLLOUT, .data.u64 = i};
  epoll_ctl(epfd, EPOLL_CTL_ADD, c->fd, &ev);
}

static void on_connected(int i) {
  struct client *c = &clients[i];
  int err = 0;
  socklen_t l = sizeof err;
  getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &l);
  if (err) { drop(i, strerror(err)); return; }
  char req[2048];
  int k = snprintf(req, sizeof req,
                   "GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                   "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
                   path, host, port);
  if (write(c->fd, req, k) != k) { drop(i, "write failed"); return; }
  c->state = HANDSHAKE;
  struct epoll_event ev = {.events = EPOLLIN, .data.u64 = i};
  epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
}

// Lines from stdin, read with read(2) so nothing waits in stdio's buffer behind epoll's back.
static char in_buf[1 << 16];
static size_t in_len;

static char *next_line(int blocking) {
  for (;;) {
    char *nl = memchr(in_buf, '\n', in_len);
    if (nl) {
      static char line[1 << 16];
      size_t k = nl - in_buf;
      memcpy(line, in_buf, k);
      line[k] = 0;
      memmove(in_buf, nl + 1, in_len - k - 1);
      in_len -= k + 1;
      return line;
    }
    if (!blocking) return NULL;
    ssize_t got = read(0, in_buf + in_len, sizeof in_buf - in_len);
    if (got <= 0) exit(0); // the harness went away
    in_len += got;
  }
}

static int by_value(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static void print_ms(const char *name, double v, int last) {
  printf("\"%s\": %.3f%s", name, v, last ? "" : ", ");
}

static void report(long expected) {
  double deadline = now_ms() + DRAIN_MS;
  struct epoll_event events[256];
  for (;;) {
    long total = 0;
    for (int i = 0; i < n; i++) total += clients[i].received;
    if (total >= expected * subscribed || now_ms() >= deadline) break;
    int k = epoll_wait(epfd, events, 256, 50);
    for (int e = 0; e < k; e++)
      if (events[e].data.u64 != STDIN_TAG) on_readable((int)events[e].data.u64);
  }
  long total = 0;
  int open = 0;
  for (int i = 0; i < n; i++) {
    total += clients[i].received;
    open += clients[i].state == OPEN;
  }
  qsort(latencies, latency_count, sizeof *latencies, by_value);
  printf("{\"event\": \"report\", \"delivered\": %ld, \"duplicates\": %ld, \"authenticated\": %ld, ", total, duplicates,
         authenticated);
  if (latency_count) {
    size_t m = latency_count;
    print_ms("first_ts_ms", first_ts, 0);
    print_ms("last_rx_ms", last_rx, 0);
    printf("\"open_at_end\": %d, ", open);
    print_ms("p50_ms", latencies[(size_t)(0.50 * m)], 0);
    print_ms("p95_ms", latencies[(size_t)(0.95 * m)], 0);
    print_ms("p99_ms", latencies[(size_t)(0.99 * m)], 0);
    print_ms("max_ms", latencies[m - 1], 1);
  } else {
    printf("\"first_ts_ms\": null, \"last_rx_ms\": null, \"open_at_end\": %d, \"p50_ms\": null, \"p95_ms\": null, "
           "\"p99_ms\": null, \"max_ms\": null", open);
  }
  printf("}\n");
  fflush(stdout);
  exit(0); // the kernel closes every socket
}

int main(void) {
  char *line = next_line(1);
  if (sscanf(line, "%255s %d %1023s %255s %d %d", host, &port, path, room, &n, &anonymous) != 6)
    die("bad configuration line: %s\n", line);
  clients = calloc(n, sizeof *clients);
  tokens = calloc(n, sizeof *tokens);
  for (int i = 0; i < n; i++) {
    clients[i].fd = -1;
    clients[i].last_seq = -1;
    if (!anonymous) tokens[i] = strdup(next_line(1));
  }
  epfd = epoll_create1(0);
  fcntl(0, F_SETFL, fcntl(0, F_GETFL) | O_NONBLOCK);
  struct epoll_event in_ev = {.events = EPOLLIN, .data.u64 = STDIN_TAG};
  epoll_ctl(epfd, EPOLL_CTL_ADD, 0, &in_ev);

  double start = now_ms();
  int ready_said = 0;
  for (int k = 0; k < IN_FLIGHT && k < n; k++) open_next();
  struct epoll_event events[1024];
  for (;;) {
    int k = epoll_wait(epfd, events, 1024, 100);
    for (int e = 0; e < k; e++) {
      uint64_t tag = events[e].data.u64;
      if (tag == STDIN_TAG) {
        ssize_t got = read(0, in_buf + in_len, sizeof in_buf - in_len);
        if (got == 0) exit(0); // the harness went away
        if (got > 0) in_len += got;
        char *cmd;
        long count;
        while ((cmd = next_line(0)))
          if (sscanf(cmd, "stop %ld", &count) == 1) report(count);
        continue;
      }
      int i = (int)tag;
      if (clients[i].state == IDLE) on_connected(i);
      else if (clients[i].state != CLOSED) on_readable(i);
    }
    // Each finished connect opens the next one: IN_FLIGHT lanes, as the Node generator's.
    while (started < n && started - finished_count < IN_FLIGHT) open_next();
    if (!ready_said && finished_count == n) {
      ready_said = 1;
      printf("{\"event\": \"ready\", \"connect_s\": %.6f, \"subscribed\": %d, \"failed\": %d}\n",
             (now_ms() - start) / 1000, subscribed, failed);
      fflush(stdout);
    }
  }
}
