// SPDX-License-Identifier: Apache-2.0
//
// LocalStore<K, V>: the in-process Store. Bounded (by entry count, or by total
// weight with a user weigher), concurrent, with a frequency-aware, scan-resistant
// eviction policy, per-entry expiry reclaimed proactively, a removal listener,
// and counters.
//
// How it differs from the obvious LRU map: a plain LRU is flushed by a single
// scan or a loop larger than the cache; LocalStore's default policy is
// W-TinyLFU with an adaptive window (internal/eviction_policy.h), which keeps
// the frequently used set through scans and adapts the recency/frequency
// balance to the workload. Exact LRU is available as EvictionPolicy::kLru.
//
// Design essay.
//
//   The key space is split by hash into shards (LocalStoreOptions::shards; by
//   default a power of two near 4x the hardware threads, fewer for small
//   bounds). Each shard owns, under its own mutex:
//
//     shard: mutex | hash set of Node*   | eviction policy (3 LRU queues +   |
//                  | (lookup by key)     | frequency sketch) | timer wheel   |
//
//   A Node embeds the policy's and the wheel's links, so every structure is
//   intrusive and every operation is O(1) with one allocation per entry.
//   The bound is split evenly between shards, so the store never holds more
//   than its bound: eviction runs inside the same critical section as the
//   insert that overflowed the shard (no slack at all, even under concurrent
//   inserts). The cost of splitting is that a shard's hot set competes only
//   with its own keys; with hundreds of entries per shard this changes hit
//   ratios by well under a point (measured with bench/larder-sim --shards).
//
//   Expiry: an entry is live while now < stale_until (by the store's clock).
//   A lookup never returns an expired entry. The shard's hierarchical timer
//   wheel (internal/timer_wheel.h) files every entry by stale_until; each
//   operation on a shard advances its wheel, which reclaims expired entries in
//   amortised O(1) (granularity ~1 s). A store that sees no operations at all
//   reclaims nothing: call cleanup() periodically if that matters.
//
//   The removal listener runs after the shard's lock is released: removals are
//   collected during the critical section (key and value moved out of the
//   node being destroyed) and delivered afterwards, in order, on the calling
//   thread. A listener may therefore call back into the store.
//
//   Counters: hits and misses are striped (internal/striped_counter.h), so the
//   hit path writes no shared cache line besides its shard's lock; evictions,
//   expirations, size and weight are per-shard atomics written under the lock
//   and summed without it.
//
// Thread-safety: every method may be called concurrently from any thread.
// Reads and writes on different shards never contend; on one shard they
// serialise on its mutex for the O(1) work of the operation.
//
// Example:
//
//   larder::LocalStore<std::string, std::string> store({.max_entries = 100'000});
//   auto now = larder::system_clock()->now();
//   (void)store.put("user:1", {"Ada", now + std::chrono::minutes(1), now + std::chrono::minutes(5)});
//   auto got = store.get("user:1");    // StatusOr<optional<Entry<std::string>>>
#ifndef LARDER_LOCAL_STORE_H_
#define LARDER_LOCAL_STORE_H_

#include <algorithm>
#include <atomic>
#include <bit>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <limits>
#include <memory>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/hash/hash.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "larder/clock.h"
#include "larder/internal/eviction_policy.h"
#include "larder/internal/mutex.h"
#include "larder/internal/striped_counter.h"
#include "larder/internal/timer_wheel.h"
#include "larder/store.h"

