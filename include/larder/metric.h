// SPDX-License-Identifier: Apache-2.0
//
// Metric: the vocabulary of larder's metrics (metrics.h walks a Cache and its
// stores with it): one Metric per counter, gauge or latency histogram, with
// its labels, handed to a callback. A Prometheus, OpenTelemetry or statsd
// bridge is a callback; nothing here depends on any of them.
//
// Names follow Prometheus conventions so that the Prometheus bridge is a
// copy: `larder_<component>_<what>` with `_total` on counters and `_seconds`
// on latency histograms (larder_cache_hits_total{cache="users"},
// larder_cache_load_duration_seconds{cache="users",loader="single"}). Other
// bridges strip or map them.
//
// LatencyHistogram: how latency is recorded. Fixed log-scale buckets (upper
// bounds 2^10 ns = 1.024 us, doubling up to 2^35 ns = 34.4 s, then +Inf): a
// record is one bit_width, one relaxed fetch_add on the bucket and one on the
// sum, with no lock and no allocation. The buckets are striped like
// StripedCounter (internal/striped_counter.h): a thread adds to its own
// cache-line-aligned stripe, so threads recording at once share no line.
// A snapshot sums the stripes; it is exact once writers are quiet and
// otherwise off by the records in flight (count and sum are read separately).
// Why log2 and fixed: bucket choice needs no configuration, one bound per
// doubling is enough to tell a 50 us hit from a 2 ms miss (quantiles are
// within a factor of 2), and fixed bounds make histograms of different caches
// and processes aggregatable.
//
// LatencySampler: the hit path (Store::get on a hit) must stay within 5% of
// its cost without metrics (bench/cache_bench.cc measures it), and two
// steady_clock reads (~50 ns) cost a third of a LocalStore hit. So store
// operations are timed one in kSampleEvery (64) per thread (a thread-local
// counter, no shared state): ~1 ns per hit on average. Loads, flushes and
// fsyncs are timed every time.
// A sampled histogram's count is about 1/kSampleEvery of the operations;
// the operation counts are the counters (hits, misses, ...).
//
// Thread-safety: LatencyHistogram::record and snapshot may run concurrently
// from any number of threads.
#ifndef LARDER_METRIC_H_
#define LARDER_METRIC_H_

#include <array>
#include <atomic>
#include <bit>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <span>
#include <string_view>

#include "absl/functional/function_ref.h"
#include "larder/internal/striped_counter.h"

namespace larder {

// HistogramData: a histogram's snapshot. counts[i] is the number of records
// in bucket i alone (not cumulative); bucket i holds values <= upper_bound(i)
// and > upper_bound(i - 1); the last bucket is +Inf.
struct HistogramData {
  static constexpr std::size_t kFiniteBuckets = 26;
  static constexpr std::size_t kBuckets = kFiniteBuckets + 1;  // + Inf
  static constexpr int kFirstBoundLog2 = 10;                   // 2^10 ns

  std::array<std::uint64_t, kBuckets> counts{};
  std::uint64_t count = 0;   // sum of counts
  double sum_seconds = 0.0;  // sum of the recorded values

  // upper_bound_seconds: bucket i's upper bound in seconds (i < kFiniteBuckets).
  static double upper_bound_seconds(std::size_t i) {
    return static_cast<double>(std::uint64_t{1} << (kFirstBoundLog2 + i)) * 1e-9;
  }
  // bucket_of: the bucket of a value in nanoseconds.
  static std::size_t bucket_of(std::uint64_t ns) {
    if (ns <= (std::uint64_t{1} << kFirstBoundLog2)) return 0;
    const std::size_t b = static_cast<std::size_t>(std::bit_width(ns - 1)) - kFirstBoundLog2;
    return b < kFiniteBuckets ? b : kFiniteBuckets;
  }
  // quantile: an estimate (the upper bound of the bucket holding the q-th
  // record; +Inf records report the last finite bound). 0 when empty.
  double quantile(double q) const {
    if (count == 0) return 0.0;
    const double target = q * static_cast<double>(count);
    std::uint64_t seen = 0;
    for (std::size_t i = 0; i < kFiniteBuckets; ++i) {
      seen += counts[i];
      if (static_cast<double>(seen) >= target && seen > 0) return upper_bound_seconds(i);
    }
    return upper_bound_seconds(kFiniteBuckets - 1);
  }
};

// LatencyHistogram: see the file comment.
class LatencyHistogram {
 public:
  void record(std::chrono::nanoseconds d) {
    const std::uint64_t ns = d.count() > 0 ? static_cast<std::uint64_t>(d.count()) : 0;
    Stripe& s = stripes_[internal::thread_stripe() % kStripes];
    s.counts[HistogramData::bucket_of(ns)].fetch_add(1, std::memory_order_relaxed);
    s.sum_ns.fetch_add(ns, std::memory_order_relaxed);
  }
  // record_since: the time from start to now (steady clock).
  void record_since(std::chrono::steady_clock::time_point start) {
    record(std::chrono::steady_clock::now() - start);
  }

