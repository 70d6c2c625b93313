// SPDX-License-Identifier: Apache-2.0
//
// Cache<K, V>: the policy core. Cache-aside reads with single-flight loading,
// TTL with jitter, stale-while-revalidate, refresh-ahead, stale-if-error,
// load_timeout, negative caching and batch loads, over any Store<K, V>;
// cache-aside, write-through and write-back writes; atomic read-modify-write
// (compute, merge) in every write mode.
//
// How it differs from the obvious cache-aside loop (get; on miss load; put):
//   * One load per key, however many callers miss it at once (single-flight),
//     and get_many() sends every missing key to ONE batch-loader call while
//     still sharing per-key loads with concurrent get_or_load() callers.
//   * Expiry is soft: an entry is fresh, then stale, then gone (store.h). A
//     stale entry is served at hit speed while one refresh runs in the
//     background on an Executor, and is the fallback when the loader fails.
//   * An invalidate() that races a load in flight wins: the load's value still
//     reaches the callers waiting for it, but is not stored after the
//     invalidate (no stale resurrection).
//   * No exception from a loader escapes; every failure is an absl::Status.
//   * Write-back does not lose acknowledged writes to eviction (a dirty key
//     the store dropped is still read from, and written by, the write-back)
//     nor, with write_back.journal, to a crash (the journal is replayed by the
//     next Cache on the same path).
//
// Thread-safety: every method may be called concurrently from any thread.
// A hit (fresh entry) costs one Store::get and one per-thread counter
// increment: no lock and no shared cache line besides the store's own. The
// cache reads no clock of its own for it when the store has one (LocalStore,
// RedisStore, TieredStore: they never return an entry past stale_until) and
// the entry has no stale span; with stale_while_revalidate, stale_if_error or
// refresh_ahead it reads one (a coarse one with the system clock, see
// read_now) to judge the entry.
// Loaders, batch loaders, Writer functions and callbacks are user code and
// never run under a larder lock; background refreshes run them on the
// Executor's threads. Everything a loader captures by reference must outlive
// the Cache (the destructor waits for background work that has started and
// cancels work still queued).
//
// Example (local_cache.h; redis/tiered_cache.h for the two-tier form):
//
//   auto users = larder::make_local_cache<int, User>(
//       {.max_entries = 100'000},
//       {.ttl = std::chrono::seconds(30), .stale_while_revalidate = std::chrono::seconds(30),
//        .loader = [&](int id) { return db.load_user(id); }});
//   absl::StatusOr<User> u = users.get(42);
//   auto some = users.get_many({1, 2, 3});         // one batch; failures per key
//   auto rows = users.get_many_aligned(ids);       // the same, rows[i] is ids[i]'s
//   (void)users.merge(42, User{.visits = 1}, add_visits);   // atomic read-modify-write
//
// ---------------------------------------------------------------------------
// Implementation: internal/cache_core.h (CacheCore, the shared_ptr-owned core,
// and a map of its parts, each with its own design notes): freshness.h (ages
// and what a read does), loads.h (single-flight loads, fallbacks, get_many's
// steps), refresher.h (background refreshes and their back-off), writes.h
// (invalidation, per-key turns, write-back), recovery.h (drops the store
// could not apply: auto-recovery), task_gate.h (background tasks vs ~Cache),
// invoke.h (user code and exceptions). The options are in cache_options.h,
// GetManyResult and GetManyAlignedResult in get_many_result.h, and Cache's
// longer member definitions in internal/cache_impl.h (all three included
// here).
#ifndef LARDER_CACHE_H_
#define LARDER_CACHE_H_

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <memory>
#include <optional>
#include <ranges>
#include <span>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "larder/cache_options.h"
#include "larder/clock.h"
#include "larder/executor.h"
#include "larder/get_many_result.h"
#include "larder/internal/cache_core.h"
#include "larder/load_guard.h"
#include "larder/scheduler.h"
#include "larder/stats.h"
#include "larder/store.h"
#include "larder/writer.h"

namespace larder {

namespace internal {
// CacheTestPeer: tests reach the write-back through it (no test-only public
// methods). Defined by tests.
struct CacheTestPeer;
struct CacheMetricsPeer;  // metrics.h
}  // namespace internal

// Cache: see the file comment.
template <class K, class V>
class Cache {
 public:
  using Map = absl::flat_hash_map<K, V>;
  using key_type = K;
  using mapped_type = V;