namespace larder {

// EvictionPolicy: how a LocalStore chooses what to evict.
enum class EvictionPolicy {
  kAdaptiveTinyLfu,  // W-TinyLFU, window size adapted by hill climbing (default)
  kTinyLfu,          // W-TinyLFU with a fixed 1% window (Caffeine 2.6 behaviour)
  kLru,              // exact least-recently-used
};

// RemovalCause: why an entry left a LocalStore (given to the removal listener).
enum class RemovalCause {
  kEvicted,   // dropped to respect the bound
  kExpired,   // stale_until passed
  kReplaced,  // put() replaced its value
  kExplicit,  // erase(), erase_many() or clear()
};

struct LocalStoreOptions {
  // The bound by entry count. With max_weight > 0 it is only the expected
  // entry count (it sizes the frequency sketch). Must be > 0.
  std::size_t max_entries = 10'000;
  // The bound by total weight, as given by the weigher; 0: no weight bound
  // (count bound). > 0 needs a weigher.
  std::size_t max_weight = 0;
  // Number of independently locked shards; 0: chosen from the hardware and the
  // bound. Must not exceed the bound (each shard holds at least one entry).
  std::size_t shards = 0;
  std::shared_ptr<Clock> clock = nullptr;  // null: system_clock()
  // --- appended after the first API ---
  EvictionPolicy policy = EvictionPolicy::kAdaptiveTinyLfu;
};

namespace internal {

// Finalises a user hash so shard selection and the hash table see well-mixed
// bits even for identity hashes (std::hash<int>).
inline std::uint64_t mix_hash(std::uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdull;
  x ^= x >> 33;
  return x;
}

inline std::int64_t to_nanos(TimePoint t) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}

template <class K, class V>
struct LocalNode final : PolicyHook, TimerHook {
  LocalNode(const K& k, Entry<V>&& e) : key(k), entry(std::move(e)) {}
  K key;
  Entry<V> entry;
};

}  // namespace internal

template <class K, class V, class Hash = absl::Hash<K>, class Eq = std::equal_to<K>>
class LocalStore : public Store<K, V> {
 public:
  using Weigher = std::function<std::size_t(const K&, const V&)>;
  using RemovalListener = std::function<void(const K&, const V&, RemovalCause)>;

  // Constructs an empty store. Throws std::invalid_argument naming the field
  // when the options conflict (max_entries = 0 without max_weight; max_weight
  // > 0 without a weigher; shards larger than the bound).
  explicit LocalStore(LocalStoreOptions options = {})
      : LocalStore(std::move(options), Weigher(), RemovalListener()) {}

  // With a weigher: needs options.max_weight > 0 (and a weigher needs it).
  LocalStore(LocalStoreOptions options, Weigher weigher)
      : LocalStore(std::move(options), std::move(weigher), RemovalListener()) {}

  // With a removal listener, called outside the store's locks for every entry
  // that leaves (see RemovalCause).
  LocalStore(LocalStoreOptions options, RemovalListener listener)
      : LocalStore(std::move(options), Weigher(), std::move(listener)) {}

  // With both (weigher may be empty when max_weight == 0).
  LocalStore(LocalStoreOptions options, Weigher weigher, RemovalListener listener)
      : options_(std::move(options)),
        clock_(clock_or_default(options_.clock)),
        weigher_(std::move(weigher)),
        listener_(std::move(listener)) {
    validate();
    const std::uint64_t bound = weighted() ? options_.max_weight : options_.max_entries;
    std::size_t n = options_.shards;
    if (n == 0) n = default_shards(bound);
    shard_count_ = n;
    const std::int64_t origin = internal::to_nanos(clock_->now());
    const internal::PolicyKind kind = to_kind(options_.policy);
    shards_.reserve(n);
    for (std::size_t i = 0; i < n; ++i) {
      const std::uint64_t quota = bound / n + (i < bound % n ? 1 : 0);
      const std::uint64_t expected =
          weighted() ? std::max<std::uint64_t>(1, options_.max_entries / n) : quota;
      shards_.push_back(std::make_unique<Shard>(kind, quota, expected, origin));
    }
  }

  ~LocalStore() override {
    for (auto& s : shards_) {
      for (Node* n : s->table) delete n;
    }
  }

  LocalStore(const LocalStore&) = delete;
  LocalStore& operator=(const LocalStore&) = delete;

  // get: the live entry (fresh or stale), or nullopt when absent or expired.
  // Never an error. Counts a hit or a miss and records the access for the
  // eviction policy. O(1).
  absl::StatusOr<std::optional<Entry<V>>> get(const K& key) override {
    return lookup(key, /*record=*/true);
  }

