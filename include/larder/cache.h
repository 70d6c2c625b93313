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
// A hit (fresh entry) costs one clock read (a coarse one with the system
// clock, see read_now), one Store::get and one striped counter increment: no
// lock and no shared cache line besides the store's own.
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
//   (void)users.merge(42, User{.visits = 1}, add_visits);   // atomic read-modify-write
//
// ---------------------------------------------------------------------------
// Implementation: internal/cache_core.h (CacheCore, the shared_ptr-owned core,
// and a map of its parts, each with its own design notes): freshness.h (ages
// and what a read does), loads.h (single-flight loads, fallbacks, get_many's
// steps), refresher.h (background refreshes and their back-off), writes.h
// (invalidation, per-key turns, write-back), recovery.h (drops the store
// could not apply: auto-recovery), task_gate.h (background tasks vs ~Cache),
// invoke.h (user code and exceptions).
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
#include "larder/clock.h"
#include "larder/executor.h"
#include "larder/internal/cache_core.h"
#include "larder/load_guard.h"
#include "larder/scheduler.h"
#include "larder/stats.h"
#include "larder/store.h"
#include "larder/writer.h"

namespace larder {

// FsyncPolicy: when the write-back journal forces its records to disk
// (WriteBackOptions::fsync). What an acknowledged put survives:
//
//   policy          process crash (SIGKILL, abort)   machine crash (power loss, panic)
//   kEveryWrite     yes                              yes: fdatasync before put returns
//                                                    (group commit: concurrent puts share one)
//   kEveryInterval  yes                              all but the last fsync_interval
//   kNever          yes                              whatever the OS had written back
using FsyncPolicy = internal::FsyncPolicy;

// WriteBackOptions: CacheOptions::write_back, used by WriteMode::kWriteBack
// only. A plain aggregate; fields in order of how often they are set.
template <class K>
struct WriteBackOptions {
  // Longest time (Clock time) a key stays dirty before the flusher writes it.
  // 0: as soon as the flusher gets to it.
  std::chrono::milliseconds delay{100};
  // Journal path prefix (files "<path>.NNNNNNNNNNNN" in an existing
  // directory); every put is appended before it returns, and the journal is
  // replayed through the Writer at construction. Needs larder::Codec<K> and
  // larder::Codec<V>. Empty: no journal (acknowledged puts not yet written
  // are lost if the process dies). One Cache per path: the constructor throws
  // std::runtime_error if another (in any process) has it open ("<path>.lock"
  // is flock'ed). Replay after a crash is AT-LEAST-ONCE for the unflushed
  // window (puts written shortly before the crash may come back; checkpoints
  // bound them: with the defaults, at most 512 records when nothing was
  // dirty; see internal/write_back.h), so the Writer must be idempotent: a
  // versioned upsert ("... SET v = $2, version = $3 WHERE version < $3"),
  // never an increment ("SET n = n + $delta").
  std::string journal{};
  // With a journal: when appended records are forced to disk (see
  // FsyncPolicy above for what each survives).
  FsyncPolicy fsync = FsyncPolicy::kEveryWrite;
  // Most dirty keys; a put of a further key waits up to `wait`, then fails
  // with kResourceExhausted. Must be > 0.
  std::size_t max_dirty = 100'000;
  // How long (real time) a put waits for room when max_dirty keys are dirty,
  // before kResourceExhausted. 0: fail at once.
  std::chrono::milliseconds wait{1000};
  // Most keys per Writer::write (or Writer::erase) call. Must be > 0.
  std::size_t batch = 256;
  // Called on the flusher thread, under no lock, with the keys of every
  // failed Writer call and its error (the keys stay dirty and are retried),
  // and from ~Cache with keys it could not write (kAborted; with a journal
  // they are replayed by the next Cache on it). Must not call flush() or the
  // destructor. Failures are also counted (CacheStats::write_failures).
  // Null: counted only.
  std::function<void(std::span<const K>, const absl::Status&)> on_error = nullptr;
  // A failed Writer call is retried after retry_base * 2^(failures-1) (Clock
  // time), capped at retry_max, minus up to half of it at random (jitter).
  // retry_base must be > 0, retry_max >= retry_base.
  std::chrono::milliseconds retry_base{100};
  std::chrono::milliseconds retry_max{30'000};
  // fsync = kEveryInterval: real time between fdatasyncs. Must be > 0.
  std::chrono::milliseconds fsync_interval{1000};
  // The journal is a chain of segment files; the active one is sealed and a
  // new one started once it holds journal_segment_bytes (must be > 0), or
  // once its first record is journal_segment_age old (Clock time; 0: by size
  // only). Sealed segments whose records were all written are deleted.
  std::size_t journal_segment_bytes = std::size_t{64} << 20;
  std::chrono::milliseconds journal_segment_age{std::chrono::minutes(1)};
};

// NegativeCacheOptions: CacheOptions::negative: remembering that the loader
// found nothing, so a missing key does not reach the database on every call.
struct NegativeCacheOptions {
  // Remember a loader's NotFound this long (in this process). 0: off.
  std::chrono::milliseconds ttl{0};
  // Most keys remembered as NotFound at once; past it, new NotFound answers
  // are not remembered. Must be > 0 when ttl > 0.
  std::size_t max_entries = 10'000;
};

// CacheOptions: a plain aggregate; every field has a default (written out, so
// designated initializers that skip fields compile warning-free). Fields are
// in order of how often a service sets them; the write-back and
// negative-caching knobs are grouped in their own structs. Cache's
// constructor validates them and throws std::invalid_argument naming the
// field.
template <class K, class V>
struct CacheOptions {
  // Fresh this long after a load or put. Must be > 0.
  std::chrono::milliseconds ttl{std::chrono::minutes(1)};
  // After ttl, served stale this long while one background refresh runs.
  // 0: off (an entry past ttl is loaded in the caller).
  std::chrono::milliseconds stale_while_revalidate{0};
  // After ttl, kept this long as the answer when the loader fails. 0: off.
  std::chrono::milliseconds stale_if_error{0};
  // The bound loader, used by get(key) and, without batch_loader, by
  // get_many(keys) key by key: (const K&) -> V | absl::StatusOr<V>; may throw
  // (kInternal with what()). Null: get(key) is kFailedPrecondition; the
  // per-call get_or_load(key, loader) works either way. Without loader but
  // with batch_loader, get(key) calls batch_loader with the one key.
  std::function<absl::StatusOr<V>(const K&)> loader = nullptr;
  // The bound batch loader, used by get_many(keys): the keys to load ->
  // their values (keys it leaves out are NotFound).
  std::function<absl::StatusOr<absl::flat_hash_map<K, V>>(std::span<const K>)> batch_loader =
      nullptr;
  WriteMode write_mode = WriteMode::kNone;
  // kWriteThrough and kWriteBack need writer.write; erase() uses writer.erase
  // when set (without it, erase() only drops the key from the cache).
  Writer<K, V> writer{};
  // kWriteBack: delay, journal, backpressure, retries (see WriteBackOptions).
  WriteBackOptions<K> write_back{};
  // Negative caching (see NegativeCacheOptions). Off by default.
  NegativeCacheOptions negative{};
  // Each entry's ttl is ttl * (1 + u), u uniform in [-ttl_jitter, +ttl_jitter].
  // In [0, 1); 0: no jitter.
  double ttl_jitter = 0.0;
  // Past refresh_ahead * ttl, a hit also starts one background refresh.
  // In [0, 1); 0: off.
  double refresh_ahead = 0.0;
  // With a stale value to fall back on, a caller waits at most this long
  // (Clock time: a ManualClock must be advanced past it) for a load, then gets
  // the stale value; the load goes on in the background and its result is
  // stored. 0: off (wait for the load).
  std::chrono::milliseconds load_timeout{0};
  // Cross-process single-flight (load_guard.h). Null: in-process only.
  std::shared_ptr<LoadGuard<K>> load_guard = nullptr;
  // The time source, set once for the cache and its store. Null: the store's
  // clock (Store::clock()), or system_clock() when the store has none. Set
  // while the store reads another clock: the constructor throws
  // std::invalid_argument (make_local_cache / make_tiered_cache hand this
  // clock to the stores they build).
  std::shared_ptr<Clock> clock = nullptr;
  // Where background refreshes run. Null: default_executor().
  std::shared_ptr<Executor> executor = nullptr;
  // Called (on an Executor thread, under no lock) when a background refresh
  // fails; exceptions it throws are swallowed. Failures are also counted in
  // CacheStats::refresh_failures.
  std::function<void(const K&, const absl::Status&)> on_refresh_error = nullptr;
  // Stale-if-error: after a failed load was answered with the stale value, the
  // stale value is served as fresh this long (never past its stale_until)
  // before the loader is asked again, so a failing source is not hammered on
  // every call. Likewise after a background refresh failed: hits keep the
  // value they have and no new refresh of that key starts for this long.
  // 0: ask the loader on every call.
  std::chrono::milliseconds error_backoff{std::chrono::seconds(1)};
  // Most keys remembered one by one whose old copy the store could not drop
  // (see "Auto-recovery" in the notes above). Past it, every key is treated
  // as possibly stale until one Store::clear() succeeds. Must be > 0.
  std::size_t max_pending_invalidations = 10'000;
  // Where time-driven work runs when no call comes along: auto-recovery's
  // retries (see "Auto-recovery" above). It must read the same Clock as the
  // cache. null: default_scheduler() with the system clock; none with any
  // other clock (then calls drive the retries; tests may pass a
  // ManualScheduler instead).
  std::shared_ptr<Scheduler> scheduler = nullptr;
  // How late a store write that failed may still be applied by the store (a
  // SET that timed out in a stalled Redis or a slow network). A key whose
  // store write failed is not served from the store for this long, and its
  // old copy is dropped once when the store answers and once more after it,
  // so a late write cannot revive an old value for the rest of its ttl.
  // 0: no hold (a late write may then survive until its stale_until). Clock
  // time; must be >= 0.
  std::chrono::milliseconds late_write_window{std::chrono::seconds(2)};
  // Metrics (metrics.h): the cache's name, its cache="<name>" label (empty:
  // "default"); and whether latencies are recorded (load, store get/put
  // sampled, write-back flush, journal fsync). Counters and gauges are read
  // from the cache when metrics are collected and cost nothing here.
  std::string name{};
  bool record_latency = true;
};

// GetManyResult: what get_many returns: the values of every key that has one,
// and the error of each key that failed (NotFound is not an error: such a key
// is simply absent). A failing key does not cost the others their values.
// Shaped like absl::StatusOr<Map> (ok(), status(), *, ->, value()) so that
// `if (!r.ok()) return r.status();` reads as usual, but *r is the values
// found even when !ok().
template <class K, class V>
class GetManyResult {
 public:
  using Map = absl::flat_hash_map<K, V>;
  using Errors = absl::flat_hash_map<K, absl::Status>;

