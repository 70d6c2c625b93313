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
//   Hashes: Hash's value, xored with a per-store secret
//   (LocalStoreOptions::hash_seed, random by default) and mixed
//   (internal::mix_hash), so keys chosen against a known Hash to share one
//   shard's index slot and sketch counters scatter (tests/
//   local_store_bounds_test.cc, bench/adversarial_bench.cc).
//
//   The key space is split by hash into shards (LocalStoreOptions::shards; by
//   default a power of two near 2x the hardware threads, fewer for small
//   bounds). Writers serialise on their shard's mutex; readers take no lock
//   and write no shared cache line:
//
//     shard:  hash index (lock-free reads)   ids -> node slab   read buffers
//             ----------------------------   ---------------    (per thread)
//             under the mutex: eviction policy (3 LRU queues + frequency
//             sketch), timer wheel, retired nodes awaiting reclamation
//
//     node = two records in parallel arrays of the slab, same id
//     (64 bytes for u64 -> u64):
//       hooks:   [ policy prev | policy next | hash:32 weight:30 queue:2 ]  24
//                [ wheel prev id:32 | wheel next id:32 ]                     8
//       payload: [ key | value | fresh_until | stale_until ]                32
//
//   Readers load only payloads; the policy rewrites only hooks, so relinking
//   a hot entry (which happens on every recorded access) does not evict the
//   entry's line from the caches of the cores reading it.
//
//   Read path (get): hash, pick the shard, enter an epoch guard
//   (internal/epoch.h: one exchange on the thread's own record), probe the
//   shard's ConcurrentIdTable (internal/concurrent_table.h: 4-byte slots of
//   id + hash tag), turn the id into the node's address (internal/node_slab.h),
//   compare keys, check stale_until (the clock is read only for entries that
//   can expire), copy the entry out, append the node to the thread's stripe
//   of the shard's read buffer (internal/read_buffer.h), leave the guard.
//   Counters are per thread (internal/thread_counter.h). Nothing on this
//   path takes a lock, writes a line another reader writes, or (on Linux,
//   with membarrier) executes a locked instruction, so the CPU overlaps one
//   lookup's cache misses with the next one's.
//
//   A node's key never changes while it is published. When Entry<V> is
//   trivially copyable (kInPlace: u64 -> u64, PODs), put() on an existing
//   key rewrites the entry in place under a seqlock (one of 256 sequence
//   numbers per shard, striped by node id: no per-node bytes); readers copy
//   the words with atomic loads and retry if an update overlapped, so they
//   never see a torn entry. The node keeps its links (no allocation, no
//   transplant, no retirement). When nothing but the value changes (no
//   removal listener, no weigher, neither entry can expire), such a put
//   takes no lock at all: it finds the node as a reader does, claims the
//   node's seqlock stripe with a CAS (writers under the lock claim stripes
//   the same way), rewrites the words, and appends the node to its
//   thread's read-buffer stripe as an update record (a tagged pointer), so
//   the policy's on_update is replayed by the next drain, in the thread's
//   order (Caffeine's write buffer, sharing the read buffer). A removal
//   racing with it may unpublish the node first: the write then lands in a
//   retired node and is lost with it, as if it had come just before the
//   removal. Otherwise put() on an existing key builds a
//   new node, moves the policy and timer links to it
//   (PolicyList::transplant) and swaps the id in the index with one store;
//   removal writes a tombstone. An unpublished node is retired with the
//   current epoch and its key and value are destroyed only two epochs later,
//   when no reader can still hold it; its memory stays node-shaped (the slab
//   is type-stable) and is reused for a later entry.
//
//   Access recording (Caffeine's design, "BP-Wrapper"): a hit appends the
//   node to a lossy striped ring buffer; a reader that finds its stripe full
//   drains all of the shard's stripes into the policy under try_lock, unless
//   another reader of the store is already draining (at most one at a time,
//   like Caffeine's single maintenance task). A writer drains, first thing
//   under its lock, only its own thread's stripe (keeping a thread's reads
//   ahead of its write, so a single thread's order is exact), and every
//   stripe once every kFullDrainEvery writes on the shard: it does not
//   write the lines of other readers' stripes on every put. With one
//   thread nothing is dropped and the policy sees every access in the same
//   order as if it were recorded under the lock (the simulator's hit ratios
//   are unchanged). Under contention
//   (a drain found two or more threads' records) every thread records only
//   one hit in 16 (ReadBuffer's sampling; it turns off again after a few
//   drains that find one thread alone), and records that find their stripe
//   full while another thread drains are dropped: the policy's cost (50-100
//   ns of cache misses per recorded access on a store of 1M entries, more
//   than the lookup) bounds the rate of recorded accesses, not the rate of
//   reads. Sampling keeps frequency
//   estimates proportional and hot entries recent; dropping is never wrong
//   about liveness (a drained node whose queue is kNone is skipped).
//
//   Bound: eviction runs in the same critical section as the insert that
//   overflowed the shard (one index probe finds a victim's id by its node
//   and unpublishes it: ConcurrentIdTable::erase_where; the insert has
//   prefetched its sketch counters before taking the lock), so the store
//   never holds more than its bound (no slack, even under concurrent
//   inserts; size() counts published entries).
//   The bound is split evenly between shards: a shard's hot set competes
//   only with its own keys; with hundreds of entries per shard this changes
//   hit ratios by well under a point (measured with bench/larder-sim
//   --shards). Each shard holds at most 2^26 - 2 nodes (live plus retired);
//   beyond that a put is refused and reported to the listener as kEvicted.
//
//   Expiry: an entry is live while now < stale_until (by the store's clock).
//   A lookup never returns an expired entry: a reader that finds one takes
//   the lock and removes it (kExpired). With the system clock, reads take
//   `now` from CLOCK_REALTIME_COARSE (internal::read_now in clock.h: a few
//   ns, where the precise clock was the largest cost of a hit after the
//   probe), which lags real time by up to one kernel tick (1-4 ms) and never
//   leads it: an entry may be returned up to a tick past its stale_until,
//   never dropped early. Any other Clock is read exactly. The shard's
//   hierarchical timer wheel (internal/timer_wheel.h) files every entry with
//   a finite stale_until and reclaims expired entries in amortised O(1),
//   about one wheel tick (~1 s) after stale_until, whenever it is advanced.
//   Every operation takes its share of that work: each write, each
//   read-buffer drain and cleanup() advance the wheel, and so does a lookup,
//   hit or miss, once the wheel has work. The shard publishes the wheel's
//   next due time (a lower bound on when advancing has anything to do; kNever
//   while no entry can expire) in a word of its own, written at most once per
//   tick. A lookup loads it: with nothing to expire (no ttl in use) that load
//   is the whole cost; a hit on an entry that can expire compares it with the
//   time the hit already read; in a shard that holds such entries, one miss
//   in 8 of each thread reads the clock to compare (a clock read costs about
//   as much as a lookup). When the time is due the lookup advances the wheel
//   under try_lock (a held lock means its holder does the work: every
//   critical section ends by advancing the wheel), so a reader never waits.
//   Hits on entries without a deadline leave the work to their read buffer's
//   drains. So read-only traffic, misses included, keeps memory free of
//   expired entries.
//
//   A store that sees no calls at all can have the work scheduled instead
//   (LocalStoreOptions::maintenance, off by default): the store asks a
//   Scheduler (scheduler.h) to run it at the earliest due time of its
//   shards; a run maintains the shards that are due, as cleanup() does, and
//   asks again for the next due time. A put that lowers a shard's due time
//   below the instant asked for asks for the earlier one; asking costs two
//   atomic operations on the store, outside the shard's lock, and happens
//   only when the due time moves earlier. Runs reach the store through a
//   tether (internal::SchedulerTether) that the destructor closes, waiting
//   for a run in progress; runs still pending then find the store gone.
//   Without a scheduler, call cleanup() periodically if an idle store must
//   give its expired entries back.
//
//   The removal listener runs after the shard's lock is released, on the
//   thread whose operation caused the removal: removals are collected during
//   the critical section (key and value copied: a reader may still be
//   reading the node) and delivered afterwards, in order. A listener may
//   therefore call back into the store.
//
//   Memory, u64 -> u64 at 1M entries: node 64 bytes (no allocator header:
//   slab chunks of 256 nodes), index ~5.3 bytes (75% full at the bound),
//   frequency sketch ~8.4 bytes, the adaptive policy's shadows (a fixed
//   0.15-0.9 MB per shard, whatever the bound): 62.7 bytes per entry beyond
//   key and value after filling, 63.5 after 4M more requests with evictions,
//   53.2 with kLru (bench/local_store_bench BM_BytesPerEntry, mallinfo2
//   deltas).
//
// Thread-safety: every method may be called concurrently from any thread.
// Reads never block; writes on one shard serialise on its mutex for the O(1)
// work of the operation (a put that only replaces a present value may take
// no lock: see the essay). Do not destroy the store while calls are running.
//
// Example:
//
//   larder::LocalStore<std::string, std::string> store({.max_entries = 100'000});
//   auto now = larder::system_clock()->now();
//   (void)store.put("user:1", {"Ada", now + std::chrono::minutes(1), now +
//   std::chrono::minutes(5)}); auto got = store.get("user:1");    //
//   StatusOr<optional<Entry<std::string>>>
//
// Where the code is: this header has the interface and the data layout;
// the member definitions (construction, write path, maintenance) are in
// internal/local_store_impl.h, included at the end. LocalStore<std::string,
// std::string> and LocalStore<std::int64_t, std::string> are compiled once in
// larder::core (declared `extern template` at the end of this header).
#ifndef LARDER_LOCAL_STORE_H_
#define LARDER_LOCAL_STORE_H_

