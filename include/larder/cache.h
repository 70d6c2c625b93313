// SPDX-License-Identifier: Apache-2.0
//
// Cache<K, V>: the policy core. Cache-aside reads with single-flight loading,
// TTL with jitter, stale-while-revalidate, refresh-ahead, stale-if-error,
// load_timeout, negative caching and batch loads, over any Store<K, V>
// (DESIGN.md, "Read path"); cache-aside, write-through and write-back writes
// (DESIGN.md, "Write path").
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
//     nor, with write_back_journal, to a crash (the journal is replayed by the
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
// Example:
//
//   auto store = std::make_shared<larder::LocalStore<int, User>>();
//   larder::Cache<int, User> users(store, {.ttl = std::chrono::seconds(30),
//                                          .stale_while_revalidate = std::chrono::seconds(30)});
//   absl::StatusOr<User> u = users.get_or_load(42, [&](int id) { return db.load_user(id); });
//
// ---------------------------------------------------------------------------
// Implementation notes
//
// Ages and what a read does (fresh_until = written + ttl*(1 +- jitter),
// stale_until = fresh_until + max(swr, sie)):
//
//   written --[refresh-ahead point]-- fresh_until --(+swr)-- ... -- stale_until
//   | hit             | hit + refresh | stale hit + refresh | load; on error:
//                                                           | serve stale    | miss
//
//   The refresh-ahead point is fresh_until - (1 - refresh_ahead) * ttl.
//   "load; on error serve stale" exists only when stale_if_error > swr.
//   A failed refresh (not NotFound) pauses the key's refreshes for
//   error_backoff (a bounded key -> until map, consulted only once some
//   refresh failed): hits keep the value, the failing source gets one call
//   per key per back-off, not one per hit.
//
// Single-flight: every load and refresh of a key is a Flight in a sharded
// SingleFlight table (single_flight.h). The leader re-reads the store once
// after winning the flight (another leader may have published between this
// caller's store read and its join), so a herd costs exactly one loader call.
//
// Invalidation: invalidate/put/erase first *supersede* the key's flight in
// progress, then write the store. A flight publishes its result into the
// store only under its publish mutex and only if not superseded, so either
// the publish happened before the supersede (and the invalidate's store write
// follows it) or it never happens. invalidate_all supersedes every flight in
// progress, then clears the store. This is a per-flight generation: the
// flight's generation is "current" until a write to its key bumps it.
//
// Background work runs on the Executor and holds a shared_ptr to the
// internal CacheCore, so it never touches freed memory. ~Cache marks the core
// closed and waits for tasks already running; tasks that start later do
// nothing but release their flight.
//
// Writes. Every put/erase of a key in kWriteThrough and kWriteBack first
// takes the key's turn (internal/key_turns.h): a FIFO ticket per key, held
// across the system-of-record half (Writer::write, or WriteBehind::put, which
// fixes the order the flusher will write in) and the store half. Same-key
// writes are therefore applied to the system of record and to the store in
// one order, and the cache ends with the value the system of record got
// last. Alternatives rejected: a striped mutex across the Writer call (a
// larder lock around user code, and it stalls unrelated keys of the stripe);
// a per-key generation checked before the store update (it orders the store
// but lets two Writer calls of one key overlap, so the system of record's
// order is unknown).
//
// Write-back (kWriteBack) composes internal::WriteBehind (write_back.h: the
// dirty set, flusher, retries, backpressure, journal). put = turn, then
// WriteBehind::put (acknowledged: journaled; or refused, cache unchanged),
// then the store. Reads consult the dirty set BEFORE the store: the store may
// have evicted a dirty key, and between a put's two halves it still holds the
// older value. A clean key costs one lock-free filter probe
// (WriteBehind::may_be_dirty), so the hit path takes no write-back lock
// unless the key (or one sharing its filter slot) is dirty.
//
//   read(k):  dirty?  --yes-->  pending put: its value   pending erase: NotFound
//               | no
//               v
//             store -> (as above: fresh / stale / load)
//
// invalidate(k) drops only the cached copy; a pending write of k stays and
// reads keep answering it. erase(k) queues a delete behind k's earlier puts.
// ~Cache drains the write-back before it closes the core.
//
// Auto-recovery. A change (put in any mode, erase, invalidate, a refresh that
// found a different value) must drop or overwrite the store's old copy. When
// the store fails (Redis down, or stalled and applying the command later), the
// old copy may survive in Redis, and other instances' L1s never hear about it.
// The system of record already has the write, so put/erase in kWriteThrough
// and kWriteBack return OK; the key goes into a bounded set of pending
// invalidations (internal/pending_invalidations.h, max_pending_invalidations;
// counted in CacheStats::invalidations_deferred). While a key is pending this
// process never serves it from the store: reads treat it as a miss and load it.
// A repair task on the executor re-applies the drops with Store::erase_many
// (for a TieredStore that also re-publishes them on the bus), first as soon as
// any read or write sees something pending, then backing off from 50 ms to 1 s
// of the Clock while the store keeps failing; ~Cache makes one last attempt.
// With the system clock a process-wide wake-up thread (internal/wakeup_timer.h)
// also starts the repair at that pace when no call comes along, so the drop is
// re-applied within about a second of the store answering again (plus the
// store's own reconnect delay, e.g. RedisOptions::breaker_probe_interval).
// Past max_pending_invalidations keys (or after a failed invalidate_all) every
// key is treated as pending until one Store::clear() succeeds; with a store
// that cannot clear, those keys are served again and may be stale until their
// stale_until. What other instances see: while the store is down they cannot
// read it either; once it is back, they may read the old copy from it until
// this instance's repair runs (its next read or write, then at most the
// back-off), and TieredStore re-sends failed bus messages the same way.
// Loads and unchanged refreshes are fills (Store::fill), not changes: they
// are not announced on the bus, so a cold start does not empty every other
// instance's L1.
#ifndef LARDER_CACHE_H_
#define LARDER_CACHE_H_

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <span>
#include <stdexcept>
#include <string>
#include <thread>
#include <time.h>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/base/optimization.h"
#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "larder/clock.h"
#include "larder/executor.h"
#include "larder/internal/absl_compat.h"
#include "larder/internal/cache_negative.h"
#include "larder/internal/journal.h"
#include "larder/internal/key_turns.h"
#include "larder/internal/mutex.h"
#include "larder/internal/pending_invalidations.h"
#include "larder/internal/striped_counter.h"
#include "larder/internal/wakeup_timer.h"
#include "larder/internal/write_back.h"
#include "larder/load_guard.h"
#include "larder/single_flight.h"
#include "larder/stats.h"
#include "larder/store.h"
#include "larder/writer.h"

