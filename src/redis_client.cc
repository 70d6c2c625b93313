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
//    So after connecting we switch the socket to O_NONBLOCK, clear REDIS_BLOCK
//    in ctx->flags (hiredis then treats EAGAIN as "no data yet", as in its
//    async mode), and drive hiredis' buffers ourselves:
//
//      redisAppendCommandArgv x N         format every command into obuf
//      loop: send(obuf, MSG_NOSIGNAL)     until obuf is empty; poll(POLLOUT|POLLIN)
//                                         between tries, reading replies early
//                                         so neither side's buffers fill up
//      for each of N replies:
//        redisGetReplyFromReader          a complete reply already buffered?
//        else poll(POLLIN, deadline); redisBufferRead
//
//    The deadline is command_timeout from the start and is renewed whenever
//    bytes move (sent or received): a call fails once the server makes no
//    progress for command_timeout. For a single small command (one send, one
//    reply) that is a bound on the whole call; a 10 MB pipeline may take
//    longer, as long as the server keeps reading and answering.
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
//    first). Before reusing an idle connection we poll() it for readability
//    with a zero timeout: an idle connection has no reply owed, so readable
//    means EOF/RST (the server restarted, or closed us for idling) and the
//    connection is dropped — a restart costs no failed call.
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
#include "larder/redis/client.h"
#include "larder/redis/uri.h"

#include <fcntl.h>
// hiredis 0.14's sds.h has no extern "C" of its own, and hiredis.h includes it
// outside its own: include it first, with C linkage (we call sdsrange & co.).
extern "C" {
#include <hiredis/sds.h>
}
#include <hiredis/hiredis.h>
#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
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
      absl::StrCat("redis ", internal::av(what), ": poll failed: ", std::strerror(errno)));
}

// write_some: sends what it can of c's output buffer without blocking and
// without SIGPIPE (redisBufferWrite, minus the signal). *done once empty.
absl::Status write_some(redisContext* c, int* done, std::string_view what) {
  const sds buf = c->obuf;
  const std::size_t len = sdslen(buf);
  if (len > 0) {
    const ssize_t n = ::send(c->fd, buf, len, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
        return internal::redis_io_status(what, errno);
      }
    } else if (static_cast<std::size_t>(n) == len) {
      sdsfree(c->obuf);
      c->obuf = sdsempty();
      if (c->obuf == nullptr) return absl::ResourceExhaustedError("redis: out of memory");
    } else {
      sdsrange(c->obuf, static_cast<int>(n), -1);
    }
  }
  *done = sdslen(c->obuf) == 0 ? 1 : 0;
  return absl::OkStatus();
}