#include <algorithm>
#include <array>
#include <atomic>
#include <bit>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <limits>
#include <memory>
#include <new>
#include <optional>
#include <random>
#include <span>
#include <stdexcept>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/hash/hash.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "larder/clock.h"
#include "larder/internal/concurrent_table.h"
#include "larder/internal/epoch.h"
#include "larder/internal/eviction_policy.h"
#include "larder/internal/mutex.h"
#include "larder/internal/node_slab.h"
#include "larder/internal/read_buffer.h"
#include "larder/internal/striped_counter.h"
#include "larder/internal/thread_counter.h"
#include "larder/internal/timer_wheel.h"
#include "larder/scheduler.h"
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
  // Scheduled maintenance: when set, the store asks this scheduler to run it
  // when its timer wheel's next deadline is due, so expired entries are
  // reclaimed (~1 s after stale_until) even when nothing calls the store;
  // the removal listener then runs on the scheduler's thread. The scheduler
  // must read the same clock as the store (TimerScheduler takes it in its
  // options). null (default): expiry work is done only by the store's
  // operations and cleanup(). See "Expiry" in the essay above.
  std::shared_ptr<Scheduler> maintenance = nullptr;
  // The secret the store salts its keys' hashes with (Hash's value is xored
  // with it before mixing), so keys chosen by someone who knows Hash and the
  // store's mixing to collide in one shard's index and frequency sketch
  // (every lookup of that shard then walks them all) scatter again. nullopt
  // (default): a fresh random seed per store. A value: that seed, for
  // reproducible runs (larder-sim); 0 is the unsalted hash. Not a
  // cryptographic PRF: it defeats keys precomputed against the public
  // mixing, not an attacker who can time many lookups. A Hash whose own
  // values collide (a constant) cannot be helped by any seed.
  std::optional<std::uint64_t> hash_seed = std::nullopt;
};

