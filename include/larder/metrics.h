// SPDX-License-Identifier: Apache-2.0
//
// Metrics: everything a Cache and its stores know about themselves, as a
// stream of counters, gauges and latency histograms (metric.h) handed to a
// callback. This is the dependency-free layer: an OpenTelemetry or statsd
// bridge is a callback, and the Prometheus exporter (larder::prometheus,
// larder/prometheus.h) is one too.
//
//   larder::for_each_metric(users, [](const larder::Metric& m) {
//     std::printf("%.*s %g\n", int(m.name.size()), m.name.data(), m.value);
//   });
//
// What a Cache reports (labels: cache="<CacheOptions::name>", or "default"):
//   counters  larder_cache_<field>_total for each counter of CacheStats
//             (hits, misses, stale_hits, loads, ..., invalidations_reapplied)
//   gauges    larder_cache_dirty_keys, larder_cache_dirty_oldest_age_seconds,
//             larder_cache_invalidations_pending, larder_cache_journal_bytes,
//             larder_cache_journal_segments
//   latency   larder_cache_load_duration_seconds{loader="single"|"batch"}
//             (every loader call, refreshes included),
//             larder_cache_store_get_duration_seconds and
//             larder_cache_store_put_duration_seconds (sampled: one call in
//             64 per thread, see metric.h), larder_cache_write_back_flush_duration_seconds
//             (each flush batch's Writer calls), larder_cache_journal_fsync_duration_seconds
//             (each fdatasync of the write-back journal); only while
//             CacheOptions::record_latency is true (the default)
// and then its store's, through Store::for_each_metric with store="store":
//   larder_store_{hits,misses,evictions,expirations,errors}_total,
//   larder_store_entries, larder_store_weight; a TieredStore adds its tiers
//   (store="l1", store="l2") and its bus counters; a RedisStore adds its
//   client's (larder/redis/client.h): larder_redis_<stat>_total, per node
//   larder_redis_breaker_open{node=...} and
//   larder_redis_pool_connections{node=...,state="in_use"|"idle"}, and
//   larder_redis_command_duration_seconds{command=...,pipeline="0"|"1"}.
//
// Cost: counters and gauges are read only when metrics are collected (a
// stats() snapshot, a store's counters(), a lock or two for the write-back
// and the Redis pools); recording costs the hit path one thread-local
// increment, and one call in 64 two steady_clock reads
// (bench/cache_bench.cc: BM_CacheHitMetrics, results in bench/results/).
//
// Thread-safety: for_each_metric may run concurrently with every Cache
// method; values are read without stopping the cache (see CacheStats). The
// callback runs on the caller's thread and must not destroy the cache.
#ifndef LARDER_METRICS_H_
#define LARDER_METRICS_H_

#include <chrono>
#include <functional>
#include <string_view>

#include "larder/cache.h"
#include "larder/metric.h"
#include "larder/stats.h"

