// SPDX-License-Identifier: Apache-2.0
//
// CacheState<K, V>: what every part of a Cache reads: the store, the options,
// the freshness rules, the single-flight table, the counters, the two
// expiring key sets and the background-task gate. CacheCore (cache_core.h)
// holds one and hands a reference to each part (Recovery, Loads, Refresher,
// Writes); the parts hold no copies of it.
//
// Thread-safety: the members are thread-safe objects or const after
// construction.
#ifndef LARDER_INTERNAL_CACHE_STATE_H_
#define LARDER_INTERNAL_CACHE_STATE_H_

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <utility>

#include "larder/executor.h"
#include "larder/internal/expiring_key_set.h"
#include "larder/internal/freshness.h"
#include "larder/internal/striped_counter.h"
#include "larder/internal/task_gate.h"
#include "larder/internal/thread_counter.h"
#include "larder/metric.h"
#include "larder/single_flight.h"
#include "larder/store.h"

namespace larder {
template <class K, class V>
struct CacheOptions;  // cache.h
template <class K, class V>
class GetManyResult;  // cache.h
template <class K>
struct WriteBackOptions;  // cache.h
}  // namespace larder

namespace larder::internal {

// The cache's counters, per thread or striped so the hit path shares no
// cache line. The read-path counters (hits, stale hits, misses) are
// ThreadCounters: a hit increments a cell its thread owns with a plain
// load and store, no locked instruction (a `lock xadd` was about 4% of a
// LocalStore hit through the Cache). The rest are bumped on slow paths.
struct CacheCounters {
  ThreadCounter hits, misses, stale_hits;
  StripedCounter loads, load_failures, coalesced, refreshes, store_errors, writes, write_failures,
      refreshes_dropped, refresh_failures, negative_hits, load_timeouts, invalidations_deferred,
      invalidations_reapplied;
};

// The cache's latency histograms (metric.h). Store operations are sampled
// (LatencySampler); loads, flushes and fsyncs are timed every time.
struct CacheLatency {
  using Steady = std::chrono::steady_clock;
  explicit CacheLatency(bool enabled) : on(enabled) {}
  const bool on;
  LatencyHistogram load, batch_load, store_get, store_put, flush, fsync;
  // sample: whether to time this store operation.
  bool sample() const { return on && LatencySampler::sample(); }
  // start: now when timing (every call), else a null time point.
  Steady::time_point start() const { return on ? Steady::now() : Steady::time_point{}; }
  static void record(LatencyHistogram& h, Steady::time_point t0) {
    if (t0 != Steady::time_point{}) h.record_since(t0);
  }
  // For the write-back's options: the histogram, or null when off.
  LatencyHistogram* flush_or_null() { return on ? &flush : nullptr; }
  LatencyHistogram* fsync_or_null() { return on ? &fsync : nullptr; }
};

template <class K, class V>
struct CacheState {
  using Dur = TimePoint::duration;
  using FlightPtr = std::shared_ptr<Flight<V>>;

  // o must be validated; executor outlives the state (owned by the Cache).
  // Taken by rvalue reference: the caller validates them while evaluating
  // the arguments, before anything is moved (cache_core.h).
  CacheState(std::shared_ptr<Store<K, V>>&& s, CacheOptions<K, V>&& o, TaskOwner* owner,
             Executor* executor)
      : store(std::move(s)),
        opt(std::move(o)),
        fresh(FreshnessOptions{.ttl = opt.ttl,
                               .stale_while_revalidate = opt.stale_while_revalidate,
                               .stale_if_error = opt.stale_if_error,
                               .ttl_jitter = opt.ttl_jitter,
                               .refresh_ahead = opt.refresh_ahead,
                               .error_backoff = opt.error_backoff},
              clock_or_default(opt.clock)),
        tasks(owner, executor),
        load_timeout(std::chrono::duration_cast<Dur>(opt.load_timeout)),
        negative_ttl(std::chrono::duration_cast<Dur>(opt.negative.ttl)),
        latency(opt.record_latency),
        store_judges_expiry(store->clock() != nullptr) {
    opt.executor = nullptr;
    if (opt.negative.ttl.count() > 0) {
      negative = std::make_unique<ExpiringKeySet<K>>(opt.negative.max_entries);
    }
    if (opt.error_backoff.count() > 0) {
      refresh_paused = std::make_unique<ExpiringKeySet<K>>(
          std::max<std::size_t>(opt.negative.max_entries, 1024));
    }
  }

  // With write-back: whether key has a write not yet written (set by
  // Writes). A load does not store what it read then (loads.h). Null: none.
  std::function<bool(const K&)> dirty_now;

  // Refresh back-off: after a background refresh of key failed (not
  // NotFound), no new refresh of key starts for error_backoff; hits keep
  // getting the value they have (expiring_key_set.h).
  bool refresh_paused_for(const K& key, TimePoint now) const {
    return refresh_paused != nullptr && refresh_paused->contains(key, now);
  }
  void pause_refresh(const K& key, TimePoint now) {
    if (refresh_paused != nullptr) refresh_paused->add(key, now + fresh.error_backoff(), now);
  }
  void unpause_refresh(const K& key) {
    if (refresh_paused != nullptr) refresh_paused->erase(key);
  }

  // forget: key changed (put, erase, invalidate, a published load): it is no
  // longer known absent, and its refreshes may start again.
  void forget(const K& key) {
    if (negative) negative->erase(key);
    unpause_refresh(key);
  }

  static absl::Status not_found(const K&) {
    return absl::NotFoundError("the loader found no value for the key");
  }

  const std::shared_ptr<Store<K, V>> store;
  CacheOptions<K, V> opt;  // executor reset to null (Cache owns it)
  const Freshness<V> fresh;
  TaskGate tasks;
  SingleFlight<K, V> flights;
  CacheCounters counters;
  const Dur load_timeout, negative_ttl;
  std::unique_ptr<ExpiringKeySet<K>> negative;        // negative.ttl > 0
  std::unique_ptr<ExpiringKeySet<K>> refresh_paused;  // error_backoff > 0
  CacheLatency latency;                               // metrics (metric.h)
  // store_judges_expiry: the store reads a clock (Store::clock() not null;
  // the cache refuses any clock but that one), so by Store's contract it
  // never returns an entry past stale_until (Freshness::fresh_as_returned).
  const bool store_judges_expiry;
};

}  // namespace larder::internal

#endif  // LARDER_INTERNAL_CACHE_STATE_H_
