// SPDX-License-Identifier: Apache-2.0
//
// RedisInvalidationBus: PUBLISH through a RedisClient, SUBSCRIBE on a
// dedicated connection (public side: include/larder/redis/invalidation_bus.h).
//
// Design
// ------
// 1. Receiving thread. One per bus, started by the first subscribe() (a bus
//    used only to publish opens no extra connection). Its life is a loop of
//    sessions:
//
//      connect --fail--> backoff (min doubling to max) --+
//        ^  |                                            |
//        |  +--> AUTH? + SUBSCRIBE, confirmed --> listening: read messages,
//        |                                        PING after ping_interval of
//        |                                        silence
//        +--------- any failure (EOF, reset, error reply, unanswered PING) --+
//
//    The socket is non-blocking (REDIS_BLOCK cleared, as in redis_client.cc)
//    and every wait is a poll() on two descriptors: the socket and the read
//    end of a pipe the destructor writes to. So the thread never blocks in a
//    read, and destruction wakes it at once (only redisConnectWithTimeout
//    itself is not interruptible: it is bounded by connect_timeout). Writes
//    are send(MSG_NOSIGNAL) on hiredis' output buffer: no SIGPIPE.
//
// 2. Gaps. A session's end marks every subscriber "missed" (under the
//    ListenerSet's mutex). When the next session is listening (SUBSCRIBE
//    confirmed), the thread takes the missed set and calls their on_gap,
//    outside every lock, before delivering any message of the new session.
//    A subscriber added while the bus is not listening waits in subscribe()
//    for the connection; if it gives up first it is marked missed (under the
//    bus mutex, which also guards `listening`, so the mark cannot slip in
//    after the thread took the missed set for a session that then never
//    tells it).
//
// 3. Messages: "\0LDR1" + origin (u64 LE) + kind + key bytes (see the
//    header). Delivery goes through internal::ListenerSet (invalidation_bus.h),
//    which skips subscribers of the same origin and lets subscriptions be
//    destroyed concurrently with delivery.
//
// Lock order: Impl::mu before the ListenerSet's. Callbacks and the log hook
// run with neither held.
//
// References: Redis pub/sub, https://redis.io/docs/manual/pubsub/ (delivery is
// at most once; nothing is kept for disconnected subscribers).
#include <fcntl.h>

#include "larder/internal/errno_text.h"
#include "larder/redis/invalidation_bus.h"
extern "C" {
#include <hiredis/sds.h>
}
#include <hiredis/hiredis.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "larder/codec.h"
#include "larder/internal/absl_compat.h"
#include "larder/internal/mutex.h"
#include "larder/internal/redis_status.h"
#include "redis_bus_message.h"
#include "redis_socket.h"

namespace larder {
namespace {

using Steady = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr char kKindKey = internal::kBusKindKey;
constexpr char kKindClear = internal::kBusKindClear;
using internal::decode_bus_message;
using internal::encode_bus_message;

using ContextPtr = internal::RedisContextPtr;
using ReplyPtr = internal::RedisReplyPtr;

enum class Wait { kReady, kTimeout, kWoken, kError };

}  // namespace

struct RedisInvalidationBus::Impl {
  Impl(std::shared_ptr<RedisClient> c, const std::string& ch, RedisInvalidationBusOptions bo)
      : client(std::move(c)), bus_opts(bo), set(std::make_shared<internal::ListenerSet>()) {
    if (client == nullptr) throw std::invalid_argument("RedisInvalidationBus: client is null");
    if (bus_opts.ping_interval.count() <= 0) {
      throw std::invalid_argument("RedisInvalidationBusOptions: ping_interval must be > 0");
    }
    if (ch.empty()) throw std::invalid_argument("RedisInvalidationBus: channel is empty");
    channel = client->options().key_prefix + ch;
    if (::pipe2(wake, O_CLOEXEC | O_NONBLOCK) != 0) {
      throw std::runtime_error(
          absl::StrCat("RedisInvalidationBus: pipe2: ", internal::errno_text(errno)));
    }
  }

  ~Impl() {
    stopping.store(true, std::memory_order_release);
    const char b = 1;
    (void)!::write(wake[1], &b, 1);
    if (thread.joinable()) thread.join();
    ::close(wake[0]);
    ::close(wake[1]);
  }