// run_on: the I/O loop of the design essay, on one connection.
absl::Status run_on(redisContext* c, std::span<const RedisArgs> commands, RedisReplyFn on_reply,
                    std::string_view what, milliseconds timeout) {
  // argv/lens on the stack for ordinary commands; the heap only for long ones (MGET).
  constexpr std::size_t kInline = 8;
  const char* argv_inline[kInline];
  std::size_t lens_inline[kInline];
  std::vector<const char*> argv_heap;
  std::vector<std::size_t> lens_heap;
  for (const RedisArgs& cmd : commands) {
    const char** argv = argv_inline;
    std::size_t* lens = lens_inline;
    if (cmd.size() > kInline) {
      argv_heap.resize(cmd.size());
      lens_heap.resize(cmd.size());
      argv = argv_heap.data();
      lens = lens_heap.data();
    }
    for (std::size_t i = 0; i < cmd.size(); ++i) {
      argv[i] = cmd[i].data();
      lens[i] = cmd[i].size();
    }
    if (redisAppendCommandArgv(c, static_cast<int>(cmd.size()), argv, lens) != REDIS_OK) {
      return internal::status_from_redis(c, nullptr, what);
    }
  }
  Steady::time_point deadline = Steady::now() + timeout;
  int done = 0;
  for (;;) {
    const std::size_t before = sdslen(c->obuf);
    if (absl::Status w = write_some(c, &done, what); !w.ok()) return w;
    if (done) break;
    if (sdslen(c->obuf) != before) deadline = Steady::now() + timeout;  // progress
    const int ev = wait_fd(c->fd, POLLOUT | POLLIN, deadline);
    if (ev == 0) return internal::redis_timeout_status(what, timeout);
    if (ev < 0) return poll_error(what);
    if ((ev & (POLLIN | POLLERR | POLLHUP)) != 0) {
      if (redisBufferRead(c) != REDIS_OK) return internal::status_from_redis(c, nullptr, what);
      deadline = Steady::now() + timeout;  // progress (replies arriving early)
    }
  }
  for (std::size_t i = 0; i < commands.size(); ++i) {
    void* raw = nullptr;
    for (;;) {
      if (redisGetReplyFromReader(c, &raw) != REDIS_OK) {
        return internal::status_from_redis(c, nullptr, what);
      }
      if (raw != nullptr) break;
      const int ev = wait_fd(c->fd, POLLIN, deadline);
      if (ev == 0) return internal::redis_timeout_status(what, timeout);
      if (ev < 0) return poll_error(what);
      if (redisBufferRead(c) != REDIS_OK) return internal::status_from_redis(c, nullptr, what);
      deadline = Steady::now() + timeout;  // progress: bytes arrived
    }
    ReplyPtr reply(raw);
    on_reply(i, RedisReplyRef(raw));
  }
  return absl::OkStatus();
}

// is_dead: an idle connection owes no reply, so anything readable on it
// (EOF, RST, stray bytes) means it cannot be used.
bool is_dead(const redisContext* c) {
  pollfd p{c->fd, POLLIN, 0};
  const int r = ::poll(&p, 1, 0);
  return r != 0;  // readable, error, or poll failed
}

}  // namespace

struct RedisClient::Impl {
  explicit Impl(RedisOptions o) : opts(std::move(o)) {}

  RedisOptions opts;

  mutable internal::Mutex mu;
  internal::CondVar slot_cv;   // an idle connection appeared or a slot freed up
  internal::CondVar probe_cv;  // the breaker opened, or stopping
  std::vector<std::unique_ptr<Conn>> idle ABSL_GUARDED_BY(mu);
  std::size_t open ABSL_GUARDED_BY(mu) = 0;
  Steady::time_point next_connect ABSL_GUARDED_BY(mu){};
  milliseconds backoff ABSL_GUARDED_BY(mu){0};
  std::uint64_t generation ABSL_GUARDED_BY(mu) = 0;
  bool stopping ABSL_GUARDED_BY(mu) = false;

  std::atomic<bool> breaker{false};
  std::atomic<std::size_t> consecutive_failures{0};

  std::atomic<std::uint64_t> connects{0}, connect_failures{0}, failures{0}, fast_failures{0},
      dropped{0}, breaker_opens{0}, breaker_closes{0}, probes{0};

  std::thread prober;

  void log(RedisLogLevel level, std::string_view msg) const {
    if (opts.log) opts.log(level, msg);
  }

  std::string where() const {
    return opts.unix_socket.empty() ? absl::StrCat(opts.host, ":", opts.port)
                                    : absl::StrCat("unix:", opts.unix_socket);
  }

  // connect: a ready connection (AUTH and SELECT done), or why not.
  absl::StatusOr<ContextPtr> connect() {
    absl::StatusOr<ContextPtr> conn = internal::connect_nonblocking(opts);
    if (!conn.ok()) return conn.status();
    ContextPtr c = *std::move(conn);

    std::vector<std::vector<std::string_view>> setup;
    if (!opts.password.empty()) {
      if (opts.username.empty()) {
        setup.push_back({"AUTH", opts.password});
      } else {
        setup.push_back({"AUTH", opts.username, opts.password});
      }
    }
    const std::string db = std::to_string(opts.db);
    if (opts.db != 0) setup.push_back({"SELECT", db});
    if (!setup.empty()) {
      std::vector<RedisArgs> cmds(setup.begin(), setup.end());
      absl::Status first;
      absl::Status s = run_on(
          c.get(), cmds,
          [&](std::size_t i, RedisReplyRef r) {
            if (first.ok()) first = r.status(i == 0 && !opts.password.empty() ? "AUTH" : "SELECT");
          },
          "connect", opts.command_timeout);
      if (!s.ok()) return s;
      if (!first.ok()) return first;
    }
    return c;
  }