namespace larder {

// FsyncPolicy: when the write-back journal forces its records to disk
// (CacheOptions::write_back_fsync). What an acknowledged put survives:
//
//   policy          process crash (SIGKILL, abort)   machine crash (power loss, panic)
//   kEveryWrite     yes                              yes: fdatasync before put returns
//                                                    (group commit: concurrent puts share one)
//   kEveryInterval  yes                              all but the last write_back_fsync_interval
//   kNever          yes                              whatever the OS had written back
using FsyncPolicy = internal::FsyncPolicy;

// CacheOptions: a plain aggregate; every field has a default (written out, so
// designated initializers that skip fields compile warning-free). The first
// fields are API (API.md) in a fixed order; later ones are appended.
// Cache's constructor validates them and throws std::invalid_argument naming
// the field.
template <class K, class V>
struct CacheOptions {
  // Fresh this long after a load or put. Must be > 0.
  std::chrono::milliseconds ttl{std::chrono::minutes(1)};
  // After ttl, served stale this long while one background refresh runs.
  // 0: off (an entry past ttl is loaded in the caller).
  std::chrono::milliseconds stale_while_revalidate{0};
  // After ttl, kept this long as the answer when the loader fails. 0: off.
  std::chrono::milliseconds stale_if_error{0};
  // Each entry's ttl is ttl * (1 + u), u uniform in [-ttl_jitter, +ttl_jitter].
  // In [0, 1); 0: no jitter.
  double ttl_jitter = 0.0;
  // Past refresh_ahead * ttl, a hit also starts one background refresh.
  // In [0, 1); 0: off.
  double refresh_ahead = 0.0;
  // Remember a loader's NotFound this long (in this process). 0: off.
  std::chrono::milliseconds negative_ttl{0};
  // With a stale value to fall back on, a caller waits at most this long (real
  // time) for a load, then gets the stale value; the load goes on in the
  // background and its result is stored. 0: off (wait for the load).
  std::chrono::milliseconds load_timeout{0};
  WriteMode write_mode = WriteMode::kNone;
  // kWriteThrough and kWriteBack need writer.write; erase() uses writer.erase
  // when set (without it, erase() only drops the key from the cache).
  Writer<K, V> writer{};
  // kWriteBack: longest time (Clock time) a key stays dirty before the
  // flusher writes it. 0: as soon as the flusher gets to it.
  std::chrono::milliseconds write_back_delay{100};
  // kWriteBack: most keys per Writer::write (or Writer::erase) call. Must be > 0.
  std::size_t write_back_batch = 256;
  // kWriteBack: most dirty keys; a put of a further key waits up to
  // write_back_wait, then fails with kResourceExhausted. Must be > 0.
  std::size_t write_back_max_dirty = 100'000;
  // kWriteBack: journal path prefix (files "<path>.NNNNNNNNNNNN" in an
  // existing directory); every put is appended before it returns, and the
  // journal is replayed through the Writer at construction. Needs
  // larder::Codec<K> and larder::Codec<V>. Empty: no journal (acknowledged
  // puts not yet written are lost if the process dies). One Cache per path:
  // the constructor throws std::runtime_error if another (in any process)
  // has it open ("<path>.lock" is flock'ed).
  std::string write_back_journal{};
  std::shared_ptr<Clock> clock = nullptr;        // null: system_clock()
  std::shared_ptr<Executor> executor = nullptr;  // null: default_executor()
  // --- appended after the API fields ---
  // Cross-process single-flight (load_guard.h). Null: in-process only.
  std::shared_ptr<LoadGuard<K>> load_guard = nullptr;
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
  // Most keys remembered as NotFound at once (negative caching); past it, new
  // NotFound answers are not remembered.
  std::size_t negative_max_entries = 10'000;
  // kWriteBack with a journal: when appended records are forced to disk (see
  // FsyncPolicy above for what each survives). Default kEveryWrite.
  FsyncPolicy write_back_fsync = FsyncPolicy::kEveryWrite;
  // write_back_fsync = kEveryInterval: real time between fdatasyncs. Must be > 0.
  std::chrono::milliseconds write_back_fsync_interval{1000};
  // kWriteBack: how long (real time) a put waits for room when
  // write_back_max_dirty keys are dirty, before kResourceExhausted.
  // 0: fail at once.
  std::chrono::milliseconds write_back_wait{1000};
  // kWriteBack: a failed Writer call is retried after write_back_retry_base *
  // 2^(failures-1) (Clock time), capped at write_back_retry_max, minus up to
  // half of it at random (jitter). base must be > 0, max >= base.
  std::chrono::milliseconds write_back_retry_base{100};
  std::chrono::milliseconds write_back_retry_max{30'000};
  // kWriteBack: called on the flusher thread, under no lock, with the keys of
  // every failed Writer call and its error (the keys stay dirty and are
  // retried), and from ~Cache with keys it could not write (kAborted; with a
  // journal they are replayed by the next Cache on it). Must not call flush()
  // or the destructor. Failures are also counted (CacheStats::write_failures).
  // Null: counted only.
  std::function<void(std::span<const K>, const absl::Status&)> on_write_error = nullptr;
  // Most keys remembered one by one whose old copy the store could not drop
  // (see "Auto-recovery" in the notes above). Past it, every key is treated
  // as possibly stale until one Store::clear() succeeds. Must be > 0.
  std::size_t max_pending_invalidations = 10'000;
  // kWriteBack with a journal: the journal is a chain of segment files; the
  // active one is sealed and a new one started once it holds
  // write_back_journal_segment_bytes (must be > 0), or once its first record
  // is write_back_journal_segment_age old (Clock time; 0: by size only; must
  // be >= 0). Sealed segments whose records were all written are deleted.
  // Replay after a crash is AT-LEAST-ONCE for the unflushed window: every put
  // not yet written comes back, and so may puts written shortly before the
  // crash (checkpoints bound them: with the defaults, at most 512 records
  // when nothing was dirty; see internal/write_back.h). So the Writer must be
  // idempotent: a versioned upsert ("... SET v = $2, version = $3 WHERE
  // version < $3"), never an increment ("SET n = n + $delta").
  std::size_t write_back_journal_segment_bytes = std::size_t{64} << 20;
  std::chrono::milliseconds write_back_journal_segment_age{std::chrono::minutes(1)};
};

namespace internal {

// The cache's counters, striped so the hit path shares no cache line.
struct CacheCounters {
  StripedCounter hits, misses, stale_hits, loads, load_failures, coalesced, refreshes,
      store_errors, writes, write_failures, refreshes_dropped, refresh_failures,
      negative_hits, load_timeouts, invalidations_deferred, invalidations_reapplied;
};

inline absl::Status exception_status(std::string_view what, std::exception_ptr ep) {
  try {
    std::rethrow_exception(ep);
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat(av(what), " threw: ", e.what()));
  } catch (...) {
    return absl::InternalError(absl::StrCat(av(what), " threw a non-std::exception"));
  }
}

// invoke_loader: calls loader(key) and turns V / StatusOr<V> / a throw into
// StatusOr<V>.
template <class V, class K, class Loader>
absl::StatusOr<V> invoke_loader(Loader& loader, const K& key) {
  using R = std::invoke_result_t<Loader&, const K&>;
  try {
    if constexpr (std::is_same_v<std::decay_t<R>, absl::StatusOr<V>>) {
      return loader(key);
    } else {
      static_assert(std::is_convertible_v<R, V>,
                    "a Loader must return V or absl::StatusOr<V>");
      return absl::StatusOr<V>(V(loader(key)));
    }
  } catch (...) {
    return exception_status("loader", std::current_exception());
  }
}

// invoke_batch_loader: the same for a BatchLoader over a span of keys.
template <class K, class V, class BatchLoader>
absl::StatusOr<absl::flat_hash_map<K, V>> invoke_batch_loader(BatchLoader& load,
                                                              std::span<const K> keys) {
  using Map = absl::flat_hash_map<K, V>;
  using R = std::invoke_result_t<BatchLoader&, std::span<const K>>;
  try {
    if constexpr (std::is_same_v<std::decay_t<R>, absl::StatusOr<Map>>) {
      return load(keys);
    } else {
      static_assert(std::is_convertible_v<R, Map>,
                    "a BatchLoader must return absl::flat_hash_map<K, V> or "
                    "absl::StatusOr<absl::flat_hash_map<K, V>>");
      return absl::StatusOr<Map>(Map(load(keys)));
    }
  } catch (...) {
    return exception_status("batch loader", std::current_exception());
  }
}

// same_value: whether a refresh found the value the cache already had (then
// storing it is a fill, not a change: store.h). shared_ptr<const T> compares
// the pointees. A V that cannot be compared counts as unchanged.
template <class T>
struct IsSharedPtr : std::false_type {};
template <class T>
struct IsSharedPtr<std::shared_ptr<T>> : std::true_type {};

template <class V>
bool same_value(const V& a, const V& b) {
  if constexpr (IsSharedPtr<V>::value) {
    if constexpr (std::equality_comparable<typename V::element_type>) {
      return a == b || (a != nullptr && b != nullptr && *a == *b);
    } else {
      return a == b;
    }
  } else if constexpr (std::equality_comparable<V>) {
    return a == b;
  } else {
    return true;
  }
}

// CacheCore: all of Cache's state and logic, owned through a shared_ptr so
// that background tasks can keep it alive (see cache.h's notes).
template <class K, class V>
class CacheCore : public std::enable_shared_from_this<CacheCore<K, V>> {
 public:
  using Dur = TimePoint::duration;
  using Map = absl::flat_hash_map<K, V>;
  using FlightPtr = std::shared_ptr<Flight<V>>;

  // executor: owned by the Cache, not by the core (see Cache::executor_).
  CacheCore(std::shared_ptr<Store<K, V>> store, CacheOptions<K, V> options, Executor* executor)
      : store_(std::move(store)),
        opt_(std::move(options)),
        executor_(executor),
        pending_(std::max<std::size_t>(opt_.max_pending_invalidations, 1)) {
    opt_.executor = nullptr;
    validate();
    clock_ = clock_or_default(opt_.clock);
    coarse_ = dynamic_cast<SystemClock*>(clock_.get()) != nullptr;
    ttl_ = std::chrono::duration_cast<Dur>(opt_.ttl);
    swr_ = std::chrono::duration_cast<Dur>(opt_.stale_while_revalidate);
    sie_ = std::chrono::duration_cast<Dur>(opt_.stale_if_error);
    stale_span_ = std::max(swr_, sie_);
    refresh_window_ = Dur(static_cast<Dur::rep>(
        std::llround(static_cast<double>(ttl_.count()) * (1.0 - opt_.refresh_ahead))));
    load_timeout_ = std::chrono::duration_cast<Dur>(opt_.load_timeout);
    error_backoff_ = std::chrono::duration_cast<Dur>(opt_.error_backoff);
    negative_ttl_ = std::chrono::duration_cast<Dur>(opt_.negative_ttl);
    if (opt_.negative_ttl.count() > 0) {
      negative_ = std::make_unique<NegativeCache<K>>(opt_.negative_max_entries);
    }
    if (error_backoff_.count() > 0) {
      refresh_paused_ = std::make_unique<NegativeCache<K>>(
          std::max<std::size_t>(opt_.negative_max_entries, 1024));
    }
    if (opt_.write_mode != WriteMode::kNone) turns_ = std::make_unique<KeyTurns<K>>();
    if (opt_.write_mode == WriteMode::kWriteBack) {
      // Last: the flusher starts (and replays the journal) at once.
      wb_ = std::make_unique<WriteBehind<K, V>>(
          opt_.writer,
          WriteBehindOptions<K>{.delay = opt_.write_back_delay,
                                .max_batch = opt_.write_back_batch,
                                .max_dirty = opt_.write_back_max_dirty,
                                .backpressure_wait = opt_.write_back_wait,
                                .journal_path = opt_.write_back_journal,
                                .fsync = opt_.write_back_fsync,
                                .fsync_interval = opt_.write_back_fsync_interval,
                                .journal_segment_bytes = opt_.write_back_journal_segment_bytes,
                                .retry_base = opt_.write_back_retry_base,
                                .retry_max = opt_.write_back_retry_max,
                                .clock = clock_,
                                .on_error = opt_.on_write_error,
                                .journal_segment_age = opt_.write_back_journal_segment_age});
    }
  }