// LocalStoreCallbacks: a LocalStore's user functions, for its K and V (the
// rest of its options, LocalStoreOptions, do not depend on them).
template <class K, class V>
struct LocalStoreCallbacks {
  // The weight of an entry, for max_weight > 0 (then required); called once
  // per put, outside the store's locks. bytes_weigher.h has one in bytes.
  std::function<std::size_t(const K&, const V&)> weigher = nullptr;
  // Called outside the store's locks for every entry that leaves (see
  // RemovalCause); on the scheduler's thread for scheduled maintenance.
  std::function<void(const K&, const V&, RemovalCause)> on_removal = nullptr;
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

// random_hash_seed: a fresh secret for LocalStoreOptions::hash_seed: a
// process-wide random base (std::random_device, read once) and a counter,
// mixed, so stores in one process do not share it either.
inline std::uint64_t random_hash_seed() {
  static const std::uint64_t base = [] {
    std::random_device rd;
    return (static_cast<std::uint64_t>(rd()) << 32) ^ rd();
  }();
  static std::atomic<std::uint64_t> counter{0};
  const std::uint64_t n = counter.fetch_add(1, std::memory_order_relaxed);
  return mix_hash(base + 0x9e3779b97f4a7c15ull * (n + 1)) | 1;
}

inline std::int64_t to_nanos(TimePoint t) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}

// LocalHooks: the writer-side half of a LocalStore entry (32 bytes): its
// links in the policy's queues and the timer wheel. Lives as long as the slab
// (a free node keeps queue == kNone).
struct LocalHooks final : PolicyHook, TimerHook {};
static_assert(sizeof(LocalHooks) == 32);

// LocalPayload: the reader-side half: key and entry, constructed when the
// node is filled and destroyed when it is reclaimed; immutable in between.
template <class K, class V>
struct LocalPayload final {
  LocalPayload() {}
  ~LocalPayload() {}
  LocalPayload(const LocalPayload&) = delete;
  LocalPayload& operator=(const LocalPayload&) = delete;
  union {
    K key;
  };
  union {
    Entry<V> entry;
  };
};

}  // namespace internal

template <class K, class V, class Hash = absl::Hash<K>, class Eq = std::equal_to<K>>
class LocalStore : public Store<K, V> {
 public:
  using Weigher = std::function<std::size_t(const K&, const V&)>;
  using RemovalListener = std::function<void(const K&, const V&, RemovalCause)>;

  // Constructs an empty store. Throws std::invalid_argument naming the field
  // when the options conflict (max_entries = 0 without max_weight; max_weight
  // > 0 without a weigher; shards larger than the bound). callbacks: the
  // weigher (needed when max_weight > 0) and the removal listener (see
  // LocalStoreCallbacks).
  explicit LocalStore(LocalStoreOptions options = {}, LocalStoreCallbacks<K, V> callbacks = {});

