// SPDX-License-Identifier: Apache-2.0
//
// RedisClient: the connection pool, the deadline-driven I/O loop and the
// circuit breaker (public side: include/larder/redis/client.h).
//
// Design
// ------
// 1. I/O. hiredis 0.14's blocking API bounds each read()/write() with
//    SO_RCVTIMEO/SO_SNDTIMEO, not a whole call: a server that trickles bytes,
//    or a pipeline of many replies, can exceed the timeout many times over.
//    So we clear REDIS_BLOCK in ctx->flags, never let hiredis touch the
//    socket, and drive hiredis' buffers ourselves:
//
//      redisAppendCommandArgv x N         format every command into obuf
//      loop: send(obuf, MSG_NOSIGNAL |    until obuf is empty; poll(POLLOUT|POLLIN)
//                 MSG_DONTWAIT)           between tries, reading replies early
//                                         so neither side's buffers fill up
//      for each of N replies:
//        redisGetReplyFromReader          a complete reply already buffered?
//        else recv(); redisReaderFeed     a blocking recv bounded by SO_RCVTIMEO
//
//    The deadline is command_timeout from the start and is renewed whenever
//    bytes move (sent or received): a call fails once the server makes no
//    progress for command_timeout. For a single small command (one send, one
//    reply) that is a bound on the whole call; a 10 MB pipeline may take
//    longer, as long as the server keeps reading and answering.
//    The pool's sockets block (only for reads: every send is MSG_DONTWAIT)
//    with SO_RCVTIMEO = command_timeout, set once per connection
//    (make_reads_block). A reply that is not there yet is waited for inside
//    recv(), and since the receive timeout restarts with every read, exactly
//    like the progress deadline, the kernel enforces the same bound: one
//    syscall per reply instead of poll + read (on a paravirtualised VM each
//    syscall costs microseconds: a 100-key MGET is send + recv, as for
//    hiredis' own blocking API). A recv cut short by a signal, or one that
//    returns empty-handed a hair before the deadline, hands over to
//    poll(POLLIN, deadline) for what is left, so no signal stretches the
//    bound. Connections that are not the pool's (the connect-time AUTH/SELECT
//    exchange, the Sentinel lookups) stay non-blocking and poll() before
//    every read; so does the cluster path, which waits on several nodes'
//    sockets at once (its reads are MSG_DONTWAIT).
//    Any failure leaves the connection in an unknown state (replies may still
//    be in flight), so it is closed, never returned to the pool.
//    Writes use our own send(MSG_NOSIGNAL) on hiredis' output buffer instead
//    of redisBufferWrite, whose write() would raise SIGPIPE (killing the
//    process by default) when the server has gone away; a library must not
//    rely on the application ignoring SIGPIPE, nor change its disposition.
//
// 2. Pool. At most pool_size connections exist ("open"); idle ones sit on a
//    LIFO stack (the most recently used is the most likely to be alive and
//    warm). borrow() takes an idle one; else opens one if open < pool_size;
//    else waits on a condition variable until borrow_timeout. Connecting
//    happens outside the mutex, with its slot reserved (open is incremented
//    first). An idle connection may have been closed by the server (it
//    restarted, or closed us for idling); a restart must cost no failed
//    call. Two ways, by what the call sends:
//      * reads (retry_safe: GET, MGET, EXISTS, PTTL, TTL, PING, STRLEN, TYPE,
//        SCAN, DBSIZE, and pipelines of nothing else) take the idle
//        connection unchecked. If it fails because the peer closed it (EOF,
//        ECONNRESET, EPIPE; not a timeout) before a single reply byte came
//        back, and it was reused (not opened for this call), it is closed
//        and the call is sent again, once, on a connection borrowed the
//        checked way; only that second failure counts (failures, breaker).
//        Safe even when the server ran the command and then died or closed
//        us without answering: running a read twice equals running it once.
//      * anything else (SET, UNLINK, EVAL/EVALSHA, PUBLISH, user commands)
//        may not run twice, so it is never re-sent: before reusing an idle
//        connection, borrow() poll()s it for readability with a zero
//        timeout. An idle connection has no reply owed, so readable means
//        EOF/RST (or stray bytes) and the connection is dropped.
//    This is the standalone path; cluster and Sentinel calls always borrow
//    checked connections (a retry there would have to re-route per slot).
//    After a failed connect, new connections are refused without I/O for a
//    backoff that starts at reconnect_backoff_min and doubles per consecutive
//    failure up to reconnect_backoff_max; a successful connect resets it.
//
// 3. Breaker. States:
//
//        closed --(breaker_failures consecutive network failures)--> open
//          ^                                                          |
//          +------------- probe: connect + AUTH/SELECT + PING OK -----+
//
//    Closed: calls run; a network failure (not an error reply) increments
//    consecutive_failures, a success resets it. Open: calls fail at once with
//    kUnavailable. Opening bumps the pool generation, so every connection
//    opened before the outage is closed instead of reused. A probe thread
//    sleeps on a condition variable until the breaker opens, then every
//    breaker_probe_interval opens a connection and PINGs; on success it hands
//    the connection to the pool and closes the breaker. There is no half-open
//    state letting user calls through as trials: the probe is the trial, so
//    no user call ever pays a timeout while Redis is down.
//
// Concurrency: one internal::Mutex guards the pool (idle stack, open count,
// backoff, generation, stopping). Breaker state and counters are atomics, read
// on every call without the mutex. hiredis contexts are used by one thread at
// a time (whoever borrowed them). The log hook is never called with mu_ held.
//
// References: Redis pipelining, https://redis.io/docs/manual/pipelining/;
// circuit breaker, M. Nygard, "Release It!" (2007), ch. 5.
#include <fcntl.h>

#include "larder/internal/errno_text.h"
#include "larder/redis/client.h"
#include "larder/redis/uri.h"
// hiredis 0.14's sds.h has no extern "C" of its own, and hiredis.h includes it
// outside its own: include it first, with C linkage (we call sdsrange & co.).
extern "C" {
#include <hiredis/sds.h>
}
#include <hiredis/hiredis.h>
#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <deque>
#include <random>
#include <stdexcept>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "larder/internal/absl_compat.h"
#include "larder/internal/mutex.h"
#include "larder/internal/redis_status.h"
#include "redis_socket.h"