  // Throws std::invalid_argument, naming the field, when store is null or an
  // option is out of range or inconsistent ("write_mode = kWriteBack needs
  // writer.write"; a write_back.journal for a K or V without larder::Codec;
  // options.clock set while the store reads another clock);
  // std::runtime_error when the write-back journal cannot be opened (I/O).
  // With a journal, every record left by an earlier Cache on the same path is
  // replayed: its keys are dirty (and readable) at once and the flusher
  // writes them through the Writer. make_local_cache (local_cache.h) and
  // make_tiered_cache (redis/tiered_cache.h) build the store too.
  explicit Cache(std::shared_ptr<Store<K, V>> store, CacheOptions<K, V> options = {});

  // kWriteBack: drains first: flushes every dirty key (up to 3 attempts,
  // pausing the retry backoff in real time between them), stops the flusher,
  // and reports keys it could not write to write_back.on_error (kAborted;
  // with a journal they stay in it for the next Cache on the path; with
  // nothing left the journal segments are deleted; the empty <path>.lock
  // stays). Then waits for background refreshes already running and cancels
  // queued ones.
  ~Cache() { shut_down(); }

  // Movable: the moved-from Cache may only be destroyed or assigned to.
  // Moving is not thread-safe against calls on either Cache. Assigning shuts
  // the target's old cache down first (as its destructor would).
  Cache(Cache&& other) noexcept = default;
  Cache& operator=(Cache&& other) noexcept;
  Cache(const Cache&) = delete;
  Cache& operator=(const Cache&) = delete;

  // get: get_or_load(key, options.loader) (the loader bound at construction).
  // kFailedPrecondition when neither loader nor batch_loader was given.
  absl::StatusOr<V> get(const K& key) {
    if (!core_->options().loader) return no_loader("get(key)", "loader");
    return core_->get_or_load(key, core_->options().loader);
  }

  // get_or_load: key's value. kWriteBack: a key not yet written is answered
  // from the write-back (its newest put, or NotFound for a pending erase)
  // even when the store evicted it; its loader is not called. Fresh: returned at once. Stale within
  // stale_while_revalidate (or past the refresh-ahead point): returned at once
  // and one background refresh starts. Otherwise one loader call for all
  // concurrent callers of key; its value is stored and returned to each.
  // loader: (const K&) -> V | absl::StatusOr<V>; may throw (kInternal with
  // what()); must be copyable. Errors: the loader's Status (kNotFound is
  // remembered for negative.ttl when set); with a stale value inside
  // stale_if_error, the stale value instead of the error. A store that fails
  // is counted (store_errors) and bypassed.
  template <class Loader>
  absl::StatusOr<V> get_or_load(const K& key, Loader&& loader) {
    return core_->get_or_load(key, loader);
  }

  // get_if_present: the value when the store holds key fresh, or stale within
  // stale_while_revalidate (no refresh starts: there is no loader); nullopt
  // otherwise, also when the store fails. kWriteBack: a dirty key's pending
  // value (nullopt for a pending erase), whether or not the store kept it.
  std::optional<V> get_if_present(const K& key) { return core_->get_if_present(key); }

  // get_many: the values for keys, any range of K (a vector, a span, an
  // initializer list; duplicates allowed). Hits come from one
  // Store::get_many; every key needing a load that is not already loading goes
  // to ONE load(missing) call; keys already loading (by get_or_load or another
  // get_many) are awaited. Keys load() does not return are absent from the
  // result (and treated as NotFound). Stale keys are served and refreshed in
  // one background batch call. A key that fails (its load failed and it has
  // no stale fallback) is reported in result.errors(); the other keys keep
  // their values (see GetManyResult). With a load_guard, each key to load is
  // guarded: the keys this process wins go to the one batch call (leases
  // released after the values are stored); keys another process holds are
  // waited for afterwards (one shared LoadGuard::wait() deadline), and those
  // it does not deliver in time are loaded here in a second batch call. With
  // load_timeout, when some key to load has a stale value to fall back on,
  // the batch runs on the executor and those keys get their stale values
  // once load_timeout passes (the batch goes on and is stored); the others
  // wait for it.
  // load: (std::span<const K> missing) -> Map | absl::StatusOr<Map>.
  template <class Keys, class BatchLoader>
  requires std::ranges::input_range<const Keys&> GetManyResult<K, V> get_many(const Keys& keys,
                                                                              BatchLoader&& load) {
    return with_span(keys, [&](std::span<const K> s) { return core_->get_many(s, load); });
  }
  template <class BatchLoader>
  GetManyResult<K, V> get_many(std::initializer_list<K> keys, BatchLoader&& load) {
    return core_->get_many(std::span<const K>(keys.begin(), keys.size()), load);
  }