  // peek: like get() but quiet: not counted as a hit or miss, not an access
  // for the eviction policy, and no maintenance. For stats and debugging.
  std::optional<Entry<V>> peek(const K& key) const {
    const std::uint64_t h = hash_of(key);
    Shard& s = shard_for(h);
    const std::int64_t now = internal::to_nanos(clock_->now());
    internal::MutexLock l(&s.mu);
    auto it = s.table.find(key);
    if (it == s.table.end()) return std::nullopt;
    const Node* n = *it;
    if (internal::to_nanos(n->entry.stale_until) <= now) return std::nullopt;
    return n->entry;
  }

  // put: stores the entry under key, replacing (kReplaced) any previous one.
  // An entry already expired is not stored (and removes the previous one). An
  // entry heavier than a shard's share of max_weight is not stored either
  // (reported as kEvicted). May evict others. Never an error. O(1) amortised.
  absl::Status put(const K& key, Entry<V> entry) override {
    const std::uint64_t h = hash_of(key);
    Shard& s = shard_for(h);
    const std::int64_t now = internal::to_nanos(clock_->now());
    const std::uint64_t w = weigh(key, entry.value);
    Removals removed;
    {
      internal::MutexLock l(&s.mu);
      auto it = s.table.find(key);
      Node* n = it == s.table.end() ? nullptr : *it;
      const bool expired = internal::to_nanos(entry.stale_until) <= now;
      if (expired || w > s.policy.maximum()) {
        if (n != nullptr) remove_locked(s, n, RemovalCause::kReplaced, removed);
        if (!expired && listener_) {
          removed.push_back({key, std::move(entry.value), RemovalCause::kEvicted});
        }
      } else if (n != nullptr) {
        if (listener_) {
          removed.push_back({n->key, std::move(n->entry.value), RemovalCause::kReplaced});
        }
        n->entry = std::move(entry);
        s.policy.on_update(n, static_cast<std::uint32_t>(w));
        s.wheel.reschedule(n);
      } else {
        n = new Node(key, std::move(entry));
        n->hash = h;
        n->weight = static_cast<std::uint32_t>(w);
        s.table.insert(n);
        s.policy.on_insert(n);
        s.wheel.schedule(n);
      }
      s.policy.evict([&](internal::PolicyHook* victim) {
        Node* v = static_cast<Node*>(victim);
        s.evictions.fetch_add(1, std::memory_order_relaxed);
        destroy_locked(s, v, RemovalCause::kEvicted, removed);
      });
      advance_locked(s, now, removed);
      publish_locked(s);
    }
    notify(removed);
    return absl::OkStatus();
  }

  // erase: removes key (kExplicit). OK when absent. O(1).
  absl::Status erase(const K& key) override {
    const std::uint64_t h = hash_of(key);
    Shard& s = shard_for(h);
    const std::int64_t now = internal::to_nanos(clock_->now());
    Removals removed;
    {
      internal::MutexLock l(&s.mu);
      auto it = s.table.find(key);
      if (it != s.table.end()) remove_locked(s, *it, RemovalCause::kExplicit, removed);
      advance_locked(s, now, removed);
      publish_locked(s);
    }
    notify(removed);
    return absl::OkStatus();
  }

  // get_many: one result per key, in order; never an error.
  absl::StatusOr<std::vector<std::optional<Entry<V>>>> get_many(
      std::span<const K> keys) override {
    std::vector<std::optional<Entry<V>>> out;
    out.reserve(keys.size());
    for (const K& k : keys) out.push_back(*lookup(k, /*record=*/true));
    return out;
  }

  // clear: removes every entry (kExplicit). Concurrent puts may land after it.
  absl::Status clear() override {
    for (auto& sp : shards_) {
      Shard& s = *sp;
      Removals removed;
      {
        internal::MutexLock l(&s.mu);
        std::vector<Node*> all(s.table.begin(), s.table.end());
        for (Node* n : all) remove_locked(s, n, RemovalCause::kExplicit, removed);
        publish_locked(s);
      }
      notify(removed);
    }
    return absl::OkStatus();
  }