  // ---- reads ----

  template <class Loader>
  absl::StatusOr<V> get_or_load(const K& key, Loader& loader) {
    if (wb_ != nullptr) {
      if (std::optional<std::optional<V>> p = dirty_value(key)) {
        if (*p) return **std::move(p);
        return erased(key);
      }
    }
    const TimePoint now = read_now();
    if (ABSL_PREDICT_FALSE(pending_.any()) && suspect(key, now)) {
      return load_one(key, loader, std::nullopt, now);
    }
    absl::StatusOr<std::optional<Entry<V>>> got = store_->get(key);
    std::optional<Entry<V>> stale;
    if (ABSL_PREDICT_TRUE(got.ok())) {
      if (got->has_value()) {
        Entry<V>& e = **got;
        switch (classify(e, now)) {
          case Kind::kFresh:
            counters_.hits.add();
            return std::move(e.value);
          case Kind::kRefreshAhead:
            counters_.hits.add();
            start_refresh(key, loader, e, now);
            return std::move(e.value);
          case Kind::kStaleServe:
            counters_.stale_hits.add();
            start_refresh(key, loader, e, now);
            return std::move(e.value);
          case Kind::kStaleLoad:
            stale = std::move(e);
            break;
          case Kind::kExpired:
            break;
        }
      }
    } else {
      counters_.store_errors.add();  // degrade to the loader
    }
    return load_one(key, loader, std::move(stale), now);
  }

  std::optional<V> get_if_present(const K& key) {
    if (wb_ != nullptr) {
      if (std::optional<std::optional<V>> p = dirty_value(key)) return *std::move(p);
    }
    const TimePoint now = read_now();
    if (ABSL_PREDICT_FALSE(pending_.any()) && suspect(key, now)) {
      counters_.misses.add();
      return std::nullopt;
    }
    absl::StatusOr<std::optional<Entry<V>>> got = store_->get(key);
    if (!got.ok()) counters_.store_errors.add();
    if (got.ok() && got->has_value()) {
      switch (classify(**got, now)) {
        case Kind::kFresh:
        case Kind::kRefreshAhead:
          counters_.hits.add();
          return std::move((*got)->value);
        case Kind::kStaleServe:
          counters_.stale_hits.add();
          return std::move((*got)->value);
        default:
          break;
      }
    }
    counters_.misses.add();
    return std::nullopt;
  }

  template <class BatchLoader>
  absl::StatusOr<Map> get_many(std::span<const K> keys, BatchLoader& load) {
    Map out;
    std::vector<K> uniq;
    {
      absl::flat_hash_set<K> seen;
      seen.reserve(keys.size());
      uniq.reserve(keys.size());
      for (const K& k : keys) {
        if (!seen.insert(k).second) continue;
        if (wb_ != nullptr) {
          // Dirty keys are answered by the write-back (a pending erase: absent).
          if (std::optional<std::optional<V>> p = dirty_value(k)) {
            if (*p) out.emplace(k, **std::move(p));
            continue;
          }
        }
        uniq.push_back(k);
      }
    }
    if (uniq.empty()) return out;
    out.reserve(uniq.size());

    const TimePoint now = read_now();
    std::vector<std::optional<Entry<V>>> entries;
    {
      auto got = store_->get_many(std::span<const K>(uniq));
      if (got.ok() && got->size() == uniq.size()) {
        entries = *std::move(got);
      } else {
        counters_.store_errors.add();
        entries.resize(uniq.size());
      }
      forget_suspects(uniq, entries, now);
    }

    struct Need {
      std::size_t index;  // into uniq
      std::optional<Entry<V>> stale;
    };
    std::vector<Need> need;
    std::vector<std::pair<K, Entry<V>>> to_refresh;
    for (std::size_t i = 0; i < uniq.size(); ++i) {
      std::optional<Entry<V>>& e = entries[i];
      Kind kind = e ? classify(*e, now) : Kind::kExpired;
      switch (kind) {
        case Kind::kFresh:
          counters_.hits.add();
          out.emplace(uniq[i], std::move(e->value));
          break;
        case Kind::kRefreshAhead:
        case Kind::kStaleServe:
          if (kind == Kind::kRefreshAhead) {
            counters_.hits.add();
          } else {
            counters_.stale_hits.add();
          }
          to_refresh.emplace_back(uniq[i], *e);
          out.emplace(uniq[i], std::move(e->value));
          break;
        case Kind::kStaleLoad:
          need.push_back(Need{i, std::move(e)});
          break;
        case Kind::kExpired:
          need.push_back(Need{i, std::nullopt});
          break;
      }
    }
    if (!to_refresh.empty()) start_batch_refresh(std::move(to_refresh), load, now);
    if (need.empty()) return out;

    // Join or lead each missing key's flight.
    struct Led {
      std::size_t index;
      std::optional<Entry<V>> stale;
      FlightPtr flight;
    };
    std::vector<Led> mine, theirs;
    for (Need& n : need) {
      const K& k = uniq[n.index];
      if (negative_ && negative_->contains(k, now)) {
        counters_.negative_hits.add();
        continue;
      }
      counters_.misses.add();
      typename SingleFlight<K, V>::Joined j = flights_.join(k);
      if (j.leader) {
        mine.push_back(Led{n.index, std::move(n.stale), std::move(j.flight)});
      } else {
        counters_.coalesced.add();
        theirs.push_back(Led{n.index, std::move(n.stale), std::move(j.flight)});
      }
    }

    std::optional<absl::Status> first_error;
    auto fail = [&](const Led& l, const absl::Status& s) {
      if (s.code() != absl::StatusCode::kNotFound && can_fall_back(l.stale, clock_->now())) {
        counters_.stale_hits.add();
        out.insert_or_assign(uniq[l.index], l.stale->value);
      } else if (s.code() != absl::StatusCode::kNotFound && !first_error) {
        first_error = s;
      }
    };

    // Our own keys first (never wait on others while leading: no deadlock).
    if (!mine.empty()) {
      // Another leader may have published between our store read and our join.
      std::vector<K> ask;
      ask.reserve(mine.size());
      for (const Led& l : mine) ask.push_back(uniq[l.index]);
      {
        auto again = store_->get_many(std::span<const K>(ask));
        if (again.ok() && again->size() == ask.size()) {
          const TimePoint t = clock_->now();
          forget_suspects(ask, *again, t);
          std::vector<Led> still;
          std::vector<K> still_keys;
          for (std::size_t i = 0; i < mine.size(); ++i) {
            std::optional<Entry<V>>& e = (*again)[i];
            if (e && t < e->fresh_until) {
              flights_.finish(ask[i], mine[i].flight, e->value);
              out.insert_or_assign(ask[i], std::move(e->value));
            } else {
              still.push_back(std::move(mine[i]));
              still_keys.push_back(std::move(ask[i]));
            }
          }
          mine = std::move(still);
          ask = std::move(still_keys);
        }
      }
      // Cross-process single-flight: keys another process is loading are
      // waited for after our own batch (never while holding our leases).
      std::vector<std::unique_ptr<LoadLease>> leases;
      std::vector<Led> deferred;
      std::vector<K> deferred_keys;
      if (opt_.load_guard && !mine.empty()) {
        std::vector<Led> won;
        std::vector<K> won_keys;
        for (std::size_t i = 0; i < mine.size(); ++i) {
          absl::StatusOr<std::unique_ptr<LoadLease>> acquired = opt_.load_guard->try_acquire(ask[i]);
          if (acquired.ok() && *acquired == nullptr) {
            deferred.push_back(std::move(mine[i]));
            deferred_keys.push_back(std::move(ask[i]));
            continue;
          }
          if (acquired.ok()) {
            // The previous holder may have stored the value just before releasing.
            if (std::optional<V> v = fresh_in_store(ask[i])) {
              flights_.finish(ask[i], mine[i].flight, *v);
              out.insert_or_assign(ask[i], *std::move(v));
              continue;
            }
            leases.push_back(*std::move(acquired));
          }  // else the guard is down: load without it
          won.push_back(std::move(mine[i]));
          won_keys.push_back(std::move(ask[i]));
        }
        mine = std::move(won);
        ask = std::move(won_keys);
      }
      bool loaded_async = false;
      if (load_timeout_.count() > 0 && !mine.empty() &&
          std::any_of(mine.begin(), mine.end(), [](const Led& l) { return l.stale.has_value(); })) {
        // Some keys have a stale value to fall back on: load on the executor
        // and stop waiting for those at load_timeout (as get_or_load does).
        struct Job {
          std::vector<Led> mine;
          std::vector<K> ask;
          std::vector<std::unique_ptr<LoadLease>> leases;
        };
        // The job owns the leases: released by the task, after publishing.
        auto job = std::make_shared<Job>(Job{mine, ask, std::move(leases)});
        leases.clear();
        auto fn = std::make_shared<std::decay_t<BatchLoader>>(load);
        const bool queued = executor_->try_execute([self = this->shared_from_this(), fn, job] {
          if (!self->enter()) {
            for (std::size_t i = 0; i < job->mine.size(); ++i) {
              self->flights_.finish(job->ask[i], job->mine[i].flight,
                                    absl::CancelledError("the cache was destroyed"));
            }
            return;
          }
          Map ignored;
          auto no_fail = [](const Led&, const absl::Status&) {};
          self->load_batch(*fn, job->mine, job->ask, ignored, no_fail);
          job->leases.clear();  // after publishing
          self->leave();
        });
        if (queued) {
          loaded_async = true;
          const auto deadline = std::chrono::steady_clock::now() + load_timeout_;
          for (std::size_t i = 0; i < mine.size(); ++i) {
            absl::StatusOr<V> r = await(mine[i].flight, mine[i].stale, deadline);
            if (r.ok()) {
              out.insert_or_assign(ask[i], *std::move(r));
            } else if (r.status().code() != absl::StatusCode::kNotFound && !first_error) {
              first_error = r.status();
            }
          }
        } else {
          leases = std::move(job->leases);  // the executor is full: load here, without the timeout
        }
      }
      if (!loaded_async) load_batch(load, mine, ask, out, fail);
      leases.clear();  // after publishing: a waiting process then finds the values
      if (!deferred.empty()) {
        const TimePoint deadline = saturating_add(clock_->now(), opt_.load_guard->wait());
        std::vector<Led> late;
        std::vector<K> late_keys;
        for (std::size_t i = 0; i < deferred.size(); ++i) {
          std::unique_ptr<LoadLease> lease;
          if (std::optional<V> v = guard_wait(deferred_keys[i], &lease, deadline)) {
            flights_.finish(deferred_keys[i], deferred[i].flight, *v);
            out.insert_or_assign(deferred_keys[i], *std::move(v));
            continue;
          }
          if (lease) leases.push_back(std::move(lease));
          late.push_back(std::move(deferred[i]));
          late_keys.push_back(std::move(deferred_keys[i]));
        }
        load_batch(load, late, late_keys, out, fail);
        leases.clear();
      }
    }

    for (Led& l : theirs) {
      const absl::StatusOr<V>& r = l.flight->wait();
      if (r.ok()) {
        out.insert_or_assign(uniq[l.index], *r);
      } else {
        fail(l, detach_status(r.status()));
      }
    }
    if (first_error) return *std::move(first_error);
    return out;
  }