  GetManyResult() = default;
  GetManyResult(Map values, Errors errors, absl::Status first_error)
      : values_(std::move(values)), errors_(std::move(errors)), first_(std::move(first_error)) {}

  // ok: no key failed.
  bool ok() const { return first_.ok(); }
  // status: OK, or the first error met (errors() has each key's).
  const absl::Status& status() const { return first_; }
  // values: every key that has a value (with a stale fallback, the stale value).
  Map& value() & { return values_; }
  const Map& value() const& { return values_; }
  Map&& value() && { return std::move(values_); }
  Map& operator*() & { return values_; }
  const Map& operator*() const& { return values_; }
  Map&& operator*() && { return std::move(values_); }
  Map* operator->() { return &values_; }
  const Map* operator->() const { return &values_; }
  // errors: the keys that failed, each with its error.
  const Errors& errors() const { return errors_; }

  // As an absl::StatusOr<Map>: the values when no key failed, else the first
  // error (the values are dropped).
  operator absl::StatusOr<Map>() && {
    if (!first_.ok()) return first_;
    return std::move(values_);
  }

 private:
  Map values_;
  Errors errors_;
  absl::Status first_;
};

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
  explicit Cache(std::shared_ptr<Store<K, V>> store, CacheOptions<K, V> options = {})
      : executor_(options.executor ? options.executor : default_executor()) {
    resolve_clock(store, options);
    bind_loaders(options);
    core_ = std::make_shared<internal::CacheCore<K, V>>(std::move(store), std::move(options),
                                                        executor_.get());
  }

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
  Cache& operator=(Cache&& other) noexcept {
    if (this != &other) {
      shut_down();
      core_ = std::move(other.core_);
      executor_ = std::move(other.executor_);
    }
    return *this;
  }
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
  absl::StatusOr<V> merge(const K& key, V delta, Fn&& fn) {
    auto update = [&](std::optional<V> cur) -> std::optional<V> {
      if (!cur) return delta;
      return static_cast<V>(fn(std::as_const(*cur), std::as_const(delta)));
    };
    absl::StatusOr<std::optional<V>> r = core_->compute(key, update);
    if (!r.ok()) return r.status();
    return **std::move(r);
  }

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