namespace larder {
namespace {

using Steady = std::chrono::steady_clock;
using std::chrono::milliseconds;

using ContextPtr = internal::RedisContextPtr;
using ReplyPtr = internal::RedisReplyPtr;

struct Conn {
  ContextPtr ctx;
  std::uint64_t generation = 0;
  bool reused = false;  // came from the idle stack (not opened for this call)
};

// wait_fd: poll() for `events` until deadline. The revents, 0 on timeout, or
// -1 with errno set.
int wait_fd(int fd, short events, Steady::time_point deadline) {
  for (;;) {
    const auto left = deadline - Steady::now();
    if (left <= Steady::duration::zero()) return 0;
    const auto ms = std::chrono::ceil<milliseconds>(left).count();
    pollfd p{fd, events, 0};
    const int r = ::poll(&p, 1, static_cast<int>(std::min<long long>(ms, 1 << 30)));
    if (r < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    if (r > 0) return p.revents;
  }
}

absl::Status poll_error(std::string_view what) {
  return absl::UnavailableError(
      absl::StrCat("redis ", internal::av(what), ": poll failed: ", internal::errno_text(errno)));
}

// kKeptBuffer: how much of a connection's output buffer, and of its reader's
// free buffer space, outlives a call (hiredis frees the output buffer after
// every write and the reader's once more than 16 KiB of it is free: a 100-key
// MGET's ~13 KB reply grows it past that, so each call allocated and freed it
// again). At most 2 x 64 KiB per pooled connection.
constexpr std::size_t kKeptBuffer = std::size_t{64} * 1024;

// peer_gone: errno of a send or read on a connection the server closed.
bool peer_gone(int err) { return err == ECONNRESET || err == EPIPE || err == ECONNABORTED; }

// write_some: sends what it can of c's output buffer without blocking (on a
// blocking socket too: MSG_DONTWAIT) and without SIGPIPE (redisBufferWrite,
// minus the signal). *done once empty.
absl::Status write_some(redisContext* c, int* done, std::string_view what,
                        internal::IoTrace* trace = nullptr) {
  const sds buf = c->obuf;
  const std::size_t len = sdslen(buf);
  if (len > 0) {
    const ssize_t n = ::send(c->fd, buf, len, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0) {
      if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
        if (trace != nullptr && peer_gone(errno)) trace->peer_closed = true;
        return internal::redis_io_status(what, errno);
      }
    } else if (static_cast<std::size_t>(n) == len) {
      if (sdsalloc(c->obuf) <= kKeptBuffer) {
        sdsclear(c->obuf);  // kept for the next call: no regrowth per call
      } else {
        sdsfree(c->obuf);
        c->obuf = sdsempty();
        if (c->obuf == nullptr) return absl::ResourceExhaustedError("redis: out of memory");
      }
    } else {
      sdsrange(c->obuf, static_cast<int>(n), -1);
    }
  }
  *done = sdslen(c->obuf) == 0 ? 1 : 0;
  return absl::OkStatus();
}

// set_ctx_error: records a failed read on c as hiredis' redisBufferRead does
// (status_from_redis reads it from there): REDIS_ERR_EOF with hiredis' text,
// REDIS_ERR_IO with errno's.
void set_ctx_error(redisContext* c, int type, int err) {
  c->err = type;
  const std::string text = type == REDIS_ERR_EOF ? std::string("Server closed the connection")
                                                 : internal::errno_text(err);
  const std::size_t n = std::min(text.size(), sizeof(c->errstr) - 1);
  std::memcpy(c->errstr, text.data(), n);
  c->errstr[n] = '\0';
}

// Read: what read_some found.
enum class Read { kBytes, kNone, kFailed };

// read_some: one recv() into c's reader (redisBufferRead, with flags: 0 on a
// blocking socket waits up to its SO_RCVTIMEO; MSG_DONTWAIT never waits).
// kNone: nothing there (EAGAIN: for a blocking read, the receive timeout
// elapsed; or EINTR). kFailed: EOF or an error, recorded in c (status_from_redis).
Read read_some(redisContext* c, int flags, internal::IoTrace* trace) {
  if (c->err != 0) return Read::kFailed;
  char buf[16 * 1024];
  const ssize_t n = ::recv(c->fd, buf, sizeof buf, flags);
  if (n > 0) {
    if (trace != nullptr) trace->received = true;
    if (redisReaderFeed(c->reader, buf, static_cast<std::size_t>(n)) != REDIS_OK) {
      c->err = c->reader->err;
      std::memcpy(c->errstr, c->reader->errstr, sizeof(c->errstr));
      c->errstr[sizeof(c->errstr) - 1] = '\0';
      return Read::kFailed;
    }
    return Read::kBytes;
  }
  if (n == 0) {
    if (trace != nullptr) trace->peer_closed = true;
    set_ctx_error(c, REDIS_ERR_EOF, 0);
    return Read::kFailed;
  }
  const int err = errno;
  if (err == EAGAIN || err == EWOULDBLOCK || err == EINTR) return Read::kNone;
  if (trace != nullptr && peer_gone(err)) trace->peer_closed = true;
  set_ctx_error(c, REDIS_ERR_IO, err);
  return Read::kFailed;
}

// append_command: one command into c's output buffer; argv/lens on the
// stack for ordinary commands, in the thread's kept vectors for long ones
// (MGET, UNLINK: no allocation per call; a vector grown past kKeptArgs
// arguments is dropped after its call).
absl::Status append_command(redisContext* c, RedisArgs cmd, std::string_view what) {
  constexpr std::size_t kInline = 8;
  constexpr std::size_t kKeptArgs = 4096;
  const char* argv_inline[kInline];
  std::size_t lens_inline[kInline];
  thread_local std::vector<const char*> argv_heap;
  thread_local std::vector<std::size_t> lens_heap;
  const char** argv = argv_inline;
  std::size_t* lens = lens_inline;
  if (cmd.size() > kInline) {
    if (argv_heap.size() < cmd.size()) {
      argv_heap.resize(cmd.size());
      lens_heap.resize(cmd.size());
    }
    argv = argv_heap.data();
    lens = lens_heap.data();
  }
  struct Trim {
    ~Trim() {
      if (argv_heap.size() > kKeptArgs) {
        std::vector<const char*>().swap(argv_heap);
        std::vector<std::size_t>().swap(lens_heap);
      }
    }
  } trim;
  for (std::size_t i = 0; i < cmd.size(); ++i) {
    argv[i] = cmd[i].data();
    lens[i] = cmd[i].size();
  }
  if (redisAppendCommandArgv(c, static_cast<int>(cmd.size()), argv, lens) != REDIS_OK) {
    return internal::status_from_redis(c, nullptr, what);
  }
  return absl::OkStatus();
}

}  // namespace

// run_on: the I/O loop of the design essay, on one connection.
absl::Status internal::run_on(redisContext* c, std::span<const RedisArgs> commands,
                              RedisReplyFn on_reply, std::string_view what, milliseconds timeout,
                              ReplyWait wait, IoTrace* trace) {
  for (const RedisArgs& cmd : commands) {
    if (absl::Status s = append_command(c, cmd, what); !s.ok()) return s;
  }
  Steady::time_point deadline = Steady::now() + timeout;
  int done = 0;
  for (;;) {
    const std::size_t before = sdslen(c->obuf);
    if (absl::Status w = write_some(c, &done, what, trace); !w.ok()) return w;
    if (done) break;
    if (sdslen(c->obuf) != before) deadline = Steady::now() + timeout;  // progress
    const int ev = wait_fd(c->fd, POLLOUT | POLLIN, deadline);
    if (ev == 0) return internal::redis_timeout_status(what, timeout);
    if (ev < 0) return poll_error(what);
    if ((ev & (POLLIN | POLLERR | POLLHUP)) != 0) {
      if (read_some(c, MSG_DONTWAIT, trace) == Read::kFailed) {
        return internal::status_from_redis(c, nullptr, what);
      }
      deadline = Steady::now() + timeout;  // progress (replies arriving early)
    }
  }
  if (wait == ReplyWait::kBlocking) deadline = Steady::now() + timeout;  // sent: progress
  for (std::size_t i = 0; i < commands.size(); ++i) {
    void* raw = nullptr;
    for (;;) {
      if (redisGetReplyFromReader(c, &raw) != REDIS_OK) {
        return internal::reply_read_status(c, what);
      }
      if (raw != nullptr) break;
      Read got = Read::kNone;
      if (wait == ReplyWait::kBlocking) {
        // The kernel waits (SO_RCVTIMEO = timeout, the deadline's distance
        // from the last progress): one syscall per reply that is not there yet.
        got = read_some(c, 0, trace);
      }
      if (got == Read::kNone) {
        // Non-blocking socket, or a blocking read cut short (EINTR, or the
        // receive timeout, which lands on the deadline): poll what is left.
        const int ev = wait_fd(c->fd, POLLIN, deadline);
        if (ev == 0) return internal::redis_timeout_status(what, timeout);
        if (ev < 0) return poll_error(what);
        got = read_some(c, MSG_DONTWAIT, trace);
      }
      if (got == Read::kFailed) return internal::status_from_redis(c, nullptr, what);
      if (got == Read::kBytes) deadline = Steady::now() + timeout;  // progress: bytes arrived
    }
    ReplyPtr reply(raw);
    on_reply(i, RedisReplyRef(raw));
  }
  return absl::OkStatus();
}

namespace {

using internal::run_on;

// is_dead: an idle connection owes no reply, so anything readable on it
// (EOF, RST, stray bytes) means it cannot be used.
bool is_dead(const redisContext* c) {
  pollfd p{c->fd, POLLIN, 0};
  const int r = ::poll(&p, 1, 0);
  return r != 0;  // readable, error, or poll failed
}

// retry_safe: whether cmd may be sent a second time after the first try's
// connection closed before any reply byte came back, when the server may have
// run it just before closing (killed after reading it): only commands that
// change nothing, so running them twice equals running them once. Writes
// (SET, UNLINK, DEL, EVAL/EVALSHA whatever the script, PUBLISH, INCR, ...)
// and anything not listed are not.
bool retry_safe(RedisArgs cmd) {
  if (cmd.empty()) return false;
  static constexpr std::string_view kReads[] = {"GET",  "MGET",   "EXISTS", "PTTL", "TTL",
                                                "PING", "STRLEN", "TYPE",   "SCAN", "DBSIZE"};
  const std::string_view c = cmd[0];
  for (std::string_view r : kReads) {
    if (c.size() == r.size() && std::equal(c.begin(), c.end(), r.begin(), [](char x, char y) {
          return std::toupper(static_cast<unsigned char>(x)) == y;
        })) {
      return true;
    }
  }
  return false;
}

bool retry_safe(std::span<const RedisArgs> commands) {
  return std::all_of(commands.begin(), commands.end(),
                     [](const RedisArgs& c) { return retry_safe(c); });
}

// ---- Cluster helpers ----

// CRC-16/XMODEM (poly 0x1021, init 0, no reflection), the Redis Cluster key
// hash; table built at compile time.
constexpr std::array<std::uint16_t, 256> make_crc16_table() {
  std::array<std::uint16_t, 256> t{};
  for (unsigned i = 0; i < 256; ++i) {
    std::uint16_t crc = static_cast<std::uint16_t>(i << 8);
    for (int b = 0; b < 8; ++b) {
      crc = static_cast<std::uint16_t>((crc & 0x8000) != 0 ? (crc << 1) ^ 0x1021 : crc << 1);
    }
    t[i] = crc;
  }
  return t;
}
constexpr std::array<std::uint16_t, 256> kCrc16 = make_crc16_table();

constexpr std::uint16_t kSlots = 16384;
constexpr std::uint16_t kNoNode = 0xFFFF;  // slot uncovered / no master known
constexpr std::size_t kMaxNodes = 1024;

enum class CmdKind { kKeyed, kMulti, kMultiSum, kEval, kKeyless, kScan };

bool is(std::string_view a, std::string_view upper) {
  if (a.size() != upper.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (std::toupper(static_cast<unsigned char>(a[i])) != upper[i]) return false;
  }
  return true;
}

CmdKind classify(RedisArgs cmd) {
  if (cmd.size() < 2) return CmdKind::kKeyless;
  const std::string_view c = cmd[0];
  if (is(c, "MGET")) return CmdKind::kMulti;
  if (is(c, "UNLINK") || is(c, "DEL") || is(c, "EXISTS")) return CmdKind::kMultiSum;
  if (is(c, "EVAL") || is(c, "EVALSHA")) return CmdKind::kEval;
  if (is(c, "SCAN")) return CmdKind::kScan;
  if (is(c, "PING") || is(c, "ECHO") || is(c, "INFO") || is(c, "TIME") || is(c, "DBSIZE") ||
      is(c, "CLUSTER") || is(c, "ROLE") || is(c, "SCRIPT") || is(c, "CONFIG")) {
    return CmdKind::kKeyless;
  }
  return CmdKind::kKeyed;  // GET, SET, PUBLISH (channel slot), PTTL, ...
}

// split_host_port: "host:port" or "[v6]:port"; the port after the last colon.
bool split_host_port(std::string_view hp, std::string& host, int& port) {
  const std::size_t colon = hp.rfind(':');
  if (colon == std::string_view::npos || colon + 1 >= hp.size()) return false;
  std::string_view h = hp.substr(0, colon);
  if (h.size() >= 2 && h.front() == '[' && h.back() == ']') h = h.substr(1, h.size() - 2);
  int p = 0;
  for (char ch : hp.substr(colon + 1)) {
    if (ch < '0' || ch > '9' || p > 65535) return false;
    p = p * 10 + (ch - '0');
  }
  if (p < 1 || p > 65535) return false;
  host.assign(h);
  port = p;
  return true;
}

// Redirection and retry replies (cluster-spec "Redirection and resharding").
enum class Redirect { kNone, kMoved, kAsk, kTryAgain, kDown, kReadOnly };

Redirect redirect_of(const redisReply* r) {
  if (r == nullptr || r->type != REDIS_REPLY_ERROR) return Redirect::kNone;
  const std::string_view t(r->str, r->len);
  if (t.starts_with("MOVED ")) return Redirect::kMoved;
  if (t.starts_with("ASK ")) return Redirect::kAsk;
  if (t.starts_with("TRYAGAIN")) return Redirect::kTryAgain;
  if (t.starts_with("CLUSTERDOWN") || t.starts_with("LOADING") || t.starts_with("MASTERDOWN")) {
    return Redirect::kDown;
  }
  if (t.starts_with("READONLY")) return Redirect::kReadOnly;
  return Redirect::kNone;
}

// parse_redirect: "MOVED 3999 127.0.0.1:6381" -> slot, host, port (an
// empty host means the node that answered).
bool parse_redirect(std::string_view t, std::uint16_t& slot, std::string& host, int& port) {
  const std::size_t a = t.find(' ');
  if (a == std::string_view::npos) return false;
  const std::size_t b = t.find(' ', a + 1);
  if (b == std::string_view::npos) return false;
  unsigned s = 0;
  for (char ch : t.substr(a + 1, b - a - 1)) {
    if (ch < '0' || ch > '9') return false;
    s = s * 10 + static_cast<unsigned>(ch - '0');
    if (s >= kSlots) return false;
  }
  slot = static_cast<std::uint16_t>(s);
  return split_host_port(t.substr(b + 1), host, port);
}

}  // namespace

namespace internal {

std::uint16_t redis_key_slot(std::string_view key) {
  const std::size_t open = key.find('{');
  if (open != std::string_view::npos) {
    const std::size_t close = key.find('}', open + 1);
    if (close != std::string_view::npos && close > open + 1)
      key = key.substr(open + 1, close - open - 1);
  }
  std::uint16_t crc = 0;
  for (unsigned char ch : key) {
    crc = static_cast<std::uint16_t>((crc << 8) ^ kCrc16[((crc >> 8) ^ ch) & 0xff]);
  }
  return crc & (kSlots - 1);
}

}  // namespace internal

namespace {

// Node: one server and its pool (design essay, part 2), breaker (part 3)
// and reconnect backoff. Nodes are never deleted while the client lives.
struct Node {
  Node(std::string h, int p, std::string us)
      : host(std::move(h)), port(p), unix_socket(std::move(us)) {
    label = unix_socket.empty()
                ? (host.find(':') != std::string::npos ? absl::StrCat("[", host, "]:", port)
                                                       : absl::StrCat(host, ":", port))
                : absl::StrCat("unix:", unix_socket);
  }
  const std::string host;
  const int port;
  const std::string unix_socket;
  std::string label;

  mutable internal::Mutex mu;
  internal::CondVar slot_cv;  // an idle connection appeared or a slot freed up
  std::vector<std::unique_ptr<Conn>> idle ABSL_GUARDED_BY(mu);
  std::size_t open ABSL_GUARDED_BY(mu) = 0;
  Steady::time_point next_connect ABSL_GUARDED_BY(mu){};
  milliseconds backoff ABSL_GUARDED_BY(mu){0};
  std::uint64_t generation ABSL_GUARDED_BY(mu) = 0;
  Steady::time_point next_probe ABSL_GUARDED_BY(mu){};

