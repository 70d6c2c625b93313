// SPDX-License-Identifier: Apache-2.0
//
// RedisInvalidationBus: an InvalidationBus (larder/invalidation_bus.h) over
// Redis pub/sub, so that TieredStores in many processes keep their L1s
// coherent with the Redis they share.
//
// Publishing is PUBLISH through a RedisClient (its pool, deadlines and
// breaker; see redis/client.h). Receiving is one dedicated connection per bus,
// on a thread of its own, SUBSCRIBEd to the channel; every subscription of
// the bus shares it. The channel is RedisOptions::key_prefix + `channel`, so
// caches over different keyspaces of one server do not hear each other (a
// clear of one must not wipe the other's L1).
//
// Messages: "\0LDR1" + origin (8 bytes, little-endian) + kind ('k' key, 'c'
// clear) + key bytes. A payload without that header is taken as bare key
// bytes from nobody, so another system may invalidate with a plain
// `PUBLISH <prefix>larder:invalidate <key bytes>` (e.g. from redis-cli or a
// database trigger).
//
// Lost messages. Redis pub/sub is fire-and-forget: whatever is published while
// a subscriber is disconnected is gone. So the receiving thread:
//   * reconnects by itself after any failure (EOF, reset, a PING that got no
//     answer within command_timeout — it PINGs after ping_interval of silence,
//     which is how a half-open TCP connection is found), with a backoff of
//     reconnect_backoff_min doubling to reconnect_backoff_max between failed
//     attempts;
//   * once SUBSCRIBEd again, calls on_gap of every subscription that existed
//     while it was deaf: they must drop everything (TieredStore clears L1).
// subscribe() waits (up to connect_timeout + command_timeout) for the
// connection to be listening, so that a message published after it returns
// is heard; if it is not listening by then, that subscription gets on_gap
// once it is.
//
// Stopping: the destructor wakes the thread through a pipe it polls together
// with the socket, and joins it; it waits at most for a connect in progress
// (connect_timeout).
//
// Errors from publish: the RedisClient's (kUnavailable, kDeadlineExceeded,
// kPermissionDenied). Connection trouble on the receiving side is reported to
// RedisOptions::log and counted in stats().
//
// Thread-safety: every method may be called concurrently. Callbacks run on
// the bus's receiving thread, one message at a time, subscriptions in the
// order they were made, outside the bus's locks.
//
// Example:
//
//   larder::RedisOptions opts{.host = "redis.internal", .key_prefix = "users:v1:"};
//   auto bus = std::make_shared<larder::RedisInvalidationBus>(opts);
//   auto store = std::make_shared<larder::TieredStore<std::string, User>>(
//       std::make_shared<larder::LocalStore<std::string, User>>(),
//       std::make_shared<larder::RedisStore<std::string, User>>(opts), bus);
#ifndef LARDER_REDIS_INVALIDATION_BUS_H_
#define LARDER_REDIS_INVALIDATION_BUS_H_

#include <chrono>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "larder/invalidation_bus.h"
#include "larder/redis/client.h"

namespace larder {

// RedisInvalidationBusOptions: the receiving side's knobs.
struct RedisInvalidationBusOptions {
  // ping_interval: after this long without a byte from the server, PING it;
  // no answer within command_timeout means the connection is dead. > 0.
  std::chrono::milliseconds ping_interval{1000};
};

// RedisInvalidationBusStats: what the bus has seen since construction.
struct RedisInvalidationBusStats {
  std::uint64_t published = 0;         // messages PUBLISHed successfully
  std::uint64_t publish_failures = 0;  // PUBLISH calls that failed
  std::uint64_t received = 0;          // messages received (any origin)
  std::uint64_t subscribes = 0;        // successful SUBSCRIBEs (first one included)
  std::uint64_t disconnects = 0;       // receiving connections lost
  std::uint64_t connect_failures = 0;  // failed attempts to (re)subscribe
  std::uint64_t gaps = 0;              // on_gap calls made after a reconnect
  bool listening = false;              // now: SUBSCRIBEd and healthy
};

class RedisInvalidationBus final : public InvalidationBus {
 public:
  // RedisInvalidationBus: a bus with a RedisClient of its own for PUBLISH
  // and a receiving connection to the same server. Throws
  // std::invalid_argument for bad options (as RedisClient, and ping_interval
  // <= 0); never fails because Redis is down.
  explicit RedisInvalidationBus(RedisOptions options,
                                const std::string& channel = "larder:invalidate",
                                RedisInvalidationBusOptions bus_options = {});

  // RedisInvalidationBus: publishes through `client` (e.g. a RedisStore's,
  // sharing its pool); the receiving connection uses client's options.
  explicit RedisInvalidationBus(std::shared_ptr<RedisClient> client,
                                const std::string& channel = "larder:invalidate",
                                RedisInvalidationBusOptions bus_options = {});

  ~RedisInvalidationBus() override;  // stops and joins the receiving thread
  RedisInvalidationBus(const RedisInvalidationBus&) = delete;
  RedisInvalidationBus& operator=(const RedisInvalidationBus&) = delete;

  absl::Status publish(std::string_view key_bytes) override;
  absl::Status publish_from(Origin origin, std::string_view key_bytes) override;
  // publish_many_from: one pipeline of PUBLISH.
  absl::Status publish_many_from(Origin origin, std::span<const std::string> keys_bytes) override;
  absl::Status publish_clear_from(Origin origin) override;
  std::unique_ptr<Subscription> subscribe(Listener on_invalidate,
                                          GapListener on_gap = nullptr) override;
  std::unique_ptr<Subscription> subscribe_as(Origin self, Listener on_invalidate,
                                             GapListener on_gap = nullptr) override;

  // channel: the Redis channel (key_prefix + channel).
  const std::string& channel() const;
  // wait_listening: true once the receiving connection is SUBSCRIBEd, false
  // if `timeout` passed first.
  bool wait_listening(std::chrono::milliseconds timeout) const;
  RedisInvalidationBusStats stats() const;
  const std::shared_ptr<RedisClient>& client() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace larder

#endif  // LARDER_REDIS_INVALIDATION_BUS_H_
