// SPDX-License-Identifier: Apache-2.0
//
// ExpiringKeySet<K>: a bounded set of keys, each remembered until an instant.
// The cache keeps two:
//   * negative caching (CacheOptions::negative.ttl): the loader said NotFound
//     for a key, so a stream of requests for an absent key does not reach the
//     system of record every time;
//   * the refresh back-off (CacheOptions::error_backoff): a background refresh
//     of the key failed, so hits keep the value they have and no new refresh
//     of it starts until the instant passes. Without it every later hit of a
//     hot key would start another refresh against a failing source.
//
// Design: a Store<K, V> holds values, and a "known absent" marker is not a V,
// so the cache keeps these markers beside the store rather than inventing a
// sentinel V. It is a sharded hash map key -> expiry instant, bounded in
// total (max_entries): when a shard is full it first drops its expired
// markers, then refuses new ones (an absent key is then simply loaded again,
// a failing key refreshed again: the behaviour without the set). Bounding
// matters because absent keys are exactly what a scan or an attacker sends.
// Markers are in-process only: with a shared store (Redis), each process
// keeps its own.
//
// Until the first add() every lookup is one relaxed atomic load (no shard
// lock): the refresh back-off is consulted on hits, and is empty unless some
// refresh failed. The cache looks up negative markers only after a store miss.
//
// Thread-safety: every method may be called concurrently; each takes one
// shard mutex for O(1) (insert may sweep its shard: O(shard size)).
#ifndef LARDER_INTERNAL_EXPIRING_KEY_SET_H_
#define LARDER_INTERNAL_EXPIRING_KEY_SET_H_

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/hash/hash.h"
#include "larder/clock.h"
#include "larder/internal/mutex.h"
#include "larder/internal/striped_counter.h"

namespace larder::internal {

template <class K>
class ExpiringKeySet {
 public:
  explicit ExpiringKeySet(std::size_t max_entries) : per_shard_(max_entries / kShards + 1) {}

  // contains: whether key is in the set at now (an expired marker is
  // dropped).
  bool contains(const K& key, TimePoint now) {
    if (!used_.load(std::memory_order_relaxed)) return false;
    Shard& s = shard_for(key);
    MutexLock l(&s.mu);
    auto it = s.until.find(key);
    if (it == s.until.end()) return false;
    if (now < it->second) return true;
    s.until.erase(it);
    return false;
  }

  // add: puts key in the set until `until`. False when the shard is full of
  // live markers (nothing stored).
  bool add(const K& key, TimePoint until, TimePoint now) {
    used_.store(true, std::memory_order_relaxed);
    Shard& s = shard_for(key);
    MutexLock l(&s.mu);
    if (s.until.size() >= per_shard_ && !s.until.contains(key)) {
      absl::erase_if(s.until, [&](const auto& kv) { return kv.second <= now; });
      if (s.until.size() >= per_shard_) return false;
    }
    s.until.insert_or_assign(key, until);
    return true;
  }

  void erase(const K& key) {
    if (!used_.load(std::memory_order_relaxed)) return;
    Shard& s = shard_for(key);
    MutexLock l(&s.mu);
    s.until.erase(key);
  }

  void clear() {
    for (Shard& s : shards_) {
      MutexLock l(&s.mu);
      s.until.clear();
    }
  }

 private:
  static constexpr std::size_t kShards = 16;
  struct alignas(kCacheLine) Shard {
    Mutex mu;
    absl::flat_hash_map<K, TimePoint> until ABSL_GUARDED_BY(mu);
  };
  Shard& shard_for(const K& key) {
    const std::uint64_t h = static_cast<std::uint64_t>(absl::Hash<K>{}(key));
    return shards_[static_cast<std::size_t>((h ^ (h >> 33)) >> 40) % kShards];
  }

  const std::size_t per_shard_;
  std::atomic<bool> used_{false};  // some add() happened: lookups must look
  std::array<Shard, kShards> shards_;
};

}  // namespace larder::internal

#endif  // LARDER_INTERNAL_EXPIRING_KEY_SET_H_
