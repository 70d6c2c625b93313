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
#include <cstring>
#include <memory>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
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

// connect_nonblocking: a connection to opts' server (unix_socket when set,
// else host:port) within connect_timeout, switched to non-blocking I/O; or
// why not (status_from_redis' codes; kResourceExhausted when hiredis could
// not allocate).
inline absl::StatusOr<RedisContextPtr> connect_nonblocking(const RedisOptions& opts) {
  const timeval tv = to_timeval(opts.connect_timeout);
  RedisContextPtr c(opts.unix_socket.empty()
                        ? redisConnectWithTimeout(opts.host.c_str(), opts.port, tv)
                        : redisConnectUnixWithTimeout(opts.unix_socket.c_str(), tv));
  if (c == nullptr) return absl::ResourceExhaustedError("redis connect: out of memory");
  if (c->err != 0) return status_from_redis(c.get(), nullptr, "connect");
  if (c->connection_type == REDIS_CONN_TCP) (void)redisEnableKeepAlive(c.get());
  const int fl = ::fcntl(c->fd, F_GETFL);
  if (fl < 0 || ::fcntl(c->fd, F_SETFL, fl | O_NONBLOCK) < 0) {
    return absl::UnavailableError(
        absl::StrCat("redis connect: fcntl(O_NONBLOCK): ", std::strerror(errno)));
  }
  c->flags &= ~REDIS_BLOCK;
  return c;
}

}  // namespace larder::internal

#endif  // LARDER_SRC_REDIS_SOCKET_H_