  std::shared_ptr<RedisClient> client;
  RedisInvalidationBusOptions bus_opts;
  std::string channel;
  std::shared_ptr<internal::ListenerSet> set;
  int wake[2] = {-1, -1};
  std::atomic<bool> stopping{false};

  mutable internal::Mutex mu;  // before set's mutex
  mutable internal::CondVar listening_cv;
  bool listening ABSL_GUARDED_BY(mu) = false;
  bool started ABSL_GUARDED_BY(mu) = false;
  std::thread thread;

  std::atomic<std::uint64_t> published{0}, publish_failures{0}, received{0}, subscribes{0},
      disconnects{0}, connect_failures{0}, gaps{0};

  const RedisOptions& opts() const { return client->options(); }

  void log(RedisLogLevel level, const std::string& msg) const {
    if (client->logging()) client->log(level, msg);
  }

  // ---- publishing ----

  absl::Status publish_payloads(const std::vector<std::string>& payloads) {
    if (payloads.empty()) return absl::OkStatus();
    std::vector<std::array<std::string_view, 3>> args(payloads.size());
    std::vector<RedisArgs> cmds(payloads.size());
    for (std::size_t i = 0; i < payloads.size(); ++i) {
      args[i] = {"PUBLISH", channel, payloads[i]};
      cmds[i] = RedisArgs(args[i]);
    }
    absl::Status first;
    absl::Status s = client->pipeline(
        cmds,
        [&](std::size_t, RedisReplyRef r) {
          if (first.ok()) first = r.status("PUBLISH");
        },
        "PUBLISH");
    if (s.ok()) s = first;
    if (s.ok()) {
      published.fetch_add(payloads.size(), std::memory_order_relaxed);
    } else {
      publish_failures.fetch_add(1, std::memory_order_relaxed);
    }
    return s;
  }

  // ---- subscribing ----

  std::unique_ptr<Subscription> subscribe(Origin self, Listener on_invalidate, GapListener on_gap) {
    const internal::ListenerSet::Sub* sub = nullptr;
    std::unique_ptr<Subscription> handle =
        set->add(self, std::move(on_invalidate), std::move(on_gap), false, &sub);
    internal::MutexLock l(&mu);
    if (!started) {
      started = true;
      thread = std::thread([this] { run(); });
    }
    const milliseconds patience = opts().connect_timeout + opts().command_timeout;
    if (!listening_cv.wait_for(l, patience,
                               [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) { return listening; })) {
      set->mark_missed(sub);  // on_gap once it listens
    }
    return handle;
  }

  // ---- the receiving thread ----

  // wait_on: poll fd for `events` and the wake pipe, up to `deadline`.
  Wait wait_on(int fd, short events, Steady::time_point deadline) const {
    for (;;) {
      if (stopping.load(std::memory_order_acquire)) return Wait::kWoken;
      const auto left = deadline - Steady::now();
      if (left <= Steady::duration::zero()) return Wait::kTimeout;
      const auto ms = std::chrono::ceil<milliseconds>(left).count();
      pollfd p[2] = {{wake[0], POLLIN, 0}, {fd, events, 0}};
      const int n = fd < 0 ? 1 : 2;
      const int r = ::poll(p, n, static_cast<int>(std::min<long long>(ms, 1 << 30)));
      if (r < 0) {
        if (errno == EINTR) continue;
        return Wait::kError;
      }
      if (r == 0) continue;  // re-check the deadline
      if (p[0].revents != 0) return Wait::kWoken;
      if (n == 2 && p[1].revents != 0) return Wait::kReady;
    }
  }

  // send_all: writes hiredis' output buffer (send, MSG_NOSIGNAL) by deadline.
  absl::Status send_all(redisContext* c, Steady::time_point deadline, std::string_view what) {
    while (sdslen(c->obuf) > 0) {
      const ssize_t n = ::send(c->fd, c->obuf, sdslen(c->obuf), MSG_NOSIGNAL);
      if (n < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
          return internal::redis_io_status(what, errno);
        }
        const Wait w = wait_on(c->fd, POLLOUT, deadline);
        if (w == Wait::kWoken) return absl::CancelledError("stopping");
        if (w == Wait::kTimeout)
          return internal::redis_timeout_status(what, opts().command_timeout);
        if (w == Wait::kError) return absl::UnavailableError("redis subscribe: poll failed");
        continue;
      }
      sdsrange(c->obuf, static_cast<int>(n), -1);
    }
    return absl::OkStatus();
  }