  void shut_down() {
    if (!core_) return;
    core_->stop_write_back();
    core_->repair_now();
    core_->close();
    core_.reset();
  }

  static void keep_first(absl::Status& first, absl::Status s) {
    if (!s.ok() && first.ok()) first = std::move(s);
  }

  static absl::Status no_loader(const char* call, const char* field) {
    return absl::FailedPreconditionError(std::string("Cache::") + call + " needs CacheOptions::" +
                                         field + " (or use the per-call loader overload)");
  }

  // with_span: keys as a contiguous span of K (copied when they are not one).
  template <class Keys, class Fn>
  static GetManyResult<K, V> with_span(const Keys& keys, Fn&& fn) {
    if constexpr (std::ranges::contiguous_range<const Keys&> &&
                  std::is_same_v<std::ranges::range_value_t<const Keys&>, K>) {
      return fn(std::span<const K>(std::ranges::data(keys), std::ranges::size(keys)));
    } else {
      std::vector<K> v;
      if constexpr (std::ranges::sized_range<const Keys&>) v.reserve(std::ranges::size(keys));
      for (auto&& k : keys) v.emplace_back(k);
      return fn(std::span<const K>(v));
    }
  }

  GetManyResult<K, V> get_many_bound(std::span<const K> keys) {
    const CacheOptions<K, V>& o = core_->options();
    if (o.batch_loader) return core_->get_many(keys, o.batch_loader);
    Map values;
    typename GetManyResult<K, V>::Errors errors;
    absl::Status first;
    if (!o.loader) {
      first = no_loader("get_many(keys)", "batch_loader or loader");
      for (const K& k : keys) errors.emplace(k, first);
      return GetManyResult<K, V>(std::move(values), std::move(errors), std::move(first));
    }
    for (const K& k : keys) {
      if (values.contains(k) || errors.contains(k)) continue;
      absl::StatusOr<V> r = core_->get_or_load(k, o.loader);
      if (r.ok()) {
        values.emplace(k, *std::move(r));
      } else if (!absl::IsNotFound(r.status())) {
        keep_first(first, r.status());
        errors.emplace(k, r.status());
      }
    }
    return GetManyResult<K, V>(std::move(values), std::move(errors), std::move(first));
  }

