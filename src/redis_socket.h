// SPDX-License-Identifier: Apache-2.0
//
// Private to src/: the hiredis handles and the raw connect shared by
// RedisClient (src/redis_client.cc) and RedisInvalidationBus'
// receiving connection (src/redis_invalidation_bus.cc). Not installed.
//
// Both drive their sockets themselves with poll() against deadlines, so a
// connection leaves connect_nonblocking() non-blocking, with hiredis'
// REDIS_BLOCK flag cleared (redisGetReply then never blocks) and TCP
// keep-alive on. What each does next (AUTH and SELECT for the pool; AUTH and
// SUBSCRIBE for the bus) stays with its owner.
#ifndef LARDER_SRC_REDIS_SOCKET_H_
#define LARDER_SRC_REDIS_SOCKET_H_

#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <sys/time.h>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "larder/internal/errno_text.h"
#include "larder/internal/redis_status.h"
#include "larder/redis/client.h"

namespace larder::internal {

struct RedisContextDeleter {
  void operator()(redisContext* c) const {
    if (c != nullptr) redisFree(c);
  }
};
using RedisContextPtr = std::unique_ptr<redisContext, RedisContextDeleter>;

struct RedisReplyDeleter {
  void operator()(void* r) const {
    if (r != nullptr) freeReplyObject(r);
  }
};
using RedisReplyPtr = std::unique_ptr<void, RedisReplyDeleter>;

inline timeval to_timeval(std::chrono::milliseconds d) {
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(d.count() / 1000);
  tv.tv_usec = static_cast<suseconds_t>((d.count() % 1000) * 1000);
  return tv;
}

// kMaxReplyElements: the most elements one array reply may announce. hiredis
// 0.14 allocates an array's element table (8 bytes per element) as soon as it
// reads the "*<n>" header, before any element arrives, so 14 bytes from a
// broken or hostile server ("*2147483647\r\n") made it calloc 16 GiB
// (found by tests/fuzz/fuzz_redis_reply). Larger arrays fail the call with
// kResourceExhausted ("out of memory") and close the connection. larder's own
// commands stay far below (MGET/UNLINK/SCAN are chunked by batch_chunk); a
// user's command() answered by more than 2^20 elements (KEYS on a huge
// database) must be split, e.g. with SCAN.
inline constexpr int kMaxReplyElements = 1 << 20;

// bound_reply_arrays: makes c's reader refuse arrays longer than
// kMaxReplyElements (hiredis' own reply objects otherwise).
inline void bound_reply_arrays(redisContext* c) {
  static redisReplyObjectFunctions* const hiredis_default = c->reader->fn;
  static redisReplyObjectFunctions bounded = [] {
    redisReplyObjectFunctions f = *hiredis_default;
    f.createArray = [](const redisReadTask* task, int elements) -> void* {
      if (elements > kMaxReplyElements) return nullptr;  // the reader reports out of memory
      return hiredis_default->createArray(task, elements);
    };
    return f;
  }();
  if (c->reader->fn == hiredis_default) c->reader->fn = &bounded;
}

// connect_nonblocking_to: a connection to host:port (or unix_socket when
// non-empty) within `timeout`, switched to non-blocking I/O; or why not
// (status_from_redis' codes; kResourceExhausted when hiredis could not
// allocate).
inline absl::StatusOr<RedisContextPtr> connect_nonblocking_to(const std::string& host, int port,
                                                              const std::string& unix_socket,
                                                              std::chrono::milliseconds timeout) {
  const timeval tv = to_timeval(timeout);
  RedisContextPtr c(unix_socket.empty() ? redisConnectWithTimeout(host.c_str(), port, tv)
                                        : redisConnectUnixWithTimeout(unix_socket.c_str(), tv));
  if (c == nullptr) return absl::ResourceExhaustedError("redis connect: out of memory");
  if (c->err != 0) return status_from_redis(c.get(), nullptr, "connect");
  if (c->connection_type == REDIS_CONN_TCP) (void)redisEnableKeepAlive(c.get());
  bound_reply_arrays(c.get());
  const int fl = ::fcntl(c->fd, F_GETFL);
  if (fl < 0 || ::fcntl(c->fd, F_SETFL, fl | O_NONBLOCK) < 0) {
    return absl::UnavailableError(
        absl::StrCat("redis connect: fcntl(O_NONBLOCK): ", internal::errno_text(errno)));
  }
  c->flags &= ~REDIS_BLOCK;
  return c;
}

// connect_nonblocking: connect_nonblocking_to opts' server (unix_socket when
// set, else host:port) within connect_timeout.
inline absl::StatusOr<RedisContextPtr> connect_nonblocking(const RedisOptions& opts) {
  return connect_nonblocking_to(opts.host, opts.port, opts.unix_socket, opts.connect_timeout);
}

// run_on: the deadline-driven I/O loop of redis_client.cc's design essay on
// one non-blocking connection: sends every command, then hands each reply in
// order to on_reply. Fails (status_from_redis' codes; kDeadlineExceeded when
// the server makes no progress for `timeout`) leaving the connection in an
// unknown state: close it. Reads no further than the last reply it needs
// (bytes after it stay in c's reader). Declared here for the fuzz target.
absl::Status run_on(redisContext* c, std::span<const RedisArgs> commands, RedisReplyFn on_reply,
                    std::string_view what, std::chrono::milliseconds timeout);

// RedisEndpoint: one server a RedisClient routes to, as the bus's receiving
// connection needs it.
struct RedisEndpoint {
  std::string host;
  int port = 0;
  std::string unix_socket;
  std::uint64_t epoch = 0;  // RedisClientAccess::epoch() when chosen
  std::string label() const {
    return unix_socket.empty() ? absl::StrCat(host, ":", port) : absl::StrCat("unix:", unix_socket);
  }
};

// RedisClientAccess: what src/ (the bus) may ask a RedisClient beyond its
// public API. Defined in redis_client.cc.
struct RedisClientAccess {
  // subscribe_endpoint: where a subscriber should connect on its attempt-th
  // session: standalone, the server; Sentinel, the current master (resolved
  // if unknown); Cluster, a node with a closed breaker, a different one for
  // each attempt (pub/sub is broadcast cluster-wide, any node hears all).
  static absl::StatusOr<RedisEndpoint> subscribe_endpoint(RedisClient& client, std::size_t attempt);
  // epoch: changes whenever the Sentinel master changes (0 otherwise); a
  // subscriber connected under another epoch should move.
  static std::uint64_t epoch(const RedisClient& client);
};

}  // namespace larder::internal

#endif  // LARDER_SRC_REDIS_SOCKET_H_
