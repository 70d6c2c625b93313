// SPDX-License-Identifier: Apache-2.0
//
// cache_bench: what the Cache layer costs over its store, and what it saves
// when a hot key expires.
//
//   BM_StoreGet / BM_CacheHit    LocalStore::get versus Cache::get_or_load on a
//                                fresh key (the hit path), 1 and 2 threads.
//   BM_StoreGet100 / BM_CacheGetMany100
//                                100 LocalStore::get calls versus one warm
//                                Cache::get_many of the same 100 keys (all
//                                fresh hits). Issue 17's target: <= 1.3x.
//   BM_CacheGetManyAligned100    the same batch through get_many_aligned (the
//                                answer in key order: no result map).
//   BM_CacheHitMetrics/metrics:  the hit path with CacheOptions::record_latency
//                                off (0) and on (1): what metrics cost.
//   BM_Stampede/<mode>           8 reader threads on one hot key whose ttl is
//                                100 ms, a loader taking 10 ms, for 2 s:
//                                  0 naive cache-aside (get; on miss load; put)
//                                  1 larder, single-flight only
//                                  2 larder, single-flight + stale-while-revalidate
//                                counters: loader calls, expiries (2 s / 100 ms),
//                                reader latency p50 / p99 in microseconds.
//
// Run: build/release/bench/cache_bench --benchmark_min_time=1
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "benchmark/benchmark.h"
#include "get_many_bench.h"
#include "larder/cache.h"
#include "larder/local_store.h"