  // Waits for a scheduled maintenance run in progress (options.maintenance);
  // a run scheduled for later finds the store gone and does nothing.
  ~LocalStore() override {
    if (tether_) tether_->close();
    for (auto& sp : shards_) {
      Shard& s = *sp;
      s.table.for_each([&](std::uint32_t id) { destroy_payload(s.slab.payload(id)); });
      for (const RetiredNode& r : s.retired) destroy_payload(s.slab.payload(r.id));
      for (const RetiredBlock& b : s.blocks) b.free(b.block);
    }
  }

  LocalStore(const LocalStore&) = delete;
  LocalStore& operator=(const LocalStore&) = delete;

  // get: the live entry (fresh or stale), or nullopt when absent or expired.
  // Never an error. Counts a hit or a miss and records the access for the
  // eviction policy. Lock-free unless the entry just expired (then it is
  // removed under the shard's lock). O(1).
  absl::StatusOr<std::optional<Entry<V>>> get(const K& key) override { return lookup(key); }

  // peek: like get() but quiet: not counted as a hit or miss, not an access
  // for the eviction policy, and no maintenance. Lock-free. For stats and
  // debugging.
  std::optional<Entry<V>> peek(const K& key) const {
    const std::uint64_t h = hash_of(key);
    const Shard& s = shard_for(h);
    internal::Epoch::Guard g;
    const std::uint32_t id = find(s, internal::fold_hash(h), key);
    if (id == kNoId) return std::nullopt;
    Entry<V> e = read_entry(s, id);
    if (e.stale_until != TimePoint::max() &&
        internal::to_nanos(e.stale_until) <= internal::to_nanos(read_now())) {
      return std::nullopt;
    }
    return e;
  }

  // put: stores the entry under key, replacing (kReplaced) any previous one.
  // An entry already expired is not stored (and removes the previous one). An
  // entry heavier than a shard's share of max_weight is not stored either
  // (reported as kEvicted). May evict others. Never an error. O(1) amortised.
  absl::Status put(const K& key, Entry<V> entry) override;

  // erase: removes key (kExplicit). OK when absent. O(1).
  absl::Status erase(const K& key) override;

  // get_many: one result per key, in order; never an error. The batch reads
  // the clock once (the first time a key needs it) and judges every key's
  // expiry by that instant.
  absl::StatusOr<std::vector<std::optional<Entry<V>>>> get_many(std::span<const K> keys) override {
    std::vector<std::optional<Entry<V>>> out;
    out.reserve(keys.size());
    std::int64_t now = kNoTime;
    for (const K& k : keys) out.push_back(lookup(k, &now));
    return out;
  }

  // clear: removes every entry (kExplicit). Concurrent puts may land after it.
  absl::Status clear() override;

  // counters: hits, misses, evictions, expirations since construction; size
  // and weight now (weight is 0 without a weigher). Lock-free; O(shards).
  std::shared_ptr<Clock> clock() const override { return clock_; }

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

  // cleanup: runs maintenance on every shard now: applies recorded accesses,
  // reclaims entries whose stale_until passed (their bucket's tick included)
  // and frees retired nodes that no reader can hold any more.
  // O(shards + reclaimed).
  void cleanup() {
    const std::int64_t now = internal::to_nanos(clock_->now());
    for (auto& sp : shards_) {
      Shard& s = *sp;
      Removals removed;
      {
        ShardLock l(s);
        drain_locked(s);
        maintain_locked(s, now, removed, /*force_reclaim=*/true);
      }
      notify(removed);
    }
  }

  std::size_t shard_count() const { return shard_count_; }

  // set_capacity: changes the bound at runtime: max_entries for a store
  // bounded by count, max_weight for a weighted one (max_entries then stays
  // the estimate it was). The bound is split between the shards as at
  // construction; each shard in turn takes its new share and, when over it,
  // evicts down to it at once through the eviction policy (the removal
  // listener sees kEvicted; counters().evictions counts them). Gets and puts
  // go on meanwhile: a put into a shard not yet resized still sees the old
  // share. The frequency sketch and the adaptive policy's shadow
  // simulations keep the sizes chosen at construction (growing far beyond
  // the first bound makes admission less precise). Concurrent calls are
  // applied one after the other. kInvalidArgument, nothing changed, when
  // bound is 0 or smaller than shard_count() (each shard holds at least one
  // unit). O(shards + evicted).
  absl::Status set_capacity(std::uint64_t bound) override;

  // capacity: the bound now (max_entries, or max_weight when weighted).
  std::uint64_t capacity() const { return capacity_.load(std::memory_order_relaxed); }