  void on_connect_result(const absl::Status& s) {
    if (s.ok()) {
      connects.fetch_add(1, std::memory_order_relaxed);
      return;
    }
    connect_failures.fetch_add(1, std::memory_order_relaxed);
    if (opts.log) log(RedisLogLevel::kWarning, absl::StrCat("larder redis: connect to ", where(),
                                                         " failed: ", s.ToString()));
  }

  // Why borrow() failed, for the breaker: kNone (local: the pool was busy),
  // kNetwork (a connect failed), kBackoff (refused without I/O after a
  // failed connect: Redis is unreachable, so it counts toward the breaker).
  enum class Blame { kNone, kNetwork, kBackoff };

  // borrow: a connection for one call; see the design essay, part 2.
  absl::StatusOr<std::unique_ptr<Conn>> borrow(Blame& blame) {
    blame = Blame::kNone;
    std::vector<std::unique_ptr<Conn>> discard;  // closed outside the lock
    absl::StatusOr<std::unique_ptr<Conn>> result = absl::UnknownError("unset");
    {
      internal::MutexLock l(&mu);
      const Steady::time_point borrow_deadline = Steady::now() + opts.borrow_timeout;
      for (;;) {
        while (!idle.empty()) {
          std::unique_ptr<Conn> c = std::move(idle.back());
          idle.pop_back();
          if (c->generation == generation && !is_dead(c->ctx.get())) return c;
          --open;
          dropped.fetch_add(1, std::memory_order_relaxed);
          discard.push_back(std::move(c));
        }
        if (open < opts.pool_size) {
          if (Steady::now() < next_connect) {
            // Refused without I/O, but because Redis is unreachable: it
            // counts toward the breaker (not toward `failures`).
            fast_failures.fetch_add(1, std::memory_order_relaxed);
            blame = Blame::kBackoff;
            result = absl::UnavailableError(absl::StrCat(
                "redis: ", where(), " unreachable; reconnecting after ", backoff.count(),
                " ms backoff"));
            break;
          }
          ++open;
          const std::uint64_t gen = generation;
          l.native().unlock();
          absl::StatusOr<ContextPtr> c = connect();
          l.native().lock();
          if (!c.ok()) {
            --open;
            backoff = backoff.count() == 0 ? opts.reconnect_backoff_min
                                           : std::min(backoff * 2, opts.reconnect_backoff_max);
            next_connect = Steady::now() + backoff;
            slot_cv.notify_one();
            blame = Blame::kNetwork;
            result = c.status();
          } else {
            backoff = milliseconds(0);
            next_connect = Steady::time_point{};
            auto conn = std::make_unique<Conn>();
            conn->ctx = *std::move(c);
            conn->generation = gen;
            result = std::move(conn);
          }
          break;
        }
        if (!slot_cv.wait_until(l, borrow_deadline,
                                [&] { return !idle.empty() || open < opts.pool_size; })) {
          result = absl::DeadlineExceededError(absl::StrCat(
              "redis: no pooled connection free within borrow_timeout (",
              opts.borrow_timeout.count(), " ms, pool_size ", opts.pool_size, ")"));
          break;
        }
      }
    }
    if (blame == Blame::kNetwork || result.ok()) on_connect_result(result.status());
    return result;
  }