  // read_reply: the next reply by deadline.
  absl::StatusOr<ReplyPtr> read_reply(redisContext* c, Steady::time_point deadline,
                                      std::string_view what) {
    for (;;) {
      void* raw = nullptr;
      if (redisGetReplyFromReader(c, &raw) != REDIS_OK) {
        return internal::status_from_redis(c, nullptr, what);
      }
      if (raw != nullptr) return ReplyPtr(raw);
      const Wait w = wait_on(c->fd, POLLIN, deadline);
      if (w == Wait::kWoken) return absl::CancelledError("stopping");
      if (w == Wait::kTimeout) return internal::redis_timeout_status(what, opts().command_timeout);
      if (w == Wait::kError) return absl::UnavailableError("redis subscribe: poll failed");
      if (redisBufferRead(c) != REDIS_OK) return internal::status_from_redis(c, nullptr, what);
    }
  }

  // connect: a connection to where the client says a subscriber belongs
  // (the server; the Sentinel master; under Cluster another node on each
  // attempt, since pub/sub is broadcast to every node).
  absl::StatusOr<ContextPtr> connect() {
    absl::StatusOr<internal::RedisEndpoint> ep =
        internal::RedisClientAccess::subscribe_endpoint(*client, attempts++);
    if (!ep.ok()) return ep.status();
    endpoint = *std::move(ep);
    return internal::connect_nonblocking_to(endpoint.host, endpoint.port, endpoint.unix_socket,
                                            opts().connect_timeout);
  }
  std::size_t attempts = 0;          // the receiving thread's
  internal::RedisEndpoint endpoint;  // the receiving thread's: where it connected last

  // append: one command into hiredis' output buffer (any number of arguments).
  static absl::Status append(redisContext* c, std::initializer_list<std::string_view> args,
                             std::string_view what) {
    std::vector<const char*> argv;
    std::vector<std::size_t> lens;
    argv.reserve(args.size());
    lens.reserve(args.size());
    for (std::string_view a : args) {
      argv.push_back(a.data());
      lens.push_back(a.size());
    }
    if (redisAppendCommandArgv(c, static_cast<int>(argv.size()), argv.data(), lens.data()) !=
        REDIS_OK) {
      return internal::status_from_redis(c, nullptr, what);
    }
    return absl::OkStatus();
  }

  // handshake: AUTH (if configured) and SUBSCRIBE, until confirmed.
  absl::Status handshake(redisContext* c) {
    const RedisOptions& o = opts();
    const Steady::time_point deadline = Steady::now() + o.command_timeout;
    const bool auth = !o.password.empty();
    if (auth) {
      absl::Status s = o.username.empty() ? append(c, {"AUTH", o.password}, "AUTH")
                                          : append(c, {"AUTH", o.username, o.password}, "AUTH");
      if (!s.ok()) return s;
    }
    if (absl::Status s = append(c, {"SUBSCRIBE", channel}, "SUBSCRIBE"); !s.ok()) return s;
    if (absl::Status s = send_all(c, deadline, "SUBSCRIBE"); !s.ok()) return s;
    if (auth) {
      absl::StatusOr<ReplyPtr> r = read_reply(c, deadline, "AUTH");
      if (!r.ok()) return r.status();
      if (absl::Status s = RedisReplyRef(r->get()).status("AUTH"); !s.ok()) return s;
    }
    absl::StatusOr<ReplyPtr> r = read_reply(c, deadline, "SUBSCRIBE");
    if (!r.ok()) return r.status();
    const RedisReplyRef ref(r->get());
    if (absl::Status s = ref.status("SUBSCRIBE"); !s.ok()) return s;
    if (ref.type() != RedisReplyType::kArray || ref[0].str() != "subscribe") {
      return absl::InternalError("redis SUBSCRIBE: unexpected reply");
    }
    return absl::OkStatus();
  }