namespace larder {

namespace internal {
struct CacheMetricsPeer {
  template <class K, class V>
  static const CacheCore<K, V>& core(const Cache<K, V>& c) {
    return *c.core_;
  }
};
}  // namespace internal

// for_each_metric: every metric of cache and its store, to out (see above).
template <class K, class V>
void for_each_metric(const Cache<K, V>& cache, MetricCallback out) {
  const internal::CacheCore<K, V>& core = internal::CacheMetricsPeer::core(cache);
  const internal::CacheState<K, V>& st = core.state();
  const std::string_view name = st.opt.name.empty() ? std::string_view("default") : st.opt.name;
  const MetricLabel base_l[] = {{"cache", name}};
  const std::span<const MetricLabel> base(base_l);
  using internal::emit_counter;
  using internal::emit_gauge;
  using internal::emit_histogram;

  const CacheStats s = cache.stats();
  struct Field {
    std::string_view name, help;
    std::uint64_t v;
  };
  const Field counters[] = {
      {"larder_cache_hits_total", "Fresh entries returned", s.hits},
      {"larder_cache_misses_total", "Absent or expired entries: a load was needed", s.misses},
      {"larder_cache_stale_hits_total", "Stale entries returned", s.stale_hits},
      {"larder_cache_loads_total", "Loader calls that succeeded (a batch counts once)", s.loads},
      {"larder_cache_load_failures_total", "Loader calls that failed", s.load_failures},
      {"larder_cache_coalesced_total", "Callers that joined a load in flight", s.coalesced},
      {"larder_cache_refreshes_total", "Background refreshes started", s.refreshes},
      {"larder_cache_evictions_total", "Entries the store dropped to respect its bound",
       s.evictions},
      {"larder_cache_expirations_total", "Entries the store dropped at stale_until", s.expirations},
      {"larder_cache_store_errors_total", "Store operations that failed", s.store_errors},
      {"larder_cache_writes_total", "Entries written to the system of record", s.writes},
      {"larder_cache_write_failures_total", "Writer calls that failed", s.write_failures},
      {"larder_cache_flushes_total", "Write-back batches written", s.flushes},
      {"larder_cache_write_coalesced_total", "Write-back puts absorbed by a later put",
       s.write_coalesced},
      {"larder_cache_refreshes_dropped_total", "Refreshes skipped: executor queue full",
       s.refreshes_dropped},
      {"larder_cache_refresh_failures_total", "Background refreshes whose loader failed",
       s.refresh_failures},
      {"larder_cache_negative_hits_total", "NotFound answered from the negative cache",
       s.negative_hits},
      {"larder_cache_load_timeouts_total", "Callers served stale after load_timeout",
       s.load_timeouts},
      {"larder_cache_write_rejected_total", "Write-back puts refused by backpressure",
       s.write_rejected},
      {"larder_cache_journal_replayed_total", "Journal records replayed at construction",
       s.journal_replayed},
      {"larder_cache_journal_bad_tails_total", "Journal segments ending in a torn record",
       s.journal_bad_tails},
      {"larder_cache_invalidations_deferred_total", "Drops deferred: the store was down",
       s.invalidations_deferred},
      {"larder_cache_invalidations_reapplied_total", "Deferred drops applied since",
       s.invalidations_reapplied},
  };
  for (const Field& f : counters) emit_counter(out, f.name, f.help, base, f.v);

  emit_gauge(out, "larder_cache_dirty_keys", "Write-back keys not yet written", base,
             static_cast<double>(s.dirty));
  emit_gauge(out, "larder_cache_invalidations_pending", "Deferred drops waiting now", base,
             static_cast<double>(s.invalidations_pending));
  double oldest = 0, journal_bytes = 0, journal_segments = 0;
  if (const internal::WriteBack<K, V>* wb = core.write_back_queue()) {
    oldest = std::chrono::duration<double>(wb->oldest_dirty_age(st.fresh.now())).count();
    const internal::WriteBackStats w = wb->stats();
    journal_bytes = static_cast<double>(w.journal.live_bytes);
    journal_segments = static_cast<double>(w.journal.segments);
  }
  emit_gauge(out, "larder_cache_dirty_oldest_age_seconds",
             "About how long the longest-waiting dirty key has waited", base, oldest);
  emit_gauge(out, "larder_cache_journal_bytes", "Bytes in the write-back journal's live segments",
             base, journal_bytes);
  emit_gauge(out, "larder_cache_journal_segments", "Write-back journal segment files alive", base,
             journal_segments);

  if (st.latency.on) {
    const internal::MetricLabels<4> single(base, {{"loader", "single"}});
    const internal::MetricLabels<4> batch(base, {{"loader", "batch"}});
    constexpr std::string_view kLoad = "larder_cache_load_duration_seconds";
    constexpr std::string_view kLoadHelp = "Loader calls (refreshes included)";
    emit_histogram(out, kLoad, kLoadHelp, single.span(), st.latency.load);
    emit_histogram(out, kLoad, kLoadHelp, batch.span(), st.latency.batch_load);
    emit_histogram(out, "larder_cache_store_get_duration_seconds",
                   "Store::get on the read path (sampled, 1 in 64 per thread)", base,
                   st.latency.store_get);
    emit_histogram(out, "larder_cache_store_put_duration_seconds",
                   "Store::put and fill (sampled, 1 in 64 per thread)", base, st.latency.store_put);
    emit_histogram(out, "larder_cache_write_back_flush_duration_seconds",
                   "Writer calls of one write-back flush batch", base, st.latency.flush);
    emit_histogram(out, "larder_cache_journal_fsync_duration_seconds",
                   "fdatasync of the write-back journal", base, st.latency.fsync);
  }
  st.store->for_each_metric(base, "store", out);
}

// MetricSource: something for_each_metric can walk, type-erased (the
// Prometheus collector holds a list of them).
using MetricSource = std::function<void(MetricCallback)>;

// metric_source: cache as a MetricSource. The cache must outlive it.
template <class K, class V>
MetricSource metric_source(const Cache<K, V>& cache) {
  return [c = &cache](MetricCallback out) { for_each_metric(*c, out); };
}

}  // namespace larder

#endif  // LARDER_METRICS_H_