  // get_many (bound): with options.batch_loader as above; without it, each
  // key through options.loader (get(key), one after the other).
  // kFailedPrecondition (for every key) when neither was given.
  template <class Keys>
  requires std::ranges::input_range<const Keys&> GetManyResult<K, V> get_many(const Keys& keys) {
    return with_span(keys, [&](std::span<const K> s) { return get_many_bound(s); });
  }
  GetManyResult<K, V> get_many(std::initializer_list<K> keys) {
    return get_many_bound(std::span<const K>(keys.begin(), keys.size()));
  }

  // get_many_aligned: get_many with the answer in the order of the keys:
  // result[i] is keys[i]'s value, or nullopt when it has none (absent, or its
  // load failed: result.errors() lists the failed slots). Loads, refreshes,
  // single-flight and errors as for get_many; the difference is the shape.
  // It builds no map: a batch of hits costs one vector, with every value
  // moved from the store's answer into its slot, where get_many copies each
  // key into its result map (a hash and an insert per key). Prefer it when
  // the caller walks its own keys in order (rendering a list, a join) rather
  // than looking keys up.
  template <class Keys, class BatchLoader>
  requires std::ranges::input_range<const Keys&> GetManyAlignedResult<V> get_many_aligned(
      const Keys& keys, BatchLoader&& load) {
    return with_span(keys, [&](std::span<const K> s) { return core_->get_many_aligned(s, load); });
  }
  template <class BatchLoader>
  GetManyAlignedResult<V> get_many_aligned(std::initializer_list<K> keys, BatchLoader&& load) {
    return core_->get_many_aligned(std::span<const K>(keys.begin(), keys.size()), load);
  }
  // get_many_aligned (bound): with options.batch_loader or options.loader,
  // as get_many (bound).
  template <class Keys>
  requires std::ranges::input_range<const Keys&> GetManyAlignedResult<V> get_many_aligned(
      const Keys& keys) {
    return with_span(keys, [&](std::span<const K> s) { return get_many_aligned_bound(s); });
  }
  GetManyAlignedResult<V> get_many_aligned(std::initializer_list<K> keys) {
    return get_many_aligned_bound(std::span<const K>(keys.begin(), keys.size()));
  }

  // refresh: loads key now with the bound loader (even when a fresh value is
  // cached), stores the result and returns it; a load of key already in
  // flight is joined instead. Forgets a remembered NotFound first. The
  // cached value is served to readers meanwhile. kWriteBack: a dirty key is
  // not loaded (its pending value is the newest); its pending value is
  // returned. kFailedPrecondition without a bound loader.
  absl::StatusOr<V> refresh(const K& key) {
    if (!core_->options().loader) return no_loader("refresh(key)", "loader");
    return core_->refresh(key, core_->options().loader);
  }