namespace {

using Clock = std::chrono::steady_clock;
using larder::Cache;
using larder::CacheOptions;
using larder::LocalStore;
using larder::LocalStoreOptions;

constexpr int kKeys = 1024;

std::vector<std::string>& bench_keys() {
  static std::vector<std::string> keys = [] {
    std::vector<std::string> k;
    for (int i = 0; i < kKeys; ++i) k.push_back("user:" + std::to_string(i));
    return k;
  }();
  return keys;
}

struct HitFixture {
  std::shared_ptr<LocalStore<std::string, std::string>> store =
      std::make_shared<LocalStore<std::string, std::string>>(
          LocalStoreOptions{.max_entries = 4096});
  Cache<std::string, std::string> cache{
      store, CacheOptions<std::string, std::string>{.ttl = std::chrono::hours(1)}};
  HitFixture() {
    for (const auto& k : bench_keys()) (void)cache.put(k, "value-of-" + k);
  }
};

HitFixture& hit_fixture() {
  static HitFixture f;
  return f;
}

void BM_ClockNow(benchmark::State& state) {
  auto clock = larder::system_clock();
  for (auto _ : state) benchmark::DoNotOptimize(clock->now());
}
BENCHMARK(BM_ClockNow);

void BM_StoreGet(benchmark::State& state) {
  HitFixture& f = hit_fixture();
  const auto& keys = bench_keys();
  std::size_t i = static_cast<std::size_t>(state.thread_index()) * 97;
  for (auto _ : state) {
    auto got = f.store->get(keys[i++ & (kKeys - 1)]);
    benchmark::DoNotOptimize(got);
  }
}
BENCHMARK(BM_StoreGet)->Threads(1)->Threads(2)->UseRealTime();

void BM_CacheHit(benchmark::State& state) {
  HitFixture& f = hit_fixture();
  const auto& keys = bench_keys();
  auto loader = [](const std::string& k) { return "loaded-" + k; };
  std::size_t i = static_cast<std::size_t>(state.thread_index()) * 97;
  for (auto _ : state) {
    auto got = f.cache.get_or_load(keys[i++ & (kKeys - 1)], loader);
    benchmark::DoNotOptimize(got);
  }
}
BENCHMARK(BM_CacheHit)->Threads(1)->Threads(2)->UseRealTime();

std::vector<std::string> keys100() {
  const auto& all = bench_keys();
  return std::vector<std::string>(all.begin(), all.begin() + 100);
}

void BM_StoreGet100(benchmark::State& state) {
  HitFixture& f = hit_fixture();
  const auto keys = keys100();
  for (auto _ : state) {
    for (const auto& k : keys) {
      auto got = f.store->get(k);
      benchmark::DoNotOptimize(got);
    }
  }
  state.SetItemsProcessed(state.iterations() * 100);
}
BENCHMARK(BM_StoreGet100);

// Aligned: get_many_aligned (a slot per key) instead of get_many (a map).
template <bool kAligned>
void cache_get_many100(benchmark::State& state) {
  HitFixture& f = hit_fixture();
  larder_bench::run_get_many<kAligned>(state, f.cache, keys100());
}
void BM_CacheGetMany100(benchmark::State& state) { cache_get_many100<false>(state); }
BENCHMARK(BM_CacheGetMany100);
void BM_CacheGetManyAligned100(benchmark::State& state) { cache_get_many100<true>(state); }
BENCHMARK(BM_CacheGetManyAligned100);

// ---- metrics cost: the hit path with latency recording off (0) and on (1) ----
// Same binary, same store contents; CacheOptions::record_latency is the only
// difference (counters are always kept). Reported as a ratio in
// bench/results/metrics_overhead.txt.

struct MetricsHitFixture {
  std::shared_ptr<LocalStore<std::string, std::string>> store =
      std::make_shared<LocalStore<std::string, std::string>>(
          LocalStoreOptions{.max_entries = 4096});
  Cache<std::string, std::string> off{store, options(false)};
  Cache<std::string, std::string> on{store, options(true)};
  static CacheOptions<std::string, std::string> options(bool record) {
    CacheOptions<std::string, std::string> o{.ttl = std::chrono::hours(1)};
    o.record_latency = record;
    return o;
  }
  MetricsHitFixture() {
    for (const auto& k : bench_keys()) (void)off.put(k, "value-of-" + k);
  }
};

void BM_CacheHitMetrics(benchmark::State& state) {
  static MetricsHitFixture f;
  Cache<std::string, std::string>& cache = state.range(0) != 0 ? f.on : f.off;
  const auto& keys = bench_keys();
  auto loader = [](const std::string& k) { return "loaded-" + k; };
  std::size_t i = static_cast<std::size_t>(state.thread_index()) * 97;
  for (auto _ : state) {
    auto got = cache.get_or_load(keys[i++ & (kKeys - 1)], loader);
    benchmark::DoNotOptimize(got);
  }
}
// Run with --benchmark_repetitions and --benchmark_enable_random_interleaving
// so drift on a loaded machine hits both (scripts/bench_metrics.sh).
BENCHMARK(BM_CacheHitMetrics)
    ->ArgName("metrics")
    ->Arg(0)
    ->Arg(1)
    ->Threads(1)
    ->Threads(2)
    ->UseRealTime();

// ---- stampede ----

constexpr int kReaders = 8;
constexpr auto kTtl = std::chrono::milliseconds(100);
constexpr auto kLoad = std::chrono::milliseconds(10);
constexpr auto kRun = std::chrono::seconds(2);

// Histogram: reader latencies; 10 ns buckets below 10 us, 10 us buckets to 1 s.
struct Histogram {
  std::vector<std::uint64_t> fine = std::vector<std::uint64_t>(1000);
  std::vector<std::uint64_t> coarse = std::vector<std::uint64_t>(100'000);
  std::uint64_t count = 0;
  double max_us = 0;
  void add(Clock::duration d) {
    const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(d).count();
    if (ns < 10'000) {
      ++fine[static_cast<std::size_t>(ns / 10)];
    } else {
      ++coarse[std::min<std::size_t>(static_cast<std::size_t>(ns / 10'000), coarse.size() - 1)];
    }
    ++count;
    max_us = std::max(max_us, static_cast<double>(ns) / 1000.0);
  }
  void merge(const Histogram& o) {
    for (std::size_t i = 0; i < fine.size(); ++i) fine[i] += o.fine[i];
    for (std::size_t i = 0; i < coarse.size(); ++i) coarse[i] += o.coarse[i];
    count += o.count;
    max_us = std::max(max_us, o.max_us);
  }
  double percentile_us(double p) const {
    const auto want = static_cast<std::uint64_t>(p * static_cast<double>(count));
    std::uint64_t seen = 0;
    for (std::size_t i = 0; i < fine.size(); ++i) {
      if ((seen += fine[i]) > want) return static_cast<double>(i) * 0.01;
    }
    for (std::size_t i = 0; i < coarse.size(); ++i) {
      if ((seen += coarse[i]) > want) return static_cast<double>(i) * 10.0;
    }
    return max_us;
  }
};

// Timeline: with LARDER_BENCH_TIMELINE=DIR set, BM_Stampede also writes
// DIR/stampede_<mode>.csv: per 10 ms of the run, requests started, loader calls
// started, mean and max request latency, and requests that took >= 5 ms (half
// a load: they waited for one, or were descheduled) (scripts/report.sh plots them).
constexpr auto kSlot = std::chrono::milliseconds(10);
constexpr std::size_t kSlots = static_cast<std::size_t>(kRun / kSlot) + 1;
struct Timeline {
  std::vector<std::uint64_t> requests = std::vector<std::uint64_t>(kSlots);
  std::vector<std::uint64_t> slow = std::vector<std::uint64_t>(kSlots);
  std::vector<double> sum_us = std::vector<double>(kSlots), max_us = std::vector<double>(kSlots);
  std::size_t slot(Clock::time_point start, Clock::time_point t) const {
    return std::min<std::size_t>(static_cast<std::size_t>((t - start) / kSlot), kSlots - 1);
  }
  void add(std::size_t i, Clock::duration d) {
    const double us = std::chrono::duration<double, std::micro>(d).count();
    ++requests[i];
    if (d >= kLoad / 2) ++slow[i];
    sum_us[i] += us;
    max_us[i] = std::max(max_us[i], us);
  }
};

void BM_Stampede(benchmark::State& state) {
  const int mode = static_cast<int>(state.range(0));
  const char* timeline_dir = std::getenv("LARDER_BENCH_TIMELINE");
  for (auto _ : state) {
    auto store = std::make_shared<LocalStore<std::string, std::string>>(
        LocalStoreOptions{.max_entries = 16});
    CacheOptions<std::string, std::string> o{.ttl = kTtl};
    if (mode == 2) o.stale_while_revalidate = std::chrono::seconds(1);
    auto cache = std::make_unique<Cache<std::string, std::string>>(store, o);
    std::atomic<int> loads{0};
    std::vector<std::atomic<std::uint32_t>> load_slots(kSlots);
    std::vector<Timeline> timelines(kReaders);
    const auto start = Clock::now();
    auto loader = [&](const std::string&) {
      loads.fetch_add(1);
      load_slots[timelines[0].slot(start, Clock::now())].fetch_add(1);
      std::this_thread::sleep_for(kLoad);
      return std::string("row");
    };
    std::vector<Histogram> lat(kReaders);
    std::atomic<bool> stop{false};
    std::vector<std::thread> readers;
    for (int t = 0; t < kReaders; ++t) {
      readers.emplace_back([&, t] {
        while (!stop.load(std::memory_order_relaxed)) {
          const auto t0 = Clock::now();
          if (mode == 0) {  // naive cache-aside: check, load, set
            auto got = store->get("hot");
            if (!(got.ok() && got->has_value() &&
                  larder::system_clock()->now() < (*got)->fresh_until)) {
              std::string v = loader("hot");
              const auto now = larder::system_clock()->now();
              (void)store->put("hot", {v, now + kTtl, now + kTtl});
            }
          } else {
            auto got = cache->get_or_load("hot", loader);
            benchmark::DoNotOptimize(got);
          }
          const auto t1 = Clock::now();
          lat[t].add(t1 - t0);
          timelines[t].add(timelines[t].slot(start, t0), t1 - t0);
        }
      });
    }
    std::this_thread::sleep_for(kRun);
    stop.store(true);
    for (auto& r : readers) r.join();
    cache.reset();
    Histogram all;
    for (auto& l : lat) all.merge(l);
    auto pct = [&](double p) { return all.percentile_us(p); };
    state.counters["loader_calls"] = loads.load();
    // The value is written when a load ends, so it expires every ttl + load.
    state.counters["expiries"] = static_cast<double>(kRun / (kTtl + kLoad));
    state.counters["reads"] = static_cast<double>(all.count);
    state.counters["p50_us"] = pct(0.50);
    state.counters["p99_us"] = pct(0.99);
    state.counters["p999_us"] = pct(0.999);
    state.counters["max_us"] = all.max_us;
    if (timeline_dir != nullptr) {
      const std::string path =
          std::string(timeline_dir) + "/stampede_" + std::to_string(mode) + ".csv";
      if (std::FILE* f = std::fopen(path.c_str(), "w")) {
        std::fprintf(f, "t_ms,requests,loader_calls,mean_us,max_us,slow\n");
        for (std::size_t i = 0; i + 1 < kSlots; ++i) {
          std::uint64_t n = 0, slow = 0;
          double sum = 0, mx = 0;
          for (const Timeline& tl : timelines) {
            n += tl.requests[i];
            slow += tl.slow[i];
            sum += tl.sum_us[i];
            mx = std::max(mx, tl.max_us[i]);
          }
          std::fprintf(f, "%lld,%llu,%u,%.2f,%.2f,%llu\n",
                       static_cast<long long>(i * static_cast<std::size_t>(kSlot.count())),
                       static_cast<unsigned long long>(n), load_slots[i].load(), n ? sum / n : 0.0,
                       mx, static_cast<unsigned long long>(slow));
        }
        std::fclose(f);
      }
    }
  }
}
BENCHMARK(BM_Stampede)
    ->Arg(0)
    ->Arg(1)
    ->Arg(2)
    ->Iterations(1)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