  // counters: hits, misses, evictions, expirations since construction; size
  // and weight now (weight is 0 without a weigher). Lock-free; O(shards).
  StoreCounters counters() const override {
    StoreCounters c;
    c.hits = hits_.load();
    c.misses = misses_.load();
    for (const auto& s : shards_) {
      c.evictions += s->evictions.load(std::memory_order_relaxed);
      c.expirations += s->expirations.load(std::memory_order_relaxed);
      c.size += s->size.load(std::memory_order_relaxed);
      if (weighted()) c.weight += s->weight.load(std::memory_order_relaxed);
    }
    return c;
  }

  // size: entries held now (including expired ones not yet reclaimed).
  std::size_t size() const {
    std::size_t n = 0;
    for (const auto& s : shards_) n += s->size.load(std::memory_order_relaxed);
    return n;
  }

  // weight: total weight held now (the entry count without a weigher).
  std::size_t weight() const {
    std::size_t n = 0;
    for (const auto& s : shards_) n += s->weight.load(std::memory_order_relaxed);
    return n;
  }

  // cleanup: runs maintenance on every shard now: reclaims entries whose
  // stale_until passed (their bucket's tick included). O(shards + reclaimed).
  void cleanup() {
    const std::int64_t now = internal::to_nanos(clock_->now());
    for (auto& sp : shards_) {
      Shard& s = *sp;
      Removals removed;
      {
        internal::MutexLock l(&s.mu);
        advance_locked(s, now, removed);
        publish_locked(s);
      }
      notify(removed);
    }
  }

  std::size_t shard_count() const { return shard_count_; }

 private:
  using Node = internal::LocalNode<K, V>;

  struct Removal {
    K key;
    V value;
    RemovalCause cause;
  };
  using Removals = std::vector<Removal>;

  struct NodeHash {
    using is_transparent = void;
    std::size_t operator()(const K& k) const {
      return static_cast<std::size_t>(internal::mix_hash(static_cast<std::uint64_t>(Hash{}(k))));
    }
    std::size_t operator()(const Node* n) const { return (*this)(n->key); }
  };
  struct NodeEq {
    using is_transparent = void;
    bool operator()(const Node* a, const Node* b) const { return Eq{}(a->key, b->key); }
    bool operator()(const Node* a, const K& b) const { return Eq{}(a->key, b); }
    bool operator()(const K& a, const Node* b) const { return Eq{}(a, b->key); }
  };
  struct DeadlineOf {
    std::int64_t operator()(const internal::TimerHook* h) const {
      return internal::to_nanos(static_cast<const Node*>(h)->entry.stale_until);
    }
  };

  struct alignas(internal::kCacheLine) Shard {
    Shard(internal::PolicyKind kind, std::uint64_t maximum, std::uint64_t expected,
          std::int64_t origin)
        : policy(kind, maximum, expected), wheel(origin) {}
    mutable internal::Mutex mu;
    absl::flat_hash_set<Node*, NodeHash, NodeEq> table ABSL_GUARDED_BY(mu);
    internal::EvictionPolicyCore policy ABSL_GUARDED_BY(mu);
    internal::TimerWheel<DeadlineOf> wheel ABSL_GUARDED_BY(mu);
    std::atomic<std::uint64_t> size{0}, weight{0}, evictions{0}, expirations{0};
  };

  bool weighted() const { return options_.max_weight > 0; }

  void validate() const {
    if (weighted()) {
      if (!weigher_) {
        throw std::invalid_argument("LocalStoreOptions: max_weight > 0 needs a weigher");
      }
    } else {
      if (weigher_) {
        throw std::invalid_argument(
            "LocalStoreOptions: a weigher was given but max_weight = 0 (set max_weight)");
      }
      if (options_.max_entries == 0) {
        throw std::invalid_argument("LocalStoreOptions: max_entries must be > 0");
      }
    }
    const std::uint64_t bound = weighted() ? options_.max_weight : options_.max_entries;
    if (options_.shards > bound) {
      throw std::invalid_argument(
          "LocalStoreOptions: shards must not exceed the bound (max_entries or max_weight)");
    }
    if (options_.shards > 65536) {
      throw std::invalid_argument("LocalStoreOptions: shards must be <= 65536");
    }
  }