  // ---- writes ----

  absl::Status put(const K& key, V value) {
    switch (opt_.write_mode) {
      case WriteMode::kWriteThrough: {
        // The key's turn orders this put against other puts/erases of key:
        // their Writer calls never overlap, and the store sees them in the
        // order the system of record did. No lock is held while it waits or
        // while the Writer runs (key_turns.h).
        auto turn = turns_->acquire(key);
        if (!turn) return reentrant_write();
        const std::pair<K, V> kv(key, value);
        absl::Status s = call_writer(
            [&] { return opt_.writer.write(std::span<const std::pair<K, V>>(&kv, 1)); });
        if (!s.ok()) {
          counters_.write_failures.add();
          return s;  // the cache is left as it was
        }
        counters_.writes.add();
        return store_after_write(key, std::move(value));
      }
      case WriteMode::kWriteBack: {
        auto turn = turns_->acquire(key);
        if (!turn) return reentrant_write();
        absl::Status s = wb_->put(key, value);
        if (!s.ok()) {
          // kResourceExhausted (backpressure) and kFailedPrecondition
          // (shutting down): nothing changed. A journal error (kDataLoss) may
          // leave the value dirty (to be written, but not crash-safe): drop the
          // cached copy so the store cannot hold a value older than the
          // system of record will; reads are answered by the write-back.
          if (s.code() != absl::StatusCode::kResourceExhausted &&
              s.code() != absl::StatusCode::kFailedPrecondition) {
            (void)invalidate(key);
          }
          return s;
        }
        return store_after_write(key, std::move(value));
      }
      case WriteMode::kNone:
        break;
    }
    return put_local(key, std::move(value));
  }

  absl::Status erase(const K& key) {
    // Without writer.erase there is no delete to order: drop the cached copy
    // (in kWriteBack a pending put of key stays pending and is written).
    if (!opt_.writer.erase) return invalidate(key);
    if (opt_.write_mode == WriteMode::kWriteBack) {
      // Queued behind every earlier put of key (the flusher calls
      // writer.erase); a pending value can never be written after it.
      auto turn = turns_->acquire(key);
      if (!turn) return reentrant_write();
      absl::Status s = wb_->erase(key);
      if (!s.ok()) return s;  // nothing changed (see put)
      return drop_after_write(key);
    }
    std::optional<typename KeyTurns<K>::Turn> turn =
        turns_ ? turns_->acquire(key) : std::optional<typename KeyTurns<K>::Turn>();
    if (turns_ && !turn) return reentrant_write();
    if (opt_.writer.erase) {
      absl::Status s =
          call_writer([&] { return opt_.writer.erase(std::span<const K>(&key, 1)); });
      if (!s.ok()) {
        counters_.write_failures.add();
        return s;
      }
      counters_.writes.add();
    }
    return drop_after_write(key);
  }

  // reentrant_write: a put/erase of key from inside the Writer call that
  // holds key's turn (on this thread): waiting for the turn would wait for
  // itself forever.
  static absl::Status reentrant_write() {
    return absl::FailedPreconditionError(
        "Cache::put/erase of a key from inside the Writer call writing that key (on the same "
        "thread) would deadlock on the key's turn; nothing was changed");
  }

  // invalidate: drops key's cached copy. When the store fails, the drop is
  // deferred (auto-recovery): key is not served from the store until it is
  // re-applied, and the store's error is returned.
  absl::Status invalidate(const K& key) {
    flights_.supersede(key);
    if (negative_) negative_->erase(key);
    unpause_refresh(key);
    const auto mark = pending_.mark();
    absl::Status s = store_->erase(key);
    if (s.ok()) {
      pending_.settle(key, mark);
    } else {
      counters_.store_errors.add();
      defer(key);
    }
    return s;
  }

  absl::Status invalidate_all() {
    flights_.supersede_all();
    if (negative_) negative_->clear();
    if (refresh_paused_) refresh_paused_->clear();
    const auto mark = pending_.mark();
    absl::Status s = store_->clear();
    if (s.ok()) {
      pending_.settle_all(mark);
    } else if (s.code() != absl::StatusCode::kUnimplemented) {
      counters_.store_errors.add();
      counters_.invalidations_deferred.add();
      pending_.add_clear();
      wake_later();
    }
    return s;
  }

  // repair_now: re-applies deferred invalidations in the caller (~Cache's
  // last attempt). No-op when another repair is running.
  void repair_now() {
    if (!pending_.any() || !pending_.try_begin()) return;
    repair();
    pending_.end();
  }

  CacheStats stats() const {
    CacheStats st;
    st.hits = counters_.hits.load();
    st.misses = counters_.misses.load();
    st.stale_hits = counters_.stale_hits.load();
    st.loads = counters_.loads.load();
    st.load_failures = counters_.load_failures.load();
    st.coalesced = counters_.coalesced.load();
    st.refreshes = counters_.refreshes.load();
    const StoreCounters sc = store_->counters();
    st.evictions = sc.evictions;
    st.expirations = sc.expirations;
    st.store_errors = counters_.store_errors.load();
    st.writes = counters_.writes.load();
    st.write_failures = counters_.write_failures.load();
    if (wb_ != nullptr) {
      const WriteBehindStats w = wb_->stats();
      st.writes += w.writes;
      st.write_failures += w.write_failures;
      st.dirty = w.dirty;
      st.flushes = w.flushes;
      st.write_coalesced = w.coalesced;
      st.write_rejected = w.rejected;
      st.journal_replayed = w.replayed;
      st.journal_bad_tails = w.replay_torn + w.replay_corrupt;
    }
    st.refreshes_dropped = counters_.refreshes_dropped.load();
    st.refresh_failures = counters_.refresh_failures.load();
    st.negative_hits = counters_.negative_hits.load();
    st.load_timeouts = counters_.load_timeouts.load();
    st.invalidations_deferred = counters_.invalidations_deferred.load();
    st.invalidations_reapplied = counters_.invalidations_reapplied.load();
    st.invalidations_pending = pending_.size() + (pending_.clear_needed() ? 1 : 0);
    return st;
  }