 private:
  using Hooks = internal::LocalHooks;
  using Payload = internal::LocalPayload<K, V>;
  using Slab = internal::NodeSlab<Hooks, Payload>;
  static constexpr std::uint32_t kNoId = internal::ConcurrentIdTable::kNone;
  static constexpr std::uint32_t kMaxIds = internal::ConcurrentIdTable::kMaxIds;
  // Retired nodes are reclaimed once this many wait (or at every cleanup()).
  // Each reclamation attempt costs a membarrier system call (epoch.h).
  static constexpr std::size_t kReclaimBatch = 1024;
  static constexpr std::uint64_t kReclaimWeightShare = 32;
  // kNoTime: the clock was not read (maintain_locked then leaves the timer
  // wheel alone: it is empty).
  static constexpr std::int64_t kNoTime = std::numeric_limits<std::int64_t>::min();
  // A miss reads the clock for expiry once per this many of its thread's
  // misses (a power of two).
  static constexpr std::uint32_t kMissClockEvery = 8;
  // kNever: no due time (no entry can expire).
  static constexpr std::int64_t kNever = std::numeric_limits<std::int64_t>::max();
  // A write drains only its own thread's read-buffer stripe, and all of
  // them every kFullDrainEvery writes on the shard.
  static constexpr std::uint32_t kFullDrainEvery = 16;
  // kInPlace: entries are plain words, so put() on an existing key rewrites
  // the value in place behind a seqlock instead of building a new node.
  static constexpr bool kInPlace = std::is_trivially_copyable_v<Entry<V>> &&
                                   sizeof(Entry<V>) % 8 == 0 && alignof(Entry<V>) >= 8 &&
                                   sizeof(Entry<V>) <= 128;
  static constexpr std::size_t kSeqStripes = kInPlace ? 256 : 1;
  static constexpr std::size_t kEntryWords = (sizeof(Entry<V>) + 7) / 8;
  static constexpr std::uintptr_t kUpdateBit = 1;
  static_assert(alignof(Hooks) > kUpdateBit);

  struct Removal {
    K key;
    V value;
    RemovalCause cause;
  };
  using Removals = std::vector<Removal>;

  struct RetiredNode {
    std::uint64_t epoch;
    std::uint32_t id;
  };
  struct RetiredBlock {
    std::uint64_t epoch;
    void* block;
    void (*free)(void*);
  };

  // WheelNodes: the timer wheel's view of a shard's nodes by id.
  struct WheelNodes {
    const Slab* slab = nullptr;
    internal::TimerHook& hook(std::uint32_t id) const { return *slab->hooks(id); }
    std::int64_t deadline(std::uint32_t id) const {
      return internal::to_nanos(slab->payload(id)->entry.stale_until);
    }
  };

  struct alignas(internal::kCacheLine) Shard {
    Shard(internal::PolicyKind kind, std::uint64_t maximum, std::uint64_t expected,
          std::int64_t origin, std::uint64_t limit)
        : table(limit),
          slab(static_cast<std::uint32_t>(std::clamp<std::uint64_t>(expected / 8, 8, 256))),
          policy(kind, maximum, expected),
          wheel(origin, WheelNodes{&slab}) {}
    // Read without the lock (inside an epoch guard); written under it.
    internal::ConcurrentIdTable table;
    Slab slab;
    internal::ReadBuffer<Hooks> reads;
    // On a line of its own: every lock and unlock writes it, and on the
    // line of the table's array pointer (as it was) each write invalidated
    // the line every lock-free lookup reads first.
    alignas(internal::kCacheLine) mutable internal::Mutex mu;
    // Under the lock only.
    internal::EvictionPolicyCore policy ABSL_GUARDED_BY(mu);
    internal::TimerWheel<WheelNodes> wheel ABSL_GUARDED_BY(mu);
    std::vector<RetiredNode> retired ABSL_GUARDED_BY(mu);
    std::vector<RetiredBlock> blocks ABSL_GUARDED_BY(mu);
    std::uint32_t writes ABSL_GUARDED_BY(mu) = 0;
    // maintain_locked tries to reclaim when this many nodes are retired.
    std::size_t reclaim_at ABSL_GUARDED_BY(mu) = kReclaimBatch;
    // The weight retired since the last attempt (a weighted store also tries
    // once 1/kReclaimWeightShare of the shard's budget waits: retired values
    // are alive until reclaimed, and 1024 large ones would pass max_weight).
    std::uint64_t retired_weight ABSL_GUARDED_BY(mu) = 0;
    std::atomic<std::uint64_t> size{0}, weight{0}, evictions{0}, expirations{0};
    // The wheel's next due time (TimerWheel::next_due_ns), published by
    // maintain_locked; kNever while no entry can expire. Read by lookups
    // (on its own line: written at most once per wheel tick).
    alignas(internal::kCacheLine) std::atomic<std::int64_t> due{kNever};
    // Seqlocks of in-place updates (kInPlace), striped by node id: even when
    // no update is under way. Written under the lock, read by readers.
    alignas(internal::kCacheLine) std::array<std::atomic<std::uint32_t>, kSeqStripes> seq{};
  };

