// SPDX-License-Identifier: Apache-2.0
//
// larder::prometheus::Collector (larder/prometheus.h): Metric -> MetricFamily.
#include <limits>
#include <string>
#include <unordered_map>
#include <utility>

#include "larder/prometheus.h"
#include "prometheus/client_metric.h"
#include "prometheus/metric_type.h"

namespace larder::prometheus {
namespace {

// Families: grouped by name, in first-seen order.
class Families {
 public:
  void add(const Metric& m) {
    const std::string name(m.name);
    auto [it, fresh] = index_.try_emplace(name, out_.size());
    if (fresh) {
      ::prometheus::MetricFamily f;
      f.name = name;
      f.help = std::string(m.help);
      f.type = type_of(m.type);
      out_.push_back(std::move(f));
    }
    ::prometheus::MetricFamily& f = out_[it->second];
    ::prometheus::ClientMetric cm;
    cm.label.reserve(m.labels.size());
    for (const MetricLabel& l : m.labels) {
      cm.label.push_back({std::string(l.name), std::string(l.value)});
    }
    switch (m.type) {
      case MetricType::kCounter:
        cm.counter.value = m.value;
        break;
      case MetricType::kGauge:
        cm.gauge.value = m.value;
        break;
      case MetricType::kHistogram: {
        const HistogramData& h = *m.histogram;
        cm.histogram.sample_count = h.count;
        cm.histogram.sample_sum = h.sum_seconds;
        cm.histogram.bucket.reserve(HistogramData::kBuckets);
        std::uint64_t cum = 0;
        for (std::size_t i = 0; i < HistogramData::kBuckets; ++i) {
          cum += h.counts[i];
          cm.histogram.bucket.push_back({cum, i < HistogramData::kFiniteBuckets
                                                  ? HistogramData::upper_bound_seconds(i)
                                                  : std::numeric_limits<double>::infinity()});
        }
        // count and buckets are summed separately while writers run: the
        // +Inf bucket must equal the count.
        cm.histogram.sample_count = cum;
        break;
      }
    }
    f.metric.push_back(std::move(cm));
  }
  std::vector<::prometheus::MetricFamily> take() { return std::move(out_); }

 private:
  static ::prometheus::MetricType type_of(MetricType t) {
    switch (t) {
      case MetricType::kCounter:
        return ::prometheus::MetricType::Counter;
      case MetricType::kGauge:
        return ::prometheus::MetricType::Gauge;
      case MetricType::kHistogram:
        return ::prometheus::MetricType::Histogram;
    }
    return ::prometheus::MetricType::Untyped;
  }
  std::unordered_map<std::string, std::size_t> index_;
  std::vector<::prometheus::MetricFamily> out_;
};

}  // namespace

std::vector<::prometheus::MetricFamily> to_families(const MetricSource& source) {
  Families f;
  source([&](const Metric& m) { f.add(m); });
  return f.take();
}

std::uint64_t Collector::add(MetricSource source) {
  internal::MutexLock l(&mu_);
  const std::uint64_t id = next_id_++;
  sources_.emplace(id, std::move(source));
  return id;
}

void Collector::remove(std::uint64_t id) {
  internal::MutexLock l(&mu_);
  sources_.erase(id);
}

std::vector<::prometheus::MetricFamily> Collector::Collect() const {
  Families f;
  internal::MutexLock l(&mu_);  // held while walking: remove() waits for a walk
  for (const auto& [id, source] : sources_) source([&](const Metric& m) { f.add(m); });
  return f.take();
}

}  // namespace larder::prometheus