  // resolve_clock: "set the clock once": the store's clock when options has
  // none; a clock that differs from the store's is refused.
  static void resolve_clock(const std::shared_ptr<Store<K, V>>& store, CacheOptions<K, V>& o) {
    if (!store) throw std::invalid_argument("store must not be null");
    std::shared_ptr<Clock> store_clock = store->clock();
    if (o.clock == nullptr) {
      o.clock = store_clock != nullptr ? std::move(store_clock) : system_clock();
    } else if (store_clock != nullptr && !same_clock(*o.clock, *store_clock)) {
      throw std::invalid_argument(
          "clock: CacheOptions::clock is not the clock the store reads (Store::clock()); set the "
          "clock once: leave CacheOptions::clock null to use the store's, or give the store "
          "(LocalStoreOptions / RedisOptions / TieredStoreOptions ::clock) the same clock");
    }
  }

  // bind_loaders: without loader but with batch_loader, get(key) asks the
  // batch loader for the one key.
  static void bind_loaders(CacheOptions<K, V>& o) {
    if (o.loader || !o.batch_loader) return;
    o.loader = [batch = o.batch_loader](const K& key) -> absl::StatusOr<V> {
      absl::StatusOr<Map> m = batch(std::span<const K>(&key, 1));
      if (!m.ok()) return m.status();
      auto it = m->find(key);
      if (it == m->end())
        return absl::NotFoundError("the batch loader returned no value for the key");
      return std::move(it->second);
    };
  }

  // The Cache, not the core, owns the executor: queued tasks keep the core
  // alive, and if the core owned the only reference to a ThreadPoolExecutor,
  // the task dropping the core last would destroy the pool on one of its own
  // threads (a self-join). Declared before core_, destroyed after it.
  std::shared_ptr<Executor> executor_;
  std::shared_ptr<internal::CacheCore<K, V>> core_;
};

}  // namespace larder

#endif  // LARDER_CACHE_H_