  std::atomic<bool> breaker{false};
  std::atomic<std::size_t> consecutive_failures{0};
};

// Sub: one command as sent to one node (a caller's command, or the part of
// a multi-key command whose keys share a slot).
struct Sub {
  std::size_t cmd = 0;              // the caller's command
  std::vector<std::uint32_t> keys;  // split parts: argument positions of its keys
  RedisArgs args;
  std::uint16_t slot = 0;
  bool keyless = false;
  int forced = -1;  // run on this node (SCAN of one master)
  int ask = -1;     // ASK target for the next attempt
  std::size_t redirects = 0;
  bool replaced = false;  // split again into single-key subs
  ReplyPtr reply;
  absl::Status failed;
};

// Flight: one node's pipeline of one round.
struct Flight {
  Node* node = nullptr;
  std::unique_ptr<Conn> conn;
  std::vector<int> order;  // sub index per reply; -1: ASKING's +OK
  std::size_t got = 0;
  Steady::time_point deadline{};
  absl::Status status;
  bool done = false;
};

// run_flights: the I/O loop of the design essay over several connections at
// once: every flight's commands are already in its output buffer; poll()
// all sockets, write what they accept, read replies as they come. Each
// flight has its own progress deadline and fails alone.
void run_flights(std::vector<Flight>& fl, std::vector<Sub>& subs, std::string_view what,
                 milliseconds timeout) {
  const Steady::time_point now = Steady::now();
  for (Flight& f : fl) f.deadline = now + timeout;
  std::vector<pollfd> pfd;
  std::vector<std::size_t> idx;
  for (;;) {
    pfd.clear();
    idx.clear();
    Steady::time_point soonest = Steady::time_point::max();
    for (std::size_t i = 0; i < fl.size(); ++i) {
      Flight& f = fl[i];
      if (f.done) continue;
      redisContext* c = f.conn->ctx.get();
      short ev = POLLIN;
      if (sdslen(c->obuf) > 0) ev |= POLLOUT;
      pfd.push_back(pollfd{c->fd, ev, 0});
      idx.push_back(i);
      soonest = std::min(soonest, f.deadline);
    }
    if (pfd.empty()) return;
    const auto left = soonest - Steady::now();
    const long long ms = std::max<long long>(0, std::chrono::ceil<milliseconds>(left).count());
    const int r =
        ::poll(pfd.data(), pfd.size(), static_cast<int>(std::min<long long>(ms, 1 << 30)));
    if (r < 0 && errno != EINTR) {
      for (std::size_t k : idx) {
        fl[k].status = poll_error(what);
        fl[k].done = true;
      }
      return;
    }
    const Steady::time_point t = Steady::now();
    for (std::size_t j = 0; j < pfd.size(); ++j) {
      Flight& f = fl[idx[j]];
      redisContext* c = f.conn->ctx.get();
      auto fail = [&](absl::Status s) {
        f.status = std::move(s);
        f.done = true;
      };
      const int re = r > 0 ? pfd[j].revents : 0;
      if ((re & POLLOUT) != 0) {
        const std::size_t before = sdslen(c->obuf);
        int done = 0;
        if (absl::Status w = write_some(c, &done, what); !w.ok()) {
          fail(std::move(w));
          continue;
        }
        if (sdslen(c->obuf) != before) f.deadline = t + timeout;
      }
      if ((re & (POLLIN | POLLERR | POLLHUP)) != 0) {
        if (read_some(c, MSG_DONTWAIT, nullptr) == Read::kFailed) {
          fail(internal::status_from_redis(c, nullptr, what));
          continue;
        }
        f.deadline = t + timeout;
        while (f.got < f.order.size()) {
          void* raw = nullptr;
          if (redisGetReplyFromReader(c, &raw) != REDIS_OK) {
            fail(internal::reply_read_status(c, what));
            break;
          }
          if (raw == nullptr) break;
          ReplyPtr reply(raw);
          const int s = f.order[f.got++];
          if (s >= 0) subs[static_cast<std::size_t>(s)].reply = std::move(reply);
        }
        if (f.done) continue;
      }
      if (f.got == f.order.size() && sdslen(c->obuf) == 0) {
        f.done = true;
      } else if (t >= f.deadline) {
        fail(internal::redis_timeout_status(what, timeout));
      }
    }
  }
}

}  // namespace

struct RedisClient::Impl {
  enum class Mode { kStandalone, kCluster, kSentinel };

  explicit Impl(RedisOptions o) : opts(std::move(o)) {
    mode = !opts.cluster_nodes.empty() ? Mode::kCluster
           : !opts.sentinels.empty()   ? Mode::kSentinel
                                       : Mode::kStandalone;
    nodes = std::make_unique<std::atomic<Node*>[]>(kMaxNodes);
    for (std::size_t i = 0; i < kMaxNodes; ++i) nodes[i].store(nullptr, std::memory_order_relaxed);
    internal::MutexLock l(&topo_mu);
    switch (mode) {
      case Mode::kStandalone:
        add_node_locked(opts.unix_socket.empty() ? opts.host : std::string(), opts.port,
                        opts.unix_socket);
        break;
      case Mode::kCluster:
        slots = std::make_unique<std::atomic<std::uint16_t>[]>(kSlots);
        for (std::size_t s = 0; s < kSlots; ++s) slots[s].store(kNoNode, std::memory_order_relaxed);
        for (const std::string& seed : opts.cluster_nodes) {
          std::string h;
          int p = 0;
          split_host_port(seed, h, p);  // validated
          if (find_node_locked(h, p) < 0) add_node_locked(h, p, {});
        }
        seeds = node_count.load(std::memory_order_relaxed);
        break;
      case Mode::kSentinel:
        for (const std::string& s : opts.sentinels) {
          std::string h;
          int p = 0;
          split_host_port(s, h, p);
          sentinel_addrs.emplace_back(h, p);
        }
        break;
    }
  }

  RedisOptions opts;
  Mode mode = Mode::kStandalone;

  // Node table: append-only, read without locks (index < node_count).
  std::unique_ptr<std::atomic<Node*>[]> nodes;
  std::atomic<std::size_t> node_count{0};
  internal::Mutex topo_mu;  // appends to the node table
  std::vector<std::unique_ptr<Node>> owned ABSL_GUARDED_BY(topo_mu);
  std::size_t seeds = 0;  // cluster: nodes [0, seeds) are the seeds

  // Cluster slot table: node index per slot, or kNoNode.
  std::unique_ptr<std::atomic<std::uint16_t>[]> slots;
  // Sentinel: the master's node index (kNoNode: unknown), and its epoch.
  std::atomic<std::uint16_t> master{kNoNode};
  std::atomic<std::uint64_t> master_epoch{0};

  // Topology refreshes (cluster map / sentinel lookups): one at a time.
  internal::Mutex refresh_mu;
  std::vector<std::pair<std::string, int>> sentinel_addrs ABSL_GUARDED_BY(refresh_mu);

  // The maintenance thread: breaker probes and topology refreshes.
  mutable internal::Mutex maint_mu;
  internal::CondVar maint_cv;
  bool refresh_requested ABSL_GUARDED_BY(maint_mu) = false;
  bool kicked ABSL_GUARDED_BY(maint_mu) = false;  // a breaker opened: look again
  Steady::time_point refresh_not_before ABSL_GUARDED_BY(maint_mu){};
  Steady::time_point next_timer_refresh ABSL_GUARDED_BY(maint_mu){};
  milliseconds refresh_backoff ABSL_GUARDED_BY(maint_mu){0};
  std::atomic<bool> stopping{false};
  std::thread prober;

  std::atomic<std::uint64_t> connects{0}, connect_failures{0}, failures{0}, fast_failures{0},
      dropped{0}, breaker_opens{0}, breaker_closes{0}, probes{0}, retries{0};
  std::atomic<std::uint64_t> moved{0}, asks{0}, tryagains{0}, downs{0}, refreshes{0},
      refresh_failures{0}, master_switches{0};

