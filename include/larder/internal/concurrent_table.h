// SPDX-License-Identifier: Apache-2.0
//
// ConcurrentIdTable: an open-addressing hash index from a 32-bit hash to
// 32-bit entry ids, which readers probe without a lock while one writer at a
// time (holding the owner's lock) inserts, replaces and erases. Together with
// NodeSlab (ids to nodes) and Epoch (reclamation) it is a LocalStore shard's
// lock-free lookup.
//
// How it differs from the obvious alternatives: an absl::flat_hash_set under
// a mutex makes every reader take the lock; a table of atomic pointers costs 8
// bytes a slot, and a chained table a pointer per entry plus a bucket array.
// Here a slot is 4 bytes (a 26-bit id and a 6-bit tag of the hash) and the
// table stays between 50% and 90% full, so the index costs about 5-8 bytes
// per entry and most probes that do not match are rejected by the tag without
// touching the entry.
//
// Design essay.
//
//   Slots hold 0 (empty), 1 (tombstone) or (tag << 26) | (id + 2):
//
//     [ 0 | tag:id | tag:id | 1 | tag:id | 0 | ... ]   capacity C (any size)
//        home = (hash * C) >> 32, then linear probing to the right (wrapping)
//
//   Readers (inside an Epoch::Guard) load the array pointer, then probe from
//   the key's home until an empty slot, calling match(id) on every slot whose
//   tag equals the hash's. Writers never make a non-empty slot empty in a
//   published array: erase writes a tombstone, an update writes the new id
//   over the old one, an insert fills the first tombstone or empty slot on
//   the key's probe path. Exception: a slot whose right neighbour is empty
//   ends every probe path through it, so erase empties it (and the
//   tombstones just left of it) instead of leaving a tombstone; by induction
//   the slots between a present key's home and its slot are never empty,
//   and rebuilds, which cost a load of every entry's hash, come less often.
//   So a key present during a whole probe is found, a
//   probe ends (there is always an empty slot: the load limit), and a slot is
//   read with acquire after the writer stored it with release (the entry it
//   names is fully built).
//
//   When used + tombstones would pass 90% of the capacity, the writer builds a
//   new array (without tombstones, sized for ~60% load, or at most `limit`
//   entries at 75% when the owner knows its bound), publishes it with one
//   release store and hands the old array to its retire callback, to be freed
//   after an epoch grace period (readers may still probe it; it is never
//   written again). Rebuilds are O(n) and amortised over >= 10% of C inserts.
//   A miss at 75-90% load scans 8-50 slots on average: one to three cache
//   lines of 4-byte slots, rejected by their tags without touching entries.
//
//   Why linear probing: the probe is a scan of consecutive 4-byte slots (16
//   per cache line), so a miss at 75% load costs one or two lines. Why not a
//   lock-free resize (Cliff Click's table): writers already serialise on the
//   shard lock, so only readers need to be lock-free, and a copy-and-publish
//   resize is simpler and obviously correct.
//
// Limits: ids < 2^26 - 2 per table (about 67M entries per LocalStore shard).
//
// Thread-safety: find() from any thread inside an Epoch::Guard; every other
// member only by the single writer (the owner's lock held).
//
// Example:
//   ConcurrentIdTable t(/*limit=*/0);
//   t.insert(h, id, hash_of_id, [&](void* old) { retire(old); });  // writer
//   { Epoch::Guard g; auto id = t.find(h, [&](uint32_t i) { return key_of(i) == k; }); }
#ifndef LARDER_INTERNAL_CONCURRENT_TABLE_H_
#define LARDER_INTERNAL_CONCURRENT_TABLE_H_

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>

#include "larder/internal/striped_counter.h"

namespace larder::internal {

class ConcurrentIdTable {
 public:
  static constexpr std::uint32_t kNone = 0xffffffffu;
  static constexpr int kIdBits = 26;
  static constexpr std::uint32_t kMaxIds = (1u << kIdBits) - 2;  // ids 0 .. kMaxIds - 1