  // ShardLock: holds a shard's mutex; spins briefly with try_lock before
  // blocking, since critical sections are microseconds long and a futex
  // sleep and wake-up costs more than waiting them out.
  class ABSL_SCOPED_LOCKABLE ShardLock {
   public:
    explicit ShardLock(Shard& s) ABSL_EXCLUSIVE_LOCK_FUNCTION(s.mu) : mu_(s.mu) {
      for (int i = 0; i < kSpins; ++i) {
        if (mu_.try_lock()) return;
        relax();
      }
      mu_.lock();
    }
    ~ShardLock() ABSL_UNLOCK_FUNCTION() { mu_.unlock(); }
    ShardLock(const ShardLock&) = delete;
    ShardLock& operator=(const ShardLock&) = delete;

    static void relax() {
#if defined(__x86_64__) || defined(__i386__)
      __builtin_ia32_pause();
#endif
    }

   private:
    static constexpr int kSpins = 200;
    internal::Mutex& mu_;
  };

  bool weighted() const { return options_.max_weight > 0; }

  void validate() const;

  static internal::PolicyKind to_kind(EvictionPolicy p);

  // default_shards: a power of two near 2x the hardware threads (reads take
  // no lock, so shards only spread writers and drains; each shard costs a
  // frequency sketch and the policy's fixed-size shadows), but at least 256
  // bound units per shard so small stores keep one global policy.
  static std::size_t default_shards(std::uint64_t bound);

  std::uint64_t hash_of(const K& key) const {
    return internal::mix_hash(static_cast<std::uint64_t>(Hash{}(key)) ^ seed_);
  }
  Shard& shard_for(std::uint64_t h) const {
    const std::uint64_t hi = h >> 32;
    return *shards_[static_cast<std::size_t>((hi * shard_count_) >> 32)];
  }

  std::uint64_t weigh(const K& key, const V& value) const;

  // prefetch_policy: starts loading the sketch counters a write to this hash
  // will touch, before the lock is taken (so the misses overlap the lock and
  // the index probe). The policy reads only fields fixed at construction.
  static void prefetch_policy(const Shard& s, std::uint32_t h32) ABSL_NO_THREAD_SAFETY_ANALYSIS {
    s.policy.prefetch_hash(h32);
  }

  static bool expires(const Payload* n) { return n->entry.stale_until != TimePoint::max(); }

  // find: the id of key's node in s, or kNoId. Inside a guard or the lock.
  static std::uint32_t find(const Shard& s, std::uint32_t h32, const K& key) {
    return s.table.find(h32, [&](std::uint32_t id) { return Eq{}(s.slab.payload(id)->key, key); });
  }

  // read_entry: a consistent copy of a published node's entry (inside a
  // guard or the lock). With kInPlace a seqlock read: the words are loaded
  // atomically and the copy is retried if an update overlapped (odd or
  // changed sequence number). The writer makes the number odd, stores the
  // words with release, then stores the next even number with release.
  static Entry<V> read_entry(const Shard& s, std::uint32_t id);

  // update_in_place_locked: put() on the existing node id (kInPlace): the
  // entry's words are rewritten inside the node's seqlock; the node keeps
  // its links; the policy sees an update, the wheel the new deadline.
  void update_in_place_locked(Shard& s, std::uint32_t id, const Entry<V>& entry, std::uint64_t w,
                              Removals& removed) ABSL_EXCLUSIVE_LOCKS_REQUIRED(s.mu);

  // seq_begin: makes a seqlock stripe's number odd, claiming the stripe for
  // this writer, and returns the even number it had (the writer ends by
  // storing that + 2 with release). Writers under the shard's lock and
  // lock-free ones (try_update_unlocked) claim stripes alike, with a CAS; a
  // stripe is held for the few stores of one entry.
  static std::uint32_t seq_begin(std::atomic<std::uint32_t>& seq);

  // write_entry_words: stores entry over a published node's entry, word by
  // word with release (the caller holds the node's seqlock stripe).
  static void write_entry_words(Payload* n, const Entry<V>& entry);

  // try_update_unlocked: put() on a key that is present, without the
  // shard's lock, when nothing but the value and the policy's view change:
  // kInPlace, no removal listener (no kReplaced to report), no weigher (the
  // weight stays 1), and neither the old nor the new entry can expire (no
  // timer wheel work). Finds the node as a reader does, claims its seqlock
  // stripe, rewrites the entry, and hands the policy's part (on_update) to
  // the read buffer as an update record, replayed by the next drain in the
  // thread's order (Caffeine's write buffer, sharing the read buffer's
  // stripes). Returns false (nothing done) when the key is absent or the
  // case is not one of these: the caller takes the locked path.
  //
  // A concurrent removal under the lock (eviction, erase) may unpublish the
  // node between the lookup and the write: the write then lands in a
  // retired node (alive until the epoch guard is left) and is lost with it,
  // as if the put had come just before the removal. The buffered record
  // finds the node out of the policy (queue kNone) and is skipped.
  bool try_update_unlocked(Shard& s, std::uint32_t h32, const K& key, const Entry<V>& entry);

