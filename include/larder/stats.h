// SPDX-License-Identifier: Apache-2.0
//
// CacheStats: a snapshot of a cache's counters.
//
// Counters are monotonic since the cache was constructed, except `dirty`,
// which is the number of write-back keys not yet written now. A snapshot is
// taken without stopping the cache (Cache::stats()): each field is read
// atomically, but fields are not read at one instant together, so sums across
// fields may be off by the operations in flight.
//
// How reads count: a get_or_load or get_if_present adds one to hits,
// stale_hits or misses. get_many counts each distinct key of the batch once
// (a key given twice counts once). A key with a write-back write pending is
// answered from that write and counts in none of the three: it never reaches
// the store.
//
// The field order is API (users write designated initializers in tests and
// dashboards read them by name): add new fields at the end only.
#ifndef LARDER_STATS_H_
#define LARDER_STATS_H_

#include <cstdint>

namespace larder {

struct CacheStats {
  std::uint64_t hits = 0;            // fresh entries returned
  std::uint64_t misses = 0;          // absent or expired: a load was needed
  std::uint64_t stale_hits = 0;      // stale entries returned (SWR, stale-if-error, load_timeout)
  std::uint64_t loads = 0;           // loader calls that succeeded (a batch call counts once)
  std::uint64_t load_failures = 0;   // loader calls that failed or threw
  std::uint64_t coalesced = 0;       // callers that joined a load already in flight
  std::uint64_t refreshes = 0;       // background refreshes started
  std::uint64_t evictions = 0;       // entries the store dropped to respect its bound
  std::uint64_t expirations = 0;     // entries the store dropped at stale_until
  std::uint64_t store_errors = 0;    // store operations that failed (or values that did not decode)
  std::uint64_t writes = 0;          // entries written to the system of record by the Writer
  std::uint64_t write_failures = 0;  // Writer calls that failed
  std::uint64_t dirty = 0;           // write-back keys not yet written, now
  // --- added after the first API (append only) ---
  std::uint64_t flushes = 0;            // write-back batches written successfully
  std::uint64_t write_coalesced = 0;    // write-back puts absorbed by a later put to the same key
  std::uint64_t refreshes_dropped = 0;  // refreshes skipped because the executor queue was full
  std::uint64_t refresh_failures = 0;   // background refreshes whose loader failed
  std::uint64_t negative_hits = 0;      // NotFound answered from the negative cache
  std::uint64_t load_timeouts = 0;      // callers served stale after load_timeout
  std::uint64_t write_rejected = 0;  // write-back puts refused by backpressure (kResourceExhausted)
  std::uint64_t journal_replayed = 0;  // write-back journal records replayed at construction
  std::uint64_t journal_bad_tails =
      0;  // journal segments ending in a torn or corrupt record (skipped)
  // Auto-recovery (cache.h): keys whose old copy the store could not drop or
  // overwrite after a change (the store was down), so the drop was deferred;
  // how many were re-applied since; and how many wait now. Past
  // max_pending_invalidations they become one pending "clear the store",
  // which counts as one in each.
  std::uint64_t invalidations_deferred = 0;
  std::uint64_t invalidations_reapplied = 0;
  std::uint64_t invalidations_pending = 0;  // now, not cumulative

  // hit_ratio: (hits + stale_hits) / (hits + stale_hits + misses); 0 when
  // nothing was asked.
  double hit_ratio() const {
    const double served = static_cast<double>(hits + stale_hits);
    const double total = served + static_cast<double>(misses);
    return total == 0 ? 0.0 : served / total;
  }

  // since: what changed from `earlier` (a previous snapshot of the same
  // cache) to this one: each counter's difference (0 if it went down, which
  // only a snapshot of another cache would show); the gauges (dirty,
  // invalidations_pending) are this snapshot's. For dashboards and tests:
  // `auto d = cache.stats().since(before); d.hit_ratio()`.
  CacheStats since(const CacheStats& earlier) const {
    auto sub = [](std::uint64_t a, std::uint64_t b) { return a >= b ? a - b : 0; };
    CacheStats d = *this;
    d.hits = sub(hits, earlier.hits);
    d.misses = sub(misses, earlier.misses);
    d.stale_hits = sub(stale_hits, earlier.stale_hits);
    d.loads = sub(loads, earlier.loads);
    d.load_failures = sub(load_failures, earlier.load_failures);
    d.coalesced = sub(coalesced, earlier.coalesced);
    d.refreshes = sub(refreshes, earlier.refreshes);
    d.evictions = sub(evictions, earlier.evictions);
    d.expirations = sub(expirations, earlier.expirations);
    d.store_errors = sub(store_errors, earlier.store_errors);
    d.writes = sub(writes, earlier.writes);
    d.write_failures = sub(write_failures, earlier.write_failures);
    d.flushes = sub(flushes, earlier.flushes);
    d.write_coalesced = sub(write_coalesced, earlier.write_coalesced);
    d.refreshes_dropped = sub(refreshes_dropped, earlier.refreshes_dropped);
    d.refresh_failures = sub(refresh_failures, earlier.refresh_failures);
    d.negative_hits = sub(negative_hits, earlier.negative_hits);
    d.load_timeouts = sub(load_timeouts, earlier.load_timeouts);
    d.write_rejected = sub(write_rejected, earlier.write_rejected);
    d.journal_replayed = sub(journal_replayed, earlier.journal_replayed);
    d.journal_bad_tails = sub(journal_bad_tails, earlier.journal_bad_tails);
    d.invalidations_deferred = sub(invalidations_deferred, earlier.invalidations_deferred);
    d.invalidations_reapplied = sub(invalidations_reapplied, earlier.invalidations_reapplied);
    return d;
  }
};

// a - b: a.since(b).
inline CacheStats operator-(const CacheStats& a, const CacheStats& b) { return a.since(b); }

}  // namespace larder

#endif  // LARDER_STATS_H_
