// SPDX-License-Identifier: Apache-2.0
//
// LocalStore's member definitions: the constructor, the write path (put,
// erase, clear) and the machinery behind the class in local_store.h, which
// keeps the interface, the design essay and the data layout. Included at the
// end of local_store.h; not a header to include on its own.
//
// What lives here, by concern:
//   * construction: validate() (option conflicts are std::invalid_argument),
//     shard count and quotas, the policy kind;
//   * the write path: put (in-place seqlock update for trivially copyable
//     entries, try_update_unlocked; else a new node published in the index),
//     erase, clear, weigh;
//   * the read path's slow parts: lookup (a miss samples the clock for
//     expiry once per kMissClockEvery), read_entry under the seqlock,
//     expire_on_read;
//   * maintenance under a shard's mutex: draining the read buffers into the
//     eviction policy (drain_locked), the timer wheel's expiries and the
//     policy's evictions (maintain_locked), removal and the removal listener
//     (destroy_locked, notify outside the lock), epoch reclamation of retired
//     nodes (reclaim_locked), and the scheduled runs (arm, run_maintenance).
//
// Every definition is `inline`, as it was inside the class: moving them here
// changes where they are read, not how they are compiled.
#ifndef LARDER_INTERNAL_LOCAL_STORE_IMPL_H_
#define LARDER_INTERNAL_LOCAL_STORE_IMPL_H_

#include "larder/local_store.h"