  // put: honours write_mode. A load of key in flight will not overwrite value.
  //   kNone: caches value; the store's error if it failed (the old copy's
  //     drop is then deferred, as for every mode).
  //   kWriteThrough: writer.write first; on failure returns its error and
  //     leaves the cache as it was; then the store. Once the Writer has
  //     succeeded, put returns OK even when the store fails: the old copy's
  //     drop is deferred (see "Auto-recovery" in the notes; counted in
  //     CacheStats::invalidations_deferred), never reported as a failed
  //     write. Puts and erases of one key are serialised (each waits for the
  //     previous one's Writer call and store update; no lock is held
  //     meanwhile), so the cache ends with the value the system of record got
  //     last. Cost: the Writer call.
  //   kWriteBack: marks key dirty with value (with a journal: appended, and
  //     durable per write_back.fsync, before put returns), then caches it;
  //     the Writer is called later by the flusher. Errors: kResourceExhausted
  //     when write_back.max_dirty keys stayed dirty for write_back.wait
  //     (backpressure; nothing changed); the journal's kDataLoss (the value
  //     may still be written but is not crash-safe; the cached copy is
  //     dropped, reads still see the value); kFailedPrecondition while the
  //     cache is being destroyed. Once acknowledged, a store failure is not
  //     an error (the drop is deferred, as for kWriteThrough). Cost
  //     (bench/write_bench, 2 cores): p50
  //     0.25 us without a journal; about 1.3 us with one under kNever or
  //     kEveryInterval; an fdatasync (shared by concurrent puts) under
  //     kEveryWrite, about 145 us on the benchmark disk.
  // A Writer that calls put/erase of the key it is writing, on the thread
  // that called it, gets kFailedPrecondition for that inner call (waiting
  // would deadlock) and nothing changes.
  absl::Status put(const K& key, V value) { return core_->put(key, std::move(value)); }

  // put_many: put() of each (key, value) pair, in order (any range of pairs,
  // or an initializer list); every pair is tried; the first error is returned.
  template <class Pairs>
  requires std::ranges::input_range<const Pairs&> absl::Status put_many(const Pairs& pairs) {
    absl::Status first;
    for (const auto& [k, v] : pairs) keep_first(first, put(k, v));
    return first;
  }
  absl::Status put_many(std::initializer_list<std::pair<K, V>> pairs) {
    return put_many(std::span<const std::pair<K, V>>(pairs.begin(), pairs.size()));
  }

  // compute: an atomic read-modify-write of key, in every write mode. fn:
  // (std::optional<V> current) -> std::optional<V> (nullopt: erase the key);
  // it may throw (kInternal, nothing changed). current is the cached value,
  // the write-back's pending one, or (with a bound loader) the loaded one;
  // nullopt when the key has none. The result is written as put() (or
  // erase()) would, honouring write_mode; returns it. Atomic against every
  // other compute/merge/put/erase of key on this Cache in kWriteThrough and
  // kWriteBack, and against other compute/merge of key in kNone (a plain put
  // there is not ordered against it): they wait for its turn, so N threads
  // merging +1 sum exactly. Not atomic across processes: give the Writer a
  // versioned update for that. fn runs under no larder lock but holds key's
  // turn: it must not call put/erase/compute of key itself
  // (kFailedPrecondition). Errors: the read's (not NotFound) or the write's.
  template <class Fn>
  absl::StatusOr<std::optional<V>> compute(const K& key, Fn&& fn) {
    return core_->compute(key, fn);
  }

  // merge: compute(key) with fn(current, delta) when key has a value, delta
  // otherwise: the counter idiom, `views.merge(id, 1, std::plus<>())`.
  // fn: (const V& current, const V& delta) -> V. Returns the new value.
  template <class Fn>
  absl::StatusOr<V> merge(const K& key, V delta, Fn&& fn);

  // invalidate: drops key from the cache; a load of key in flight is not
  // stored after it. Errors: the store's; the drop is then deferred (this
  // process does not serve key from the store until it is re-applied, see
  // "Auto-recovery" in the notes), so a retry is harmless but not needed.
  // kWriteBack: a dirty key's pending write is NOT cancelled (use erase for
  // that): it still goes to the system of record, and reads go on returning
  // it until it is written (they never load the older value the system of
  // record holds meanwhile).
  absl::Status invalidate(const K& key) { return core_->invalidate(key); }

  // invalidate_many: invalidate() of each key (any range, or an initializer
  // list); every key is tried; the first error is returned.
  template <class Keys>
  requires std::ranges::input_range<const Keys&> absl::Status invalidate_many(const Keys& keys) {
    absl::Status first;
    for (const K& k : keys) keep_first(first, invalidate(k));
    return first;
  }
  absl::Status invalidate_many(std::initializer_list<K> keys) {
    return invalidate_many(std::span<const K>(keys.begin(), keys.size()));
  }

  // invalidate_all: drops everything (Store::clear); loads in flight are not
  // stored after it. kUnimplemented when the store cannot clear.
  absl::Status invalidate_all() { return core_->invalidate_all(); }

