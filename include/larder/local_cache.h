// SPDX-License-Identifier: Apache-2.0
//
// make_local_cache: a Cache over its own LocalStore, in one statement.
//
//   auto users = larder::make_local_cache<int, User>(
//       {.max_entries = 100'000},                                   // LocalStoreOptions
//       {.ttl = 30s, .loader = [&](int id) { return db.user(id); }});  // CacheOptions
//   absl::StatusOr<User> u = users.get(42);
//
// The clock is set once: whichever of LocalStoreOptions::clock and
// CacheOptions::clock is given reaches the other (both given and different:
// std::invalid_argument). The store is the cache's own; keep a
// std::shared_ptr to one built by hand and pass it to Cache's constructor to
// share a store.
#ifndef LARDER_LOCAL_CACHE_H_
#define LARDER_LOCAL_CACHE_H_

#include <functional>
#include <memory>
#include <stdexcept>
#include <utility>

#include "absl/hash/hash.h"
#include "larder/cache.h"
#include "larder/clock.h"
#include "larder/local_store.h"

namespace larder {

namespace internal {
// share_clock: the clock given on either side reaches the other; two
// different ones are refused.
inline void share_clock(std::shared_ptr<Clock>& store_clock, std::shared_ptr<Clock>& cache_clock,
                        const char* store_field) {
  if (store_clock != nullptr && cache_clock != nullptr && !same_clock(*store_clock, *cache_clock)) {
    throw std::invalid_argument(std::string("clock: CacheOptions::clock and ") + store_field +
                                " are different clocks; set the clock once (either one)");
  }
  if (store_clock == nullptr) store_clock = cache_clock;
  if (cache_clock == nullptr) cache_clock = store_clock;
}
}  // namespace internal

// make_local_cache: Cache<K, V> over a new LocalStore<K, V, Hash, Eq>.
// callbacks: the store's weigher (for max_weight > 0) and removal listener,
// which sees every entry that leaves the cache (evicted, expired, replaced,
// erased). Throws std::invalid_argument as the LocalStore and Cache
// constructors do.
template <class K, class V, class Hash = absl::Hash<K>, class Eq = std::equal_to<K>>
Cache<K, V> make_local_cache(LocalStoreOptions store = {}, CacheOptions<K, V> options = {},
                             LocalStoreCallbacks<K, V> callbacks = {}) {
  internal::share_clock(store.clock, options.clock, "LocalStoreOptions::clock");
  return Cache<K, V>(
      std::make_shared<LocalStore<K, V, Hash, Eq>>(std::move(store), std::move(callbacks)),
      std::move(options));
}

}  // namespace larder

#endif  // LARDER_LOCAL_CACHE_H_