  // limit: the most entries the owner will ever hold at once (0: unknown);
  // caps growth so a bounded table ends near 75% full.
  explicit ConcurrentIdTable(std::uint64_t limit) : limit_(limit) {
    array_.store(make_array(kMinCapacity), std::memory_order_relaxed);
  }
  ~ConcurrentIdTable() { free_array(array_.load(std::memory_order_relaxed)); }
  ConcurrentIdTable(const ConcurrentIdTable&) = delete;
  ConcurrentIdTable& operator=(const ConcurrentIdTable&) = delete;

  // set_limit: a new `limit` (LocalStore::set_capacity); the writer only. A
  // smaller limit takes effect at the next rebuild.
  void set_limit(std::uint64_t limit) { limit_ = limit; }

  // free_array: releases an array handed to a retire callback.
  static void free_array(void* a) { delete[] static_cast<std::atomic<std::uint32_t>*>(a); }

  // find: the id whose entry matches (match(id) true), or kNone. Lock-free;
  // the caller is inside an Epoch::Guard (or is the writer).
  template <class Match>
  std::uint32_t find(std::uint32_t hash, Match&& match) const {
    const std::atomic<std::uint32_t>* a = array_.load(std::memory_order_acquire);
    const std::uint32_t cap = a[0].load(std::memory_order_relaxed);
    const std::atomic<std::uint32_t>* slots = a + 1;
    const std::uint32_t tag = tag_of(hash);
    std::uint32_t i = home(hash, cap);
    for (std::uint32_t n = 0; n < cap; ++n) {
      const std::uint32_t v = slots[i].load(std::memory_order_acquire);
      if (v == kEmpty) return kNone;
      if (v != kTomb && (v >> kIdBits) == tag && match(id_of(v))) return id_of(v);
      if (++i == cap) i = 0;
    }
    return kNone;
  }

  // insert: adds id (its key not present). May rebuild: hash_of(id) gives
  // each present id's hash, retire(void*) receives the replaced array.
  template <class HashOf, class Retire>
  void insert(std::uint32_t hash, std::uint32_t id, HashOf&& hash_of, Retire&& retire) {
    std::atomic<std::uint32_t>* a = array_.load(std::memory_order_relaxed);
    std::uint32_t cap = a[0].load(std::memory_order_relaxed);
    if (static_cast<std::uint64_t>(used_ + tombs_ + 1) * 100 >
        static_cast<std::uint64_t>(cap) * 90) {
      rebuild(used_ + 1, hash_of, retire);
      a = array_.load(std::memory_order_relaxed);
      cap = a[0].load(std::memory_order_relaxed);
    }
    std::atomic<std::uint32_t>* slots = a + 1;
    std::uint32_t i = home(hash, cap);
    for (;;) {
      const std::uint32_t v = slots[i].load(std::memory_order_relaxed);
      if (v == kEmpty || v == kTomb) {
        if (v == kTomb) --tombs_;
        slots[i].store(encode(id, hash), std::memory_order_release);
        ++used_;
        return;
      }
      if (++i == cap) i = 0;
    }
  }

  // replace: the slot holding old_id (whose hash is hash) now holds new_id,
  // in one atomic store. Returns false when old_id is not present.
  bool replace(std::uint32_t hash, std::uint32_t old_id, std::uint32_t new_id) {
    std::atomic<std::uint32_t>* slot = slot_of(hash, old_id);
    if (slot == nullptr) return false;
    slot->store(encode(new_id, hash), std::memory_order_release);
    return true;
  }