  // close: background tasks that start from now on do nothing; returns once
  // the ones running have finished.
  void close() {
    MutexLock l(&task_mu_);
    closed_ = true;
    task_cv_.wait(l, [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(task_mu_) { return running_ == 0; });
  }

  // flush: the write-back's flush(); OK at once in the other modes.
  absl::Status flush() { return wb_ != nullptr ? wb_->flush() : absl::OkStatus(); }

  // stop_write_back: drains and stops the write-back (its destructor: flush
  // with retries, report leftovers to on_write_error). ~Cache only, before
  // close(): nothing else may run concurrently.
  void stop_write_back() { wb_.reset(); }

  const CacheOptions<K, V>& options() const { return opt_; }
  std::size_t flights_in_progress() const { return flights_.size(); }
  WriteBehind<K, V>* write_behind() { return wb_.get(); }

 private:
  enum class Kind { kFresh, kRefreshAhead, kStaleServe, kStaleLoad, kExpired };

  void validate() const {
    auto bad = [](const std::string& what) { throw std::invalid_argument(what); };
    if (!store_) bad("store must not be null");
    if (opt_.ttl.count() <= 0) bad("ttl must be > 0");
    if (opt_.stale_while_revalidate.count() < 0) bad("stale_while_revalidate must be >= 0");
    if (opt_.stale_if_error.count() < 0) bad("stale_if_error must be >= 0");
    if (!(opt_.ttl_jitter >= 0.0 && opt_.ttl_jitter < 1.0)) bad("ttl_jitter must be in [0, 1)");
    if (!(opt_.refresh_ahead >= 0.0 && opt_.refresh_ahead < 1.0)) {
      bad("refresh_ahead must be in [0, 1) (0: off)");
    }
    if (opt_.negative_ttl.count() < 0) bad("negative_ttl must be >= 0");
    if (opt_.load_timeout.count() < 0) bad("load_timeout must be >= 0");
    if (opt_.error_backoff.count() < 0) bad("error_backoff must be >= 0");
    if (opt_.max_pending_invalidations == 0) bad("max_pending_invalidations must be > 0");
    if (opt_.negative_ttl.count() > 0 && opt_.negative_max_entries == 0) {
      bad("negative_ttl > 0 needs negative_max_entries > 0");
    }
    switch (opt_.write_mode) {
      case WriteMode::kNone:
        break;
      case WriteMode::kWriteThrough:
        if (!opt_.writer.write) bad("write_mode = kWriteThrough needs writer.write");
        break;
      case WriteMode::kWriteBack:
        if (!opt_.writer.write) bad("write_mode = kWriteBack needs writer.write");
        if (opt_.write_back_delay.count() < 0) bad("write_back_delay must be >= 0");
        if (opt_.write_back_batch == 0) bad("write_back_batch must be > 0");
        if (opt_.write_back_max_dirty == 0) bad("write_back_max_dirty must be > 0");
        if (opt_.write_back_wait.count() < 0) bad("write_back_wait must be >= 0");
        if (opt_.write_back_retry_base.count() <= 0) bad("write_back_retry_base must be > 0");
        if (opt_.write_back_retry_max < opt_.write_back_retry_base) {
          bad("write_back_retry_max must be >= write_back_retry_base");
        }
        if (!opt_.write_back_journal.empty()) {
          if (!WriteBehind<K, V>::kJournalable) {
            bad("write_back_journal is set but K or V has no larder::Codec (specialise "
                "larder::Codec, or leave write_back_journal empty)");
          }
          if (opt_.write_back_fsync == FsyncPolicy::kEveryInterval &&
              opt_.write_back_fsync_interval.count() <= 0) {
            bad("write_back_fsync = kEveryInterval needs write_back_fsync_interval > 0");
          }
          if (opt_.write_back_journal_segment_bytes == 0) {
            bad("write_back_journal_segment_bytes must be > 0");
          }
          if (opt_.write_back_journal_segment_age.count() < 0) {
            bad("write_back_journal_segment_age must be >= 0");
          }
        }
        break;
    }
    if (opt_.write_mode != WriteMode::kWriteBack && !opt_.write_back_journal.empty()) {
      bad("write_back_journal is set but write_mode is not kWriteBack");
    }
  }

  // dirty_value: for a key the write-back has not written yet, what a read
  // must see: optional(value) for a pending put, optional(nullopt) for a
  // pending erase; nullopt when the key is not dirty (read the store).
  // Clean keys cost one lock-free filter probe (WriteBehind::may_be_dirty).
  std::optional<std::optional<V>> dirty_value(const K& key) {
    if (!wb_->may_be_dirty(key)) return std::nullopt;
    std::optional<std::optional<V>> p = wb_->pending(key);
    if (p) {
      if (*p) {
        counters_.hits.add();
      } else {
        counters_.misses.add();
      }
    }
    return p;
  }

  static absl::Status erased(const K&) {
    return absl::NotFoundError("erased (the delete is not yet written to the system of record)");
  }

  // store_after_write: the store's half of a put whose system-of-record half
  // (Writer or write-back) succeeded. The write is done, so this returns OK.
  // When the store fails, the old value must not stay cached: it is dropped
  // now, or the drop is deferred (put_local/invalidate remember the key, see
  // "Auto-recovery") and counted in invalidations_deferred.
  absl::Status store_after_write(const K& key, V value) {
    if (!put_local(key, std::move(value)).ok()) (void)invalidate(key);
    return absl::OkStatus();
  }

  // drop_after_write: the store's half of an erase whose system-of-record
  // half succeeded: OK, the drop deferred when the store fails.
  absl::Status drop_after_write(const K& key) {
    (void)invalidate(key);
    return absl::OkStatus();
  }

  // ---- auto-recovery (internal/pending_invalidations.h) ----
  // A key whose old copy the store could not drop or overwrite is remembered
  // in pending_. Reads treat it as a store miss (they load it), and a repair
  // task re-applies the drops (Store::erase_many; Store::clear() once more
  // than max_pending_invalidations piled up) as soon as it is due. Every
  // read and write while something is pending may schedule it.

  // defer: key's old copy may still be in the store.
  void defer(const K& key) {
    if (pending_.add(key)) counters_.invalidations_deferred.add();
    wake_later();
  }

  // wake_later: with the system clock, a repair is also attempted without
  // any traffic (internal/wakeup_timer.h), at the back-off's pace. With any
  // other Clock (ManualClock in tests) repairs are driven by calls only, so
  // that tests decide when time passes.
  void wake_later() {
    if (!coarse_) return;
    std::call_once(wake_once_, [&] {
      wake_ = WakeupTimer::instance().ticket([weak = this->weak_from_this()] {
        if (std::shared_ptr<CacheCore> self = weak.lock()) self->on_wake();
      });
    });
    wake_->arm(pending_.delay(clock_->now()));
  }

  void on_wake() {
    if (!pending_.any()) return;
    schedule_repair(clock_->now());
    wake_->arm(pending_.delay(clock_->now()));
  }

  // suspect: (pending_.any() was true) whether key must not be served from
  // the store now; schedules a repair when one is due.
  bool suspect(const K& key, TimePoint now) {
    schedule_repair(now);
    return pending_.suspect(key);
  }

  // forget_suspects: a batch read's answers for suspect keys are dropped.
  void forget_suspects(std::span<const K> keys, std::vector<std::optional<Entry<V>>>& entries,
                       TimePoint now) {
    if (ABSL_PREDICT_TRUE(!pending_.any())) return;
    schedule_repair(now);
    for (std::size_t i = 0; i < keys.size(); ++i) {
      if (entries[i].has_value() && pending_.suspect(keys[i])) entries[i].reset();
    }
  }

  void schedule_repair(TimePoint now) {
    if (!pending_.due(now) || !pending_.try_begin()) return;
    const bool queued = executor_->try_execute([self = this->shared_from_this()] {
      if (self->enter()) {
        self->repair();
        self->leave();
      }
      self->pending_.end();
    });
    if (!queued) pending_.end();
  }

  // repair: re-applies what pending_ holds until it is empty or the store
  // fails (then backs off). Caller holds pending_'s running flag.
  void repair() {
    for (int round = 0; round < 64 && pending_.any(); ++round) {
      typename PendingInvalidations<K>::Work w = pending_.work(kRepairBatch);
      absl::Status s = w.clear ? store_->clear() : store_->erase_many(std::span<const K>(w.keys));
      // A store that cannot clear: nothing more can be done for overflowed
      // keys; they are served until their stale_until (documented).
      if (w.clear && s.code() == absl::StatusCode::kUnimplemented) s = absl::OkStatus();
      if (!s.ok()) {
        counters_.store_errors.add();
        pending_.failed(clock_->now());
        wake_later();
        return;
      }
      counters_.invalidations_reapplied.add(w.clear ? 1 : w.keys.size());
      pending_.done(w);
      pending_.succeeded();
    }
  }

  // read_now: the instant a read classifies entries by. With the system clock
  // this is CLOCK_REALTIME_COARSE (about 3 ns instead of about 20 ns for
  // clock_gettime(CLOCK_REALTIME) on the benchmark machine; the hit path's
  // largest cost after the store), whose resolution is the kernel tick (1 to
  // 4 ms): an entry may be treated as fresh up to one tick past fresh_until.
  // Any other Clock (ManualClock in tests) is read exactly.
  TimePoint read_now() const {
#if defined(__linux__) && defined(CLOCK_REALTIME_COARSE)
    if (coarse_) {
      timespec ts;
      if (clock_gettime(CLOCK_REALTIME_COARSE, &ts) == 0) {
        return TimePoint(std::chrono::duration_cast<Dur>(std::chrono::seconds(ts.tv_sec) +
                                                         std::chrono::nanoseconds(ts.tv_nsec)));
      }
    }
#endif
    return clock_->now();
  }

  Kind classify(const Entry<V>& e, TimePoint now) const {
    if (now < e.fresh_until) {
      if (opt_.refresh_ahead > 0.0 && now >= e.fresh_until - refresh_window_) {
        return Kind::kRefreshAhead;
      }
      return Kind::kFresh;
    }
    if (now >= e.stale_until) return Kind::kExpired;
    if (now < e.fresh_until + swr_) return Kind::kStaleServe;
    return Kind::kStaleLoad;
  }

  bool can_fall_back(const std::optional<Entry<V>>& stale, TimePoint now) const {
    return stale.has_value() && sie_.count() > 0 && now < stale->stale_until;
  }

  Entry<V> make_entry(V value, TimePoint now) const {
    Dur ttl = ttl_;
    if (opt_.ttl_jitter > 0.0) {
      const double u = (2.0 * unit_random() - 1.0) * opt_.ttl_jitter;
      ttl = std::chrono::duration_cast<Dur>(
          std::chrono::duration<double, Dur::period>(ttl_.count() * (1.0 + u)));
    }
    const TimePoint fresh = now + ttl;
    return Entry<V>{std::move(value), fresh, fresh + stale_span_};
  }

  // unit_random: uniform in [0, 1), from a per-thread splitmix64. Not
  // absl::InsecureBitGen: its seed pool lives in an abseil library that
  // Debian does not build for ThreadSanitizer, which then reports races.
  static double unit_random() {
    thread_local std::uint64_t state =
        (static_cast<std::uint64_t>(std::random_device{}()) << 32) ^ std::random_device{}() ^
        reinterpret_cast<std::uintptr_t>(&state);
    std::uint64_t z = (state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    return static_cast<double>(z >> 11) * 0x1.0p-53;
  }

  static absl::Status not_found(const K&) {
    return absl::NotFoundError("the loader found no value for the key");
  }

  // publish: stores entry for key unless flight was superseded. A loaded
  // value is a fill (store.h: other instances are not told); `changed` (a
  // refresh that found a different value) makes it a put, and a put that
  // fails defers the drop of the old copy.
  void publish(const FlightPtr& flight, const K& key, Entry<V> entry, bool changed = false) {
    flight->publish_if_current([&] {
      const auto mark = pending_.mark();
      absl::Status s =
          changed ? store_->put(key, std::move(entry)) : store_->fill(key, std::move(entry));
      if (!s.ok()) {
        counters_.store_errors.add();
        if (changed) defer(key);
      } else if (changed) {
        pending_.settle(key, mark);
      }
      if (negative_) negative_->erase(key);
    });
    unpause_refresh(key);
  }

  // publish_absent: the loader said NotFound: drop any stale entry and, with
  // negative caching, remember the absence.
  void publish_absent(const FlightPtr& flight, const K& key, TimePoint now) {
    flight->publish_if_current([&] {
      if (!store_->erase(key).ok()) counters_.store_errors.add();
      if (negative_) negative_->add(key, now + negative_ttl_, now);
    });
  }

  // after_failure: bookkeeping for a failed (non-refresh) load of key.
  void after_failure(const FlightPtr& flight, const K& key,
                     const std::optional<Entry<V>>& stale, const absl::Status& s, TimePoint now) {
    if (s.code() == absl::StatusCode::kNotFound) {
      publish_absent(flight, key, now);
    } else if (can_fall_back(stale, now) && error_backoff_.count() > 0) {
      // Fail-safe: keep serving the stale value for a while without asking.
      Entry<V> kept = *stale;
      kept.fresh_until = std::min(now + error_backoff_, kept.stale_until);
      publish(flight, key, std::move(kept));
    }
  }

  // fresh_in_store: the value of key's fresh entry in the store, if any.
  std::optional<V> fresh_in_store(const K& key) {
    if (ABSL_PREDICT_FALSE(pending_.any()) && pending_.suspect(key)) return std::nullopt;
    absl::StatusOr<std::optional<Entry<V>>> got = store_->get(key);
    if (!got.ok()) {
      counters_.store_errors.add();
      return std::nullopt;
    }
    if (got->has_value() && clock_->now() < (*got)->fresh_until) return std::move((*got)->value);
    return std::nullopt;
  }

  template <class Loader>
  absl::StatusOr<V> load_one(const K& key, Loader& loader, std::optional<Entry<V>> stale,
                             TimePoint now) {
    if (negative_ && !stale && negative_->contains(key, now)) {
      counters_.negative_hits.add();
      return not_found(key);
    }
    counters_.misses.add();
    typename SingleFlight<K, V>::Joined j = flights_.join(key);
    if (!j.leader) {
      counters_.coalesced.add();
      return await(j.flight, stale);
    }
    if (std::optional<V> v = fresh_in_store(key)) {
      flights_.finish(key, j.flight, *v);
      return *std::move(v);
    }
    if (stale && load_timeout_.count() > 0) {
      // Load on the executor so this caller can stop waiting at load_timeout.
      auto fn = std::make_shared<std::decay_t<Loader>>(loader);
      bool queued = executor_->try_execute(
          [self = this->shared_from_this(), key, fn, stale, flight = j.flight]() mutable {
            if (!self->enter()) {
              self->flights_.finish(key, flight, absl::CancelledError("the cache was destroyed"));
              return;
            }
            (void)self->run_load(key, *fn, stale, flight);
            self->leave();
          });
      if (queued) return await(j.flight, stale);
      // The executor is full: load here, without the timeout.
    }
    return run_load(key, loader, std::move(stale), j.flight);
  }

  // run_load: the leader's load of key: guard, loader, publish, finish.
  // Returns this caller's answer (the stale value when falling back).
  template <class Loader>
  absl::StatusOr<V> run_load(const K& key, Loader& loader, std::optional<Entry<V>> stale,
                             const FlightPtr& flight) {
    std::unique_ptr<LoadLease> lease;
    if (opt_.load_guard) {
      if (std::optional<V> v = guard_wait(key, &lease)) {
        flights_.finish(key, flight, *v);
        return *std::move(v);
      }
    }
    absl::StatusOr<V> r = invoke_loader<V>(loader, key);
    const TimePoint now = clock_->now();
    if (r.ok()) {
      counters_.loads.add();
      publish(flight, key, make_entry(*r, now));
      flights_.finish(key, flight, r);
      return r;
    }
    counters_.load_failures.add();
    const absl::Status s = r.status();
    after_failure(flight, key, stale, s, now);
    flights_.finish(key, flight, s);
    if (s.code() != absl::StatusCode::kNotFound && can_fall_back(stale, now)) {
      counters_.stale_hits.add();
      return std::move(stale->value);
    }
    return s;
  }

  // load_batch: one batch-loader call for the led keys (parallel vectors),
  // then publish, finish each flight and answer into out (fail() on error).
  template <class BatchLoader, class Led, class Fail>
  void load_batch(BatchLoader& load, std::vector<Led>& mine, std::vector<K>& ask, Map& out,
                  Fail& fail) {
    if (mine.empty()) return;
    absl::StatusOr<Map> loaded = invoke_batch_loader<K, V>(load, std::span<const K>(ask));
    const TimePoint t = clock_->now();
    if (loaded.ok()) {
      counters_.loads.add();
      for (std::size_t i = 0; i < mine.size(); ++i) {
        auto it = loaded->find(ask[i]);
        if (it != loaded->end()) {
          publish(mine[i].flight, ask[i], make_entry(it->second, t));
          flights_.finish(ask[i], mine[i].flight, it->second);
          out.insert_or_assign(ask[i], std::move(it->second));
        } else {
          publish_absent(mine[i].flight, ask[i], t);
          flights_.finish(ask[i], mine[i].flight, not_found(ask[i]));
        }
      }
    } else {
      counters_.load_failures.add();
      const absl::Status s = loaded.status();
      for (std::size_t i = 0; i < mine.size(); ++i) {
        after_failure(mine[i].flight, ask[i], mine[i].stale, s, t);
        flights_.finish(ask[i], mine[i].flight, s);
        fail(mine[i], s);
      }
    }
  }

  // guard_wait: the cross-process side of a load (load_guard.h). Returns a
  // value another process stored while we waited; otherwise nullopt, with
  // *lease set when this process won the guard (unset: the guard is down, or
  // we waited wait() and load anyway).
  std::optional<V> guard_wait(const K& key, std::unique_ptr<LoadLease>* lease) {
    return guard_wait(key, lease, saturating_add(clock_->now(), opt_.load_guard->wait()));
  }
  std::optional<V> guard_wait(const K& key, std::unique_ptr<LoadLease>* lease, TimePoint deadline) {
    LoadGuard<K>& guard = *opt_.load_guard;
    for (;;) {
      absl::StatusOr<std::unique_ptr<LoadLease>> acquired = guard.try_acquire(key);
      if (!acquired.ok()) return std::nullopt;  // guard down: load without it
      if (*acquired) {
        *lease = *std::move(acquired);
        // The previous holder may have stored the value just before releasing.
        return fresh_in_store(key);
      }
      // Another process is loading key: watch the store for its value.
      for (;;) {
        if (std::optional<V> v = fresh_in_store(key)) return v;
        if (clock_->now() >= deadline) return std::nullopt;
        absl::StatusOr<bool> held = guard.is_held(key);
        if (!held.ok() || !*held) {
          if (std::optional<V> v = fresh_in_store(key)) return v;
          break;  // released without a value: try to win it
        }
        const std::chrono::milliseconds poll = guard.poll_interval();
        if (poll.count() > 0) std::this_thread::sleep_for(poll);
      }
    }
  }

  // await: a waiter's answer from flight (stale fallback and load_timeout).
  // With a stale value and load_timeout, it stops waiting at `deadline` when
  // given (several keys sharing one timeout), else after load_timeout.
  absl::StatusOr<V> await(const FlightPtr& flight, std::optional<Entry<V>>& stale,
                          std::optional<std::chrono::steady_clock::time_point> deadline = {}) {
    const absl::StatusOr<V>* r = nullptr;
    if (stale && load_timeout_.count() > 0) {
      r = flight->wait_for(deadline ? std::max<std::chrono::steady_clock::duration>(
                                          *deadline - std::chrono::steady_clock::now(),
                                          std::chrono::steady_clock::duration::zero())
                                    : std::chrono::steady_clock::duration(load_timeout_));
      if (r == nullptr) {
        counters_.load_timeouts.add();
        counters_.stale_hits.add();
        return std::move(stale->value);
      }
    } else {
      r = &flight->wait();
    }
    if (r->ok()) return **r;
    if (r->status().code() != absl::StatusCode::kNotFound &&
        can_fall_back(stale, clock_->now())) {
      counters_.stale_hits.add();
      return std::move(stale->value);
    }
    return detach_status(r->status());
  }

  // ---- background refresh ----

  template <class Loader>
  void start_refresh(const K& key, Loader& loader, const Entry<V>& current, TimePoint now) {
    static_assert(std::is_copy_constructible_v<std::decay_t<Loader>>,
                  "a Loader must be copyable: background refreshes keep a copy");
    if (refresh_paused(key, now)) return;
    typename SingleFlight<K, V>::Joined j = flights_.join(key);
    if (!j.leader) return;  // a load or refresh of key is already running
    auto fn = std::make_shared<std::decay_t<Loader>>(loader);
    const bool queued = executor_->try_execute(
        [self = this->shared_from_this(), key, fn, flight = j.flight, current]() mutable {
          self->run_refresh(key, *fn, flight, std::move(current));
        });
    if (!queued) {
      counters_.refreshes_dropped.add();
      flights_.finish(key, j.flight, current.value);  // joiners get what we have
      return;
    }
  }

  template <class Loader>
  void run_refresh(const K& key, Loader& loader, const FlightPtr& flight, Entry<V> current) {
    if (!enter()) {
      flights_.finish(key, flight, absl::CancelledError("the cache was destroyed"));
      return;
    }
    // A reader may have seen the stale entry just before the previous refresh
    // published and started this one just after it finished: if the entry is
    // fresh (and short of the refresh-ahead point) now, there is nothing to do.
    if (!pending_.any() || !pending_.suspect(key)) {
      absl::StatusOr<std::optional<Entry<V>>> got = store_->get(key);
      if (got.ok() && got->has_value() && classify(**got, clock_->now()) == Kind::kFresh) {
        flights_.finish(key, flight, std::move((*got)->value));
        leave();
        return;
      }
    }
    counters_.refreshes.add();
    std::unique_ptr<LoadLease> lease;
    if (opt_.load_guard) {
      absl::StatusOr<std::unique_ptr<LoadLease>> acquired = opt_.load_guard->try_acquire(key);
      if (acquired.ok() && *acquired == nullptr) {
        // Another process is refreshing key; its value will reach the store.
        flights_.finish(key, flight, std::move(current.value));
        leave();
        return;
      }
      if (acquired.ok()) lease = *std::move(acquired);
    }
    absl::StatusOr<V> r = invoke_loader<V>(loader, key);
    const TimePoint now = clock_->now();
    if (r.ok()) {
      counters_.loads.add();
      publish(flight, key, make_entry(*r, now), !same_value(current.value, *r));
      flights_.finish(key, flight, std::move(r));
    } else {
      counters_.load_failures.add();
      counters_.refresh_failures.add();
      // NotFound: the key is gone from the system of record; stop serving it.
      // Any other error: the stale value stays until its stale_until.
      if (r.status().code() == absl::StatusCode::kNotFound) {
        publish_absent(flight, key, now);
      } else {
        pause_refresh(key, now);
      }
      flights_.finish(key, flight, r.status());
      report_refresh_error(key, r.status());
    }
    lease.reset();
    leave();
  }

  template <class BatchLoader>
  void start_batch_refresh(std::vector<std::pair<K, Entry<V>>> items, BatchLoader& load,
                           TimePoint now) {
    static_assert(std::is_copy_constructible_v<std::decay_t<BatchLoader>>,
                  "a BatchLoader must be copyable: background refreshes keep a copy");
    struct Batch {
      std::vector<K> keys;
      std::vector<FlightPtr> flights;
      std::vector<Entry<V>> current;
    };
    auto batch = std::make_shared<Batch>();
    for (auto& [k, e] : items) {
      if (refresh_paused(k, now)) continue;
      typename SingleFlight<K, V>::Joined j = flights_.join(k);
      if (!j.leader) continue;
      batch->keys.push_back(k);
      batch->flights.push_back(std::move(j.flight));
      batch->current.push_back(std::move(e));
    }
    if (batch->keys.empty()) return;
    auto fn = std::make_shared<std::decay_t<BatchLoader>>(load);
    const bool queued = executor_->try_execute(
        [self = this->shared_from_this(), fn, batch] { self->run_batch_refresh(*fn, *batch); });
    const std::size_t n = batch->keys.size();
    if (!queued) {
      counters_.refreshes_dropped.add(n);
      for (std::size_t i = 0; i < n; ++i) {
        flights_.finish(batch->keys[i], batch->flights[i], batch->current[i].value);
      }
      return;
    }
    counters_.refreshes.add(n);
  }

  template <class BatchLoader, class Batch>
  void run_batch_refresh(BatchLoader& load, Batch& b) {
    const std::size_t n = b.keys.size();
    if (!enter()) {
      for (std::size_t i = 0; i < n; ++i) {
        flights_.finish(b.keys[i], b.flights[i], absl::CancelledError("the cache was destroyed"));
      }
      return;
    }
    absl::StatusOr<Map> r = invoke_batch_loader<K, V>(load, std::span<const K>(b.keys));
    const TimePoint now = clock_->now();
    if (r.ok()) {
      counters_.loads.add();
      for (std::size_t i = 0; i < n; ++i) {
        auto it = r->find(b.keys[i]);
        if (it != r->end()) {
          publish(b.flights[i], b.keys[i], make_entry(it->second, now),
                  !same_value(b.current[i].value, it->second));
          flights_.finish(b.keys[i], b.flights[i], std::move(it->second));
        } else {
          publish_absent(b.flights[i], b.keys[i], now);
          flights_.finish(b.keys[i], b.flights[i], not_found(b.keys[i]));
        }
      }
    } else {
      counters_.load_failures.add();
      counters_.refresh_failures.add(n);
      for (std::size_t i = 0; i < n; ++i) {
        if (r.status().code() != absl::StatusCode::kNotFound) pause_refresh(b.keys[i], now);
        flights_.finish(b.keys[i], b.flights[i], r.status());
      }
      for (std::size_t i = 0; i < n; ++i) report_refresh_error(b.keys[i], r.status());
    }
    leave();
  }

  // Refresh back-off: after a background refresh of key failed (not
  // NotFound), no new refresh of key starts for error_backoff; hits keep
  // getting the value they have. Without it every later hit of a hot key
  // would start another refresh against a failing source, one after the
  // other. Markers live in a bounded map beside the store (NegativeCache),
  // looked up only once some refresh failed.
  bool refresh_paused(const K& key, TimePoint now) {
    return refresh_paused_ != nullptr && any_paused_.load(std::memory_order_relaxed) &&
           refresh_paused_->contains(key, now);
  }
  void pause_refresh(const K& key, TimePoint now) {
    if (refresh_paused_ == nullptr) return;
    any_paused_.store(true, std::memory_order_relaxed);
    refresh_paused_->add(key, now + error_backoff_, now);
  }
  void unpause_refresh(const K& key) {
    if (refresh_paused_ != nullptr && any_paused_.load(std::memory_order_relaxed)) {
      refresh_paused_->erase(key);
    }
  }

  void report_refresh_error(const K& key, const absl::Status& s) {
    if (!opt_.on_refresh_error) return;
    try {
      opt_.on_refresh_error(key, s);
    } catch (...) {
      // A callback must not take down an executor thread.
    }
  }

  // ---- writes ----

  // put_local: caches value (a change: Store::put). When the store fails,
  // its old copy may remain: the drop is deferred (auto-recovery).
  absl::Status put_local(const K& key, V value) {
    flights_.supersede(key);
    if (negative_) negative_->erase(key);
    unpause_refresh(key);
    const auto mark = pending_.mark();
    absl::Status s = store_->put(key, make_entry(std::move(value), clock_->now()));
    if (s.ok()) {
      pending_.settle(key, mark);
    } else {
      counters_.store_errors.add();
      defer(key);
    }
    return s;
  }

  template <class Fn>
  static absl::Status call_writer(Fn&& fn) {
    try {
      return fn();
    } catch (...) {
      return exception_status("writer", std::current_exception());
    }
  }

  // ---- background task accounting ----

  bool enter() {
    MutexLock l(&task_mu_);
    if (closed_) return false;
    ++running_;
    return true;
  }
  void leave() {
    {
      MutexLock l(&task_mu_);
      --running_;
    }
    task_cv_.notify_all();
  }

  std::shared_ptr<Store<K, V>> store_;
  CacheOptions<K, V> opt_;
  std::shared_ptr<Clock> clock_;
  bool coarse_ = false;  // clock_ is the SystemClock: read_now() may use the coarse clock
  Executor* executor_;  // never null; outlives every call that submits to it
  Dur ttl_{}, swr_{}, sie_{}, stale_span_{}, refresh_window_{}, load_timeout_{}, error_backoff_{},
      negative_ttl_{};
  std::unique_ptr<NegativeCache<K>> negative_;
  // Keys whose background refresh failed lately (see refresh_paused).
  std::unique_ptr<NegativeCache<K>> refresh_paused_;
  std::atomic<bool> any_paused_{false};
  SingleFlight<K, V> flights_;
  CacheCounters counters_;
  std::unique_ptr<KeyTurns<K>> turns_;   // kWriteThrough / kWriteBack: per-key write order
  std::unique_ptr<WriteBehind<K, V>> wb_;  // kWriteBack; reset by stop_write_back()
  static constexpr std::size_t kRepairBatch = 1024;
  PendingInvalidations<K> pending_;  // drops the store could not apply yet (auto-recovery)
  std::once_flag wake_once_;
  std::unique_ptr<WakeupTimer::Ticket> wake_;  // set once, by wake_later()

  Mutex task_mu_;
  CondVar task_cv_;
  int running_ ABSL_GUARDED_BY(task_mu_) = 0;
  bool closed_ ABSL_GUARDED_BY(task_mu_) = false;
};

}  // namespace internal

namespace internal {
// CacheTestPeer: tests reach the write-back through it (no test-only public
// methods). Defined by tests.
struct CacheTestPeer;
}  // namespace internal

// Cache: see the file comment.
template <class K, class V>
class Cache {
 public:
  using Map = absl::flat_hash_map<K, V>;