  HistogramData snapshot() const {
    HistogramData h;
    std::uint64_t sum_ns = 0;
    for (const Stripe& s : stripes_) {
      for (std::size_t i = 0; i < HistogramData::kBuckets; ++i) {
        const std::uint64_t c = s.counts[i].load(std::memory_order_relaxed);
        h.counts[i] += c;
        h.count += c;
      }
      sum_ns += s.sum_ns.load(std::memory_order_relaxed);
    }
    h.sum_seconds = static_cast<double>(sum_ns) * 1e-9;
    return h;
  }

 private:
  static constexpr std::size_t kStripes = 8;
  struct alignas(internal::kCacheLine) Stripe {
    std::array<std::atomic<std::uint64_t>, HistogramData::kBuckets> counts{};
    std::atomic<std::uint64_t> sum_ns{0};
  };
  std::array<Stripe, kStripes> stripes_{};
};

enum class MetricType { kCounter, kGauge, kHistogram };

// MetricLabel: one label (name="value"). Views: valid during the callback.
struct MetricLabel {
  std::string_view name;
  std::string_view value;
};

// Metric: one reading, valid during the callback only (copy what you keep).
struct Metric {
  std::string_view name;  // larder_cache_hits_total, larder_store_entries, ...
  std::string_view help;  // one line
  MetricType type = MetricType::kCounter;
  std::span<const MetricLabel> labels;
  double value = 0.0;                        // kCounter, kGauge
  const HistogramData* histogram = nullptr;  // kHistogram
};

// MetricCallback: receives each Metric; called on the caller's thread, under
// no larder lock. It must not call back into what is being walked.
using MetricCallback = absl::FunctionRef<void(const Metric&)>;

namespace internal {

// LatencySampler: one in kSampleEvery calls of sample() per thread is true.
struct LatencySampler {
  static constexpr std::uint32_t kSampleEvery = 64;  // a power of 2
  static bool sample() {
    thread_local std::uint32_t n = 0;
    return (++n & (kSampleEvery - 1)) == 0;
  }
};

// MetricLabels: a small label list built on the stack (base + extra).
template <std::size_t N>
struct MetricLabels {
  std::array<MetricLabel, N> items{};
  std::size_t size = 0;
  MetricLabels(std::span<const MetricLabel> base, std::initializer_list<MetricLabel> extra) {
    for (const MetricLabel& l : base) {
      if (size < N) items[size++] = l;
    }
    for (const MetricLabel& l : extra) {
      if (size < N) items[size++] = l;
    }
  }
  std::span<const MetricLabel> span() const { return {items.data(), size}; }
};

inline void emit_counter(MetricCallback out, std::string_view name, std::string_view help,
                         std::span<const MetricLabel> labels, std::uint64_t v) {
  out(Metric{name, help, MetricType::kCounter, labels, static_cast<double>(v), nullptr});
}
inline void emit_gauge(MetricCallback out, std::string_view name, std::string_view help,
                       std::span<const MetricLabel> labels, double v) {
  out(Metric{name, help, MetricType::kGauge, labels, v, nullptr});
}
inline void emit_histogram(MetricCallback out, std::string_view name, std::string_view help,
                           std::span<const MetricLabel> labels, const LatencyHistogram& h) {
  const HistogramData d = h.snapshot();
  out(Metric{name, help, MetricType::kHistogram, labels, 0.0, &d});
}

}  // namespace internal
}  // namespace larder

#endif  // LARDER_METRIC_H_