  // erase: deletes key from the system of record through writer.erase (when
  // set), then from the cache. On a writer error nothing is dropped. Once
  // the writer succeeded, a store failure is not an error (the drop is
  // deferred, as for put).
  // Without writer.erase: the same as invalidate (in every mode).
  // kWriteBack: queues the delete behind every earlier put of key (the
  // flusher calls writer.erase), then drops the cached copy; until the delete
  // is written, reads of key answer NotFound (get_or_load does not call the
  // loader), nullopt, or leave it out (get_many). Errors as for put.
  absl::Status erase(const K& key) { return core_->erase(key); }

  // flush: kWriteBack: returns OK once every put and erase acknowledged before
  // the call is in the system of record; otherwise the Writer's error from the
  // one attempt it made per key (retry/backoff delays are waived; failing keys
  // stay dirty). Puts may run concurrently; they are not waited for. OK at
  // once in the other write modes. Must not be called from the Writer or
  // on_error.
  absl::Status flush() { return core_->flush(); }

  // stats: a snapshot of the counters (stats.h). O(stripes); lock-free.
  // stats().since(earlier) is the change between two snapshots.
  CacheStats stats() const { return core_->stats(); }

  // estimated_size: entries the store holds now (StoreCounters::size: exact
  // for a LocalStore, best effort for remote stores; a TieredStore's L1).
  std::uint64_t estimated_size() const { return core_->estimated_size(); }

  // set_capacity: resizes the store at runtime (Store::set_capacity): for a
  // LocalStore, its max_entries (max_weight when weighted), evicting down to
  // it at once (counted in stats().evictions; the store's removal listener
  // sees them). kUnimplemented for a store without a bound of its own;
  // kInvalidArgument (nothing changed) for a bound the store refuses.
  absl::Status set_capacity(std::uint64_t bound) { return core_->set_capacity(bound); }

  // options: as given to the constructor, with the clock and executor the
  // cache uses filled in (and loader filled in from batch_loader when only
  // that was given).
  CacheOptions<K, V> options() const {
    CacheOptions<K, V> o = core_->options();
    o.executor = executor_;
    return o;
  }

  // executor: where this cache runs background work.
  const std::shared_ptr<Executor>& executor() const { return executor_; }

  // clock: the clock this cache (and its store) reads.
  const std::shared_ptr<Clock>& clock() const { return core_->options().clock; }

 private:
  friend struct internal::CacheTestPeer;
  friend struct internal::CacheMetricsPeer;

  void shut_down();

  static void keep_first(absl::Status& first, absl::Status s) {
    if (!s.ok() && first.ok()) first = std::move(s);
  }

  static absl::Status no_loader(const char* call, const char* field) {
    return absl::FailedPreconditionError(std::string("Cache::") + call + " needs CacheOptions::" +
                                         field + " (or use the per-call loader overload)");
  }

  // with_span: keys as a contiguous span of K (copied when they are not one).
  template <class Keys, class Fn>
  static std::invoke_result_t<Fn&, std::span<const K>> with_span(const Keys& keys, Fn&& fn);

  GetManyResult<K, V> get_many_bound(std::span<const K> keys);
  GetManyAlignedResult<V> get_many_aligned_bound(std::span<const K> keys);

  // resolve_clock: "set the clock once": the store's clock when options has
  // none; a clock that differs from the store's is refused.
  static void resolve_clock(const std::shared_ptr<Store<K, V>>& store, CacheOptions<K, V>& o);

  // bind_loaders: without loader but with batch_loader, get(key) asks the
  // batch loader for the one key.
  static void bind_loaders(CacheOptions<K, V>& o);

  // The Cache, not the core, owns the executor: queued tasks keep the core
  // alive, and if the core owned the only reference to a ThreadPoolExecutor,
  // the task dropping the core last would destroy the pool on one of its own
  // threads (a self-join). Declared before core_, destroyed after it.
  std::shared_ptr<Executor> executor_;
  std::shared_ptr<internal::CacheCore<K, V>> core_;
};

}  // namespace larder

#include "larder/internal/cache_impl.h"  // IWYU pragma: export

#endif  // LARDER_CACHE_H_