  // Update records in the read buffer: the node's hooks with the low bit
  // set (hooks are at least 8-byte aligned). A drain replays them as
  // on_update.
  static Hooks* as_update(Hooks* h) {
    // A tagged pointer, by design: NOLINTNEXTLINE(performance-no-int-to-ptr)
    return reinterpret_cast<Hooks*>(reinterpret_cast<std::uintptr_t>(h) | kUpdateBit);
  }
  static bool is_update(const Hooks* h) {
    return (reinterpret_cast<std::uintptr_t>(h) & kUpdateBit) != 0;
  }
  static Hooks* untagged(Hooks* h) {
    // NOLINTNEXTLINE(performance-no-int-to-ptr): see as_update
    return reinterpret_cast<Hooks*>(reinterpret_cast<std::uintptr_t>(h) & ~kUpdateBit);
  }

  static auto hash_of_id_fn(Shard& s) {
    return [&s](std::uint32_t id) { return static_cast<std::uint32_t>(s.slab.hooks(id)->hash); };
  }
  // retire_*_fn: callbacks that retire a replaced index array or slab
  // directory (readers may still be using it) until two epochs passed.
  static auto retire_array_fn(Shard& s) {
    return [&s](void* block) ABSL_NO_THREAD_SAFETY_ANALYSIS {
      s.blocks.push_back(
          {internal::Epoch::current(), block, &internal::ConcurrentIdTable::free_array});
    };
  }
  static auto retire_directory_fn(Shard& s) {
    return [&s](void* block) ABSL_NO_THREAD_SAFETY_ANALYSIS {
      s.blocks.push_back({internal::Epoch::current(), block, &Slab::free_directory});
    };
  }

  // lookup: get's work; with batch_now, the clock is read at most once over
  // the calls sharing *batch_now (kNoTime until first read).
  std::optional<Entry<V>> lookup(const K& key, std::int64_t* batch_now = nullptr);

  // last_miss: the hash of the calling thread's last missed key (any store
  // of this type; 0 after a put consumed it). Only a hint: a put whose key
  // matches goes straight to the locked path, which is always correct.
  static std::uint64_t& last_miss() {
    static thread_local std::uint64_t h = 0;
    return h;
  }

  // miss_tick: the calling thread's count of misses in shards that hold
  // expiring entries (all stores): a miss reads the clock for expiry only
  // once per kMissClockEvery (a clock read costs as much as the lookup).
  static std::uint32_t& miss_tick() {
    static thread_local std::uint32_t n = 0;
    return n;
  }

  // try_expire: the shard's wheel has work (its due time passed): advance it
  // unless the shard's lock is taken (then its holder does the work: every
  // critical section ends in maintain_locked). A reader never waits.
  void try_expire(Shard& s, std::int64_t now);

  // expire_on_read: a reader found key's entry expired; remove it (if it is
  // still that entry and still expired) under the lock.
  void expire_on_read(Shard& s, const K& key, std::uint64_t h);

  // try_maintain: a reader filled its stripe: drain the shard's buffers and
  // maintain it, unless another reader of this store is draining (at most
  // one at a time, as Caffeine's single maintenance task) or a writer holds
  // the shard's lock; then the reader goes on, its stripe stays full and
  // its next records are dropped (it retries after ReadBuffer::kRetryAfter
  // drops). A single thread is never refused, so it loses no record. Under
  // contention one thread does the policy work, for a sample of everyone's
  // accesses, and the others read at full speed.
  void try_maintain(Shard& s);

  // drain_for_write_locked: a writer's drain: its own thread's stripe (so a
  // single thread's accesses reach the policy in order), and every stripe
  // each kFullDrainEvery writes (the others' stripes are otherwise drained
  // by their readers when full: a write does not touch their lines).
  void drain_for_write_locked(Shard& s) ABSL_EXCLUSIVE_LOCKS_REQUIRED(s.mu) {
    drain_locked(s, ++s.writes % kFullDrainEvery == 0);
  }

  // drain_locked: replays recorded accesses of live nodes into the policy
  // (all stripes, or only the calling thread's).
  void drain_locked(Shard& s, bool all = true) ABSL_EXCLUSIVE_LOCKS_REQUIRED(s.mu);

