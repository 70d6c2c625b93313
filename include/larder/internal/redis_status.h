// SPDX-License-Identifier: Apache-2.0
//
// The one place where hiredis errors become absl::Status (one rule:
// "Hiredis errors are turned into Status in one function").
//
// Needs hiredis: included only from larder/redis.h and src/.
#ifndef LARDER_INTERNAL_REDIS_STATUS_H_
#define LARDER_INTERNAL_REDIS_STATUS_H_

#include <chrono>
#include <string_view>

#include "absl/status/status.h"

struct redisContext;
struct redisReply;

namespace larder::internal {

// status_from_redis: the Status for a command `what` that got `reply` on
// connection `ctx`.
//   * reply == nullptr: the connection failed. Timeouts (a timed-out
//     connect, or EAGAIN / "Resource temporarily unavailable" from a socket
//     timeout) are kDeadlineExceeded; out of memory is kResourceExhausted;
//     every other I/O, EOF or protocol error is kUnavailable. Decided from
//     ctx->err and ctx->errstr only: errno is stale by the time we look.
//   * an error reply: NOAUTH / WRONGPASS / NOPERM are kPermissionDenied;
//     LOADING / BUSY / MASTERDOWN / TRYAGAIN are kUnavailable; anything
//     else (WRONGTYPE, syntax, ...) is kInternal with the server's text.
//   * otherwise OK.
absl::Status status_from_redis(const redisContext* ctx, const redisReply* reply,
                               std::string_view what);

// redis_timeout_status: kDeadlineExceeded for a command `what` whose reply did
// not arrive within `timeout` (larder's own poll() deadline, not a hiredis
// error, but mapped here so that every Redis failure reads alike).
absl::Status redis_timeout_status(std::string_view what, std::chrono::milliseconds timeout);

// redis_io_status: a socket call larder makes itself (send) failed with
// errno `err`: ETIMEDOUT is kDeadlineExceeded, anything else kUnavailable.
absl::Status redis_io_status(std::string_view what, int err);

}  // namespace larder::internal

#endif  // LARDER_INTERNAL_REDIS_STATUS_H_