  // became_listening: mark listening and tell the subscribers that missed
  // messages (outside the locks).
  void became_listening() {
    std::vector<std::shared_ptr<internal::ListenerSet::Sub>> missed;
    {
      internal::MutexLock l(&mu);
      listening = true;
      missed = set->take_missed();
      listening_cv.notify_all();
    }
    subscribes.fetch_add(1, std::memory_order_relaxed);
    gaps.fetch_add(missed.size(), std::memory_order_relaxed);
    set->deliver_gap_to(missed);
  }

  void lost_listening() {
    internal::MutexLock l(&mu);
    listening = false;
    set->mark_all_missed();
  }

  // handle: one pushed reply. Error on a reply that ends the session.
  absl::Status handle(RedisReplyRef r, bool& ping_outstanding) {
    if (absl::Status s = r.status("SUBSCRIBE"); !s.ok()) return s;
    if (r.type() == RedisReplyType::kStatus) return absl::OkStatus();
    if (r.type() != RedisReplyType::kArray || r.size() == 0) {
      return absl::InternalError("redis SUBSCRIBE: unexpected push");
    }
    const std::string_view kind = r[0].str();
    if (kind == "message" && r.size() >= 3) {
      received.fetch_add(1, std::memory_order_relaxed);
      const internal::BusMessage m = decode_bus_message(r[2].str());
      if (m.kind == kKindClear) {
        set->deliver_gap(m.origin);
      } else {
        set->deliver_key(m.origin, m.key);
      }
    } else if (kind == "pong") {
      ping_outstanding = false;
    }
    return absl::OkStatus();
  }

  // session: one connection's life; returns why it ended (Cancelled: stopping),
  // and whether it got as far as listening.
  absl::Status session(bool& was_listening) {
    was_listening = false;
    absl::StatusOr<ContextPtr> conn = connect();
    if (!conn.ok()) return conn.status();
    redisContext* c = conn->get();
    if (absl::Status s = handshake(c); !s.ok()) return s;
    was_listening = true;
    became_listening();
    const milliseconds timeout = opts().command_timeout;
    bool ping_outstanding = false;
    Steady::time_point last_rx = Steady::now();
    Steady::time_point ping_deadline{};
    for (;;) {
      const Steady::time_point deadline =
          ping_outstanding ? ping_deadline : last_rx + bus_opts.ping_interval;
      const Wait w = wait_on(c->fd, POLLIN, deadline);
      if (w == Wait::kWoken) return absl::CancelledError("stopping");
      if (w == Wait::kError) return absl::UnavailableError("redis subscribe: poll failed");
      if (internal::RedisClientAccess::epoch(*client) != endpoint.epoch) {
        // Sentinel moved the master: a subscriber on the old one may stay
        // connected but deaf. Follow it (the next session reports the gap).
        return absl::UnavailableError("redis subscribe: the sentinel master moved");
      }
      if (w == Wait::kTimeout) {
        if (ping_outstanding) return internal::redis_timeout_status("PING", timeout);
        if (absl::Status s = append(c, {"PING"}, "PING"); !s.ok()) return s;
        const Steady::time_point now = Steady::now();
        if (absl::Status s = send_all(c, now + timeout, "PING"); !s.ok()) return s;
        ping_outstanding = true;
        ping_deadline = now + timeout;
        continue;
      }
      if (redisBufferRead(c) != REDIS_OK)
        return internal::status_from_redis(c, nullptr, "SUBSCRIBE");
      last_rx = Steady::now();
      for (;;) {
        void* raw = nullptr;
        if (redisGetReplyFromReader(c, &raw) != REDIS_OK) {
          return internal::status_from_redis(c, nullptr, "SUBSCRIBE");
        }
        if (raw == nullptr) break;
        ReplyPtr reply(raw);
        if (absl::Status s = handle(RedisReplyRef(raw), ping_outstanding); !s.ok()) return s;
        if (stopping.load(std::memory_order_acquire)) return absl::CancelledError("stopping");
      }
    }
  }

  std::string where() const { return endpoint.label(); }