  // Throws std::invalid_argument, naming the field, when store is null or an
  // option is out of range or inconsistent ("write_mode = kWriteBack needs
  // writer.write"; a write_back_journal for a K or V without larder::Codec);
  // std::runtime_error when the write-back journal cannot be opened (I/O).
  // With a journal, every record left by an earlier Cache on the same path is
  // replayed: its keys are dirty (and readable) at once and the flusher
  // writes them through the Writer.
  explicit Cache(std::shared_ptr<Store<K, V>> store, CacheOptions<K, V> options = {})
      : executor_(options.executor ? options.executor : default_executor()),
        core_(std::make_shared<internal::CacheCore<K, V>>(std::move(store), std::move(options),
                                                          executor_.get())) {}

  // kWriteBack: drains first: flushes every dirty key (up to 3 attempts,
  // pausing the retry backoff in real time between them), stops the flusher,
  // and reports keys it could not write to on_write_error (kAborted; with a
  // journal they stay in it for the next Cache on the path; with nothing left
  // the journal segments are deleted; the empty <path>.lock stays). Then
  // waits for background refreshes already running and cancels queued ones.
  ~Cache() {
    core_->stop_write_back();
    core_->repair_now();
    core_->close();
  }

  Cache(const Cache&) = delete;
  Cache& operator=(const Cache&) = delete;

