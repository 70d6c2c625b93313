// SPDX-License-Identifier: Apache-2.0
//
// larder::prometheus: larder's metrics (metrics.h) for prometheus-cpp. Built
// as the optional CMake target larder::prometheus when prometheus-cpp is
// found (Debian: prometheus-cpp-dev); link it and include this header.
//
//   auto c = std::make_shared<larder::prometheus::Collector>();  // a prometheus::Collectable
//   c->add(larder::metric_source(users));                 // users: a Cache
//   prometheus::Exposer exposer{"127.0.0.1:9464"};
//   exposer.RegisterCollectable(c);                       // next to your prometheus::Registry
//
// Why a Collectable and not counters in a prometheus::Registry: larder
// already counts (striped counters, histograms); copying its values into a
// Registry's Counter and Gauge objects would need a thread that pushes them
// and would be stale between pushes. A Collectable reads them at scrape time,
// and an Exposer (or anything that serializes Collectables) takes it beside
// the application's own Registry.
//
// Mapping: each Metric becomes a sample of the MetricFamily of its name (the
// names are already Prometheus names: larder_cache_hits_total{cache="users"},
// larder_cache_load_duration_seconds{cache="users",loader="single"});
// counters -> Counter, gauges -> Gauge, latency histograms -> Histogram with
// cumulative buckets le=1.024e-06 ... 34.36 s and +Inf. Families appear in
// the order first reported. Two sources reporting the same name and labels
// (two caches with the same CacheOptions::name) give duplicate series, which
// Prometheus rejects: name your caches.
//
// Thread-safety: add, remove and Collect may run concurrently; a source is
// never walked after remove() returned.
#ifndef LARDER_PROMETHEUS_H_
#define LARDER_PROMETHEUS_H_

#include <cstddef>
#include <cstdint>
#include <map>
#include <vector>

#include "larder/internal/mutex.h"
#include "larder/metric.h"
#include "larder/metrics.h"
#include "prometheus/collectable.h"
#include "prometheus/metric_family.h"

namespace larder::prometheus {

// to_families: the metrics one walk of `source` reports, as families.
std::vector<::prometheus::MetricFamily> to_families(const MetricSource& source);

class Collector : public ::prometheus::Collectable {
 public:
  // add: walk source at every scrape; returns an id for remove().
  std::uint64_t add(MetricSource source);
  // remove: stops walking the source (waits for a scrape walking it).
  void remove(std::uint64_t id);

  std::vector<::prometheus::MetricFamily> Collect() const override;

 private:
  mutable internal::Mutex mu_;
  std::uint64_t next_id_ ABSL_GUARDED_BY(mu_) = 1;
  std::map<std::uint64_t, MetricSource> sources_ ABSL_GUARDED_BY(mu_);
};

}  // namespace larder::prometheus

#endif  // LARDER_PROMETHEUS_H_