  static internal::PolicyKind to_kind(EvictionPolicy p) {
    switch (p) {
      case EvictionPolicy::kLru:
        return internal::PolicyKind::kLru;
      case EvictionPolicy::kTinyLfu:
        return internal::PolicyKind::kTinyLfu;
      default:
        return internal::PolicyKind::kAdaptiveTinyLfu;
    }
  }

  // default_shards: a power of two near 4x the hardware threads, but at least
  // 256 bound units per shard so small stores keep one global policy.
  static std::size_t default_shards(std::uint64_t bound) {
    const std::size_t hw = std::max(1u, std::thread::hardware_concurrency());
    std::size_t n = std::bit_ceil(4 * hw);
    while (n > 1 && bound / n < 256) n /= 2;
    return std::min<std::size_t>(n, 1024);
  }

  std::uint64_t hash_of(const K& key) const {
    return internal::mix_hash(static_cast<std::uint64_t>(Hash{}(key)));
  }
  Shard& shard_for(std::uint64_t h) const {
    const std::uint64_t hi = h >> 32;
    return *shards_[static_cast<std::size_t>((hi * shard_count_) >> 32)];
  }

  std::uint64_t weigh(const K& key, const V& value) const {
    if (!weigher_) return 1;
    const std::size_t w = weigher_(key, value);
    return std::min<std::uint64_t>(w, std::numeric_limits<std::uint32_t>::max());
  }

  absl::StatusOr<std::optional<Entry<V>>> lookup(const K& key, bool record) {
    const std::uint64_t h = hash_of(key);
    Shard& s = shard_for(h);
    const std::int64_t now = internal::to_nanos(clock_->now());
    std::optional<Entry<V>> out;
    Removals removed;
    {
      internal::MutexLock l(&s.mu);
      auto it = s.table.find(key);
      if (it != s.table.end()) {
        Node* n = *it;
        if (internal::to_nanos(n->entry.stale_until) <= now) {
          s.expirations.fetch_add(1, std::memory_order_relaxed);
          remove_locked(s, n, RemovalCause::kExpired, removed);
        } else {
          out = n->entry;
          if (record) s.policy.on_access(n);
        }
      }
      advance_locked(s, now, removed);
      if (!removed.empty() || !out) publish_locked(s);
    }
    notify(removed);
    if (record) (out ? hits_ : misses_).add();
    return out;
  }

  // remove_locked: unlinks n from every structure and destroys it.
  void remove_locked(Shard& s, Node* n, RemovalCause cause, Removals& removed)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(s.mu) {
    s.policy.on_remove(n);
    destroy_locked(s, n, cause, removed);
  }

  // destroy_locked: n is already out of the policy; takes it out of the table
  // and the wheel, hands key and value to the listener queue, frees it.
  void destroy_locked(Shard& s, Node* n, RemovalCause cause, Removals& removed)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(s.mu) {
    s.wheel.unschedule(n);
    s.table.erase(n);
    if (listener_) removed.push_back({std::move(n->key), std::move(n->entry.value), cause});
    delete n;
  }

  void advance_locked(Shard& s, std::int64_t now, Removals& removed)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(s.mu) {
    s.wheel.advance(now, [&](internal::TimerHook* hook) {
      Node* n = static_cast<Node*>(hook);
      s.expirations.fetch_add(1, std::memory_order_relaxed);
      remove_locked(s, n, RemovalCause::kExpired, removed);
    });
  }

  void publish_locked(Shard& s) ABSL_EXCLUSIVE_LOCKS_REQUIRED(s.mu) {
    s.size.store(s.table.size(), std::memory_order_relaxed);
    s.weight.store(s.policy.weighted_size(), std::memory_order_relaxed);
  }

  void notify(Removals& removed) {
    if (!listener_) return;
    for (const Removal& r : removed) listener_(r.key, r.value, r.cause);
  }

  LocalStoreOptions options_;
  std::shared_ptr<Clock> clock_;
  Weigher weigher_;
  RemovalListener listener_;
  std::size_t shard_count_ = 1;
  std::vector<std::unique_ptr<Shard>> shards_;
  internal::StripedCounter hits_, misses_;
};

}  // namespace larder

#endif  // LARDER_LOCAL_STORE_H_
