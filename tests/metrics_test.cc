// SPDX-License-Identifier: Apache-2.0
//
// metrics.h / metric.h: the histogram's buckets and striping, and
// for_each_metric over a Cache and its stores checked against CacheStats and
// StoreCounters. The concurrent tests (records and scrapes racing the cache)
// run under TSan too.
#include "larder/metrics.h"

#include <unistd.h>

#include <atomic>
#include <barrier>
#include <chrono>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "gtest/gtest.h"
#include "larder/local_store.h"
#include "larder/tiered_store.h"
#include "tests/testing/cache_env.h"

namespace larder {
namespace {

using namespace std::chrono_literals;
using testing::CacheEnv;

// Scraped: the metrics of one for_each_metric call, by "name{k=v,...}".
struct Scraped {
  std::map<std::string, double> values;
  std::map<std::string, HistogramData> histograms;
  std::map<std::string, MetricType> types;

  static std::string key(const Metric& m) {
    std::string k(m.name);
    k += '{';
    for (std::size_t i = 0; i < m.labels.size(); ++i) {
      if (i > 0) k += ',';
      k += std::string(m.labels[i].name) + "=" + std::string(m.labels[i].value);
    }
    return k + '}';
  }
  template <class K, class V>
  static Scraped of(const Cache<K, V>& c) {
    Scraped s;
    for_each_metric(c, [&](const Metric& m) {
      const std::string k = key(m);
      EXPECT_FALSE(s.types.contains(k)) << "reported twice: " << k;
      s.types[k] = m.type;
      if (m.type == MetricType::kHistogram) {
        s.histograms[k] = *m.histogram;
      } else {
        s.values[k] = m.value;
      }
    });
    return s;
  }
  double at(const std::string& k) const {
    auto it = values.find(k);
    EXPECT_NE(it, values.end()) << "missing metric " << k;
    return it == values.end() ? -1 : it->second;
  }
  const HistogramData& hist(const std::string& k) const {
    static const HistogramData kEmpty;
    auto it = histograms.find(k);
    EXPECT_NE(it, histograms.end()) << "missing histogram " << k;
    return it == histograms.end() ? kEmpty : it->second;
  }
};

TEST(LatencyHistogramTest, BucketsAreLog2FromOneMicrosecond) {
  EXPECT_EQ(HistogramData::bucket_of(0), 0u);
  EXPECT_EQ(HistogramData::bucket_of(1024), 0u);
  EXPECT_EQ(HistogramData::bucket_of(1025), 1u);
  EXPECT_EQ(HistogramData::bucket_of(2048), 1u);
  EXPECT_EQ(HistogramData::bucket_of(2049), 2u);
  EXPECT_EQ(HistogramData::bucket_of(std::uint64_t{1} << 35), HistogramData::kFiniteBuckets - 1);
  EXPECT_EQ(HistogramData::bucket_of((std::uint64_t{1} << 35) + 1), HistogramData::kFiniteBuckets);
  EXPECT_EQ(HistogramData::bucket_of(~std::uint64_t{0}), HistogramData::kFiniteBuckets);
  EXPECT_DOUBLE_EQ(HistogramData::upper_bound_seconds(0), 1024e-9);
  for (std::size_t i = 0; i + 1 < HistogramData::kFiniteBuckets; ++i) {
    // Every value lands in the bucket whose bound is the first >= it.
    const auto bound =
        static_cast<std::uint64_t>(HistogramData::upper_bound_seconds(i) * 1e9 + 0.5);
    EXPECT_EQ(HistogramData::bucket_of(bound), i);
    EXPECT_EQ(HistogramData::bucket_of(bound + 1), i + 1);
  }
}

TEST(LatencyHistogramTest, SnapshotCountsSumsAndQuantiles) {
  LatencyHistogram h;
  for (int i = 0; i < 90; ++i) h.record(500ns);  // bucket 0
  for (int i = 0; i < 10; ++i) h.record(3ms);    // 2^22 ns = 4.19 ms: bucket 12
  h.record(-5ns);                                // negative: counted as 0
  h.record(std::chrono::hours(1));               // +Inf
  const HistogramData d = h.snapshot();
  EXPECT_EQ(d.count, 102u);
  EXPECT_EQ(d.counts[0], 91u);
  EXPECT_EQ(d.counts[12], 10u);
  EXPECT_EQ(d.counts[HistogramData::kFiniteBuckets], 1u);
  EXPECT_NEAR(d.sum_seconds, 90 * 500e-9 + 10 * 3e-3 + 3600.0, 1e-6);
  EXPECT_DOUBLE_EQ(d.quantile(0.5), HistogramData::upper_bound_seconds(0));
  EXPECT_DOUBLE_EQ(d.quantile(0.95), HistogramData::upper_bound_seconds(12));
  EXPECT_EQ(HistogramData{}.quantile(0.5), 0.0);
}

// Stress (TSan): recorders on many threads against a snapshotting reader;
// once they stop, nothing was lost.
TEST(LatencyHistogramTest, ConcurrentRecordsAreAllCounted) {
  LatencyHistogram h;
  constexpr int kThreads = 8, kEach = 20'000;
  std::atomic<bool> done{false};
  std::thread reader([&] {
    std::uint64_t last = 0;
    while (!done.load()) {
      const HistogramData d = h.snapshot();
      EXPECT_GE(d.count, last);  // monotonic
      last = d.count;
    }
  });
  std::vector<std::thread> ts;
  for (int t = 0; t < kThreads; ++t) {
    ts.emplace_back([&, t] {
      for (int i = 0; i < kEach; ++i) h.record(std::chrono::nanoseconds(1000 * (t + 1)));
    });
  }
  for (std::thread& t : ts) t.join();
  done = true;
  reader.join();
  const HistogramData d = h.snapshot();
  EXPECT_EQ(d.count, std::uint64_t{kThreads} * kEach);
  double want = 0;
  for (int t = 0; t < kThreads; ++t) want += kEach * 1000e-9 * (t + 1);
  EXPECT_NEAR(d.sum_seconds, want, 1e-9 * kThreads * kEach);
}

TEST(MetricsTest, CacheCountersAndGaugesMatchStats) {
  CacheEnv<std::string, std::string> env;
  CacheOptions<std::string, std::string> o = env.options();
  o.name = "users";
  Cache<std::string, std::string> cache(env.store, o);
  auto loader = [](const std::string& k) -> absl::StatusOr<std::string> {
    if (k == "gone") return absl::NotFoundError("gone");
    return "v" + k;
  };
  // One fresh thread: its sampler starts at 0, so exactly 1 in kSampleEvery is timed.
  std::thread t([&] {
    for (int i = 0; i < 10; ++i)
      ASSERT_TRUE(cache.get_or_load("k" + std::to_string(i), loader).ok());
    for (int r = 0; r < 15; ++r) {
      for (int i = 0; i < 10; ++i)
        ASSERT_TRUE(cache.get_or_load("k" + std::to_string(i), loader).ok());
    }
    EXPECT_FALSE(cache.get_or_load("gone", loader).ok());
  });
  t.join();

  const CacheStats st = cache.stats();
  ASSERT_EQ(st.hits, 150u);
  ASSERT_EQ(st.misses, 11u);
  const Scraped s = Scraped::of(cache);
  EXPECT_EQ(s.at("larder_cache_hits_total{cache=users}"), 150);
  EXPECT_EQ(s.at("larder_cache_misses_total{cache=users}"), 11);
  EXPECT_EQ(s.at("larder_cache_loads_total{cache=users}"), st.loads);
  EXPECT_EQ(s.at("larder_cache_load_failures_total{cache=users}"), st.load_failures);
  EXPECT_EQ(s.at("larder_cache_dirty_keys{cache=users}"), 0);
  EXPECT_EQ(s.types.at("larder_cache_hits_total{cache=users}"), MetricType::kCounter);
  EXPECT_EQ(s.types.at("larder_cache_dirty_keys{cache=users}"), MetricType::kGauge);
  // Every load is timed; store gets and puts one in kSampleEvery per thread
  // (on a fresh thread: 161 gets and 10 fills, 171 operations).
  constexpr std::uint64_t kEvery = internal::LatencySampler::kSampleEvery;
  EXPECT_EQ(s.hist("larder_cache_load_duration_seconds{cache=users,loader=single}").count,
            st.loads + st.load_failures);
  EXPECT_EQ(s.hist("larder_cache_load_duration_seconds{cache=users,loader=batch}").count, 0u);
  EXPECT_EQ(s.hist("larder_cache_store_get_duration_seconds{cache=users}").count +
                s.hist("larder_cache_store_put_duration_seconds{cache=users}").count,
            171 / kEvery);
  EXPECT_GE(s.hist("larder_cache_store_get_duration_seconds{cache=users}").count, 171 / kEvery - 1);
  // The store's own counters, labelled store="store".
  const StoreCounters sc = env.store->counters();
  EXPECT_EQ(s.at("larder_store_hits_total{cache=users,store=store}"), sc.hits);
  EXPECT_EQ(s.at("larder_store_entries{cache=users,store=store}"), sc.size);
  EXPECT_EQ(s.types.at("larder_cache_store_get_duration_seconds{cache=users}"),
            MetricType::kHistogram);
}

TEST(MetricsTest, BatchLoadsAreTimedApart) {
  CacheEnv<std::string, std::string> env;
  Cache<std::string, std::string> cache(env.store, env.options());
  auto batch = [](std::span<const std::string> keys) {
    absl::flat_hash_map<std::string, std::string> m;
    for (const std::string& k : keys) m[k] = k;
    return m;
  };
  const std::vector<std::string> keys{"a", "b", "c"};
  ASSERT_TRUE(cache.get_many(std::span<const std::string>(keys), batch).ok());
  ASSERT_TRUE(cache.get_many(std::span<const std::string>(keys), batch).ok());
  const Scraped s = Scraped::of(cache);
  EXPECT_EQ(s.hist("larder_cache_load_duration_seconds{cache=default,loader=batch}").count, 1u);
  EXPECT_EQ(s.hist("larder_cache_load_duration_seconds{cache=default,loader=single}").count, 0u);
  EXPECT_EQ(s.at("larder_cache_hits_total{cache=default}"), 3);
}

TEST(MetricsTest, RecordLatencyOffReportsNoHistograms) {
  CacheEnv<std::string, std::string> env;
  CacheOptions<std::string, std::string> o = env.options();
  o.record_latency = false;
  Cache<std::string, std::string> cache(env.store, o);
  for (int i = 0; i < 40; ++i) {
    ASSERT_TRUE(cache.get_or_load("k", [](const std::string&) { return std::string("v"); }).ok());
  }
  const Scraped s = Scraped::of(cache);
  EXPECT_TRUE(s.histograms.empty());
  EXPECT_EQ(s.at("larder_cache_hits_total{cache=default}"), 39);
}

TEST(MetricsTest, WriteBackDirtyGaugesFlushAndFsyncLatency) {
  CacheEnv<std::string, std::string> env;
  const std::filesystem::path dir = std::filesystem::temp_directory_path() /
                                    ("larder_metrics_test_" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  {
    std::atomic<int> written{0};
    CacheOptions<std::string, std::string> o = env.options();
    o.name = "orders";
    o.write_mode = WriteMode::kWriteBack;
    o.writer.write = [&](std::span<const std::pair<std::string, std::string>> b) {
      written += static_cast<int>(b.size());
      return absl::OkStatus();
    };
    o.write_back.delay = 10s;  // Clock time: nothing is written until the clock moves
    o.write_back.journal = (dir / "j").string();
    Cache<std::string, std::string> cache(env.store, o);
    ASSERT_TRUE(cache.put("a", "1").ok());
    env.clock->advance(1s);
    ASSERT_TRUE(cache.put("b", "2").ok());
    env.clock->advance(2s);
    Scraped s = Scraped::of(cache);
    EXPECT_EQ(s.at("larder_cache_dirty_keys{cache=orders}"), 2);
    EXPECT_DOUBLE_EQ(s.at("larder_cache_dirty_oldest_age_seconds{cache=orders}"), 3.0);
    EXPECT_GT(s.at("larder_cache_journal_bytes{cache=orders}"), 0);
    EXPECT_GE(s.at("larder_cache_journal_segments{cache=orders}"), 1);
    // kEveryWrite: each acknowledged put was fdatasync'ed (group commit may share one).
    EXPECT_GE(s.hist("larder_cache_journal_fsync_duration_seconds{cache=orders}").count, 1u);
    EXPECT_EQ(s.hist("larder_cache_write_back_flush_duration_seconds{cache=orders}").count, 0u);

    ASSERT_TRUE(cache.flush().ok());
    ASSERT_EQ(written.load(), 2);
    s = Scraped::of(cache);
    EXPECT_EQ(s.at("larder_cache_dirty_keys{cache=orders}"), 0);
    EXPECT_EQ(s.at("larder_cache_dirty_oldest_age_seconds{cache=orders}"), 0);
    EXPECT_EQ(s.at("larder_cache_flushes_total{cache=orders}"), cache.stats().flushes);
    EXPECT_GE(s.hist("larder_cache_write_back_flush_duration_seconds{cache=orders}").count, 1u);
  }
  std::filesystem::remove_all(dir);
}

TEST(MetricsTest, TieredStoreReportsEachTier) {
  auto l1 = std::make_shared<LocalStore<std::string, std::string>>();
  auto l2 = std::make_shared<LocalStore<std::string, std::string>>();
  auto tiered = std::make_shared<TieredStore<std::string, std::string>>(l1, l2);
  CacheOptions<std::string, std::string> o;
  o.name = "t";
  Cache<std::string, std::string> cache(tiered, o);
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(
        cache.get_or_load("k" + std::to_string(i), [](const std::string& k) { return k; }).ok());
  }
  ASSERT_TRUE(cache.get_or_load("k0", [](const std::string& k) { return k; }).ok());
  const Scraped s = Scraped::of(cache);
  EXPECT_EQ(s.at("larder_store_entries{cache=t,store=l1}"), 3);
  EXPECT_EQ(s.at("larder_store_entries{cache=t,store=l2}"), 3);
  EXPECT_EQ(s.at("larder_tiered_l1_hits_total{cache=t,store=store}"), 1);
  EXPECT_EQ(s.at("larder_store_misses_total{cache=t,store=store}"), tiered->counters().misses);
}

// Stress (TSan): readers, loaders and writers race scrapes; afterwards the
// scraped counters equal CacheStats and the sampled histograms saw 1/kSampleEvery.
TEST(MetricsTest, ScrapesRaceTheCache) {
  auto store = std::make_shared<LocalStore<int, int>>(LocalStoreOptions{.max_entries = 64});
  CacheOptions<int, int> o;
  o.name = "stress";
  Cache<int, int> cache(store, o);
  constexpr int kThreads = 4, kOps = 4000;
  std::atomic<bool> done{false};
  std::barrier start(kThreads + 1);
  std::thread scraper([&] {
    start.arrive_and_wait();
    while (!done.load()) {
      double hits = -1;
      for_each_metric(cache, [&](const Metric& m) {
        if (m.name == "larder_cache_hits_total") hits = m.value;
      });
      EXPECT_GE(hits, 0);
    }
  });
  std::vector<std::thread> ts;
  for (int t = 0; t < kThreads; ++t) {
    ts.emplace_back([&, t] {
      start.arrive_and_wait();
      for (int i = 0; i < kOps; ++i) {
        const int k = (i * 7 + t) % 128;
        if (i % 10 == 0) {
          (void)cache.put(k, i);
        } else {
          (void)cache.get_or_load(k, [](int key) { return key * 2; });
        }
      }
    });
  }
  for (std::thread& t : ts) t.join();
  done = true;
  scraper.join();
  const CacheStats st = cache.stats();
  const Scraped s = Scraped::of(cache);
  EXPECT_EQ(s.at("larder_cache_hits_total{cache=stress}"), st.hits);
  EXPECT_EQ(s.at("larder_cache_misses_total{cache=stress}"), st.misses);
  EXPECT_EQ(s.at("larder_store_evictions_total{cache=stress,store=store}"),
            store->counters().evictions);
  // Store operations are timed 1 in kSampleEvery per thread: at least the gets' share
  // and no more than every store call's.
  const std::uint64_t gets = st.hits + st.misses + st.stale_hits;
  const std::uint64_t sampled =
      s.hist("larder_cache_store_get_duration_seconds{cache=stress}").count +
      s.hist("larder_cache_store_put_duration_seconds{cache=stress}").count;
  constexpr std::uint64_t kEvery = internal::LatencySampler::kSampleEvery;
  EXPECT_GE(sampled + kThreads, gets / kEvery);
  EXPECT_LE(sampled, (2 * gets + kThreads * kOps) / kEvery + kThreads);
}

}  // namespace
}  // namespace larder
