// SPDX-License-Identifier: Apache-2.0
//
// NegativeCache<K>: remembers, for a while, that the loader said NotFound for
// a key, so a stream of requests for an absent key does not reach the system
// of record every time (CacheOptions::negative_ttl).
//
// Design: a Store<K, V> holds values, and a "known absent" marker is not a V,
// so the cache keeps these markers beside the store rather than inventing a
// sentinel V. It is a sharded hash map key -> expiry instant, bounded in
// total (negative_max_entries): when a shard is full it first drops its
// expired markers, then refuses new ones (an absent key is then simply
// loaded again, which is the behaviour without negative caching). Bounding
// matters because absent keys are exactly what a scan or an attacker sends.
// Markers are in-process only: with a shared store (Redis), each process
// keeps its own.
//
// The cache looks here only after a store miss, never on the hit path.
//
// Thread-safety: every method may be called concurrently; each takes one
// shard mutex for O(1) (insert may sweep its shard: O(shard size)).
#ifndef LARDER_INTERNAL_CACHE_NEGATIVE_H_
#define LARDER_INTERNAL_CACHE_NEGATIVE_H_

#include <array>
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
class NegativeCache {
 public:
  explicit NegativeCache(std::size_t max_entries)
      : per_shard_(max_entries / kShards + 1) {}

  // contains: whether key is marked absent at now (an expired marker is
  // dropped).
  bool contains(const K& key, TimePoint now) {
    Shard& s = shard_for(key);
    MutexLock l(&s.mu);
    auto it = s.until.find(key);
    if (it == s.until.end()) return false;
    if (now < it->second) return true;
    s.until.erase(it);
    return false;
  }

  // add: marks key absent until `until`. False when the shard is full of live
  // markers (nothing stored).
  bool add(const K& key, TimePoint until, TimePoint now) {
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
  std::array<Shard, kShards> shards_;
};

}  // namespace larder::internal

#endif  // LARDER_INTERNAL_CACHE_NEGATIVE_H_