  // Command latency (metrics): by the first command's kind, single or pipeline.
  static constexpr std::string_view kCommandKinds[] = {
      "GET", "MGET", "SET", "DEL", "UNLINK", "EVALSHA", "EVAL", "PUBLISH", "SCAN", "other"};
  static constexpr std::size_t kKinds = std::size(kCommandKinds);
  LatencyHistogram command_latency[kKinds][2];
  static std::size_t command_kind(const RedisArgs& args) {
    if (args.empty()) return kKinds - 1;
    for (std::size_t i = 0; i + 1 < kKinds; ++i) {
      const std::string_view a = args[0], b = kCommandKinds[i];
      if (a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
            return std::toupper(static_cast<unsigned char>(x)) == y;
          })) {
        return i;
      }
    }
    return kKinds - 1;
  }
  absl::Status timed_execute(std::span<const RedisArgs> commands, RedisReplyFn on_reply,
                             std::string_view what) {
    const auto t0 = Steady::now();
    absl::Status s = execute(commands, on_reply, what);
    command_latency[command_kind(commands[0])][commands.size() > 1 ? 1 : 0].record_since(t0);
    return s;
  }

  // ---- node table ----

  Node* node(std::size_t i) const { return nodes[i].load(std::memory_order_acquire); }
  std::size_t count() const { return node_count.load(std::memory_order_acquire); }

  int find_node_locked(const std::string& h, int p) ABSL_EXCLUSIVE_LOCKS_REQUIRED(topo_mu) {
    for (std::size_t i = 0; i < owned.size(); ++i) {
      if (owned[i]->host == h && owned[i]->port == p) return static_cast<int>(i);
    }
    return -1;
  }
  int add_node_locked(std::string h, int p, std::string us) ABSL_EXCLUSIVE_LOCKS_REQUIRED(topo_mu) {
    if (owned.size() >= kMaxNodes) return -1;
    owned.push_back(std::make_unique<Node>(std::move(h), p, std::move(us)));
    const std::size_t i = owned.size() - 1;
    nodes[i].store(owned.back().get(), std::memory_order_release);
    node_count.store(owned.size(), std::memory_order_release);
    return static_cast<int>(i);
  }
  int node_for(const std::string& h, int p) {
    internal::MutexLock l(&topo_mu);
    const int i = find_node_locked(h, p);
    return i >= 0 ? i : add_node_locked(h, p, {});
  }

  void log(RedisLogLevel level, std::string_view msg) const {
    if (opts.log) opts.log(level, msg);
  }

  std::string where() const {
    switch (mode) {
      case Mode::kStandalone:
        return node(0)->label;
      case Mode::kCluster:
        return absl::StrCat("cluster ", opts.cluster_nodes.front(), ",...");
      case Mode::kSentinel: {
        const std::uint16_t m = master.load(std::memory_order_acquire);
        return absl::StrCat("sentinel master ", opts.sentinel_master,
                            m == kNoNode ? std::string() : absl::StrCat(" at ", node(m)->label));
      }
    }
    return {};
  }

  // ---- connections ----

  // connect: a ready connection to n (AUTH, SELECT; under Sentinel also
  // ROLE, so a demoted master is never used), or why not.
  absl::StatusOr<ContextPtr> connect(Node& n) {
    absl::StatusOr<ContextPtr> conn =
        internal::connect_nonblocking_to(n.host, n.port, n.unix_socket, opts.connect_timeout);
    if (!conn.ok()) return conn.status();
    ContextPtr c = *std::move(conn);

    std::vector<std::vector<std::string_view>> setup;
    std::vector<std::string_view> names;
    if (!opts.password.empty()) {
      if (opts.username.empty()) {
        setup.push_back({"AUTH", opts.password});
      } else {
        setup.push_back({"AUTH", opts.username, opts.password});
      }
      names.push_back("AUTH");
    }
    const std::string db = std::to_string(opts.db);
    if (opts.db != 0 && mode != Mode::kCluster) {
      setup.push_back({"SELECT", db});
      names.push_back("SELECT");
    }
    if (mode == Mode::kSentinel) {
      setup.push_back({"ROLE"});
      names.push_back("ROLE");
    }
    if (!setup.empty()) {
      std::vector<RedisArgs> cmds(setup.begin(), setup.end());
      absl::Status first;
      absl::Status s = run_on(
          c.get(), cmds,
          [&](std::size_t i, RedisReplyRef r) {
            if (!first.ok()) return;
            first = r.status(names[i]);
            if (first.ok() && names[i] == "ROLE" && r[0].str() != "master") {
              first = absl::UnavailableError(absl::StrCat(
                  "redis: ", n.label, " is a ", internal::av(r[0].str()), ", not the master"));
            }
          },
          "connect", opts.command_timeout);
      if (!s.ok()) return s;
      if (!first.ok()) {
        if (mode == Mode::kSentinel) request_refresh();
        return first;
      }
    }
    // From here on replies are read by blocking reads (design essay, part 1).
    if (absl::Status s = internal::make_reads_block(c.get(), opts.command_timeout); !s.ok()) {
      return s;
    }
    c->reader->maxbuf = kKeptBuffer;
    return c;
  }

  void on_connect_result(const Node& n, const absl::Status& s) {
    if (s.ok()) {
      connects.fetch_add(1, std::memory_order_relaxed);
      return;
    }
    connect_failures.fetch_add(1, std::memory_order_relaxed);
    if (opts.log) {
      log(RedisLogLevel::kWarning,
          absl::StrCat("larder redis: connect to ", n.label, " failed: ", s.ToString()));
    }
  }

  // Why borrow() failed, for the breaker: kNone (local: the pool was busy),
  // kNetwork (a connect failed), kBackoff (refused without I/O after a
  // failed connect: the node is unreachable, so it counts toward the breaker).
  enum class Blame { kNone, kNetwork, kBackoff };

  // borrow: a connection to n for one call; see the design essay, part 2.
  // check_idle: poll an idle connection before reusing it (false: the caller
  // retries on a checked connection if it turns out closed).
  absl::StatusOr<std::unique_ptr<Conn>> borrow(Node& n, Blame& blame, bool check_idle = true) {
    blame = Blame::kNone;
    std::vector<std::unique_ptr<Conn>> discard;  // closed outside the lock
    absl::StatusOr<std::unique_ptr<Conn>> result = absl::UnknownError("unset");
    {
      internal::MutexLock l(&n.mu);
      const Steady::time_point borrow_deadline = Steady::now() + opts.borrow_timeout;
      for (;;) {
        while (!n.idle.empty()) {
          std::unique_ptr<Conn> c = std::move(n.idle.back());
          n.idle.pop_back();
          if (c->generation == n.generation && (!check_idle || !is_dead(c->ctx.get()))) {
            c->reused = true;
            return c;
          }
          --n.open;
          dropped.fetch_add(1, std::memory_order_relaxed);
          discard.push_back(std::move(c));
        }
        if (n.open < opts.pool_size) {
          if (Steady::now() < n.next_connect) {
            fast_failures.fetch_add(1, std::memory_order_relaxed);
            blame = Blame::kBackoff;
            result = absl::UnavailableError(absl::StrCat("redis: ", n.label,
                                                         " unreachable; reconnecting after ",
                                                         n.backoff.count(), " ms backoff"));
            break;
          }
          ++n.open;
          const std::uint64_t gen = n.generation;
          absl::StatusOr<ContextPtr> c = absl::UnknownError("not connected");
          l.unlocked([&] { c = connect(n); });
          if (!c.ok()) {
            --n.open;
            n.backoff = n.backoff.count() == 0
                            ? opts.reconnect_backoff_min
                            : std::min(n.backoff * 2, opts.reconnect_backoff_max);
            n.next_connect = Steady::now() + n.backoff;
            n.slot_cv.notify_one();
            blame = Blame::kNetwork;
            result = c.status();
          } else {
            n.backoff = milliseconds(0);
            n.next_connect = Steady::time_point{};
            auto conn = std::make_unique<Conn>();
            conn->ctx = *std::move(c);
            conn->generation = gen;
            result = std::move(conn);
          }
          break;
        }
        if (!n.slot_cv.wait_until(l, borrow_deadline, [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(n.mu) {
              return !n.idle.empty() || n.open < opts.pool_size;
            })) {
          result = absl::DeadlineExceededError(
              absl::StrCat("redis: no pooled connection free within borrow_timeout (",
                           opts.borrow_timeout.count(), " ms, pool_size ", opts.pool_size, ")"));
          break;
        }
      }
    }
    if (blame == Blame::kNetwork || result.ok()) on_connect_result(n, result.status());
    return result;
  }

  // give_back: returns a connection after a call; a broken or stale one is closed.
  void give_back(Node& n, std::unique_ptr<Conn> c, bool healthy) {
    {
      internal::MutexLock l(&n.mu);
      if (healthy && c->generation == n.generation && !stopping.load(std::memory_order_relaxed)) {
        n.idle.push_back(std::move(c));
      } else {
        --n.open;
      }
      n.slot_cv.notify_one();
    }
    if (c != nullptr) dropped.fetch_add(1, std::memory_order_relaxed);
  }

  // close_pool: drops n's idle connections and retires the busy ones (they
  // close when given back): n is no longer where we should talk.
  void close_pool(Node& n) {
    std::vector<std::unique_ptr<Conn>> stale;
    {
      internal::MutexLock l(&n.mu);
      ++n.generation;
      n.open -= n.idle.size();
      stale.swap(n.idle);
      n.slot_cv.notify_all();
    }
    dropped.fetch_add(stale.size(), std::memory_order_relaxed);
  }

  void record_success(Node& n) {
    if (n.consecutive_failures.load(std::memory_order_relaxed) != 0) {
      n.consecutive_failures.store(0, std::memory_order_relaxed);
    }
  }

  // record_failure: a call failed because n is unreachable or hung;
  // `network`: it touched the network (false: refused during backoff).
  void record_failure(Node& n, const absl::Status& s, bool network = true) {
    if (network) failures.fetch_add(1, std::memory_order_relaxed);
    if (mode != Mode::kStandalone) request_refresh();
    if (opts.breaker_failures == 0) return;
    const std::size_t k = n.consecutive_failures.fetch_add(1, std::memory_order_acq_rel) + 1;
    if (k < opts.breaker_failures) return;
    if (n.breaker.exchange(true, std::memory_order_acq_rel)) return;  // already open
    breaker_opens.fetch_add(1, std::memory_order_relaxed);
    std::vector<std::unique_ptr<Conn>> stale;
    {
      internal::MutexLock l(&n.mu);
      ++n.generation;
      n.open -= n.idle.size();
      stale.swap(n.idle);
      n.next_probe = Steady::now() + opts.breaker_probe_interval;
      n.slot_cv.notify_all();
    }
    {
      internal::MutexLock l(&maint_mu);
      kicked = true;
      maint_cv.notify_all();
    }
    dropped.fetch_add(stale.size(), std::memory_order_relaxed);
    if (opts.log) {
      log(RedisLogLevel::kError,
          absl::StrCat("larder redis: circuit breaker open after ", k,
                       " consecutive failures talking to ", n.label, " (last: ", s.ToString(),
                       "); calls fail at once until a probe succeeds"));
    }
  }

  // probe: one attempt to close n's breaker: connect (AUTH/SELECT/ROLE), PING.
  void probe(Node& n) {
    std::uint64_t gen = 0;
    {
      internal::MutexLock l(&n.mu);
      gen = n.generation;
      n.next_probe = Steady::now() + opts.breaker_probe_interval;
    }
    probes.fetch_add(1, std::memory_order_relaxed);
    absl::StatusOr<ContextPtr> c = connect(n);
    if (c.ok()) {
      static constexpr std::string_view kPing[] = {"PING"};
      const RedisArgs cmd(kPing);
      absl::Status reply_status;
      absl::Status s = run_on(
          c->get(), std::span<const RedisArgs>(&cmd, 1),
          [&](std::size_t, RedisReplyRef r) { reply_status = r.status("PING"); }, "PING",
          opts.command_timeout, internal::ReplyWait::kBlocking);
      if (s.ok()) s = reply_status;
      if (!s.ok()) c = s;
    }
    on_connect_result(n, c.status());
    if (stopping.load(std::memory_order_acquire)) return;
    if (!c.ok()) {
      if (opts.log) {
        log(RedisLogLevel::kDebug,
            absl::StrCat("larder redis: probe of ", n.label, " failed: ", c.status().ToString()));
      }
      return;
    }
    {
      internal::MutexLock l(&n.mu);
      if (n.open < opts.pool_size && gen == n.generation) {
        ++n.open;
        auto conn = std::make_unique<Conn>();
        conn->ctx = *std::move(c);
        conn->generation = gen;
        n.idle.push_back(std::move(conn));
      }
      n.backoff = milliseconds(0);
      n.next_connect = Steady::time_point{};
      n.consecutive_failures.store(0, std::memory_order_relaxed);
      n.breaker.store(false, std::memory_order_release);
      breaker_closes.fetch_add(1, std::memory_order_relaxed);
      n.slot_cv.notify_all();
    }
    if (opts.log) {
      log(RedisLogLevel::kInfo,
          absl::StrCat("larder redis: ", n.label, " reachable again; circuit breaker closed"));
    }
  }

  // ---- topology ----

  // request_refresh: asks the maintenance thread for a topology refresh
  // (coalesced, rate-limited; never waits for it).
  void request_refresh() {
    if (mode == Mode::kStandalone) return;
    internal::MutexLock l(&maint_mu);
    if (refresh_requested) return;
    refresh_requested = true;
    kicked = true;
    maint_cv.notify_all();
  }

  // mapped: whether node i owns slots now (cluster) / is the master (sentinel).
  std::vector<bool> mapped_nodes() const {
    std::vector<bool> m(count(), false);
    if (mode == Mode::kCluster) {
      for (std::size_t s = 0; s < kSlots; ++s) {
        const std::uint16_t i = slots[s].load(std::memory_order_relaxed);
        if (i < m.size()) m[i] = true;
      }
    } else if (mode == Mode::kSentinel) {
      const std::uint16_t i = master.load(std::memory_order_acquire);
      if (i < m.size()) m[i] = true;
    } else if (!m.empty()) {
      m[0] = true;
    }
    return m;
  }

  // refresh_cluster: CLUSTER SLOTS from a healthy node (up to 3 random
  // mapped ones, then the seeds); applies the first valid map.
  bool refresh_cluster() {
    internal::MutexLock rl(&refresh_mu);
    std::vector<std::size_t> cand;
    const std::vector<bool> m = mapped_nodes();
    for (std::size_t i = 0; i < m.size(); ++i) {
      if (m[i] && !node(i)->breaker.load(std::memory_order_acquire)) cand.push_back(i);
    }
    thread_local std::minstd_rand rng(std::random_device{}());
    std::shuffle(cand.begin(), cand.end(), rng);
    if (cand.size() > 3) cand.resize(3);
    for (std::size_t i = 0; i < seeds; ++i) {
      if (std::find(cand.begin(), cand.end(), i) == cand.end()) cand.push_back(i);
    }
    for (std::size_t i : cand) {
      Node& n = *node(i);
      Blame blame;
      absl::StatusOr<std::unique_ptr<Conn>> conn = borrow(n, blame);
      if (!conn.ok()) continue;
      static constexpr std::string_view kArgs[] = {"CLUSTER", "SLOTS"};
      const RedisArgs cmd(kArgs);
      std::vector<std::uint16_t> table;
      absl::Status parsed = absl::InternalError("no reply");
      absl::Status s =
          run_on((*conn)->ctx.get(), std::span<const RedisArgs>(&cmd, 1),
                 [&](std::size_t, RedisReplyRef r) { parsed = parse_slots(r, n, table); },
                 "CLUSTER SLOTS", opts.command_timeout, internal::ReplyWait::kBlocking);
      give_back(n, *std::move(conn), s.ok());
      if (!s.ok() || !parsed.ok()) {
        if (opts.log) {
          log(RedisLogLevel::kWarning, absl::StrCat("larder redis: CLUSTER SLOTS from ", n.label,
                                                    " failed: ", (s.ok() ? parsed : s).ToString()));
        }
        continue;
      }
      for (std::size_t sl = 0; sl < kSlots; ++sl)
        slots[sl].store(table[sl], std::memory_order_relaxed);
      refreshes.fetch_add(1, std::memory_order_relaxed);
      // Nodes that own nothing now stop being probed (their breaker resets;
      // a later use starts over with connect backoff).
      const std::vector<bool> now_mapped = mapped_nodes();
      for (std::size_t j = seeds; j < now_mapped.size(); ++j) {
        if (!now_mapped[j] && node(j)->breaker.exchange(false, std::memory_order_acq_rel)) {
          node(j)->consecutive_failures.store(0, std::memory_order_relaxed);
        }
      }
      return true;
    }
    refresh_failures.fetch_add(1, std::memory_order_relaxed);
    return false;
  }

  // parse_slots: CLUSTER SLOTS into a slot table; rejects ranges out of
  // bounds, reversed or overlapping, and masters without an address.
  absl::Status parse_slots(RedisReplyRef r, const Node& asked, std::vector<std::uint16_t>& table) {
    if (absl::Status e = r.status("CLUSTER SLOTS"); !e.ok()) return e;
    if (r.type() != RedisReplyType::kArray)
      return absl::InternalError("CLUSTER SLOTS: not an array");
    table.assign(kSlots, kNoNode);
    std::vector<bool> seen(kSlots, false);
    for (std::size_t i = 0; i < r.size(); ++i) {
      const RedisReplyRef e = r[i];
      if (e.size() < 3 || e[0].type() != RedisReplyType::kInteger ||
          e[1].type() != RedisReplyType::kInteger || e[2].size() < 2) {
        return absl::InternalError("CLUSTER SLOTS: malformed range");
      }
      const long long lo = e[0].integer(), hi = e[1].integer();
      if (lo < 0 || hi >= kSlots || lo > hi) return absl::InternalError("CLUSTER SLOTS: bad range");
      std::string host(e[2][0].str());
      if (host == "?") continue;  // unreachable endpoint: leave uncovered
      if (host.empty()) host = asked.host;
      const long long port = e[2][1].integer();
      if (port < 1 || port > 65535)
        return absl::InternalError("CLUSTER SLOTS: master without an address");
      const int idx = node_for(host, static_cast<int>(port));
      if (idx < 0) return absl::ResourceExhaustedError("CLUSTER SLOTS: too many nodes");
      for (long long s = lo; s <= hi; ++s) {
        if (seen[static_cast<std::size_t>(s)])
          return absl::InternalError("CLUSTER SLOTS: overlapping ranges");
        seen[static_cast<std::size_t>(s)] = true;
        table[static_cast<std::size_t>(s)] = static_cast<std::uint16_t>(idx);
      }
    }
    return absl::OkStatus();
  }

  // resolve_master: asks each sentinel in turn for the master's address;
  // the first that answers moves to the front. Switching masters closes the
  // old master's pool.
  absl::Status resolve_master() {
    internal::MutexLock rl(&refresh_mu);
    bool reached = false;
    std::string last;
    for (std::size_t i = 0; i < sentinel_addrs.size(); ++i) {
      const auto [h, p] = sentinel_addrs[i];
      absl::StatusOr<ContextPtr> c =
          internal::connect_nonblocking_to(h, p, {}, opts.connect_timeout);
      if (!c.ok()) {
        last = c.status().ToString();
        continue;
      }
      const std::string_view args[] = {"SENTINEL", "get-master-addr-by-name", opts.sentinel_master};
      const RedisArgs cmd(args);
      std::string mh;
      int mp = 0;
      absl::Status s = run_on(
          c->get(), std::span<const RedisArgs>(&cmd, 1),
          [&](std::size_t, RedisReplyRef r) {
            if (r.type() == RedisReplyType::kArray && r.size() == 2) {
              mh = std::string(r[0].str());
              int v = 0;
              for (char ch : r[1].str())
                v = (ch >= '0' && ch <= '9') ? v * 10 + (ch - '0') : -1000000;
              mp = v;
            }
          },
          "SENTINEL get-master-addr-by-name", opts.command_timeout);
      if (!s.ok()) {
        last = s.ToString();
        continue;
      }
      reached = true;
      if (mh.empty() || mp < 1 || mp > 65535) continue;  // this sentinel does not know it
      if (i != 0) {
        const auto at = sentinel_addrs.begin() + static_cast<std::ptrdiff_t>(i);
        std::rotate(sentinel_addrs.begin(), at, at + 1);
      }
      const int idx = node_for(mh, mp);
      if (idx < 0) return absl::ResourceExhaustedError("redis sentinel: too many nodes");
      const std::uint16_t old =
          master.exchange(static_cast<std::uint16_t>(idx), std::memory_order_acq_rel);
      if (old != idx) {
        master_epoch.fetch_add(1, std::memory_order_acq_rel);
        if (old != kNoNode) {
          master_switches.fetch_add(1, std::memory_order_relaxed);
          close_pool(*node(old));
          if (opts.log) {
            log(RedisLogLevel::kWarning,
                absl::StrCat("larder redis: sentinel master ", opts.sentinel_master, " moved from ",
                             node(old)->label, " to ", node(idx)->label));
          }
        }
        // A node that was master before may have an open breaker from its outage.
        Node& n = *node(idx);
        if (n.breaker.exchange(false, std::memory_order_acq_rel)) {
          n.consecutive_failures.store(0, std::memory_order_relaxed);
          internal::MutexLock l(&n.mu);
          n.backoff = milliseconds(0);
          n.next_connect = Steady::time_point{};
        }
      }
      refreshes.fetch_add(1, std::memory_order_relaxed);
      return absl::OkStatus();
    }
    refresh_failures.fetch_add(1, std::memory_order_relaxed);
    return absl::UnavailableError(
        reached ? absl::StrCat("redis sentinel: no sentinel knows master \"", opts.sentinel_master,
                               "\"")
                : absl::StrCat("redis sentinel: no sentinel reachable (last: ", last, ")"));
  }

  bool refresh() {
    if (mode == Mode::kCluster) return refresh_cluster();
    if (mode == Mode::kSentinel) return resolve_master().ok();
    return true;
  }

  // maint_loop: breaker probes of every node whose breaker is open, and
  // topology refreshes: requested ones at most every 200 ms (failures back
  // off to 1 s), plus a timer (cluster 10 s +-20 %; Sentinel 1 s).
  void maint_loop() {
    thread_local std::minstd_rand rng(std::random_device{}());
    const auto timer = [&] {
      if (mode == Mode::kSentinel) return milliseconds(1000);
      return milliseconds(8000 + static_cast<long long>(rng() % 4000));
    };
    internal::MutexLock l(&maint_mu);
    next_timer_refresh = Steady::now() + timer();
    for (;;) {
      if (stopping.load(std::memory_order_acquire)) return;
      kicked = false;
      const Steady::time_point now = Steady::now();
      Steady::time_point wake =
          mode == Mode::kStandalone ? now + std::chrono::hours(1) : next_timer_refresh;
      bool do_refresh = false;
      if (mode != Mode::kStandalone) {
        if (now >= next_timer_refresh) do_refresh = true;
        if (refresh_requested) {
          if (now >= refresh_not_before) do_refresh = true;
          wake = std::min(wake, refresh_not_before);
        }
      }
      std::vector<Node*> due;
      const std::size_t n = count();
      for (std::size_t i = 0; i < n; ++i) {
        Node* nd = node(i);
        if (!nd->breaker.load(std::memory_order_acquire)) continue;
        internal::MutexLock nl(&nd->mu);
        if (nd->next_probe <= now) {
          due.push_back(nd);
        } else {
          wake = std::min(wake, nd->next_probe);
        }
      }
      if (do_refresh || !due.empty()) {
        if (do_refresh) refresh_requested = false;
        bool ok = true;
        l.unlocked([&] {
          for (Node* nd : due) probe(*nd);
          if (do_refresh) ok = refresh();
        });
        if (do_refresh) {
          refresh_backoff =
              ok ? milliseconds(200)
                 : std::min(milliseconds(1000), std::max(milliseconds(200), refresh_backoff * 2));
          refresh_not_before = Steady::now() + refresh_backoff;
          next_timer_refresh = Steady::now() + timer();
        }
        continue;
      }
      maint_cv.wait_until(l, wake, [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(maint_mu) {
        return stopping.load(std::memory_order_acquire) || kicked ||
               (refresh_requested && Steady::now() >= refresh_not_before);
      });
    }
  }

  // ---- standalone: today's path, one node ----

  absl::Status execute_standalone(std::span<const RedisArgs> commands, RedisReplyFn on_reply,
                                  std::string_view what) {
    Node& n = *node(0);
    if (n.breaker.load(std::memory_order_acquire)) {
      fast_failures.fetch_add(1, std::memory_order_relaxed);
      return absl::UnavailableError(
          absl::StrCat("redis ", internal::av(what), ": ", n.label, " circuit breaker open"));
    }
    // Reads skip the idle check and are re-sent once if the connection
    // proves closed (design essay, part 2); anything else is checked first.
    const bool may_retry = retry_safe(commands);
    Blame blame = Blame::kNone;
    absl::StatusOr<std::unique_ptr<Conn>> conn = borrow(n, blame, !may_retry);
    if (!conn.ok()) {
      if (blame != Blame::kNone) record_failure(n, conn.status(), blame == Blame::kNetwork);
      return absl::Status(conn.status().code(), absl::StrCat("redis ", internal::av(what), ": ",
                                                             conn.status().message()));
    }
    // If on_reply throws, the connection still owes replies: close it.
    struct Returner {
      Impl* self;
      Node& n;
      std::unique_ptr<Conn> c;
      bool healthy = false;
      ~Returner() {
        if (c != nullptr) self->give_back(n, std::move(c), healthy);
      }
    } ret{this, n, *std::move(conn)};
    internal::IoTrace trace;
    absl::Status s = run_on(ret.c->ctx.get(), commands, on_reply, what, opts.command_timeout,
                            internal::ReplyWait::kBlocking, &trace);
    if (!s.ok() && may_retry && ret.c->reused && trace.peer_closed && !trace.received) {
      // The pooled connection was closed by the server while idle (a restart,
      // its idle timeout) or just as it read our commands; nothing reached
      // on_reply. Close it and send again, once, on a checked connection.
      give_back(n, std::move(ret.c), false);
      if (n.breaker.load(std::memory_order_acquire)) {  // opened meanwhile: as at the start
        fast_failures.fetch_add(1, std::memory_order_relaxed);
        return absl::UnavailableError(
            absl::StrCat("redis ", internal::av(what), ": ", n.label, " circuit breaker open"));
      }
      retries.fetch_add(1, std::memory_order_relaxed);
      conn = borrow(n, blame, true);
      if (!conn.ok()) {
        if (blame != Blame::kNone) record_failure(n, conn.status(), blame == Blame::kNetwork);
        return absl::Status(conn.status().code(), absl::StrCat("redis ", internal::av(what), ": ",
                                                               conn.status().message()));
      }
      ret.c = *std::move(conn);
      s = run_on(ret.c->ctx.get(), commands, on_reply, what, opts.command_timeout,
                 internal::ReplyWait::kBlocking);
    }
    ret.healthy = s.ok();
    if (s.ok()) {
      record_success(n);
    } else {
      record_failure(n, s);
    }
    return s;
  }

  // ---- cluster / sentinel: routed ----

  // any_node: a node to send a keyless command (or one whose slot has no
  // known owner) to: the first mapped node with a closed breaker, else the
  // first node with a closed breaker (seeds come first), else node 0.
  int any_node() const {
    const std::size_t n = count();
    if (n == 0) return -1;
    if (mode == Mode::kCluster) {
      // Cheap: the owner of a few spread slots.
      for (std::uint16_t s :
           {std::uint16_t{0}, std::uint16_t{5461}, std::uint16_t{10923}, std::uint16_t{16383}}) {
        const std::uint16_t i = slots[s].load(std::memory_order_relaxed);
        if (i < n && !node(i)->breaker.load(std::memory_order_acquire)) return i;
      }
    }
    for (std::size_t i = 0; i < n; ++i) {
      if (!node(i)->breaker.load(std::memory_order_acquire)) return static_cast<int>(i);
    }
    return 0;
  }

  // route: the node for a sub (-1: none known).
  int route(const Sub& s) {
    if (s.forced >= 0) return s.forced;
    if (s.ask >= 0) return s.ask;
    if (mode == Mode::kSentinel) {
      std::uint16_t m = master.load(std::memory_order_acquire);
      if (m == kNoNode) {
        (void)resolve_master();
        m = master.load(std::memory_order_acquire);
      }
      return m == kNoNode ? -1 : m;
    }
    if (!s.keyless) {
      const std::uint16_t i = slots[s.slot].load(std::memory_order_relaxed);
      if (i != kNoNode) return i;
      request_refresh();
    }
    return any_node();
  }

  // build: the caller's commands as subs (multi-key commands split by slot in cluster mode).
  void build(std::span<const RedisArgs> commands, std::vector<Sub>& subs,
             std::deque<std::vector<std::string_view>>& arena, int forced) {
    subs.reserve(commands.size());
    const bool cluster = mode == Mode::kCluster;
    for (std::size_t c = 0; c < commands.size(); ++c) {
      const RedisArgs cmd = commands[c];
      const CmdKind kind = classify(cmd);
      Sub s;
      s.cmd = c;
      s.args = cmd;
      s.forced = forced;
      if (!cluster) {
        subs.push_back(std::move(s));
        continue;
      }
      switch (kind) {
        case CmdKind::kKeyless:
        case CmdKind::kScan:
          s.keyless = true;
          break;
        case CmdKind::kKeyed:
          s.slot = internal::redis_key_slot(cmd[1]);
          break;
        case CmdKind::kEval:
          if (cmd.size() >= 4 && cmd[2] != "0") {
            s.slot = internal::redis_key_slot(cmd[3]);
          } else {
            s.keyless = true;
          }
          break;
        case CmdKind::kMulti:
        case CmdKind::kMultiSum: {
          // Group the keys by slot, in first-seen order.
          std::vector<std::pair<std::uint16_t, std::vector<std::uint32_t>>> groups;
          for (std::uint32_t k = 1; k < cmd.size(); ++k) {
            const std::uint16_t sl = internal::redis_key_slot(cmd[k]);
            auto it = std::find_if(groups.begin(), groups.end(),
                                   [&](const auto& g) { return g.first == sl; });
            if (it == groups.end()) {
              groups.push_back({sl, {k}});
            } else {
              it->second.push_back(k);
            }
          }
          if (groups.size() == 1) {
            s.slot = groups.front().first;
            break;
          }
          for (auto& [sl, keys] : groups) {
            Sub part;
            part.cmd = c;
            part.slot = sl;
            part.forced = forced;
            part.keys = std::move(keys);
            part.args = make_args(cmd, part.keys, arena);
            subs.push_back(std::move(part));
          }
          continue;
        }
      }
      subs.push_back(std::move(s));
    }
  }

  // make_args: cmd[0] followed by the keys at `keys`.
  static RedisArgs make_args(RedisArgs cmd, const std::vector<std::uint32_t>& keys,
                             std::deque<std::vector<std::string_view>>& arena) {
    std::vector<std::string_view>& a = arena.emplace_back();
    a.reserve(keys.size() + 1);
    a.push_back(cmd[0]);
    for (std::uint32_t k : keys) a.push_back(cmd[k]);
    return RedisArgs(a.data(), a.size());
  }

  // round: sends every pending sub to its node (one pipeline per node, all
  // nodes at once) and collects the replies or the failure.
  void round(std::vector<Sub>& subs, const std::vector<std::size_t>& pending,
             std::string_view what) {
    std::vector<std::pair<int, std::size_t>> targets;  // (node, sub)
    targets.reserve(pending.size());
    for (std::size_t i : pending) {
      const int n = route(subs[i]);
      if (n < 0) {
        subs[i].failed = absl::UnavailableError(
            absl::StrCat("redis ", internal::av(what), ": ", where(), ": no node known"));
        continue;
      }
      targets.emplace_back(n, i);
    }
    // Ascending node index: concurrent batches borrow in one order.
    std::stable_sort(targets.begin(), targets.end(),
                     [](const auto& a, const auto& b) { return a.first < b.first; });
    std::vector<Flight> flights;
    for (std::size_t b = 0; b < targets.size();) {
      std::size_t e = b;
      while (e < targets.size() && targets[e].first == targets[b].first) ++e;
      Node& n = *node(static_cast<std::size_t>(targets[b].first));
      auto fail_group = [&](const absl::Status& s) {
        for (std::size_t k = b; k < e; ++k) subs[targets[k].second].failed = s;
      };
      if (n.breaker.load(std::memory_order_acquire)) {
        fast_failures.fetch_add(1, std::memory_order_relaxed);
        // The slot map may be older than a failover (read while the dead
        // master was still listed): ask for a new one (rate-limited by the
        // maintenance thread), or calls to its slots fail until the timer.
        request_refresh();
        fail_group(absl::UnavailableError(
            absl::StrCat("redis ", internal::av(what), ": ", n.label, " circuit breaker open")));
        b = e;
        continue;
      }
      Blame blame = Blame::kNone;
      absl::StatusOr<std::unique_ptr<Conn>> conn = borrow(n, blame);
      if (!conn.ok()) {
        if (blame != Blame::kNone) record_failure(n, conn.status(), blame == Blame::kNetwork);
        fail_group(absl::Status(conn.status().code(), absl::StrCat("redis ", internal::av(what),
                                                                   ": ", conn.status().message())));
        b = e;
        continue;
      }
      Flight f;
      f.node = &n;
      f.conn = *std::move(conn);
      redisContext* c = f.conn->ctx.get();
      absl::Status appended;
      for (std::size_t k = b; k < e && appended.ok(); ++k) {
        const std::size_t si = targets[k].second;
        Sub& s = subs[si];
        if (s.ask >= 0 && s.forced < 0) {
          static constexpr std::string_view kAsking[] = {"ASKING"};
          appended = append_command(c, RedisArgs(kAsking), what);
          f.order.push_back(-1);
        }
        if (appended.ok()) appended = append_command(c, s.args, what);
        f.order.push_back(static_cast<int>(si));
      }
      if (!appended.ok()) {
        give_back(n, std::move(f.conn), false);
        fail_group(appended);
        b = e;
        continue;
      }
      flights.push_back(std::move(f));
      b = e;
    }
    if (flights.empty()) return;
    run_flights(flights, subs, what, opts.command_timeout);
    for (Flight& f : flights) {
      const bool ok = f.status.ok();
      if (!ok) {
        for (std::size_t k = f.got; k < f.order.size(); ++k) {
          if (f.order[k] >= 0) subs[static_cast<std::size_t>(f.order[k])].failed = f.status;
        }
      }
      give_back(*f.node, std::move(f.conn), ok);
      if (ok) {
        record_success(*f.node);
      } else {
        record_failure(*f.node, f.status);
      }
    }
  }

  // execute_routed: cluster and Sentinel calls (design essay, part 4).
  absl::Status execute_routed(std::span<const RedisArgs> commands, RedisReplyFn on_reply,
                              std::string_view what) {
    std::vector<Sub> subs;
    std::deque<std::vector<std::string_view>> arena;
    collect(commands, what, -1, subs, arena);
    return deliver(commands, subs, on_reply);
  }

  // collect: every sub's final reply or failure, following redirections.
  void collect(std::span<const RedisArgs> commands, std::string_view what, int forced,
               std::vector<Sub>& subs, std::deque<std::vector<std::string_view>>& arena) {
    const Steady::time_point deadline =
        Steady::now() + opts.connect_timeout + opts.command_timeout + opts.borrow_timeout;
    build(commands, subs, arena, forced);
    std::vector<std::size_t> pending(subs.size()), next;
    for (std::size_t i = 0; i < subs.size(); ++i) pending[i] = i;
    milliseconds backoff{0};
    while (!pending.empty()) {
      round(subs, pending, what);
      next.clear();
      bool pause = false;
      for (std::size_t pi = 0; pi < pending.size(); ++pi) {
        const std::size_t i = pending[pi];
        if (!subs[i].failed.ok() || subs[i].reply == nullptr) continue;
        const redisReply* r = static_cast<const redisReply*>(subs[i].reply.get());
        const Redirect kind = redirect_of(r);
        if (kind == Redirect::kNone) continue;
        const std::string text(r->str, r->len);
        if (++subs[i].redirects > opts.max_redirects) {
          subs[i].failed = absl::UnavailableError(
              absl::StrCat("redis ", internal::av(what), ": gave up after ", opts.max_redirects,
                           " redirects/retries; last reply: ", text));
          continue;
        }
        switch (kind) {
          case Redirect::kMoved:
          case Redirect::kAsk: {
            std::uint16_t slot = 0;
            std::string host;
            int port = 0;
            if (!parse_redirect(text, slot, host, port)) continue;  // deliver as is
            if (host.empty()) host = node(static_cast<std::size_t>(route(subs[i])))->host;
            const int idx = node_for(host, port);
            if (idx < 0) continue;
            if (kind == Redirect::kMoved) {
              moved.fetch_add(1, std::memory_order_relaxed);
              if (mode == Mode::kCluster)
                slots[slot].store(static_cast<std::uint16_t>(idx), std::memory_order_relaxed);
              subs[i].ask = -1;
              request_refresh();
            } else {
              asks.fetch_add(1, std::memory_order_relaxed);
              subs[i].ask = idx;
            }
            break;
          }
          case Redirect::kTryAgain:
            tryagains.fetch_add(1, std::memory_order_relaxed);
            subs[i].ask = -1;
            if (subs[i].keys.size() > 1 ||
                (subs[i].keys.empty() && is_multi(commands[subs[i].cmd]))) {
              // A multi-key command mid-migration: single-key commands follow ASK.
              split_single(subs, i, commands, arena, next);
              continue;
            }
            pause = true;
            break;
          case Redirect::kDown:
            downs.fetch_add(1, std::memory_order_relaxed);
            subs[i].ask = -1;
            request_refresh();
            pause = true;
            break;
          case Redirect::kReadOnly:
            subs[i].ask = -1;
            if (mode == Mode::kSentinel) {
              (void)resolve_master();
            } else {
              request_refresh();
              pause = true;
            }
            break;
          case Redirect::kNone:
            break;
        }
        subs[i].reply.reset();
        next.push_back(i);
      }
      if (pause && !next.empty()) {
        backoff = backoff.count() == 0 ? milliseconds(5) : std::min(backoff * 2, milliseconds(100));
        const Steady::time_point now = Steady::now();
        if (now + backoff >= deadline) {
          for (std::size_t i : next) {
            if (subs[i].replaced) continue;
            subs[i].failed = absl::UnavailableError(absl::StrCat(
                "redis ", internal::av(what),
                ": cluster busy (TRYAGAIN/CLUSTERDOWN/LOADING) past the call's deadline"));
          }
          next.clear();
        } else {
          std::this_thread::sleep_for(backoff);
        }
      }
      pending.swap(next);
    }
  }

  static bool is_multi(RedisArgs cmd) {
    const CmdKind k = classify(cmd);
    return (k == CmdKind::kMulti || k == CmdKind::kMultiSum) && cmd.size() > 2;
  }

  void split_single(std::vector<Sub>& subs, std::size_t i, std::span<const RedisArgs> commands,
                    std::deque<std::vector<std::string_view>>& arena,
                    std::vector<std::size_t>& next) {
    const RedisArgs cmd = commands[subs[i].cmd];
    std::vector<std::uint32_t> keys = subs[i].keys;
    if (keys.empty()) {
      for (std::uint32_t k = 1; k < cmd.size(); ++k) keys.push_back(k);
    }
    subs[i].replaced = true;
    subs[i].reply.reset();
    const std::size_t redirects = subs[i].redirects;
    const std::size_t c = subs[i].cmd;
    const int forced = subs[i].forced;
    for (std::uint32_t k : keys) {
      Sub part;
      part.cmd = c;
      part.keys = {k};
      part.slot = internal::redis_key_slot(cmd[k]);
      part.forced = forced;
      part.redirects = redirects;
      part.args = make_args(cmd, part.keys, arena);
      subs.push_back(std::move(part));
      next.push_back(subs.size() - 1);
    }
  }

  // deliver: replies in the caller's order; split commands reassembled (MGET
  // elements by key position, integer replies summed). A command with a
  // failed part is not delivered; the first failure is returned.
  absl::Status deliver(std::span<const RedisArgs> commands, std::vector<Sub>& subs,
                       RedisReplyFn on_reply) {
    absl::Status first;
    std::vector<std::vector<std::size_t>> parts(commands.size());
    for (std::size_t i = 0; i < subs.size(); ++i) {
      if (!subs[i].replaced) parts[subs[i].cmd].push_back(i);
    }
    std::vector<redisReply*> elems;
    for (std::size_t c = 0; c < commands.size(); ++c) {
      const std::vector<std::size_t>& ps = parts[c];
      bool bad = false;
      for (std::size_t i : ps) {
        if (!subs[i].failed.ok()) {
          if (first.ok()) first = subs[i].failed;
          bad = true;
        } else if (subs[i].reply == nullptr) {
          if (first.ok()) first = absl::InternalError("redis: reply missing");
          bad = true;
        }
      }
      if (bad) continue;
      if (ps.size() == 1 && subs[ps[0]].keys.empty()) {
        on_reply(c, RedisReplyRef(subs[ps[0]].reply.get()));
        continue;
      }
      // Reassemble. An error (or odd) part is delivered as the whole reply.
      const redisReply* odd = nullptr;
      const bool sum = classify(commands[c]) == CmdKind::kMultiSum;
      long long total = 0;
      elems.assign(commands[c].size() - 1, nullptr);
      for (std::size_t i : ps) {
        const redisReply* r = static_cast<const redisReply*>(subs[i].reply.get());
        if (sum) {
          if (r->type != REDIS_REPLY_INTEGER) {
            odd = odd != nullptr ? odd : r;
            continue;
          }
          total += r->integer;
        } else {
          if (r->type != REDIS_REPLY_ARRAY || r->elements != subs[i].keys.size()) {
            odd = odd != nullptr ? odd : r;
            continue;
          }
          for (std::size_t j = 0; j < subs[i].keys.size(); ++j)
            elems[subs[i].keys[j] - 1] = r->element[j];
        }
      }
      if (odd != nullptr) {
        on_reply(c, RedisReplyRef(odd));
        continue;
      }
      redisReply agg{};
      if (sum) {
        agg.type = REDIS_REPLY_INTEGER;
        agg.integer = total;
      } else {
        agg.type = REDIS_REPLY_ARRAY;
        agg.elements = elems.size();
        agg.element = elems.data();
      }
      on_reply(c, RedisReplyRef(&agg));
    }
    return first;
  }

  // masters: the nodes owning slots, in index order (a SCAN cursor names one).
  std::vector<int> masters() {
    std::vector<bool> m = mapped_nodes();
    bool any = std::find(m.begin(), m.end(), true) != m.end();
    if (!any) {
      (void)refresh_cluster();
      m = mapped_nodes();
    }
    std::vector<int> out;
    for (std::size_t i = 0; i < m.size(); ++i) {
      if (m[i]) out.push_back(static_cast<int>(i));
    }
    return out;
  }

  // uncovered_slots: slots the map gives no master (unassigned, or owned by
  // a node whose address the cluster does not know).
  std::size_t uncovered_slots() const {
    std::size_t n = 0;
    for (std::size_t s = 0; s < kSlots; ++s) {
      if (slots[s].load(std::memory_order_relaxed) == kNoNode) ++n;
    }
    return n;
  }

  // scan_cluster: SCAN over every master behind a "<master#>:<cursor>" cursor.
  // A scan that starts while some slots have no known master fails with
  // kUnavailable (after one map refresh) instead of silently skipping their
  // keys: RedisStore::clear would otherwise report OK with keys left behind.
  absl::Status scan_cluster(RedisArgs cmd, RedisReplyFn on_reply, std::string_view what) {
    const std::string_view cur = cmd[1];
    if (cur == "0" && uncovered_slots() != 0) {
      (void)refresh_cluster();
      if (const std::size_t n = uncovered_slots(); n != 0) {
        return absl::UnavailableError(absl::StrCat("redis ", internal::av(what), ": ", n, " of ",
                                                   static_cast<std::size_t>(kSlots),
                                                   " cluster slots have no known master; a "
                                                   "scan would miss their keys"));
      }
    }
    const std::vector<int> ms = masters();
    std::size_t m = 0;
    std::string inner = "0";
    if (cur != "0") {
      const std::size_t colon = cur.find(':');
      if (colon == std::string_view::npos) {
        return absl::InvalidArgumentError("redis SCAN: not a cluster cursor");
      }
      for (char ch : cur.substr(0, colon)) m = m * 10 + static_cast<std::size_t>(ch - '0');
      inner.assign(cur.substr(colon + 1));
    }
    if (m >= ms.size()) {
      // Topology shrank under the scan: it is over.
      redisReply zero{};
      zero.type = REDIS_REPLY_STRING;
      std::string z = "0";
      zero.str = z.data();
      zero.len = 1;
      redisReply empty{};
      empty.type = REDIS_REPLY_ARRAY;
      redisReply* el[2] = {&zero, &empty};
      redisReply agg{};
      agg.type = REDIS_REPLY_ARRAY;
      agg.elements = 2;
      agg.element = el;
      on_reply(0, RedisReplyRef(&agg));
      return absl::OkStatus();
    }
    std::vector<std::string_view> args(cmd.begin(), cmd.end());
    args[1] = inner;
    const RedisArgs a(args.data(), args.size());
    std::vector<Sub> subs;
    std::deque<std::vector<std::string_view>> arena;
    collect(std::span<const RedisArgs>(&a, 1), what, ms[m], subs, arena);
    if (!subs[0].failed.ok()) return subs[0].failed;
    const redisReply* rr = static_cast<const redisReply*>(subs[0].reply.get());
    if (rr->type != REDIS_REPLY_ARRAY || rr->elements != 2 ||
        rr->element[0]->type != REDIS_REPLY_STRING) {
      on_reply(0, RedisReplyRef(rr));
      return absl::OkStatus();
    }
    const std::string_view next(rr->element[0]->str, rr->element[0]->len);
    std::string c = next != "0"         ? absl::StrCat(m, ":", internal::av(next))
                    : m + 1 < ms.size() ? absl::StrCat(m + 1, ":0")
                                        : std::string("0");
    redisReply cs{};
    cs.type = REDIS_REPLY_STRING;
    cs.str = c.data();
    cs.len = c.size();
    redisReply* el[2] = {&cs, rr->element[1]};
    redisReply agg{};
    agg.type = REDIS_REPLY_ARRAY;
    agg.elements = 2;
    agg.element = el;
    on_reply(0, RedisReplyRef(&agg));
    return absl::OkStatus();
  }

  absl::Status execute(std::span<const RedisArgs> commands, RedisReplyFn on_reply,
                       std::string_view what) {
    if (mode == Mode::kStandalone) return execute_standalone(commands, on_reply, what);
    if (mode == Mode::kCluster && commands.size() == 1 && classify(commands[0]) == CmdKind::kScan) {
      return scan_cluster(commands[0], on_reply, what);
    }
    return execute_routed(commands, on_reply, what);
  }
};

namespace {

void validate(const RedisOptions& o) {
  auto bad = [](const std::string& msg) { throw std::invalid_argument("RedisOptions: " + msg); };
  if (o.unix_socket.empty()) {
    if (o.host.empty()) bad("host is empty and unix_socket is not set");
    if (o.port <= 0 || o.port > 65535) bad("port must be in 1..65535");
  }
  if (!o.username.empty() && o.password.empty())
    bad("username needs a password (AUTH username password)");
  if (o.db < 0) bad("db must be >= 0");
  if (o.pool_size == 0) bad("pool_size must be >= 1");
  if (o.connect_timeout.count() <= 0) bad("connect_timeout must be > 0");
  if (o.command_timeout.count() <= 0) bad("command_timeout must be > 0");
  if (o.borrow_timeout.count() < 0) bad("borrow_timeout must be >= 0");
  if (o.breaker_probe_interval.count() <= 0) bad("breaker_probe_interval must be > 0");
  if (o.reconnect_backoff_min.count() < 0 || o.reconnect_backoff_max < o.reconnect_backoff_min) {
    bad("need 0 <= reconnect_backoff_min <= reconnect_backoff_max");
  }
  if (o.batch_chunk == 0) bad("batch_chunk must be >= 1");
  if (o.max_redirects == 0) bad("max_redirects must be >= 1");
  if (!o.cluster_nodes.empty() && !o.sentinels.empty()) {
    bad("cluster_nodes and sentinels are exclusive (a cluster has no sentinels)");
  }
  std::string h;
  int p = 0;
  for (const std::string& n : o.cluster_nodes) {
    if (!split_host_port(n, h, p) || h.empty())
      bad("cluster_nodes: \"" + n + "\" is not host:port");
  }
  for (const std::string& n : o.sentinels) {
    if (!split_host_port(n, h, p) || h.empty()) bad("sentinels: \"" + n + "\" is not host:port");
  }
  if (!o.sentinels.empty() && o.sentinel_master.empty()) bad("sentinels need sentinel_master");
  if (!o.cluster_nodes.empty()) {
    if (o.db != 0) bad("db must be 0 in cluster mode (Redis Cluster has only db 0)");
    if (!o.unix_socket.empty()) bad("unix_socket cannot be used in cluster mode");
    // A prefix holding a whole {hash tag} would put every key in one slot.
    const std::size_t open = o.key_prefix.find('{');
    if (open != std::string::npos) {
      const std::size_t close = o.key_prefix.find('}', open + 1);
      if (close != std::string::npos && close > open + 1) {
        bad("key_prefix \"" + o.key_prefix +
            "\" holds a {hash tag}: in cluster mode every key would hash to one slot (one node); "
            "drop the braces, or start the prefix with \"{}\" to neutralise tags");
      }
    }
  }
}

}  // namespace

RedisClient::RedisClient(RedisOptions options) {
  validate(options);
  impl_ = std::make_unique<Impl>(std::move(options));
  impl_->opts.clock = clock_or_default(std::move(impl_->opts.clock));
  impl_->prober = std::thread([impl = impl_.get()] { impl->maint_loop(); });
}

namespace {
RedisOptions options_from_uri(std::string_view uri, RedisOptions defaults) {
  absl::StatusOr<RedisOptions> o = parse_redis_uri(uri, std::move(defaults));
  if (!o.ok()) throw std::invalid_argument(std::string(o.status().message()));
  return *std::move(o);
}
}  // namespace

RedisClient::RedisClient(std::string_view uri, RedisOptions defaults)
    : RedisClient(options_from_uri(uri, std::move(defaults))) {}

RedisClient::~RedisClient() {
  {
    internal::MutexLock l(&impl_->maint_mu);
    impl_->stopping.store(true, std::memory_order_release);
    impl_->maint_cv.notify_all();
  }
  impl_->prober.join();
}

absl::Status RedisClient::command(RedisArgs args, RedisReplyFn on_reply, std::string_view what) {
  return impl_->timed_execute(std::span<const RedisArgs>(&args, 1), on_reply, what);
}

absl::Status RedisClient::pipeline(std::span<const RedisArgs> commands, RedisReplyFn on_reply,
                                   std::string_view what) {
  if (commands.empty()) return absl::OkStatus();
  return impl_->timed_execute(commands, on_reply, what);
}

const RedisOptions& RedisClient::options() const { return impl_->opts; }

bool RedisClient::logging() const { return static_cast<bool>(impl_->opts.log); }

void RedisClient::log(RedisLogLevel level, std::string_view message) const {
  impl_->log(level, message);
}

bool RedisClient::breaker_open() const {
  // Standalone/Sentinel: the server's (master's) breaker; cluster: any mapped node's.
  const std::vector<bool> m = impl_->mapped_nodes();
  for (std::size_t i = 0; i < m.size(); ++i) {
    if (m[i] && impl_->node(i)->breaker.load(std::memory_order_acquire)) return true;
  }
  return false;
}

RedisClientStats RedisClient::stats() const {
  RedisClientStats s;
  s.connects = impl_->connects.load(std::memory_order_relaxed);
  s.connect_failures = impl_->connect_failures.load(std::memory_order_relaxed);
  s.failures = impl_->failures.load(std::memory_order_relaxed);
  s.fast_failures = impl_->fast_failures.load(std::memory_order_relaxed);
  s.dropped = impl_->dropped.load(std::memory_order_relaxed);
  s.breaker_opens = impl_->breaker_opens.load(std::memory_order_relaxed);
  s.breaker_closes = impl_->breaker_closes.load(std::memory_order_relaxed);
  s.probes = impl_->probes.load(std::memory_order_relaxed);
  s.breaker_open = breaker_open();
  for (std::size_t i = 0; i < impl_->count(); ++i) {
    Node& n = *impl_->node(i);
    internal::MutexLock l(&n.mu);
    s.open_connections += n.open;
  }
  s.moved = impl_->moved.load(std::memory_order_relaxed);
  s.asks = impl_->asks.load(std::memory_order_relaxed);
  s.tryagains = impl_->tryagains.load(std::memory_order_relaxed);
  s.cluster_downs = impl_->downs.load(std::memory_order_relaxed);
  s.topology_refreshes = impl_->refreshes.load(std::memory_order_relaxed);
  s.topology_refresh_failures = impl_->refresh_failures.load(std::memory_order_relaxed);
  s.master_switches = impl_->master_switches.load(std::memory_order_relaxed);
  s.retries = impl_->retries.load(std::memory_order_relaxed);
  return s;
}

void RedisClient::for_each_metric(std::span<const MetricLabel> labels, MetricCallback out) const {
  using internal::emit_counter;
  using internal::emit_gauge;
  const RedisClientStats s = stats();
  struct Field {
    std::string_view name, help;
    std::uint64_t v;
  };
  const Field counters[] = {
      {"larder_redis_connects_total", "Connections opened", s.connects},
      {"larder_redis_connect_failures_total", "Connection attempts that failed",
       s.connect_failures},
      {"larder_redis_failures_total", "Calls that failed on the network", s.failures},
      {"larder_redis_fast_failures_total", "Calls refused without I/O (breaker, backoff)",
       s.fast_failures},
      {"larder_redis_dropped_total", "Connections closed as broken or stale", s.dropped},
      {"larder_redis_breaker_opens_total", "Breaker openings", s.breaker_opens},
      {"larder_redis_breaker_closes_total", "Breaker closings", s.breaker_closes},
      {"larder_redis_probes_total", "Probe attempts while the breaker was open", s.probes},
      {"larder_redis_moved_total", "Cluster MOVED redirections followed", s.moved},
      {"larder_redis_asks_total", "Cluster ASK redirections followed", s.asks},
      {"larder_redis_tryagains_total", "Cluster TRYAGAIN replies", s.tryagains},
      {"larder_redis_cluster_downs_total", "CLUSTERDOWN, LOADING or MASTERDOWN replies",
       s.cluster_downs},
      {"larder_redis_topology_refreshes_total", "Slot maps or master lookups applied",
       s.topology_refreshes},
      {"larder_redis_topology_refresh_failures_total", "Topology refreshes that found no answer",
       s.topology_refresh_failures},
      {"larder_redis_master_switches_total", "Sentinel: the master moved", s.master_switches},
      {"larder_redis_retries_total", "Reads re-sent after their pooled connection proved closed",
       s.retries},
  };
  for (const Field& f : counters) emit_counter(out, f.name, f.help, labels, f.v);
  for (std::size_t i = 0; i < impl_->count(); ++i) {
    const Node& n = *impl_->node(i);
    std::size_t open = 0, idle = 0;
    {
      internal::MutexLock l(&n.mu);
      open = n.open;
      idle = n.idle.size();
    }
    const internal::MetricLabels<8> nl(labels, {{"node", n.label}});
    emit_gauge(out, "larder_redis_breaker_open", "1 while the node's circuit breaker is open",
               nl.span(), n.breaker.load(std::memory_order_acquire) ? 1.0 : 0.0);
    const internal::MetricLabels<8> busy(nl.span(), {{"state", "in_use"}});
    const internal::MetricLabels<8> idle_l(nl.span(), {{"state", "idle"}});
    constexpr std::string_view kPool = "larder_redis_pool_connections";
    constexpr std::string_view kPoolHelp = "Pooled connections open now, by state";
    emit_gauge(out, kPool, kPoolHelp, busy.span(),
               static_cast<double>(open - std::min(open, idle)));
    emit_gauge(out, kPool, kPoolHelp, idle_l.span(), static_cast<double>(idle));
  }
  for (std::size_t k = 0; k < Impl::kKinds; ++k) {
    for (int p = 0; p < 2; ++p) {
      const internal::MetricLabels<8> cl(
          labels, {{"command", Impl::kCommandKinds[k]}, {"pipeline", p == 1 ? "1" : "0"}});
      internal::emit_histogram(out, "larder_redis_command_duration_seconds",
                               "command() and pipeline() calls, by first command", cl.span(),
                               impl_->command_latency[k][p]);
    }
  }
}

// ---- what src/ may ask a client ----

absl::StatusOr<internal::RedisEndpoint> internal::RedisClientAccess::subscribe_endpoint(
    RedisClient& client, std::size_t attempt) {
  RedisClient::Impl& im = *client.impl_;
  RedisEndpoint ep;
  ep.epoch = im.master_epoch.load(std::memory_order_acquire);
  switch (im.mode) {
    case RedisClient::Impl::Mode::kStandalone: {
      const Node& n = *im.node(0);
      ep.host = n.host;
      ep.port = n.port;
      ep.unix_socket = n.unix_socket;
      return ep;
    }
    case RedisClient::Impl::Mode::kSentinel: {
      if (attempt > 0 || im.master.load(std::memory_order_acquire) == kNoNode) {
        if (absl::Status s = im.resolve_master(); !s.ok()) return s;
      }
      ep.epoch = im.master_epoch.load(std::memory_order_acquire);
      const Node& n = *im.node(im.master.load(std::memory_order_acquire));
      ep.host = n.host;
      ep.port = n.port;
      return ep;
    }
    case RedisClient::Impl::Mode::kCluster: {
      // Candidates: mapped nodes with a closed breaker (or the seeds before a
      // map is known); each attempt takes the next, so a dead node is left.
      std::vector<bool> m = im.mapped_nodes();
      std::vector<std::size_t> cand;
      for (std::size_t i = 0; i < m.size(); ++i) {
        if ((m[i] || i < im.seeds) && !im.node(i)->breaker.load(std::memory_order_acquire))
          cand.push_back(i);
      }
      if (cand.empty()) {
        for (std::size_t i = 0; i < im.seeds; ++i) cand.push_back(i);
      }
      const Node& n = *im.node(cand[attempt % cand.size()]);
      ep.host = n.host;
      ep.port = n.port;
      return ep;
    }
  }
  return absl::InternalError("unreachable");
}

std::uint64_t internal::RedisClientAccess::epoch(const RedisClient& client) {
  return client.impl_->master_epoch.load(std::memory_order_acquire);
}

// ---- RedisReplyRef ----

namespace {
const redisReply* as_reply(const void* r) { return static_cast<const redisReply*>(r); }
}  // namespace

RedisReplyType RedisReplyRef::type() const {
  switch (as_reply(reply_)->type) {
    case REDIS_REPLY_STRING:
      return RedisReplyType::kString;
    case REDIS_REPLY_ARRAY:
      return RedisReplyType::kArray;
    case REDIS_REPLY_INTEGER:
      return RedisReplyType::kInteger;
    case REDIS_REPLY_NIL:
      return RedisReplyType::kNil;
    case REDIS_REPLY_STATUS:
      return RedisReplyType::kStatus;
    case REDIS_REPLY_ERROR:
      return RedisReplyType::kError;
    default:
      return RedisReplyType::kOther;
  }
}

std::string_view RedisReplyRef::str() const {
  const redisReply* r = as_reply(reply_);
  if (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS ||
      r->type == REDIS_REPLY_ERROR) {
    return std::string_view(r->str, r->len);
  }
  return {};
}

long long RedisReplyRef::integer() const {
  const redisReply* r = as_reply(reply_);
  return r->type == REDIS_REPLY_INTEGER ? r->integer : 0;
}

std::size_t RedisReplyRef::size() const {
  const redisReply* r = as_reply(reply_);
  return r->type == REDIS_REPLY_ARRAY ? r->elements : 0;
}

RedisReplyRef RedisReplyRef::operator[](std::size_t i) const {
  static const redisReply kNil = [] {
    redisReply r{};
    r.type = REDIS_REPLY_NIL;
    return r;
  }();
  if (i >= size()) return RedisReplyRef(&kNil);  // out of range: a nil, never UB
  return RedisReplyRef(as_reply(reply_)->element[i]);
}

absl::Status RedisReplyRef::status(std::string_view what) const {
  return internal::status_from_redis(nullptr, as_reply(reply_), what);
}

}  // namespace larder