  // erase: removes id (whose hash is hash). Returns false when not present.
  bool erase(std::uint32_t hash, std::uint32_t id) {
    std::atomic<std::uint32_t>* slot = slot_of(hash, id);
    if (slot == nullptr) return false;
    erase_slot(slot);
    return true;
  }
  // erase_where: removes the first id on hash's probe path for which
  // match(id) is true and returns it (kNone when there is none): one probe
  // where find() then erase() would take two (LocalStore's eviction knows a
  // victim by its node, not its id). Writer only.
  template <class Match>
  std::uint32_t erase_where(std::uint32_t hash, Match&& match) {
    std::atomic<std::uint32_t>* a = array_.load(std::memory_order_relaxed);
    const std::uint32_t cap = a[0].load(std::memory_order_relaxed);
    std::atomic<std::uint32_t>* slots = a + 1;
    const std::uint32_t tag = tag_of(hash);
    std::uint32_t i = home(hash, cap);
    for (std::uint32_t n = 0; n < cap; ++n) {
      const std::uint32_t v = slots[i].load(std::memory_order_relaxed);
      if (v == kEmpty) return kNone;
      if (v != kTomb && (v >> kIdBits) == tag && match(id_of(v))) {
        erase_slot(&slots[i]);
        return id_of(v);
      }
      if (++i == cap) i = 0;
    }
    return kNone;
  }
  // for_each: calls f(id) for every present id. Writer only.
  template <class F>
  void for_each(F&& f) const {
    const std::atomic<std::uint32_t>* a = array_.load(std::memory_order_relaxed);
    const std::uint32_t cap = a[0].load(std::memory_order_relaxed);
    for (std::uint32_t i = 0; i < cap; ++i) {
      const std::uint32_t v = a[1 + i].load(std::memory_order_relaxed);
      if (v != kEmpty && v != kTomb) f(id_of(v));
    }
  }

  std::uint32_t size() const { return used_; }
  std::uint32_t capacity() const {
    return array_.load(std::memory_order_relaxed)[0].load(std::memory_order_relaxed);
  }
  std::size_t bytes() const { return (std::size_t{capacity()} + 1) * sizeof(std::uint32_t); }

 private:
  static constexpr std::uint32_t kEmpty = 0;
  static constexpr std::uint32_t kTomb = 1;
  static constexpr std::uint32_t kMinCapacity = 8;

  static std::uint32_t tag_of(std::uint32_t hash) { return hash & ((1u << (32 - kIdBits)) - 1); }
  static std::uint32_t encode(std::uint32_t id, std::uint32_t hash) {
    return (tag_of(hash) << kIdBits) | (id + 2);
  }
  static std::uint32_t id_of(std::uint32_t v) { return (v & ((1u << kIdBits) - 1)) - 2; }
  static std::uint32_t home(std::uint32_t hash, std::uint32_t cap) {
    return static_cast<std::uint32_t>((static_cast<std::uint64_t>(hash) * cap) >> 32);
  }

  static std::atomic<std::uint32_t>* make_array(std::uint32_t cap) {
    auto* a = new std::atomic<std::uint32_t>[std::size_t{cap} + 1];
    a[0].store(cap, std::memory_order_relaxed);
    for (std::uint32_t i = 1; i <= cap; ++i) a[i].store(kEmpty, std::memory_order_relaxed);
    return a;
  }

  // erase_slot: empties (or tombstones) a slot that holds an id.
  void erase_slot(std::atomic<std::uint32_t>* slot) {
    --used_;
    std::atomic<std::uint32_t>* a = array_.load(std::memory_order_relaxed);
    const std::uint32_t cap = a[0].load(std::memory_order_relaxed);
    std::atomic<std::uint32_t>* slots = a + 1;
    std::uint32_t i = static_cast<std::uint32_t>(slot - slots);
    if (slots[i + 1 == cap ? 0 : i + 1].load(std::memory_order_relaxed) != kEmpty) {
      slot->store(kTomb, std::memory_order_release);
      ++tombs_;
      return;
    }
    // The next slot is empty, so no probe path continues past this one:
    // it may become empty, and so may the tombstones right before it.
    slot->store(kEmpty, std::memory_order_release);
    for (std::uint32_t n = 1; n < cap; ++n) {
      i = i == 0 ? cap - 1 : i - 1;
      if (slots[i].load(std::memory_order_relaxed) != kTomb) break;
      slots[i].store(kEmpty, std::memory_order_release);
      --tombs_;
    }
  }

