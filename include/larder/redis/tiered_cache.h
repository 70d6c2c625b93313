// SPDX-License-Identifier: Apache-2.0
//
// make_tiered_cache: the two-tier setup of a service in one statement: a
// Cache over TieredStore(LocalStore, RedisStore), its L1 copies kept
// coherent across instances by a RedisInvalidationBus on the same Redis, and
// (optionally) a RedisLoadGuard so that one instance loads a missing key
// while the others wait for its value.
//
//   auto users = larder::make_tiered_cache<long, User>(
//       "redis://10.0.0.5:6379", {.ttl = 5min, .stale_if_error = 1h, .loader = load_user},
//       {.key_prefix = "users:v1:"});
//
// Redis is named by a URI (redis/uri.h), by RedisOptions, or by a
// RedisClient to share with other caches. The clock is set once:
// CacheOptions::clock reaches the stores (and the client, when this builds
// it); a client built with another clock is refused (std::invalid_argument).
#ifndef LARDER_REDIS_TIERED_CACHE_H_
#define LARDER_REDIS_TIERED_CACHE_H_

#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>

#include "larder/cache.h"
#include "larder/codec.h"
#include "larder/local_cache.h"
#include "larder/local_store.h"
#include "larder/redis/client.h"
#include "larder/redis/invalidation_bus.h"
#include "larder/redis/lock.h"
#include "larder/redis/store.h"
#include "larder/redis/uri.h"
#include "larder/tiered_store.h"

namespace larder {

// TieredCacheOptions: the parts of a two-tier cache besides CacheOptions.
// A plain aggregate; fields in order of how often they are set.
template <class K, class V>
struct TieredCacheOptions {
  // Prefix of every Redis key (and the bus channel's namespace): name the
  // data and its version ("users:v1:"), so a format change starts afresh.
  // Overrides RedisOptions::key_prefix when non-empty.
  std::string key_prefix{};
  // The in-process tier (L1).
  LocalStoreOptions local{};
  // L1 copies are dropped on every instance when one instance changes a key
  // (RedisInvalidationBus on the same Redis). false: no bus (one instance,
  // or short ttls that bound staleness).
  bool invalidation_bus = true;
  // A RedisLoadGuard (default options) when CacheOptions::load_guard is
  // null: one instance loads a missing key, the others wait for its value.
  bool load_guard = true;
  // The channel the bus publishes on (one per data set sharing a Redis).
  std::string channel = "larder:invalidate";
  TieredStoreOptions tiered{};
  // L1's weigher and removal listener.
  LocalStoreCallbacks<K, V> local_callbacks{};
};

// make_tiered_cache over a RedisClient (shared with other caches).
template <class K, class V, class ValueCodec = Codec<V>, class KeyCodec = DefaultKeyCodec<K>>
Cache<K, V> make_tiered_cache(std::shared_ptr<RedisClient> client, CacheOptions<K, V> options = {},
                              TieredCacheOptions<K, V> tiers = {}) {
  if (client == nullptr) throw std::invalid_argument("make_tiered_cache: client is null");
  if (!tiers.key_prefix.empty() && tiers.key_prefix != client->options().key_prefix) {
    RedisOptions o = client->options();
    o.key_prefix = tiers.key_prefix;
    client = std::make_shared<RedisClient>(std::move(o));
  }
  internal::share_clock(tiers.local.clock, options.clock, "LocalStoreOptions::clock");
  internal::share_clock(tiers.tiered.clock, options.clock, "TieredStoreOptions::clock");
  auto l1 =
      std::make_shared<LocalStore<K, V>>(std::move(tiers.local), std::move(tiers.local_callbacks));
  auto l2 = std::make_shared<RedisStore<K, V, ValueCodec, KeyCodec>>(client);
  std::shared_ptr<InvalidationBus> bus;
  if (tiers.invalidation_bus) {
    bus = std::make_shared<RedisInvalidationBus>(client, std::move(tiers.channel));
  }
  if (tiers.load_guard && options.load_guard == nullptr) {
    options.load_guard = std::make_shared<RedisLoadGuard<K, KeyCodec>>(client);
  }
  auto store = std::make_shared<TieredStore<K, V, KeyCodec>>(
      std::move(l1), std::move(l2), std::move(bus), std::move(tiers.tiered));
  return Cache<K, V>(std::move(store), std::move(options));
}

// make_tiered_cache over RedisOptions: builds the RedisClient (with the
// cache's clock when RedisOptions::clock is null).
template <class K, class V, class ValueCodec = Codec<V>, class KeyCodec = DefaultKeyCodec<K>>
Cache<K, V> make_tiered_cache(RedisOptions redis, CacheOptions<K, V> options = {},
                              TieredCacheOptions<K, V> tiers = {}) {
  internal::share_clock(redis.clock, options.clock, "RedisOptions::clock");
  if (!tiers.key_prefix.empty()) redis.key_prefix = std::move(tiers.key_prefix);
  tiers.key_prefix.clear();
  return make_tiered_cache<K, V, ValueCodec, KeyCodec>(
      std::make_shared<RedisClient>(std::move(redis)), std::move(options), std::move(tiers));
}

// make_tiered_cache over a URI (redis://, unix://, redis-cluster://,
// redis-sentinel://; see redis/uri.h). Throws std::invalid_argument for a
// malformed URI (the message never shows the password).
template <class K, class V, class ValueCodec = Codec<V>, class KeyCodec = DefaultKeyCodec<K>>
Cache<K, V> make_tiered_cache(std::string_view uri, CacheOptions<K, V> options = {},
                              TieredCacheOptions<K, V> tiers = {}) {
  absl::StatusOr<RedisOptions> redis = parse_redis_uri(uri);
  if (!redis.ok()) throw std::invalid_argument(std::string(redis.status().message()));
  return make_tiered_cache<K, V, ValueCodec, KeyCodec>(*std::move(redis), std::move(options),
                                                       std::move(tiers));
}

}  // namespace larder

#endif  // LARDER_REDIS_TIERED_CACHE_H_