  void run() {
    const milliseconds floor = std::max(opts().reconnect_backoff_min, milliseconds(5));
    milliseconds backoff{0};
    while (!stopping.load(std::memory_order_acquire)) {
      bool was_listening = false;
      const absl::Status s = session(was_listening);
      if (was_listening) lost_listening();
      if (stopping.load(std::memory_order_acquire)) return;
      if (was_listening) {
        disconnects.fetch_add(1, std::memory_order_relaxed);
        backoff = milliseconds(0);  // try again at once
        log(RedisLogLevel::kWarning,
            absl::StrCat("larder redis: invalidation subscription to ", where(), " channel \"",
                         channel, "\" lost (", s.ToString(),
                         "); reconnecting, subscribers will be told of the gap"));
        continue;
      }
      connect_failures.fetch_add(1, std::memory_order_relaxed);
      backoff = backoff.count() == 0
                    ? floor
                    : std::min(backoff * 2, std::max(floor, opts().reconnect_backoff_max));
      log(RedisLogLevel::kWarning,
          absl::StrCat("larder redis: invalidation subscription to ", where(), " failed (",
                       s.ToString(), "); retrying in ", backoff.count(), " ms"));
      if (wait_on(-1, 0, Steady::now() + backoff) == Wait::kWoken) return;
    }
  }
};

RedisInvalidationBus::RedisInvalidationBus(RedisOptions options, const std::string& channel,
                                           RedisInvalidationBusOptions bus_options)
    : RedisInvalidationBus(std::make_shared<RedisClient>(std::move(options)), channel,
                           bus_options) {}

RedisInvalidationBus::RedisInvalidationBus(std::shared_ptr<RedisClient> client,
                                           const std::string& channel,
                                           RedisInvalidationBusOptions bus_options)
    : impl_(std::make_unique<Impl>(std::move(client), channel, bus_options)) {}

RedisInvalidationBus::~RedisInvalidationBus() = default;

absl::Status RedisInvalidationBus::publish(std::string_view key_bytes) {
  return publish_from(kNoOrigin, key_bytes);
}

absl::Status RedisInvalidationBus::publish_from(Origin origin, std::string_view key_bytes) {
  return impl_->publish_payloads({encode_bus_message(origin, kKindKey, key_bytes)});
}

absl::Status RedisInvalidationBus::publish_many_from(Origin origin,
                                                     std::span<const std::string> keys_bytes) {
  std::vector<std::string> payloads;
  payloads.reserve(keys_bytes.size());
  for (const std::string& k : keys_bytes)
    payloads.push_back(encode_bus_message(origin, kKindKey, k));
  return impl_->publish_payloads(payloads);
}

absl::Status RedisInvalidationBus::publish_clear_from(Origin origin) {
  return impl_->publish_payloads({encode_bus_message(origin, kKindClear, {})});
}

std::unique_ptr<InvalidationBus::Subscription> RedisInvalidationBus::subscribe(
    Listener on_invalidate, GapListener on_gap) {
  return impl_->subscribe(kNoOrigin, std::move(on_invalidate), std::move(on_gap));
}

std::unique_ptr<InvalidationBus::Subscription> RedisInvalidationBus::subscribe_as(
    Origin self, Listener on_invalidate, GapListener on_gap) {
  return impl_->subscribe(self, std::move(on_invalidate), std::move(on_gap));
}

const std::string& RedisInvalidationBus::channel() const { return impl_->channel; }

bool RedisInvalidationBus::wait_listening(std::chrono::milliseconds timeout) const {
  internal::MutexLock l(&impl_->mu);
  return impl_->listening_cv.wait_for(
      l, timeout, [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(impl_->mu) { return impl_->listening; });
}

RedisInvalidationBusStats RedisInvalidationBus::stats() const {
  RedisInvalidationBusStats s;
  s.published = impl_->published.load(std::memory_order_relaxed);
  s.publish_failures = impl_->publish_failures.load(std::memory_order_relaxed);
  s.received = impl_->received.load(std::memory_order_relaxed);
  s.subscribes = impl_->subscribes.load(std::memory_order_relaxed);
  s.disconnects = impl_->disconnects.load(std::memory_order_relaxed);
  s.connect_failures = impl_->connect_failures.load(std::memory_order_relaxed);
  s.gaps = impl_->gaps.load(std::memory_order_relaxed);
  internal::MutexLock l(&impl_->mu);
  s.listening = impl_->listening;
  return s;
}

const std::shared_ptr<RedisClient>& RedisInvalidationBus::client() const { return impl_->client; }

}  // namespace larder