  // give_back: returns a connection after a call; a broken or stale one is closed.
  void give_back(std::unique_ptr<Conn> c, bool healthy) {
    {
      internal::MutexLock l(&mu);
      if (healthy && c->generation == generation && !stopping) {
        idle.push_back(std::move(c));
      } else {
        --open;
      }
      slot_cv.notify_one();
    }
    if (c != nullptr) dropped.fetch_add(1, std::memory_order_relaxed);
    // c (if still owned) closes here, outside the lock.
  }

  void record_success() {
    if (consecutive_failures.load(std::memory_order_relaxed) != 0) {
      consecutive_failures.store(0, std::memory_order_relaxed);
    }
  }

  // record_failure: a call failed because Redis is unreachable or hung;
  // `network`: it touched the network (false: refused during backoff).
  void record_failure(const absl::Status& s, bool network = true) {
    if (network) failures.fetch_add(1, std::memory_order_relaxed);
    if (opts.breaker_failures == 0) return;
    const std::size_t n = consecutive_failures.fetch_add(1, std::memory_order_acq_rel) + 1;
    if (n < opts.breaker_failures) return;
    if (breaker.exchange(true, std::memory_order_acq_rel)) return;  // already open
    breaker_opens.fetch_add(1, std::memory_order_relaxed);
    std::vector<std::unique_ptr<Conn>> stale;
    {
      internal::MutexLock l(&mu);
      ++generation;
      open -= idle.size();
      stale.swap(idle);
      probe_cv.notify_all();
      slot_cv.notify_all();
    }
    dropped.fetch_add(stale.size(), std::memory_order_relaxed);
    if (opts.log) {
      log(RedisLogLevel::kError,
          absl::StrCat("larder redis: circuit breaker open after ", n,
                       " consecutive failures talking to ", where(), " (last: ", s.ToString(),
                       "); calls fail at once until a probe succeeds"));
    }
  }

  // probe_loop: the breaker's background probe (design essay, part 3).
  void probe_loop() {
    internal::MutexLock l(&mu);
    for (;;) {
      probe_cv.wait(l, [&] { return stopping || breaker.load(std::memory_order_acquire); });
      if (stopping) return;
      if (probe_cv.wait_for(l, opts.breaker_probe_interval, [&] { return stopping; })) return;
      const std::uint64_t gen = generation;
      l.native().unlock();
      probes.fetch_add(1, std::memory_order_relaxed);
      absl::StatusOr<ContextPtr> c = connect();
      if (c.ok()) {
        static constexpr std::string_view kPing[] = {"PING"};
        const RedisArgs cmd(kPing);
        absl::Status reply_status;
        absl::Status s = run_on(
            c->get(), std::span<const RedisArgs>(&cmd, 1),
            [&](std::size_t, RedisReplyRef r) { reply_status = r.status("PING"); }, "PING",
            opts.command_timeout);
        if (s.ok()) s = reply_status;
        if (!s.ok()) c = s;
      }
      on_connect_result(c.status());
      l.native().lock();
      if (stopping) return;
      if (!c.ok()) {
        if (opts.log) {
          l.native().unlock();
          log(RedisLogLevel::kDebug, absl::StrCat("larder redis: probe failed: ",
                                                  c.status().ToString()));
          l.native().lock();
        }
        continue;
      }
      if (open < opts.pool_size && gen == generation) {
        ++open;
        auto conn = std::make_unique<Conn>();
        conn->ctx = *std::move(c);
        conn->generation = gen;
        idle.push_back(std::move(conn));
      }
      backoff = milliseconds(0);
      next_connect = Steady::time_point{};
      consecutive_failures.store(0, std::memory_order_relaxed);
      breaker.store(false, std::memory_order_release);
      breaker_closes.fetch_add(1, std::memory_order_relaxed);
      slot_cv.notify_all();
      if (opts.log) {
        l.native().unlock();
        log(RedisLogLevel::kInfo,
            absl::StrCat("larder redis: ", where(), " reachable again; circuit breaker closed"));
        l.native().lock();
      }
    }
  }

