// SPDX-License-Identifier: Apache-2.0
//
// larder's Redis parts, in one include: the one door to anything that needs
// hiredis (link larder::redis). larder/larder.h stays free of it.
//
//   RedisOptions, RedisClient   pooled, deadline-bounded connections with a
//                               circuit breaker             (redis/client.h)
//   RedisStore<K, V>            a Store in Redis            (redis/store.h)
//   RedisLock, RedisLoadGuard   cross-process leases and single-flight
//                                                           (redis/lock.h)
//   RedisInvalidationBus        keeps TieredStore L1s coherent over pub/sub
//                                                           (redis/invalidation_bus.h)
//   parse_redis_uri             RedisOptions from redis://, unix://,
//                               redis-cluster://, redis-sentinel:// (redis/uri.h)
//
// hiredis types appear in none of these headers; they live in src/.
//
// Example:
//
//   #include <larder/larder.h>
//   #include <larder/redis.h>
//
//   larder::RedisOptions opts{.host = "127.0.0.1", .port = 6379, .key_prefix = "svc:users:"};
//   auto store = std::make_shared<larder::RedisStore<std::string, std::string>>(opts);
//   auto guard = std::make_shared<larder::RedisLoadGuard<std::string>>(store->client());
#ifndef LARDER_REDIS_H_
#define LARDER_REDIS_H_

#include "larder/redis/client.h"
#include "larder/redis/invalidation_bus.h"
#include "larder/redis/lock.h"
#include "larder/redis/store.h"
#include "larder/redis/tiered_cache.h"
#include "larder/redis/uri.h"

#endif  // LARDER_REDIS_H_