  // evict_locked: the policy's evictions while the shard is over its bound
  // (each victim unpublished and reported as kEvicted).
  void evict_locked(Shard& s, Removals& removed) ABSL_EXCLUSIVE_LOCKS_REQUIRED(s.mu);

  // remove_locked: takes the node out of the policy, then everything else.
  void remove_locked(Shard& s, std::uint32_t id, RemovalCause cause, Removals& removed)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(s.mu) {
    s.policy.on_remove(s.slab.hooks(id));
    destroy_locked(s, id, cause, removed);
  }

  // destroy_locked: the node is already out of the policy; unpublishes it
  // (unless the caller did), unschedules it, copies key and value for the
  // listener, retires it.
  void destroy_locked(Shard& s, std::uint32_t id, RemovalCause cause, Removals& removed,
                      bool unpublished = false) ABSL_EXCLUSIVE_LOCKS_REQUIRED(s.mu);

  static void retire_node(Shard& s, std::uint32_t id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(s.mu) {
    s.retired.push_back({internal::Epoch::current(), id});
    s.retired_weight += s.slab.hooks(id)->weight;
  }

  static void destroy_payload(Payload* n) {
    n->key.~K();
    n->entry.~Entry<V>();
  }

  // maintain_locked: advances the wheel (expiring entries; not when now is
  // kNoTime), reclaims retired nodes and blocks no reader can hold,
  // publishes size, weight and the wheel's next due time; returns the latter.
  std::int64_t maintain_locked(Shard& s, std::int64_t now, Removals& removed,
                               bool force_reclaim = false) ABSL_EXCLUSIVE_LOCKS_REQUIRED(s.mu);

  // arm: makes sure scheduled maintenance runs by `due` (a shard's new due
  // time): schedules a run unless one is pending for an earlier instant.
  // Lock-free; called outside the shard's lock (the scheduler is user code).
  // No lost wake-up: a run first resets armed_at_, then reads every shard's
  // due time under its lock, so a put that found armed_at_ early enough
  // either published its due time before the run read it, or finds the
  // reset and schedules a run itself.
  void arm(std::int64_t due);

  // run_maintenance: a scheduled run (on the scheduler's thread): each shard
  // whose due time passed is maintained as by cleanup(), and its expired
  // entries' keys and values are destroyed now if no reader holds them (the
  // store may see no other call for a long time); then the next run is
  // armed for the earliest due time. O(shards + reclaimed).
  void run_maintenance();

  void reclaim_locked(Shard& s) ABSL_EXCLUSIVE_LOCKS_REQUIRED(s.mu);

  void notify(Removals& removed) {
    if (!listener_) return;
    for (const Removal& r : removed) listener_(r.key, r.value, r.cause);
  }

  // read_now: the instant reads check expiry against (internal::read_now:
  // coarse with the system clock, so a hit costs no precise clock read; an
  // entry may be returned up to one kernel tick past its stale_until).
  TimePoint read_now() const { return internal::read_now(*clock_, coarse_reads_); }

  LocalStoreOptions options_;
  std::shared_ptr<Clock> clock_;
  bool coarse_reads_;   // internal::is_system_clock(*clock_): reads use the coarse clock
  std::uint64_t seed_;  // LocalStoreOptions::hash_seed, or a random one
  Weigher weigher_;
  RemovalListener listener_;
  std::size_t shard_count_ = 1;
  std::vector<std::unique_ptr<Shard>> shards_;
  internal::ThreadCounter hits_, misses_;
  // Set while a reader drains a shard's read buffers (see try_maintain).
  struct alignas(internal::kCacheLine) DrainFlag {
    std::atomic<bool> flag{false};
  } draining_;
  // Scheduled maintenance (options_.maintenance), else null / unused: the
  // tether scheduled runs go through, and the earliest instant a run is
  // scheduled for (kNever: none).
  std::shared_ptr<internal::SchedulerTether> tether_;
  std::atomic<std::int64_t> armed_at_{kNever};
  // set_capacity: the bound now, and the lock that orders concurrent calls.
  std::atomic<std::uint64_t> capacity_{0};
  internal::Mutex resize_mu_;
};

}  // namespace larder

#include "larder/internal/local_store_impl.h"  // IWYU pragma: export

// The common <K, V> (std::string or std::int64_t keys, std::string values) are
// instantiated once in larder::core (src/core/instances_local_store.cc); other types are
// instantiated where they are used, as usual. Define LARDER_NO_EXTERN_TEMPLATES to instantiate them
// in your own files too, e.g. when those are built with a sanitizer the library was not built with.
#ifndef LARDER_NO_EXTERN_TEMPLATES
namespace larder {
extern template class LocalStore<std::string, std::string>;
extern template class LocalStore<std::int64_t, std::string>;
}  // namespace larder
#endif  // LARDER_NO_EXTERN_TEMPLATES

#endif  // LARDER_LOCAL_STORE_H_