  std::atomic<std::uint32_t>* slot_of(std::uint32_t hash, std::uint32_t id) {
    std::atomic<std::uint32_t>* a = array_.load(std::memory_order_relaxed);
    const std::uint32_t cap = a[0].load(std::memory_order_relaxed);
    std::atomic<std::uint32_t>* slots = a + 1;
    const std::uint32_t want = encode(id, hash);
    std::uint32_t i = home(hash, cap);
    for (std::uint32_t n = 0; n < cap; ++n) {
      const std::uint32_t v = slots[i].load(std::memory_order_relaxed);
      if (v == kEmpty) return nullptr;
      if (v == want) return &slots[i];
      if (++i == cap) i = 0;
    }
    return nullptr;
  }

  // capacity_for: ~60% load for n entries, but for a bounded table no more
  // than the bound at 75% (shorter probes and rarer tombstone rebuilds than at
  // 80%, for a third of a byte per entry), and never above 85% for n.
  std::uint32_t capacity_for(std::uint64_t n) const {
    std::uint64_t c = n * 5 / 3 + 1;
    if (limit_ > 0) c = std::min<std::uint64_t>(c, (limit_ + 1) * 4 / 3 + 1);
    c = std::max<std::uint64_t>(c, n * 100 / 85 + 2);
    return static_cast<std::uint32_t>(std::max<std::uint64_t>(c, kMinCapacity));
  }

  template <class HashOf, class Retire>
  void rebuild(std::uint64_t n, HashOf& hash_of, Retire& retire) {
    std::atomic<std::uint32_t>* old = array_.load(std::memory_order_relaxed);
    const std::uint32_t old_cap = old[0].load(std::memory_order_relaxed);
    const std::uint32_t cap = capacity_for(n);
    std::atomic<std::uint32_t>* a = make_array(cap);
    // In batches: first every batch entry's hash (independent loads of
    // scattered entries, so their cache misses overlap), then the inserts.
    constexpr std::uint32_t kBatch = 32;
    std::uint32_t vs[kBatch], hs[kBatch];
    for (std::uint32_t j = 0; j < old_cap;) {
      std::uint32_t n = 0;
      for (; j < old_cap && n < kBatch; ++j) {
        const std::uint32_t v = old[1 + j].load(std::memory_order_relaxed);
        if (v != kEmpty && v != kTomb) vs[n++] = v;
      }
      for (std::uint32_t k = 0; k < n; ++k) hs[k] = hash_of(id_of(vs[k]));
      for (std::uint32_t k = 0; k < n; ++k) {
        std::uint32_t i = home(hs[k], cap);
        while (a[1 + i].load(std::memory_order_relaxed) != kEmpty) {
          if (++i == cap) i = 0;
        }
        a[1 + i].store(vs[k], std::memory_order_relaxed);
      }
    }
    tombs_ = 0;
    array_.store(a, std::memory_order_release);
    retire(static_cast<void*>(old));
  }

  // The one field lock-free readers load. The writer's bookkeeping below
  // starts a new cache line: an insert or erase rewrites used_ and tombs_,
  // and on the same line it would evict array_ from every reader's cache.
  std::atomic<std::atomic<std::uint32_t>*> array_{nullptr};
  alignas(kCacheLine) std::uint64_t limit_;  // writer only (set_limit)
  std::uint32_t used_ = 0;                   // writer only
  std::uint32_t tombs_ = 0;                  // writer only
};

}  // namespace larder::internal

#endif  // LARDER_INTERNAL_CONCURRENT_TABLE_H_