  // get_or_load: key's value. kWriteBack: a key not yet written is answered
  // from the write-back (its newest put, or NotFound for a pending erase)
  // even when the store evicted it; its loader is not called. Fresh: returned at once. Stale within
  // stale_while_revalidate (or past the refresh-ahead point): returned at once
  // and one background refresh starts. Otherwise one loader call for all
  // concurrent callers of key; its value is stored and returned to each.
  // loader: (const K&) -> V | absl::StatusOr<V>; may throw (kInternal with
  // what()); must be copyable. Errors: the loader's Status (kNotFound is
  // remembered for negative_ttl when set); with a stale value inside
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

  // get_many: the values for keys (duplicates allowed). Hits come from one
  // Store::get_many; every key needing a load that is not already loading goes
  // to ONE load(missing) call; keys already loading (by get_or_load or another
  // get_many) are awaited. Keys load() does not return are absent from the
  // result (and treated as NotFound). Stale keys are served and refreshed in
  // one background batch call. Errors: the first load error for a key without
  // a stale fallback. With a load_guard, each key to load is guarded: the
  // keys this process wins go to the one batch call (leases released after
  // the values are stored); keys another process holds are waited for
  // afterwards (one shared LoadGuard::wait() deadline), and those it does not
  // deliver in time are loaded here in a second batch call. With
  // load_timeout, when some key to load has a stale value to fall back on,
  // the batch runs on the executor and those keys get their stale values
  // once load_timeout passes (the batch goes on and is stored); the others
  // wait for it.
  template <class BatchLoader>
  absl::StatusOr<Map> get_many(std::span<const K> keys, BatchLoader&& load) {
    return core_->get_many(keys, load);
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
  //     durable per write_back_fsync, before put returns), then caches it;
  //     the Writer is called later by the flusher. Errors: kResourceExhausted
  //     when write_back_max_dirty keys stayed dirty for write_back_wait
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

  // invalidate: drops key from the cache; a load of key in flight is not
  // stored after it. Errors: the store's; the drop is then deferred (this
  // process does not serve key from the store until it is re-applied, see
  // "Auto-recovery" in the notes), so a retry is harmless but not needed.
  // kWriteBack: a dirty key's pending write is NOT cancelled (use erase for
  // that): it still goes to the system of record, and reads go on returning
  // it until it is written (they never load the older value the system of
  // record holds meanwhile).
  absl::Status invalidate(const K& key) { return core_->invalidate(key); }

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
  // on_write_error.
  absl::Status flush() { return core_->flush(); }

  // stats: a snapshot of the counters (stats.h). O(stripes); lock-free.
  CacheStats stats() const { return core_->stats(); }

  // options: as given to the constructor, except `executor`, which is null
  // here (see executor()).
  const CacheOptions<K, V>& options() const { return core_->options(); }

  // executor: where this cache runs background work.
  const std::shared_ptr<Executor>& executor() const { return executor_; }

 private:
  friend struct internal::CacheTestPeer;

  // The Cache, not the core, owns the executor: queued tasks keep the core
  // alive, and if the core owned the only reference to a ThreadPoolExecutor,
  // the task dropping the core last would destroy the pool on one of its own
  // threads (a self-join). Declared before core_, destroyed after it.
  std::shared_ptr<Executor> executor_;
  std::shared_ptr<internal::CacheCore<K, V>> core_;
};

}  // namespace larder

#endif  // LARDER_CACHE_H_