  absl::Status execute(std::span<const RedisArgs> commands, RedisReplyFn on_reply,
                       std::string_view what) {
    if (breaker.load(std::memory_order_acquire)) {
      fast_failures.fetch_add(1, std::memory_order_relaxed);
      return absl::UnavailableError(absl::StrCat("redis ", internal::av(what), ": ", where(),
                                                 " circuit breaker open"));
    }
    Blame blame = Blame::kNone;
    absl::StatusOr<std::unique_ptr<Conn>> conn = borrow(blame);
    if (!conn.ok()) {
      if (blame != Blame::kNone) record_failure(conn.status(), blame == Blame::kNetwork);
      return absl::Status(conn.status().code(),
                          absl::StrCat("redis ", internal::av(what), ": ", conn.status().message()));
    }
    // If on_reply throws, the connection still owes replies: close it.
    struct Returner {
      Impl* self;
      std::unique_ptr<Conn> c;
      bool healthy = false;
      ~Returner() { self->give_back(std::move(c), healthy); }
    } ret{this, *std::move(conn)};
    absl::Status s = run_on(ret.c->ctx.get(), commands, on_reply, what, opts.command_timeout);
    ret.healthy = s.ok();
    if (s.ok()) {
      record_success();
    } else {
      record_failure(s);
    }
    return s;
  }
};

namespace {

void validate(const RedisOptions& o) {
  auto bad = [](const std::string& msg) { throw std::invalid_argument("RedisOptions: " + msg); };
  if (o.unix_socket.empty()) {
    if (o.host.empty()) bad("host is empty and unix_socket is not set");
    if (o.port <= 0 || o.port > 65535) bad("port must be in 1..65535");
  }
  if (!o.username.empty() && o.password.empty()) bad("username needs a password (AUTH username password)");
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
}

}  // namespace

RedisClient::RedisClient(RedisOptions options) {
  validate(options);
  impl_ = std::make_unique<Impl>(std::move(options));
  impl_->opts.clock = clock_or_default(std::move(impl_->opts.clock));
  impl_->prober = std::thread([impl = impl_.get()] { impl->probe_loop(); });
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
    internal::MutexLock l(&impl_->mu);
    impl_->stopping = true;
    impl_->probe_cv.notify_all();
    impl_->slot_cv.notify_all();
  }
  impl_->prober.join();
}

absl::Status RedisClient::command(RedisArgs args, RedisReplyFn on_reply, std::string_view what) {
  return impl_->execute(std::span<const RedisArgs>(&args, 1), on_reply, what);
}

absl::Status RedisClient::pipeline(std::span<const RedisArgs> commands, RedisReplyFn on_reply,
                                   std::string_view what) {
  if (commands.empty()) return absl::OkStatus();
  return impl_->execute(commands, on_reply, what);
}

const RedisOptions& RedisClient::options() const { return impl_->opts; }

bool RedisClient::logging() const { return static_cast<bool>(impl_->opts.log); }

void RedisClient::log(RedisLogLevel level, std::string_view message) const {
  impl_->log(level, message);
}

bool RedisClient::breaker_open() const { return impl_->breaker.load(std::memory_order_acquire); }

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
  s.breaker_open = impl_->breaker.load(std::memory_order_acquire);
  internal::MutexLock l(&impl_->mu);
  s.open_connections = impl_->open;
  return s;
}

// ---- RedisReplyRef ----

namespace {
const redisReply* as_reply(const void* r) { return static_cast<const redisReply*>(r); }
}  // namespace

RedisReplyType RedisReplyRef::type() const {
  switch (as_reply(reply_)->type) {
    case REDIS_REPLY_STRING: return RedisReplyType::kString;
    case REDIS_REPLY_ARRAY: return RedisReplyType::kArray;
    case REDIS_REPLY_INTEGER: return RedisReplyType::kInteger;
    case REDIS_REPLY_NIL: return RedisReplyType::kNil;
    case REDIS_REPLY_STATUS: return RedisReplyType::kStatus;
    case REDIS_REPLY_ERROR: return RedisReplyType::kError;
    default: return RedisReplyType::kOther;
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