namespace larder {

template <class K, class V, class Hash, class Eq>
inline LocalStore<K, V, Hash, Eq>::LocalStore(LocalStoreOptions options,
                                              LocalStoreCallbacks<K, V> callbacks)
    : options_(std::move(options)),
      clock_(clock_or_default(options_.clock)),
      coarse_reads_(internal::is_system_clock(*clock_)),
      seed_(options_.hash_seed ? *options_.hash_seed : internal::random_hash_seed()),
      weigher_(std::move(callbacks.weigher)),
      listener_(std::move(callbacks.on_removal)) {
  validate();
  if (options_.maintenance) tether_ = std::make_shared<internal::SchedulerTether>();
  const std::uint64_t bound = weighted() ? options_.max_weight : options_.max_entries;
  std::size_t n = options_.shards;
  if (n == 0) n = default_shards(bound);
  shard_count_ = n;
  capacity_.store(bound, std::memory_order_relaxed);
  const std::int64_t origin = internal::to_nanos(clock_->now());
  const internal::PolicyKind kind = to_kind(options_.policy);
  shards_.reserve(n);
  for (std::size_t i = 0; i < n; ++i) {
    const std::uint64_t quota = bound / n + (i < bound % n ? 1 : 0);
    const std::uint64_t expected =
        weighted() ? std::max<std::uint64_t>(1, options_.max_entries / n) : quota;
    shards_.push_back(std::make_unique<Shard>(kind, quota, expected, origin,
                                              /*limit=*/weighted() ? 0 : quota));
  }
}

template <class K, class V, class Hash, class Eq>
inline absl::Status LocalStore<K, V, Hash, Eq>::put(const K& key, Entry<V> entry) {
  const std::uint64_t h = hash_of(key);
  const std::uint32_t h32 = internal::fold_hash(h);
  Shard& s = shard_for(h);
  if constexpr (kInPlace) {
    // Cache-aside fills (a get that just missed this key, then its put)
    // skip the unlocked attempt: the key is almost surely absent, and the
    // attempt would cost one more probe before the locked insert.
    std::uint64_t& missed = last_miss();
    const bool fill = missed == h;
    missed = 0;
    if (!fill && try_update_unlocked(s, h32, key, entry)) return absl::OkStatus();
  }
  // The clock is read only when something can expire: the new entry has a
  // deadline, or the shard's wheel holds some (then under the lock).
  const bool finite = entry.stale_until != TimePoint::max();
  std::int64_t now = finite ? internal::to_nanos(clock_->now()) : kNoTime;
  const std::uint64_t w = weigh(key, entry.value);
  Removals removed;
  std::int64_t due = kNever;
  prefetch_policy(s, h32);
  {
    ShardLock l(s);
    drain_for_write_locked(s);
    const std::uint32_t old = find(s, h32, key);
    const bool expired = finite && internal::to_nanos(entry.stale_until) <= now;
    std::uint32_t id = kNoId;
    bool updated = false;
    if constexpr (kInPlace) {
      if (old != kNoId && !expired && w <= s.policy.maximum()) {
        update_in_place_locked(s, old, entry, w, removed);
        updated = true;
      }
    }
    if (!updated && !expired && w <= s.policy.maximum()) {
      id = s.slab.allocate(kMaxIds, retire_directory_fn(s));
    }
    if (updated) {
      // done: the node kept its links and its place in the index
    } else if (id == kNoId) {
      if (old != kNoId) remove_locked(s, old, RemovalCause::kReplaced, removed);
      if (!expired && listener_) {
        removed.push_back({key, std::move(entry.value), RemovalCause::kEvicted});
      }
    } else {
      Payload* n = s.slab.payload(id);
      Hooks* nh = s.slab.hooks(id);
      new (&n->key) K(key);
      new (&n->entry) Entry<V>(std::move(entry));
      if (old != kNoId) {
        const Payload* o = s.slab.payload(old);
        if (listener_) removed.push_back({o->key, o->entry.value, RemovalCause::kReplaced});
        internal::PolicyList::transplant(s.slab.hooks(old), nh);
        s.policy.on_update(nh, static_cast<std::uint32_t>(w));
        s.wheel.unschedule(old);
        if (expires(n)) s.wheel.schedule(id);
        s.table.replace(h32, old, id);
        retire_node(s, old);
      } else {
        nh->hash = h32;
        nh->weight = static_cast<std::uint32_t>(w);
        s.policy.on_insert(nh);
        if (expires(n)) s.wheel.schedule(id);
        s.table.insert(h32, id, hash_of_id_fn(s), retire_array_fn(s));
      }
    }
    evict_locked(s, removed);
    if (now == kNoTime && s.wheel.size() != 0) now = internal::to_nanos(clock_->now());
    due = maintain_locked(s, now, removed);
  }
  if (tether_) arm(due);
  notify(removed);
  return absl::OkStatus();
}

template <class K, class V, class Hash, class Eq>
inline void LocalStore<K, V, Hash, Eq>::evict_locked(Shard& s, Removals& removed) {
  s.policy.evict([&](internal::PolicyHook* victim) {
    s.mu.assert_held();  // evict() calls back synchronously, under s.mu
    const auto* v = static_cast<const Hooks*>(victim);
    s.evictions.fetch_add(1, std::memory_order_relaxed);
    // One probe finds the victim's id (by its node) and unpublishes it.
    const std::uint32_t vid =
        s.table.erase_where(v->hash, [&](std::uint32_t i) { return s.slab.hooks(i) == v; });
    destroy_locked(s, vid, RemovalCause::kEvicted, removed, /*unpublished=*/true);
  });
}

template <class K, class V, class Hash, class Eq>
inline absl::Status LocalStore<K, V, Hash, Eq>::set_capacity(std::uint64_t bound) {
  if (bound == 0 || bound < shard_count_) {
    return absl::InvalidArgumentError("LocalStore::set_capacity: the bound (" +
                                      std::to_string(bound) + ") must be >= shard_count() (" +
                                      std::to_string(shard_count_) + ") and > 0");
  }
  internal::MutexLock resizing(&resize_mu_);
  const std::int64_t now = internal::to_nanos(clock_->now());
  const std::size_t n = shard_count_;
  for (std::size_t i = 0; i < n; ++i) {
    Shard& s = *shards_[i];
    const std::uint64_t quota = bound / n + (i < bound % n ? 1 : 0);
    Removals removed;
    std::int64_t due = kNever;
    {
      ShardLock l(s);
      drain_locked(s);
      s.policy.set_maximum(quota);
      if (!weighted()) s.table.set_limit(quota);
      evict_locked(s, removed);
      due = maintain_locked(s, now, removed);
    }
    if (tether_) arm(due);
    notify(removed);
  }
  capacity_.store(bound, std::memory_order_relaxed);
  return absl::OkStatus();
}

template <class K, class V, class Hash, class Eq>
inline absl::Status LocalStore<K, V, Hash, Eq>::erase(const K& key) {
  const std::uint64_t h = hash_of(key);
  Shard& s = shard_for(h);
  const std::int64_t now = internal::to_nanos(clock_->now());
  Removals removed;
  {
    ShardLock l(s);
    drain_for_write_locked(s);
    const std::uint32_t id = find(s, internal::fold_hash(h), key);
    if (id != kNoId) remove_locked(s, id, RemovalCause::kExplicit, removed);
    maintain_locked(s, now, removed);
  }
  notify(removed);
  return absl::OkStatus();
}

template <class K, class V, class Hash, class Eq>
inline absl::Status LocalStore<K, V, Hash, Eq>::clear() {
  const std::int64_t now = internal::to_nanos(clock_->now());
  for (auto& sp : shards_) {
    Shard& s = *sp;
    Removals removed;
    {
      ShardLock l(s);
      drain_locked(s);
      std::vector<std::uint32_t> all;
      all.reserve(s.table.size());
      s.table.for_each([&](std::uint32_t id) { all.push_back(id); });
      for (std::uint32_t id : all) remove_locked(s, id, RemovalCause::kExplicit, removed);
      maintain_locked(s, now, removed);
    }
    notify(removed);
  }
  return absl::OkStatus();
}
template <class K, class V, class Hash, class Eq>
inline void LocalStore<K, V, Hash, Eq>::validate() const {
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

template <class K, class V, class Hash, class Eq>
inline internal::PolicyKind LocalStore<K, V, Hash, Eq>::to_kind(EvictionPolicy p) {
  switch (p) {
    case EvictionPolicy::kLru:
      return internal::PolicyKind::kLru;
    case EvictionPolicy::kTinyLfu:
      return internal::PolicyKind::kTinyLfu;
    default:
      return internal::PolicyKind::kAdaptiveTinyLfu;
  }
}

template <class K, class V, class Hash, class Eq>
inline std::size_t LocalStore<K, V, Hash, Eq>::default_shards(std::uint64_t bound) {
  const std::size_t hw = std::max(1u, std::thread::hardware_concurrency());
  std::size_t n = std::bit_ceil(2 * hw);
  while (n > 1 && bound / n < 256) n /= 2;
  return std::min<std::size_t>(n, 1024);
}

template <class K, class V, class Hash, class Eq>
inline std::uint64_t LocalStore<K, V, Hash, Eq>::weigh(const K& key, const V& value) const {
  if (!weigher_) return 1;
  const std::size_t w = weigher_(key, value);
  return std::min<std::uint64_t>(w, internal::PolicyHook::kMaxWeight);
}

template <class K, class V, class Hash, class Eq>
inline Entry<V> LocalStore<K, V, Hash, Eq>::read_entry(const Shard& s, std::uint32_t id) {
  const Payload* n = s.slab.payload(id);
  if constexpr (!kInPlace) {
    return n->entry;
  } else {
    const std::atomic<std::uint32_t>& seq = s.seq[id % kSeqStripes];
    const auto* src = reinterpret_cast<const std::uint64_t*>(&n->entry);
    for (;;) {
      const std::uint32_t v1 = seq.load(std::memory_order_acquire);
      std::array<std::uint64_t, kEntryWords> w;
      // Acquire loads (plain moves on x86), no fence (TSan has none): a
      // word from an overlapping update makes the second load see it.
      for (std::size_t i = 0; i < kEntryWords; ++i)
        w[i] = __atomic_load_n(src + i, __ATOMIC_ACQUIRE);
      if ((v1 & 1) == 0 && seq.load(std::memory_order_relaxed) == v1) {
        return std::bit_cast<Entry<V>>(w);
      }
      ShardLock::relax();
    }
  }
}

template <class K, class V, class Hash, class Eq>
inline void LocalStore<K, V, Hash, Eq>::update_in_place_locked(Shard& s, std::uint32_t id,
                                                               const Entry<V>& entry,
                                                               std::uint64_t w, Removals& removed) {
  Payload* n = s.slab.payload(id);
  // The old entry is read with the stripe held: an unlocked writer
  // (try_update_unlocked) may be rewriting a never-expiring entry.
  std::atomic<std::uint32_t>& seq = s.seq[id % kSeqStripes];
  const std::uint32_t v = seq_begin(seq);
  if (listener_) removed.push_back({n->key, n->entry.value, RemovalCause::kReplaced});
  const bool reschedule = n->entry.stale_until != entry.stale_until;
  if (reschedule) s.wheel.unschedule(id);
  write_entry_words(n, entry);
  seq.store(v + 2, std::memory_order_release);
  s.policy.on_update(s.slab.hooks(id), static_cast<std::uint32_t>(w));
  if (reschedule && entry.stale_until != TimePoint::max()) s.wheel.schedule(id);
}

template <class K, class V, class Hash, class Eq>
inline std::uint32_t LocalStore<K, V, Hash, Eq>::seq_begin(std::atomic<std::uint32_t>& seq) {
  for (;;) {
    std::uint32_t v = seq.load(std::memory_order_relaxed);
    if ((v & 1) == 0 &&
        seq.compare_exchange_weak(v, v + 1, std::memory_order_acquire, std::memory_order_relaxed)) {
      return v;
    }
    ShardLock::relax();
  }
}

template <class K, class V, class Hash, class Eq>
inline void LocalStore<K, V, Hash, Eq>::write_entry_words(Payload* n, const Entry<V>& entry) {
  if constexpr (kInPlace) {  // only called then; the compiled core instantiates every member
    std::array<std::uint64_t, kEntryWords> words{};  // zeroed: Entry<V> may have padding
    std::memcpy(words.data(), &entry, sizeof(Entry<V>));
    auto* dst = reinterpret_cast<std::uint64_t*>(&n->entry);
    for (std::size_t i = 0; i < kEntryWords; ++i)
      __atomic_store_n(dst + i, words[i], __ATOMIC_RELEASE);
  } else {
    (void)n;
    (void)entry;
  }
}

template <class K, class V, class Hash, class Eq>
inline bool LocalStore<K, V, Hash, Eq>::try_update_unlocked(Shard& s, std::uint32_t h32,
                                                            const K& key, const Entry<V>& entry) {
  if (listener_ || weighted() || entry.stale_until != TimePoint::max()) return false;
  bool drain = false;
  {
    internal::Epoch::Guard g;
    const std::uint32_t id = find(s, h32, key);
    if (id == kNoId) return false;
    Payload* n = s.slab.payload(id);
    std::atomic<std::uint32_t>& seq = s.seq[id % kSeqStripes];
    const std::uint32_t v = seq_begin(seq);
    // The stripe is ours: no writer changes the entry under us.
    if (n->entry.stale_until != TimePoint::max()) {
      seq.store(v, std::memory_order_release);  // nothing written: readers' copies hold
      return false;
    }
    write_entry_words(n, entry);
    seq.store(v + 2, std::memory_order_release);
    const auto r = s.reads.offer(as_update(s.slab.hooks(id)));
    drain = r == internal::ReadBuffer<Hooks>::kFilled || r == internal::ReadBuffer<Hooks>::kFull;
  }
  if (drain) try_maintain(s);
  return true;
}

template <class K, class V, class Hash, class Eq>
inline std::optional<Entry<V>> LocalStore<K, V, Hash, Eq>::lookup(const K& key,
                                                                  std::int64_t* batch_now) {
  // The clock, read once per batch when the caller keeps the instant (get_many).
  auto read_clock = [&] {
    if (batch_now == nullptr) return internal::to_nanos(read_now());
    if (*batch_now == kNoTime) *batch_now = internal::to_nanos(read_now());
    return *batch_now;
  };
  const std::uint64_t h = hash_of(key);
  Shard& s = shard_for(h);
  std::optional<Entry<V>> out;
  bool expired = false;
  bool drain = false;
  std::int64_t now = kNoTime;  // read only for entries that can expire
  {
    internal::Epoch::Guard g;
    const std::uint32_t id = find(s, internal::fold_hash(h), key);
    if (id != kNoId) {
      out.emplace(read_entry(s, id));
      if (out->stale_until != TimePoint::max()) now = read_clock();
      if (now != kNoTime && internal::to_nanos(out->stale_until) <= now) {
        expired = true;
        out.reset();
      } else {
        // kFilled: this record filled the stripe; kFull: the stripe stayed
        // full for a while (another thread was draining: see try_maintain).
        const auto r = s.reads.offer(s.slab.hooks(id));
        drain =
            r == internal::ReadBuffer<Hooks>::kFilled || r == internal::ReadBuffer<Hooks>::kFull;
      }
    }
  }
  if (expired) {
    expire_on_read(s, key, h);
  } else if (drain) {
    try_maintain(s);
  } else if (const std::int64_t due = s.due.load(std::memory_order_relaxed); due != kNever)
      [[unlikely]] {
    // The shard holds entries that can expire: a hit that read the clock,
    // and one miss in kMissClockEvery of each thread, check whether the
    // wheel has work (a hit that did not read the clock leaves it to its
    // read buffer's drains).
    if (!out && (++miss_tick() & (kMissClockEvery - 1)) == 0) now = read_clock();
    if (now != kNoTime && now >= due) try_expire(s, now);
  }
  (out ? hits_ : misses_).add();
  if constexpr (kInPlace) {
    if (!out) last_miss() = h;
  }
  return out;
}

template <class K, class V, class Hash, class Eq>
inline void LocalStore<K, V, Hash, Eq>::try_expire(Shard& s, std::int64_t now) {
  if (!s.mu.try_lock()) return;
  Removals removed;
  maintain_locked(s, now, removed);
  s.mu.unlock();
  notify(removed);
}

template <class K, class V, class Hash, class Eq>
inline void LocalStore<K, V, Hash, Eq>::expire_on_read(Shard& s, const K& key, std::uint64_t h) {
  Removals removed;
  {
    ShardLock l(s);
    drain_locked(s);
    const std::int64_t now = internal::to_nanos(clock_->now());
    const std::uint32_t id = find(s, internal::fold_hash(h), key);
    // A seqlock read: an unlocked writer may be rewriting the entry.
    if (id != kNoId && internal::to_nanos(read_entry(s, id).stale_until) <= now) {
      s.expirations.fetch_add(1, std::memory_order_relaxed);
      remove_locked(s, id, RemovalCause::kExpired, removed);
    }
    maintain_locked(s, now, removed);
  }
  notify(removed);
}

template <class K, class V, class Hash, class Eq>
inline void LocalStore<K, V, Hash, Eq>::try_maintain(Shard& s) {
  if (draining_.flag.load(std::memory_order_relaxed) ||
      draining_.flag.exchange(true, std::memory_order_acquire)) {
    return;
  }
  if (!s.mu.try_lock()) {
    draining_.flag.store(false, std::memory_order_release);
    return;
  }
  Removals removed;
  drain_locked(s);
  maintain_locked(s, internal::to_nanos(clock_->now()), removed);
  s.mu.unlock();
  draining_.flag.store(false, std::memory_order_release);
  notify(removed);
}

template <class K, class V, class Hash, class Eq>
inline void LocalStore<K, V, Hash, Eq>::drain_locked(Shard& s, bool all) {
  // Passes so the cache misses overlap: collect the recorded hooks, then
  // prefetch their neighbours in the policy's lists and their sketch
  // lines, then replay.
  Hooks* batch[internal::ReadBuffer<Hooks>::kStripes * internal::ReadBuffer<Hooks>::kSize];
  bool update[internal::ReadBuffer<Hooks>::kStripes * internal::ReadBuffer<Hooks>::kSize];
  std::size_t n = 0;
  auto take = [&](Hooks* h) {
    update[n] = is_update(h);
    batch[n] = untagged(h);
    __builtin_prefetch(batch[n++], 1);
  };
  if (all) {
    s.reads.drain(take);
  } else {
    s.reads.drain_own(take);
  }
  for (std::size_t i = 0; i < n; ++i) {
    __builtin_prefetch(batch[i]->prev, 1);
    __builtin_prefetch(batch[i]->next, 1);
    s.policy.prefetch(batch[i]);
  }
  for (std::size_t i = 0; i < n; ++i) {
    Hooks* h = batch[i];
    if (h->queue == internal::PolicyQueue::kNone) continue;
    if (update[i]) {
      s.policy.on_update(h, h->weight);  // a lock-free put (try_update_unlocked)
    } else {
      s.policy.on_access(h);
    }
  }
}

template <class K, class V, class Hash, class Eq>
inline void LocalStore<K, V, Hash, Eq>::destroy_locked(Shard& s, std::uint32_t id,
                                                       RemovalCause cause, Removals& removed,
                                                       bool unpublished) {
  const Payload* n = s.slab.payload(id);
  s.wheel.unschedule(id);
  if (!unpublished) s.table.erase(s.slab.hooks(id)->hash, id);
  if (listener_) removed.push_back({n->key, n->entry.value, cause});
  retire_node(s, id);
}

template <class K, class V, class Hash, class Eq>
inline std::int64_t LocalStore<K, V, Hash, Eq>::maintain_locked(Shard& s, std::int64_t now,
                                                                Removals& removed,
                                                                bool force_reclaim) {
  if (now != kNoTime) {
    s.wheel.advance(now, [&](std::uint32_t id) {
      s.mu.assert_held();  // advance() calls back synchronously, under s.mu
      s.expirations.fetch_add(1, std::memory_order_relaxed);
      remove_locked(s, id, RemovalCause::kExpired, removed);
    });
  }
  // Reclaim once kReclaimBatch more nodes wait than after the last attempt
  // (an attempt frees only what was retired two epochs ago: re-trying on
  // every write would cost a membarrier per write).
  // A weighted shard also tries once 1/32 of its budget was retired since
  // the last attempt, so values awaiting reclamation (two attempts after
  // their retirement) stay within ~10% of max_weight.
  if (force_reclaim || s.retired.size() >= s.reclaim_at || !s.blocks.empty() ||
      (weighted() && s.retired_weight * kReclaimWeightShare >= s.policy.maximum())) {
    reclaim_locked(s);
    s.reclaim_at = s.retired.size() + kReclaimBatch;
    s.retired_weight = 0;
  }
  s.size.store(s.table.size(), std::memory_order_relaxed);
  s.weight.store(s.policy.weighted_size(), std::memory_order_relaxed);
  const std::int64_t due = s.wheel.next_due_ns();
  // Written only when it changes: readers load it on every miss.
  if (s.due.load(std::memory_order_relaxed) != due) s.due.store(due, std::memory_order_relaxed);
  return due;
}

template <class K, class V, class Hash, class Eq>
inline void LocalStore<K, V, Hash, Eq>::arm(std::int64_t due) {
  if (due == kNever) return;
  std::int64_t cur = armed_at_.load(std::memory_order_seq_cst);
  while (due < cur) {
    if (armed_at_.compare_exchange_weak(cur, due, std::memory_order_seq_cst)) {
      const bool queued = options_.maintenance->schedule(
          TimePoint(std::chrono::duration_cast<TimePoint::duration>(std::chrono::nanoseconds(due))),
          [t = tether_, this] { t->run([this] { run_maintenance(); }); });
      // Refused (the scheduler is stopping): let a later put try again.
      if (!queued) armed_at_.compare_exchange_strong(due, kNever, std::memory_order_seq_cst);
      return;
    }
  }
}

template <class K, class V, class Hash, class Eq>
inline void LocalStore<K, V, Hash, Eq>::run_maintenance() {
  armed_at_.store(kNever, std::memory_order_seq_cst);
  const std::int64_t now = internal::to_nanos(clock_->now());
  std::int64_t next = kNever;
  for (auto& sp : shards_) {
    Shard& s = *sp;
    Removals removed;
    {
      ShardLock l(s);
      std::int64_t due = s.wheel.next_due_ns();
      if (due <= now) {
        due = maintain_locked(s, now, removed, /*force_reclaim=*/true);
        // A node retired now is freed two epoch advances later.
        for (int i = 0; i < 2 && !s.retired.empty(); ++i) reclaim_locked(s);
      }
      next = std::min(next, due);
    }
    notify(removed);
  }
  arm(next);
}

template <class K, class V, class Hash, class Eq>
inline void LocalStore<K, V, Hash, Eq>::reclaim_locked(Shard& s) {
  internal::Epoch::try_advance();
  const std::uint64_t e = internal::Epoch::current();
  std::size_t i = 0;
  for (; i < s.retired.size() && s.retired[i].epoch + 2 <= e; ++i) {
    const std::uint32_t id = s.retired[i].id;
    destroy_payload(s.slab.payload(id));
    s.slab.release(id);
  }
  s.retired.erase(s.retired.begin(), s.retired.begin() + static_cast<std::ptrdiff_t>(i));
  std::size_t j = 0;
  for (; j < s.blocks.size() && s.blocks[j].epoch + 2 <= e; ++j)
    s.blocks[j].free(s.blocks[j].block);
  s.blocks.erase(s.blocks.begin(), s.blocks.begin() + static_cast<std::ptrdiff_t>(j));
}
}  // namespace larder

#endif  // LARDER_INTERNAL_LOCAL_STORE_IMPL_H_
